/**
 * The node's BGP speaker, in BIRD's place on a Calico node: it listens on TCP 179 at the node's address, keeps one
 * neighbour per mesh peer (neighbour.ts), exports the node's own blocks to each, and chooses one path per prefix from
 * what the neighbours announce. The chosen paths are what the node turns into `via PEER dev tunl0 proto bird onlink`
 * routes; the table is the speaker's, the kernel's routes are the node's.
 *
 * iBGP only, as Calico's: a learned route is passed on to another iBGP peer only where one of the two is this node's
 * route reflector client (RFC 4456, BIRD's `rr client`). Without reflectors nothing is passed on (RFC 4271 §9.1.3), so
 * every node must peer with every other, which is what the mesh is.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Ipv4Address, Ipv4Prefix } from '../../routing/address.js';
import {
  BGP_ATTRIBUTE_FLAG,
  BGP_CEASE,
  BGP_ORIGIN,
  type BgpPathAttributes,
  type BgpPrefix,
  type BgpUpdate,
} from '../../wire/bgp.js';
import {
  BIRD_TIMERS,
  Neighbour,
  type BgpTimers,
  type NeighbourConfig,
  type NeighbourStatus,
  type ReceivedPath,
  prefixKey,
} from './neighbour.js';

export interface SpeakerConfig {
  /** The node's address: listen address, TCP source address (`source address`) and next hop of what it exports. */
  address: Ipv4Address;
  /** `router id`: the node's address in Calico. */
  routerId: Ipv4Address;
  as: number;
  /** TCP 179 on a node; tests may pick another. */
  port: number;
  timers?: Partial<BgpTimers>;
  log: (line: string) => void;
  /** Called after the chosen paths changed, once per turn of the event loop however many UPDATEs came in it. */
  onRoutesChanged: (routes: readonly LearnedRoute[]) => void;
}

/** A chosen path: one per prefix, as the node's table holds it. */
export interface LearnedRoute {
  destination: Ipv4Prefix;
  nextHop: Ipv4Address;
  /** The protocol it came from, `Mesh_10_0_0_12`. */
  from: string;
  since: string;
}

export interface SpeakerStatus {
  routerId: string;
  as: number;
  startedAt: string;
  neighbours: NeighbourStatus[];
  /** What this node exports to every neighbour. */
  exported: string[];
  routes: LearnedRoute[];
}

/** A /26 is 5 bytes of NLRI: 500 of them and the attributes stay well under BGP's 4096-byte message. */
const PREFIXES_PER_UPDATE = 500;

export class BgpSpeaker {
  private readonly server: Server;
  private neighbours = new Map<string, Neighbour>();
  private exported = new Map<string, BgpPrefix>();
  private readonly chosen = new Map<string, LearnedRoute>();
  /** The path behind each chosen route, and where it came from: what a reflector passes on. */
  private readonly best = new Map<string, [Neighbour, ReceivedPath]>();
  /** Adj-RIB-Out of reflected routes, per neighbour: what it was last sent for each destination this node does not own. */
  private readonly reflected = new Map<Neighbour, Map<string, ReceivedPath>>();
  private readonly timers: BgpTimers;
  private readonly startedAt = new Date();
  private notifyScheduled = false;
  private stopped = false;
  private localAs: number;

  constructor(private readonly config: SpeakerConfig) {
    this.localAs = config.as;
    this.timers = { ...BIRD_TIMERS, ...config.timers };
    this.server = createServer((socket) => this.incoming(socket));
  }

  /** Listens; the neighbours are given by `setNeighbours`. */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const where = `${this.config.address}:${this.config.port}`;
      this.server.once('error', (error) => reject(new Error(`BGP cannot listen on ${where}: ${error.message}`)));
      this.server.listen({ host: this.config.address.toString(), port: this.config.port }, () => resolve());
    });
  }

  /**
   * The peers as the datastore (or the spec) lists them, and this node's AS. New ones start, gone ones are stopped
   * with Cease (Peer De-configured) and their routes leave; unchanged ones keep their sessions. A new local AS (a
   * BGPConfiguration's asNumber) restarts every session with Cease (Other Configuration Change), as BIRD does when
   * a reconfiguration changes `local as`.
   */
  setNeighbours(configs: readonly NeighbourConfig[], localAs = this.localAs): void {
    const asChanged = localAs !== this.localAs;
    this.localAs = localAs;
    const wanted = new Map(configs.map((config) => [config.address.toString(), config]));
    for (const [address, neighbour] of this.neighbours) {
      const config = wanted.get(address);
      if (
        !asChanged &&
        config &&
        config.as === neighbour.config.as &&
        config.passive === neighbour.config.passive &&
        config.type === neighbour.config.type &&
        config.reflectorClient?.clusterId === neighbour.config.reflectorClient?.clusterId
      ) {
        continue;
      }
      this.neighbours.delete(address);
      this.reflected.delete(neighbour);
      neighbour.stop(asChanged && config ? BGP_CEASE.OTHER_CONFIGURATION_CHANGE : BGP_CEASE.PEER_DECONFIGURED);
      this.pathsChanged([...neighbour.paths.keys()]);
      neighbour.paths.clear();
    }
    for (const [address, config] of wanted) {
      if (this.neighbours.has(address) || this.stopped) continue;
      const neighbour = new Neighbour(
        config,
        {
          address: this.config.address,
          port: this.config.port,
          session: { localAs: this.localAs, routerId: this.config.routerId.value, holdTime: this.timers.holdTime },
        },
        this.timers,
        {
          onEstablished: (established) => this.sendTable(established),
          onPathsChanged: (_, destinations) => this.pathsChanged(destinations),
          onRouteRefresh: (asking) => this.sendTable(asking),
          log: this.config.log,
        },
      );
      this.neighbours.set(address, neighbour);
      neighbour.start();
    }
    // In the order given, as BIRD lists its protocols in bird.cfg's order (`birdcl show protocols`, node status).
    this.neighbours = new Map(
      [...wanted.keys()].flatMap((address) => {
        const neighbour = this.neighbours.get(address);
        return neighbour ? [[address, neighbour] as const] : [];
      }),
    );
  }

  /** The prefixes this node originates (its blocks): what changed is announced or withdrawn at once. */
  announce(prefixes: readonly Ipv4Prefix[]): void {
    const next = new Map<string, BgpPrefix>(
      prefixes.map((prefix) => [prefix.toString(), { address: prefix.addressValue, length: prefix.length }]),
    );
    const withdrawn = [...this.exported].filter(([key]) => !next.has(key)).map(([, prefix]) => prefix);
    const added = [...next].filter(([key]) => !this.exported.has(key)).map(([, prefix]) => prefix);
    this.exported = next;
    for (const neighbour of this.neighbours.values()) {
      if (!neighbour.established) continue;
      this.sendWithdrawals(neighbour, withdrawn);
      this.sendAnnouncements(neighbour, added);
    }
    // A destination that changed owner leaves or joins what is reflected.
    this.reflect([...withdrawn, ...added].map((prefix) => prefixKey(prefix.address, prefix.length)));
  }

  /** This node's AS now: the one it started with, or the last `setNeighbours` gave. */
  get as(): number {
    return this.localAs;
  }

  routes(): LearnedRoute[] {
    return [...this.chosen.values()];
  }

  status(): SpeakerStatus {
    return {
      routerId: this.config.routerId.toString(),
      as: this.localAs,
      startedAt: this.startedAt.toISOString(),
      neighbours: [...this.neighbours.values()].map((neighbour) => neighbour.status()),
      exported: [...this.exported.keys()],
      routes: this.routes(),
    };
  }

  /** Cease (Administrative Shutdown) to every session, as BIRD sends on shutdown; resolves once the listener is closed. */
  stop(): Promise<void> {
    this.stopped = true;
    for (const neighbour of this.neighbours.values()) neighbour.stop();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private incoming(socket: Socket): void {
    const remote = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const neighbour = this.neighbours.get(remote);
    if (!neighbour) {
      // BIRD logs "Unexpected connect from unknown address" and closes, before any OPEN.
      this.config.log(`BGP: unexpected connect from unknown address ${remote}`);
      socket.destroy();
      return;
    }
    neighbour.accept(socket);
  }

  private sendTable(neighbour: Neighbour): void {
    this.sendAnnouncements(neighbour, [...this.exported.values()]);
    this.reflected.set(neighbour, new Map());
    this.reflectTo(neighbour, [...this.best.keys()]);
  }

  /** Brings every established neighbour's reflected routes for `destinations` up to date. */
  private reflect(destinations: readonly string[]): void {
    for (const neighbour of this.neighbours.values()) {
      if (neighbour.established) this.reflectTo(neighbour, destinations);
    }
  }

  /** BIRD's bgp_import_control and bgp_update_attrs for routes learned over iBGP: what `to` should have, sent. */
  private reflectTo(to: Neighbour, destinations: readonly string[]): void {
    const sent = this.reflected.get(to);
    if (!sent) return;
    for (const destination of destinations) {
      const best = this.exported.has(destination) ? undefined : this.best.get(destination);
      const wanted = best && reflectable(best[0], best[1], to) ? best : undefined;
      const previous = sent.get(destination);
      if (wanted?.[1] === previous) continue;
      if (!wanted) {
        sent.delete(destination);
        this.sendWithdrawals(to, [
          { address: previous!.destination.addressValue, length: previous!.destination.length },
        ]);
        continue;
      }
      const [from, path] = wanted;
      sent.set(destination, path);
      to.send({
        type: 'update',
        withdrawn: [],
        attributes: reflectedAttributes(from, path, to),
        nlri: [{ address: path.destination.addressValue, length: path.destination.length }],
      });
    }
  }

  /** Calico's block routes carry ORIGIN IGP, an empty AS_PATH, NEXT_HOP and LOCAL_PREF 100 (the BIRD vectors). */
  private sendAnnouncements(neighbour: Neighbour, prefixes: readonly BgpPrefix[]): void {
    for (let at = 0; at < prefixes.length; at += PREFIXES_PER_UPDATE) {
      const update: BgpUpdate = {
        type: 'update',
        withdrawn: [],
        attributes: {
          origin: BGP_ORIGIN.IGP,
          asPath: [],
          nextHop: this.config.address.value,
          localPref: 100,
          unrecognized: [],
        },
        nlri: prefixes.slice(at, at + PREFIXES_PER_UPDATE),
      };
      neighbour.send(update);
    }
  }

  private sendWithdrawals(neighbour: Neighbour, prefixes: readonly BgpPrefix[]): void {
    for (let at = 0; at < prefixes.length; at += PREFIXES_PER_UPDATE) {
      const withdrawn = prefixes.slice(at, at + PREFIXES_PER_UPDATE);
      neighbour.send({ type: 'update', withdrawn, attributes: { unrecognized: [] }, nlri: [] });
    }
  }

  /** Chooses again for each destination that changed (RFC 4271 §9.1.2, the iBGP part of the decision). */
  private pathsChanged(destinations: readonly string[]): void {
    let changed = false;
    for (const destination of destinations) {
      const best = this.choose(destination);
      const current = this.chosen.get(destination);
      if (!best) {
        this.best.delete(destination);
        changed = this.chosen.delete(destination) || changed;
        continue;
      }
      this.best.set(destination, best);
      const [neighbour, path] = best;
      if (current && current.from === neighbour.name && current.nextHop.equals(path.nextHop)) continue;
      this.chosen.set(destination, {
        destination: path.destination,
        nextHop: path.nextHop,
        from: neighbour.name,
        since: path.since.toISOString(),
      });
      changed = true;
    }
    this.reflect(destinations);
    if (changed) this.scheduleNotify();
  }

  private choose(destination: string): [Neighbour, ReceivedPath] | undefined {
    let best: [Neighbour, ReceivedPath] | undefined;
    for (const neighbour of this.neighbours.values()) {
      const path = neighbour.paths.get(destination);
      if (path && (!best || better(path, neighbour, best[1], best[0]))) best = [neighbour, path];
    }
    return best;
  }

  private scheduleNotify(): void {
    if (this.notifyScheduled) return;
    this.notifyScheduled = true;
    setImmediate(() => {
      this.notifyScheduled = false;
      this.config.onRoutesChanged(this.routes());
    });
  }
}

/**
 * BIRD's bgp_rte_better for iBGP paths: higher LOCAL_PREF, shorter AS_PATH, lower ORIGIN, lower MED, then the lower
 * router ID (the ORIGINATOR_ID of a reflected path, RFC 4456 §9), the shorter CLUSTER_LIST, the lower peer address.
 */
function better(path: ReceivedPath, neighbour: Neighbour, than: ReceivedPath, thanNeighbour: Neighbour): boolean {
  if (path.localPref !== than.localPref) return path.localPref > than.localPref;
  if (path.asPathLength !== than.asPathLength) return path.asPathLength < than.asPathLength;
  if (path.origin !== than.origin) return path.origin < than.origin;
  if (path.multiExitDisc !== than.multiExitDisc) return path.multiExitDisc < than.multiExitDisc;
  const routerId = originatorOf(path, neighbour) >>> 0;
  const thanRouterId = originatorOf(than, thanNeighbour) >>> 0;
  if (routerId !== thanRouterId) return routerId < thanRouterId;
  const clusters = path.attributes.clusterList?.length ?? 0;
  const thanClusters = than.attributes.clusterList?.length ?? 0;
  if (clusters !== thanClusters) return clusters < thanClusters;
  return neighbour.config.address.compare(thanNeighbour.config.address) < 0;
}

function originatorOf(path: ReceivedPath, from: Neighbour): number {
  return path.attributes.originatorId ?? from.peerRouterId ?? from.config.address.value;
}

/**
 * A route learned from `from` goes to `to` only through a reflector: one of the two is its client (RFC 4456 §6). Not
 * back where it came from, nor to a client whose cluster it already crossed.
 */
function reflectable(from: Neighbour, path: ReceivedPath, to: Neighbour): boolean {
  if (from === to || (!from.config.reflectorClient && !to.config.reflectorClient)) return false;
  const clusterId = to.config.reflectorClient?.clusterId;
  return clusterId === undefined || !(path.attributes.clusterList ?? []).includes(clusterId);
}

/**
 * The path as a reflector sends it on: NEXT_HOP, LOCAL_PREF and AS_PATH as learned (iBGP), ORIGINATOR_ID set to the
 * peer it came from if none was, the cluster's ID in front of CLUSTER_LIST (the client's cluster when leaving it, the
 * receiver's when entering), optional non-transitive attributes dropped and transitive ones marked Partial.
 */
function reflectedAttributes(from: Neighbour, path: ReceivedPath, to: Neighbour): BgpPathAttributes {
  const { attributes } = path;
  const clusterId = (from.config.reflectorClient ?? to.config.reflectorClient)!.clusterId;
  const clusterList = [clusterId, ...(attributes.clusterList ?? [])];
  const twoClusters =
    from.config.reflectorClient && to.config.reflectorClient && to.config.reflectorClient.clusterId !== clusterId;
  if (twoClusters) clusterList.unshift(to.config.reflectorClient!.clusterId);
  return {
    ...attributes,
    originatorId: attributes.originatorId ?? originatorOf(path, from),
    clusterList,
    unrecognized: attributes.unrecognized
      .filter((raw) => (raw.flags & BGP_ATTRIBUTE_FLAG.TRANSITIVE) !== 0)
      .map((raw) => ({
        ...raw,
        flags: raw.flags & BGP_ATTRIBUTE_FLAG.OPTIONAL ? raw.flags | BGP_ATTRIBUTE_FLAG.PARTIAL : raw.flags,
      })),
  };
}
