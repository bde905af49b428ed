/**
 * iputils `ping` (20221126, Debian 12) run inside a pod: its packets (identifier, sequence, a timeval then the byte
 * pattern 0x10, 0x11, … in the data), its pacing (one probe per interval, then waiting twice the slowest RTT, or
 * `-W` when nothing came back) and its statistics, computed in integer microseconds as ping_common.c does.
 */
import { icmp } from '../../../wire/icmp.js';
import { IP_PROTOCOL } from '../../../wire/ipv4.js';
import { LINUX_DEFAULT_TTL } from '../../../wire/linux-defaults.js';
import type { Timer } from './clock.js';
import type { ReceivedIcmpError } from './icmp-errors.js';
import { localErrorText, type EchoReply, type PmtuDiscovery, type PodKernel } from './kernel.js';
import { icmpErrorText } from './report-text.js';

export interface PingOptions {
  /** `-c`; defaults to 4 because an API call, unlike the command, must end by itself. */
  count?: number;
  /** `-s`: data bytes after the ICMP header, default 56. */
  size?: number;
  /** Unset: Linux's default PMTU "want" (DF when it fits); true: `-M do` (DF, IP ID 0); false: `-M dont`. */
  df?: boolean;
  /** `-t`. */
  ttl?: number;
  /** `-Q`: the whole TOS byte. */
  tos?: number;
  /** `-i`, default 1000 ms. */
  intervalMs?: number;
  /** `-W`: how long to wait after the last probe when nothing has come back, default 10 s (MAXWAIT). */
  timeoutMs?: number;
  /** The echo identifier; random by default, as a raw-socket ping picks it. */
  ident?: number;
}

export type PingResult =
  | {
      kind: 'reply';
      seq: number;
      from: number;
      /** ICMP bytes received ("64 bytes from"). */
      bytes: number;
      ttl: number;
      /** Absent when the data is too short to carry a timeval (size < 16), as ping then prints no time. */
      timeMs?: number;
      duplicate: boolean;
      /** The reply came from another address than the one pinged. */
      differentAddress: boolean;
    }
  | { kind: 'icmp-error'; seq: number; from: number; type: number; code: number; nextHopMtu: number; error: string }
  | { kind: 'local-error'; seq: number; mtu: number; error: string };

export interface PingReport {
  destination: number;
  size: number;
  transmitted: number;
  received: number;
  duplicates: number;
  errors: number;
  /** In the order ping printed them. */
  results: PingResult[];
  lossPercent: number;
  /** Absent when nothing was received or no time could be measured. */
  rtt?: { minMs: number; avgMs: number; maxMs: number; mdevMs: number };
  totalTimeMs: number;
  /** iputils: 0 if any reply came back, else 1. */
  exitCode: 0 | 1;
}

export const MAX_SIZE = 65507;
/** `sizeof(struct timeval)` on x86_64: smaller data cannot carry a send time, so ping does no timing. */
const TIMEVAL_LENGTH = 16;
const DEFAULT_LINGER_MS = 10_000;
const INT_MAX = 2147483647n;

export function ping(kernel: PodKernel, destination: number, options: PingOptions = {}): Promise<PingReport> {
  return new Promise((resolve) => new PingRun(kernel, destination, validate(options), resolve).start());
}

function validate(
  options: PingOptions,
): Required<Omit<PingOptions, 'df' | 'ident'>> & Pick<PingOptions, 'df' | 'ident'> {
  const checked = {
    count: options.count ?? 4,
    size: options.size ?? 56,
    ttl: options.ttl ?? LINUX_DEFAULT_TTL,
    tos: options.tos ?? 0,
    intervalMs: options.intervalMs ?? 1000,
    timeoutMs: options.timeoutMs ?? DEFAULT_LINGER_MS,
    df: options.df,
    ident: options.ident,
  };
  const inRange = (name: string, value: number, min: number, max: number) => {
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new RangeError(`ping ${name} ${value}: out of range ${min}..${max}`);
    }
  };
  inRange('count', checked.count, 1, Number.MAX_SAFE_INTEGER);
  inRange('size', checked.size, 0, MAX_SIZE);
  inRange('ttl', checked.ttl, 1, 255);
  inRange('tos', checked.tos, 0, 255);
  if (checked.ident !== undefined) inRange('ident', checked.ident, 0, 0xffff);
  if (!(checked.intervalMs >= 0) || !(checked.timeoutMs >= 0)) {
    throw new RangeError('ping interval and timeout must be >= 0');
  }
  return checked;
}

class PingRun {
  private identifier = 0;
  private unbind?: () => void;
  private unregisterClose?: () => void;
  private timer?: Timer;
  private finished = false;

  private readonly sentAt = new Map<number, number>();
  private readonly answered = new Set<number>();
  private readonly results: PingResult[] = [];
  private transmitted = 0;
  private received = 0;
  private duplicates = 0;
  private errors = 0;
  private startTime = 0;
  private lastSendTime = 0;
  /** RTT statistics in integer microseconds, like `tsum`/`tsum2`/`tmin`/`tmax` in ping_common.c. */
  private tsum = 0n;
  private tsum2 = 0n;
  private tmin = Number.MAX_SAFE_INTEGER;
  private tmax = 0;

  constructor(
    private readonly kernel: PodKernel,
    private readonly destination: number,
    private readonly options: ReturnType<typeof validate>,
    private readonly resolve: (report: PingReport) => void,
  ) {}

  start(): void {
    const first = this.options.ident ?? Math.floor(this.kernel.random() * 0x10000);
    for (let i = 0; i < 0x10000 && this.unbind === undefined; i++) {
      this.identifier = (first + i) & 0xffff;
      this.unbind = this.kernel.bindPing(this.identifier, {
        onEchoReply: (reply) => this.onEchoReply(reply),
        onError: (error, sequence) => this.onError(error, sequence),
      });
    }
    this.unregisterClose = this.kernel.onClose(() => this.finish());
    this.startTime = this.kernel.now();
    this.sendProbe();
  }

  private get timing(): boolean {
    return this.options.size >= TIMEVAL_LENGTH;
  }

  private sendProbe(): void {
    const sequence = (this.transmitted + 1) & 0xffff;
    const now = this.kernel.now();
    const result = this.kernel.sendDatagram({
      destination: this.destination,
      protocol: IP_PROTOCOL.ICMP,
      payload: icmp.encode({ kind: 'echo-request', identifier: this.identifier, sequence, data: this.probeData(now) }),
      ttl: this.options.ttl,
      tos: this.options.tos,
      pmtuDiscovery: pmtuDiscoveryFor(this.options.df),
    });
    this.transmitted += 1;
    this.lastSendTime = now;
    this.sentAt.set(sequence, now);
    if (!result.ok) {
      this.errors += 1;
      this.results.push({ kind: 'local-error', seq: sequence, mtu: result.mtu, error: localErrorText(result.mtu) });
    }
    if (this.doneCounting()) {
      this.finish();
    } else if (this.transmitted < this.options.count) {
      this.timer = this.kernel.timers.start(() => this.sendProbe(), this.options.intervalMs);
    } else {
      // __schedule_exit(): after the last probe, wait for stragglers twice the worst RTT (at least one interval),
      // or the linger time when nothing has come back yet.
      const wait =
        this.received > 0 ? Math.max((2 * this.tmax) / 1000, this.options.intervalMs) : this.options.timeoutMs;
      this.timer = this.kernel.timers.start(() => this.finish(), wait);
    }
  }

  /** A timeval (seconds, microseconds as little-endian 64-bit) then bytes counting up from the data's start. */
  private probeData(now: number): Buffer {
    const data = Buffer.alloc(this.options.size);
    for (let i = 0; i < data.length; i++) data[i] = i & 0xff;
    if (this.timing) {
      const seconds = Math.floor(now / 1000);
      data.writeBigInt64LE(BigInt(seconds), 0);
      data.writeBigInt64LE(BigInt(Math.floor((now - seconds * 1000) * 1000)), 8);
    }
    return data;
  }

  private onEchoReply(reply: EchoReply): void {
    const sentAt = this.sentAt.get(reply.sequence);
    if (this.finished || sentAt === undefined) return;
    let timeMs: number | undefined;
    if (this.timing) {
      const micros = Math.max(0, Math.round((this.kernel.now() - sentAt) * 1000));
      this.tsum += BigInt(micros);
      this.tsum2 += BigInt(micros) * BigInt(micros);
      this.tmin = Math.min(this.tmin, micros);
      this.tmax = Math.max(this.tmax, micros);
      timeMs = micros / 1000;
    }
    const duplicate = this.answered.has(reply.sequence);
    if (duplicate) {
      this.duplicates += 1;
    } else {
      this.answered.add(reply.sequence);
      this.received += 1;
    }
    this.results.push({
      kind: 'reply',
      seq: reply.sequence,
      from: reply.from,
      bytes: reply.icmpLength,
      ttl: reply.ttl,
      timeMs,
      duplicate,
      differentAddress: reply.from !== this.destination,
    });
    if (this.doneCounting()) this.finish();
  }

  private onError(error: ReceivedIcmpError, sequence: number): void {
    if (this.finished || error.quoted.dst !== this.destination) return;
    this.errors += 1;
    this.answered.add(sequence);
    this.results.push({
      kind: 'icmp-error',
      seq: sequence,
      from: error.from,
      type: error.type,
      code: error.code,
      nextHopMtu: error.nextHopMtu,
      error: icmpErrorText(error.type, error.code, error.nextHopMtu),
    });
    if (this.doneCounting()) this.finish();
  }

  private doneCounting(): boolean {
    return this.received + this.errors >= this.options.count;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.timer?.cancel();
    this.unbind?.();
    this.unregisterClose?.();
    this.resolve({
      destination: this.destination,
      size: this.options.size,
      transmitted: this.transmitted,
      received: this.received,
      duplicates: this.duplicates,
      errors: this.errors,
      results: this.results,
      lossPercent: ((this.transmitted - this.received) * 100) / this.transmitted,
      rtt: this.rttSummary(),
      totalTimeMs: Math.round(this.lastSendTime - this.startTime),
      exitCode: this.received > 0 ? 0 : 1,
    });
  }

  /** finish() in ping_common.c: integer average, and mdev = sqrt(tsum2/n - (tsum/n)^2) in integers. */
  private rttSummary(): PingReport['rtt'] {
    if (this.received === 0 || !this.timing) return undefined;
    const total = BigInt(this.received + this.duplicates);
    const average = this.tsum / total;
    // ping_common.c switches formula past INT_MAX microseconds to keep its 64-bit products from overflowing.
    const variance =
      this.tsum < INT_MAX
        ? (this.tsum2 - (this.tsum * this.tsum) / total) / total
        : this.tsum2 / total - average * average;
    return {
      minMs: this.tmin / 1000,
      avgMs: Number(average) / 1000,
      maxMs: this.tmax / 1000,
      mdevMs: Number(integerSqrt(variance)) / 1000,
    };
  }
}

function pmtuDiscoveryFor(df: boolean | undefined): PmtuDiscovery {
  if (df === undefined) return 'want';
  return df ? 'do' : 'dont';
}

/** `llsqrt()` exactly, including where its Newton iteration stops one above the floor (llsqrt(3) is 2). */
function integerSqrt(value: bigint): bigint {
  if (value <= 0n) return 0n;
  let x = value;
  let previous = value + 1n;
  while (x < previous) {
    previous = x;
    x = (x + value / x) / 2n;
  }
  return x;
}
