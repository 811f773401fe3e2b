#!/usr/bin/python3
"""deploy/katib/specs-configmap.yaml: the job specs the Katib trials read, made from examples/.

  tests/tools/specs_configmap.py --write   # regenerate after editing examples/mlp.yaml etc.
  tests/tools/specs_configmap.py --check   # exit 1 if the ConfigMap and examples/ differ

A file rather than a kustomize configMapGenerator because kustomize refuses files outside
the kustomization's directory, and `kubectl apply -f deploy/katib/` should just work.
"""
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "deploy/katib/specs-configmap.yaml"
SPECS = ["mlp.yaml", "lenet.yaml", "csv.yaml"]
HEADER = """\
# The job specs the Katib trials read, mounted at /etc/cajal (generated from examples/ by
# tests/tools/specs_configmap.py --write; the integration test fails when they drift apart).
# No namespace: kustomization.yaml leaves it to `kubectl -n NAMESPACE apply -k deploy/katib`.
"""


class _Literal(str):
    pass


def _literal(dumper, data):
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")


yaml.add_representer(_Literal, _literal)


def render():
    data = {name: _Literal((ROOT / "examples" / name).read_text()) for name in SPECS}
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "cajal-specs",
            "labels": {"app.kubernetes.io/part-of": "cajal", "cajal.dev/example": "specs"},
        },
        "data": data,
    }
    body = yaml.dump(cm, sort_keys=False, default_flow_style=False, width=1000)
    return HEADER + body


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "--check"
    text = render()
    if mode == "--write":
        OUT.write_text(text)
        print(f"wrote {OUT.relative_to(ROOT)}")
        return 0
    current = yaml.safe_load(OUT.read_text())
    want = yaml.safe_load(text)
    if current != want:
        print(f"{OUT.relative_to(ROOT)} differs from examples/{{{','.join(SPECS)}}}: "
              "run tests/tools/specs_configmap.py --write")
        return 1
    print(f"{OUT.relative_to(ROOT)} matches examples/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
