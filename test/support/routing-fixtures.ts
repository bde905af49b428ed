import { Ipv4Address, Ipv4Prefix } from '../../src/routing/address.js';
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
