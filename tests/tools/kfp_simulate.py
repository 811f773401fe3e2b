#!/usr/bin/python3
"""Runs the KFP components of deploy/pipelines/ locally, as a KFP launcher would, and checks
their outputs.

  tests/tools/kfp_simulate.py BUILD_DIR

- v2 (train-evaluate-pipeline.yaml): each executor's command with its placeholders filled;
  /tmp/kfp_outputs/output_metadata.json must parse as KFP's ExecutorOutput with protojson
  rules (unknown fields rejected, as the Go launcher does), the final metrics in the metadata
  of the declared system.Metrics output artifact; the model artifact must be written.
- v1 (train-component.yaml, evaluate-component.yaml): {inputValue}/{inputPath}/{outputPath}
  resolved; the `MLPipeline Metrics` file must be {"metrics": [{name, numberValue, format}]}
  with valid names.
The image's paths are replaced by the build's binary, examples/ and a scratch directory, and
a few --set flags keep training short. Ends with `N passed, M failed`.
"""
import json
import math
import pathlib
import re
import subprocess
import sys
import tempfile

import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf import struct_pb2  # noqa: F401  (registers google/protobuf/struct.proto)

ROOT = pathlib.Path(__file__).resolve().parents[2]
# One thread: the test shares 2 cores with other tests (DESIGN.md, Scale: oversubscription).
FAST = ["--set", "training.max_steps=40", "--set", "training.threads=1"]
V1_NAME = re.compile(r"^[a-zA-Z]([-_a-zA-Z0-9]{0,62}[a-zA-Z0-9])?$")
results = {"passed": 0, "failed": 0}


def check(ok, what):
    results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    return ok


def executor_output_class():
    """The part of KFP's pipeline_spec.proto that the launcher reads from the metadata file."""
    f = descriptor_pb2.FileDescriptorProto(name="kfp_executor_output.proto",
                                           package="ml_pipelines", syntax="proto3",
                                           dependency=["google/protobuf/struct.proto"])
    ra = f.message_type.add(name="RuntimeArtifact")
    ra.field.add(name="name", number=1, type=9, label=1)
    ra.field.add(name="uri", number=3, type=9, label=1)
    ra.field.add(name="metadata", number=6, type=11, label=1, type_name=".google.protobuf.Struct")
    al = f.message_type.add(name="ArtifactList")
    al.field.add(name="artifacts", number=1, type=11, label=3, type_name=".ml_pipelines.RuntimeArtifact")
    eo = f.message_type.add(name="ExecutorOutput")
    for fname, num, vtype in (("artifacts", 2, ".ml_pipelines.ArtifactList"),
                              ("parameter_values", 3, ".google.protobuf.Value")):
        entry = eo.nested_type.add(name="".join(p.title() for p in fname.split("_")) + "Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=9, label=1)
        entry.field.add(name="value", number=2, type=11, label=1, type_name=vtype)
        eo.field.add(name=fname, number=num, type=11, label=3,
                     type_name=f".ml_pipelines.ExecutorOutput.{entry.name}")
    pool = descriptor_pool.Default()
    pool.Add(f)
    desc = pool.FindMessageTypeByName("ml_pipelines.ExecutorOutput")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


def localize(arg, build, scratch):
    """The image's paths in a template string, replaced in one pass."""
    image_paths = {
        "/usr/local/bin/cajal": str(build / "bin/cajal"),
        "/usr/share/cajal/examples/": str(ROOT / "examples") + "/",
        "/tmp/": str(scratch) + "/",
    }
    pattern = re.compile("|".join(re.escape(k) for k in image_paths))
    return pattern.sub(lambda m: image_paths[m.group(0)], arg)


def run(argv, what):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if not check(p.returncode == 0, f"{what} exits 0"):
        print(p.stdout[-1500:], p.stderr[-1500:])
    return p.returncode == 0


def check_metadata(path, artifact, want, what):
    if not check(path.exists(), f"{what}: writes {path.name}"):
        return
    text = path.read_text()
    out = executor_output_class()()
    try:
        json_format.Parse(text, out, ignore_unknown_fields=False)
        parsed = True
    except json_format.ParseError as e:
        print(f"     {e}")
        parsed = False
    if not check(parsed, f"{what}: parses as ExecutorOutput (protojson, no unknown fields)"):
        return
    arts = out.artifacts.get(artifact)
    if not check(arts is not None and len(arts.artifacts) == 1,
                 f"{what}: one runtime artifact under artifacts[{artifact!r}]"):
        return
    meta = json_format.MessageToDict(arts.artifacts[0].metadata)
    for name in want:
        v = meta.get(name)
        ok = isinstance(v, (int, float)) and math.isfinite(v) and (
            0 < v <= 1 if "accuracy" in name else v >= 0)
        check(ok, f"{what}: metadata.{name} = {v}")


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


def v2(build, scratch):
    ir = yaml.safe_load((ROOT / "deploy/pipelines/train-evaluate-pipeline.yaml").read_text())
    params = {k: localize(str(v["defaultValue"]), build, scratch)  # an image path: spec_path
              for k, v in ir["root"]["inputDefinitions"]["parameters"].items()}
    params["epochs"] = "1"
    model = scratch / "v2/train/model"
    values = {f"{{{{$.inputs.parameters['{k}']}}}}": v for k, v in params.items()}
    values["{{$.outputs.artifacts['model'].path}}"] = str(model)
    values["{{$.inputs.artifacts['model'].path}}"] = str(model)
    for task in ("train", "evaluate"):
        label = ir["components"][f"comp-{task}"]["executorLabel"]
        c = ir["deploymentSpec"]["executors"][label]["container"]
        argv = []
        for a in c["command"] + c.get("args", []):
            a = localize(a, build, scratch)  # before the values, which are local paths already
            for k, v in values.items():
                a = a.replace(k, v)
            argv.append(a)
        if task == "train":
            argv += FAST
        meta = scratch / "kfp_outputs/output_metadata.json"
        meta.unlink(missing_ok=True)
        print(f"---- v2 {task}: {' '.join(argv)[:400]}")
        if not run(argv, f"v2 {task}"):
            continue
        want = (["loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"]
                if task == "train" else ["test_loss", "test_accuracy"])
        check_metadata(meta, "metrics", want, f"v2 {task}")
        if task == "train":
            check(model.exists() and model.stat().st_size > 0, f"v2 train: writes the model artifact {model}")


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


def v1(build, scratch):
    model = scratch / "v1/outputs/model/data"
    for comp, paths, want in (
        ("train-component.yaml",
         {"spec": str(ROOT / "examples/mlp.yaml"), "model": str(model),
          "MLPipeline Metrics": str(scratch / "v1/outputs/train_metrics/data")},
         ["val-accuracy", "val-loss", "test-accuracy"]),
        ("evaluate-component.yaml",
         {"model": str(model), "MLPipeline Metrics": str(scratch / "v1/outputs/eval_metrics/data")},
         ["test-accuracy", "test-loss"]),
    ):
        doc = yaml.safe_load((ROOT / "deploy/pipelines" / comp).read_text())
        inputs = {i["name"]: i.get("default", "") for i in doc.get("inputs", [])}
        if "epochs" in inputs:
            inputs["epochs"] = "1"
        c = doc["implementation"]["container"]
        def local(a):
            return localize(a, build, scratch)
        argv = (resolve_v1(c["command"], inputs, paths, local)
                + resolve_v1(c.get("args", []), inputs, paths, local))
        if comp.startswith("train"):
            argv += FAST
        print(f"---- v1 {comp}: {' '.join(argv)[:400]}")
        if not run(argv, f"v1 {comp}"):
            continue
        check_v1_metrics(pathlib.Path(paths["MLPipeline Metrics"]), want, f"v1 {comp}")
        if comp.startswith("train"):
            check(model.exists() and model.stat().st_size > 0, f"v1 {comp}: writes {{outputPath: model}}")


def main():
    build = pathlib.Path(sys.argv[1]).resolve()
    if check((build / "bin/cajal").exists(), f"{build}/bin/cajal exists"):
        with tempfile.TemporaryDirectory() as tmp:
            v2(build, pathlib.Path(tmp))
            v1(build, pathlib.Path(tmp))
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
