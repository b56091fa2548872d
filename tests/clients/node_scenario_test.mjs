// Runs tests/clients/scenario.json through the Node client against a fresh shoald.
//
//   npm ci --prefix clients/node
//   node tests/clients/node_scenario_test.mjs --shoald build/service/shoald

import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual, parseArgs } from 'node:util';

import shoal from '../../clients/node/index.js';

const { ShoalClient, ShoalError, status: grpcStatus } = shoal;

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const STEP_TIMEOUT_MS = 10_000;
const EXIT_TIMEOUT_MS = 20_000; // above shoald's default shutdown grace (10 s)

class TestFailure extends Error {}

function fail(message) {
  throw new TestFailure(message);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TestFailure(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Starts shoald on a free port; resolves once it prints the address it listens on.
async function startShoald(binary, extraArgs = []) {
  try {
    accessSync(binary, constants.X_OK);
  } catch {
    fail(`no shoald at ${binary}: build it, or pass --shoald PATH`);
  }
  const child = spawn(binary, ['--listen=127.0.0.1:0', '--metrics_listen=127.0.0.1:0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr = [];
  createInterface({ input: child.stderr }).on('line', (line) => stderr.push(line));
  const exited = once(child, 'exit');
  const listening = (async () => {
    for await (const line of createInterface({ input: child.stdout })) {
      const match = /^shoald listening on (\S+)$/.exec(line);
      if (match) return match[1];
    }
    const [code, signal] = await exited;
    fail(`shoald exited (${signal ?? code}) before listening:\n${stderr.join('\n')}`);
  })();
  try {
    const address = await withTimeout(listening, STEP_TIMEOUT_MS, 'shoald start');
    return { child, address, stderr, exited };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

// Each op returns the observed values, named as the scenario's expectations name them.
const ops = {
  async put(client, step) {
    const result = await client.put(step.key, step.value, {
      ttlMs: step.ttl_ms,
      ifAbsent: step.if_absent,
      ifRevision: step.if_revision,
    });
    return {
      applied: result.applied,
      revision: result.revision,
      current_value: result.current?.value.toString(),
    };
  },

  async get(client, step) {
    const entry = await client.get(step.key);
    if (!entry) return { found: false };
    return {
      found: true,
      value: entry.value.toString(),
      version: entry.version,
      create_revision: entry.createRevision,
      mod_revision: entry.modRevision,
    };
  },

  async incr(client, step) {
    const value = await client.increment(step.key, step.delta);
    // increment() answers with the value only; the key's last write is the increment's revision
    // (the scenario runs alone against its own server).
    const entry = await client.get(step.key);
    return { value, revision: entry?.modRevision };
  },

  async range(client, step) {
    const keys = [];
    const values = [];
    let pages = 0;
    const listing = client.rangePages({ prefix: step.prefix }, { pageSize: step.page_size });
    for await (const page of listing) {
      pages++;
      for (const entry of page.entries) {
        keys.push(entry.key.toString());
        values.push(entry.value.toString());
      }
    }
    return { keys, values, pages };
  },

  async delete(client, step) {
    const { applied, deleted } = await client.delete(step.key);
    return { applied, deleted };
  },

  async delete_prefix(client, step) {
    return { deleted: await client.deletePrefix(step.prefix) };
  },

  async sleep_ms(client, step) {
    await sleep(step.ms);
    return {};
  },

  async watch(client, step) {
    const events = [];
    for await (const event of client.watch(step.prefix, { fromRevision: step.from_revision })) {
      events.push([event.type, event.key.toString(), event.revision]);
      if (events.length === step.count) break; // stops the watch: the client cancels the call
    }
    return { events: sortDeleteRuns(events) };
  },
};

// A prefix delete removes its keys in no particular order: within each run of consecutive DELETE
// events, put the keys in order and leave the revisions where they are.
function sortDeleteRuns(events) {
  const out = events.map((event) => [...event]);
  for (let i = 0; i < out.length; ) {
    if (out[i][0] !== 'DELETE') {
      i++;
      continue;
    }
    let end = i;
    while (end < out.length && out[end][0] === 'DELETE') end++;
    const keys = out.slice(i, end).map(([, key]) => key).sort();
    keys.forEach((key, k) => (out[i + k][1] = key));
    i = end;
  }
  return out;
}

function describe(step) {
  const target = step.key ?? step.prefix ?? (step.ms !== undefined ? `${step.ms} ms` : '');
  return `${step.op} ${target}`.trim();
}

async function runScenario(client, steps) {
  for (const [index, step] of steps.entries()) {
    const label = `step ${String(index + 1).padStart(2)}: ${describe(step)}`;
    const op = ops[step.op] ?? fail(`${label}: unknown op "${step.op}"`);
    const actual = await withTimeout(op(client, step), STEP_TIMEOUT_MS, label);
    const expected = { ...step.expect };
    if (expected.events) expected.events = sortDeleteRuns(expected.events);
    for (const [field, want] of Object.entries(expected)) {
      if (!(field in actual)) fail(`${label}: no checker for the expectation "${field}"`);
      if (!isDeepStrictEqual(actual[field], want)) {
        const got = JSON.stringify(actual[field]);
        fail(`${label}: ${field}: expected ${JSON.stringify(want)}, got ${got}`);
      }
    }
    console.log(`ok   ${label}`);
  }
}

// A compare-and-swap transfer between two keys in one Txn, then the same Txn again: it fails.
async function checkTxn(client) {
  const a = await client.put('txn/a', '10');
  await client.put('txn/b', '0');
  const request = {
    compares: [{ key: 'txn/a', target: 'MOD_REVISION', result: 'EQUAL', number: a.revision }],
    success: [{ put: { key: 'txn/a', value: '5' } }, { put: { key: 'txn/b', value: '5' } }],
    failure: [{ get: { key: 'txn/a' } }],
  };
  const first = await client.txn(request);
  if (!first.succeeded || first.revision === 0) fail(`txn: ${JSON.stringify(first)}`);
  const revisions = [(await client.get('txn/a')).modRevision, (await client.get('txn/b')).modRevision];
  if (!isDeepStrictEqual(revisions, [first.revision, first.revision])) {
    fail(`txn: the keys' revisions ${revisions} are not the Txn's ${first.revision}`);
  }
  const again = await client.txn(request);
  if (again.succeeded || again.revision !== 0 || again.results[0].get.entry.value.toString() !== '5') {
    fail(`txn: the failure branch did not run as expected: ${JSON.stringify(again)}`);
  }
  console.log('ok   txn: compare-and-swap across two keys, then the failure branch');
}

// Many operations on one Pipeline stream: results in order, a failure in its place.
async function checkPipeline(client) {
  const ops = [];
  for (let i = 0; i < 200; i += 1) {
    ops.push({ put: { key: `pipe/${i}`, value: String(i) } }, { get: { key: `pipe/${i}` } });
  }
  ops.push({ increment: { key: 'pipe/1', delta: 1 } }, { get: { key: '' } });
  const results = [];
  for await (const r of client.pipeline(ops, { window: 8 })) results.push(r);
  if (results.length !== ops.length) fail(`pipeline: ${results.length} results for ${ops.length}`);
  for (let i = 0; i < 200; i += 1) {
    const value = results[2 * i + 1].get?.entry?.value?.toString();
    if (value !== String(i)) fail(`pipeline: result ${2 * i + 1} is ${value}, expected ${i}`);
  }
  if (String(results[400].increment?.value) !== '2') fail(`pipeline: increment ${JSON.stringify(results[400])}`);
  if (results[401].error?.code !== grpcStatus.INVALID_ARGUMENT) {
    fail(`pipeline: the empty key gave ${JSON.stringify(results[401])}`);
  }
  console.log('ok   pipeline: 402 operations on one stream, in order, a failure in its place');
}

async function checkFailingCall(client) {
  const label = 'error: get of an empty key';
  try {
    await client.get('');
  } catch (err) {
    if (!(err instanceof ShoalError)) fail(`${label}: threw ${err?.name}, not a ShoalError`);
    if (err.code !== grpcStatus.INVALID_ARGUMENT) {
      fail(`${label}: expected INVALID_ARGUMENT, got ${err.codeName}`);
    }
    console.log(`ok   ${label} -> ${err.message}`);
    return;
  }
  fail(`${label}: the call succeeded`);
}

// The watch step stopped iterating: the client must have canceled the call. The server notices at
// its next progress tick (250 ms).
async function checkWatchesCanceled(client) {
  const label = 'watch canceled on the server';
  const deadline = Date.now() + 3000;
  for (;;) {
    const { watchers } = await client.status();
    if (watchers === 0) break;
    if (Date.now() > deadline) fail(`${label}: status still reports ${watchers} watcher(s)`);
    await sleep(50);
  }
  console.log(`ok   ${label}`);
}

// Expects `promise` to fail with a ShoalError of `code`.
async function expectCode(promise, code, label) {
  try {
    await promise;
  } catch (err) {
    if (!(err instanceof ShoalError)) fail(`${label}: threw ${err?.name}, not a ShoalError`);
    if (err.code !== code) fail(`${label}: expected code ${code}, got ${err.codeName}`);
    console.log(`ok   ${label} -> ${err.codeName}`);
    return;
  }
  fail(`${label}: the call succeeded`);
}

// A second shoald with TLS, optional client certificates and auth on (make_test_certs.sh): the
// client's tls and token options against it.
async function checkSecured(binary) {
  const dir = mkdtempSync(path.join(tmpdir(), 'shoal-node-tls-'));
  execFileSync(path.join(here, 'make_test_certs.sh'), [dir]);
  const file = (name) => readFileSync(path.join(dir, name));
  const server = await startShoald(binary, [
    `--tls_cert_file=${dir}/server.crt`,
    `--tls_key_file=${dir}/server.key`,
    `--tls_client_ca_file=${dir}/ca.crt`,
    '--tls_client_auth=optional',
    `--config=${dir}/auth.json`,
  ]);
  const tls = { rootCertificates: file('ca.crt') };
  const root = new ShoalClient(server.address, { tls, token: file('root.token').toString().trim() });
  const anonymous = new ShoalClient(server.address, { tls, token: '' });
  const reader = new ShoalClient(server.address, { tls, token: file('reader.token').toString().trim() });
  const byCertificate = new ShoalClient(server.address, {
    tls: { ...tls, certificateChain: file('client.crt'), privateKey: file('client.key') },
    token: '',
  });
  const untrusting = new ShoalClient(server.address, { tls: { rootCertificates: null }, token: '' });
  try {
    const put = await root.put('app/x', 'secret');
    if (!put.applied) fail('secured: a put with the root token was not applied');
    console.log('ok   secured: TLS and a token: put');
    await expectCode(anonymous.get('app/x'), grpcStatus.UNAUTHENTICATED, 'secured: no token');
    await expectCode(reader.put('app/x', 'v'), grpcStatus.PERMISSION_DENIED, 'secured: read-only');
    const got = await byCertificate.get('app/x');
    if (got?.value.toString() !== 'secret') fail('secured: client-one could not read app/x');
    console.log('ok   secured: a client certificate as the identity: get');
    await expectCode(untrusting.get('app/x'), grpcStatus.UNAVAILABLE, 'secured: a CA not trusted');
  } catch (err) {
    server.child.kill('SIGKILL');
    throw err;
  } finally {
    for (const c of [root, anonymous, reader, byCertificate, untrusting]) c.close();
    rmSync(dir, { recursive: true, force: true });
  }
  await stopShoald(server);
}

async function stopShoald({ child, exited }) {
  child.kill('SIGTERM');
  const [code, signal] = await withTimeout(exited, EXIT_TIMEOUT_MS, 'shoald shutdown');
  if (code !== 0) fail(`shoald exited with ${signal ?? code} after SIGTERM, expected 0`);
  console.log('ok   shoald drained and exited 0');
}

async function main() {
  const { values: args } = parseArgs({
    options: { shoald: { type: 'string', default: path.join(repoRoot, 'build/service/shoald') } },
  });
  const scenario = JSON.parse(readFileSync(path.join(here, 'scenario.json'), 'utf8'));
  const server = await startShoald(args.shoald);
  const client = new ShoalClient(server.address);
  try {
    await runScenario(client, scenario.steps);
    await checkTxn(client);
    await checkPipeline(client);
    await checkFailingCall(client);
    await checkWatchesCanceled(client);
  } catch (err) {
    server.child.kill('SIGKILL');
    if (err instanceof ShoalError) console.error(`shoald's log:\n${server.stderr.join('\n')}`);
    throw err;
  } finally {
    client.close();
  }
  await stopShoald(server);
  await checkSecured(args.shoald);
  console.log(`PASS: ${scenario.steps.length} scenario steps against ${server.address}`);
}

main().catch((err) => {
  console.error(`FAIL ${err instanceof TestFailure ? err.message : (err?.stack ?? err)}`);
  process.exit(1);
});
