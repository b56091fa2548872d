#!/usr/bin/env node
// same-objects: two renderings of one overlay describe the same objects.
//
//   node deploy/tools/same-objects.js debian.yaml current.yaml
//
// deploy/check.sh renders every overlay with each kubectl it has (Debian 12's 1.20, whose
// kustomize is 2.0.3, and a current one) and requires the same objects from both. Order and
// formatting may differ; so may an empty map that one version writes and the other leaves out
// (kustomize 2.0.3 writes `annotations: {}` on a replaced ConfigMap). Anything else is a
// difference: printed as the object and the first path that differs, exit 1.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

// Drops empty maps, recursively: they mean the same as an absent field to the API server.
function normalize(value) {
  if (Array.isArray(value)) return value.map(normalize);
  if (value === null || typeof value !== 'object') return value;
  const out = {};
  for (const key of Object.keys(value).sort()) {
    const v = normalize(value[key]);
    const emptyMap = v !== null && typeof v === 'object' && !Array.isArray(v) &&
      Object.keys(v).length === 0;
    if (!emptyMap) out[key] = v;
  }
  return out;
}

function objects(file) {
  const byName = new Map();
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const o = doc.toJSON();
    if (o === null) continue;
    byName.set(`${o.kind} ${o.metadata?.namespace ?? ''}/${o.metadata?.name}`, normalize(o));
  }
  return byName;
}

function firstDifference(a, b, path) {
  if (JSON.stringify(a) === JSON.stringify(b)) return null;
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference(a[key], b[key], `${path}/${key}`);
      if (d) return d;
    }
  }
  return `${path || '/'}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
}

const [fileA, fileB] = process.argv.slice(2);
if (!fileA || !fileB) {
  console.error('usage: same-objects.js A.yaml B.yaml');
  process.exit(2);
}
const a = objects(fileA);
const b = objects(fileB);
let differences = 0;
for (const name of new Set([...a.keys(), ...b.keys()])) {
  const d = !a.has(name) ? `only in ${fileB}` : !b.has(name) ? `only in ${fileA}`
    : firstDifference(a.get(name), b.get(name), '');
  if (d) {
    console.log(`${name}: ${d}`);
    differences++;
  }
}
if (a.size === 0) {
  console.log(`${fileA}: no objects`);
  differences++;
}
if (differences === 0) console.log(`same ${a.size} objects`);
process.exit(differences === 0 ? 0 : 1);
