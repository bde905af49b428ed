/**
 * Whether this container can run the kernel-backed node, and if not, why, in one line a user can act on. It needs:
 * - CAP_NET_ADMIN, for tunl0, the routes, the veths and their sysctls;
 * - CAP_SYS_ADMIN, for the pods' network namespaces (`ip netns add` mounts them; setns enters them) and to make
 *   the container's read-only /proc/sys writable for the per-interface sysctls (a privileged container has both);
 * - /dev/net/tun, for the TUN device that stands in for the ipip module's tunl0;
 * - no kernel tunl0: where the host kernel has the ipip module loaded, every network namespace gets its fallback
 *   device `tunl0@NONE`, and a TUN of that name cannot be made.
 */
import { existsSync, readFileSync } from 'node:fs';

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;
/** ARPHRD_TUNNEL: the ipip module's devices (include/uapi/linux/if_arp.h). */
const ARPHRD_TUNNEL = 768;

export interface KernelHost {
  readFile(path: string): string;
  exists(path: string): boolean;
}

const THIS_HOST: KernelHost = {
  readFile: (path) => readFileSync(path, 'utf8'),
  exists: existsSync,
};

function effectiveCapabilities(host: KernelHost): bigint {
  const line = /^CapEff:\s*([0-9a-f]+)$/m.exec(host.readFile('/proc/self/status'));
  return line ? BigInt(`0x${line[1]}`) : 0n;
}

function has(capabilities: bigint, bit: number): boolean {
  return ((capabilities >> BigInt(bit)) & 1n) === 1n;
}

/** undefined when the kernel-backed node can run here; otherwise what is missing. */
export function kernelDataplaneUnavailable(host: KernelHost = THIS_HOST): string | undefined {
  const capabilities = effectiveCapabilities(host);
  const missing = [
    ...(has(capabilities, CAP_NET_ADMIN) ? [] : ['NET_ADMIN']),
    ...(has(capabilities, CAP_SYS_ADMIN) ? [] : ['SYS_ADMIN']),
  ];
  if (missing.length > 0) return `the container lacks ${missing.join(' and ')} (cap_add, or privileged)`;
  if (!host.exists('/dev/net/tun')) return 'the container has no /dev/net/tun (devices: [/dev/net/tun])';
  if (
    host.exists('/sys/class/net/tunl0/type') &&
    Number(host.readFile('/sys/class/net/tunl0/type')) === ARPHRD_TUNNEL
  ) {
    return "this host's kernel has the ipip module, whose tunl0@NONE every namespace gets, so no TUN can take its name";
  }
  return undefined;
}
