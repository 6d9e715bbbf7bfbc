#!/usr/bin/env bash
# Deploy the caller and responder daemons to Amazon ECS on Fargate with Service Connect.
# Idempotent: a second run changes nothing that is already right. See docs/deploy-aws.md.
set -euo pipefail

# shellcheck source=deploy/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

usage() {
	cat <<'EOF'
Usage: deploy/deploy.sh [options]
       deploy/deploy.sh rollout --version V [rollout options]

deploy/deploy.sh [options]: create or update everything (docs/deploy-aws.md).

  --region REGION        AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, then 'aws configure get region')
  --prefix NAME          prefix of every resource name (default: $SCD_PREFIX or "scdemo")
  --allowed-cidr CIDR    who may reach port 5000 (default: $SCD_ALLOWED_CIDR, else your public IPv4 address/32)
  --subnets IDS          comma-separated subnet IDs with a route to the internet
                         (default: $SCD_SUBNETS, else the default VPC's default subnets)
  --tls PCA_ARN          turn on Service Connect TLS with this AWS Private CA (default: $SCD_TLS_PCA_ARN)
  --tls-kms-key KEY      optional KMS key for the Service Connect TLS secrets (default: $SCD_TLS_KMS_KEY)
  --emf                  daemons also write CloudWatch Embedded Metric Format lines (METRICS_EMF=1)
  --fault-error-rate R   share (0 to 1) of the responder's GET /data answered 503, for the
                         failure walkthrough (default: $SCD_FAULT_ERROR_RATE or 0)
  --mtls                 mutual TLS between the daemons and to you, certificates from Secrets
                         Manager (default: $MTLS, 0 or 1; docs/deploy-aws.md#mutual-tls)
  --mtls-dir DIR         where the certificates are kept, made by scripts/gen-certs.sh when
                         missing (default: $SCD_MTLS_DIR, else ~/.scdemo/PREFIX/mtls)
  --app-version V        APP_VERSION of both daemons, sent in their X-App-Version header
                         (default: $SCD_APP_VERSION or "1")
  --tracing              AWS X-Ray tracing: an X-Ray daemon sidecar in both task definitions,
                         XRAY_TRACING=1 for the daemons, and xray:PutTraceSegments and
                         xray:PutTelemetryRecords for the task role (default: $SCD_TRACING, 0 or 1;
                         docs/tracing.md). A deploy without it turns tracing off again
  --no-smoke-test        do not run the curl flow after deploying
  --dry-run              print every AWS and Docker call that would be made, make none
  -h, --help             this text

deploy/deploy.sh rollout --version V: roll out a new responder version (a new task definition
revision with APP_VERSION=V, same image) with an ECS deployment strategy, wait for it, and say
where to watch the split (docs/traffic-shifting.md). Exits 3 when ECS rolled the deployment back.
The new revision keeps the X-Ray daemon sidecar when the running one has it (deploy.sh --tracing).

  --version V                  the new APP_VERSION (1-32 characters of A-Z a-z 0-9 . _ -)
  --strategy S                 rolling, canary or linear (default: canary)
  --canary-percent P           canary: share of the requests for the new version first, 0.1 to
                               100 in steps of 0.1 (default: 10)
  --canary-bake-min M          canary: minutes at that share before the rest moves, 0-1440 (default: 3)
  --linear-step-percent P      linear: share moved per step, 3 to 100 in steps of 0.1 (default: 25)
  --linear-step-bake-min M     linear: minutes between steps, 0-1440 (default: 1)
  --bake-min M                 canary/linear: minutes both versions keep running after all requests
                               went to the new one, 0-1440 (default: 2)
  --rollback-alarm             create the CloudWatch alarm PREFIX-responder-5xx on the Service Connect
                               5xx count of caller->responder traffic; ECS rolls back when it fires
  --fault-error-rate R         the new version answers this share (0 to 1) of GET /data with 503
                               (default: $SCD_FAULT_ERROR_RATE or 0)
  --region, --prefix, --dry-run, -h   as above
EOF
}

ALLOWED_CIDR=${SCD_ALLOWED_CIDR:-}
SUBNETS=${SCD_SUBNETS:-}
TLS_PCA_ARN=${SCD_TLS_PCA_ARN:-}
TLS_KMS_KEY=${SCD_TLS_KMS_KEY:-}
SMOKE_TEST=1
METRICS_EMF=0
FAULT_ERROR_RATE=${SCD_FAULT_ERROR_RATE:-0}
MTLS=${MTLS:-0}
MTLS_DIR=${SCD_MTLS_DIR:-}
APP_VERSION=${SCD_APP_VERSION:-1}
TRACING=${SCD_TRACING:-0}
REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
PREFIX=${SCD_PREFIX:-scdemo}
# deploy.sh rollout: its options, empty until given ("" means the strategy's default).
MODE=deploy
ROLLOUT_VERSION=""
STRATEGY=canary
CANARY_PERCENT=""
CANARY_BAKE_MIN=""
LINEAR_STEP_PERCENT=""
LINEAR_STEP_BAKE_MIN=""
BAKE_MIN=""
ROLLBACK_ALARM=0
DEPLOY_ONLY_GIVEN=""  # options of the plain deploy seen, for a clear error under rollout
ROLLOUT_ONLY_GIVEN="" # and the other way round
# How many times the first calls that use a role created or changed in this run are tried,
# POLL_SECONDS apart (aws_write_iam).
IAM_TRIES=10

need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }

if [[ ${1:-} == rollout ]]; then
	MODE=rollout
	shift
fi
while [[ $# -gt 0 ]]; do
	case $1 in
	--allowed-cidr | --subnets | --tls | --tls-kms-key | --mtls-dir | --app-version) DEPLOY_ONLY_GIVEN="$DEPLOY_ONLY_GIVEN $1" ;;
	--no-smoke-test | --emf | --mtls | --tracing) DEPLOY_ONLY_GIVEN="$DEPLOY_ONLY_GIVEN $1" ;;
	--version | --strategy | --canary-percent | --canary-bake-min | --linear-step-percent | --linear-step-bake-min | --bake-min | --rollback-alarm)
		ROLLOUT_ONLY_GIVEN="$ROLLOUT_ONLY_GIVEN $1" ;;
	esac
	case $1 in
	--region) need_value "$@"; REGION=$2; shift 2 ;;
	--prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
	--allowed-cidr) need_value "$@"; ALLOWED_CIDR=$2; shift 2 ;;
	--subnets) need_value "$@"; SUBNETS=$2; shift 2 ;;
	--tls) need_value "$@"; TLS_PCA_ARN=$2; shift 2 ;;
	--tls-kms-key) need_value "$@"; TLS_KMS_KEY=$2; shift 2 ;;
	--no-smoke-test) SMOKE_TEST=0; shift ;;
	--emf) METRICS_EMF=1; shift ;;
	--fault-error-rate) need_value "$@"; FAULT_ERROR_RATE=$2; shift 2 ;;
	--mtls) MTLS=1; shift ;;
	--tracing) TRACING=1; shift ;;
	--mtls-dir) need_value "$@"; MTLS_DIR=$2; shift 2 ;;
	--app-version) need_value "$@"; APP_VERSION=$2; shift 2 ;;
	--version) need_value "$@"; ROLLOUT_VERSION=$2; shift 2 ;;
	--strategy) need_value "$@"; STRATEGY=$2; shift 2 ;;
	--canary-percent) need_value "$@"; CANARY_PERCENT=$2; shift 2 ;;
	--canary-bake-min) need_value "$@"; CANARY_BAKE_MIN=$2; shift 2 ;;
	--linear-step-percent) need_value "$@"; LINEAR_STEP_PERCENT=$2; shift 2 ;;
	--linear-step-bake-min) need_value "$@"; LINEAR_STEP_BAKE_MIN=$2; shift 2 ;;
	--bake-min) need_value "$@"; BAKE_MIN=$2; shift 2 ;;
	--rollback-alarm) ROLLBACK_ALARM=1; shift ;;
	--dry-run) DRY_RUN=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
if [[ $MODE == rollout && -n $DEPLOY_ONLY_GIVEN ]]; then
	usage >&2
	die "${DEPLOY_ONLY_GIVEN# } is not an option of 'deploy.sh rollout' (rollout changes the responder's version only)"
fi
if [[ $MODE == deploy && -n $ROLLOUT_ONLY_GIVEN ]]; then
	usage >&2
	die "${ROLLOUT_ONLY_GIVEN# } only goes with 'deploy.sh rollout' (set the first version with --app-version)"
fi

# ---------------------------------------------------------------- preflight

preflight() {
	check_prefix
	check_fault_error_rate
	check_app_version "$APP_VERSION" --app-version
	check_aws_cli
	default_region_from_cli
	check_region
	if [[ -n $ALLOWED_CIDR && ! $ALLOWED_CIDR =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$ ]]; then
		die "--allowed-cidr '$ALLOWED_CIDR' is not an IPv4 CIDR such as 203.0.113.7/32"
	fi
	if [[ -n $SUBNETS && ! $SUBNETS =~ ^subnet-[0-9a-f]+(,subnet-[0-9a-f]+)*$ ]]; then
		die "--subnets must be comma-separated subnet IDs (subnet-...)"
	fi
	if [[ -n $TLS_PCA_ARN && ! $TLS_PCA_ARN =~ ^arn:aws[a-z-]*:acm-pca:[a-z0-9-]+:[0-9]{12}:certificate-authority/[A-Za-z0-9-]+$ ]]; then
		die "--tls needs an AWS Private CA ARN (arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID)"
	fi
	if [[ -n $TLS_KMS_KEY && -z $TLS_PCA_ARN ]]; then
		die "--tls-kms-key only makes sense with --tls"
	fi
	[[ $MTLS =~ ^[01]$ ]] || die "MTLS=$MTLS: expected 0 or 1"
	[[ $TRACING =~ ^[01]$ ]] || die "SCD_TRACING=$TRACING: expected 0 or 1"
	if ((MTLS)); then
		MTLS_DIR=${MTLS_DIR:-${HOME:?}/.scdemo/$PREFIX/mtls}
		[[ -f $SCD_ROOT/scripts/gen-certs.sh ]] || die "$SCD_ROOT/scripts/gen-certs.sh not found: MTLS=1 makes its certificates with it"
	fi
	local f
	for f in Dockerfile.caller Dockerfile.responder; do
		[[ -f $SCD_ROOT/$f ]] || die "$SCD_ROOT/$f not found: deploy builds the images from the repository root"
	done
	if ((!DRY_RUN)); then
		command -v docker >/dev/null 2>&1 || die "Docker not found on PATH: deploy builds and pushes the two images"
		docker info >/dev/null 2>&1 || die "Docker is installed but not usable ('docker info' failed): is the daemon running, may this user reach it?"
		if ((SMOKE_TEST)); then
			command -v curl >/dev/null 2>&1 || die "curl not found (needed for the smoke test; or pass --no-smoke-test)"
		fi
	fi
	start_run
}

# start_run: the work directory (kept on a dry run), the caller's identity and the resource names.
start_run() {
	make_work_dir
	if ((DRY_RUN)); then
		KEEP_WORK_DIR=1
		log "dry run: the rendered inputs are kept in $WORK_DIR"
	fi
	check_credentials
	set_names
	log "account $ACCOUNT_ID, region $REGION, prefix $PREFIX$( ((DRY_RUN)) && printf ' (dry run: nothing is sent)')"
}

check_fault_error_rate() {
	[[ $FAULT_ERROR_RATE =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]] ||
		die "--fault-error-rate '$FAULT_ERROR_RATE' is not a number from 0 to 1"
}

# check_app_version VALUE FLAG: APP_VERSION goes into a header and a metrics label.
check_app_version() {
	[[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$ ]] ||
		die "$2 '$1': use 1-32 characters of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
}

CIDR_AUTO=0 # ALLOWED_CIDR is the address checkip saw, not the operator's choice
SEEN_IPS="" # the addresses checkip saw, space-separated

checkip() { curl -fsS --max-time 10 https://checkip.amazonaws.com 2>/dev/null | tr -d '[:space:]' || true; }

default_allowed_cidr() {
	local ip
	[[ -n $ALLOWED_CIDR ]] && return 0
	if ((DRY_RUN)); then
		ALLOWED_CIDR="203.0.113.1/32"
		log "dry run: using $ALLOWED_CIDR in place of your public address"
		return 0
	fi
	ip=$(checkip)
	[[ $ip =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]] || die "could not find your public IPv4 address (https://checkip.amazonaws.com); pass --allowed-cidr"
	ALLOWED_CIDR="$ip/32"
	CIDR_AUTO=1
	SEEN_IPS=$ip
	log "port 5000 will admit $ALLOWED_CIDR (your address); use --allowed-cidr to choose another"
}

# ---------------------------------------------------------------- ECR and images

ecr_repo_uri() { printf '%s.dkr.ecr.%s.amazonaws.com/%s\n' "$ACCOUNT_ID" "$REGION" "$1"; }

ensure_ecr_repo() {
	local name=$1
	if aws_lookup 'RepositoryNotFoundException' ecr describe-repositories --repository-names "$name" \
		--query 'repositories[0].repositoryUri' --output text >/dev/null; then
		log "ECR repository $name exists"
	else
		aws_write ecr create-repository --repository-name "$name" \
			--image-scanning-configuration scanOnPush=true \
			--tags "Key=Project,Value=$PREFIX" --query repository.repositoryUri --output text >/dev/null
	fi
}

DOCKER_LOGGED_IN=0
docker_login() {
	((DOCKER_LOGGED_IN)) && return 0
	local registry="$ACCOUNT_ID.dkr.ecr.$REGION.amazonaws.com"
	if ((DRY_RUN)); then
		printf 'DRY-RUN (read):  aws --region %s ecr get-login-password | docker login --username AWS --password-stdin %s\n' "$REGION" "$registry" >&3
	else
		aws --region "$REGION" ecr get-login-password | docker login --username AWS --password-stdin "$registry" >/dev/null ||
			die "docker login to $registry failed"
	fi
	DOCKER_LOGGED_IN=1
}

# build_and_push SVC REPO: sets IMAGE_URI to repository@digest (an immutable reference, so a
# new task definition revision is registered exactly when the image content changes).
build_and_push() {
	local svc=$1 repo=$2 uri local_tag id tag digest
	uri=$(ecr_repo_uri "$repo")
	local_tag="$PREFIX-$svc:build"
	log "building $svc image"
	docker_run build --platform linux/amd64 -f "$SCD_ROOT/Dockerfile.$svc" -t "$local_tag" "$SCD_ROOT"
	if ((DRY_RUN)); then
		tag="<image-id>"
	else
		id=$(docker image inspect --format '{{.Id}}' "$local_tag") || die "docker image inspect $local_tag failed"
		tag=${id#sha256:}
		tag=${tag:0:12}
	fi
	if digest=$(aws_lookup 'ImageNotFoundException' ecr describe-images --repository-name "$repo" \
		--image-ids "imageTag=$tag" --query 'imageDetails[0].imageDigest' --output text); then
		log "$repo:$tag is already in ECR"
	else
		docker_login
		docker_run tag "$local_tag" "$uri:$tag"
		docker_run push "$uri:$tag" >/dev/null
		if ((DRY_RUN)); then
			digest="<digest>"
		else
			digest=$(aws_read ecr describe-images --repository-name "$repo" --image-ids "imageTag=$tag" \
				--query 'imageDetails[0].imageDigest' --output text)
		fi
	fi
	[[ $digest == sha256:* || $DRY_RUN -eq 1 ]] || die "no digest for $repo:$tag in ECR"
	IMAGE_URI="$uri@$digest"
}

# ---------------------------------------------------------------- CloudWatch Logs

ensure_log_group() {
	local name=$1 found retention
	found=$(aws_read logs describe-log-groups --log-group-name-prefix "$name" \
		--query "logGroups[?logGroupName=='$name'].[logGroupName, retentionInDays]" --output text)
	if [[ -z $found || $found == None ]]; then
		aws_write logs create-log-group --log-group-name "$name" --tags "Project=$PREFIX"
		aws_write logs put-retention-policy --log-group-name "$name" --retention-in-days 7
		return 0
	fi
	retention=$(printf '%s\n' "$found" | awk -F '\t' '{print $2}')
	if [[ $retention != 7 ]]; then
		aws_write logs put-retention-policy --log-group-name "$name" --retention-in-days 7
	else
		log "log group $name exists"
	fi
}

# ---------------------------------------------------------------- IAM

IAM_CHANGED=0 # a role or policy was created or changed in this run
NEW_ROLES=""  # the roles created in this run, space-separated

# ECS normally makes its service-linked role AWSServiceRoleForECS by itself, but in a new
# account the first create-cluster or create-service can fail before it exists: "Unable to
# assume the service linked role. Please verify that the ECS service linked role exists."
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using-service-linked-roles.html)
# So it is made here, before the cluster. "has been taken in this account" from the create
# means that someone else made it meanwhile.
ensure_ecs_service_linked_role() {
	local errfile="$WORK_DIR/slr-stderr"
	if aws_lookup 'NoSuchEntity' iam get-role --role-name AWSServiceRoleForECS --query Role.Arn --output text >/dev/null; then
		log "ECS service-linked role AWSServiceRoleForECS exists"
		return 0
	fi
	if aws_write iam create-service-linked-role --aws-service-name ecs.amazonaws.com \
		--query Role.Arn --output text >/dev/null 2>"$errfile"; then
		cat "$errfile" >&2
	elif grep -q 'has been taken in this account' "$errfile"; then
		log "ECS service-linked role AWSServiceRoleForECS was created meanwhile"
	else
		cat "$errfile" >&2
		die "could not create the ECS service-linked role (aws iam create-service-linked-role --aws-service-name ecs.amazonaws.com)"
	fi
	NEW_ROLES="$NEW_ROLES AWSServiceRoleForECS"
	IAM_CHANGED=1
}

# ensure_role NAME TRUST_TEMPLATE (POLICY_TEMPLATE | managed:ARN): sets ROLE_ARN.
# The sha256 of trust + permissions is kept in the role's SpecSha256 tag; a role is only
# written to when that differs.
ensure_role() {
	local name=$1 trust_t=$2 policy=$3 trust_f="$WORK_DIR/$1-trust.json" policy_f="$WORK_DIR/$1-policy.json" hash current
	local vars=("ACCOUNT_ID=$ACCOUNT_ID" "REGION=$REGION" "PREFIX=$PREFIX")
	render "$trust_t" "$trust_f" "${vars[@]}"
	if [[ $policy == managed:* ]]; then
		printf '%s\n' "${policy#managed:}" >"$policy_f"
	else
		render "$policy" "$policy_f" "${vars[@]}"
	fi
	hash=$(sha256_files "$trust_f" "$policy_f")
	ROLE_ARN="arn:aws:iam::$ACCOUNT_ID:role/$name"
	if ROLE_ARN=$(aws_lookup 'NoSuchEntity' iam get-role --role-name "$name" --query Role.Arn --output text); then
		current=$(aws_read iam list-role-tags --role-name "$name" --query "Tags[?Key=='SpecSha256'].Value | [0]" --output text)
		if [[ $current == "$hash" ]]; then
			log "IAM role $name is up to date"
			return 0
		fi
		aws_write iam update-assume-role-policy --role-name "$name" --policy-document "file://$trust_f"
	else
		NEW_ROLES="$NEW_ROLES $name"
		ROLE_ARN="arn:aws:iam::$ACCOUNT_ID:role/$name"
		ROLE_ARN=$(aws_write iam create-role --role-name "$name" --assume-role-policy-document "file://$trust_f" \
			--description "ECS Service Connect demo ($PREFIX)" --tags "Key=Project,Value=$PREFIX" \
			--query Role.Arn --output text) || die "create-role $name failed"
		((DRY_RUN)) && ROLE_ARN="arn:aws:iam::$ACCOUNT_ID:role/$name"
	fi
	IAM_CHANGED=1
	if [[ $policy == managed:* ]]; then
		aws_write iam attach-role-policy --role-name "$name" --policy-arn "${policy#managed:}"
	else
		aws_write iam put-role-policy --role-name "$name" --policy-name "$PREFIX-permissions" \
			--policy-document "file://$policy_f"
	fi
	aws_write iam tag-role --role-name "$name" --tags "Key=SpecSha256,Value=$hash"
}

# IAM is eventually consistent: a role just created can be invisible for a moment, and
# visible but not yet usable by ECS for a little longer. wait_new_roles waits for the first
# ('aws iam wait role-exists': GetRole every second, at most 20 times); aws_write_iam retries
# the first calls that need the role through the second.
wait_new_roles() {
	local name
	for name in $NEW_ROLES; do
		log "waiting for IAM role $name to exist (aws iam wait role-exists)"
		aws_read iam wait role-exists --role-name "$name" >/dev/null ||
			die "IAM role $name is still not visible after 'aws iam wait role-exists'; run deploy again in a minute"
	done
}

# What ECS answers while a role created or changed moments ago cannot be used yet, e.g.
# "ECS was unable to assume the configured ECS Infrastructure Role '...'" or "Unable to assume
# the service linked role": InvalidParameterException or ClientException with one of these.
IAM_LAG_ERRORS='\((InvalidParameterException|ClientException)\).*([Uu]nable to assume|cannot be assumed|is not authorized to perform: sts:AssumeRole|:role/[^ ]* does not exist)'

# aws_write_iam ARGS...: aws_write for the calls ECS checks against roles (create-cluster for its
# service-linked role; create-service and update-service). When IAM changed in this run, the
# errors IAM lag produces are retried, IAM_TRIES times POLL_SECONDS apart; any other error, or
# any error when IAM did not change, stops at once.
aws_write_iam() {
	local errfile="$WORK_DIR/iam-stderr" out i tries=1
	((IAM_CHANGED)) && tries=$IAM_TRIES
	for ((i = 1; ; i++)); do
		if out=$(aws_write "$@" 2>"$errfile"); then
			cat "$errfile" >&2
			[[ -z $out ]] || printf '%s\n' "$out"
			return 0
		fi
		if ((i >= tries)) || ! grep -Eq "$IAM_LAG_ERRORS" "$errfile"; then break; fi
		log "aws $1 $2: ECS cannot use a role created or changed in this run yet ($(grep -Eo "$IAM_LAG_ERRORS" "$errfile" | head -n 1)...); retrying in ${POLL_SECONDS}s ($i/$tries)"
		sleep "$POLL_SECONDS"
	done
	cat "$errfile" >&2
	if ((tries > 1)) && grep -Eq "$IAM_LAG_ERRORS" "$errfile"; then
		die "aws $1 $2 still fails after $tries tries, ${POLL_SECONDS}s apart: ECS cannot use an IAM role created or changed in this run (see above). IAM changes usually spread within a minute or two: run deploy again later, and if it keeps failing, check the role and its trust policy"
	fi
	die "aws $1 $2 failed"
}

# ---------------------------------------------------------------- mutual TLS (MTLS=1)

# Which PEM file of MTLS_DIR goes under which JSON key of each service's secret. The keys are
# the daemons' *_PEM settings, which the -mtls task definitions' "secrets" fill from them.
MTLS_KEYS_RESPONDER="TLS_CERT_PEM=responder.pem TLS_KEY_PEM=responder-key.pem TLS_CLIENT_CA_PEM=ca.pem"
MTLS_KEYS_CALLER="TLS_CERT_PEM=caller.pem TLS_KEY_PEM=caller-key.pem TLS_CLIENT_CA_PEM=ca.pem RESPONDER_CA_PEM=ca.pem CLIENT_CERT_PEM=caller.pem CLIENT_KEY_PEM=caller-key.pem"
# What deploy needs from scripts/gen-certs.sh: the above, and the operator's client pair for curl.
MTLS_FILES="ca.pem responder.pem responder-key.pem caller.pem caller-key.pem client.pem client-key.pem"
CALLER_SECRET_ARN=""
RESPONDER_SECRET_ARN=""
MTLS_CERTS_SHA256=""

# ensure_certs: the certificates in MTLS_DIR, made by scripts/gen-certs.sh when any is missing
# (existing ones are reused, so a second deploy changes nothing). Sets MTLS_CERTS_SHA256, the
# sha256 of the certificates (public) and the key layout: kept as a tag on the secrets and on
# the task definitions, so new certificates mean new secret values and new task definition
# revisions, i.e. a rolling deployment that starts tasks with the new environment.
ensure_certs() {
	local f missing=""
	for f in $MTLS_FILES; do
		[[ -s $MTLS_DIR/$f ]] || missing="$missing $f"
	done
	if ((DRY_RUN)); then
		[[ -z $missing ]] || log "dry run: would run scripts/gen-certs.sh $MTLS_DIR (missing:$missing)"
		MTLS_CERTS_SHA256="<sha256-of-the-certificates>"
		return 0
	fi
	if [[ -n $missing ]]; then
		log "making certificates in $MTLS_DIR with scripts/gen-certs.sh (missing:$missing)"
		sh "$SCD_ROOT/scripts/gen-certs.sh" "$MTLS_DIR" || die "scripts/gen-certs.sh $MTLS_DIR failed"
	else
		log "using the certificates in $MTLS_DIR"
	fi
	for f in $MTLS_FILES; do
		[[ -s $MTLS_DIR/$f ]] || die "$MTLS_DIR/$f is missing after scripts/gen-certs.sh"
		# PEM text is base64 lines and "-----BEGIN ...-----" lines: nothing to escape in JSON.
		if LC_ALL=C grep -q '[^A-Za-z0-9+/= -]' "$MTLS_DIR/$f"; then
			die "$MTLS_DIR/$f has characters a PEM file does not (CR line ends?)"
		fi
	done
	MTLS_CERTS_SHA256=$({ printf '%s\n' "$MTLS_KEYS_RESPONDER" "$MTLS_KEYS_CALLER"; cat "$MTLS_DIR/ca.pem" \
		"$MTLS_DIR/responder.pem" "$MTLS_DIR/caller.pem"; } | sha256_file -)
}

# secret_document KEYS OUT: {"TLS_CERT_PEM": "-----BEGIN ...\n", ...}, readable by this user only.
# A dry run writes placeholders instead of PEM text (its work directory is kept).
secret_document() {
	local keys=$1 out=$2 kv sep="" value
	(
		umask 077
		printf '{' >"$out"
		for kv in $keys; do
			if ((DRY_RUN)); then
				value="<contents of ${kv#*=}>"
			else
				value=$(awk '{ printf "%s\\n", $0 }' "$MTLS_DIR/${kv#*=}")
			fi
			printf '%s"%s": "%s"' "$sep" "${kv%%=*}" "$value" >>"$out"
			sep=", "
		done
		printf '}\n' >>"$out"
	)
}

# ensure_secret NAME KEYS: create the secret, or give it a new value when the certificates
# changed. Sets SECRET_ARN (the full ARN, with Secrets Manager's random suffix). The value
# reaches the CLI as file://, never on a command line.
ensure_secret() {
	local name=$1 keys=$2 doc="$WORK_DIR/secret-${1//\//-}.json" errfile="$WORK_DIR/secret-stderr" found arn current deleted i
	secret_document "$keys" "$doc"
	for ((i = 0; i < 24; i++)); do
		if found=$(aws_lookup 'ResourceNotFoundException' secretsmanager describe-secret --secret-id "$name" \
			--query "[ARN, Tags[?Key=='SpecSha256'].Value | [0], DeletedDate]" --output text); then
			IFS=$'\t' read -r arn current deleted <<<"$found"
			if [[ $deleted != None ]]; then
				log "secret $name is being deleted; waiting (aws secretsmanager restore-secret --secret-id $name would keep it)"
				sleep "$POLL_SECONDS"
				continue
			fi
			SECRET_ARN=$arn
			if [[ $current == "$MTLS_CERTS_SHA256" ]]; then
				log "secret $name is up to date"
			else
				aws_write secretsmanager put-secret-value --secret-id "$arn" --secret-string "file://$doc" \
					--query VersionId --output text >/dev/null
				aws_write secretsmanager tag-resource --secret-id "$arn" --tags "Key=SpecSha256,Value=$MTLS_CERTS_SHA256"
			fi
			((DRY_RUN)) || rm -f "$doc"
			return 0
		fi
		if SECRET_ARN=$(aws_write secretsmanager create-secret --name "$name" \
			--description "ECS Service Connect demo ($PREFIX): mutual TLS certificates and key" \
			--secret-string "file://$doc" --tags "Key=Project,Value=$PREFIX" "Key=SpecSha256,Value=$MTLS_CERTS_SHA256" \
			--query ARN --output text 2>"$errfile"); then
			cat "$errfile" >&2
			((DRY_RUN)) && SECRET_ARN="arn:aws:secretsmanager:$REGION:$ACCOUNT_ID:secret:$name-<random>"
			((DRY_RUN)) || rm -f "$doc"
			return 0
		fi
		# Right after a teardown the old secret may still be going away in the background.
		grep -Eq 'InvalidRequestException|ResourceExistsException' "$errfile" || {
			cat "$errfile" >&2
			die "create-secret $name failed"
		}
		log "cannot create $name yet ($(grep -v '^==>' "$errfile" | tr '\n' ' ')); retrying in ${POLL_SECONDS}s"
		sleep "$POLL_SECONDS"
	done
	die "secret $name could not be created: a secret of that name is still being deleted; retry in a few minutes"
}

# ensure_mtls_policy: the execution role's inline policy allows secretsmanager:GetSecretValue on
# exactly the two secrets' full ARNs. Written when missing or when the ARNs changed.
ensure_mtls_policy() {
	local doc="$WORK_DIR/$POLICY_MTLS.json" current want
	render "$SCD_DEPLOY_DIR/iam/mtls-secrets-policy.json" "$doc" \
		"CALLER_SECRET_ARN=$CALLER_SECRET_ARN" "RESPONDER_SECRET_ARN=$RESPONDER_SECRET_ARN"
	want="secretsmanager:GetSecretValue"$'\t'"$CALLER_SECRET_ARN,$RESPONDER_SECRET_ARN"
	if current=$(aws_lookup 'NoSuchEntity' iam get-role-policy --role-name "$ROLE_EXECUTION" --policy-name "$POLICY_MTLS" \
		--query "PolicyDocument.Statement[0].[Action, join(',', to_array(Resource))]" --output text) && [[ $current == "$want" ]]; then
		log "inline policy $POLICY_MTLS of $ROLE_EXECUTION is up to date"
		return 0
	fi
	aws_write iam put-role-policy --role-name "$ROLE_EXECUTION" --policy-name "$POLICY_MTLS" --policy-document "file://$doc"
	IAM_CHANGED=1
}

ensure_mtls() {
	ensure_certs
	ensure_secret "$SECRET_RESPONDER" "$MTLS_KEYS_RESPONDER"
	RESPONDER_SECRET_ARN=$SECRET_ARN
	ensure_secret "$SECRET_CALLER" "$MTLS_KEYS_CALLER"
	CALLER_SECRET_ARN=$SECRET_ARN
	ensure_mtls_policy
}

# ---------------------------------------------------------------- X-Ray tracing (--tracing)

# The X-Ray daemon sidecar uploads the daemons' segments with the task role's credentials. It
# needs xray:PutTraceSegments and xray:PutTelemetryRecords, which have no resource-level
# permissions (Resource "*"; docs/tracing-facts.md). They are a second inline policy of the task
# role, there only while tracing is on.
# Where the daemons send their segments: the sidecar, in the task's network namespace (awsvpc).
XRAY_DAEMON_ADDRESS=127.0.0.1:2000
XRAY_POLICY_WANT="1"$'\t'"xray:PutTraceSegments,xray:PutTelemetryRecords"$'\t'"*"

# ensure_xray_policy: the task role's inline policy POLICY_XRAY, written when missing or different.
ensure_xray_policy() {
	local doc="$WORK_DIR/$POLICY_XRAY.json" current
	render "$SCD_DEPLOY_DIR/iam/xray-policy.json" "$doc"
	if current=$(aws_lookup 'NoSuchEntity' iam get-role-policy --role-name "$ROLE_TASK" --policy-name "$POLICY_XRAY" \
		--query "[length(PolicyDocument.Statement), join(',', to_array(PolicyDocument.Statement[0].Action)), join(',', to_array(PolicyDocument.Statement[0].Resource))]" \
		--output text) && [[ $current == "$XRAY_POLICY_WANT" ]]; then
		log "inline policy $POLICY_XRAY of $ROLE_TASK is up to date"
		return 0
	fi
	aws_write iam put-role-policy --role-name "$ROLE_TASK" --policy-name "$POLICY_XRAY" --policy-document "file://$doc"
	IAM_CHANGED=1
}

# remove_xray_policy: tracing is off; a policy left by an earlier deploy with --tracing goes, once
# the services run task definitions without the sidecar.
remove_xray_policy() {
	aws_lookup 'NoSuchEntity' iam get-role-policy --role-name "$ROLE_TASK" --policy-name "$POLICY_XRAY" \
		--query PolicyName --output text >/dev/null || return 0
	log "tracing is off: removing the inline policy $POLICY_XRAY of $ROLE_TASK"
	aws_write iam delete-role-policy --role-name "$ROLE_TASK" --policy-name "$POLICY_XRAY"
}

# insert_tracing FILE LOG_GROUP: add the X-Ray daemon (task-definitions/xray-daemon.json, its logs
# in LOG_GROUP) as the last container of the rendered task definition, and XRAY_TRACING=1 and
# AWS_XRAY_DAEMON_ADDRESS to the first container's (the daemon's) environment. Works on the
# repository's templates: members of a container at six spaces, containers at four.
insert_tracing() {
	local file=$1 frag="$WORK_DIR/xray-daemon.json"
	render "$SCD_ROOT/task-definitions/xray-daemon.json" "$frag" "REGION=$REGION" "LOG_GROUP=$2"
	XRAY_FRAGMENT=$(sed -e 's/^/    /' "$frag") XRAY_ENV="$XRAY_DAEMON_ADDRESS" awk '
		{ line[NR] = $0 }
		END {
			for (i = 1; i <= NR; i++) {
				if (!in_list && line[i] ~ /^  "containerDefinitions": \[[[:space:]]*$/) in_list = 1
				else if (in_list == 1 && line[i] ~ /^  \],?[[:space:]]*$/) { last = i; in_list = 2 }
				if (in_list == 1 && !env && line[i] ~ /^      "environment": \[[[:space:]]*$/) env = i
			}
			if (!env || !last || line[last - 1] !~ /^    \}[[:space:]]*$/) exit 3
			for (i = 1; i <= NR; i++) {
				if (i == last - 1) { print line[i] ","; print ENVIRON["XRAY_FRAGMENT"]; continue }
				print line[i]
				if (i == env) {
					print "        { \"name\": \"XRAY_TRACING\", \"value\": \"1\" },"
					print "        { \"name\": \"AWS_XRAY_DAEMON_ADDRESS\", \"value\": \"" ENVIRON["XRAY_ENV"] "\" },"
				}
			}
		}' "$file" >"$file.xray" || die "could not add the X-Ray daemon to $file"
	mv "$file.xray" "$file"
}

# ---------------------------------------------------------------- Cloud Map and cluster

ensure_namespace() {
	local op
	NAMESPACE_ARN=$(aws_read servicediscovery list-namespaces --filters Name=TYPE,Values=HTTP,Condition=EQ \
		--query "Namespaces[?Name=='$NAMESPACE_NAME'] | [0].Arn" --output text)
	if [[ $NAMESPACE_ARN != None && -n $NAMESPACE_ARN ]]; then
		log "Cloud Map namespace $NAMESPACE_NAME exists"
		return 0
	fi
	op=$(aws_write servicediscovery create-http-namespace --name "$NAMESPACE_NAME" \
		--description "ECS Service Connect demo ($PREFIX)" --tags "Key=Project,Value=$PREFIX" \
		--query OperationId --output text)
	if ((DRY_RUN)); then
		NAMESPACE_ARN="arn:aws:servicediscovery:$REGION:$ACCOUNT_ID:namespace/<new-namespace-id>"
		return 0
	fi
	wait_cloudmap_operation "$op"
	NAMESPACE_ARN=$(aws_read servicediscovery list-namespaces --filters Name=TYPE,Values=HTTP,Condition=EQ \
		--query "Namespaces[?Name=='$NAMESPACE_NAME'] | [0].Arn" --output text)
	[[ $NAMESPACE_ARN == arn:* ]] || die "namespace $NAMESPACE_NAME not found after creating it"
}

ensure_cluster() {
	local found current
	found=$(aws_read ecs describe-clusters --clusters "$CLUSTER" \
		--query "clusters[?status=='ACTIVE'].[clusterName, serviceConnectDefaults.namespace]" --output text)
	if [[ -z $found || $found == None ]]; then
		aws_write_iam ecs create-cluster --cluster-name "$CLUSTER" \
			--service-connect-defaults "namespace=$NAMESPACE_ARN" \
			--tags "key=Project,value=$PREFIX" --query cluster.clusterArn --output text >/dev/null
		return 0
	fi
	current=$(printf '%s\n' "$found" | awk -F '\t' '{print $2}')
	if [[ $current != "$NAMESPACE_ARN" ]]; then
		aws_write ecs update-cluster --cluster "$CLUSTER" --service-connect-defaults "namespace=$NAMESPACE_ARN" \
			--query cluster.clusterArn --output text >/dev/null
	else
		log "cluster $CLUSTER exists with its Service Connect defaults"
	fi
}

# ---------------------------------------------------------------- network

ensure_network() {
	local vpcs ids stale
	if [[ -n $SUBNETS ]]; then
		# shellcheck disable=SC2086 # word splitting of the subnet list is intended
		vpcs=$(aws_read ec2 describe-subnets --subnet-ids ${SUBNETS//,/ } --query 'Subnets[].VpcId' --output text)
		VPC_ID=$(printf '%s\n' "$vpcs" | tr '\t' '\n' | sort -u)
		if ((DRY_RUN)); then VPC_ID="<vpc-of-the-subnets>"; fi
		[[ $VPC_ID =~ ^(vpc-[0-9a-f]+|<.*>)$ ]] || die "the subnets must exist and all be in one VPC (found: $(printf '%s' "$VPC_ID" | tr '\n' ' '))"
	else
		VPC_ID=$(aws_read ec2 describe-vpcs --filters Name=is-default,Values=true --query 'Vpcs[0].VpcId' --output text)
		if ((DRY_RUN)); then VPC_ID="<default-vpc-id>"; fi
		[[ $VPC_ID != None && -n $VPC_ID ]] || die "no default VPC in $REGION: pass --subnets (public subnets of one VPC)"
		ids=$(aws_read ec2 describe-subnets --filters "Name=vpc-id,Values=$VPC_ID" Name=default-for-az,Values=true \
			--query 'Subnets[].SubnetId' --output text)
		if ((DRY_RUN)); then ids="<default-subnet-ids>"; fi
		SUBNETS=$(printf '%s\n' "$ids" | tr '\t' '\n' | grep -v '^$' | sort | paste -sd, -)
		[[ -n $SUBNETS && $SUBNETS != None ]] || die "the default VPC $VPC_ID has no default subnets: pass --subnets"
	fi

	SG_ID=$(aws_read ec2 describe-security-groups --filters "Name=vpc-id,Values=$VPC_ID" "Name=group-name,Values=$SG_NAME" \
		--query 'SecurityGroups[0].GroupId' --output text)
	if [[ $SG_ID == None || -z $SG_ID ]]; then
		SG_ID=$(aws_write ec2 create-security-group --group-name "$SG_NAME" --vpc-id "$VPC_ID" \
			--description "ECS Service Connect demo ($PREFIX): port 5000 from one CIDR, proxy port 15000 from itself" \
			--tag-specifications "ResourceType=security-group,Tags=[{Key=Project,Value=$PREFIX}]" \
			--query GroupId --output text)
		if ((DRY_RUN)); then SG_ID="<new-security-group-id>"; fi
	else
		log "security group $SG_NAME ($SG_ID) exists"
	fi

	ids=$(aws_read ec2 describe-security-group-rules --filters "Name=group-id,Values=$SG_ID" \
		--query "SecurityGroupRules[?IsEgress==\`false\` && FromPort==\`5000\` && ToPort==\`5000\` && CidrIpv4=='$ALLOWED_CIDR'].SecurityGroupRuleId" \
		--output text)
	if [[ -z $ids || $ids == None ]]; then
		aws_write ec2 authorize-security-group-ingress --group-id "$SG_ID" \
			--ip-permissions "IpProtocol=tcp,FromPort=5000,ToPort=5000,IpRanges=[{CidrIp=$ALLOWED_CIDR,Description=demo-clients}]" >/dev/null
	fi
	stale=$(aws_read ec2 describe-security-group-rules --filters "Name=group-id,Values=$SG_ID" \
		--query "SecurityGroupRules[?IsEgress==\`false\` && CidrIpv4!=null && CidrIpv4!='$ALLOWED_CIDR'].SecurityGroupRuleId" \
		--output text)
	if [[ -n $stale && $stale != None ]]; then
		# shellcheck disable=SC2086 # one argument per rule ID
		aws_write ec2 revoke-security-group-ingress --group-id "$SG_ID" --security-group-rule-ids $stale >/dev/null
	fi
	ids=$(aws_read ec2 describe-security-group-rules --filters "Name=group-id,Values=$SG_ID" \
		--query "SecurityGroupRules[?IsEgress==\`false\` && FromPort==\`15000\` && ReferencedGroupInfo.GroupId=='$SG_ID'].SecurityGroupRuleId" \
		--output text)
	if [[ -z $ids || $ids == None ]]; then
		aws_write ec2 authorize-security-group-ingress --group-id "$SG_ID" \
			--ip-permissions "IpProtocol=tcp,FromPort=15000,ToPort=15000,UserIdGroupPairs=[{GroupId=$SG_ID,Description=service-connect-proxy}]" >/dev/null
	fi
}

# ---------------------------------------------------------------- task definitions

# register_task_definition SVC IMAGE LOG_GROUP: sets TASK_DEFINITION_ARN. Registers a new
# revision only when the rendered definition differs from the latest active one.
register_task_definition() {
	local svc=$1 image=$2 log_group=$3 family="$PREFIX-$1" out="$WORK_DIR/taskdef-$1.json" upper hash found current
	local template="$SCD_ROOT/task-definitions/$svc.json"
	((MTLS)) && template="$SCD_ROOT/task-definitions/$svc-mtls.json"
	upper=$(printf '%s' "$svc" | tr '[:lower:]' '[:upper:]')
	local vars=("PREFIX=$PREFIX" "REGION=$REGION" "TASK_ROLE_ARN=$TASK_ROLE_ARN"
		"EXECUTION_ROLE_ARN=$EXECUTION_ROLE_ARN" "${upper}_IMAGE=$image" "${upper}_LOG_GROUP=$log_group"
		"METRICS_EMF=$METRICS_EMF" "FAULT_ERROR_RATE=$FAULT_ERROR_RATE" "APP_VERSION=$APP_VERSION" "CALLER_SECRET_ARN=$CALLER_SECRET_ARN"
		"RESPONDER_SECRET_ARN=$RESPONDER_SECRET_ARN" "MTLS_CERTS_SHA256=$MTLS_CERTS_SHA256")
	render "$template" "$out" "${vars[@]}" "SPEC_SHA256=0"
	((TRACING)) && insert_tracing "$out" "$log_group"
	hash=$(sha256_file "$out")
	render "$template" "$out" "${vars[@]}" "SPEC_SHA256=$hash"
	((TRACING)) && insert_tracing "$out" "$log_group"
	if found=$(aws_lookup 'ClientException|Unable to describe task definition' ecs describe-task-definition \
		--task-definition "$family" --include TAGS \
		--query "[taskDefinition.taskDefinitionArn, tags[?key=='SpecSha256'].value | [0]]" --output text); then
		current=$(printf '%s\n' "$found" | awk -F '\t' '{print $2}')
		if [[ $current == "$hash" ]]; then
			TASK_DEFINITION_ARN=$(printf '%s\n' "$found" | awk -F '\t' '{print $1}')
			log "task definition $family is up to date ($TASK_DEFINITION_ARN)"
			return 0
		fi
	fi
	TASK_DEFINITION_ARN=$(aws_write ecs register-task-definition --cli-input-json "file://$out" \
		--query taskDefinition.taskDefinitionArn --output text)
	if ((DRY_RUN)); then TASK_DEFINITION_ARN="arn:aws:ecs:$REGION:$ACCOUNT_ID:task-definition/$family:<next>"; fi
}

# ---------------------------------------------------------------- services

# update_input_from_create CREATE_JSON OUT: UpdateService input from the CreateService input:
# serviceName becomes service; members update-service does not take are dropped. Works on
# the repository's templates, whose top-level members start at two spaces of indentation
# (tests/deploy validates the result against UpdateServiceRequest).
update_input_from_create() {
	awk '
	BEGIN { n = 0; drop["launchType"]; drop["schedulingStrategy"]; drop["deploymentController"];
	        drop["tags"]; drop["role"]; drop["clientToken"] }
	/^\{[[:space:]]*$/ && n == 0 { next }
	/^\}[[:space:]]*$/ { next }
	/^  "[A-Za-z]+":/ { match($0, /"[A-Za-z]+"/); n++; key[n] = substr($0, RSTART + 1, RLENGTH - 2); body[n] = $0; next }
	{ body[n] = body[n] "\n" $0 }
	END {
		print "{"; first = 1
		for (i = 1; i <= n; i++) {
			if (key[i] in drop) continue
			b = body[i]; sub(/,[[:space:]]*$/, "", b)
			if (key[i] == "serviceName") sub(/"serviceName"/, "\"service\"", b)
			if (!first) printf ",\n"
			printf "%s", b; first = 0
		}
		print "\n}"
	}' "$1" >"$2"
}

# insert_tls FILE: add services[0].tls to the rendered responder service definition.
insert_tls() {
	local file=$1 template="$SCD_DEPLOY_DIR/services/tls.json" frag="$WORK_DIR/tls.json"
	[[ -n $TLS_KMS_KEY ]] && template="$SCD_DEPLOY_DIR/services/tls-kms.json"
	render "$template" "$frag" "TLS_PCA_ARN=$TLS_PCA_ARN" "TLS_ROLE_ARN=$TLS_ROLE_ARN" "TLS_KMS_KEY=$TLS_KMS_KEY"
	TLS_FRAGMENT=$(sed -e '2,$s/^/        /' "$frag") awk '
		{ print }
		!done && /^ *"portName": "http",[[:space:]]*$/ { print "        \"tls\": " ENVIRON["TLS_FRAGMENT"] ","; done = 1 }
		END { if (!done) exit 3 }' "$file" >"$file.tls" || die "could not place tls in $file"
	mv "$file.tls" "$file"
}

# app_protocol_changes TASK_DEFINITION_ARN: true when the responder's port mapping would change
# appProtocol (http without mTLS, none, i.e. TCP, with it). A Service Connect service cannot
# take that in an update: it has to be deleted and created again.
app_protocol_changes() {
	local current want=http
	((MTLS)) && want=None
	current=$(aws_read ecs describe-task-definition --task-definition "$1" \
		--query 'taskDefinition.containerDefinitions[0].portMappings[0].appProtocol' --output text)
	[[ $current != "$want" ]]
}

# deployment_configuration CREATE_JSON: the input's deploymentConfiguration, on one line (the
# repository's templates have their top-level members at two spaces of indentation).
deployment_configuration() {
	awk '
	/^  "[A-Za-z]+":/ { if (on) exit; if ($0 ~ /^  "deploymentConfiguration":/) { on = 1; sub(/^  "deploymentConfiguration":[[:space:]]*/, "") } }
	/^}/ { exit }
	on { sub(/^[[:space:]]+/, ""); out = out (out == "" ? "" : " ") $0 }
	END { sub(/,[[:space:]]*$/, "", out); print out }' "$1"
}

# create_with_breaker_off NAME CREATE_JSON HASH: create-service when IAM changed in this run.
# A task whose role (or the policy it needs, e.g. to read the mTLS secrets) was created or
# changed moments ago can fail to start until IAM has spread the change. ECS keeps launching
# tasks, and they start once the role works; but with the deployment circuit breaker on, those
# first failures count towards failing the deployment, and a new service's first deployment
# that fails has nothing to roll back to: it ends FAILED and never becomes stable. So the
# service is created with the breaker off and, once stable, updated to the template's breaker
# settings. Only then does it get its SpecSha256 tag ("pending" until then), so a run that
# stops in between leaves a tag that differs and the next run makes the update.
create_with_breaker_off() {
	local name=$1 input=$2 hash=$3 off="$WORK_DIR/$1-breaker-off.json" conf arn
	sed -e 's/"deploymentCircuitBreaker": {[^}]*}/"deploymentCircuitBreaker": { "enable": false, "rollback": false }/' \
		-e "s/\"value\": \"$hash\"/\"value\": \"pending\"/" "$input" >"$off"
	if ! grep -q '"deploymentCircuitBreaker": { "enable": false, "rollback": false }' "$off" || grep -q "$hash" "$off"; then
		die "could not turn the circuit breaker off in $input"
	fi
	conf=$(deployment_configuration "$input")
	[[ $conf == '{'*'deploymentCircuitBreaker'*'}' ]] || die "no deploymentConfiguration found in $input"
	log "IAM roles or policies changed in this run: $name starts with the deployment circuit breaker off, until it is stable"
	arn=$(aws_write_iam ecs create-service --cli-input-json "file://$off" --query service.serviceArn --output text)
	((DRY_RUN)) && arn="arn:aws:ecs:$REGION:$ACCOUNT_ID:service/$CLUSTER/$name"
	wait_stable "$name"
	aws_write_iam ecs update-service --cluster "$CLUSTER" --service "$name" --deployment-configuration "$conf" \
		--query service.serviceArn --output text >/dev/null
	wait_stable "$name"
	aws_write ecs tag-resource --resource-arn "$arn" --tags "key=SpecSha256,value=$hash" >/dev/null
}

# deploy_service SVC TASK_DEFINITION_ARN: create or update, and wait for the service to be
# stable. Sets SERVICE_CHANGED (1 when the service got new tasks) and SERVICE_CREATED ("created",
# "created again" or empty).
deploy_service() {
	local svc=$1 td=$2 name="$PREFIX-$1" out="$WORK_DIR/service-$1.json" upd="$WORK_DIR/service-$1-update.json"
	local hash found status arn current current_td template="$SCD_DEPLOY_DIR/services/$1.json"
	[[ $MTLS -eq 1 && -f $SCD_DEPLOY_DIR/services/$svc-mtls.json ]] && template="$SCD_DEPLOY_DIR/services/$svc-mtls.json"
	local vars=("PREFIX=$PREFIX" "REGION=$REGION" "CLUSTER=$CLUSTER" "NAMESPACE_ARN=$NAMESPACE_ARN"
		"@SUBNETS=$SUBNETS" "SECURITY_GROUP_ID=$SG_ID" "PROXY_LOG_GROUP=$LOG_GROUP_PROXY"
		"CALLER_TASK_DEFINITION=$td" "RESPONDER_TASK_DEFINITION=$td")
	render "$template" "$out" "${vars[@]}" "SPEC_SHA256=0"
	[[ $svc == responder && -n $TLS_PCA_ARN ]] && insert_tls "$out"
	hash=$(sha256_file "$out")
	render "$template" "$out" "${vars[@]}" "SPEC_SHA256=$hash"
	[[ $svc == responder && -n $TLS_PCA_ARN ]] && insert_tls "$out"
	SERVICE_CHANGED=0
	SERVICE_CREATED=""

	found=$(aws_read ecs describe-services --cluster "$CLUSTER" --services "$name" \
		--query "services[?status!='INACTIVE'] | [0].[status, serviceArn, taskDefinition]" --output text)
	status=$(printf '%s\n' "$found" | awk -F '\t' '{print $1}')
	arn=$(printf '%s\n' "$found" | awk -F '\t' '{print $2}')
	current_td=$(printf '%s\n' "$found" | awk -F '\t' '{print $3}')
	if [[ $status == ACTIVE && $svc == responder ]] && app_protocol_changes "$current_td"; then
		log "mTLS switched $( ((MTLS)) && echo on || echo off): the responder's appProtocol changes, so $name is deleted and created again"
		aws_write ecs delete-service --cluster "$CLUSTER" --service "$name" --force \
			--query service.serviceArn --output text >/dev/null
		aws_read ecs wait services-inactive --cluster "$CLUSTER" --services "$name" >/dev/null ||
			die "$name did not become inactive; run deploy again in a few minutes"
		status=RECREATE
	fi
	case $status in
	ACTIVE)
		current=$(aws_read ecs list-tags-for-resource --resource-arn "$arn" \
			--query "tags[?key=='SpecSha256'].value | [0]" --output text)
		if [[ $current == "$hash" ]]; then
			log "service $name is up to date"
		else
			update_input_from_create "$out" "$upd"
			aws_write_iam ecs update-service --cli-input-json "file://$upd" --query service.serviceArn --output text >/dev/null
			aws_write ecs tag-resource --resource-arn "$arn" --tags "key=SpecSha256,value=$hash" >/dev/null
			SERVICE_CHANGED=1
		fi
		;;
	DRAINING) die "service $name is still draining after a teardown; retry in a few minutes" ;;
	*)
		SERVICE_CHANGED=1
		SERVICE_CREATED=created
		[[ $status == RECREATE ]] && SERVICE_CREATED="created again"
		if ((IAM_CHANGED)); then
			create_with_breaker_off "$name" "$out" "$hash"
			return 0
		fi
		aws_write_iam ecs create-service --cli-input-json "file://$out" --query service.serviceArn --output text >/dev/null
		;;
	esac
	wait_stable "$name"
}

wait_stable() {
	local name=$1
	log "waiting for $name to be stable (aws ecs wait services-stable)"
	if ! aws_read ecs wait services-stable --cluster "$CLUSTER" --services "$name" >/dev/null; then
		printf 'latest events of %s:\n' "$name" >&2
		aws_read ecs describe-services --cluster "$CLUSTER" --services "$name" \
			--query 'services[0].events[:5].message' --output text | tr '\t' '\n' >&2 || true
		die "$name did not become stable (the deployment circuit breaker rolls back failed deployments)"
	fi
}

# ---------------------------------------------------------------- addresses and smoke test

public_ip() {
	local name=$1 task eni ip
	if ((DRY_RUN)); then
		aws_read ecs list-tasks --cluster "$CLUSTER" --service-name "$name" --desired-status RUNNING --query 'taskArns[0]' --output text >/dev/null
		printf '<%s-public-ip>\n' "$name"
		return 0
	fi
	task=$(aws_read ecs list-tasks --cluster "$CLUSTER" --service-name "$name" --desired-status RUNNING \
		--query 'taskArns[0]' --output text)
	[[ $task == arn:* ]] || die "no running task for $name"
	eni=$(aws_read ecs describe-tasks --cluster "$CLUSTER" --tasks "$task" \
		--query "tasks[0].attachments[?type=='ElasticNetworkInterface'] | [0].details[?name=='networkInterfaceId'].value | [0]" --output text)
	[[ $eni == eni-* ]] || die "no network interface for $task"
	ip=$(aws_read ec2 describe-network-interfaces --network-interface-ids "$eni" \
		--query 'NetworkInterfaces[0].Association.PublicIp' --output text)
	[[ $ip =~ ^[0-9.]+$ ]] || die "task $task of $name has no public IP"
	printf '%s\n' "$ip"
}

# check_exit_address: port 5000 admits ALLOWED_CIDR, which by default is the address
# https://checkip.amazonaws.com saw at the start. Before the smoke test, say what would make
# curl reach the tasks from another address: a proxy in the environment, or checkip seeing
# another address now (several exit addresses: a NAT pool, a VPN). Sets PROXY_VARS.
PROXY_VARS=""
check_exit_address() {
	local var ip i
	for var in https_proxy HTTPS_PROXY http_proxy HTTP_PROXY ALL_PROXY all_proxy; do
		# Only the names: a proxy URL can hold a password.
		[[ -z ${!var:-} ]] || PROXY_VARS="$PROXY_VARS $var"
	done
	[[ -z $PROXY_VARS ]] ||
		warn "curl goes through the proxy set in${PROXY_VARS}: the smoke test reaches the tasks from that proxy's address, and port 5000 admits only $ALLOWED_CIDR"
	((CIDR_AUTO)) || return 0
	for ((i = 0; i < 3; i++)); do
		ip=$(checkip)
		[[ ! $ip =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ || " $SEEN_IPS " == *" $ip "* ]] || SEEN_IPS="$SEEN_IPS $ip"
	done
	[[ $SEEN_IPS != *" "* ]] ||
		warn "https://checkip.amazonaws.com now sees you at more than one address ($SEEN_IPS): your requests leave from several addresses, and port 5000 admits only $ALLOWED_CIDR"
}

# cannot_connect WHO IP CURL_EXIT: the first request did not get through (7: refused, 28: timed
# out). Almost always the security group not admitting the address curl leaves from; stop at
# once and say so, instead of every request timing out.
cannot_connect() {
	local seen="the address https://checkip.amazonaws.com saw: ${SEEN_IPS// /, }"
	((CIDR_AUTO)) || seen="given with --allowed-cidr or SCD_ALLOWED_CIDR"
	die "cannot connect to the $1 at $2:5000 (curl exit $3). The security group admits port 5000 only from $ALLOWED_CIDR ($seen)${PROXY_VARS:+, and curl goes through the proxy set in$PROXY_VARS}: your requests most likely leave from another address. Run deploy again with --allowed-cidr set to the address or range your requests come from, or with --no-smoke-test and test from a machine inside $ALLOWED_CIDR"
}

# smoke_test CALLER_IP RESPONDER_IP: the original demo's curl flow. With MTLS=1 it is https with
# the dev CA and the operator's client certificate, and --resolve, because the certificates
# name "caller" and "responder", not the tasks' addresses.
smoke_test() {
	local caller=$1 responder=$2 answer i rc=0
	local c=(curl -fsS --connect-timeout 5 --max-time 10) r=(curl -fsS --connect-timeout 5 --max-time 10)
	local c_url="http://$caller:5000" r_url="http://$responder:5000"
	local post=(-X POST -H "Content-Type: application/json" -d '{"key": "value"}')
	if ((MTLS)); then
		local tls=(--cacert "$MTLS_DIR/ca.pem" --cert "$MTLS_DIR/client.pem" --key "$MTLS_DIR/client-key.pem")
		c+=("${tls[@]}" --resolve "caller:5000:$caller")
		r+=("${tls[@]}" --resolve "responder:5000:$responder")
		c_url=https://caller:5000
		r_url=https://responder:5000
	fi
	if ((DRY_RUN)); then
		printf 'DRY-RUN (curl): %s\n' "$(show_cmd "${c[@]}" "${post[@]}" "$c_url/data")" >&3
		printf 'DRY-RUN (curl): %s\n' "$(show_cmd "${r[@]}" "${post[@]}" "$r_url/data")" >&3
		printf 'DRY-RUN (curl): %s\n' "$(show_cmd "${r[@]}" "$r_url/data")" >&3
		printf 'DRY-RUN (curl): %s\n' "$(show_cmd "${c[@]}" "$c_url/")" >&3
		return 0
	fi
	log "smoke test: the original demo's curl flow$( ((MTLS)) && printf ', over mutual TLS')"
	"${c[@]}" "${post[@]}" "$c_url/data" || rc=$?
	case $rc in
	0) ;;
	7 | 28) cannot_connect caller "$caller" "$rc" ;;
	*) die "POST to the caller failed" ;;
	esac
	echo
	"${r[@]}" "${post[@]}" "$r_url/data" || die "POST to the responder failed"
	echo
	"${r[@]}" "$r_url/data" || die "GET /data on the responder failed"
	echo
	for ((i = 0; i < 10; i++)); do
		answer=$("${c[@]}" "$c_url/" || true)
		if printf '%s' "$answer" | grep -Eq '"responder_service_data":[[:space:]]*\['; then
			printf '%s\n' "$answer"
			log "smoke test passed: the caller reached the responder through Service Connect"
			return 0
		fi
		sleep "$POLL_SECONDS"
	done
	printf '%s\n' "$answer" >&2
	die "smoke test failed: the caller did not get the responder's data"
}

# ---------------------------------------------------------------- rollout of a new responder version

# The first AWS CLI v2 whose ECS model has the LINEAR and CANARY strategies (CHANGELOG.rst,
# https://github.com/aws/aws-cli/blob/v2/CHANGELOG.rst).
CLI_FOR_STRATEGIES=2.31.24
# The rollback alarm fires when the new version's 5xx answers to the caller, as Service Connect
# counts them, reach this many in one minute.
ALARM_THRESHOLD=3
ROLLOUT_ROLLED_BACK_EXIT=3

# percent_tenths VALUE: the percentage in tenths of a percent (12.5 -> 125), for a value with at
# most one decimal; returns 1 for anything else.
percent_tenths() {
	[[ $1 =~ ^([0-9]{1,3})(\.([0-9]))?$ ]] || return 1
	printf '%d\n' $((10#${BASH_REMATCH[1]} * 10 + 10#${BASH_REMATCH[3]:-0}))
}

# check_percent FLAG VALUE MIN_TENTHS: MIN to 100 in steps of 0.1, as the ECS API takes it
# (API CanaryConfiguration and LinearConfiguration). Sets PERCENT_JSON (e.g. 12.5).
check_percent() {
	local tenths
	if ! tenths=$(percent_tenths "$2") || ((tenths < $3 || tenths > 1000)); then
		die "$1 '$2' must be a multiple of 0.1 from $(($3 / 10)).$(($3 % 10)) to 100"
	fi
	PERCENT_JSON="$((tenths / 10)).$((tenths % 10))"
}

check_minutes() {
	if [[ ! $2 =~ ^[0-9]{1,4}$ ]] || ((10#$2 > 1440)); then
		die "$1 '$2' must be a whole number of minutes from 0 to 1440"
	fi
}

# Everything about the rollout's arguments, before any AWS call.
check_rollout_args() {
	[[ -n $ROLLOUT_VERSION ]] || die "deploy.sh rollout needs --version V (the new responder's APP_VERSION)"
	check_app_version "$ROLLOUT_VERSION" --version
	case $STRATEGY in
	rolling | canary | linear) ;;
	*) die "--strategy '$STRATEGY': use rolling, canary or linear" ;;
	esac
	if [[ $STRATEGY != canary && -n $CANARY_PERCENT$CANARY_BAKE_MIN ]]; then
		die "--canary-percent and --canary-bake-min only go with --strategy canary (not $STRATEGY)"
	fi
	if [[ $STRATEGY != linear && -n $LINEAR_STEP_PERCENT$LINEAR_STEP_BAKE_MIN ]]; then
		die "--linear-step-percent and --linear-step-bake-min only go with --strategy linear (not $STRATEGY)"
	fi
	if [[ $STRATEGY == rolling && -n $BAKE_MIN ]]; then
		die "--bake-min only goes with --strategy canary or linear: a rolling update has no bake time to set"
	fi
	CANARY_PERCENT=${CANARY_PERCENT:-10}
	CANARY_BAKE_MIN=${CANARY_BAKE_MIN:-3}
	LINEAR_STEP_PERCENT=${LINEAR_STEP_PERCENT:-25}
	LINEAR_STEP_BAKE_MIN=${LINEAR_STEP_BAKE_MIN:-1}
	BAKE_MIN=${BAKE_MIN:-2}
	check_percent --canary-percent "$CANARY_PERCENT" 1
	CANARY_PERCENT_JSON=$PERCENT_JSON
	check_percent --linear-step-percent "$LINEAR_STEP_PERCENT" 30
	LINEAR_STEP_PERCENT_JSON=$PERCENT_JSON
	check_minutes --canary-bake-min "$CANARY_BAKE_MIN"
	check_minutes --linear-step-bake-min "$LINEAR_STEP_BAKE_MIN"
	check_minutes --bake-min "$BAKE_MIN"
	CANARY_BAKE_MIN=$((10#$CANARY_BAKE_MIN))
	LINEAR_STEP_BAKE_MIN=$((10#$LINEAR_STEP_BAKE_MIN))
	BAKE_MIN=$((10#$BAKE_MIN))
	check_fault_error_rate
}

rollout_preflight() {
	check_prefix
	check_rollout_args
	check_aws_cli
	if [[ $STRATEGY != rolling ]] && ! aws_cli_at_least "$CLI_FOR_STRATEGIES"; then
		die "--strategy $STRATEGY needs AWS CLI $CLI_FOR_STRATEGIES or newer (the first whose ECS model has the LINEAR and CANARY deployment strategies); this is aws-cli/$AWS_CLI_VERSION. Upgrade the CLI, or use --strategy rolling"
	fi
	default_region_from_cli
	check_region
	start_run
}

# rollout_deployment_configuration: the deploymentConfiguration of the update, on one line.
# The circuit breaker and the task counts are the service templates'; the strategy and its
# settings come from the options. A CLI older than CLI_FOR_STRATEGIES gets no "strategy" (its
# model does not know the member), which leaves a rolling update rolling.
rollout_deployment_configuration() {
	local conf='"deploymentCircuitBreaker": { "enable": true, "rollback": true }, "maximumPercent": 200, "minimumHealthyPercent": 100'
	case $STRATEGY in
	rolling)
		aws_cli_at_least "$CLI_FOR_STRATEGIES" && conf="$conf, \"strategy\": \"ROLLING\""
		;;
	canary)
		conf="$conf, \"strategy\": \"CANARY\", \"canaryConfiguration\": { \"canaryPercent\": $CANARY_PERCENT_JSON, \"canaryBakeTimeInMinutes\": $CANARY_BAKE_MIN }, \"bakeTimeInMinutes\": $BAKE_MIN"
		;;
	linear)
		conf="$conf, \"strategy\": \"LINEAR\", \"linearConfiguration\": { \"stepPercent\": $LINEAR_STEP_PERCENT_JSON, \"stepBakeTimeInMinutes\": $LINEAR_STEP_BAKE_MIN }, \"bakeTimeInMinutes\": $BAKE_MIN"
		;;
	esac
	if ((ROLLBACK_ALARM)); then
		conf="$conf, \"alarms\": { \"alarmNames\": [\"$ALARM_ROLLBACK\"], \"enable\": true, \"rollback\": true }"
	fi
	printf '{ %s }\n' "$conf"
}

# ensure_rollback_alarm: the CloudWatch alarm on the 5xx answers that the responder's tasks give
# the caller's tasks through Service Connect (namespace AWS/ECS, metric HTTPCode_Target_5XX_Count,
# which needs appProtocol http: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/available-metrics.html),
# one-minute sums, missing data not breaching. Written when missing or when its settings
# changed (their sha256 is the alarm's SpecSha256 tag).
ensure_rollback_alarm() {
	local arn current hash
	local spec=(--alarm-name "$ALARM_ROLLBACK"
		--alarm-description "ECS Service Connect demo ($PREFIX): 5xx answers of the responder to the caller; rolls back deploy.sh rollout"
		--namespace AWS/ECS --metric-name HTTPCode_Target_5XX_Count
		--dimensions "Name=ClusterName,Value=$CLUSTER" "Name=ServiceName,Value=$SERVICE_CALLER" "Name=TargetDiscoveryName,Value=responder"
		--statistic Sum --period 60 --evaluation-periods 1 --datapoints-to-alarm 1 --threshold "$ALARM_THRESHOLD"
		--comparison-operator GreaterThanOrEqualToThreshold --treat-missing-data notBreaching)
	hash=$(show_cmd "${spec[@]}" | sha256_file -)
	arn=$(aws_read cloudwatch describe-alarms --alarm-names "$ALARM_ROLLBACK" --query 'MetricAlarms[0].AlarmArn' --output text)
	if [[ $arn == arn:* ]]; then
		current=$(aws_read cloudwatch list-tags-for-resource --resource-arn "$arn" --query "Tags[?Key=='SpecSha256'].Value | [0]" --output text)
		if [[ $current == "$hash" ]]; then
			log "CloudWatch alarm $ALARM_ROLLBACK is up to date"
			return 0
		fi
	fi
	aws_write cloudwatch put-metric-alarm "${spec[@]}" --tags "Key=Project,Value=$PREFIX" "Key=SpecSha256,Value=$hash"
	# PutMetricAlarm ignores the tags of an alarm that exists already.
	aws_write cloudwatch tag-resource --resource-arn "arn:aws:cloudwatch:$REGION:$ACCOUNT_ID:alarm:$ALARM_ROLLBACK" \
		--tags "Key=Project,Value=$PREFIX" "Key=SpecSha256,Value=$hash"
}

# rollout_timeout_minutes: how long the deployment may take before deploy.sh stops waiting:
# the bake times it was given plus 30 minutes for starting and stopping tasks.
rollout_timeout_minutes() {
	local steps
	case $STRATEGY in
	rolling) echo 30 ;;
	canary) echo $((CANARY_BAKE_MIN + BAKE_MIN + 30)) ;;
	linear)
		steps=$(((1000 + $(percent_tenths "$LINEAR_STEP_PERCENT") - 1) / $(percent_tenths "$LINEAR_STEP_PERCENT")))
		echo $((steps * LINEAR_STEP_BAKE_MIN + BAKE_MIN + 30))
		;;
	esac
}

# rolled_back REASON: the deployment ended with the previous version serving again.
rolled_back() {
	printf 'error: ECS rolled the deployment of responder version %s back: %s\n' "$ROLLOUT_VERSION" "$1" >&2
	printf 'error: %s runs its previous task definition again; nothing else changed.\n' "$SERVICE_RESPONDER" >&2
	if ((ROLLBACK_ALARM)); then
		printf 'error: see the alarm: aws cloudwatch describe-alarm-history --region %s --alarm-name %s\n' "$REGION" "$ALARM_ROLLBACK" >&2
	fi
	exit "$ROLLOUT_ROLLED_BACK_EXIT"
}

# wait_service_deployment ARN: poll DescribeServiceDeployments until the deployment ends,
# printing each new stage and share of production traffic.
wait_service_deployment() {
	local arn=$1 polls max seen="" now status stage weight reason
	max=$(($(rollout_timeout_minutes) * 60 / (POLL_SECONDS > 0 ? POLL_SECONDS : 1)))
	((POLL_SECONDS > 0)) || max=${SCD_ROLLOUT_MAX_POLLS:-200}
	log "waiting for the deployment $arn (at most $(rollout_timeout_minutes) minutes)"
	for ((polls = 0; polls < max; polls++)); do
		IFS=$'\t' read -r status stage weight reason < <(aws_read ecs describe-service-deployments --cluster "$CLUSTER" \
			--service-deployment-arns "$arn" \
			--query 'serviceDeployments[0].[status, lifecycleStage, targetServiceRevision.requestedProductionTrafficWeight, statusReason]' \
			--output text)
		now="$status $stage $weight"
		if [[ $now != "$seen" ]]; then
			seen=$now
			[[ $stage == None || -z $stage ]] && stage="" || stage=", stage $stage"
			if [[ $weight != None && -n $weight ]]; then
				log "deployment $status$stage: version $ROLLOUT_VERSION gets ${weight}% of the requests that reach the responder through Service Connect"
			else
				log "deployment $status$stage"
			fi
		fi
		case $status in
		SUCCESSFUL) return 0 ;;
		ROLLBACK_SUCCESSFUL) rolled_back "${reason:-no reason given}" ;;
		ROLLBACK_FAILED) die "the deployment of version $ROLLOUT_VERSION failed and so did its rollback: $reason. Look at the service's events: aws ecs describe-services --region $REGION --cluster $CLUSTER --services $SERVICE_RESPONDER" ;;
		STOPPED) die "the deployment of version $ROLLOUT_VERSION was stopped: $reason" ;;
		PENDING | IN_PROGRESS | ROLLBACK_REQUESTED | ROLLBACK_IN_PROGRESS | STOP_REQUESTED) ;;
		*) die "unexpected answer from describe-service-deployments for $arn: '$status'" ;;
		esac
		sleep "$POLL_SECONDS"
	done
	die "the deployment of version $ROLLOUT_VERSION has not ended after $max polls, ${POLL_SECONDS}s apart; it goes on in ECS: aws ecs describe-service-deployments --region $REGION --cluster $CLUSTER --service-deployment-arns $arn"
}

rollout_main() {
	local found status arn current_td image app_protocol upd hash tag deployment caller_ip conf
	rollout_preflight
	upd="$WORK_DIR/rollout-update.json"

	found=$(aws_read ecs describe-services --cluster "$CLUSTER" --services "$SERVICE_RESPONDER" \
		--query "services[?status=='ACTIVE'] | [0].[status, serviceArn, taskDefinition]" --output text)
	IFS=$'\t' read -r status arn current_td <<<"$found"
	if ((DRY_RUN)); then
		arn="arn:aws:ecs:$REGION:$ACCOUNT_ID:service/$CLUSTER/$SERVICE_RESPONDER"
		current_td="arn:aws:ecs:$REGION:$ACCOUNT_ID:task-definition/$FAMILY_RESPONDER:<current>"
	elif [[ $status != ACTIVE ]]; then
		die "no active service $SERVICE_RESPONDER in cluster $CLUSTER ($REGION): run deploy/deploy.sh first"
	fi

	# The new revision is the current one's image, EMF and tracing settings with the new
	# APP_VERSION (and FAULT_ERROR_RATE), rendered from the same templates as deploy.sh's: a
	# deployment made with --tracing keeps its X-Ray daemon sidecar (XRAY_TRACING=1 is how the
	# running revision says so).
	IFS=$'\t' read -r image METRICS_EMF app_protocol TRACING < <(aws_read ecs describe-task-definition --task-definition "$current_td" \
		--query "taskDefinition.containerDefinitions[0].[image, environment[?name=='METRICS_EMF'].value | [0], portMappings[0].appProtocol, environment[?name=='XRAY_TRACING'].value | [0]]" \
		--output text)
	if ((DRY_RUN)); then
		image="<image-of-the-current-revision>"
		METRICS_EMF=0
		app_protocol=http
		TRACING=0
	fi
	[[ $app_protocol == http ]] ||
		die "$SERVICE_RESPONDER runs the mutual TLS variant (no appProtocol): rollout shifts HTTP traffic and handles the plain deployment only"
	[[ $METRICS_EMF =~ ^[01]$ ]] || METRICS_EMF=0
	[[ $TRACING == 1 ]] || TRACING=0
	((TRACING)) && log "$SERVICE_RESPONDER runs with X-Ray tracing (XRAY_TRACING=1): the new revision keeps the X-Ray daemon sidecar"
	APP_VERSION=$ROLLOUT_VERSION
	TASK_ROLE_ARN="arn:aws:iam::$ACCOUNT_ID:role/$ROLE_TASK"
	EXECUTION_ROLE_ARN="arn:aws:iam::$ACCOUNT_ID:role/$ROLE_EXECUTION"
	CALLER_SECRET_ARN=""
	RESPONDER_SECRET_ARN=""
	MTLS_CERTS_SHA256=""
	MTLS=0
	register_task_definition responder "$image" "$LOG_GROUP_RESPONDER"

	((ROLLBACK_ALARM)) && ensure_rollback_alarm
	conf=$(rollout_deployment_configuration)
	printf '{\n  "cluster": "%s",\n  "service": "%s",\n  "taskDefinition": "%s",\n  "deploymentConfiguration": %s\n}\n' \
		"$CLUSTER" "$SERVICE_RESPONDER" "$TASK_DEFINITION_ARN" "$conf" >"$upd"
	hash=$(sha256_file "$upd")

	tag=$(aws_read ecs list-tags-for-resource --resource-arn "$arn" --query "tags[?key=='RolloutSha256'].value | [0]" --output text)
	if [[ $current_td == "$TASK_DEFINITION_ARN" && $tag == "$hash" ]]; then
		log "$SERVICE_RESPONDER already runs version $ROLLOUT_VERSION ($TASK_DEFINITION_ARN), rolled out with this configuration: nothing to do"
		return 0
	fi
	log "rolling out responder version $ROLLOUT_VERSION with strategy $STRATEGY: $conf"
	deployment=$(aws_write_iam ecs update-service --cli-input-json "file://$upd" --query service.currentServiceDeployment --output text)
	aws_write ecs tag-resource --resource-arn "$arn" --tags "key=RolloutSha256,value=$hash" >/dev/null
	if ((!DRY_RUN)) && [[ $deployment != arn:* ]]; then
		deployment=$(aws_read ecs list-service-deployments --cluster "$CLUSTER" --service "$SERVICE_RESPONDER" \
			--status PENDING IN_PROGRESS --query 'serviceDeployments[0].serviceDeploymentArn' --output text)
	fi

	caller_ip=$(public_ip "$SERVICE_CALLER")
	printf 'caller    http://%s:5000\n' "$caller_ip"
	printf 'watch:    scripts/watch-versions.sh http://%s:5000   (the share of answers per responder version, live)\n' "$caller_ip"

	if ((DRY_RUN)); then
		log "dry run: deploy.sh would now wait for the deployment (aws ecs describe-service-deployments)"
		return 0
	fi
	if [[ $deployment == arn:* ]] && aws_cli_at_least "$CLI_FOR_STRATEGIES"; then
		wait_service_deployment "$deployment"
	else
		# A rolling update with an older CLI: wait as deploy.sh does, then see which revision runs.
		wait_stable "$SERVICE_RESPONDER"
		current_td=$(aws_read ecs describe-services --cluster "$CLUSTER" --services "$SERVICE_RESPONDER" \
			--query 'services[0].taskDefinition' --output text)
		[[ $current_td == "$TASK_DEFINITION_ARN" ]] || rolled_back "the service is stable on $current_td, not on $TASK_DEFINITION_ARN"
	fi
	log "done: $SERVICE_RESPONDER runs version $ROLLOUT_VERSION ($TASK_DEFINITION_ARN)"
}

# ---------------------------------------------------------------- main

main() {
	preflight
	default_allowed_cidr

	ensure_ecr_repo "$REPO_CALLER"
	ensure_ecr_repo "$REPO_RESPONDER"
	build_and_push caller "$REPO_CALLER"
	local caller_image=$IMAGE_URI
	build_and_push responder "$REPO_RESPONDER"
	local responder_image=$IMAGE_URI

	ensure_log_group "$LOG_GROUP_CALLER"
	ensure_log_group "$LOG_GROUP_RESPONDER"
	ensure_log_group "$LOG_GROUP_PROXY"

	ensure_ecs_service_linked_role
	# Each role trusts ecs-tasks.amazonaws.com as AWS documents it: the execution role plainly
	# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_execution_IAM_role.html),
	# the task role with the aws:SourceAccount/aws:SourceArn conditions documented for it
	# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html).
	ensure_role "$ROLE_EXECUTION" "$SCD_DEPLOY_DIR/iam/execution-role-trust.json" "$SCD_DEPLOY_DIR/iam/task-execution-policy.json"
	EXECUTION_ROLE_ARN=$ROLE_ARN
	ensure_role "$ROLE_TASK" "$SCD_DEPLOY_DIR/iam/task-role-trust.json" "$SCD_DEPLOY_DIR/iam/task-role-policy.json"
	TASK_ROLE_ARN=$ROLE_ARN
	TLS_ROLE_ARN=""
	if [[ -n $TLS_PCA_ARN ]]; then
		ensure_role "$ROLE_TLS" "$SCD_DEPLOY_DIR/iam/ecs-infrastructure-trust.json" "managed:$TLS_MANAGED_POLICY_ARN"
		TLS_ROLE_ARN=$ROLE_ARN
	fi
	((MTLS)) && ensure_mtls
	((TRACING)) && ensure_xray_policy
	wait_new_roles

	ensure_namespace
	ensure_cluster
	ensure_network

	register_task_definition responder "$responder_image" "$LOG_GROUP_RESPONDER"
	local responder_td=$TASK_DEFINITION_ARN
	register_task_definition caller "$caller_image" "$LOG_GROUP_CALLER"
	local caller_td=$TASK_DEFINITION_ARN

	# The server first. A Service Connect client task sees new tasks of the services that existed
	# when it started, but not services created after it started (ECS developer guide, "Service
	# Connect components": https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-connect-concepts-deploy.html).
	# So the caller's tasks are replaced only when the responder's service is new in this run
	# and the caller's tasks are not: an update of the responder needs nothing.
	deploy_service responder "$responder_td"
	local responder_created=$SERVICE_CREATED
	deploy_service caller "$caller_td"
	if [[ -n $responder_created && $SERVICE_CHANGED -eq 0 ]]; then
		log "$SERVICE_RESPONDER was $responder_created in this run, after the caller's tasks started, and a Service Connect client only knows the services that existed when it started: restarting the caller's tasks"
		aws_write ecs update-service --cluster "$CLUSTER" --service "$SERVICE_CALLER" --force-new-deployment \
			--query service.serviceArn --output text >/dev/null
		wait_stable "$SERVICE_CALLER"
	fi
	((TRACING)) || remove_xray_policy

	local caller_ip responder_ip
	responder_ip=$(public_ip "$SERVICE_RESPONDER")
	caller_ip=$(public_ip "$SERVICE_CALLER")
	if ((MTLS)); then
		printf 'caller    https://caller:5000     at %s\nresponder https://responder:5000  at %s\n' "$caller_ip" "$responder_ip"
		printf 'try:      curl --cacert %s --cert %s --key %s --resolve caller:5000:%s https://caller:5000/\n' \
			"$(printf '%q' "$MTLS_DIR/ca.pem")" "$(printf '%q' "$MTLS_DIR/client.pem")" \
			"$(printf '%q' "$MTLS_DIR/client-key.pem")" "$caller_ip"
	else
		printf 'caller    http://%s:5000\nresponder http://%s:5000\n' "$caller_ip" "$responder_ip"
	fi
	if ((SMOKE_TEST)); then
		((DRY_RUN)) || check_exit_address
		smoke_test "$caller_ip" "$responder_ip"
	fi
	log "done. Remove everything with: deploy/teardown.sh --region $REGION --prefix $PREFIX"
}

if [[ $MODE == rollout ]]; then
	rollout_main
else
	main
fi
