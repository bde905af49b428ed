/**
 * A lab without Docker: every node of a spec assembled in this process over an in-memory underlay (what one node
 * sends to an address arrives, a turn of the event loop later, at that node), and one node's control API served on
 * a unix socket in a temporary directory, as the agent serves it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ClusterState, SpecDocument } from '../../src/calico/index.js';
import { clusterOf, readSpecFile } from '../../src/cli/cluster-source.js';
import { createApiHandler, type ApiHandler } from '../../src/node/api.js';
import { LabNode } from '../../src/node/userspace/lab-node.js';

export interface InProcessAgent {
  readonly spec: SpecDocument;
  readonly cluster: ClusterState;
  readonly nodes: readonly LabNode[];
  /** The node whose API is served. */
  readonly node: LabNode;
  readonly handler: ApiHandler;
  readonly socketPath: string;
  nodeNamed(name: string): LabNode;
  close(): Promise<void>;
}

export async function startInProcessAgent(specPath: string, nodeName: string): Promise<InProcessAgent> {
  const spec = readSpecFile(specPath);
  const cluster = clusterOf(spec);
  const wire = {
    send(packet: Buffer, destination: number) {
      const copy = Buffer.from(packet);
      setImmediate(() => nodes.find((node) => node.node.ip.value === destination)?.dataplane.fromUnderlay(copy));
    },
  };
  const nodes = cluster.nodes.map((node) => new LabNode(cluster, node.name, wire));
  const byName = (name: string): LabNode => {
    const found = nodes.find((node) => node.node.name === name);
    if (!found) throw new Error(`no node ${name} in ${specPath}`);
    return found;
  };
  const node = byName(nodeName);
  const handler = createApiHandler({
    labNode: node,
    spec,
    apiPort: 9440,
    startedAt: new Date(0),
    system: { osImage: 'Test OS', kernelVersion: '6.1.0', containerRuntime: 'ipip-lab://0.1.0', architecture: 'amd64' },
    underlaySendErrors: () => 0,
  });
  const directory = mkdtempSync(path.join(tmpdir(), 'ipip-lab-api-'));
  const socketPath = path.join(directory, 'agent.sock');
  const server = createServer(handler.local);
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    spec,
    cluster,
    nodes,
    node,
    handler,
    socketPath,
    nodeNamed: byName,
    async close() {
      handler.close();
      for (const each of nodes) each.close();
      await new Promise((resolve) => server.close(resolve));
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
