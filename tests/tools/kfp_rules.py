"""The Kubeflow Pipelines rules of check_kubeflow.py: KFP v1 component.yaml and KFP v2
PipelineSpec (IR YAML) files, from docs/kubeflow.md and the KFP sources it names (the OSS
launcher's placeholders, the ExecutorOutput it reads, the DAG wiring the driver resolves).
Each check_* function takes one parsed document and returns a list of error strings.
"""
import re


def flag_value(argv, flag):
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


# The final metrics `cajal train --kfp-output-metadata` writes as ExecutorOutput parameter
# values (service/cli/kfp_output.h): the output parameters a cajal train step can declare.
CAJAL_FINAL_METRICS = {"loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"}
CONDITION_INPUT_RE = re.compile(r"inputs\.parameter_values\['([^']+)'\]")


def _optional(spec):
    return bool(spec.get("isOptional")) or "defaultValue" in spec


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
        if ("dag" in comp) == ("executorLabel" in comp):
            err(f"{cname}: needs exactly one of dag and executorLabel")
        elif "dag" in comp:
            errors.extend(_check_dag(cname, comp, components))
        elif comp["executorLabel"] not in executors:
            err(f"{cname}: executorLabel {comp['executorLabel']!r} names no executor")
        else:
            errors.extend(_check_executor(cname, comp, executors[comp["executorLabel"]]))
    errors.extend(_check_dag("root", doc.get("root") or {}, components))
    return errors


def _check_executor(cname, comp, executor):
    errors = []
    err = errors.append
    label = comp["executorLabel"]
    in_params, in_arts = _defs(comp.get("inputDefinitions"))
    out_params, out_arts = _defs(comp.get("outputDefinitions"))
    container = executor.get("container") or {}
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
        if io == "outputs" and kind == "parameters" and attr != "output_file":
            err(f"{label}: {m.group(0)} needs .output_file")
    if "{{$.outputs.output_file}}" in text:
        err(f"{label}: the OSS launcher does not substitute {{{{$.outputs.output_file}}}}")
    for p in sorted(in_params | in_arts):
        if f"['{p}']" not in text:
            err(f"{label}: input {p!r} is never passed to the command")
    writes_metadata = "/tmp/kfp_outputs/output_metadata.json" in text
    cajal_train = argv[:2] == ["/usr/local/bin/cajal", "train"]
    for a in sorted(out_arts):
        title = comp["outputDefinitions"]["artifacts"][a]["artifactType"]["schemaTitle"]
        written = f"{{{{$.outputs.artifacts['{a}'].path}}}}" in text
        if title == "system.Metrics" and not written:
            # Scalars travel in the ExecutorOutput metadata file, not in the artifact's file.
            if not writes_metadata:
                err(f"{label}: Metrics artifact {a!r} is never reported "
                    "(write ExecutorOutput to /tmp/kfp_outputs/output_metadata.json)")
            elif "--kfp-metrics-artifact" in argv and flag_value(argv, "--kfp-metrics-artifact") != a:
                err(f"{label}: --kfp-metrics-artifact must name the output artifact {a!r}")
        elif title != "system.Metrics" and not written:
            err(f"{label}: output artifact {a!r} is never written")
    for p in sorted(out_params):
        if f"{{{{$.outputs.parameters['{p}'].output_file}}}}" in text:
            continue
        if cajal_train and writes_metadata:
            if p not in CAJAL_FINAL_METRICS:
                err(f"{label}: output parameter {p!r} is none of the final metrics cajal train "
                    f"writes as parameterValues ({sorted(CAJAL_FINAL_METRICS)})")
        elif not (writes_metadata and "parameterValues" in text and p in text):
            err(f"{label}: output parameter {p!r} is never written (no .output_file placeholder, "
                "no parameterValues in the ExecutorOutput)")
    return errors


def _check_dag(cname, comp, components):
    """The tasks of a DAG component (the root or a condition's sub-DAG): references between
    tasks, inputs given, conditions, and the DAG's outputs."""
    errors = []
    err = errors.append
    dag = comp.get("dag") or {}
    own_params, own_arts = _defs(comp.get("inputDefinitions"))
    tasks = dag.get("tasks") or {}
    if not tasks:
        err(f"{cname}: the DAG has no tasks")
    for tname, task in tasks.items():
        at = f"{cname} task {tname}"
        ref = (task.get("componentRef") or {}).get("name")
        if ref not in components:
            err(f"{at}: componentRef {ref!r} names no component")
            continue
        callee = components[ref]
        in_params, in_arts = _defs(callee.get("inputDefinitions"))
        in_specs = (callee.get("inputDefinitions") or {}).get("parameters") or {}
        for dep in task.get("dependentTasks") or []:
            if dep not in tasks:
                err(f"{at}: dependentTasks names unknown task {dep!r}")
        given_params = (task.get("inputs") or {}).get("parameters") or {}
        given_arts = (task.get("inputs") or {}).get("artifacts") or {}
        for p in sorted(in_params - set(given_params)):
            if not _optional(in_specs[p]):
                err(f"{at}: input parameter {p!r} is not given and has no default")
        for a in sorted(in_arts - set(given_arts)):
            err(f"{at}: input artifact {a!r} is not given")
        for p, src in given_params.items():
            if p not in in_params:
                err(f"{at}: {p!r} is no input parameter of {ref}")
            cip = src.get("componentInputParameter")
            if cip is not None and cip not in own_params:
                err(f"{at}: componentInputParameter {cip!r} is not an input of {cname}")
            top = src.get("taskOutputParameter")
            if top is not None:
                errors.extend(_check_producer(at, top.get("producerTask"), top.get("outputParameterKey"),
                                              "parameters", tasks, components, task))
        for a, src in given_arts.items():
            if a not in in_arts:
                err(f"{at}: {a!r} is no input artifact of {ref}")
            cia = src.get("componentInputArtifact")
            if cia is not None and cia not in own_arts:
                err(f"{at}: componentInputArtifact {cia!r} is not an input of {cname}")
            toa = src.get("taskOutputArtifact")
            if toa is not None:
                errors.extend(_check_producer(at, toa.get("producerTask"), toa.get("outputArtifactKey"),
                                              "artifacts", tasks, components, task))
        condition = (task.get("triggerPolicy") or {}).get("condition")
        if condition:
            names = CONDITION_INPUT_RE.findall(condition)
            if not names:
                err(f"{at}: triggerPolicy.condition {condition!r} reads no input parameter")
            for n in names:
                if n not in given_params:
                    err(f"{at}: triggerPolicy.condition reads {n!r}, which the task is not given")
    outputs = dag.get("outputs") or {}
    out_params, out_arts = _defs(comp.get("outputDefinitions"))
    for a, spec in (outputs.get("artifacts") or {}).items():
        if a not in out_arts:
            err(f"{cname}: dag output artifact {a!r} is not in outputDefinitions")
        for sel in spec.get("artifactSelectors") or []:
            errors.extend(_check_producer(f"{cname} output {a}", sel.get("producerSubtask"),
                                          sel.get("outputArtifactKey"), "artifacts", tasks, components))
    for p, spec in (outputs.get("parameters") or {}).items():
        if p not in out_params:
            err(f"{cname}: dag output parameter {p!r} is not in outputDefinitions")
        sel = spec.get("valueFromParameter") or {}
        errors.extend(_check_producer(f"{cname} output {p}", sel.get("producerSubtask"),
                                      sel.get("outputParameterKey"), "parameters", tasks, components))
    for a in sorted(out_arts - set(outputs.get("artifacts") or {})):
        err(f"{cname}: output artifact {a!r} is never selected in dag.outputs")
    for p in sorted(out_params - set(outputs.get("parameters") or {})):
        err(f"{cname}: output parameter {p!r} is never selected in dag.outputs")
    return errors


def _check_producer(at, producer, key, kind, tasks, components, consumer=None):
    if producer not in tasks:
        return [f"{at}: producerTask {producer!r} is no task"]
    pref = (tasks[producer].get("componentRef") or {}).get("name")
    p_params, p_arts = _defs((components.get(pref) or {}).get("outputDefinitions"))
    if key not in (p_arts if kind == "artifacts" else p_params):
        return [f"{at}: {producer} has no output {kind[:-1]} {key!r}"]
    if consumer is not None and producer not in (consumer.get("dependentTasks") or []):
        return [f"{at}: consumes {producer}'s output but does not list it in dependentTasks"]
    return []


def component_definitions(doc):
    """name -> (component, executor container) of a v2 file, for the copies check."""
    executors = ((doc.get("deploymentSpec") or {}).get("executors")) or {}
    out = {}
    for cname, comp in (doc.get("components") or {}).items():
        if "executorLabel" in comp:
            out[cname] = (comp, (executors.get(comp["executorLabel"]) or {}).get("container"))
    return out
