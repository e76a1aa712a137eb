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

export function nbdUri(exportName: string, address: string): string {
  if (address.startsWith('unix:')) return `nbd+unix:///${exportName}?socket=${address.slice(5)}`;
  return `nbd://${address.slice(4)}/${exportName}`;
}

export async function startNbdLinkback(ctx: LinkbackContext): Promise<Linkback> {
  const { supervisor: s, policy } = ctx;
  const spec = policy.linkback && 'nbd' in policy.linkback ? policy.linkback.nbd : undefined;
  if (!spec) throw new LinkbackServiceError('ERR_LINKBACK_CONFIG', `policy ${policy.name} has no nbd linkback`);
  const device = new SandboxBlockDevice(s.block, { label: `sandbox ${policy.name}` });
  const name = spec.export;
  const server = new NbdServer({
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
    },
  });
  let socketPath: string | undefined;
  try {
    if ('socket' in spec) {
      await prepareSocket(spec.socket);
      socketPath = await server.listenUnix(spec.socket);
    } else {
      await server.listenTcp({ host: '127.0.0.1', port: spec.port });
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
      const uri = nbdUri(name, addresses[0]!);
      const kernel = socketPath
        ? `nbd-client -unix ${socketPath} /dev/nbd0 -N ${name}`
        : `nbd-client 127.0.0.1 ${addresses[0]!.split(':').pop()} /dev/nbd0 -N ${name}`;
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
