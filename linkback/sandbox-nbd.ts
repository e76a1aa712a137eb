/**
 * The `nbd` linkback: a sandbox's block ring exported by an `NbdServer` on the policy's unix socket
 * (or TCP port on 127.0.0.1), under the policy's export name. The server and its clients outlive
 * container restarts: the export's device is one `SandboxBlockDevice` over the supervisor's block
 * client, which replays what a dead container had in flight.
 *
 * A unix socket path that exists is taken over only when it is a stale socket (nothing answers a
 * connect); a live one, or a file that is not a socket, stops the start with the reason.
 */
import { rmSync } from 'node:fs';
import { claimSocketPath } from '../common/unix-socket.js';
import { splitHostPort } from '../policies/addresses.js';
import { NbdServer } from './nbd/server.js';
import { LinkbackServiceError, type Linkback, type LinkbackContext } from './registry.js';
import { SandboxBlockDevice } from './sandbox-block.js';

function prepareSocket(path: string): Promise<void> {
  return claimSocketPath(path, {
    error: (message, fix) => new LinkbackServiceError('ERR_LINKBACK_SOCKET', message, { fix }),
    what: 'NBD',
    busyFix: 'stop it (is another dmabox running?) or set another linkback.nbd.socket in the policy',
    notSocketFix: `remove ${path} or set another linkback.nbd.socket in the policy`,
  });
}

/** A client's URI for an export at `unix:/path` or `tcp:HOST:PORT` (libnbd's syntax; TLS: nbds, with the key file to name). */
export function nbdUri(exportName: string, address: string, tls?: { psk?: string; certificates?: string }): string {
  const query: string[] = [];
  if (tls?.psk) query.push(`tls-psk-file=${tls.psk}`);
  if (tls?.certificates) query.push('tls-certificates=DIR-WITH-ca-cert.pem');
  const user = tls?.psk ? 'IDENTITY@' : '';
  if (address.startsWith('unix:')) return `nbd${tls ? 's' : ''}+unix://${user}/${exportName}?${['socket=' + address.slice(5), ...query].join('&')}`;
  const hostPort = address.slice(4);
  const host = hostPort.slice(0, hostPort.lastIndexOf(':'));
  const shown = host.includes(':') ? `[${host}]${hostPort.slice(host.length)}` : hostPort;
  return `nbd${tls ? 's' : ''}://${user}${shown}/${exportName}${query.length ? '?' + query.join('&') : ''}`;
}

export async function startNbdLinkback(ctx: LinkbackContext): Promise<Linkback> {
  const { supervisor: s, policy } = ctx;
  const spec = policy.linkback && 'nbd' in policy.linkback ? policy.linkback.nbd : undefined;
  if (!spec) throw new LinkbackServiceError('ERR_LINKBACK_CONFIG', `policy ${policy.name} has no nbd linkback`);
  const device = new SandboxBlockDevice(s.block, { label: `sandbox ${policy.name}` });
  const name = spec.export;
  const tls = spec.tls === 'off' ? undefined : { psk: spec['tls-psk'], certificates: spec['tls-certificates'] };
  const server = new NbdServer({
    tls: {
      mode: spec.tls,
      ...(spec['tls-psk'] !== undefined ? { pskFile: spec['tls-psk'] } : {}),
      ...(spec['tls-certificates'] !== undefined ? { certificates: spec['tls-certificates'] } : {}),
      verifyPeer: spec['tls-verify-peer'],
    },
    exports: [{ name, device, description: `dmabox sandbox ${policy.name}: ${s.driver.label} driver in a container, ${s.device.description}` }],
    onEvent: (e) => {
      if (e.type === 'transmission') ctx.log(`nbd client ${e.conn} attached to export '${e.export}'`);
      else if (e.type === 'close' && e.export !== undefined) ctx.log(`nbd client ${e.conn} left: ${e.reason}`);
      else if (e.type === 'device-error')
        ctx.log(
          `nbd client ${e.conn}: ${e.command} of ${e.length} bytes at ${e.offset} failed (${e.kind}): ${(e.error as Error)?.message ?? e.error}`,
          'error',
        );
      else if (e.type === 'protocol-error') ctx.log(`nbd client ${e.conn}: protocol error: ${e.message}`, 'warn');
      else if (e.type === 'tls') ctx.log(`nbd client ${e.conn}: ${e.protocol} ${e.cipher}${e.identity !== undefined ? ` as '${e.identity}'` : ''}`);
      else if (e.type === 'tls-error') ctx.log(`nbd client ${e.conn} from ${e.peer}: TLS handshake failed: ${e.message}`, 'warn');
    },
  });
  let socketPath: string | undefined;
  try {
    if ('socket' in spec) {
      await prepareSocket(spec.socket);
      socketPath = await server.listenUnix(spec.socket);
    } else if ('port' in spec) {
      await server.listenTcp({ host: '127.0.0.1', port: spec.port });
    } else {
      await server.listenTcp(splitHostPort(spec.address));
    }
  } catch (e) {
    await server.close();
    throw e;
  }
  const addresses = server.addresses();
  let closing: Promise<void> | undefined;
  return {
    kind: 'nbd',
    sandbox: policy.name,
    addresses,
    usage: () => {
      const uri = nbdUri(name, addresses[0]!, tls);
      const port = addresses[0]!.split(':').pop();
      const kernel = socketPath ? `nbd-client -unix ${socketPath} /dev/nbd0 -N ${name}` : `nbd-client 127.0.0.1 ${port} /dev/nbd0 -N ${name}`;
      if (tls)
        return [
          `nbdinfo '${uri}'`,
          `nbdcopy disk.img '${uri}'   # and back: nbdcopy '${uri}' out.img`,
          tls.psk
            ? `kernel (root): nbd-client's TLS takes X.509 certificates only; with a PSK use libnbd's nbdfuse '${uri}' DIR`
            : `kernel (root): modprobe nbd && nbd-client ${socketPath ? `-unix ${socketPath}` : `HOST ${port}`} /dev/nbd0 -N ${name} -cacertfile CA.pem`,
        ];
      return [
        `nbdinfo '${uri}'`,
        `nbdcopy disk.img '${uri}'   # and back: nbdcopy '${uri}' out.img`,
        `qemu-img info '${uri}'`,
        `kernel (root): modprobe nbd && ${kernel}   # detach: nbd-client -d /dev/nbd0`,
      ];
    },
    nbdStats: () => server.stats(),
    status: () => ({ kind: 'nbd', sandbox: policy.name, export: name, addresses, size: device.size, blockSize: device.blockSize, ...server.stats() }),
    close: () => {
      closing ??= server.close().then(() => {
        try {
          if (socketPath) rmSync(socketPath, { force: true });
        } catch {
          // In root's folder after the manager left root: the spawner removes it when it exits.
        }
      });
      return closing;
    },
  };
}
