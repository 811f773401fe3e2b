#!/usr/bin/env bash
# Tests for terraform/ (issue 11): static checks, variable validation, and a
# full plan/apply/verify/destroy cycle against a local moto_server (AWS
# emulator) bound to 127.0.0.1 on a free port.
#
# Requirements: terraform (>= 1.9), the hashicorp/aws provider unpacked in a
# plugin directory (default /opt/tf-plugins, override with TF_PLUGIN_DIR),
# moto_server (moto >= 5) and the aws CLI. No network access beyond 127.0.0.1.
#
# The repository tree is never written to: the module is copied into a
# temporary directory, where .terraform/, the plan and the state live.
#
# Environment knobs:
#   TF_PLUGIN_DIR  provider plugin directory (default /opt/tf-plugins)
#   KEEP_WORKDIR=1 keep the temporary directory (path printed at the end)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TF_SRC="$REPO_ROOT/terraform"
TEST_DIR="$REPO_ROOT/tests/terraform"
PLUGIN_DIR=${TF_PLUGIN_DIR:-/opt/tf-plugins}
CLUSTER=cajal-tftest
REGION=us-east-1
K8S_VERSION=1.32
TF_CMD_TIMEOUT=240 # seconds, per terraform command

# Deterministic, non-interactive, isolated from the caller's configuration.
export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
export TF_CLI_CONFIG_FILE=/dev/null
unset TF_DATA_DIR TF_WORKSPACE TF_CLI_ARGS TF_CLI_ARGS_plan TF_CLI_ARGS_apply TF_CLI_ARGS_init
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_DEFAULT_REGION=$REGION AWS_REGION=$REGION
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_EC2 AWS_ENDPOINT_URL_EKS AWS_ENDPOINT_URL_IAM AWS_ENDPOINT_URL_STS

PASS=0
FAIL=0
GAPS=0
pass() {
  PASS=$((PASS + 1))
  echo "ok   - $*"
}
fail() {
  FAIL=$((FAIL + 1))
  echo "FAIL - $*"
}
# check DESCRIPTION EXPECTED ACTUAL
check_eq() {
  if [[ "$2" == "$3" ]]; then
    pass "$1"
  else
    fail "$1 (expected '$2', got '$3')"
  fi
}
gap() {
  GAPS=$((GAPS + 1))
  echo "moto lacks: $*; not checked"
}
section() { echo "--- $* [t=$((SECONDS - START))s]"; }

for tool in terraform moto_server aws timeout; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "FAIL - required tool not found on PATH: $tool"
    echo "0 passed, 1 failed"
    exit 1
  fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cajal-tf-test.XXXXXX")
TF_DIR="$WORK/tf"
MOTO_PID=""

cleanup() {
  local rc=$?
  if [[ -n "$MOTO_PID" ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  if [[ "${KEEP_WORKDIR:-0}" == 1 ]]; then
    echo "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tf() {
  timeout "$TF_CMD_TIMEOUT" terraform -chdir="$TF_DIR" "$@"
}

START=$SECONDS

# ---------------------------------------------------------------------------
section "static checks"
# ---------------------------------------------------------------------------
if fmt_out=$(terraform fmt -check -recursive -diff "$TF_SRC" 2>&1); then
  pass "terraform fmt -check -recursive terraform/"
else
  fail "terraform fmt -check -recursive terraform/"
  echo "$fmt_out"
fi

if hits=$(grep -rnE --include='*.tf' 'localhost|127\.0\.0\.1|endpoints[[:space:]]*\{|skip_credentials_validation' "$TF_SRC"); then
  fail "production terraform/ must not contain test endpoints or skip_* flags"
  echo "$hits"
else
  pass "production terraform/ contains no emulator endpoints"
fi

# Work on a copy so .terraform/, plans and state never land in the repo.
# Local-only files a developer may have (backend.tf, tfvars) are dropped.
cp -R "$TF_SRC" "$TF_DIR"
rm -rf "$TF_DIR/.terraform" "$TF_DIR/backend.tf" "$TF_DIR/terraform.tfvars" "$TF_DIR"/*.auto.tfvars "$TF_DIR"/terraform.tfstate*

if out=$(tf init -backend=false -plugin-dir="$PLUGIN_DIR" -input=false -no-color 2>&1); then
  pass "terraform init -backend=false -plugin-dir=$PLUGIN_DIR"
else
  fail "terraform init"
  echo "$out"
  echo "$PASS passed, $FAIL failed"
  exit 1
fi

if out=$(tf validate -no-color 2>&1); then
  pass "terraform validate"
else
  fail "terraform validate"
  echo "$out"
fi

# ---------------------------------------------------------------------------
section "start moto_server on 127.0.0.1"
# ---------------------------------------------------------------------------
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  return 1
}

MOTO_UP=0
for _attempt in 1 2 3; do
  PORT=$(free_port)
  # Managed policies (AmazonEKSClusterPolicy, ...) must exist to be attached.
  MOTO_IAM_LOAD_MANAGED_POLICIES=true moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 1 100); do
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      break
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      MOTO_UP=1
      break
    fi
    sleep 0.2
  done
  [[ "$MOTO_UP" == 1 ]] && break
  kill "$MOTO_PID" 2>/dev/null || true
  wait "$MOTO_PID" 2>/dev/null || true
  MOTO_PID=""
done
if [[ "$MOTO_UP" != 1 ]]; then
  fail "moto_server did not start"
  cat "$WORK/moto.log" || true
  echo "$PASS passed, $FAIL failed"
  exit 1
fi
ENDPOINT="http://127.0.0.1:$PORT"
pass "moto_server listening on $ENDPOINT (pid $MOTO_PID)"

# Test-only provider configuration (override file in the temporary copy).
sed "s#@ENDPOINT@#$ENDPOINT#g" "$TEST_DIR/aws_provider_override.tf.tmpl" >"$TF_DIR/zz_moto_provider_override.tf"

awsq() { aws --endpoint-url "$ENDPOINT" --region "$REGION" --output text "$@"; }

COMMON_VARS=(-var "region=$REGION" -var "cluster_name=$CLUSTER" -var "kubernetes_version=$K8S_VERSION")

# ---------------------------------------------------------------------------
section "variable validation (each plan must fail with its own message)"
# ---------------------------------------------------------------------------
# The validation rules live in terraform/variables.tf. Most cases run against
# a copy of just that file (no provider to load, so each plan takes well under
# a second); one case runs against the full root module to show the same rule
# fires there. expect_invalid DIR DESCRIPTION MESSAGE -var ...: the plan must
# fail and print MESSAGE (the validation's own error_message).
VARS_DIR="$WORK/variables-only"
mkdir -p "$VARS_DIR"
cp "$TF_SRC/variables.tf" "$VARS_DIR/"
expect_invalid() {
  local dir=$1 desc=$2 msg=$3 out rc
  shift 3
  set +e
  out=$(timeout "$TF_CMD_TIMEOUT" terraform -chdir="$dir" plan -input=false -no-color -lock=false -refresh=false "${COMMON_VARS[@]}" "$@" 2>&1)
  rc=$?
  set -e
  # Terraform wraps long diagnostics; compare with whitespace collapsed.
  out=$(printf '%s' "$out" | tr -s '[:space:]' ' ')
  if [[ $rc -ne 0 && "$out" == *"$msg"* ]]; then
    pass "rejects $desc"
  else
    fail "rejects $desc (rc=$rc, expected message: $msg)"
    printf '%s\n' "$out" | tail -c 1500
  fi
}

if out=$(terraform -chdir="$VARS_DIR" init -backend=false -input=false -no-color 2>&1) &&
  out=$(terraform -chdir="$VARS_DIR" plan -input=false -no-color -lock=false "${COMMON_VARS[@]}" -var enable_gpu_node_group=true 2>&1); then
  pass "variables accept the test settings (control case)"
else
  fail "variables accept the test settings (control case)"
  echo "$out" | tail -20
fi

VD=$VARS_DIR
expect_invalid "$VD" "malformed vpc_cidr 10.0.0.0/33" \
  "vpc_cidr must be a valid IPv4 network address in CIDR notation" \
  -var "vpc_cidr=10.0.0.0/33"
expect_invalid "$VD" "malformed vpc_cidr 10.0.0/16" \
  "vpc_cidr must be a valid IPv4 network address in CIDR notation" \
  -var "vpc_cidr=10.0.0/16"
expect_invalid "$VD" "vpc_cidr that is not a network address (10.0.1.0/16)" \
  "vpc_cidr must be a valid IPv4 network address in CIDR notation" \
  -var "vpc_cidr=10.0.1.0/16"
expect_invalid "$VD" "malformed public_access_cidrs entry" \
  "public_access_cidrs must be a non-empty list of valid IPv4 CIDR blocks" \
  -var 'public_access_cidrs=["300.1.2.0/24"]'
expect_invalid "$VD" "malformed private_subnet_cidrs entry" \
  "private_subnet_cidrs must contain only valid IPv4 CIDR blocks" \
  -var 'private_subnet_cidrs=["10.0.0.0/20","banana"]'
expect_invalid "$VD" "GPU node group with max size 0" \
  "gpu_max_size must be a whole number of at least 1" \
  -var enable_gpu_node_group=true -var gpu_min_size=0 -var gpu_desired_size=0 -var gpu_max_size=0
expect_invalid "$VD" "bad kubernetes_version v1.32" \
  "kubernetes_version must be an EKS minor version of the form 1.MINOR" \
  -var "kubernetes_version=v1.32"
expect_invalid "$VD" "bad kubernetes_version 1.32.1" \
  "kubernetes_version must be an EKS minor version of the form 1.MINOR" \
  -var "kubernetes_version=1.32.1"
expect_invalid "$VD" "empty cluster_name" \
  "cluster_name must be 2-39 characters of letters, digits and hyphens" \
  -var "cluster_name="
expect_invalid "$VD" "non-NVIDIA gpu_ami_type" \
  "gpu_ami_type must be an NVIDIA EKS AMI type" \
  -var enable_gpu_node_group=true -var gpu_ami_type=AL2023_x86_64_STANDARD
expect_invalid "$VD" "cpu_desired_size above cpu_max_size" \
  "cpu_desired_size must lie between cpu_min_size and cpu_max_size" \
  -var cpu_desired_size=9 -var cpu_max_size=3
expect_invalid "$VD" "unknown control plane log type" \
  "enabled_cluster_log_types may only contain api, audit, authenticator" \
  -var 'enabled_cluster_log_types=["api","everything"]'
expect_invalid "$VD" "EBS CSI driver without IRSA" \
  "enable_ebs_csi_driver needs enable_irsa = true" \
  -var enable_irsa=false -var enable_ebs_csi_driver=true
# The same rule through the full root module (provider loaded, moto endpoint).
expect_invalid "$TF_DIR" "GPU node group with max size 0 (full root module)" \
  "gpu_max_size must be a whole number of at least 1" \
  -var enable_gpu_node_group=true -var gpu_min_size=0 -var gpu_desired_size=0 -var gpu_max_size=0

# ---------------------------------------------------------------------------
section "plan with defaults (GPU node group off)"
# ---------------------------------------------------------------------------
if out=$(tf plan -input=false -no-color -lock=false "${COMMON_VARS[@]}" 2>&1); then
  pass "terraform plan (defaults) succeeds"
  if [[ "$out" == *"module.node_groups.aws_eks_node_group.cpu will be created"* ]]; then
    pass "default plan creates the CPU node group"
  else
    fail "default plan creates the CPU node group"
  fi
  if [[ "$out" == *"aws_eks_node_group.gpu"* ]]; then
    fail "default plan has no GPU node group"
  else
    pass "default plan has no GPU node group"
  fi
  if [[ "$out" == *"aws_eks_addon.ebs_csi[0] will be created"* ]]; then
    pass "default plan installs the aws-ebs-csi-driver add-on"
  else
    fail "default plan installs the aws-ebs-csi-driver add-on"
  fi
else
  fail "terraform plan (defaults) succeeds"
  echo "$out" | tail -40
fi

# ---------------------------------------------------------------------------
section "plan + apply with the GPU node group enabled"
# ---------------------------------------------------------------------------
# moto 5 implements no EKS add-on API (CreateAddon/DescribeAddon/DeleteAddon),
# so only the add-on resource is switched off; its IRSA role is still applied.
gap "EKS add-on API (CreateAddon); aws_eks_addon.ebs_csi disabled in this test with -var manage_eks_addons=false (its plan is checked above, its IRSA role below)"
APPLY_VARS=("${COMMON_VARS[@]}" -var enable_gpu_node_group=true -var manage_eks_addons=false)
if out=$(tf plan -input=false -no-color -out=tfplan "${APPLY_VARS[@]}" 2>&1); then
  pass "terraform plan (GPU enabled)"
else
  fail "terraform plan (GPU enabled)"
  echo "$out" | tail -60
  echo "$PASS passed, $FAIL failed"
  exit 1
fi
if out=$(tf apply -auto-approve -input=false -no-color tfplan 2>&1); then
  pass "terraform apply -auto-approve"
else
  fail "terraform apply -auto-approve"
  echo "$out" | tail -60
fi

# ---------------------------------------------------------------------------
section "verify resources in the emulator"
# ---------------------------------------------------------------------------
# Each describe call returns a flat list of scalars (lists are joined with
# commas) so that one aws CLI process serves many checks; a field that could
# not be read shows up as "missing".
fetch() { # fetch QUERY aws-args...: print the fields, one per line
  local q=$1
  shift
  awsq "$@" --query "$q" 2>/dev/null | tr '\t' '\n' || true
}
sorted_csv() { tr ',' '\n' | sort | tr '\n' ',' | sed 's/,$//'; }
output_raw() { tf output -raw "$1" 2>/dev/null || true; }
# has_tag KEY VALUE: JMESPath filter matching resources with that tag
has_tag() { printf "Tags[?Key=='%s' && Value=='%s']" "$1" "$2"; }

VPC_ID=$(output_raw vpc_id)
mapfile -t V < <(fetch "[Vpcs[0].CidrBlock]" ec2 describe-vpcs --vpc-ids "$VPC_ID")
check_eq "VPC exists with the configured CIDR" "10.0.0.0/16" "${V[0]:-missing}"
check_eq "VPC has DNS hostnames enabled" "True" \
  "$(fetch 'EnableDnsHostnames.Value' ec2 describe-vpc-attribute --vpc-id "$VPC_ID" --attribute enableDnsHostnames)"

PUB="Subnets[?$(has_tag kubernetes.io/role/elb 1)]"
PRIV="Subnets[?$(has_tag kubernetes.io/role/internal-elb 1)]"
mapfile -t S < <(fetch "[length(Subnets), length($PUB), length($PRIV), length(Subnets[?$(has_tag "kubernetes.io/cluster/$CLUSTER" shared)]), join(',', Subnets[].AvailabilityZone), join(',', ${PUB}[].SubnetId), join(',', ${PRIV}[].SubnetId), join(',', ${PUB}[].to_string(MapPublicIpOnLaunch)), join(',', ${PRIV}[].to_string(MapPublicIpOnLaunch))]" \
  ec2 describe-subnets --filters "Name=vpc-id,Values=$VPC_ID")
PUBLIC_SUBNETS=$(printf '%s' "${S[5]:-}" | sorted_csv)
PRIVATE_SUBNETS=$(printf '%s' "${S[6]:-}" | sorted_csv)
check_eq "4 subnets in the VPC" "4" "${S[0]:-missing}"
check_eq "2 public subnets tagged kubernetes.io/role/elb=1" "2" "${S[1]:-missing}"
check_eq "2 private subnets tagged kubernetes.io/role/internal-elb=1" "2" "${S[2]:-missing}"
check_eq "all subnets tagged kubernetes.io/cluster/$CLUSTER=shared" "4" "${S[3]:-missing}"
check_eq "subnets span 2 availability zones" "2" "$(printf '%s' "${S[4]:-}" | tr ',' '\n' | sort -u | grep -c . || true)"
check_eq "public subnets map public IPs on launch" "true,true" "${S[7]:-missing}"
check_eq "private subnets do not map public IPs" "false,false" "${S[8]:-missing}"

check_eq "internet gateway attached to the VPC" "1" \
  "$(fetch 'length(InternetGateways)' ec2 describe-internet-gateways --filters "Name=attachment.vpc-id,Values=$VPC_ID")"
mapfile -t N < <(fetch "[length(NatGateways), NatGateways[0].SubnetId, length(NatGateways[0].NatGatewayAddresses[?AllocationId])]" \
  ec2 describe-nat-gateways --filter "Name=vpc-id,Values=$VPC_ID" "Name=state,Values=available")
check_eq "1 available NAT gateway (single_nat_gateway=true)" "1" "${N[0]:-missing}"
if [[ -n "${N[1]:-}" && ",$PUBLIC_SUBNETS," == *",${N[1]},"* ]]; then
  pass "NAT gateway sits in a public subnet"
else
  fail "NAT gateway sits in a public subnet (nat subnet '${N[1]:-}', public '$PUBLIC_SUBNETS')"
fi
check_eq "NAT gateway has an Elastic IP" "1" "${N[2]:-missing}"
mapfile -t R < <(fetch "[length(RouteTables[].Routes[?DestinationCidrBlock=='0.0.0.0/0' && NatGatewayId][]), length(RouteTables[].Routes[?DestinationCidrBlock=='0.0.0.0/0' && starts_with(GatewayId || '', 'igw-')][]), length(RouteTables[].Associations[?SubnetId][])]" \
  ec2 describe-route-tables --filters "Name=vpc-id,Values=$VPC_ID")
check_eq "private route tables send 0.0.0.0/0 to the NAT gateway" "2" "${R[0]:-missing}"
check_eq "public route table sends 0.0.0.0/0 to the internet gateway" "1" "${R[1]:-missing}"
check_eq "every subnet is associated with a route table" "4" "${R[2]:-missing}"

# IAM
attached() { # sorted attached managed policy names of role $1, comma separated
  fetch "join(',', AttachedPolicies[].PolicyName)" iam list-attached-role-policies --role-name "$1" | sorted_csv
}
CLUSTER_ROLE="$CLUSTER-eks-cluster"
NODE_ROLE="$CLUSTER-eks-node"
mapfile -t IR < <(fetch "[Role.RoleName, to_string(Role.AssumeRolePolicyDocument)]" iam get-role --role-name "$CLUSTER_ROLE")
check_eq "cluster IAM role exists" "$CLUSTER_ROLE" "${IR[0]:-missing}"
check_eq "cluster role has exactly AmazonEKSClusterPolicy" "AmazonEKSClusterPolicy" "$(attached "$CLUSTER_ROLE")"
if [[ "${IR[1]:-}" == *eks.amazonaws.com* ]]; then
  pass "cluster role trusts eks.amazonaws.com"
else
  fail "cluster role trusts eks.amazonaws.com"
fi
mapfile -t IR < <(fetch "[Role.RoleName, to_string(Role.AssumeRolePolicyDocument)]" iam get-role --role-name "$NODE_ROLE")
check_eq "node IAM role exists" "$NODE_ROLE" "${IR[0]:-missing}"
check_eq "node role has exactly the 3 worker policies" \
  "AmazonEC2ContainerRegistryReadOnly,AmazonEKSWorkerNodePolicy,AmazonEKS_CNI_Policy" "$(attached "$NODE_ROLE")"
if [[ "${IR[1]:-}" == *ec2.amazonaws.com* ]]; then
  pass "node role trusts ec2.amazonaws.com"
else
  fail "node role trusts ec2.amazonaws.com"
fi

EBS_ROLE="$CLUSTER-ebs-csi"
mapfile -t IR < <(fetch "[Role.RoleName, to_string(Role.AssumeRolePolicyDocument)]" iam get-role --role-name "$EBS_ROLE")
check_eq "EBS CSI IRSA role exists" "$EBS_ROLE" "${IR[0]:-missing}"
check_eq "EBS CSI role has exactly AmazonEBSCSIDriverPolicy" "AmazonEBSCSIDriverPolicy" "$(attached "$EBS_ROLE")"
EBS_TRUST=${IR[1]:-}
if [[ "$EBS_TRUST" == *AssumeRoleWithWebIdentity* && "$EBS_TRUST" == *system:serviceaccount:kube-system:ebs-csi-controller-sa* && "$EBS_TRUST" == *oidc-provider/oidc.eks.* ]]; then
  pass "EBS CSI role trusts the cluster OIDC provider for kube-system/ebs-csi-controller-sa"
else
  fail "EBS CSI role trusts the cluster OIDC provider for kube-system/ebs-csi-controller-sa"
fi

# CloudWatch log group for control plane logs
check_eq "control plane log group with 30 day retention" "30" \
  "$(fetch 'logGroups[0].retentionInDays' logs describe-log-groups --log-group-name-prefix "/aws/eks/$CLUSTER/cluster")"

# EKS cluster
mapfile -t C < <(fetch "[cluster.status, cluster.version, cluster.roleArn, to_string(cluster.resourcesVpcConfig.endpointPrivateAccess), to_string(cluster.resourcesVpcConfig.endpointPublicAccess), join(',', cluster.resourcesVpcConfig.publicAccessCidrs), join(',', cluster.resourcesVpcConfig.subnetIds), join(',', cluster.logging.clusterLogging[?enabled].types[]), cluster.endpoint, cluster.identity.oidc.issuer, to_string(cluster.accessConfig.authenticationMode)]" \
  eks describe-cluster --name "$CLUSTER")
check_eq "EKS cluster is ACTIVE" "ACTIVE" "${C[0]:-missing}"
check_eq "EKS cluster version" "$K8S_VERSION" "${C[1]:-missing}"
check_eq "EKS cluster uses the cluster role" "$(output_raw cluster_role_arn)" "${C[2]:-missing}"
check_eq "EKS private endpoint enabled" "true" "${C[3]:-missing}"
check_eq "EKS public endpoint enabled" "true" "${C[4]:-missing}"
check_eq "EKS public endpoint CIDRs" "0.0.0.0/0" "${C[5]:-missing}"
check_eq "EKS control plane ENIs in the 2 private subnets" "$PRIVATE_SUBNETS" "$(printf '%s' "${C[6]:-}" | sorted_csv)"
check_eq "EKS enabled log types" "api,audit,authenticator" "$(printf '%s' "${C[7]:-}" | sorted_csv)"
check_eq "output cluster_endpoint matches the cluster" "${C[8]:-missing}" "$(output_raw cluster_endpoint)"
check_eq "output update_kubeconfig_command" \
  "aws eks update-kubeconfig --region $REGION --name $CLUSTER" "$(output_raw update_kubeconfig_command)"
ISSUER=${C[9]:-missing}
ACCESS_MODE=${C[10]:-missing}
if [[ "$ACCESS_MODE" == "null" || "$ACCESS_MODE" == "missing" ]]; then
  gap "EKS accessConfig in CreateCluster/DescribeCluster (authentication_mode API_AND_CONFIG_MAP)"
else
  check_eq "EKS authentication mode" "API_AND_CONFIG_MAP" "${ACCESS_MODE//\"/}"
fi

# IRSA
OIDC_ARN=$(output_raw oidc_provider_arn)
mapfile -t O < <(fetch "[Url, join(',', ClientIDList), join(',', ThumbprintList)]" \
  iam get-open-id-connect-provider --open-id-connect-provider-arn "${OIDC_ARN:-none}")
check_eq "IAM OIDC provider URL is the cluster issuer" "${ISSUER#https://}" "${O[0]#https://}"
check_eq "OIDC provider audience sts.amazonaws.com" "sts.amazonaws.com" "${O[1]:-missing}"
check_eq "OIDC provider thumbprint" "9e99a48a9960b14926bb7f3b02e22da2b0ab7280" "${O[2]:-missing}"

# Node groups
check_eq "node groups cpu and gpu exist" "$CLUSTER-cpu,$CLUSTER-gpu" \
  "$(fetch "join(',', nodegroups)" eks list-nodegroups --cluster-name "$CLUSTER" | sorted_csv)"
NG_QUERY="[nodegroup.status, nodegroup.nodeRole, nodegroup.amiType, join(',', nodegroup.instanceTypes), join(' ', [nodegroup.scalingConfig.minSize, nodegroup.scalingConfig.desiredSize, nodegroup.scalingConfig.maxSize][].to_string(@)), nodegroup.labels.\"cajal.dev/node-pool\", join(';', (nodegroup.taints || \`[]\`)[].join(' ', [key, value, effect])), join(',', nodegroup.subnets), to_string(nodegroup.updateConfig.maxUnavailable)]"
NODE_ROLE_ARN=$(output_raw node_role_arn)
mapfile -t G < <(fetch "$NG_QUERY" eks describe-nodegroup --cluster-name "$CLUSTER" --nodegroup-name "$CLUSTER-cpu")
check_eq "cpu: status ACTIVE" "ACTIVE" "${G[0]:-missing}"
check_eq "cpu: node role" "$NODE_ROLE_ARN" "${G[1]:-missing}"
check_eq "cpu: AMI type" "AL2023_x86_64_STANDARD" "${G[2]:-missing}"
check_eq "cpu: instance types" "m6i.xlarge" "${G[3]:-missing}"
check_eq "cpu: scaling min/desired/max" "2 2 6" "${G[4]:-missing}"
check_eq "cpu: label cajal.dev/node-pool=cpu" "cpu" "${G[5]:-missing}"
check_eq "cpu: no taints" "" "${G[6]-missing}"
check_eq "cpu: in the private subnets" "$PRIVATE_SUBNETS" "$(printf '%s' "${G[7]:-}" | sorted_csv)"
UPDATE_CFG=${G[8]:-missing}
mapfile -t G < <(fetch "$NG_QUERY" eks describe-nodegroup --cluster-name "$CLUSTER" --nodegroup-name "$CLUSTER-gpu")
check_eq "gpu: status ACTIVE" "ACTIVE" "${G[0]:-missing}"
check_eq "gpu: node role" "$NODE_ROLE_ARN" "${G[1]:-missing}"
check_eq "gpu: AMI type" "AL2023_x86_64_NVIDIA" "${G[2]:-missing}"
check_eq "gpu: instance types" "g5.xlarge" "${G[3]:-missing}"
check_eq "gpu: scaling min/desired/max" "0 1 2" "${G[4]:-missing}"
check_eq "gpu: label cajal.dev/node-pool=gpu" "gpu" "${G[5]:-missing}"
check_eq "gpu: taint nvidia.com/gpu=true:NO_SCHEDULE (only taint)" "nvidia.com/gpu true NO_SCHEDULE" "${G[6]:-missing}"
check_eq "gpu: in the private subnets" "$PRIVATE_SUBNETS" "$(printf '%s' "${G[7]:-}" | sorted_csv)"
if [[ "$UPDATE_CFG" == "null" || "$UPDATE_CFG" == "missing" ]]; then
  gap "EKS node group updateConfig (max_unavailable)"
else
  check_eq "cpu: updateConfig maxUnavailable" "1" "$UPDATE_CFG"
fi

# Re-plan: network and IAM must show no drift. EKS resources may differ only
# where the emulator's read-back is known to be incomplete (see gaps below);
# the EBS CSI role's trust policy names the OIDC provider ARN, so it follows
# the provider's replacement.
set +e
replan=$(tf plan -input=false -no-color -lock=false -detailed-exitcode "${APPLY_VARS[@]}" 2>&1)
replan_rc=$?
set -e
if [[ $replan_rc -eq 0 ]]; then
  pass "plan after apply shows no changes"
elif [[ $replan_rc -eq 2 ]]; then
  drifted=$(printf '%s\n' "$replan" | sed -n 's/^  # \([^ ]*\) \(will be\|must be\|is tainted\).*/\1/p' | sort -u)
  unexpected=$(printf '%s\n' "$drifted" | grep -vxE 'module\.cluster\.aws_eks_cluster\.this|module\.cluster\.aws_iam_openid_connect_provider\.this\[0\]|module\.node_groups\.aws_eks_node_group\.(cpu|gpu\[0\])|aws_iam_role\.ebs_csi\[0\]|data\.aws_iam_policy_document\.ebs_csi_assume_role\[0\]' || true)
  if [[ -z "$unexpected" ]]; then
    pass "plan after apply: no drift outside EKS cluster/node groups"
    gap "faithful EKS read-back (DescribeCluster omits accessConfig, DescribeNodegroup reports an invented remoteAccess key); plan-after-apply idempotency of: $(printf '%s' "$drifted" | tr '\n' ' ')"
  else
    fail "plan after apply: unexpected drift in: $(printf '%s' "$unexpected" | tr '\n' ' ')"
  fi
else
  fail "plan after apply (rc=$replan_rc)"
  printf '%s\n' "$replan" | tail -30
fi

# ---------------------------------------------------------------------------
section "destroy and verify nothing is left"
# ---------------------------------------------------------------------------
if out=$(tf destroy -auto-approve -input=false -no-color "${APPLY_VARS[@]}" 2>&1); then
  pass "terraform destroy -auto-approve"
else
  fail "terraform destroy -auto-approve"
  echo "$out" | tail -40
fi
check_eq "state is empty" "" "$(tf state list 2>/dev/null || echo unreadable)"
check_eq "no EKS clusters left (so no node groups either)" "0" "$(fetch "length(clusters)" eks list-clusters)"
# moto answers ListNodegroups on a deleted cluster with HTTP 500, so node
# groups are covered by the cluster check above and the empty state.
mapfile -t V < <(fetch "[length(Vpcs[?$(has_tag Name "$CLUSTER-vpc")]), length(Vpcs[?!IsDefault])]" ec2 describe-vpcs)
check_eq "our VPC is gone" "0" "${V[0]:-missing}"
check_eq "only the emulator's default VPC remains" "0" "${V[1]:-missing}"
check_eq "no subnets of our VPC" "0" \
  "$(fetch 'length(Subnets)' ec2 describe-subnets --filters "Name=vpc-id,Values=$VPC_ID")"
check_eq "no live NAT gateways" "0" \
  "$(fetch 'length(NatGateways)' ec2 describe-nat-gateways --filter Name=state,Values=pending,available,deleting,failed)"
check_eq "no Elastic IPs" "0" "$(fetch 'length(Addresses)' ec2 describe-addresses)"
check_eq "no internet gateways attached to our VPC" "0" \
  "$(fetch 'length(InternetGateways)' ec2 describe-internet-gateways --filters "Name=attachment.vpc-id,Values=$VPC_ID")"
check_eq "IAM roles $CLUSTER_ROLE, $NODE_ROLE and $EBS_ROLE deleted" "0" \
  "$(fetch "length(Roles[?RoleName=='$CLUSTER_ROLE' || RoleName=='$NODE_ROLE' || RoleName=='$EBS_ROLE'])" iam list-roles)"
check_eq "no IAM OIDC providers" "0" \
  "$(fetch 'length(OpenIDConnectProviderList)' iam list-open-id-connect-providers)"
check_eq "no control plane log group" "0" \
  "$(fetch 'length(logGroups)' logs describe-log-groups --log-group-name-prefix "/aws/eks/$CLUSTER")"

# ---------------------------------------------------------------------------
echo "--- done in $((SECONDS - START))s; $GAPS emulator gap(s) reported above as 'moto lacks'"
echo "$PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]
