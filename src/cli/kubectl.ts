/**
 * `kubectl` inside a node container: a thin front that takes the course's commands word for word and answers with
 * the same views as `ipip-lab` (same cluster, same renderers), with kubectl's flags, errors and exit codes. It
 * understands only what the seed walkthroughs use; anything else gets one line saying what it does understand.
 */
import { stringify as toYaml } from 'yaml';
import { SpecError, type ClusterState, type NodeState, type PodState } from '../calico/index.js';
import { openClusterView, type ClusterView } from './cluster-source.js';
import { agentFor } from './commands/agent-client.js';
import { runThroughAgent } from './commands/remote-exec.js';
import { processIo, type Io } from './common.js';
import { ExitStatus, UsageError } from './errors.js';
import { runManifestCommand, runScaleCommand } from './kubectl-apply.js';
import { renderJsonPath } from './kubectl-jsonpath.js';
import {
  gatherViewContext,
  renderDescribeNode,
  renderGetNodes,
  renderGetPods,
  type ViewContext,
} from './kubectl-views.js';
import { runCli } from './program.js';

const SUPPORTED =
  'get nodes|pods [NAME] [-o wide|json|yaml|name|jsonpath=...] [-A] [-n NS] [-l KEY=VALUE], describe node [NAME-PREFIX], ' +
  'exec [-it] POD -- COMMAND, debug node/NAME -it --image=IMAGE, apply -f FILE, delete -f FILE, ' +
  'scale deployment NAME --replicas=N';

const USAGE = `kubectl (ipip-lab's): the course's kubectl commands against this emulated Calico cluster.

The lab has no API server: these commands read the cluster every node agent computes from the lab's spec,
and apply/delete rewrite that spec and have every agent reload it.

Commands:
  kubectl get nodes -o wide
  kubectl get pods -o wide                      (-A: all namespaces; kube-system pods are not emulated)
  kubectl get pods --selector=app=hello-world -o jsonpath='{.items[0].metadata.name}'
  kubectl describe node master-node
  kubectl exec -it POD -- /bin/sh               (kernel-backed pods: any command; userspace: ip addr | ip route)
  kubectl debug node/NODE -it --image=ubuntu    (a shell on that node)
  kubectl apply -f deployment.yml
  kubectl delete -f deployment.yml
  kubectl scale deployment hello-world --replicas=30

Node views (route, ip addr, ifconfig, ping, curl, tcpdump): ipip-lab --help
`;

/** Flags that take a value, by every name kubectl accepts for them. */
const VALUE_FLAGS: Record<string, string> = {
  '-n': 'namespace',
  '--namespace': 'namespace',
  '-o': 'output',
  '--output': 'output',
  '-l': 'selector',
  '--selector': 'selector',
  '-f': 'filename',
  '--filename': 'filename',
  '-c': 'container',
  '--container': 'container',
  '--image': 'image',
  '--replicas': 'replicas',
};

const BOOLEAN_FLAGS: Record<string, string> = {
  '-A': 'all-namespaces',
  '--all-namespaces': 'all-namespaces',
  '-i': 'stdin',
  '--stdin': 'stdin',
  '-t': 'tty',
  '--tty': 'tty',
  '-h': 'help',
  '--help': 'help',
};

interface KubectlArgs {
  readonly words: string[];
  readonly values: Map<string, string[]>;
  readonly booleans: Set<string>;
  /** The words after `--`, for exec. */
  readonly command: string[] | undefined;
}

function unsupported(what: string): UsageError {
  return new UsageError(`unsupported: kubectl ${what} (this lab's kubectl supports: ${SUPPORTED})`);
}

/** kubectl's flag grammar: `-o wide`, `-o=wide`, `-owide`, `--output=wide`, `-it`, anywhere among the words. */
export function parseKubectlArgs(argv: readonly string[]): KubectlArgs {
  const words: string[] = [];
  const values = new Map<string, string[]>();
  const booleans = new Set<string>();
  const set = (name: string, value: string): void => void values.set(name, [...(values.get(name) ?? []), value]);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') return { words, values, booleans, command: argv.slice(i + 1) };
    if (!arg.startsWith('-') || arg === '-') {
      words.push(arg);
      continue;
    }
    const equals = arg.indexOf('=');
    const flag = equals > 0 ? arg.slice(0, equals) : arg;
    const short = /^-[A-Za-z]/.test(arg) && !arg.startsWith('--') ? arg.slice(0, 2) : undefined;
    if (VALUE_FLAGS[flag]) {
      const value = equals > 0 ? arg.slice(equals + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`flag needs an argument: ${JSON.stringify(flag)}`);
      set(VALUE_FLAGS[flag], value);
    } else if (short && VALUE_FLAGS[short]) {
      set(VALUE_FLAGS[short], arg.slice(2).replace(/^=/, ''));
    } else if (BOOLEAN_FLAGS[arg]) {
      booleans.add(BOOLEAN_FLAGS[arg]);
    } else if (/^-[A-Za-z]{2,}$/.test(arg) && [...arg.slice(1)].every((c) => BOOLEAN_FLAGS[`-${c}`])) {
      for (const c of arg.slice(1)) booleans.add(BOOLEAN_FLAGS[`-${c}`]);
    } else {
      throw unsupported(`flag ${arg}`);
    }
  }
  return { words, values, booleans, command: undefined };
}

function single(args: KubectlArgs, name: string): string | undefined {
  const given = args.values.get(name);
  if (given && given.length > 1) throw new UsageError(`--${name} given ${given.length} times: give it once`);
  return given?.[0];
}

/** Equality-based label selectors (`a=b`, `a==b`, `a!=b`, `a`, `!a`), comma-separated, as kubectl's -l takes them. */
export function labelSelector(text: string): (labels: Readonly<Record<string, string>>) => boolean {
  const requirements = text.split(',').map((part) => {
    const term = part.trim();
    const match = /^(!?)([A-Za-z0-9_./-]+)(?:(!=|==|=)(.*))?$/.exec(term);
    if (!match || (match[1] && match[3])) {
      throw new UsageError(
        `unable to parse requirement: ${JSON.stringify(term)} (supported: KEY=VALUE, KEY!=VALUE, KEY, !KEY)`,
      );
    }
    const [, not, key, operator, value = ''] = match;
    if (!operator) return (labels: Readonly<Record<string, string>>) => key in labels !== (not === '!');
    return (labels: Readonly<Record<string, string>>) => (labels[key] === value) === (operator !== '!=');
  });
  return (labels) => requirements.every((matches) => matches(labels));
}

type Resource = 'nodes' | 'pods';

const RESOURCES: Record<string, Resource> = {
  nodes: 'nodes',
  node: 'nodes',
  no: 'nodes',
  pods: 'pods',
  pod: 'pods',
  po: 'pods',
};

function resource(word: string | undefined, verb: string): Resource {
  const found = word === undefined ? undefined : RESOURCES[word];
  if (!found) throw unsupported(`${verb}${word === undefined ? '' : ` ${word}`}`);
  return found;
}

/** The Pod object as the API would hold it: the fields views and jsonpath use. */
function podObject(cluster: ClusterState, pod: PodState): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: pod.name, namespace: pod.namespace, labels: pod.labels },
    spec: {
      containers: pod.containers.map((c) => ({ name: c.name, image: c.image, ports: c.ports })),
      nodeName: pod.node,
    },
    status: {
      phase: 'Running',
      hostIP: cluster.nodes.find((n) => n.name === pod.node)?.ip.toString(),
      podIP: pod.ip.toString(),
      podIPs: [{ ip: pod.ip.toString() }],
    },
  };
}

function nodeObject(cluster: ClusterState, node: NodeState, context: ViewContext): unknown {
  const { system } = context.facts.get(node.name)!;
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: node.name, labels: node.labels, annotations: node.annotations },
    spec: { podCIDR: node.podCIDR.toString(), podCIDRs: [node.podCIDR.toString()], taints: node.taints },
    status: {
      addresses: [
        { type: 'InternalIP', address: node.internalIP.toString() },
        { type: 'Hostname', address: node.name },
      ],
      nodeInfo: {
        architecture: system.architecture,
        containerRuntimeVersion: system.containerRuntime,
        kernelVersion: system.kernelVersion,
        kubeletVersion: cluster.spec.kubernetesVersion,
        operatingSystem: 'linux',
        osImage: system.osImage,
      },
    },
  };
}

/** The named objects, in the order named, or the API server's NotFound for the first that does not exist. */
function named<T extends { name: string }>(items: readonly T[], kind: Resource, names: readonly string[]): T[] {
  return names.map((name) => {
    const item = items.find((candidate) => candidate.name === name);
    if (!item) throw new UsageError(`Error from server (NotFound): ${kind} "${name}" not found`);
    return item;
  });
}

/** `-o json|yaml|name|jsonpath=…`: the objects (one named object alone, else a List), printed as kubectl does. */
function printObjects(io: Io, output: string, kind: Resource, objects: readonly unknown[], alone: boolean): void {
  const value = alone
    ? objects[0]
    : { apiVersion: 'v1', items: objects, kind: 'List', metadata: { resourceVersion: '' } };
  if (output === 'json') io.out(`${JSON.stringify(value, null, 4)}\n`);
  else if (output === 'yaml') io.out(toYaml(value));
  else if (output === 'name') {
    for (const object of objects)
      io.out(`${kind === 'nodes' ? 'node' : 'pod'}/${(object as { metadata: { name: string } }).metadata.name}\n`);
  } else io.out(renderJsonPath(output.slice('jsonpath='.length), value));
}

const OUTPUTS = ['', 'wide', 'json', 'yaml', 'name'];

/** Which objects of the cluster `get` lists. */
interface GetScope {
  readonly allNamespaces: boolean;
  readonly namespace: string;
}

/** What `get` does with one kind of object: which it lists, and how it prints them as rows and as API objects. */
interface ResourceKind<T extends NodeState | PodState> {
  readonly resource: Resource;
  candidates(cluster: ClusterState, scope: GetScope): readonly T[];
  /** The nodes whose facts the rows need. */
  nodesOf(chosen: readonly T[], cluster: ClusterState): readonly NodeState[];
  table(cluster: ClusterState, chosen: readonly T[], context: ViewContext, wide: boolean, scope: GetScope): string;
  object(cluster: ClusterState, item: T, context: ViewContext): unknown;
}

const NODE_KIND: ResourceKind<NodeState> = {
  resource: 'nodes',
  candidates: (cluster) => cluster.nodes,
  nodesOf: (chosen) => chosen,
  table: (cluster, chosen, context, wide) => renderGetNodes({ ...cluster, nodes: [...chosen] }, context, wide),
  object: nodeObject,
};

const POD_KIND: ResourceKind<PodState> = {
  resource: 'pods',
  candidates: (cluster, { allNamespaces, namespace }) =>
    cluster.pods.filter((p) => allNamespaces || p.namespace === namespace),
  nodesOf: (_chosen, cluster) => cluster.nodes,
  table: (_cluster, chosen, context, wide, { allNamespaces }) =>
    renderGetPods(chosen, context, wide, { allNamespaces }),
  object: (cluster, pod) => podObject(cluster, pod),
};

async function get(io: Io, args: KubectlArgs, spec: string | undefined): Promise<void> {
  const [, word, ...names] = args.words;
  const kind = resource(word, 'get');
  const output = single(args, 'output') ?? '';
  if (!OUTPUTS.includes(output) && !output.startsWith('jsonpath=')) {
    throw unsupported(`get -o ${output}`);
  }
  const selector = single(args, 'selector');
  const matches = selector === undefined ? () => true : labelSelector(selector);
  const scope = {
    allNamespaces: args.booleans.has('all-namespaces'),
    namespace: single(args, 'namespace') ?? 'default',
  };
  const view = await openClusterView(spec);
  const request: GetRequest = { names, output, matches, scope };
  await (kind === 'nodes' ? getObjects(io, view, NODE_KIND, request) : getObjects(io, view, POD_KIND, request));
}

interface GetRequest {
  readonly names: readonly string[];
  readonly output: string;
  readonly matches: (labels: Readonly<Record<string, string>>) => boolean;
  readonly scope: GetScope;
}

async function getObjects<T extends NodeState | PodState>(
  io: Io,
  view: ClusterView,
  resourceKind: ResourceKind<T>,
  { names, output, matches, scope }: GetRequest,
): Promise<void> {
  const { cluster } = view;
  const kind = resourceKind.resource;
  const candidates = resourceKind.candidates(cluster, scope);
  const chosen = (names.length > 0 ? named(candidates, kind, names) : candidates).filter((item) =>
    matches(item.labels),
  );

  if (chosen.length === 0 && (output === '' || output === 'wide')) {
    // kubectl says this on stderr, so a pipe sees no rows.
    io.err(
      kind === 'nodes' || scope.allNamespaces
        ? 'No resources found\n'
        : `No resources found in ${scope.namespace} namespace.\n`,
    );
    return;
  }
  const context = await gatherViewContext(view, resourceKind.nodesOf(chosen, cluster));
  if (output === '' || output === 'wide') {
    io.out(resourceKind.table(cluster, chosen, context, output === 'wide', scope));
    if (kind === 'pods' && scope.allNamespaces) {
      io.err(
        '(ipip-lab emulates the pod network only: no kube-system pods such as calico-node, coredns or kube-proxy)\n',
      );
    }
    return;
  }
  const objects = chosen.map((item) => resourceKind.object(cluster, item, context));
  printObjects(io, output, kind, objects, names.length === 1);
}

async function describe(io: Io, args: KubectlArgs, spec: string | undefined): Promise<void> {
  const [, word, ...given] = args.words;
  if (resource(word, 'describe') !== 'nodes') throw unsupported(`describe ${word}`);
  const names = given.length === 0 ? [''] : given;
  const view = await openClusterView(spec);
  // kubectl describe takes a name prefix: with no exact match it describes every node whose name starts with it,
  // which is how the course's `kubectl describe node master` showed master-node.
  const nodes = names.flatMap((name) => {
    const all = view.cluster.nodes;
    const exact = all.filter((node) => node.name === name);
    const prefixed = all.filter((node) => node.name.startsWith(name));
    return exact.length > 0 ? exact : prefixed.length > 0 ? prefixed : named(all, 'nodes', [name]);
  });
  const context = await gatherViewContext(view, nodes);
  io.out(nodes.map((node) => renderDescribeNode(view.cluster, node, context)).join('\n\n'));
}

const SHELLS = /^(\/bin\/|\/usr\/bin\/)?(sh|bash|ash|zsh)$/;

async function exec(io: Io, args: KubectlArgs, spec: string | undefined): Promise<number> {
  const [, podName, ...extra] = args.words;
  if (podName === undefined) throw new UsageError('expected POD: kubectl exec [-it] POD -- ip addr');
  if (args.command === undefined || extra.length > 0) {
    throw new UsageError(`give the command after --: kubectl exec ${podName} -- ip addr`);
  }
  const namespace = single(args, 'namespace') ?? 'default';
  const { cluster, live } = await openClusterView(spec);
  const [pod] = named(
    cluster.pods.filter((candidate) => candidate.namespace === namespace),
    'pods',
    [podName],
  );
  const [tool = ''] = args.command;
  const kernelBacked = live && (await runsInKernel(cluster, pod.node));
  if (!kernelBacked && SHELLS.test(tool)) {
    throw new UsageError(
      `the pods of the userspace node run no shell (${tool}): their network is simulated, not a namespace; run one ` +
        `command instead: kubectl exec ${podName} -- ip addr | ip route`,
    );
  }
  const flags = [...(args.booleans.has('stdin') ? ['-i'] : []), ...(args.booleans.has('tty') ? ['-t'] : [])];
  // Before the pod: exec passes everything after its first argument through to the pod's command.
  return runCli(
    ['exec', ...flags, ...(spec === undefined ? [] : ['--spec', spec]), podName, '--', ...args.command],
    io,
  );
}

/**
 * `kubectl debug node/NAME -it --image=IMAGE`: a shell on that node. kubectl would start a pod of IMAGE in the
 * node's namespaces; the lab has no images and no internet, so the shell is the node image's own, whose net-tools
 * the course's `apt install` would have added, and it says so first.
 */
async function debugNode(io: Io, args: KubectlArgs, spec: string | undefined): Promise<number> {
  const [, target, ...extra] = args.words;
  const name = /^node\/(.+)$/.exec(target ?? '')?.[1];
  if (name === undefined || extra.length > 0 || args.command !== undefined) {
    throw new UsageError('expected a node: kubectl debug node/NAME -it --image=ubuntu (this lab debugs nodes only)');
  }
  const { cluster, live } = await openClusterView(spec);
  const [node] = named(cluster.nodes, 'nodes', [name]);
  if (!live) throw new UsageError(`kubectl debug needs the running lab: run it in a node container`);
  const image = single(args, 'image') ?? 'the node image';
  io.err(
    `Creating debugging shell on node ${node.name} (not a pod of ${image}: the lab network has no internet, so ` +
      'apt cannot run there; net-tools, iproute2, ping, traceroute, curl and tcpdump are already installed).\n',
  );
  const agent = agentFor(cluster, node, `kubectl debug node/${node.name}`);
  return runThroughAgent(agent, undefined, ['bash'], {
    stdin: args.booleans.has('stdin'),
    tty: args.booleans.has('tty'),
  });
}

/** Whether the node's agent runs the kernel-backed node, whose pods are namespaces that run real programs. */
async function runsInKernel(cluster: ClusterState, nodeName: string): Promise<boolean> {
  const node = cluster.nodes.find((candidate) => candidate.name === nodeName);
  if (node === undefined) return false;
  const info = await agentFor(cluster, node, 'exec').request('GET /v1/node');
  return info.dataplane === 'kernel';
}

export interface KubectlOptions {
  /** Read this spec instead of the running agents' cluster (tests on the host). */
  readonly spec?: string;
}

/** The kinds `kubectl scale` takes, by every name kubectl accepts for a Deployment. */
const DEPLOYMENT_NAMES = new Set(['deployment', 'deployments', 'deploy', 'deployment.apps', 'deployments.apps']);

/** `scale deployment NAME` or `scale deployment/NAME`, with `--replicas=N`. */
async function scale(io: Io, args: KubectlArgs, options: KubectlOptions): Promise<void> {
  const target = args.words.slice(1);
  const [kind, name] = target.length === 1 ? target[0].split('/', 2) : target;
  if (target.length > 2 || kind === undefined || name === undefined || name === '') {
    throw new UsageError('scale needs a Deployment: kubectl scale deployment NAME --replicas=N');
  }
  if (!DEPLOYMENT_NAMES.has(kind)) throw unsupported(`scale ${kind} (only Deployments scale in this lab)`);
  const count = single(args, 'replicas');
  if (count === undefined || !/^\d+$/.test(count)) {
    throw new UsageError('The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0');
  }
  const namespace = single(args, 'namespace') ?? 'default';
  await runScaleCommand({ namespace, name }, Number(count), io, options);
}

/** Runs one kubectl command line; returns its exit code (0, or 1 for every error, as kubectl). */
export async function runKubectl(
  argv: readonly string[],
  io: Io = processIo,
  options: KubectlOptions = {},
): Promise<number> {
  try {
    const args = parseKubectlArgs(argv);
    const [verb] = args.words;
    if (verb === undefined || verb === 'help' || args.booleans.has('help')) {
      io.out(USAGE);
      return 0;
    }
    switch (verb) {
      case 'get':
        await get(io, args, options.spec);
        return 0;
      case 'describe':
        await describe(io, args, options.spec);
        return 0;
      case 'exec':
        return await exec(io, args, options.spec);
      case 'debug':
        return await debugNode(io, args, options.spec);
      case 'apply':
      case 'delete':
        if (args.words.length > 1) throw unsupported(args.words.join(' '));
        await runManifestCommand(verb, args.values.get('filename') ?? [], io, options);
        return 0;
      case 'scale':
        await scale(io, args, options);
        return 0;
      default:
        throw unsupported(verb);
    }
  } catch (error) {
    if (error instanceof ExitStatus) return error.exitCode;
    // Our own refusals are one line; anything else is a bug, and its stack says where.
    const expected = error instanceof UsageError || error instanceof SpecError;
    const message = expected ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
    // kubectl prints server errors as they come and its own with an "error: " prefix.
    io.err(message.startsWith('Error from server') ? `${message}\n` : `error: ${message}\n`);
    return 1;
  }
}
