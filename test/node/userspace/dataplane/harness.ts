/**
 * Nodes wired like the vectors' two kernels (node A 10.0.0.10, node B 10.0.0.11, one pod each), a fake underlay that
 * records what a node sends, packet builders, and the checks every dataplane test ends with.
 */
import { afterEach, expect } from 'vitest';
import {
  Dataplane,
  unaccounted,
  type NodeConfig,
  type TapEvent,
  type UnderlayTx,
} from '../../../../src/node/userspace/dataplane.js';
import { Ipv4Address, Ipv4Prefix } from '../../../../src/routing/address.js';
import type { Route } from '../../../../src/routing/route.js';
import { internetChecksum } from '../../../../src/wire/checksum.js';
import { icmp, type IcmpMessage } from '../../../../src/wire/icmp.js';
import { ipv4, IP_PROTOCOL, Ipv4View, type DecodedIpv4Packet } from '../../../../src/wire/ipv4.js';
import { ipv4FromString, ipv4ToString } from '../../../../src/wire/ipv4-text.js';

export const ip = (text: string): number => Ipv4Address.parse(text).value;
export const address = (text: string): Ipv4Address => Ipv4Address.parse(text);

export interface Sent {
  packet: Buffer;
  destination: string;
}

export interface TestNode {
  dp: Dataplane;
  /** What the node handed to its raw socket, oldest first (copies). */
  sent: Sent[];
  /** What each pod received, by pod name (copies). */
  delivered: Map<string, Buffer[]>;
  /** What the node's own stack took in (copies). */
  local: Buffer[];
  logs: string[];
  taps: TapEvent[];
}

export interface PodSpec {
  name: string;
  ip: string;
  hostInterface: string;
}

export interface NodeSpec {
  name: string;
  nodeIp: string;
  tunnelAddress?: string;
  block: string;
  pods: PodSpec[];
  /** Remote blocks: prefix → gateway node IP. */
  remote: Record<string, string>;
  clusterNodeIps?: string[];
  enforceIpipSourceAllowList?: boolean;
  extraRoutes?: Route[];
  attach?: boolean;
}

const CLUSTER = ['10.0.0.10', '10.0.0.11', '10.0.0.12'];

export const POD_A = { name: 'pod-a', ip: '192.168.77.130', hostInterface: 'cali932a51510af' };
export const POD_B = { name: 'pod-b', ip: '192.168.87.198', hostInterface: 'cali6e501784766' };

export const NODE_A: NodeSpec = {
  name: 'node-a',
  nodeIp: '10.0.0.10',
  tunnelAddress: '192.168.77.128',
  block: '192.168.77.128/26',
  pods: [POD_A],
  remote: { '192.168.87.192/26': '10.0.0.11' },
};

export const NODE_B: NodeSpec = {
  name: 'node-b',
  nodeIp: '10.0.0.11',
  tunnelAddress: '192.168.87.192',
  block: '192.168.87.192/26',
  pods: [POD_B],
  remote: { '192.168.77.128/26': '10.0.0.10' },
};

/** Felix's routes for a node, as `ip route` lists them in the vectors' environment.txt. */
export function routesOf(spec: NodeSpec): Route[] {
  return [
    {
      kind: 'unicast',
      destination: Ipv4Prefix.parse('10.0.0.0/24'),
      dev: 'eth0',
      scope: 'link',
      proto: 'kernel',
      source: address(spec.nodeIp),
    },
    { kind: 'blackhole', destination: Ipv4Prefix.parse(spec.block), proto: 'bird' },
    ...spec.pods.map((pod): Route => ({
      kind: 'unicast',
      destination: Ipv4Prefix.parse(pod.ip),
      dev: pod.hostInterface,
      scope: 'link',
    })),
    ...Object.entries(spec.remote).map(([block, gateway]): Route => ({
      kind: 'unicast',
      destination: Ipv4Prefix.parse(block),
      gateway: address(gateway),
      dev: 'tunl0',
      onlink: true,
      scope: 'global',
      proto: 'bird',
    })),
    ...(spec.extraRoutes ?? []),
  ];
}

export function configOf(spec: NodeSpec): NodeConfig {
  return {
    name: spec.name,
    nodeIp: address(spec.nodeIp),
    tunnelAddress: spec.tunnelAddress === undefined ? undefined : address(spec.tunnelAddress),
    tunnelMtu: 1480,
    routes: routesOf(spec),
    clusterNodeIps: (spec.clusterNodeIps ?? CLUSTER).map(address),
    pods: spec.pods.map((pod) => ({ name: pod.name, ip: address(pod.ip), hostInterface: pod.hostInterface })),
    enforceIpipSourceAllowList: spec.enforceIpipSourceAllowList,
  };
}

const live: Dataplane[] = [];

/** Every test file calls this once: after each test, every dataplane it built must account for every packet. */
export function checkCountersAfterEachTest(): void {
  afterEach(() => {
    for (const dp of live.splice(0)) expectBalanced(dp);
  });
}

export function expectBalanced(dp: Dataplane): void {
  const stats = dp.stats();
  expect(unaccounted(stats), JSON.stringify(stats)).toBe(0);
}

export function makeNode(spec: NodeSpec, options: { now?: () => bigint; underlay?: UnderlayTx } = {}): TestNode {
  const sent: Sent[] = [];
  const delivered = new Map<string, Buffer[]>();
  const local: Buffer[] = [];
  const logs: string[] = [];
  const taps: TapEvent[] = [];
  const dp = new Dataplane(
    configOf(spec),
    options.underlay ?? {
      send: (packet, destination) =>
        void sent.push({ packet: Buffer.from(packet), destination: ipv4ToString(destination) }),
    },
    { log: (line) => void logs.push(line), now: options.now },
  );
  if (spec.attach !== false) {
    for (const pod of spec.pods) {
      delivered.set(pod.name, []);
      dp.attachPod(pod.name, (packet) => void delivered.get(pod.name)!.push(Buffer.from(packet)));
    }
  }
  dp.onLocal((packet) => void local.push(Buffer.from(packet)));
  dp.onTap((event) => void taps.push({ ...event, packet: Buffer.from(event.packet) }));
  live.push(dp);
  return { dp, sent, delivered, local, logs, taps };
}

export function deliveredTo(node: TestNode, pod: string): Buffer[] {
  return node.delivered.get(pod) ?? [];
}

/** Takes what the node sent since the last call. */
export function takeSent(node: TestNode): Sent[] {
  return node.sent.splice(0);
}

export function takeDelivered(node: TestNode, pod: string): Buffer[] {
  return node.delivered.get(pod)!.splice(0);
}

// ---- packets ----

export interface EchoSpec {
  src: string;
  dst: string;
  ttl?: number;
  tos?: number;
  df?: boolean;
  id?: number;
  identifier?: number;
  sequence?: number;
  /** ICMP data bytes (56 as ping sends by default). */
  dataLength?: number;
  kind?: 'echo-request' | 'echo-reply';
}

export function echo(spec: EchoSpec): Buffer {
  const data = Buffer.alloc(spec.dataLength ?? 56);
  for (let i = 0; i < data.length; i++) data[i] = i & 0xff;
  return ipPacket(
    spec,
    IP_PROTOCOL.ICMP,
    icmp.encode({
      kind: spec.kind ?? 'echo-request',
      identifier: spec.identifier ?? 0x1234,
      sequence: spec.sequence ?? 1,
      data,
    }),
  );
}

export function ipPacket(
  spec: { src: string; dst: string; ttl?: number; tos?: number; df?: boolean; id?: number },
  protocol: number,
  payload: Buffer,
  extra: { moreFragments?: boolean; fragmentOffset?: number } = {},
): Buffer {
  const tos = spec.tos ?? 0;
  return ipv4.encode({
    dscp: tos >> 2,
    ecn: tos & 3,
    identification: spec.id ?? 0x4242,
    dontFragment: spec.df ?? true,
    ttl: spec.ttl ?? 64,
    protocol,
    src: ip(spec.src),
    dst: ip(spec.dst),
    payload,
    ...extra,
  });
}

/** An IPIP packet as a node would send it (outer TTL = inner TTL, DF copied, ECN copied as is). */
export function ipip(
  outerSrc: string,
  outerDst: string,
  inner: Buffer,
  overrides: { tos?: number; ttl?: number } = {},
): Buffer {
  const view = new Ipv4View(inner);
  const tos = overrides.tos ?? view.ecn;
  return ipv4.encode({
    dscp: tos >> 2,
    ecn: tos & 3,
    identification: 0x1001,
    dontFragment: view.dontFragment,
    ttl: overrides.ttl ?? view.ttl,
    protocol: IP_PROTOCOL.IPIP,
    src: ip(outerSrc),
    dst: ip(outerDst),
    payload: inner,
  });
}

export function decoded(packet: Buffer): DecodedIpv4Packet {
  const result = ipv4.decode(packet);
  if (!result.ok) throw new Error(`not a valid IPv4 packet: ${result.reason}`);
  return result.value;
}

export function icmpOf(packet: Buffer): IcmpMessage {
  const result = icmp.decode(decoded(packet).payload);
  if (!result.ok) throw new Error(`not a valid ICMP message: ${result.reason}`);
  return result.value;
}

/** The inner packet of an IPIP packet with a 20-byte outer header (as every vector frame has). */
export function innerOf(outer: Buffer): Buffer {
  return outer.subarray((outer[0] & 0x0f) * 4);
}

/** A copy with TTL changed by `delta` and the header checksum recomputed. */
export function withTtl(packet: Buffer, delta: number): Buffer {
  const copy = Buffer.from(packet);
  const view = new Ipv4View(copy);
  view.ttl = view.ttl + delta;
  view.fillChecksum();
  return copy;
}

/** A forwarded packet as the pod sent it: one hop earlier. */
export const asSentByPod = (forwarded: Buffer): Buffer => withTtl(forwarded, +1);

/**
 * Equal byte for byte apart from the IP ID (and so the header checksum) of the headers at `headers`, whose
 * checksums must be valid.
 */
export function expectSameApartFromIds(actual: Buffer, expected: Buffer, headers: number[] = [0]): void {
  expect(actual.length).toBe(expected.length);
  const a = Buffer.from(actual);
  const e = Buffer.from(expected);
  for (const at of headers) {
    const headerLength = (a[at] & 0x0f) * 4;
    expect(internetChecksum(a, at, at + headerLength), `checksum of header at ${at}`).toBe(0);
    for (const field of [4, 5, 10, 11]) {
      a[at + field] = 0;
      e[at + field] = 0;
    }
  }
  expect(a.toString('hex')).toBe(e.toString('hex'));
}

export function idOf(packet: Buffer, at = 0): number {
  return packet.readUInt16BE(at + 4);
}

export { ipv4FromString, ipv4ToString };
