#!/usr/bin/env bash
# The demo's first command: brings the compose stack up on whatever this machine has, waits
# until both services are healthy and prints the curl steps to try.
#
#   scripts/demo.sh          (or `scripts/demo.sh up`)
#   scripts/demo.sh down     stops and removes the stack
#
# What it does, each step only when needed (a second run skips what is done):
#   1. Docker engine and compose: uses `docker compose` (v2) when it works, `docker-compose`
#      otherwise. When there is no engine or no compose and this is Debian or Ubuntu, installs
#      Debian's docker.io and docker-compose and starts the engine (scripts/install-docker.sh),
#      as root or through sudo; DEMO_INSTALL=0 forbids it.
#   2. The base image debian:bookworm-slim: pulled, or, when no registry answers, built from
#      Debian's mirror with debootstrap (scripts/build-base-image.sh).
#   3. The two images (compose build). When a build step cannot reach the apt mirror through
#      Docker's default bridge, it builds again with BUILD_NETWORK=host.
#   4. compose up -d, then waits for both health checks (DEMO_WAIT_S, 120 s).
#
# Environment: compose.yaml's own (CALLER_PORT 5000, RESPONDER_PORT 5001, PUBLISH_ADDR,
# CALLER_IMAGE, RESPONDER_IMAGE, BUILD_NETWORK), COMPOSE_PROJECT_NAME, DEMO_INSTALL,
# DEMO_WAIT_S. Each step's output goes to a log file, named when the step fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ACTION=${1:-up}
case $ACTION in
up) STEPS=4 ;;
down) STEPS=2 ;;
*) printf 'usage: scripts/demo.sh [up|down]\n' >&2 && exit 2 ;;
esac
CALLER_PORT=${CALLER_PORT:-5000}
RESPONDER_PORT=${RESPONDER_PORT:-5001}
WAIT_S=${DEMO_WAIT_S:-120}
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/ecs-demo.XXXXXX")
T_START=$(date +%s)
STEP=""
STEP_START=0
STEP_LOG=""
RETRY=""
DOCKER=(docker)
COMPOSE=()

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# say LINE...: one line each.
say() { printf '%s\n' "$@"; }
# limited SECONDS COMMAND...: timeout(1) where there is one (macOS has none).
limited() {
	if command -v timeout >/dev/null 2>&1; then timeout "$@"; else shift && "$@"; fi
}
elapsed() { echo $(($(date +%s) - $1)); }

# step N NAME LOG RETRY-COMMAND HINT: announces a step; its output goes to LOG.
step() {
	STEP="$1 $2"
	STEP_LOG="$LOGS/$3.log"
	RETRY=$4
	STEP_START=$(date +%s)
	say "[$1/$STEPS] $2${5:+ ($5)}"
}
step_done() { say "      done in $(elapsed "$STEP_START") s${1:+: $1}"; }

# Any failure names the step, shows the end of its log and the one command to retry it.
on_exit() {
	local rc=$?
	if [ "$rc" -ne 0 ] && [ -n "$STEP" ]; then
		say "" "Step $STEP failed (exit $rc) after $(elapsed "$STEP_START") s."
		if [ -s "$STEP_LOG" ]; then
			say "Last lines of $STEP_LOG:"
			tail -n 15 "$STEP_LOG" | sed 's/^/  | /'
		fi
		say "Retry this step with: $RETRY" "Then run scripts/demo.sh again; it skips what is done."
	elif [ "$rc" -eq 0 ]; then
		rm -rf "$LOGS"
	fi
}
trap on_exit EXIT

can_install() {
	[ "${DEMO_INSTALL:-1}" != 0 ] && command -v apt-get >/dev/null 2>&1 &&
			{ [ -z "$SUDO" ] || command -v sudo >/dev/null 2>&1; }
}

# Sets DOCKER to `docker`, or `sudo docker` when only root may use the engine's socket.
engine_answers() {
	DOCKER=(docker)
	limited 20 docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && return 0
	if [ -n "$SUDO" ] && command -v sudo >/dev/null 2>&1 && [ -S /var/run/docker.sock ] &&
		limited 60 sudo docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
		DOCKER=(sudo "--preserve-env=CALLER_PORT,RESPONDER_PORT,PUBLISH_ADDR,CALLER_IMAGE,RESPONDER_IMAGE,BUILD_NETWORK,COMPOSE_PROJECT_NAME" docker)
		return 0
	fi
	return 1
}

# Sets COMPOSE to the first compose that works with this engine.
find_compose() {
	if "${DOCKER[@]}" compose version >/dev/null 2>&1; then
		COMPOSE=("${DOCKER[@]}" compose)
	elif command -v docker-compose >/dev/null 2>&1; then
		COMPOSE=("${DOCKER[@]:0:${#DOCKER[@]}-1}" docker-compose)
	else
		return 1
	fi
}

# health SERVICE: the container's health status, or "missing".
health() {
	local id
	id=$("${COMPOSE[@]}" ps -q "$1" 2>/dev/null | head -n 1)
	[ -n "$id" ] || { echo missing; return; }
	"${DOCKER[@]}" inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null ||
		echo missing
}

# ------------------------------------------------------------------ 1. engine
step 1 "Docker engine and compose" engine "${SUDO:+sudo }scripts/install-docker.sh"
if ! engine_answers || ! find_compose; then
	if ! can_install; then
		say "No Docker engine with compose answers here, and this script may not install one" \
			"(it installs Debian's docker.io on Debian or Ubuntu, as root or with sudo, unless DEMO_INSTALL=0)." \
			"Install Docker Desktop or Docker Engine with the Compose plugin, or run the daemons without" \
			"Docker: make run"
		STEP=""
		exit 1
	fi
	say "      installing and starting Debian's docker.io and docker-compose (about 1-2 minutes)"
	$SUDO env DOCKERD_PIDFILE="${DOCKERD_PIDFILE:-/tmp/ecs-demo-dockerd.pid}" \
		bash scripts/install-docker.sh >"$STEP_LOG" 2>&1
	engine_answers
	find_compose
fi
step_done "engine $("${DOCKER[@]}" version --format '{{.Server.Version}}'), compose: ${COMPOSE[*]}"

if [ "$ACTION" = down ]; then
	step 2 "Stopping and removing the stack" down "${COMPOSE[*]} down"
	"${COMPOSE[@]}" down --remove-orphans >"$STEP_LOG" 2>&1
	step_done
	STEP=""
	exit 0
fi

# -------------------------------------------------------------- 2. base image
step 2 "Base image debian:bookworm-slim" base "${SUDO:+sudo }scripts/build-base-image.sh"
if "${DOCKER[@]}" image inspect debian:bookworm-slim >/dev/null 2>&1; then
	step_done "present"
elif limited 300 "${DOCKER[@]}" pull debian:bookworm-slim >"$STEP_LOG" 2>&1; then
	step_done "pulled"
else
	say "      no registry answers; building it from Debian's mirror with debootstrap (about 1-3 minutes)"
	$SUDO bash scripts/build-base-image.sh >>"$STEP_LOG" 2>&1
	step_done "built locally"
fi

# ------------------------------------------------------------------ 3. images
step 3 "Building the caller and responder images" build "${COMPOSE[*]} build" \
	"about 2-4 minutes the first time, seconds after"
if ! "${COMPOSE[@]}" build >"$STEP_LOG" 2>&1; then
	if [ -n "${BUILD_NETWORK:-}" ] || ! grep -qE "Temporary failure resolving|Could not resolve|Could not connect|Unable to connect|Network is unreachable|Failed to fetch" "$STEP_LOG"; then
		false
	fi
	say "      the build could not reach the apt mirror through Docker's bridge; building with BUILD_NETWORK=host"
	export BUILD_NETWORK=host
	RETRY="BUILD_NETWORK=host ${COMPOSE[*]} build"
	"${COMPOSE[@]}" build >"$STEP_LOG" 2>&1
fi
step_done

# ------------------------------------------------------------------- 4. start
step 4 "Starting the stack and waiting until both services are healthy" up \
	"${COMPOSE[*]} up -d" "up to ${WAIT_S} s"
export CALLER_PORT RESPONDER_PORT
if ! "${COMPOSE[@]}" up -d --no-build >"$STEP_LOG" 2>&1; then
	if grep -qiE "port is already allocated|address already in use" "$STEP_LOG"; then
		say "      port $CALLER_PORT or $RESPONDER_PORT is taken on this machine; choose others, e.g." \
			"      CALLER_PORT=5080 RESPONDER_PORT=5081 scripts/demo.sh"
	fi
	false
fi
deadline=$(($(date +%s) + WAIT_S))
while :; do
	responder=$(health responder)
	caller=$(health caller)
	[ "$responder" = healthy ] && [ "$caller" = healthy ] && break
	if [ "$(date +%s)" -ge "$deadline" ]; then
		"${COMPOSE[@]}" logs --tail 20 >>"$STEP_LOG" 2>&1 || true
		say "      responder is $responder, caller is $caller after ${WAIT_S} s"
		false
	fi
	sleep 1
done
step_done "responder and caller healthy"
STEP=""

C="http://localhost:$CALLER_PORT"
R="http://localhost:$RESPONDER_PORT"
cat <<EOF

The demo is up in $(elapsed "$T_START") s: caller (Service A) on $C, responder (Service B) on $R.
Try it:

  curl -X POST -H "Content-Type: application/json" -d '{"key": "value"}' $C/data
  curl -X POST -H "Content-Type: application/json" -d '{"key": "value"}' $R/data
  curl $R/data
  curl $C/

Logs:  ${COMPOSE[*]} logs -f caller responder
Stop:  scripts/demo.sh down
EOF
