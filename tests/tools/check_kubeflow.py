#!/usr/bin/python3
"""Checks Katib Experiments and Kubeflow Pipelines files against the documented fields and rules.

  tests/tools/check_kubeflow.py FILE...     # Experiments, KFP v1 components, KFP v2 IR YAML
  tests/tools/check_kubeflow.py --self-test # broken variants of the repo's files are rejected

No Katib or KFP schema ships as a package here, so the rules are written down from
docs/kubeflow.md (Katib v1beta1 Experiment, KFP component.yaml, PipelineSpec IR): generic
rules of the APIs, then the rules cajal's own Experiments follow for the metrics collector.
Prints one line per file and exits 1 if any file breaks a rule.
"""
import copy
import pathlib
import re
import sys
import tempfile

import yaml

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
        pod = (trial.get("spec") or {}).get("template") or {}
        pod_spec = pod.get("spec") or {}
        containers = pod_spec.get("containers") or []
        primary = tt.get("primaryContainerName")
        if not primary:
            err("spec.trialTemplate.primaryContainerName is required")
        elif primary not in [c.get("name") for c in containers]:
            err(f"primaryContainerName {primary!r} names no container of the trial")
        if trial.get("kind") == "Job" and pod_spec.get("restartPolicy") not in ("Never", "OnFailure"):
            err("a Job trial's pod needs restartPolicy Never or OnFailure")
        errors.extend(_cajal_rules(doc, pod, containers, primary, kind, es))
    return errors


def _cajal_rules(doc, pod, containers, primary, collector_kind, early_stopping):
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
    if argv[:2] != ["/usr/local/bin/cajal", "train"]:
        err("cajal: the trial must run `cajal train` itself (one child process of Katib's shell)")
    if any(" " in str(a) for a in argv):
        err("cajal: Katib joins the command with spaces; no argument may contain a space")
    if early_stopping and "--timestamps" not in argv:
        err("cajal: early stopping needs timestamped metric lines (--timestamps)")
    mc_source = (doc["spec"].get("metricsCollectorSpec") or {}).get("source") or {}
    path = (mc_source.get("fileSystemPath") or {}).get("path")
    if collector_kind == "TensorFlowEvent" and path:
        if f"--tfevents_dir={path}" not in argv and not _flag_value(argv, "--tfevents_dir") == path:
            err(f"cajal: a TensorFlowEvent trial must write --tfevents_dir={path}")
    return errors


def _flag_value(argv, flag):
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
    return None


# --- KFP v1 component.yaml -------------------------------------------------------------------

V1_NAME_RE = re.compile(r"^[a-zA-Z]([-_a-zA-Z0-9 ]*[a-zA-Z0-9])?$")
V1_PLACEHOLDERS = {"inputValue", "inputPath", "outputPath", "concat", "if", "isPresent"}


def _walk_v1(node, inputs, outputs, errors, used):
    if isinstance(node, list):
        for n in node:
            _walk_v1(n, inputs, outputs, errors, used)
    elif isinstance(node, dict):
        if len(node) != 1 or next(iter(node)) not in V1_PLACEHOLDERS:
            errors.append(f"unknown placeholder {node!r}")
            return
        (key, val), = node.items()
        if key in ("inputValue", "inputPath", "isPresent"):
            if val not in inputs:
                errors.append(f"{{{key}: {val}}} names no input")
            used.add(("in", val))
        elif key == "outputPath":
            if val not in outputs:
                errors.append(f"{{outputPath: {val}}} names no output")
            used.add(("out", val))
        elif key == "concat":
            _walk_v1(val, inputs, outputs, errors, used)
        elif key == "if":
            if "cond" not in val or "then" not in val:
                errors.append("{if: ...} needs cond and then")
            _walk_v1(val.get("cond"), inputs, outputs, errors, used)
            _walk_v1(val.get("then"), inputs, outputs, errors, used)
            _walk_v1(val.get("else", []), inputs, outputs, errors, used)
    elif not isinstance(node, (str, int, float)) and node is not None:
        errors.append(f"unexpected value {node!r} in command/args")


def check_component_v1(doc):
    errors = []
    err = errors.append
    for k in doc:
        if k not in ("name", "description", "metadata", "inputs", "outputs", "implementation"):
            err(f"{k}: unknown field")
    if not doc.get("name"):
        err("name is required")
    inputs, outputs = {}, {}
    for kind, store in (("inputs", inputs), ("outputs", outputs)):
        for i, io in enumerate(doc.get(kind) or []):
            allowed = {"name", "type", "description"} | ({"default", "optional"} if kind == "inputs" else set())
            for k in io:
                if k not in allowed:
                    err(f"{kind}[{i}].{k}: unknown field")
            if not io.get("name") or not V1_NAME_RE.match(io["name"]):
                err(f"{kind}[{i}].name {io.get('name')!r} is not a valid name")
            if io.get("name") in store:
                err(f"{kind}: {io.get('name')!r} is duplicated")
            if "default" in io and not isinstance(io["default"], str):
                err(f"{kind}[{i}].default must be a string")
            store[io.get("name")] = io
    container = (doc.get("implementation") or {}).get("container")
    if not container:
        err("implementation.container is required")
        return errors
    for k in container:
        if k not in ("image", "command", "args", "env", "fileOutputs"):
            err(f"implementation.container.{k}: unknown field")
    if not container.get("image"):
        err("implementation.container.image is required")
    used = set()
    _walk_v1(container.get("command") or [], inputs, outputs, errors, used)
    _walk_v1(container.get("args") or [], inputs, outputs, errors, used)
    for name, io in inputs.items():
        if ("in", name) not in used:
            err(f"input {name!r} is never passed to the command")
    for name in outputs:
        if ("out", name) not in used:
            err(f"output {name!r} is never written (no {{outputPath: {name}}})")
    metrics = [o for o in outputs.values() if o.get("type") == "Metrics"]
    for m in metrics:
        if m["name"] not in ("MLPipeline Metrics", "mlpipeline_metrics"):
            err(f"a Metrics output must be named 'MLPipeline Metrics' for the v1 UI, got {m['name']!r}")
    return errors


# --- KFP v2 PipelineSpec (IR YAML) ---------------------------------------------------------

PARAMETER_TYPES_V2 = {"NUMBER_DOUBLE", "NUMBER_INTEGER", "STRING", "BOOLEAN", "LIST", "STRUCT",
                      "TASK_FINAL_STATUS"}
V2_PLACEHOLDER_RE = re.compile(r"\{\{\$(?:\.([a-z]+)\.([a-z]+)\['([^']+)'\](?:\.([a-z_]+))?)?\}\}")
ARTIFACT_TYPES = {"system.Artifact", "system.Dataset", "system.Model", "system.Metrics",
                  "system.ClassificationMetrics", "system.SlicedClassificationMetrics",
                  "system.HTML", "system.Markdown"}


def _defs(section):
    section = section or {}
    return set((section.get("parameters") or {})), set((section.get("artifacts") or {}))


def check_pipeline_v2(doc):
    errors = []
    err = errors.append
    for k in ("pipelineInfo", "root", "components", "deploymentSpec", "schemaVersion"):
        if k not in doc:
            err(f"{k} is required")
    if not (doc.get("pipelineInfo") or {}).get("name"):
        err("pipelineInfo.name is required")
    executors = ((doc.get("deploymentSpec") or {}).get("executors")) or {}
    components = doc.get("components") or {}
    for cname, comp in components.items():
        for sect in ("inputDefinitions", "outputDefinitions"):
            for pname, p in ((comp.get(sect) or {}).get("parameters") or {}).items():
                if p.get("parameterType") not in PARAMETER_TYPES_V2:
                    err(f"{cname}.{sect}.{pname}: parameterType {p.get('parameterType')!r} is unknown")
            for aname, a in ((comp.get(sect) or {}).get("artifacts") or {}).items():
                title = (a.get("artifactType") or {}).get("schemaTitle")
                if title not in ARTIFACT_TYPES:
                    err(f"{cname}.{sect}.{aname}: schemaTitle {title!r} is unknown")
        label = comp.get("executorLabel")
        if label not in executors:
            err(f"{cname}: executorLabel {label!r} names no executor")
            continue
        in_params, in_arts = _defs(comp.get("inputDefinitions"))
        out_params, out_arts = _defs(comp.get("outputDefinitions"))
        container = executors[label].get("container") or {}
        if not container.get("image"):
            err(f"{label}: container.image is required")
        argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
        text = "\n".join(argv)
        for m in V2_PLACEHOLDER_RE.finditer(text):
            io, kind, name, attr = m.groups()
            if io is None:
                continue  # {{$}}: the whole ExecutorInput
            known = {("inputs", "parameters"): in_params, ("inputs", "artifacts"): in_arts,
                     ("outputs", "parameters"): out_params, ("outputs", "artifacts"): out_arts}
            if (io, kind) not in known:
                err(f"{label}: placeholder {m.group(0)} is not one the launcher substitutes")
            elif name not in known[(io, kind)]:
                err(f"{label}: {m.group(0)} names no {io[:-1]} {kind[:-1]} of {cname}")
            if kind == "artifacts" and attr not in ("path", "uri", "metadata"):
                err(f"{label}: {m.group(0)} needs .path or .uri")
        if "{{$.outputs.output_file}}" in text:
            err(f"{label}: the OSS launcher does not substitute {{{{$.outputs.output_file}}}}")
        for a in sorted(out_arts):
            title = comp["outputDefinitions"]["artifacts"][a]["artifactType"]["schemaTitle"]
            written = f"{{{{$.outputs.artifacts['{a}'].path}}}}" in text
            if title == "system.Metrics" and not written:
                # Scalars travel in the ExecutorOutput metadata file, not in the artifact's file.
                if "/tmp/kfp_outputs/output_metadata.json" not in text:
                    err(f"{label}: Metrics artifact {a!r} is never reported "
                        "(write ExecutorOutput to /tmp/kfp_outputs/output_metadata.json)")
                elif "--kfp-metrics-artifact" in argv and _flag_value(argv, "--kfp-metrics-artifact") != a:
                    err(f"{label}: --kfp-metrics-artifact must name the output artifact {a!r}")
            elif title != "system.Metrics" and not written:
                err(f"{label}: output artifact {a!r} is never written")
    root = doc.get("root") or {}
    root_params, _ = _defs(root.get("inputDefinitions"))
    tasks = (root.get("dag") or {}).get("tasks") or {}
    for tname, task in tasks.items():
        ref = (task.get("componentRef") or {}).get("name")
        if ref not in components:
            err(f"task {tname}: componentRef {ref!r} names no component")
            continue
        in_params, in_arts = _defs(components[ref].get("inputDefinitions"))
        for dep in task.get("dependentTasks") or []:
            if dep not in tasks:
                err(f"task {tname}: dependentTasks names unknown task {dep!r}")
        given_params = (task.get("inputs") or {}).get("parameters") or {}
        given_arts = (task.get("inputs") or {}).get("artifacts") or {}
        for p in in_params - set(given_params):
            err(f"task {tname}: input parameter {p!r} is not given")
        for a in in_arts - set(given_arts):
            err(f"task {tname}: input artifact {a!r} is not given")
        for p, src in given_params.items():
            if p not in in_params:
                err(f"task {tname}: {p!r} is no input parameter of {ref}")
            cip = src.get("componentInputParameter")
            if cip is not None and cip not in root_params:
                err(f"task {tname}: componentInputParameter {cip!r} is not a pipeline input")
        for a, src in given_arts.items():
            if a not in in_arts:
                err(f"task {tname}: {a!r} is no input artifact of {ref}")
            toa = src.get("taskOutputArtifact") or {}
            producer = toa.get("producerTask")
            if producer not in tasks:
                err(f"task {tname}: producerTask {producer!r} is no task")
                continue
            pref = tasks[producer]["componentRef"]["name"]
            _, p_out = _defs((components.get(pref) or {}).get("outputDefinitions"))
            if toa.get("outputArtifactKey") not in p_out:
                err(f"task {tname}: {producer} has no output artifact {toa.get('outputArtifactKey')!r}")
            if producer not in (task.get("dependentTasks") or []):
                err(f"task {tname}: consumes {producer}'s output but does not list it in dependentTasks")
    return errors


# --- driver --------------------------------------------------------------------------------

def classify(doc):
    if not isinstance(doc, dict):
        return None
    if doc.get("kind") == "Experiment" and str(doc.get("apiVersion", "")).startswith("kubeflow.org/"):
        return "katib-experiment", check_experiment
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
    return kinds, errors


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
        ("v1: placeholder names no input",
         m("deploy/pipelines/train-component.yaml",
           lambda d: d["implementation"]["container"]["command"].append({"inputValue": "lr"})), "names no input"),
        ("v1: output never written",
         m("deploy/pipelines/train-component.yaml",
           lambda d: d["outputs"].append({"name": "extra", "type": "Model"})), "never written"),
        ("v1: metrics output misnamed",
         m("deploy/pipelines/evaluate-component.yaml",
           lambda d: _rename_v1_output(d, "MLPipeline Metrics", "metrics")), "MLPipeline Metrics"),
        ("v2: executor missing",
         m("deploy/pipelines/train-evaluate-pipeline.yaml",
           lambda d: d["deploymentSpec"]["executors"].pop("exec-evaluate")), "names no executor"),
        ("v2: placeholder names no parameter",
         m("deploy/pipelines/train-evaluate-pipeline.yaml",
           lambda d: d["deploymentSpec"]["executors"]["exec-train"]["container"]["args"].append(
               "{{$.inputs.parameters['lr']}}")), "names no input parameter"),
        ("v2: metrics artifact name mismatch",
         m("deploy/pipelines/train-evaluate-pipeline.yaml",
           lambda d: _replace_arg(d, "exec-train", "metrics", "kfp_metrics")), "--kfp-metrics-artifact"),
        ("v2: producer task unknown",
         m("deploy/pipelines/train-evaluate-pipeline.yaml",
           lambda d: d["root"]["dag"]["tasks"]["evaluate"]["inputs"]["artifacts"]["model"]
           ["taskOutputArtifact"].update(producerTask="training")), "producerTask"),
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


def _replace_arg(d, executor, old, new):
    args = d["deploymentSpec"]["executors"][executor]["container"]["args"]
    args[args.index(old)] = new


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    sys.exit(main(sys.argv[1:]))
