/**
 * One configured BGP neighbour, as one `protocol bgp Mesh_…` of Calico's bird.cfg: whether this side opens the TCP
 * connection (confd's `passive on`), the connect delay and retry timers, the session of the moment, and the routes it
 * last received (its Adj-RIB-In). Best-path choice over all neighbours is the speaker's (speaker.ts).
 */
import { connect, type Socket } from 'node:net';
import {
  BGP_ATTRIBUTE_TYPE,
  BGP_CEASE,
  BGP_ERROR_CODE,
  BGP_UPDATE_MESSAGE_ERROR,
  bgpNotification,
} from '../../wire/bgp.js';
import type { BgpPathAttributes, BgpUpdate } from '../../wire/bgp.js';
import { Ipv4Address, Ipv4Prefix } from '../../routing/address.js';
import { socketErrorText } from './errors.js';
import { Session, type SessionClose, type SessionConfig } from './session.js';

/** calicoctl's names for the kinds of peer, from the protocol name's prefix (`Mesh_`, `Global_`, `Node_`). */
export type PeerType = 'node-to-node mesh' | 'global' | 'node specific';

export interface NeighbourConfig {
  address: Ipv4Address;
  as: number;
  type: PeerType;
  /** True when the peer opens the connection: confd sets `passive on` when the peer's address string is greater. */
  passive: boolean;
  /** Set when the peer is this node's route reflector client: BIRD's `rr client; rr cluster id ID`. */
  reflectorClient?: { clusterId: number };
}

/** BIRD's timers for the mesh, as Calico's template sets them (`connect delay time 2`, `connect retry time 5`, …). */
export interface BgpTimers {
  /** From start to the first connect. */
  connectDelayMs: number;
  /** After a connect that failed. */
  connectRetryMs: number;
  /** After an established or opening session closed (`error wait time 5,30`, its first value). */
  errorWaitMs: number;
  /** Seconds offered in OPEN. */
  holdTime: number;
}

export const BIRD_TIMERS: BgpTimers = { connectDelayMs: 2000, connectRetryMs: 5000, errorWaitMs: 5000, holdTime: 240 };

/** BIRD's BGP states (bgp_state_dsc), plus `Passive` and `Down` as `show protocols` prints an idle one. */
export type NeighbourState =
  'Down' | 'Passive' | 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';

/** One path a neighbour announced, as its UPDATE carried it. */
export interface ReceivedPath {
  destination: Ipv4Prefix;
  nextHop: Ipv4Address;
  localPref: number;
  asPathLength: number;
  origin: number;
  multiExitDisc: number;
  /** As the UPDATE carried them: what a reflector passes on. */
  attributes: BgpPathAttributes;
  since: Date;
}

export interface NeighbourEvents {
  /** The session is up: the speaker sends it the routes it exports. */
  onEstablished(neighbour: Neighbour): void;
  /** Paths were added or withdrawn (the whole Adj-RIB-In goes when a session closes). */
  onPathsChanged(neighbour: Neighbour, destinations: readonly string[]): void;
  /** Asked for our routes again. */
  onRouteRefresh(neighbour: Neighbour): void;
  log(line: string): void;
}

export interface NeighbourStatus {
  name: string;
  address: string;
  type: PeerType;
  state: NeighbourState;
  since: string;
  /** BIRD's last error, class and text: `Socket: Connection refused`, `Received: Administrative shutdown`. */
  lastError?: string;
  routesReceived: number;
}

const DEFAULT_LOCAL_PREF = 100;

/** The protocol's name in bird.cfg: `Mesh_10_0_0_12`, `Global_10_0_0_50`. */
export function protocolName(type: PeerType, address: Ipv4Address): string {
  const prefix = type === 'node-to-node mesh' ? 'Mesh' : type === 'global' ? 'Global' : 'Node';
  return `${prefix}_${address.toString().replace(/\./g, '_')}`;
}

export class Neighbour {
  readonly name: string;
  /**
   * A neighbour that opens as well as listens can hold two connections until one wins (RFC 4271 §6.8), as BIRD keeps
   * an outgoing and an incoming one; once a session is established only it remains.
   */
  private outgoing: Session | undefined;
  private incoming: Session | undefined;
  private current: Session | undefined;
  private state: NeighbourState = 'Idle';
  private since = new Date();
  private lastError: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Adj-RIB-In, keyed by prefix text. */
  readonly paths = new Map<string, ReceivedPath>();

  constructor(
    readonly config: NeighbourConfig,
    private readonly local: { address: Ipv4Address; port: number; session: Omit<SessionConfig, 'peerAs'> },
    private readonly timers: BgpTimers,
    private readonly events: NeighbourEvents,
  ) {
    this.name = protocolName(config.type, config.address);
  }

  get established(): boolean {
    return this.current !== undefined;
  }

  /** The peer's BGP identifier while a session is established. */
  get peerRouterId(): number | undefined {
    return this.current?.peerRouterId;
  }

  start(): void {
    if (this.config.passive) return this.enter('Passive');
    this.enter('Active');
    this.schedule(this.timers.connectDelayMs);
  }

  /**
   * An incoming connection from this neighbour's address. BIRD without graceful restart takes none while a session is
   * established, so a restarted peer waits until the old session fails (hold timer or RST); one that crosses this
   * side's own connection attempt is taken, and the OPENs decide which of the two stays.
   */
  accept(socket: Socket): void {
    if (this.stopped || this.current || this.incoming) {
      socket.destroy();
      return;
    }
    clearTimeout(this.timer);
    this.incoming = this.open(socket);
  }

  /** Sends Cease to a session that is open and forgets the routes; a stopped neighbour never reconnects. */
  stop(subcode: number = BGP_CEASE.ADMINISTRATIVE_SHUTDOWN): void {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const session of this.sessions()) session.stop(subcode);
    this.enter('Down');
  }

  send(update: BgpUpdate): void {
    this.current?.sendUpdate(update);
  }

  status(): NeighbourStatus {
    const opening = this.sessions().map((session) => session.current);
    return {
      name: this.name,
      address: this.config.address.toString(),
      type: this.config.type,
      // OpenSent and OpenConfirm are the connections' own steps.
      state:
        this.current || opening.length === 0
          ? this.state
          : opening.includes('OpenConfirm')
            ? 'OpenConfirm'
            : 'OpenSent',
      since: this.since.toISOString(),
      ...(this.lastError !== undefined && { lastError: this.lastError }),
      routesReceived: this.paths.size,
    };
  }

  private sessions(): Session[] {
    return [this.outgoing, this.incoming].filter((session): session is Session => session !== undefined);
  }

  private enter(state: NeighbourState): void {
    if (state === this.state) return;
    this.state = state;
    this.since = new Date();
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delayMs);
  }

  private connect(): void {
    if (this.stopped || this.current || this.outgoing) return;
    if (!this.incoming) this.enter('Connect');
    const socket = connect({
      host: this.config.address.toString(),
      port: this.local.port,
      localAddress: this.local.address.toString(),
    });
    const failed = (error: NodeJS.ErrnoException): void => {
      socket.destroy();
      this.lastError = `Socket: ${socketErrorText(error)}`;
      if (this.stopped || this.incoming) return;
      this.enter('Active');
      this.schedule(this.timers.connectRetryMs);
    };
    socket.once('error', failed);
    socket.once('connect', () => {
      socket.off('error', failed);
      if (this.stopped || this.current || this.outgoing) {
        socket.destroy();
        return;
      }
      this.outgoing = this.open(socket);
    });
  }

  private open(socket: Socket): Session {
    return new Session(
      socket,
      { ...this.local.session, peerAs: this.config.as },
      {
        onOpenReceived: (session) => this.resolveCollision(session),
        onEstablished: (session) => {
          this.current = session;
          this.lastError = undefined;
          this.enter('Established');
          this.events.log(`${this.name}: BGP session established`);
          this.events.onEstablished(this);
        },
        onUpdate: (_, update) => this.receive(update),
        onRouteRefresh: () => this.events.onRouteRefresh(this),
        onClose: (session, reason) => this.closed(session, reason),
      },
    );
  }

  /**
   * RFC 4271 §6.8 as BIRD reads it: a connection whose twin has its OPEN already keeps going only if it was opened by
   * the speaker with the higher BGP identifier; an established twin always stays.
   */
  private resolveCollision(session: Session): boolean {
    const twin = session === this.outgoing ? this.incoming : this.outgoing;
    if (!twin || twin.current === 'OpenSent') return true;
    if (twin.current === 'Established') return false;
    const peerOpenedThis = session === this.incoming;
    const peerIsHigher = (session.peerRouterId ?? 0) >>> 0 > this.local.session.routerId >>> 0;
    if (peerOpenedThis !== peerIsHigher) return false;
    twin.stop(BGP_CEASE.CONNECTION_COLLISION_RESOLUTION);
    return true;
  }

  private receive(update: BgpUpdate): void {
    const changed: string[] = [];
    for (const prefix of update.withdrawn) {
      const key = prefixKey(prefix.address, prefix.length);
      if (this.paths.delete(key)) changed.push(key);
    }
    if (update.nlri.length > 0) {
      const missing = missingMandatory(update.attributes);
      if (missing !== undefined) {
        const notification = bgpNotification(
          BGP_ERROR_CODE.UPDATE_MESSAGE,
          BGP_UPDATE_MESSAGE_ERROR.MISSING_WELL_KNOWN_ATTRIBUTE,
          Buffer.from([missing]),
        );
        this.current?.fail(notification);
        return;
      }
      const { attributes } = update;
      // RFC 4456 §8: a route that comes back to its originator, or to a reflector it crossed, is treated as withdrawn.
      const loopy =
        attributes.originatorId === this.local.session.routerId ||
        (this.config.reflectorClient !== undefined &&
          (attributes.clusterList ?? []).includes(this.config.reflectorClient.clusterId));
      const since = new Date();
      for (const prefix of update.nlri) {
        const key = prefixKey(prefix.address, prefix.length);
        if (loopy) {
          if (this.paths.delete(key)) changed.push(key);
          continue;
        }
        this.paths.set(key, {
          destination: Ipv4Prefix.parse(key),
          nextHop: Ipv4Address.fromUint32(attributes.nextHop!),
          localPref: attributes.localPref ?? DEFAULT_LOCAL_PREF,
          asPathLength: (attributes.asPath ?? []).reduce((sum, segment) => sum + segment.asns.length, 0),
          origin: attributes.origin!,
          multiExitDisc: attributes.multiExitDisc ?? 0,
          attributes,
          since,
        });
        changed.push(key);
      }
    }
    if (changed.length > 0) this.events.onPathsChanged(this, changed);
  }

  private closed(session: Session, reason: SessionClose): void {
    if (session === this.outgoing) this.outgoing = undefined;
    if (session === this.incoming) this.incoming = undefined;
    const wasEstablished = session === this.current;
    const text = `${reason.kind}: ${reason.text}`;
    if (!wasEstablished && this.sessions().length > 0) return;
    this.lastError = text;
    this.current = undefined;
    if (wasEstablished) this.events.log(`${this.name}: BGP session closed: ${text}`);
    const withdrawn = [...this.paths.keys()];
    this.paths.clear();
    if (withdrawn.length > 0) this.events.onPathsChanged(this, withdrawn);
    if (this.stopped) return;
    if (this.config.passive) return this.enter('Passive');
    this.enter('Idle');
    this.schedule(this.timers.errorWaitMs);
  }
}

export function prefixKey(address: number, length: number): string {
  return `${Ipv4Address.fromUint32(address).toString()}/${length}`;
}

/** RFC 4271 §6.3: an UPDATE with NLRI must carry ORIGIN, AS_PATH and NEXT_HOP; the data is the missing type code. */
function missingMandatory(attributes: BgpPathAttributes): number | undefined {
  if (attributes.origin === undefined) return BGP_ATTRIBUTE_TYPE.ORIGIN;
  if (attributes.asPath === undefined) return BGP_ATTRIBUTE_TYPE.AS_PATH;
  if (attributes.nextHop === undefined) return BGP_ATTRIBUTE_TYPE.NEXT_HOP;
  return undefined;
}
