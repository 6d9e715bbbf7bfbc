#!/usr/bin/env bash
# Delete everything deploy/deploy.sh created, in dependency order, and nothing else: every
# resource is found by its fixed, prefixed name (IAM roles, the security group and the mTLS
# secrets must also carry the Project=<prefix> tag). Safe to run twice.
set -euo pipefail

# shellcheck source=deploy/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

usage() {
	cat <<'EOF'
Usage: deploy/teardown.sh [options]

  --region REGION   AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, then 'aws configure get region')
  --prefix NAME     prefix given to deploy.sh (default: $SCD_PREFIX or "scdemo")
  --dry-run         print every AWS call that would be made, make none
  -h, --help        this text
EOF
}

REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
PREFIX=${SCD_PREFIX:-scdemo}
# How many times teardown looks for the tasks' network interfaces in the security group,
# POLL_SECONDS apart: 240 x 5 s is 20 minutes.
ENI_WAIT_TRIES=${SCD_ENI_WAIT_TRIES:-240}
TLS_USED=0
need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
	case $1 in
	--region) need_value "$@"; REGION=$2; shift 2 ;;
	--prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
	--dry-run) DRY_RUN=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done

none() { [[ -z $1 || $1 == None ]]; }

# retry N COMMAND...: for deletions that fail until something else has finished releasing
# (network interfaces, tasks).
retry() {
	local tries=$1 i
	shift
	for ((i = 1; i <= tries; i++)); do
		if "$@"; then return 0; fi
		((i < tries)) && {
			log "not yet possible, retrying in ${POLL_SECONDS}s ($i/$tries)"
			sleep "$POLL_SECONDS"
		}
	done
	return 1
}

delete_services() {
	local name status deleted=()
	for name in "$SERVICE_CALLER" "$SERVICE_RESPONDER"; do
		status=$(aws_read ecs describe-services --cluster "$CLUSTER" --services "$name" \
			--query "services[?status=='ACTIVE'] | [0].status" --output text)
		if [[ $status == ACTIVE ]]; then
			aws_write ecs delete-service --cluster "$CLUSTER" --service "$name" --force \
				--query service.serviceArn --output text >/dev/null
			deleted+=("$name")
		fi
	done
	if [[ ${#deleted[@]} -gt 0 ]]; then
		log "waiting for ${deleted[*]} to be inactive"
		aws_read ecs wait services-inactive --cluster "$CLUSTER" --services "${deleted[@]}" >/dev/null ||
			die "services did not become inactive; run teardown again in a few minutes"
	fi
}

delete_task_definitions() {
	local family arns arn
	for family in "$FAMILY_CALLER" "$FAMILY_RESPONDER"; do
		arns=$(aws_read ecs list-task-definitions --family-prefix "$family" --status ACTIVE \
			--query "taskDefinitionArns[?contains(@, ':task-definition/$family:')]" --output text)
		if ! none "$arns"; then
			for arn in $arns; do
				aws_write ecs deregister-task-definition --task-definition "$arn" \
					--query taskDefinition.taskDefinitionArn --output text >/dev/null
			done
		fi
		arns=$(aws_read ecs list-task-definitions --family-prefix "$family" --status INACTIVE \
			--query "taskDefinitionArns[?contains(@, ':task-definition/$family:')]" --output text)
		none "$arns" && continue
		# DeleteTaskDefinitions takes at most 10 ARNs per call.
		# shellcheck disable=SC2086 # one argument per ARN
		set -- $arns
		while [[ $# -gt 0 ]]; do
			local batch=()
			while [[ $# -gt 0 && ${#batch[@]} -lt 10 ]]; do
				batch+=("$1")
				shift
			done
			aws_write ecs delete-task-definitions --task-definitions "${batch[@]}" >/dev/null ||
				warn "could not delete inactive revisions of $family (an AWS CLI older than delete-task-definitions?); they cost nothing"
		done
	done
}

delete_cluster() {
	local status
	status=$(aws_read ecs describe-clusters --clusters "$CLUSTER" --query "clusters[?status=='ACTIVE'] | [0].status" --output text)
	[[ $status == ACTIVE ]] || return 0
	retry 24 aws_write ecs delete-cluster --cluster "$CLUSTER" --query cluster.clusterArn --output text >/dev/null ||
		die "could not delete cluster $CLUSTER"
}

delete_namespace() {
	local ns_id services svc instances inst op
	ns_id=$(aws_read servicediscovery list-namespaces --filters Name=TYPE,Values=HTTP,Condition=EQ \
		--query "Namespaces[?Name=='$NAMESPACE_NAME'] | [0].Id" --output text)
	none "$ns_id" && return 0
	# Cloud Map services that Service Connect made in our namespace.
	services=$(aws_read servicediscovery list-services --filters "Name=NAMESPACE_ID,Values=$ns_id,Condition=EQ" \
		--query 'Services[].Id' --output text)
	if ! none "$services"; then
		for svc in $services; do
			instances=$(aws_read servicediscovery list-instances --service-id "$svc" --query 'Instances[].Id' --output text)
			if ! none "$instances"; then
				for inst in $instances; do
					op=$(aws_write servicediscovery deregister-instance --service-id "$svc" --instance-id "$inst" \
						--query OperationId --output text)
					wait_cloudmap_operation "$op"
				done
			fi
			retry 12 aws_write servicediscovery delete-service --id "$svc" || die "could not delete Cloud Map service $svc"
		done
	fi
	op=$(aws_write servicediscovery delete-namespace --id "$ns_id" --query OperationId --output text)
	wait_cloudmap_operation "$op"
}

# wait_network_interfaces SG_ID: Fargate releases a task's network interface some time after
# the task stops, and a group cannot be deleted while an interface uses it. Waits, at most
# ENI_WAIT_TRIES polls POLL_SECONDS apart, until no interface uses the group.
wait_network_interfaces() {
	local id=$1 enis i
	for ((i = 1; i <= ENI_WAIT_TRIES; i++)); do
		enis=$(aws_read ec2 describe-network-interfaces --filters "Name=group-id,Values=$id" \
			--query 'NetworkInterfaces[].NetworkInterfaceId' --output text)
		none "$enis" && return 0
		if ((i == 1 || i % 12 == 0)); then
			log "waiting for Fargate to release the network interfaces in security group $id: $(printf '%s' "$enis" | tr '\t' ' ') ($i/$ENI_WAIT_TRIES, ${POLL_SECONDS}s apart)"
		fi
		sleep "$POLL_SECONDS"
	done
	die "security group $id still has network interfaces after $ENI_WAIT_TRIES polls, ${POLL_SECONDS}s apart: $(printf '%s' "$enis" | tr '\t' ' '). Fargate may still be releasing them, or something else uses the group (aws ec2 describe-network-interfaces --filters Name=group-id,Values=$id). Run deploy/teardown.sh again later: it deletes what is left"
}

delete_security_groups() {
	local ids id
	ids=$(aws_read ec2 describe-security-groups --filters "Name=group-name,Values=$SG_NAME" "Name=tag:Project,Values=$PREFIX" \
		--query 'SecurityGroups[].GroupId' --output text)
	none "$ids" && return 0
	for id in $ids; do
		wait_network_interfaces "$id"
		# A few tries more, for EC2 to agree with itself once the last interface is gone.
		retry 6 aws_write ec2 delete-security-group --group-id "$id" || die "could not delete security group $id"
	done
}

delete_log_groups() {
	local name found
	for name in "$LOG_GROUP_CALLER" "$LOG_GROUP_RESPONDER" "$LOG_GROUP_PROXY"; do
		found=$(aws_read logs describe-log-groups --log-group-name-prefix "$name" \
			--query "logGroups[?logGroupName=='$name'] | [0].logGroupName" --output text)
		none "$found" || aws_write logs delete-log-group --log-group-name "$name"
	done
}

delete_repositories() {
	local name
	for name in "$REPO_CALLER" "$REPO_RESPONDER"; do
		if aws_lookup 'RepositoryNotFoundException' ecr describe-repositories --repository-names "$name" \
			--query 'repositories[0].repositoryName' --output text >/dev/null; then
			aws_write ecr delete-repository --repository-name "$name" --force \
				--query repository.repositoryName --output text >/dev/null
		fi
	done
}

# The MTLS=1 certificate secrets, when tagged Project=<prefix>. Deleted without a recovery
# window: they hold dev certificates that deploy makes again from the local copies in
# ~/.scdemo/<prefix>/mtls, and a secret in its recovery window (7 to 30 days) would still be
# there, scheduled for deletion, when deploy runs next. The execution role's inline policy
# that reads them goes with the role (delete_roles).
delete_secrets() {
	local name found arn project
	for name in "$SECRET_CALLER" "$SECRET_RESPONDER"; do
		found=$(aws_lookup 'ResourceNotFoundException' secretsmanager describe-secret --secret-id "$name" \
			--query "[ARN, Tags[?Key=='Project'].Value | [0]]" --output text) || continue
		arn=${found%%$'\t'*}
		project=${found#*$'\t'}
		if [[ $project != "$PREFIX" ]]; then
			warn "secret $name has no Project=$PREFIX tag: not created by deploy.sh, left alone"
			continue
		fi
		aws_write secretsmanager delete-secret --secret-id "$arn" --force-delete-without-recovery \
			--query Name --output text >/dev/null
	done
}

# The CloudWatch alarm of 'deploy.sh rollout --rollback-alarm', with its Project tag.
delete_rollback_alarm() {
	local arn project errfile="$WORK_DIR/alarm-stderr"
	# Only a rollout with --rollback-alarm makes it: an identity without CloudWatch permissions
	# can still tear the rest down.
	if ! arn=$(aws_read cloudwatch describe-alarms --alarm-names "$ALARM_ROLLBACK" --query 'MetricAlarms[0].AlarmArn' \
		--output text 2>"$errfile"); then
		warn "could not look for the CloudWatch alarm $ALARM_ROLLBACK ($(head -n 2 "$errfile" | tr '\n' ' ')); delete it yourself if 'deploy.sh rollout --rollback-alarm' made it"
		return 0
	fi
	[[ $arn == arn:* ]] || return 0
	project=$(aws_read cloudwatch list-tags-for-resource --resource-arn "$arn" --query "Tags[?Key=='Project'].Value | [0]" --output text)
	if [[ $project != "$PREFIX" ]]; then
		warn "CloudWatch alarm $ALARM_ROLLBACK has no Project=$PREFIX tag: not created by deploy.sh, left alone"
		return 0
	fi
	aws_write cloudwatch delete-alarms --alarm-names "$ALARM_ROLLBACK"
}

# delete_roles: each role deploy made, after its inline policies (PREFIX-permissions, and
# PREFIX-mtls-secrets or PREFIX-xray when deploy ran with --mtls or --tracing) and managed ones.
delete_roles() {
	local name project policies p attached a
	for name in "$ROLE_EXECUTION" "$ROLE_TASK" "$ROLE_TLS"; do
		aws_lookup 'NoSuchEntity' iam get-role --role-name "$name" --query Role.RoleName --output text >/dev/null || continue
		project=$(aws_read iam list-role-tags --role-name "$name" --query "Tags[?Key=='Project'].Value | [0]" --output text)
		if [[ $project != "$PREFIX" ]]; then
			warn "IAM role $name has no Project=$PREFIX tag: not created by deploy.sh, left alone"
			continue
		fi
		policies=$(aws_read iam list-role-policies --role-name "$name" --query 'PolicyNames' --output text)
		if ! none "$policies"; then
			for p in $policies; do aws_write iam delete-role-policy --role-name "$name" --policy-name "$p"; done
		fi
		attached=$(aws_read iam list-attached-role-policies --role-name "$name" --query 'AttachedPolicies[].PolicyArn' --output text)
		if ! none "$attached"; then
			for a in $attached; do aws_write iam detach-role-policy --role-name "$name" --policy-arn "$a"; done
		fi
		aws_write iam delete-role --role-name "$name"
		[[ $name != "$ROLE_TLS" ]] || TLS_USED=1
	done
}

# Service Connect TLS keeps each service's TLS private key in a Secrets Manager secret that ECS
# creates through the infrastructure role, named ecs-sc!...; AWS documents that ECS deletes
# these secrets itself (a replica Region added to one "prevents Amazon ECS from deleting the
# secret"), and that the role should be deleted after the services, as here. It does not say
# when. https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-connect-tls.html
# and the role's managed policy (secretsmanager:DeleteSecret on secret:ecs-sc!*):
# https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonECSInfrastructureRolePolicyForServiceConnectTransportLayerSecurity.html
tls_secrets_note() {
	log "Service Connect TLS was on: ECS kept the TLS private keys in Secrets Manager secrets named ecs-sc!..., which ECS itself deletes (AWS does not document when; teardown leaves them to it). To see any left: aws secretsmanager list-secrets --region $REGION --filters 'Key=name,Values=ecs-sc!'"
}

main() {
	check_prefix
	check_aws_cli
	default_region_from_cli
	check_region
	make_work_dir
	check_credentials
	set_names
	log "tearing down prefix $PREFIX in account $ACCOUNT_ID, region $REGION$( ((DRY_RUN)) && printf ' (dry run: nothing is sent)')"
	# Clients before servers does not matter for deletion; services go before the cluster,
	# the tasks' network interfaces before the security group, roles last.
	delete_services
	delete_rollback_alarm
	delete_task_definitions
	delete_cluster
	delete_namespace
	delete_security_groups
	delete_log_groups
	delete_repositories
	delete_secrets
	delete_roles
	((TLS_USED == 0)) || tls_secrets_note
	log "teardown of $PREFIX complete"
}

main
