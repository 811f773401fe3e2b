"""Validates an object against a CustomResourceDefinition's structural openAPIV3Schema, the way
the API server treats a custom resource: types, formats, enums, patterns, required fields,
int-or-string, and unknown fields, which the server would prune without a word (so a typo
such as `slotPerWorker` silently does nothing) and which are errors here.

    errors = validate(obj, crd_version_schema(crd, "v2beta1"))

Only the keywords structural schemas use are known (type, properties, required, items,
additionalProperties, enum, format, pattern, anyOf, x-kubernetes-int-or-string,
x-kubernetes-preserve-unknown-fields); metadata fields are the API server's own and are
accepted as they are. Returns a list of "path: problem" strings, empty when the object is valid.
"""
import re

INT_FORMATS = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}


def crd_version_schema(crd, version):
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise KeyError(f"{crd['metadata']['name']} has no version {version}")


def validate(value, schema, path=""):
    errors = []
    _check(value, schema, path or ".", errors)
    return errors


def _type_ok(value, kind):
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    return True


def _check(value, schema, path, errors):
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or _type_ok(value, "integer")):
            errors.append(f"{path}: must be an integer or a string, got {value!r}")
        return
    if "anyOf" in schema and "type" not in schema:
        branch_errors = [validate(value, s, path) for s in schema["anyOf"]]
        if all(branch_errors):
            errors.append(f"{path}: matches none of anyOf: {branch_errors[0][0]}")
        return
    kind = schema.get("type")
    if kind and not _type_ok(value, kind):
        errors.append(f"{path}: must be of type {kind}, got {type(value).__name__} {value!r}")
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if kind == "integer" and schema.get("format") in INT_FORMATS:
        lo, hi = INT_FORMATS[schema["format"]]
        if not lo <= value <= hi:
            errors.append(f"{path}: {value} is out of {schema['format']} range")
    if kind == "string" and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']!r}")
    if kind == "array" and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{i}]", errors)
    if kind == "object":
        _check_object(value, schema, path, errors)


def _check_object(value, schema, path, errors):
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    for r in schema.get("required") or []:
        if r not in value:
            errors.append(f"{path}: required field {r!r} is missing")
    for k, v in value.items():
        where = f"{path}.{k}" if path != "." else f".{k}"
        if props is not None and k in props:
            _check(v, props[k], where, errors)
        elif isinstance(extra, dict):
            _check(v, extra, where, errors)
        elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
            continue
        elif props is None and path.endswith("metadata"):
            continue  # ObjectMeta: the API server's own schema, not the CRD's
        else:
            errors.append(f"{where}: unknown field (the API server would drop it)")
