#!/usr/bin/env bash
# `make bench`: the daemons against nginx on this machine; prints a table and writes BENCH.md.
#
# Installs wrk, nginx, curl and gnuplot when missing (Debian/Ubuntu, as root or with sudo), builds the
# daemons with `make` (optimized, bin/), copies them into a temporary directory so a rebuild during
# the run cannot change them, and runs bench/bench.py. Takes about 17 minutes; bounded by
# BENCH_DEADLINE_S (default 1500 s). Only 127.0.0.1 traffic. Every process started is stopped by PID
# (bench.py does it; the EXIT trap here catches what a crash leaves behind).
# Exit status 0 when everything ran, whether or not the targets were met; 1 when something failed.
# Knobs: see bench/bench.py (BENCH_SECS, BENCH_REPS, BENCH_WARMUP, ...); BENCH_ONLY=caller10mtls runs
# only the mutual-TLS row and its plain baseline (certificates from scripts/gen-certs.sh in the
# temporary directory) and leaves BENCH.md unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
scripts/install-deps.sh wrk nginx curl python3 openssl gnuplot-nox
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
# The resident-memory floor of Debian's libcurl on its own, beside the caller's idle RSS.
read -ra curl_flags <<<"$(pkg-config --cflags --libs libcurl)"
cc -O2 -o "$tmp/bin/libcurl_floor" bench/libcurl_floor.c "${curl_flags[@]}"
# The same without libcurl, linked (and loaded at start) with the caller's other libraries.
read -ra lib_flags <<<"$(pkg-config --libs libmicrohttpd jansson gnutls)"
cc -O2 -DWITHOUT_LIBCURL -o "$tmp/bin/libs_floor" bench/libcurl_floor.c -Wl,--no-as-needed \
	"${lib_flags[@]}"
"$PY" bench/bench.py --bin "$tmp/bin" --tmp "$tmp" --out "$PWD/BENCH.md"
