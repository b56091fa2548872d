#!/usr/bin/env bash
# The Node client as a user installs it: `npm pack` (the tarball must carry the protos and the
# TypeScript declarations), installed into a scratch project outside Shoal's tree with
# TypeScript; a program type-checked in strict mode (and a wrong one that must not pass), then
# run against a real shoald.
#
#   tests/clients/node_package_test.sh build/service/shoald
set -euo pipefail

shoald=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/shoal-node-package.XXXXXX)
pid=
cleanup() {
  [[ -z $pid ]] || kill -KILL "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL $*" >&2
  exit 1
}
# shellcheck source=tests/clients/start_shoald.sh
source "$(dirname "$0")/start_shoald.sh"

# A copy of the package and the protos beside it, as in the tree (prepack copies them in).
mkdir -p "$tmp/src/clients"
cp -r "$root/proto" "$tmp/src/proto"
tar -C "$root/clients" --exclude=node_modules --exclude=node/proto -cf - node | tar -C "$tmp/src/clients" -xf -
(cd "$tmp/src/clients/node" && npm pack --silent --pack-destination "$tmp" >/dev/null)
tarball=$(ls "$tmp"/shoal-client-*.tgz)
tar -tzf "$tarball" >"$tmp/contents"
for f in package/index.js package/index.d.ts package/proto/shoal/v1/kv.proto \
  package/proto/shoal/v1/admin.proto; do
  grep -qx "$f" "$tmp/contents" || fail "the tarball lacks $f"
done
echo "npm pack: $(basename "$tarball") carries index.d.ts and the protos"

mkdir "$tmp/consumer"
cd "$tmp/consumer"
cat >package.json <<'JSON'
{ "name": "consumer", "version": "1.0.0", "private": true }
JSON
npm install --silent --no-audit --no-fund --prefer-offline "$tarball" typescript@5.4.5 \
  @types/node@20.9.5
cat >tsconfig.json <<'JSON'
{ "compilerOptions": { "strict": true, "module": "commonjs", "target": "es2022",
  "outDir": "out", "types": ["node"] }, "files": ["app.ts"] }
JSON
cat >app.ts <<'TS'
import { ShoalClient, ShoalError, Entry, WatchEvent } from 'shoal-client';

async function main(address: string): Promise<void> {
  const client = new ShoalClient(address);
  const put = await client.put('pkg/k', 'hello');
  const entry: Entry | null = await client.get('pkg/k');
  console.log('get', entry?.value.toString());
  console.log('incr', await client.increment('pkg/n', 41), await client.increment('pkg/n'));
  const keys: string[] = [];
  for await (const e of client.range({ prefix: 'pkg/' })) keys.push(e.key.toString());
  console.log('range', keys.join(','));
  for await (const ev of client.watch('pkg/k', { prefix: false, fromRevision: put.revision })) {
    const seen: WatchEvent = ev;
    console.log('watch', seen.type, seen.value?.toString(), seen.revision === put.revision);
    break;
  }
  try {
    await client.put('', 'x');
  } catch (err) {
    if (err instanceof ShoalError) console.log('error', err.codeName);
  }
  console.log('status keys', (await client.status()).keys);
  client.close();
}

main(process.argv[2]).catch((err) => {
  console.error(err);
  process.exit(1);
});
TS
npx tsc -p . || fail "the consumer does not type-check"
# The declarations must be what tsc checks against: a wrong call must not pass.
sed 's/client.get(.pkg\/k.)/client.get(42)/' app.ts >wrong.ts
npx tsc --noEmit --strict --types node wrong.ts >wrong.out 2>&1 &&
  fail "a call with a number for a key type-checked: the declarations are not used"
grep -q "not assignable to parameter of type 'Data'" wrong.out ||
  fail "the wrong call failed for another reason: $(cat wrong.out)"
echo "tsc --strict: the consumer type-checks; a wrong call does not"

start_shoald "$shoald" "$tmp"
got=$(node out/app.js "$address")
want=$'get hello\nincr 41 42\nrange pkg/k,pkg/n\nwatch PUT hello true\nerror INVALID_ARGUMENT\nstatus keys 2'
[[ $got == "$want" ]] || fail "the consumer printed:"$'\n'"$got"$'\n'"instead of:"$'\n'"$want"
kill -TERM "$pid"
wait "$pid" || fail "shoald did not exit 0 on SIGTERM"
pid=
echo "PASS the packed client, installed outside the tree, ran against shoald"
