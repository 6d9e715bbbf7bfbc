#!/usr/bin/env bash
# Watches which responder version answers the caller's GET /, at a steady, bounded rate, while a
# deployment runs: one line per reporting window with the share of each version (read from the
# caller's X-Upstream-Version header), a summary table at the end (also on Ctrl-C), the samples in
# a CSV and, where gnuplot is installed, a PNG of the share of each version over time.
# docs/watch-versions.md explains the columns and the two setups (compose.versions.yaml locally,
# a CANARY or LINEAR deployment on ECS).
#
#   scripts/watch-versions.sh [OPTIONS] URL        e.g. http://localhost:5000 or http://IP:5000
#
# Needs bash >= 5 and curl >= 7.84 (its --rate and %header{} write-out); awk formats the tables;
# gnuplot (Debian: gnuplot-nox) only for --png. One curl process per window sends that window's
# requests one after another, spaced by curl's own --rate; the script sleeps (without a process)
# until the next window starts. Every request has a deadline (--timeout), the run a bounded
# number of requests (--count, or --rate x --duration) and a bounded wall time.
set -euo pipefail
export LC_ALL=C

PROG=scripts/watch-versions.sh
usage() {
	cat <<EOF
usage: $PROG [OPTIONS] URL

Samples GET URL (the caller) at a steady rate and shows which responder version answered
(the X-Upstream-Version header): one line per window, then a summary table.

Options:
  --rate N       requests per second, 0.1 to 100 (default 5)
  --duration S   stop after S seconds, at most 86400 (default 600 when --count is not given)
  --count N      stop after N requests, at most 1000000 (with --duration: whichever comes first)
  --interval S   reporting window in seconds, 1 to 3600 (default 5); rate x interval >= 1
  --timeout S    deadline of one request in seconds, 0.1 to 60 (default 5)
  --csv FILE     write every sample to FILE (columns: docs/watch-versions.md)
  --png FILE     draw the share of each version per window over time (needs gnuplot)
  -h, --help     this text

An answer counts for its version when it is HTTP 200 with an X-Upstream-Version header; any
other outcome (no answer, another status, no version: the responder was not reached) counts
as "error". Ctrl-C stops early and prints the summary. Exit status: 0 done, 2 bad usage,
1 no usable curl, 130/143 stopped by SIGINT/SIGTERM (after the summary).
EOF
}

# --------------------------------------------------------------------------- helpers
say() { printf '%s\n' "$@"; }
warn() { printf '%s: %s\n' "$PROG" "$*" >&2; }
bad_usage() {
	warn "$1"
	printf "Try '%s --help'.\n" "$PROG" >&2
	exit 2
}

# to_milli NAME VALUE MIN_MILLI MAX_MILLI: sets MILLI to VALUE x 1000 (a decimal with at most three
# places), or refuses the option with the allowed range.
to_milli() {
	local name=$1 value=$2 min=$3 max=$4 int frac
	if [[ ! $value =~ ^([0-9]{1,9})(\.([0-9]{1,3}))?$ ]]; then
		bad_usage "$name must be a number from $(milli_str "$min") to $(milli_str "$max"), got '$value'"
	fi
	int=${BASH_REMATCH[1]}
	frac=${BASH_REMATCH[3]}000
	MILLI=$((10#$int * 1000 + 10#${frac:0:3}))
	if ((MILLI < min || MILLI > max)); then
		bad_usage "$name must be a number from $(milli_str "$min") to $(milli_str "$max"), got '$value'"
	fi
}
milli_str() { # 1500 -> 1.5, 5000 -> 5
	local m=$1 s
	s=$((m / 1000))
	if ((m % 1000)); then
		printf -v s '%d.%03d' "$s" $((m % 1000))
		s=${s%%0}
		s=${s%%0}
	fi
	printf '%s' "$s"
}
us_str() { # microseconds -> seconds with 6 places (read -t takes fractions)
	printf '%d.%06d' $(($1 / 1000000)) $(($1 % 1000000))
}
now_us() { NOW_US=${EPOCHREALTIME//[!0-9]/}; }

# --------------------------------------------------------------------------- options
RATE_M=5000
DURATION_M=""
COUNT=""
INTERVAL_M=5000
TIMEOUT_M=5000
CSV=""
PNG=""
URL=""
need_value() { [[ $# -ge 2 ]] || bad_usage "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
	case $1 in
	-h | --help) usage && exit 0 ;;
	--rate) need_value "$@" && to_milli --rate "$2" 100 100000 && RATE_M=$MILLI && shift 2 ;;
	--duration) need_value "$@" && to_milli --duration "$2" 1 86400000 && DURATION_M=$MILLI && shift 2 ;;
	--interval) need_value "$@" && to_milli --interval "$2" 1000 3600000 && INTERVAL_M=$MILLI && shift 2 ;;
	--timeout) need_value "$@" && to_milli --timeout "$2" 100 60000 && TIMEOUT_M=$MILLI && shift 2 ;;
	--count)
		need_value "$@"
		if [[ ! $2 =~ ^[0-9]{1,7}$ ]] || ((10#$2 < 1 || 10#$2 > 1000000)); then
			bad_usage "--count must be a whole number from 1 to 1000000, got '$2'"
		fi
		COUNT=$((10#$2)) && shift 2
		;;
	--csv | --png)
		need_value "$@"
		[[ -n $2 ]] || bad_usage "$1 needs a file name"
		if [[ $1 == --csv ]]; then CSV=$2; else PNG=$2; fi
		shift 2
		;;
	--*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
	-*) bad_usage "unknown option '$1'" ;;
	*)
		[[ -z $URL ]] || bad_usage "one URL only (got '$URL' and '$1')"
		URL=$1 && shift
		;;
	esac
done
[[ -n $URL ]] || bad_usage "no URL given (the caller, e.g. http://localhost:5000)"
# The URL goes into a curl config file between double quotes.
[[ $URL =~ ^https?://[^[:space:]\"\\]+$ ]] ||
	bad_usage "URL must start with http:// or https:// and hold no spaces, quotes or backslashes, got '$URL'"
[[ -n $COUNT || -n $DURATION_M ]] || DURATION_M=600000
# Requests per window, in millionths: windows hold a whole number of requests only on average.
PER_WINDOW_U=$((RATE_M * INTERVAL_M))
((PER_WINDOW_U >= 1000000)) ||
	bad_usage "--rate x --interval must be at least one request per window (got $(milli_str "$RATE_M")/s x $(milli_str "$INTERVAL_M") s)"
TOTAL=1000000
[[ -z $COUNT ]] || TOTAL=$COUNT
if [[ -n $DURATION_M ]]; then
	by_time=$(((RATE_M * DURATION_M + 500000) / 1000000))
	((by_time >= 1)) ||
		bad_usage "--rate x --duration must be at least one request (got $(milli_str "$RATE_M")/s x $(milli_str "$DURATION_M") s)"
	((by_time >= TOTAL)) || TOTAL=$by_time
fi
for f in "$CSV" "$PNG"; do
	[[ -z $f ]] || [[ -d $(dirname -- "$f") ]] || bad_usage "no such directory for '$f'"
done

# --------------------------------------------------------------------------- tools
if [[ -z ${EPOCHREALTIME:-} ]]; then
	warn "needs bash 5 or later (this is bash $BASH_VERSION; on macOS: brew install bash)"
	exit 1
fi
command -v curl >/dev/null 2>&1 || {
	warn "curl not found"
	exit 1
}
curl_version=$(curl --version 2>/dev/null | sed -n '1s/^curl \([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p')
read -r cv_major cv_minor <<<"${curl_version:-0 0}"
if ((cv_major < 7 || (cv_major == 7 && cv_minor < 84))); then
	warn "needs curl 7.84 or later (--rate, %header{}); this one is $(curl --version 2>/dev/null | head -n 1)"
	exit 1
fi
GNUPLOT=""
if [[ -n $PNG ]]; then
	GNUPLOT=$(command -v gnuplot || true)
	[[ -n $GNUPLOT ]] || warn "gnuplot not found: no PNG will be drawn (Debian/Ubuntu: apt-get install gnuplot-nox)"
fi

# --------------------------------------------------------------------------- state
TMPD=$(mktemp -d "${TMPDIR:-/tmp}/watch-versions.XXXXXX")
CURL_PID=""
FINISHING=0
cleanup() {
	[[ -z $CURL_PID ]] || kill -TERM "$CURL_PID" 2>/dev/null || true
	rm -rf "$TMPD"
}
trap cleanup EXIT
SAMPLES=${CSV:-$TMPD/samples.csv}
printf 'seq,t_s,epoch_s,window,category,http_status,upstream_version,served_by,latency_ms,detail\n' >"$SAMPLES"
mkfifo "$TMPD/out" "$TMPD/sleep"
# A FIFO held open for reading and writing never has data: `read -t` on it is a sleep that a
# trapped signal interrupts at once (an external sleep would hold the trap until it ends).
exec {SLEEP_FD}<>"$TMPD/sleep"
sleep_until() { # microseconds since the epoch
	now_us
	(($1 > NOW_US)) || return 0
	read -r -t "$(us_str $(($1 - NOW_US)))" -u "$SLEEP_FD" _ || true
}

RATE_PER_H=$(((RATE_M * 36 + 5) / 10))   # curl's --rate in requests per hour: any rate is whole
GAP_MS=$((3600000 / RATE_PER_H))   # curl's own gap between starts, whole milliseconds
GAP_US=$((GAP_MS * 1000))
PREV_START_US=""
PREV_TT_US=0
TIMEOUT_US=$((TIMEOUT_M * 1000))
CONNECT_TIMEOUT=$(milli_str $((TIMEOUT_M < 3000 ? TIMEOUT_M : 3000)))
SEP=$'\x1f'
WRITE_OUT="%{stderr}%{http_code}${SEP}%{exitcode}${SEP}%{time_total}${SEP}%header{x-upstream-version}${SEP}%header{x-upstream-served-by}${SEP}%{errormsg}\n"
SEQ=0
WINDOW=0
WINDOW_N=0
HEADER_SHOWN=0
now_us
T0_US=$NOW_US
END_US=""
[[ -z $DURATION_M ]] || END_US=$((T0_US + DURATION_M * 1000))

clean_field() { # keeps CSV fields plain: no commas, quotes or control characters, 120 at most
	local v=${1//[^A-Za-z0-9._:\/+=@\' -]/_}
	CLEAN=${v:0:120}
}

# record CODE EXIT TIME_TOTAL VERSION SERVED_BY ERRORMSG: one sample, appended to the CSV.
record() {
	local code=$1 ex=$2 tt=$3 ver=$4 by=$5 msg=$6 tt_us cat detail start_us t_rel
	now_us
	tt=${tt//[!0-9]/}
	tt_us=$((10#${tt:-0}))
	# When the request started: at the latest its answer's arrival (read here, maybe late when
	# this shell was slow to read) less its duration; at the earliest when curl's --rate let it
	# start (the previous start plus the rate's gap, or plus the previous request's duration).
	start_us=$((NOW_US - tt_us))
	if [[ -n $PREV_START_US ]]; then
		local earliest=$((PREV_START_US + (PREV_TT_US > GAP_US ? PREV_TT_US : GAP_US)))
		((start_us <= earliest)) || start_us=$earliest
	fi
	PREV_START_US=$start_us
	PREV_TT_US=$tt_us
	t_rel=$((start_us - T0_US))
	((t_rel >= 0)) || t_rel=0
	clean_field "$ver" && ver=${CLEAN:0:40}
	clean_field "$by" && by=$CLEAN
	detail=""
	if [[ $ex != 0 ]]; then
		clean_field "$msg"
		detail="curl exit $ex: $CLEAN"
	elif [[ $code != 200 ]]; then
		detail="HTTP $code"
	elif [[ -z $ver ]]; then
		detail="no X-Upstream-Version (responder not reached)"
	fi
	cat=${ver:-error}
	[[ -z $detail ]] || cat=error
	[[ $cat != error || -z $ver ]] || detail="$detail (version $ver)"
	SEQ=$((SEQ + 1))
	WINDOW_N=$((WINDOW_N + 1))
	printf '%d,%d.%03d,%d.%03d,%d,%s,%s,%s,%s,%d.%03d,%s\n' "$SEQ" \
		$((t_rel / 1000000)) $((t_rel % 1000000 / 1000)) \
		$((start_us / 1000000)) $((start_us % 1000000 / 1000)) \
		"$WINDOW" "$cat" "${code:-000}" "$ver" "$by" \
		$((tt_us / 1000)) $((tt_us % 1000)) "$detail" >>"$SAMPLES"
}

# --------------------------------------------------------------------------- reports
# One awk program for the window lines, the summary and the plot data; it reads the CSV.
# shellcheck disable=SC2016 # awk's own $fields
REPORT_AWK='
# vless(a, b): version a sorts before b (dot- or dash-separated parts, numbers as numbers)
function vless(a, b,   pa, pb, na, nb, i) {
	na = split(a, pa, /[.-]/); nb = split(b, pb, /[.-]/)
	for (i = 1; i <= na && i <= nb; i++) {
		if (pa[i] == pb[i]) continue
		if (pa[i] ~ /^[0-9]+$/ && pb[i] ~ /^[0-9]+$/) return pa[i] + 0 < pb[i] + 0
		return pa[i] < pb[i]
	}
	return na < nb
}
function glyph(i) { return i == nc ? "x" : substr("#=+*%@o~&", (i - 1) % 9 + 1, 1) }
function rep(ch, k,   s) { s = ""; while (k-- > 0) s = s ch; return s }
function bar(key,   i, cum, prev, k, s) {
	if (tot[key] == 0) return sprintf("%-40s", "(no samples)")
	s = ""; cum = 0; prev = 0
	for (i = 1; i <= nc; i++) {
		cum += cnt[key, order[i]]
		k = int(cum * 40 / tot[key] + 0.5)
		s = s rep(glyph(i), k - prev); prev = k
	}
	return s
}
function header(   i, s) {
	s = "legend:"
	for (i = 1; i <= nc; i++) s = s "  " glyph(i) " " order[i]
	print s
	printf "%8s %6s %5s  %-40s", "from_s", "window", "n", "bar (40 = all samples of the window)"
	for (i = 1; i <= nc; i++) printf "  %12s", substr(order[i], 1, 12)
	printf "\n"
}
function row(a, b, key,   i, n) {
	printf "%8s %6s %5d  %-40s", a, b, tot[key], bar(key)
	for (i = 1; i <= nc; i++) {
		n = cnt[key, order[i]]
		printf "  %5.1f%% %5d", (tot[key] ? 100 * n / tot[key] : 0), n
	}
	printf "\n"
}
BEGIN { FS = "," }
$1 == "seq" { next }
{
	w = $4 + 0; c = $5
	if (c != "error" && !(c in seen)) { seen[c] = 1; firstw[c] = w; order[++nc] = c }
	cnt[w, c]++; tot[w]++; cnt["T", c]++; tot["T"]++; tsum[w] += $2
	if (tot["T"] == 1 || $2 < tmin) tmin = $2
	if ($2 > tmax) tmax = $2
	if (w > maxw) maxw = w
	if (!(c in first_t)) first_t[c] = $2
	last_t[c] = $2
	if ($8 != "" && !((c, $8) in task)) { task[c, $8] = 1; ntask[c]++ }
	if (c == "error") det[$10]++
}
END {
	for (i = 2; i <= nc; i++)   # versions in version order, oldest first
		for (j = i; j > 1 && vless(order[j], order[j - 1]); j--) { c = order[j]; order[j] = order[j - 1]; order[j - 1] = c }
	order[++nc] = "error"
	if (mode == "line") {
		newcat = !shown
		for (i = 1; i < nc; i++) if (firstw[order[i]] == win) newcat = 1
		if (newcat) header()
		row(sprintf("%.1f", (win - 1) * interval), win (partial ? "*" : ""), win)
	} else if (mode == "summary") {
		printf "summary: %d samples in %.1f s from %s; requests started %.2f per second (--rate %s), windows of %s s\n", \
			tot["T"], elapsed, url, (tmax > tmin ? (tot["T"] - 1) / (tmax - tmin) : 0), rate, interval
		header()
		for (w = 1; w <= maxw; w++) row(sprintf("%.1f", (w - 1) * interval), w, w)
		row("", "total", "T")
		printf "\n%-16s %8s %7s %6s %8s %8s\n", "category", "samples", "share", "tasks", "first_s", "last_s"
		for (i = 1; i <= nc; i++) {
			c = order[i]; n = cnt["T", c]
			printf "%-16s %8d %6.1f%% %6d %8s %8s\n", c, n, (tot["T"] ? 100 * n / tot["T"] : 0), ntask[c] + 0, \
				n ? sprintf("%.1f", first_t[c]) : "-", n ? sprintf("%.1f", last_t[c]) : "-"
		}
		if (cnt["T", "error"] > 0) {
			print "\nerrors by cause:"
			for (d in det) printf "%8d  %s\n", det[d], d
		}
	} else if (mode == "plot") {
		printf "t_s"
		for (i = 1; i <= nc; i++) printf " %s", order[i]
		printf "\n"
		for (w = 1; w <= maxw; w++) {
			if (!tot[w]) continue
			printf "%.2f", tsum[w] / tot[w]
			for (i = 1; i <= nc; i++) printf " %.2f", 100 * cnt[w, order[i]] / tot[w]
			printf "\n"
		}
	}
}'

report_window() { # WINDOW [partial]
	awk -v mode=line -v win="$1" -v partial="${2:-}" -v shown="$HEADER_SHOWN" \
		-v interval="$(milli_str "$INTERVAL_M")" "$REPORT_AWK" "$SAMPLES"
	HEADER_SHOWN=1
}

draw_png() {
	local cats=() i col colors=("#1f77b4" "#2ca02c" "#ff7f0e" "#9467bd" "#8c564b" "#17becf" "#e377c2" "#7f7f7f" "#bcbd22")
	awk -v mode=plot -v interval="$(milli_str "$INTERVAL_M")" "$REPORT_AWK" "$SAMPLES" >"$TMPD/plot.dat"
	read -r -a cats <"$TMPD/plot.dat"
	if [[ $(wc -l <"$TMPD/plot.dat") -lt 2 ]]; then
		warn "no answers: no PNG drawn"
		return 0
	fi
	local term=png
	"$GNUPLOT" -e 'set terminal pngcairo' >/dev/null 2>&1 && term=pngcairo
	{
		printf 'set terminal %s size 960,480 %s\n' "$term" "$([[ $term == pngcairo ]] && echo "font 'sans,10'")"
		printf 'set output "%s"\n' "${PNG//\"/\\\"}"
		printf 'set title "Share of samples per responder version\\n%s  (%s/s, windows of %s s)" noenhanced\n' \
			"$URL" "$(milli_str "$RATE_M")" "$(milli_str "$INTERVAL_M")"
		printf 'set xlabel "seconds since the watcher started"\nset ylabel "%% of the samples in the window"\n'
		printf 'set yrange [-2:102]\nset ytics 0,10,100\nset grid\nset key outside right top noenhanced\n'
		printf 'set datafile separator whitespace\n'
		printf 'plot'
		for ((i = 1; i < ${#cats[@]}; i++)); do
			col=${colors[$(((i - 1) % ${#colors[@]}))]}
			[[ ${cats[$i]} != error ]] || col="#d62728"
			printf '%s "%s" using 1:%d every ::1 with linespoints lw 2 pt 7 ps 0.6 lc rgb "%s" title "%s"' \
				"$([[ $i -gt 1 ]] && echo ,)" "$TMPD/plot.dat" $((i + 1)) "$col" "${cats[$i]}"
		done
		printf '\n'
	} >"$TMPD/plot.gp"
	if "$GNUPLOT" "$TMPD/plot.gp" 2>"$TMPD/gnuplot.err"; then
		say "PNG: $PNG"
	else
		warn "gnuplot failed: $(head -c 300 "$TMPD/gnuplot.err")"
	fi
}

# finish STATUS: stops a running curl, reports a partial window, prints the summary, writes the
# PNG and exits. Also the SIGINT/SIGTERM handler.
finish() {
	local rc=$1
	((FINISHING == 0)) || return 0
	FINISHING=1
	if [[ -n $CURL_PID ]]; then
		kill -TERM "$CURL_PID" 2>/dev/null || true
		wait "$CURL_PID" 2>/dev/null || true
		CURL_PID=""
		((WINDOW_N == 0)) || report_window "$WINDOW" partial
	fi
	now_us
	say ""
	((rc == 0)) || say "stopped by $([[ $rc == 130 ]] && echo SIGINT || echo SIGTERM) after $SEQ samples"
	awk -v mode=summary -v interval="$(milli_str "$INTERVAL_M")" -v rate="$(milli_str "$RATE_M")" \
		-v elapsed="$(us_str $((NOW_US - T0_US)))" -v url="$URL" "$REPORT_AWK" "$SAMPLES"
	[[ -z $CSV ]] || say "CSV: $CSV ($SEQ samples)"
	[[ -z $PNG || -z $GNUPLOT ]] || draw_png
	exit "$rc"
}
trap 'finish 130' INT
trap 'finish 143' TERM

# run_window N: N requests, one curl process, at most until the window's hard deadline (its
# planned end plus one request deadline, and the run's end plus one request deadline).
run_window() {
	local n=$1 deadline rem code ex tt ver by msg rc i
	if [[ ! -f $TMPD/urls.$n ]]; then
		for ((i = 0; i < n; i++)); do printf 'url = "%s"\noutput = "/dev/null"\n' "$URL"; done >"$TMPD/urls.$n"
	fi
	now_us
	deadline=$((NOW_US + (n * 1000000000 + RATE_M - 1) / RATE_M + TIMEOUT_US))
	[[ -z $END_US ]] || ((deadline < END_US + TIMEOUT_US)) || deadline=$((END_US + TIMEOUT_US))
	WINDOW_N=0
	PREV_START_US=""
	curl -q -s -K "$TMPD/urls.$n" --rate "$RATE_PER_H/h" --max-time "$(milli_str "$TIMEOUT_M")" \
		--connect-timeout "$CONNECT_TIMEOUT" -H 'Accept: application/json' \
		-w "$WRITE_OUT" 2>"$TMPD/out" >/dev/null &
	CURL_PID=$!
	exec {IN_FD}<"$TMPD/out"
	while :; do
		now_us
		rem=$((deadline - NOW_US))
		if ((rem <= 0)); then
			warn "window $WINDOW: stopped after $WINDOW_N of $n requests (answers slower than --rate allows)"
			kill -TERM "$CURL_PID" 2>/dev/null || true
			break
		fi
		rc=0
		IFS=$SEP read -r -t "$(us_str "$rem")" -u "$IN_FD" code ex tt ver by msg || rc=$?
		if ((rc == 0)); then
			record "$code" "$ex" "$tt" "$ver" "$by" "$msg"
		elif ((rc > 128)); then
			continue # timed out: the deadline check above ends the window
		else
			break # curl is done
		fi
	done
	exec {IN_FD}<&-
	wait "$CURL_PID" 2>/dev/null || true
	CURL_PID=""
}

# --------------------------------------------------------------------------- main loop
say "watching $URL: $(milli_str "$RATE_M")/s, at most $TOTAL requests$([[ -z $DURATION_M ]] || echo " within $(milli_str "$DURATION_M") s"), windows of $(milli_str "$INTERVAL_M") s; Ctrl-C stops and prints the summary"
# Request k (from 0) is due at T0 + k / rate and belongs to the window its due time falls in;
# each window's curl starts when its first request is due, and --rate spaces the rest.
planned=0
while ((planned < TOTAL)); do
	WINDOW=$((WINDOW + 1))
	last=$(((WINDOW * PER_WINDOW_U + 999999) / 1000000))
	((last <= TOTAL)) || last=$TOTAL
	sleep_until $((T0_US + planned * 1000000000 / RATE_M))
	now_us
	[[ -z $END_US ]] || ((NOW_US < END_US)) || break
	run_window $((last - planned))
	planned=$last
	report_window "$WINDOW"
done
finish 0
