/**
 * The tracer's ready-made examples, chosen from the lab as it is: the seed's own path (a pod on one worker to a pod
 * on another), two pods of one node, a node to a pod, the MTU with DF, and an address that only a blackhole route
 * holds. An example whose pods the lab does not have yet (before `kubectl apply`) is left out.
 */
import type { ClusterState, NodeState, PodState } from '../../../calico/index.js';
import { Ipv4Address } from '../../../routing/index.js';
import type { TraceExample } from '../page-protocol.js';

/** The tunnel's MTU plus 8: fits eth0's 1500, but not tunl0 (nor a pod's eth0, which Calico gives tunl0's MTU). */
const OVER_TUNNEL_MTU = 1488;

/** Workers first, then by name: the seed's example is worker-node01 → worker-node02. */
function byRole(a: NodeState, b: NodeState): number {
  const rank = (node: NodeState) => (node.role === 'control-plane' ? 1 : 0);
  return rank(a) - rank(b) || a.name.localeCompare(b.name);
}

/** An address of `node`'s first block that no pod and no tunnel holds: only the block's blackhole route does. */
function unheldAddress(cluster: ClusterState, node: NodeState): Ipv4Address | undefined {
  const block = node.blocks[0];
  if (block === undefined) return undefined;
  const held = new Set([
    ...cluster.pods.map((pod) => pod.ip.value),
    ...cluster.nodes.flatMap((n) => (n.tunnelAddress ? [n.tunnelAddress.value] : [])),
  ]);
  const size = 2 ** (32 - block.length);
  const base = block.address.value;
  for (let offset = size - 2; offset > 0; offset--) {
    const address = (base + offset) >>> 0;
    if (!held.has(address)) return Ipv4Address.fromUint32(address);
  }
  return undefined;
}

export function traceExamples(cluster: ClusterState): TraceExample[] {
  const nodes = [...cluster.nodes].sort(byRole);
  const podsOn = (node: NodeState): PodState[] =>
    cluster.pods.filter((pod) => pod.node === node.name).sort((a, b) => a.name.localeCompare(b.name));
  const withPods = nodes.filter((node) => podsOn(node).length > 0);
  const examples: TraceExample[] = [];
  const [first, second] = withPods;
  if (first !== undefined && second !== undefined) {
    const from = podsOn(first)[0];
    const to = podsOn(second)[0];
    examples.push(
      {
        id: 'pod-to-pod',
        title: `Pod to pod across nodes: ${first.name} → ${second.name}`,
        description: `The seed's path: ${from.name} on ${first.name} pings ${to.name} on ${second.name}, through tunl0 and the node network.`,
        request: { from: from.name, to: to.name, protocol: 'icmp', df: true },
      },
      {
        id: 'node-to-pod',
        title: `Node to pod: ${first.name} → ${to.name}`,
        description: `${first.name}'s own stack pings a pod on ${second.name}: the packet leaves from the tunnel address.`,
        request: { from: first.name, to: to.name, protocol: 'icmp', df: true },
      },
      {
        id: 'tcp-8080',
        title: `TCP to :8080 across nodes`,
        description: `${from.name} opens a connection to hello-app on ${to.name}: the SYN and the SYN-ACK.`,
        request: { from: from.name, to: to.name, protocol: 'tcp', df: true },
      },
    );
    examples.push({
      id: 'mtu-df',
      title: `MTU 1480 with DF: ${OVER_TUNNEL_MTU} bytes`,
      description: `${from.name} pings ${to.name} with ${OVER_TUNNEL_MTU} bytes and DF, more than the tunnel's 1480: Calico gives the pod's eth0 tunl0's MTU, so the pod's own kernel refuses to send it.`,
      request: { from: from.name, to: to.name, protocol: 'icmp', size: OVER_TUNNEL_MTU, df: true },
    });
    const blackholed = unheldAddress(cluster, second);
    if (blackholed !== undefined) {
      examples.push({
        id: 'blackhole',
        title: `A blackholed address: ${blackholed.toString()}`,
        description: `${from.name} pings an address of ${second.name}'s block that no pod holds.`,
        request: { from: from.name, to: blackholed.toString(), protocol: 'icmp', df: true },
      });
    }
  }
  const shared = withPods.find((node) => podsOn(node).length >= 2);
  if (shared !== undefined) {
    const [a, b] = podsOn(shared);
    examples.splice(1, 0, {
      id: 'same-node',
      title: `Pod to pod on one node: ${shared.name}`,
      description: `${a.name} pings ${b.name}: from one cali interface to another, never through the tunnel.`,
      request: { from: a.name, to: b.name, protocol: 'icmp', df: true },
    });
  }
  return examples;
}
