#!/usr/bin/env bash
# Renders k8s/overlays/* and deploy/'s kustomizations with `kubectl kustomize` and validates
# every rendered object and every Kubernetes object under deploy/ against its schema (npm
# kubernetes-models and @kubernetes-models/prometheus-operator, installed by scripts/setup.sh;
# MPIJobs against the MPI Operator's CRD from ../shared/schemas or $CAJAL_SCHEMAS_DIR), plus what the manifests
# promise (tests/tools/validate_manifests.py, deploy_policy.py): cajald's probes, security
# context, grace period, ports, GPU scheduling and monitoring objects; every pod's requests
# within the allocatable of the Terraform defaults' nodes; deploy/ namespace-less, with images
# the kustomizations set; the MPIJob image contract. Also checks that the generated
# deploy/katib/specs-configmap.yaml and the monitoring overlay match their sources.
#   bash tests/integration/k8s_manifests_test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
py=/usr/bin/python3  # Debian's python3 with python3-yaml (scripts/setup.sh)

for tool in kubectl node "$py"; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL $tool not found: run scripts/setup.sh"
    echo "0 passed, 1 failed"
    exit 1
  fi
done
if [ ! -d tests/tools/node_modules/kubernetes-models ]; then
  echo "FAIL tests/tools/node_modules is missing: run scripts/setup.sh"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "kubectl: $(kubectl version --client 2>/dev/null | head -2 | tr '\n' ' ')"

passed=0
failed=0
# Generated manifests in step with their sources.
for generator in specs_configmap monitoring_manifests; do
  if out=$("$py" "tests/tools/$generator.py" --check); then
    echo "ok   $out"
    passed=$((passed + 1))
  else
    echo "FAIL $out"
    failed=$((failed + 1))
  fi
done

set +e
"$py" tests/tools/validate_manifests.py | tee /tmp/k8s_manifests_test.$$.log
rc=${PIPESTATUS[0]}
set -e
summary=$(tail -n 1 /tmp/k8s_manifests_test.$$.log)
rm -f /tmp/k8s_manifests_test.$$.log
if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
  passed=$((passed + BASH_REMATCH[1]))
  failed=$((failed + BASH_REMATCH[2]))
fi
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=$((failed + 1))

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
