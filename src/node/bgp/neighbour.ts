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
  private session: Session | undefined;
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
    return this.state === 'Established';
  }

  start(): void {
    if (this.config.passive) return this.enter('Passive');
    this.enter('Active');
    this.schedule(this.timers.connectDelayMs);
  }

  /**
   * An incoming connection from this neighbour's address. BIRD without graceful restart takes one only while it has
   * no session past the TCP handshake, so a restarted peer waits until the old session fails (hold timer or RST).
   */
  accept(socket: Socket): void {
    if (this.stopped || this.session) {
      socket.destroy();
      return;
    }
    clearTimeout(this.timer);
    this.open(socket);
  }

  /** Sends Cease to a session that is open and forgets the routes; a stopped neighbour never reconnects. */
  stop(subcode: number = BGP_CEASE.ADMINISTRATIVE_SHUTDOWN): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.session?.stop(subcode);
    this.enter('Down');
  }

  send(update: BgpUpdate): void {
    this.session?.sendUpdate(update);
  }

  status(): NeighbourStatus {
    return {
      name: this.name,
      address: this.config.address.toString(),
      type: this.config.type,
      // OpenSent and OpenConfirm are the session's own steps.
      state: this.session && !this.established ? this.session.current : this.state,
      since: this.since.toISOString(),
      ...(this.lastError !== undefined && { lastError: this.lastError }),
      routesReceived: this.paths.size,
    };
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
    if (this.stopped || this.session) return;
    this.enter('Connect');
    const socket = connect({
      host: this.config.address.toString(),
      port: this.local.port,
      localAddress: this.local.address.toString(),
    });
    const failed = (error: NodeJS.ErrnoException): void => {
      socket.destroy();
      this.lastError = `Socket: ${socketErrorText(error)}`;
      if (this.stopped) return;
      this.enter('Active');
      this.schedule(this.timers.connectRetryMs);
    };
    socket.once('error', failed);
    socket.once('connect', () => {
      socket.off('error', failed);
      if (this.stopped || this.session) {
        socket.destroy();
        return;
      }
      this.open(socket);
    });
  }

  private open(socket: Socket): void {
    this.enter('OpenSent');
    this.session = new Session(
      socket,
      { ...this.local.session, peerAs: this.config.as },
      {
        onEstablished: () => {
          this.lastError = undefined;
          this.enter('Established');
          this.events.log(`${this.name}: BGP session established`);
          this.events.onEstablished(this);
        },
        onUpdate: (_, update) => this.receive(update),
        onRouteRefresh: () => this.events.onRouteRefresh(this),
        onClose: (_, reason) => this.closed(reason),
      },
    );
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
        this.session?.fail(notification);
        return;
      }
      const { attributes } = update;
      const since = new Date();
      for (const prefix of update.nlri) {
        const key = prefixKey(prefix.address, prefix.length);
        this.paths.set(key, {
          destination: Ipv4Prefix.parse(key),
          nextHop: Ipv4Address.fromUint32(attributes.nextHop!),
          localPref: attributes.localPref ?? DEFAULT_LOCAL_PREF,
          asPathLength: (attributes.asPath ?? []).reduce((sum, segment) => sum + segment.asns.length, 0),
          origin: attributes.origin!,
          multiExitDisc: attributes.multiExitDisc ?? 0,
          since,
        });
        changed.push(key);
      }
    }
    if (changed.length > 0) this.events.onPathsChanged(this, changed);
  }

  private closed(reason: SessionClose): void {
    const wasEstablished = this.state === 'Established';
    this.session = undefined;
    this.lastError = `${reason.kind}: ${reason.text}`;
    if (wasEstablished) this.events.log(`${this.name}: BGP session closed: ${this.lastError}`);
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
