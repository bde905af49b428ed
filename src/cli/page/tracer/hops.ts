/**
 * A probe's sightings told as the data path's hops: what each tap saw, and between them what the node did, its route
 * lookup (longest prefix match over the node's `ip route` lines) and, on a receiving node, the check of the outer
 * source against the cluster's nodes before the outer header comes off.
 */
import type { ClusterState, PodState } from '../../../calico/index.js';
import { nodeDataplane } from '../../../calico/index.js';
import { IP_PROTOCOL, Ipv4View, ipv4ToString } from '../../../wire/index.js';
import { compareRoutesInKernelOrder, renderIpRoute, type Route } from '../../../routing/index.js';
import type { Hop, PacketLayer, RouteLookup } from '../page-protocol.js';
import { changedFields, dissect } from './dissect.js';
import type { Sighting } from './flow.js';

/** What the hops need to know of a node: its routes in `ip route`'s order, and its pods by cali interface. */
export interface NodeTables {
  name: string;
  ip: number;
  tunnelAddress: number | undefined;
  routes: Route[];
  lines: string[];
  pods: Map<string, PodState>;
}

export function nodeTables(cluster: ClusterState): Map<string, NodeTables> {
  return new Map(
    cluster.nodes.map((node) => {
      const routes = [...nodeDataplane(cluster, node.name).routes].sort(compareRoutesInKernelOrder);
      const pods = new Map(cluster.pods.filter((pod) => pod.node === node.name).map((pod) => [pod.hostInterface, pod]));
      return [
        node.name,
        {
          name: node.name,
          ip: node.ip.value,
          tunnelAddress: node.tunnelAddress?.value,
          routes,
          lines: routes.map((route) => renderIpRoute([route]).trimEnd()),
          pods,
        },
      ];
    }),
  );
}

/** The node's route lookup for `dst`: every prefix that holds it, and the longest. */
export function routeLookup(
  node: NodeTables,
  dst: number,
): RouteLookup & { route: Route | undefined; local?: boolean } {
  const candidates = node.routes
    .map((route, line) => ({ route, line }))
    .filter(({ route }) => route.destination.contains(dst))
    .map(({ route, line }) => ({ line, prefixLength: route.destination.length }));
  const best = candidates.reduce<(typeof candidates)[number] | undefined>(
    (longest, candidate) =>
      longest === undefined || candidate.prefixLength > longest.prefixLength ? candidate : longest,
    undefined,
  );
  const address = ipv4ToString(dst);
  // The kernel reads its local table (the node's own addresses) before the main one that `ip route` shows.
  if (dst === node.ip || dst === node.tunnelAddress) {
    const device = dst === node.ip ? 'eth0' : 'tunl0';
    const why = `${address} is ${node.name}'s own address (${device}'s): the kernel's local table, which it reads before the main table, delivers it to the node's own stack.`;
    return { lines: node.lines, matched: null, candidates, why, route: undefined, local: true };
  }
  const route = best === undefined ? undefined : node.routes[best.line];
  let why: string;
  if (best === undefined || route === undefined) {
    why = `No route holds ${address}: the kernel drops the packet and answers ICMP 3/0 (network unreachable).`;
  } else {
    const prefixes = candidates.map((candidate) => String(node.routes[candidate.line].destination)).join(', ');
    why =
      candidates.length === 1
        ? `Only ${String(route.destination)} holds ${address}, so that route is used.`
        : `${address} is in ${prefixes}: the longest prefix, /${best.prefixLength}, wins.`;
    if (route.kind === 'blackhole') {
      why += ` It is a blackhole: the block is this node's, and no pod holds ${address}, so the kernel discards it without an ICMP.`;
    } else if (route.dev === 'tunl0') {
      why += ` It goes through tunl0 to the node ${String(route.gateway)}, which owns the block.`;
    } else if (route.dev.startsWith('cali')) {
      why += ` It is the pod's /32 through its veth ${route.dev}.`;
    }
  }
  return { lines: node.lines, matched: best?.line ?? null, candidates, why, route, local: false };
}

/** The pod-level destination of a packet (the inner one when tunnelled). */
function podLevelDestination(packet: Buffer): number | undefined {
  const outer = Ipv4View.check(packet);
  if (!outer.ok) return undefined;
  if (outer.value.protocol !== IP_PROTOCOL.IPIP) return outer.value.dst;
  const inner = Ipv4View.check(packet, outer.value.headerLength);
  return inner.ok ? inner.value.dst : undefined;
}

function outerSource(packet: Buffer): number | undefined {
  const outer = Ipv4View.check(packet);
  return outer.ok && outer.value.protocol === IP_PROTOCOL.IPIP ? outer.value.src : undefined;
}

function captureTitles(sighting: Sighting, node: NodeTables): { title: string; note: string; interface: string } {
  const { interfaceName, direction } = sighting;
  const pod = node.pods.get(interfaceName);
  if (pod !== undefined) {
    return direction === 'rx'
      ? {
          title: `${pod.name} sent it: out of its eth0, into ${interfaceName} on ${node.name}`,
          note: `The pod's eth0 and ${interfaceName} are the two ends of one veth pair: what the pod sends comes out of ${interfaceName}, where ${node.name}'s kernel routes it.`,
          interface: `${interfaceName} (the host end of ${pod.name}'s eth0)`,
        }
      : {
          title: `Into ${pod.name}: out of ${interfaceName}, into the pod's eth0`,
          note: `${node.name}'s /32 route for ${pod.ip.toString()} sends it out of ${interfaceName}; the veth's other end is the pod's eth0.`,
          interface: `${interfaceName} (the host end of ${pod.name}'s eth0)`,
        };
  }
  if (interfaceName === 'tunl0') {
    return direction === 'tx'
      ? {
          title: `Into tunl0 on ${node.name}: the pod's packet, about to be wrapped`,
          note: 'The route said dev tunl0: forwarding has taken one from the TTL, and the tunnel will put an outer IPv4 header in front, addressed to the route’s gateway node.',
          interface: 'tunl0',
        }
      : {
          title: `Out of tunl0 on ${node.name}: decapsulated`,
          note: 'The outer header is gone; the kernel sees the pod’s packet as received on tunl0 and routes it by its inner destination.',
          interface: 'tunl0',
        };
  }
  return direction === 'tx'
    ? {
        title: `Out of ${node.name}'s ${interfaceName}: encapsulated (IPIP, protocol 4)`,
        note: 'Outer source: this node; outer destination: the gateway of the route. The outer TTL is the inner one, DF is copied from the inner packet, the ID is fresh, ECN is copied (CE becomes ECT(0)).',
        interface: interfaceName,
      }
    : {
        title: `At ${node.name}'s ${interfaceName}: an IPIP packet for this node`,
        note: 'The node network carried it as an ordinary IPv4 packet of protocol 4.',
        interface: interfaceName,
      };
}

function decapsulationHop(node: NodeTables, outerSrc: number, clusterNodes: ReadonlySet<number>): Hop {
  const source = ipv4ToString(outerSrc);
  const known = clusterNodes.has(outerSrc);
  return {
    kind: known ? 'decapsulation' : 'drop',
    node: node.name,
    interface: 'eth0 → tunl0',
    title: known
      ? `${node.name} accepts IPIP from ${source} and decapsulates it`
      : `${node.name} refuses IPIP from ${source}`,
    note: known
      ? `${source} is a node of the cluster, so Felix's rule "Drop IPIP packets from non-Calico hosts" lets it in. The kernel's ipip module strips the outer header; the inner TTL is untouched and the outer ECN CE, if any, is copied in (RFC 6040).`
      : `${source} is not a node of the cluster: Felix's rule "Drop IPIP packets from non-Calico hosts" drops it.`,
  };
}

/** A node's route lookup as a hop; `origin` when the node's own stack made the packet. */
function routeHop(node: NodeTables, dst: number, origin: boolean): Hop {
  const { route, local, ...lookup } = routeLookup(node, dst);
  const sender = origin ? `${node.name}'s own stack sends it; ` : '';
  const found = local
    ? `local ${ipv4ToString(dst)} (the node's own address)`
    : route === undefined
      ? 'no route'
      : lookup.lines[lookup.matched ?? 0];
  return {
    kind: 'route',
    node: node.name,
    interface: '',
    title: `${sender}${node.name} looks up ${ipv4ToString(dst)}: ${found}`,
    note: origin
      ? `The packet was made on the node itself (from its node IP or tunnel address), so it starts at the node's route lookup.`
      : `The node forwards the packet by its destination: of the routes whose prefix holds it, the longest wins.`,
    route: lookup,
  };
}

/** A tap's sighting as a hop: its decoded layers, and which fields differ from the packet seen before it. */
function captureHop(
  sighting: Sighting,
  titles: { title: string; note: string; interface: string },
  firstNs: bigint,
  previous: readonly PacketLayer[] | undefined,
): Hop {
  const dissection = dissect(sighting.data);
  return {
    kind: 'capture',
    node: sighting.node,
    interface: titles.interface,
    direction: sighting.direction,
    title: titles.title,
    note: titles.note,
    atNs: Number(sighting.timestampNs - firstNs),
    packet: {
      hex: sighting.data.toString('hex'),
      layers: dissection.layers,
      changed: changedFields(previous, dissection.layers),
      summary: dissection.summary,
    },
  };
}

/** Where a path's packets were heading: a pod (arrives through its cali) or a node's own address. */
export interface PathEnd {
  pod?: PodState;
  node?: string;
}

/**
 * The hops of one direction of the probe. `origin` names the node whose own stack sent it, when no cali tap saw it
 * leave (a packet from the node, or an ICMP error the node made).
 */
export function buildPath(
  sightings: readonly Sighting[],
  tables: ReadonlyMap<string, NodeTables>,
  clusterNodes: ReadonlySet<number>,
  firstNs: bigint,
  path: 'forward' | 'reply',
  end: PathEnd,
): Hop[] {
  const hops: Hop[] = [];
  let previous: PacketLayer[] | undefined;
  const lookupHop = (node: NodeTables, data: Buffer, origin: boolean): void => {
    const dst = podLevelDestination(data);
    if (dst !== undefined) hops.push(routeHop(node, dst, origin));
  };
  for (const [index, sighting] of sightings.entries()) {
    const node = tables.get(sighting.node);
    if (node === undefined) continue;
    const isPod = node.pods.has(sighting.interfaceName);
    // First seen going out of an interface: no tap saw it arrive, so the node's own stack made it.
    if (index === 0 && sighting.direction === 'tx') lookupHop(node, sighting.data, true);
    const hop = captureHop(sighting, captureTitles(sighting, node), firstNs, previous);
    hops.push(hop);
    previous = hop.packet?.layers;
    if (isPod && sighting.direction === 'rx') lookupHop(node, sighting.data, false);
    if (sighting.interfaceName === 'tunl0' && sighting.direction === 'rx') lookupHop(node, sighting.data, false);
    if (sighting.interfaceName !== 'tunl0' && !isPod && sighting.direction === 'rx') {
      const source = outerSource(sighting.data);
      if (source !== undefined) hops.push(decapsulationHop(node, source, clusterNodes));
    }
  }
  const last = sightings.at(-1);
  if (last !== undefined) {
    const node = tables.get(last.node);
    const intoPod = node?.pods.get(last.interfaceName);
    if (intoPod !== undefined && last.direction === 'tx' && (end.pod === undefined || end.pod.name === intoPod.name)) {
      const ttl = Ipv4View.check(last.data);
      hops.push({
        kind: 'arrival',
        node: last.node,
        interface: 'eth0',
        title: `${intoPod.name} receives it${ttl.ok ? ` with TTL ${ttl.value.ttl}` : ''}`,
        note: `${path === 'forward' ? 'The probe' : 'The answer'} is in the pod's network namespace, on its eth0.`,
      });
    } else if (end.node !== undefined && last.node === end.node && last.direction === 'rx') {
      hops.push({
        kind: 'arrival',
        node: last.node,
        interface: '',
        title: `${last.node}'s own stack receives it`,
        note: 'The destination is one of the node’s own addresses: the kernel delivers it locally.',
      });
    }
  }
  return hops;
}
