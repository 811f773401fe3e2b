#!/usr/bin/python3
"""k8s/overlays/monitoring/{prometheusrule.yaml,grafana-dashboard.yaml}: cajald's alert and
recording rules as a prometheus-operator PrometheusRule and its Grafana dashboard as a
ConfigMap for Grafana's dashboard sidecar, made from deploy/prometheus/.

  tests/tools/monitoring_manifests.py --write   # regenerate after editing deploy/prometheus/
  tests/tools/monitoring_manifests.py --check   # exit 1 if they and deploy/prometheus/ differ

Files rather than a kustomize generator because kustomize refuses files outside the
kustomization's directory, and the rules must sit inside the PrometheusRule's spec.
Both carry the labels kube-prometheus-stack selects by default: `release:
kube-prometheus-stack` (its Prometheus's ruleSelector) and `grafana_dashboard: "1"` (its
Grafana's dashboard sidecar).
"""
import json
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules.yaml"
DASHBOARD = ROOT / "deploy/prometheus/grafana-dashboard.json"
OUT = ROOT / "k8s/overlays/monitoring"
LABELS = {"app.kubernetes.io/name": "cajald", "app.kubernetes.io/part-of": "cajal"}
HEADER = """\
# Generated from deploy/prometheus/{src} by tests/tools/monitoring_manifests.py --write;
# the integration test fails when they drift apart. docs/observability.md describes it.
# PromQL expressions and dashboard JSON keep their own line breaks:
# yamllint disable rule:line-length
"""


class _Dumper(yaml.SafeDumper):
    """Block sequences indented under their key, multi-line strings as literal blocks."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def _str(dumper, text):
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


def prometheus_rule():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "cajald", "labels": dict(LABELS, release="kube-prometheus-stack")},
        "spec": {"groups": groups},
    }


def dashboard_configmap():
    text = DASHBOARD.read_text()
    json.loads(text)  # must be valid JSON
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cajal-grafana-dashboard", "labels": dict(LABELS, grafana_dashboard="1")},
        "data": {"cajal-overview.json": text},
    }


def render():
    def dump(obj, src):
        return HEADER.format(src=src) + yaml.dump(obj, Dumper=_Dumper, sort_keys=False,
                                                  default_flow_style=False, width=1000)
    return {OUT / "prometheusrule.yaml": dump(prometheus_rule(), RULES.name),
            OUT / "grafana-dashboard.yaml": dump(dashboard_configmap(), DASHBOARD.name)}


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "--check"
    stale = []
    for path, text in render().items():
        if mode == "--write":
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
        elif not path.exists() or yaml.safe_load(path.read_text()) != yaml.safe_load(text):
            stale.append(str(path.relative_to(ROOT)))
    if stale:
        print(f"{', '.join(stale)} differ from deploy/prometheus/: run tests/tools/monitoring_manifests.py --write")
        return 1
    if mode != "--write":
        print("k8s/overlays/monitoring matches deploy/prometheus/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
