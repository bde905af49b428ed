/**
 * The node agent: the long-running process of one node container. It checks that this machine really is the node
 * the spec names (its underlay address is on an interface here), opens the raw IPIP socket, assembles the node and
 * its pods, and serves the control API on the lab address and a local unix socket. Process concerns (signals, exit
 * codes) belong to the CLI command that runs it.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  announcedPrefixes,
  buildCluster,
  bgpPeeringsOf,
  CALICO_DEFAULT_AS,
  meshPeers,
  nodeByName,
  parseSpecDocument,
  underlayRouter,
  underlaySubnet,
  type BgpConfigurationSpec,
  type BgpNode,
  type BgpPeering,
  type BgpPeerSpec,
  type ClusterState,
  type NodeState,
  type PeerRoute,
  type SpecDocument,
} from '../calico/index.js';
import { BgpSpeaker, type BgpTimers } from './bgp/index.js';
import { connectEtcd, type EtcdStore } from './datastore/etcd-store.js';
import { syncWorkloads } from './datastore/workloads.js';
import {
  registerNode,
  watchBgpConfigurations,
  watchBgpPeers,
  watchNodes,
  withAllocation,
  type NodeAllocation,
} from './datastore/registration.js';
import {
  createApiHandler,
  ReloadRefused,
  specDigest,
  type AgentSystemInfo,
  type ApiHandler,
  type ReloadResult,
} from './api.js';
import { Ipv4Address } from '../routing/address.js';
import { writeLabNodes, type HostEntry } from './hosts-file.js';
import { TUNNEL_INTERFACE } from './interface-names.js';
import { KernelNode } from './kernel/kernel-node.js';
import { kernelDataplaneUnavailable } from './kernel/requirements.js';
import { LabNode } from './userspace/lab-node.js';
import type { DataplaneKind, RunningNode } from './running-node.js';
import { loadIpipSocketBinding, openBatchedTun } from './underlay/batched.js';
import {
  openUnderlay,
  UnderlayUnavailableError,
  type OpenedUnderlay,
  type Underlay,
  type UnderlayKind,
} from './underlay/index.js';
import { NeighbourPins, type IpBatchRunner } from './underlay/neighbours.js';

export interface AgentOptions {
  /** The spec the cluster was built from, served to CLIs so they see the agent's own cluster. */
  spec: SpecDocument;
  cluster: ClusterState;
  nodeName: string;
  apiPort: number;
  socketPath: string;
  system: AgentSystemInfo;
  log: (line: string) => void;
  /** The machine's interfaces; tests pass their own. */
  networkInterfaces?: () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;
  /** Which implementation moves the packets; without it the default, falling back where the addon is not built. */
  underlay?: UnderlayKind;
  /** Opens the raw IPIP socket; tests pass a fake. */
  openUnderlay?: typeof openUnderlay;
  /**
   * Runs iproute2 to make the peers' neighbour entries managed and exempt from the host's limit (neighbours.ts);
   * without it the agent leaves them to the kernel. Tests of an agent on the test machine itself pass none.
   */
  pinNeighbours?: IpBatchRunner;
  /** Re-reads the spec when asked to reload (`kubectl apply` rewrote it); without it the agent refuses reloads. */
  readSpec?: () => SpecDocument;
  /**
   * Which dataplane runs the node (running-node.ts). `auto`: the kernel-backed node where this container allows it
   * (kernel/requirements.ts), else the userspace node, saying why in one line. Default: userspace, so that an agent
   * started in a test process never reprograms the machine it runs on.
   */
  dataplane?: DataplaneKind | 'auto';
  /** Why the kernel dataplane cannot run here, if it cannot; tests pass their own. */
  kernelUnavailable?: () => string | undefined;
  /** A hosts file to keep the lab's node names in (hosts-file.ts): the CLI passes /etc/hosts. */
  hostsFile?: string;
  /**
   * Runs a BGP speaker in BIRD's place (bgp/): the routes to other nodes' blocks are what it learns from the mesh.
   * Without it they come from the spec, as a converged mesh would make them (offline views, in-process tests).
   */
  bgp?: { port: number; timers?: Partial<BgpTimers> };
  /**
   * The lab's etcd (datastore/): the node claims its block and tunnel address there by compare-and-swap, registers
   * its Node, and peers over BGP with the Nodes registered there. Without it, the spec alone says all of that.
   */
  datastore?: {
    endpoint: string;
    timeoutMs: number;
    /**
     * For a spec whose addresses came from the datastore (a swarm lab): writes the addresses the Nodes have now into
     * the spec, returning the nodes it changed, so that a node restarted at another address is found there again.
     */
    followAddresses?: (registered: ReadonlyMap<string, Ipv4Address>) => string[];
  };
}

/** The agent was asked to be a node it cannot be (unknown name, address not here): the CLI exits with code 2. */
export class AgentConfigError extends Error {}

export interface Agent {
  /** The node as built from the spec last (re)loaded. */
  readonly labNode: RunningNode;
  /** Closes the API, the raw socket and every pod timer; resolves once the servers are closed. */
  stop(): Promise<void>;
}

/** The interface holding the node's underlay address, or a config error that lists what this machine has. */
function underlayInterface(node: NodeState, interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]>): string {
  const address = node.ip.toString();
  const ipv4 = Object.entries(interfaces).flatMap(([name, infos]) =>
    (infos ?? []).filter((info) => info.family === 'IPv4').map((info) => ({ name, address: info.address })),
  );
  const match = ipv4.find((candidate) => candidate.address === address);
  if (match) return match.name;
  const here = ipv4.map((candidate) => `${candidate.name} ${candidate.address}`).join(', ') || 'none';
  throw new AgentConfigError(
    `${node.name}'s address ${address} is not on any interface of this machine (IPv4 interfaces: ${here}); ` +
      "run the agent in the container that has that address, or fix the node's ip in the spec",
  );
}

function listen(server: Server, target: { host: string; port: number } | { path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const where = 'path' in target ? target.path : `${target.host}:${target.port}`;
    server.once('error', (error) => reject(new Error(`cannot listen on ${where}: ${error.message}`)));
    server.listen(target, () => resolve());
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Keep-alive connections would hold close() open: the agent must stop within a second.
    server.closeAllConnections();
  });
}

function chooseDataplane(options: AgentOptions, log: (line: string) => void): DataplaneKind {
  const asked = options.dataplane ?? 'userspace';
  if (asked === 'userspace') return asked;
  const unavailable = (options.kernelUnavailable ?? kernelDataplaneUnavailable)();
  if (unavailable === undefined) return 'kernel';
  if (asked === 'kernel') throw new AgentConfigError(`--dataplane kernel: ${unavailable}`);
  log(`kernel dataplane unavailable (${unavailable}): running the userspace node`);
  return 'userspace';
}

/** The host name of `asked` with the address it was reached at, unless `asked` named an address already. */
function hostOf(asked: string | undefined, connected: string): HostEntry[] {
  const name = asked === undefined ? '' : new URL(asked).hostname;
  const ip = Ipv4Address.tryParse(new URL(connected).hostname);
  return name === '' || Ipv4Address.tryParse(name) || !ip ? [] : [{ name, ip }];
}

/** Connects to the datastore, waiting as long as asked, and claims the node's block and tunnel address there. */
async function joinDatastore(
  options: { endpoint: string; timeoutMs: number },
  cluster: ClusterState,
  node: NodeState,
  log: (line: string) => void,
): Promise<{ store: EtcdStore; allocation: NodeAllocation }> {
  const store = await connectEtcd(options.endpoint, { timeoutMs: options.timeoutMs, log });
  try {
    const allocation = await registerNode(store, cluster, node);
    const spec = node.blocks[0]?.toString();
    const claimed = allocation.block.toString();
    log(
      `datastore ${options.endpoint}: block ${claimed} confirmed, tunl0 ${allocation.tunnelAddress ?? 'none'}` +
        (spec !== undefined && spec !== claimed ? ` (the spec alone would give ${spec}: another node holds it)` : ''),
    );
    return { store, allocation };
  } catch (error) {
    store.close();
    throw error;
  }
}

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const { log } = options;
  const node = nodeByName(options.cluster, options.nodeName);
  if (!node) {
    throw new AgentConfigError(
      `no node named ${JSON.stringify(options.nodeName)} in the cluster (nodes: ${options.cluster.nodes.map((n) => n.name).join(', ')})`,
    );
  }
  const nodeLog = (line: string): void => log(`${node.name}: ${line}`);
  const device = underlayInterface(node, (options.networkInterfaces ?? os.networkInterfaces)());
  const datastore = options.datastore && (await joinDatastore(options.datastore, options.cluster, node, nodeLog));
  /** The spec's cluster, with this node's own block and tunnel address as the datastore has them. */
  const ownView = (state: ClusterState): ClusterState =>
    datastore ? withAllocation(state, node.name, datastore.allocation) : state;
  const cluster = ownView(options.cluster);
  // A datastore reached by name (a swarm lab's `etcd` service) gets a line of the hosts file too, for etcdctl.
  const datastoreHost = datastore ? hostOf(options.datastore?.endpoint, datastore.store.endpoint) : [];

  // One line per kind of failure: a peer that keeps refusing packets must not flood the log.
  const reported = new Set<string>();
  const reportOnce = (what: string, error: unknown): void => {
    const message = `${what}: ${error instanceof Error ? error.message : String(error)}`;
    if (reported.has(message)) return;
    reported.add(message);
    nodeLog(`${message} (logged once)`);
  };
  let labNode: RunningNode | undefined;
  const handlers = {
    onPacket: (packet: Buffer) => {
      // A packet from the wire is anyone's bytes: whatever the dataplane makes of them, the agent keeps running.
      try {
        labNode?.dataplane.fromUnderlay(packet);
      } catch (error) {
        reportOnce('dataplane', error);
      }
    },
    onError: (error: Error) => reportOnce('underlay', error),
  };
  let opened: OpenedUnderlay;
  try {
    opened = (options.openUnderlay ?? openUnderlay)(options.underlay, handlers, nodeLog);
  } catch (error) {
    // The implementation asked for is not here: like a bad spec, the command line must change.
    if (error instanceof UnderlayUnavailableError) {
      throw new AgentConfigError(`${options.underlay ? `--underlay ${options.underlay}: ` : ''}${error.message}`);
    }
    throw error;
  }
  const { underlay } = opened;
  nodeLog(`underlay ${node.ip} on ${device}: raw IPIP socket open, ${opened.description}`);
  let kind: DataplaneKind;
  try {
    kind = chooseDataplane(options, nodeLog);
    if (kind === 'userspace' && cluster.pool.ipipMode !== 'Always') {
      throw new AgentConfigError(
        `pool ${cluster.pool.name} has ipipMode ${cluster.pool.ipipMode}, which sends pod traffic over eth0 ` +
          'unencapsulated; the userspace node receives only IPIP (its raw socket is for protocol 4): ' +
          'run the kernel-backed node (--dataplane kernel), or make the pool ipipMode Always',
      );
    }
  } catch (error) {
    underlay.close();
    throw error;
  }

  const neighbours = options.pinNeighbours && new NeighbourPins(device, nodeLog, options.pinNeighbours);
  const resolveNodes = (state: ClusterState): void => {
    if (options.hostsFile === undefined) return;
    try {
      writeLabNodes(options.hostsFile, [...state.nodes, ...datastoreHost]);
    } catch (error) {
      reportOnce(`cannot write the node names into ${options.hostsFile}`, error);
    }
  };
  resolveNodes(cluster);
  // Only what eth0 reaches without a router has a neighbour entry: peers on its own subnet, and the router itself.
  const subnet = underlaySubnet(cluster.spec.network, node.ip);
  const router = cluster.spec.network.subnets.length > 0 ? [underlayRouter(subnet)] : [];
  const peersOf = (state: ClusterState) => [
    ...state.nodes.filter((peer) => !peer.ip.equals(node.ip) && subnet.contains(peer.ip)).map((peer) => peer.ip),
    ...router,
  ];
  void neighbours?.pin(peersOf(cluster));

  const servers: Server[] = [];
  let handler: ApiHandler | undefined;
  let spec = options.spec;
  /** What the speaker chose last: a node rebuilt on reload starts from it, not from nothing. */
  let learned: readonly PeerRoute[] | undefined = options.bgp && [];
  const speaker =
    options.bgp &&
    new BgpSpeaker({
      address: node.ip,
      routerId: node.ip,
      as: CALICO_DEFAULT_AS,
      port: options.bgp.port,
      ...(options.bgp.timers && { timers: options.bgp.timers }),
      log: nodeLog,
      onRoutesChanged: (routes) => {
        learned = routes.map(({ destination, nextHop }) => ({ destination, nextHop }));
        try {
          void Promise.resolve(labNode?.setPeerRoutes(learned)).catch((error: unknown) => reportOnce('routes', error));
        } catch (error) {
          reportOnce('routes', error);
        }
      },
    });
  const peerWith = (peerings: readonly BgpPeering[], localAs?: number): void =>
    speaker?.setNeighbours(
      peerings.map(({ address, as, type, passive, reflectorClientOf }) => ({
        address,
        as,
        type,
        passive,
        ...(reflectorClientOf && { reflectorClient: { clusterId: reflectorClientOf.value } }),
      })),
      localAs,
    );
  /** What confd reads from the datastore, and the peerings it makes of them, recomputed on every change. */
  const fromDatastore = {
    nodes: [] as BgpNode[],
    peers: [] as BgpPeerSpec[],
    configurations: [] as BgpConfigurationSpec[],
  };
  const otherAsReported = new Set<string>();
  const peerAsDatastoreSays = (): void => {
    const { localAs, peerings, otherAs } = bgpPeeringsOf(
      node.name,
      fromDatastore.nodes,
      fromDatastore.peers,
      fromDatastore.configurations,
    );
    for (const { name, as } of otherAs) {
      if (otherAsReported.has(name)) continue;
      otherAsReported.add(name);
      nodeLog(`BGPPeer ${name}: AS ${as} is eBGP, which this lab's speaker does not speak: skipped`);
    }
    if (speaker && localAs !== speaker.as) {
      nodeLog(`BGP: local AS ${localAs} (the default BGPConfiguration's asNumber, else Calico's ${CALICO_DEFAULT_AS})`);
    }
    peerWith(peerings, localAs);
  };
  let stopWatchingPeers: (() => Promise<void>) | undefined;
  let stopWatchingConfigurations: (() => Promise<void>) | undefined;
  /**
   * The pods' records in etcd (their addresses and WorkloadEndpoints), as the CNI plugin writes them, behind the
   * dataplane: one sync at a time, each from the latest cluster, never holding up a reload's answer.
   */
  let workloadsSynced: Promise<void> = Promise.resolve();
  const recordWorkloads = (state: ClusterState): void => {
    if (!datastore) return;
    workloadsSynced = workloadsSynced
      .then(() => syncWorkloads(datastore.store, state, node.name, nodeLog))
      .then(
        () => undefined,
        (error: unknown) => reportOnce('datastore: recording the pods', error),
      );
  };
  /** The blocks to announce; the peers too, unless the datastore's Nodes say who they are. */
  const meshWith = (state: ClusterState): void => {
    if (!speaker) return;
    const self = nodeByName(state, node.name)!;
    if (!datastore) {
      peerWith(
        meshPeers(state, self).map(({ address, as, passive }) => ({ address, as, passive, type: 'node-to-node mesh' })),
      );
    }
    speaker.announce(announcedPrefixes(state, self));
  };
  let stopWatchingNodes: (() => Promise<void>) | undefined;
  /**
   * The node as a re-read spec makes it. The userspace node is rebuilt, as if kubelet and calico-node restarted on
   * it (new pods, routes and counters); the kernel's converges in place (only the pods and routes that changed).
   * The raw socket, the API and the node's start time stay.
   */
  const reload = async (readSpec: () => SpecDocument): Promise<ReloadResult> => {
    const document = readSpec();
    const next = ownView(buildCluster(parseSpecDocument(document)));
    const self = nodeByName(next, node.name);
    if (!self?.ip.equals(node.ip)) {
      throw new ReloadRefused(
        `the spec no longer has ${node.name} at ${node.ip}: restart this node's container to make it what the spec says`,
      );
    }
    // Running captures watch the old dataplane, which stops here: they end with what they saw so far.
    handler?.close();
    if (labNode instanceof KernelNode) {
      // The kernel's node changes in place: only the pods and routes that changed are touched.
      await labNode.apply(next);
    } else {
      const fresh = new LabNode(next, node.name, underlay, { log, ...(learned && { peerRoutes: learned }) });
      void labNode?.close();
      labNode = fresh;
    }
    spec = document;
    meshWith(next);
    recordWorkloads(next);
    resolveNodes(next);
    void neighbours?.pin(peersOf(next));
    const pods = labNode.localPods;
    nodeLog(`reloaded the spec: ${pods.length} pods here`);
    return { node: node.name, specDigest: specDigest(document), pods: pods.map((pod) => pod.name) };
  };
  /** Reloads for nodes that came back at new addresses, one after another. */
  let addressReloads: Promise<void> = Promise.resolve();
  let tun: Underlay | undefined;
  try {
    if (kind === 'kernel') {
      const binding = loadIpipSocketBinding();
      tun = openBatchedTun(binding, TUNNEL_INTERFACE, {
        onPacket: (packet) => {
          if (labNode instanceof KernelNode) labNode.driver.fromTun(packet);
        },
        onError: (error) => reportOnce(TUNNEL_INTERFACE, error),
      });
      const device = tun;
      labNode = await KernelNode.start(
        cluster,
        node.name,
        underlay,
        { send: (packet) => device.send(packet, 0) },
        {
          log: nodeLog,
          bindInNetns: (netnsPath, protocol, port) => binding.bindInNetns(netnsPath, protocol, port),
          binding,
          ...(learned && { peerRoutes: learned }),
        },
      );
      nodeLog(
        `kernel dataplane: ${TUNNEL_INTERFACE} is a TUN device driven by this agent; pods are network namespaces`,
      );
    } else {
      labNode = new LabNode(cluster, node.name, underlay, { log, ...(learned && { peerRoutes: learned }) });
    }
    if (speaker) {
      await speaker.listen();
      meshWith(cluster);
      if (datastore) {
        const watched =
          <K extends keyof typeof fromDatastore>(what: K) =>
          (resources: (typeof fromDatastore)[K]) => {
            fromDatastore[what] = resources;
            peerAsDatastoreSays();
          };
        const follow = options.datastore?.followAddresses;
        const readSpec = options.readSpec;
        const onNodes = (nodes: BgpNode[]): void => {
          watched('nodes')(nodes);
          if (!follow || !readSpec) return;
          try {
            const moved = follow(new Map(nodes.map((registered) => [registered.name, registered.address])));
            if (moved.length === 0) return;
            nodeLog(`datastore: ${moved.join(', ')} registered at a new address: the spec follows`);
            addressReloads = addressReloads.then(() =>
              reload(readSpec).then(
                () => undefined,
                (error: unknown) => reportOnce('reloading the spec for new node addresses', error),
              ),
            );
          } catch (error) {
            reportOnce('writing new node addresses into the spec', error);
          }
        };
        stopWatchingNodes = await watchNodes(datastore.store, onNodes, nodeLog);
        stopWatchingPeers = await watchBgpPeers(datastore.store, watched('peers'), nodeLog);
        stopWatchingConfigurations = await watchBgpConfigurations(datastore.store, watched('configurations'), nodeLog);
      }
    }
    recordWorkloads(cluster);
    const readSpec = options.readSpec;
    handler = createApiHandler({
      get labNode() {
        return labNode!;
      },
      get spec() {
        return spec;
      },
      apiPort: options.apiPort,
      startedAt: new Date(),
      system: options.system,
      underlaySendErrors: () => underlay.sendErrors,
      ...(speaker && { bgpStatus: () => speaker.status() }),
      ...(readSpec && { reload: () => reload(readSpec) }),
    });
    const tcp = createServer(handler);
    tcp.on('upgrade', handler.upgrade);
    servers.push(tcp);
    await listen(tcp, { host: node.ip.toString(), port: options.apiPort });
    mkdirSync(path.dirname(options.socketPath), { recursive: true });
    // A socket file left by an agent that was killed would make listen() fail with EADDRINUSE.
    rmSync(options.socketPath, { force: true });
    const local = createServer(handler.local);
    local.on('upgrade', handler.upgrade);
    servers.push(local);
    await listen(local, { path: options.socketPath });
  } catch (error) {
    await stopWatchingNodes?.();
    await stopWatchingPeers?.();
    await stopWatchingConfigurations?.();
    await workloadsSynced;
    datastore?.store.close();
    await speaker?.stop();
    handler?.close();
    await labNode?.close();
    tun?.close();
    underlay.close();
    await Promise.all(servers.filter((server) => server.listening).map((server) => closeServer(server)));
    throw error;
  }
  nodeLog(
    `listening on ${node.ip}:${options.apiPort} and ${options.socketPath}` +
      (options.bgp ? `; BGP on ${node.ip}:${options.bgp.port}, AS ${CALICO_DEFAULT_AS}` : ''),
  );

  const api = handler;
  let stopping: Promise<void> | undefined;
  return {
    get labNode() {
      return labNode!;
    },
    stop: () => {
      stopping ??= (async () => {
        // Cease first, as BIRD does on shutdown: the peers drop this node's routes at once, not after the hold time.
        await speaker?.stop();
        await stopWatchingNodes?.();
        await stopWatchingPeers?.();
        await stopWatchingConfigurations?.();
        await addressReloads;
        await workloadsSynced;
        datastore?.store.close();
        api.close();
        await labNode!.close();
        tun?.close();
        underlay.close();
        await Promise.all(servers.map(closeServer));
        rmSync(options.socketPath, { force: true });
        nodeLog('stopped');
      })();
      return stopping;
    },
  };
}
