#!/usr/bin/env bash
# Static analysis of the daemon sources (common/, caller/, responder/):
#   cppcheck   --enable=warning,style,performance,portability, suppressions in
#              tests/analysis/cppcheck.supp (false positives and pure style only, each explained);
#   clang-tidy bugprone-* and clang-analyzer-*, configured by the repository's .clang-tidy;
#              clear false positives listed in tests/analysis/clang-tidy.supp are ignored;
#   include graph: no module uses itself through others, and only the HTTP server's own files
#              include microhttpd.h (tests/analysis/include_graph.py).
# One test per tool and source file (plus one per header a finding points into); any finding fails.
# The last line is "N passed, N failed".
#   tests/analysis/lint.sh
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

scripts/install-deps.sh cppcheck clang-tidy pkg-config libjansson-dev \
	libmicrohttpd-dev libcurl4-openssl-dev || exit 1

dirs=(common caller responder)
sources=()
for d in "${dirs[@]}"; do
	for f in "$d"/*.c; do sources+=("$f"); done
done
read -r -a cflags <<<"-std=c11 -D_GNU_SOURCE -pthread $(pkg-config --cflags libmicrohttpd jansson gnutls libcurl)"
tmp=$(mktemp -d /tmp/lint.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# Prints PASS/FAIL per file for one tool, from "<file>:<line>:<col>: ..." lines in $2.
tally() {
	local tool=$1 findings=$2 f files
	files=$( (printf '%s\n' "${sources[@]}"; cut -d: -f1 "$findings") | sort -u)
	for f in $files; do
		if grep -q "^$f:" "$findings"; then
			echo "FAIL $tool $f"
			grep "^$f:" "$findings" | sed 's/^/    /'
			failed=$((failed + 1))
		else
			echo "PASS $tool $f"
			passed=$((passed + 1))
		fi
	done
}

# --- cppcheck ---------------------------------------------------------------------------------
echo "== cppcheck $(cppcheck --version | cut -d' ' -f2)"
if ! cppcheck --enable=warning,style,performance,portability --std=c11 -D_GNU_SOURCE \
	--library=posix,gnu --suppressions-list=tests/analysis/cppcheck.supp -j"$(nproc)" -q \
	--template='{file}:{line}:{column}: {severity}/{id}: {message}' "${dirs[@]}" \
	2>"$tmp/cppcheck.out"; then
	echo "cppcheck:0:0: error/cppcheck: cppcheck itself failed" >>"$tmp/cppcheck.out"
fi
sed -i 's#^\./##' "$tmp/cppcheck.out"
tally cppcheck "$tmp/cppcheck.out"

# --- clang-tidy -------------------------------------------------------------------------------
echo "== $(clang-tidy --version | grep -o 'LLVM version [0-9.]*' | sed 's/LLVM/clang-tidy/')"
export tmp
# shellcheck disable=SC2016 # the inner sh expands $1, $@ and $tmp
printf '%s\n' "${sources[@]}" | xargs -P "$(nproc)" -I{} sh -c \
	'f=$1; shift; clang-tidy --quiet "$f" -- "$@" >"$tmp/$(echo "$f" | tr / _).tidy" 2>&1; :' \
	sh {} "${cflags[@]}"
# Keep "file:line:col: warning|error: message [check]" lines, relative paths, once each.
cat "$tmp"/*.tidy | grep -E '^[^ ].*:[0-9]+:[0-9]+: (warning|error): ' |
	sed -E "s#^$PWD/##; s#^[a-z]+/\.\./##" | sort -u >"$tmp/tidy.all"
# Drop the listed false positives: same file, same check, the flagged line contains the text.
: >"$tmp/tidy.out"
while IFS= read -r diag; do
	file=${diag%%:*}
	rest=${diag#*:}
	line=${rest%%:*}
	check=$(sed -E 's/.*\[([^],]+)[],].*$/\1/' <<<"$diag")
	text=$(sed -n "${line}p" "$file" 2>/dev/null)
	suppressed=0
	while IFS='|' read -r sfile scheck stext; do
		case $sfile in '' | \#*) continue ;; esac
		if [ "$sfile" = "$file" ] && [ "$scheck" = "$check" ] &&
			[[ "$text" == *"$stext"* ]]; then
			suppressed=1
			echo "    (ignored, tests/analysis/clang-tidy.supp: $file:$line $check)"
		fi
	done <tests/analysis/clang-tidy.supp
	[ "$suppressed" -eq 0 ] && echo "$diag" >>"$tmp/tidy.out"
done <"$tmp/tidy.all"
tally clang-tidy "$tmp/tidy.out"

# --- include graph ----------------------------------------------------------------------------
echo "== include graph"
/usr/bin/python3 tests/analysis/include_graph.py >"$tmp/graph.out"
cat "$tmp/graph.out"
passed=$((passed + $(grep -c '^PASS' "$tmp/graph.out")))
failed=$((failed + $(grep -c '^FAIL' "$tmp/graph.out")))

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
