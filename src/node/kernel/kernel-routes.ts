/**
 * Felix's and BIRD's routes in the node container's kernel table, with Calico's own attributes: the same lines that
 * `ip route` prints on a real node (`… via NODE dev tunl0 proto bird onlink`, `blackhole BLOCK proto bird`,
 * `POD dev cali… scope link`), written by `ip route replace` with exactly those words.
 *
 * A sync converges: it adds what is missing, deletes what is stale, and touches only routes that are Calico's
 * (proto bird, or out of a cali… device): the connected eth0 route, Docker's default route and anything a user added
 * stay as they are.
 */
import type { Route } from '../../routing/route.js';
import { renderIpRoute } from '../../routing/render.js';

/** The routes of a node that the kernel gets: every one but the connected eth0 route, which the kernel makes itself. */
export function isCalicoRoute(route: Route): boolean {
  return route.kind === 'blackhole' || route.proto === 'bird' || route.dev.startsWith('cali');
}

/** `ip route` prints `linkdown` while tunl0 has no carrier, and a trailing space after most lines. */
function normalise(line: string): string {
  return line
    .replace(/ linkdown\b/, '')
    .replace(/\s+/g, ' ')
    .trim();
}

function isCalicoLine(line: string): boolean {
  return / proto bird( |$)/.test(line) || / dev cali\S+( |$)/.test(line);
}

export interface RouteSync {
  added: number;
  removed: number;
}

/** What `sync` needs from iproute2; the agent passes runIp and runIpBatch. */
export interface RouteTools {
  ip(args: readonly string[]): Promise<string>;
  batch(lines: readonly string[]): Promise<void>;
}

export async function syncKernelRoutes(routes: Iterable<Route>, tools: RouteTools): Promise<RouteSync> {
  const wanted = new Set(
    renderIpRoute([...routes].filter(isCalicoRoute))
      .split('\n')
      .map(normalise)
      .filter((line) => line.length > 0),
  );
  const present = new Set(
    (await tools.ip(['route', 'show', 'table', 'main'])).split('\n').map(normalise).filter(isCalicoLine),
  );
  const stale = [...present].filter((line) => !wanted.has(line));
  const missing = [...wanted].filter((line) => !present.has(line));
  if (stale.length + missing.length > 0) {
    await tools.batch([...stale.map((line) => `route del ${line}`), ...missing.map((line) => `route replace ${line}`)]);
  }
  return { added: missing.length, removed: stale.length };
}
