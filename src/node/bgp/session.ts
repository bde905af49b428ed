/**
 * One BGP connection, from the first OPEN to its close (RFC 4271 §8: OpenSent, OpenConfirm, Established): the OPEN
 * checks, the hold and keepalive timers, UPDATEs in and out. Which connection to make or accept, and what to do with
 * the routes, is the neighbour's and the speaker's (neighbour.ts, speaker.ts): a session only moves messages.
 */
import type { Socket } from 'node:net';
import {
  BGP_AFI,
  BGP_CEASE,
  BGP_ERROR_CODE,
  BGP_FSM_ERROR,
  BGP_OPEN_MESSAGE_ERROR,
  BGP_SAFI,
  BgpFramer,
  bgp,
  bgpNotification,
  bgpOpenAs,
  type BgpCodecOptions,
  type BgpMessage,
  type BgpNotification,
  type BgpOpen,
  type BgpUpdate,
} from '../../wire/bgp.js';
import { bgpErrorText, socketErrorText } from './errors.js';

export type SessionState = 'OpenSent' | 'OpenConfirm' | 'Established';

/** How a session ended, in BIRD's words: `show protocols` prints the class before the text (proto/bgp/bgp.c). */
export interface SessionClose {
  /** `Socket: ` for the connection, `Received: ` for the peer's NOTIFICATION, `BGP Error: ` for ours. */
  kind: 'Socket' | 'Received' | 'BGP Error';
  text: string;
  /** The NOTIFICATION received or sent, if the close came with one. */
  notification?: BgpNotification;
}

export interface SessionConfig {
  localAs: number;
  routerId: number;
  peerAs: number;
  /** Seconds offered in OPEN; BIRD's default is 240 and Calico's template keeps it. */
  holdTime: number;
}

export interface SessionEvents {
  /**
   * The peer's OPEN passed its checks. False ends this connection with Cease (Connection Collision Resolution): the
   * neighbour keeps the other one (RFC 4271 §6.8).
   */
  onOpenReceived(session: Session): boolean;
  onEstablished(session: Session): void;
  onUpdate(session: Session, update: BgpUpdate): void;
  /** The peer asked for our routes again (RFC 2918). */
  onRouteRefresh(session: Session): void;
  /** Called once; the socket is destroyed by then. */
  onClose(session: Session, reason: SessionClose): void;
}

const MIN_HOLD_TIME = 3;

export class Session {
  private state: SessionState = 'OpenSent';
  private readonly framer = new BgpFramer();
  private codec: BgpCodecOptions = {};
  private holdTimer: NodeJS.Timeout | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private negotiatedHoldTime: number;
  private closed = false;
  /** The peer's BGP identifier, known once its OPEN is in. */
  peerRouterId: number | undefined;

  constructor(
    readonly socket: Socket,
    private readonly config: SessionConfig,
    private readonly events: SessionEvents,
  ) {
    this.negotiatedHoldTime = config.holdTime;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => this.finish({ kind: 'Socket', text: socketErrorText(error) }));
    socket.on('close', () => this.finish({ kind: 'Socket', text: 'Connection closed' }));
    this.send(this.open());
    // Until OPEN arrives the large hold time of RFC 4271 §8.2.2 (4 minutes) applies; BIRD uses its hold time.
    this.armHoldTimer();
  }

  get current(): SessionState {
    return this.state;
  }

  get holdTime(): number {
    return this.negotiatedHoldTime;
  }

  sendUpdate(update: BgpUpdate): void {
    if (this.state === 'Established') this.send(update);
  }

  /** Ends the session with a NOTIFICATION (Cease when stopping on purpose), as BIRD does on `disable` and shutdown. */
  stop(subcode: number = BGP_CEASE.ADMINISTRATIVE_SHUTDOWN): void {
    this.fail(bgpNotification(BGP_ERROR_CODE.CEASE, subcode));
  }

  private open(): BgpOpen {
    const { localAs, routerId, holdTime } = this.config;
    return {
      type: 'open',
      myAs: localAs,
      holdTime,
      bgpIdentifier: routerId,
      capabilities: [
        { kind: 'multiprotocol', afi: BGP_AFI.IPV4, safi: BGP_SAFI.UNICAST },
        { kind: 'route-refresh' },
        { kind: 'four-octet-as', as: localAs },
      ],
      parameters: [],
    };
  }

  private send(message: BgpMessage): void {
    if (this.closed) return;
    this.socket.write(bgp.encode(message, this.codec));
  }

  private receive(chunk: Buffer): void {
    const frames = this.framer.push(chunk);
    for (const bytes of frames.messages) {
      if (this.closed) return;
      const decoded = bgp.decode(bytes, this.codec);
      if (!decoded.ok) return this.fail(decoded.notification);
      this.handle(decoded.value);
    }
    if (frames.error && !this.closed) this.fail(frames.error.notification);
  }

  private handle(message: BgpMessage): void {
    if (message.type === 'notification') {
      return this.finish({
        kind: 'Received',
        text: bgpErrorText(message.code, message.subcode),
        notification: message,
      });
    }
    this.armHoldTimer();
    switch (this.state) {
      case 'OpenSent':
        if (message.type !== 'open') return this.fsmError(BGP_FSM_ERROR.UNEXPECTED_MESSAGE_IN_OPENSENT);
        return this.acceptOpen(message);
      case 'OpenConfirm':
        if (message.type !== 'keepalive') return this.fsmError(BGP_FSM_ERROR.UNEXPECTED_MESSAGE_IN_OPENCONFIRM);
        this.state = 'Established';
        return this.events.onEstablished(this);
      case 'Established':
        if (message.type === 'update') return this.events.onUpdate(this, message);
        if (message.type === 'route-refresh') return this.events.onRouteRefresh(this);
        if (message.type === 'keepalive') return;
        return this.fsmError(BGP_FSM_ERROR.UNEXPECTED_MESSAGE_IN_ESTABLISHED);
    }
  }

  /** The checks of RFC 4271 §6.2 that the codec cannot make alone: they need this speaker's configuration. */
  private acceptOpen(open: BgpOpen): void {
    const openError = (subcode: number) => this.fail(bgpNotification(BGP_ERROR_CODE.OPEN_MESSAGE, subcode));
    if (open.holdTime !== 0 && open.holdTime < MIN_HOLD_TIME) {
      return openError(BGP_OPEN_MESSAGE_ERROR.UNACCEPTABLE_HOLD_TIME);
    }
    if (bgpOpenAs(open) !== this.config.peerAs) return openError(BGP_OPEN_MESSAGE_ERROR.BAD_PEER_AS);
    // iBGP peers must differ in identifier (RFC 6286 §2.1); zero is never valid.
    if (open.bgpIdentifier === 0 || open.bgpIdentifier === this.config.routerId) {
      return openError(BGP_OPEN_MESSAGE_ERROR.BAD_BGP_IDENTIFIER);
    }
    this.peerRouterId = open.bgpIdentifier;
    if (!this.events.onOpenReceived(this)) return this.stop(BGP_CEASE.CONNECTION_COLLISION_RESOLUTION);
    const fourOctetAs = open.capabilities.some((capability) => capability.kind === 'four-octet-as');
    this.codec = { fourOctetAs };
    this.negotiatedHoldTime = Math.min(this.config.holdTime, open.holdTime);
    this.state = 'OpenConfirm';
    this.send({ type: 'keepalive' });
    this.armHoldTimer();
    this.armKeepaliveTimer();
  }

  private fsmError(subcode: number): void {
    this.fail(bgpNotification(BGP_ERROR_CODE.FINITE_STATE_MACHINE, subcode));
  }

  /** Sends the NOTIFICATION, then closes: RFC 4271 §6 has every error end the connection this way. */
  fail(notification: BgpNotification): void {
    if (this.closed) return;
    this.send(notification);
    this.finish({ kind: 'BGP Error', text: bgpErrorText(notification.code, notification.subcode), notification });
  }

  private armHoldTimer(): void {
    clearTimeout(this.holdTimer);
    if (this.negotiatedHoldTime === 0 || this.closed) return;
    this.holdTimer = setTimeout(
      () => this.fail(bgpNotification(BGP_ERROR_CODE.HOLD_TIMER_EXPIRED, 0)),
      this.negotiatedHoldTime * 1000,
    );
  }

  /** A third of the hold time, as RFC 4271 §10 suggests and BIRD does. */
  private armKeepaliveTimer(): void {
    clearInterval(this.keepaliveTimer);
    if (this.negotiatedHoldTime === 0) return;
    this.keepaliveTimer = setInterval(() => this.send({ type: 'keepalive' }), (this.negotiatedHoldTime * 1000) / 3);
  }

  private finish(reason: SessionClose): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.holdTimer);
    clearInterval(this.keepaliveTimer);
    // end() lets the NOTIFICATION just written reach the peer before the FIN; destroy() follows for a dead peer.
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.events.onClose(this, reason);
  }
}
