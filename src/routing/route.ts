import { Ipv4Address, Ipv4Prefix } from './address.js';

/**
 * `proto` as iproute2 names it; numbers are printed as-is (Felix in Calico v3.33 uses proto 80). `dhcp` is what a
 * Vagrant or cloud node's default route carries.
 */
export type RouteProtocol = 'kernel' | 'boot' | 'static' | 'dhcp' | 'bird' | number;
export type RouteScope = 'global' | 'link' | 'host';

/**
 * Where a unicast route sends packets: the route less its destination. A route table shares one object among all
 * the routes that say the same, e.g. every block routed via one peer node.
 */
export interface UnicastNextHop {
  readonly kind: 'unicast';
  readonly gateway?: Ipv4Address;
  readonly dev: string;
  /** Calico's tunnel routes say `onlink`: the gateway is not on tunl0's (empty) subnet. */
  readonly onlink?: boolean;
  readonly scope: RouteScope;
  readonly proto?: RouteProtocol;
  readonly metric?: number;
  /** The preferred source (`src`), as the kernel puts on connected routes. */
  readonly source?: Ipv4Address;
}

/** What a blackhole route does with packets (discards them), less its destination. */
export interface BlackholeNextHop {
  readonly kind: 'blackhole';
  readonly proto?: RouteProtocol;
  readonly metric?: number;
}

export type NextHop = UnicastNextHop | BlackholeNextHop;

/** A route that forwards out of a device: `dev D scope link`, or `via GW dev D [onlink]`. */
export interface UnicastRoute extends UnicastNextHop {
  readonly destination: Ipv4Prefix;
}

/** Calico's own block on a node: traffic to unallocated addresses in it is silently discarded. */
export interface BlackholeRoute extends BlackholeNextHop {
  readonly destination: Ipv4Prefix;
}

export type Route = UnicastRoute | BlackholeRoute;

/** A route as JSON carries it (`GET /v1/dataplane`): its addresses as text. */
export type RouteJson =
  | (Omit<UnicastRoute, 'destination' | 'gateway' | 'source'> & {
      destination: string;
      gateway?: string;
      source?: string;
    })
  | (Omit<BlackholeRoute, 'destination'> & { destination: string });

/** The route a JSON answer describes, with its addresses parsed again; malformed text throws. */
export function routeFromJson(json: RouteJson): Route {
  if (json.kind === 'blackhole') return { ...json, destination: Ipv4Prefix.parse(json.destination) };
  const { gateway, source, ...rest } = json;
  return {
    ...rest,
    destination: Ipv4Prefix.parse(json.destination),
    ...(gateway !== undefined && { gateway: Ipv4Address.parse(gateway) }),
    ...(source !== undefined && { source: Ipv4Address.parse(source) }),
  };
}
