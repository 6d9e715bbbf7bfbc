# shellcheck shell=bash
# Mutual TLS phase of the end-to-end test, sourced at the end of tests/e2e/run.sh (it uses
# run.sh's helpers, counters, images, ports and cleanup trap). docs/mtls.md describes the setup.
#
# Runs the stack with compose.mtls.yaml and certificates from scripts/gen-certs.sh in a temporary
# directory, and checks:
#   - keys of mode 600 are unreadable to the images' uid 10001; KEY_GROUP=10001 makes them readable;
#   - both services become healthy (--healthcheck over TLS with the client certificate);
#   - the curl flow over HTTPS with the operator's client certificate, and the caller's GET /
#     merging both stores through https://responder:5000;
#   - refused: no client certificate, a certificate from another CA; plain HTTP gets no HTTP answer;
#   - /metrics: the expiry gauge equals each certificate's notAfter;
#   - a SIGHUP with a broken key keeps the old certificates (reload counted as failed);
#   - rotation: new leaves, `compose kill -s HUP`: new connections see the new serial, an open
#     connection goes on, the gauge follows;
#   - compose down.
if [ -z "${PROJECT:-}" ] || ! declare -F pass >/dev/null; then
    echo "tests/e2e/mtls.sh is sourced by tests/e2e/run.sh (make e2e)" >&2
    exit 2
fi

note "mTLS phase (compose.mtls.yaml)"
timeout 120 "${COMPOSE_CMD[@]}" down -t 20 >"$TMP/mtls-down0.log" 2>&1 || note "compose down before mTLS failed"

export CERTS_DIR="$TMP/certs"
GEN=("$ROOT/scripts/gen-certs.sh")
mtls_gen() { # DIR [VAR=VALUE...]: gen-certs.sh DIR with KEY_GROUP for the images' gid
    local d=$1
    shift
    if [ "$(id -u)" -eq 0 ]; then env KEY_GROUP=10001 "$@" sh "${GEN[@]}" "$d"
    else env KEY_GROUP="$(id -g)" "$@" sh "${GEN[@]}" "$d"; fi
}
if [ "$(id -u)" -ne 0 ]; then CERTS_GID=$(id -g); export CERTS_GID; fi

# default modes (700/600) first: uid 10001 cannot read the key
if sh "${GEN[@]}" "$TMP/certs600" >"$TMP/gen600.log" 2>&1; then
    out=$(timeout 60 docker run --rm --name "${PROJECT}_perm" --network none -v "$TMP/certs600:/certs:ro" \
        --entrypoint /bin/sh "$CALLER_IMAGE" -c 'cat /certs/caller-key.pem >/dev/null 2>&1 && echo readable || echo unreadable' 2>&1)
    if [ "$out" = unreadable ]; then pass "gen-certs.sh default modes: uid 10001 cannot read the keys (KEY_GROUP needed)"
    else fail "gen-certs.sh default modes: uid 10001 -> '$out'"; fi
else
    fail "gen-certs.sh (default modes): $(tail -n 3 "$TMP/gen600.log")"
fi

if mtls_gen "$CERTS_DIR" >"$TMP/gen.log" 2>&1 && mtls_gen "$TMP/otherca" >"$TMP/gen-other.log" 2>&1; then
    pass "gen-certs.sh with KEY_GROUP (and a second, unrelated CA)"
else
    cat "$TMP/gen.log" "$TMP/gen-other.log" 2>/dev/null | tail -n 5
    abort "gen-certs.sh failed"
fi
out=$(timeout 60 docker run --rm --name "${PROJECT}_perm" --network none -v "$CERTS_DIR:/certs:ro" \
    ${CERTS_GID:+--group-add "$CERTS_GID"} --entrypoint /bin/sh "$CALLER_IMAGE" \
    -c 'cat /certs/caller-key.pem /certs/responder-key.pem >/dev/null && echo readable' 2>&1)
if [ "$out" = readable ]; then pass "KEY_GROUP: uid 10001 reads the keys through the read-only mount"
else fail "KEY_GROUP: keys not readable in the container: $out"; fi

COMPOSE_CMD=("${COMPOSE_BASE[@]}" -p "$PROJECT" -f "$ROOT/compose.yaml" -f "$ROOT/compose.mtls.yaml")
CS="https://127.0.0.1:$CALLER_PORT"
RS="https://127.0.0.1:$RESPONDER_PORT"
TLS=(--cacert "$CERTS_DIR/ca.pem" --cert "$CERTS_DIR/client.pem" --key "$CERTS_DIR/client-key.pem")

t0=$(date +%s)
if timeout 180 "${COMPOSE_CMD[@]}" up -d --no-build >"$TMP/mtls-up.log" 2>&1; then
    pass "compose -f compose.yaml -f compose.mtls.yaml up -d"
else
    tail -n 20 "$TMP/mtls-up.log"
    fail "compose up with compose.mtls.yaml"
fi
if wait_healthy responder 60 && wait_healthy caller 60; then
    pass "mTLS: both services healthy ($(($(date +%s) - t0)) s; --healthcheck over TLS)"
else
    "${COMPOSE_CMD[@]}" logs --tail 30 2>&1 | tail -n 60
    abort "mTLS: services not healthy"
fi
RID=$(cid responder)
CID=$(cid caller)

# ------------------------------------------------------------ curl flow -----
http POST "$CS/data" '{"tls": "caller"}' "${TLS[@]}"
if [ "$STATUS" = 201 ] && json_eq "$TMP/body" '{"message": "Data stored successfully in Service A", "stored_data": {"tls": "caller"}}'; then
    pass "mTLS: POST caller /data -> 201"
else fail "mTLS: POST caller /data -> $STATUS $(body) $(cat "$TMP/curl.err")"; fi
http POST "$RS/data" '{"tls": "responder"}' "${TLS[@]}"
if [ "$STATUS" = 201 ]; then pass "mTLS: POST responder /data -> 201"
else fail "mTLS: POST responder /data -> $STATUS $(body) $(cat "$TMP/curl.err")"; fi
http GET "$RS/data" "" "${TLS[@]}"
if [ "$STATUS" = 200 ] && json_eq "$TMP/body" '{"stored_data": [{"tls": "responder"}]}'; then
    pass "mTLS: GET responder /data -> 200"
else fail "mTLS: GET responder /data -> $STATUS $(body)"; fi
http GET "$CS/" "" "${TLS[@]}"
if [ "$STATUS" = 200 ] && json_eq "$TMP/body" '{"caller_service_data": [{"tls": "caller"}], "responder_service_data": [{"tls": "responder"}]}'; then
    pass "mTLS: caller GET / merges both stores through https://responder:5000"
else fail "mTLS: caller GET / -> $STATUS $(body)"; fi

# --------------------------------------------------------------- refused ----
for u in "$CS" "$RS"; do
    http GET "$u/health" "" --cacert "$CERTS_DIR/ca.pem"
    if [ "$STATUS" = 000 ]; then pass "mTLS: $u without a client certificate refused ($(tr -d '\n' <"$TMP/curl.err"))"
    else fail "mTLS: $u without a client certificate -> $STATUS $(body)"; fi
    http GET "$u/health" "" --cacert "$CERTS_DIR/ca.pem" --cert "$TMP/otherca/client.pem" --key "$TMP/otherca/client-key.pem"
    if [ "$STATUS" = 000 ]; then pass "mTLS: $u with another CA's client certificate refused ($(tr -d '\n' <"$TMP/curl.err"))"
    else fail "mTLS: $u with another CA's certificate -> $STATUS $(body)"; fi
    plain=${u/https:/http:}
    rm -f "$TMP/headers"
    http GET "$plain/health"
    if [ "$STATUS" = 000 ] && ! grep -q '^HTTP/' "$TMP/headers" 2>/dev/null; then
        pass "mTLS: plain $plain/health gets no HTTP answer ($(tr -d '\n' <"$TMP/curl.err"))"
    else fail "mTLS: plain HTTP to the TLS port -> $STATUS $(body)"; fi
done

# ---------------------------------------------------------------- metrics ---
# metric NAME-AND-LABELS: its value in $TMP/body
metric() { awk -v k="$1" '$1 == k { printf "%d\n", $2 + 0 }' "$TMP/body" | head -n 1; }
not_after() { date -d "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)" +%s; }
check_expiry() { # URL SETTING PEM
    http GET "$1/metrics" "" "${TLS[@]}"
    local got want
    got=$(metric "tls_certificate_expiry_timestamp_seconds{setting=\"$2\"}")
    want=$(not_after "$3")
    if [ "$STATUS" = 200 ] && [ "$got" = "$want" ]; then pass "mTLS: $1/metrics $2 expiry = notAfter of $(basename "$3") ($want)"
    else fail "mTLS: $1/metrics $2 expiry '$got', want $want ($STATUS)"; fi
}
check_expiry "$CS" TLS_CERT_FILE "$CERTS_DIR/caller.pem"
check_expiry "$CS" TLS_CLIENT_CA_FILE "$CERTS_DIR/ca.pem"
check_expiry "$CS" RESPONDER_CA_FILE "$CERTS_DIR/ca.pem"
check_expiry "$CS" CLIENT_CERT_FILE "$CERTS_DIR/caller.pem"
check_expiry "$RS" TLS_CERT_FILE "$CERTS_DIR/responder.pem"

# serials as upper-case hex without leading zeros
serial_of() { # HOST:PORT: serial of the certificate a new connection sees
    timeout 10 openssl s_client -connect "$1" -CAfile "$CERTS_DIR/ca.pem" -cert "$CERTS_DIR/client.pem" \
        -key "$CERTS_DIR/client-key.pem" </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null \
        | sed 's/^serial=0*//'
}
file_serial() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=0*//'; }
# wait_log CONTAINER TEXT SINCE: TEXT in the container's logs since SINCE (5 s at most)
wait_log() {
    local _
    for _ in $(seq 1 20); do
        docker logs --since "$3" "$1" 2>&1 | grep -qF "$2" && return 0
        sleep 0.25
    done
    return 1
}

# ------------------------------------------------- failed reload (bad key) --
old_serial=$(serial_of "127.0.0.1:$CALLER_PORT")
cp -p "$CERTS_DIR/caller-key.pem" "$TMP/caller-key.good"
printf 'not a key\n' >"$TMP/bad-key" && chgrp --reference="$CERTS_DIR/caller-key.pem" "$TMP/bad-key" && chmod 640 "$TMP/bad-key"
mv -f "$TMP/bad-key" "$CERTS_DIR/caller-key.pem"
since=$(date +%s)
timeout 30 "${COMPOSE_CMD[@]}" kill -s HUP caller >"$TMP/hup0.log" 2>&1 || note "kill -s HUP: $(tail -n 2 "$TMP/hup0.log")"
if wait_log "$CID" '"level":"error"' "$since"; then
    pass "mTLS: SIGHUP with a broken key logs an error: $(docker logs --since "$since" "$CID" 2>&1 | grep -m1 '"level":"error"' | head -c 200)"
else fail "mTLS: no error line after SIGHUP with a broken key"; fi
http GET "$CS/metrics" "" "${TLS[@]}"
if [ "$(metric 'tls_reloads_total{result="failed"}')" -ge 1 ] 2>/dev/null; then pass "mTLS: tls_reloads_total{result=\"failed\"} counted"
else fail "mTLS: tls_reloads_total failed = '$(metric 'tls_reloads_total{result="failed"}')'"; fi
now_serial=$(serial_of "127.0.0.1:$CALLER_PORT")
if [ -n "$old_serial" ] && [ "$now_serial" = "$old_serial" ]; then pass "mTLS: after a failed reload the caller serves the old certificate"
else fail "mTLS: after a failed reload: '$now_serial', before '$old_serial'"; fi
mv -f "$TMP/caller-key.good" "$CERTS_DIR/caller-key.pem"

# --------------------------------------------------------------- rotation ---
old_r=$(serial_of "127.0.0.1:$RESPONDER_PORT")
if mtls_gen "$CERTS_DIR" DAYS=30 >"$TMP/gen2.log" 2>&1; then pass "gen-certs.sh again: new leaves (30 days) from the same CA"
else fail "gen-certs.sh rotation: $(tail -n 3 "$TMP/gen2.log")"; fi
new_c=$(file_serial "$CERTS_DIR/caller.pem")
new_r=$(file_serial "$CERTS_DIR/responder.pem")
since=$(date +%s)
# an open keep-alive connection across the SIGHUP, then a new one
out=$("$PY" - "$CALLER_PORT" "$CERTS_DIR" "${COMPOSE_CMD[@]}" kill -s HUP caller responder <<'EOF' 2>&1
import http.client, os, ssl, subprocess, sys, time
port, d, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
ctx.load_cert_chain(os.path.join(d, "client.pem"), os.path.join(d, "client-key.pem"))
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
c.request("GET", "/health"); r = c.getresponse(); r.read()
sock, before = c.sock, "%X" % int(c.sock.getpeercert()["serialNumber"], 16)
subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
time.sleep(1.5)
c.request("GET", "/health"); r2 = c.getresponse(); r2.read()
print(r.status, r2.status, "same" if c.sock is sock else "new", before)
EOF
)
read -r st1 st2 same kept <<<"$out"
if [ "$st1 $st2 $same" = "200 200 same" ] && [ "$kept" = "$old_serial" ]; then
    pass "mTLS: a connection open across SIGHUP goes on with the old certificate"
else fail "mTLS: open connection across SIGHUP: $out (old $old_serial)"; fi
for pair in "$CID:caller" "$RID:responder"; do
    if wait_log "${pair%%:*}" "reloaded TLS certificates" "$since"; then pass "mTLS: ${pair#*:} logged 'reloaded TLS certificates'"
    else fail "mTLS: ${pair#*:} did not log 'reloaded TLS certificates'"; fi
done
got_c=$(serial_of "127.0.0.1:$CALLER_PORT")
got_r=$(serial_of "127.0.0.1:$RESPONDER_PORT")
if [ "$got_c" = "$new_c" ] && [ "$got_c" != "$old_serial" ] && [ "$got_r" = "$new_r" ] && [ "$got_r" != "$old_r" ]; then
    pass "mTLS: after SIGHUP new connections see the new serials ($got_c, $got_r)"
else fail "mTLS: after SIGHUP caller '$got_c' (want $new_c), responder '$got_r' (want $new_r)"; fi
check_expiry "$CS" TLS_CERT_FILE "$CERTS_DIR/caller.pem"
check_expiry "$RS" TLS_CERT_FILE "$CERTS_DIR/responder.pem"
http GET "$CS/metrics" "" "${TLS[@]}"
if [ "$(metric 'tls_reloads_total{result="ok"}')" -ge 1 ] 2>/dev/null; then pass "mTLS: tls_reloads_total{result=\"ok\"} counted"
else fail "mTLS: tls_reloads_total ok = '$(metric 'tls_reloads_total{result="ok"}')'"; fi
http GET "$CS/" "" "${TLS[@]}"
if [ "$STATUS" = 200 ] && [ "$(json_get "$TMP/body" "d['responder_service_data']")" = '[{"tls": "responder"}]' ]; then
    pass "mTLS: caller GET / after the rotation"
else fail "mTLS: caller GET / after the rotation -> $STATUS $(body)"; fi
sleep 4  # one more health check with the new certificates
if [ "$(health caller)" = healthy ] && [ "$(health responder)" = healthy ]; then pass "mTLS: both still healthy after the rotation"
else fail "mTLS: health after the rotation: caller $(health caller), responder $(health responder)"; fi

if timeout 120 "${COMPOSE_CMD[@]}" down -t 20 >"$TMP/mtls-down.log" 2>&1; then pass "mTLS: compose down"
else tail -n 5 "$TMP/mtls-down.log"; fail "mTLS: compose down"; fi
