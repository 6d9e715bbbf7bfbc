# shellcheck shell=bash
# Tracing phase of the end-to-end test, sourced by tests/e2e/run.sh after the two-version phase
# (it uses run.sh's helpers, counters, images, ports and cleanup trap). docs/tracing.md describes
# the setup.
#
# Builds the collector's image (scripts/xray-collector.Dockerfile), runs the stack with
# compose.tracing.yaml, sends a few GET / and POST /data, and checks:
#   - all three services run and the daemons are healthy;
#   - every document the collector kept follows X-Ray's rules (scripts/xray_collector.py), and
#     each GET / is one trace: the caller's segment, its remote subsegment, and the responder's
#     segment whose parent_id is that subsegment's id;
#   - the collector's log shows the trace tree, and compose down removes the stack.
if [ -z "${PROJECT:-}" ] || ! declare -F pass >/dev/null; then
    echo "tests/e2e/tracing.sh is sourced by tests/e2e/run.sh (make e2e)" >&2
    exit 2
fi

note "tracing phase (compose.tracing.yaml)"
BASE_COMPOSE_CMD=("${COMPOSE_CMD[@]}")
COMPOSE_CMD=("${COMPOSE_BASE[@]}" -p "$PROJECT" -f "$ROOT/compose.yaml" -f "$ROOT/compose.tracing.yaml")
t0=$(date +%s)
if build_image scripts/xray-collector.Dockerfile "$XRAY_COLLECTOR_IMAGE" "$TMP/build-collector.log"; then
    pass "docker build scripts/xray-collector.Dockerfile ($(($(date +%s) - t0)) s)"
else
    tail -n 20 "$TMP/build-collector.log"
    fail "docker build scripts/xray-collector.Dockerfile"
fi
if timeout 180 "${COMPOSE_CMD[@]}" up -d --no-build >"$TMP/tracing-up.log" 2>&1; then
    pass "compose -f compose.yaml -f compose.tracing.yaml up -d"
else
    tail -n 20 "$TMP/tracing-up.log"
    fail "compose up with compose.tracing.yaml"
fi
if wait_healthy responder 60 && wait_healthy caller 60; then
    pass "tracing: responder and caller healthy"
    ok_calls=0
    curl -s -o /dev/null --max-time 5 -H 'Content-Type: application/json' -d '{"traced": 1}' "$R/data"
    for _ in 1 2 3; do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$C/")" = 200 ] && ok_calls=$((ok_calls + 1))
    done
    sleep 2
    docker exec "$(cid xray-collector)" cat /tmp/segments.jsonl >"$TMP/segments.jsonl" 2>"$TMP/segments.err"
    if "$PY" - "$TMP/segments.jsonl" "$ROOT/scripts" <<'PY' >"$TMP/tracing-check.out" 2>&1; then
import json, sys
sys.path.insert(0, sys.argv[2])
from xray_collector import check_document, check_link
docs = [json.loads(line) for line in open(sys.argv[1])]
for d in docs:
    check_document(d)
roots = [d for d in docs if d["name"] == "caller" and d["http"]["request"]["url"].endswith("/")
         and d.get("subsegments")]
responders = [d for d in docs if d["name"] == "responder"]
assert len(roots) == 3, [d["http"]["request"]["url"] for d in docs]
for seg in roots:
    sub, linked = check_link(seg, responders)
    assert sub["name"] == "responder" and len(linked) == 1, (sub, linked)
    assert sub["http"]["response"]["status"] == 200, sub
print(f"{len(docs)} documents, 3 traces of GET / linked caller -> responder")
PY
        pass "tracing: $(tail -n 1 "$TMP/tracing-check.out") ($ok_calls of 3 GET / answered 200)"
    else
        tail -n 15 "$TMP/tracing-check.out" "$TMP/segments.err"
        fail "tracing: the collector's documents"
    fi
    if "${COMPOSE_CMD[@]}" logs xray-collector 2>&1 | grep -q "responder (remote)  GET http://responder:5000/data 200"; then
        pass "tracing: the collector's log shows caller -> responder (remote) -> responder"
    else
        "${COMPOSE_CMD[@]}" logs --tail 20 xray-collector 2>&1 | tail -n 20
        fail "tracing: no trace tree in the collector's log"
    fi
else
    "${COMPOSE_CMD[@]}" logs --tail 30 2>&1 | tail -n 60
    fail "tracing: services not healthy"
fi
if timeout 120 "${COMPOSE_CMD[@]}" down -t 20 >"$TMP/tracing-down.log" 2>&1 &&
    [ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ]; then
    pass "compose down removed the tracing stack"
else
    tail -n 5 "$TMP/tracing-down.log"
    fail "compose down of the tracing stack"
fi
COMPOSE_CMD=("${BASE_COMPOSE_CMD[@]}")
