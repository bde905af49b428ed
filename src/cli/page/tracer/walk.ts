/**
 * Puts one direction's sightings in the order the packet made them. Each agent stamps its packets with its own clock,
 * anchored to the wall clock once at its start, so two nodes' stamps may be a millisecond apart and cannot order
 * hops that are microseconds apart. Nor does one node's clock order its own taps exactly: each packet socket stamps a
 * packet when the agent reads it, and the agent reads its sockets in whatever order they woke. So the order is the
 * data path's: within a node, in through a cali or eth0, out of tunl0's decapsulation, into tunl0, out of eth0 or a
 * cali (the clock only breaks ties, as between fragments); across nodes, after a node sends an IPIP packet out of
 * eth0, the path goes on at the node it was addressed to.
 */
import { IP_PROTOCOL, Ipv4View } from '../../../wire/index.js';
import type { Sighting } from './flow.js';

function tunnelDestination(sighting: Sighting): number | undefined {
  if (sighting.direction !== 'tx') return undefined;
  const outer = Ipv4View.check(sighting.data);
  return outer.ok && outer.value.protocol === IP_PROTOCOL.IPIP ? outer.value.dst : undefined;
}

/** A packet's stage in one node's data path. */
function stage(sighting: Sighting): number {
  if (sighting.interfaceName === 'tunl0') return sighting.direction === 'rx' ? 1 : 2;
  return sighting.direction === 'rx' ? 0 : 3;
}

function byStageThenClock(a: Sighting, b: Sighting): number {
  return stage(a) - stage(b) || (a.timestampNs < b.timestampNs ? -1 : a.timestampNs > b.timestampNs ? 1 : 0);
}

const arrivesByTunnel = (sighting: Sighting) =>
  sighting.direction === 'rx' && tunnelDestination({ ...sighting, direction: 'tx' }) !== undefined;

/**
 * `startNode`: where the packet began, when known (the probe's sender); otherwise the node whose first sighting is
 * not an arrival through the tunnel.
 */
export function walkPath(
  sightings: readonly Sighting[],
  nodeByIp: ReadonlyMap<number, string>,
  startNode?: string,
): Sighting[] {
  const byNode = new Map<string, Sighting[]>();
  for (const sighting of sightings) {
    const list = byNode.get(sighting.node) ?? [];
    list.push(sighting);
    byNode.set(sighting.node, list);
  }
  for (const list of byNode.values()) list.sort(byStageThenClock);
  const ordered: Sighting[] = [];
  let node =
    startNode !== undefined && byNode.has(startNode)
      ? startNode
      : ([...byNode.entries()].find(([, list]) => !arrivesByTunnel(list[0]))?.[0] ?? byNode.keys().next().value);
  while (node !== undefined) {
    const list = byNode.get(node) ?? [];
    byNode.delete(node);
    let next: string | undefined;
    for (const sighting of list) {
      ordered.push(sighting);
      const destination = tunnelDestination(sighting);
      if (destination !== undefined) {
        next = nodeByIp.get(destination);
        // A node's later sightings (say, a second fragment) belong after what the peer did with the first.
        if (next !== undefined && byNode.has(next)) {
          const rest = list.slice(list.indexOf(sighting) + 1);
          if (rest.length > 0) byNode.set(node, rest);
          break;
        }
      }
    }
    node = next !== undefined && byNode.has(next) ? next : byNode.keys().next().value;
  }
  return ordered;
}
