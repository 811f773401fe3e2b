#!/usr/bin/python3
"""Renders k8s/overlays/* with `kubectl kustomize`, validates every rendered object and every
Kubernetes object under deploy/ against its schema, and checks what cajald's manifests promise.

  tests/tools/validate_manifests.py [--kubectl PATH]

Schemas: the npm packages kubernetes-models and @kubernetes-models/prometheus-operator in
tests/tools/node_modules (scripts/setup.sh installs them), through validate_k8s.mjs, which also
rejects unknown fields. Katib Experiments are validated through their trial template: the
batch/v1 Job with sample values in place of ${trialParameters.*}. Prints one line per check
and ends with `N passed, M failed`.
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys

import yaml

import crd_schema
import deploy_policy

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tests/tools"
results = {"passed": 0, "failed": 0}


def check(ok, what):
    results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    return ok


def render(kubectl, overlay):
    p = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True)
    if not check(p.returncode == 0, f"kubectl kustomize {overlay.relative_to(ROOT)}"):
        print(p.stderr)
        return []
    return [d for d in yaml.safe_load_all(p.stdout) if d]


def by_kind(objs, kind):
    return [o for o in objs if o.get("kind") == kind]


def seconds(duration):
    m = re.fullmatch(r"(\d+)s", duration)
    return int(m.group(1)) if m else None


def cajald_policy(name, objs):
    """What k8s/base promises (docs/deploy.md), checked on a rendered overlay."""
    deps = by_kind(objs, "Deployment")
    if not check(len(deps) == 1, f"{name}: one Deployment"):
        return
    d = deps[0]
    spec, pod = d["spec"], d["spec"]["template"]["spec"]
    c = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(spec.get("replicas") == 1 and spec.get("strategy", {}).get("type") == "Recreate",
          f"{name}: 1 replica, strategy Recreate (SQLite on a ReadWriteOnce volume)")
    check(ports.get("grpc") == 50051 and ports.get("metrics") == 9464,
          f"{name}: container ports grpc=50051 metrics=9464")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        g = c.get(probe, {}).get("grpc", {})
        check(g.get("port") == ports.get("grpc"), f"{name}: {probe} is a native gRPC probe on the grpc port")
    check(c["readinessProbe"]["grpc"].get("service") == "cajal.v1.TrainingService",
          f"{name}: readiness asks for service cajal.v1.TrainingService")
    flags = {}
    for cm in by_kind(objs, "ConfigMap"):
        if cm["metadata"]["name"].startswith("cajald-flags"):
            flags = cm.get("data", {})
            check(any(e.get("configMapRef", {}).get("name") == cm["metadata"]["name"]
                      for e in c.get("envFrom", [])),
                  f"{name}: Deployment reads the generated ConfigMap {cm['metadata']['name']}")
    args = " ".join(c.get("args", []))
    for var in re.findall(r"\$\((\w+)\)", args):
        check(var in flags, f"{name}: $({var}) in args is defined by the flags ConfigMap")
    grace = seconds(flags.get("SHUTDOWN_GRACE", ""))
    check(grace is not None and pod.get("terminationGracePeriodSeconds", 30) > grace,
          f"{name}: terminationGracePeriodSeconds {pod.get('terminationGracePeriodSeconds')} > "
          f"--shutdown_grace {flags.get('SHUTDOWN_GRACE')}")
    sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") and sc.get("readOnlyRootFilesystem")
          and sc.get("allowPrivilegeEscalation") is False
          and sc.get("capabilities", {}).get("drop") == ["ALL"]
          and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
          f"{name}: non-root, read-only root, no privilege escalation, caps dropped, seccomp")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    check("emptyDir" in vols.get(mounts.get("/tmp"), {}), f"{name}: /tmp is an emptyDir")
    claim = vols.get(mounts.get("/var/lib/cajal"), {}).get("persistentVolumeClaim", {}).get("claimName")
    check(claim in [p["metadata"]["name"] for p in by_kind(objs, "PersistentVolumeClaim")],
          f"{name}: /var/lib/cajal is the PVC {claim}")
    check("--data_dir=/var/lib/cajal" in c.get("args", []), f"{name}: --data_dir is the PVC mount")
    secret_mount = [p for p, v in mounts.items() if "secret" in vols.get(v, {})]
    check(len(secret_mount) == 1 and f"--auth_token_file={secret_mount[0]}/token" in c.get("args", []),
          f"{name}: --auth_token_file reads the mounted Secret")
    res = c.get("resources", {})
    check(bool(res.get("requests")) and bool(res.get("limits")), f"{name}: resource requests and limits")
    labels = d["spec"]["template"]["metadata"]["labels"]
    svc = by_kind(objs, "Service")
    if check(len(svc) == 1, f"{name}: one Service"):
        s = svc[0]["spec"]
        sp = {p["name"]: p for p in s["ports"]}
        check(set(sp) == {"grpc", "metrics"}
              and all(p["targetPort"] in ports for p in sp.values()),
              f"{name}: Service ports named grpc and metrics, targeting container ports")
        check(all(labels.get(k) == v for k, v in s["selector"].items()),
              f"{name}: Service selector matches the pod labels")
    np = by_kind(objs, "NetworkPolicy")
    if check(len(np) == 1, f"{name}: one NetworkPolicy"):
        n = np[0]["spec"]
        allowed = {p["port"] for rule in n.get("ingress", []) for p in rule.get("ports", [])}
        check(allowed == {50051, 9464},
              f"{name}: NetworkPolicy lets in only ports 50051 and 9464")
        check(all(labels.get(k) == v for k, v in n["podSelector"]["matchLabels"].items()),
              f"{name}: NetworkPolicy selects the cajald pods")


def gpu_policy(objs):
    d = by_kind(objs, "Deployment")[0]
    pod = d["spec"]["template"]["spec"]
    c = pod["containers"][0]
    check(str(c["resources"]["limits"].get("nvidia.com/gpu")) == "1", "gpu: limits nvidia.com/gpu: 1")
    check({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod.get("tolerations", []),
          "gpu: tolerates the nvidia.com/gpu NoSchedule taint of the GPU node group")
    check(pod.get("nodeSelector") == {"cajal.dev/node-pool": "gpu"}, "gpu: nodeSelector cajal.dev/node-pool=gpu")
    check(c["image"].endswith("-gpu"), f"gpu: GPU image ({c['image']})")


def monitoring_policy(objs, cpu_objs):
    sms = by_kind(objs, "ServiceMonitor")
    if not check(len(sms) == 1, "monitoring: one ServiceMonitor"):
        return
    sm = sms[0]
    check(sm["metadata"].get("labels", {}).get("release") == "kube-prometheus-stack",
          "monitoring: labelled release=kube-prometheus-stack")
    svc = by_kind(cpu_objs, "Service")[0]
    check(all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()),
          "monitoring: selector matches the cajald Service")
    check(svc["metadata"]["namespace"] in sm["spec"].get("namespaceSelector", {}).get("matchNames", []),
          "monitoring: namespaceSelector names the Service's namespace")
    check([e.get("port") for e in sm["spec"]["endpoints"]] == ["metrics"]
          and "metrics" in [p["name"] for p in svc["spec"]["ports"]],
          "monitoring: scrapes the Service port named metrics")
    rules = by_kind(objs, "PrometheusRule")
    if check(len(rules) == 1, "monitoring: one PrometheusRule"):
        check(rules[0]["metadata"].get("labels", {}).get("release") == "kube-prometheus-stack",
              "monitoring: the PrometheusRule is labelled release=kube-prometheus-stack (its ruleSelector)")
        want = yaml.safe_load((ROOT / "deploy/prometheus/rules.yaml").read_text())["groups"]
        check(rules[0]["spec"]["groups"] == want,
              "monitoring: the PrometheusRule carries deploy/prometheus/rules.yaml's groups")
    boards = [c for c in by_kind(objs, "ConfigMap")
              if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    if check(len(boards) == 1, 'monitoring: one ConfigMap labelled grafana_dashboard: "1" (the sidecar\'s label)'):
        data = boards[0].get("data", {})
        want = json.loads((ROOT / "deploy/prometheus/grafana-dashboard.json").read_text())
        check(len(data) == 1 and json.loads(next(iter(data.values()))) == want,
              "monitoring: it holds deploy/prometheus/grafana-dashboard.json")


def sample_value(param):
    space = param.get("feasibleSpace", {})
    if "list" in space:
        return space["list"][0]
    return space.get("min", "1")


def trial_job(exp):
    """The Experiment's trial Job as Katib would create it for one set of sample values."""
    params = {p["name"]: p for p in exp["spec"]["parameters"]}
    text = yaml.safe_dump(exp["spec"]["trialTemplate"]["trialSpec"])
    for tp in exp["spec"]["trialTemplate"]["trialParameters"]:
        ref = tp["reference"]
        value = sample_value(params[ref]) if ref in params else "sample"
        text = text.replace("${trialParameters.%s}" % tp["name"], value)
    job = yaml.safe_load(text)
    job.setdefault("metadata", {})["name"] = exp["metadata"]["name"] + "-trial"
    return job


def trial_object(exp):
    """An Experiment's trial object as Katib would create it (trial_job for any kind)."""
    return trial_job(exp)


def load_deploy_sources():
    """(path, object) of every Kubernetes object in deploy/'s files, KFP files left out."""
    out = []
    for path in sorted((ROOT / "deploy").rglob("*.yaml")):
        rel = str(path.relative_to(ROOT))
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                out.append((rel, doc))
    return out


# The MPI Operator's CRD is not copied into the repository: it is read from the workspace's
# shared schemas (../shared/schemas beside the checkout) or $CAJAL_SCHEMAS_DIR.
SCHEMAS = pathlib.Path(os.environ.get("CAJAL_SCHEMAS_DIR", str(ROOT.parent / "shared/schemas")))


def crd_validation(items):
    """MPIJobs against the MPI Operator's CRD (mpijobs.kubeflow.org v2beta1, SCHEMAS)."""
    path = SCHEMAS / "mpijob-v2beta1-crd.yaml"
    if not path.is_file():
        print(f"skip MPIJob CRD schema: no {path} (set CAJAL_SCHEMAS_DIR); the MPIJobs are checked "
              f"by the contract checks only")
        return
    crd = yaml.safe_load(path.read_text())
    schema = crd_schema.crd_version_schema(crd, "v2beta1")
    for source, obj in items:
        errors = crd_schema.validate(obj, schema)
        check(not errors, f"schema: MPIJob {obj['metadata']['name']} ({source}) against the "
              f"mpijobs.kubeflow.org v2beta1 CRD{': ' + '; '.join(errors) if errors else ''}")
    # The validator can fail: a misspelt field and a wrong type are rejected.
    if items:
        bad = json.loads(json.dumps(items[0][1]))
        bad["spec"]["slotPerWorker"] = 1
        bad["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"] = "2"
        errors = crd_schema.validate(bad, schema)
        check(any("slotPerWorker: unknown field" in e for e in errors)
              and any("replicas: must be of type integer" in e for e in errors),
              f"schema: the CRD validator rejects a misspelt field and a string count: {errors}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubectl", default="kubectl")
    a = ap.parse_args()
    items = []
    rendered = {}
    for overlay in sorted((ROOT / "k8s/overlays").iterdir()):
        objs = render(a.kubectl, overlay)
        rendered[overlay.name] = objs
        items += [{"source": f"k8s/overlays/{overlay.name}", "object": o} for o in objs]
    if rendered.get("cpu"):
        cajald_policy("cpu", rendered["cpu"])
    if rendered.get("gpu"):
        cajald_policy("gpu", rendered["gpu"])
        gpu_policy(rendered["gpu"])
    if rendered.get("monitoring") and rendered.get("cpu"):
        monitoring_policy(rendered["monitoring"], rendered["cpu"])
    # deploy/: the kustomizations rendered (namespace and images as a user gets them), and the
    # files no kustomization lists (namespace.yaml) as they are.
    sources = load_deploy_sources()
    deploy_objs = []
    for d in deploy_policy.KUSTOMIZED:
        deploy_objs += [(d, o) for o in render(a.kubectl, ROOT / d)]
    listed = {str((ROOT / d / f).relative_to(ROOT)) for d in deploy_policy.KUSTOMIZED
              for f in yaml.safe_load((ROOT / d / "kustomization.yaml").read_text())["resources"]}
    deploy_objs += [(p, o) for p, o in sources if p not in listed and o["kind"] not in ("Kustomization",)
                    and not p.endswith("kustomizeconfig.yaml")]
    mpijobs = []
    for source, doc in deploy_objs:
        if doc["kind"] == "Experiment":
            trial = trial_object(doc)
            if trial["kind"] == "MPIJob":
                mpijobs.append((f"{source} {doc['metadata']['name']} trial template", trial))
            else:
                items.append({"source": f"{source} {doc['metadata']['name']} trial template", "object": trial})
        elif doc["kind"] == "MPIJob":
            mpijobs.append((source, doc))
        elif doc["apiVersion"].startswith("serving.kserve.io/"):
            continue  # KServe: tests/tools/check_kserve.py (tests/integration/kserve_test.sh)
        else:
            items.append({"source": source, "object": doc})
    crd_validation(mpijobs)
    deploy_policy.namespace_less(check, [(p, o) for p, o in sources if p.startswith(deploy_policy.KUSTOMIZED)])
    deploy_policy.image_override(check, a.kubectl)
    deploy_policy.mpi_image_contract(check, [o for _, o in mpijobs])
    fit = [(f"k8s/overlays/{name}", o) for name in ("cpu", "gpu") for o in rendered.get(name, [])]
    deploy_policy.resources_fit(check, fit + deploy_objs)
    p = subprocess.run(["node", str(TOOLS / "validate_k8s.mjs")], input=json.dumps(items),
                       capture_output=True, text=True, cwd=TOOLS)
    for line in p.stdout.splitlines():
        check(line.startswith("ok"), "schema: " + line[5:])
    if p.returncode != 0 and "FAIL" not in p.stdout:
        check(False, f"schema validator failed to run: {p.stderr.strip()}")
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
