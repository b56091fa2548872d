// Types of shoal-client (index.js): a promise-based client for Shoal's gRPC API (shoal.v1).
//
//   import { ShoalClient } from 'shoal-client';
//   const client = new ShoalClient('127.0.0.1:50051');
//   const r = await client.put('k', 'v');          // PutResult
//   const e = await client.get('k');               // Entry | null
//   for await (const ev of client.watch('k', { prefix: false, fromRevision: r.revision })) {}
//   client.close();
import type { ChannelCredentials, ChannelOptions, status as GrpcStatus } from '@grpc/grpc-js';

/** Keys and values: strings are sent as UTF-8, Buffers (any Uint8Array) as they are. */
export type Data = string | Uint8Array;

export interface Entry {
  key: Buffer;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  /** 0: no TTL. */
  ttlRemainingMs: number;
}

export interface ClientOptions {
  /** Where shoal/v1/*.proto are (default: the package's own copy, else the repository's). */
  protoDir?: string;
  /** Each unary call's deadline (default 5000). */
  deadlineMs?: number;
  /** TLS (PEM): the CAs that sign the server's certificate (null: the system's), and for mTLS
   * this client's certificate chain and key. Default: plaintext. */
  tls?: { rootCertificates?: Buffer | null; certificateChain?: Buffer | null; privateKey?: Buffer | null };
  /** Sent on every call as "authorization: Bearer <token>". Default: $SHOAL_TOKEN. */
  token?: string;
  /** Any other channel credentials (instead of tls). */
  credentials?: ChannelCredentials;
  channelOptions?: ChannelOptions;
  /** A replicated store: how many more times a read (or a refused call) is tried (default 4). */
  attempts?: number;
}

/** At most one of ifAbsent, ifPresent, ifRevision; storeId with ifRevision. */
export interface Condition {
  ifAbsent?: boolean;
  ifPresent?: boolean;
  ifRevision?: number;
  storeId?: string;
}

export interface PutOptions extends Condition {
  ttlMs?: number | bigint;
  keepTtl?: boolean;
  returnPrevious?: boolean;
}

export interface PutResult {
  applied: boolean;
  /** Applied: this write's revision; not applied: the store's. */
  revision: number;
  /** Applied: the entry as written. */
  entry: Entry | null;
  /** Not applied: the entry the condition was checked against (null: the key is absent). */
  current: Entry | null;
  previous: Entry | null;
}

export interface DeleteOptions {
  ifPresent?: boolean;
  ifRevision?: number;
  storeId?: string;
  returnPrevious?: boolean;
}

export interface DeleteResult {
  applied: boolean;
  deleted: number;
  previous: Entry | null;
  current: Entry | null;
}

/** A prefix, or the interval [start, end) (end omitted: no bound); {} is every key. */
export type Selector = { prefix: Data } | { start?: Data; end?: Data };

export interface RangeOptions {
  pageSize?: number;
  keysOnly?: boolean;
}

export interface RangePage {
  entries: Entry[];
  revision: number;
  storeId: string;
}

export interface WatchOptions {
  /** Default true: every key starting with keyOrPrefix. */
  prefix?: boolean;
  fromRevision?: number;
  storeId?: string;
  prevKv?: boolean;
}

export interface WatchEvent {
  type: 'PUT' | 'DELETE' | 'EXPIRE';
  revision: number;
  key: Buffer;
  /** null for DELETE and EXPIRE. */
  value: Buffer | null;
  entry: Entry;
  previous: Entry | null;
}

export type Operation =
  | { get: { key: Data } }
  | { put: { key: Data; value: Data; ttlMs?: number } }
  | { delete: { key: Data } }
  | { increment: { key: Data; delta?: number | bigint } };

export interface Compare {
  key: Data;
  target: 'VALUE' | 'VERSION' | 'CREATE_REVISION' | 'MOD_REVISION' | 'EXISTS';
  result?: 'EQUAL' | 'NOT_EQUAL' | 'LESS' | 'GREATER';
  value?: Data;
  number?: number | bigint;
  exists?: boolean;
}

/** One operation's result, as protobuf gives it (bytes as Buffers, 64-bit numbers as strings). */
export interface OpResult {
  get?: { found: boolean; entry: unknown };
  put?: unknown;
  delete?: unknown;
  increment?: { value: string };
  /** `leader`: set on a replica's refusal for not leading (nothing applied): the leader's address. */
  error?: { code: number; message: string; leader?: string };
}

export interface TxnResult {
  succeeded: boolean;
  revision: number;
  results: OpResult[];
}

export interface Status {
  revision: number;
  storeId: string;
  keys: number;
  bytes: number;
  watchers: number;
  inFlight: number;
  uptimeMs: number;
  version: string;
  configVersion: number;
  configSource: string;
  lastConfigError: string;
  compactRevision: number;
  /** A replicated store's view from this replica; null on a single server. */
  replication: {
    id: number;
    role: 'leader' | 'follower' | 'candidate' | 'unavailable';
    term: number;
    leaderId: number;
    /** The leader's client address ('' if none is known). */
    leader: string;
    members: { id: number; peer: string; client: string }[];
  } | null;
}

export class ShoalClient {
  /** target: host:port (default: $SHOAL_ADDR, else 127.0.0.1:50051), or a replicated store's
   * replicas, comma-separated: the client follows the leader. */
  constructor(target?: string, options?: ClientOptions);
  /** The replica calls go to now. */
  readonly currentTarget: string;
  get(key: Data): Promise<Entry | null>;
  put(key: Data, value: Data, options?: PutOptions): Promise<PutResult>;
  delete(key: Data, options?: DeleteOptions): Promise<DeleteResult>;
  deletePrefix(prefix: Data, options?: { allKeys?: boolean }): Promise<number>;
  increment(
    key: Data,
    delta?: number | bigint,
    options?: { ttlMs?: number | bigint; keepTtl?: boolean },
  ): Promise<number>;
  range(selector?: Selector, options?: RangeOptions): AsyncGenerator<Entry, void, undefined>;
  rangePages(selector?: Selector, options?: RangeOptions): AsyncGenerator<RangePage, void, undefined>;
  count(selector?: Selector): Promise<number>;
  watch(keyOrPrefix: Data, options?: WatchOptions): AsyncGenerator<WatchEvent, void, undefined>;
  txn(request?: { compares?: Compare[]; success?: Operation[]; failure?: Operation[] }): Promise<TxnResult>;
  /**
   * Results in order. On a replicated store, what a follower refused for not leading goes to the
   * leader, when every write after it was refused so too (else each result comes as it was).
   */
  pipeline(ops: Iterable<Operation>, options?: { window?: number }): AsyncGenerator<OpResult, void, undefined>;
  status(): Promise<Status>;
  close(): void;
}

/** A failed call: code is the gRPC status number (compare with `status`). */
export class ShoalError extends Error {
  code: number;
  codeName: string;
  details: string;
}

/** The watch's start revision left the history: list again, then watch from its revision + 1. */
export class CompactedError extends ShoalError {
  compactRevision: number;
}

/** The server ended the watch: watch again from resumeRevision. */
export class WatchCanceledError extends ShoalError {
  resumeRevision: number;
  storeId: string;
}

export const status: typeof GrpcStatus;
