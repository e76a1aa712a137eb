/**
 * TLS for NBD (proto.md §TLS support): the client asks with NBD_OPT_STARTTLS during option
 * haggling, the server acknowledges, and the rest of the session runs inside TLS on the same socket.
 *
 * The configuration follows nbdkit's and qemu-nbd's, so the files an operator already has work here:
 *   - `mode`: 'off' (NOTLS: STARTTLS refused), 'on' (a client may upgrade; plain clients served too),
 *     'require' (FORCEDTLS: every option but STARTTLS and ABORT answered NBD_REP_ERR_TLS_REQD before TLS);
 *   - a pre-shared key file in GnuTLS psktool's format (`identity:hexkey`, one per line), or
 *   - an X.509 directory holding `server-cert.pem` and `server-key.pem`, and `ca-cert.pem` when clients
 *     must present a certificate signed by it (`verifyPeer`).
 *
 * Key material is read once, when the server starts; files readable by group or others are refused
 * (a PSK is the export's only password).
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { NbdError } from './errors.js';

export type NbdTlsMode = 'off' | 'on' | 'require';

export interface NbdTlsOptions {
  mode: NbdTlsMode;
  /** A psktool-format key file (`identity:hexkey` lines). */
  pskFile?: string;
  /** A directory with server-cert.pem, server-key.pem (and ca-cert.pem for verifyPeer). */
  certificates?: string;
  /** Require a client certificate signed by the directory's ca-cert.pem (X.509 only). */
  verifyPeer?: boolean;
}

/** What a connection needs to upgrade: a ready secure context, and the keys by identity for PSK. */
export interface NbdTls {
  readonly mode: NbdTlsMode;
  readonly kind: 'psk' | 'x509';
  /** Wrap a socket whose STARTTLS was acknowledged; the TLS handshake starts at once. */
  upgrade(socket: Socket): tls.TLSSocket;
}

const identities = new WeakMap<tls.TLSSocket, string>();

/** The PSK identity a client authenticated with (undefined for X.509 or before the handshake). */
export function pskIdentity(socket: tls.TLSSocket): string | undefined {
  return identities.get(socket);
}

/** What went wrong in a TLS handshake, without OpenSSL's file and line. */
export function tlsFailure(err: Error): string {
  const reason = (err as { reason?: unknown }).reason;
  return typeof reason === 'string' && reason ? reason : err.message.trim();
}

/** PSK cipher suites of TLS 1.2 that GnuTLS (libnbd, qemu) and OpenSSL (Node) both speak; TLS 1.3 PSK is offered too. */
const PSK_CIPHERS = 'PSK-AES256-GCM-SHA384:PSK-AES128-GCM-SHA256:PSK-CHACHA20-POLY1305:ECDHE-PSK-AES256-CBC-SHA384:ECDHE-PSK-AES128-CBC-SHA256';
const MAX_PSK_FILE = 1 << 20;

function tlsError(message: string, fix: string, cause?: unknown): NbdError {
  return new NbdError('ERR_NBD_TLS', message, { fix, ...(cause !== undefined ? { cause } : {}) });
}

/** Read a secret file: it must exist, be a regular file, and not be readable by group or others. */
function readSecret(path: string, what: string): Buffer {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw tlsError(`cannot read the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, `create it, or point the policy at the right file`, e);
  }
  if (!st.isFile()) throw tlsError(`the ${what} ${path} is not a regular file`, 'point the policy at the file itself');
  if ((st.mode & 0o077) !== 0) {
    throw tlsError(`the ${what} ${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)})`, `chmod 600 ${path}`);
  }
  if (st.size > MAX_PSK_FILE) throw tlsError(`the ${what} ${path} is ${st.size} bytes; key files are small`, 'point the policy at the key file');
  return readFileSync(path);
}

/** Parse psktool's format: `identity:hexkey` per line; blank lines and `#` comments skipped. */
export function parsePskFile(text: string, path = 'the PSK file'): Map<string, Buffer> {
  const keys = new Map<string, Buffer>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) continue;
    const at = `${path}:${i + 1}`;
    const colon = line.lastIndexOf(':');
    if (colon <= 0) throw tlsError(`${at}: not "identity:hexkey"`, 'make keys with psktool -u NAME -p FILE (Debian package gnutls-bin)');
    const identity = line.slice(0, colon);
    const hex = line.slice(colon + 1);
    if (!/^([0-9a-fA-F]{2}){16,256}$/.test(hex)) {
      throw tlsError(`${at}: the key of "${identity}" is not 16 to 256 bytes of hex`, 'make keys with psktool -u NAME -p FILE (32 bytes by default)');
    }
    if (keys.has(identity)) throw tlsError(`${at}: identity "${identity}" is there twice`, 'keep one line per identity');
    keys.set(identity, Buffer.from(hex, 'hex'));
  }
  if (keys.size === 0) throw tlsError(`${path} holds no key`, 'make one with psktool -u NAME -p FILE');
  return keys;
}

/** Load the key material once and return what connections upgrade with; undefined for mode 'off'. */
export function loadNbdTls(options: NbdTlsOptions): NbdTls | undefined {
  if (options.mode === 'off') {
    if (options.pskFile || options.certificates) throw tlsError('TLS keys are given but TLS is off', `set tls: on or tls: require, or remove the keys`);
    return undefined;
  }
  if (!options.pskFile === !options.certificates) {
    throw tlsError(`TLS ${options.mode} needs exactly one of a PSK file and a certificates directory`, 'give tls-psk: FILE or tls-certificates: DIR');
  }
  if (options.pskFile) {
    if (options.verifyPeer) throw tlsError('tls-verify-peer is for X.509 certificates; a PSK already authenticates the client', 'remove tls-verify-peer');
    const path = options.pskFile;
    const keys = parsePskFile(readSecret(path, 'PSK file').toString('utf8'), path);
    const context = tls.createSecureContext({ ciphers: PSK_CIPHERS, minVersion: 'TLSv1.2' });
    return {
      mode: options.mode,
      kind: 'psk',
      upgrade: (socket) =>
        new tls.TLSSocket(socket, {
          isServer: true,
          secureContext: context,
          pskCallback: (s: tls.TLSSocket, identity: string) => {
            const key = keys.get(identity);
            if (key) identities.set(s, identity);
            return key ?? null;
          },
        } as tls.TLSSocketOptions),
    };
  }
  const dir = options.certificates!;
  let cert: Buffer;
  try {
    cert = readFileSync(join(dir, 'server-cert.pem'));
  } catch (e) {
    throw tlsError(
      `cannot read ${join(dir, 'server-cert.pem')}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      'the directory holds server-cert.pem and server-key.pem, as for nbdkit --tls-certificates',
      e,
    );
  }
  const key = readSecret(join(dir, 'server-key.pem'), 'server key');
  let ca: Buffer | undefined;
  if (options.verifyPeer) {
    try {
      ca = readFileSync(join(dir, 'ca-cert.pem'));
    } catch (e) {
      throw tlsError(
        `tls-verify-peer needs ${join(dir, 'ca-cert.pem')}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
        'put the CA that signs client certificates there',
        e,
      );
    }
  }
  let context: tls.SecureContext;
  try {
    context = tls.createSecureContext({ cert, key, minVersion: 'TLSv1.2', ...(ca ? { ca } : {}) });
  } catch (e) {
    throw tlsError(
      `the certificates in ${dir} are refused: ${(e as Error).message}`,
      'server-cert.pem and server-key.pem must be a PEM certificate and its private key',
      e,
    );
  }
  const verifyPeer = options.verifyPeer === true;
  return {
    mode: options.mode,
    kind: 'x509',
    upgrade: (socket) => new tls.TLSSocket(socket, { isServer: true, secureContext: context, requestCert: verifyPeer, rejectUnauthorized: verifyPeer }),
  };
}
