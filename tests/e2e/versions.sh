# shellcheck shell=bash
# Two-version phase of the end-to-end test, sourced by tests/e2e/run.sh before the mTLS phase (it
# uses run.sh's helpers, counters, images, ports and cleanup trap). docs/watch-versions.md
# describes the setup.
#
# Runs the stack with compose.versions.yaml (responder 1.0.0 and responder-v2 2.0.0 under the
# one name `responder`), and checks:
#   - all three services become healthy;
#   - scripts/watch-versions.sh against the caller's published port, for a bounded count
#     (E2E_WATCH_COUNT, 60 samples at 10/s): both versions answer, no sample is an error, each
#     version from its own container;
#   - compose down removes the stack.
if [ -z "${PROJECT:-}" ] || ! declare -F pass >/dev/null; then
    echo "tests/e2e/versions.sh is sourced by tests/e2e/run.sh (make e2e)" >&2
    exit 2
fi

note "two-version phase (compose.versions.yaml)"
timeout 120 "${COMPOSE_CMD[@]}" down -t 20 >"$TMP/versions-down0.log" 2>&1 || note "compose down before the two-version phase failed"
BASE_COMPOSE_CMD=("${COMPOSE_CMD[@]}")
COMPOSE_CMD=("${COMPOSE_BASE[@]}" -p "$PROJECT" -f "$ROOT/compose.yaml" -f "$ROOT/compose.versions.yaml")

t0=$(date +%s)
if timeout 180 "${COMPOSE_CMD[@]}" up -d --no-build >"$TMP/versions-up.log" 2>&1; then
    pass "compose -f compose.yaml -f compose.versions.yaml up -d"
else
    tail -n 20 "$TMP/versions-up.log"
    fail "compose up with compose.versions.yaml"
fi
if wait_healthy responder 60 && wait_healthy responder-v2 60 && wait_healthy caller 60; then
    pass "two versions: responder, responder-v2 and caller healthy ($(($(date +%s) - t0)) s)"
    WATCH_COUNT=${E2E_WATCH_COUNT:-60}
    WATCH_CSV="$TMP/versions.csv"
    t0=$(date +%s)
    if timeout 120 bash "$ROOT/scripts/watch-versions.sh" --rate 10 --count "$WATCH_COUNT" --interval 2 \
        --csv "$WATCH_CSV" "$C" >"$TMP/watch.out" 2>"$TMP/watch.err"; then
        sed -n '/^summary:/,$p' "$TMP/watch.out" | sed 's/^/#   /'
        split=$(awk -F, 'NR > 1 { n[$5]++; t++ } END { for (c in n) printf "%s %d (%.0f%%)  ", c, n[c], 100 * n[c] / t }' "$WATCH_CSV")
        samples=$(($(wc -l <"$WATCH_CSV") - 1))
        v1=$(awk -F, 'NR > 1 && $5 == "1.0.0"' "$WATCH_CSV" | wc -l)
        v2=$(awk -F, 'NR > 1 && $5 == "2.0.0"' "$WATCH_CSV" | wc -l)
        errors=$(awk -F, 'NR > 1 && $5 == "error"' "$WATCH_CSV" | wc -l)
        note "observed split over $samples samples in $(($(date +%s) - t0)) s: $split"
        if [ "$samples" -eq "$WATCH_COUNT" ]; then pass "watcher took $samples samples (--count $WATCH_COUNT)"
        else fail "watcher took $samples samples, asked for $WATCH_COUNT"; fi
        if [ "$v1" -gt 0 ] && [ "$v2" -gt 0 ]; then pass "both versions answered: 1.0.0 $v1, 2.0.0 $v2"
        else fail "versions seen: 1.0.0 $v1, 2.0.0 $v2 (both expected)"; fi
        if [ "$errors" -eq 0 ]; then pass "no sample was an error"
        else fail "$errors samples were errors: $(awk -F, 'NR > 1 && $5 == "error" { print $10 }' "$WATCH_CSV" | sort | uniq -c | head -n 3)"; fi
        # each version from its own container (served_by is the hostname: the container id)
        by1=$(awk -F, 'NR > 1 && $5 == "1.0.0" { print $8 }' "$WATCH_CSV" | sort -u)
        by2=$(awk -F, 'NR > 1 && $5 == "2.0.0" { print $8 }' "$WATCH_CSV" | sort -u)
        rid=$(cid responder)
        rid2=$(cid responder-v2)
        if [ "$(printf '%s\n' "$by1" | wc -l)" -eq 1 ] && [ "$(printf '%s\n' "$by2" | wc -l)" -eq 1 ] &&
            [ -n "$by1" ] && [ "${rid#"$by1"}" != "$rid" ] && [ -n "$by2" ] && [ "${rid2#"$by2"}" != "$rid2" ]; then
            pass "1.0.0 answered from responder ($by1), 2.0.0 from responder-v2 ($by2)"
        else
            fail "served by: 1.0.0 from '${by1//$'\n'/ }', 2.0.0 from '${by2//$'\n'/ }'; containers ${rid:0:12} ${rid2:0:12}"
        fi
    else
        tail -n 20 "$TMP/watch.out" "$TMP/watch.err"
        fail "scripts/watch-versions.sh against the two-version stack"
    fi
else
    "${COMPOSE_CMD[@]}" logs --tail 30 2>&1 | tail -n 60
    fail "two versions: services not healthy"
fi
if timeout 120 "${COMPOSE_CMD[@]}" down -t 20 >"$TMP/versions-down.log" 2>&1 &&
    [ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ]; then
    pass "compose down removed the two-version stack"
else
    tail -n 5 "$TMP/versions-down.log"
    fail "compose down of the two-version stack"
fi
COMPOSE_CMD=("${BASE_COMPOSE_CMD[@]}")
