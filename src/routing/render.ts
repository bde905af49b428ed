import type { Ipv4Address, Ipv4Prefix } from './address.js';
import type { Link, LinkAddress, LinkAddress6 } from './link.js';
import type { Route } from './route.js';

export interface RouteRenderOptions {
  /** `route -n`: print every address as a number. */
  readonly numeric: boolean;
  /**
   * What gethostbyaddr(3) answers on the node (/etc/hosts, nss-myhostname's `_gateway`, DNS); undefined prints the
   * address. net-tools asks it for gateways and host (/32) destinations only: network destinations go to
   * getnetbyaddr(3), which knows nothing on a stock system, so they always print as numbers.
   */
  readonly resolveHost?: (address: Ipv4Address) => string | undefined;
}

const ROUTE_HEADER =
  'Kernel IP routing table\n' + 'Destination     Gateway         Genmask         Flags Metric Ref    Use Iface\n';

/** net-tools `route` / `route -n` (lib/inet_gr.c, rprint_fib) over routes in the order given. */
export function renderRoute(routes: Iterable<Route>, options: RouteRenderOptions): string {
  let out = ROUTE_HEADER;
  for (const route of routes) out += netToolsLine(route, options);
  return out;
}

function netToolsLine(route: Route, { numeric, resolveHost }: RouteRenderOptions): string {
  const { destination } = route;
  const host = destination.length === 32;
  const gateway = route.kind === 'unicast' ? route.gateway : undefined;
  const name = (address: Ipv4Address): string => (numeric ? undefined : resolveHost?.(address)) ?? String(address);

  // INADDR_ANY is `default` as a destination but `0.0.0.0` as a gateway (the seeds' net-tools; 1.60 printed `*`).
  let target = String(destination.address);
  if (destination.address.value === 0) target = numeric ? target : 'default';
  else if (host) target = name(destination.address);

  // /proc/net/route marks a blackhole with no flag of its own (only unreachable/prohibit get RTF_REJECT) and has no
  // device to name, hence plain `U` and `*`.
  const flags = 'U' + (gateway ? 'G' : '') + (host ? 'H' : '');
  const iface = route.kind === 'unicast' ? route.dev : '*';
  // The kernel prints the u32 priority with %d, so metrics past 2^31 - 1 come out negative; Ref and Use it prints
  // as constant 0 since the routing cache went away (Linux 3.6).
  const metric = (route.metric ?? 0) | 0;

  return (
    `${column(target)} ${column(gateway ? name(gateway) : '0.0.0.0')} ${column(String(destination.netmask))} ` +
    `${flags.padEnd(5)} ${String(metric).padEnd(6)} ${'0'.padEnd(2)} ${'0'.padStart(7)} ${iface}\n`
  );
}

/** `%-15s` of a string net-tools has already cut to 15 characters (hence `networking-work`). */
function column(text: string): string {
  return text.slice(0, 15).padEnd(15);
}

/**
 * iproute2 `ip route` (ip/iproute.c, print_route): `[type] dst [via gw] dev D [proto P] [scope S] [src A]
 * [metric M] [onlink]`, every word followed by a space, so each line ends in one.
 */
export function renderIpRoute(routes: Iterable<Route>): string {
  let out = '';
  for (const route of routes) out += ipRouteLine(route);
  return out;
}

function ipRouteLine(route: Route): string {
  const words: string[] = [];
  if (route.kind === 'blackhole') words.push('blackhole');
  words.push(ipRouteDestination(route.destination));
  const unicast = route.kind === 'unicast' ? route : undefined;
  if (unicast?.gateway) words.push('via', String(unicast.gateway));
  if (unicast) words.push('dev', unicast.dev);
  // `boot` is what `ip route add` records when no proto is given; iproute2 leaves it out, and so do we for unset.
  if (route.proto !== undefined && route.proto !== 'boot') words.push('proto', String(route.proto));
  if (unicast && unicast.scope !== 'global') words.push('scope', unicast.scope);
  if (unicast?.source) words.push('src', String(unicast.source));
  // The kernel sends no RTA_PRIORITY for metric 0.
  if (route.metric) words.push('metric', String(route.metric));
  if (unicast?.onlink) words.push('onlink');
  return words.join(' ') + ' \n';
}

function ipRouteDestination(destination: Ipv4Prefix): string {
  if (destination.length === 0) return 'default';
  return destination.length === 32 ? String(destination.address) : String(destination);
}

export interface IpAddrOptions {
  /** `iproute2` as on a node; `busybox` as inside hello-app's pod (no `group`, no `link-netnsid`). */
  readonly style: 'iproute2' | 'busybox';
}

const LIFETIMES = '       valid_lft forever preferred_lft forever\n';

/** `ip addr`, links in ifindex order (the kernel's dump order), each followed by its addresses. */
export function renderIpAddr(links: readonly Link[], { style }: IpAddrOptions): string {
  const byIndex = [...links].sort((a, b) => a.index - b.index);
  let out = '';
  for (const link of byIndex) {
    out += linkLines(link, links, style);
    for (const address of link.addresses) out += inetLines(address);
    for (const address of link.addresses6 ?? []) out += inet6Lines(address);
  }
  return out;
}

function linkLines(link: Link, links: readonly Link[], style: IpAddrOptions['style']): string {
  const iproute2 = style === 'iproute2';
  const name = link.parent === undefined ? link.name : `${link.name}@${link.parent}`;
  const flags = link.flags.join(',') + (peerDown(link, links, style) ? ',M-DOWN' : '');
  // Both tools print each field with a trailing space and `qlen N` without one, only when N is not 0: a veth with
  // no queue (the pod's eth0 in the seed) ends its line in a space.
  let first = `${link.index}: ${name}: <${flags}> mtu ${link.mtu} qdisc ${link.qdisc} state ${link.state} `;
  if (iproute2) first += `group ${link.group ?? 'default'} `;
  if (link.qlen) first += `qlen ${link.qlen}`;

  let second = `    link/${link.linkType} ${link.linkAddress} brd ${link.linkBroadcast}`;
  if (iproute2 && link.linkNetns !== undefined) {
    second += /^\d+$/.test(link.linkNetns) ? ` link-netnsid ${link.linkNetns}` : ` link-netns ${link.linkNetns}`;
  }
  return `${first}\n${second}\n`;
}

/**
 * `M-DOWN` flags a link whose parent (a veth's peer) is down. Both tools look the parent up among the links of
 * their own namespace, but busybox counts an unknown index as down (flags 0), which is why the seed's pod eth0@if8
 * shows M-DOWN, while iproute2 counts it as up (flags -1) and skips the lookup altogether when the kernel says the
 * peer is in another namespace.
 */
function peerDown(link: Link, links: readonly Link[], style: IpAddrOptions['style']): boolean {
  if (link.parent === undefined || link.parent === 'NONE') return false;
  if (style === 'iproute2' && link.linkNetns !== undefined) return false;
  const parent = links.find((candidate) => candidate.name === link.parent);
  return parent ? !parent.flags.includes('UP') : style === 'busybox';
}

function inetLines({ address, prefixLength, broadcast, scope, label }: LinkAddress): string {
  const brd = broadcast ? `brd ${broadcast} ` : '';
  return `    inet ${address}/${prefixLength} ${brd}scope ${scope} ${label}\n${LIFETIMES}`;
}

/** IPv6 addresses carry no label, so the line ends in the space after the scope. */
function inet6Lines({ address, prefixLength, scope }: LinkAddress6): string {
  return `    inet6 ${address}/${prefixLength} scope ${scope} \n${LIFETIMES}`;
}
