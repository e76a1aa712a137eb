/**
 * Option haggling of the fixed newstyle handshake (proto.md §Fixed newstyle negotiation, §Option
 * types): given one complete option from the client, build the replies and say what happens next.
 * Pure apart from `send`, so every branch is testable without a socket.
 *
 * Served: NBD_OPT_EXPORT_NAME, NBD_OPT_ABORT, NBD_OPT_LIST, NBD_OPT_INFO, NBD_OPT_GO (info types
 * EXPORT, NAME, DESCRIPTION, BLOCK_SIZE), NBD_OPT_STRUCTURED_REPLY (once, without data), and
 * NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT (`base:allocation`, after structured
 * replies: meta-context.ts), NBD_OPT_STARTTLS when the server has TLS (tls.ts; §TLS support: with
 * TLS required every other option but NBD_OPT_ABORT is answered NBD_REP_ERR_TLS_REQD until it is on,
 * NBD_OPT_EXPORT_NAME ends the session). Refused with NBD_REP_ERR_UNSUP: NBD_OPT_STARTTLS on a NOTLS
 * server, NBD_OPT_EXTENDED_HEADERS (no client here speaks them), and anything unknown.
 */
import type { ExportDirectory, NbdExport } from './export.js';
import { META_OPTIONS, metaContextOption, type MetaContextHost } from './meta-context.js';
import type { NbdTlsMode } from './tls.js';
import {
  NBD_FLAG_SEND_DF,
  EXPORT_NAME_REPLY_SIZE,
  EXPORT_NAME_ZEROES,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_EXPORT,
  NBD_INFO_NAME,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_STARTTLS,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_TLS_REQD,
  NBD_REP_ERR_TOO_BIG,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_INFO,
  NBD_REP_SERVER,
  OPT_REPLY_MAGIC_HI,
  OPT_REPLY_MAGIC_LO,
  OPTION_REPLY_HEADER_SIZE,
} from './protocol.js';

export interface HandshakeContext {
  /** The exports a client may choose from. */
  readonly exports: ExportDirectory;
  /** The client negotiated NBD_FLAG_C_NO_ZEROES. */
  readonly noZeroes: boolean;
  /** Queue bytes to the client. */
  send(bytes: Buffer): void;
  /** NBD_OPT_STRUCTURED_REPLY was acknowledged. */
  structured: boolean;
  /** The export `base:allocation` was selected for by the last NBD_OPT_SET_META_CONTEXT (null: none). */
  metaExport: NbdExport | null;
  /** The server's TLS mode: 'off' refuses STARTTLS, 'require' refuses everything else until TLS is on. */
  readonly tlsMode: NbdTlsMode;
  /** The session already runs inside TLS. */
  readonly secure: boolean;
}

/**
 * §Transmission flags as this client sees them: the export's, plus NBD_FLAG_SEND_DF once structured
 * replies were negotiated (it MUST be clear otherwise).
 */
export function transmissionFlags(exp: NbdExport, structured: boolean): number {
  return structured ? exp.flags | NBD_FLAG_SEND_DF : exp.flags;
}

export type OptionOutcome =
  { next: 'continue' } | { next: 'transmission'; export: NbdExport } | { next: 'abort' } | { next: 'disconnect'; reason: string } | { next: 'starttls' };

const CONTINUE: OptionOutcome = Object.freeze({ next: 'continue' });
const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });
const utf8 = new TextEncoder();

/** One option reply: magic, option, reply type, length, data (§Fixed newstyle negotiation). */
export function optionReply(option: number, type: number, data?: Uint8Array): Buffer {
  const n = data ? data.length : 0;
  const b = Buffer.allocUnsafe(OPTION_REPLY_HEADER_SIZE + n);
  b.writeUInt32BE(OPT_REPLY_MAGIC_HI, 0);
  b.writeUInt32BE(OPT_REPLY_MAGIC_LO, 4);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(n, 16);
  if (data) b.set(data, OPTION_REPLY_HEADER_SIZE);
  return b;
}

/** An error reply with a message for people (§Option reply types: error replies MAY carry a string). */
export function optionError(option: number, type: number, message: string): Buffer {
  return optionReply(option, type, utf8.encode(message));
}

function decodeName(bytes: Uint8Array): string | undefined {
  try {
    const s = fatalUtf8.decode(bytes);
    return s.includes('\0') ? undefined : s;
  } catch {
    return undefined;
  }
}

function unknownExport(ctx: HandshakeContext, name: string): string {
  const names = [...ctx.exports.list()].map((e) => JSON.stringify(e.name));
  return `no export named ${JSON.stringify(name)}; this server has ${names.length ? names.join(', ') : 'none'}`;
}

/** The reply to NBD_OPT_EXPORT_NAME: size, flags, and 124 zeroes unless NO_ZEROES (§Newstyle negotiation). */
export function exportNameReply(exp: NbdExport, noZeroes: boolean, flags: number = exp.flags): Buffer {
  const b = Buffer.alloc(EXPORT_NAME_REPLY_SIZE + (noZeroes ? 0 : EXPORT_NAME_ZEROES));
  writeU64(b, 0, exp.size);
  b.writeUInt16BE(flags, 8);
  return b;
}

function writeU64(b: Buffer, at: number, v: number): void {
  const hi = Math.floor(v / 0x100000000);
  b.writeUInt32BE(hi, at);
  b.writeUInt32BE(v - hi * 0x100000000, at + 4);
}

/** Handle one option. `data` holds exactly the option's data (its length is the option's length). */
export function handleOption(ctx: HandshakeContext, option: number, data: Buffer): OptionOutcome {
  if (ctx.tlsMode === 'require' && !ctx.secure && option !== NBD_OPT_STARTTLS && option !== NBD_OPT_ABORT) {
    // §FORCEDTLS mode: nothing but STARTTLS and ABORT before TLS; EXPORT_NAME cannot be refused, only the session ended.
    if (option === NBD_OPT_EXPORT_NAME) return { next: 'disconnect', reason: 'NBD_OPT_EXPORT_NAME before NBD_OPT_STARTTLS on a server that requires TLS' };
    ctx.send(optionError(option, NBD_REP_ERR_TLS_REQD, 'this server requires TLS: send NBD_OPT_STARTTLS first'));
    return CONTINUE;
  }
  switch (option) {
    case NBD_OPT_EXPORT_NAME: {
      const name = decodeName(data);
      const exp = name === undefined ? undefined : ctx.exports.lookup(name);
      // §Option types, NBD_OPT_EXPORT_NAME: an unknown export cannot be refused, only the session ended.
      if (!exp) return { next: 'disconnect', reason: name === undefined ? 'NBD_OPT_EXPORT_NAME with a name that is not UTF-8' : unknownExport(ctx, name) };
      ctx.send(exportNameReply(exp, ctx.noZeroes, transmissionFlags(exp, ctx.structured)));
      return { next: 'transmission', export: exp };
    }
    case NBD_OPT_ABORT:
      ctx.send(optionReply(option, NBD_REP_ACK));
      return { next: 'abort' };
    case NBD_OPT_LIST: {
      if (data.length !== 0) {
        ctx.send(optionError(option, NBD_REP_ERR_INVALID, 'NBD_OPT_LIST takes no data'));
        return CONTINUE;
      }
      for (const exp of ctx.exports.list()) {
        const desc = utf8.encode(exp.description);
        const body = Buffer.allocUnsafe(4 + exp.nameBytes.length + desc.length);
        body.writeUInt32BE(exp.nameBytes.length, 0);
        body.set(exp.nameBytes, 4);
        body.set(desc, 4 + exp.nameBytes.length);
        ctx.send(optionReply(option, NBD_REP_SERVER, body));
      }
      ctx.send(optionReply(option, NBD_REP_ACK));
      return CONTINUE;
    }
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
      return infoOrGo(ctx, option, data);
    case NBD_OPT_STARTTLS:
      if (ctx.tlsMode === 'off') ctx.send(optionError(option, NBD_REP_ERR_UNSUP, 'this server does not offer TLS (its policy has tls: off)'));
      else if (data.length !== 0) ctx.send(optionError(option, NBD_REP_ERR_INVALID, 'NBD_OPT_STARTTLS takes no data'));
      else if (ctx.secure) ctx.send(optionError(option, NBD_REP_ERR_INVALID, 'TLS is already on'));
      else {
        ctx.send(optionReply(option, NBD_REP_ACK));
        return { next: 'starttls' };
      }
      return CONTINUE;
    case NBD_OPT_STRUCTURED_REPLY:
      // §NBD_OPT_STRUCTURED_REPLY: no data (SHOULD be refused with NBD_REP_ERR_INVALID); a second
      // one is refused the same way (the state it asks for is already there).
      if (data.length !== 0) ctx.send(optionError(option, NBD_REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data'));
      else if (ctx.structured) ctx.send(optionError(option, NBD_REP_ERR_INVALID, 'structured replies are already negotiated'));
      else {
        ctx.structured = true;
        ctx.send(optionReply(option, NBD_REP_ACK));
      }
      return CONTINUE;
    default:
      if (META_OPTIONS.has(option)) {
        metaContextOption(metaHost(ctx), option, data);
        return CONTINUE;
      }
      ctx.send(optionError(option, NBD_REP_ERR_UNSUP, `option ${option} is not supported by this server`));
      return CONTINUE;
  }
}

/** The handshake's side of the metadata-context options. */
function metaHost(ctx: HandshakeContext): MetaContextHost {
  return {
    lookup: (name) => ctx.exports.lookup(name),
    send: (bytes) => ctx.send(bytes),
    reply: optionReply,
    error: optionError,
    decodeName,
    unknownExport: (name) => unknownExport(ctx, name),
    get structured() {
      return ctx.structured;
    },
    get metaExport() {
      return ctx.metaExport;
    },
    set metaExport(exp: NbdExport | null) {
      ctx.metaExport = exp;
    },
  };
}

/** An option whose data was longer than the server accepts: its data was skipped, not read. */
export function optionTooBig(ctx: HandshakeContext, option: number, length: number, limit: number): OptionOutcome {
  if (option === NBD_OPT_EXPORT_NAME) return { next: 'disconnect', reason: `NBD_OPT_EXPORT_NAME of ${length} bytes (limit ${limit})` };
  ctx.send(optionError(option, NBD_REP_ERR_TOO_BIG, `option data of ${length} bytes is over this server's limit of ${limit}`));
  return CONTINUE;
}

/** An NBD_REP_INFO reply carrying a string: the info type, then its bytes (§NBD_INFO_NAME, §NBD_INFO_DESCRIPTION). */
function infoString(option: number, type: number, bytes: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(2 + bytes.length);
  b.writeUInt16BE(type, 0);
  b.set(bytes, 2);
  return optionReply(option, NBD_REP_INFO, b);
}

/** NBD_OPT_INFO and NBD_OPT_GO (§Option types): name, info requests; NBD_REP_INFO replies then ACK. */
function infoOrGo(ctx: HandshakeContext, option: number, data: Buffer): OptionOutcome {
  if (data.length < 6) {
    ctx.send(optionError(option, NBD_REP_ERR_INVALID, `option data of ${data.length} bytes is shorter than the 6 bytes of an empty request`));
    return CONTINUE;
  }
  const nameLen = data.readUInt32BE(0);
  if (nameLen > data.length - 6) {
    ctx.send(optionError(option, NBD_REP_ERR_INVALID, `name length ${nameLen} does not fit in ${data.length} bytes of option data`));
    return CONTINUE;
  }
  const nreq = data.readUInt16BE(4 + nameLen);
  if (data.length !== 6 + nameLen + 2 * nreq) {
    ctx.send(
      optionError(
        option,
        NBD_REP_ERR_INVALID,
        `option data is ${data.length} bytes, but a ${nameLen}-byte name and ${nreq} info requests make ${6 + nameLen + 2 * nreq}`,
      ),
    );
    return CONTINUE;
  }
  const name = decodeName(data.subarray(4, 4 + nameLen));
  if (name === undefined) {
    ctx.send(optionError(option, NBD_REP_ERR_INVALID, 'the export name is not valid UTF-8 or contains NUL'));
    return CONTINUE;
  }
  const exp = ctx.exports.lookup(name);
  if (!exp) {
    ctx.send(optionError(option, NBD_REP_ERR_UNKNOWN, unknownExport(ctx, name)));
    return CONTINUE;
  }
  let wantName = false;
  let wantDescription = false;
  for (let i = 0; i < nreq; i++) {
    const t = data.readUInt16BE(6 + nameLen + 2 * i);
    if (t === NBD_INFO_NAME) wantName = true;
    else if (t === NBD_INFO_DESCRIPTION) wantDescription = true;
    // NBD_INFO_EXPORT and NBD_INFO_BLOCK_SIZE are always sent; unknown types MUST be ignored.
  }
  const info = Buffer.allocUnsafe(12);
  info.writeUInt16BE(NBD_INFO_EXPORT, 0);
  writeU64(info, 2, exp.size);
  info.writeUInt16BE(transmissionFlags(exp, ctx.structured), 10);
  ctx.send(optionReply(option, NBD_REP_INFO, info));
  if (wantName) ctx.send(infoString(option, NBD_INFO_NAME, exp.nameBytes));
  if (wantDescription && exp.description) ctx.send(infoString(option, NBD_INFO_DESCRIPTION, utf8.encode(exp.description)));
  // Our minimum block size is the device's (not the default of 1), so it is always advertised
  // (§Size constraints: a server with non-default constraints MUST advertise them). Clients that
  // did not ask are still let in; misaligned requests from them get EINVAL.
  const bs = Buffer.allocUnsafe(14);
  bs.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 0);
  bs.writeUInt32BE(exp.minBlockSize, 2);
  bs.writeUInt32BE(exp.preferredBlockSize, 6);
  bs.writeUInt32BE(exp.maxPayload, 10);
  ctx.send(optionReply(option, NBD_REP_INFO, bs));
  ctx.send(optionReply(option, NBD_REP_ACK));
  return option === NBD_OPT_GO ? { next: 'transmission', export: exp } : CONTINUE;
}
