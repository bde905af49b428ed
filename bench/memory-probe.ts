/*
 * The measuring half of bench/memory.ts, run in a child process started with --expose-gc. `--pods N --routes M`
 * builds one node as the agent does (a LabNode: the dataplane, its route table, one simulated pod per local pod) in a
 * cluster that puts N pods on that node and gives it M routes to other nodes' blocks, keeps it alive, and prints the
 * process's memory as JSON: after full collections, and the lowest RSS while it then idles for --settle-ms.
 * `--empty` builds and loads nothing: Node.js alone.
 *
 * The N pods run the seed's hello-app (each listens on TCP 8080), as the lab's Deployment does, on a node that Calico's
 * IPAM gives as many /26 blocks as they need (at most 20: 1,279 pods). The M routes are what a large cluster's Felix
 * and BIRD would leave: M / 20 other nodes holding 20 blocks each (Calico's maxBlocksPerHost), each block routed via
 * its node through tunl0. No cluster of that size can come from a spec here (every spec node costs a hostname-seeded
 * IPAM walk and a block of its own), so those peers are added to the cluster state the spec built.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep, setImmediate as yieldToLoop } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { Ipv4Prefix } from '../src/routing/index.js';

export interface MemoryReport {
  readonly pods: number;
  readonly routes: number;
  /** Routes in the node's table, the extra ones included. */
  readonly tableRoutes: number;
  /** Right after building and full collections. */
  readonly built: {
    readonly rss: number;
    readonly heapUsed: number;
    readonly external: number;
    readonly arrayBuffers: number;
  };
  /**
   * The lowest RSS while idle after that, for --settle-ms: V8's memory reducer gives back young-generation pages
   * the build grew a few seconds after allocation stops, as it does in an idle agent.
   */
  readonly settledRss: number;
  /**
   * Of the settled RSS, the pages mapped from files (the node executable above all, ~40 MB here): clean, shared by
   * every Node process on the machine, and given back to the page cache under pressure.
   */
  readonly settledFileRss: number;
  readonly buildSeconds: number;
}

const BLOCKS_PER_PEER = 20;
const NETWORK = '172.31.0.0/16';
/** Node IPs of the added peers start past the spec's own nodes. */
const FIRST_PEER_HOST = 256;
const SETTLE_POLL_MS = 1000;

function specText(pods: number): string {
  return `apiVersion: ipip-lab/v1alpha1
kind: Cluster
metadata: { name: bench-memory }
network: { cidr: ${NETWORK} }
pool: { cidr: 10.0.0.0/8, blockSize: 26, ipipMode: Always }
nodes:
  - { name: dut, ip: 172.31.0.10, role: worker }
  - { name: peer, ip: 172.31.0.11, role: worker }
workloads:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: { name: hello-world }
    spec:
      replicas: ${pods}
      selector: { matchLabels: { app: hello-world } }
      template:
        metadata: { labels: { app: hello-world } }
        spec:
          nodeSelector: { kubernetes.io/hostname: dut }
          containers: [{ name: hello-world, image: 'gcr.io/google-samples/hello-app:1.0' }]
`;
}

async function buildNode(pods: number, routes: number): Promise<{ keep: unknown; tableRoutes: number }> {
  const { buildCluster, parseSpecDocument } = await import('../src/calico/index.js');
  const routing = await import('../src/routing/index.js');
  const { LabNode } = await import('../src/node/userspace/lab-node.js');
  const spec = parseSpecDocument({ source: 'bench-memory.yaml', text: specText(pods), files: {} });
  const built = buildCluster(spec);
  const [dut, peer] = built.nodes;
  const taken = new Set(built.nodes.flatMap((node) => node.blocks.map((block) => block.first().value)));
  const blockAddresses = 2 ** (32 - spec.pool.blockSize);
  let nextBlock = spec.pool.cidr.first().value;
  const freeBlock = (): Ipv4Prefix => {
    while (taken.has(nextBlock)) nextBlock += blockAddresses;
    const block = routing.Ipv4Prefix.of(routing.Ipv4Address.fromUint32(nextBlock), spec.pool.blockSize);
    nextBlock += blockAddresses;
    return block;
  };
  const networkBase = spec.network.cidr.first().value;
  const peers = Array.from({ length: Math.ceil(routes / BLOCKS_PER_PEER) }, (_, i) => {
    const ip = routing.Ipv4Address.fromUint32(networkBase + FIRST_PEER_HOST + i);
    const blocks = Array.from({ length: Math.min(BLOCKS_PER_PEER, routes - i * BLOCKS_PER_PEER) }, freeBlock);
    return { ...peer, name: `peer-${i + 1}`, ip, internalIP: ip, tunnelAddress: blocks[0].first(), blocks };
  });
  const cluster = { ...built, nodes: [dut, peer, ...peers] };
  const node = new LabNode(cluster, 'dut', { send: () => {} });
  if (node.localPods.length !== pods) throw new Error(`the node got ${node.localPods.length} pods, not ${pods}`);
  return { keep: node, tableRoutes: node.routes.length };
}

async function collectedMemory(): Promise<NodeJS.MemoryUsage> {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('memory-probe needs --expose-gc');
  // Weak references and finalizers are cleared one collection later, after the loop has turned.
  for (let i = 0; i < 3; i++) {
    collect();
    await yieldToLoop();
  }
  return process.memoryUsage();
}

/** This process's resident pages mapped from files, from the kernel's own accounting (Linux). */
function fileBackedRss(): number {
  const kilobytes = /^RssFile:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  if (kilobytes === undefined) throw new Error('memory-probe: no RssFile line in /proc/self/status');
  return Number(kilobytes) * 1024;
}

/** The lowest RSS while idling for `milliseconds`, and its file-backed part at that moment. */
async function lowestRss(milliseconds: number): Promise<{ rss: number; fileRss: number }> {
  let lowest = { rss: process.memoryUsage.rss(), fileRss: fileBackedRss() };
  for (const end = Date.now() + milliseconds; Date.now() < end;) {
    await sleep(SETTLE_POLL_MS);
    const rss = process.memoryUsage.rss();
    if (rss < lowest.rss) lowest = { rss, fileRss: fileBackedRss() };
  }
  return lowest;
}

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '0' },
    routes: { type: 'string', default: '0' },
    empty: { type: 'boolean', default: false },
    'settle-ms': { type: 'string', default: '0' },
  },
});
const pods = Number(values.pods);
const routes = Number(values.routes);
const started = performance.now();
// Module state: the node stays reachable through every collection and sample below, since it is what is measured.
const built = values.empty ? { keep: undefined, tableRoutes: 0 } : await buildNode(pods, routes);
const buildSeconds = (performance.now() - started) / 1000;
const { rss, heapUsed, external, arrayBuffers } = await collectedMemory();
const settled = await lowestRss(Number(values['settle-ms']));
const report: MemoryReport = {
  pods,
  routes,
  tableRoutes: built.tableRoutes,
  built: { rss, heapUsed, external, arrayBuffers },
  settledRss: settled.rss,
  settledFileRss: settled.fileRss,
  buildSeconds,
};
process.stdout.write(JSON.stringify(report) + '\n');
