#!/bin/sh
# `make run`: the responder and the caller in the foreground, on CALLER_PORT (5000) and
# RESPONDER_PORT (5001); Ctrl-C stops both.
set -eu
bin=${1:-bin}
caller_port=${CALLER_PORT:-5000}
responder_port=${RESPONDER_PORT:-5001}
PORT=$responder_port "$bin/responder" &
responder=$!
PORT=$caller_port RESPONDER_URL=http://127.0.0.1:$responder_port "$bin/caller" &
caller=$!
trap 'kill -TERM $caller $responder 2>/dev/null || true' INT TERM
echo "caller on http://localhost:$caller_port, responder on http://localhost:$responder_port" \
	"(Ctrl-C stops both); try the README's curl steps" >&2
wait $caller || true
kill -TERM $responder 2>/dev/null || true
wait $responder || true
