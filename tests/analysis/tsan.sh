#!/usr/bin/env bash
# ThreadSanitizer run: builds both daemons with clang -fsanitize=thread into build/tsan/bin/ (the
# Makefile's flags: -std=c11 -D_GNU_SOURCE -pthread and pkg-config's), then runs the
# whole black-box suite (tests/blackbox) against them
# with TSAN_OPTIONS halt_on_error=1 exitcode=66 and tests/analysis/tsan.supp (races inside
# libmicrohttpd / libcurl only, never project code). Reports are written to build/tsan/reports/;
# any report, or any failing test, fails the run. The last line is "N passed, N failed".
#   tests/analysis/tsan.sh
#   TSAN_TESTS="tests/blackbox/..."   only some black-box test files
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
repo=$PWD
out=build/tsan
python=/usr/bin/python3
passed=0
failed=0

scripts/install-deps.sh clang make pkg-config libjansson-dev libmicrohttpd-dev \
	libcurl4-openssl-dev python3 python3-pytest curl || exit 1

# --- build ------------------------------------------------------------------------------------
read -r -a cflags <<<"-g -O1 -fno-omit-frame-pointer -fsanitize=thread -std=c11 -D_GNU_SOURCE \
-Wall -Wextra -pthread $(pkg-config --cflags libmicrohttpd jansson gnutls libcurl)"
read -r -a libs_common <<<"$(pkg-config --libs libmicrohttpd jansson gnutls) -pthread"
read -r -a libs_caller <<<"$(pkg-config --libs libmicrohttpd jansson gnutls libcurl) -pthread"
rm -rf "${out:?}/obj" "${out:?}/bin" "${out:?}/reports"
mkdir -p "$out/bin" "$out/reports"
build() {
	local src objs=() status=0
	for src in common/*.c caller/*.c responder/*.c; do
		mkdir -p "$out/obj/$(dirname "$src")"
		clang "${cflags[@]}" -c -o "$out/obj/${src%.c}.o" "$src" &
		# two compilers at a time
		[ "$(jobs -rp | wc -l)" -ge "$(nproc)" ] && { wait -n || status=1; }
	done
	while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || status=1; done
	[ $status -eq 0 ] || return 1
	for src in common/*.c; do objs+=("$out/obj/${src%.c}.o"); done
	clang -fsanitize=thread -o "$out/bin/responder" "$out"/obj/responder/*.o "${objs[@]}" \
		"${libs_common[@]}" || return 1
	clang -fsanitize=thread -o "$out/bin/caller" "$out"/obj/caller/*.o "${objs[@]}" \
		"${libs_caller[@]}" || return 1
}
if build; then
	echo "PASS build ($out/bin/caller, $out/bin/responder)"
	passed=$((passed + 1))
else
	echo "FAIL build"
	echo "$passed passed, $((failed + 1)) failed"
	exit 1
fi

# --- black-box tests under TSan ---------------------------------------------------------------
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 \
suppressions=$repo/tests/analysis/tsan.supp log_path=$repo/$out/reports/tsan"
# TSan needs the lower address space it maps its shadow around; disabling ASLR for the run
# keeps it working on kernels with a large vm.mmap_rnd_bits.
norandom=()
if setarch "$(uname -m)" -R true 2>/dev/null; then norandom=(setarch "$(uname -m)" -R); fi
read -r -a tests <<<"${TSAN_TESTS:-tests/blackbox}"
BIN_DIR="$repo/$out/bin" timeout -k 10 900 "${norandom[@]}" "$python" -m pytest -q \
	-p no:cacheprovider "${tests[@]}" >"$out/pytest.log" 2>&1
rc=$?
summary=$(grep -E '^[0-9]+ (passed|failed)|(passed|failed|error).* in [0-9.]+s' "$out/pytest.log" | tail -1)
if [ $rc -eq 0 ]; then
	echo "PASS black-box tests under TSan: $summary"
	passed=$((passed + 1))
else
	echo "FAIL black-box tests under TSan (pytest exit $rc): $summary"
	grep -E '^(FAILED|ERROR) ' "$out/pytest.log" | sed 's/^/    /'
	failed=$((failed + 1))
fi

reports=("$out"/reports/tsan.*)
if [ -e "${reports[0]}" ]; then
	echo "FAIL ThreadSanitizer reports: ${#reports[@]} (in $out/reports/)"
	for r in "${reports[@]}"; do
		echo "    --- $r"
		grep -E 'WARNING: ThreadSanitizer|^  [A-Z]|^    #[0-3] |SUMMARY' "$r" | head -30 | sed 's/^/    /'
	done
	failed=$((failed + 1))
else
	echo "PASS no ThreadSanitizer report"
	passed=$((passed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
