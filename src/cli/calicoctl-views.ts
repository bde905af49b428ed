/**
 * calicoctl's views of the emulated cluster (calico v3.29.0's calicoctl, before v3.34 moved its tables to go-pretty),
 * byte for byte: `node status` (calicoctl/commands/node/status.go), `get ippool|nodes [-o wide]`
 * (resourcemgr/ippool.go, node.go; commands/common/printer.go) and `ipam show [--show-blocks]` (commands/ipam/show.go).
 * Pure: the clock is a parameter.
 */
import { CALICO_DEFAULT_AS, underlaySubnet, type ClusterState } from '../calico/index.js';
import type { SpeakerStatus } from '../node/bgp/index.js';
import type { Ipv4Address, Ipv4Prefix } from '../routing/address.js';
import { BIRD_GREETING, birdProtocols, birdSocketText, showProtocols } from './bird-views.js';
import { goFormatF0, goFormatG, renderCalicoctlTabwriter, renderTablewriter } from './go-tables.js';

/** One row of the peer table, as calicoctl parses it out of BIRD's `show protocols` line. */
export interface CalicoctlPeer {
  readonly peerAddress: string;
  readonly peerType: 'node-to-node mesh' | 'global' | 'node specific';
  /** BIRD's protocol state: up, start, down. */
  readonly state: string;
  /** As BIRD printed it: HH:MM:SS, or the date once over 20 hours. */
  readonly since: string;
  readonly bgpState: string;
  /** The rest of BIRD's info column (the last error), words joined by single spaces. */
  readonly info: string;
}

const PEER_NAME = /^(Global|Node|Mesh)_(.+)$/;
const PEER_TYPES: Readonly<Record<string, CalicoctlPeer['peerType']>> = {
  Global: 'global',
  Mesh: 'node-to-node mesh',
  Node: 'node specific',
};
const BIRD_HEADINGS = ['name', 'proto', 'table', 'state', 'since', 'info'];

/** bgpPeer.unmarshalBIRD: a BGP protocol line of at least 6 fields whose name says what kind of peer it is. */
function unmarshalBird(line: string): CalicoctlPeer | undefined {
  const columns = line.split(/\s+/).filter((column) => column !== '');
  if (columns.length < 6 || columns[1] !== 'BGP') return undefined;
  const match = PEER_NAME.exec(columns[0]);
  if (!match) return undefined;
  return {
    peerAddress: match[2].replace(/_/g, '.'),
    peerType: PEER_TYPES[match[1]],
    state: columns[3],
    since: columns[4],
    bgpState: columns[5],
    info: columns.slice(6).join(' '),
  };
}

/**
 * scanBIRDPeers over what BIRD answers to `show protocols` on its socket: calicoctl reads the peers from BIRD's text,
 * so the table shows what that text holds (a down protocol without an error has too few fields, and is left out).
 */
export function calicoctlPeers(status: SpeakerStatus, now: number): CalicoctlPeer[] {
  const reply = birdSocketText([BIRD_GREETING, ...showProtocols(birdProtocols(status), now)]);
  const peers: CalicoctlPeer[] = [];
  for (const line of reply.split('\n')) {
    if (line.startsWith('0000')) break;
    if (line.startsWith('0001')) continue;
    if (line.startsWith('2002')) {
      const headings = line.slice(5).split(/\s+/).filter(Boolean);
      if (headings.join(' ') !== BIRD_HEADINGS.join(' ')) throw new Error('unknown BIRD table output format');
      continue;
    }
    const peer = line.startsWith('1002') ? unmarshalBird(line.slice(5)) : unmarshalBird(line.slice(1));
    if (peer) peers.push(peer);
  }
  return peers;
}

/** printPeers: tablewriter with calicoctl's five headers; INFO is the BGP state and the rest of BIRD's info. */
export function renderPeerTable(peers: readonly CalicoctlPeer[]): string {
  return renderTablewriter(
    ['Peer address', 'Peer type', 'State', 'Since', 'Info'],
    peers.map((peer) => [
      peer.peerAddress,
      peer.peerType,
      peer.state,
      peer.since,
      peer.info === '' ? peer.bgpState : `${peer.bgpState} ${peer.info}`,
    ]),
  );
}

/**
 * `calicoctl node status`: the node's BIRD peers, or (`status` undefined: the agent runs no speaker) what calicoctl
 * prints when no BIRD process runs. IPv6 is what a calico-node with bird6 and no IPv6 peers prints. Ends with the
 * blank line calicoctl's final Println adds.
 */
export function renderNodeStatus(status: SpeakerStatus | undefined, now: number): string {
  const head = 'Calico process is running.\n';
  if (!status) return `${head}\nThe BGP backend process (BIRD) is not running.\n\n`;
  const peers = calicoctlPeers(status, now);
  const v4 = peers.length === 0 ? 'No IPv4 peers found.\n' : renderPeerTable(peers);
  return `${head}\nIPv4 BGP status\n${v4}\nIPv6 BGP status\nNo IPv6 peers found.\n\n`;
}

/** `calicoctl node status -o json` (ipip-lab's): the same peers as the table, and whether a BGP backend runs. */
export interface NodeStatusJson {
  readonly calicoProcess: 'running';
  /** `BIRD` when the agent runs its BGP speaker, null when it runs with `--routes spec`. */
  readonly bgpBackend: 'BIRD' | null;
  readonly routerId: string | null;
  readonly as: number | null;
  readonly ipv4Peers: readonly (CalicoctlPeer & { readonly changedAt: string })[];
  readonly ipv6Peers: readonly never[];
}

export function nodeStatusJson(status: SpeakerStatus | undefined, now: number): NodeStatusJson {
  if (!status) {
    return { calicoProcess: 'running', bgpBackend: null, routerId: null, as: null, ipv4Peers: [], ipv6Peers: [] };
  }
  const changed = new Map(status.neighbours.map((neighbour) => [neighbour.address, neighbour.since]));
  return {
    calicoProcess: 'running',
    bgpBackend: 'BIRD',
    routerId: status.routerId,
    as: status.as,
    ipv4Peers: calicoctlPeers(status, now).map((peer) => ({ ...peer, changedAt: changed.get(peer.peerAddress) ?? '' })),
    ipv6Peers: [],
  };
}

/** A calicoctl table: heading row, rows, each cell tab-terminated through its tabwriter, then the gap after it. */
function resourceTable(headings: readonly string[], rows: readonly (readonly string[])[]): string {
  return `${renderCalicoctlTabwriter([headings, ...rows])}\n`;
}

/**
 * `calicoctl get ippool [-o wide]`. NAT is Calico's default pool's natOutgoing (CALICO_IPV4POOL_NAT_OUTGOING, true);
 * the lab's pool has no VXLAN, is enabled, exported and selects every node.
 */
export function renderGetIpPools(cluster: ClusterState, wide: boolean): string {
  const { pool } = cluster;
  if (!wide) return resourceTable(['NAME', 'CIDR', 'SELECTOR'], [[pool.name, pool.cidr.toString(), 'all()']]);
  return resourceTable(
    ['NAME', 'CIDR', 'NAT', 'IPIPMODE', 'VXLANMODE', 'DISABLED', 'DISABLEBGPEXPORT', 'SELECTOR'],
    [[pool.name, pool.cidr.toString(), 'true', pool.ipipMode, 'Never', 'false', 'false', 'all()']],
  );
}

/** A Calico Node's BGP address: the node's address with the underlay's mask, as calico-node autodetects it. */
function nodeBgpAddress(cluster: ClusterState, ip: Ipv4Address): string {
  return `${ip}/${underlaySubnet(cluster.spec.network, ip).length}`;
}

/** The datastore lists resources by key, so by name. */
function byName<T extends { name: string }>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** `calicoctl get nodes [-o wide]`: ASN `(64512)`, inherited from the default BGPConfiguration; no IPv6. */
export function renderGetNodes(cluster: ClusterState, wide: boolean): string {
  const nodes = byName(cluster.nodes);
  if (!wide)
    return resourceTable(
      ['NAME'],
      nodes.map((node) => [node.name]),
    );
  return resourceTable(
    ['NAME', 'ASN', 'IPV4', 'IPV6'],
    nodes.map((node) => [node.name, `(${CALICO_DEFAULT_AS})`, nodeBgpAddress(cluster, node.ip), '']),
  );
}

/** One row of `calicoctl ipam show`: a pool or one of its allocated blocks. */
export interface IpamUsage {
  readonly grouping: 'IP Pool' | 'Block';
  readonly cidr: string;
  readonly capacity: number;
  readonly inUse: number;
  readonly free: number;
}

/** The etcd key of a block (`…/block/192.168.77.128-26`): what the datastore lists blocks in the order of. */
function blockKey(block: Ipv4Prefix): string {
  return block.toString().replace('/', '-');
}

/**
 * The pool and its blocks' use: every node's affine block, in the datastore's order, with the addresses allocated in
 * it (tunnel addresses and pods, wherever the pod runs).
 */
export function ipamUsage(cluster: ClusterState): IpamUsage[] {
  const allocated = [
    ...cluster.nodes.flatMap((node) => (node.tunnelAddress ? [node.tunnelAddress] : [])),
    ...cluster.pods.map((pod) => pod.ip),
  ];
  const blocks = cluster.nodes
    .flatMap((node) => node.blocks)
    .sort((a, b) => (blockKey(a) < blockKey(b) ? -1 : blockKey(a) > blockKey(b) ? 1 : 0))
    .map((block): IpamUsage => {
      const inUse = allocated.filter((address) => block.contains(address)).length;
      return { grouping: 'Block', cidr: block.toString(), capacity: block.size, inUse, free: block.size - inUse };
    });
  const capacity = cluster.pool.cidr.size;
  const inUse = blocks.reduce((sum, block) => sum + block.inUse, 0);
  return [
    { grouping: 'IP Pool', cidr: cluster.pool.cidr.toString(), capacity, inUse, free: capacity - inUse },
    ...blocks,
  ];
}

/** `calicoctl ipam show [--show-blocks]`: `%.5g` totals, `%.5g (%.f%%)` use, through tablewriter. */
export function renderIpamShow(cluster: ClusterState, showBlocks: boolean): string {
  const rows = ipamUsage(cluster)
    .filter((row) => showBlocks || row.grouping === 'IP Pool')
    .map((row) => [
      row.grouping,
      row.cidr,
      goFormatG(row.capacity),
      `${goFormatG(row.inUse)} (${goFormatF0((100 * row.inUse) / row.capacity)}%)`,
      `${goFormatG(row.free)} (${goFormatF0((100 * row.free) / row.capacity)}%)`,
    ]);
  return renderTablewriter(['GROUPING', 'CIDR', 'IPS TOTAL', 'IPS IN USE', 'IPS FREE'], rows);
}
