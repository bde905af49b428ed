/**
 * The packets a Linux host's own stack writes, which the node's stack and the pods' share: rebuilt byte for byte from
 * the kernel captures (test/fixtures/vectors), whichever of the two sent them.
 */
import { describe, expect, it } from 'vitest';
import {
  PORT_UNREACHABLE,
  REASSEMBLY_TIMEOUT,
  TTL_EXCEEDED,
  echoReply,
  icmpErrorPacket,
  mayAnswerWithError,
  setSource,
} from '../../../src/node/userspace/reply-stack.js';
import {
  ICMP_TYPE,
  IP_PROTOCOL,
  Ipv4View,
  icmp,
  ipv4,
  ipv4FromString,
  tcp,
  udp,
  type Parsed,
} from '../../../src/wire/index.js';
import { frameOf } from '../../support/wire-vectors.js';

const address = (text: string) => ipv4FromString(text) as number;

function valueOf<T>(result: Parsed<T>): T {
  if (!result.ok) throw new Error(result.reason);
  return result.value;
}

/** The inner packet of a captured frame, in a copy of its own so that tests may change it. */
const innerOf = (file: string, frame: number) =>
  new Ipv4View(Buffer.from(valueOf(Ipv4View.check(frameOf(file, frame))).payload));

function echoOf(request: Ipv4View) {
  const message = valueOf(icmp.decode(request.payload));
  if (message.kind !== 'echo-request') throw new Error(`${message.kind}, not an echo request`);
  return message;
}

function packet(protocol: number, payload: Buffer, extra: { moreFragments?: boolean; fragmentOffset?: number } = {}) {
  return new Ipv4View(
    ipv4.encode({
      identification: 1,
      ttl: 64,
      protocol,
      src: address('192.168.77.130'),
      dst: address('192.168.87.198'),
      payload,
      ...extra,
    }),
  );
}

describe('echoReply (icmp_reply)', () => {
  it("rebuilds node B's answer to node A's ping of its tunl0 address (node-to-pod frame 6)", () => {
    const request = innerOf('node-to-pod.pcapng', 5);
    const captured = innerOf('node-to-pod.pcapng', 6);
    expect(echoReply(request, echoOf(request), captured.identification)).toEqual(captured.packet);
  });

  it("rebuilds pod B's replies, copying every TOS ping -Q gave the request, ECN included (ecn frames 2-8)", () => {
    for (const frame of [2, 4, 6, 8]) {
      const request = innerOf('ecn.pcapng', frame - 1);
      const captured = innerOf('ecn.pcapng', frame);
      const reply = new Ipv4View(echoReply(request, echoOf(request), captured.identification));
      reply.decrementTtl(); // node B forwarded it into the tunnel
      expect(reply.packet, `frame ${frame}`).toEqual(captured.packet);
    }
  });
});

describe('icmpErrorPacket (icmp_send)', () => {
  it('rebuilds the Time Exceeded node B sent from its tunl0 address (ttl2 frame 2)', () => {
    const offending = innerOf('ttl2.pcapng', 1);
    const captured = innerOf('ttl2.pcapng', 2);
    const error = icmpErrorPacket(offending, TTL_EXCEEDED, address('192.168.87.192'), captured.identification);
    expect(error).toEqual(captured.packet);
  });

  it("rebuilds pod B's Port Unreachable, TOS 0xc0, quoting the datagram as the pod got it (udp-tcp frame 2)", () => {
    const offending = innerOf('udp-tcp.pcapng', 1);
    offending.decrementTtl(); // node B forwarded it to the pod
    const captured = innerOf('udp-tcp.pcapng', 2);
    const error = new Ipv4View(icmpErrorPacket(offending, PORT_UNREACHABLE, offending.dst, captured.identification));
    error.decrementTtl(); // and node B forwarded the error into the tunnel
    expect(error.packet).toEqual(captured.packet);
  });

  it('says which time was exceeded, and keeps ECN bit 1 of the offender as Linux 6.1 does', () => {
    const offending = packet(IP_PROTOCOL.UDP, Buffer.alloc(8));
    offending.tos = 0x03;
    offending.fillChecksum();
    const error = new Ipv4View(icmpErrorPacket(offending, REASSEMBLY_TIMEOUT, offending.dst, 7));
    expect([error.tos, error.ttl, error.dontFragment, error.identification, error.dst]).toEqual([
      0xc2,
      64,
      false,
      7,
      offending.src,
    ]);
    expect(valueOf(icmp.decode(error.payload))).toMatchObject({
      kind: 'time-exceeded',
      code: 1,
      quoted: offending.packet,
    });
  });
});

describe('mayAnswerWithError', () => {
  const icmpOf = (type: number, length = 8) => {
    const message = Buffer.alloc(length);
    message[0] = type;
    return packet(IP_PROTOCOL.ICMP, message);
  };

  it('answers about anything but ICMP, and about first fragments', () => {
    expect(mayAnswerWithError(packet(IP_PROTOCOL.UDP, Buffer.alloc(8)))).toBe(true);
    expect(mayAnswerWithError(packet(IP_PROTOCOL.TCP, Buffer.alloc(20), { moreFragments: true }))).toBe(true);
    expect(mayAnswerWithError(packet(IP_PROTOCOL.UDP, Buffer.alloc(8), { fragmentOffset: 8 }))).toBe(false);
  });

  it('never answers an ICMP error or a type the kernel does not know, judging by the type byte alone', () => {
    expect(mayAnswerWithError(icmpOf(ICMP_TYPE.ECHO_REQUEST))).toBe(true);
    expect(mayAnswerWithError(icmpOf(ICMP_TYPE.ECHO_REQUEST, 1))).toBe(true);
    expect(mayAnswerWithError(icmpOf(18))).toBe(true);
    for (const type of [3, 4, 5, 11, 12, 19, 255]) expect(mayAnswerWithError(icmpOf(type)), `type ${type}`).toBe(false);
    expect(mayAnswerWithError(packet(IP_PROTOCOL.ICMP, Buffer.alloc(0)))).toBe(false);
  });
});

describe('setSource', () => {
  const source = address('192.168.77.128');

  it('keeps the IP and the UDP/TCP checksums valid for the new source', () => {
    for (const [file, frame] of [
      ['udp-tcp.pcapng', 1],
      ['udp-tcp.pcapng', 3],
    ] as const) {
      const view = innerOf(file, frame);
      setSource(view, source);
      expect(view.src).toBe(source);
      expect(Ipv4View.check(view.buffer).ok).toBe(true);
      const pseudo = { src: source, dst: view.dst };
      const decoded =
        view.protocol === IP_PROTOCOL.UDP ? udp.decode(view.payload, pseudo) : tcp.decode(view.payload, pseudo);
      expect(decoded.ok, `${file} frame ${frame}`).toBe(true);
    }
  });

  it('leaves "no checksum", fragments past the first and a malformed segment alone', () => {
    const unchecked = packet(IP_PROTOCOL.UDP, Buffer.from('0007000700080000', 'hex'));
    setSource(unchecked, source);
    expect(unchecked.payload.toString('hex')).toBe('0007000700080000');
    const later = packet(IP_PROTOCOL.TCP, Buffer.alloc(24, 0x55), { fragmentOffset: 8 });
    setSource(later, source);
    expect(later.payload).toEqual(Buffer.alloc(24, 0x55));
    const short = packet(IP_PROTOCOL.TCP, Buffer.alloc(19, 0x55));
    setSource(short, source);
    expect(short.payload).toEqual(Buffer.alloc(19, 0x55));
    expect(Ipv4View.check(short.buffer).ok).toBe(true);
  });
});
