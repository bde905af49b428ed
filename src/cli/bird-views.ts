/**
 * What Calico's BIRD (its fork v0.3.3+birdv1.6.8) answers on its control socket, made from the node agent's BGP
 * speaker (`GET /v1/bgp`) and dataplane (`GET /v1/dataplane`): `show protocols` and `show route`, as the replies
 * BIRD writes (code, text) and as birdcl prints them. Pure: the clock is a parameter.
 *
 * Sources (projectcalico/bird): nest/proto.c proto_cmd_show, proto/bgp/bgp.c bgp_get_status, nest/rt-table.c
 * rt_show_net / rt_show_rte, proto/bgp/attrs.c bgp_get_route_info, nest/rt-fib.c (the table's order),
 * nest/cli.c cli_printf (the socket's framing), client/client.c server_got_reply (what birdcl prints of it).
 */
import { Ipv4Address, Ipv4Prefix } from '../routing/address.js';
import type { Link } from '../routing/link.js';
import type { Route } from '../routing/route.js';
import type { NeighbourStatus, SpeakerStatus } from '../node/bgp/index.js';

export const BIRD_VERSION = 'v0.3.3+birdv1.6.8';
/** Where calico-node's BIRD listens (`bird -s /var/run/calico/bird.ctl`), which plain `birdcl` reaches. */
export const BIRD_SOCKET = '/var/run/calico/bird.ctl';

/**
 * One `cli_printf(c, code, text)` of BIRD's: a negative code is a line that more lines follow (`NNNN-`, or a bare
 * space when the line before had the same code), a non-negative one ends the reply (`NNNN `; 0 prints nothing).
 */
export interface BirdMessage {
  readonly code: number;
  readonly text: string;
}

export const BIRD_GREETING: BirdMessage = { code: 1, text: `BIRD ${BIRD_VERSION} ready.` };
const END: BirdMessage = { code: 0, text: '' };

/** The messages as the control socket carries them (`nc -U /var/run/calico/bird.ctl` shows this). */
export function birdSocketText(messages: readonly BirdMessage[]): string {
  let lastReply: number | undefined;
  return messages
    .map(({ code, text }) => {
      let head: string;
      if (code < 0) head = -code === lastReply ? ' ' : `${String(-code).padStart(4, '0')}-`;
      else head = `${String(code).padStart(4, '0')} `;
      lastReply = Math.abs(code);
      return `${head}${text}\n`;
    })
    .join('');
}

/**
 * What birdcl prints of a reply (server_got_reply): the text after the 5-character code, continuations without their
 * leading space, nothing for code 0. `-v` prints the codes too.
 */
export function birdclText(messages: readonly BirdMessage[], verbose = false): string {
  return birdSocketText(messages)
    .split('\n')
    .slice(0, -1)
    .map((line) => {
      if (line.startsWith('+')) return `>>> ${line.slice(1)}\n`;
      if (line.startsWith(' ')) return `${verbose ? '     ' : ''}${line.slice(1)}\n`;
      const match = /^(\d{4})[ -]/.exec(line);
      if (!match) return `??? <${line}>\n`;
      return Number(match[1]) === 0 ? '' : `${verbose ? line : line.slice(5)}\n`;
    })
    .join('');
}

/**
 * BIRD's `tf_proto` and `tf_route` ({"%T", "%F", 20*3600}): `HH:MM:SS` for a time under 20 hours ago, else
 * `YYYY-MM-DD`, in the local time of calico-node's container, which is UTC (as the node containers are).
 */
export function birdTime(at: string | number, now: number): string {
  const time = typeof at === 'number' ? at : Date.parse(at);
  const iso = new Date(Math.floor(time / 1000) * 1000).toISOString();
  return Math.floor(now / 1000) - Math.floor(time / 1000) < 20 * 3600 ? iso.slice(11, 19) : iso.slice(0, 10);
}

/** One protocol instance of the node's BIRD, as `show protocols` lists it. */
export interface BirdProtocol {
  readonly name: string;
  readonly proto: 'Static' | 'Kernel' | 'Device' | 'Direct' | 'BGP';
  readonly table: 'master';
  /** proto_state_name: `up` once running (for BGP: Established), `start` while connecting, `down` when stopped. */
  readonly state: 'up' | 'start' | 'down';
  /** ISO time of the last change the agent reports (BIRD's `since` column). */
  readonly since: string;
  /** The info column: for BGP the state padded to 14 and the last error (bgp_get_status); empty for the others. */
  readonly info: string;
  /** For a BGP protocol: its neighbour as the speaker reports it. */
  readonly neighbour?: NeighbourStatus;
}

/** bgp_get_status: `%-14s%s%s` of the BGP state and the last error, or the error alone once the protocol is down. */
function bgpInfo(neighbour: NeighbourStatus): string {
  const error = neighbour.lastError ?? '';
  return neighbour.state === 'Down' ? error : `${neighbour.state.padEnd(14)}${error}`;
}

/**
 * The protocols of Calico's bird.cfg in its order: the static blackholes of bird_aggr.cfg (included first), kernel,
 * device, direct, then one BGP protocol per peer in the speaker's order (the mesh's). The first four came up with
 * BIRD, so their `since` is the speaker's start.
 */
export function birdProtocols(status: SpeakerStatus): BirdProtocol[] {
  const base = (name: string, proto: BirdProtocol['proto']): BirdProtocol => ({
    name,
    proto,
    table: 'master',
    state: 'up',
    since: status.startedAt,
    info: '',
  });
  return [
    base('static1', 'Static'),
    base('kernel1', 'Kernel'),
    base('device1', 'Device'),
    base('direct1', 'Direct'),
    ...status.neighbours.map((neighbour): BirdProtocol => ({
      name: neighbour.name,
      proto: 'BGP',
      table: 'master',
      state: neighbour.state === 'Established' ? 'up' : neighbour.state === 'Down' ? 'down' : 'start',
      since: neighbour.since,
      info: bgpInfo(neighbour),
      neighbour,
    })),
  ];
}

/** `show protocols [NAME | "PATTERN"]`: the header, then `%-8s %-8s %-8s %-5s  %-10s  %s` per protocol. */
export function showProtocols(protocols: readonly BirdProtocol[], now: number): BirdMessage[] {
  if (protocols.length === 0) return [{ code: 8003, text: 'No protocols match' }];
  return [
    { code: -2002, text: 'name     proto    table    state  since       info' },
    ...protocols.map((p): BirdMessage => ({
      code: -1002,
      text:
        `${p.name.padEnd(8)} ${p.proto.padEnd(8)} ${p.table.padEnd(8)} ${p.state.padEnd(5)}  ` +
        `${birdTime(p.since, now).padEnd(10)}  ${p.info}`,
    })),
    END,
  ];
}

/** BIRD's shell-style pattern (`*`, `?`), as `show protocols "Mesh*"` takes it. */
export function birdPatternMatches(pattern: string, name: string): boolean {
  const regex = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${regex}$`).test(name);
}

export type BirdVia =
  | { readonly kind: 'router'; readonly gateway: string; readonly interface: string }
  | { readonly kind: 'device'; readonly interface: string }
  | { readonly kind: 'blackhole' }
  | { readonly kind: 'unreachable' };

/** One route of BIRD's master table. */
export interface BirdRoute {
  readonly network: string;
  /** The protocol that brought it: static1, direct1, kernel1 or the BGP protocol (Mesh_10_0_0_12). */
  readonly protocol: string;
  readonly via: BirdVia;
  /** ISO time of its last change (BIRD's lastmod). */
  readonly since: string;
  /** BIRD's defaults: static 200, direct 240, kernel 10, BGP 100. */
  readonly preference: number;
  /** The route BIRD chose for its network (` *`): the first of the network's routes. */
  readonly primary: boolean;
  /** A BGP route from a neighbour that is not its next hop: the neighbour (` from ADDR`). */
  readonly from?: string;
  /** BGP: the IGP metric to the next hop (null when it does not resolve), the AS path and the ORIGIN. */
  readonly bgp?: { readonly igpMetric: number | null; readonly asPath: readonly number[]; readonly origin: 'i' };
}

/** ip4_hash (lib/ip.h): the 16 bits BIRD's FIB orders its networks by. */
export function birdFibHash(address: Ipv4Address): number {
  let x = address.value;
  x = (x ^ (x >>> 16)) >>> 0;
  x = (x ^ (x << 10)) >>> 0;
  return x & 0xffff;
}

/** What the routes come from: the speaker's state and the dataplane's links and routes, as the agent sends them. */
export interface BirdTableSources {
  readonly status: SpeakerStatus;
  readonly links: readonly Link[];
  readonly routes: readonly Route[];
}

type Candidate = Omit<BirdRoute, 'primary'>;

/** Interfaces BIRD's direct protocol takes: `interface -"cali*", -"kube-ipvs*", "*"`, and not loopback. */
function directInterface(name: string): boolean {
  return name !== 'lo' && !name.startsWith('cali') && !name.startsWith('kube-ipvs');
}

/**
 * BIRD's master table on the node: static1's blackholes for its blocks (the dataplane's `blackhole … proto bird`),
 * direct1's subnets of its interfaces' global addresses (eth0's subnet, tunl0's /32), kernel1's alien kernel routes
 * (the pods' /32s Felix wrote, any default route; not `proto kernel`, not BIRD's own `proto bird`), and the BGP routes
 * the speaker chose, each resolved over the direct subnets as `gateway recursive` does (so an IPIP route reads
 * `via PEER on eth0`: krt_tunnel only changes what goes to the kernel). Times BIRD keeps per route that the agent does
 * not report (when a pod's route was learned) are the speaker's start.
 *
 * Order: BIRD walks its FIB by hash (ip4_hash of the network address, then arrival for equal hashes), so the order
 * below is exactly that hash order, arrival taken as static, direct, kernel, BGP.
 */
export function birdRoutes({ status, links, routes }: BirdTableSources): BirdRoute[] {
  const since = status.startedAt;
  const candidates: Candidate[] = [];
  for (const route of routes) {
    if (route.kind !== 'blackhole' || route.proto !== 'bird') continue;
    const network = Ipv4Prefix.parse(String(route.destination)).toString();
    candidates.push({ network, protocol: 'static1', via: { kind: 'blackhole' }, since, preference: 200 });
  }
  const direct: { prefix: Ipv4Prefix; interface: string }[] = [];
  for (const link of links) {
    if (!directInterface(link.name)) continue;
    for (const address of link.addresses) {
      if (address.scope !== 'global') continue;
      const prefix = Ipv4Prefix.of(Ipv4Address.parse(String(address.address)), address.prefixLength).masked();
      direct.push({ prefix, interface: link.name });
      const via: BirdVia = { kind: 'device', interface: link.name };
      candidates.push({ network: prefix.toString(), protocol: 'direct1', via, since, preference: 240 });
    }
  }
  for (const route of routes) {
    if (route.kind !== 'unicast' || route.proto === 'bird' || route.proto === 'kernel') continue;
    const network = Ipv4Prefix.parse(String(route.destination)).toString();
    const via: BirdVia =
      route.gateway === undefined
        ? { kind: 'device', interface: route.dev }
        : { kind: 'router', gateway: String(route.gateway), interface: route.dev };
    candidates.push({ network, protocol: 'kernel1', via, since, preference: 10 });
  }
  const neighbours = new Map(status.neighbours.map((neighbour) => [neighbour.name, neighbour]));
  for (const learned of status.routes) {
    const nextHop = Ipv4Address.parse(String(learned.nextHop));
    const resolved = direct
      .filter((candidate) => candidate.prefix.contains(nextHop))
      .sort((a, b) => b.prefix.length - a.prefix.length)[0];
    const via: BirdVia = resolved
      ? { kind: 'router', gateway: nextHop.toString(), interface: resolved.interface }
      : { kind: 'unreachable' };
    const peer = neighbours.get(learned.from)?.address;
    const gateway = via.kind === 'router' ? via.gateway : undefined;
    candidates.push({
      network: Ipv4Prefix.parse(String(learned.destination)).toString(),
      protocol: learned.from,
      via,
      since: learned.since,
      preference: 100,
      ...(peer !== undefined && peer !== gateway && { from: peer }),
      bgp: { igpMetric: resolved ? 0 : null, asPath: [], origin: 'i' },
    });
  }

  const byNetwork = new Map<string, Candidate[]>();
  for (const candidate of candidates) {
    const same = byNetwork.get(candidate.network);
    if (same) same.push(candidate);
    else byNetwork.set(candidate.network, [candidate]);
  }
  const hashOf = (network: string): number => birdFibHash(Ipv4Prefix.parse(network).address);
  // Array.prototype.sort is stable: equal hashes keep their arrival order.
  return [...byNetwork.entries()]
    .sort(([a], [b]) => hashOf(a) - hashOf(b))
    .flatMap(([, same]) =>
      [...same]
        .sort((a, b) => b.preference - a.preference)
        .map((route, index): BirdRoute => ({ ...route, primary: index === 0 })),
    );
}

function formatVia(via: BirdVia): string {
  switch (via.kind) {
    case 'router':
      return `via ${via.gateway} on ${via.interface}`;
    case 'device':
      return `dev ${via.interface}`;
    default:
      return via.kind;
  }
}

/** bgp_get_route_info, or ` (pref)` for the other protocols. */
function routeInfo(route: BirdRoute): string {
  if (!route.bgp) return ` (${route.preference})`;
  const metric = route.bgp.igpMetric === null ? '/-' : `/${route.bgp.igpMetric}`;
  const last = route.bgp.asPath[route.bgp.asPath.length - 1];
  return ` (${route.preference}${metric}) [${last === undefined ? '' : `AS${last}`}${route.bgp.origin}]`;
}

/** What `show route` narrows the table to: one network (exact, or the longest match `for` an address), a protocol. */
export interface ShowRouteOptions {
  readonly network?: { readonly prefix: Ipv4Prefix; readonly longestMatch: boolean };
  readonly protocol?: string;
  /** `count`: only `N of M routes for K networks`. */
  readonly count?: boolean;
}

/** The routes of one network for a `show route PREFIX` or `show route for ADDRESS` (none: an empty list). */
function networkRoutes(routes: readonly BirdRoute[], wanted: NonNullable<ShowRouteOptions['network']>): BirdRoute[] {
  const networks = [...new Set(routes.map((route) => route.network))].map((network) => Ipv4Prefix.parse(network));
  const chosen = wanted.longestMatch
    ? networks
        .filter((network) => network.contains(wanted.prefix.address) && network.length <= wanted.prefix.length)
        .sort((a, b) => b.length - a.length)[0]
    : networks.find((network) => network.equals(wanted.prefix));
  return chosen ? routes.filter((route) => route.network === chosen.toString()) : [];
}

/** rt_show_net's walk: the routes examined (the table, or one network) and those that pass the protocol filter. */
export function selectRoutes(
  routes: readonly BirdRoute[],
  options: ShowRouteOptions = {},
): { examined: readonly BirdRoute[]; shown: readonly BirdRoute[] } {
  const examined = options.network ? networkRoutes(routes, options.network) : routes;
  const shown = examined.filter((route) => options.protocol === undefined || route.protocol === options.protocol);
  return { examined, shown };
}

/**
 * `show route [PREFIX | for ADDRESS] [protocol NAME] [count]`: `%-18s %s [%s %s%s]%s%s` per route (rt_show_rte), the
 * network written on the first route shown of it; `count` (and `stats`, after the routes) ends with
 * `N of M routes for K networks`; a network asked for and absent is `Network not in table`.
 */
export function showRoute(
  routes: readonly BirdRoute[],
  now: number,
  options: ShowRouteOptions & { readonly stats?: boolean } = {},
): BirdMessage[] {
  const { examined, shown } = selectRoutes(routes, options);
  if (options.network && examined.length === 0) return [{ code: 8001, text: 'Network not in table' }];
  const lines: BirdMessage[] = [];
  let previousNetwork: string | undefined;
  if (!options.count) {
    for (const route of shown) {
      const prefix = route.network === previousNetwork ? '' : route.network;
      previousNetwork = route.network;
      const from = route.from === undefined ? '' : ` from ${route.from}`;
      const text =
        `${prefix.padEnd(18)} ${formatVia(route.via)} [${route.protocol} ${birdTime(route.since, now)}${from}]` +
        `${route.primary ? ' *' : ''}${routeInfo(route)}`;
      lines.push({ code: -1007, text });
    }
  }
  if (!options.count && !options.stats) return [...lines, END];
  const networks = new Set(examined.map((route) => route.network)).size;
  return [...lines, { code: 14, text: `${shown.length} of ${examined.length} routes for ${networks} networks` }];
}
