# shellcheck shell=bash
# The README's two run commands, as a new user runs them; sourced by tests/e2e/run.sh (it uses
# run.sh's helpers, counters and cleanup trap).
#
# first_command_stack: `scripts/demo.sh`, the README's first command, on this machine as it is.
#   On a fresh machine it installs and starts the engine, builds the base image, builds the
#   images and brings the stack up healthy; then the README's curl steps run against it, word
#   for word (tests/e2e/readme_steps.py), and `scripts/demo.sh down` removes it.
# make_run_in_container: `make run` in a fresh debian:bookworm-slim container holding the
#   repository and nothing but make; the README's curl steps against it from the host.
if [ -z "${PROJECT:-}" ] || ! declare -F pass >/dev/null; then
    echo "tests/e2e/first_commands.sh is sourced by tests/e2e/run.sh (make e2e)" >&2
    exit 2
fi

FIRST_PROJECT="${PROJECT}first"

# readme_steps_against WHAT CALLER_PORT RESPONDER_PORT: the README's curl steps, word for word.
readme_steps_against() {
    local out
    if out=$("$PY" "$ROOT/tests/e2e/readme_steps.py" "$ROOT/README.md" "$2" "$3" 2>&1); then
        pass "the README's curl steps against $1: $(printf '%s' "$out" | tail -n 1)"
    else
        fail "the README's curl steps against $1"
    fi
    printf '%s\n' "$out" | sed 's/^/#   /'
}

first_command_stack() {
    local cport rport t0 rc
    cport=$(free_port)
    rport=$(free_port)
    while [ "$rport" = "$cport" ]; do rport=$(free_port); done
    note "the README's first command: scripts/demo.sh (caller on $cport, responder on $rport)"
    t0=$(date +%s)
    # As a new user: compose.yaml's default build network, unless the run was told otherwise.
    local network=(-u BUILD_NETWORK)
    [ -z "${E2E_BUILD_NETWORK:-}" ] || network=("BUILD_NETWORK=$E2E_BUILD_NETWORK")
    env "${network[@]}" COMPOSE_PROJECT_NAME="$FIRST_PROJECT" CALLER_PORT="$cport" RESPONDER_PORT="$rport" \
        timeout 1800 bash "$ROOT/scripts/demo.sh" 2>&1 | tee "$TMP/demo.log" | sed -u 's/^/#   /'
    rc=${PIPESTATUS[0]}
    FIRST_COMMAND_S=$(($(date +%s) - t0))
    if [ "$rc" -ne 0 ]; then abort "scripts/demo.sh exited $rc after $FIRST_COMMAND_S s"; fi
    pass "scripts/demo.sh brought the stack up healthy in $FIRST_COMMAND_S s"
    # shellcheck disable=SC2034 # run.sh's: remove the base image at cleanup when this run built it
    grep -q 'done in [0-9]* s: built locally' "$TMP/demo.log" && BUILT_BASE=1
    if grep -qF "curl http://localhost:$cport/" "$TMP/demo.log" && grep -qF "curl http://localhost:$rport/data" "$TMP/demo.log"; then
        pass "scripts/demo.sh printed the curl steps with its ports"
    else
        fail "scripts/demo.sh did not print the curl steps for ports $cport/$rport"
    fi
    readme_steps_against "scripts/demo.sh's stack" "$cport" "$rport"
    if COMPOSE_PROJECT_NAME="$FIRST_PROJECT" timeout 120 bash "$ROOT/scripts/demo.sh" down >"$TMP/demo-down.log" 2>&1 &&
        [ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$FIRST_PROJECT")" ]; then
        pass "scripts/demo.sh down removed the stack"
    else
        sed 's/^/#   /' "$TMP/demo-down.log"
        fail "scripts/demo.sh down left containers"
    fi
}

make_run_in_container() {
    local cport rport name t0 up=0
    cport=$(free_port)
    rport=$(free_port)
    while [ "$rport" = "$cport" ]; do rport=$(free_port); done
    name="${PROJECT}_makerun"
    note "make run in a fresh debian:bookworm-slim container with only make (caller on $cport)"
    t0=$(date +%s)
    docker create --name "$name" --network host --label "ecs-demo-e2e=$RUN_ID" \
        -e CALLER_PORT="$cport" -e RESPONDER_PORT="$rport" -w /src debian:bookworm-slim \
        sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends make && exec make run' \
        >/dev/null 2>"$TMP/create.err" || { fail "could not create the container: $(head -c 300 "$TMP/create.err")"; return; }
    # The repository as a clone holds it (git's files, nothing built), as /src. --network host:
    # the container reaches Debian's mirror, and its daemons are on this machine's loopback.
    if ! git -C "$ROOT" ls-files -z | tar -C "$ROOT" --null -T - --transform 's,^,src/,' -cf - |
        docker cp - "$name:/" 2>"$TMP/cp.err"; then
        fail "could not copy the repository into the container: $(head -c 300 "$TMP/cp.err")"
        docker rm -f "$name" >/dev/null 2>&1
        return
    fi
    docker start "$name" >/dev/null 2>&1 || { fail "could not start the container"; return; }
    for _ in $(seq 1 1200); do
        if curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$cport/health" 2>/dev/null &&
            curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$rport/health" 2>/dev/null; then
            up=1
            break
        fi
        [ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" = true ] || break
        sleep 0.5
    done
    MAKE_RUN_S=$(($(date +%s) - t0))
    if [ $up = 1 ]; then
        pass "make run in a fresh container installed, built and served in $MAKE_RUN_S s"
        readme_steps_against "make run" "$cport" "$rport"
    else
        fail "make run in a fresh container did not serve within $MAKE_RUN_S s"
        docker logs --tail 25 "$name" 2>&1 | sed 's/^/#   /'
    fi
    docker rm -f "$name" >/dev/null 2>&1
}
