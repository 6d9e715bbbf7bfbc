#!/usr/bin/env bash
# Memcheck run: builds the daemons normally (make -> bin/), runs each under
#   valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=1
# on loopback, drives a short realistic workload over HTTP (POST/GET /data, HEAD, caller GET / with
# the responder up and then down, /health, /metrics, error cases, rate limiting, the circuit
# breaker, delayed answers, EMF records), stops them with SIGTERM and fails on any memcheck error
# or definitely/indirectly lost block ("still reachable" memory, e.g. libcurl's and GnuTLS's
# global state, is not an error). One test per request and per daemon; the last line is
# "N passed, N failed". Logs stay in build/valgrind/.
#   tests/analysis/valgrind.sh
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
out=build/valgrind
passed=0
failed=0
pid_responder=
pid_caller=

scripts/install-deps.sh valgrind curl python3 make pkg-config libjansson-dev \
	libmicrohttpd-dev libcurl4-openssl-dev || exit 1
if ! make -s all; then
	echo "FAIL build"
	echo "0 passed, 1 failed"
	exit 1
fi
rm -rf "${out:?}" && mkdir -p "$out"

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
rport=$(free_port)
cport=$(free_port)
while [ "$cport" = "$rport" ]; do cport=$(free_port); done

ok() { echo "PASS $*"; passed=$((passed + 1)); }
ko() { echo "FAIL $*"; failed=$((failed + 1)); }

# start NAME PORT ENV... : runs bin/NAME under memcheck; its pid in pid_NAME. $scheme and
# $health_args say how to reach its /health.
scheme=http
health_args=()
start() {
	local name=$1 port=$2 i
	shift 2
	env -i PATH="$PATH" LANG=C PORT="$port" THREADS=2 DRAIN_TIMEOUT_MS=5000 METRICS_EMF=1 \
		METRICS_EMF_INTERVAL_S=1 "$@" \
		valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--show-leak-kinds=definite,indirect --error-exitcode=1 --track-origins=yes \
		--num-callers=30 --log-file="$out/$name.valgrind" "bin/$name" \
		>"$out/$name.stdout" 2>"$out/$name.stderr" &
	printf -v "pid_$name" '%s' $!
	for i in $(seq 1 120); do
		curl -s -o /dev/null --max-time 2 "${health_args[@]}" "$scheme://127.0.0.1:$port/health" &&
			return 0
		sleep 0.5
	done
	echo "    $name did not answer /health on port $port within 60 s"
	return 1
}

# stop NAME : SIGTERM, wait (bounded), then judge memcheck's verdict and the exit status
stop() {
	local name=$1 var="pid_$1" pid rc i
	pid=${!var}
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 1 120); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		ko "$name: still running 60 s after SIGTERM"
		return
	fi
	wait "$pid"
	rc=$?
	grep -E "ERROR SUMMARY|definitely lost:|indirectly lost:|still reachable:" "$out/$name.valgrind" |
		sed 's/^==[0-9]*== */    /'
	if [ "$rc" -eq 0 ]; then
		ok "$name: memcheck clean, exit 0 after SIGTERM"
	else
		ko "$name: exit $rc under memcheck (1 = memcheck errors or leaks; see $out/$name.valgrind)"
		grep -E -A12 "^==[0-9]+== (Invalid|Conditional|Use of|Syscall param|Mismatched|[0-9,]+ .*bytes in .* (definitely|indirectly) lost)" \
			"$out/$name.valgrind" | head -60 | sed 's/^==[0-9]*== */    /'
	fi
}

# req NAME WANT_STATUS WANT_TEXT CURL_ARGS... : one request; WANT_TEXT ("" for none) must be in
# the body, and in the headers too when the request is a HEAD
req() {
	local name=$1 want=$2 text=$3 status
	shift 3
	status=$(curl -s -o "$out/body" -D "$out/headers" -w '%{http_code}' --max-time 30 "$@")
	if [ "$status" != "$want" ]; then
		ko "$name: HTTP $status, expected $want: $(head -c 300 "$out/body")"
	elif [ -n "$text" ] && ! grep -qF -- "$text" "$out/body" "$out/headers"; then
		ko "$name: no \"$text\" in: $(head -c 300 "$out/body")"
	else
		ok "$name"
	fi
}

json=(-H 'Content-Type: application/json')
r="http://127.0.0.1:$rport"
c="http://127.0.0.1:$cport"

# X-Ray tracing on for the first pair, every request sampled, to a stand-in X-Ray daemon that
# keeps every datagram (bounded: it ends by itself after 600 s) for the check after the caller stops.
xport=$(free_port)
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.settimeout(0.5)
end = time.monotonic() + 600
with open(sys.argv[2], "wb") as f:
    while time.monotonic() < end:
        try:
            d = s.recv(70000)
        except socket.timeout:
            continue
        f.write(len(d).to_bytes(4, "big") + d)
        f.flush()
' "$xport" "$out/xray.datagrams" &
pid_xray=$!
xray=(XRAY_TRACING=1 XRAY_SAMPLING_RATE=1 AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:$xport")

if ! start responder "$rport" BODY_MAX_BYTES=4096 FAULT_DELAY_MS=100 FAULT_DELAY_RATE=0.5 \
	"${xray[@]}"; then
	ko "responder: start under valgrind"
	kill -KILL "$pid_responder" "$pid_xray" 2>/dev/null
	echo "$passed passed, $failed failed"
	exit 1
fi
if ! start caller "$cport" RESPONDER_URL="$r" UPSTREAM_TIMEOUT_MS=15000 \
	UPSTREAM_CONNECT_TIMEOUT_MS=5000 BREAKER_THRESHOLD=2 BREAKER_COOLDOWN_MS=60000 \
	TRUST_FORWARDED_FOR=1 RATE_LIMIT_RPS=0.01 RATE_LIMIT_BURST=3 "${xray[@]}"; then
	ko "caller: start under valgrind"
	kill -KILL "$pid_caller" "$pid_responder" "$pid_xray" 2>/dev/null
	echo "$passed passed, $failed failed"
	exit 1
fi

# --- the responder ----------------------------------------------------------------------------
req "responder GET /health" 200 '"ok"' "$r/health"
req "responder POST /data" 201 '"key":"value"' "${json[@]}" -d '{"key": "value"}' "$r/data"
req "responder POST /data nested" 201 'Service B' "${json[@]}" \
	-d '{"user": {"id": 7, "tags": ["a", "\u00e9"]}, "n": 1.5e3, "big": 123456789012345678901234567890}' "$r/data"
req "responder POST /data charset" 201 '"z":null' -H 'Content-Type: application/json; charset=utf-8' \
	-d '{"z": null}' "$r/data"
req "responder GET /data" 200 '"stored_data":[{"key":"value"}' -H 'X-Request-Id: vg-1' "$r/data"
req "responder GET /data request id" 200 'vg-req.42' -H 'X-Request-Id: vg-req.42' "$r/data"
req "responder HEAD /data" 200 '' -I "$r/data"
req "responder POST empty body" 400 'No data provided' "${json[@]}" --data-binary '' "$r/data"
req "responder POST {}" 400 'No data provided' "${json[@]}" -d '{}' "$r/data"
req "responder POST malformed" 400 'error' "${json[@]}" -d '{"key": ' "$r/data"
req "responder POST array" 400 'error' "${json[@]}" -d '[1, 2]' "$r/data"
req "responder POST duplicate keys" 400 'error' "${json[@]}" -d '{"a": 1, "a": 2}' "$r/data"
req "responder POST \\u0000" 400 'error' "${json[@]}" -d '{"a": "x\u0000"}' "$r/data"
req "responder POST invalid UTF-8" 400 'error' "${json[@]}" --data-binary $'{"a": "\xc3\x28"}' "$r/data"
req "responder POST text/plain" 415 'error' -H 'Content-Type: text/plain' -d '{"a": 1}' "$r/data"
req "responder POST no Content-Type" 415 'error' -H 'Content-Type:' -d '{"a": 1}' "$r/data"
head -c 8192 /dev/zero | tr '\0' 'x' | sed 's/^/{"pad": "/; s/$/"}/' >"$out/big.json"
req "responder POST over BODY_MAX_BYTES" 413 '' "${json[@]}" --data-binary @"$out/big.json" "$r/data"
req "responder POST chunked over BODY_MAX_BYTES" 413 '' "${json[@]}" -H 'Transfer-Encoding: chunked' \
	--data-binary @"$out/big.json" "$r/data"
req "responder PUT /data" 405 'error' -X PUT "${json[@]}" -d '{"a": 1}' "$r/data"
req "responder DELETE /health" 405 'error' -X DELETE "$r/health"
req "responder GET unknown path" 404 'error' "$r/nope/%ff?x=%00"
req "responder GET /metrics" 200 'http_requests_total{' "$r/metrics"
req "responder GET /health with trace headers" 200 'traceparent' \
	-H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
	-H 'X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1' "$r/health"

# --- the caller, responder up -----------------------------------------------------------------
xff=(-H 'X-Forwarded-For: 203.0.113.1')
req "caller GET /health" 200 '"ok"' "$c/health"
req "caller POST /data" 201 'Service A' "${json[@]}" "${xff[@]}" -d '{"key": "value"}' "$c/data"
req "caller POST /data second" 201 '"list":[1,2,3]' "${json[@]}" "${xff[@]}" -d '{"list": [1, 2, 3]}' "$c/data"
req "caller GET /data" 200 '"stored_data":[{"key":"value"},{"list":[1,2,3]}]' "$c/data"
req "caller GET / (responder up)" 200 '"responder_service_data":[{"key":"value"}' "$c/"
req "caller GET / with trace headers" 200 '"responder_service_data":[' -H 'X-Request-Id: vg-root' \
	-H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' "$c/"
req "caller HEAD /" 200 '' -I "$c/"
# Responder answers past 256 KiB: a server thread receives its next one into the buffer the
# last one left (UPSTREAM_BODY_CACHE_BYTES), and frees what it kept when it stops.
head -c 3900 /dev/zero | tr '\0' 'y' | sed 's/^/{"pad": "/; s/$/"}/' >"$out/pad.json"
for i in $(seq 1 70); do
	curl -s -o /dev/null "${json[@]}" --data-binary @"$out/pad.json" "$r/data"
done
for i in 1 2 3 4; do
	req "caller GET / (a 270 kB answer from the responder, $i/4)" 200 'yyyyyyyy' "$c/"
done
if curl -s "$c/metrics" | grep -Eq '^upstream_body_buffers_reused_total [1-9]'; then
	ok "caller: a kept body buffer reused"
else
	ko "caller: no kept body buffer reused in 4 large answers"
fi
req "caller POST / (405)" 405 'error' -X POST "${json[@]}" -d '{"a": 1}' "$c/"
req "caller POST malformed" 400 'error' "${json[@]}" -H 'X-Forwarded-For: 198.51.100.9' -d '{' "$c/data"
for i in 1 2 3; do
	req "caller POST /data rate limit burst $i/3" 201 '' "${json[@]}" \
		-H 'X-Forwarded-For: 10.0.0.1, 192.0.2.7' -d "{\"i\": $i}" "$c/data"
done
req "caller POST /data past the rate limit" 429 'Rate limit exceeded' "${json[@]}" \
	-H 'X-Forwarded-For: 10.0.0.1, 192.0.2.7' -d '{"i": 4}' "$c/data"
req "caller GET /metrics" 200 'upstream_requests_total{outcome="ok"}' "$c/metrics"

# --- responder down ---------------------------------------------------------------------------
stop responder
req "caller GET / (responder down)" 200 'Failed to reach Service B' "$c/"
if grep -q 'onnect' "$out/body"; then ok "caller GET / names the connection failure"; else
	ko "caller GET / reason has no 'connect': $(head -c 300 "$out/body")"; fi
req "caller GET / (responder down, breaker opens)" 200 'Failed to reach Service B' "$c/"
req "caller GET / (breaker open)" 200 'circuit breaker open' "$c/"
req "caller GET /health (responder down)" 200 '"ok"' "$c/health"
req "caller GET /metrics (responder down)" 200 'upstream_breaker_state 1' "$c/metrics"
sleep 1.5 # one more EMF record
stop caller
kill -TERM "$pid_xray" 2>/dev/null
wait "$pid_xray" 2>/dev/null
# Every datagram both daemons sent under memcheck follows X-Ray's rules, and there are about as
# many as the requests above, less /health and /metrics (not sampled) and, for the responder,
# less those the caller's GET / made while it was down.
if /usr/bin/python3 -c '
import sys
sys.path.insert(0, "scripts")
from xray_collector import parse_datagram
data = open(sys.argv[1], "rb").read()
docs = []
while data:
    n = int.from_bytes(data[:4], "big")
    docs.append(parse_datagram(data[4:4 + n]))
    data = data[4 + n:]
names = [d["name"] for d in docs]
assert names.count("caller") >= 10 and names.count("responder") >= 15, names
print(f"    {len(docs)} X-Ray datagrams, every one valid")
' "$out/xray.datagrams"; then ok "X-Ray segments of both daemons"; else
	ko "X-Ray segments of both daemons"; fi

# --- mutual TLS: handshakes, refusals and a SIGHUP reload ------------------------------------
certs="$out/certs"
scripts/gen-certs.sh "$certs" >/dev/null
scheme=https
health_args=(--cacert "$certs/ca.pem" --cert "$certs/client.pem" --key "$certs/client-key.pem")
tls_server=(TLS_CERT_FILE="$certs/responder.pem" TLS_KEY_FILE="$certs/responder-key.pem"
	TLS_CLIENT_CA_FILE="$certs/ca.pem")
if ! start responder "$rport" "${tls_server[@]}" ||
	! start caller "$cport" RESPONDER_URL="https://localhost:$rport" \
		RESPONDER_CA_FILE="$certs/ca.pem" CLIENT_CERT_FILE="$certs/caller.pem" \
		CLIENT_KEY_FILE="$certs/caller-key.pem" UPSTREAM_TIMEOUT_MS=15000 \
		UPSTREAM_CONNECT_TIMEOUT_MS=5000 TLS_CERT_FILE="$certs/caller.pem" \
		TLS_KEY_FILE="$certs/caller-key.pem" TLS_CLIENT_CA_FILE="$certs/ca.pem"; then
	ko "mTLS pair: start under valgrind"
	kill -KILL "$pid_caller" "$pid_responder" 2>/dev/null
	echo "$passed passed, $failed failed"
	exit 1
fi
r="https://localhost:$rport"
c="https://localhost:$cport"
req "mTLS responder POST /data" 201 'Service B' "${health_args[@]}" "${json[@]}" -d '{"t": 1}' "$r/data"
req "mTLS caller GET / over mTLS to the responder" 200 '"responder_service_data":[{"t":1}]' \
	"${health_args[@]}" "$c/"
req "mTLS responder refuses a client without a certificate" 000 '' --cacert "$certs/ca.pem" "$r/data"
kill -HUP "$pid_responder" "$pid_caller"
sleep 2
req "mTLS caller GET / after SIGHUP" 200 '"responder_service_data":[{"t":1}]' "${health_args[@]}" "$c/"
req "mTLS responder /metrics after SIGHUP" 200 'tls_reloads_total{result="ok"} 1' \
	"${health_args[@]}" "$r/metrics"
stop caller
stop responder

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
