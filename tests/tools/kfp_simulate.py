#!/usr/bin/python3
"""Runs the Kubeflow Pipelines files of deploy/pipelines/ locally, as KFP's driver and launcher
would, and checks what they produce.

  tests/tools/kfp_simulate.py BUILD_DIR

- Every v2 file (pipelines and one-task component files) must parse strictly, with protojson
  rules (unknown fields rejected, as KFP's Go backend reads it), as PipelineSpec, and its
  deploymentSpec as PipelineDeploymentConfig (tests/tools/kfp_pipeline_spec.proto, compiled
  here with protoc).
- v2 files run as a DAG: tasks in dependency order, inputs resolved from the pipeline's
  parameters, defaults and upstream outputs, triggerPolicy conditions evaluated (a condition's
  sub-DAG runs only when it holds), each executor's command with its placeholders filled, its
  own /tmp, output artifact directories made for it, and afterwards its
  /tmp/kfp_outputs/output_metadata.json parsed strictly as ExecutorOutput: the Metrics
  artifacts' metadata and every declared output parameter must be there (or in the
  parameter's output_file), as the launcher requires. The CSV pipeline runs twice, once on
  each side of its condition. Steps in other images: python:* runs with the local python3.
- v1 (v1/*.yaml): {inputValue}/{inputPath}/{outputPath} resolved; the `MLPipeline Metrics` file
  must be {"metrics": [{name, numberValue, format}]} with valid names.
The image's paths are replaced by the build's binary and examples/, and a few --set flags keep
training short on the Fashion-MNIST steps. Ends with `N passed, M failed`.
"""
import ast
import importlib
import json
import math
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import yaml
from google.protobuf import json_format

ROOT = pathlib.Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "deploy/pipelines"
# One thread: the test shares 2 cores with other tests (DESIGN.md, Scale: oversubscription).
ONE_THREAD = ["--set", "training.threads=1"]
# Fashion-MNIST steps stop after 40 steps of one epoch.
SHORT = ["--set", "training.max_steps=40", "--set", "training.epochs=1"]
V1_NAME = re.compile(r"^[a-zA-Z]([-_a-zA-Z0-9]{0,62}[a-zA-Z0-9])?$")
PLACEHOLDER_RE = re.compile(r"\{\{\$\.(inputs|outputs)\.(parameters|artifacts)\['([^']+)'\](?:\.([a-z_]+))?\}\}")
CONDITION_INPUT_RE = re.compile(r"inputs\.parameter_values\['([^']+)'\]")
results = {"passed": 0, "failed": 0}


def check(ok, what):
    results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    return ok


def compile_ir_proto(tmp):
    """The generated Python module of tests/tools/kfp_pipeline_spec.proto."""
    out = pathlib.Path(tmp) / "pb"
    out.mkdir()
    subprocess.run(["protoc", f"--proto_path={ROOT / 'tests/tools'}", f"--python_out={out}",
                    "kfp_pipeline_spec.proto"], check=True)
    sys.path.insert(0, str(out))
    return importlib.import_module("kfp_pipeline_spec_pb2")


def strict_parse(text, message, what):
    try:
        json_format.Parse(text, message, ignore_unknown_fields=False)
        return True
    except json_format.ParseError as e:
        print(f"     {e}")
        return check(False, what)


def parse_ir(path, pb):
    """Strict parse of a v2 file; returns the YAML document, or None."""
    doc = yaml.safe_load(path.read_text())
    what = f"{path.relative_to(ROOT)}: parses as PipelineSpec (protojson, no unknown fields)"
    if not strict_parse(json.dumps(doc), pb.PipelineSpec(), what):
        return None
    check(True, what)
    what = f"{path.relative_to(ROOT)}: deploymentSpec parses as PipelineDeploymentConfig"
    if not strict_parse(json.dumps(doc["deploymentSpec"]), pb.PipelineDeploymentConfig(), what):
        return None
    check(True, what)
    return doc


def text_of(value):
    """A parameter value as the launcher substitutes it into a command."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else format(value, "f").rstrip("0")
    return str(value)


def evaluate_condition(condition, params):
    """A triggerPolicy condition of the shape the SDK compiles dsl.If to: comparisons of
    inputs.parameter_values[...] and literals, joined by && / ||."""
    expr = CONDITION_INPUT_RE.sub(lambda m: repr(params[m.group(1)]), condition)
    expr = expr.replace("&&", " and ").replace("||", " or ")
    tree = ast.parse(expr, mode="eval")
    allowed = (ast.Expression, ast.Compare, ast.BoolOp, ast.And, ast.Or, ast.Constant, ast.Eq,
               ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.UnaryOp, ast.USub, ast.Not)
    for node in ast.walk(tree):
        if not isinstance(node, allowed):
            raise ValueError(f"unsupported condition {condition!r}")
    return eval(compile(tree, "<condition>", "eval"))  # only comparisons of constants


class PipelineRun:
    """One run of a v2 file: components, executors and a scratch directory per task."""

    def __init__(self, doc, build, scratch, pb, extra_args):
        self.doc = doc
        self.build = build
        self.scratch = scratch
        self.pb = pb
        self.extra_args = extra_args  # executor label -> flags appended to its command
        self.executors = doc["deploymentSpec"]["executors"]
        self.ran, self.skipped = [], []  # executors run; tasks whose condition was false

    def run_dag(self, name, comp, params, arts):
        """Runs comp's DAG with its inputs; returns (parameters, artifacts) of dag.outputs, or
        None when a task failed."""
        tasks = comp["dag"]["tasks"]
        outputs = {}  # task -> (params, arts)
        for tname in self.order(tasks):
            task = tasks[tname]
            callee = self.doc["components"][task["componentRef"]["name"]]
            t_params = self.defaults(callee)
            t_arts = {}
            for p, src in ((task.get("inputs") or {}).get("parameters") or {}).items():
                if "componentInputParameter" in src:
                    t_params[p] = params[src["componentInputParameter"]]
                elif "taskOutputParameter" in src:
                    o = src["taskOutputParameter"]
                    t_params[p] = outputs[o["producerTask"]][0][o["outputParameterKey"]]
                elif "runtimeValue" in src:
                    t_params[p] = src["runtimeValue"]["constant"]
            for a, src in ((task.get("inputs") or {}).get("artifacts") or {}).items():
                if "componentInputArtifact" in src:
                    t_arts[a] = arts[src["componentInputArtifact"]]
                else:
                    o = src["taskOutputArtifact"]
                    t_arts[a] = outputs[o["producerTask"]][1][o["outputArtifactKey"]]
            condition = (task.get("triggerPolicy") or {}).get("condition")
            path = f"{name}/{tname}"
            if condition and not evaluate_condition(condition, t_params):
                self.skipped.append(tname)
                print(f"     {path}: condition false, not run: {condition}")
                outputs[tname] = ({}, {})
                continue
            result = (self.run_dag(path, callee, t_params, t_arts) if "dag" in callee
                      else self.run_executor(path, callee, t_params, t_arts))
            if result is None:
                return None
            outputs[tname] = result
        dag_out = comp["dag"].get("outputs") or {}
        out_params, out_arts = {}, {}
        for p, sel in (dag_out.get("parameters") or {}).items():
            sel = sel["valueFromParameter"]
            out_params[p] = outputs[sel["producerSubtask"]][0].get(sel["outputParameterKey"])
        for a, sels in (dag_out.get("artifacts") or {}).items():
            sel = sels["artifactSelectors"][0]
            out_arts[a] = outputs[sel["producerSubtask"]][1].get(sel["outputArtifactKey"])
        return out_params, out_arts

    @staticmethod
    def order(tasks):
        done, out = set(), []
        while len(out) < len(tasks):
            ready = [t for t in sorted(tasks) if t not in done
                     and set(tasks[t].get("dependentTasks") or []) <= done]
            if not ready:
                raise ValueError(f"dependency cycle among {sorted(set(tasks) - done)}")
            out += ready
            done.update(ready)
        return out

    @staticmethod
    def defaults(comp):
        specs = (comp.get("inputDefinitions") or {}).get("parameters") or {}
        return {p: s["defaultValue"] for p, s in specs.items() if "defaultValue" in s}

    def localize(self, arg, tmp):
        image_paths = {
            "/usr/local/bin/cajal": str(self.build / "bin/cajal"),
            "/usr/share/cajal/examples/": str(ROOT / "examples") + "/",
            "/tmp/": str(tmp) + "/",
        }
        pattern = re.compile("|".join(re.escape(k) for k in image_paths))
        return pattern.sub(lambda m: image_paths[m.group(0)], arg)

    def run_executor(self, path, comp, params, arts):
        label = comp["executorLabel"]
        c = self.executors[label]["container"]
        task_dir = self.scratch / path
        tmp = task_dir / "tmp"  # every step runs in its own pod, with its own /tmp
        tmp.mkdir(parents=True)
        out_defs = comp.get("outputDefinitions") or {}
        out_arts = {a: task_dir / "outputs" / a for a in out_defs.get("artifacts") or {}}
        for local in out_arts.values():  # the launcher makes the artifacts' parent directories
            local.parent.mkdir(parents=True, exist_ok=True)
        param_files = {p: task_dir / "parameters" / p for p in out_defs.get("parameters") or {}}
        for f in param_files.values():
            f.parent.mkdir(parents=True, exist_ok=True)

        def fill(m):
            io, kind, name, attr = m.groups()
            if io == "inputs" and kind == "parameters":  # a value may be an image path
                return self.localize(text_of(params[name]), tmp)
            if io == "inputs":
                return str(arts[name])
            if kind == "artifacts":
                return str(out_arts[name])
            return str(param_files[name])

        argv = [PLACEHOLDER_RE.sub(fill, self.localize(a, tmp)) for a in c["command"] + c.get("args", [])]
        if c["image"].startswith("python:") and argv[0] == "python3":
            argv[0] = "/usr/bin/python3"
        argv += self.extra_args.get(label, [])
        print(f"---- {path}: {' '.join(argv)[:300]}")
        p = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=task_dir)
        if not check(p.returncode == 0, f"{path} exits 0"):
            print(p.stdout[-1500:], p.stderr[-1500:])
            return None
        return self.collect(path, comp, tmp, out_arts, param_files)

    def collect(self, path, comp, tmp, out_arts, param_files):
        """What the launcher does after the command: read the ExecutorOutput, the output
        parameters and the artifacts."""
        out_defs = comp.get("outputDefinitions") or {}
        meta_file = tmp / "kfp_outputs/output_metadata.json"
        executor_output = self.pb.ExecutorOutput()
        if meta_file.exists():
            if not strict_parse(meta_file.read_text(), executor_output,
                                f"{path}: output_metadata.json parses as ExecutorOutput"):
                return None
            check(True, f"{path}: output_metadata.json parses as ExecutorOutput (protojson, no unknown fields)")
        values = json_format.MessageToDict(executor_output).get("parameterValues", {})
        params = {}
        for p in param_files:
            if p in values:
                params[p] = values[p]
            elif param_files[p].exists():
                params[p] = param_files[p].read_text()
            else:
                check(False, f"{path}: output parameter {p} was written")
                return None
            check(isinstance(params[p], (int, float)) or out_defs["parameters"][p]["parameterType"] == "STRING",
                  f"{path}: output parameter {p} = {params[p]!r}")
        arts = {}
        for a, local in out_arts.items():
            title = out_defs["artifacts"][a]["artifactType"]["schemaTitle"]
            if title == "system.Metrics":
                listed = executor_output.artifacts.get(a)
                meta = (json_format.MessageToDict(listed.artifacts[0].metadata)
                        if listed is not None and len(listed.artifacts) == 1 else {})
                good = bool(meta) and all(
                    isinstance(v, (int, float)) and math.isfinite(v) and (0 < v <= 1 if "accuracy" in k else v >= 0)
                    for k, v in meta.items())
                check(good, f"{path}: Metrics artifact {a} metadata {meta}")
                arts[a] = meta
            else:
                check(local.exists() and (local.is_dir() or local.stat().st_size > 0),
                      f"{path}: writes output artifact {a}")
                arts[a] = local
        self.ran.append(path)
        return params, arts


def run_pipeline(doc, build, scratch, pb, params=None, arts=None, extra_args=None):
    run = PipelineRun(doc, build, scratch, pb, extra_args or {})
    inputs = PipelineRun.defaults(doc["root"])
    inputs.update(params or {})
    return run, run.run_dag("root", doc["root"], inputs, arts or {})


def v2(build, scratch, pb):
    docs = {}
    for path in sorted(PIPELINES.glob("*.yaml")):
        doc = parse_ir(path, pb)
        if doc is not None:
            docs[path.name] = doc
    # The parse can fail: a field in the wrong place (as a hand edit might put it) is rejected.
    if "train-component.yaml" in docs:
        bad = json.loads(json.dumps(docs["train-component.yaml"]))
        bad["root"]["dag"]["tasks"]["cajal-train"]["cachingOption"] = {"enableCache": True}
        try:
            json_format.Parse(json.dumps(bad), pb.PipelineSpec(), ignore_unknown_fields=False)
            rejected = False
        except json_format.ParseError:
            rejected = True
        check(rejected, "the strict parse rejects a misspelt field (cachingOption)")
    cajal_train = {label: ONE_THREAD for label in ("exec-cajal-train",)}
    short = {"exec-train": SHORT + ONE_THREAD, "exec-cajal-train-idx": SHORT + ONE_THREAD}

    # Your own data: a CSV made upstream, trained on, exported only above the threshold.
    doc = docs.get("csv-train-export-pipeline.yaml")
    if doc:
        run, out = run_pipeline(doc, build, scratch / "csv-low", pb, {"min_test_accuracy": 0.5},
                                extra_args=cajal_train)
        if check(out is not None, "csv-train-export: runs with min_test_accuracy 0.5"):
            data = scratch / "csv-low/root/make-dataset/outputs"
            rows = (data / "train_data").read_text().splitlines()
            check(rows[0].startswith("x0,") and len(rows) == 2001,
                  f"csv-train-export: make-dataset wrote a CSV with a header and 2000 rows ({len(rows) - 1})")
            check("root/condition-1/cajal-export" in run.ran,
                  "csv-train-export: test_accuracy >= 0.5, so the condition's export step ran")
            onnx = scratch / "csv-low/root/condition-1/cajal-export/outputs/onnx_model"
            # An ONNX ModelProto starts with field 1, ir_version (a varint: tag byte 0x08).
            check(onnx.exists() and onnx.read_bytes()[:1] == b"\x08",
                  "csv-train-export: the export step wrote an ONNX model")
        run, out = run_pipeline(doc, build, scratch / "csv-high", pb, {"min_test_accuracy": 1.01},
                                extra_args=cajal_train)
        if check(out is not None, "csv-train-export: runs with min_test_accuracy 1.01"):
            check(run.skipped == ["condition-1"] and not any("cajal-export" in r for r in run.ran),
                  "csv-train-export: test_accuracy < 1.01, so nothing was exported")

    # The one-task component files, as a pipeline author uses them.
    csv_data = scratch / "csv-low/root/make-dataset/outputs"
    doc = docs.get("train-component.yaml")
    model = None
    if doc and (csv_data / "train_data").exists():
        _, out = run_pipeline(doc, build, scratch / "train", pb,
                              arts={"train_data": csv_data / "train_data", "test_data": csv_data / "test_data"},
                              extra_args=cajal_train)
        if check(out is not None, "train-component: trains on CSV Dataset artifacts"):
            check(out[0]["test_accuracy"] > 0.8,
                  f"train-component: test_accuracy {out[0]['test_accuracy']} > 0.8 on the separable CSV")
            check(set(out[1]) == {"model", "metrics"}, "train-component: outputs model and metrics")
    fashion = pathlib.Path(os.environ.get("CAJAL_DATA_DIR", "/usr/share/datasets/fashion-mnist"))
    doc = docs.get("train-idx-component.yaml")
    if doc:
        _, out = run_pipeline(doc, build, scratch / "train-idx", pb, arts={"data": fashion},
                              extra_args=short)
        if check(out is not None, f"train-idx-component: trains on an IDX Dataset directory ({fashion})"):
            model = out[1]["model"]
    for name, inputs in (("evaluate-component.yaml", {"model": model}),
                         ("export-component.yaml", {"model": model})):
        doc = docs.get(name)
        if doc and model is not None:
            _, out = run_pipeline(doc, build, scratch / name, pb, arts=inputs)
            check(out is not None, f"{name}: runs on the IDX-trained model")

    # The spec as a file, the builtin data in the image: train -> evaluate.
    doc = docs.get("train-evaluate-pipeline.yaml")
    if doc:
        _, out = run_pipeline(doc, build, scratch / "train-evaluate", pb, extra_args=short)
        check(out is not None, "train-evaluate: train and evaluate run")


def resolve_v1(node, inputs, paths, local):
    """Command/args with placeholders resolved; `local` maps the literal strings."""
    if isinstance(node, str):
        return [local(node)]
    if isinstance(node, list):
        return [x for n in node for x in resolve_v1(n, inputs, paths, local)]
    (key, val), = node.items()
    if key == "inputValue":
        return [inputs[val]]
    if key in ("inputPath", "outputPath"):
        return [paths[val]] if val in paths else []
    if key == "concat":
        return ["".join(resolve_v1(val, inputs, paths, local))]
    if key == "if":
        present = val["cond"]["isPresent"] in paths
        return resolve_v1(val["then"] if present else val.get("else", []), inputs, paths, local)
    raise ValueError(node)


def check_v1_metrics(path, want, what):
    if not check(path.exists(), f"{what}: writes MLPipeline Metrics"):
        return
    doc = json.loads(path.read_text())
    metrics = doc.get("metrics") if isinstance(doc, dict) else None
    check(isinstance(metrics, list) and set(doc) == {"metrics"}, f"{what}: {{\"metrics\": [...]}}")
    names = {}
    for m in metrics or []:
        ok = (set(m) == {"name", "numberValue", "format"} and V1_NAME.match(m["name"])
              and isinstance(m["numberValue"], (int, float)) and m["format"] in ("RAW", "PERCENTAGE"))
        check(bool(ok), f"{what}: metric {m}")
        names[m.get("name")] = m
    for n in want:
        check(n in names, f"{what}: has {n}")
    for n, m in names.items():
        if "accuracy" in str(n):
            check(m["format"] == "PERCENTAGE", f"{what}: {n} is a PERCENTAGE")


def v1(build, scratch):
    model = scratch / "v1/outputs/model/data"
    run = PipelineRun({"deploymentSpec": {"executors": {}}}, build, scratch, None, {})
    for comp, paths, want in (
        ("train-component.yaml",
         {"spec": str(ROOT / "examples/mlp.yaml"), "model": str(model),
          "MLPipeline Metrics": str(scratch / "v1/outputs/train_metrics/data")},
         ["val-accuracy", "val-loss", "test-accuracy"]),
        ("evaluate-component.yaml",
         {"model": str(model), "MLPipeline Metrics": str(scratch / "v1/outputs/eval_metrics/data")},
         ["test-accuracy", "test-loss"]),
    ):
        doc = yaml.safe_load((PIPELINES / "v1" / comp).read_text())
        inputs = {i["name"]: i.get("default", "") for i in doc.get("inputs", [])}
        if "epochs" in inputs:
            inputs["epochs"] = "1"
        c = doc["implementation"]["container"]
        tmp = scratch / "v1" / comp / "tmp"
        tmp.mkdir(parents=True)

        def local(a):
            return run.localize(a, tmp)
        argv = (resolve_v1(c["command"], inputs, paths, local)
                + resolve_v1(c.get("args", []), inputs, paths, local))
        if comp.startswith("train"):
            argv += SHORT + ONE_THREAD
        print(f"---- v1 {comp}: {' '.join(argv)[:400]}")
        p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if not check(p.returncode == 0, f"v1 {comp} exits 0"):
            print(p.stdout[-1500:], p.stderr[-1500:])
            continue
        check_v1_metrics(pathlib.Path(paths["MLPipeline Metrics"]), want, f"v1 {comp}")
        if comp.startswith("train"):
            check(model.exists() and model.stat().st_size > 0, f"v1 {comp}: writes {{outputPath: model}}")


def main():
    build = pathlib.Path(sys.argv[1]).resolve()
    if check((build / "bin/cajal").exists(), f"{build}/bin/cajal exists"):
        with tempfile.TemporaryDirectory() as tmp:
            pb = compile_ir_proto(tmp)
            v2(build, pathlib.Path(tmp), pb)
            v1(build, pathlib.Path(tmp))
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
