/**
 * NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT (proto.md §Option types, §Metadata
 * querying): the one context served is `base:allocation` (§`base:allocation` metadata context).
 *
 * Everything in the option is the client's and is checked before use: the export name's length,
 * the number of queries (at most MAX_META_QUERIES, else NBD_REP_ERR_TOO_BIG), each query's length
 * (a string of at most 4096 bytes, §Conventions), that the queries exactly fill the option, UTF-8
 * without NUL, and a namespace and colon in front. Queries of other namespaces are ignored, as are
 * unknown leaf names of `base:` (the protocol says MUST ignore).
 */
import type { NbdExport } from './export.js';
import {
  BASE_ALLOCATION,
  NBD_MAX_STRING,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_TOO_BIG,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_META_CONTEXT,
} from './protocol.js';

/** Queries one option may carry. */
export const MAX_META_QUERIES = 64;
/** The context id of `base:allocation` after NBD_OPT_SET_META_CONTEXT selected it. */
export const ALLOCATION_CONTEXT_ID = 1;

/** What the handshake gives this module: lookups, replies, and the negotiation state it changes. */
export interface MetaContextHost {
  lookup(name: string): NbdExport | undefined;
  send(bytes: Buffer): void;
  reply(option: number, type: number, data?: Uint8Array): Buffer;
  error(option: number, type: number, message: string): Buffer;
  decodeName(bytes: Uint8Array): string | undefined;
  unknownExport(name: string): string;
  /** NBD_OPT_STRUCTURED_REPLY was acknowledged. */
  readonly structured: boolean;
  /** The export `base:allocation` was selected for by the last SET_META_CONTEXT (null: none). */
  metaExport: NbdExport | null;
}

const utf8 = new TextEncoder();
const ALLOCATION_BYTES = utf8.encode(BASE_ALLOCATION);

/** Handle LIST_META_CONTEXT or SET_META_CONTEXT; `data` is exactly the option's data. */
export function metaContextOption(host: MetaContextHost, option: number, data: Buffer): void {
  const set = option === NBD_OPT_SET_META_CONTEXT;
  // §NBD_OPT_SET_META_CONTEXT: it replaces the selection even when it fails.
  if (set) host.metaExport = null;
  const what = set ? 'NBD_OPT_SET_META_CONTEXT' : 'NBD_OPT_LIST_META_CONTEXT';
  const fail = (type: number, message: string): void => host.send(host.error(option, type, `${what}: ${message}`));
  if (!host.structured) return fail(NBD_REP_ERR_INVALID, 'negotiate NBD_OPT_STRUCTURED_REPLY first');
  if (data.length < 8) return fail(NBD_REP_ERR_INVALID, `option data of ${data.length} bytes is shorter than the 8 bytes of an empty request`);
  const nameLen = data.readUInt32BE(0);
  if (nameLen > data.length - 8) return fail(NBD_REP_ERR_INVALID, `name length ${nameLen} does not fit in ${data.length} bytes of option data`);
  const name = host.decodeName(data.subarray(4, 4 + nameLen));
  if (name === undefined) return fail(NBD_REP_ERR_INVALID, 'the export name is not valid UTF-8 or contains NUL');
  const count = data.readUInt32BE(4 + nameLen);
  if (count > MAX_META_QUERIES) return fail(NBD_REP_ERR_TOO_BIG, `${count} queries; this server takes at most ${MAX_META_QUERIES}`);
  let at = 8 + nameLen;
  let wantAllocation = !set && count === 0; // §LIST: no query lists every context
  for (let q = 0; q < count; q++) {
    if (data.length - at < 4) return fail(NBD_REP_ERR_INVALID, `query ${q} runs past the end of the option data`);
    const len = data.readUInt32BE(at);
    at += 4;
    if (len > data.length - at) return fail(NBD_REP_ERR_INVALID, `query ${q} of ${len} bytes runs past the end of the option data`);
    if (len > NBD_MAX_STRING) return fail(NBD_REP_ERR_INVALID, `query ${q} of ${len} bytes is longer than a string may be (4096)`);
    const query = host.decodeName(data.subarray(at, at + len));
    at += len;
    if (query === undefined) return fail(NBD_REP_ERR_INVALID, `query ${q} is not valid UTF-8 or contains NUL`);
    const colon = query.indexOf(':');
    if (colon < 1) return fail(NBD_REP_ERR_INVALID, `query ${JSON.stringify(query.slice(0, 64))} does not start with a namespace and a colon`);
    // §base: namespace: "base:allocation" selects or lists it; "base:" lists it (ignored by SET).
    if (query === BASE_ALLOCATION || (!set && query === 'base:')) wantAllocation = true;
  }
  if (at !== data.length) return fail(NBD_REP_ERR_INVALID, `${data.length - at} bytes of option data after the last query`);
  const exp = host.lookup(name);
  if (!exp) return fail(NBD_REP_ERR_UNKNOWN, host.unknownExport(name));
  if (wantAllocation) {
    const body = Buffer.allocUnsafe(4 + ALLOCATION_BYTES.length);
    body.writeUInt32BE(set ? ALLOCATION_CONTEXT_ID : 0, 0);
    body.set(ALLOCATION_BYTES, 4);
    host.send(host.reply(option, NBD_REP_META_CONTEXT, body));
    if (set) host.metaExport = exp;
  }
  host.send(host.reply(option, NBD_REP_ACK));
}

export const META_OPTIONS: ReadonlySet<number> = new Set([NBD_OPT_LIST_META_CONTEXT, NBD_OPT_SET_META_CONTEXT]);
