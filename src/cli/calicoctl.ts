/**
 * `calicoctl` inside a node container: a thin front for the calicoctl commands a Calico IPIP walkthrough uses, with
 * calicoctl's output. `node status` asks this node's agent for its BGP speaker (BIRD's place); `get ippool|node` and
 * `ipam show` read the cluster the agents compute from the lab's spec, as the other views do; `apply`, `delete` and
 * `get bgppeer` work on the lab's etcd (calicoctl-resources.ts).
 */
import { Command, CommanderError, Option } from 'commander';
import { stringify as toYaml } from 'yaml';
import {
  ipPoolResource,
  nodeResource,
  SpecError,
  underlaySubnet,
  type BgpPeerResource,
  type ClusterState,
  type NodeResource,
} from '../calico/index.js';
import type { SpeakerStatus } from '../node/bgp/index.js';
import { openClusterView } from './cluster-source.js';
import { AgentClient, AgentError, agentSocketPath } from './commands/agent-client.js';
import { processIo, type Io } from './common.js';
import { UsageError } from './errors.js';
import {
  applyResources,
  BGPCONFIGURATION_NAMES,
  BGPPEER_NAMES,
  CalicoctlError,
  datastoreEndpoint,
  deleteResources,
  getStored,
  labelNode,
  patchNode,
  renderGetBgpPeers,
  resourcesIn,
  storedKindNamed,
} from './calicoctl-resources.js';
import {
  ipamUsage,
  nodeStatusJson,
  renderGetIpPools,
  renderGetNodes,
  renderIpamShow,
  renderNodeStatus,
} from './calicoctl-views.js';

const SUMMARY =
  "calicoctl (ipip-lab's): calicoctl's views of this emulated Calico cluster, as calicoctl v3.29 prints them.";

/** After the options: laid out by hand, so not wrapped as commander wraps a description. */
const GUIDE = `
  calicoctl node status               this node's BGP peers. On a Calico node calicoctl asks BIRD (show protocols);
                                      here the agent's BGP speaker stands in BIRD's place: up / Established once
                                      the mesh session is open, start with Active, Connect or Passive before.
                                      birdcl show protocols shows the same from BIRD's side.
  calicoctl get ippool -o wide        the pool: CIDR, NAT, IPIPMODE (Always: every block route goes via tunl0)
  calicoctl get nodes -o wide         each node's BGP address and AS ((64512): the default, inherited)
  calicoctl ipam show --show-blocks   the pool's use and each /26 block's (tunnel addresses and pods)
  calicoctl apply -f bgppeer.yaml     a BGPPeer into the lab's etcd: every node peers with a global one (no
                                      spec.node), PEER TYPE global in node status; iBGP (AS 64512) only.
                                      nodeSelector / peerSelector pick nodes by label (all(), k == 'v', has(k))
  calicoctl apply -f bgpconfig.yaml   the BGPConfiguration "default": nodeToNodeMeshEnabled: false turns the
                                      mesh off, and the nodes peer only as BGPPeers say
  calicoctl get bgppeer               the BGPPeers in etcd; calicoctl delete bgppeer NAME removes one
  calicoctl label nodes NAME k=v      a label on the node's Calico Node (--overwrite, or k --remove)
  calicoctl patch node NAME -p JSON   e.g. '{"spec":{"bgp":{"routeReflectorClusterID":"244.0.0.1"}}}' makes the
                                      node a route reflector: it leaves the mesh, and its BGPPeers are its clients

Route reflectors, as Calico's docs set them up:
  calicoctl patch node worker-node01 -p '{"spec":{"bgp":{"routeReflectorClusterID":"244.0.0.1"}}}'
  calicoctl label nodes worker-node01 route-reflector=true
  calicoctl apply -f -    # BGPPeer peer-with-route-reflectors: nodeSelector all(), peerSelector
                          # route-reflector == 'true'; BGPConfiguration default: nodeToNodeMeshEnabled: false

Each takes -o json, get -o yaml too:
  node status -o json   {calicoProcess, bgpBackend ("BIRD", or null when the agent runs with --routes spec, without
                        a speaker), routerId, as, ipv4Peers: [{peerAddress, peerType, state, since, bgpState, info,
                        changedAt}], ipv6Peers: []}
  ipam show -o json     [{grouping, cidr, capacity, inUse, free}]
  get -o json|yaml      the IPPool and Node resources (projectcalico.org/v3); a List unless one is named`;

const IPPOOL_NAMES = ['ippool', 'ippools', 'ipp', 'ipps', 'pool', 'pools'];
const NODE_NAMES = ['node', 'nodes', 'no', 'nos'];

export interface CalicoctlOptions {
  /** Read this spec instead of the running agents' cluster (tests on the host). */
  readonly spec?: string;
  /** The agent's socket (default: $IPIP_LAB_SOCKET or the node container's). */
  readonly socketPath?: string;
  readonly now?: () => number;
  /** The etcd that apply, delete and get bgppeer use (default: $IPIP_LAB_DATASTORE). */
  readonly datastore?: string;
}

/** The speaker's state; undefined when the agent runs none. Without an agent there is no calico-node at all. */
async function speakerStatus(options: CalicoctlOptions): Promise<SpeakerStatus | undefined> {
  const agent = new AgentClient({ socketPath: options.socketPath ?? agentSocketPath() }, 'this node', 5000);
  try {
    return await agent.request('GET /v1/bgp');
  } catch (error) {
    if (error instanceof AgentError && error.status === 404) return undefined;
    if (error instanceof UsageError) {
      throw new CalicoctlError(
        `Calico process is not running.\n(ipip-lab: no node agent answers here (${error.message}); run calicoctl in ` +
          'a node container, e.g. docker compose exec master-node calicoctl node status)',
      );
    }
    throw error;
  }
}

/** calicoctl's -o json (struct order, 2-space indent) and -o yaml (through JSON, so keys sorted; lists unindented). */
function printResources(
  io: Io,
  output: string,
  kind: 'IPPool' | 'Node' | 'BGPPeer',
  objects: unknown[],
  single: boolean,
): void {
  const value = single
    ? objects[0]
    : { kind: `${kind}List`, apiVersion: 'projectcalico.org/v3', metadata: {}, items: objects };
  io.out(
    output === 'json'
      ? `${JSON.stringify(value, null, 2)}\n`
      : toYaml(value, { sortMapEntries: true, indentSeq: false }),
  );
}

async function get(io: Io, kind: string, name: string | undefined, output: string, options: CalicoctlOptions) {
  if (BGPPEER_NAMES.includes(kind)) {
    const peers = await getStored<BgpPeerResource>(options.datastore ?? datastoreEndpoint(), 'BGPPeer', name);
    if (output === 'json' || output === 'yaml') return printResources(io, output, 'BGPPeer', peers, name !== undefined);
    return io.out(renderGetBgpPeers(peers));
  }
  const { cluster } = await openClusterView(options.spec);
  const wide = output === 'wide';
  if (IPPOOL_NAMES.includes(kind)) {
    if (name !== undefined && name !== cluster.pool.name) {
      throw new CalicoctlError(`resource does not exist: IPPool(${name}) with error: <nil>`);
    }
    if (output === 'json' || output === 'yaml') {
      const pool = ipPoolResource(cluster.pool, new Date(options.now?.() ?? Date.now()));
      return printResources(io, output, 'IPPool', [pool], name !== undefined);
    }
    return io.out(renderGetIpPools(cluster, wide));
  }
  if (NODE_NAMES.includes(kind) && (output === 'json' || output === 'yaml') && options.spec === undefined) {
    // Where the lab has a datastore, the Nodes are the ones calico-node registered, with what calicoctl changed.
    if (options.datastore !== undefined || process.env.IPIP_LAB_DATASTORE || process.env.ETCDCTL_ENDPOINTS) {
      const stored = await getStored<NodeResource>(options.datastore ?? datastoreEndpoint(), 'Node', name);
      return printResources(io, output, 'Node', stored, name !== undefined);
    }
  }
  if (NODE_NAMES.includes(kind)) {
    const nodes = name === undefined ? cluster.nodes : cluster.nodes.filter((node) => node.name === name);
    if (nodes.length === 0) throw new CalicoctlError(`resource does not exist: Node(${name}) with error: <nil>`);
    const chosen: ClusterState = { ...cluster, nodes };
    if (output === 'json' || output === 'yaml') {
      const objects = [...nodes]
        .sort((a, b) => (a.name < b.name ? -1 : 1))
        .map((node) =>
          nodeResource(
            node.name,
            node.ip,
            underlaySubnet(cluster.spec.network, node.ip),
            node.tunnelAddress,
            new Date(options.now?.() ?? Date.now()),
          ),
        );
      return printResources(io, output, 'Node', objects, name !== undefined);
    }
    return io.out(renderGetNodes(chosen, wide));
  }
  throw new UsageError(
    `ipip-lab's calicoctl gets ippool, node and bgppeer resources only, not ${kind} ` +
      "(etcdctl get --prefix /calico --keys-only lists what the lab's etcd holds)",
  );
}

function buildProgram(io: Io, options: CalicoctlOptions): Command {
  const now = options.now ?? Date.now;
  const program = new Command('calicoctl')
    .description(SUMMARY)
    .addHelpText('after', GUIDE)
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError('(run calicoctl --help for what this lab emulates)')
    .exitOverride();

  const node = program.command('node').description('Calico node management: node status');
  node
    .command('status')
    .description("this node's BGP peers, as calicoctl reads them from BIRD")
    .addOption(new Option('-o, --output <format>', 'json: the peers as data').choices(['json']))
    .action(async (flags: { output?: string }) => {
      const status = await speakerStatus(options);
      if (flags.output === 'json') io.out(`${JSON.stringify(nodeStatusJson(status, now()), null, 2)}\n`);
      else io.out(renderNodeStatus(status, now()));
    });

  program
    .command('get')
    .description('show ippool or node resources')
    .argument(
      '<kind>',
      `ippool (${IPPOOL_NAMES.join(', ')}), node (${NODE_NAMES.join(', ')}) or bgppeer (${BGPPEER_NAMES.join(', ')})`,
    )
    .argument('[name]', 'one resource by name')
    .addOption(
      new Option('-o, --output <format>', 'wide: every column; json or yaml: the resources').choices([
        'ps',
        'wide',
        'json',
        'yaml',
      ]),
    )
    .addHelpText('after', '\nExamples:\n  calicoctl get ippool -o wide\n  calicoctl get nodes -o wide')
    .action(async (kind: string, name: string | undefined, flags: { output?: string }) =>
      get(io, kind, name, flags.output ?? 'ps', options),
    );

  program
    .command('apply')
    .description(
      'create or replace BGPPeer and BGPConfiguration resources from a file, in the datastore the agents watch',
    )
    .requiredOption('-f, --filename <file>', 'the resources (YAML or JSON, several documents allowed)')
    .addHelpText(
      'after',
      '\nExample (a global peer: every node peers with it):\n' +
        '  calicoctl apply -f - <<EOF\n  apiVersion: projectcalico.org/v3\n  kind: BGPPeer\n  metadata:\n' +
        '    name: tor\n  spec:\n    peerIP: 10.0.0.50\n    asNumber: 64512\n  EOF',
    )
    .action((flags: { filename: string }) =>
      applyResources(io, stdinPath(flags.filename), options.datastore ?? datastoreEndpoint(), now),
    );

  program
    .command('delete')
    .description('delete BGPPeer or BGPConfiguration resources, by file or by name')
    .argument('[kind]', `bgppeer (${BGPPEER_NAMES.join(', ')}) or ${BGPCONFIGURATION_NAMES.join(', ')}`)
    .argument('[name]', 'the resource to delete')
    .option('-f, --filename <file>', 'delete the resources this file names')
    .action(async (kind: string | undefined, name: string | undefined, flags: { filename?: string }) => {
      const endpoint = options.datastore ?? datastoreEndpoint();
      if (flags.filename !== undefined) return deleteResources(io, resourcesIn(stdinPath(flags.filename)), endpoint);
      if (kind === undefined || name === undefined) {
        throw new UsageError('delete needs -f FILE, or a kind and a name: calicoctl delete bgppeer NAME');
      }
      const stored = storedKindNamed(kind);
      if (!stored) {
        throw new CalicoctlError(
          `ipip-lab's calicoctl deletes bgppeer and bgpconfiguration resources only, not ${kind}`,
        );
      }
      return deleteResources(io, [{ kind: stored, name }], endpoint);
    });

  program
    .command('label')
    .description("add, change or remove a label on a node's Calico Node resource in the datastore")
    .argument('<kind>', `node (${NODE_NAMES.join(', ')})`)
    .argument('<name>', 'the node')
    .argument('<label>', 'key=value, or key with --remove')
    .option('--overwrite', 'replace the value of a key that is already there')
    .option('--remove', 'remove the key')
    .addHelpText('after', '\nExample:\n  calicoctl label nodes worker-node01 route-reflector=true')
    .action(async (kind: string, name: string, label: string, flags: { overwrite?: boolean; remove?: boolean }) => {
      if (!NODE_NAMES.includes(kind.toLowerCase())) {
        throw new CalicoctlError(`ipip-lab's calicoctl labels node resources only, not ${kind}`);
      }
      if (flags.overwrite && flags.remove) throw new UsageError('--overwrite and --remove cannot be used together');
      const [key, value, ...rest] = label.split('=');
      if (flags.remove ? label.includes('=') : value === undefined || rest.length > 0) {
        throw new CalicoctlError(`invalid label ${label}`);
      }
      const change = { key, overwrite: flags.overwrite === true, ...(!flags.remove && { value }) };
      return labelNode(io, kind, name, change, options.datastore ?? datastoreEndpoint());
    });

  program
    .command('patch')
    .description("patch a node's Calico Node resource in the datastore (a strategic merge patch, in JSON)")
    .argument('<kind>', `node (${NODE_NAMES.join(', ')})`)
    .argument('<name>', 'the node')
    .requiredOption('-p, --patch <patch>', 'the JSON to merge into the resource')
    .addHelpText(
      'after',
      '\nExample (make a node a route reflector):\n' +
        `  calicoctl patch node worker-node01 -p '{"spec":{"bgp":{"routeReflectorClusterID":"244.0.0.1"}}}'`,
    )
    .action(async (kind: string, name: string, flags: { patch: string }) => {
      if (!NODE_NAMES.includes(kind.toLowerCase())) {
        throw new CalicoctlError(`ipip-lab's calicoctl patches node resources only, not ${kind}`);
      }
      return patchNode(io, name, flags.patch, options.datastore ?? datastoreEndpoint());
    });

  const ipam = program.command('ipam').description('IP address management: ipam show');
  ipam
    .command('show')
    .description("the pool's use; --show-blocks adds each allocated block")
    .option('--show-blocks', 'one row per block')
    .addOption(new Option('-o, --output <format>', 'json: the rows as data').choices(['json']))
    .action(async (flags: { showBlocks?: boolean; output?: string }) => {
      const { cluster } = await openClusterView(options.spec);
      if (flags.output === 'json') {
        const rows = ipamUsage(cluster).filter((row) => flags.showBlocks || row.grouping === 'IP Pool');
        io.out(`${JSON.stringify(rows, null, 2)}\n`);
      } else io.out(renderIpamShow(cluster, flags.showBlocks === true));
    });
  return program;
}

/** calicoctl's `-f -`: the resources on standard input. */
function stdinPath(file: string): string {
  return file === '-' ? '/dev/stdin' : file;
}

/** Runs one calicoctl command line; resolves with its exit code (calicoctl's: 1 for every error). */
export async function runCalicoctl(
  argv: readonly string[],
  io: Io = processIo,
  options: CalicoctlOptions = {},
): Promise<number> {
  try {
    await buildProgram(io, options).parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.code === 'commander.helpDisplayed' ? 0 : 1;
    if (error instanceof CalicoctlError) {
      io.err(`${error.message}\n`);
      return 1;
    }
    if (error instanceof UsageError || error instanceof SpecError) {
      io.err(`calicoctl: ${error.message}\n`);
      return 1;
    }
    io.err(`calicoctl: ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}
