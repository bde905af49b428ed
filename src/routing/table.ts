import { Ipv4Address, type Ipv4Prefix } from './address.js';
import { comparePrefixesInKernelOrder, LpmTable } from './lpm.js';
import type { BlackholeNextHop, NextHop, Route, UnicastNextHop } from './route.js';

/**
 * One node's (or pod's) main routing table, with at most one route per destination prefix: the kernel could also
 * hold same-prefix routes differing in metric or TOS, but neither Calico nor a pod's CNI setup installs those. So the
 * metric is carried for display only and never breaks a tie.
 *
 * It keeps each destination's next hop rather than a route object, and routes that agree on everything but the
 * destination share one next hop: an agent with 100k routes to 5,000 peers' blocks holds 5,000 of them. Route objects
 * are made only when asked for, to be printed.
 */
export class RouteTable {
  private readonly byDestination = new LpmTable<NextHop>();
  private readonly nextHops = new SharedNextHops();

  get size(): number {
    return this.byDestination.size;
  }

  /** Like `ip route add`: refuses a destination that is already routed. */
  add(route: Route): void {
    checkDestination(route.destination);
    if (this.byDestination.get(route.destination) !== undefined) {
      throw new Error(`route to ${route.destination} exists (RTNETLINK answers: File exists)`);
    }
    this.byDestination.insert(route.destination, this.nextHops.acquire(route));
  }

  /** Like `ip route replace`, which is how BIRD and Felix keep their routes current. */
  replace(route: Route): void {
    checkDestination(route.destination);
    const previous = this.byDestination.get(route.destination);
    // Acquired before the release, so that replacing a route by an equal one keeps its shared next hop.
    this.byDestination.insert(route.destination, this.nextHops.acquire(route));
    if (previous !== undefined) this.nextHops.release(previous);
  }

  remove(destination: Ipv4Prefix): boolean {
    const previous = this.byDestination.get(destination);
    if (previous === undefined) return false;
    this.byDestination.remove(destination);
    this.nextHops.release(previous);
    return true;
  }

  /**
   * Makes the table hold exactly `routes`: each is replaced in place and only then are the others removed, so that a
   * lookup in between never finds a gap, as BIRD's kernel protocol keeps a table current.
   */
  sync(routes: Iterable<Route>): void {
    const wanted = new Set<string>();
    for (const route of routes) {
      this.replace(route);
      wanted.add(route.destination.masked().toString());
    }
    const stale = Array.from(this.byDestination.entries(), ([destination]) => destination).filter(
      (destination) => !wanted.has(destination.toString()),
    );
    for (const destination of stale) this.remove(destination);
  }

  /** The route for exactly this destination, made anew on each call. */
  get(destination: Ipv4Prefix): Route | undefined {
    const nextHop = this.byDestination.get(destination);
    return nextHop && routeTo(destination.masked(), nextHop);
  }

  /** Where a packet to this uint32 address goes (longest prefix match), allocation-free: a shared next hop. */
  lookup(address: number): NextHop | undefined {
    return this.byDestination.lookup(address);
  }

  /** All routes in the order `ip route` and `route` print them, made anew on each call. */
  routes(): Route[] {
    return Array.from(this.byDestination.entries(), ([destination, nextHop]) => routeTo(destination, nextHop));
  }
}

/** Orders routes as `RouteTable.routes()` lists them, without building a table to sort a list. */
export function compareRoutesInKernelOrder(a: Route, b: Route): number {
  return comparePrefixesInKernelOrder(a.destination, b.destination);
}

/**
 * The route as it was added: `kind`, then the destination, then the other fields in the next hop's (the added
 * route's) order, so that JSON views print the keys in the order Felix's routes always had.
 */
function routeTo(destination: Ipv4Prefix, nextHop: NextHop): Route {
  return Object.assign({ kind: nextHop.kind, destination }, nextHop);
}

/** The kernel refuses `10.0.0.1/24` rather than guessing; so do we, so a table never holds two spellings. */
function checkDestination(destination: Ipv4Prefix): void {
  if (!destination.isMasked()) {
    throw new RangeError(`${destination}: Invalid prefix for given prefix length`);
  }
}

/** Every field of a next hop: two routes share one only if they agree on all of them. */
const NEXT_HOP_FIELDS = Object.keys({
  kind: true,
  gateway: true,
  dev: true,
  onlink: true,
  scope: true,
  proto: true,
  metric: true,
  source: true,
} satisfies Record<keyof UnicastNextHop | keyof BlackholeNextHop, true>) as (keyof UnicastNextHop)[];

type NextHopFields = Partial<Record<keyof UnicastNextHop, unknown>>;

/** Addresses are equal by value; every other field is a primitive. */
function sameField(a: unknown, b: unknown): boolean {
  return a === b || (a instanceof Ipv4Address && b instanceof Ipv4Address && a.equals(b));
}

function sameNextHop(a: NextHop | Route, b: NextHop): boolean {
  for (const field of NEXT_HOP_FIELDS) {
    if (!sameField((a as NextHopFields)[field], (b as NextHopFields)[field])) return false;
  }
  return true;
}

/** JSON, so no field's text can run into the next; addresses print as dotted quads. */
function keyOf(nextHop: NextHop | Route): string {
  return JSON.stringify(NEXT_HOP_FIELDS.map((field) => (nextHop as NextHopFields)[field]));
}

/**
 * One object per distinct next hop, counted so that one no route uses any more is let go. Routes mostly come
 * grouped by next hop (Felix lists each peer's blocks together), so the last one shared is tried first, which needs
 * no key and allocates nothing.
 */
class SharedNextHops {
  private readonly byKey = new Map<string, SharedNextHop>();
  private last: SharedNextHop | undefined;

  /** The shared next hop of `route`, with one more use counted. */
  acquire(route: Route): NextHop {
    let shared = this.last !== undefined && sameNextHop(route, this.last.nextHop) ? this.last : undefined;
    if (shared === undefined) {
      const key = keyOf(route);
      shared = this.byKey.get(key);
      if (shared === undefined) {
        const { destination, ...nextHop } = route;
        shared = { key, nextHop, uses: 0 };
        this.byKey.set(key, shared);
      }
    }
    shared.uses++;
    this.last = shared;
    return shared.nextHop;
  }

  release(nextHop: NextHop): void {
    const shared = this.last?.nextHop === nextHop ? this.last : this.byKey.get(keyOf(nextHop));
    if (shared === undefined) throw new Error(`released a next hop that is not shared: ${keyOf(nextHop)}`);
    if (--shared.uses > 0) return;
    this.byKey.delete(shared.key);
    if (shared === this.last) this.last = undefined;
  }
}

interface SharedNextHop {
  readonly key: string;
  readonly nextHop: NextHop;
  uses: number;
}
