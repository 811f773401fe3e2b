"""Do the pods of cajal's manifests schedule on the nodes the Terraform defaults create?

    from node_fit import default_nodes, pod_requests, fits
    nodes = default_nodes()                        # {"cpu": Node(m6i.xlarge), "gpu": Node(g5.xlarge)}
    need = pod_requests(pod_spec, sidecar=True)    # Katib's collector sidecar added
    problem = fits(need, nodes["cpu"])             # None, or why it does not fit

A pod fits when its requests (containers summed, init containers by their largest, requests
defaulting to limits) fit what one node has left for it: the instance's capacity, minus what
EKS reserves on it (kube-reserved CPU and memory and the eviction threshold, by the formulas of
the EKS AMIs' bootstrap), minus the requests of the DaemonSets every node runs and one CoreDNS
replica (the system pods that may land there). The instance sizes are a table here; the
instance types come from terraform/variables.tf, so a new default without a row fails loudly.
"""
import dataclasses
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Instance:
    vcpus: int
    memory_mib: int  # the instance's nominal memory
    max_pods: int    # ENIs x (IPv4 addresses per ENI - 1) + 2, the VPC CNI's limit
    gpus: int = 0


# EC2's published sizes of the instance types the Terraform configuration may default to.
INSTANCES = {
    "m6i.xlarge": Instance(vcpus=4, memory_mib=16384, max_pods=58),
    "m6i.2xlarge": Instance(vcpus=8, memory_mib=32768, max_pods=58),
    "g5.xlarge": Instance(vcpus=4, memory_mib=16384, max_pods=58, gpus=1),
    "g5.2xlarge": Instance(vcpus=8, memory_mib=32768, max_pods=58, gpus=1),
}
# The kernel and firmware keep part of the nominal memory: the kubelet's capacity is lower.
# 7.5% is Karpenter's default estimate of that overhead (vmMemoryOverheadPercent).
VM_MEMORY_OVERHEAD = 0.075
EVICTION_HARD_MIB = 100  # memory.available<100Mi
# Requests of the pods on every node of an EKS cluster made by terraform/: the VPC CNI
# (aws-node), kube-proxy, the EBS CSI driver's node plugin (3 containers), and one CoreDNS
# replica of the two, which may be scheduled onto any node.
SYSTEM_PODS = {"aws-node": (25, 0), "kube-proxy": (100, 0), "ebs-csi-node": (30, 120),
               "coredns": (100, 70)}
# Katib's metrics-collector sidecar in the primary pod of StdOut/File/TensorFlowEvent trials:
# katib-config's defaults (pkg/apis/config/v1beta1/defaults.go), requests 50m and 10Mi.
KATIB_SIDECAR = (50, 10)


@dataclasses.dataclass(frozen=True)
class Node:
    instance_type: str
    cpu_m: int      # millicores left for workload pods
    memory_mib: int
    gpus: int


def kube_reserved_cpu_m(vcpus):
    """EKS AMIs: 6% of the first core, 1% of the second, 0.5% of the third and fourth, 0.25%
    of every core beyond."""
    shares = [60, 10, 5, 5] + [2.5] * max(0, vcpus - 4)
    return int(sum(shares[:vcpus]) + 0.5)


def kube_reserved_memory_mib(max_pods):
    return 11 * max_pods + 255


def node(instance_type):
    i = INSTANCES[instance_type]
    cpu = i.vcpus * 1000 - kube_reserved_cpu_m(i.vcpus) - sum(c for c, _ in SYSTEM_PODS.values())
    capacity = int(i.memory_mib * (1 - VM_MEMORY_OVERHEAD))
    memory = (capacity - kube_reserved_memory_mib(i.max_pods) - EVICTION_HARD_MIB
              - sum(m for _, m in SYSTEM_PODS.values()))
    return Node(instance_type, cpu, memory, i.gpus)


def terraform_default(variable):
    """The first element of a list(string) variable's default in terraform/variables.tf."""
    text = (ROOT / "terraform/variables.tf").read_text()
    block = re.search(r'variable "%s" \{(.*?)\n\}' % re.escape(variable), text, re.S)
    if not block:
        raise KeyError(f"terraform/variables.tf has no variable {variable}")
    default = re.search(r'default\s*=\s*\[\s*"([^"]+)"', block.group(1))
    return default.group(1)


def default_nodes():
    """{"cpu": Node, "gpu": Node} for the Terraform defaults; KeyError names an instance type
    missing from INSTANCES."""
    out = {}
    for pool, variable in (("cpu", "cpu_instance_types"), ("gpu", "gpu_instance_types")):
        t = terraform_default(variable)
        if t not in INSTANCES:
            raise KeyError(f"{variable} defaults to {t}, which tests/tools/node_fit.py's table lacks")
        out[pool] = node(t)
    return out


def cpu_m(q):
    q = str(q)
    return int(q[:-1]) if q.endswith("m") else int(float(q) * 1000)


def memory_mib(q):
    q = str(q)
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 ** 2, "K": 1000 / 1024 ** 2,
             "M": 1000 ** 2 / 1024 ** 2, "G": 1000 ** 3 / 1024 ** 2}
    for u in sorted(units, key=len, reverse=True):
        if q.endswith(u):
            return float(q[:-len(u)]) * units[u]
    return float(q) / 1024 ** 2


def _container_requests(c):
    res = c.get("resources") or {}
    req = dict(res.get("limits") or {})
    req.update(res.get("requests") or {})  # requests default to limits
    return (cpu_m(req.get("cpu", "0")), memory_mib(req.get("memory", "0")),
            int(req.get("nvidia.com/gpu", (res.get("limits") or {}).get("nvidia.com/gpu", 0))))


def pod_requests(pod_spec, sidecar=False):
    """(millicores, MiB, GPUs) the scheduler reserves for a pod."""
    main = [_container_requests(c) for c in pod_spec.get("containers") or []]
    if sidecar:
        main.append((KATIB_SIDECAR[0], KATIB_SIDECAR[1], 0))
    init = [_container_requests(c) for c in pod_spec.get("initContainers") or []]
    return tuple(max(sum(r[i] for r in main), max((r[i] for r in init), default=0)) for i in range(3))


def unbounded(pod_spec):
    """Names of containers without a CPU or memory request or limit (they could land anywhere
    and take anything)."""
    out = []
    for c in pod_spec.get("containers") or []:
        res = c.get("resources") or {}
        for r in ("cpu", "memory"):
            if r not in (res.get("requests") or {}) and r not in (res.get("limits") or {}):
                out.append(f"{c.get('name')} has no {r} request")
    return out


def fits(need, n):
    """None when a pod needing (millicores, MiB, GPUs) fits node n, else why not."""
    cpu, mem, gpus = need
    problems = []
    if cpu > n.cpu_m:
        problems.append(f"CPU {cpu}m > {n.cpu_m}m")
    if mem > n.memory_mib:
        problems.append(f"memory {mem:.0f}Mi > {n.memory_mib}Mi")
    if gpus > n.gpus:
        problems.append(f"nvidia.com/gpu {gpus} > {n.gpus}")
    if not problems:
        return None
    return f"{', '.join(problems)} left on an {n.instance_type}"
