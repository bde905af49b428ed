/**
 * The BGP speaker over real TCP on the loopback (127.0.0.1-.3 stand for three nodes), and against a hand-driven peer
 * for what a well-behaved speaker never sends: silence after OPEN, garbage, a wrong AS.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { Ipv4Address, Ipv4Prefix } from '../../../src/routing/address.js';
import { BgpSpeaker, type LearnedRoute, type NeighbourConfig } from '../../../src/node/bgp/index.js';
import { BGP_ERROR_CODE, BgpFramer, bgp, type BgpMessage } from '../../../src/wire/bgp.js';

const AS = 64512;
/** Above the ephemeral range's usual start is not needed: loopback addresses differ per speaker. */
const PORT = 17900 + (process.pid % 1000);
const FAST = { connectDelayMs: 10, connectRetryMs: 50, errorWaitMs: 50, holdTime: 240 };

interface Node {
  address: Ipv4Address;
  speaker: BgpSpeaker;
  routes: LearnedRoute[];
  log: string[];
}

const running: BgpSpeaker[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(running.splice(0).map((speaker) => speaker.stop()));
});

/** The mesh rule of confd's template: the peer with the greater address string opens. */
function meshPeer(self: string, peer: string): NeighbourConfig {
  return { address: Ipv4Address.parse(peer), as: AS, type: 'node-to-node mesh', passive: peer > self };
}

async function startNode(address: string, peers: string[], timers: Partial<typeof FAST> = {}): Promise<Node> {
  const node: Node = { address: Ipv4Address.parse(address), routes: [], log: [], speaker: undefined! };
  node.speaker = new BgpSpeaker({
    address: node.address,
    routerId: node.address,
    as: AS,
    port: PORT,
    timers: { ...FAST, ...timers },
    log: (line) => node.log.push(line),
    onRoutesChanged: (routes) => {
      node.routes = [...routes];
    },
  });
  await node.speaker.listen();
  running.push(node.speaker);
  node.speaker.setNeighbours(peers.map((peer) => meshPeer(address, peer)));
  return node;
}

async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const routeText = (node: Node) =>
  node.routes.map((route) => `${route.destination} via ${route.nextHop} from ${route.from}`).sort();

const stateOf = (node: Node, peer: string) =>
  node.speaker.status().neighbours.find((neighbour) => neighbour.address === peer);

describe('a mesh of three speakers', () => {
  test('every pair reaches Established and each learns the others’ blocks with the owner as next hop', async () => {
    const a = await startNode('127.0.0.1', ['127.0.0.2', '127.0.0.3']);
    const b = await startNode('127.0.0.2', ['127.0.0.1', '127.0.0.3']);
    const c = await startNode('127.0.0.3', ['127.0.0.1', '127.0.0.2']);
    a.speaker.announce([Ipv4Prefix.parse('192.168.77.128/26')]);
    b.speaker.announce([Ipv4Prefix.parse('192.168.87.192/26')]);
    c.speaker.announce([Ipv4Prefix.parse('192.168.158.0/26'), Ipv4Prefix.parse('192.168.158.64/26')]);

    await until(() => a.routes.length === 3 && b.routes.length === 3 && c.routes.length === 2, 'the routes');
    expect(routeText(a)).toEqual([
      '192.168.158.0/26 via 127.0.0.3 from Mesh_127_0_0_3',
      '192.168.158.64/26 via 127.0.0.3 from Mesh_127_0_0_3',
      '192.168.87.192/26 via 127.0.0.2 from Mesh_127_0_0_2',
    ]);
    expect(routeText(c)).toEqual([
      '192.168.77.128/26 via 127.0.0.1 from Mesh_127_0_0_1',
      '192.168.87.192/26 via 127.0.0.2 from Mesh_127_0_0_2',
    ]);
    for (const node of [a, b, c]) {
      expect(node.speaker.status().neighbours.map((neighbour) => neighbour.state)).toEqual([
        'Established',
        'Established',
      ]);
    }
  });

  test('a block released is withdrawn at once, and one claimed is announced', async () => {
    const a = await startNode('127.0.0.1', ['127.0.0.2']);
    const b = await startNode('127.0.0.2', ['127.0.0.1']);
    b.speaker.announce([Ipv4Prefix.parse('192.168.87.192/26')]);
    await until(() => a.routes.length === 1, 'the first block');
    b.speaker.announce([Ipv4Prefix.parse('192.168.1.0/26')]);
    await until(() => routeText(a)[0]?.startsWith('192.168.1.0/26') === true, 'the new block only');
    expect(routeText(a)).toEqual(['192.168.1.0/26 via 127.0.0.2 from Mesh_127_0_0_2']);
  });

  test('the peer with the lower address waits passive: alone, it shows Passive and never connects', async () => {
    const low = await startNode('127.0.0.1', ['127.0.0.2']);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(stateOf(low, '127.0.0.2')?.state).toBe('Passive');
    const high = await startNode('127.0.0.2', ['127.0.0.1'], { connectRetryMs: 50 });
    await until(() => stateOf(high, '127.0.0.1')?.state === 'Established', 'the session');
  });

  test('the active side retries a refused connect and says why meanwhile', async () => {
    const high = await startNode('127.0.0.2', ['127.0.0.1']);
    await until(() => stateOf(high, '127.0.0.1')?.lastError === 'Socket: Connection refused', 'the refusal');
    expect(stateOf(high, '127.0.0.1')?.state).toMatch(/^(Active|Connect)$/);
    await startNode('127.0.0.1', ['127.0.0.2']);
    await until(() => stateOf(high, '127.0.0.1')?.state === 'Established', 'the retried session');
  });

  test('a clean stop sends Cease: the peer drops its routes at once and says so', async () => {
    const a = await startNode('127.0.0.1', ['127.0.0.2']);
    const b = await startNode('127.0.0.2', ['127.0.0.1']);
    b.speaker.announce([Ipv4Prefix.parse('192.168.87.192/26')]);
    await until(() => a.routes.length === 1, 'the block');
    await b.speaker.stop();
    await until(() => a.routes.length === 0, 'the withdrawal', 500);
    expect(stateOf(a, '127.0.0.2')).toMatchObject({
      state: 'Passive',
      lastError: 'Received: Administrative shutdown',
    });
  });
});

/** A peer driven by hand: it reads what the speaker sends and writes what the test wants. */
class HandPeer {
  readonly received: BgpMessage[] = [];
  private readonly framer = new BgpFramer();
  closed = false;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const bytes of this.framer.push(chunk).messages) {
        const decoded = bgp.decode(bytes, { fourOctetAs: true });
        if (decoded.ok) this.received.push(decoded.value);
      }
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  static async connect(from: string, to: string): Promise<HandPeer> {
    const socket = connect({ host: to, port: PORT, localAddress: from });
    sockets.push(socket);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new HandPeer(socket);
  }

  open(as: number, holdTime: number, routerId: string): void {
    this.socket.write(
      bgp.encode({
        type: 'open',
        myAs: as,
        holdTime,
        bgpIdentifier: Ipv4Address.parse(routerId).value,
        capabilities: [{ kind: 'four-octet-as', as }],
        parameters: [],
      }),
    );
  }

  /** OPEN, KEEPALIVE and one UPDATE announcing `block` with itself as next hop. */
  establish(address: string, block: string, holdTime: number): void {
    this.open(AS, holdTime, address);
    this.socket.write(bgp.encode({ type: 'keepalive' }));
    const prefix = Ipv4Prefix.parse(block);
    this.socket.write(
      bgp.encode(
        {
          type: 'update',
          withdrawn: [],
          attributes: { origin: 0, asPath: [], nextHop: Ipv4Address.parse(address).value, unrecognized: [] },
          nlri: [{ address: prefix.addressValue, length: prefix.length }],
        },
        { fourOctetAs: true },
      ),
    );
  }

  notification(): BgpMessage | undefined {
    return this.received.find((message) => message.type === 'notification');
  }
}

describe('a peer that misbehaves', () => {
  test('silence after OPEN: the hold timer expires, the speaker sends Hold Timer Expired and drops the routes', async () => {
    const a = await startNode('127.0.0.1', ['127.0.0.2'], { holdTime: 3 });
    const peer = await HandPeer.connect('127.0.0.2', '127.0.0.1');
    peer.establish('127.0.0.2', '192.168.87.192/26', 3);
    await until(() => a.routes.length === 1, 'the block');
    const quietSince = Date.now();
    await until(() => a.routes.length === 0, 'the hold timer', 5_000);
    expect(Date.now() - quietSince).toBeGreaterThan(2_000);
    expect(peer.notification()).toMatchObject({ code: BGP_ERROR_CODE.HOLD_TIMER_EXPIRED });
    expect(stateOf(a, '127.0.0.2')?.lastError).toBe('BGP Error: Hold timer expired');
  });

  test('garbage gets a NOTIFICATION and a reset of that session only; the others keep theirs', async () => {
    const a = await startNode('127.0.0.1', ['127.0.0.2', '127.0.0.3']);
    const c = await startNode('127.0.0.3', ['127.0.0.1']);
    c.speaker.announce([Ipv4Prefix.parse('192.168.158.0/26')]);
    await until(() => a.routes.length === 1, 'the good peer’s block');
    const peer = await HandPeer.connect('127.0.0.2', '127.0.0.1');
    peer.establish('127.0.0.2', '192.168.87.192/26', 240);
    await until(() => a.routes.length === 2, 'the bad peer’s block');
    peer.socket.write(Buffer.alloc(40, 0x42));
    await until(() => peer.closed, 'the reset');
    expect(peer.notification()).toMatchObject({ code: BGP_ERROR_CODE.MESSAGE_HEADER, subcode: 1 });
    await until(() => a.routes.length === 1, 'the bad peer’s routes to go');
    expect(routeText(a)).toEqual(['192.168.158.0/26 via 127.0.0.3 from Mesh_127_0_0_3']);
    expect(stateOf(a, '127.0.0.3')?.state).toBe('Established');
    expect(stateOf(a, '127.0.0.2')?.lastError).toBe('BGP Error: Connection not synchronized');
  });

  test('an OPEN from another AS is refused with Bad Peer AS', async () => {
    await startNode('127.0.0.1', ['127.0.0.2']);
    const peer = await HandPeer.connect('127.0.0.2', '127.0.0.1');
    peer.open(64513, 240, '127.0.0.2');
    await until(() => peer.closed, 'the refusal');
    expect(peer.notification()).toMatchObject({ code: BGP_ERROR_CODE.OPEN_MESSAGE, subcode: 2 });
  });

  test('an UPDATE with NLRI but no NEXT_HOP is refused with Missing Well-known Attribute', async () => {
    await startNode('127.0.0.1', ['127.0.0.2']);
    const peer = await HandPeer.connect('127.0.0.2', '127.0.0.1');
    peer.open(AS, 240, '127.0.0.2');
    peer.socket.write(bgp.encode({ type: 'keepalive' }));
    peer.socket.write(
      bgp.encode(
        {
          type: 'update',
          withdrawn: [],
          attributes: { origin: 0, asPath: [], unrecognized: [] },
          nlri: [{ address: Ipv4Address.parse('192.168.87.192').value, length: 26 }],
        },
        { fourOctetAs: true },
      ),
    );
    await until(() => peer.closed, 'the refusal');
    expect(peer.notification()).toMatchObject({ code: BGP_ERROR_CODE.UPDATE_MESSAGE, subcode: 3 });
  });

  test('a connection from an address that is no neighbour is closed before any OPEN', async () => {
    const a = await startNode('127.0.0.1', ['127.0.0.2']);
    const stranger = await HandPeer.connect('127.0.0.9', '127.0.0.1');
    await until(() => stranger.closed, 'the close');
    expect(stranger.received).toEqual([]);
    expect(a.log).toContain('BGP: unexpected connect from unknown address 127.0.0.9');
  });
});
