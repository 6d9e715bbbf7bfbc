#!/usr/bin/env bash
# End-to-end test of the container images and compose.yaml (`make e2e`).
#
# Installs and starts a Docker engine when none runs (scripts/install-docker.sh),
# builds debian:bookworm-slim locally when absent (scripts/build-base-image.sh),
# builds both images, runs the stack under a unique compose project on
# 127.0.0.1 ports, and checks:
#   - the image contents (no compiler, no apt lists, uid 10001, healthcheck,
#     STOPSIGNAL, EXPOSE) and that a one-line source change reuses the
#     dependency layers;
#   - the original demo's curl flow with its documented answers;
#   - responder recreated (new address): the caller reaches it within 5 s;
#   - responder stopped: the caller answers 200 "Failed to reach Service B"
#     within its deadline, and recovers when the responder is back;
#   - `compose stop caller` (SIGTERM) during a burst: no in-flight request fails;
#   - compose.versions.yaml: scripts/watch-versions.sh sees both responder versions
#     and no error (tests/e2e/versions.sh);
#   - compose.tracing.yaml: both daemons' X-Ray segments reach the collector, valid and linked
#     (tests/e2e/tracing.sh);
#   - the mutual TLS stack (tests/e2e/mtls.sh).
# Removes every container, network and image it created, and stops the dockerd
# it started (by PID). Traffic goes only to 127.0.0.1 published ports.
#
# Environment:
#   E2E_COMPOSE        compose command (default: `docker compose` when it
#                      works, else `docker-compose`)
#   E2E_BUILD_NETWORK  network for RUN steps during builds (default host)
#   E2E_KEEP_BASE=1    keep debian:bookworm-slim even if this run built it
#   E2E_KEEP_DOCKERD=1 leave a dockerd started by this run running
#
# Last line: "N passed, N failed"; exit status non-zero on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
T_START=$(date +%s)
PASS=0
FAIL=0
RUN_ID="$(date +%s)$$"
PROJECT="ecsdemoe2e${RUN_ID}"
TMP=$(mktemp -d "/tmp/ecs-demo-e2e.XXXXXX")
export CALLER_IMAGE="ecs-service-connect-demo/caller:e2e-${RUN_ID}"
export RESPONDER_IMAGE="ecs-service-connect-demo/responder:e2e-${RUN_ID}"
CACHECHECK_IMAGE="ecs-service-connect-demo/caller:e2e-${RUN_ID}-cachecheck"
export XRAY_COLLECTOR_IMAGE="ecs-service-connect-demo/xray-collector:e2e-${RUN_ID}"
export PUBLISH_ADDR=127.0.0.1
BUILD_NETWORK=${E2E_BUILD_NETWORK:-host}
export BUILD_NETWORK
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
STARTED_DOCKERD=
BUILT_BASE=0
IMAGES_BEFORE="$TMP/images.before"
CLEANED=0

say() { printf '%s\n' "$*"; }
note() { printf '# %s\n' "$*"; }
pass() { PASS=$((PASS + 1)); say "ok $((PASS + FAIL)) - $*"; }
fail() { FAIL=$((FAIL + 1)); say "not ok $((PASS + FAIL)) - $*"; }
elapsed() { echo $(($(date +%s) - T_START)); }
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- cleanup ---
cleanup() {
    local rc=$?
    [ "$CLEANED" = 1 ] && return
    CLEANED=1
    trap - INT TERM
    note "cleanup"
    if [ -n "${COMPOSE_CMD:-}" ] && docker version >/dev/null 2>&1; then
        timeout 120 "${COMPOSE_CMD[@]}" down -v --remove-orphans -t 20 >"$TMP/down.log" 2>&1 \
            || { note "compose down failed:"; tail -n 5 "$TMP/down.log"; }
    fi
    if docker version >/dev/null 2>&1; then
        # anything left with our project label (containers, then networks)
        local ids
        ids=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")
        [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
        ids=$(docker ps -aq --filter "name=${PROJECT}")
        [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
        for p in "$PROJECT" "${PROJECT}first"; do
            ids=$(docker ps -aq --filter "label=com.docker.compose.project=$p")
            [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
            ids=$(docker network ls -q --filter "label=com.docker.compose.project=$p")
            [ -n "$ids" ] && docker network rm $ids >/dev/null 2>&1
        done
        # images: our tags, then every image id that did not exist before the run
        docker rmi "$CALLER_IMAGE" "$RESPONDER_IMAGE" "$CACHECHECK_IMAGE" "$XRAY_COLLECTOR_IMAGE" \
            >/dev/null 2>&1
        if [ -f "$IMAGES_BEFORE" ]; then
            local _round new
            for _round in 1 2 3; do
                new=$(docker images -aq --no-trunc | sort -u | comm -13 "$IMAGES_BEFORE" -)
                [ -z "$new" ] && break
                for id in $new; do docker rmi -f "$id" >/dev/null 2>&1; done
            done
        fi
        if [ "$BUILT_BASE" = 1 ] && [ "${E2E_KEEP_BASE:-0}" != 1 ]; then
            docker rmi debian:bookworm-slim >/dev/null 2>&1
        fi
        local left
        left=$(docker ps -aq --filter "name=${PROJECT}" | wc -l)
        left=$((left + $(docker network ls -q --filter "name=${PROJECT}" | wc -l)))
        if [ -f "$IMAGES_BEFORE" ]; then
            left=$((left + $(docker images -aq --no-trunc | sort -u | comm -13 "$IMAGES_BEFORE" - | wc -l)))
        fi
        if [ "$left" -eq 0 ]; then pass "cleanup removed every container, network and image of the run"
        else fail "cleanup left $left container(s)/network(s)/image(s)"; fi
    fi
    if [ -n "$STARTED_DOCKERD" ] && [ "${E2E_KEEP_DOCKERD:-0}" != 1 ]; then
        note "stopping dockerd $STARTED_DOCKERD (started by this run)"
        kill -TERM "$STARTED_DOCKERD" 2>/dev/null
        local i
        for i in $(seq 1 60); do kill -0 "$STARTED_DOCKERD" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$STARTED_DOCKERD" 2>/dev/null; then
            kill -KILL "$STARTED_DOCKERD" 2>/dev/null
            fail "dockerd $STARTED_DOCKERD did not stop within 30 s (killed)"
        fi
    fi
    rm -rf "$TMP"
    note "e2e took $(elapsed) s"
    say "$PASS passed, $FAIL failed"
    if [ "$FAIL" -gt 0 ] || [ "$PASS" -eq 0 ]; then exit 1; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'note "interrupted"; FAIL=$((FAIL + 1)); exit 130' INT TERM

abort() { fail "$*"; exit 1; }

# ----------------------------------------------------------------- helpers ---
# http METHOD URL [JSON-BODY] [extra curl args...]: sets STATUS, TIME_S; body in $TMP/body
http() {
    local method=$1 url=$2 data=${3:-}
    shift 3 2>/dev/null || shift $#
    local args=(-sS -o "$TMP/body" -D "$TMP/headers" -w '%{http_code} %{time_total}' --max-time 10 -X "$method")
    if [ -n "$data" ]; then args+=(-H 'Content-Type: application/json' --data-binary "$data"); fi
    local out
    out=$(curl "${args[@]}" "$@" "$url" 2>"$TMP/curl.err") || true
    STATUS=${out%% *}
    TIME_S=${out##* }
    [ -n "$STATUS" ] || STATUS=000
}

# json_eq FILE EXPECTED-JSON: same JSON value (and same key order)
json_eq() {
    "$PY" - "$1" "$2" <<'EOF'
import json, sys
from collections import OrderedDict
got = json.load(open(sys.argv[1]), object_pairs_hook=lambda p: list(p))
want = json.loads(sys.argv[2], object_pairs_hook=lambda p: list(p))
sys.exit(0 if got == want else 1)
EOF
}

# json_get FILE PYTHON-EXPR (with d = the document): prints the result
json_get() {
    "$PY" - "$1" "$2" <<'EOF' 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
print(json.dumps(eval(sys.argv[2])))
EOF
}

body() { head -c 400 "$TMP/body" 2>/dev/null; }

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

cid() { "${COMPOSE_CMD[@]}" ps -a -q "$1" 2>/dev/null | head -n 1; }

health() {
    local id
    id=$(cid "$1")
    [ -n "$id" ] || { echo none; return; }
    docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo none
}

# wait_healthy SERVICE SECONDS
wait_healthy() {
    local svc=$1 limit=$2 i st
    for i in $(seq 1 $((limit * 2))); do
        st=$(health "$svc")
        [ "$st" = healthy ] && return 0
        sleep 0.5
    done
    note "$svc is '$st' after ${limit}s"
    return 1
}

container_ip() {
    docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1" 2>/dev/null | awk '{print $1}'
}

# ------------------------------------------------- 1. the first commands -----
note "e2e run $RUN_ID, compose project $PROJECT"
. "$ROOT/tests/e2e/first_commands.sh"
export DOCKERD_PIDFILE="$TMP/dockerd.pid"
# A machine with no engine and no engine data is fresh: the README's first command gets it as a
# new user would, engine install included. Elsewhere the engine comes first, so that the images
# already there are known and kept at cleanup.
if ! timeout 20 docker version --format '{{.Server.Version}}' >/dev/null 2>&1 &&
    [ ! -d "${DOCKERD_DATA_ROOT:-/var/lib/docker}/image" ]; then
    note "fresh machine: no engine and no engine data"
    : >"$IMAGES_BEFORE"
    first_command_stack
    [ -s "$DOCKERD_PIDFILE" ] && STARTED_DOCKERD=$(cat "$DOCKERD_PIDFILE")
fi
if ! timeout 600 bash "$ROOT/scripts/install-docker.sh" >"$TMP/install.log" 2>&1; then
    tail -n 20 "$TMP/install.log"
    abort "scripts/install-docker.sh: no Docker engine"
fi
if [ -z "$STARTED_DOCKERD" ] && [ -s "$DOCKERD_PIDFILE" ]; then
    STARTED_DOCKERD=$(cat "$DOCKERD_PIDFILE")
    note "started dockerd $STARTED_DOCKERD"
fi
pass "Docker engine $(docker version --format '{{.Server.Version}}' 2>/dev/null) answers"
if [ ! -f "$IMAGES_BEFORE" ]; then
    docker images -aq --no-trunc | sort -u >"$IMAGES_BEFORE"
    docker image inspect debian:bookworm-slim >/dev/null 2>&1 || BUILT_BASE=1
    first_command_stack
fi
[ "${E2E_KEEP_BASE:-0}" = 1 ] && docker image inspect -f '{{.Id}}' debian:bookworm-slim >>"$IMAGES_BEFORE" 2>/dev/null
sort -u -o "$IMAGES_BEFORE" "$IMAGES_BEFORE"
make_run_in_container

if [ -n "${E2E_COMPOSE:-}" ]; then
    read -r -a COMPOSE_BASE <<<"$E2E_COMPOSE"
elif docker compose version >/dev/null 2>&1; then
    COMPOSE_BASE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE_BASE=(docker-compose)
else
    abort "no docker compose / docker-compose"
fi
COMPOSE_CMD=("${COMPOSE_BASE[@]}" -p "$PROJECT" -f "$ROOT/compose.yaml")
note "compose: ${COMPOSE_BASE[*]} ($("${COMPOSE_BASE[@]}" version --short 2>/dev/null || "${COMPOSE_BASE[@]}" version 2>/dev/null | head -n 1))"

# The compose implementation's own reading of both files (tests/compose checks the schema).
for files in "compose.yaml" "compose.yaml compose.mtls.yaml" "compose.yaml compose.versions.yaml" \
    "compose.yaml compose.tracing.yaml"; do
    args=()
    for f in $files; do args+=(-f "$ROOT/$f"); done
    if CERTS_DIR="$TMP" "${COMPOSE_BASE[@]}" "${args[@]}" config -q >"$TMP/config.log" 2>&1; then
        pass "${COMPOSE_BASE[*]} config accepts $files"
    else
        fail "${COMPOSE_BASE[*]} config rejects $files: $(head -c 300 "$TMP/config.log")"
    fi
done

# ------------------------------------------------------------ 2. images -----
build_image() { # DOCKERFILE TAG LOG [CONTEXT]
    timeout 900 docker build --network "$BUILD_NETWORK" --label "ecs-demo-e2e=$RUN_ID" \
        -f "${4:-$ROOT}/$1" -t "$2" "${4:-$ROOT}" >"$3" 2>&1
}
for svc in responder caller; do
    img=$RESPONDER_IMAGE
    [ "$svc" = caller ] && img=$CALLER_IMAGE
    t0=$(date +%s)
    if build_image "Dockerfile.$svc" "$img" "$TMP/build-$svc.log"; then
        pass "docker build Dockerfile.$svc ($(($(date +%s) - t0)) s)"
    else
        tail -n 30 "$TMP/build-$svc.log"
        abort "docker build Dockerfile.$svc failed"
    fi
done

for svc in responder caller; do
    img=$RESPONDER_IMAGE
    [ "$svc" = caller ] && img=$CALLER_IMAGE
    size=$(docker image inspect -f '{{.Size}}' "$img")
    note "image size $svc: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1e6 }') MB)"
    user=$(docker image inspect -f '{{.Config.User}}' "$img")
    hc=$(docker image inspect -f '{{if .Config.Healthcheck}}{{json .Config.Healthcheck.Test}}{{end}}' "$img")
    sig=$(docker image inspect -f '{{.Config.StopSignal}}' "$img")
    ports=$(docker image inspect -f '{{json .Config.ExposedPorts}}' "$img")
    if [ "$user" = "10001:10001" ] || [ "$user" = 10001 ]; then pass "$svc image runs as uid 10001"
    else fail "$svc image user is '$user'"; fi
    if [ "$hc" = "[\"CMD\",\"/usr/local/bin/$svc\",\"--healthcheck\"]" ]; then pass "$svc image HEALTHCHECK uses --healthcheck"
    else fail "$svc image healthcheck is '$hc'"; fi
    if [ "$sig" = SIGTERM ] && [ "$ports" = '{"5000/tcp":{}}' ]; then pass "$svc image STOPSIGNAL SIGTERM, EXPOSE 5000"
    else fail "$svc image stop signal '$sig', exposed '$ports'"; fi
    probe='set -e
        id -u
        if command -v gcc || command -v cc || command -v make; then echo "compiler present"; exit 3; fi
        if [ -n "$(find /var/lib/apt/lists -type f 2>/dev/null)" ]; then echo "apt lists present"; exit 4; fi
        if [ -e /usr/include/microhttpd.h ] || [ -e /usr/include/jansson.h ]; then echo "headers present"; exit 5; fi
        hc=0; /usr/local/bin/'"$svc"' --healthcheck >/dev/null 2>&1 || hc=$?
        echo "healthcheck-without-server=$hc"'
    out=$(timeout 60 docker run --rm --name "${PROJECT}_probe_$svc" --network none --entrypoint /bin/sh "$img" -c "$probe" 2>&1)
    rc=$?
    if [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -qx 10001 && printf '%s\n' "$out" | grep -qx 'healthcheck-without-server=1'; then
        pass "$svc image: no compiler, no apt lists, no headers; --healthcheck exits 1 with no server"
    else
        fail "$svc image probe (rc $rc): $(printf '%s' "$out" | tr '\n' ' ' | head -c 300)"
    fi
    if [ "$svc" = caller ]; then
        libs=$(timeout 60 docker run --rm --name "${PROJECT}_ldd" --network none --entrypoint /bin/sh "$img" \
            -c 'ldd /usr/local/bin/caller' 2>&1)
    else
        libs=$(timeout 60 docker run --rm --name "${PROJECT}_ldd" --network none --entrypoint /bin/sh "$img" \
            -c 'ldd /usr/local/bin/responder' 2>&1)
    fi
    if printf '%s' "$libs" | grep -q 'not found'; then fail "$svc binary misses libraries: $(printf '%s' "$libs" | grep 'not found' | tr '\n' ' ')"
    else pass "$svc binary finds all its shared libraries"; fi
done

# One-line source change: the apt layers of both stages come from the cache.
mkdir -p "$TMP/ctx"
cp -a "$ROOT/Makefile" "$ROOT/common" "$ROOT/caller" "$ROOT/Dockerfile.caller" "$ROOT/.dockerignore" "$TMP/ctx/"
src=$(ls "$TMP/ctx/caller/"*.c 2>/dev/null | head -n 1)
if [ -n "$src" ]; then
    printf '/* e2e one-line change %s */\n' "$RUN_ID" >>"$src"
    t0=$(date +%s)
    if BUILDKIT_PROGRESS=plain build_image Dockerfile.caller "$CACHECHECK_IMAGE" "$TMP/build-cache.log" "$TMP/ctx"; then
        cached=$(awk '
            /^Step [0-9]+\/[0-9]+ : RUN apt-get update/ { want = 1; next }
            want && /Using cache/ { n++; want = 0; next }
            /^Step / { want = 0 }
            /^#[0-9]+ \[.*\] RUN apt-get update/ { split($1, a, " "); id[a[1]] = 1; next }
            /^#[0-9]+ CACHED/ { if ($1 in id) n++ }
            END { print n + 0 }' "$TMP/build-cache.log")
        recompiled=$(grep -cE 'make bin/caller' "$TMP/build-cache.log")
        if [ "$cached" -ge 2 ]; then
            pass "rebuild after a one-line source change reuses both apt layers ($(($(date +%s) - t0)) s)"
        else
            fail "rebuild after a one-line change: $cached of 2 apt layers cached"
            grep -nE 'Step|CACHED|Using cache' "$TMP/build-cache.log" | head -n 20
        fi
        [ "$recompiled" -ge 1 ] || note "(the make step did not show in the build log)"
    else
        tail -n 20 "$TMP/build-cache.log"
        fail "rebuild after a one-line source change failed"
    fi
    docker rmi "$CACHECHECK_IMAGE" >/dev/null 2>&1
else
    fail "no caller/*.c to change for the cache check"
fi

# compose's own build section works (everything from the cache by now)
if timeout 900 "${COMPOSE_CMD[@]}" build >"$TMP/compose-build.log" 2>&1; then
    pass "compose build"
else
    tail -n 20 "$TMP/compose-build.log"
    fail "compose build"
fi

# ------------------------------------------------------------- 3. stack -----
CALLER_PORT=$(free_port)
RESPONDER_PORT=$(free_port)
for _ in 1 2 3 4 5; do [ "$RESPONDER_PORT" != "$CALLER_PORT" ] && break; RESPONDER_PORT=$(free_port); done
export CALLER_PORT RESPONDER_PORT
C="http://127.0.0.1:$CALLER_PORT"
R="http://127.0.0.1:$RESPONDER_PORT"
note "caller on $C, responder on $R"

t0=$(date +%s)
if timeout 180 "${COMPOSE_CMD[@]}" up -d --no-build >"$TMP/up.log" 2>&1; then
    pass "compose up -d (caller started after the responder was healthy)"
else
    tail -n 20 "$TMP/up.log"
    fail "compose up -d"
fi
if wait_healthy responder 60 && wait_healthy caller 60; then
    pass "both services healthy ($(($(date +%s) - t0)) s after up)"
else
    "${COMPOSE_CMD[@]}" logs --tail 30 2>&1 | tail -n 60
    abort "services not healthy"
fi
RID=$(cid responder)
CID=$(cid caller)
ro=$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.RestartPolicy.Name}} {{.Config.StopTimeout}}' "$CID" "$RID" | tr '\n' ' ')
note "read_only/restart/stop timeout: $ro"
if [ "$(printf '%s' "$ro" | grep -o 'true unless-stopped 15' | wc -l)" -eq 2 ]; then
    pass "containers: read-only root, restart unless-stopped, 15 s stop grace"
else
    fail "container settings: $ro"
fi
started_caller=$(docker inspect -f '{{.State.StartedAt}}' "$CID")
healthy_responder_log=$(docker inspect -f '{{range .State.Health.Log}}{{.End}} {{.ExitCode}}|{{end}}' "$RID")
note "caller started at $started_caller; responder health log: ${healthy_responder_log:0:120}"

# ----------------------------------------------------- 4. original flow -----
http POST "$C/data" '{"key": "value"}'
if [ "$STATUS" = 201 ] && json_eq "$TMP/body" '{"message": "Data stored successfully in Service A", "stored_data": {"key": "value"}}'; then
    pass "POST caller /data -> 201 Service A"
else fail "POST caller /data -> $STATUS $(body)"; fi

http POST "$R/data" '{"key": "value"}'
if [ "$STATUS" = 201 ] && json_eq "$TMP/body" '{"message": "Data stored successfully in Service B", "stored_data": {"key": "value"}}'; then
    pass "POST responder /data -> 201 Service B"
else fail "POST responder /data -> $STATUS $(body)"; fi

http GET "$R/data"
if [ "$STATUS" = 200 ] && json_eq "$TMP/body" '{"stored_data": [{"key": "value"}]}'; then
    pass "GET responder /data -> 200 stored_data"
else fail "GET responder /data -> $STATUS $(body)"; fi

http GET "$C/" "" -H "X-Request-Id: e2e-fwd-$RUN_ID"
if [ "$STATUS" = 200 ] && json_eq "$TMP/body" '{"caller_service_data": [{"key": "value"}], "responder_service_data": [{"key": "value"}]}'; then
    pass "GET caller / -> 200 with both services' data"
else fail "GET caller / -> $STATUS $(body)"; fi
if grep -qi "^x-request-id: e2e-fwd-$RUN_ID" "$TMP/headers"; then pass "caller echoes X-Request-Id"
else fail "caller X-Request-Id header: $(grep -i '^x-request-id' "$TMP/headers" | tr -d '\r')"; fi

for u in "$C/health" "$R/health"; do
    http GET "$u"
    if [ "$STATUS" = 200 ] && json_eq "$TMP/body" '{"status": "ok"}'; then pass "GET $u -> 200 ok"
    else fail "GET $u -> $STATUS $(body)"; fi
done

# request id forwarded over the compose network, JSON access logs on stdout
ok=0
for i in $(seq 1 20); do
    if docker logs "$RID" 2>/dev/null | grep -F "\"e2e-fwd-$RUN_ID\"" | grep -q '"service":"responder"'; then ok=1; break; fi
    sleep 0.25
done
if [ $ok = 1 ]; then pass "responder logged the forwarded X-Request-Id (JSON line on stdout)"
else
    fail "responder log has no line with request_id e2e-fwd-$RUN_ID"
    docker logs --tail 5 "$RID" 2>&1 | sed 's/^/#   /'
fi
if docker logs "$CID" 2>/dev/null | grep -F "\"e2e-fwd-$RUN_ID\"" | "$PY" -c '
import json, sys
line = sys.stdin.readline()
d = json.loads(line)
need = {"time", "level", "service", "method", "path", "status", "bytes", "duration_ms", "request_id"}
sys.exit(0 if need <= d.keys() and d["service"] == "caller" and d["status"] == 200 and d["path"] == "/" else 1)'
then pass "caller access log line has the documented fields"
else fail "caller access log line: $(docker logs "$CID" 2>/dev/null | grep -F "e2e-fwd-$RUN_ID" | head -n 1)"; fi

# ---------------------------------------------- 5. responder recreated ------
old_ip=$(container_ip "$RID")
NET=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$RID" | awk '{print $1}')
# Docker hands the first free address to a new container, so the recreated
# responder would get its predecessor's address back. To make it a new
# address (as a replaced ECS task gets), stop the old one and park a
# placeholder container of ours on its address before recreating.
timeout 60 "${COMPOSE_CMD[@]}" stop responder >"$TMP/recreate-stop.log" 2>&1 || note "stop before recreate failed"
timeout 60 docker run -d --rm --name "${PROJECT}_placeholder" --network "$NET" --read-only \
    --entrypoint sleep "$RESPONDER_IMAGE" 300 >/dev/null 2>&1 || note "placeholder did not start"
note "placeholder on $(container_ip "${PROJECT}_placeholder")"
http GET "$C/"
note "caller while the responder is replaced: $STATUS $(body | head -c 160)"
if timeout 120 "${COMPOSE_CMD[@]}" up -d --no-build --force-recreate responder >"$TMP/recreate.log" 2>&1; then
    pass "compose up -d --force-recreate responder"
else
    tail -n 10 "$TMP/recreate.log"
    fail "compose up -d --force-recreate responder"
fi
RID2=$(cid responder)
new_ip=$(container_ip "$RID2")
note "responder $old_ip (${RID:0:12}) -> $new_ip (${RID2:0:12})"
if [ "$RID2" != "$RID" ] && [ -n "$new_ip" ] && [ "$new_ip" != "$old_ip" ]; then pass "responder is a new container at a new address ($old_ip -> $new_ip)"
else fail "responder not recreated ($RID -> $RID2)"; fi
if [ "$(cid caller)" = "$CID" ]; then pass "caller container kept (no restart)"
else fail "caller was recreated too"; CID=$(cid caller); fi
if wait_healthy responder 60; then
    t_ready=$(now_ms)
    http POST "$R/data" "{\"after_recreate\": \"$RUN_ID\"}"
    [ "$STATUS" = 201 ] || note "POST to the new responder -> $STATUS $(body)"
    found=0
    for i in $(seq 1 50); do
        http GET "$C/"
        if [ "$STATUS" = 200 ] && [ "$(json_get "$TMP/body" "any(isinstance(x, dict) and x.get('after_recreate') == '$RUN_ID' for x in (d.get('responder_service_data') if isinstance(d.get('responder_service_data'), list) else []))")" = true ]; then
            found=1; break
        fi
        [ $(($(now_ms) - t_ready)) -gt 5000 ] && break
        sleep 0.1
    done
    took=$(($(now_ms) - t_ready))
    if [ $found = 1 ] && [ $took -le 5000 ]; then pass "caller reached the new responder ${took} ms after it was healthy"
    else fail "caller did not reach the new responder within 5 s (last: $STATUS $(body))"; fi
else
    fail "recreated responder not healthy"
fi
docker rm -f "${PROJECT}_placeholder" >/dev/null 2>&1

# ------------------------------------------------- 6. responder stopped -----
if timeout 60 "${COMPOSE_CMD[@]}" stop responder >"$TMP/stop-r.log" 2>&1; then pass "compose stop responder"
else fail "compose stop responder"; fi
for i in 1 2 3; do
    http GET "$C/"
    err=$(json_get "$TMP/body" "d['responder_service_data']['error']" | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read() or "null") or "")' 2>/dev/null)
    ms=$("$PY" -c "print(int(float('${TIME_S:-99}') * 1000))" 2>/dev/null || echo 99999)
    if [ "$STATUS" = 200 ] && [[ "$err" == "Failed to reach Service B"* ]] && [ "$ms" -le 2500 ]; then
        pass "responder down ($i): caller 200 in ${ms} ms: $err"
    else
        fail "responder down ($i): caller $STATUS in ${ms} ms: $(body)"
    fi
    sleep 0.7
done
http GET "$C/health"
if [ "$STATUS" = 200 ]; then pass "caller /health 200 while the responder is down"
else fail "caller /health $STATUS while the responder is down"; fi

if timeout 60 "${COMPOSE_CMD[@]}" start responder >"$TMP/start-r.log" 2>&1 && wait_healthy responder 60; then
    t_ready=$(now_ms)
    pass "responder started again"
    back=0
    for i in $(seq 1 60); do
        http GET "$C/"
        if [ "$STATUS" = 200 ] && [ "$(json_get "$TMP/body" "isinstance(d.get('responder_service_data'), list)")" = true ]; then back=1; break; fi
        [ $(($(now_ms) - t_ready)) -gt 5000 ] && break
        sleep 0.1
    done
    took=$(($(now_ms) - t_ready))
    if [ $back = 1 ]; then pass "caller recovered ${took} ms after the responder was healthy again"
    else fail "caller did not recover within 5 s: $STATUS $(body)"; fi
else
    tail -n 5 "$TMP/start-r.log"
    fail "responder did not come back"
fi

# ---------------------------------------- 7. SIGTERM during a burst ---------
http GET "$C/health"
[ "$STATUS" = 200 ] || note "caller health before the burst: $STATUS"
out=$(timeout 120 "$PY" "$ROOT/tests/e2e/drain_burst.py" --port "$CALLER_PORT" --container "$CID" \
    --threads 4 --slow 6 -- timeout 60 "${COMPOSE_CMD[@]}" stop caller 2>&1)
rc=$?
note "burst: $out"
if [ $rc -eq 0 ]; then
    pass "compose stop caller during a burst: no in-flight request failed"
else
    fail "compose stop caller during a burst: failures (see burst line)"
fi
exit_code=$(docker inspect -f '{{.State.ExitCode}} {{.State.OOMKilled}}' "$CID" 2>/dev/null)
if [ "${exit_code%% *}" = 0 ]; then pass "caller exited 0 after SIGTERM (drained, not killed)"
else
    fail "caller exit status after SIGTERM: $exit_code"
    docker logs --tail 10 "$CID" 2>&1 | sed 's/^/#   /'
fi

# responder: SIGTERM exits 0 too
if timeout 60 "${COMPOSE_CMD[@]}" stop responder >"$TMP/stop-r2.log" 2>&1; then
    code=$(docker inspect -f '{{.State.ExitCode}}' "$(cid responder)" 2>/dev/null)
    if [ "$code" = 0 ]; then pass "responder exited 0 after SIGTERM"
    else fail "responder exit status after SIGTERM: $code"; fi
else
    fail "compose stop responder (final)"
fi

# ------------------------------------------------- 8. two versions ---------
. "$ROOT/tests/e2e/versions.sh"
. "$ROOT/tests/e2e/tracing.sh"

# ------------------------------------------------------ 9. mutual TLS ------
. "$ROOT/tests/e2e/mtls.sh"

exit 0
