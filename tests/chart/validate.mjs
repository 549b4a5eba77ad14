// Validates rendered Kubernetes manifests (multi-document YAML files given as arguments)
// against the Kubernetes, KEDA and Prometheus Operator schemas that the kubernetes-models
// packages ship, in two passes:
//   1. each object through its model's validate(): the JSON Schema of the API (OpenAPI of
//      Kubernetes, the KEDA and Prometheus Operator CRDs), compiled by ajv: types, required
//      fields, enums, formats;
//   2. all objects as object literals typed by the same packages' declarations, through the
//      TypeScript compiler: its excess-property check refuses every field the API does not
//      have, at any depth (the OpenAPI schemas leave additionalProperties open, as the API
//      server does; kubectl and Helm's server-side apply do not).
// A kind no package describes is an error, so nothing passes unchecked. Exit 1 on any error.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

// apiVersion -> the package subpath that exports its models (and their I<Kind> interfaces).
function modulePath(apiVersion) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "keda.sh") return `@kubernetes-models/keda/keda.sh/${version}`;
  if (group === "monitoring.coreos.com")
    return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}`;
  return group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
}

const errors = [];
const objects = [];
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      errors.push(`${file}: YAML: ${doc.errors[0].message}`);
      continue;
    }
    const obj = doc.toJS();
    if (obj == null) continue;
    const where = `${file}: ${obj.kind} ${obj.metadata?.name}`;
    if (!obj.apiVersion || !obj.kind) {
      errors.push(`${where}: no apiVersion/kind`);
      continue;
    }
    let mod;
    try {
      mod = await import(modulePath(obj.apiVersion));
    } catch {
      errors.push(`${where}: no schema for apiVersion ${obj.apiVersion}`);
      continue;
    }
    const Model = mod[obj.kind];
    if (typeof Model !== "function" || typeof Model.is !== "function") {
      errors.push(`${where}: no schema for ${obj.apiVersion} ${obj.kind}`);
      continue;
    }
    try {
      new Model(obj).validate();
    } catch (e) {
      errors.push(`${where}: ${e.message}`);
    }
    objects.push({ where, obj, module: modulePath(obj.apiVersion) });
  }
}

// Pass 2: one TypeScript file declaring every object with its interface.
if (objects.length) {
  // Beside this script, so that the packages resolve from its node_modules.
  const dir = mkdtempSync(join(here, ".objects-"));
  try {
    // Object i starts at line first[i] (0-based), which maps a diagnostic back to it.
    const first = [];
    let line = 0;
    const parts = objects.map(({ obj, module }, i) => {
      const part = `import type { I${obj.kind} as T${i} } from "${module}";\n` +
        `export const o${i}: T${i} = ${JSON.stringify(obj, null, 1)};\n`;
      first.push(line);
      line += part.split("\n").length - 1;
      return part;
    });
    writeFileSync(join(dir, "objects.ts"), parts.join(""));
    const ts = require("typescript");
    const program = ts.createProgram([join(dir, "objects.ts")], {
      noEmit: true, strict: true, skipLibCheck: true, types: [],
      module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022, typeRoots: [],
    });
    const diags = ts.getPreEmitDiagnostics(program);
    for (const d of diags) {
      const msg = ts.flattenDiagnosticMessageText(d.messageText, "\n");
      let where = "objects.ts";
      if (d.file && d.start !== undefined) {
        const { line: l } = d.file.getLineAndCharacterOfPosition(d.start);
        let i = 0;
        while (i + 1 < first.length && first[i + 1] <= l) i++;
        where = `${objects[i].where} (line ${l - first[i]})`;
      }
      errors.push(`${where}: ${msg.split("\n").slice(-1)[0]}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const e of errors) console.log(`FAIL: ${e}`);
console.log(`${objects.length} objects checked, ${errors.length} errors`);
process.exit(errors.length ? 1 : 0);
