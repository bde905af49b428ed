import type { Ipv4Prefix } from './address.js';
import { LpmTable } from './lpm.js';
import type { Route } from './route.js';

/**
 * One node's (or pod's) main routing table, with at most one route per destination prefix: the kernel could also
 * hold same-prefix routes differing in metric or TOS, but neither Calico nor a pod's CNI setup installs those. So the
 * metric is carried for display only and never breaks a tie.
 */
export class RouteTable {
  private readonly byDestination = new LpmTable<Route>();

  get size(): number {
    return this.byDestination.size;
  }

  /** Like `ip route add`: refuses a destination that is already routed. */
  add(route: Route): void {
    checkDestination(route.destination);
    if (this.byDestination.get(route.destination) !== undefined) {
      throw new Error(`route to ${route.destination} exists (RTNETLINK answers: File exists)`);
    }
    this.byDestination.insert(route.destination, route);
  }

  /** Like `ip route replace`, which is how BIRD and Felix keep their routes current. */
  replace(route: Route): void {
    checkDestination(route.destination);
    this.byDestination.insert(route.destination, route);
  }

  remove(destination: Ipv4Prefix): boolean {
    return this.byDestination.remove(destination);
  }

  /** The route for exactly this destination. */
  get(destination: Ipv4Prefix): Route | undefined {
    return this.byDestination.get(destination);
  }

  /** The route a packet to this uint32 address takes (longest prefix match), allocation-free. */
  lookup(address: number): Route | undefined {
    return this.byDestination.lookup(address);
  }

  /** All routes in the order `ip route` and `route` print them. */
  routes(): Route[] {
    return Array.from(this.byDestination.entries(), ([, route]) => route);
  }
}

/** The kernel refuses `10.0.0.1/24` rather than guessing; so do we, so a table never holds two spellings. */
function checkDestination(destination: Ipv4Prefix): void {
  if (!destination.isMasked()) {
    throw new RangeError(`${destination}: Invalid prefix for given prefix length`);
  }
}
