'use strict';

// A promise-based client for Shoal's gRPC API (proto/shoal/v1). The protos are loaded at run time,
// so the client follows the repository's API without a code-generation step: from the repository's
// proto/ folder in Shoal's tree, else from the package's own copy (proto/, put there by `npm pack`).
// Types: index.d.ts.

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

// In Shoal's tree, the repository's protos (a copy left by `npm pack` may be stale); installed,
// the package's own.
const REPOSITORY_PROTO_DIR = path.resolve(__dirname, '../../proto');
const DEFAULT_PROTO_DIR = fs.existsSync(path.join(REPOSITORY_PROTO_DIR, 'shoal/v1/kv.proto'))
  ? REPOSITORY_PROTO_DIR
  : path.join(__dirname, 'proto');
const DEFAULT_DEADLINE_MS = 5000;

// A failed RPC. `code` is the gRPC status number, `codeName` its name (e.g. 'INVALID_ARGUMENT').
class ShoalError extends Error {
  constructor(grpcError) {
    const codeName = grpc.status[grpcError.code] ?? String(grpcError.code);
    super(`${codeName}: ${grpcError.details}`, { cause: grpcError });
    this.name = new.target.name;
    this.code = grpcError.code;
    this.codeName = codeName;
    this.details = grpcError.details;
  }
}

// The watch's start revision is no longer in the server's history (or belongs to a store that has
// since restarted). Recover by listing again, then watching from the list's revision + 1.
class CompactedError extends ShoalError {
  constructor(grpcError, compactRevision) {
    super(grpcError);
    this.compactRevision = compactRevision; // the oldest revision still in the history
  }
}

// The server ended the watch (the watcher fell behind, or the server is draining). Every event
// before resumeRevision was delivered: watch again with {fromRevision: resumeRevision, storeId}.
class WatchCanceledError extends ShoalError {
  constructor(grpcError, resumeRevision, storeId) {
    super(grpcError);
    this.resumeRevision = resumeRevision;
    this.storeId = storeId;
  }
}

class ShoalClient {
  #endpoints = []; // {target, kv, admin}: the replicas given, and any a leader hint names
  #current = 0;
  #makeStubs;
  #attempts;
  #deadlineMs;
  #metadata;

  // options.tls: {rootCertificates, certificateChain, privateKey} (PEM Buffers; rootCertificates
  // null: the system's CAs) for TLS, with a client certificate for mTLS; options.credentials
  // instead, for any other channel credentials. options.token (default $SHOAL_TOKEN): sent on
  // every call as "authorization: Bearer <token>". target may list a replicated store's replicas,
  // comma-separated: the client follows the leader (a refusal naming it sends any call there; an
  // unreachable replica moves it to the next one, where reads are retried, up to
  // options.attempts (4) more times).
  constructor(target = process.env.SHOAL_ADDR || '127.0.0.1:50051', options = {}) {
    const {
      protoDir = DEFAULT_PROTO_DIR,
      deadlineMs = DEFAULT_DEADLINE_MS,
      tls = null,
      token = process.env.SHOAL_TOKEN || '',
      channelOptions = {},
      attempts = 4,
    } = options;
    const credentials =
      options.credentials ??
      (tls
        ? grpc.credentials.createSsl(
            tls.rootCertificates ?? null,
            tls.privateKey ?? null,
            tls.certificateChain ?? null,
          )
        : grpc.credentials.createInsecure());
    this.#metadata = new grpc.Metadata();
    if (token) this.#metadata.set('authorization', `Bearer ${token}`);
    const definition = protoLoader.loadSync(['shoal/v1/kv.proto', 'shoal/v1/admin.proto'], {
      includeDirs: [protoDir],
      longs: String, // 64-bit fields as decimal strings: converted below, never silently rounded
      enums: String,
      defaults: true,
    });
    const { KV, Admin } = grpc.loadPackageDefinition(definition).shoal.v1;
    this.#makeStubs = (t) => {
      const kv = new KV(t, credentials, channelOptions);
      return { target: t, kv, admin: new Admin(t, credentials, { channelOverride: kv.getChannel() }) };
    };
    for (const t of target.split(',').map((x) => x.trim()).filter(Boolean)) this.#endpoint(t);
    this.#attempts = attempts;
    this.#deadlineMs = deadlineMs;
  }

  // The replica calls go to now.
  get currentTarget() {
    return this.#endpoints[this.#current].target;
  }

  get #kv() {
    return this.#endpoints[this.#current].kv;
  }

  #endpoint(target) {
    const found = this.#endpoints.findIndex((e) => e.target === target);
    if (found >= 0) return found;
    this.#endpoints.push(this.#makeStubs(target));
    return this.#endpoints.length - 1;
  }

  // The entry, or null if the key does not exist.
  async get(key) {
    const res = await this.#unary('kv', 'get', { key: toBytes(key) });
    return res.found ? toEntry(res.entry) : null;
  }

  // A condition that does not hold is not an error: applied is false and current is the entry the
  // condition was checked against (null if the key does not exist). revision is the write's own
  // revision when applied, otherwise the store's revision when the condition was checked.
  async put(key, value, options = {}) {
    const { ttlMs, keepTtl = false, returnPrevious = false } = options;
    const request = {
      key: toBytes(key),
      value: toBytes(value),
      ttlMs: ttlMs === undefined ? undefined : toInt64(ttlMs),
      keepTtl,
      condition: toCondition(options),
      returnPrevious,
    };
    const res = await this.#unary('kv', 'put', request);
    if (!res.applied) {
      return {
        applied: false,
        revision: toNumber(res.header.revision),
        entry: null,
        current: toEntry(res.entry),
        previous: null,
      };
    }
    // The server sends back only the metadata of what it wrote.
    const entry = { ...toEntry(res.entry), key: request.key, value: request.value };
    return {
      applied: true,
      revision: entry.modRevision,
      entry,
      current: null,
      previous: toEntry(res.previous),
    };
  }

  // Deletes one key, optionally on a condition: {ifPresent, ifRevision, storeId}.
  async delete(key, options = {}) {
    const { returnPrevious = false } = options;
    const res = await this.#unary('kv', 'delete', {
      key: toBytes(key),
      condition: toCondition(options),
      returnPrevious,
    });
    return {
      applied: res.applied,
      deleted: toNumber(res.deleted),
      previous: toEntry(res.previous[0]),
      current: toEntry(res.current),
    };
  }

  // Deletes every key with the prefix and returns how many there were. Not atomic: each key takes
  // its own revision. An empty prefix (every key) needs {allKeys: true}.
  async deletePrefix(prefix, { allKeys = false } = {}) {
    const res = await this.#unary('kv', 'delete', {
      key: toBytes(prefix),
      byPrefix: true,
      allKeys,
    });
    return toNumber(res.deleted);
  }

  // Adds delta (a safe integer or a BigInt) to a decimal-integer value; an absent key counts as 0.
  // Returns the new value.
  async increment(key, delta = 1, { ttlMs, keepTtl = false } = {}) {
    const res = await this.#unary('kv', 'increment', {
      key: toBytes(key),
      delta: toInt64(delta),
      ttlMs: ttlMs === undefined ? undefined : toInt64(ttlMs),
      keepTtl,
    });
    return toNumber(res.value, 'the incremented value (the increment was applied)');
  }

  // Entries in key order, following continuation pages. selector is {prefix} or {start, end}
  // (end exclusive; omitted: no bound). Not a snapshot: see rangePages for the revision.
  async *range(selector, options) {
    for await (const page of this.rangePages(selector, options)) yield* page.entries;
  }

  // The same, one page at a time: {entries, revision, storeId}. The first page's revision is the
  // one to watch from (+ 1) for an exact view after the listing.
  async *rangePages(selector, { pageSize = 0, keysOnly = false } = {}) {
    const request = { ...toSelector(selector), limit: pageSize, keysOnly };
    let continuation = Buffer.alloc(0);
    do {
      const res = await this.#unary('kv', 'range', { ...request, continuation });
      yield {
        entries: res.entries.map(toEntry),
        revision: toNumber(res.header.revision),
        storeId: res.header.storeId,
      };
      continuation = res.continuation;
    } while (continuation.length > 0);
  }

  // How many keys the selector covers, without reading them.
  async count(selector) {
    const res = await this.#unary('kv', 'range', { ...toSelector(selector), countOnly: true });
    return toNumber(res.count);
  }

  // Changes to a key or (by default) a prefix, as {type, revision, key, value, entry, previous}
  // with type 'PUT', 'DELETE' or 'EXPIRE'. The call starts with the first next() and is canceled
  // when the consumer stops iterating. fromRevision replays from the server's history (with
  // storeId, only if the server is still that store); without it, changes start "from now", which
  // races with writes made just before: pass fromRevision when that matters.
  async *watch(keyOrPrefix, options = {}) {
    const { prefix = true, fromRevision = 0, storeId = '', prevKv = false } = options;
    const call = this.#kv.watch(
      {
        key: toBytes(keyOrPrefix),
        prefix,
        startRevision: fromRevision,
        storeId,
        prevKv,
      },
      this.#metadata,
    );
    // A compacted or canceled response is the last one: the error status follows it.
    let final = null;
    try {
      for await (const res of call) {
        if (res.compacted || res.canceled) final = res;
        for (const event of res.events) yield toEvent(event);
      }
    } catch (err) {
      throw isGrpcError(err) ? watchError(err, final) : err;
    } finally {
      // Cancelling ends the stream with CANCELLED, emitted as an error nobody listens to any more.
      call.on('error', () => {});
      call.cancel();
    }
  }

  // Compares, then the success operations if all hold, else the failure ones: atomically, in one
  // revision. Compares: {key, target: 'VALUE'|'VERSION'|'CREATE_REVISION'|'MOD_REVISION'|'EXISTS',
  // result: 'EQUAL'|'NOT_EQUAL'|'LESS'|'GREATER', value | number | exists}. Operations:
  // {get: {key}}, {put: {key, value, ttlMs}}, {delete: {key}}, {increment: {key, delta}}.
  async txn({ compares = [], success = [], failure = [] } = {}) {
    const request = {
      compares: compares.map((c) => ({
        key: toBytes(c.key),
        target: c.target,
        result: c.result ?? 'EQUAL',
        value: c.value === undefined ? undefined : toBytes(c.value),
        number: c.number === undefined ? undefined : String(c.number),
        exists: c.exists,
      })),
      success: success.map(toOp),
      failure: failure.map(toOp),
    };
    const res = await this.#unary('kv', 'txn', request);
    return { succeeded: res.succeeded, revision: toNumber(res.revision), results: res.results };
  }

  // Runs operations (as for txn) on a Pipeline stream, up to `window` of them unanswered, and
  // yields each result in order: {get}, {put}, {delete}, {increment}, or {error: {code, message}}
  // for an operation that failed. The stream has no deadline; it is canceled if the consumer
  // stops iterating early. On a replicated store it follows the leader: from the first operation
  // a follower refused for not leading (nothing applied; `error.leader` names the leader), the
  // rest go to the leader on a new stream, once the refused stream's other replies show that
  // every write after it was refused so too (else every result is yielded as it came). A stream
  // that could not connect goes to the next replica; one that broke after connecting throws.
  async *pipeline(ops, { window = 64 } = {}) {
    if (!(window >= 1)) throw new RangeError('window must be at least 1');
    const requests = [...ops].map(toOp);
    let done = 0; // operations whose result was yielded
    let pause = 50;
    for (let moves = 0; ; moves++) {
      const i = this.#current;
      const mayMove = moves < this.#attempts + this.#endpoints.length;
      const stream = this.#pipelineStream(i, requests, done, window);
      let refused = null;
      const after = [];
      try {
        for await (const result of stream.results()) {
          if (refused) {
            after.push(result);
          } else if (mayMove && refusedForNotLeading(result)) {
            refused = result;
            stream.stopSending();
          } else {
            done += 1;
            stream.answered(done);
            yield result;
          }
        }
      } catch (err) {
        if (!isGrpcError(err)) throw err;
        if (refused) {
          // What was sent after these is unknown: the caller has what came, then the error.
          for (const r of [refused, ...after]) yield r;
          throw new ShoalError(err);
        }
        const neverSent = String(err.details ?? '').startsWith('No connection established');
        if (!neverSent || !mayMove) throw new ShoalError(err);
        this.#current = (i + 1) % this.#endpoints.length; // nothing of it left: the next replica
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(pause * 2, 1000);
        continue;
      } finally {
        stream.cancelUnlessDone();
      }
      if (!refused) return;
      const resend = after.every((r, k) => !writes(requests[done + 1 + k]) || refusedForNotLeading(r));
      if (!resend) {
        for (const r of [refused, ...after]) {
          done += 1;
          yield r;
        }
      }
      if (done === requests.length) return;
      const leader = refused.error.leader;
      this.#current = leader ? this.#endpoint(leader) : (i + 1) % this.#endpoints.length;
      if (!leader || this.#current === i) {
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(pause * 2, 1000);
      }
    }
  }

  // One Pipeline stream on replica i for requests[from...], at most `window` unanswered.
  #pipelineStream(i, requests, from, window) {
    const call = this.#endpoints[i].kv.pipeline(this.#metadata);
    let sent = from;
    let answered = from;
    let ended = false;
    let finished = false;
    const end = () => {
      if (!ended) call.end();
      ended = true;
    };
    const sendWithin = () => {
      while (!ended && sent < requests.length && sent - answered < window) {
        call.write({ id: String(sent - from + 1), op: requests[sent] });
        sent += 1;
      }
      if (sent === requests.length) end();
    };
    sendWithin();
    return {
      async *results() {
        for await (const reply of call) yield reply.result;
        finished = true;
      },
      answered(n) {
        answered = n;
        sendWithin();
      },
      stopSending: end,
      cancelUnlessDone() {
        if (finished) return;
        call.on('error', () => {});
        call.cancel();
      },
    };
  }

  async status() {
    const res = await this.#unary('admin', 'status', {});
    return {
      revision: toNumber(res.header.revision),
      storeId: res.header.storeId,
      keys: toNumber(res.keys),
      bytes: toNumber(res.bytes),
      watchers: res.watchers,
      inFlight: res.inFlight,
      uptimeMs: toNumber(res.uptimeMs),
      version: res.version,
      configVersion: toNumber(res.configVersion),
      configSource: res.configSource,
      lastConfigError: res.lastConfigError,
      compactRevision: toNumber(res.compactRevision),
      // A replicated store's view from this replica (null on a single server).
      replication: res.replication
        ? {
            id: toNumber(res.replication.id),
            role: res.replication.role,
            term: toNumber(res.replication.term),
            leaderId: toNumber(res.replication.leaderId),
            leader: res.replication.leader,
            members: res.replication.members.map((m) => ({
              id: toNumber(m.id),
              peer: m.peer,
              client: m.client,
            })),
          }
        : null,
    };
  }

  close() {
    for (const e of this.#endpoints) e.kv.close(); // each Admin stub shares its channel
  }

  #once(service, method, request) {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + this.#deadlineMs;
      const stub = this.#endpoints[this.#current][service];
      stub[method](request, this.#metadata, { deadline }, (err, res) =>
        err ? reject(err) : resolve(res),
      );
    });
  }

  // One call on the current replica, following the cluster: a refusal carrying shoal-leader
  // (nothing applied) goes to the leader it names, or, empty during an election, to the next
  // replica after a pause; an unreachable replica moves the client on, and only a read (or a
  // call that never left: grpc-js's "No connection established") is sent again.
  async #unary(service, method, request) {
    const read = service === 'admin' || method === 'get' || method === 'range';
    let pause = 50;
    let last;
    for (let attempt = 0; attempt < this.#attempts + this.#endpoints.length; attempt++) {
      const i = this.#current;
      try {
        return await this.#once(service, method, request);
      } catch (err) {
        last = err;
        if (err.code !== grpc.status.UNAVAILABLE) break;
        const hint = err.metadata?.get('shoal-leader') ?? [];
        if (hint.length > 0) {
          const leader = String(hint[0]);
          this.#current = leader ? this.#endpoint(leader) : (i + 1) % this.#endpoints.length;
          if (!leader || this.#current === i) {
            await new Promise((r) => setTimeout(r, pause));
            pause = Math.min(pause * 2, 1000);
          }
          continue;
        }
        this.#current = (i + 1) % this.#endpoints.length;
        if (!read && !String(err.details ?? '').startsWith('No connection established')) break;
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(pause * 2, 1000);
      }
    }
    throw new ShoalError(last);
  }
}

function toBytes(value) {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (Buffer.isBuffer(value)) return value;
  // Any other Uint8Array, viewed as a Buffer (what results hand back, as the types say).
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`expected a string or a Buffer, got ${typeof value}`);
}

// 64-bit integers go out as decimal strings so that BigInts keep every digit.
function toInt64(value) {
  if (typeof value === 'bigint' && BigInt.asIntN(64, value) === value) return value.toString();
  if (Number.isSafeInteger(value)) return value;
  throw new RangeError(`expected a safe integer or a 64-bit BigInt, got ${value}`);
}

// A Number is exact only up to 2^53 - 1: refuse, rather than round, anything larger.
function toNumber(decimal, what = 'a 64-bit value') {
  const n = Number(decimal);
  if (!Number.isSafeInteger(n)) {
    throw new RangeError(`${what} ${decimal} is beyond Number's exact range`);
  }
  return n;
}

// A Pipeline result refusing its operation because the replica does not lead (nothing applied).
function refusedForNotLeading(result) {
  return (
    result?.error?.code === grpc.status.UNAVAILABLE &&
    String(result.error.message).startsWith('this replica does not lead')
  );
}

function writes(op) {
  return Boolean(op.put || op.delete || op.increment);
}

// An operation of a Txn or a Pipeline: {get: {key}}, {put: {key, value, ttlMs}}, {delete: {key}}
// or {increment: {key, delta}}.
function toOp(o) {
  if (o.get) return { get: { key: toBytes(o.get.key) } };
  if (o.put) {
    const { key, value, ttlMs } = o.put;
    return { put: { key: toBytes(key), value: toBytes(value), ...(ttlMs === undefined ? {} : { ttlMs: String(ttlMs) }) } };
  }
  if (o.delete) return { delete: { key: toBytes(o.delete.key) } };
  if (o.increment) return { increment: { key: toBytes(o.increment.key), delta: String(o.increment.delta ?? 1) } };
  throw new TypeError('an operation is one of get, put, delete, increment');
}

function toCondition({ ifAbsent, ifPresent, ifRevision, storeId = '' }) {
  const given = [ifAbsent, ifPresent, ifRevision].filter((c) => c !== undefined && c !== false);
  if (given.length > 1) throw new TypeError('at most one of ifAbsent, ifPresent, ifRevision');
  if (ifAbsent) return { ifAbsent: true };
  if (ifPresent) return { ifPresent: true };
  if (ifRevision !== undefined) return { ifModRevision: ifRevision, storeId };
  return null;
}

function toSelector({ prefix, start, end } = {}) {
  if (prefix !== undefined) {
    if (start !== undefined || end !== undefined) {
      throw new TypeError('a selector has a prefix or start/end, not both');
    }
    return { prefix: toBytes(prefix) };
  }
  if (start === undefined && end === undefined) return { prefix: Buffer.alloc(0) };
  return { interval: { start: toBytes(start ?? ''), end: toBytes(end ?? '') } };
}

function toEntry(entry) {
  if (!entry) return null;
  return {
    key: entry.key,
    value: entry.value,
    createRevision: toNumber(entry.createRevision),
    modRevision: toNumber(entry.modRevision),
    version: toNumber(entry.version),
    ttlRemainingMs: toNumber(entry.ttlRemainingMs),
  };
}

function toEvent(event) {
  const entry = toEntry(event.entry);
  return {
    type: event.type,
    revision: toNumber(event.revision),
    key: entry.key,
    value: event.type === 'PUT' ? entry.value : null, // a deletion carries no value
    entry,
    previous: toEntry(event.previous),
  };
}

function isGrpcError(err) {
  return typeof err?.code === 'number' && 'details' in err;
}

function watchError(err, final) {
  if (final?.compacted) return new CompactedError(err, toNumber(final.compactRevision));
  if (final?.canceled) {
    return new WatchCanceledError(err, toNumber(final.resumeRevision), final.header.storeId);
  }
  return new ShoalError(err);
}

module.exports = {
  ShoalClient,
  ShoalError,
  CompactedError,
  WatchCanceledError,
  status: grpc.status, // the gRPC status codes, to compare with ShoalError.code
};
