#!/bin/sh
# `make run`: the responder on 5001 and the caller on 5000, in the foreground; Ctrl-C stops both.
set -eu
bin=${1:-bin}
PORT=5001 "$bin/responder" &
responder=$!
PORT=5000 RESPONDER_URL=http://127.0.0.1:5001 "$bin/caller" &
caller=$!
trap 'kill -TERM $caller $responder 2>/dev/null || true' INT TERM
echo "caller on http://localhost:5000, responder on http://localhost:5001 (Ctrl-C stops both)" >&2
wait $caller || true
kill -TERM $responder 2>/dev/null || true
wait $responder || true
