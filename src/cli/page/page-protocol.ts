/**
 * What the lab page's server answers its browser: one snapshot of the lab (nodes, pods, tunnels, each node's tables)
 * and traces of single marked packets. Types only: the browser's code imports them too, and it has no Node.js.
 *
 *   GET  /api/lab                 LabSnapshot (the page polls it once a second)
 *   GET  /api/examples            TraceExample[]
 *   POST /api/traces              TraceRequest → TraceResult
 *   GET  /api/traces/ID.pcapng    the trace's packets, one interface per node and interface
 */

export interface LabSnapshot {
  /** The lab's name: the compose project, or the spec's first node's cluster. */
  lab: string;
  takenAt: string;
  nodes: PageNode[];
  tunnels: PageTunnel[];
}

export interface PageNode {
  name: string;
  ip: string;
  tunnelAddress: string | null;
  /** The node's IPAM blocks (affinities), e.g. `192.168.87.192/26`. */
  blocks: string[];
  /** null while the node's agent does not answer. */
  dataplane: 'kernel' | 'userspace' | null;
  /** Why the agent did not answer, when it did not. */
  error?: string;
  pods: PagePod[];
  /** The real tools' text: net-tools `route -n`, iproute2 `ip route` and `ip addr`. */
  tables: { route: string; ipRoute: string; ipAddr: string };
}

export interface PagePod {
  name: string;
  namespace: string;
  ip: string;
  /** The node-side veth, cali… */
  hostInterface: string;
}

/** A node pair whose routes send pod traffic through tunl0 from one to the other. */
export interface PageTunnel {
  from: string;
  to: string;
  /** What `from` sent into the tunnel to `to` per second (outer packets and bytes); null until two polls are in. */
  packetsPerSecond: number | null;
  bytesPerSecond: number | null;
}

export type TraceProtocol = 'icmp' | 'udp' | 'tcp';

export interface TraceRequest {
  /** A pod name, or a node name for a packet from the node's own stack. */
  from: string;
  /** A pod name, a node name (its IP), or a dotted quad (a pod IP, a tunnel address, any address). */
  to: string;
  protocol: TraceProtocol;
  /** The IP packet's total length in bytes (28..65535 for ICMP); absent: the tool's default. */
  size?: number;
  df: boolean;
}

export interface TraceExample {
  id: string;
  title: string;
  /** One sentence on what it shows. */
  description: string;
  request: TraceRequest;
}

/** One field of a decoded header, as Wireshark's packet pane shows it. */
export interface PacketField {
  /** Stable across hops, e.g. `outer.ttl`, `inner.src`, `icmp.type`: how changed fields are found. */
  key: string;
  label: string;
  value: string;
  /** Byte range in the hop's bytes. */
  offset: number;
  length: number;
}

export interface PacketLayer {
  /** e.g. `Internet Protocol Version 4 (outer)`, `ICMP`. */
  title: string;
  fields: PacketField[];
}

export interface HopPacket {
  /** The packet's bytes (an IPv4 packet) in hexadecimal. */
  hex: string;
  layers: PacketLayer[];
  /** Keys of the fields whose value differs from the previous packet hop of the same direction. */
  changed: string[];
  /** One line, tshark-style: `192.168.77.130 → 192.168.87.198 ICMP Echo (ping) request`. */
  summary: string;
}

export type HopKind =
  /** A packet seen by a capture tap: on a pod's cali interface, tunl0 or eth0. */
  | 'capture'
  /** A node's route lookup for the packet's destination. */
  | 'route'
  /** A receiving node's check of the outer source against the cluster's nodes, then the outer header removed. */
  | 'decapsulation'
  /** Where the packet ended, when it did not arrive. */
  | 'drop'
  /** The packet reached its destination (a pod, or a node's own stack). */
  | 'arrival';

export interface RouteLookup {
  /** The node's `ip route` lines in order, and which one matched (index into lines), or null for no route. */
  lines: string[];
  matched: number | null;
  /** Every line whose prefix holds the destination, with its prefix length: the longest wins. */
  candidates: { line: number; prefixLength: number }[];
  /** A sentence: why this route. */
  why: string;
}

export interface Hop {
  kind: HopKind;
  node: string;
  /** e.g. `cali1234abcd5ef (host side of pod eth0)`, `tunl0`, `eth0`; empty for a lookup. */
  interface: string;
  /** The capture's direction on that interface: rx what the node received, tx what it sent. */
  direction?: 'rx' | 'tx';
  title: string;
  /** Why this hop happens, in a sentence or two. */
  note: string;
  /** Nanoseconds since the first captured packet of the trace. */
  atNs?: number;
  packet?: HopPacket;
  route?: RouteLookup;
}

export interface TraceResult {
  id: string;
  request: TraceRequest;
  /** e.g. `answered`, `dropped at worker-node01: blackhole route`. */
  outcome: 'answered' | 'delivered' | 'dropped' | 'refused by the sender';
  summary: string;
  /** The request's path, then the reply's (empty when there was none). */
  forward: Hop[];
  reply: Hop[];
  /** What the sending tool printed (ping, curl, …), as on a terminal. */
  toolOutput: string;
  /** The URL of the trace's pcapng. */
  pcapng: string;
}
