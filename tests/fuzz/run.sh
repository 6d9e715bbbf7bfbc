#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz.mk -> build/fuzz/bin/), replays every input
# under tests/fuzz/regressions/<harness>/, then fuzzes each harness for SECONDS (default 60) with
# -max_total_time, from a scratch copy of tests/fuzz/corpus/<harness>/ (the committed corpus never
# grows here) and the dictionary tests/fuzz/json.dict.
#
#   tests/fuzz/run.sh [SECONDS]
#   FUZZ_JOBS=N      harnesses fuzzed at the same time (default: number of CPUs, at most 6)
#   FUZZ_ONLY=name   only this harness (e.g. fuzz_payload)
#
# Any crash, sanitizer report, leak, timeout (10 s per input) or broken property fails the run;
# the input is kept in build/fuzz/artifacts/<harness>/. Once understood, copy it to
# tests/fuzz/regressions/<harness>/ so every later run replays it first.
# The last line is "N passed, N failed" (one test per regression input and per fuzzing run).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

seconds=${1:-60}
case $seconds in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
fuzz_dir=tests/fuzz
out=build/fuzz
passed=0
failed=0

# --- dependencies: clang with its libFuzzer runtime, the libraries' headers -------------------
scripts/install-deps.sh clang make pkg-config libjansson-dev libmicrohttpd-dev \
	libcurl4-openssl-dev || exit 1
fuzzer_lib="$(clang -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a"
if [ ! -f "$fuzzer_lib" ]; then
	major=$(clang -dumpversion | cut -d. -f1)
	scripts/install-deps.sh "libclang-rt-$major-dev" || exit 1
fi

# --- build ------------------------------------------------------------------------------------
if ! make -s -f $fuzz_dir/fuzz.mk -j"$(nproc)" fuzz-build; then
	echo "FAIL build of the fuzz harnesses"
	echo "0 passed, 1 failed"
	exit 1
fi

harnesses=()
for src in "$fuzz_dir"/fuzz_*.c; do
	h=$(basename "$src" .c)
	[ -n "${FUZZ_ONLY:-}" ] && [ "$h" != "$FUZZ_ONLY" ] && continue
	harnesses+=("$h")
done

scratch=$(mktemp -d /tmp/fuzz-run.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

# --- regressions first: every input that ever failed must pass now -----------------------------
for h in "${harnesses[@]}"; do
	[ -d "$fuzz_dir/regressions/$h" ] || continue
	for input in "$fuzz_dir/regressions/$h"/*; do
		[ -f "$input" ] || continue
		if timeout -k 5 60 "$out/bin/$h" -timeout=10 "$input" >"$scratch/replay.log" 2>&1; then
			echo "PASS regression $h/$(basename "$input")"
			passed=$((passed + 1))
		else
			echo "FAIL regression $h/$(basename "$input")"
			grep -E "property failed|ERROR:|SUMMARY:|^  [^ #]" "$scratch/replay.log" | head -8 | sed 's/^/    /'
			failed=$((failed + 1))
		fi
	done
done

# --- fuzzing ----------------------------------------------------------------------------------
fuzz_one() { # harness -> writes $scratch/$h.rc and $scratch/$h.log
	local h=$1 work="$scratch/$1"
	mkdir -p "$work/corpus" "$work/artifacts"
	cp "$fuzz_dir/corpus/$h"/* "$work/corpus/" 2>/dev/null
	timeout -k 10 $((seconds + 120)) "$out/bin/$h" -max_total_time="$seconds" -timeout=10 \
		-rss_limit_mb=2048 -dict=$fuzz_dir/json.dict -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/" "$work/corpus" >"$scratch/$h.log" 2>&1
	echo $? >"$scratch/$h.rc"
}

report_one() {
	local h=$1 rc execs files
	rc=$(cat "$scratch/$h.rc")
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$h.log" | tail -1)
	files=$(find "$scratch/$h/corpus" -type f | wc -l)
	if [ "$rc" -eq 0 ]; then
		echo "PASS fuzz $h: ${seconds}s, ${execs:-?} execs, corpus $(find "$fuzz_dir/corpus/$h" -type f | wc -l) -> $files inputs"
		passed=$((passed + 1))
	else
		echo "FAIL fuzz $h (exit $rc) after ${execs:-?} execs"
		grep -E "property failed|ERROR:|SUMMARY:|^  [^ #]|Test unit written" "$scratch/$h.log" | head -12 | sed 's/^/    /'
		mkdir -p "$out/artifacts/$h"
		cp "$scratch/$h/artifacts"/* "$out/artifacts/$h/" 2>/dev/null
		cp "$scratch/$h.log" "$out/artifacts/$h/fuzz.log"
		echo "    inputs and log kept in $out/artifacts/$h/; replay with $out/bin/$h <input>,"
		echo "    then add the input to $fuzz_dir/regressions/$h/"
		failed=$((failed + 1))
	fi
}

jobs_max=${FUZZ_JOBS:-$(nproc)}
[ "$jobs_max" -gt 6 ] && jobs_max=6
[ "$jobs_max" -lt 1 ] && jobs_max=1
running=0
for h in "${harnesses[@]}"; do
	if [ "$running" -ge "$jobs_max" ]; then
		wait -n
		running=$((running - 1))
	fi
	fuzz_one "$h" &
	running=$((running + 1))
done
wait
for h in "${harnesses[@]}"; do
	report_one "$h"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
