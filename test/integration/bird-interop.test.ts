/**
 * The agents' BGP speaker against a real BIRD: Debian's BIRD 1.6 (the base of Calico's fork) runs the bird.cfg confd
 * would write for worker-node02, at its address, beside agents for the other two nodes. The sessions come up with
 * BIRD opening both (10.0.0.12 is the greatest address string), each side installs what the other announces, pods
 * send IPIP to the BIRD node over the learned route, and BIRD's `disable` (a Cease) withdraws at once.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PodState } from '../../src/calico/index.js';
import { startLab, type BirdHandle, type Lab, type LabNodeHandle } from '../../src/testing/index.js';
import { SEED_CNI_OVERVIEW } from '../support/cli.js';
import { captureRows } from '../support/lab-packets.js';

const BIRD_NODE = 'worker-node02';
/** BIRD waits its `connect delay time 2` before it opens, then `connect retry time 5` after a refusal. */
const ESTABLISHED_WITHIN_MS = 20_000;
/** A Cease closes the session at once: what is left is the agent's table update and a docker exec to read it. */
const WITHDRAWN_WITHIN_MS = 1_000;

/** Milliseconds until `check` holds; past the deadline, fails with what `seen` reports. */
async function msUntil(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  seen: () => Promise<string> = () => Promise.resolve(''),
): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${await seen()}`);
  }
  return Date.now() - started;
}

async function hasTunnelRoute(node: LabNodeHandle, destination: string, via: string): Promise<boolean> {
  return (await node.routes()).some(
    (route) =>
      route.kind === 'unicast' &&
      String(route.destination) === destination &&
      String(route.gateway) === via &&
      route.dev === 'tunl0' &&
      route.onlink === true &&
      route.proto === 'bird',
  );
}

function meshProtocolOf(node: { ip: string }): string {
  return `Mesh_${node.ip.replace(/\./g, '_')}`;
}

describe.each(['kernel', 'userspace'] as const)("BIRD in worker-node02's place, beside %s agents", (dataplane) => {
  let lab: Lab;
  let bird: BirdHandle;
  let master: LabNodeHandle;
  let worker01: LabNodeHandle;
  let birdBlocks: string[];

  /** What BIRD says, for a failure: its protocols and the end of its log. */
  async function birdReport(): Promise<string> {
    const log = (await bird.logs()).trimEnd().split('\n').slice(-20).join('\n');
    return `birdc show protocols:\n${await bird.birdc('show protocols')}\nBIRD's log:\n${log}`;
  }

  beforeAll(async () => {
    lab = await startLab({
      spec: SEED_CNI_OVERVIEW,
      name: 'bird-interop',
      nodes: ['master-node', 'worker-node01'],
      dataplane,
    });
    master = lab.node('master-node');
    worker01 = lab.node('worker-node01');
    bird = await lab.startBird({ inPlaceOf: BIRD_NODE });
    birdBlocks = lab.cluster.nodes.find((node) => node.name === BIRD_NODE)!.blocks.map(String);
  });

  afterAll(async () => {
    await lab?.stop();
  });

  test('BIRD parsed its confd config and opens both sessions, Established on both sides', async () => {
    expect((await bird.protocols()).map((row) => [row.name, row.proto])).toEqual([
      ['static1', 'Static'],
      ['kernel1', 'Kernel'],
      ['device1', 'Device'],
      ['direct1', 'Direct'],
      ['Mesh_10_0_0_10', 'BGP'],
      ['Mesh_10_0_0_11', 'BGP'],
    ]);
    const established = async () => {
      const mesh = (await bird.protocols()).filter((row) => row.proto === 'BGP');
      return mesh.length === 2 && mesh.every((row) => row.state === 'up' && row.info === 'Established');
    };
    await msUntil(established, ESTABLISHED_WITHIN_MS, 'both BGP sessions to be Established', birdReport);
    for (const node of lab.nodes()) {
      const neighbour = (await node.bgp())?.neighbours.find((candidate) => candidate.address === bird.ip);
      expect(neighbour?.name, node.name).toBe('Mesh_10_0_0_12');
      expect(neighbour?.state, node.name).toBe('Established');
    }
  });

  test("BIRD learns each agent's blocks, each from its owner only, as a Calico node announces them", async () => {
    const learned = async () => {
      const routes = await bird.routes();
      return lab
        .nodes()
        .every((node) =>
          node.state.blocks.every((block) =>
            routes.some((route) => route.prefix === String(block) && route.protocol === meshProtocolOf(node)),
          ),
        );
    };
    await msUntil(learned, 5_000, "the agents' blocks in BIRD's table", () => bird.birdc('show route'));
    const routes = await bird.routes();
    for (const node of lab.nodes()) {
      // iBGP: worker-node01 does not pass on what it learned from master-node, nor master-node worker-node01's.
      const fromNode = routes.filter((route) => route.protocol === meshProtocolOf(node));
      expect(fromNode.map((route) => [route.prefix, route.target])).toEqual(
        node.state.blocks.map((block) => [String(block), `via ${node.ip} on eth0`]),
      );
      const attributes = await bird.birdc(`show route all protocol ${meshProtocolOf(node)}`);
      expect(attributes).toContain('\tBGP.origin: IGP\n');
      expect(attributes).toMatch(/\tBGP\.as_path: ?\n/);
      expect(attributes).toContain(`\tBGP.next_hop: ${node.ip}\n`);
      expect(attributes).toContain('\tBGP.local_pref: 100\n');
    }
  });

  test("the agents install BIRD's blackholed block via 10.0.0.12 dev tunl0 proto bird onlink", async () => {
    expect(birdBlocks.length).toBeGreaterThan(0);
    for (const node of lab.nodes()) {
      const installed = async () =>
        (await Promise.all(birdBlocks.map((block) => hasTunnelRoute(node, block, bird.ip)))).every(Boolean);
      await msUntil(installed, 5_000, `${BIRD_NODE}'s blocks on ${node.name}`);
      if (dataplane === 'kernel') {
        const ipRoute = (await node.exec(['ip', 'route'])).stdout.split('\n').map((line) => line.trim());
        for (const block of birdBlocks) expect(ipRoute).toContain(`${block} via 10.0.0.12 dev tunl0 proto bird onlink`);
      }
    }
  });

  test("a pod's ping into worker-node02's block reaches BIRD's eth0 as IPIP from 10.0.0.11", async () => {
    const [from]: PodState[] = lab.podsOn('worker-node01');
    const [to]: PodState[] = lab.podsOn(BIRD_NODE);
    const wire = await bird.tcpdump({ filter: 'ip proto 4' });
    // Nothing answers there (BIRD's node has no pods), so one request and a short wait.
    await worker01.ping({ from: from.name, to: String(to.ip), count: 1, timeoutMs: 1_000 });
    const rows = await captureRows(await wire.stop(), ['ip.src', 'ip.dst', 'ip.proto', 'icmp.type']);
    expect(rows).toContainEqual([`10.0.0.11;${from.ip}`, `10.0.0.12;${to.ip}`, '4;1', '8']);
  });

  test("BIRD's disable (a Cease) withdraws its block from that peer at once, and enable brings it back", async () => {
    const [block] = birdBlocks;
    expect(await bird.birdc('disable Mesh_10_0_0_11')).toContain('Mesh_10_0_0_11: disabled');
    const gone = await msUntil(
      async () => !(await hasTunnelRoute(worker01, block, bird.ip)),
      WITHDRAWN_WITHIN_MS,
      `${block} to leave worker-node01`,
    );
    console.log(`birdc disable: ${block} left worker-node01 ${gone} ms later (${dataplane})`);
    const neighbour = (await worker01.bgp())?.neighbours.find((candidate) => candidate.address === bird.ip);
    expect(neighbour?.lastError).toBe('Received: Administrative shutdown');
    // Only that session went down: master-node keeps the block.
    expect(await hasTunnelRoute(master, block, bird.ip)).toBe(true);

    expect(await bird.birdc('enable Mesh_10_0_0_11')).toContain('Mesh_10_0_0_11: enabled');
    await msUntil(
      () => hasTunnelRoute(worker01, block, bird.ip),
      ESTABLISHED_WITHIN_MS,
      `${block} to return to worker-node01`,
      birdReport,
    );
    const mesh11 = (await bird.protocols()).find((row) => row.name === 'Mesh_10_0_0_11');
    expect([mesh11?.state, mesh11?.info]).toEqual(['up', 'Established']);
  });
});
