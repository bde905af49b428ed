/**
 * One TCP connection (RFC 9293 §3.10 event processing), small but complete enough to interoperate with Linux:
 * handshake with MSS, window scale and timestamps (RFC 7323) in Linux's option layout, in-order delivery (anything
 * out of order is dropped and re-ACKed), retransmission on an RFC 6298 timer with Karn's rule, slow start after a
 * timeout, a zero-window probe, FIN in both directions, TIME-WAIT, RST and RFC 5961 challenge ACKs.
 *
 * No SACK (the SYN is what a Linux host with `tcp_sack=0` sends), no delayed ACKs, no out-of-order queue.
 */
import { IpIdCounter } from '../../../wire/linux-defaults.js';
import {
  TCP_FLAG,
  TCP_OPTION_SPACE,
  tcpOptions,
  type DecodedTcpSegment,
  type TcpOptions,
  type TcpSegment,
} from '../../../wire/tcp.js';
import type { Timer, TimerSet } from './clock.js';
import type { Errno } from './icmp-errors.js';

type TcpState =
  | 'SYN-SENT'
  | 'SYN-RECEIVED'
  | 'ESTABLISHED'
  | 'FIN-WAIT-1'
  | 'FIN-WAIT-2'
  | 'CLOSE-WAIT'
  | 'CLOSING'
  | 'LAST-ACK'
  | 'TIME-WAIT'
  | 'CLOSED';

/** What the application on top hears. */
export interface TcpEvents {
  onEstablished?(): void;
  onData?(data: Buffer): void;
  /** The peer sent FIN: no more data will come. */
  onEnd?(): void;
  /** The connection was aborted; nothing more will be delivered. */
  onError?(errno: Errno): void;
}

/** What the connection needs from the pod's TCP layer. */
export interface TcpLink {
  readonly timers: TimerSet;
  now(): number;
  random(): number;
  /** Sends a segment with DF (Linux TCP always does PMTU discovery) and the given IP ID. */
  transmit(segment: TcpSegment, ipId: number): void;
  /** The path MTU towards the peer right now. */
  pathMtu(): number;
  /** The connection reached CLOSED and may be forgotten. */
  release(): void;
}

export interface TcpEndpoints {
  localPort: number;
  remotePort: number;
}

// --- sequence-space arithmetic (RFC 9293 §3.4): comparisons modulo 2^32 ---
const seqAdd = (a: number, n: number): number => (a + n) >>> 0;
const seqDiff = (a: number, b: number): number => (a - b) | 0;
const seqLt = (a: number, b: number): boolean => seqDiff(a, b) < 0;
const seqLe = (a: number, b: number): boolean => seqDiff(a, b) <= 0;

/** 44 × 1460, the initial window a Linux host advertises; the pod reads everything at once, so it never shrinks. */
const RECEIVE_WINDOW = 64240;
const WINDOW_SCALE = 7;
const MAX_WINDOW_SCALE = 14;
/** RFC 9293 §3.7.1: without an MSS option the peer can take 536 bytes. */
const DEFAULT_PEER_MSS = 536;
/** `tcp_min_snd_mss`: a peer cannot make us send tinier segments than this. */
const MIN_SEND_MSS = 48;
const TCP_IP_HEADERS = 40;

const INITIAL_RTO_MS = 1000;
const MIN_RTO_MS = 200;
const MAX_RTO_MS = 120_000;
/** `tcp_syn_retries`, `tcp_synack_retries`, `tcp_retries2`. */
const SYN_RETRIES = 6;
const SYNACK_RETRIES = 5;
const DATA_RETRIES = 15;
/** TCP_TIMEWAIT_LEN, and `tcp_fin_timeout` for a FIN-WAIT-2 nobody reads from any more. */
const TIME_WAIT_MS = 60_000;
const FIN_WAIT_2_MS = 60_000;
const INITIAL_WINDOW_SEGMENTS = 10;

/** The peer's SYN options, its window scale clamped as RFC 7323 §2.3 requires. */
function peerOptions(options: Buffer): TcpOptions {
  const decoded = tcpOptions.decode(options);
  if (decoded.windowScale !== undefined) decoded.windowScale = Math.min(decoded.windowScale, MAX_WINDOW_SCALE);
  return decoded;
}

export class TcpConnection {
  private state: TcpState;
  private readonly iss: number;
  private sndUna: number;
  private sndNxt: number;
  /** The highest sequence number sent: after a go-back-N retransmission SND.NXT falls behind it. */
  private sndMax: number;
  private sndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private rcvNxt = 0;
  private irs = 0;

  /** Unacknowledged and unsent data; its first byte has sequence number `bufferSeq`. */
  private sendBuffer = Buffer.alloc(0);
  private bufferSeq: number;
  private closeRequested = false;

  private peerMss = DEFAULT_PEER_MSS;
  /** Shift applied to the peer's window field (0 unless both SYNs carried the option). */
  private peerWindowShift = 0;
  private windowScaling = false;
  private timestamps = false;
  private readonly tsOffset: number;
  private tsRecent = 0;

  private readonly ipId: IpIdCounter;
  private rto = INITIAL_RTO_MS;
  private srtt?: number;
  private rttVar = 0;
  private rttProbe?: { seq: number; sentAt: number };
  private retries = 0;
  /** Something arrived that the peer must hear acknowledged; any segment we send does that. */
  private ackPending = false;
  private retransmitTimer?: Timer;
  private lifetimeTimer?: Timer;
  private cwnd = 0;
  private ssthresh = Number.MAX_SAFE_INTEGER;

  private constructor(
    private readonly link: TcpLink,
    private readonly endpoints: TcpEndpoints,
    private readonly localMtu: number,
    public events: TcpEvents,
    state: TcpState,
  ) {
    this.state = state;
    this.iss = Math.floor(link.random() * 0x1_0000_0000) >>> 0;
    this.tsOffset = Math.floor(link.random() * 0x1_0000_0000) >>> 0;
    this.ipId = new IpIdCounter(Math.floor(link.random() * 0x10000));
    this.sndUna = this.iss;
    this.sndNxt = seqAdd(this.iss, 1);
    this.sndMax = this.sndNxt;
    this.bufferSeq = seqAdd(this.iss, 1);
  }

  /** Active open: sends the SYN. */
  static connect(link: TcpLink, endpoints: TcpEndpoints, localMtu: number, events: TcpEvents): TcpConnection {
    const connection = new TcpConnection(link, endpoints, localMtu, events, 'SYN-SENT');
    connection.windowScaling = true;
    connection.timestamps = true;
    connection.sendSyn();
    return connection;
  }

  /** Passive open from a listener's SYN: answers with the SYN-ACK. */
  static accept(
    link: TcpLink,
    endpoints: TcpEndpoints,
    localMtu: number,
    syn: DecodedTcpSegment,
    events: TcpEvents,
  ): TcpConnection {
    const connection = new TcpConnection(link, endpoints, localMtu, events, 'SYN-RECEIVED');
    connection.takePeerSyn(syn);
    connection.sendSyn();
    return connection;
  }

  write(data: Buffer): void {
    if (this.closeRequested || data.length === 0) return;
    if (this.state === 'CLOSED' || this.state === 'TIME-WAIT') return;
    this.sendBuffer = Buffer.concat([this.sendBuffer, data]);
    this.output();
  }

  /** The application is done sending: FIN after the queued data. */
  close(): void {
    if (this.closeRequested) return;
    this.closeRequested = true;
    switch (this.state) {
      case 'SYN-SENT':
        this.finish();
        return;
      case 'SYN-RECEIVED':
      case 'ESTABLISHED':
        this.state = 'FIN-WAIT-1';
        break;
      case 'CLOSE-WAIT':
        this.state = 'LAST-ACK';
        break;
      default:
        return;
    }
    this.output();
  }

  /** Whether `sequence` is in [SND.UNA, SND.MAX], as an ICMP error about this connection must quote (`tcp_v4_err`). */
  hasInFlight(sequence: number): boolean {
    return seqLe(this.sndUna, sequence) && seqLe(sequence, this.sndMax);
  }

  /** An ICMP error quoting one of our segments, already mapped to an errno by `tcp_v4_err()`'s rules. */
  icmpError(errno: Errno): void {
    // Only a connection still being set up fails on ICMP; an established one treats it as a soft error.
    if (this.state === 'SYN-SENT' || this.state === 'SYN-RECEIVED') this.abort(errno);
  }

  /** The path MTU went down: resend what is in flight in smaller segments (`tcp_simple_retransmit`). */
  pathMtuReduced(): void {
    if (this.state === 'SYN-SENT' || this.state === 'SYN-RECEIVED' || this.sndMax === this.sndUna) return;
    this.sndNxt = this.sndUna;
    this.rttProbe = undefined;
    this.output();
  }

  receive(segment: DecodedTcpSegment): 'accepted' | 'unacceptable' {
    if (this.state === 'SYN-SENT') return this.receiveInSynSent(segment);
    const flags = segment.flags;
    const has = (flag: number) => (flags & flag) !== 0;
    const segmentLength = segment.payload.length + (has(TCP_FLAG.SYN) ? 1 : 0) + (has(TCP_FLAG.FIN) ? 1 : 0);

    // The peer never got our SYN-ACK and sent its SYN again.
    if (this.state === 'SYN-RECEIVED' && has(TCP_FLAG.SYN) && !has(TCP_FLAG.ACK) && segment.sequence === this.irs) {
      this.sendSyn();
      return 'accepted';
    }
    if (!this.acceptable(segment.sequence, segmentLength)) {
      if (!has(TCP_FLAG.RST)) this.sendAck();
      return 'unacceptable';
    }
    const options = tcpOptions.decode(segment.options);
    if (this.timestamps && options.timestamp !== undefined && seqLe(segment.sequence, this.rcvNxt)) {
      this.tsRecent = options.timestamp.value;
    }

    if (has(TCP_FLAG.RST)) {
      // RFC 5961 §3: only an exact hit resets; anything else in the window earns a challenge ACK.
      if (segment.sequence !== this.rcvNxt) {
        this.sendAck();
        return 'accepted';
      }
      if (
        this.state === 'SYN-RECEIVED' ||
        this.state === 'CLOSING' ||
        this.state === 'LAST-ACK' ||
        this.state === 'TIME-WAIT'
      ) {
        this.finish();
      } else {
        this.abort('ECONNRESET');
      }
      return 'accepted';
    }
    if (has(TCP_FLAG.SYN)) {
      this.sendAck(); // RFC 5961 §4 challenge ACK
      return 'accepted';
    }
    if (!has(TCP_FLAG.ACK)) return 'unacceptable';

    const handshakeDone = this.state === 'SYN-RECEIVED';
    if (handshakeDone) {
      if (!(seqLt(this.sndUna, segment.acknowledgment) && seqLe(segment.acknowledgment, this.sndMax))) {
        this.transmitReset(segment.acknowledgment);
        return 'unacceptable';
      }
      this.state = 'ESTABLISHED';
      this.sndWnd = segment.window << this.peerWindowShift;
      this.sndWl1 = segment.sequence;
      this.sndWl2 = segment.acknowledgment;
    }
    if (seqLt(this.sndMax, segment.acknowledgment)) {
      this.sendAck();
      return 'unacceptable';
    }
    this.processAck(segment);
    if (handshakeDone) this.events.onEstablished?.();
    if (this.isClosed()) return 'accepted';

    const payload = segment.payload;
    if (
      payload.length > 0 &&
      (this.state === 'ESTABLISHED' || this.state === 'FIN-WAIT-1' || this.state === 'FIN-WAIT-2')
    ) {
      this.ackPending = true;
      const skip = seqDiff(this.rcvNxt, segment.sequence);
      if (skip >= 0 && skip < payload.length) {
        const fresh = payload.subarray(skip, skip + RECEIVE_WINDOW);
        this.rcvNxt = seqAdd(this.rcvNxt, fresh.length);
        this.events.onData?.(fresh);
      }
    }
    if (has(TCP_FLAG.FIN) && seqAdd(segment.sequence, payload.length) === this.rcvNxt && !this.isClosed()) {
      this.ackPending = true;
      this.rcvNxt = seqAdd(this.rcvNxt, 1);
      this.receiveFin();
    }
    if (!this.isClosed()) this.flushAck();
    return 'accepted';
  }

  /** A method, not a comparison, because callbacks run above may have closed the connection behind TS's narrowing. */
  private isClosed(): boolean {
    return this.state === 'CLOSED';
  }

  private receiveInSynSent(segment: DecodedTcpSegment): 'accepted' | 'unacceptable' {
    const has = (flag: number) => (segment.flags & flag) !== 0;
    if (has(TCP_FLAG.ACK) && (seqLe(segment.acknowledgment, this.iss) || seqLt(this.sndNxt, segment.acknowledgment))) {
      if (!has(TCP_FLAG.RST)) this.transmitReset(segment.acknowledgment);
      return 'unacceptable';
    }
    if (has(TCP_FLAG.RST)) {
      if (!has(TCP_FLAG.ACK)) return 'unacceptable';
      this.abort('ECONNREFUSED');
      return 'accepted';
    }
    if (!has(TCP_FLAG.SYN)) return 'unacceptable';
    this.takePeerSyn(segment);
    if (!has(TCP_FLAG.ACK)) {
      this.state = 'SYN-RECEIVED'; // simultaneous open
      this.sendSyn();
      return 'accepted';
    }
    this.sndUna = segment.acknowledgment;
    this.sndWnd = segment.window;
    this.sndWl1 = segment.sequence;
    this.sndWl2 = segment.acknowledgment;
    this.state = 'ESTABLISHED';
    this.ackedSynOrData();
    // The handshake's last ACK goes out before anything the application writes on hearing of the connection.
    this.ackPending = true;
    this.flushAck();
    this.events.onEstablished?.();
    return 'accepted';
  }

  /** Learns IRS and the options of the peer's SYN; windowScaling/timestamps stay on only if both ends offer them. */
  private takePeerSyn(syn: DecodedTcpSegment): void {
    this.irs = syn.sequence;
    this.rcvNxt = seqAdd(syn.sequence, 1);
    const options = peerOptions(syn.options);
    if (options.mss !== undefined) this.peerMss = options.mss;
    const passive = this.state === 'SYN-RECEIVED';
    this.windowScaling = (passive || this.windowScaling) && options.windowScale !== undefined;
    this.peerWindowShift = this.windowScaling ? (options.windowScale as number) : 0;
    this.timestamps = (passive || this.timestamps) && options.timestamp !== undefined;
    if (this.timestamps) this.tsRecent = (options.timestamp as { value: number }).value;
  }

  private acceptable(sequence: number, length: number): boolean {
    const windowEnd = seqAdd(this.rcvNxt, this.advertisedWindow());
    const inWindow = (seq: number) => seqLe(this.rcvNxt, seq) && seqLt(seq, windowEnd);
    if (length === 0) return inWindow(sequence);
    return inWindow(sequence) || inWindow(seqAdd(sequence, length - 1));
  }

  private processAck(segment: DecodedTcpSegment): void {
    const ack = segment.acknowledgment;
    if (seqLt(this.sndUna, ack)) {
      const ackedBytes = seqDiff(ack, this.sndUna);
      const dataAcked = Math.max(0, Math.min(seqDiff(ack, this.bufferSeq), this.sendBuffer.length));
      this.sendBuffer = this.sendBuffer.subarray(dataAcked);
      this.bufferSeq = seqAdd(this.bufferSeq, dataAcked);
      this.sndUna = ack;
      // An ACK for data sent before a go-back-N retransmission: no need to send that again.
      if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
      this.growCongestionWindow(ackedBytes);
      this.ackedSynOrData();
    }
    if (
      seqLe(this.sndUna, ack) &&
      (seqLt(this.sndWl1, segment.sequence) || (this.sndWl1 === segment.sequence && seqLe(this.sndWl2, ack)))
    ) {
      this.sndWnd = segment.window << this.peerWindowShift;
      this.sndWl1 = segment.sequence;
      this.sndWl2 = ack;
    }

    const finAcked = this.closeRequested && this.sendBuffer.length === 0 && this.sndUna === seqAdd(this.bufferSeq, 1);
    if (!finAcked) return;
    switch (this.state) {
      case 'FIN-WAIT-1':
        this.state = 'FIN-WAIT-2';
        this.restartLifetime(FIN_WAIT_2_MS);
        break;
      case 'CLOSING':
        this.enterTimeWait();
        break;
      case 'LAST-ACK':
        this.finish();
        break;
      default:
        break;
    }
  }

  private receiveFin(): void {
    switch (this.state) {
      case 'SYN-RECEIVED':
      case 'ESTABLISHED':
        this.state = 'CLOSE-WAIT';
        break;
      case 'FIN-WAIT-1':
        this.state = 'CLOSING';
        break;
      case 'FIN-WAIT-2':
        this.enterTimeWait();
        break;
      default:
        return;
    }
    this.events.onEnd?.();
  }

  /** Data first, so that the ACK owed rides on it (the application may have answered already); else a bare ACK. */
  private flushAck(): void {
    this.output();
    if (this.ackPending) this.sendAck();
  }

  /** Sends what the windows allow, FIN last. */
  private output(): void {
    const mss = this.sendMss();
    for (;;) {
      const offset = seqDiff(this.sndNxt, this.bufferSeq);
      const unsent = this.sendBuffer.length - offset;
      const window = Math.min(this.sndWnd, this.cwnd);
      const usable = window - seqDiff(this.sndNxt, this.sndUna);
      const length = Math.max(0, Math.min(unsent, mss, usable));
      const finNow =
        this.closeRequested && offset + length === this.sendBuffer.length && offset <= this.sendBuffer.length;
      if (length === 0 && !(finNow && unsent === 0)) break;
      const end = offset + length;
      const flags =
        TCP_FLAG.ACK | (length > 0 && end === this.sendBuffer.length ? TCP_FLAG.PSH : 0) | (finNow ? TCP_FLAG.FIN : 0);
      this.sendSegment(this.sndNxt, flags, this.sendBuffer.subarray(offset, end));
      // Karn: time only new data, never a retransmission.
      if (this.rttProbe === undefined && length > 0 && this.sndNxt === this.sndMax) {
        this.rttProbe = { seq: seqAdd(this.sndNxt, length), sentAt: this.link.now() };
      }
      this.sndNxt = seqAdd(this.sndNxt, length + (finNow ? 1 : 0));
      if (seqLt(this.sndMax, this.sndNxt)) this.sndMax = this.sndNxt;
      if (finNow) break;
    }
    this.armRetransmit();
  }

  private sendMss(): number {
    const pathMss = this.link.pathMtu() - TCP_IP_HEADERS;
    const options = this.timestamps ? TCP_OPTION_SPACE.TIMESTAMP : 0;
    return Math.max(MIN_SEND_MSS, Math.min(this.peerMss, pathMss) - options);
  }

  /** SYN or SYN-ACK (by state), with MSS, timestamps and window scale in Linux's order. */
  private sendSyn(): void {
    const ack = this.state === 'SYN-RECEIVED';
    const options = tcpOptions.encode({
      mss: this.localMtu - TCP_IP_HEADERS,
      timestamp: this.timestamps ? this.timestamp(ack ? this.tsRecent : 0) : undefined,
      windowScale: this.windowScaling ? WINDOW_SCALE : undefined,
    });
    const flags = TCP_FLAG.SYN | (ack ? TCP_FLAG.ACK : 0);
    // The SYN-ACK goes out like Linux's ip_build_and_send_pkt(): DF with IP ID 0.
    this.link.transmit(
      {
        srcPort: this.endpoints.localPort,
        dstPort: this.endpoints.remotePort,
        sequence: this.iss,
        acknowledgment: ack ? this.rcvNxt : 0,
        flags,
        window: RECEIVE_WINDOW,
        options,
        payload: Buffer.alloc(0),
      },
      ack ? 0 : this.ipId.next(),
    );
    this.armRetransmit();
  }

  /** TSval: the millisecond clock plus a random offset per connection (Linux's `tp->tsoffset`), hiding the uptime. */
  private timestamp(echo: number): NonNullable<TcpOptions['timestamp']> {
    return { value: seqAdd(Math.floor(this.link.now()), this.tsOffset), echo };
  }

  private sendAck(): void {
    this.sendSegment(this.sndNxt, TCP_FLAG.ACK, Buffer.alloc(0));
  }

  private sendSegment(sequence: number, flags: number, payload: Buffer): void {
    this.ackPending = false;
    this.link.transmit(
      {
        srcPort: this.endpoints.localPort,
        dstPort: this.endpoints.remotePort,
        sequence,
        acknowledgment: this.rcvNxt,
        flags,
        window: this.windowScaling ? this.advertisedWindow() >> WINDOW_SCALE : this.advertisedWindow(),
        options: this.timestamps ? tcpOptions.encode({ timestamp: this.timestamp(this.tsRecent) }) : undefined,
        payload,
      },
      this.ipId.next(),
    );
  }

  /** What the peer may send beyond RCV.NXT: the window field's value, so both ends agree to the byte. */
  private advertisedWindow(): number {
    return this.windowScaling ? (RECEIVE_WINDOW >> WINDOW_SCALE) << WINDOW_SCALE : RECEIVE_WINDOW;
  }

  /** RST for a segment that acknowledged something we never sent: <SEQ=SEG.ACK><CTL=RST>. */
  private transmitReset(sequence: number): void {
    this.link.transmit(
      {
        srcPort: this.endpoints.localPort,
        dstPort: this.endpoints.remotePort,
        sequence,
        acknowledgment: 0,
        flags: TCP_FLAG.RST,
        window: 0,
        payload: Buffer.alloc(0),
      },
      this.ipId.next(),
    );
  }

  // --- timers ---

  private ackedSynOrData(): void {
    if (this.rttProbe !== undefined && seqLe(this.rttProbe.seq, this.sndUna)) {
      this.sampleRtt(this.link.now() - this.rttProbe.sentAt);
      this.rttProbe = undefined;
    }
    if (this.cwnd === 0) this.cwnd = INITIAL_WINDOW_SEGMENTS * this.sendMss();
    this.retries = 0;
    this.retransmitTimer?.cancel();
    this.retransmitTimer = undefined;
    this.armRetransmit();
  }

  private sampleRtt(sample: number): void {
    if (this.srtt === undefined) {
      this.srtt = sample;
      this.rttVar = sample / 2;
    } else {
      this.rttVar = 0.75 * this.rttVar + 0.25 * Math.abs(this.srtt - sample);
      this.srtt = 0.875 * this.srtt + 0.125 * sample;
    }
    this.rto = Math.min(MAX_RTO_MS, this.srtt + Math.max(4 * this.rttVar, MIN_RTO_MS));
  }

  private growCongestionWindow(ackedBytes: number): void {
    if (this.cwnd === 0) return;
    const mss = this.sendMss();
    this.cwnd +=
      this.cwnd < this.ssthresh ? Math.min(ackedBytes, mss) : Math.max(1, Math.floor((mss * mss) / this.cwnd));
  }

  /** Runs while anything is in flight, or while data waits behind a zero window (then it fires a probe). */
  private armRetransmit(): void {
    if (this.retransmitTimer !== undefined || this.state === 'CLOSED' || this.state === 'TIME-WAIT') return;
    const inFlight = this.sndMax !== this.sndUna || this.state === 'SYN-SENT' || this.state === 'SYN-RECEIVED';
    const blocked = seqDiff(this.sndNxt, this.bufferSeq) < this.sendBuffer.length && this.sndWnd === 0;
    if (!inFlight && !blocked) return;
    this.retransmitTimer = this.link.timers.start(() => {
      this.retransmitTimer = undefined;
      this.onRetransmitTimeout();
    }, this.rto);
  }

  private onRetransmitTimeout(): void {
    const limit =
      this.state === 'SYN-SENT' ? SYN_RETRIES : this.state === 'SYN-RECEIVED' ? SYNACK_RETRIES : DATA_RETRIES;
    if (this.retries >= limit) {
      if (this.state === 'SYN-RECEIVED') this.finish();
      else this.abort('ETIMEDOUT');
      return;
    }
    this.retries += 1;
    this.rto = Math.min(this.rto * 2, MAX_RTO_MS);
    this.rttProbe = undefined;
    if (this.state === 'SYN-SENT' || this.state === 'SYN-RECEIVED') {
      this.sendSyn();
      return;
    }
    const mss = this.sendMss();
    if (this.sndMax === this.sndUna) {
      // Zero-window probe: one byte past the window, which the peer must answer with its current window.
      const offset = seqDiff(this.sndNxt, this.bufferSeq);
      if (offset >= this.sendBuffer.length) return;
      this.sendSegment(this.sndNxt, TCP_FLAG.ACK, this.sendBuffer.subarray(offset, offset + 1));
      this.sndNxt = seqAdd(this.sndNxt, 1);
      this.sndMax = this.sndNxt;
      this.armRetransmit();
      return;
    }
    this.ssthresh = Math.max(Math.floor(seqDiff(this.sndMax, this.sndUna) / 2), 2 * mss);
    this.cwnd = mss;
    this.sndNxt = this.sndUna; // go back N
    this.output();
  }

  private enterTimeWait(): void {
    this.state = 'TIME-WAIT';
    this.retransmitTimer?.cancel();
    this.retransmitTimer = undefined;
    this.restartLifetime(TIME_WAIT_MS);
  }

  private restartLifetime(ms: number): void {
    this.lifetimeTimer?.cancel();
    this.lifetimeTimer = this.link.timers.start(() => this.finish(), ms);
  }

  private abort(errno: Errno): void {
    this.finish();
    this.events.onError?.(errno);
  }

  private finish(): void {
    if (this.state === 'CLOSED') return;
    this.state = 'CLOSED';
    this.retransmitTimer?.cancel();
    this.lifetimeTimer?.cancel();
    this.link.release();
  }
}
