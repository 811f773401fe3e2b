#!/usr/bin/python3
"""Checks Katib Experiments and Kubeflow Pipelines files against the documented fields and rules.

  tests/tools/check_kubeflow.py FILE...     # Experiments, KFP v1 components, KFP v2 IR YAML
  tests/tools/check_kubeflow.py --self-test # broken variants of the repo's files are rejected

No Katib or KFP schema ships as a package here, so the rules are written down from
docs/kubeflow.md (Katib v1beta1 Experiment, KFP component.yaml, PipelineSpec IR): generic
rules of the APIs, then the rules cajal's own Experiments and MPIJobs follow. The KFP rules
are in kfp_rules.py. Prints one line per file and exits 1 if any file breaks a rule.
"""
import pathlib
import re
import sys
import tempfile

import yaml

from kfp_rules import check_component_v1, check_pipeline_v2, component_definitions, flag_value

# --- Katib v1beta1 -------------------------------------------------------------------------

EXPERIMENT_SPEC_FIELDS = {
    "parameters", "objective", "algorithm", "earlyStopping", "trialTemplate",
    "parallelTrialCount", "maxTrialCount", "maxFailedTrialCount", "metricsCollectorSpec",
    "nasConfig", "resumePolicy",
}
OBJECTIVE_FIELDS = {"type", "goal", "objectiveMetricName", "additionalMetricNames",
                    "metricStrategies"}
# algorithmName -> settings it accepts (configure-algorithm.md); None: not checked.
ALGORITHMS = {
    "random": {"random_state"},
    "tpe": {"n_EI_candidates", "random_state", "gamma", "prior_weight"},
    "grid": set(),
    "multivariate-tpe": {"n_ei_candidates", "random_state", "n_startup_trials"},
    "bayesianoptimization": {"base_estimator", "n_initial_points", "acq_func", "acq_optimizer",
                             "random_state"},
    "cmaes": {"random_state", "sigma", "restart_strategy"},
    "sobol": set(),
    "hyperband": {"resource_name", "eta", "r_l"},
    "pbt": None,
    "enas": None,
    "darts": None,
}
PARAMETER_TYPES = {"int", "double", "categorical", "discrete"}
DISTRIBUTIONS = {"uniform", "logUniform", "normal", "logNormal"}
COLLECTOR_KINDS = {"StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "Push"}
TRIAL_TEMPLATE_FIELDS = {"retain", "trialSpec", "configMap", "trialParameters",
                         "primaryPodLabels", "primaryContainerName", "successCondition",
                         "failureCondition"}
EARLY_STOPPING = {"medianstop": {"min_trials_required", "start_step"}}
TRIAL_PARAM_RE = re.compile(r"\$\{trialParameters\.([A-Za-z0-9_\-]+)\}")
METADATA_REF_RE = re.compile(
    r"^\$\{trialSpec\.(Name|Namespace|Kind|APIVersion|Labels\[[^\]]+\]|Annotations\[[^\]]+\])\}$")


def _floats(space, *keys):
    return [float(space[k]) for k in keys]


def check_experiment(doc):
    errors = []
    err = errors.append
    if doc.get("apiVersion") != "kubeflow.org/v1beta1":
        err(f"apiVersion must be kubeflow.org/v1beta1, got {doc.get('apiVersion')!r}")
    if not doc.get("metadata", {}).get("name"):
        err("metadata.name is required")
    spec = doc.get("spec") or {}
    for k in spec:
        if k not in EXPERIMENT_SPEC_FIELDS:
            err(f"spec.{k}: unknown field")

    obj = spec.get("objective") or {}
    for k in obj:
        if k not in OBJECTIVE_FIELDS:
            err(f"spec.objective.{k}: unknown field")
    if obj.get("type") not in ("minimize", "maximize"):
        err(f"spec.objective.type must be minimize or maximize, got {obj.get('type')!r}")
    if not obj.get("objectiveMetricName"):
        err("spec.objective.objectiveMetricName is required")
    if "goal" in obj and not isinstance(obj["goal"], (int, float)):
        err("spec.objective.goal must be a number")
    for s in obj.get("metricStrategies") or []:
        if s.get("value") not in ("min", "max", "latest"):
            err(f"spec.objective.metricStrategies: value must be min|max|latest, got {s.get('value')!r}")

    algo = spec.get("algorithm") or {}
    name = algo.get("algorithmName")
    if name not in ALGORITHMS:
        err(f"spec.algorithm.algorithmName {name!r} is not one of {sorted(ALGORITHMS)}")
    else:
        allowed = ALGORITHMS[name]
        for s in algo.get("algorithmSettings") or []:
            if allowed is not None and s.get("name") not in allowed:
                err(f"spec.algorithm.algorithmSettings: {s.get('name')!r} is not a setting of {name}")
            if not isinstance(s.get("value"), str):
                err(f"spec.algorithm.algorithmSettings {s.get('name')}: value must be a string")

    for k in ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount"):
        if k in spec and (not isinstance(spec[k], int) or spec[k] < 0):
            err(f"spec.{k} must be a non-negative integer")
    if spec.get("parallelTrialCount", 3) > spec.get("maxTrialCount", 10**9):
        err("spec.parallelTrialCount must not exceed spec.maxTrialCount")

    params = spec.get("parameters") or []
    if not params:
        err("spec.parameters: at least one parameter is required")
    names = set()
    grid_size = 1
    for i, p in enumerate(params):
        at = f"spec.parameters[{i}]"
        pname = p.get("name")
        if not pname:
            err(f"{at}.name is required")
        if pname in names:
            err(f"{at}.name {pname!r} is duplicated")
        names.add(pname)
        ptype = p.get("parameterType")
        if ptype not in PARAMETER_TYPES:
            err(f"{at}.parameterType {ptype!r} is not one of {sorted(PARAMETER_TYPES)}")
        space = p.get("feasibleSpace") or {}
        for k, v in space.items():
            if k == "list":
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    err(f"{at}.feasibleSpace.list must be a list of strings")
            elif k in ("min", "max", "step"):
                if not isinstance(v, str):
                    err(f"{at}.feasibleSpace.{k} must be a string, got {v!r}")
            elif k == "distribution":
                if v not in DISTRIBUTIONS:
                    err(f"{at}.feasibleSpace.distribution {v!r} is not one of {sorted(DISTRIBUTIONS)}")
            else:
                err(f"{at}.feasibleSpace.{k}: unknown field")
        if ptype in ("int", "double"):
            if "min" not in space or "max" not in space:
                err(f"{at}: {ptype} needs feasibleSpace.min and max")
            else:
                try:
                    lo, hi = _floats(space, "min", "max")
                    if lo >= hi:
                        err(f"{at}: feasibleSpace.min must be < max")
                    if space.get("distribution") == "logUniform" and lo <= 0:
                        err(f"{at}: logUniform needs min > 0")
                    if name == "grid":
                        if "step" not in space and ptype == "double":
                            err(f"{at}: grid search needs feasibleSpace.step for a double")
                        step = float(space.get("step", 1))
                        grid_size *= int((hi - lo) / step) + 1
                except (TypeError, ValueError):
                    err(f"{at}: feasibleSpace.min/max must be numbers written as strings")
        elif ptype in ("categorical", "discrete"):
            if not space.get("list"):
                err(f"{at}: {ptype} needs a non-empty feasibleSpace.list")
            grid_size *= len(space.get("list") or [])
    if name == "grid" and spec.get("maxTrialCount", 0) > grid_size:
        err(f"spec.maxTrialCount {spec.get('maxTrialCount')} exceeds the {grid_size} grid points")

    mc = spec.get("metricsCollectorSpec") or {}
    kind = (mc.get("collector") or {}).get("kind", "StdOut")
    if kind not in COLLECTOR_KINDS:
        err(f"spec.metricsCollectorSpec.collector.kind {kind!r} is not one of {sorted(COLLECTOR_KINDS)}")
    fsp = (mc.get("source") or {}).get("fileSystemPath")
    if kind == "File":
        if fsp and (not str(fsp.get("path", "/")).startswith("/") or fsp.get("kind", "File") != "File"):
            err("File collector: source.fileSystemPath needs an absolute path and kind: File")
        if fsp and fsp.get("format", "TEXT") not in ("TEXT", "JSON"):
            err("File collector: format must be TEXT or JSON")
    if kind == "TensorFlowEvent":
        if not fsp or fsp.get("kind") != "Directory" or not str(fsp.get("path", "")).startswith("/"):
            err("TensorFlowEvent collector: source.fileSystemPath needs an absolute path and kind: Directory")
    if kind == "StdOut" and fsp:
        err("StdOut collector takes no source.fileSystemPath")
    if kind == "Custom" and not (mc.get("collector") or {}).get("customCollector"):
        err("Custom collector needs collector.customCollector")
    for f in (mc.get("source") or {}).get("filter", {}).get("metricsFormat", []) or []:
        if re.compile(f).groups < 2:
            err(f"metricsFormat {f!r} needs 2 capture groups")

    es = spec.get("earlyStopping")
    if es:
        es_name = es.get("algorithmName")
        if es_name not in EARLY_STOPPING:
            err(f"spec.earlyStopping.algorithmName {es_name!r} is not one of {sorted(EARLY_STOPPING)}")
        else:
            for s in es.get("algorithmSettings") or []:
                if s.get("name") not in EARLY_STOPPING[es_name]:
                    err(f"spec.earlyStopping: unknown setting {s.get('name')!r}")
        if kind not in ("StdOut", "File"):
            err("early stopping works only with the StdOut and File collectors")

    tt = spec.get("trialTemplate") or {}
    for k in tt:
        if k not in TRIAL_TEMPLATE_FIELDS:
            err(f"spec.trialTemplate.{k}: unknown field")
    if ("trialSpec" in tt) == ("configMap" in tt):
        err("spec.trialTemplate needs exactly one of trialSpec and configMap")
    tps = tt.get("trialParameters") or []
    declared = set()
    for i, tp in enumerate(tps):
        tname, ref = tp.get("name"), tp.get("reference")
        if not tname or not ref:
            err(f"spec.trialTemplate.trialParameters[{i}] needs name and reference")
        if tname in declared:
            err(f"spec.trialTemplate.trialParameters: {tname!r} is duplicated")
        declared.add(tname)
        if ref and ref not in names and not METADATA_REF_RE.match(ref):
            err(f"spec.trialTemplate.trialParameters[{i}].reference {ref!r} names no parameter")
    for pname in names:
        if pname not in {tp.get("reference") for tp in tps}:
            err(f"parameter {pname!r} is not referenced by any trialParameter")
    trial = tt.get("trialSpec")
    if trial is not None:
        text = yaml.safe_dump(trial)
        used = set(TRIAL_PARAM_RE.findall(text))
        for u in sorted(used - declared):
            err(f"trialSpec uses ${{trialParameters.{u}}}, which is not declared")
        for d in sorted(declared - used):
            err(f"trialParameter {d!r} is declared but never used in trialSpec")
        md = trial.get("metadata") or {}
        if "name" in md or "namespace" in md:
            err("trialSpec must not set metadata.name or metadata.namespace")
        if trial.get("kind") == "Job" and trial.get("apiVersion") != "batch/v1":
            err("a Job trial must be apiVersion batch/v1")
        if trial.get("kind") not in TRIAL_KINDS:
            err(f"trialSpec kind {trial.get('kind')!r} is not one of {sorted(TRIAL_KINDS)}")
        pod = primary_pod_template(trial)
        pod_spec = pod.get("spec") or {}
        containers = pod_spec.get("containers") or []
        primary = tt.get("primaryContainerName")
        if not primary:
            err("spec.trialTemplate.primaryContainerName is required")
        elif primary not in [c.get("name") for c in containers]:
            err(f"primaryContainerName {primary!r} names no container of the trial's primary pod")
        if trial.get("kind") == "Job" and pod_spec.get("restartPolicy") not in ("Never", "OnFailure"):
            err("a Job trial's pod needs restartPolicy Never or OnFailure")
        if trial.get("kind") == "MPIJob":
            # Katib's default primaryPodLabels is training-operator v1's job-role `master`; the
            # MPI Operator v2 labels its launcher `launcher`, so the default matches no pod and
            # no collector is injected (kubeflow/katib#1750).
            if (tt.get("primaryPodLabels") or {}) != MPIJOB_LAUNCHER_LABELS:
                err(f"an MPIJob trial needs primaryPodLabels {MPIJOB_LAUNCHER_LABELS} "
                    "(the launcher, whose stdout carries rank 0's metric lines)")
            if trial.get("apiVersion") != "kubeflow.org/v2beta1":
                err("an MPIJob trial must be the MPI Operator's kubeflow.org/v2beta1")
        errors.extend(_cajal_rules(doc, trial, pod, containers, primary, kind, es))
    return errors


TRIAL_KINDS = {"Job", "MPIJob"}
MPIJOB_LAUNCHER_LABELS = {"training.kubeflow.org/job-role": "launcher"}


def primary_pod_template(trial):
    """The pod template of the trial's primary pod: a Job's pod, an MPIJob's launcher."""
    spec = trial.get("spec") or {}
    if trial.get("kind") == "MPIJob":
        return ((spec.get("mpiReplicaSpecs") or {}).get("Launcher") or {}).get("template") or {}
    return spec.get("template") or {}


def _cajal_rules(doc, trial, pod, containers, primary, collector_kind, early_stopping):
    """What cajal's Experiments promise (issue 9, docs/kubeflow.md §1.7)."""
    errors = []
    err = errors.append
    obj = doc["spec"].get("objective") or {}
    if obj.get("objectiveMetricName") != "val_accuracy" or obj.get("type") != "maximize":
        err("cajal: the objective is val_accuracy, maximize")
    if "val_loss" not in (obj.get("additionalMetricNames") or []):
        err("cajal: additionalMetricNames must include val_loss")
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    if ann.get("sidecar.istio.io/inject") != "false":
        err('cajal: the trial pod needs the annotation sidecar.istio.io/inject: "false" '
            "(an Istio proxy keeps the pod running and the trial never completes)")
    c = next((c for c in containers if c.get("name") == primary), None)
    if c is None:
        return errors
    cmd = c.get("command") or []
    if not cmd:
        err("cajal: the primary container needs an explicit command "
            "(else Katib reads the image's ENTRYPOINT from the registry)")
        return errors
    argv = cmd + (c.get("args") or [])
    if not str(argv[0]).startswith("/"):
        err("cajal: the command must start with an absolute path to the binary")
    if trial.get("kind") == "MPIJob":
        errors.extend(_mpijob_rules(trial, argv))
    elif argv[:2] != ["/usr/local/bin/cajal", "train"]:
        err("cajal: the trial must run `cajal train` itself (one child process of Katib's shell)")
    if collector_kind == "Push" and "--katib-push" not in argv:
        err("cajal: a Push collector gets metrics only from `cajal train --katib-push`")
    if collector_kind != "Push" and "--katib-push" in argv:
        err(f"cajal: --katib-push with the {collector_kind} collector reports every metric twice")
    if any(" " in str(a) for a in argv):
        err("cajal: Katib joins the command with spaces; no argument may contain a space")
    if early_stopping and "--timestamps" not in argv:
        err("cajal: early stopping needs timestamped metric lines (--timestamps)")
    mc_source = (doc["spec"].get("metricsCollectorSpec") or {}).get("source") or {}
    path = (mc_source.get("fileSystemPath") or {}).get("path")
    if collector_kind == "TensorFlowEvent" and path:
        if f"--tfevents_dir={path}" not in argv and not flag_value(argv, "--tfevents_dir") == path:
            err(f"cajal: a TensorFlowEvent trial must write --tfevents_dir={path}")
    return errors


MPIRUN = "/usr/bin/mpirun"
SSHD_ARGV = ["/usr/sbin/sshd", "-De", "-f", "/etc/ssh/cajal_sshd_config"]
CAJAL_HOME_SSH = "/var/lib/cajal/.ssh"  # the image user's home: where ssh and sshd look


def _mpijob_rules(mpijob, launcher_argv):
    """An MPIJob runs `mpirun ... cajal train` in the launcher and the image's sshd in the
    workers (deploy/training-operator/mpijob.yaml explains why)."""
    errors = []
    err = errors.append
    spec = mpijob.get("spec") or {}
    if spec.get("sshAuthMountPath") != CAJAL_HOME_SSH:
        err(f"cajal: sshAuthMountPath must be {CAJAL_HOME_SSH}, the home of the image's user, "
            "where its ssh and sshd read the operator's keys")
    if spec.get("mpiImplementation", "OpenMPI") != "OpenMPI":
        err("cajal: the image has OpenMPI (mpiImplementation: OpenMPI)")
    if launcher_argv[:1] != [MPIRUN]:
        err(f"cajal: the launcher must run {MPIRUN}")
    if "/usr/local/bin/cajal" not in launcher_argv or \
            launcher_argv[launcher_argv.index("/usr/local/bin/cajal") + 1:][:1] != ["train"]:
        err("cajal: the launcher's mpirun must start /usr/local/bin/cajal train")
    if flag_value(launcher_argv, "--bind-to") != "none":
        err("cajal: mpirun needs --bind-to none (else each rank's OpenMP threads share one core)")
    workers = (spec.get("mpiReplicaSpecs") or {}).get("Worker") or {}
    ranks = int(workers.get("replicas", 0)) * int(spec.get("slotsPerWorker", 1))
    np_flag = flag_value(launcher_argv, "-np") or flag_value(launcher_argv, "-n")
    if np_flag != str(ranks):
        err(f"cajal: mpirun -np {np_flag} differs from the {ranks} slots of the workers")
    wpod = (workers.get("template") or {})
    ann = (wpod.get("metadata") or {}).get("annotations") or {}
    if ann.get("sidecar.istio.io/inject") != "false":
        err('cajal: the worker pods need sidecar.istio.io/inject: "false"')
    wcs = (wpod.get("spec") or {}).get("containers") or []
    wargv = (wcs[0].get("command") or []) + (wcs[0].get("args") or []) if wcs else []
    if wargv != SSHD_ARGV:
        err(f"cajal: the workers must run {' '.join(SSHD_ARGV)} (the image's non-root sshd)")
    probe = ((wcs[0].get("readinessProbe") or {}).get("tcpSocket") or {}).get("port") if wcs else None
    if probe != 2222:
        err("cajal: the workers need a readinessProbe on sshd's port 2222 "
            "(launcherCreationPolicy WaitForWorkersReady waits for it)")
    return errors


# --- driver --------------------------------------------------------------------------------

def check_mpijob(doc):
    """A standalone MPIJob (deploy/training-operator/): the launcher and worker rules that also
    hold for MPIJob trials. Its schema is checked by validate_manifests.py."""
    errors = []
    if doc.get("apiVersion") != "kubeflow.org/v2beta1":
        errors.append("an MPIJob must be the MPI Operator's kubeflow.org/v2beta1")
    launcher = primary_pod_template(doc)
    containers = (launcher.get("spec") or {}).get("containers") or []
    if not containers:
        return errors + ["the MPIJob has no launcher container"]
    argv = (containers[0].get("command") or []) + (containers[0].get("args") or [])
    errors.extend(_mpijob_rules(doc, argv))
    ann = (launcher.get("metadata") or {}).get("annotations") or {}
    if ann.get("sidecar.istio.io/inject") != "false":
        errors.append('cajal: the launcher pod needs sidecar.istio.io/inject: "false"')
    return errors


def classify(doc):
    if not isinstance(doc, dict):
        return None
    if doc.get("kind") == "Experiment" and str(doc.get("apiVersion", "")).startswith("kubeflow.org/"):
        return "katib-experiment", check_experiment
    if doc.get("kind") == "MPIJob":
        return "mpijob", check_mpijob
    if "implementation" in doc and "name" in doc:
        return "kfp-v1-component", check_component_v1
    if "deploymentSpec" in doc or "pipelineInfo" in doc:
        return "kfp-v2-pipeline", check_pipeline_v2
    return None


def check_file(path):
    """Returns (checked kinds, errors) for one file."""
    kinds, errors = [], []
    for doc in yaml.safe_load_all(pathlib.Path(path).read_text()):
        c = classify(doc)
        if c is None:
            continue
        kinds.append(c[0])
        errors.extend(c[1](doc))
        if c[0] == "kfp-v2-pipeline":
            errors.extend(check_copies(doc, path))
    return kinds, errors


def check_copies(doc, path):
    """A pipeline embeds copies of the component files' components (the IR has no imports):
    each component named like one of deploy/pipelines/*-component.yaml must equal it."""
    errors = []
    mine = component_definitions(doc)
    for source in sorted((ROOT / "deploy/pipelines").glob("*-component.yaml")):
        if source.resolve() == pathlib.Path(path).resolve():
            continue
        for name, definition in component_definitions(yaml.safe_load(source.read_text())).items():
            if name in mine and mine[name] != definition:
                errors.append(f"{name} differs from its source, deploy/pipelines/{source.name}")
    return errors


def main(paths):
    failed = 0
    for p in paths:
        kinds, errors = check_file(p)
        if not kinds:
            continue
        if errors:
            failed += 1
            print(f"FAIL {p} ({', '.join(kinds)}):")
            for e in errors:
                print(f"       {e}")
        else:
            print(f"ok   {p} ({', '.join(kinds)})")
    return 1 if failed else 0


ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load(rel):
    return yaml.safe_load((ROOT / rel).read_text())


def _container(exp):
    return exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]


def self_test():
    """Each broken variant of a good file must be rejected with the expected message."""
    def m_exp(f):
        def make():
            d = _load("deploy/katib/mlp-random.yaml")
            f(d)
            return d
        return make

    def m(rel, f):
        def make():
            d = _load(rel)
            f(d)
            return d
        return make

    cases = [
        ("no istio annotation",
         m_exp(lambda d: d["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["metadata"].pop("annotations")),
         "sidecar.istio.io/inject"),
        ("no explicit command",
         m_exp(lambda d: _container(d).pop("command")), "explicit command"),
        ("undeclared trial parameter",
         m_exp(lambda d: _container(d)["command"].append("--set=x=${trialParameters.nope}")),
         "trialParameters.nope"),
        ("unused trial parameter",
         m_exp(lambda d: d["spec"]["trialTemplate"]["trialParameters"].append(
             {"name": "extra", "reference": "lr"})), "never used"),
        ("trialSpec sets metadata.name",
         m_exp(lambda d: d["spec"]["trialTemplate"]["trialSpec"].setdefault("metadata", {}).update(name="x")),
         "metadata.name"),
        ("collector kind None (removed in v0.18)",
         m_exp(lambda d: d["spec"]["metricsCollectorSpec"]["collector"].update(kind="None")), "collector.kind"),
        ("unknown algorithm",
         m_exp(lambda d: d["spec"]["algorithm"].update(algorithmName="bayesian")), "algorithmName"),
        ("numeric feasibleSpace",
         m_exp(lambda d: d["spec"]["parameters"][0]["feasibleSpace"].update(min=0.0001)), "must be a string"),
        ("min above max",
         m_exp(lambda d: d["spec"]["parameters"][0]["feasibleSpace"].update(min="0.5")), "min must be < max"),
        ("wrong objective",
         m_exp(lambda d: d["spec"]["objective"].update(objectiveMetricName="accuracy")), "val_accuracy"),
        ("primary container missing",
         m_exp(lambda d: d["spec"]["trialTemplate"].update(primaryContainerName="main")), "names no container"),
        ("spec typo",
         m_exp(lambda d: d["spec"].update(maxTrialCounts=3)), "unknown field"),
        ("grid larger than maxTrialCount",
         m("deploy/katib/mlp-architecture.yaml", lambda d: d["spec"].update(maxTrialCount=13)), "grid points"),
        ("medianstop without --timestamps",
         m("deploy/katib/mlp-medianstop.yaml", lambda d: _container(d)["command"].remove("--timestamps")),
         "--timestamps"),
        ("medianstop with TensorFlowEvent",
         m("deploy/katib/mlp-medianstop.yaml",
           lambda d: d["spec"]["metricsCollectorSpec"]["collector"].update(kind="TensorFlowEvent")),
         "only with the StdOut and File"),
        ("tfevents collector on a file",
         m("deploy/katib/mlp-tfevents.yaml",
           lambda d: d["spec"]["metricsCollectorSpec"]["source"]["fileSystemPath"].update(kind="File")),
         "kind: Directory"),
        ("tfevents dir differs from the collector's",
         m("deploy/katib/mlp-tfevents.yaml",
           lambda d: d["spec"]["metricsCollectorSpec"]["source"]["fileSystemPath"].update(path="/var/log/tb")),
         "--tfevents_dir=/var/log/tb"),
        ("Push collector without --katib-push",
         m("deploy/katib/mlp-push.yaml", lambda d: _container(d)["command"].remove("--katib-push")),
         "only from `cajal train --katib-push`"),
        ("--katib-push under the StdOut collector",
         m_exp(lambda d: _container(d)["command"].append("--katib-push")), "reports every metric twice"),
        ("early stopping with the Push collector",
         m("deploy/katib/mlp-push.yaml", lambda d: d["spec"].update(
             earlyStopping={"algorithmName": "medianstop"})), "only with the StdOut and File"),
        ("MPIJob trial with Katib's default primaryPodLabels",
         m("deploy/katib/mlp-mpijob.yaml", lambda d: d["spec"]["trialTemplate"].pop("primaryPodLabels")),
         "primaryPodLabels"),
        ("MPIJob trial whose primary container is a worker",
         m("deploy/katib/mlp-mpijob.yaml", lambda d: d["spec"]["trialTemplate"].update(
             primaryContainerName="worker")), "names no container"),
        ("MPIJob trial of training-operator v1",
         m("deploy/katib/mlp-mpijob.yaml", lambda d: d["spec"]["trialTemplate"]["trialSpec"].update(
             apiVersion="kubeflow.org/v1")), "kubeflow.org/v2beta1"),
        ("mpirun without --bind-to none",
         m("deploy/training-operator/mpijob.yaml", lambda d: _drop_flag(_launcher(d)["command"], "--bind-to")),
         "--bind-to none"),
        ("mpirun -np differs from the workers",
         m("deploy/training-operator/mpijob.yaml",
           lambda d: d["spec"]["mpiReplicaSpecs"]["Worker"].update(replicas=3)), "differs from the 3 slots"),
        ("ssh keys mounted where ssh does not look",
         m("deploy/training-operator/mpijob.yaml", lambda d: d["spec"].update(sshAuthMountPath="/root/.ssh")),
         "sshAuthMountPath"),
        ("workers without the image's sshd",
         m("deploy/training-operator/mpijob.yaml",
           lambda d: d["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0].update(
               args=["-De"])), "non-root sshd"),
        ("v1: placeholder names no input",
         m("deploy/pipelines/v1/train-component.yaml",
           lambda d: d["implementation"]["container"]["command"].append({"inputValue": "lr"})), "names no input"),
        ("v1: output never written",
         m("deploy/pipelines/v1/train-component.yaml",
           lambda d: d["outputs"].append({"name": "extra", "type": "Model"})), "never written"),
        ("v1: metrics output misnamed",
         m("deploy/pipelines/v1/evaluate-component.yaml",
           lambda d: _rename_v1_output(d, "MLPipeline Metrics", "metrics")), "MLPipeline Metrics"),
        ("v2: executor missing",
         m("deploy/pipelines/train-evaluate-pipeline.yaml",
           lambda d: d["deploymentSpec"]["executors"].pop("exec-cajal-evaluate")), "names no executor"),
        ("v2: placeholder names no parameter",
         m("deploy/pipelines/train-evaluate-pipeline.yaml",
           lambda d: d["deploymentSpec"]["executors"]["exec-train"]["container"]["args"].append(
               "{{$.inputs.parameters['lr']}}")), "names no input parameter"),
        ("v2: metrics artifact name mismatch",
         m("deploy/pipelines/train-evaluate-pipeline.yaml",
           lambda d: _replace_arg(d, "exec-train", "metrics", "kfp_metrics")), "--kfp-metrics-artifact"),
        ("v2: producer task unknown",
         m("deploy/pipelines/train-evaluate-pipeline.yaml",
           lambda d: d["root"]["dag"]["tasks"]["cajal-evaluate"]["inputs"]["artifacts"]["model"]
           ["taskOutputArtifact"].update(producerTask="training")), "producerTask"),
        ("v2: condition reads an input the task is not given",
         m(CSV_PIPELINE, lambda d: d["root"]["dag"]["tasks"]["condition-1"]["inputs"]["parameters"].pop(
             "pipelinechannel--min_test_accuracy")), "which the task is not given"),
        ("v2: condition's inner task reads no input of the condition",
         m(CSV_PIPELINE, lambda d: d["components"]["comp-condition-1"]["dag"]["tasks"]["cajal-export"]
           ["inputs"]["artifacts"]["model"].update(componentInputArtifact="model")), "is not an input of"),
        ("v2: output parameter cajal train does not write",
         m("deploy/pipelines/train-component.yaml", lambda d: d["components"]["comp-cajal-train"]
           ["outputDefinitions"]["parameters"].update(best_epoch={"parameterType": "NUMBER_INTEGER"})),
         "none of the final metrics"),
        ("v2: dag output from an unknown output",
         m("deploy/pipelines/train-component.yaml", lambda d: d["root"]["dag"]["outputs"]["parameters"]
           ["test_accuracy"]["valueFromParameter"].update(outputParameterKey="accuracy")), "has no output"),
        ("v2: required input parameter not given",
         m(CSV_PIPELINE, lambda d: d["components"]["comp-make-dataset"]["inputDefinitions"]["parameters"]
           .update(classes={"parameterType": "NUMBER_INTEGER"})), "not given and has no default"),
        ("v2: a pipeline's copy of a component drifts from the component file",
         m(CSV_PIPELINE, lambda d: _replace_arg(d, "exec-cajal-train", "/tmp/cajal-out", "/tmp/out")),
         "differs from its source"),
        ("v2: Dataset input never passed to the command",
         m("deploy/pipelines/train-component.yaml", lambda d: _drop_flag(
             d["deploymentSpec"]["executors"]["exec-cajal-train"]["container"]["args"], "--set")),
         "is never passed to the command"),
    ]
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, make, expect in cases:
            path = pathlib.Path(tmp) / "case.yaml"
            path.write_text(yaml.safe_dump(make(), sort_keys=False))
            _, errors = check_file(path)
            hit = [e for e in errors if expect in e]
            if hit:
                passed += 1
                print(f"ok   rejects {name}: {hit[0]}")
            else:
                failed += 1
                print(f"FAIL accepts {name} (errors: {errors})")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def _rename_v1_output(d, old, new):
    for o in d["outputs"]:
        if o["name"] == old:
            o["name"] = new

    def walk(n):
        if isinstance(n, list):
            return [walk(x) for x in n]
        if isinstance(n, dict):
            return {k: (new if (k == "outputPath" and v == old) else walk(v)) for k, v in n.items()}
        return n
    c = d["implementation"]["container"]
    c["command"] = walk(c["command"])


CSV_PIPELINE = "deploy/pipelines/csv-train-export-pipeline.yaml"


def _launcher(d):
    return d["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]


def _drop_flag(argv, flag):
    i = argv.index(flag)
    del argv[i:i + 2]


def _replace_arg(d, executor, old, new):
    args = d["deploymentSpec"]["executors"][executor]["container"]["args"]
    args[args.index(old)] = new


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    sys.exit(main(sys.argv[1:]))
