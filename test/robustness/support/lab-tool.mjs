/**
 * The robustness suite's tool inside the lab: copied into a node or stranger container and run there with the
 * image's Node.js (`node /tmp/lab-tool.mjs '{json}'`), because lab addresses are never reached from the host.
 * It prints one JSON line with what it did.
 *
 *   wire    sends generated packets over a raw socket (IP_HDRINCL, so the outer header is ours; the kernel fills in
 *           only the outer checksum and total length): `exact` packets whose outcome at the target agent is known,
 *           `fuzz` random and mutated ones, `flood` a mix as fast as the socket takes it for a given time.
 *   inject  the same through the agent's `POST /v1/inject` on the local unix socket (eth0, tunl0, the cali
 *           interfaces), where the agent sees exactly our bytes, outer header included.
 *   probe   `GET /v1/stats` over TCP at a fixed interval, a fresh connection each time, with latencies.
 *   abuse   concurrent bad requests to the control API; a histogram of the answers.
 *   send    given packets (hex) over the raw socket, one at a time.
 *
 * Every generator is seeded (mulberry32), so a failing run reproduces from its seed. For `exact` packets the tool
 * adds up what the target agent must count: received, delivered, forwarded, consumed, originated, drops by reason,
 * events, and rx on the pods' cali interfaces (what the pods send back, and what is injected there).
 */
import { createRequire } from 'node:module';
import http from 'node:http';

const config = JSON.parse(process.argv[2] ?? '{}');

// ---------------------------------------------------------------------------------------------- numbers and bytes

function mulberry32(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

const random = mulberry32(config.seed ?? 1);
const int = (below) => Math.floor(random() * below);
const between = (min, max) => min + int(max - min + 1);
const pick = (items) => items[int(items.length)];
const bytes = (length) => {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = int(256);
  return out;
};

function address(text) {
  const parts = text.split('.').map(Number);
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

const dotted = (value) => [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');

function checksum(buffer, offset = 0, length = buffer.length - offset, initial = 0) {
  let sum = initial;
  for (let i = 0; i + 1 < length; i += 2) sum += buffer.readUInt16BE(offset + i);
  if (length % 2 === 1) sum += buffer[offset + length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const PROTO = { ICMP: 1, IPIP: 4, TCP: 6, UDP: 17, GRE: 47 };

/**
 * An IPv4 packet. `length` overrides the total length field, `badChecksum` spoils the header checksum, `options`
 * are appended to the header (padded to 32 bits with EOL).
 */
function ipv4(p) {
  const options = p.options ?? Buffer.alloc(0);
  const optionBytes = Math.ceil(options.length / 4) * 4;
  const headerLength = 20 + optionBytes;
  const payload = p.payload ?? Buffer.alloc(0);
  const packet = Buffer.alloc(headerLength + payload.length);
  packet[0] = 0x40 | (headerLength / 4);
  packet[1] = p.tos ?? 0;
  packet.writeUInt16BE(p.length ?? packet.length, 2);
  packet.writeUInt16BE(p.id ?? int(0x10000), 4);
  packet.writeUInt16BE((p.df ? 0x4000 : 0) | (p.mf ? 0x2000 : 0) | ((p.offset ?? 0) & 0x1fff), 6);
  packet[8] = p.ttl ?? 64;
  packet[9] = p.protocol;
  packet.writeUInt32BE(p.src, 12);
  packet.writeUInt32BE(p.dst, 16);
  options.copy(packet, 20);
  payload.copy(packet, headerLength);
  packet.writeUInt16BE(checksum(packet, 0, headerLength), 10);
  if (p.badChecksum) packet.writeUInt16BE(packet.readUInt16BE(10) ^ between(1, 0xffff), 10);
  return packet;
}

function echoRequest(data = bytes(between(0, 64))) {
  const message = Buffer.alloc(8 + data.length);
  message[0] = 8;
  message.writeUInt16BE(int(0x10000), 4);
  message.writeUInt16BE(int(0x10000), 6);
  data.copy(message, 8);
  message.writeUInt16BE(checksum(message), 2);
  return message;
}

/** A UDP datagram without a checksum (0: none, which IPv4 allows). */
function udp(data = bytes(between(0, 32))) {
  const datagram = Buffer.alloc(8 + data.length);
  datagram.writeUInt16BE(between(1024, 65535), 0);
  datagram.writeUInt16BE(between(1, 65535), 2);
  datagram.writeUInt16BE(datagram.length, 4);
  data.copy(datagram, 8);
  return datagram;
}

function tcpSyn(src, dst, port) {
  const segment = Buffer.alloc(20);
  segment.writeUInt16BE(between(1024, 65535), 0);
  segment.writeUInt16BE(port, 2);
  segment.writeUInt32BE(int(0x1_0000_0000), 4);
  segment[12] = 5 << 4;
  segment[13] = 0x02;
  segment.writeUInt16BE(64240, 14);
  const pseudo = Buffer.alloc(12);
  pseudo.writeUInt32BE(src, 0);
  pseudo.writeUInt32BE(dst, 4);
  pseudo[9] = PROTO.TCP;
  pseudo.writeUInt16BE(segment.length, 10);
  segment.writeUInt16BE(checksum(Buffer.concat([pseudo, segment])), 16);
  return segment;
}

/** `inner` (any bytes) behind a valid outer header from `src` to `dst`; options are NOPs. */
function ipip(src, dst, inner, outer = {}) {
  return ipv4({ src, dst, protocol: PROTO.IPIP, payload: inner, ttl: outer.ttl ?? between(1, 255), ...outer });
}

const nops = () => Buffer.alloc(4 * between(1, 10), 0x01);

// ---------------------------------------------------------------------------------------------------- the lab

/**
 * `config.lab`: the target node (ip, tunnel, pods, a free address of its own block), the node whose source the
 * packets carry (`peer`), a third node with pods, the stranger's address and the lab network's broadcast address.
 */
const lab = config.lab && {
  target: address(config.lab.target.ip),
  targetTunnel: address(config.lab.target.tunnel),
  targetPods: config.lab.target.pods.map(address),
  blackhole: address(config.lab.target.blackhole),
  peer: address(config.lab.peer.ip),
  peerTunnel: address(config.lab.peer.tunnel),
  peerBlockFree: address(config.lab.peer.blockFree),
  thirdNode: address(config.lab.third.ip),
  thirdPods: config.lab.third.pods.map(address),
  stranger: address(config.lab.stranger),
  broadcast: address(config.lab.broadcast),
};

/** What an exact packet makes the target count. */
function outcome() {
  return { received: 0, delivered: 0, forwarded: 0, consumed: 0, originated: 0, caliRx: 0, drops: {}, events: {} };
}

function add(total, part) {
  for (const key of ['received', 'delivered', 'forwarded', 'consumed', 'originated', 'caliRx'])
    total[key] += part[key] ?? 0;
  for (const [reason, count] of Object.entries(part.drops ?? {}))
    total.drops[reason] = (total.drops[reason] ?? 0) + count;
  for (const [event, count] of Object.entries(part.events ?? {}))
    total.events[event] = (total.events[event] ?? 0) + count;
}

/** Echo request to a pod of the target, answered by the pod: the reply comes back in on its cali and goes out. */
const ANSWERED = { delivered: 1, caliRx: 1, received: 1, forwarded: 1 };
/** The target's own stack answers (echo reply, port or protocol unreachable) towards the peer's tunnel address. */
const NODE_ANSWERS = { consumed: 1, originated: 1, forwarded: 1 };
const drop = (reason, extra = {}) => ({ drops: { [reason]: 1 }, ...extra });

let fragmentId = between(1, 0xffff);

/** An echo request in two fragments; `overlap` makes the second start inside the first (the pod drops both). */
function fragmentedEcho(src, dst, overlap) {
  const message = echoRequest(bytes(between(16, 200)));
  const id = (fragmentId = (fragmentId % 0xffff) + 1);
  // At least 3: a pair sent to a remote pod is forwarded twice, and TTL 2 would end in time exceeded back here.
  const ttl = between(3, 255);
  const split = overlap ? 16 : 8 * between(1, Math.floor((message.length - 1) / 8));
  const first = ipv4({ src, dst, protocol: PROTO.ICMP, payload: message.subarray(0, split), id, mf: true, ttl });
  const secondStart = overlap ? 8 : split;
  const second = ipv4({
    src,
    dst,
    protocol: PROTO.ICMP,
    payload: message.subarray(secondStart),
    id,
    offset: secondStart / 8,
    ttl,
  });
  return [first, second];
}

/** `[packet, expected]` pairs (a category can be several packets) sent over the wire from the peer or stranger. */
function wireExact() {
  const { target, targetTunnel, targetPods, peer, peerTunnel, thirdPods } = lab;
  const pod = () => pick(targetPods);
  const echo = (src = peerTunnel, dst = pod(), extra = {}) =>
    ipv4({
      src,
      dst,
      protocol: PROTO.ICMP,
      payload: echoRequest(),
      ttl: between(2, 255),
      df: random() < 0.5,
      ...extra,
    });
  const from = (inner, outer) => ({ source: 'peer', packet: ipip(peer, target, inner, outer) });
  const categories = [
    [
      'unknown-ipip-source',
      () => [[{ source: 'stranger', packet: ipip(lab.stranger, target, echo()) }, drop('unknown-ipip-source')]],
    ],
    ['nested-ipip', () => [[from(ipip(peerTunnel, pod(), echo())), drop('nested-ipip')]]],
    [
      'inner-ipv6',
      () => {
        const inner = Buffer.concat([
          Buffer.from([0x60, 0, 0, 0, 0, 8, 58, 64]),
          bytes(32),
          echoRequest(Buffer.alloc(0)),
        ]);
        return [[from(inner), drop('not-ipv4')]];
      },
    ],
    [
      'inner-bad-ihl',
      () => {
        const inner = bytes(between(20, 80));
        inner[0] = 0x40 | int(5);
        return [[from(inner), drop('bad-ihl')]];
      },
    ],
    [
      'inner-truncated',
      () => {
        const short = random() < 0.5;
        const inner = short ? bytes(between(0, 19)) : bytes(between(20, 59));
        if (inner.length > 0) inner[0] = short ? 0x40 | between(5, 15) : 0x4f;
        return [[from(inner), drop('truncated')]];
      },
    ],
    [
      'inner-length-past-end',
      () => {
        // Longer than the bytes there are, or shorter than the header itself.
        const payload = echoRequest();
        const length = random() < 0.8 ? 20 + payload.length + between(1, 1000) : between(0, 19);
        return [
          [
            from(ipv4({ src: peerTunnel, dst: pod(), protocol: PROTO.ICMP, payload, length })),
            drop('total-length-mismatch'),
          ],
        ];
      },
    ],
    ['inner-bad-checksum', () => [[from(echo(peerTunnel, pod(), { badChecksum: true })), drop('bad-checksum')]]],
    ['ecn-ce-over-not-ect', () => [[from(echo(), { tos: 0x03 }), drop('ecn-non-ect-ce')]]],
    [
      'inner-martian-source',
      () => [
        [
          from(
            echo(pick([address('127.0.0.1'), address('0.0.0.7'), address('224.0.0.5'), address('255.255.255.255')])),
          ),
          drop('martian-source', { events: { 'asymmetric-inner-source': 1 } }),
        ],
      ],
    ],
    [
      'echo-to-pod',
      () => [[from(echo(peerTunnel, pod(), { payload: echoRequest(bytes(between(0, 1400))) })), ANSWERED]],
    ],
    ['echo-to-pod-outer-options', () => [[from(echo(), { options: nops() }), ANSWERED]]],
    [
      'fragments-to-pod',
      () => {
        const [first, second] = fragmentedEcho(peerTunnel, pod(), false);
        return [
          [from(first), { delivered: 1 }],
          [from(second), ANSWERED],
        ];
      },
    ],
    [
      'overlapping-fragments-to-pod',
      () => {
        const [first, second] = fragmentedEcho(peerTunnel, pod(), true);
        return [
          [from(first), { delivered: 1 }],
          [from(second), { delivered: 1 }],
        ];
      },
    ],
    ['to-own-blackholed-block', () => [[from(echo(peerTunnel, lab.blackhole)), drop('blackhole')]]],
    ['back-to-the-peer', () => [[from(echo(peerTunnel, lab.peerBlockFree)), drop('routing-loop')]]],
    [
      'ttl-1-to-remote-pod',
      () => [
        [from(echo(peerTunnel, pick(thirdPods), { ttl: 1 })), drop('ttl-expired', { originated: 1, forwarded: 1 })],
      ],
    ],
    [
      'forward-to-remote-pod',
      () => [[from(echo(peerTunnel, pick(thirdPods), { ttl: between(3, 255) })), { forwarded: 1 }]],
    ],
    [
      'echo-to-node',
      () => [[from(echo(peerTunnel, pick([target, targetTunnel]), { ttl: between(0, 255) })), NODE_ANSWERS]],
    ],
    [
      'udp-to-node',
      () => [[from(ipv4({ src: peerTunnel, dst: target, protocol: PROTO.UDP, payload: udp() })), NODE_ANSWERS]],
    ],
    [
      'gre-to-node',
      () => [
        [from(ipv4({ src: peerTunnel, dst: targetTunnel, protocol: PROTO.GRE, payload: bytes(8) })), NODE_ANSWERS],
      ],
    ],
    [
      'tcp-to-node',
      () => [
        [
          from(ipv4({ src: peerTunnel, dst: target, protocol: PROTO.TCP, payload: tcpSyn(peerTunnel, target, 9440) })),
          drop('tcp-to-node'),
        ],
      ],
    ],
    [
      'no-route',
      () => [[from(echo(peerTunnel, address('8.8.8.8'))), drop('no-route', { originated: 1, forwarded: 1 })]],
    ],
    // Counted as an event and delivered, as Calico and the kernel do; the reply goes to the third node's pod.
    [
      'asymmetric-inner-source',
      () => [[from(echo(pick(thirdPods), pod())), { ...ANSWERED, events: { 'asymmetric-inner-source': 1 } }]],
    ],
  ];
  return categories;
}

/** Every packet that arrives on eth0 is received; the rest of its outcome comes from its category. */
function arrival(expected) {
  return { ...expected, received: (expected.received ?? 0) + 1 };
}

// -------------------------------------------------------------------------------------------------- mutations

function interestingAddresses() {
  return [
    lab.target,
    lab.targetTunnel,
    ...lab.targetPods,
    lab.blackhole,
    lab.peer,
    lab.peerTunnel,
    lab.peerBlockFree,
    lab.thirdNode,
    ...lab.thirdPods,
    lab.stranger,
    lab.broadcast,
    address('8.8.8.8'),
    address('127.0.0.1'),
    address('0.0.0.0'),
    address('224.0.0.1'),
    address('255.255.255.255'),
  ];
}

/** Fixes the IPv4 header checksum at `at` when the header fits. */
function fixChecksum(packet, at) {
  if (packet.length < at + 20) return;
  const headerLength = (packet[at] & 0x0f) * 4;
  if (headerLength < 20 || at + headerLength > packet.length) return;
  packet.writeUInt16BE(0, at + 10);
  packet.writeUInt16BE(checksum(packet, at, headerLength), at + 10);
}

/** Bit flips in the first 64 bytes, truncation, junk appended, addresses swapped, checksums fixed or not. */
function mutate(source) {
  let packet = Buffer.from(source);
  for (let flips = int(5); flips > 0 && packet.length > 0; flips--) {
    packet[int(Math.min(packet.length, 64))] ^= 1 << int(8);
  }
  if (random() < 0.2) packet = packet.subarray(0, int(packet.length + 1));
  if (random() < 0.1) packet = Buffer.concat([packet, bytes(int(40))]);
  if (random() < 0.3 && packet.length >= 20) {
    const interesting = interestingAddresses();
    packet.writeUInt32BE(pick(interesting), 12);
    packet.writeUInt32BE(pick(interesting), 16);
  }
  if (random() < 0.1 && packet.length >= 20) packet[9] = pick([0, 1, 4, 6, 17, 41, 47, 255]);
  if (random() < 0.1 && packet.length >= 20) packet.writeUInt16BE(int(0x10000), 6);
  if (random() < 0.6) fixChecksum(packet, 0);
  return packet;
}

/** A random inner packet: pure junk, or a mutated exact one. */
function fuzzInner(categories) {
  if (random() < 0.15) return bytes(int(120));
  const [{ packet }] = pick(categories)[1]()[0];
  const headerLength = (packet[0] & 0x0f) * 4;
  return mutate(packet.subarray(headerLength));
}

// ------------------------------------------------------------------------------------------------ the raw socket

function rawSocket() {
  const raw = createRequire('/app/')('raw-socket');
  // IPPROTO_RAW: send-only, implies IP_HDRINCL, and never receives, so return traffic costs the sender nothing.
  const socket = raw.createSocket({ protocol: 255 });
  socket.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
  return socket;
}

/**
 * Sends what `next()` returns (undefined: done) with at most `window` sends in flight and, when `pps` is set, no
 * faster than that. Resolves with the counts.
 */
function pump(next, { window = 64, pps }) {
  const socket = rawSocket();
  let inFlight = 0;
  let sent = 0;
  let errors = 0;
  let finished = false;
  const started = performance.now();
  const errorSamples = new Set();
  return new Promise((resolve) => {
    const done = () => {
      if (!finished || inFlight > 0) return;
      socket.close();
      const seconds = (performance.now() - started) / 1000;
      resolve({ sent, errors, seconds, pps: Math.round(sent / seconds), errorSamples: [...errorSamples].slice(0, 5) });
    };
    const tick = () => {
      const allowance =
        pps === undefined ? Infinity : Math.floor(((performance.now() - started) / 1000) * pps) - sent - errors;
      let budget = allowance;
      while (!finished && inFlight < window && budget > 0) {
        const item = next();
        if (item === undefined) {
          finished = true;
          break;
        }
        budget--;
        inFlight++;
        socket.send(item.packet, 0, item.packet.length, item.to, (error) => {
          inFlight--;
          if (error) {
            errors++;
            errorSamples.add(error.message);
          } else {
            sent++;
            item.onSent?.();
          }
          if (pps === undefined) tick();
          done();
        });
      }
      if (!finished && pps !== undefined) setTimeout(tick, 2);
      done();
    };
    tick();
  });
}

// ------------------------------------------------------------------------------------------------------ modes

async function wire() {
  const categories = wireExact();
  const expected = outcome();
  const byCategory = {};
  const sources = new Set(config.sources ?? ['peer', 'stranger']);
  const to = dotted(lab.target);
  let remaining = config.count;
  let queue = [];
  const deadline = config.seconds === undefined ? Infinity : performance.now() + config.seconds * 1000;

  const next = () => {
    while (queue.length === 0) {
      if (remaining <= 0 || performance.now() >= deadline) return undefined;
      queue = generate();
    }
    remaining--;
    return queue.shift();
  };

  const generate = () => {
    if (config.plan === 'exact') {
      const [name, make] = pick(categories);
      const pairs = make();
      if (!pairs.every(([item]) => sources.has(item.source))) return [];
      return pairs.map(([item, outcomeOf]) => ({
        to,
        packet: item.packet,
        onSent: () => {
          add(expected, arrival(outcomeOf));
          byCategory[name] = (byCategory[name] ?? 0) + 1;
        },
      }));
    }
    if (config.plan === 'flood') {
      const [name, make] = pick(config.floodCategories.map((wanted) => categories.find(([n]) => n === wanted)));
      return make().map(([item]) => ({
        to,
        packet: item.packet,
        onSent: () => (byCategory[name] = (byCategory[name] ?? 0) + 1),
      }));
    }
    // fuzz: a mutated or random inner packet behind a valid outer header, sometimes with outer options or ECN.
    const source = pick([...sources]);
    const outer = {
      tos: random() < 0.1 ? int(256) : 0,
      options: random() < 0.1 ? nops() : undefined,
      df: random() < 0.5,
    };
    // Within eth0's MTU: the sending kernel refuses bigger ones (EMSGSIZE) rather than let them reach the agent.
    const inner = fuzzInner(categories).subarray(0, 1500 - 20 - (outer.options?.length ?? 0));
    const packet = ipip(source === 'stranger' ? lab.stranger : lab.peer, lab.target, inner, outer);
    return [
      { to, packet, onSent: () => (byCategory[`fuzz-from-${source}`] = (byCategory[`fuzz-from-${source}`] ?? 0) + 1) },
    ];
  };

  const result = await pump(next, { window: config.window ?? 64, pps: config.pps });
  return { ...result, byCategory, expected: config.plan === 'exact' ? expected : undefined };
}

/** Injected packets: outer-header mischief on eth0, decapsulated ones on tunl0, pod-side ones on a cali interface. */
function injectExact() {
  const { target, targetTunnel, targetPods, peer, peerTunnel, thirdPods, stranger } = lab;
  const cali = config.lab.target.interfaces;
  const echo = (src = peerTunnel, dst = pick(targetPods), extra = {}) =>
    ipv4({ src, dst, protocol: PROTO.ICMP, payload: echoRequest(), ttl: between(2, 255), ...extra });
  const validIpip = (inner = echo(), outer = {}) => ipip(peer, target, inner, outer);
  const eth0 = (packet, expected) => [{ interface: 'eth0', packet }, expected];
  const received = (expected) => ({ ...expected, received: (expected.received ?? 0) + 1 });
  /** The pod at index `i` as the sender: the packet is injected on its cali interface. */
  const fromPod = (i, packet, expected) => [
    { interface: cali[i], packet },
    { ...expected, caliRx: 1 },
  ];
  return [
    [
      'eth0-truncated',
      () => {
        const packet = random() < 0.5 ? bytes(between(1, 19)) : bytes(between(20, 59));
        packet[0] = packet.length < 20 ? 0x40 | between(5, 15) : 0x4f;
        return [eth0(packet, received(drop('truncated')))];
      },
    ],
    [
      'eth0-bad-ihl',
      () => {
        const packet = validIpip();
        packet[0] = 0x40 | int(5);
        return [eth0(packet, received(drop('bad-ihl')))];
      },
    ],
    [
      'eth0-ipv6',
      () => {
        const packet = Buffer.concat([Buffer.from([0x60, 0, 0, 0, 0, 20, 4, 64]), bytes(32), echo()]);
        return [eth0(packet, received(drop('not-ipv4')))];
      },
    ],
    [
      'eth0-not-version-4',
      () => {
        const packet = validIpip();
        packet[0] = (pick([0, 1, 2, 3, 5, 6, 7, 8, 15]) << 4) | (packet[0] & 0x0f);
        return [eth0(packet, received(drop('not-ipv4')))];
      },
    ],
    [
      'eth0-options-bad-checksum',
      () => [
        eth0(
          validIpip(echo(), { options: bytes(4 * between(1, 10)), badChecksum: true }),
          received(drop('bad-checksum')),
        ),
      ],
    ],
    [
      'eth0-length-past-end',
      () => {
        const inner = echo();
        return [
          eth0(
            ipip(peer, target, inner, { length: 20 + inner.length + between(1, 2000) }),
            received(drop('total-length-mismatch')),
          ),
        ];
      },
    ],
    ['eth0-bad-checksum', () => [eth0(validIpip(echo(), { badChecksum: true }), received(drop('bad-checksum')))]],
    [
      'eth0-not-ipip',
      () => [
        eth0(
          ipv4({
            src: peer,
            dst: target,
            protocol: pick([PROTO.ICMP, PROTO.TCP, PROTO.UDP, PROTO.GRE]),
            payload: bytes(20),
          }),
          received(drop('not-ipip')),
        ),
      ],
    ],
    ['eth0-not-for-this-node', () => [eth0(ipip(peer, lab.thirdNode, echo()), received(drop('not-for-this-node')))]],
    [
      'eth0-outer-fragment',
      () => {
        const more = random() < 0.5;
        return [
          eth0(
            validIpip(echo(), { mf: more, offset: more ? int(100) : between(1, 100) }),
            received(drop('outer-fragment')),
          ),
        ];
      },
    ],
    ['eth0-unknown-ipip-source', () => [eth0(ipip(stranger, target, echo()), received(drop('unknown-ipip-source')))]],
    [
      'eth0-martian-outer-source',
      () => [
        eth0(
          ipip(
            pick([address('127.0.0.1'), address('0.0.0.0'), address('224.0.0.5'), lab.broadcast, target]),
            target,
            echo(),
          ),
          received(drop('martian-source')),
        ),
      ],
    ],
    [
      'eth0-nested-ipip',
      () => [eth0(validIpip(ipip(peerTunnel, pick(targetPods), echo())), received(drop('nested-ipip')))],
    ],
    ['eth0-echo-to-pod-outer-options', () => [eth0(validIpip(echo(), { options: nops() }), received(ANSWERED))]],
    ['tunl0-echo-to-pod', () => [[{ interface: 'tunl0', packet: echo() }, received(ANSWERED)]]],
    [
      'tunl0-bad-checksum',
      () => [
        [
          { interface: 'tunl0', packet: echo(peerTunnel, pick(targetPods), { badChecksum: true }) },
          received(drop('bad-checksum')),
        ],
      ],
    ],
    [
      'pod-spoofed-source',
      () => {
        const i = int(cali.length);
        const foreign = pick([
          ...targetPods.filter((_, j) => j !== i),
          ...thirdPods,
          peerTunnel,
          address('192.168.87.250'),
          address('8.8.8.8'),
        ]);
        return [fromPod(i, echo(foreign, pick(thirdPods)), received(drop('spoofed-source')))];
      },
    ],
    [
      'pod-truncated',
      () => [fromPod(int(cali.length), Buffer.from([0x45, ...bytes(between(0, 18))]), received(drop('truncated')))],
    ],
    [
      'pod-bad-checksum',
      () => {
        const i = int(cali.length);
        return [
          fromPod(i, echo(targetPods[i], pick(thirdPods), { badChecksum: true }), received(drop('bad-checksum'))),
        ];
      },
    ],
    [
      'pod-to-blackholed-block',
      () => {
        const i = int(cali.length);
        return [fromPod(i, echo(targetPods[i], lab.blackhole), received(drop('blackhole')))];
      },
    ],
    [
      'pod-ttl-1-to-remote-pod',
      () => {
        const i = int(cali.length);
        // Time exceeded from the node back to the pod: originated, delivered.
        return [
          fromPod(
            i,
            echo(targetPods[i], pick(thirdPods), { ttl: 1 }),
            received(drop('ttl-expired', { originated: 1, delivered: 1 })),
          ),
        ];
      },
    ],
    [
      'pod-to-node',
      () => {
        const i = int(cali.length);
        return [
          fromPod(
            i,
            echo(targetPods[i], pick([target, targetTunnel])),
            received({ consumed: 1, originated: 1, delivered: 1 }),
          ),
        ];
      },
    ],
    [
      'pod-no-route',
      () => {
        const i = int(cali.length);
        return [
          fromPod(
            i,
            echo(targetPods[i], address('8.8.8.8')),
            received(drop('no-route', { originated: 1, delivered: 1 })),
          ),
        ];
      },
    ],
    [
      'pod-overlapping-fragments-to-remote-pod',
      () => {
        const i = int(cali.length);
        const [first, second] = fragmentedEcho(targetPods[i], pick(thirdPods), true);
        return [fromPod(i, first, received({ forwarded: 1 })), fromPod(i, second, received({ forwarded: 1 }))];
      },
    ],
  ];
}

/** Keep-alive POSTs to the local agent's unix socket, `concurrency` at a time. */
async function postAll(items, concurrency) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const statuses = {};
  const failures = new Set();
  let index = 0;
  const one = (item) =>
    new Promise((resolve) => {
      const body = JSON.stringify({ interface: item.interface, packet: item.packet.toString('base64') });
      const request = http.request(
        {
          socketPath: config.socketPath ?? '/run/ipip-lab/agent.sock',
          path: '/v1/inject',
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (response) => {
          const chunks = [];
          response.on('data', (chunk) => chunks.push(chunk));
          response.on('end', () => {
            statuses[response.statusCode] = (statuses[response.statusCode] ?? 0) + 1;
            if (response.statusCode !== 200)
              failures.add(`${response.statusCode} ${Buffer.concat(chunks).toString().trim()}`);
            else item.onDone?.();
            resolve();
          });
        },
      );
      request.on('error', (error) => {
        statuses.error = (statuses.error ?? 0) + 1;
        failures.add(error.message);
        resolve();
      });
      request.end(body);
    });
  const worker = async () => {
    while (true) {
      const item = items();
      if (item === undefined) return;
      index++;
      await one(item);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  const seconds = (performance.now() - started) / 1000;
  return { requests: index, statuses, failures: [...failures].slice(0, 5), seconds, rate: Math.round(index / seconds) };
}

async function inject() {
  const categories = injectExact();
  const expected = outcome();
  const byCategory = {};
  let remaining = config.count;
  let queue = [];
  const interfaces = ['eth0', 'tunl0', ...config.lab.target.interfaces];
  const generate = () => {
    const [name, make] = pick(categories);
    if (config.plan === 'exact') {
      return make().map(([item, outcomeOf]) => ({
        ...item,
        onDone: () => {
          add(expected, outcomeOf);
          byCategory[name] = (byCategory[name] ?? 0) + 1;
        },
      }));
    }
    // fuzz: a mutated exact packet, or junk, on any interface; never empty (the API refuses an empty packet).
    const [[{ packet }]] = make();
    let fuzzed = random() < 0.15 ? bytes(between(1, 120)) : mutate(packet);
    if (fuzzed.length === 0) fuzzed = bytes(1);
    const where = pick(interfaces);
    const kind = `fuzz-${where.startsWith('cali') ? 'cali' : where}`;
    return [{ interface: where, packet: fuzzed, onDone: () => (byCategory[kind] = (byCategory[kind] ?? 0) + 1) }];
  };
  const items = () => {
    while (queue.length === 0) {
      if (remaining <= 0) return undefined;
      queue = generate();
    }
    remaining--;
    return queue.shift();
  };
  const result = await postAll(items, config.concurrency ?? 8);
  return { ...result, byCategory, expected: config.plan === 'exact' ? expected : undefined };
}

async function probe() {
  const latencies = [];
  const errors = new Set();
  let failed = 0;
  const started = performance.now();
  while (performance.now() - started < config.seconds * 1000) {
    const begin = performance.now();
    try {
      await new Promise((resolve, reject) => {
        const request = http.get(
          {
            host: config.host,
            port: config.port ?? 9440,
            path: config.path ?? '/v1/stats',
            agent: false,
            timeout: 5_000,
          },
          (response) => {
            response.resume();
            response.on('end', () =>
              response.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${response.statusCode}`)),
            );
          },
        );
        request.on('error', reject);
        request.on('timeout', () => request.destroy(new Error('timed out after 5 s')));
      });
      latencies.push(performance.now() - begin);
    } catch (error) {
      failed++;
      errors.add(error.message);
    }
    await new Promise((resolve) => setTimeout(resolve, config.intervalMs ?? 20));
  }
  latencies.sort((a, b) => a - b);
  const quantile = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? null;
  return {
    requests: latencies.length + failed,
    failed,
    errors: [...errors],
    p50: quantile(0.5),
    p99: quantile(0.99),
    max: latencies.at(-1) ?? null,
  };
}

/** One raw HTTP exchange on a fresh connection: whatever bytes we like, the status line and body that come back. */
function rawExchange(text, body) {
  return new Promise((resolve) => {
    const target = config.socketPath ? { path: config.socketPath } : { host: config.host, port: config.port ?? 9440 };
    const socket = new (createRequire(import.meta.url)('node:net').Socket)();
    const chunks = [];
    let settled = false;
    const finish = (value) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(10_000, () => finish({ status: 'timeout' }));
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      const reply = Buffer.concat(chunks).toString('latin1');
      const head = reply.indexOf('\r\n\r\n');
      if (head < 0) return;
      const length = /content-length: *(\d+)/i.exec(reply.slice(0, head));
      if (length && reply.length - head - 4 >= Number(length[1])) {
        finish({
          status: Number(reply.split(' ')[1]),
          body: reply.slice(head + 4),
          contentType: /content-type: *([^\r]+)/i.exec(reply)?.[1],
        });
      }
    });
    // The server may answer (413) and close while we are still writing: what it sent before the reset counts.
    const closed = (why) => {
      const reply = Buffer.concat(chunks).toString('latin1');
      finish(
        reply
          ? { status: Number(reply.split(' ')[1]) || 'garbled', body: reply.slice(reply.indexOf('\r\n\r\n') + 4) }
          : { status: why },
      );
    };
    socket.on('error', () => closed('error'));
    socket.on('close', () => closed('closed'));
    socket.connect(target, () => {
      // The whole request in one write, so the server never answers before it has seen all of it.
      const whole = Buffer.from(text + (body ?? ''), 'latin1');
      if (body) socket.end(whole);
      else socket.write(whole);
    });
  });
}

/**
 * A request through node:http, for bodies too large to send in one write: the server answers 413 once it has read
 * 64 KiB and closes, and a client must read that answer while it is still writing, as node:http (and the CLI) do.
 */
function httpExchange({ method, path, headers, chunks }) {
  return new Promise((resolve) => {
    const target = config.socketPath
      ? { socketPath: config.socketPath }
      : { host: config.host, port: config.port ?? 9440 };
    const request = http.request({ ...target, method, path, headers, agent: false, timeout: 10_000 }, (response) => {
      const body = [];
      response.on('data', (chunk) => body.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode, body: Buffer.concat(body).toString() }));
      response.on('error', () => resolve({ status: response.statusCode, body: Buffer.concat(body).toString() }));
    });
    request.on('timeout', () => request.destroy(new Error('timeout')));
    request.on('error', (error) => resolve({ status: 'error', body: error.message }));
    for (const chunk of chunks) request.write(chunk);
    request.end();
  });
}

/** Bad requests of every kind the suite knows, `rounds` times each, `concurrency` at a time. */
async function abuse() {
  const json = (method, path, value) => {
    const body = typeof value === 'string' ? value : JSON.stringify(value);
    if (body.length > 16 * 1024) {
      return {
        method,
        path,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        chunks: [body],
      };
    }
    return [
      `${method} ${path} HTTP/1.1\r\nhost: agent\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n`,
      body,
    ];
  };
  const huge = 'x'.repeat(300 * 1024);
  /** The CLI's pod tools and inject: their JSON handling is what the messages below are checked on. */
  const TOOLS = ['/v1/ping', '/v1/inject', '/v1/curl', '/v1/traceroute'];
  const BAD_JSON = ['{', '{"from":', 'nul', '{"a":1}}', '\u0000\u0001', '[', '"x'];
  const NOT_OBJECTS = ['[1,2]', '"ping"', '42', 'true', 'null'];
  const writeRoutes = config.writeRoutes ?? TOOLS.map((path) => ({ method: 'POST', path }));
  const has = (method, path) => writeRoutes.some((route) => route.method === method && route.path === path);
  const cases = [
    ['unknown route', () => json('GET', `/v1/${bytes(6).toString('hex')}`, '')],
    ['unknown version', () => json('GET', '/v2/stats', '')],
    ['root', () => json('GET', '/', '')],
    [
      'wrong method',
      () =>
        json(
          pick(['PUT', 'PATCH', 'DELETE', 'POST']),
          pick(['/v1/node', '/v1/stats', '/v1/spec', '/v1/cluster', '/v1/dataplane']),
          '{}',
        ),
    ],
    [
      'write to read-only state',
      () =>
        json(pick(['PUT', 'POST', 'PATCH']), pick(config.readOnlyPaths ?? ['/v1/routes', '/v1/pods', '/v1/config']), {
          nodes: [],
        }),
    ],
    ['bad JSON', () => json('POST', pick(TOOLS), pick(BAD_JSON))],
    ['JSON that is not an object', () => json('POST', pick(TOOLS), pick(NOT_OBJECTS))],
    ['oversized body', () => json('POST', pick(TOOLS), `{"packet":"${huge}"}`)],
    // Every write route the API has, whoever added it: bad bodies are refused there too.
    [
      'bad bodies on every write route',
      () => {
        const route = pick(writeRoutes);
        const path = route.path.replace('*', String(between(100000, 999999)));
        return json(route.method, path, pick([...BAD_JSON, ...NOT_OBJECTS, `{"x":"${huge}"}`]));
      },
    ],
    [
      'wrong types: ping',
      () =>
        json('POST', '/v1/ping', {
          from: pick([1, [], {}, true, '']),
          to: pick([1, null, [], 'nowhere', '300.1.1.1']),
          count: pick(['4', -1, 1.5, 1e9, {}]),
        }),
    ],
    [
      'wrong ranges: ping',
      () =>
        json('POST', '/v1/ping', {
          from: config.pod,
          to: config.podIp,
          count: pick([0, 101, 1e6]),
          intervalMs: pick([0, 1, 1e7]),
        }),
    ],
    [
      'wrong types: curl',
      () =>
        json('POST', '/v1/curl', {
          from: config.pod,
          url: pick([42, [], '', { href: 'http://x/' }]),
          timeoutMs: pick(['1', -5, 1e9]),
        }),
    ],
    [
      'wrong types: traceroute',
      () => json('POST', '/v1/traceroute', { from: config.pod, to: config.podIp, maxHops: pick([0, 256, 'x', 2.5]) }),
    ],
    [
      'wrong types: inject',
      () =>
        json('POST', '/v1/inject', {
          interface: pick([1, '', 'eth9', 'lo', '../../etc/passwd', null]),
          packet: pick(['', '!!!', 5, 'RQ==']),
        }),
    ],
    [
      'bad base64',
      () => json('POST', '/v1/inject', { interface: 'eth0', packet: pick(['%%%%', 'RQ=', 'R Q==x', '====']) }),
    ],
    ...(has('POST', '/v1/taps')
      ? [
          [
            'wrong types: taps',
            () =>
              json('POST', '/v1/taps', {
                interfaces: pick(['eth0', [1], ['nope'], {}]),
                maxPackets: pick([0, -1, 'many', 1e9]),
              }),
          ],
        ]
      : []),
    ...(has('DELETE', '/v1/taps/*')
      ? [['no such tap', () => json('DELETE', `/v1/taps/${pick(['999999', '%E0%A4%A', 'x', '..%2F..%2Fetc'])}`, '')]]
      : []),
    ['bad URL escape', () => json('GET', pick(['/v1/%E0%A4%A', '/v1/%', '/%zz']), '')],
    ['garbage request line', () => [`${bytes(40).toString('latin1')}\r\n\r\n`, '']],
    [
      'header overflow',
      () => [`GET /v1/stats HTTP/1.1\r\nhost: agent\r\nx: ${'a'.repeat(20_000)}\r\n${'y: b\r\n'.repeat(2000)}\r\n`, ''],
    ],
    ['no Host header', () => [`GET /v1/stats HTTP/1.1\r\nconnection: close\r\n\r\n`, '']],
    // Ten bytes promised, six sent, then the client hangs up.
    [
      'lying content-length',
      () => [
        `POST /v1/inject HTTP/1.1\r\nhost: agent\r\ncontent-length: 10\r\ncontent-type: application/json\r\n\r\n`,
        '{"a":',
      ],
    ],
    // No content-length: node:http sends the pieces chunked.
    [
      'chunked oversized body',
      () => ({
        method: 'POST',
        path: pick(TOOLS),
        headers: { 'content-type': 'application/json' },
        chunks: Array(4).fill('y'.repeat(32 * 1024)),
      }),
    ],
  ];
  const histogram = {};
  const unexpected = [];
  const messages = {};
  const jobs = [];
  for (let round = 0; round < (config.rounds ?? 10); round++) for (const [name, make] of cases) jobs.push([name, make]);
  let index = 0;
  const worker = async () => {
    while (index < jobs.length) {
      const [name, make] = jobs[index++];
      const request = make();
      const reply = Array.isArray(request) ? await rawExchange(...request) : await httpExchange(request);
      const key = `${name}: ${reply.status}`;
      histogram[key] = (histogram[key] ?? 0) + 1;
      // A timeout or lying length may end with no answer at all (the server waits, then closes): never a 2xx or 5xx.
      const status = typeof reply.status === 'number' ? reply.status : 0;
      let error;
      try {
        error = JSON.parse(reply.body ?? '').error;
      } catch {
        error = undefined;
      }
      if (status >= 400 && status < 500) {
        messages[name] ??= error ?? reply.body?.slice(0, 120);
        // Node's HTTP parser answers these itself, before the API sees a request.
        const jsonExpected = ![
          'garbage request line',
          'header overflow',
          'no Host header',
          'lying content-length',
        ].includes(name);
        if (jsonExpected && (typeof error !== 'string' || error.length < 8))
          unexpected.push(`${name}: ${status} without a JSON error (${reply.body?.slice(0, 80)})`);
      } else if (!(name === 'lying content-length' && (reply.status === 'timeout' || reply.status === 'closed'))) {
        unexpected.push(`${name}: ${reply.status} ${reply.body?.slice(0, 160)}`);
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: config.concurrency ?? 50 }, worker));
  return {
    requests: jobs.length,
    seconds: (performance.now() - started) / 1000,
    histogram,
    messages,
    unexpected: unexpected.slice(0, 20),
    unexpectedCount: unexpected.length,
  };
}

/** Given packets (hex), one at a time: for the spoofing tests' single packets from a node or the stranger. */
async function send() {
  const items = config.packets.map((hex) => ({ to: config.to, packet: Buffer.from(hex, 'hex') }));
  return pump(() => items.shift(), { window: 1 });
}

const modes = { wire, inject, probe, abuse, send };
const run = modes[config.mode];
if (!run) {
  console.error(`unknown mode ${JSON.stringify(config.mode)} (modes: ${Object.keys(modes).join(', ')})`);
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(await run())}\n`);
