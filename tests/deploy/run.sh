#!/usr/bin/env bash
# Offline checks of the AWS deployment (part of `make test`): shellcheck, the JSON inputs
# against the ECS API model of the AWS SDK for JavaScript v3 (@aws-sdk/client-ecs, installed on
# demand into tests/deploy/node_modules, which is git-ignored), and deploy/teardown runs against
# recording aws/docker/curl stubs. Last line: "N passed, N failed".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PASSED=0
FAILED=0

pass() {
	PASSED=$((PASSED + 1))
	printf 'PASS: %s\n' "$1"
}
fail() {
	FAILED=$((FAILED + 1))
	printf 'FAIL: %s\n' "$1"
	[[ $# -lt 2 ]] || printf '%s\n' "$2" | sed 's/^/      /' | tail -n 30
}
# check NAME COMMAND...: pass when the command succeeds.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out${OUT:+$(printf '\n-- last output:\n')$(tail -n 8 "$OUT")}"; fi
}
# count the PASS:/FAIL: lines of a sub-check (the node validator).
absorb() {
	local line
	while IFS= read -r line; do
		printf '%s\n' "$line"
		case $line in
		PASS:*) PASSED=$((PASSED + 1)) ;;
		FAIL:*) FAILED=$((FAILED + 1)) ;;
		esac
	done
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/scdemo-deploy-tests.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# ------------------------------------------------------------------ prerequisites
command -v node >/dev/null 2>&1 || {
	fail "node is needed for the model validator and the stubs"
	printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
	exit 1
}
# The ECS model is @aws-sdk/client-ecs (v3) at the exact version pinned in package.json and
# package-lock.json (validate.js reads its schemas and .d.ts files); jmespath is the aws stub's
# --query. Installed (again) when missing or not the pinned version.
# json_at FILE EXPR: EXPR (JavaScript, on "j") of a JSON file, or "none".
json_at() { node -p 'try { const j = require(process.argv[1]); eval(process.argv[2]) } catch (e) { "none" }' "$1" "$2"; }
ECS_PIN=$(json_at "$HERE/package.json" 'j.dependencies["@aws-sdk/client-ecs"]')
ECS_LOCKED=$(json_at "$HERE/package-lock.json" 'j.packages["node_modules/@aws-sdk/client-ecs"].version')
if [[ $(json_at "$HERE/node_modules/@aws-sdk/client-ecs/package.json" j.version) != "$ECS_PIN" || ! -d $HERE/node_modules/jmespath ]]; then
	echo "installing @aws-sdk/client-ecs $ECS_PIN and jmespath (pinned in tests/deploy/package-lock.json) into tests/deploy/node_modules" >&2
	if ! npm ci --prefix "$HERE" --no-audit --no-fund --ignore-scripts >"$TMP/npm.log" 2>&1; then
		fail "npm ci (tests/deploy)" "$(cat "$TMP/npm.log")"
		printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
		exit 1
	fi
fi
ECS_VERSION=$(json_at "$HERE/node_modules/@aws-sdk/client-ecs/package.json" j.version)
if [[ $ECS_PIN =~ ^[0-9]+\.[0-9]+\.[0-9]+$ && $ECS_LOCKED == "$ECS_PIN" && $ECS_VERSION == "$ECS_PIN" ]]; then
	pass "@aws-sdk/client-ecs model version is the pinned $ECS_PIN (package.json, package-lock.json, node_modules)"
else
	fail "@aws-sdk/client-ecs: package.json pins '$ECS_PIN' (an exact version expected), package-lock.json has $ECS_LOCKED, node_modules has $ECS_VERSION"
fi

# ------------------------------------------------------------------ shellcheck
if command -v shellcheck >/dev/null 2>&1; then
	for f in deploy/deploy.sh deploy/teardown.sh deploy/lib.sh tests/deploy/run.sh tests/deploy/stubs/gen-certs.sh; do
		check "shellcheck $f" shellcheck -x -P "$ROOT" "$ROOT/$f"
	done
else
	fail "shellcheck not installed"
fi
for f in deploy/deploy.sh deploy/teardown.sh; do
	check "$f uses set -euo pipefail" grep -qx 'set -euo pipefail' "$ROOT/$f"
done

# ------------------------------------------------------------------ the model validator
node "$HERE/validate.js" >"$TMP/validate.out" 2>&1 || true
absorb <"$TMP/validate.out"
grep -q '^PASS: rejects tls.encryptionConfiguration' "$TMP/validate.out" || fail "validator did not run its negative tests"

# ------------------------------------------------------------------ stub environment
# A PATH with the stubs and the basic tools only (no real aws or docker).
BIN="$TMP/bin"
mkdir -p "$BIN"
for tool in aws docker curl; do
	ln -s "$HERE/stubs/$tool" "$BIN/$tool"
done
ln -s "$(command -v node)" "$BIN/node"
# The system tools, without any real docker or aws that may be installed there.
SYSBIN="$TMP/sysbin"
mkdir -p "$SYSBIN"
for f in /usr/bin/* /bin/*; do
	case ${f##*/} in docker* | aws* | curl) continue ;; esac
	[[ -e $SYSBIN/${f##*/} ]] || ln -s "$f" "$SYSBIN/${f##*/}"
done
BASE_PATH="$BIN:$SYSBIN"
export STUB_NODE_MODULES="$HERE/node_modules"

new_state() {
	STATE="$TMP/state-$1"
	rm -rf "$STATE"
	mkdir -p "$STATE"
	: >"$STATE/calls.log"
}
# Fake repository root with the two Dockerfiles the real one will have.
FAKE_ROOT="$TMP/repo"
mkdir -p "$FAKE_ROOT"
cp -R "$ROOT/deploy" "$ROOT/task-definitions" "$FAKE_ROOT/"
# MTLS=1 makes its certificates with scripts/gen-certs.sh: here a fast stand-in without openssl.
mkdir -p "$FAKE_ROOT/scripts"
cp "$HERE/stubs/gen-certs.sh" "$FAKE_ROOT/scripts/gen-certs.sh"
printf 'FROM scratch\n# caller\n' >"$FAKE_ROOT/Dockerfile.caller"
printf 'FROM scratch\n# responder\n' >"$FAKE_ROOT/Dockerfile.responder"

# run_script NAME SCRIPT ARGS...: run deploy.sh or teardown.sh on the stubs; output in $OUT.
run_script() {
	local script=$1
	shift
	OUT="$TMP/out-$(date +%s%N)"
	env -i PATH="${RUN_PATH:-$BASE_PATH}" HOME="$TMP" TMPDIR="$TMP" STUB_STATE_DIR="$STATE" \
		STUB_NODE_MODULES="$STUB_NODE_MODULES" SCD_POLL_SECONDS=0 \
		${EXTRA_ENV:+$EXTRA_ENV} \
		bash "$FAKE_ROOT/deploy/$script" "$@" >"$OUT" 2>&1
}
# Calls of one tool, one line each: "aws ecs create-service ..." (without --region R).
calls() { node -e '
	const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map(JSON.parse);
	for (const c of lines) {
		const a = c.argv.slice(); const i = a.indexOf("--region"); if (i >= 0) a.splice(i, 2);
		console.log([c.tool].concat(a).join(" "));
	}' "$STATE/calls.log"; }
MUTATING='^aws (ecr (create|delete|put)|logs (create|delete|put)|iam (create|delete|put|update|attach|detach|tag)|servicediscovery (create|delete|deregister|register)|ecs (create|update|delete|register|deregister|tag|put)|ec2 (create|delete|authorize|revoke)|cloudwatch (put|delete|tag|set))'
# line_of ERE: number of the first call that matches, or nothing (not an error: set -e).
line_of() { { calls | grep -n -E "$1" || true; } | head -n 1 | cut -d: -f1; }

expect_ok() {
	if [[ $1 -eq 0 ]]; then pass "$2"; else fail "$2 (exit $1)" "$(tail -n 20 "$OUT")"; fi
}

# ------------------------------------------------------------------ 1. first deploy
new_state deploy
rc=0; run_script deploy.sh --region eu-west-1 || rc=$?
expect_ok "$rc" "first deploy succeeds on the stubs"
cp "$OUT" "$TMP/first-deploy.out"
c_resp=$(line_of '^aws ecs create-service')
w_resp=$(line_of '^aws ecs wait services-stable --cluster scdemo --services scdemo-responder')
c_call=$(calls | grep -n -E '^aws ecs create-service' | sed -n 2p | cut -d: -f1)
inputs=$(cd "$STATE/inputs" 2>/dev/null && printf '%s ' *)
if [[ -n $c_resp && -n $w_resp && -n $c_call && $c_resp -lt $w_resp && $w_resp -lt $c_call ]] &&
	grep -q '"serviceName": "scdemo-responder"' "$STATE"/inputs/*-create-service.json &&
	[[ $(grep -l '"serviceName": "scdemo-responder"' "$STATE"/inputs/*-create-service.json) < $(grep -l '"serviceName": "scdemo-caller"' "$STATE"/inputs/*-create-service.json) ]]; then
	pass "responder service created and waited for (services-stable) before the caller is created"
else
	fail "responder before caller" "create/wait/create lines: $c_resp $w_resp $c_call; inputs: $inputs"
fi
check "both task definitions registered before the services" bash -c "[[ \$(ls '$STATE/inputs' | head -n 2 | grep -c register-task-definition) -eq 2 ]]"
check "images built with docker build -f Dockerfile.<svc> and pushed" bash -c "grep -q '\"docker\",\"argv\":\\[\"build\",\"--platform\",\"linux/amd64\",\"-f\",\"$FAKE_ROOT/Dockerfile.caller\"' '$STATE/calls.log' && grep -c '\"push\"' '$STATE/calls.log' | grep -qx 2"
check "docker login uses --password-stdin and the password is never printed" bash -c "grep -q 'login.*--password-stdin' '$STATE/calls.log' && ! grep -q stub-ecr-password '$OUT' && ! grep -q stub-ecr-password '$STATE/calls.log'"
calls >"$TMP/first-deploy.calls"
check "security group admits 5000 from the deployer's address only, 15000 from itself" bash -c "
	grep -q 'authorize-security-group-ingress.*FromPort=5000,ToPort=5000,IpRanges=\[{CidrIp=198.51.100.7/32' '$TMP/first-deploy.calls' &&
	grep -q 'authorize-security-group-ingress.*FromPort=15000,ToPort=15000,UserIdGroupPairs' '$TMP/first-deploy.calls'"
check "public IPs printed" grep -q 'caller    http://203.0.113.10:5000' "$TMP/first-deploy.out"
check "smoke test ran the original curl flow" bash -c "[[ \$(grep -c '\"tool\":\"curl\"' '$STATE/calls.log') -ge 5 ]] && grep -q 'smoke test passed' '$TMP/first-deploy.out'"
check "service create inputs carry Service Connect, awsvpc public IP, ECS Exec" bash -c "grep -q '\"discoveryName\": \"responder\"' '$STATE'/inputs/*create-service*.json && grep -q '\"enableExecuteCommand\": true' '$STATE'/inputs/*create-service*.json"
node "$HERE/validate.js" --captured "$STATE/inputs" >"$TMP/captured1.out" 2>&1 || true
absorb <"$TMP/captured1.out"
cp -R "$STATE" "$TMP/state-after-deploy"

# ------------------------------------------------------------------ 2. second deploy changes nothing
: >"$STATE/calls.log"
rc=0; run_script deploy.sh --region eu-west-1 || rc=$?
expect_ok "$rc" "second deploy succeeds"
muts=$(calls | grep -E "$MUTATING" || true)
if [[ -z $muts ]]; then pass "second deploy makes no mutating AWS call (creates nothing)"; else fail "second deploy mutated" "$muts"; fi
check "second deploy pushes no image" bash -c "! grep -q '\"push\"' '$STATE/calls.log'"
check "second deploy creates no role, so waits for none" bash -c "! grep -q 'role-exists' '$STATE/calls.log'"

# ------------------------------------------------------------------ 3. a changed image updates responder then caller
: >"$STATE/calls.log"
rc=0; EXTRA_ENV="AWS_STUB_IMAGE_SALT=v2" run_script deploy.sh --region eu-west-1 || rc=$?
expect_ok "$rc" "deploy after an image change succeeds"
u_resp=$(line_of '^aws ecs update-service --cli-input-json')
w_resp=$(line_of '^aws ecs wait services-stable --cluster scdemo --services scdemo-responder')
u_call=$(calls | grep -n -E '^aws ecs update-service --cli-input-json' | sed -n 2p | cut -d: -f1)
if [[ -n $u_resp && -n $w_resp && -n $u_call && $u_resp -lt $w_resp && $w_resp -lt $u_call ]]; then
	pass "image change: responder updated and stable before the caller is updated"
else
	fail "image change order" "$(calls | grep -E 'ecs (update|wait|create)')"
fi
check "image change: new task definition revisions, no new service" bash -c "[[ \$(ls '$STATE/inputs' | grep -c update-service) -eq 2 && \$(ls '$STATE/inputs' | grep -c create-service) -eq 2 ]]"
mkdir -p "$TMP/update-inputs"
cp "$STATE"/inputs/*update-service*.json "$TMP/update-inputs/"
node "$HERE/validate.js" --captured "$TMP/update-inputs" >"$TMP/captured2.out" 2>&1 || true
absorb <"$TMP/captured2.out"

# ------------------------------------------------------------------ 4. another CIDR replaces the old rule
: >"$STATE/calls.log"
rc=0; run_script deploy.sh --region eu-west-1 --allowed-cidr 192.0.2.0/24 --no-smoke-test || rc=$?
expect_ok "$rc" "deploy with --allowed-cidr succeeds"
calls >"$TMP/cidr.calls"
check "--allowed-cidr adds the new rule and revokes the old one" bash -c "grep -q 'CidrIp=192.0.2.0/24' '$TMP/cidr.calls' && grep -q 'revoke-security-group-ingress' '$TMP/cidr.calls'"

# ------------------------------------------------------------------ 5. teardown, twice
: >"$STATE/calls.log"
rc=0; run_script teardown.sh --region eu-west-1 || rc=$?
expect_ok "$rc" "teardown succeeds"
left=$(node -e '
	const s = JSON.parse(require("fs").readFileSync(process.argv[1] + "/state.json", "utf8"));
	const left = [];
	for (const k of ["repos", "logGroups", "roles", "namespaces", "cloudmapServices", "securityGroups", "secrets"]) for (const n of Object.keys(s[k] || {})) left.push(k + ":" + n);
	for (const [n, c] of Object.entries(s.clusters)) if (c.status === "ACTIVE") left.push("cluster:" + n);
	for (const [n, v] of Object.entries(s.services)) if (v.status !== "INACTIVE") left.push("service:" + n);
	for (const revs of Object.values(s.taskDefs)) for (const r of revs) if (r.status === "ACTIVE" || r.status === "INACTIVE") left.push("taskdef:" + r.arn);
	console.log(left.join(" "));' "$STATE")
if [[ -z $left ]]; then pass "teardown removes everything deploy created"; else fail "teardown left resources" "$left"; fi
d_svc=$(line_of '^aws ecs delete-service'); d_cl=$(line_of '^aws ecs delete-cluster'); d_sg=$(line_of '^aws ec2 delete-security-group'); d_role=$(line_of '^aws iam delete-role ')
if [[ -n $d_svc && -n $d_cl && -n $d_sg && -n $d_role && $d_svc -lt $d_cl && $d_cl -lt $d_sg && $d_sg -lt $d_role ]]; then
	pass "teardown order: services, cluster, security group, roles"
else
	fail "teardown order" "$d_svc $d_cl $d_sg $d_role"
fi
: >"$STATE/calls.log"
rc=0; run_script teardown.sh --region eu-west-1 || rc=$?
expect_ok "$rc" "second teardown succeeds"
muts=$(calls | grep -E "$MUTATING" || true)
if [[ -z $muts ]]; then pass "second teardown deletes nothing"; else fail "second teardown mutated" "$muts"; fi

# teardown leaves resources it did not create alone
new_state foreign
node -e '
	const fs = require("fs"); const f = process.argv[1] + "/state.json";
	fs.writeFileSync(f, JSON.stringify({ seq: 0, repos: { "other/app": { images: [] } }, logGroups: { "/ecs/other": {} },
	  roles: { "scdemo-task": { trust: {}, inline: {}, attached: [], tags: {} } }, namespaces: {}, cloudmapServices: {}, operations: {},
	  clusters: { other: { status: "ACTIVE", arn: "x" } }, securityGroups: {}, taskDefs: {}, services: {}, tasks: {}, docker: { images: {} } }));' "$STATE"
rc=0; run_script teardown.sh --region eu-west-1 || rc=$?
check "teardown keeps other resources and an untagged role of the same name" bash -c "[[ $rc -eq 0 ]] && node -e '
	const s = JSON.parse(require(\"fs\").readFileSync(\"$STATE/state.json\", \"utf8\"));
	process.exit(s.repos[\"other/app\"] && s.logGroups[\"/ecs/other\"] && s.roles[\"scdemo-task\"] && s.clusters.other.status === \"ACTIVE\" ? 0 : 1)'"

# ------------------------------------------------------------------ 6. dry runs
new_state dry
rc=0; run_script deploy.sh --region eu-west-1 --dry-run || rc=$?
expect_ok "$rc" "deploy --dry-run succeeds"
sent=$(calls | grep -v -E '^aws --version$' || true)
if [[ -z $sent ]]; then pass "deploy --dry-run sends no AWS, Docker or curl call"; else fail "deploy --dry-run made calls" "$sent"; fi
d_resp=$(grep -n 'DRY-RUN (write): aws --region eu-west-1 ecs create-service' "$OUT" | head -n 1 | cut -d: -f1)
d_wait=$(grep -n 'ecs wait services-stable --cluster scdemo --services scdemo-responder' "$OUT" | head -n 1 | cut -d: -f1)
d_call=$(grep -n 'DRY-RUN (write): aws --region eu-west-1 ecs create-service' "$OUT" | sed -n 2p | cut -d: -f1)
if [[ -n $d_resp && -n $d_wait && -n $d_call && $d_resp -lt $d_wait && $d_wait -lt $d_call ]]; then
	pass "deploy --dry-run prints the calls, responder (and its wait) before the caller"
else
	fail "dry-run output" "$(grep -c DRY-RUN "$OUT") DRY-RUN lines; $d_resp $d_wait $d_call"
fi
check "deploy --dry-run prints the create calls for every resource" bash -c "for w in 'ecr create-repository' 'logs create-log-group' 'iam create-role' 'servicediscovery create-http-namespace' 'ecs create-cluster' 'ec2 create-security-group' 'ecs register-task-definition' 'docker): docker push'; do grep -q \"\$w\" '$OUT' || { echo missing \$w; exit 1; }; done"
rc=0; run_script teardown.sh --region eu-west-1 --dry-run || rc=$?
sent=$(calls | grep -v -E '^aws --version$' || true)
if [[ $rc -eq 0 && -z $sent ]]; then pass "teardown --dry-run sends no AWS call"; else fail "teardown --dry-run" "rc=$rc $sent"; fi

# ------------------------------------------------------------------ 7. Service Connect TLS
new_state tls
PCA="arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555"
rc=0; run_script deploy.sh --region eu-west-1 --tls "$PCA" --no-smoke-test || rc=$?
expect_ok "$rc" "deploy --tls succeeds"
check "--tls: responder's Service Connect service has tls with the PCA and the infrastructure role" bash -c "
	f=\$(grep -l '\"serviceName\": \"scdemo-responder\"' '$STATE'/inputs/*create-service*.json) &&
	grep -q '\"awsPcaAuthorityArn\": \"$PCA\"' \"\$f\" && grep -q '\"roleArn\": \"arn:aws:iam::123456789012:role/scdemo-ecs-infrastructure-tls\"' \"\$f\""
check "--tls: infrastructure role gets AWS's managed Service Connect TLS policy" bash -c "grep -q 'attach-role-policy.*AmazonECSInfrastructureRolePolicyForServiceConnectTransportLayerSecurity' '$STATE/calls.log'"
node "$HERE/validate.js" --captured "$STATE/inputs" >"$TMP/captured3.out" 2>&1 || true
absorb <"$TMP/captured3.out"
rc=0; run_script teardown.sh --region eu-west-1 || rc=$?
check "teardown after --tls also removes the infrastructure role" bash -c "[[ $rc -eq 0 ]] && node -e 'process.exit(Object.keys(JSON.parse(require(\"fs\").readFileSync(\"$STATE/state.json\",\"utf8\")).roles).length ? 1 : 0)'"
check "teardown after --tls says what becomes of the ecs-sc! secrets ECS made" grep -q 'Service Connect TLS was on: ECS kept the TLS private keys in Secrets Manager secrets named ecs-sc!' "$OUT"

# ------------------------------------------------------------------ 7b. mutual TLS (MTLS=1)
new_state mtls
CERTS="$TMP/.scdemo/scdemo/mtls"
rc=0; EXTRA_ENV="MTLS=1" run_script deploy.sh --region eu-west-1 || rc=$?
expect_ok "$rc" "MTLS=1: deploy succeeds on the stubs"
cp "$OUT" "$TMP/mtls-deploy.out"
calls >"$TMP/mtls.calls"
check "MTLS=1: certificates made by scripts/gen-certs.sh in ~/.scdemo/<prefix>/mtls, directory 700, keys 600" bash -c "
	for f in ca.pem responder.pem responder-key.pem caller.pem caller-key.pem client.pem client-key.pem; do [[ -s '$CERTS/'\$f ]] || exit 1; done
	[[ \$(stat -c %a '$CERTS') == 700 && \$(stat -c %a '$CERTS/caller-key.pem') == 600 ]]"
# The order of the AWS calls: secrets, then the policy on them, then the task definitions that
# read them, then the services.
s_resp=$(line_of '^aws secretsmanager create-secret --name scdemo/mtls/responder')
s_call=$(line_of '^aws secretsmanager create-secret --name scdemo/mtls/caller')
p_put=$(line_of '^aws iam put-role-policy --role-name scdemo-task-execution --policy-name scdemo-mtls-secrets')
t_reg=$(line_of '^aws ecs register-task-definition')
c_svc=$(line_of '^aws ecs create-service')
if [[ -n $s_resp && -n $s_call && -n $p_put && -n $t_reg && -n $c_svc && $s_resp -lt $s_call && $s_call -lt $p_put && $p_put -lt $t_reg && $t_reg -lt $c_svc ]]; then
	pass "MTLS=1: create-secret (responder, caller), put-role-policy, register-task-definition, create-service, in that order"
else
	fail "MTLS=1 call order" "secrets $s_resp $s_call, policy $p_put, taskdef $t_reg, service $c_svc"
fi
check "MTLS=1: secret values go to the CLI as file://, no PEM text on any command line" bash -c "
	grep -q 'create-secret --name scdemo/mtls/caller .*--secret-string file://' '$TMP/mtls.calls' && ! grep -q 'BEGIN' '$STATE/calls.log'"
# Cross-checks over what the stubs recorded: the secrets' JSON keys, the task definitions'
# valueFroms and the policy's Resource list.
check "MTLS=1: each secret holds exactly the JSON keys its task definition reads, as PEM text from the certificates" node -e '
	const fs = require("fs"), dir = process.argv[1], certs = process.argv[2];
	const s = JSON.parse(fs.readFileSync(dir + "/state.json", "utf8"));
	const files = { responder: { TLS_CERT_PEM: "responder.pem", TLS_KEY_PEM: "responder-key.pem", TLS_CLIENT_CA_PEM: "ca.pem" },
	  caller: { TLS_CERT_PEM: "caller.pem", TLS_KEY_PEM: "caller-key.pem", TLS_CLIENT_CA_PEM: "ca.pem", RESPONDER_CA_PEM: "ca.pem", CLIENT_CERT_PEM: "caller.pem", CLIENT_KEY_PEM: "caller-key.pem" } };
	for (const svc of ["responder", "caller"]) {
	  const sec = s.secrets["scdemo/mtls/" + svc], doc = JSON.parse(sec.value);
	  const td = s.taskDefs["scdemo-" + svc].slice(-1)[0].input.containerDefinitions[0];
	  const keys = td.secrets.map((x) => x.valueFrom.split(":").slice(-3)[0]).sort();
	  if (JSON.stringify(Object.keys(doc).sort()) !== JSON.stringify(keys)) throw new Error(svc + ": secret keys " + Object.keys(doc) + " vs valueFrom keys " + keys);
	  for (const [k, f] of Object.entries(files[svc])) if (doc[k] !== fs.readFileSync(certs + "/" + f, "utf8")) throw new Error(svc + ": " + k + " is not " + f);
	  if (sec.tags.Project !== "scdemo") throw new Error(svc + ": no Project tag");
	}' "$STATE" "$CERTS"
check "MTLS=1: the policy's Resource list and the task definitions' valueFrom ARNs name the same two secrets, exactly" node -e '
	const s = JSON.parse(require("fs").readFileSync(process.argv[1] + "/state.json", "utf8"));
	const arns = Object.values(s.secrets).map((x) => x.arn).sort();
	const pol = s.roles["scdemo-task-execution"].inline["scdemo-mtls-secrets"];
	const res = [].concat(pol.Statement[0].Resource).sort();
	const from = new Set();
	for (const f of ["scdemo-caller", "scdemo-responder"]) for (const x of s.taskDefs[f].slice(-1)[0].input.containerDefinitions[0].secrets) from.add(x.valueFrom.replace(/:[A-Z_]+::$/, ""));
	const a = JSON.stringify(arns), b = JSON.stringify(res), c = JSON.stringify([...from].sort());
	if (arns.length !== 2 || a !== b || a !== c) throw new Error("secrets " + a + ", policy " + b + ", valueFrom " + c);
	if (JSON.stringify([].concat(pol.Statement[0].Action)) !== "[\"secretsmanager:GetSecretValue\"]") throw new Error("action");' "$STATE"
check "MTLS=1: registered task definitions have no appProtocol, https RESPONDER_URL; responder service no perRequestTimeout" node -e '
	const fs = require("fs"), dir = process.argv[1] + "/inputs";
	for (const f of fs.readdirSync(dir)) {
	  const d = JSON.parse(fs.readFileSync(dir + "/" + f, "utf8"));
	  if (f.includes("register-task-definition")) {
	    const c = d.containerDefinitions[0];
	    if (c.portMappings.some((p) => "appProtocol" in p)) throw new Error(f + ": appProtocol");
	    if (c.name === "caller" && !c.environment.some((e) => e.name === "RESPONDER_URL" && e.value === "https://responder:5000")) throw new Error(f + ": RESPONDER_URL");
	  }
	  if (f.includes("create-service") && JSON.stringify(d).includes("perRequestTimeoutSeconds")) throw new Error(f + ": perRequestTimeoutSeconds");
	}' "$STATE"
node "$HERE/validate.js" --captured "$STATE/inputs" >"$TMP/captured-mtls.out" 2>&1 || true
absorb <"$TMP/captured-mtls.out"
check "MTLS=1: the smoke test uses https://caller:5000 with --cacert/--cert/--key and --resolve to the task's address" bash -c "
	grep -q \"^curl -fsS --connect-timeout 5 --max-time 10 --cacert $CERTS/ca.pem --cert $CERTS/client.pem --key $CERTS/client-key.pem --resolve caller:5000:203.0.113.10 https://caller:5000/\$\" '$TMP/mtls.calls' &&
	grep -q 'resolve responder:5000:203.0.113.20 https://responder:5000/data' '$TMP/mtls.calls' &&
	! grep -q '^curl .*http://203' '$TMP/mtls.calls' && grep -q 'smoke test passed' '$TMP/mtls-deploy.out'"
check "MTLS=1: prints the https addresses and a ready curl line" bash -c "
	grep -q '^caller    https://caller:5000 *at 203.0.113.10' '$TMP/mtls-deploy.out' &&
	grep -q '^try: *curl --cacert .*ca.pem --cert .*client.pem --key .*client-key.pem --resolve caller:5000:203.0.113.10 https://caller:5000/' '$TMP/mtls-deploy.out'"

: >"$STATE/calls.log"
rc=0; EXTRA_ENV="MTLS=1" run_script deploy.sh --region eu-west-1 || rc=$?
muts=$(calls | grep -E "$MUTATING|^aws secretsmanager (create|put|tag|delete)" || true)
if [[ $rc -eq 0 && -z $muts ]]; then pass "MTLS=1: a second deploy makes no mutating call (certificates and secrets reused)"; else fail "MTLS=1 second deploy (rc $rc)" "$muts"; fi

# Rotation: new leaf certificates (gen-certs.sh again keeps the CA), then deploy.
: >"$STATE/calls.log"
sh "$FAKE_ROOT/scripts/gen-certs.sh" "$CERTS" 2>/dev/null
rc=0; EXTRA_ENV="MTLS=1" run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
calls >"$TMP/rotate.calls"
check "MTLS=1 rotation: put-secret-value on both secrets (no new secret, same policy), new task definition revisions, both services updated" bash -c "
	[[ $rc -eq 0 ]] && [[ \$(grep -c '^aws secretsmanager put-secret-value --secret-id arn:aws:secretsmanager:' '$TMP/rotate.calls') -eq 2 ]] &&
	! grep -q 'create-secret\|put-role-policy' '$TMP/rotate.calls' &&
	[[ \$(grep -c '^aws ecs register-task-definition' '$TMP/rotate.calls') -eq 2 && \$(grep -c '^aws ecs update-service --cli-input-json' '$TMP/rotate.calls') -eq 2 ]]"

rc=0; run_script teardown.sh --region eu-west-1 || rc=$?
calls >"$TMP/mtls-teardown.calls"
check "MTLS=1 teardown: both secrets deleted without a recovery window, the inline policy and the role removed" bash -c "
	[[ $rc -eq 0 ]] && [[ \$(grep -c '^aws secretsmanager delete-secret --secret-id arn:aws:secretsmanager:.* --force-delete-without-recovery' '$TMP/mtls-teardown.calls') -eq 2 ]] &&
	grep -q '^aws iam delete-role-policy --role-name scdemo-task-execution --policy-name scdemo-mtls-secrets' '$TMP/mtls-teardown.calls' &&
	node -e 'const s = JSON.parse(require(\"fs\").readFileSync(\"$STATE/state.json\", \"utf8\")); process.exit(Object.keys(s.secrets).length || Object.keys(s.roles).length ? 1 : 0)'"

# Switching an existing plain deployment to mTLS: the responder's appProtocol changes, which
# Service Connect only takes from a new service.
new_state mtls-switch
rc=0; run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
: >"$STATE/calls.log"
rc=0; run_script deploy.sh --region eu-west-1 --mtls --mtls-dir "$TMP/other-certs" || rc=$?
d_resp=$(line_of '^aws ecs delete-service --cluster scdemo --service scdemo-responder')
w_inac=$(line_of '^aws ecs wait services-inactive --cluster scdemo --services scdemo-responder')
c_resp=$(line_of '^aws ecs create-service')
u_call=$(line_of '^aws ecs update-service --cli-input-json')
if [[ $rc -eq 0 && -n $d_resp && -n $w_inac && -n $c_resp && -n $u_call && $d_resp -lt $w_inac && $w_inac -lt $c_resp && $c_resp -lt $u_call ]] &&
	[[ -s $TMP/other-certs/ca.pem ]] && grep -q 'smoke test passed' "$OUT"; then
	pass "--mtls on a plain deployment: responder deleted, waited for, created again (appProtocol), then the caller updated"
else
	fail "switch to mTLS (rc $rc)" "delete $d_resp wait $w_inac create $c_resp update $u_call"
fi
check "--mtls switch: the caller's own update starts its tasks after the new responder, so no extra restart" bash -c "! grep -q force-new-deployment '$STATE/calls.log'"

# Both: the daemons' mutual TLS inside Service Connect TLS.
new_state mtls-tls
rc=0; run_script deploy.sh --region eu-west-1 --mtls --tls "$PCA" --no-smoke-test || rc=$?
check "--mtls with --tls: the responder's TCP Service Connect service gets tls and no perRequestTimeout" bash -c "
	[[ $rc -eq 0 ]] && f=\$(grep -l '\"serviceName\": \"scdemo-responder\"' '$STATE'/inputs/*create-service*.json) &&
	grep -q '\"awsPcaAuthorityArn\": \"$PCA\"' \"\$f\" && ! grep -q perRequestTimeoutSeconds \"\$f\""
node "$HERE/validate.js" --captured "$STATE/inputs" >"$TMP/captured-mtls-tls.out" 2>&1 || true
absorb <"$TMP/captured-mtls-tls.out"

new_state mtls-dry
rc=0; EXTRA_ENV="MTLS=1" run_script deploy.sh --region eu-west-1 --dry-run || rc=$?
sent=$(calls | grep -v -E '^aws --version$' || true)
if [[ $rc -eq 0 && -z $sent ]] && grep -q 'DRY-RUN (write): aws --region eu-west-1 secretsmanager create-secret --name scdemo/mtls/responder' "$OUT" &&
	grep -q 'DRY-RUN (write): .*iam put-role-policy --role-name scdemo-task-execution --policy-name scdemo-mtls-secrets' "$OUT" &&
	grep -q 'DRY-RUN (curl): .*--resolve caller:5000:' "$OUT" && [[ ! -e $TMP/.scdemo/scdemo/mtls-dry ]]; then
	pass "MTLS=1 --dry-run: prints the secret, policy and https curl calls, sends nothing"
else
	fail "MTLS=1 --dry-run (rc $rc)" "$sent"
fi
rc=0; EXTRA_ENV="MTLS=2" run_script deploy.sh --region eu-west-1 --dry-run || rc=$?
check "MTLS=2: refused" bash -c "[[ $rc -ne 0 ]] && grep -q 'MTLS=2: expected 0 or 1' '$OUT'"

# The real scripts/gen-certs.sh, when openssl is here: its files are the ones deploy reads,
# and its PEM text passes deploy's checks on the stubs.
if [[ -f $ROOT/scripts/gen-certs.sh ]] && command -v openssl >/dev/null 2>&1; then
	new_state mtls-real
	sh "$ROOT/scripts/gen-certs.sh" "$TMP/real-certs" 2>"$TMP/gen-certs.err" || true
	rc=0; run_script deploy.sh --region eu-west-1 --mtls --mtls-dir "$TMP/real-certs" --no-smoke-test || rc=$?
	check "the real scripts/gen-certs.sh makes every file deploy reads, and deploy stores its PEMs" bash -c "[[ $rc -eq 0 ]] && node -e '
		const s = JSON.parse(require(\"fs\").readFileSync(\"$STATE/state.json\", \"utf8\"));
		const d = JSON.parse(s.secrets[\"scdemo/mtls/caller\"].value);
		process.exit(/^-----BEGIN CERTIFICATE-----\n/.test(d.TLS_CERT_PEM) && /PRIVATE KEY-----\n\$/.test(d.CLIENT_KEY_PEM) ? 0 : 1)'"
else
	printf 'SKIP: the real scripts/gen-certs.sh (missing, or no openssl)\n'
fi

# ------------------------------------------------------------------ 8. failing fast
new_state fail
rc=0; EXTRA_ENV="AWS_STUB_NO_CREDENTIALS=1" run_script deploy.sh --region eu-west-1 || rc=$?
check "no credentials: deploy stops, naming sts get-caller-identity" bash -c "[[ $rc -ne 0 ]] && grep -q 'sts get-caller-identity' '$OUT' && ! grep -q 'create-' '$STATE/calls.log'"
rc=0; EXTRA_ENV="AWS_STUB_NO_CREDENTIALS=1" run_script teardown.sh --region eu-west-1 || rc=$?
check "no credentials: teardown stops too" bash -c "[[ $rc -ne 0 ]] && grep -q 'sts get-caller-identity' '$OUT'"
rc=0; run_script deploy.sh || rc=$?
check "no region: clear error" bash -c "[[ $rc -ne 0 ]] && grep -q 'no AWS region' '$OUT'"
rc=0; run_script deploy.sh --region mars-1 || rc=$?
check "malformed region: clear error" bash -c "[[ $rc -ne 0 ]] && grep -q 'does not look like an AWS region' '$OUT'"
rc=0; EXTRA_ENV="AWS_STUB_CONFIG_REGION=eu-west-1" run_script deploy.sh --dry-run || rc=$?
check "region from 'aws configure get region' when no flag or environment" bash -c "[[ $rc -eq 0 ]] && grep -q 'region eu-west-1' '$OUT'"
rc=0; RUN_PATH="$TMP/nodocker:$SYSBIN"
mkdir -p "$TMP/nodocker" && ln -sf "$HERE/stubs/aws" "$TMP/nodocker/aws" && ln -sf "$HERE/stubs/curl" "$TMP/nodocker/curl" && ln -sf "$(command -v node)" "$TMP/nodocker/node"
run_script deploy.sh --region eu-west-1 || rc=$?
unset RUN_PATH
check "no Docker: clear error before any AWS change" bash -c "[[ $rc -ne 0 ]] && grep -q 'Docker not found' '$OUT' && ! grep -q 'create-' '$STATE/calls.log'"
rc=0; EXTRA_ENV="AWS_STUB_DOCKER_DOWN=1" run_script deploy.sh --region eu-west-1 || rc=$?
check "Docker daemon down: clear error" bash -c "[[ $rc -ne 0 ]] && grep -q 'docker info' '$OUT'"
rc=0; EXTRA_ENV="AWS_STUB_NO_DEFAULT_VPC=1" run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
check "no default VPC: asks for --subnets" bash -c "[[ $rc -ne 0 ]] && grep -q 'pass --subnets' '$OUT'"
new_state subnets
rc=0; run_script deploy.sh --region eu-west-1 --subnets subnet-0aaa,subnet-0ccc --no-smoke-test || rc=$?
check "--subnets in two VPCs: refused" bash -c "[[ $rc -ne 0 ]] && grep -q 'all be in one VPC' '$OUT'"
rc=0; run_script deploy.sh --region eu-west-1 --subnets subnet-0bbb --no-smoke-test || rc=$?
check "--subnets: the given subnets are used" bash -c "[[ $rc -eq 0 ]] && grep -q '\"subnets\": \\[\"subnet-0bbb\"\\]' '$STATE'/inputs/*create-service*.json"
new_state unstable
rc=0; EXTRA_ENV="AWS_STUB_UNSTABLE=scdemo-responder" run_script deploy.sh --region eu-west-1 || rc=$?
check "responder never stable: deploy stops before creating the caller" bash -c "[[ $rc -ne 0 ]] && grep -q 'did not become stable' '$OUT' && [[ \$(ls '$STATE/inputs' | grep -c create-service) -eq 1 ]]"
rc=0; run_script deploy.sh --region eu-west-1 --bogus || rc=$?
check "unknown option: usage and non-zero exit" bash -c "[[ $rc -ne 0 ]] && grep -q 'unknown argument' '$OUT'"

# ------------------------------------------------------------------ 9. what a real account does (issue #16)
# Each failure comes from a knob of the stubs (see the top of stubs/aws and stubs/curl).

# 1. A new account has no ECS service-linked role: deploy makes it once, before the cluster,
# and create-cluster is retried while the new role cannot be assumed yet.
new_state slr
rc=0; EXTRA_ENV="AWS_STUB_NO_SLR=1 AWS_STUB_SLR_LAG=2" run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
s_slr=$(line_of '^aws iam create-service-linked-role --aws-service-name ecs.amazonaws.com')
w_slr=$(line_of '^aws iam wait role-exists --role-name AWSServiceRoleForECS$')
c_cl=$(line_of '^aws ecs create-cluster')
if [[ $rc -eq 0 && $(calls | grep -c 'create-service-linked-role') -eq 1 && $(calls | grep -c '^aws ecs create-cluster') -eq 3 &&
	-n $s_slr && -n $w_slr && -n $c_cl && $s_slr -lt $w_slr && $w_slr -lt $c_cl ]]; then
	pass "no ECS service-linked role: deploy creates it once and waits for it, before create-cluster (retried twice on 'Unable to assume the service linked role')"
else
	fail "ECS service-linked role (rc $rc)" "create $s_slr wait $w_slr create-cluster $c_cl$(printf '\n')$(tail -n 5 "$OUT")"
fi
: >"$STATE/calls.log"
rc=0; EXTRA_ENV="AWS_STUB_NO_SLR=1 AWS_STUB_SLR_LAG=2" run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
check "ECS service-linked role: a second deploy does not create it again" bash -c "[[ $rc -eq 0 ]] && ! grep -q create-service-linked-role '$STATE/calls.log'"
new_state slr-race
rc=0; EXTRA_ENV="AWS_STUB_NO_SLR=1 AWS_STUB_SLR_RACE=1" run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
check "ECS service-linked role made by someone else meanwhile ('has been taken in this account'): deploy goes on" bash -c "[[ $rc -eq 0 ]] && grep -q 'AWSServiceRoleForECS was created meanwhile' '$OUT'"

# 2. IAM propagation: roles created in this run are waited for; the first calls that use them
# are retried on IAM lag errors only, a bounded number of times.
check "roles created in this run: 'aws iam wait role-exists' for each, before the cluster" bash -c "
	w=\$(grep -n '^aws iam wait role-exists --role-name scdemo-task-execution\$' '$TMP/first-deploy.calls' | cut -d: -f1) &&
	grep -q '^aws iam wait role-exists --role-name scdemo-task\$' '$TMP/first-deploy.calls' &&
	c=\$(grep -n '^aws ecs create-cluster' '$TMP/first-deploy.calls' | cut -d: -f1) && [[ -n \$w && -n \$c && \$w -lt \$c ]]"
n_create() { grep -c '"create-service"' "$STATE/calls.log" || true; }
new_state iam-lag
rc=0; EXTRA_ENV="AWS_STUB_IAM_LAG=3" run_script deploy.sh --region eu-west-1 --tls "$PCA" --no-smoke-test || rc=$?
check "IAM lag ('ECS was unable to assume the configured ECS Infrastructure Role'): create-service retried, deploy succeeds" bash -c "
	[[ $rc -eq 0 && $(n_create) -eq 5 ]] && grep -q 'create-service: ECS cannot use a role created or changed in this run yet (.*ECS was unable to assume.*); retrying in 0s (3/10)' '$OUT'"
new_state iam-lag-bound
rc=0; EXTRA_ENV="AWS_STUB_IAM_LAG=1000" run_script deploy.sh --region eu-west-1 --tls "$PCA" --no-smoke-test || rc=$?
check "IAM lag that does not end: create-service tried 10 times, then a clear error" bash -c "
	[[ $rc -ne 0 && $(n_create) -eq 10 ]] && grep -q 'aws ecs create-service still fails after 10 tries' '$OUT' && grep -q 'unable to assume the configured ECS Infrastructure Role' '$OUT'"
new_state not-iam
rc=0; EXTRA_ENV="AWS_STUB_NOT_FARGATE=1" run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
check "an error that is not IAM lag stops deploy at once (create-service tried once)" bash -c "
	[[ $rc -ne 0 && $(n_create) -eq 1 ]] && grep -q 'does not support launch_type FARGATE' '$OUT' && grep -q 'aws ecs create-service failed' '$OUT' && ! grep -q retrying '$OUT'"
# Tasks that cannot start until their new role works: with the circuit breaker on, the first
# deployment would fail (the stub's services-stable then fails).
new_state task-role-lag
rc=0; EXTRA_ENV="AWS_STUB_TASK_ROLE_LAG=1" run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
breaker_off_then_on() {
	local n w u t f
	[[ $rc -eq 0 ]] || { tail -n 8 "$OUT"; return 1; }
	for n in responder caller; do
		f=$(grep -l "\"serviceName\": \"scdemo-$n\"" "$STATE"/inputs/*create-service*.json)
		grep -q '"deploymentCircuitBreaker": { "enable": false, "rollback": false }' "$f" || { echo "$n created with the breaker on"; return 1; }
		grep -q '"key": "SpecSha256", "value": "pending"' "$f" || { echo "$n created with its final SpecSha256 tag"; return 1; }
		w=$(line_of "^aws ecs wait services-stable --cluster scdemo --services scdemo-$n\$")
		u=$(line_of "^aws ecs update-service --cluster scdemo --service scdemo-$n --deployment-configuration \{ \"deploymentCircuitBreaker\": \{ \"enable\": true, \"rollback\": true \}, \"maximumPercent\": 200, \"minimumHealthyPercent\": 100 \}")
		t=$(line_of "^aws ecs tag-resource --resource-arn arn:aws:ecs:eu-west-1:123456789012:service/scdemo/scdemo-$n --tags key=SpecSha256,value=[0-9a-f]{64}\$")
		[[ -n $w && -n $u && -n $t && $w -lt $u && $u -lt $t ]] || { echo "$n: stable $w, update $u, tag $t"; return 1; }
	done
	node -e '
	const s = JSON.parse(require("fs").readFileSync(process.argv[1] + "/state.json", "utf8")).services;
	for (const n of ["scdemo-responder", "scdemo-caller"]) if (JSON.stringify(s[n].breakerLog) !== "[\"create:false\",\"update:true\"]") throw new Error(n + ": " + s[n].breakerLog);' "$STATE"
}
check "new roles: each service created with the circuit breaker off, once stable set to the template's, then tagged" breaker_off_then_on
: >"$STATE/calls.log"
rc=0; run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
muts=$(calls | grep -E "$MUTATING" || true)
if [[ $rc -eq 0 && -z $muts ]]; then pass "after the breaker-off create, a second deploy finds everything up to date"; else fail "deploy after breaker-off create (rc $rc)" "$muts"; fi

# 3. The execution role's trust policy is the documented one; the task role keeps its conditions.
check "execution role trusts ecs-tasks.amazonaws.com with no Condition; the task role with aws:SourceAccount and aws:SourceArn" node -e '
	const r = JSON.parse(require("fs").readFileSync(process.argv[1] + "/state.json", "utf8")).roles;
	const x = r["scdemo-task-execution"].trust.Statement, t = r["scdemo-task"].trust.Statement;
	if (x.length !== 1 || x[0].Principal.Service !== "ecs-tasks.amazonaws.com" || x[0].Action !== "sts:AssumeRole" || "Condition" in x[0]) throw new Error("execution role: " + JSON.stringify(x));
	const c = t[0].Condition || {};
	if (t[0].Principal.Service !== "ecs-tasks.amazonaws.com" || !(c.StringEquals || {})["aws:SourceAccount"] || !(c.ArnLike || {})["aws:SourceArn"]) throw new Error("task role: " + JSON.stringify(t));' "$TMP/state-after-deploy"

# 4. describe-tasks with another attachment before the network interface.
new_state attachments
rc=0; EXTRA_ENV="AWS_STUB_OTHER_ATTACHMENT=1" run_script deploy.sh --region eu-west-1 || rc=$?
check "another attachment listed first: the ElasticNetworkInterface one gives the public IPs" bash -c "
	[[ $rc -eq 0 ]] && grep -q '^caller    http://203.0.113.10:5000' '$OUT' && grep -q '^responder http://203.0.113.20:5000' '$OUT' && grep -q 'smoke test passed' '$OUT'"

# 5. curl leaves from an address the security group does not admit.
new_state exit-address
rc=0; EXTRA_ENV="AWS_STUB_CHECKIP=198.51.100.7,198.51.100.99 AWS_STUB_EXIT_IP=198.51.100.99" run_script deploy.sh --region eu-west-1 || rc=$?
n_task_curls=$(calls | grep -c '^curl .*:5000' || true)
first_task_curl=$(calls | grep -m 1 '^curl .*:5000' || true)
if [[ $rc -ne 0 && $n_task_curls -eq 1 && $first_task_curl == "curl -fsS --connect-timeout 5 "* ]] &&
	grep -q 'checkip.amazonaws.com now sees you at more than one address (198.51.100.7 198.51.100.99)' "$OUT" &&
	grep -q 'cannot connect to the caller at 203.0.113.10:5000 (curl exit 28). The security group admits port 5000 only from 198.51.100.7/32 (the address https://checkip.amazonaws.com saw: 198.51.100.7, 198.51.100.99).*--allowed-cidr.*--no-smoke-test' "$OUT"; then
	pass "several exit addresses: said before the smoke test; the first request that cannot connect stops it with the CIDR, the addresses and the fix"
else
	fail "exit address (rc $rc, $n_task_curls task requests)" "$first_task_curl$(printf '\n')$(tail -n 5 "$OUT")"
fi
new_state proxy
rc=0; EXTRA_ENV="https_proxy=http://demo:pw-not-to-print@proxy.example:3128 AWS_STUB_EXIT_IP=192.0.2.50" run_script deploy.sh --region eu-west-1 || rc=$?
check "a proxy in the environment: named (not its URL) before the smoke test and in the error" bash -c "
	[[ $rc -ne 0 ]] && grep -q 'curl goes through the proxy set in https_proxy' '$OUT' &&
	grep -q 'cannot connect to the caller.*curl goes through the proxy set in https_proxy' '$OUT' && ! grep -q pw-not-to-print '$OUT'"

# 6. The caller is restarted only when the responder's service is new and the caller's tasks are not.
new_state restart
rc=0; run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
: >"$STATE/calls.log"
rc=0; EXTRA_ENV="AWS_STUB_IMAGE_SALT=v2 AWS_STUB_IMAGE_SALT_FOR=responder" run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
check "a new responder image (update of an existing service): responder updated, the caller not restarted" bash -c "
	[[ $rc -eq 0 && $(calls | grep -c '^aws ecs update-service') -eq 1 ]] && grep -q '\"service\": \"scdemo-responder\"' \"\$(ls '$STATE'/inputs/*update-service*.json | tail -n 1)\""
# The responder's service gone (deleted by hand), the caller's still there.
env -i PATH="$BASE_PATH" STUB_STATE_DIR="$STATE" STUB_NODE_MODULES="$STUB_NODE_MODULES" bash -c '
	aws --region eu-west-1 ecs delete-service --cluster scdemo --service scdemo-responder --force >/dev/null &&
	aws --region eu-west-1 ecs wait services-inactive --cluster scdemo --services scdemo-responder'
: >"$STATE/calls.log"
rc=0; run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
c_resp=$(line_of '^aws ecs create-service')
r_call=$(line_of '^aws ecs update-service --cluster scdemo --service scdemo-caller --force-new-deployment')
if [[ $rc -eq 0 && -n $c_resp && -n $r_call && $c_resp -lt $r_call ]] &&
	grep -q "scdemo-responder was created in this run, after the caller's tasks started, and a Service Connect client only knows the services that existed when it started: restarting the caller's tasks" "$OUT"; then
	pass "responder service created anew while the caller's tasks run: the caller restarted, with the reason"
else
	fail "restart after a new responder service (rc $rc)" "create $c_resp restart $r_call$(printf '\n')$(tail -n 5 "$OUT")"
fi

# 7. Teardown waits for Fargate to release the tasks' network interfaces, within a bound.
new_state eni
rc=0; run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
: >"$STATE/calls.log"
rc=0; EXTRA_ENV="AWS_STUB_ENI_RELEASE_POLLS=3" run_script teardown.sh --region eu-west-1 || rc=$?
polls=$(calls | grep -c '^aws ec2 describe-network-interfaces --filters Name=group-id,Values=sg-' || true)
last_poll=$({ calls | grep -n '^aws ec2 describe-network-interfaces --filters' || true; } | tail -n 1 | cut -d: -f1)
d_sg=$(line_of '^aws ec2 delete-security-group')
if [[ $rc -eq 0 && $polls -eq 4 && -n $d_sg && $last_poll -lt $d_sg && $(calls | grep -c '^aws ec2 delete-security-group') -eq 1 ]] &&
	grep -q 'waiting for Fargate to release the network interfaces in security group sg-.*eni-' "$OUT" && ! grep -q 'ecs-sc!' "$OUT"; then
	pass "teardown: network interfaces in use for 3 polls after the services went; waited for, then the group deleted once"
else
	fail "teardown ENI wait (rc $rc)" "polls $polls, last poll $last_poll, delete-security-group $d_sg$(printf '\n')$(tail -n 5 "$OUT")"
fi
new_state eni-bound
rc=0; run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
: >"$STATE/calls.log"
rc=0; EXTRA_ENV="AWS_STUB_ENI_RELEASE_POLLS=1000 SCD_ENI_WAIT_TRIES=5" run_script teardown.sh --region eu-west-1 || rc=$?
polls=$(calls | grep -c '^aws ec2 describe-network-interfaces --filters' || true)
check "teardown: interfaces that stay past the bound: stops after it, names them and says to run teardown again" bash -c "
	[[ $rc -ne 0 && $polls -eq 5 ]] && ! grep -q 'delete-security-group' '$STATE/calls.log' &&
	grep -q 'still has network interfaces after 5 polls, 0s apart: eni-[0-9]* eni-[0-9]*\..*Run deploy/teardown.sh again later' '$OUT'"

# 8. The first CLI whose ECS model has Service Connect timeout and tls is 2.15.14.
new_state cli-version
rc=0; EXTRA_ENV="AWS_STUB_CLI_VERSION=2.15.13" run_script deploy.sh --region eu-west-1 --dry-run || rc=$?
old_warned=$(grep -c 'aws-cli/2.15.13 is older than 2.15.14' "$OUT" || true)
rc2=0; EXTRA_ENV="AWS_STUB_CLI_VERSION=2.15.14" run_script deploy.sh --region eu-west-1 --dry-run || rc2=$?
if [[ $rc -eq 0 && $rc2 -eq 0 && $old_warned -eq 1 ]] && ! grep -q 'is older than' "$OUT"; then
	pass "AWS CLI 2.15.13 gets the warning about Service Connect timeout/tls, 2.15.14 does not"
else
	fail "CLI version warning (rc $rc/$rc2, warned $old_warned)" "$(tail -n 5 "$OUT")"
fi

# ------------------------------------------------------------------ 10. deploy.sh rollout (issue #17)
# A new responder version (APP_VERSION) rolled out with an ECS deployment strategy, on the stubs:
# the calls, their order and arguments, the dry run, idempotence, the CLI version, arguments
# refused before any call, and a rollback on the CloudWatch alarm (AWS_STUB_DEPLOYMENT_ROLLED_BACK).
ROLL_INPUTS="$TMP/rollout-inputs"
mkdir -p "$ROLL_INPUTS"
# env_of TASKDEF_INPUT NAME: a container environment value of a captured task definition input.
env_of() { node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const v = j.containerDefinitions[0].environment.find((x) => x.name === process.argv[2]); console.log(v ? v.value : "<none>")' "$1" "$2"; }
# conf_of UPDATE_INPUT: its deploymentConfiguration as compact JSON; member_of: one member.
conf_of() { node -e 'console.log(JSON.stringify(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).deploymentConfiguration))' "$1"; }
member_of() { node -e 'const v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[process.argv[2]]; console.log(typeof v === "string" ? v : JSON.stringify(v))' "$1" "$2"; }
last_input() { { find "$STATE/inputs" -name "*-$1.json" 2>/dev/null || true; } | sort | tail -n 1; }
# keep_update N: the last captured update-service input, for the validator (none: its checks fail).
keep_update() { [[ -z $upd_in ]] || cp "$upd_in" "$ROLL_INPUTS/$1-update-service.json"; }
n_calls() { { calls | grep -c -E "$1" || true; } | head -n 1; }
BREAKER='"deploymentCircuitBreaker":{"enable":true,"rollback":true},"maximumPercent":200,"minimumHealthyPercent":100'
# The checks below run in bash -c: they need these.
export -f env_of conf_of member_of n_calls calls
export STATE MUTATING

new_state rollout
rc=0; run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
check "first deploy sets APP_VERSION=1 in both task definitions" bash -c "[[ $rc -eq 0 ]] && for f in '$STATE'/inputs/*register-task-definition.json; do [[ \$(env_of \"\$f\" APP_VERSION) == 1 ]] || exit 1; done"
first_td=$(last_input register-task-definition)
first_image=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).containerDefinitions[0].image' "$(grep -l '"family": "scdemo-responder"' "$STATE"/inputs/*register-task-definition.json)" || true)

# canary with the defaults
: >"$STATE/calls.log"
rc=0; run_script deploy.sh rollout --region eu-west-1 --version 2 || rc=$?
expect_ok "$rc" "rollout --version 2 (canary, defaults) succeeds"
r_td=$(line_of '^aws ecs register-task-definition')
u_svc=$(line_of '^aws ecs update-service --cli-input-json')
w_dep=$(line_of '^aws ecs describe-service-deployments --cluster scdemo --service-deployment-arns arn:aws:ecs:eu-west-1:123456789012:service-deployment/scdemo/scdemo-responder/')
if [[ -n $r_td && -n $u_svc && -n $w_dep && $r_td -lt $u_svc && $u_svc -lt $w_dep && $(n_calls '^aws ecs register-task-definition') -eq 1 && $(n_calls '^aws ecs update-service') -eq 1 ]]; then
	pass "rollout: one new responder task definition, then one update-service, then the deployment polled (describe-service-deployments)"
else
	fail "rollout call order" "register $r_td update $u_svc poll $w_dep$(printf '\n')$(calls | grep -E 'ecs (register|update|describe-service-deployments)')"
fi
td_in=$(last_input register-task-definition)
upd_in=$(last_input update-service)
keep_update "001"
check "rollout: the new revision is the responder's, same image, APP_VERSION=2, FAULT_ERROR_RATE=0" bash -c "
	grep -q '\"family\": \"scdemo-responder\"' '$td_in' && [[ \$(env_of '$td_in' APP_VERSION) == 2 && \$(env_of '$td_in' FAULT_ERROR_RATE) == 0 ]] &&
	grep -qF '\"image\": \"$first_image\"' '$td_in' && [[ '$td_in' != '$first_td' ]]"
check "rollout: update-service names the responder, the new revision, and CANARY 10% for 3 min, bake 2 min, the circuit breaker kept" bash -c "
	[[ \$(member_of '$upd_in' service) == scdemo-responder && \$(member_of '$upd_in' cluster) == scdemo ]] &&
	[[ \$(member_of '$upd_in' taskDefinition) == arn:aws:ecs:eu-west-1:123456789012:task-definition/scdemo-responder:2 ]] &&
	[[ \$(conf_of '$upd_in') == '{$BREAKER,\"strategy\":\"CANARY\",\"canaryConfiguration\":{\"canaryPercent\":10,\"canaryBakeTimeInMinutes\":3},\"bakeTimeInMinutes\":2}' ]]"
check "rollout: prints the caller's address and the watcher line, then each traffic share, then done" bash -c "
	grep -q '^caller    http://203.0.113.10:5000\$' '$OUT' && grep -q '^watch:    scripts/watch-versions.sh http://203.0.113.10:5000 ' '$OUT' &&
	w=\$(grep -n 'version 2 gets 10% of the requests' '$OUT' | cut -d: -f1) && a=\$(grep -n 'version 2 gets 100% of the requests' '$OUT' | head -n 1 | cut -d: -f1) &&
	d=\$(grep -n 'done: scdemo-responder runs version 2 ' '$OUT' | cut -d: -f1) && [[ \$w -lt \$a && \$a -lt \$d ]]"
caller_calls=$(calls | grep -E '^aws ecs (update-service|register-task-definition)' | grep -v -- '--cli-input-json' || true)
if [[ -z $caller_calls && $(n_calls '^aws ecs (update-service|register-task-definition)') -eq 2 ]] && ! grep -q 'scdemo-caller' "$upd_in" && ! grep -q '"family": "scdemo-caller"' "$td_in"; then
	pass "rollout: the caller is left alone (no update, no restart, no new caller revision)"
else
	fail "rollout touched the caller" "$caller_calls"
fi

# canary with its settings given
: >"$STATE/calls.log"
rc=0; run_script deploy.sh rollout --region eu-west-1 --version 3 --canary-percent 12.5 --canary-bake-min 4 --bake-min 0 || rc=$?
upd_in=$(last_input update-service)
check "rollout --canary-percent 12.5 --canary-bake-min 4 --bake-min 0: those values, unchanged, in update-service" bash -c "
	[[ $rc -eq 0 && \$(conf_of '$upd_in') == '{$BREAKER,\"strategy\":\"CANARY\",\"canaryConfiguration\":{\"canaryPercent\":12.5,\"canaryBakeTimeInMinutes\":4},\"bakeTimeInMinutes\":0}' ]]"

# linear
: >"$STATE/calls.log"
rc=0; run_script deploy.sh rollout --region eu-west-1 --version 4 --strategy linear --linear-step-percent 20 --linear-step-bake-min 2 --bake-min 1 || rc=$?
upd_in=$(last_input update-service)
keep_update "002"
check "rollout --strategy linear --linear-step-percent 20 --linear-step-bake-min 2 --bake-min 1: LINEAR with those values" bash -c "
	[[ $rc -eq 0 && \$(conf_of '$upd_in') == '{$BREAKER,\"strategy\":\"LINEAR\",\"linearConfiguration\":{\"stepPercent\":20,\"stepBakeTimeInMinutes\":2},\"bakeTimeInMinutes\":1}' ]]"
check "rollout linear: each step's share printed in order, 20% to 100%" bash -c "
	prev=0; for w in 20 40 60 80 100; do n=\$(grep -n \"version 4 gets \$w% of\" '$OUT' | head -n 1 | cut -d: -f1); [[ -n \$n && \$n -gt \$prev ]] || exit 1; prev=\$n; done"

# rolling
: >"$STATE/calls.log"
rc=0; run_script deploy.sh rollout --region eu-west-1 --version 5 --strategy rolling || rc=$?
upd_in=$(last_input update-service)
keep_update "003"
check "rollout --strategy rolling: ROLLING with the template's breaker and task counts, no canary/linear/bake settings, waited for" bash -c "
	[[ $rc -eq 0 && \$(conf_of '$upd_in') == '{$BREAKER,\"strategy\":\"ROLLING\"}' ]] && [[ \$(n_calls '^aws ecs describe-service-deployments') -ge 1 ]] && grep -q 'done: scdemo-responder runs version 5 ' '$OUT'"

# idempotence: the same rollout again changes nothing
: >"$STATE/calls.log"
rc=0; run_script deploy.sh rollout --region eu-west-1 --version 5 --strategy rolling || rc=$?
muts=$(calls | grep -E "$MUTATING" || true)
if [[ $rc -eq 0 && -z $muts ]] && grep -q 'scdemo-responder already runs version 5 .*nothing to do' "$OUT"; then
	pass "the same rollout again makes no mutating call and says so"
else
	fail "rollout idempotence (rc $rc)" "$muts"
fi
: >"$STATE/calls.log"
rc=0; run_script deploy.sh rollout --region eu-west-1 --version 5 --strategy linear || rc=$?
check "the same version with another strategy is rolled out again (the configuration changed)" bash -c "[[ $rc -eq 0 && \$(n_calls '^aws ecs update-service') -eq 1 && \$(n_calls '^aws ecs register-task-definition') -eq 0 ]]"

# dry run
: >"$STATE/calls.log"
rc=0; run_script deploy.sh rollout --region eu-west-1 --version 6 --rollback-alarm --dry-run || rc=$?
sent=$(calls | grep -v -E '^aws --version$' || true)
if [[ $rc -eq 0 && -z $sent ]] && grep -q 'DRY-RUN (write): aws --region eu-west-1 ecs register-task-definition' "$OUT" &&
	grep -q 'DRY-RUN (write): aws --region eu-west-1 cloudwatch put-metric-alarm --alarm-name scdemo-responder-5xx' "$OUT" &&
	grep -q 'DRY-RUN (write): aws --region eu-west-1 ecs update-service --cli-input-json file://' "$OUT" &&
	grep -q '^watch:    scripts/watch-versions.sh http://<scdemo-caller-public-ip>:5000' "$OUT"; then
	pass "rollout --dry-run prints the task definition, alarm and update-service calls and the watch line, sends nothing"
else
	fail "rollout --dry-run (rc $rc)" "$sent"
fi

# the AWS CLI version
: >"$STATE/calls.log"
rc=0; EXTRA_ENV="AWS_STUB_CLI_VERSION=2.31.23" run_script deploy.sh rollout --region eu-west-1 --version 7 --strategy canary || rc=$?
sent=$(calls | grep -v -E '^aws --version$' || true)
check "AWS CLI 2.31.23 with --strategy canary: refused, naming 2.31.24, before any AWS call" bash -c "[[ $rc -ne 0 && -z '$sent' ]] && grep -q 'strategy canary needs AWS CLI 2.31.24 or newer.*aws-cli/2.31.23' '$OUT'"
rc=0; EXTRA_ENV="AWS_STUB_CLI_VERSION=2.31.23" run_script deploy.sh rollout --region eu-west-1 --version 7 --strategy linear || rc=$?
check "AWS CLI 2.31.23 with --strategy linear: refused too" bash -c "[[ $rc -ne 0 ]] && grep -q 'strategy linear needs AWS CLI 2.31.24 or newer' '$OUT'"
rc=0; EXTRA_ENV="AWS_STUB_CLI_VERSION=2.31.24" run_script deploy.sh rollout --region eu-west-1 --version 7 --strategy canary --dry-run || rc=$?
check "AWS CLI 2.31.24 with --strategy canary: accepted" bash -c "[[ $rc -eq 0 ]] && grep -q 'ecs update-service' '$OUT'"
: >"$STATE/calls.log"
rc=0; EXTRA_ENV="AWS_STUB_CLI_VERSION=2.31.23" run_script deploy.sh rollout --region eu-west-1 --version 7 --strategy rolling || rc=$?
upd_in=$(last_input update-service)
check "AWS CLI 2.31.23 with --strategy rolling: no 'strategy' member, waited for with services-stable, the new revision checked" bash -c "
	[[ $rc -eq 0 && \$(conf_of '$upd_in') == '{$BREAKER}' && \$(n_calls '^aws ecs describe-service-deployments') -eq 0 ]] &&
	[[ \$(n_calls '^aws ecs wait services-stable --cluster scdemo --services scdemo-responder') -eq 1 ]] && grep -q 'done: scdemo-responder runs version 7 ' '$OUT'"

# arguments refused before any AWS call (not even aws --version)
refused() {
	local want=$1
	shift
	: >"$STATE/calls.log"
	rc=0; run_script deploy.sh "$@" || rc=$?
	if [[ $rc -ne 0 && ! -s $STATE/calls.log ]] && grep -qF -- "$want" "$OUT"; then
		pass "refused before any AWS call: deploy.sh $*"
	else
		fail "refused before any AWS call: deploy.sh $* (rc $rc, wanted: $want)" "$(cat "$STATE/calls.log")$(printf '\n')$(tail -n 3 "$OUT")"
	fi
}
refused "needs --version V" rollout --region eu-west-1
refused "--version 'two words'" rollout --region eu-west-1 --version "two words"
refused "--strategy 'weighted': use rolling, canary or linear" rollout --region eu-west-1 --version 2 --strategy weighted
refused "--canary-percent '0' must be a multiple of 0.1 from 0.1 to 100" rollout --region eu-west-1 --version 2 --canary-percent 0
refused "--canary-percent '100.1' must be a multiple of 0.1 from 0.1 to 100" rollout --region eu-west-1 --version 2 --canary-percent 100.1
refused "--canary-percent '12.34' must be a multiple of 0.1" rollout --region eu-west-1 --version 2 --canary-percent 12.34
refused "--linear-step-percent '2.9' must be a multiple of 0.1 from 3.0 to 100" rollout --region eu-west-1 --version 2 --strategy linear --linear-step-percent 2.9
refused "--canary-bake-min '1441' must be a whole number of minutes from 0 to 1440" rollout --region eu-west-1 --version 2 --canary-bake-min 1441
refused "--bake-min '1.5' must be a whole number" rollout --region eu-west-1 --version 2 --bake-min 1.5
refused "--canary-percent and --canary-bake-min only go with --strategy canary (not linear)" rollout --region eu-west-1 --version 2 --strategy linear --canary-percent 10
refused "--linear-step-percent and --linear-step-bake-min only go with --strategy linear (not canary)" rollout --region eu-west-1 --version 2 --linear-step-bake-min 1
refused "--bake-min only goes with --strategy canary or linear" rollout --region eu-west-1 --version 2 --strategy rolling --bake-min 2
refused "--fault-error-rate '2' is not a number from 0 to 1" rollout --region eu-west-1 --version 2 --fault-error-rate 2
refused "--tls is not an option of 'deploy.sh rollout'" rollout --region eu-west-1 --version 2 --tls arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/x
refused "--strategy only goes with 'deploy.sh rollout'" --region eu-west-1 --strategy canary
refused "--app-version 'a b': use 1-32 characters" --region eu-west-1 --app-version "a b"

# rollback on the alarm
: >"$STATE/calls.log"
before_td=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1] + "/state.json", "utf8")).services["scdemo-responder"].taskDefinition' "$STATE" || true)
rc=0; EXTRA_ENV="AWS_STUB_DEPLOYMENT_ROLLED_BACK=1" run_script deploy.sh rollout --region eu-west-1 --version 8 --rollback-alarm --fault-error-rate 0.5 || rc=$?
p_al=$(line_of '^aws cloudwatch put-metric-alarm --alarm-name scdemo-responder-5xx .*--namespace AWS/ECS --metric-name HTTPCode_Target_5XX_Count --dimensions Name=ClusterName,Value=scdemo Name=ServiceName,Value=scdemo-caller Name=TargetDiscoveryName,Value=responder --statistic Sum --period 60 --evaluation-periods 1 --datapoints-to-alarm 1 --threshold 3 --comparison-operator GreaterThanOrEqualToThreshold --treat-missing-data notBreaching --tags Key=Project,Value=scdemo Key=SpecSha256,Value=[0-9a-f]{64}$')
u_svc=$(line_of '^aws ecs update-service --cli-input-json')
upd_in=$(last_input update-service)
td_in=$(last_input register-task-definition)
keep_update "004"
if [[ -n $p_al && -n $u_svc && $p_al -lt $u_svc ]] &&
	[[ $(conf_of "$upd_in") == "{$BREAKER,\"strategy\":\"CANARY\",\"canaryConfiguration\":{\"canaryPercent\":10,\"canaryBakeTimeInMinutes\":3},\"bakeTimeInMinutes\":2,\"alarms\":{\"alarmNames\":[\"scdemo-responder-5xx\"],\"enable\":true,\"rollback\":true}}" ]]; then
	pass "--rollback-alarm: the alarm on AWS/ECS HTTPCode_Target_5XX_Count (cluster, caller, TargetDiscoveryName responder) is created before update-service, which names it with rollback=true"
else
	fail "--rollback-alarm calls (put-metric-alarm $p_al, update-service $u_svc)" "$(conf_of "$upd_in")$(printf '\n')$(calls | grep cloudwatch)"
fi
check "--fault-error-rate 0.5 goes to the new revision only: FAULT_ERROR_RATE=0.5, APP_VERSION=8" bash -c "[[ \$(env_of '$td_in' FAULT_ERROR_RATE) == 0.5 && \$(env_of '$td_in' APP_VERSION) == 8 ]]"
after_td=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1] + "/state.json", "utf8")).services["scdemo-responder"].taskDefinition' "$STATE" || true)
if [[ $rc -eq 3 && $after_td == "$before_td" ]] &&
	grep -q '^error: ECS rolled the deployment of responder version 8 back: CloudWatch alarm(s) scdemo-responder-5xx in ALARM state' "$OUT" &&
	grep -q '^error: scdemo-responder runs its previous task definition again' "$OUT" &&
	grep -q 'describe-alarm-history --region eu-west-1 --alarm-name scdemo-responder-5xx' "$OUT" && ! grep -q 'done: scdemo-responder runs version 8' "$OUT"; then
	pass "deployment rolled back on the alarm (ROLLBACK_SUCCESSFUL): exit 3, the reason and the alarm named, no 'done'"
else
	fail "rollback report (rc $rc, service on $after_td, was $before_td)" "$(tail -n 6 "$OUT")"
fi
: >"$STATE/calls.log"
rc=0; run_script deploy.sh rollout --region eu-west-1 --version 8 --rollback-alarm --fault-error-rate 0.5 || rc=$?
check "after the rollback, the same rollout again: the alarm is up to date (not written), the deployment is made again" bash -c "
	[[ $rc -eq 0 && \$(n_calls '^aws cloudwatch (put|tag)') -eq 0 && \$(n_calls '^aws ecs update-service') -eq 1 && \$(n_calls '^aws ecs register-task-definition') -eq 0 ]] && grep -q 'CloudWatch alarm scdemo-responder-5xx is up to date' '$OUT'"
: >"$STATE/calls.log"
rc=0; run_script deploy.sh rollout --region eu-west-1 --version 8 --rollback-alarm --fault-error-rate 0.5 || rc=$?
muts=$(calls | grep -E "$MUTATING" || true)
if [[ $rc -eq 0 && -z $muts ]]; then pass "rollout with --rollback-alarm a third time: no mutating call"; else fail "rollout with alarm, idempotence (rc $rc)" "$muts"; fi

node "$HERE/validate.js" --captured "$ROLL_INPUTS" --strategy-negatives >"$TMP/captured-rollout.out" 2>&1 || true
absorb <"$TMP/captured-rollout.out"
grep -q '^PASS: rejects linearConfiguration under CANARY' "$TMP/captured-rollout.out" || fail "validator did not run its deployment strategy negative tests"

# teardown removes the alarm (and only one with the Project tag)
: >"$STATE/calls.log"
rc=0; run_script teardown.sh --region eu-west-1 || rc=$?
check "teardown deletes the rollback alarm" bash -c "[[ $rc -eq 0 && \$(n_calls '^aws cloudwatch delete-alarms --alarm-names scdemo-responder-5xx\$') -eq 1 ]] &&
	node -e 'process.exit(Object.keys(JSON.parse(require(\"fs\").readFileSync(\"$STATE/state.json\", \"utf8\")).alarms || {}).length ? 1 : 0)'"
: >"$STATE/calls.log"
rc=0; run_script teardown.sh --region eu-west-1 || rc=$?
check "a second teardown deletes no alarm" bash -c "[[ $rc -eq 0 && \$(n_calls '^aws cloudwatch delete') -eq 0 ]]"
rc=0; EXTRA_ENV="AWS_STUB_CLOUDWATCH_DENIED=1" run_script teardown.sh --region eu-west-1 || rc=$?
check "teardown by an identity without CloudWatch permissions: a warning about the alarm, the rest torn down" bash -c "
	[[ $rc -eq 0 ]] && grep -q 'warning: could not look for the CloudWatch alarm scdemo-responder-5xx (.*AccessDenied' '$OUT'"
rc=0; run_script deploy.sh rollout --region eu-west-1 --version 9 || rc=$?
check "rollout with no responder service: clear error, nothing created" bash -c "[[ $rc -ne 0 ]] && grep -q 'no active service scdemo-responder in cluster scdemo (eu-west-1): run deploy/deploy.sh first' '$OUT' && ! calls | grep -q -E '$MUTATING'"

new_state app-version
rc=0; run_script deploy.sh --region eu-west-1 --no-smoke-test --app-version 7 || rc=$?
check "deploy --app-version 7: APP_VERSION=7 in both task definitions" bash -c "[[ $rc -eq 0 ]] && for f in '$STATE'/inputs/*register-task-definition.json; do [[ \$(env_of \"\$f\" APP_VERSION) == 7 ]] || exit 1; done"
rc=0; run_script deploy.sh rollout --help || rc=$?
check "deploy.sh --help describes rollout and its options" bash -c "[[ $rc -eq 0 ]] && grep -q 'deploy/deploy.sh rollout --version V' '$OUT' && grep -q -- '--canary-percent P' '$OUT' && grep -q -- '--linear-step-bake-min M' '$OUT' && grep -q -- '--rollback-alarm' '$OUT'"

# ------------------------------------------------------------------ 11. X-Ray tracing (issue #18)
# deploy.sh --tracing: the X-Ray daemon sidecar (task-definitions/xray-daemon.json) in every task
# definition it registers, XRAY_TRACING=1 for the daemons, the task role's inline policy
# PREFIX-xray; a rollout keeps it; a deploy without --tracing takes it all away again; teardown
# removes the policy with the role.
# inputs_since N: the captured inputs after the first N (the stub numbers them in order).
inputs_since() { { ls "$STATE/inputs" 2>/dev/null || true; } | sort | tail -n +$(($1 + 1)); }
n_inputs() { { ls "$STATE/inputs" 2>/dev/null || true; } | wc -l; }
# traced FILE...: each task definition input has the sidecar from task-definitions/xray-daemon.json
# (last, as the fragment says, logging to its own task's group) and XRAY_TRACING=1 and
# AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000 in its first container; untraced FILE...: none of it.
traced() { node -e '
	const fs = require("fs"), frag = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
	for (const f of process.argv.slice(2)) {
	  const t = JSON.parse(fs.readFileSync(f, "utf8")), cs = t.containerDefinitions, x = cs[cs.length - 1], app = cs[0];
	  const env = Object.fromEntries(app.environment.map((v) => [v.name, v.value]));
	  if (x.name !== "xray-daemon" || x.image !== frag.image || x.essential !== false || JSON.stringify(x.portMappings) !== JSON.stringify(frag.portMappings)) throw new Error(f + ": no sidecar as in xray-daemon.json: " + JSON.stringify(x).slice(0, 200));
	  if (x.logConfiguration.options["awslogs-group"] !== app.logConfiguration.options["awslogs-group"] || x.environment[0].value !== "eu-west-1") throw new Error(f + ": sidecar logs or region");
	  if (env.XRAY_TRACING !== "1" || env.AWS_XRAY_DAEMON_ADDRESS !== "127.0.0.1:2000") throw new Error(f + ": " + app.name + " environment " + JSON.stringify(env));
	}' "$ROOT/task-definitions/xray-daemon.json" "$@"; }
untraced() { node -e '
	for (const f of process.argv.slice(1)) {
	  const t = JSON.parse(require("fs").readFileSync(f, "utf8"));
	  if (t.containerDefinitions.some((c) => /xray/i.test(c.name) || /xray/i.test(c.image) || (c.environment || []).some((v) => /XRAY/.test(v.name)))) throw new Error(f + ": X-Ray in an untraced task definition");
	}' "$@"; }
# xray_policy STATE_DIR: "yes" when the task role has the inline policy scdemo-xray equal to
# deploy/iam/xray-policy.json, "no" when it has none.
xray_policy() { node -e '
	const fs = require("fs"), s = JSON.parse(fs.readFileSync(process.argv[1] + "/state.json", "utf8"));
	const r = (s.roles || {})["scdemo-task"], p = r && r.inline["scdemo-xray"];
	if (!p) { console.log("no"); process.exit(0); }
	console.log(JSON.stringify(p) === JSON.stringify(JSON.parse(fs.readFileSync(process.argv[2], "utf8"))) ? "yes" : "different: " + JSON.stringify(p));' "$1" "$ROOT/deploy/iam/xray-policy.json"; }
export -f traced untraced xray_policy
export ROOT

check "without --tracing (the first deploy): no sidecar, no XRAY_ setting, no X-Ray policy, no X-Ray write" bash -c "
	untraced '$TMP/state-after-deploy'/inputs/*register-task-definition.json && [[ \$(xray_policy '$TMP/state-after-deploy') == no ]] &&
	! grep -E '^aws iam (put|delete)-role-policy.*xray' '$TMP/first-deploy.calls' && ! grep -qi xray '$TMP/first-deploy.out'"

new_state tracing
TRACE_INPUTS="$TMP/tracing-inputs"
mkdir -p "$TRACE_INPUTS"
rc=0; run_script deploy.sh --region eu-west-1 --tracing || rc=$?
expect_ok "$rc" "deploy --tracing succeeds on the stubs"
cp "$STATE"/inputs/*register-task-definition.json "$TRACE_INPUTS/" 2>/dev/null || true
p_x=$(line_of '^aws iam put-role-policy --role-name scdemo-task --policy-name scdemo-xray --policy-document file://')
t_reg=$(line_of '^aws ecs register-task-definition')
check "--tracing: both task definitions have the X-Ray daemon sidecar, XRAY_TRACING=1 and AWS_XRAY_DAEMON_ADDRESS" bash -c "
	[[ \$(ls '$STATE'/inputs/*register-task-definition.json | wc -l) -eq 2 ]] && traced '$STATE'/inputs/*register-task-definition.json"
check "--tracing: the task role gets the inline policy scdemo-xray (deploy/iam/xray-policy.json) before the task definitions; the execution role nothing new" bash -c "
	[[ -n '$p_x' && -n '$t_reg' && '$p_x' -lt '$t_reg' && \$(xray_policy '$STATE') == yes ]] &&
	[[ \$(calls | grep -c '^aws iam put-role-policy') -eq 3 ]] && ! calls | grep -q 'put-role-policy --role-name scdemo-task-execution --policy-name scdemo-xray'"
check "--tracing: the smoke test still passes" grep -q 'smoke test passed' "$OUT"

: >"$STATE/calls.log"
rc=0; run_script deploy.sh --region eu-west-1 --tracing --no-smoke-test || rc=$?
muts=$(calls | grep -E "$MUTATING" || true)
if [[ $rc -eq 0 && -z $muts ]] && grep -q 'inline policy scdemo-xray of scdemo-task is up to date' "$OUT"; then
	pass "deploy --tracing a second time: no mutating call (policy and task definitions up to date)"
else
	fail "deploy --tracing idempotence (rc $rc)" "$muts"
fi

# A rollout of the traced deployment keeps tracing: it reads XRAY_TRACING from the running revision.
mark=$(n_inputs)
: >"$STATE/calls.log"
rc=0; run_script deploy.sh rollout --region eu-west-1 --version 2 --strategy rolling || rc=$?
td_in=$(inputs_since "$mark" | grep register-task-definition | sed "s|^|$STATE/inputs/|" || true)
check "rollout of a traced deployment: the new responder revision keeps the sidecar and XRAY_TRACING=1, no IAM call" bash -c "
	[[ $rc -eq 0 && -n '$td_in' && \$(echo '$td_in' | wc -l) -eq 1 ]] && grep -q '\"family\": \"scdemo-responder\"' '$td_in' && traced '$td_in' &&
	[[ \$(env_of '$td_in' APP_VERSION) == 2 ]] && ! calls | grep -q '^aws iam' && grep -q 'the new revision keeps the X-Ray daemon sidecar' '$OUT'"
[[ -z $td_in ]] || cp "$td_in" "$TRACE_INPUTS/"
# deploy.sh's two traced task definitions and the rollout's, against the model and the sidecar
# rules, and the negative tests on them.
node "$HERE/validate.js" --captured "$TRACE_INPUTS" --tracing >"$TMP/captured-tracing.out" 2>&1 || true
absorb <"$TMP/captured-tracing.out"
grep -q '^PASS: rejects sidecar essential' "$TMP/captured-tracing.out" || fail "validator did not run its tracing negative tests"
[[ $(grep -c '^PASS: captured .* has the X-Ray daemon sidecar' "$TMP/captured-tracing.out") -eq 3 ]] || fail "validator did not see the three traced task definitions (deploy, rollout)"

# mTLS with tracing
new_state tracing-mtls
rc=0; EXTRA_ENV="MTLS=1" run_script deploy.sh --region eu-west-1 --tracing --no-smoke-test || rc=$?
check "MTLS=1 --tracing: both mTLS task definitions have the sidecar (the responder's also keeps serviceconnect-hold) and their secrets" bash -c "
	[[ $rc -eq 0 ]] && traced '$STATE'/inputs/*register-task-definition.json &&
	grep -q '\"name\": \"serviceconnect-hold\"' \"\$(grep -l '\"family\": \"scdemo-responder\"' '$STATE'/inputs/*register-task-definition.json)\" &&
	[[ \$(grep -l 'TLS_KEY_PEM' '$STATE'/inputs/*register-task-definition.json | wc -l) -eq 2 && \$(xray_policy '$STATE') == yes ]]"
node "$HERE/validate.js" --captured "$STATE/inputs" --tracing >"$TMP/captured-tracing-mtls.out" 2>&1 || true
absorb <"$TMP/captured-tracing-mtls.out"
rc=0; run_script teardown.sh --region eu-west-1 || rc=$?
check "MTLS=1 --tracing teardown: scdemo-xray and scdemo-mtls-secrets deleted, then the roles; nothing left" bash -c "
	[[ $rc -eq 0 ]] && calls | grep -q '^aws iam delete-role-policy --role-name scdemo-task --policy-name scdemo-xray\$' &&
	node -e 'const s = JSON.parse(require(\"fs\").readFileSync(\"$STATE/state.json\", \"utf8\")); process.exit(Object.keys(s.roles).length || Object.keys(s.secrets).length ? 1 : 0)'"

# Tracing off again: a deploy without --tracing on the traced deployment.
STATE="$TMP/state-tracing"
mark=$(n_inputs)
: >"$STATE/calls.log"
rc=0; run_script deploy.sh --region eu-west-1 --no-smoke-test || rc=$?
off_tds=$(inputs_since "$mark" | grep register-task-definition | sed "s|^|$STATE/inputs/|" | tr '\n' ' ' || true)
u_last=$({ calls | grep -n '^aws ecs update-service' || true; } | tail -n 1 | cut -d: -f1)
d_x=$(line_of '^aws iam delete-role-policy --role-name scdemo-task --policy-name scdemo-xray$')
check "deploy without --tracing after --tracing: new revisions without the sidecar, both services updated, then the policy deleted" bash -c "
	[[ $rc -eq 0 && \$(echo $off_tds | wc -w) -eq 2 ]] && untraced $off_tds &&
	[[ \$(n_calls '^aws ecs update-service --cli-input-json') -eq 2 && -n '$u_last' && -n '$d_x' && '$u_last' -lt '$d_x' && \$(xray_policy '$STATE') == no ]]"
mark=$(n_inputs)
: >"$STATE/calls.log"
rc=0; run_script deploy.sh rollout --region eu-west-1 --version 3 --strategy rolling || rc=$?
td_in=$(inputs_since "$mark" | grep register-task-definition | sed "s|^|$STATE/inputs/|" || true)
check "rollout after tracing was turned off: no sidecar in the new revision" bash -c "[[ $rc -eq 0 && -n '$td_in' ]] && untraced '$td_in' && ! grep -q 'keeps the X-Ray daemon' '$OUT'"
: >"$STATE/calls.log"
rc=0; run_script deploy.sh --region eu-west-1 --tracing --no-smoke-test || rc=$?
on_again=$(xray_policy "$STATE")
: >"$STATE/calls.log"
rc2=0; run_script teardown.sh --region eu-west-1 || rc2=$?
d_x=$(line_of '^aws iam delete-role-policy --role-name scdemo-task --policy-name scdemo-xray$')
d_role=$(line_of '^aws iam delete-role --role-name scdemo-task$')
check "--tracing on again, then teardown: the policy scdemo-xray is deleted before its role; nothing left" bash -c "
	[[ $rc -eq 0 && $rc2 -eq 0 && $on_again == yes && -n '$d_x' && -n '$d_role' && '$d_x' -lt '$d_role' ]] &&
	node -e 'const s = JSON.parse(require(\"fs\").readFileSync(\"$STATE/state.json\", \"utf8\")); process.exit(Object.keys(s.roles).length ? 1 : 0)'"

# dry run, and what is refused
new_state tracing-dry
rc=0; run_script deploy.sh --region eu-west-1 --tracing --dry-run || rc=$?
sent=$(calls | grep -v -E '^aws --version$' || true)
check "deploy --tracing --dry-run prints the put-role-policy for scdemo-xray, sends nothing" bash -c "
	[[ $rc -eq 0 && -z '$sent' ]] && grep -q 'DRY-RUN (write): aws --region eu-west-1 iam put-role-policy --role-name scdemo-task --policy-name scdemo-xray' '$OUT'"
refused "--tracing is not an option of 'deploy.sh rollout'" rollout --region eu-west-1 --version 2 --tracing
rc=0; EXTRA_ENV="SCD_TRACING=2" run_script deploy.sh --region eu-west-1 --dry-run || rc=$?
check "SCD_TRACING=2: refused" bash -c "[[ $rc -ne 0 ]] && grep -q 'SCD_TRACING=2: expected 0 or 1' '$OUT'"
rc=0; run_script deploy.sh --help || rc=$?
check "deploy.sh --help describes --tracing" bash -c "[[ $rc -eq 0 ]] && grep -q -- '--tracing  .*AWS X-Ray tracing' '$OUT'"

printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
[[ $FAILED -eq 0 ]]
