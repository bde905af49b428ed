import { Ipv4Address, Ipv4Prefix } from '../../src/routing/address.js';
import type { Link } from '../../src/routing/link.js';
import type { BlackholeRoute, UnicastRoute } from '../../src/routing/route.js';

export const addr = (text: string): Ipv4Address => Ipv4Address.parse(text);
export const prefix = (text: string): Ipv4Prefix => Ipv4Prefix.parse(text);

type Extra = Partial<Omit<UnicastRoute, 'kind' | 'destination' | 'dev' | 'gateway'>>;

/** `DST via GW dev DEV`, scope global unless `extra` says otherwise. */
export function via(destination: string, gateway: string, dev: string, extra: Extra = {}): UnicastRoute {
  return { kind: 'unicast', destination: prefix(destination), gateway: addr(gateway), dev, scope: 'global', ...extra };
}

/** `DST dev DEV scope link`, a directly connected destination. */
export function direct(destination: string, dev: string, extra: Extra = {}): UnicastRoute {
  return { kind: 'unicast', destination: prefix(destination), dev, scope: 'link', ...extra };
}

export function blackhole(destination: string, extra: Partial<Omit<BlackholeRoute, 'kind'>> = {}): BlackholeRoute {
  return { kind: 'blackhole', destination: prefix(destination), ...extra };
}

/** Calico's three route shapes as BIRD programs them (CALICO-FACTS.md). */
export const tunnel = (block: string, node: string): UnicastRoute =>
  via(block, node, 'tunl0', { proto: 'bird', onlink: true });
export const ownBlock = (block: string): BlackholeRoute => blackhole(block, { proto: 'bird' });
export const pod = (ip: string, veth: string): UnicastRoute => direct(ip, veth);

/** An /etc/hosts-like resolver for `route` without -n. */
export function hosts(names: Record<string, string>): (address: Ipv4Address) => string | undefined {
  return (address) => names[String(address)];
}

/** Lines joined with '\n' and a final '\n', so trailing spaces stay visible in the test source. */
export function lines(...text: string[]): string {
  return text.map((line) => `${line}\n`).join('');
}

/** `lo` as `ip addr` shows it on a node or in a pod. */
export const loopbackLink: Link = {
  index: 1,
  name: 'lo',
  flags: ['LOOPBACK', 'UP', 'LOWER_UP'],
  mtu: 65536,
  qdisc: 'noqueue',
  state: 'UNKNOWN',
  qlen: 1000,
  linkType: 'loopback',
  linkAddress: '00:00:00:00:00:00',
  linkBroadcast: '00:00:00:00:00:00',
  addresses: [{ address: addr('127.0.0.1'), prefixLength: 8, scope: 'host', label: 'lo' }],
};

/** A node's `tunl0`, holding its tunnel address as a /32. */
export function tunl0Link(index: number, tunnelAddress: string): Link {
  return {
    index,
    name: 'tunl0',
    parent: 'NONE',
    flags: ['NOARP', 'UP', 'LOWER_UP'],
    mtu: 1480,
    qdisc: 'noqueue',
    state: 'UNKNOWN',
    qlen: 1000,
    linkType: 'ipip',
    linkAddress: '0.0.0.0',
    linkBroadcast: '0.0.0.0',
    addresses: [{ address: addr(tunnelAddress), prefixLength: 32, scope: 'global', label: 'tunl0' }],
  };
}

/** `tunl0` inside a pod: the ipip module's fallback device, down and without an address. */
export const podTunl0Link: Link = {
  ...tunl0Link(2, '0.0.0.0'),
  flags: ['NOARP'],
  qdisc: 'noop',
  state: 'DOWN',
  addresses: [],
};

/** busybox `ip addr` lines for `loopbackLink` and `podTunl0Link`, as every pod's output starts. */
export const busyboxPodLoAndTunl0 = [
  '1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN qlen 1000',
  '    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00',
  '    inet 127.0.0.1/8 scope host lo',
  '       valid_lft forever preferred_lft forever',
  '2: tunl0@NONE: <NOARP> mtu 1480 qdisc noop state DOWN qlen 1000',
  '    link/ipip 0.0.0.0 brd 0.0.0.0',
];
