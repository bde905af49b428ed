import { Command, CommanderError, Option } from 'commander';
import { nodeDataplane, podDataplane, SpecError, type ClusterState } from '../calico/index.js';
import {
  renderIpAddr,
  renderIpRoute,
  renderRoute,
  RouteTable,
  type Ipv4Address,
  type Link,
  type Route,
} from '../routing/index.js';
import { loadCluster, resolveNode, resolveSpecPath } from './cluster-source.js';
import { IPIP_LAB_VERSION, localSystemInfo } from './environment.js';
import { UsageError } from './errors.js';
import { renderDescribeNode, renderGetNodes, renderGetPods, type ViewContext } from './kubectl-views.js';

/** Where a command's text goes; tests pass their own to capture it. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

const processIo: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

interface CommonOptions {
  spec?: string;
  output?: string;
}

const SPEC_HELP = 'cluster spec file (default: $IPIP_LAB_SPEC, or /etc/ipip-lab/cluster.yaml in a node container)';

function specOption(): Option {
  return new Option('--spec <file>', SPEC_HELP);
}

function jsonOutputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(['json']);
}

function printJson(io: Io, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}

function viewContext(): ViewContext {
  return { system: localSystemInfo(), now: Date.now() };
}

function gatewayResolver(cluster: ClusterState): (address: Ipv4Address) => string | undefined {
  return (address) => cluster.nodes.find((n) => n.ip.equals(address))?.name;
}

/** The order the kernel dumps its table in, which `ip route` and `route` print. */
function inKernelOrder(routes: readonly Route[]): Route[] {
  const table = new RouteTable();
  for (const route of routes) table.add(route);
  return table.routes();
}

/** `ip addr` / `ip route` and `route [-n]` over one set of links and routes, in text or JSON. */
function printNodeView(
  io: Io,
  view: 'addr' | 'route' | 'net-tools-route',
  dataplane: { links: readonly Link[]; routes: readonly Route[] },
  options: { output?: string; numeric?: boolean; style: 'iproute2' | 'busybox'; cluster: ClusterState },
): void {
  const routes = inKernelOrder(dataplane.routes);
  if (options.output === 'json') {
    printJson(io, view === 'addr' ? dataplane.links : routes);
    return;
  }
  if (view === 'addr') io.out(renderIpAddr(dataplane.links, { style: options.style }));
  else if (view === 'route') io.out(renderIpRoute(routes));
  else io.out(renderRoute(routes, { numeric: options.numeric ?? false, resolveHost: gatewayResolver(options.cluster) }));
}

const IP_OBJECTS: Record<string, 'addr' | 'route'> = {
  a: 'addr',
  addr: 'addr',
  address: 'addr',
  r: 'route',
  ro: 'route',
  route: 'route',
};

/** Parses the words after `ip` the way iproute2 abbreviates them (`ip a`, `ip addr show`, `ip r`). */
function ipObject(words: readonly string[]): 'addr' | 'route' {
  const [object = 'addr', verb, ...rest] = words;
  const view = IP_OBJECTS[object];
  if (!view || (verb !== undefined && verb !== 'show' && verb !== 'list') || rest.length > 0) {
    throw new UsageError(`unsupported: ip ${words.join(' ')} (supported: ip addr [show], ip route [show])`);
  }
  return view;
}

export function buildProgram(io: Io = processIo): Command {
  const program = new Command('ipip-lab')
    .description(
      "A userspace IPIP tunnel emulator that reproduces Calico's pod-network data path.\n" +
        'Read views work from a cluster spec alone (--spec FILE), with kubectl\'s and iproute2\'s output shapes.',
    )
    .version(IPIP_LAB_VERSION)
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .enablePositionalOptions();

  const get = program.command('get').description('list nodes or pods, as kubectl get does');
  for (const [resource, aliases] of [
    ['nodes', ['node', 'no']],
    ['pods', ['pod', 'po']],
  ] as const) {
    get
      .command(resource)
      .aliases([...aliases])
      .description(`list ${resource} (kubectl get ${resource} [-o wide|json])`)
      .addOption(new Option('-o, --output <format>', 'wide adds kubectl\'s extra columns; json for scripts').choices(['wide', 'json']))
      .addOption(specOption())
      .addHelpText('after', `\nExample:\n  ipip-lab get ${resource} -o wide --spec containers/cni-overview/cluster.yaml`)
      .action((options: CommonOptions) => {
        const cluster = loadCluster(resolveSpecPath(options.spec));
        if (resource === 'nodes') {
          if (options.output === 'json') printJson(io, cluster.nodes);
          else io.out(renderGetNodes(cluster, viewContext(), options.output === 'wide'));
        } else if (options.output === 'json') printJson(io, cluster.pods);
        else io.out(renderGetPods(cluster.pods, viewContext(), options.output === 'wide'));
      });
  }

  program
    .command('describe')
    .description('describe a node, as kubectl describe node does, plus its Calico IPAM blocks')
    .argument('<kind>', 'only "node" is supported')
    .argument('<name>', 'node name')
    .addOption(jsonOutputOption())
    .addOption(specOption())
    .action((kind: string, name: string, options: CommonOptions) => {
      if (kind !== 'node' && kind !== 'nodes' && kind !== 'no') {
        throw new UsageError(`unsupported: describe ${kind} (supported: describe node NAME)`);
      }
      const cluster = loadCluster(resolveSpecPath(options.spec));
      const node = resolveNode(cluster, name);
      if (options.output === 'json') printJson(io, node);
      else io.out(renderDescribeNode(cluster, node, viewContext()));
    });

  program
    .command('route')
    .description("a node's routing table, as net-tools route prints it (gateways shown as node names)")
    .option('-n, --numeric', 'numeric addresses, as route -n')
    .option('--node <name>', 'the node (default: this host inside a node container)')
    .addOption(jsonOutputOption())
    .addOption(specOption())
    .action((options: CommonOptions & { numeric?: boolean; node?: string }) => {
      const cluster = loadCluster(resolveSpecPath(options.spec));
      const node = resolveNode(cluster, options.node);
      printNodeView(io, 'net-tools-route', nodeDataplane(cluster, node.name), {
        ...options,
        style: 'iproute2',
        cluster,
      });
    });

  program
    .command('ip')
    .description("a node's interfaces or routes, as iproute2 prints them: ip addr | ip route")
    .argument('[object...]', 'addr [show] | route [show] (abbreviations a, r accepted)')
    .option('--node <name>', 'the node (default: this host inside a node container)')
    .addOption(jsonOutputOption())
    .addOption(specOption())
    .action((words: string[], options: CommonOptions & { node?: string }) => {
      const view = ipObject(words);
      const cluster = loadCluster(resolveSpecPath(options.spec));
      const node = resolveNode(cluster, options.node);
      printNodeView(io, view, nodeDataplane(cluster, node.name), { ...options, style: 'iproute2', cluster });
    });

  program
    .command('exec')
    .description("run a command in a pod's view: ip addr | ip route")
    .argument('<pod>', 'pod name (see: ipip-lab get pods)')
    .argument('<command...>', 'after --, e.g. -- ip addr')
    .addOption(jsonOutputOption())
    .addOption(specOption())
    .passThroughOptions()
    .addHelpText('after', '\nExample:\n  ipip-lab exec hello-world-xxxxxxxxxx-xxxxx -- ip addr')
    .action((podName: string, command: string[], options: CommonOptions) => {
      // passThroughOptions keeps the `--` that separates the pod's command from ours.
      const [program, ...words] = command[0] === '--' ? command.slice(1) : command;
      if (program !== 'ip') {
        throw new UsageError(`unsupported in a pod: ${command.join(' ')} (supported: ip addr, ip route)`);
      }
      const view = ipObject(words);
      const cluster = loadCluster(resolveSpecPath(options.spec));
      const pod = cluster.pods.find((p) => p.name === podName);
      if (!pod) {
        throw new UsageError(
          `pods "${podName}" not found (pods: ${cluster.pods.map((p) => p.name).join(', ') || 'none'})`,
        );
      }
      printNodeView(io, view, podDataplane(cluster, pod.name), { ...options, style: 'busybox', cluster });
    });

  return program;
}

/** Runs the CLI and returns the exit code: 0, 2 for usage and spec errors, 1 for anything unexpected. */
export async function runCli(argv: readonly string[], io: Io = processIo): Promise<number> {
  try {
    await buildProgram(io).parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? 0 : 2;
    }
    if (error instanceof UsageError) {
      io.err(`ipip-lab: ${error.message}\n`);
      return error.exitCode;
    }
    if (error instanceof SpecError) {
      io.err(`ipip-lab: invalid spec: ${error.message}\n`);
      return 2;
    }
    io.err(`ipip-lab: ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}
