/**
 * A node's capture taps: who listens on which interface, and the one event each tapped hop of a packet is shown as.
 * The dataplane says where a packet is (`emit`) and when a new packet's trip through the node begins (`beginTrip`);
 * the hub keeps the listeners, the trip's timestamp, and listeners that throw out of the forwarding path.
 */
import type { RateLimitedLog } from './rate-limited-log.js';

/**
 * What a capture on an interface sees: eth0 the outer packets exactly as sent and received, tunl0 the inner ones
 * after decapsulation / before encapsulation, a cali interface the pod's side. The event and its `packet` are only
 * valid during the listener call (the dataplane reuses the one and changes some bytes of the other in place):
 * copy what is to be kept.
 */
export interface TapEvent {
  interfaceName: string;
  direction: 'rx' | 'tx';
  packet: Buffer;
  /** When the packet's trip through the node began: every tap of one trip shows the same time. */
  readonly timestampNs: bigint;
}

/** Nanoseconds since the Unix epoch at the monotonic clock's resolution: tap timestamps. */
export function epochClock(): () => bigint {
  const epochOffset = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  return () => epochOffset + process.hrtime.bigint();
}

export type TapListener = (event: TapEvent) => void;

/** An interface as the hub sees it. */
export interface TapPoint {
  readonly name: string;
  /** The listeners that selected this interface, kept on it so that an untapped hop costs one length check. */
  taps: readonly TapListener[];
}

/**
 * The clock is read only when a listener asks for the time, so that a capture dropping records (over its CPU budget)
 * does not pay for a clock read per packet.
 */
class ReusedTapEvent implements TapEvent {
  interfaceName = '';
  direction: TapEvent['direction'] = 'rx';
  packet: Buffer = Buffer.alloc(0);
  declare readonly timestampNs: bigint;

  constructor(tripTime: () => bigint) {
    // An own, enumerable getter: a listener that copies the event with `{ ...event }` gets the time too.
    Object.defineProperty(this, 'timestampNs', { get: tripTime, enumerable: true });
  }
}

interface TapSubscription {
  readonly listener: TapListener;
  /** undefined: every interface. */
  readonly interfaces: ReadonlySet<string> | undefined;
}

export class TapHub {
  private subscriptions: readonly TapSubscription[] = [];
  /** One event object for every tap: a capture of every interface makes several per packet. */
  private readonly event: ReusedTapEvent;
  /**
   * One clock read per packet's trip through the node, shared by every tap of that trip (rx on cali, tx on tunl0,
   * tx on eth0 happen within the same call), so a capture adds at most one BigInt clock read per packet, not per hop.
   */
  private tripTimeNs: bigint | undefined;
  private readonly listenerFailing: string;

  constructor(
    private readonly points: readonly TapPoint[],
    now: () => bigint,
    private readonly log: RateLimitedLog,
    nodeName: string,
  ) {
    this.event = new ReusedTapEvent(() => (this.tripTimeNs ??= now()));
    this.listenerFailing = `${nodeName}: tap listener`;
  }

  /**
   * Calls `listener` for every packet seen on `interfaces` (default: every interface). The selection is made here,
   * before any event exists, so that a capture of eth0 costs the other interfaces' hops nothing.
   */
  subscribe(listener: TapListener, interfaces?: Iterable<string>): () => void {
    const subscription: TapSubscription = {
      listener,
      interfaces: interfaces === undefined ? undefined : new Set(interfaces),
    };
    this.setSubscriptions([...this.subscriptions, subscription]);
    return () => this.setSubscriptions(this.subscriptions.filter((candidate) => candidate !== subscription));
  }

  /** A packet entered the node, or its own stack made one: what is tapped from here on shows a new time. */
  beginTrip(): void {
    this.tripTimeNs = undefined;
  }

  isTapped(point: TapPoint): boolean {
    return point.taps.length > 0;
  }

  emit(point: TapPoint, direction: TapEvent['direction'], packet: Buffer): void {
    const listeners = point.taps;
    if (listeners.length === 0) return;
    const event = this.event;
    for (const listener of listeners) {
      // Set for each listener: one that calls back into the dataplane may have had the event reused meanwhile.
      event.interfaceName = point.name;
      event.direction = direction;
      event.packet = packet;
      this.log.call(listener, event, this.listenerFailing);
    }
  }

  /** Copy-on-write, so that a listener may unsubscribe while an event is being dispatched. */
  private setSubscriptions(subscriptions: readonly TapSubscription[]): void {
    this.subscriptions = subscriptions;
    for (const point of this.points) {
      point.taps = subscriptions
        .filter(({ interfaces }) => interfaces === undefined || interfaces.has(point.name))
        .map(({ listener }) => listener);
    }
  }
}
