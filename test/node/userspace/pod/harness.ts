/**
 * A deterministic world for pod tests: a hand-driven clock, a seeded random source, and a tiny fake host that
 * forwards between pods through a chain of routers, decrementing TTL and answering like Linux routers do.
 */
import { fragment } from '../../../../src/wire/fragment.js';
import { fragmentationNeeded, icmpErrorTos, timeExceeded } from '../../../../src/wire/icmp.js';
import { IP_PROTOCOL, Ipv4View, dscpOf, ipv4 } from '../../../../src/wire/ipv4.js';
import { ipv4FromString } from '../../../../src/wire/ipv4-text.js';
import type { SetTimer } from '../../../../src/node/userspace/pod/clock.js';
import { SimulatedPod, type PodOptions } from '../../../../src/node/userspace/pod/pod.js';
import { mulberry32 } from '../../../support/random.js';

export const ip = (text: string): number => {
  const address = ipv4FromString(text);
  if (address === undefined) throw new Error(`bad address ${text}`);
  return address;
};

interface PendingTimer {
  at: number;
  order: number;
  callback: () => void;
  cancelled: boolean;
}

export class FakeClock {
  private current = Date.UTC(2024, 0, 15, 12, 0, 0);
  private readonly pending: PendingTimer[] = [];
  private order = 0;

  readonly now = (): number => this.current;

  readonly setTimer: SetTimer = (callback, delayMs) => {
    const timer: PendingTimer = {
      at: this.current + Math.max(0, delayMs),
      order: this.order++,
      callback,
      cancelled: false,
    };
    this.pending.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  };

  get pendingTimers(): number {
    return this.pending.filter((timer) => !timer.cancelled).length;
  }

  /** Runs timers in time order, letting promise callbacks run in between, until `promise` settles. */
  async settle<T>(promise: Promise<T>, limitMs = 3_600_000): Promise<T> {
    let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
    promise.then(
      (value) => (outcome = { ok: true, value }),
      (error: unknown) => (outcome = { ok: false, error }),
    );
    const deadline = this.current + limitMs;
    for (;;) {
      await flushMicrotasks();
      if (outcome !== undefined) {
        if (outcome.ok) return outcome.value;
        throw outcome.error;
      }
      if (!this.step(deadline)) throw new Error('promise did not settle: no timers left before the deadline');
    }
  }

  /** Runs every timer due within `ms` from now. */
  async advance(ms: number): Promise<void> {
    const until = this.current + ms;
    await flushMicrotasks();
    while (this.step(until)) await flushMicrotasks();
    this.current = until;
  }

  private step(deadline: number): boolean {
    this.pending.sort((a, b) => a.at - b.at || a.order - b.order);
    const index = this.pending.findIndex((timer) => !timer.cancelled);
    if (index === -1 || this.pending[index].at > deadline) return false;
    const [timer] = this.pending.splice(index, 1);
    this.pending.splice(0, index);
    this.current = Math.max(this.current, timer.at);
    timer.callback();
    return true;
  }
}

async function flushMicrotasks(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
}

export interface Captured {
  from: string;
  packet: Buffer;
  view: Ipv4View;
}

export interface FakeHostOptions {
  /** Router addresses a packet crosses between any two pods, in order; each decrements TTL. */
  routers?: number[];
  /** One-way delay per link, in ms. */
  latencyMs?: number;
  /** The MTU of the links between routers: DF packets above it earn a 3/4 from the first router, others are cut. */
  linkMtu?: number;
  /** Return false to lose the packet on the way (it is still captured). */
  keep?: (captured: Captured) => boolean;
  /** Routers that drop expiring packets without a word, as firewalled hops do. */
  silentRouters?: number[];
  /** Extra one-way delay for a packet a pod sent, in ms. */
  extraDelayMs?: (captured: Captured) => number;
}

/** Forwards between attached pods; every packet a pod transmits is captured as it leaves the pod. */
export class FakeHost {
  readonly captured: Captured[] = [];
  private readonly pods = new Map<number, SimulatedPod>();
  private readonly endpoints = new Map<number, (view: Ipv4View) => void>();
  private readonly routers: number[];
  private readonly latencyMs: number;
  private id = 0x4000;
  private extraDelay = 0;

  constructor(
    private readonly clock: FakeClock,
    private readonly options: FakeHostOptions = {},
  ) {
    this.routers = options.routers ?? [ip('10.0.0.11')];
    this.latencyMs = options.latencyMs ?? 1;
  }

  addPod(options: Omit<PodOptions, 'transmit' | 'now' | 'setTimer'> & { random?: () => number }): SimulatedPod {
    const pod: SimulatedPod = new SimulatedPod({
      ...options,
      now: this.clock.now,
      setTimer: this.clock.setTimer,
      transmit: (packet) => this.fromPod(pod.name, packet),
    });
    this.pods.set(options.ip, pod);
    return pod;
  }

  /** A scripted peer at `address`: it sees what pods send there, and answers through `inject`. */
  addEndpoint(address: number, onPacket: (view: Ipv4View) => void): void {
    this.endpoints.set(address, onPacket);
  }

  /** Delivers a packet from a scripted peer to the pod it is addressed to, across the routers. */
  inject(packet: Buffer): void {
    this.extraDelay = 0;
    this.forward(Buffer.from(packet), 0);
  }

  /** Captured packets from one pod, parsed. */
  sentBy(name: string): Ipv4View[] {
    return this.captured.filter((entry) => entry.from === name).map((entry) => entry.view);
  }

  private fromPod(name: string, packet: Buffer): void {
    const view = new Ipv4View(Buffer.from(packet));
    const entry = { from: name, packet: view.buffer, view };
    this.captured.push(entry);
    if (this.options.keep?.(entry) === false) return;
    this.extraDelay = this.options.extraDelayMs?.(entry) ?? 0;
    this.forward(Buffer.from(packet), 0);
  }

  /** Each router as Linux's ip_forward(): TTL check, MTU check (DF → 3/4), TTL decrement, fragmentation on output. */
  private forward(packet: Buffer, firstRouter: number): void {
    const view = new Ipv4View(packet);
    const mtu = this.options.linkMtu;
    for (let index = firstRouter; index < this.routers.length; index++) {
      const router = this.routers[index];
      if (view.ttl <= 1) {
        if (this.options.silentRouters?.includes(router)) return;
        return this.answer(router, timeExceeded(packet, 0, { quote: 'linux' }), view, index + 1);
      }
      const tooBig = index === 0 && mtu !== undefined && view.totalLength > mtu;
      if (tooBig && view.dontFragment) {
        return this.answer(router, fragmentationNeeded(packet, mtu, { quote: 'linux' }), view, index + 1);
      }
      view.decrementTtl();
      if (tooBig) {
        const pieces = fragment(packet, mtu);
        if (pieces.ok) for (const piece of pieces.value) this.forward(piece, index + 1);
        return;
      }
    }
    this.deliver(packet, this.routers.length + 1);
  }

  /** An ICMP error from a router, back to the offending packet's source; `links` is how far away the router is. */
  private answer(router: number, message: Buffer, offending: Ipv4View, links: number): void {
    const reply = ipv4.encode({
      identification: this.id++ & 0xffff,
      dscp: dscpOf(icmpErrorTos(offending.tos)),
      ttl: 64 - (links - 1),
      protocol: IP_PROTOCOL.ICMP,
      src: router,
      dst: offending.src,
      payload: message,
    });
    this.deliver(reply, 2 * links);
  }

  private deliver(packet: Buffer, links: number): void {
    const destination = new Ipv4View(packet).dst;
    const pod = this.pods.get(destination);
    const endpoint = this.endpoints.get(destination);
    const receive =
      pod !== undefined
        ? () => pod.receive(packet)
        : endpoint !== undefined
          ? () => endpoint(new Ipv4View(packet))
          : undefined;
    if (receive !== undefined) this.clock.setTimer(receive, links * this.latencyMs + this.extraDelay);
  }
}

export const POD_A = ip('192.168.77.130');
export const POD_B = ip('192.168.87.198');

/** Pod A (a client) and pod B (hello-app) on either side of the fake host, both with Calico's MTU 1480. */
export function twoPods(hostOptions: FakeHostOptions = {}, mtu = { a: 1480, b: 1480 }) {
  const clock = new FakeClock();
  const host = new FakeHost(clock, hostOptions);
  const a = host.addPod({ name: 'client-7d9f8', ip: POD_A, mtu: mtu.a, random: mulberry32(1) });
  const b = host.addPod({
    name: 'hello-world-54575d5b77-rz8vs',
    ip: POD_B,
    mtu: mtu.b,
    random: mulberry32(2),
    httpApp: 'hello-app',
  });
  return { clock, host, a, b };
}

/** What ping prints when its single probe to pod B ("<data>(<packet>)" bytes) ended in `error` rather than a reply. */
export function oneFailedProbeText(bytes: string, error: string): string {
  return [
    `PING 192.168.87.198 (192.168.87.198) ${bytes} bytes of data.`,
    error,
    '',
    '--- 192.168.87.198 ping statistics ---',
    '1 packets transmitted, 0 received, +1 errors, 100% packet loss, time 0ms',
    '',
    '',
  ].join('\n');
}
