#!/usr/bin/python3
"""Every version of Kubeflow, Katib, KFP, the MPI Operator and Kubernetes that a file of the
repository names must be the one of the matrix in docs/kubeflow.md ("Versions").

  tests/tools/check_versions.py              # the repository's files
  tests/tools/check_versions.py --self-test  # files with a wrong version are caught

What counts as naming a version: install URLs (`katib.git/...?ref=`, `PIPELINE_VERSION=`,
`mpi-operator/<v>/deploy`), image tags of Katib, the IR files' `sdkVersion`, the Terraform
default `kubernetes_version`, and prose of the form "Katib v0.19.0", "KFP 2.15.0",
"MPI Operator v0.8.2", "Kubeflow 1.11" (a two-part version must be the matrix's major.minor).
History written as "v0.17" or "before 2.3" is not a version in this sense. Prints one line per
file that names one and ends with `N passed, M failed`.
"""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
MATRIX_DOC = "docs/kubeflow.md"
# Files not checked: third-party text kept as published, and this checker's own examples.
SKIP = ("tests/tools/check_versions.py", "tests/tools/node_modules/")
SUFFIXES = {".md", ".yaml", ".yml", ".tf", ".example", ".proto", ".txt", ".sh", ".py", ".cc", ".h", ""}

# component -> patterns whose group 1 is a version of it.
PATTERNS = {
    "Katib": [r"katib\.git/manifests/\S*?\?ref=(v[\d.]+)", r"\bKatib (v\d+\.\d+\.\d+)\b",
              r"ghcr\.io/kubeflow/katib/[\w-]+:(v[\d.]+)"],
    "Kubeflow Pipelines": [r"PIPELINE_VERSION=([\d.]+)", r"\b(?:Kubeflow Pipelines|KFP) (\d+\.\d+\.\d+)\b",
                           r"kubeflow/pipelines/\S*?\?ref=(\d+\.\d+\.\d+)"],
    "KFP SDK": [r"sdkVersion: kfp-([\d.]+)", r"\bKFP SDK (\d+\.\d+(?:\.\d+)?)\b"],
    "MPI Operator": [r"mpi-operator/(v[\d.]+)/deploy", r"(?i)\bMPI Operator (v\d+\.\d+\.\d+)\b"],
    "Kubeflow": [r"\bKubeflow (\d+\.\d+(?:\.\d+)?)\b(?! ?[a-z]*[Pp]ipelines)", r"kubeflow/manifests (v[\d.]+)"],
}


def matrix(text):
    """{component: version} from the table of docs/kubeflow.md's "Versions"."""
    section = text.split("## Versions", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([A-Za-z][\w ]*?) \| (v?\d[\d.]*) \|", section, re.M)
    return dict(rows)


def terraform_kubernetes(files):
    """(path, version) of the Terraform default and the example tfvars."""
    out = []
    text = files.get("terraform/variables.tf", "")
    m = re.search(r'variable "kubernetes_version" \{.*?default\s*=\s*"([\d.]+)"', text, re.S)
    if m:
        out.append(("terraform/variables.tf", m.group(1)))
    m = re.search(r'^kubernetes_version\s*=\s*"([\d.]+)"', files.get("terraform/terraform.tfvars.example", ""), re.M)
    if m:
        out.append(("terraform/terraform.tfvars.example", m.group(1)))
    return out


def agrees(found, want):
    v, w = found.lstrip("v"), want.lstrip("v")
    return v == w or (v.count(".") == 1 and w.startswith(v + "."))


def check(files):
    """{path: text} -> ({path: [problems]}, {path: mentions}) against the matrix of MATRIX_DOC."""
    want = matrix(files[MATRIX_DOC])
    problems, mentions = {}, {}
    missing = [c for c in list(PATTERNS) + ["Kubernetes"] if c not in want]
    if missing:
        problems[MATRIX_DOC] = [f"the matrix has no row for {', '.join(missing)}"]
        return problems, mentions
    for path, text in sorted(files.items()):
        for component, patterns in PATTERNS.items():
            for p in patterns:
                for m in re.finditer(p, text):
                    mentions[path] = mentions.get(path, 0) + 1
                    if not agrees(m.group(1), want[component]):
                        line = text.count("\n", 0, m.start()) + 1
                        problems.setdefault(path, []).append(
                            f"line {line}: {m.group(0)!r} names {component} {m.group(1)}, the matrix {want[component]}")
    for path, version in terraform_kubernetes(files):
        mentions[path] = mentions.get(path, 0) + 1
        if version != want["Kubernetes"]:
            problems.setdefault(path, []).append(
                f"kubernetes_version {version}, the matrix names Kubernetes {want['Kubernetes']}")
    return problems, mentions


def repository_files():
    p = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    files = {}
    for rel in p.stdout.splitlines():
        path = ROOT / rel
        if rel.startswith(SKIP) or path.suffix not in SUFFIXES or not path.is_file():
            continue
        try:
            files[rel] = path.read_text()
        except UnicodeDecodeError:
            continue
    return files


def main():
    files = repository_files()
    problems, mentions = check(files)
    passed = failed = 0
    print(f"matrix ({MATRIX_DOC}): {matrix(files[MATRIX_DOC])}")
    for path in sorted(set(mentions) | set(problems)):
        if path in problems:
            failed += 1
            print(f"FAIL {path}:")
            for p in problems[path]:
                print(f"       {p}")
        else:
            passed += 1
            print(f"ok   {path} ({mentions[path]} version mentions agree)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


def self_test():
    """Each file edited to name another version must be caught, with the version named."""
    files = repository_files()
    cases = [
        ("terraform/README.md", "ref=v0.19.0", "ref=v0.17.0", "Katib v0.17.0"),
        ("docs/deploy.md", "ref=v0.19.0", "ref=v0.18.0", "Katib v0.18.0"),
        ("terraform/README.md", "mpi-operator/v0.8.2/deploy", "mpi-operator/v0.5.0/deploy", "MPI Operator v0.5.0"),
        ("deploy/pipelines/train-component.yaml", "sdkVersion: kfp-2.15.2", "sdkVersion: kfp-2.7.0", "KFP SDK 2.7.0"),
        ("terraform/variables.tf", 'default     = "1.34"', 'default     = "1.32"', "kubernetes_version 1.32"),
        ("terraform/README.md", "PIPELINE_VERSION=2.15.0", "PIPELINE_VERSION=2.2.0", "Kubeflow Pipelines 2.2.0"),
        ("proto/katib/v1beta1/api.proto", "Katib v0.19.0", "Katib v0.17.0", "Katib v0.17.0"),
        ("docs/deploy.md", "a Kubeflow 1.11.0 platform", "a Kubeflow 1.10.0 platform", "Kubeflow 1.10.0"),
    ]
    passed = failed = 0
    for path, old, new, expect in cases:
        if old not in files.get(path, ""):
            failed += 1
            print(f"FAIL self-test: {path} no longer contains {old!r}; update the case")
            continue
        broken = dict(files)
        broken[path] = files[path].replace(old, new, 1)
        problems, _ = check(broken)
        hit = [p for p in problems.get(path, []) if expect in p]
        if hit:
            passed += 1
            print(f"ok   catches {path} naming {new!r}: {hit[0]}")
        else:
            failed += 1
            print(f"FAIL misses {path} naming {new!r} (problems: {problems.get(path)})")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(self_test() if sys.argv[1:] == ["--self-test"] else main())
