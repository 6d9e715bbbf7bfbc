#!/usr/bin/env bash
# Soak test: mixed load on caller and responder while the responder is SIGKILLed and
# restarted every few seconds. Usage: tests/soak/run.sh [--seconds N] [other soak.py options]
# Binaries come from BIN_DIR (default <repo>/bin); the last output line is "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
export BIN_DIR="${BIN_DIR:-$PWD/bin}"
exec /usr/bin/python3 tests/soak/soak.py "$@"
