/**
 * The NBD wire protocol's numbers, as data. Section names cite doc/proto.md of
 * github.com/NetworkBlockDevice/nbd (read at commit 89ba7b53, May 2026). Every field is big-endian
 * ("network byte order", §Conventions).
 *
 * Magic numbers of 64 bits are kept as two 32-bit halves so that nothing on the wire needs a bigint.
 */

/** §Newstyle negotiation: 'NBDMAGIC' then 'IHAVEOPT', each 64 bits. */
export const NBDMAGIC_HI = 0x4e42444d; // 'NBDM'
export const NBDMAGIC_LO = 0x41474943; // 'AGIC'
export const IHAVEOPT_HI = 0x49484156; // 'IHAV'
export const IHAVEOPT_LO = 0x454f5054; // 'EOPT'
/** §Fixed newstyle negotiation: magic of every option reply, 0x0003e889045565a9. */
export const OPT_REPLY_MAGIC_HI = 0x0003e889;
export const OPT_REPLY_MAGIC_LO = 0x045565a9;
/** §Request message: NBD_REQUEST_MAGIC. */
export const NBD_REQUEST_MAGIC = 0x25609513;
/** §Simple reply message: NBD_SIMPLE_REPLY_MAGIC. */
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
/** §Structured reply chunk message: NBD_STRUCTURED_REPLY_MAGIC. */
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Wire sizes in bytes. */
export const HANDSHAKE_GREETING_SIZE = 18; // NBDMAGIC + IHAVEOPT + 16-bit handshake flags
export const CLIENT_FLAGS_SIZE = 4;
export const OPTION_HEADER_SIZE = 16; // IHAVEOPT + option + length
export const OPTION_REPLY_HEADER_SIZE = 20; // magic + option + reply type + length
export const REQUEST_SIZE = 28; // §Request message
export const SIMPLE_REPLY_SIZE = 16; // §Simple reply message
export const STRUCTURED_REPLY_SIZE = 20; // §Structured reply chunk message: magic, flags, type, cookie, length
/** An NBD_REPLY_TYPE_OFFSET_DATA chunk's header and its 64-bit offset, in front of the data. */
export const OFFSET_DATA_HEADER_SIZE = STRUCTURED_REPLY_SIZE + 8;
/** An NBD_REPLY_TYPE_OFFSET_HOLE chunk: header, 64-bit offset, 32-bit hole size. */
export const OFFSET_HOLE_CHUNK_SIZE = STRUCTURED_REPLY_SIZE + 12;
/** An NBD_REPLY_TYPE_ERROR chunk without a message: header, 32-bit error, 16-bit message length. */
export const ERROR_CHUNK_SIZE = STRUCTURED_REPLY_SIZE + 6;
/** One NBD_REPLY_TYPE_BLOCK_STATUS descriptor: 32-bit length, 32-bit status flags. */
export const BLOCK_DESCRIPTOR_SIZE = 8;
export const EXPORT_NAME_REPLY_SIZE = 10; // size + transmission flags (then 124 zeroes unless NO_ZEROES)
export const EXPORT_NAME_ZEROES = 124;

/** §Handshake flags (16 bits, server). */
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;

/** §Client flags (32 bits). Any other bit set: the server MUST drop the connection. */
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;

/** §Transmission flags (16 bits). */
export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_ROTATIONAL = 1 << 4;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
export const NBD_FLAG_SEND_DF = 1 << 7;
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;
export const NBD_FLAG_SEND_CACHE = 1 << 10;
export const NBD_FLAG_SEND_FAST_ZERO = 1 << 11;

/** §Option types. */
export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_STARTTLS = 5;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;
export const NBD_OPT_LIST_META_CONTEXT = 9;
export const NBD_OPT_SET_META_CONTEXT = 10;
export const NBD_OPT_EXTENDED_HEADERS = 11;

/** §Option reply types; errors have bit 31 set. Held as unsigned 32-bit numbers. */
export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
export const NBD_REP_META_CONTEXT = 4;
export const NBD_REP_ERR_UNSUP = 0x80000001;
export const NBD_REP_ERR_POLICY = 0x80000002;
export const NBD_REP_ERR_INVALID = 0x80000003;
export const NBD_REP_ERR_PLATFORM = 0x80000004;
export const NBD_REP_ERR_TLS_REQD = 0x80000005;
export const NBD_REP_ERR_UNKNOWN = 0x80000006;
export const NBD_REP_ERR_SHUTDOWN = 0x80000007;
export const NBD_REP_ERR_BLOCK_SIZE_REQD = 0x80000008;
export const NBD_REP_ERR_TOO_BIG = 0x80000009;

/** §NBD_REP_INFO information types (16 bits). */
export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_NAME = 1;
export const NBD_INFO_DESCRIPTION = 2;
export const NBD_INFO_BLOCK_SIZE = 3;

/** §Structured reply flags. */
export const NBD_REPLY_FLAG_DONE = 1 << 0;

/** §Structured reply types; error chunks have bit 15 set. */
export const NBD_REPLY_TYPE_NONE = 0;
export const NBD_REPLY_TYPE_OFFSET_DATA = 1;
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5;
export const NBD_REPLY_TYPE_ERROR = (1 << 15) + 1;
export const NBD_REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;

/** §`base:allocation` metadata context: its name and its status flags. */
export const BASE_ALLOCATION = 'base:allocation';
export const NBD_STATE_HOLE = 1 << 0;
export const NBD_STATE_ZERO = 1 << 1;

/** §Request types. */
export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_CACHE = 5;
export const NBD_CMD_WRITE_ZEROES = 6;
export const NBD_CMD_BLOCK_STATUS = 7;

/** §Command flags (16 bits). */
export const NBD_CMD_FLAG_FUA = 1 << 0;
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1;
export const NBD_CMD_FLAG_DF = 1 << 2;
export const NBD_CMD_FLAG_REQ_ONE = 1 << 3;
export const NBD_CMD_FLAG_FAST_ZERO = 1 << 4;

/** §Error values: the only errors a reply may carry. */
export const NBD_EPERM = 1;
export const NBD_EIO = 5;
export const NBD_ENOMEM = 12;
export const NBD_EINVAL = 22;
export const NBD_ENOSPC = 28;
export const NBD_EOVERFLOW = 75;
export const NBD_ENOTSUP = 95;
export const NBD_ESHUTDOWN = 108;

/**
 * §Size constraints: a payload up to 2^25 bytes "SHOULD NOT be considered a denial of service
 * attack", and it is the default maximum payload a server should accept when none is advertised.
 */
export const NBD_PORTABLE_MAX_PAYLOAD = 1 << 25;
/** §Size constraints: a minimum block size MUST NOT be larger than 2^16. */
export const NBD_MAX_MIN_BLOCK_SIZE = 1 << 16;
/** §Conventions: a string MUST be no longer than 4096 bytes. */
export const NBD_MAX_STRING = 4096;
/** The IANA port for NBD (§Newstyle negotiation). */
export const NBD_DEFAULT_PORT = 10809;

/** Names of the request types, for logs and counters. */
export function commandName(type: number): string {
  switch (type) {
    case NBD_CMD_READ:
      return 'read';
    case NBD_CMD_WRITE:
      return 'write';
    case NBD_CMD_DISC:
      return 'disc';
    case NBD_CMD_FLUSH:
      return 'flush';
    case NBD_CMD_TRIM:
      return 'trim';
    case NBD_CMD_CACHE:
      return 'cache';
    case NBD_CMD_WRITE_ZEROES:
      return 'write-zeroes';
    case NBD_CMD_BLOCK_STATUS:
      return 'block-status';
    default:
      return `unknown(${type})`;
  }
}

/** Names of the NBD error values, for logs and counters. */
export function errorName(err: number): string {
  switch (err) {
    case NBD_EPERM:
      return 'EPERM';
    case NBD_EIO:
      return 'EIO';
    case NBD_ENOMEM:
      return 'ENOMEM';
    case NBD_EINVAL:
      return 'EINVAL';
    case NBD_ENOSPC:
      return 'ENOSPC';
    case NBD_EOVERFLOW:
      return 'EOVERFLOW';
    case NBD_ENOTSUP:
      return 'ENOTSUP';
    case NBD_ESHUTDOWN:
      return 'ESHUTDOWN';
    default:
      return `E${err}`;
  }
}
