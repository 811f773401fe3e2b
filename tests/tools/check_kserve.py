#!/usr/bin/python3
"""Checks deploy/kserve/ against an exported cajal model and, when given, KServe's CRD.

  tests/tools/check_kserve.py MODEL.onnx [--crd CRD.yaml]

- Every InferenceService (deploy/kserve/*.yaml) against the openAPIV3Schema of the
  serving.kserve.io/v1beta1 version of KServe's CustomResourceDefinition
  `inferenceservices.serving.kserve.io` (python3-jsonschema), plus the fields the API server
  would prune as unknown (a structural schema keeps only declared properties). The CRD is not
  in any Debian or npm package; --crd (default: $CAJAL_KSERVE_CRD, else
  ../shared/schemas/kserve-inferenceservice-crd.yaml beside the repository) names a copy of
  upstream's config/crd/full/serving.kserve.io_inferenceservices.yaml. Without one this check
  is reported as skipped, not passed.
- What serving an exported model needs: model format onnx on the kserve-tritonserver runtime
  with protocol v2, a pvc:// or s3:// storageUri, the ServiceAccount a predictor names.
- model-repository/cajal/config.pbtxt (Triton) and infer-request.json (v2 protocol): tensor
  names, data types and shapes against MODEL.onnx (python3-onnx).
- The request answered by ONNX Runtime (onnxruntime/infer_v2.mjs): outputs of the declared
  shapes, probabilities that sum to 1.
Prints one line per check and ends with `N passed, M failed`.
"""
import argparse
import json
import math
import os
import pathlib
import re
import subprocess
import sys

import jsonschema
import onnx
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
KSERVE = ROOT / "deploy/kserve"
results = {"passed": 0, "failed": 0}


def check(ok, what):
    results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    return ok


def unknown_fields(value, schema, at, out):
    """Paths in `value` that `schema` does not declare (the API server would drop them)."""
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            where = f"{at}.{key}"
            if props is not None and key in props:
                unknown_fields(sub, props[key], where, out)
            elif isinstance(extra, dict):
                unknown_fields(sub, extra, where, out)
            elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                out.append(where)
    elif isinstance(value, list) and "items" in schema:
        for i, sub in enumerate(value):
            unknown_fields(sub, schema["items"], f"{at}[{i}]", out)
    return out


def crd_schema(path):
    crd = yaml.safe_load(path.read_text())
    if crd.get("metadata", {}).get("name") != "inferenceservices.serving.kserve.io":
        return None
    for version in crd["spec"]["versions"]:
        if version["name"] == "v1beta1":
            return version["schema"]["openAPIV3Schema"]
    return None


def check_isvc(isvc, source, schema, accounts):
    name = f"{source} InferenceService {isvc['metadata']['name']}"
    if schema is not None:
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(isvc), key=str)
        check(not errors, f"{name}: valid against KServe's CRD schema" +
              "".join(f"; {'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]))
        unknown = unknown_fields(isvc, schema, "", [])
        check(not unknown, f"{name}: no field the CRD's structural schema would prune {unknown}")
    predictor = isvc["spec"]["predictor"]
    model = predictor.get("model", {})
    check(model.get("modelFormat", {}).get("name") == "onnx"
          and model.get("runtime") == "kserve-tritonserver" and model.get("protocolVersion") == "v2",
          f"{name}: model format onnx on the kserve-tritonserver runtime, protocol v2")
    uri = model.get("storageUri", "")
    check(re.fullmatch(r"(pvc://[a-z0-9-]+|s3://[a-z0-9.-]+)/[A-Za-z0-9._/-]+", uri) is not None,
          f"{name}: storageUri {uri} is a pvc:// or s3:// model repository")
    account = predictor.get("serviceAccountName")
    if account is not None:
        check(account in accounts, f"{name}: serviceAccountName {account} is defined in deploy/kserve")


def pbtxt_tensors(text, section):
    """[(name, data_type, dims)] of an input [...] or output [...] block of a config.pbtxt."""
    block = re.search(section + r"\s*\[(.*?)\n\]", text, re.S)
    if block is None:
        return []
    entries = re.findall(r'name:\s*"([^"]+)"\s*data_type:\s*(\w+)\s*dims:\s*\[([^\]]*)\]',
                         block.group(1))
    return [(n, t, [int(d) for d in dims.split(",")]) for n, t, dims in entries]


def onnx_tensors(values):
    out = {}
    for v in values:
        t = v.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        out[v.name] = (t.elem_type, dims)
    return out


def check_triton_config(model_inputs, model_outputs):
    text = (KSERVE / "model-repository/cajal/config.pbtxt").read_text()
    check(re.search(r'^name:\s*"cajal"', text, re.M) is not None,
          "config.pbtxt: name \"cajal\" is its directory's name")
    check(re.search(r'^platform:\s*"onnxruntime_onnx"', text, re.M) is not None,
          "config.pbtxt: platform onnxruntime_onnx")
    batch = re.search(r"^max_batch_size:\s*(\d+)", text, re.M)
    check(batch is not None and int(batch.group(1)) > 0,
          "config.pbtxt: max_batch_size > 0 (the model's first dimension N is the batch)")
    for section, declared in (("input", model_inputs), ("output", model_outputs)):
        tensors = pbtxt_tensors(text, section)
        check(sorted(n for n, _, _ in tensors) == sorted(declared),
              f"config.pbtxt: {section} names {[n for n, _, _ in tensors]} == the model's "
              f"{sorted(declared)}")
        for name, dtype, dims in tensors:
            elem, model_dims = declared.get(name, (None, []))
            check(dtype == "TYPE_FP32" and elem == onnx.TensorProto.FLOAT
                  and model_dims[:1] == ["N"] and model_dims[1:] == dims,
                  f"config.pbtxt: {section} {name} {dtype} {dims} == the model's "
                  f"(N, {', '.join(map(str, model_dims[1:]))}) float32")
    return int(batch.group(1)) if batch else 0


def check_request(model_path, model_inputs, model_outputs, max_batch):
    path = KSERVE / "infer-request.json"
    request = json.loads(path.read_text())
    for t in request["inputs"]:
        elem, dims = model_inputs.get(t["name"], (None, []))
        count = math.prod(t["shape"])
        check(t["datatype"] == "FP32" and elem == onnx.TensorProto.FLOAT
              and t["shape"][1:] == dims[1:] and 1 <= t["shape"][0] <= max_batch
              and len(t["data"]) == count,
              f"infer-request.json: input {t['name']} FP32 {t['shape']} with {len(t['data'])} "
              f"values fits the model's {t['name']} (N, {', '.join(map(str, dims[1:]))})")
    wanted = [o["name"] for o in request.get("outputs", [])]
    check(set(wanted) <= set(model_outputs), f"infer-request.json: outputs {wanted} exist")
    p = subprocess.run(["node", str(ROOT / "tests/tools/onnxruntime/infer_v2.mjs"), model_path,
                        str(path)], capture_output=True, text=True)
    if not check(p.returncode == 0, "ONNX Runtime answers the request"):
        print(p.stderr)
        return
    response = {o["name"]: o for o in json.loads(p.stdout)["outputs"]}
    batch = request["inputs"][0]["shape"][0]
    for name in wanted:
        want = [batch] + model_outputs[name][1][1:]
        check(response[name]["shape"] == want, f"response {name} has shape {want}")
    if "probabilities" in response:
        probs = response["probabilities"]["data"]
        check(abs(sum(probs) - 1) < 1e-5,
              f"response probabilities sum to 1; predicted class {probs.index(max(probs))}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--crd", default=os.environ.get(
        "CAJAL_KSERVE_CRD", str(ROOT.parent / "shared/schemas/kserve-inferenceservice-crd.yaml")))
    a = ap.parse_args()
    crd = pathlib.Path(a.crd)
    schema = crd_schema(crd) if crd.is_file() else None
    if schema is None:
        print(f"skip KServe CRD schema: no CRD inferenceservices.serving.kserve.io (v1beta1) at "
              f"{crd}; the InferenceServices are checked without it")
    docs = []
    for path in sorted(KSERVE.glob("*.yaml")):
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    accounts = {d["metadata"]["name"] for _, d in docs if d["kind"] == "ServiceAccount"}
    isvcs = [(s, d) for s, d in docs if d["kind"] == "InferenceService"]
    check(len(isvcs) == 2 and all(d["apiVersion"] == "serving.kserve.io/v1beta1" for _, d in isvcs),
          "deploy/kserve: two serving.kserve.io/v1beta1 InferenceServices (PVC, S3)")
    for source, isvc in isvcs:
        check_isvc(isvc, source, schema, accounts)
    model = onnx.load(a.model)
    inputs, outputs = onnx_tensors(model.graph.input), onnx_tensors(model.graph.output)
    max_batch = check_triton_config(inputs, outputs)
    check_request(a.model, inputs, outputs, max_batch)
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
