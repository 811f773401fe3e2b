#!/usr/bin/python3
"""Simulates Katib trials of every Experiment under deploy/katib/ with a local cajal build.

  tests/tools/katib_simulate.py BUILD_DIR STUB_DIR

For each Experiment: substitutes sample values into the trial template, takes the primary
container's exact command (a Job's container, an MPIJob's launcher; the image's paths replaced
by the build's binary, examples/ and a scratch directory), runs the pod's init containers
first (their `$(VAR)` references expanded from their env, URLs pointed at local files), and
runs the command the way Katib's webhook rewrites it:
  StdOut:          sh -c '<cmd> 1>/var/log/katib/metrics.log 2>&1 && echo completed > PID'
  TensorFlowEvent: sh -c '<cmd> && echo completed > PID'
  Push:            <cmd> unchanged, KATIB_TRIAL_NAME set, against a recording DBManager server
                   (katib_db_manager.py) standing in for katib-db-manager.kubeflow:6789
then takes the metrics as the collector would (Katib's default regex on lines that name a
metric, the TensorBoard event files' tensor summaries, or what was pushed) and checks that the
objective and the additional metrics were found with plausible values. Also checks that a
trial with a bad --set fails (non-zero exit, no `completed` marker). Appends a few --set flags
to every command to keep it fast (one short epoch); they are printed. An MPIJob trial runs its
launcher's `mpirun -np 2` on this machine (the ranks started locally instead of over SSH), and
rank 0 alone must print the metric lines.
"""
import math
import os
import pathlib
import random
import re
import shlex
import struct
import subprocess
import sys
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/tools"))
from check_kubeflow import primary_pod_template  # noqa: E402
# pkg/metricscollector/v1beta1/common/const.go DefaultFilter
KATIB_REGEX = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
# One thread: the test shares 2 cores with other tests, and spinning OpenMP threads of an
# oversubscribed process make a step many times slower (DESIGN.md, Scale).
FAST = ["--set", "training.max_steps=40", "--set", "training.epochs=1", "--set", "training.threads=1"]
results = {"passed": 0, "failed": 0}


def check(ok, what):
    results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    return ok


def sample_value(param):
    space = param["feasibleSpace"]
    if "list" in space:
        return space["list"][len(space["list"]) // 2]
    lo, hi = float(space["min"]), float(space["max"])
    if param["parameterType"] == "int":
        return str(int((lo + hi) // 2))
    if space.get("distribution") == "logUniform":
        return f"{math.sqrt(lo * hi):.6g}"
    return f"{(lo + hi) / 2:.6g}"


def trial_command(exp, build, scratch):
    """(sample values, the primary container's argv with local paths, the primary pod's spec,
    the path mapper)."""
    params = {p["name"]: p for p in exp["spec"]["parameters"]}
    tt = exp["spec"]["trialTemplate"]
    values = {tp["name"]: sample_value(params[tp["reference"]]) for tp in tt["trialParameters"]}
    text = yaml.safe_dump(tt["trialSpec"])
    for name, value in values.items():
        text = text.replace("${trialParameters.%s}" % name, value)
    pod = primary_pod_template(yaml.safe_load(text))["spec"]
    c = next(c for c in pod["containers"] if c["name"] == tt["primaryContainerName"])
    image_paths = {
        "/usr/local/bin/cajal": str(build / "bin/cajal"),
        "/etc/cajal/": str(ROOT / "examples") + "/",
        "/var/log/katib/": str(scratch / "katib") + "/",
        "/tmp/": str(scratch / "tmp") + "/",
        "/data/": str(scratch / "data") + "/",
    }
    pattern = re.compile("|".join(re.escape(k) for k in image_paths))

    def local(arg):
        return pattern.sub(lambda m: image_paths[m.group(0)], arg)
    return values, [local(a) for a in c["command"] + c.get("args", [])], pod, local


def write_csv(path, rows, seed):
    """Three classes of points in 4 dimensions, a header row, the label last: what
    examples/csv.yaml expects of a user's data."""
    rng = random.Random(seed)
    centers = [[rng.uniform(-2, 2) for _ in range(4)] for _ in range(3)]
    with open(path, "w") as f:
        f.write("a,b,c,d,label\n")
        for _ in range(rows):
            k = rng.randrange(3)
            f.write(",".join(f"{x + rng.gauss(0, 0.8):.4f}" for x in centers[k]) + f",{k}\n")


def run_init_containers(pod, local, scratch):
    """The pod's init containers, in order, as the kubelet runs them: `$(VAR)` expanded from the
    container's env; values from ConfigMaps are the test's own (ConfigMap cajal-data of
    mlp-own-data.yaml: file:// URLs of CSV files made here). Returns True when all exit 0."""
    (scratch / "data").mkdir(exist_ok=True)
    configmaps = {}
    for i, c in enumerate(pod.get("initContainers") or []):
        if not configmaps:
            for name, rows, seed in (("train", 600, 1), ("test", 200, 2)):
                write_csv(scratch / f"{name}-source.csv", rows, seed)
            configmaps = {("cajal-data", "train-url"): (scratch / "train-source.csv").as_uri(),
                          ("cajal-data", "test-url"): (scratch / "test-source.csv").as_uri()}
        env = {}
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
            env[e["name"]] = configmaps[(ref["name"], ref["key"])] if ref else e["value"]
        argv = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], local(a))
                for a in c["command"] + c.get("args", [])]
        print(f"     init container {c['name']}: {' '.join(argv)}")
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if not check(p.returncode == 0, f"init container {c['name']} exits 0"):
            print(p.stderr[-1000:])
            return False
    return True


def run_pushed(argv, scratch, stubs):
    """A Push-collector trial: the command as it is, KATIB_TRIAL_NAME set, katib-db-manager's
    address pointed at a recording server. Returns (exit code, output, {name: [values]}, the
    trial names the requests carried)."""
    sys.path.insert(0, stubs)
    from katib_db_manager import FakeDbManager
    db = FakeDbManager()
    port = db.start()
    argv = [re.sub(r"^--katib-db-manager=.*", f"--katib-db-manager=127.0.0.1:{port}", a) for a in argv]
    env = dict(os.environ, KATIB_TRIAL_NAME="trial-simulated")
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    db.stop()
    found = {}
    for name, value, _ in db.metrics():
        found.setdefault(name, []).append(value)
    trials = {r["trial_name"] for r in db.requests}
    return p.returncode, p.stdout + p.stderr, found, trials


def run_like_katib(argv, scratch, collector):
    """Runs argv as the webhook-rewritten command; returns (exit code, metrics.log text)."""
    katib = scratch / "katib"
    katib.mkdir(parents=True, exist_ok=True)
    cmd = " ".join(shlex.quote(a) for a in argv)
    pid = katib / "1.pid"
    log = katib / "metrics.log"
    redirect = f" 1>{shlex.quote(str(log))} 2>&1" if collector == "StdOut" else ""
    # mpirun refuses to start as root unless told; the tests may run as root.
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p = subprocess.run(["sh", "-c", f"{cmd}{redirect} && echo completed > {shlex.quote(str(pid))}"],
                       capture_output=True, text=True, timeout=600, env=env)
    completed = pid.exists() and pid.read_text().strip() == "completed"
    text = log.read_text() if log.exists() else p.stdout + p.stderr
    return p.returncode, completed, text


def parse_stdout_metrics(text, names):
    """The TEXT collector: lines naming a metric, default regex, optional RFC 3339 prefix."""
    found = {n: [] for n in names}
    stamps = []
    for line in text.splitlines():
        if not any(n in line for n in names):
            continue
        head = line.split(" ", 1)[0]
        stamps.append(bool(RFC3339.match(head)))
        for m in KATIB_REGEX.finditer(line):
            if m.group(1) in found:
                found[m.group(1)].append(m.group(2))
    return found, stamps


def _varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        elif wt == 2:
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise ValueError(f"wire type {wt}")
        yield num, wt, v


def parse_tfevents(directory, names):
    """What Katib's TensorFlowEvent collector reads: tensor summaries (Event.summary.value
    with a TensorProto), tag = metric name for files at the top of the directory."""
    found = {n: [] for n in names}
    for f in sorted(directory.rglob("events.out.tfevents.*")):
        data = f.read_bytes()
        i = 0
        while i + 12 <= len(data):
            (length,) = struct.unpack_from("<Q", data, i)
            record = data[i + 12:i + 12 + length]
            i += 12 + length + 4
            for num, _, summary in _fields(record):
                if num != 5:
                    continue
                for vnum, _, value in _fields(summary):
                    if vnum != 1:
                        continue
                    tag, floats = None, []
                    for fnum, _, fv in _fields(value):
                        if fnum == 1:
                            tag = fv.decode()
                        elif fnum == 8:  # tensor
                            for tnum, twt, tv in _fields(fv):
                                if tnum == 5:  # float_val
                                    floats += ([struct.unpack("<f", tv)[0]] if twt == 5 else
                                               list(struct.unpack(f"<{len(tv) // 4}f", tv)))
                    if tag in found and floats:
                        found[tag].append(str(floats[0]))
    return found


def plausible(name, value):
    try:
        v = float(value)
    except ValueError:
        return False
    if "accuracy" in name:
        return 0.0 < v <= 1.0
    return math.isfinite(v) and v >= 0.0


def simulate(path, build, stubs):
    exp = yaml.safe_load(path.read_text())
    spec = exp["spec"]
    names = [spec["objective"]["objectiveMetricName"]] + spec["objective"].get("additionalMetricNames", [])
    collector = spec.get("metricsCollectorSpec", {}).get("collector", {}).get("kind", "StdOut")
    kind = spec["trialTemplate"]["trialSpec"]["kind"]
    with tempfile.TemporaryDirectory() as tmp:
        scratch = pathlib.Path(tmp)
        (scratch / "tmp").mkdir()
        values, argv, pod, local = trial_command(exp, build, scratch)
        argv += FAST
        print(f"---- {path.relative_to(ROOT)} ({kind}, {collector}) with {values}")
        print("     " + " ".join(argv))
        if not run_init_containers(pod, local, scratch):
            return
        if collector == "Push":
            rc, text, found, trials = run_pushed(argv, scratch, stubs)
            completed = rc == 0
        else:
            rc, completed, text = run_like_katib(argv, scratch, collector)
        if not check(rc == 0 and completed, f"{path.name}: trial exits 0 (and writes `completed`)"):
            print(text[-2000:])
            return
        if collector == "Push":
            check(trials == {"trial-simulated"},
                  f"{path.name}: pushed for the trial named by KATIB_TRIAL_NAME: {sorted(trials)}")
        if collector == "StdOut":
            found, stamps = parse_stdout_metrics(text, names)
            if "--timestamps" in argv:
                check(bool(stamps) and all(stamps),
                      f"{path.name}: every metrics line starts with an RFC 3339 timestamp")
            if kind == "MPIJob":
                epochs = len(re.findall(r"^epoch=\d+ ", text, re.M))
                check(epochs == 1, f"{path.name}: rank 0 alone prints the epoch line ({epochs} printed)")
        elif collector == "TensorFlowEvent":
            tfdir = pathlib.Path(next(a.split("=", 1)[1] for a in argv if a.startswith("--tfevents_dir=")))
            found = parse_tfevents(tfdir, names)
        for n in names:
            vals = found.get(n, [])
            check(bool(vals) and all(plausible(n, v) for v in vals),
                  f"{path.name}: {n} collected: {vals}")
        # A broken trial must fail: non-zero exit, so no `completed` marker.
        bad = argv + ["--set", "training.batch_size=-3"]
        shutil_rm(scratch / "katib")
        if collector == "Push":
            rc, text, _, _ = run_pushed(bad, scratch, stubs)
            completed = rc == 0
        else:
            rc, completed, text = run_like_katib(bad, scratch, collector)
        check(rc != 0 and not completed and "batch_size" in text,
              f"{path.name}: a trial with --set training.batch_size=-3 fails (exit {rc})")


def shutil_rm(path):
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def main():
    build = pathlib.Path(sys.argv[1]).resolve()
    stubs = sys.argv[2]
    if not check((build / "bin/cajal").exists(), f"{build}/bin/cajal exists"):
        print(f"{results['passed']} passed, {results['failed']} failed")
        return 1
    for path in sorted((ROOT / "deploy/katib").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "Experiment":
            simulate(path, build, stubs)
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
