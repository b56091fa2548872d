// The Node client on a replicated store: given every replica (a follower first), it follows the
// leader, and when the leader is killed (SIGKILL) it finds the next one. Three real replicas on
// loopback; Release builds only (CMake adds it there).
//
//   node tests/clients/node_failover_test.mjs --shoald build/service/shoald
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import shoal from '../../clients/node/index.js';

const { values: args } = parseArgs({ options: { shoald: { type: 'string' } } });

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function check(what, want, got) {
  if (want !== got) {
    console.error(`FAIL ${what}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
    process.exit(1);
  }
}

const tmp = mkdtempSync(path.join(tmpdir(), 'shoal-node-failover-'));
const clients = [];
const peers = [];
for (let i = 0; i < 3; i++) {
  clients.push(`127.0.0.1:${await freePort()}`);
  peers.push(`127.0.0.1:${await freePort()}`);
}
const members = clients.map((c, i) => `${i + 1}=${peers[i]}/${c}`).join(',');
const procs = clients.map((c, i) =>
  spawn(path.resolve(args.shoald), [
    `--listen=${c}`, '--metrics_listen=', `--data_dir=${tmp}/r${i + 1}`, `--raft_id=${i + 1}`,
    `--raft_members=${members}`, '--raft_bootstrap',
  ], { stdio: ['ignore', 'pipe', 'ignore'] }));
try {
  // Each prints where it listens once the cluster has its store id.
  await Promise.all(procs.map((p) => new Promise((resolve) => {
    createInterface({ input: p.stdout }).once('line', resolve);
  })));
  const status = await (async () => {
    const probe = new shoal.ShoalClient(clients.join(','));
    for (;;) {
      const s = await probe.status();
      if (s.replication?.leader) {
        probe.close();
        return s;
      }
    }
  })();
  const leader = status.replication.leader;
  const follower = clients.find((c) => c !== leader);
  const order = [follower, ...clients.filter((c) => c !== follower)];
  const kv = new shoal.ShoalClient(order.join(','), { attempts: 20 });
  // A pipeline opened on the follower runs on the leader: every result comes, in order, and each
  // increment applies once (before, each write came back refused).
  const piped = new shoal.ShoalClient(order.join(','), { attempts: 20 });
  const ops = [];
  for (let n = 0; n < 50; n++) {
    ops.push({ increment: { key: 'pipe/counter', delta: 1 } });
    ops.push({ put: { key: `pipe/k${n}`, value: `v${n}` } });
    ops.push({ get: { key: `pipe/k${n}` } });
  }
  let n = 0;
  for await (const r of piped.pipeline(ops, { window: 8 })) {
    check(`pipeline result ${n} has no error`, undefined, r.error?.message);
    if (n % 3 === 0) check(`increment ${n}`, String(n / 3 + 1), r.increment.value);
    if (n % 3 === 2) check(`read back ${n}`, `v${(n - 2) / 3}`, r.get.entry.value.toString());
    n += 1;
  }
  check('pipeline results', ops.length, n);
  check('the pipeline went to the leader', leader, piped.currentTarget);
  piped.close();
  const first = await kv.put('k', '1');
  check('the write went to the leader', leader, kv.currentTarget);
  const dead = procs[clients.indexOf(leader)];
  dead.kill('SIGKILL');
  await new Promise((resolve) => dead.once('exit', resolve));
  let again;
  try {
    again = await kv.put('k', '2');
  } catch (err) {
    // On the dead leader's broken connection: not resent (it may have been sent); the client
    // moved on, and this retry lands.
    check("a lost write's code", 'UNAVAILABLE', err.codeName);
    again = await kv.put('k', '2');
  }
  check('one revision later', first.revision + 1, again.revision);
  check('a new leader', true, kv.currentTarget !== leader);
  check('the value', '2', (await kv.get('k')).value.toString());
  kv.close();
  console.log('PASS');
} finally {
  // Each replica gone before its directory is: a draining one still writes there.
  await Promise.all(procs.map((p) => {
    if (p.exitCode !== null || p.signalCode !== null) return null;
    const gone = new Promise((resolve) => p.once('exit', resolve));
    p.kill('SIGTERM');
    return gone;
  }));
  rmSync(tmp, { recursive: true, force: true });
}
