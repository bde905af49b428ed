/**
 * The checked views of UDP, TCP and ICMP (and IPv4's TOS byte) against the kernel captures: zero-copy inside the
 * captured packet, the same fields as the codecs, and setters that rebuild the captured bytes.
 */
import { describe, expect, it } from 'vitest';
import {
  ECN,
  ICMP_FIELD,
  ICMP_TYPE,
  IP_PROTOCOL,
  IcmpView,
  Ipv4View,
  TCP_FIELD,
  TCP_MIN_HEADER_LENGTH,
  TCP_OPTION,
  TcpView,
  UDP_FIELD,
  UDP_HEADER_LENGTH,
  UdpView,
  checkQuote,
  dscpOf,
  ecnOf,
  icmp,
  tcp,
  tcpOptions,
  tosOf,
  udp,
  type Parsed,
} from '../../src/wire/index.js';
import { allVectorFrames, loadVector } from '../support/wire-vectors.js';

function valueOf<T>(result: Parsed<T>): T {
  if (!result.ok) throw new Error(result.reason);
  return result.value;
}

const checked = (bytes: Buffer): Ipv4View => valueOf(Ipv4View.check(bytes));

/** The inner packets of every capture that carry a whole transport header (first fragments and unfragmented ones). */
function innerPackets(): Ipv4View[] {
  return allVectorFrames()
    .map((frame) => checked(checked(frame.ip).payload))
    .filter((inner) => inner.fragmentOffset === 0 && !inner.moreFragments);
}

/** Where the transport header of `packet` starts and ends, inside the very buffer the packet lies in. */
const transportOf = (packet: Ipv4View): [Buffer, number, number] => [
  packet.buffer,
  packet.offset + packet.headerLength,
  packet.offset + packet.totalLength,
];

const pseudoOf = (packet: Ipv4View) => ({ src: packet.src, dst: packet.dst });

function byProtocol(protocol: number): Ipv4View[] {
  const packets = innerPackets().filter((packet) => packet.protocol === protocol);
  expect(packets.length).toBeGreaterThan(0);
  return packets;
}

describe('UdpView', () => {
  it('reads every captured datagram where it lies, as the codec does, and verifies its checksum', () => {
    for (const packet of byProtocol(IP_PROTOCOL.UDP)) {
      const view = valueOf(UdpView.check(...transportOf(packet)));
      expect(view.buffer).toBe(packet.buffer);
      expect(view.toDatagram()).toEqual(valueOf(udp.decode(packet.payload, pseudoOf(packet))));
      expect(view.verifyChecksum(pseudoOf(packet))).toBe(true);
    }
  });

  it('rebuilds a captured datagram field by field', () => {
    for (const packet of byProtocol(IP_PROTOCOL.UDP)) {
      const captured = new UdpView(packet.payload);
      const out = Buffer.alloc(packet.payload.length);
      const view = new UdpView(out);
      view.srcPort = captured.srcPort;
      view.dstPort = captured.dstPort;
      view.length = captured.length;
      captured.payload.copy(out, UDP_HEADER_LENGTH);
      view.fillChecksum(pseudoOf(packet));
      expect(out).toEqual(packet.payload);
    }
  });

  it('refuses a short header and a length field outside [8, what there is]', () => {
    expect(UdpView.check(Buffer.alloc(7))).toEqual({ ok: false, reason: 'truncated' });
    const bytes = Buffer.alloc(12);
    bytes.writeUInt16BE(13, UDP_FIELD.length);
    expect(UdpView.check(bytes)).toEqual({ ok: false, reason: 'bad-udp-length' });
    bytes.writeUInt16BE(7, UDP_FIELD.length);
    expect(new UdpView(Buffer.alloc(0)).attach(bytes).validate()).toBe('bad-udp-length');
    bytes.writeUInt16BE(12, UDP_FIELD.length);
    expect(UdpView.check(bytes, 0, 11)).toEqual({ ok: false, reason: 'bad-udp-length' });
    expect(UdpView.check(bytes).ok).toBe(true);
  });

  it('keeps the checksum valid across a change of source address, and "no checksum" as none', () => {
    const packet = byProtocol(IP_PROTOCOL.UDP)[0];
    const bytes = Buffer.from(packet.payload);
    const view = new UdpView(bytes);
    const source = 0x0a000063;
    view.updateChecksumForAddress(packet.src, source);
    expect(view.verifyChecksum({ src: source, dst: packet.dst })).toBe(true);
    view.checksum = 0;
    view.updateChecksumForAddress(source, packet.src);
    expect(view.checksum).toBe(0);
  });
});

describe('TcpView', () => {
  it('reads every captured segment where it lies, as the codec does, and verifies its checksum', () => {
    for (const packet of byProtocol(IP_PROTOCOL.TCP)) {
      const view = valueOf(TcpView.check(...transportOf(packet)));
      expect(view.buffer).toBe(packet.buffer);
      expect(view.toSegment()).toEqual(valueOf(tcp.decode(packet.payload, pseudoOf(packet))));
      expect(view.verifyChecksum(pseudoOf(packet))).toBe(true);
    }
  });

  it('rebuilds a captured segment field by field', () => {
    for (const packet of byProtocol(IP_PROTOCOL.TCP)) {
      const captured = new TcpView(packet.payload);
      const out = Buffer.alloc(packet.payload.length);
      const view = new TcpView(out);
      view.srcPort = captured.srcPort;
      view.dstPort = captured.dstPort;
      view.sequence = captured.sequence;
      view.acknowledgment = captured.acknowledgment;
      view.dataOffset = captured.dataOffset;
      view.reserved = captured.reserved;
      view.flags = captured.flags;
      view.window = captured.window;
      view.urgentPointer = captured.urgentPointer;
      captured.options.copy(out, TCP_MIN_HEADER_LENGTH);
      captured.payload.copy(out, captured.headerLength);
      view.fillChecksum(pseudoOf(packet));
      expect(out).toEqual(packet.payload);
    }
  });

  it('refuses a short header and a data offset outside [5 words, the segment]', () => {
    expect(TcpView.check(Buffer.alloc(19))).toEqual({ ok: false, reason: 'truncated' });
    const bytes = Buffer.alloc(24);
    bytes[TCP_FIELD.dataOffsetReserved] = 4 << 4;
    expect(TcpView.check(bytes)).toEqual({ ok: false, reason: 'bad-data-offset' });
    bytes[TCP_FIELD.dataOffsetReserved] = 7 << 4;
    expect(TcpView.check(bytes)).toEqual({ ok: false, reason: 'bad-data-offset' });
    bytes[TCP_FIELD.dataOffsetReserved] = 6 << 4;
    expect(TcpView.check(bytes).ok).toBe(true);
  });

  it('keeps the checksum valid across a change of source address', () => {
    const packet = byProtocol(IP_PROTOCOL.TCP)[0];
    const view = new TcpView(Buffer.from(packet.payload));
    view.updateChecksumForAddress(packet.src, 0x0a000063);
    expect(view.verifyChecksum({ src: 0x0a000063, dst: packet.dst })).toBe(true);
  });
});

describe('tcpOptions', () => {
  const segments = () =>
    byProtocol(IP_PROTOCOL.TCP)
      .filter((packet) => packet.src === byProtocol(IP_PROTOCOL.TCP)[0].src)
      .map((packet) => new TcpView(packet.payload));

  it("reads a Linux SYN's options, SACK-permitted included among them", () => {
    const syn = segments()[0];
    expect(syn.options.toString('hex')).toBe('020405b40402080ac57e90620000000001030304');
    expect(tcpOptions.decode(syn.options)).toEqual({
      mss: 1460,
      windowScale: 4,
      timestamp: { value: 0xc57e9062, echo: 0 },
    });
  });

  it("writes a data segment's timestamp byte for byte as the kernel did (NOP NOP TS)", () => {
    const data = segments().slice(1);
    expect(data.length).toBeGreaterThan(0);
    for (const segment of data) {
      const { timestamp } = tcpOptions.decode(segment.options);
      expect(tcpOptions.encode({ timestamp })).toEqual(segment.options);
    }
  });

  it("lays out a SYN's options in tcp_options_write() order with SACK off, each in its aligned space", () => {
    const options = { mss: 1440, timestamp: { value: 1, echo: 2 }, windowScale: 7 };
    const bytes = tcpOptions.encode(options);
    expect(bytes.toString('hex')).toBe('020405a0' + '0101080a0000000100000002' + '01030307');
    expect(bytes.length).toBe(tcpOptions.encodingLength(options));
    expect(tcpOptions.decode(bytes)).toEqual(options);
    expect(bytes[0]).toBe(TCP_OPTION.MSS);
    expect(tcpOptions.encode({}).length).toBe(0);
  });

  it('keeps what came before a malformed option and nothing after it', () => {
    expect(tcpOptions.decode(Buffer.from('01030307' + '0401' + '020405b4', 'hex'))).toEqual({
      mss: undefined,
      windowScale: 7,
    });
  });
});

describe('IcmpView', () => {
  it('reads every captured message where it lies, as the codec does', () => {
    for (const packet of byProtocol(IP_PROTOCOL.ICMP)) {
      const view = valueOf(IcmpView.check(...transportOf(packet)));
      expect(view.buffer).toBe(packet.buffer);
      expect(view.toMessage()).toEqual(valueOf(icmp.decode(packet.payload)));
      expect(view.byteLength).toBe(packet.payload.length);
    }
  });

  it('rebuilds a captured echo field by field', () => {
    const echoes = byProtocol(IP_PROTOCOL.ICMP).filter(
      (packet) => packet.payload[ICMP_FIELD.type] === ICMP_TYPE.ECHO_REQUEST,
    );
    expect(echoes.length).toBeGreaterThan(0);
    for (const packet of echoes) {
      const captured = new IcmpView(packet.payload);
      const out = Buffer.alloc(captured.byteLength);
      const view = new IcmpView(out);
      view.type = captured.type;
      view.code = captured.code;
      view.identifier = captured.identifier;
      view.sequence = captured.sequence;
      captured.body.copy(out, 8);
      view.fillChecksum();
      expect(out).toEqual(packet.payload);
    }
  });

  it('refuses a short message and a wrong checksum', () => {
    expect(IcmpView.check(Buffer.alloc(7))).toEqual({ ok: false, reason: 'truncated' });
    const bytes = icmp.encode({ kind: 'echo-request', identifier: 1, sequence: 2, data: Buffer.alloc(4) });
    bytes[ICMP_FIELD.sequence] ^= 1;
    expect(IcmpView.check(bytes)).toEqual({ ok: false, reason: 'bad-icmp-checksum' });
  });
});

describe('checkQuote', () => {
  it("finds the offending header and its ports in the pod's captured Port Unreachable (udp-tcp frame 2)", () => {
    const [datagramFrame, errorFrame] = loadVector('udp-tcp.pcapng');
    const sent = checked(checked(datagramFrame.ip).payload);
    const error = valueOf(icmp.decode(checked(checked(errorFrame.ip).payload).payload));
    if (error.kind !== 'destination-unreachable') throw new Error(`${error.kind}, not a destination unreachable`);
    const header = valueOf(checkQuote(error.quoted));
    expect([header.src, header.dst, header.protocol]).toEqual([sent.src, sent.dst, IP_PROTOCOL.UDP]);
    const ports = new UdpView(error.quoted.subarray(header.headerLength));
    const original = new UdpView(sent.payload);
    expect([ports.srcPort, ports.dstPort, ports.length]).toEqual([original.srcPort, original.dstPort, original.length]);
  });

  it('wants an IPv4 header and the 8 payload bytes RFC 792 promises, not a whole packet', () => {
    const quote = Buffer.alloc(28);
    const header = new Ipv4View(quote);
    header.version = 4;
    header.ihl = 5;
    header.totalLength = 1500; // a quote is truncated: its lengths and checksum are not checked
    expect(checkQuote(quote).ok).toBe(true);
    expect(checkQuote(quote.subarray(0, 27))).toEqual({ ok: false, reason: 'truncated' });
    header.ihl = 6;
    expect(checkQuote(quote)).toEqual({ ok: false, reason: 'truncated' });
    header.ihl = 4;
    expect(checkQuote(quote)).toEqual({ ok: false, reason: 'bad-ihl' });
    header.version = 6;
    expect(checkQuote(quote)).toEqual({ ok: false, reason: 'not-ipv4' });
  });
});

describe('Ipv4View.tos', () => {
  it('is the whole byte the DSCP and ECN accessors split', () => {
    const ecn = loadVector('ecn.pcapng').map((frame) => checked(frame.ip));
    for (const packet of ecn) {
      expect(packet.tos).toBe(tosOf(packet.dscp, packet.ecn));
      expect([dscpOf(packet.tos), ecnOf(packet.tos)]).toEqual([packet.dscp, packet.ecn]);
    }
    expect(ecn.some((packet) => packet.ecn !== ECN.NOT_ECT)).toBe(true);
    const view = new Ipv4View(Buffer.alloc(20));
    view.tos = 0xb9;
    expect([view.dscp, view.ecn]).toEqual([0x2e, ECN.ECT1]);
    view.ecn = ECN.CE;
    expect(view.tos).toBe(0xbb);
    view.dscp = 0;
    expect(view.tos).toBe(ECN.CE);
  });
});
