/**
 * The BGP speaker over real TCP on the loopback (127.0.0.1-.3 stand for three nodes), and against a hand-driven peer
 * for what a well-behaved speaker never sends: silence after OPEN, garbage, a wrong AS.
 */
import { readFileSync } from 'node:fs';
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
  return startSpeaker(
    address,
    peers.map((peer) => meshPeer(address, peer)),
    timers,
  );
}

/** BIRD's `rr cluster id 244.0.0.1`, as a route reflector node's `spec.bgp.routeReflectorClusterID` makes it. */
const CLUSTER = Ipv4Address.parse('244.0.0.1').value;

/** A Node_ peer as confd writes one for a BGPPeer: both sides open; a reflector marks its clients. */
function selectedPeer(peer: string, client = false): NeighbourConfig {
  return {
    address: Ipv4Address.parse(peer),
    as: AS,
    type: 'node specific',
    passive: false,
    ...(client && { reflectorClient: { clusterId: CLUSTER } }),
  };
}

async function startSpeaker(
  address: string,
  neighbours: NeighbourConfig[],
  timers: Partial<typeof FAST> = {},
): Promise<Node> {
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
  node.speaker.setNeighbours(neighbours);
  return node;
}

async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Established TCP connections between two loopback addresses on the BGP port, from /proc/net/tcp. */
function establishedConnections(first: string, second: string): string[] {
  const endpoint = (hex: string) => {
    const [address, port] = hex.split(':');
    const bytes = Buffer.from(address, 'hex').reverse();
    return { address: [...bytes].join('.'), port: parseInt(port, 16) };
  };
  const ESTABLISHED = '01';
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[3] === ESTABLISHED)
    .map((fields) => [endpoint(fields[1]), endpoint(fields[2])])
    .filter(([local, remote]) => remote.port === PORT && [first, second].includes(local.address))
    .filter(([local, remote]) => [first, second].includes(remote.address) && local.address !== remote.address)
    .map(([local, remote]) => `${local.address}:* -> ${remote.address}:${remote.port}`);
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

  test('a new local AS on both sides restarts the session with Cease (Other Configuration Change) and it comes back', async () => {
    const a = await startNode('127.0.0.1', ['127.0.0.2']);
    const b = await startNode('127.0.0.2', ['127.0.0.1']);
    b.speaker.announce([Ipv4Prefix.parse('192.168.87.192/26')]);
    await until(() => a.routes.length === 1, 'the block');
    const moved = (self: string, peer: string) => [{ ...meshPeer(self, peer), as: 64513 }];
    b.speaker.setNeighbours(moved('127.0.0.2', '127.0.0.1'), 64513);
    // The other side still expects 64512: the reconnect is refused until it moves too.
    await until(() => stateOf(a, '127.0.0.2')?.state !== 'Established', 'the restart');
    expect(b.log.join('\n')).toMatch(/Other configuration change/);
    a.speaker.setNeighbours(moved('127.0.0.1', '127.0.0.2'), 64513);
    await until(
      () => stateOf(a, '127.0.0.2')?.state === 'Established' && a.routes.length === 1,
      'the session in 64513',
    );
    expect([a.speaker.status().as, b.speaker.as]).toEqual([64513, 64513]);
  });

  test("lists its neighbours in the order last given, as BIRD lists bird.cfg's protocols", async () => {
    const a = await startNode('127.0.0.1', ['127.0.0.3', '127.0.0.2']);
    a.speaker.setNeighbours([meshPeer('127.0.0.1', '127.0.0.2'), meshPeer('127.0.0.1', '127.0.0.3')]);
    expect(a.speaker.status().neighbours.map((neighbour) => neighbour.address)).toEqual(['127.0.0.2', '127.0.0.3']);
    a.speaker.setNeighbours([
      { ...meshPeer('127.0.0.1', '127.0.0.4'), type: 'global' },
      meshPeer('127.0.0.1', '127.0.0.3'),
      meshPeer('127.0.0.1', '127.0.0.2'),
    ]);
    expect(a.speaker.status().neighbours.map((neighbour) => neighbour.address)).toEqual([
      '127.0.0.4',
      '127.0.0.3',
      '127.0.0.2',
    ]);
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

describe('both sides opening (Node_ and Global_ peers)', () => {
  test('crossing connections leave one session, the one opened by the higher BGP identifier, and it stays up', async () => {
    // Configured in one turn of the event loop, both connect in one: each side's connection finds the other's opening.
    const a = await startSpeaker('127.0.0.1', []);
    const b = await startSpeaker('127.0.0.2', []);
    a.speaker.setNeighbours([selectedPeer('127.0.0.2')]);
    b.speaker.setNeighbours([selectedPeer('127.0.0.1')]);
    a.speaker.announce([Ipv4Prefix.parse('192.168.77.128/26')]);
    b.speaker.announce([Ipv4Prefix.parse('192.168.87.192/26')]);
    await until(() => a.routes.length === 1 && b.routes.length === 1, 'the routes');
    // Several connect retries' worth of time: a collision that is not resolved flaps the session.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(stateOf(a, '127.0.0.2')?.state).toBe('Established');
    expect(stateOf(b, '127.0.0.1')?.state).toBe('Established');
    expect(a.log.filter((line) => line.includes('established'))).toEqual(['Node_127_0_0_2: BGP session established']);
    expect(b.log.filter((line) => line.includes('closed'))).toEqual([]);
    // The kernel's own table: one connection between the two, from 127.0.0.2 (the higher identifier) to a's port.
    expect(establishedConnections('127.0.0.1', '127.0.0.2')).toEqual([`127.0.0.2:* -> 127.0.0.1:${PORT}`]);
  });
});

describe('route reflection (RFC 4456)', () => {
  test('a reflector passes each client’s block to the other clients, next hop unchanged', async () => {
    const reflector = await startSpeaker('127.0.0.1', [
      selectedPeer('127.0.0.2', true),
      selectedPeer('127.0.0.3', true),
      selectedPeer('127.0.0.4', true),
    ]);
    const clients = await Promise.all(
      ['127.0.0.2', '127.0.0.3', '127.0.0.4'].map((address) => startSpeaker(address, [selectedPeer('127.0.0.1')])),
    );
    reflector.speaker.announce([Ipv4Prefix.parse('192.168.1.0/26')]);
    clients.forEach((client, i) => client.speaker.announce([Ipv4Prefix.parse(`192.168.${i + 2}.0/26`)]));
    await until(() => clients.every((client) => client.routes.length === 3), 'every client to learn every block');
    expect(routeText(clients[0])).toEqual([
      '192.168.1.0/26 via 127.0.0.1 from Node_127_0_0_1',
      '192.168.3.0/26 via 127.0.0.3 from Node_127_0_0_1',
      '192.168.4.0/26 via 127.0.0.4 from Node_127_0_0_1',
    ]);
    // A client that goes takes its block from every other client.
    await clients[2].speaker.stop();
    await until(() => clients[0].routes.length === 2 && clients[1].routes.length === 2, 'the withdrawal');
  });

  test('what a client receives carries ORIGINATOR_ID and CLUSTER_LIST; what comes back to its originator is dropped', async () => {
    const reflector = await startSpeaker('127.0.0.1', [
      selectedPeer('127.0.0.2', true),
      selectedPeer('127.0.0.5', true),
    ]);
    const client = await startSpeaker('127.0.0.2', [selectedPeer('127.0.0.1')]);
    client.speaker.announce([Ipv4Prefix.parse('192.168.2.0/26')]);
    await until(() => reflector.routes.length === 1, 'the client’s block at the reflector');
    const watcher = await HandPeer.connect('127.0.0.5', '127.0.0.1');
    watcher.establish('127.0.0.5', '192.168.5.0/26', 240);
    const reflected = () =>
      watcher.received.find(
        (message) => message.type === 'update' && message.nlri.some((prefix) => prefix.length === 26),
      );
    await until(() => reflected() !== undefined, 'the reflected block');
    expect(reflected()).toMatchObject({
      attributes: {
        nextHop: Ipv4Address.parse('127.0.0.2').value,
        localPref: 100,
        asPath: [],
        originatorId: Ipv4Address.parse('127.0.0.2').value,
        clusterList: [CLUSTER],
      },
      nlri: [{ address: Ipv4Prefix.parse('192.168.2.0/26').addressValue, length: 26 }],
    });
    await until(() => client.routes.length === 1, 'the watcher’s block at the client');
    expect(routeText(client)).toEqual(['192.168.5.0/26 via 127.0.0.5 from Node_127_0_0_1']);

    // The watcher plays a looping reflector: the client's own block back with its ORIGINATOR_ID, a new one with the
    // reflector's cluster: neither is taken.
    const loop = (originator: string, clusterList: number[], block: string) =>
      watcher.socket.write(
        bgp.encode(
          {
            type: 'update',
            withdrawn: [],
            attributes: {
              origin: 0,
              asPath: [],
              nextHop: Ipv4Address.parse('127.0.0.5').value,
              originatorId: Ipv4Address.parse(originator).value,
              clusterList,
              unrecognized: [],
            },
            nlri: [{ address: Ipv4Prefix.parse(block).addressValue, length: 26 }],
          },
          { fourOctetAs: true },
        ),
      );
    loop('127.0.0.1', [], '192.168.6.0/26');
    loop('127.0.0.9', [CLUSTER], '192.168.7.0/26');
    loop('127.0.0.9', [Ipv4Address.parse('244.0.0.2').value], '192.168.8.0/26');
    await until(() => reflector.routes.length === 3, 'the one good route');
    expect(reflector.routes.map((route) => route.destination.toString()).sort()).toEqual([
      '192.168.2.0/26',
      '192.168.5.0/26',
      '192.168.8.0/26',
    ]);
  });

  test('two reflectors of one cluster: each client peers with both, and every block survives one reflector', async () => {
    const clientAddresses = ['127.0.0.3', '127.0.0.4', '127.0.0.5'];
    const reflectorPeers = (other: string) => [
      selectedPeer(other),
      ...clientAddresses.map((c) => selectedPeer(c, true)),
    ];
    const first = await startSpeaker('127.0.0.1', reflectorPeers('127.0.0.2'));
    await startSpeaker('127.0.0.2', reflectorPeers('127.0.0.1'));
    const clients = await Promise.all(
      clientAddresses.map((address) => startSpeaker(address, [selectedPeer('127.0.0.1'), selectedPeer('127.0.0.2')])),
    );
    clients.forEach((client, i) => client.speaker.announce([Ipv4Prefix.parse(`192.168.${i + 3}.0/26`)]));
    await until(() => clients.every((client) => client.routes.length === 2), 'every client’s routes');
    // The lower ORIGINATOR_ID ties, the shorter CLUSTER_LIST ties, then the lower peer address: the first reflector.
    expect(routeText(clients[0])).toEqual([
      '192.168.4.0/26 via 127.0.0.4 from Node_127_0_0_1',
      '192.168.5.0/26 via 127.0.0.5 from Node_127_0_0_1',
    ]);
    await first.speaker.stop();
    await until(
      () => clients.every((client) => client.routes.every((route) => route.from === 'Node_127_0_0_2')),
      'the second reflector’s paths',
    );
    expect(routeText(clients[0])).toEqual([
      '192.168.4.0/26 via 127.0.0.4 from Node_127_0_0_2',
      '192.168.5.0/26 via 127.0.0.5 from Node_127_0_0_2',
    ]);
  });
});

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
