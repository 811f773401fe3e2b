"""What the manifests under deploy/ and k8s/ promise beyond their schemas, checked by
validate_manifests.py (k8s_manifests_test.sh):

- every pod (cajald's, every Katib trial's, the MPIJob launcher's and workers') schedules on
  the node of the Terraform defaults it selects, with room for the system pods (node_fit.py);
- the manifests of deploy/ name no namespace (`kubectl -n NS apply -k` picks it, a Kubeflow
  profile namespace included) and no registry: their images are the symbolic `cajal`, which
  the kustomizations' `images:` set, reaching into Katib trial templates and MPIJob replicas;
- the MPIJob image contract: the sshd configuration the Dockerfile installs, the user it
  creates and the manifests' sshAuthMountPath, ports and commands agree.

Each check function takes a `check(ok, what)` callback and the objects to look at.
"""
import pathlib
import re
import shutil
import subprocess
import tempfile

import yaml

import node_fit

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUSTOMIZED = ("deploy/katib", "deploy/training-operator")
SYMBOLIC_IMAGE = "cajal"
OVERRIDE = ("example.org/team/cajal", "override-1")  # what the image test sets
THIRD_PARTY_IMAGES = ("curlimages/curl:",)
MPI_LAUNCHER = {"training.kubeflow.org/job-role": "launcher"}


def pod_templates(obj):
    """(where, pod spec, node pool, Katib sidecar?) for every pod an object creates."""
    kind, name = obj.get("kind"), (obj.get("metadata") or {}).get("name")
    out = []
    if kind in ("Deployment", "Job"):
        spec = obj["spec"]["template"]["spec"]
        out.append((f"{kind} {name}", spec, _pool(spec), False))
    elif kind == "MPIJob":
        for role, replica in obj["spec"]["mpiReplicaSpecs"].items():
            spec = replica["template"]["spec"]
            out.append((f"MPIJob {name} {role}", spec, _pool(spec), False))
    elif kind == "Experiment":
        tt = obj["spec"]["trialTemplate"]
        collector = ((obj["spec"].get("metricsCollectorSpec") or {}).get("collector") or {}).get("kind", "StdOut")
        sidecar = collector != "Push"
        trial = tt["trialSpec"]
        for where, spec, pool, _ in pod_templates(dict(trial, metadata={"name": f"{name} trial"})):
            # The collector goes into the primary pod only: a Job's pod, an MPIJob's launcher.
            primary = trial["kind"] == "Job" or (tt.get("primaryPodLabels") == MPI_LAUNCHER and "Launcher" in where)
            out.append((where, spec, pool, sidecar and primary))
    return out


def _pool(pod_spec):
    return (pod_spec.get("nodeSelector") or {}).get("cajal.dev/node-pool", "cpu")


def resources_fit(check, objects):
    """objects: (source, object) pairs. Every pod fits a node of its pool."""
    try:
        nodes = node_fit.default_nodes()
    except KeyError as e:
        check(False, f"resources: {e}")
        return
    check(True, "resources: Terraform defaults " + ", ".join(
        f"{pool} {n.instance_type}: {n.cpu_m}m CPU, {n.memory_mib}Mi after EKS reservations and system pods"
        for pool, n in nodes.items()))
    # The table can say no: a trial asking for all 4 vCPUs of an m6i.xlarge (issue 20's LeNet
    # trials did) stays Pending.
    check(node_fit.fits(node_fit.pod_requests({"containers": [
        {"resources": {"limits": {"cpu": "4", "memory": "4Gi"}}}]}, sidecar=True), nodes["cpu"]) is not None,
        "resources: a 4-CPU trial would not fit a 4-vCPU node (the check can fail)")
    for source, obj in objects:
        for where, spec, pool, sidecar in pod_templates(obj):
            unbounded = node_fit.unbounded(spec)
            check(not unbounded, f"resources: {where} ({source}) sets requests: {unbounded or 'yes'}")
            need = node_fit.pod_requests(spec, sidecar=sidecar)
            problem = node_fit.fits(need, nodes[pool])
            what = (f"resources: {where} ({source}) needs {need[0]}m CPU, {need[1]:.0f}Mi"
                    f"{' with Katib sidecar' if sidecar else ''}, on a {nodes[pool].instance_type}")
            check(problem is None, what + (f": {problem}" if problem else ": fits"))


def containers(obj):
    for _, spec, _, _ in pod_templates(obj):
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            yield c


def namespace_less(check, sources):
    """sources: (path, object) pairs of deploy/'s files (not rendered)."""
    for path, obj in sources:
        if obj.get("kind") in ("Namespace", "Kustomization"):
            continue
        ns = (obj.get("metadata") or {}).get("namespace")
        check(ns is None, f"namespace-less: {obj['kind']} {obj['metadata'].get('name')} ({path})"
              + (f" names namespace {ns}" if ns else ""))
        images = {c.get("image") for c in containers(obj)} - {None}
        own = {i for i in images if not i.startswith(THIRD_PARTY_IMAGES)}
        if own:
            check(own == {SYMBOLIC_IMAGE}, f"images: {obj['kind']} {obj['metadata'].get('name')} ({path}) "
                  f"uses the symbolic image `{SYMBOLIC_IMAGE}`: {sorted(own)}")
    for d in KUSTOMIZED:
        k = yaml.safe_load((ROOT / d / "kustomization.yaml").read_text())
        check("namespace" not in k, f"namespace-less: {d}/kustomization.yaml leaves the namespace to -n")


def image_override(check, kubectl):
    """The `images:` of each kustomization reaches every cajal container, nested trial
    templates and MPIJob replicas included: rendered with an override, no `cajal` is left."""
    with tempfile.TemporaryDirectory() as tmp:
        for d in KUSTOMIZED:
            copy = pathlib.Path(tmp) / d
            shutil.copytree(ROOT / d, copy)
            k = yaml.safe_load((copy / "kustomization.yaml").read_text())
            k["images"] = [{"name": SYMBOLIC_IMAGE, "newName": OVERRIDE[0], "newTag": OVERRIDE[1]}]
            (copy / "kustomization.yaml").write_text(yaml.safe_dump(k))
            p = subprocess.run([kubectl, "kustomize", str(copy)], capture_output=True, text=True)
            if not check(p.returncode == 0, f"images: kubectl kustomize {d} with an image override"):
                print(p.stderr)
                continue
            sources = sum(len(re.findall(r"^\s+image: cajal\b", f.read_text(), re.M))
                          for f in (ROOT / d).glob("*.yaml"))
            rendered = [c["image"] for o in yaml.safe_load_all(p.stdout) if o for c in containers(o)]
            want = f"{OVERRIDE[0]}:{OVERRIDE[1]}"
            own = [i for i in rendered if not i.startswith(THIRD_PARTY_IMAGES)]
            check(len(own) == sources and set(own) == {want},
                  f"images: the override reaches all {sources} cajal containers of {d}: {sorted(set(own))}")


def _sshd_config():
    out = {}
    for line in (ROOT / "deploy/training-operator/image/cajal_sshd_config").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split(None, 1)
            out[key] = value.strip()
    return out


def mpi_image_contract(check, mpijobs):
    """mpijobs: MPIJob objects (standalone and Katib trial templates)."""
    docker = (ROOT / "Dockerfile").read_text()
    sshd = _sshd_config()
    useradd = re.search(r"useradd --system --uid (\d+) --gid \w+ --home-dir (\S+)", docker)
    name = re.search(r"--shell (\S+) (\w+) \\", docker)
    check(useradd is not None and name is not None, "mpi image: the Dockerfile creates the image's user")
    if useradd is None or name is None:
        return
    # sshd runs the command of a session (mpirun's orted) with the user's login shell.
    check(name.group(1) in ("/bin/sh", "/bin/bash"),
          f"mpi image: the user's login shell {name.group(1)} runs commands, as sshd needs for mpirun")
    uid, home = useradd.groups()
    check("COPY deploy/training-operator/image/cajal_sshd_config /etc/ssh/cajal_sshd_config" in docker
          and "COPY deploy/training-operator/image/cajal-mpi-ssh.conf /etc/ssh/ssh_config.d/cajal-mpi.conf" in docker,
          "mpi image: the Dockerfile installs the sshd and ssh configurations")
    check(re.search(r"openmpi-bin openssh-client openssh-server", docker) is not None,
          "mpi image: the runtime has OpenMPI, ssh and sshd")
    check(sshd.get("HostKey") == f"{home}/.ssh/id_rsa" and sshd.get("AuthorizedKeysFile") == f"{home}/.ssh/authorized_keys",
          f"mpi image: sshd reads the operator's keys from the user's home {home}/.ssh")
    check(sshd.get("AllowUsers") == name.group(2) and sshd.get("PidFile") == "none"
          and sshd.get("StrictModes") == "no" and sshd.get("UsePAM") == "no",
          "mpi image: sshd runs as the non-root user, writes no pid file, accepts root-owned key files")
    port = int(sshd.get("Port", "22"))
    check(port > 1024, f"mpi image: sshd listens on {port}, which a non-root user may bind")
    ssh_client = (ROOT / "deploy/training-operator/image/cajal-mpi-ssh.conf").read_text()
    check(re.search(rf"^\s+Port {port}$", ssh_client, re.M) is not None,
          f"mpi image: ssh connects to port {port}")
    for job in mpijobs:
        jname = job["metadata"]["name"]
        check(job["spec"].get("sshAuthMountPath") == f"{home}/.ssh",
              f"mpi image: {jname} mounts the operator's keys at {home}/.ssh")
        for role, replica in job["spec"]["mpiReplicaSpecs"].items():
            spec = replica["template"]["spec"]
            run_as = (spec.get("securityContext") or {}).get("runAsUser")
            check(str(run_as) == uid, f"mpi image: {jname} {role} runs as uid {uid} (the user ssh logs in as)")
            if role == "Worker":
                probe = spec["containers"][0].get("readinessProbe", {}).get("tcpSocket", {}).get("port")
                check(probe == port, f"mpi image: {jname} workers' readiness probe is sshd's port {port}")
