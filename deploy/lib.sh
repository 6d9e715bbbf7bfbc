# shellcheck shell=bash
# shellcheck disable=SC2034 # the names set here are used by the scripts that source this file
# Helpers shared by deploy/deploy.sh and deploy/teardown.sh. Sourced, never executed.
# Written for bash 3.2+ (macOS) as well as bash 5: no associative arrays, no mapfile.

SCD_DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCD_ROOT=$(cd "$SCD_DEPLOY_DIR/.." && pwd)

DRY_RUN=0
REGION=""
PREFIX=""
ACCOUNT_ID=""
WORK_DIR=""
KEEP_WORK_DIR=0
# Seconds between polls of asynchronous AWS operations (tests set 0).
POLL_SECONDS=${SCD_POLL_SECONDS:-5}

# Dry-run lines go to the script's own stdout even from inside $(...).
exec 3>&1

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

cleanup_work_dir() {
	if [[ -n $WORK_DIR && -d $WORK_DIR && $KEEP_WORK_DIR -eq 0 ]]; then
		rm -rf "$WORK_DIR"
	fi
}

make_work_dir() {
	WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/scdemo-deploy.XXXXXX") || die "cannot create a temporary directory"
	trap cleanup_work_dir EXIT
}

# Shell-quoted rendering of a command, for dry-run output and logs.
show_cmd() {
	local out="" a
	for a in "$@"; do
		out="$out $(printf '%q' "$a")"
	done
	printf '%s\n' "${out# }"
}

# Read-only AWS call; its answer goes to stdout. In dry-run mode nothing is sent: the call is
# printed and the answer is "None", which the callers treat as "does not exist yet".
aws_read() {
	if ((DRY_RUN)); then
		printf 'DRY-RUN (read):  %s\n' "$(show_cmd aws --region "$REGION" "$@")" >&3
		printf 'None\n'
		return 0
	fi
	aws --region "$REGION" "$@"
}

# Mutating AWS call. In dry-run mode it is only printed.
aws_write() {
	if ((DRY_RUN)); then
		printf 'DRY-RUN (write): %s\n' "$(show_cmd aws --region "$REGION" "$@")" >&3
		return 0
	fi
	log "aws $1 $2"
	aws --region "$REGION" "$@"
}

# aws_lookup NOT_FOUND_REGEX ARGS...: read-only call for APIs that answer "not found" with an
# error. Prints the answer and returns 0; returns 1 when the error matches NOT_FOUND_REGEX;
# any other error stops the script with the CLI's message.
aws_lookup() {
	local pattern=$1 out errfile
	shift
	if ((DRY_RUN)); then
		printf 'DRY-RUN (read):  %s\n' "$(show_cmd aws --region "$REGION" "$@")" >&3
		return 1
	fi
	errfile="$WORK_DIR/aws-stderr"
	if out=$(aws --region "$REGION" "$@" 2>"$errfile"); then
		printf '%s\n' "$out"
		return 0
	fi
	if grep -Eq "$pattern" "$errfile"; then
		return 1
	fi
	cat "$errfile" >&2
	die "aws $1 $2 failed"
}

# docker, or its dry-run print.
docker_run() {
	if ((DRY_RUN)); then
		printf 'DRY-RUN (docker): %s\n' "$(show_cmd docker "$@")" >&3
		return 0
	fi
	docker "$@"
}

# render TEMPLATE OUT NAME=VALUE...: replace every ${NAME} of the template by its value.
# Values are inserted into JSON strings, so quotes, backslashes and control characters are
# refused. A placeholder left unfilled is an error. @NAME=a,b,c is a list placeholder: the
# template holds ["${NAME}"] and gets ["a", "b", "c"].
render() {
	local template=$1 out=$2 content kv name value left
	shift 2
	[[ -f $template ]] || die "template not found: $template"
	content=$(<"$template")
	for kv in "$@"; do
		name=${kv%%=*}
		value=${kv#*=}
		case $value in
		*'"'* | *\\* | *[[:cntrl:]]*) die "value for ${name#@} contains a character not allowed in a JSON string" ;;
		esac
		if [[ $name == @* ]]; then
			name=${name#@}
			value=${value//,/'", "'}
		fi
		content=${content//"\${$name}"/"$value"}
	done
	# shellcheck disable=SC2016 # a literal ${ is searched for
	left=$(printf '%s\n' "$content" | grep -o '\${[A-Za-z0-9_]*}' | sort -u | tr '\n' ' ' || true)
	[[ -z $left ]] || die "unfilled placeholder(s) in $template: $left"
	printf '%s\n' "$content" >"$out"
}

sha256_file() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$@" | cut -c1-64
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$@" | cut -c1-64
	else
		die "need sha256sum or shasum"
	fi
}

# sha256 of the concatenation of several files.
sha256_files() {
	cat "$@" | sha256_file -
}

check_region() {
	[[ -n $REGION ]] || die "no AWS region: pass --region, or set AWS_REGION / AWS_DEFAULT_REGION, or run 'aws configure set region ...'"
	[[ $REGION =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "'$REGION' does not look like an AWS region (e.g. us-east-1)"
}

check_prefix() {
	[[ $PREFIX =~ ^[a-z][a-z0-9-]{1,19}$ ]] || die "prefix '$PREFIX' must be 2-20 characters of a-z, 0-9 and '-', starting with a letter"
}

# Region from the CLI's own configuration when neither flag nor environment gave one.
default_region_from_cli() {
	if [[ -z $REGION ]]; then
		REGION=$(aws configure get region 2>/dev/null || true)
	fi
}

check_aws_cli() {
	local version
	command -v aws >/dev/null 2>&1 || die "AWS CLI v2 ('aws') not found on PATH; see https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
	version=$(aws --version 2>&1 || true)
	case $version in
	aws-cli/2.*) ;;
	*) die "AWS CLI v2 is required (found: ${version:-nothing})" ;;
	esac
	# Service Connect `timeout` and `tls` first came in the CLI's ECS model with 2.15.14 (its
	# CHANGELOG.rst, https://github.com/aws/aws-cli/blob/v2/CHANGELOG.rst); older CLIs reject them.
	local cli=${version%% *}
	AWS_CLI_VERSION=${cli#aws-cli/}
	if ! aws_cli_at_least 2.15.14; then
		warn "$cli is older than 2.15.14 and does not know Service Connect 'timeout'/'tls'; upgrade if create-service rejects them"
	fi
	export AWS_PAGER=""
}

# aws_cli_at_least X.Y.Z: true when the CLI that check_aws_cli found (AWS_CLI_VERSION) is
# version X.Y.Z or newer. A version it cannot read counts as new enough.
AWS_CLI_VERSION=""
aws_cli_at_least() {
	local want_major want_minor want_patch major minor patch
	IFS=. read -r want_major want_minor want_patch <<<"$1"
	IFS=. read -r major minor patch <<<"$AWS_CLI_VERSION"
	[[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ && $patch =~ ^[0-9]+$ ]] || return 0
	((major != want_major)) && { ((major > want_major)); return; }
	((minor != want_minor)) && { ((minor > want_minor)); return; }
	((patch >= want_patch))
}

# Account ID; fails fast when there are no usable credentials. Prints no secrets.
check_credentials() {
	local errfile="$WORK_DIR/sts-stderr"
	if ((DRY_RUN)); then
		printf 'DRY-RUN (read):  %s\n' "$(show_cmd aws --region "$REGION" sts get-caller-identity --query Account --output text)" >&3
		ACCOUNT_ID=${AWS_ACCOUNT_ID:-123456789012}
		return 0
	fi
	if ! ACCOUNT_ID=$(aws --region "$REGION" sts get-caller-identity --query Account --output text 2>"$errfile"); then
		die "no usable AWS credentials: 'aws sts get-caller-identity' failed: $(head -n 3 "$errfile" | tr '\n' ' ')"
	fi
	[[ $ACCOUNT_ID =~ ^[0-9]{12}$ ]] || die "unexpected account ID from sts get-caller-identity: $ACCOUNT_ID"
}

# Fixed, prefixed names of everything deploy creates (teardown deletes exactly these).
set_names() {
	CLUSTER=$PREFIX
	NAMESPACE_NAME=$PREFIX
	REPO_CALLER="$PREFIX/caller"
	REPO_RESPONDER="$PREFIX/responder"
	LOG_GROUP_CALLER="/ecs/$PREFIX/caller"
	LOG_GROUP_RESPONDER="/ecs/$PREFIX/responder"
	LOG_GROUP_PROXY="/ecs/$PREFIX/service-connect"
	ROLE_EXECUTION="$PREFIX-task-execution"
	ROLE_TASK="$PREFIX-task"
	ROLE_TLS="$PREFIX-ecs-infrastructure-tls"
	SG_NAME="$PREFIX-tasks"
	SERVICE_CALLER="$PREFIX-caller"
	SERVICE_RESPONDER="$PREFIX-responder"
	FAMILY_CALLER="$PREFIX-caller"
	FAMILY_RESPONDER="$PREFIX-responder"
	# The CloudWatch alarm that 'deploy.sh rollout --rollback-alarm' wires into the responder's deployments.
	ALARM_ROLLBACK="$PREFIX-responder-5xx"
	TLS_MANAGED_POLICY_ARN="arn:aws:iam::aws:policy/service-role/AmazonECSInfrastructureRolePolicyForServiceConnectTransportLayerSecurity"
	# Mutual TLS (MTLS=1): one Secrets Manager secret per service, read by the execution role
	# through one inline policy. No name ends in "-" and six characters, which Secrets Manager
	# would take for the random suffix of a full ARN.
	SECRET_CALLER="$PREFIX/mtls/caller"
	SECRET_RESPONDER="$PREFIX/mtls/responder"
	POLICY_MTLS="$PREFIX-mtls-secrets"
	# X-Ray tracing (deploy.sh --tracing): the task role's inline policy for the X-Ray daemon sidecar.
	POLICY_XRAY="$PREFIX-xray"
}

# wait_cloudmap_operation OPERATION_ID: poll until SUCCESS, die on FAIL.
wait_cloudmap_operation() {
	local op=$1 status i
	((DRY_RUN)) && return 0
	for ((i = 0; i < 120; i++)); do
		status=$(aws_read servicediscovery get-operation --operation-id "$op" --query Operation.Status --output text)
		case $status in
		SUCCESS) return 0 ;;
		FAIL) die "Cloud Map operation $op failed: $(aws_read servicediscovery get-operation --operation-id "$op" --query Operation.ErrorMessage --output text)" ;;
		esac
		sleep "$POLL_SECONDS"
	done
	die "Cloud Map operation $op did not finish in time"
}
