import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  buildCluster,
  nodeDataplane,
  parseSpecDocument,
  readSpecDocument,
  type ClusterState,
  type NodeState,
  type SpecDocument,
} from '../calico/index.js';
import type { AgentSystemInfo } from '../node/api-protocol.js';
import { routeFromJson, type Route, type RouteJson } from '../routing/index.js';
import { agentFor, agentSocketPath, AgentClient } from './commands/agent-client.js';
import { localSystemInfo } from './environment.js';
import { UsageError } from './errors.js';

/** Where a node container keeps the lab's spec; the CLI inside the container finds it without flags. */
export const IN_CONTAINER_SPEC = '/etc/ipip-lab/cluster.yaml';

/** How long a view waits for one agent before it calls that node NotReady. */
const AGENT_TIMEOUT_MS = 2000;

export function resolveSpecPath(option: string | undefined): string {
  const chosen = option ?? process.env.IPIP_LAB_SPEC ?? (existsSync(IN_CONTAINER_SPEC) ? IN_CONTAINER_SPEC : undefined);
  if (!chosen) {
    throw new UsageError(
      'no cluster spec: pass --spec FILE (e.g. --spec containers/cni-overview/cluster.yaml) or set IPIP_LAB_SPEC',
    );
  }
  return chosen;
}

/** The spec file and the workload files it names, read from disk. */
export function readSpecFile(specPath: string): SpecDocument {
  let text: string;
  try {
    text = readFileSync(specPath, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read spec ${specPath}: ${(error as Error).message}`);
  }
  const base = path.dirname(specPath);
  return readSpecDocument(specPath, text, (relative) => readFileSync(path.resolve(base, relative), 'utf8'));
}

export function clusterOf(document: SpecDocument): ClusterState {
  return buildCluster(parseSpecDocument(document));
}

export function loadCluster(specPath: string): ClusterState {
  return clusterOf(readSpecFile(specPath));
}

/** What a view shows of one node beyond the spec: whether its agent answers, since when, and on what system. */
export interface NodeFacts {
  readonly status: 'Ready' | 'NotReady';
  /** Milliseconds since the epoch when the node's agent started; undefined without agents. */
  readonly startedAt?: number;
  readonly system: AgentSystemInfo;
}

/**
 * The cluster a read view prints. Inside a node container it is the running agents' cluster: the local agent's spec
 * document (so the view is exactly what the agents compute) and each agent's own start time and system. Elsewhere,
 * or with an explicit --spec, it is the cluster a spec describes, with no agents asked.
 */
export interface ClusterView {
  readonly cluster: ClusterState;
  readonly live: boolean;
  facts(node: NodeState): Promise<NodeFacts>;
  /** The node's routes: its agent's table when live (what BGP brought), else the spec's computation. */
  routes(node: NodeState): Promise<Iterable<Route>>;
}

function specRoutes(cluster: ClusterState, node: NodeState): Promise<Iterable<Route>> {
  return Promise.resolve(nodeDataplane(cluster, node.name).routes);
}

function specView(cluster: ClusterState): ClusterView {
  const system = localSystemInfo();
  return {
    cluster,
    live: false,
    facts: () => Promise.resolve({ status: 'Ready', system }),
    routes: (node) => specRoutes(cluster, node),
  };
}

function liveView(cluster: ClusterState): ClusterView {
  const cache = new Map<string, Promise<NodeFacts>>();
  const ask = async (node: NodeState): Promise<NodeFacts> => {
    try {
      const info = await agentFor(cluster, node, 'get nodes', AGENT_TIMEOUT_MS).request('GET /v1/node');
      return { status: 'Ready', startedAt: Date.parse(info.startedAt), system: info.system };
    } catch {
      return { status: 'NotReady', system: localSystemInfo() };
    }
  };
  return {
    cluster,
    live: true,
    facts: (node) => {
      let facts = cache.get(node.name);
      if (!facts) cache.set(node.name, (facts = ask(node)));
      return facts;
    },
    routes: async (node) => {
      const { routes } = await agentFor(cluster, node, `${node.name}'s routes`).request('GET /v1/dataplane');
      return (routes as unknown as RouteJson[]).map(routeFromJson);
    },
  };
}

export async function openClusterView(specOption: string | undefined): Promise<ClusterView> {
  if (specOption === undefined && existsSync(agentSocketPath())) {
    const local = new AgentClient({ socketPath: agentSocketPath() }, 'this node', AGENT_TIMEOUT_MS);
    return liveView(clusterOf(await local.request('GET /v1/spec')));
  }
  return specView(loadCluster(resolveSpecPath(specOption)));
}

/** `--node`, else IPIP_LAB_NODE, else this host when it is one of the cluster's nodes (inside a node container). */
export function resolveNode(cluster: ClusterState, option: string | undefined): NodeState {
  const wanted = option ?? process.env.IPIP_LAB_NODE ?? os.hostname();
  const node = cluster.nodes.find((n) => n.name === wanted);
  if (node) return node;
  const names = cluster.nodes.map((n) => n.name).join(', ');
  if (option === undefined && process.env.IPIP_LAB_NODE === undefined) {
    throw new UsageError(`which node? pass --node NAME (one of: ${names})`);
  }
  throw new UsageError(`no node named ${JSON.stringify(wanted)} in the cluster (nodes: ${names})`);
}
