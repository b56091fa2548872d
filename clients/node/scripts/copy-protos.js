// Runs before `npm pack` / `npm publish`: copies the repository's protos (proto/shoal/v1) into
// the package, so that an installed client needs no checkout of Shoal.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const from = path.resolve(__dirname, '../../../proto/shoal');
const to = path.resolve(__dirname, '../proto/shoal');
if (!fs.existsSync(path.join(from, 'v1/kv.proto'))) {
  console.error(`copy-protos: no protos at ${from}`);
  process.exit(1);
}
fs.rmSync(to, { recursive: true, force: true });
fs.cpSync(from, to, { recursive: true });
console.log(`copy-protos: ${from} -> ${to}`);
