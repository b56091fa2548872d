#!/usr/bin/env node
// check-manifests: checks Kubernetes objects offline, before a cluster sees them.
//
//   kubectl kustomize deploy/k8s/overlays/dev | node deploy/tools/check-manifests.js
//   node deploy/tools/check-manifests.js a.yaml b.yaml      (multi-document YAML; "-" is stdin)
//
// Every object gets two checks (a custom resource, the first only):
//   - its schema, from kubernetes-models: types, required fields, formats (quantities,
//     int-or-string). An apiVersion/kind it does not know is an error, not a skip: a check
//     that skips what it does not know passes on a typo in `kind`.
//   - unknown fields, from @kubernetes/client-node's generated models. The schemas above allow
//     fields they do not declare, so a misspelt optional field (`servce:`) would pass, and the
//     API server drops or rejects it: either way the setting never takes effect.
//
// Prints one line per object ("Deployment shoal: ok", or one line per problem). Exits 1 if any
// object has a problem or the input holds no object at all, 2 if the check itself broke.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as clientNode from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';

const require = createRequire(import.meta.url);

// Custom resources the manifests use, with their schemas (@kubernetes-models/prometheus-operator).
// Their schemas are checked like the built-in kinds'; unknown fields are not (the client models
// that find those cover built-in kinds only), and the report says so.
const { ServiceMonitor } = await import(
  '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor'
);
const { PrometheusRule } = await import(
  '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule'
);
const CUSTOM_RESOURCES = new Map(
  [ServiceMonitor, PrometheusRule].map((model) => [`${model.apiVersion} ${model.kind}`, model]),
);

// YAML 1.1, as kubectl's decoder (go-yaml v2) reads a manifest: `on` and `yes` are booleans and
// 0755 is octal. That decoder keeps timestamps and 1:20 (base 60 in YAML 1.1) as strings, so
// those two tags are left out.
const YAML_OPTIONS = {
  version: '1.1',
  customTags: (tags) =>
    tags.filter((t) => t.tag !== 'tag:yaml.org,2002:timestamp' && t.format !== 'TIME'),
};

function main(args) {
  const inputs = args.length === 0 ? ['-'] : args;
  let objects = 0;
  let failed = false;
  for (const input of inputs) {
    const where = input === '-' ? '' : `${input}: `;
    const report = (what, problems) => {
      if (problems.length === 0) console.log(`${where}${what}: ok`);
      for (const p of problems) console.log(`${where}${what}: ${p}`);
      failed ||= problems.length > 0;
    };
    let text;
    try {
      text = readFileSync(input === '-' ? 0 : input, 'utf8');
    } catch (e) {
      report('input', [`cannot read: ${e.message}`]);
      continue;
    }
    for (const [i, doc] of parseAllDocuments(text, YAML_OPTIONS).entries()) {
      if (doc.errors.length > 0) {
        const messages = doc.errors.map((e) => e.message.split('\n')[0].replace(/:$/, ''));
        report(`document ${i + 1}`, messages.map((m) => `YAML: ${m}`));
        continue;
      }
      const obj = doc.toJS();
      if (obj === null) continue; // an empty document, as a trailing `---` makes
      objects += 1;
      report(describe(obj, i), checkObject(obj));
    }
  }
  // An empty render must not pass as a clean one.
  if (objects === 0 && !failed) {
    console.log('no Kubernetes object in the input');
    failed = true;
  }
  return failed ? 1 : 0;
}

function describe(obj, index) {
  const name = obj?.metadata?.name;
  const kind = typeof obj?.kind === 'string' ? obj.kind : 'object';
  return typeof name === 'string' ? `${kind} ${name}` : `${kind} (document ${index + 1})`;
}

function checkObject(obj) {
  if (!isMapping(obj)) return ['not a mapping'];
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
    return ['apiVersion and kind must be strings'];
  }
  const Custom = CUSTOM_RESOURCES.get(`${apiVersion} ${kind}`);
  if (Custom) return schemaProblems(Custom, obj);
  const Model = schemaModel(apiVersion, kind);
  if (!Model) return [`unknown apiVersion/kind: ${apiVersion} ${kind}`];
  const typeName = clientModelName(apiVersion, kind);
  if (!typeName) return [`@kubernetes/client-node has no model for ${apiVersion} ${kind}`];
  return [...schemaProblems(Model, obj), ...unknownFields(obj, typeName, [])];
}

// --- Schema (kubernetes-models) -----------------------------------------------------------

const API_VERSION = /^(?:[a-z0-9][-a-z0-9.]*\/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?$/;
const KIND = /^[A-Z][A-Za-z0-9]*$/;

// kubernetes-models has one module per apiVersion and kind: kubernetes-models/apps/v1/Deployment.
function schemaModel(apiVersion, kind) {
  // The pattern keeps the module path inside the package (no "..", no absolute path).
  if (!API_VERSION.test(apiVersion) || !KIND.test(kind)) return undefined;
  let path;
  try {
    path = require.resolve(`kubernetes-models/${apiVersion}/${kind}`);
  } catch (e) {
    if (e.code === 'MODULE_NOT_FOUND') return undefined;
    throw e;
  }
  const Model = require(path)[kind];
  // Parts of objects (Container, ObjectMeta) have modules too, but no apiVersion or kind.
  return Model?.apiVersion === apiVersion && Model?.kind === kind ? Model : undefined;
}

function schemaProblems(Model, obj) {
  try {
    new Model(obj).validate();
    return [];
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;
    // One line per path. A quantity that is neither a number nor a quantity string fails three
    // ways (type, format, oneOf): the oneOf line only says that the other two are alternatives.
    const byPath = new Map();
    for (const err of e.errors) {
      const path = formatPath(err.instancePath.split('/').slice(1).map(unescapePointer));
      const message =
        err.keyword === 'required'
          ? `missing required field ${err.params.missingProperty}`
          : err.message;
      byPath.set(path, [...(byPath.get(path) ?? []), { keyword: err.keyword, message }]);
    }
    const choice = (x) => x.keyword === 'oneOf' || x.keyword === 'anyOf';
    return [...byPath].map(([path, errs]) => {
      const specific = errs.filter((x) => !choice(x));
      const messages = [...new Set((specific.length > 0 ? specific : errs).map((x) => x.message))];
      return `${path || '(object)'}: ${messages.join(errs.some(choice) ? ', or ' : '; ')}`;
    });
  }
}

function unescapePointer(segment) {
  const s = segment.replaceAll('~1', '/').replaceAll('~0', '~');
  // An array index (a map key made of digits, which a pointer cannot tell apart, shows as one too).
  return /^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s;
}

// --- Unknown fields (@kubernetes/client-node) ----------------------------------------------

// Types in the models' attributeTypeMap with no fields of their own. IntOrString and V1MicroTime
// are aliases (number or string; string); `any` is free-form (RawExtension, JSON).
const LEAF_TYPES = new Set([
  'string', 'number', 'boolean', 'Date', 'any', 'IntOrString', 'V1MicroTime',
]);

// The generator names a model after its version and kind (V1Deployment), and puts the group in
// front only where two groups have the same kind (CoreV1Event, EventsV1Event).
function clientModelName(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['core', apiVersion];
  const capital = (s) => s[0].toUpperCase() + s.slice(1);
  const plain = `${capital(version)}${kind}`;
  const names = [`${capital(group.split('.')[0])}${plain}`, plain];
  return names.find((n) => fieldTypes(n, { optional: true })?.has('kind'));
}

const fieldTypeCache = new Map();

// Field name (as written in YAML) -> type name, for one model.
function fieldTypes(typeName, { optional = false } = {}) {
  if (!fieldTypeCache.has(typeName)) {
    const attributes = clientNode[typeName]?.attributeTypeMap;
    const fields = attributes && new Map(attributes.map((a) => [a.baseName, a.type]));
    fieldTypeCache.set(typeName, fields);
  }
  const fields = fieldTypeCache.get(typeName);
  // A type this walk does not know would otherwise pass everything below it unchecked.
  if (!fields && !optional) throw new Error(`no @kubernetes/client-node model named ${typeName}`);
  return fields;
}

// Yields "path: unknown field" for each field that `type` does not have, at any depth. A value of
// the wrong shape (a string where a list belongs) is left to the schema check, which reports it.
function* unknownFields(value, type, path) {
  if (value === null || typeof value !== 'object' || LEAF_TYPES.has(type)) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) {
      for (const [i, item] of value.entries()) yield* unknownFields(item, array[1], [...path, i]);
    }
    return;
  }
  if (Array.isArray(value)) return;
  // Maps (labels, annotations, ConfigMap data, resource quantities): any key is allowed.
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    for (const [key, item] of Object.entries(value)) {
      yield* unknownFields(item, map[1], [...path, key]);
    }
    return;
  }
  const fields = fieldTypes(type);
  for (const [key, item] of Object.entries(value)) {
    const fieldType = fields.get(key);
    if (fieldType === undefined) yield `${formatPath([...path, key])}: unknown field`;
    else yield* unknownFields(item, fieldType, [...path, key]);
  }
}

// ["spec", "containers", 0, "ports"] -> spec.containers[0].ports; keys that are not plain names,
// such as annotation keys, are quoted: metadata.annotations["prometheus.io/port"].
function formatPath(segments) {
  return segments
    .map((s, i) => {
      if (typeof s === 'number') return `[${s}]`;
      if (/^[A-Za-z_$][\w$-]*$/.test(s)) return i === 0 ? s : `.${s}`;
      return `[${JSON.stringify(s)}]`;
    })
    .join('');
}

function isMapping(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  console.error(`check-manifests: internal error: ${e.stack ?? e}`);
  process.exitCode = 2;
}
