import { Command, CommanderError, Option } from 'commander';
import { nodeDataplane, podDataplane, SpecError, type ClusterState } from '../calico/index.js';
import {
  compareRoutesInKernelOrder,
  renderIpAddr,
  renderIpRoute,
  renderRoute,
  type Ipv4Address,
  type Link,
  type Route,
} from '../routing/index.js';
import { openClusterView, resolveNode } from './cluster-source.js';
import { agentFor } from './commands/agent-client.js';
import { runThroughAgent } from './commands/remote-exec.js';
import { registerAgentCommands } from './commands/agent-commands.js';
import { registerGenSpecCommand } from './commands/gen-spec.js';
import { registerKindCommand } from './commands/kind.js';
import { registerSwarmCommand } from './commands/swarm.js';
import { jsonOutputOption, printJson, processIo, specOption, type CommonOptions, type Io } from './common.js';
import { IPIP_LAB_VERSION } from './environment.js';
import { ExitStatus, UsageError } from './errors.js';
import { gatherViewContext, renderDescribeNode, renderGetNodes, renderGetPods } from './kubectl-views.js';

function gatewayResolver(cluster: ClusterState): (address: Ipv4Address) => string | undefined {
  return (address) => cluster.nodes.find((n) => n.ip.equals(address))?.name;
}

/** `ip addr` / `ip route` and `route [-n]` over one set of links and routes, in text or JSON. */
function printNodeView(
  io: Io,
  view: 'addr' | 'route' | 'net-tools-route',
  dataplane: { links: readonly Link[]; routes: Iterable<Route> },
  options: { output?: string; numeric?: boolean; style: 'iproute2' | 'busybox'; cluster: ClusterState },
): void {
  // The order the kernel dumps its table in, which `ip route` and `route` print.
  const routes = [...dataplane.routes].sort(compareRoutesInKernelOrder);
  if (options.output === 'json') {
    printJson(io, view === 'addr' ? dataplane.links : routes);
    return;
  }
  if (view === 'addr') io.out(renderIpAddr(dataplane.links, { style: options.style }));
  else if (view === 'route') io.out(renderIpRoute(routes));
  else
    io.out(renderRoute(routes, { numeric: options.numeric ?? false, resolveHost: gatewayResolver(options.cluster) }));
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

const NODE_OPTION_HELP = 'the node (default: this node, inside a node container)';

export function buildProgram(io: Io = processIo): Command {
  const program = new Command('ipip-lab')
    .description(
      "A userspace IPIP tunnel emulator that reproduces Calico's pod-network data path.\n" +
        "Read views print kubectl's and iproute2's output shapes: inside a node container from the running agents,\n" +
        'anywhere from a cluster spec (--spec FILE or $IPIP_LAB_SPEC).',
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
      .addOption(
        new Option('-o, --output <format>', "wide adds kubectl's extra columns; json for scripts").choices([
          'wide',
          'json',
        ]),
      )
      .addOption(specOption())
      .addHelpText(
        'after',
        `\nExample:\n  ipip-lab get ${resource} -o wide --spec containers/cni-overview/cluster.yaml`,
      )
      .action(async (options: CommonOptions) => {
        const view = await openClusterView(options.spec);
        const { cluster } = view;
        if (options.output === 'json') return printJson(io, resource === 'nodes' ? cluster.nodes : cluster.pods);
        const context = await gatherViewContext(view, cluster.nodes);
        io.out(
          resource === 'nodes'
            ? renderGetNodes(cluster, context, options.output === 'wide')
            : renderGetPods(cluster.pods, context, options.output === 'wide'),
        );
      });
  }

  program
    .command('describe')
    .description('describe a node, as kubectl describe node does, plus its Calico IPAM blocks')
    .argument('<kind>', 'only "node" is supported')
    .argument('<name>', 'node name')
    .addOption(jsonOutputOption())
    .addOption(specOption())
    .action(async (kind: string, name: string, options: CommonOptions) => {
      if (kind !== 'node' && kind !== 'nodes' && kind !== 'no') {
        throw new UsageError(`unsupported: describe ${kind} (supported: describe node NAME)`);
      }
      const view = await openClusterView(options.spec);
      const node = resolveNode(view.cluster, name);
      if (options.output === 'json') return printJson(io, node);
      io.out(renderDescribeNode(view.cluster, node, await gatherViewContext(view, [node])));
    });

  program
    .command('route')
    .description("a node's routing table, as net-tools route prints it (gateways shown as node names)")
    .option('-n, --numeric', 'numeric addresses, as route -n')
    .option('--node <name>', NODE_OPTION_HELP)
    .addOption(jsonOutputOption())
    .addOption(specOption())
    .action(async (options: CommonOptions & { numeric?: boolean; node?: string }) => {
      const clusterView = await openClusterView(options.spec);
      const { cluster } = clusterView;
      const node = resolveNode(cluster, options.node);
      const { links } = nodeDataplane(cluster, node.name);
      printNodeView(
        io,
        'net-tools-route',
        { links, routes: await clusterView.routes(node) },
        {
          ...options,
          style: 'iproute2',
          cluster,
        },
      );
    });

  program
    .command('ip')
    .description("a node's interfaces or routes, as iproute2 prints them: ip addr | ip route")
    .argument('[object...]', 'addr [show] | route [show] (abbreviations a, r accepted)')
    .option('--node <name>', NODE_OPTION_HELP)
    .addOption(jsonOutputOption())
    .addOption(specOption())
    .action(async (words: string[], options: CommonOptions & { node?: string }) => {
      const view = ipObject(words);
      const clusterView = await openClusterView(options.spec);
      const { cluster } = clusterView;
      const node = resolveNode(cluster, options.node);
      const { links } = nodeDataplane(cluster, node.name);
      const routes = view === 'route' ? await clusterView.routes(node) : [];
      printNodeView(io, view, { links, routes }, { ...options, style: 'iproute2', cluster });
    });

  program
    .command('exec')
    .description(
      "run a command in a pod: on a kernel-backed node the real tool in the pod's network namespace (a shell too), " +
        "on a userspace node the pod's view (ip addr | ip route)",
    )
    .argument('<pod>', 'pod name (see: ipip-lab get pods)')
    .argument('<command...>', 'after --, e.g. -- ip addr')
    .option('-i, --stdin', 'pass standard input to the command (kernel-backed pods)')
    .option('-t, --tty', 'give the command a terminal, as kubectl exec -it does (kernel-backed pods)')
    .addOption(jsonOutputOption())
    .addOption(specOption())
    .passThroughOptions()
    .addHelpText(
      'after',
      '\nExamples:\n  ipip-lab exec hello-world-xxxxxxxxxx-xxxxx -- ip addr\n' +
        '  ipip-lab exec -it hello-world-xxxxxxxxxx-xxxxx -- /bin/sh      (kernel-backed pods)\n' +
        '  ipip-lab exec hello-world-xxxxxxxxxx-xxxxx -- ping -c 3 192.168.158.1',
    )
    .action(async (podName: string, command: string[], options: ExecOptions) => {
      // passThroughOptions keeps the `--` that separates the pod's command from ours.
      const words = command[0] === '--' ? command.slice(1) : command;
      const { cluster, live } = await openClusterView(options.spec);
      const pod = cluster.pods.find((p) => p.name === podName);
      if (!pod) {
        throw new UsageError(
          `pods "${podName}" not found (pods: ${cluster.pods.map((p) => p.name).join(', ') || 'none'})`,
        );
      }
      if (live && options.output === undefined) {
        const node = cluster.nodes.find((candidate) => candidate.name === pod.node)!;
        const agent = agentFor(cluster, node, `exec ${podName} -- ${words.join(' ')}`);
        if ((await agent.request('GET /v1/node')).dataplane === 'kernel') {
          throw new ExitStatus(
            await runThroughAgent(agent, podName, words, { stdin: options.stdin === true, tty: options.tty === true }),
          );
        }
      }
      const [tool, ...rest] = words;
      if (tool !== 'ip') {
        throw new UsageError(
          `unsupported in a pod of the userspace node: ${words.join(' ')} (supported: ip addr, ip route; ` +
            'the kernel-backed node runs any command)',
        );
      }
      printNodeView(io, ipObject(rest), podDataplane(cluster, pod.name), { ...options, style: 'busybox', cluster });
    });

  registerAgentCommands(program, io);
  registerGenSpecCommand(program, io);
  registerKindCommand(program, io);
  registerSwarmCommand(program, io);
  return program;
}

interface ExecOptions extends CommonOptions {
  stdin?: boolean;
  tty?: boolean;
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
    if (error instanceof ExitStatus) return error.exitCode;
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
