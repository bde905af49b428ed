/**
 * Linux `traceroute` (2.1.x, Dmitry Butskoy's) in its default UDP mode run inside a pod: 60-byte probes (32 data
 * bytes "@ABC…") to ports 33434, 33435, … with DF clear, each from its own socket and so its own source port, up to
 * 16 in flight; a probe waits at most 5 s, or 3× the RTT of an answered probe of its hop, or 10× that of a later
 * hop; the trace ends with the hop where the destination answered (port unreachable) or an error ended it.
 */
import { IP_PROTOCOL } from '../../../wire/ipv4.js';
import { ICMP_TYPE, UNREACHABLE_CODE } from '../../../wire/icmp.js';
import { udp } from '../../../wire/udp.js';
import type { Timer } from './clock.js';
import type { ReceivedIcmpError } from './icmp-errors.js';
import type { PodKernel } from './kernel.js';

export interface TracerouteOptions {
  /** `-m`, default 30. */
  maxHops?: number;
  /** `-q`, default 3. */
  probes?: number;
  /** `-w` MAX, default 5000 ms. */
  timeoutMs?: number;
}

export interface TracerouteProbe {
  /** Who answered; absent for `*`. */
  from?: number;
  rttMs?: number;
  /** What traceroute prints after the time: `!H`, `!N`, `!F-1480`, `!<11-1>`… */
  annotation?: string;
}

export interface TracerouteHop {
  ttl: number;
  probes: TracerouteProbe[];
}

export interface TracerouteReport {
  destination: number;
  maxHops: number;
  packetSize: number;
  hops: TracerouteHop[];
  /** Whether the destination itself answered. */
  reached: boolean;
}

const FIRST_PORT = 33434;
const DATA_LENGTH = 32;
const PACKET_SIZE = 20 + 8 + DATA_LENGTH;
const SIMULTANEOUS_PROBES = 16;
const HERE_FACTOR = 3;
const NEAR_FACTOR = 10;
/** DEF_WAIT_PREC: added to an RTT before scaling it into a timeout. */
const WAIT_PRECISION_MS = 1;
/** `-m` at most: the TTL field is one byte. */
export const MAX_HOPS = 255;

interface Probe {
  sendTime?: number;
  recvTime?: number;
  done: boolean;
  final: boolean;
  from?: number;
  annotation?: string;
  unbind?: () => void;
}

export function traceroute(
  kernel: PodKernel,
  destination: number,
  options: TracerouteOptions = {},
): Promise<TracerouteReport> {
  return new Promise((resolve) => {
    const maxHops = options.maxHops ?? 30;
    const perHop = options.probes ?? 3;
    const waitMs = options.timeoutMs ?? 5000;
    if (!Number.isInteger(maxHops) || maxHops < 1 || maxHops > MAX_HOPS) {
      throw new RangeError(`traceroute max hops ${maxHops}: out of range 1..${MAX_HOPS}`);
    }
    if (!Number.isInteger(perHop) || perHop < 1 || perHop > 10) {
      throw new RangeError(`traceroute probes ${perHop}: out of range 1..10`);
    }
    if (!(waitMs >= 0)) throw new RangeError('traceroute timeout must be >= 0');
    new TracerouteRun(kernel, destination, maxHops, perHop, waitMs, resolve).start();
  });
}

class TracerouteRun {
  private readonly probes: Probe[];
  /** The first probe not yet printed. */
  private first = 0;
  private end: number;
  private nextPort = FIRST_PORT;
  private timer?: Timer;
  private unregisterClose?: () => void;
  private finished = false;
  private readonly data = Buffer.from(Array.from({ length: DATA_LENGTH }, (_, i) => 0x40 + (i & 0x3f)));

  constructor(
    private readonly kernel: PodKernel,
    private readonly destination: number,
    private readonly maxHops: number,
    private readonly perHop: number,
    private readonly waitMs: number,
    private readonly resolve: (report: TracerouteReport) => void,
  ) {
    this.probes = Array.from({ length: maxHops * perHop }, () => ({ done: false, final: false }));
    this.end = this.probes.length;
  }

  start(): void {
    this.unregisterClose = this.kernel.onClose(() => this.finish());
    this.step();
  }

  /** One pass of do_it()'s loop: expire the oldest probe, retire answered ones in order, send more. */
  private step(): void {
    if (this.finished) return;
    this.timer?.cancel();
    const now = this.kernel.now();
    let nextTime: number | undefined;
    let inFlight = 0;
    for (let n = this.first; n < this.end; n++) {
      const probe = this.probes[n];
      if (n === this.first && !probe.done && probe.sendTime !== undefined) {
        const expireTime = probe.sendTime + this.timeoutFor(n);
        if (expireTime > now) nextTime = expireTime;
        else this.retire(probe);
      }
      if (probe.done) {
        if (n === this.first) this.first += 1;
        if (probe.final) this.end = (Math.floor(n / this.perHop) + 1) * this.perHop;
        continue;
      }
      if (probe.sendTime === undefined) this.send(probe, Math.floor(n / this.perHop) + 1);
      nextTime ??= (probe.sendTime as number) + this.timeoutFor(n);
      inFlight += 1;
      if (inFlight >= SIMULTANEOUS_PROBES) break;
    }
    if (this.first >= this.end) {
      this.finish();
    } else if (nextTime !== undefined) {
      this.timer = this.kernel.timers.start(() => this.step(), Math.max(0, nextTime - now));
    }
  }

  private send(probe: Probe, ttl: number): void {
    probe.sendTime = this.kernel.now();
    const binding = this.kernel.bindUdp({ onError: (error) => this.onError(probe, error) });
    if (binding === undefined) {
      this.retire(probe);
      return;
    }
    probe.unbind = binding.unbind;
    const dstPort = this.nextPort++;
    this.kernel.sendDatagram({
      destination: this.destination,
      protocol: IP_PROTOCOL.UDP,
      payload: udp.encode(
        { srcPort: binding.port, dstPort, payload: this.data },
        { src: this.kernel.address, dst: this.destination },
      ),
      ttl,
      pmtuDiscovery: 'dont',
    });
  }

  /** get_timeout(): shortened once something at or beyond this hop has answered. */
  private timeoutFor(index: number): number {
    const hopStart = index - (index % this.perHop);
    for (let i = hopStart; i < hopStart + this.perHop; i++) {
      const rtt = this.answeredRtt(this.probes[i]);
      if (rtt !== undefined) return Math.min((rtt + WAIT_PRECISION_MS) * HERE_FACTOR, this.waitMs);
    }
    for (let i = index + 1; i < this.probes.length && this.probes[i].sendTime !== undefined; i++) {
      const rtt = this.answeredRtt(this.probes[i]);
      if (rtt !== undefined) return Math.min((rtt + WAIT_PRECISION_MS) * NEAR_FACTOR, this.waitMs);
    }
    return this.waitMs;
  }

  private answeredRtt(probe: Probe): number | undefined {
    if (!probe.done || probe.recvTime === undefined || probe.sendTime === undefined) return undefined;
    const rtt = probe.recvTime - probe.sendTime;
    return rtt > 0 ? rtt : undefined;
  }

  /** parse_icmp_res(): TTL exceeded only names the hop; anything else ends the trace at this hop. */
  private onError(probe: Probe, error: ReceivedIcmpError): void {
    if (probe.done || error.quoted.dst !== this.destination) return;
    probe.recvTime = this.kernel.now();
    probe.from = error.from;
    if (error.type !== ICMP_TYPE.TIME_EXCEEDED || error.code !== 0) {
      probe.final = true;
      probe.annotation = annotationFor(error);
    }
    this.retire(probe);
    this.step();
  }

  private retire(probe: Probe): void {
    probe.done = true;
    probe.unbind?.();
    probe.unbind = undefined;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.timer?.cancel();
    this.unregisterClose?.();
    for (const probe of this.probes) this.retire(probe);
    const hops: TracerouteHop[] = [];
    const shown = Math.min(this.end, this.first);
    for (let n = 0; n < shown; n += this.perHop) {
      hops.push({
        ttl: n / this.perHop + 1,
        probes: this.probes
          .slice(n, Math.min(n + this.perHop, shown))
          .map(({ from, recvTime, sendTime, annotation }) => ({
            from,
            rttMs: recvTime !== undefined && sendTime !== undefined ? recvTime - sendTime : undefined,
            annotation,
          })),
      });
    }
    const reached = this.probes.slice(0, shown).some((probe) => probe.from === this.destination && probe.final);
    this.resolve({ destination: this.destination, maxHops: this.maxHops, packetSize: PACKET_SIZE, hops, reached });
  }
}

function annotationFor(error: ReceivedIcmpError): string | undefined {
  if (error.type !== ICMP_TYPE.DESTINATION_UNREACHABLE) return `!<${error.type}-${error.code}>`;
  switch (error.code) {
    case UNREACHABLE_CODE.PORT:
      return undefined;
    case UNREACHABLE_CODE.NET:
    case UNREACHABLE_CODE.NET_UNKNOWN:
    case UNREACHABLE_CODE.SOURCE_HOST_ISOLATED:
    case UNREACHABLE_CODE.NET_TOS:
      return '!N';
    case UNREACHABLE_CODE.HOST:
    case UNREACHABLE_CODE.HOST_UNKNOWN:
    case UNREACHABLE_CODE.HOST_TOS:
      return '!H';
    case UNREACHABLE_CODE.NET_PROHIBITED:
    case UNREACHABLE_CODE.HOST_PROHIBITED:
    case UNREACHABLE_CODE.COMMUNICATION_PROHIBITED:
      return '!X';
    case UNREACHABLE_CODE.PROTOCOL:
      return '!P';
    case UNREACHABLE_CODE.FRAGMENTATION_NEEDED:
      return `!F-${error.nextHopMtu}`;
    case UNREACHABLE_CODE.SOURCE_ROUTE_FAILED:
      return '!S';
    case UNREACHABLE_CODE.HOST_PRECEDENCE_VIOLATION:
      return '!V';
    case UNREACHABLE_CODE.PRECEDENCE_CUTOFF:
      return '!C';
    default:
      return `!<${error.code}>`;
  }
}
