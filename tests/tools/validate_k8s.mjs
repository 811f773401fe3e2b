// Validates Kubernetes objects against the OpenAPI schemas of the npm packages
// kubernetes-models (core types) and @kubernetes-models/prometheus-operator (ServiceMonitor).
//
//   node tests/tools/validate_k8s.mjs < objects.json
//
// stdin: a JSON array of {"source": "where it came from", "object": {...}}. Prints one line per
// object and exits 1 if any object is invalid or of a kind with no schema here.
//
// The schemas allow unknown fields (Kubernetes prunes them silently, which hides typos such
// as `readinessProbe.grcp`), so this also rejects every field the schema's validator never
// looked at: each object is wrapped in a Proxy that records which keys the validator reads.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const schemaDir = {
  core: path.join(path.dirname(require.resolve("kubernetes-models/package.json")), "_schemas"),
  prom: path.join(
    path.dirname(require.resolve("@kubernetes-models/prometheus-operator/package.json")),
    "_schemas",
  ),
};

// apiVersion/kind -> schema module. Extend when a new kind appears in the manifests.
function schemaFile(apiVersion, kind) {
  if (apiVersion === "monitoring.coreos.com/v1") {
    return path.join(schemaDir.prom, `MonitoringCoreosComV1${kind}.mjs`);
  }
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["core", apiVersion];
  const groupName = group.replace(/\.k8s\.io$/, "").replace(/(^|\.)([a-z])/g, (_, __, c) => c.toUpperCase());
  const ver = version.charAt(0).toUpperCase() + version.slice(1);
  return path.join(schemaDir.core, `IoK8sApi${groupName}${ver}${kind}.mjs`);
}

const seen = new WeakMap(); // target object -> Set of keys the validator read

function track(value) {
  if (value === null || typeof value !== "object") return value;
  const keys = new Set();
  const proxy = new Proxy(value, {
    get(target, key, receiver) {
      if (typeof key === "string") keys.add(key);
      return track(Reflect.get(target, key, receiver));
    },
    has(target, key) {
      if (typeof key === "string") keys.add(key);
      return Reflect.has(target, key);
    },
    getOwnPropertyDescriptor(target, key) {
      if (typeof key === "string") keys.add(key);
      return Reflect.getOwnPropertyDescriptor(target, key);
    },
  });
  seen.set(value, keys);
  return proxy;
}

// Keys that exist in `value` but were never read by the validator.
function unknownFields(value, at, out) {
  if (value === null || typeof value !== "object") return out;
  const keys = seen.get(value);
  for (const k of Object.keys(value)) {
    const where = Array.isArray(value) ? `${at}[${k}]` : `${at}.${k}`;
    if (!Array.isArray(value) && keys !== undefined && !keys.has(k)) out.push(where);
    else unknownFields(value[k], where, out);
  }
  return out;
}

const items = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const { source, object } of items) {
  const name = `${object?.kind ?? "?"} ${object?.metadata?.name ?? "?"} (${source})`;
  let validate;
  try {
    ({ validate } = await import(schemaFile(object.apiVersion, object.kind)));
  } catch {
    console.log(`FAIL ${name}: no schema for ${object.apiVersion} ${object.kind}`);
    failed++;
    continue;
  }
  const ok = validate(track(object));
  const problems = [];
  if (!ok) {
    for (const e of validate.errors) {
      const text = `${e.instancePath || "/"}: ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`;
      if (!problems.includes(text)) problems.push(text);
    }
  }
  for (const f of unknownFields(object, "", [])) {
    if (f === ".apiVersion" || f === ".kind") continue;
    problems.push(`${f}: unknown field`);
  }
  if (problems.length > 0) {
    console.log(`FAIL ${name}: ${problems.join("; ")}`);
    failed++;
  } else {
    console.log(`ok   ${name}`);
  }
}
process.exit(failed > 0 ? 1 : 0);
