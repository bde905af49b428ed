/**
 * Each pod as the Calico CNI plugin wires it, in the node container's kernel: a network namespace (`cni-<uuid>`),
 * a veth pair with the host side `cali…` (MAC ee:ee:ee:ee:ee:ee, proxy ARP on, so the pod's gateway 169.254.1.1
 * answers from the host) and the pod side eth0 with the pod's /32, its MTU and the two routes of the plugin.
 *
 * Every `cni-*` namespace and `cali*` link in a node container is this module's: only the CNI makes them, as on a
 * real node. So a start after a crash deletes the ones it does not want and makes the wanted ones afresh.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { podDataplane, type ClusterState, type PodState } from '../../calico/index.js';
import type { Link } from '../../routing/index.js';
import { renderIpRoute } from '../../routing/render.js';
import { runIp, runIpBatch, runIpBatchIn } from '../iproute2.js';

export const NETNS_DIRECTORY = '/run/netns';

export function netnsPath(pod: PodState): string {
  return `${NETNS_DIRECTORY}/${pod.netns}`;
}

/** What the kernel side of a pod is made with; tests of the wiring pass fakes. */
export interface KernelTools {
  ip(args: readonly string[]): Promise<string>;
  batch(lines: readonly string[]): Promise<void>;
  batchIn(netns: string, lines: readonly string[]): Promise<void>;
  /** Writes one /proc/sys value, e.g. `net/ipv4/conf/cali…/proxy_arp`. */
  sysctl(key: string, value: string): void;
  /** Runs a command inside the namespace (`ip netns exec NETNS …`). */
  inNamespace(netns: string, command: readonly string[]): Promise<void>;
}

const PROC_SYS = '/proc/sys';

/**
 * Docker mounts /proc/sys read-only; with CAP_SYS_ADMIN the container may remount its own view writable, as a
 * privileged container (a kind node) has it from the start. Only this container's mount namespace changes.
 */
function writeSysctl(key: string, value: string): void {
  const file = `${PROC_SYS}/${key}`;
  try {
    writeFileSync(file, value);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EROFS') throw error;
    remountWritable();
    writeFileSync(file, value);
  }
}

let remounted = false;
function remountWritable(): void {
  if (remounted) return;
  // Synchronous on purpose: a handful of sysctl writes per pod, and nothing else may run between them.
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  if (!mounts.split('\n').some((line) => line.split(' ')[1] === PROC_SYS)) return;
  execFileSync('mount', ['-o', 'remount,rw', PROC_SYS], { stdio: ['ignore', 'ignore', 'pipe'] });
  remounted = true;
}

export const SYSTEM_TOOLS: KernelTools = {
  ip: (args) => runIp(args),
  batch: runIpBatch,
  batchIn: runIpBatchIn,
  sysctl: writeSysctl,
  inNamespace: async (netns, command) => {
    await runIp(['netns', 'exec', netns, ...command]);
  },
};

/** The routes of the pod's namespace, its gateway's link route first so that the default route's gateway resolves. */
function podRouteLines(cluster: ClusterState, pod: PodState): string[] {
  const routes = [...podDataplane(cluster, pod.name).routes].sort(
    (a, b) =>
      Number(a.kind === 'unicast' && a.gateway !== undefined) - Number(b.kind === 'unicast' && b.gateway !== undefined),
  );
  return renderIpRoute(routes)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) => `route replace ${line}`);
}

export class PodNamespaces {
  /** The pods wired now, by name. */
  private readonly wired = new Map<string, PodState>();

  constructor(
    private readonly log: (line: string) => void,
    private readonly tools: KernelTools = SYSTEM_TOOLS,
  ) {}

  /** Namespaces and cali links a previous run left behind: all of them go, and the wanted ones are made again. */
  async clearLeftovers(): Promise<void> {
    const namespaces = (await this.tools.ip(['netns', 'list']))
      .split('\n')
      .map((line) => line.split(' ')[0])
      .filter((name) => name.startsWith('cni-'));
    const links = (await this.tools.ip(['-o', 'link', 'show', 'type', 'veth']))
      .split('\n')
      .map((line) => /^\d+: (cali[^@:]+)/.exec(line)?.[1])
      .filter((name): name is string => name !== undefined);
    if (namespaces.length + links.length === 0) return;
    await this.tools
      .batch([...links.map((link) => `link del ${link}`), ...namespaces.map((netns) => `netns del ${netns}`)])
      .catch(() => {}); // -force went on past each failure; what failed is gone already or not ours to fix
    this.log(`removed what a previous run left: ${links.length} cali links, ${namespaces.length} namespaces`);
  }

  /**
   * Wires the pods that are new, unwires those that left (calling `beforeUnwire` first), leaves the rest alone.
   * Returns the pods that changed.
   */
  async converge(
    cluster: ClusterState,
    pods: readonly PodState[],
    hostLinks: readonly Link[],
    beforeUnwire: (pod: PodState) => void,
  ): Promise<{ added: PodState[]; removed: PodState[] }> {
    const wanted = new Map(pods.map((pod) => [pod.name, pod]));
    const removed = [...this.wired.values()].filter((pod) => !sameWiring(wanted.get(pod.name), pod));
    const added = pods.filter((pod) => !sameWiring(this.wired.get(pod.name), pod));
    for (const pod of removed) {
      beforeUnwire(pod);
      await this.unwire(pod);
    }
    for (const pod of added) {
      const link = hostLinks.find((candidate) => candidate.name === pod.hostInterface);
      await this.wire(cluster, pod, link);
    }
    return { added, removed };
  }

  /** Removes every pod's wiring: the node stops cleanly and leaves nothing. */
  async removeAll(): Promise<void> {
    for (const pod of [...this.wired.values()]) await this.unwire(pod);
  }

  private async wire(cluster: ClusterState, pod: PodState, hostLink: Link | undefined): Promise<void> {
    const cali = pod.hostInterface;
    const hostMac = hostLink?.linkAddress ?? 'ee:ee:ee:ee:ee:ee';
    await this.tools.batch([
      `netns add ${pod.netns}`,
      `link add ${cali} mtu ${pod.mtu} type veth peer name eth0 mtu ${pod.mtu} netns ${pod.netns}`,
      `link set ${cali} address ${hostMac} up`,
    ]);
    // Calico's per-interface settings: answer ARP for the gateway address, at once, and drop spoofed sources.
    this.tools.sysctl(`net/ipv4/conf/${cali}/proxy_arp`, '1');
    this.tools.sysctl(`net/ipv4/neigh/${cali}/proxy_delay`, '0');
    this.tools.sysctl(`net/ipv4/conf/${cali}/rp_filter`, '1');
    await this.tools.batchIn(pod.netns, [
      'link set lo up',
      `link set eth0 address ${pod.podMac} up`,
      // brd as Calico's CNI plugin leaves it (netlink computes it, and a /32's is the address itself).
      `addr add ${pod.ip}/32 brd ${pod.ip} dev eth0`,
      ...podRouteLines(cluster, pod),
    ]);
    // A pod of this cluster has no IPv6 (the seed's `ip addr` in a pod lists none), and the pod's /proc/sys/net is
    // only reachable from inside its namespace.
    await this.tools.inNamespace(pod.netns, [
      'sh',
      '-c',
      'for key in all default lo eth0; do echo 1 > /proc/sys/net/ipv6/conf/$key/disable_ipv6; done 2>/dev/null; true',
    ]);
    this.wired.set(pod.name, pod);
    this.log(`pod ${pod.name}: namespace ${pod.netns}, ${cali} <-> eth0 ${pod.ip}/32`);
  }

  private async unwire(pod: PodState): Promise<void> {
    // Deleting one end deletes the pair; the namespace goes once nothing holds it (the agent closed its sockets first).
    await this.tools.batch([`link del ${pod.hostInterface}`, `netns del ${pod.netns}`]).catch((error: unknown) => {
      this.log(`pod ${pod.name}: removing its namespace: ${error instanceof Error ? error.message : String(error)}`);
    });
    this.wired.delete(pod.name);
    this.log(`pod ${pod.name}: namespace ${pod.netns} removed`);
  }
}

function sameWiring(a: PodState | undefined, b: PodState): boolean {
  return (
    a !== undefined &&
    a.netns === b.netns &&
    a.hostInterface === b.hostInterface &&
    a.ip.equals(b.ip) &&
    a.mtu === b.mtu &&
    a.podMac === b.podMac
  );
}
