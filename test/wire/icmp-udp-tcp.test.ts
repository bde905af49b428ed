import { describe, expect, it } from 'vitest';
import {
  ICMP_TYPE,
  IP_PROTOCOL,
  TCP_FLAG,
  UNREACHABLE_CODE,
  destinationUnreachable,
  fragmentationNeeded,
  icmp,
  icmpErrorTos,
  internetChecksum,
  ipv4,
  quoteOf,
  tcp,
  tcpMss,
  timeExceeded,
  udp,
  type IcmpMessage,
} from '../../src/wire/index.js';

const addresses = { src: 0xc0a84d82, dst: 0xc0a857c6 };

function offendingPacket(payloadLength: number, optionsLength = 0): Buffer {
  return ipv4.encode({
    identification: 0xcc7c,
    dontFragment: true,
    ttl: 1,
    protocol: IP_PROTOCOL.ICMP,
    ...addresses,
    options: Buffer.alloc(optionsLength, 1),
    payload: Buffer.alloc(payloadLength, 0x5a),
  });
}

describe('icmp codec', () => {
  const messages: IcmpMessage[] = [
    { kind: 'echo-request', identifier: 198, sequence: 1, data: Buffer.from('0123456789abcdef') },
    { kind: 'echo-reply', identifier: 0xffff, sequence: 0, data: Buffer.alloc(0) },
    ...Object.values(UNREACHABLE_CODE).map((code): IcmpMessage => ({
      kind: 'destination-unreachable',
      code,
      nextHopMtu: code === UNREACHABLE_CODE.FRAGMENTATION_NEEDED ? 1480 : 0,
      quoted: Buffer.alloc(28, code),
    })),
    { kind: 'time-exceeded', code: 1, quoted: Buffer.alloc(28, 9) },
    { kind: 'other', type: 13, code: 0, restOfHeader: 0xdeadbeef, data: Buffer.alloc(12, 3) },
  ];

  it('round-trips every kind, all 16 unreachable codes included, with a valid checksum', () => {
    for (const message of messages) {
      const bytes = icmp.encode(message);
      expect(bytes.length).toBe(icmp.encodingLength(message));
      expect(internetChecksum(bytes)).toBe(0);
      expect(icmp.decode(bytes)).toEqual({ ok: true, value: message });
    }
  });

  it('refuses a bad checksum and a short message', () => {
    const bytes = icmp.encode(messages[0]);
    bytes[9] ^= 1;
    expect(icmp.decode(bytes)).toEqual({ ok: false, reason: 'bad-icmp-checksum' });
    expect(icmp.decode(Buffer.alloc(7))).toEqual({ ok: false, reason: 'truncated' });
  });

  it('keeps an echo with a non-zero code as an unknown message rather than losing the code', () => {
    const bytes = icmp.encode({
      kind: 'other',
      type: ICMP_TYPE.ECHO_REQUEST,
      code: 1,
      restOfHeader: 0x00c60001,
      data: Buffer.alloc(0),
    });
    const decoded = icmp.decode(bytes);
    expect(decoded.ok && decoded.value.kind).toBe('other');
  });
});

describe('icmp error builders', () => {
  it('quote the IP header plus 8 bytes (RFC 792) by default, options included', () => {
    const offending = offendingPacket(64, 8);
    expect(quoteOf(offending)).toEqual(offending.subarray(0, 28 + 8));
    const message = icmp.decode(timeExceeded(offending));
    expect(message).toEqual({ ok: true, value: { kind: 'time-exceeded', code: 0, quoted: offending.subarray(0, 36) } });
  });

  it('quote as much as fits a 576-byte ICMP packet in linux mode', () => {
    const small = offendingPacket(64);
    expect(quoteOf(small, { quote: 'linux' })).toEqual(small);
    const big = offendingPacket(1460);
    expect(quoteOf(big, { quote: 'linux' }).length).toBe(576 - 20 - 8);
    expect(quoteOf(big, { quote: 'linux', errorHeaderLength: 24 }).length).toBe(576 - 24 - 8);
    expect(quoteOf(small.subarray(0, 24))).toEqual(small.subarray(0, 24));
  });

  it('build fragmentation needed: type 3 code 4, next-hop MTU in bytes 6-7, valid checksum', () => {
    const offending = offendingPacket(1468);
    for (const quote of ['rfc792', 'linux'] as const) {
      const bytes = fragmentationNeeded(offending, 1480, { quote });
      expect([bytes[0], bytes[1], bytes.readUInt16BE(4), bytes.readUInt16BE(6)]).toEqual([3, 4, 0, 1480]);
      expect(internetChecksum(bytes)).toBe(0);
      expect(bytes.subarray(8)).toEqual(quoteOf(offending, { quote }));
    }
  });

  it('build any destination unreachable code', () => {
    const bytes = destinationUnreachable(offendingPacket(20), UNREACHABLE_CODE.PORT);
    expect(icmp.decode(bytes)).toEqual({
      ok: true,
      value: { kind: 'destination-unreachable', code: 3, nextHopMtu: 0, quoted: offendingPacket(20).subarray(0, 28) },
    });
  });

  it('give errors the TOS Linux does: precedence internetwork control plus the TOS bits', () => {
    expect(icmpErrorTos(0x00)).toBe(0xc0);
    expect(icmpErrorTos(0xb8)).toBe(0xd8);
    // IPTOS_TOS_MASK (0x1e) still covers ECN bit 1: an ECT(0) or CE offender gets an ECT(0) error from Linux 6.1.
    expect(icmpErrorTos(0x03)).toBe(0xc2);
    expect(icmpErrorTos(0x01)).toBe(0xc0);
  });
});

describe('udp codec', () => {
  it('round-trips with a pseudo-header checksum', () => {
    const datagram = { srcPort: 40829, dstPort: 9999, payload: Buffer.from('hello-udp-from-pod-A\n') };
    const bytes = udp.encode(datagram, addresses);
    expect(bytes.length).toBe(udp.encodingLength(datagram));
    expect(udp.decode(bytes, addresses)).toEqual({
      ok: true,
      value: { ...datagram, length: 29, checksum: bytes.readUInt16BE(6) },
    });
    expect(udp.decode(bytes, { ...addresses, dst: addresses.dst + 1 })).toEqual({
      ok: false,
      reason: 'bad-udp-checksum',
    });
  });

  it('sends a computed zero as 0xffff and accepts a received zero as "no checksum"', () => {
    const probe = udp.encode({ srcPort: 0, dstPort: 0, payload: Buffer.alloc(2) }, addresses);
    // Choose the payload word that makes the one's complement sum 0xffff, so the computed checksum is 0.
    const filler = probe.readUInt16BE(6);
    const bytes = udp.encode({ srcPort: 0, dstPort: 0, payload: Buffer.of(filler >> 8, filler & 0xff) }, addresses);
    expect(bytes.readUInt16BE(6)).toBe(0xffff);
    expect(udp.decode(bytes, addresses).ok).toBe(true);
    bytes.writeUInt16BE(0, 6);
    bytes[9] ^= 0xff;
    expect(udp.decode(bytes, addresses)).toMatchObject({ ok: true, value: { checksum: 0 } });
  });

  it('refuses lengths that do not fit and ignores bytes after the datagram', () => {
    const bytes = udp.encode({ srcPort: 1, dstPort: 2, payload: Buffer.alloc(4) }, addresses);
    expect(udp.decode(bytes.subarray(0, 7), addresses)).toEqual({ ok: false, reason: 'truncated' });
    expect(udp.decode(bytes.subarray(0, 11), addresses)).toEqual({ ok: false, reason: 'bad-udp-length' });
    const short = Buffer.from(bytes);
    short.writeUInt16BE(7, 4);
    expect(udp.decode(short, addresses)).toEqual({ ok: false, reason: 'bad-udp-length' });
    const padded = udp.decode(Buffer.concat([bytes, Buffer.alloc(6, 0xee)]), addresses);
    expect(padded.ok && padded.value.payload.length).toBe(4);
  });
});

describe('tcp codec', () => {
  const syn = {
    srcPort: 34786,
    dstPort: 8080,
    sequence: 0xfffffff0,
    acknowledgment: 0,
    reserved: 0,
    flags: TCP_FLAG.SYN | TCP_FLAG.ECE | TCP_FLAG.CWR,
    window: 64240,
    urgentPointer: 0,
    options: Buffer.from('020405b40402080a0000000100000000010303', 'hex'),
    payload: Buffer.alloc(0),
  };

  it('round-trips every field with options padded and a pseudo-header checksum', () => {
    const bytes = tcp.encode(syn, addresses);
    expect(bytes.length).toBe(tcp.encodingLength(syn));
    const decoded = tcp.decode(bytes, addresses);
    expect(decoded).toEqual({
      ok: true,
      value: {
        ...syn,
        options: Buffer.concat([syn.options, Buffer.alloc(1)]),
        dataOffset: 10,
        checksum: bytes.readUInt16BE(16),
      },
    });
    const withData = {
      ...syn,
      flags: TCP_FLAG.ACK | TCP_FLAG.PSH | TCP_FLAG.URG,
      urgentPointer: 3,
      reserved: 1,
      options: Buffer.alloc(0),
      payload: Buffer.from('hello'),
    };
    expect(tcp.decode(tcp.encode(withData, addresses), addresses)).toEqual({
      ok: true,
      value: { ...withData, dataOffset: 5, checksum: expect.any(Number) },
    });
  });

  it('refuses a bad data offset and a bad checksum', () => {
    const bytes = tcp.encode(syn, addresses);
    expect(tcp.decode(bytes.subarray(0, 19), addresses)).toEqual({ ok: false, reason: 'truncated' });
    expect(tcp.decode(bytes.subarray(0, 39), addresses)).toEqual({ ok: false, reason: 'bad-data-offset' });
    const tiny = Buffer.from(bytes);
    tiny[12] = 0x40;
    expect(tcp.decode(tiny, addresses)).toEqual({ ok: false, reason: 'bad-data-offset' });
    expect(tcp.decode(bytes, { ...addresses, src: 1 })).toEqual({ ok: false, reason: 'bad-tcp-checksum' });
  });

  it('finds the MSS option past NOPs and other options, and nothing in a malformed list', () => {
    expect(tcpMss(syn.options)).toBe(1460);
    expect(tcpMss(Buffer.from('0101080a00000001000000000204058c', 'hex'))).toBe(1420);
    expect(tcpMss(Buffer.from('0402', 'hex'))).toBeUndefined();
    expect(tcpMss(Buffer.from('00020405b4', 'hex'))).toBeUndefined();
    expect(tcpMss(Buffer.from('020405', 'hex'))).toBeUndefined();
    expect(tcpMss(Buffer.from('0401020405b4', 'hex'))).toBeUndefined();
    expect(tcpMss(Buffer.from('02', 'hex'))).toBeUndefined();
  });
});
