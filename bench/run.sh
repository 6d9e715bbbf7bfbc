#!/usr/bin/env bash
# `make bench`: the daemons against nginx on this machine; prints a table and writes BENCH.md.
#
# Installs wrk, nginx and curl when missing (Debian/Ubuntu, as root or with sudo), builds the
# daemons with `make` (optimized, bin/), copies them into a temporary directory so a rebuild during
# the run cannot change them, and runs bench/bench.py. Takes about 7 minutes; bounded by
# BENCH_DEADLINE_S (default 840 s). Only 127.0.0.1 traffic. Every process started is stopped by PID
# (bench.py does it; the EXIT trap here catches what a crash leaves behind).
# Exit status 0 when everything ran, whether or not the targets were met; 1 when something failed.
# Knobs: see bench/bench.py (BENCH_SECS, BENCH_REPS, BENCH_WARMUP, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -x "$PY" ] || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -eq 0 ]; then
		sudo=""
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo="sudo"
	else
		echo "bench: missing ${missing[*]}; install with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
	echo "bench: installing ${missing[*]}" >&2
	$sudo apt-get update -q
	# Keep the package from starting the system nginx on port 80 (this benchmark runs its own):
	# a policy-rc.d that refuses service starts, only for this install and only if none exists.
	policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
		$sudo chmod 755 "$policy"
	fi
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		{ [ -z "$policy" ] || $sudo rm -f "$policy"; exit 1; }
	[ -z "$policy" ] || $sudo rm -f "$policy"
fi
scripts/install-deps.sh
PATH=$PATH:/usr/sbin

make

tmp=$(mktemp -d /tmp/bench.XXXXXX)
cleanup() {
	local pid
	if [ -s "$tmp/pids" ]; then
		while read -r pid; do
			kill -TERM "$pid" 2>/dev/null || true
		done <"$tmp/pids"
		sleep 1
		while read -r pid; do
			kill -KILL "$pid" 2>/dev/null || true
		done <"$tmp/pids"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir "$tmp/bin"
cp bin/caller bin/responder "$tmp/bin/"
"$PY" bench/bench.py --bin "$tmp/bin" --tmp "$tmp" --out "$PWD/BENCH.md"
