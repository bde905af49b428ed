/**
 * `ipip-lab gen-spec`: a cluster spec for a lab of any size (and, with --compose, the Compose file that runs it),
 * from a few numbers. The spec itself comes from calico/generate-spec.ts; this is the command line and the files.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import {
  GENERATED_SPEC_DEFAULTS,
  GenerateSpecError,
  generateSpec,
  MAX_PODS_PER_NODE,
  type GeneratedSpec,
  type GenerateSpecOption,
  type GenerateSpecOptions,
} from '../../calico/index.js';
import type { Io } from '../common.js';
import { packageRoot } from '../../package-root.js';
import { UsageError } from '../errors.js';
import { composeFileFor } from './gen-spec-compose.js';
import { swarmSpecText, swarmStackFor } from './gen-spec-swarm.js';

interface GenSpecFlags {
  nodes: number;
  podsPerNode: number;
  name: string;
  cidr: string;
  pool: string;
  output?: string;
  compose?: string;
  swarm?: string;
  datastore?: boolean;
}

const FLAGS: Record<GenerateSpecOption, string> = {
  nodes: '--nodes',
  podsPerNode: '--pods-per-node',
  name: '--name',
  networkCidr: '--cidr',
  poolCidr: '--pool',
};

const HELP = `
Nodes are named and addressed as kind names them: <name>-control-plane, <name>-worker, <name>-worker2, …
at the network's .2, .3, … (.1 is the Docker network's gateway; a /24 holds 253 nodes). Each gets its first
/26 block of the pool from Calico's hostname-seeded IPAM, and another once tunl0 and its pods have filled it
(64 or more pods). The pods are one hello-world Deployment with nodes × pods-per-node replicas, tolerating the
control plane's taint and spread by hostname, so every node runs exactly --pods-per-node of them (at most
${MAX_PODS_PER_NODE}, kubelet's default --max-pods). The same options always give the same file.

Fifty nodes with 20 pods each run on 2 CPUs: each agent holds about 70 MB, and the Compose lab is healthy in
about a minute. Its node containers share the host's one neighbour (ARP) table, whose limit (1024 entries
by default, for the whole machine) fifty nodes that all talk to each other would overflow. So the Compose
file grants each node NET_ADMIN, with which its agent makes its peers' entries managed: the kernel keeps them
fresh and does not count them against that limit (Linux 5.16 or later). Without that, enlarge the table:
  sysctl -w net.ipv4.neigh.default.gc_thresh2=4096 net.ipv4.neigh.default.gc_thresh3=8192

Examples:
  ipip-lab gen-spec --nodes 5 --pods-per-node 2                  # print a spec
  ipip-lab gen-spec --nodes 50 --pods-per-node 20 -o large.yaml --compose large.compose.yml
  docker compose -f large.compose.yml up -d --build --wait
  docker compose -f large.compose.yml exec kind-control-plane kubectl get pods -o wide
  npx ipip-lab get nodes -o wide --spec large.yaml               # the same views without a lab
  ipip-lab gen-spec --nodes 20 -o swarm.yaml --swarm swarm.stack.yml # a lab across a swarm's machines:
  docker stack deploy -c swarm.stack.yml ipip-lab-kind            # its nodes register their addresses in etcd
`;

function wholeNumber(text: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError('expected a whole number');
  return Number(text);
}

/** The command that makes this spec again, with every option spelled out (so later default changes do not matter). */
function canonicalCommand(options: Required<GenerateSpecOptions>): string {
  return [
    'ipip-lab gen-spec',
    `--nodes ${options.nodes}`,
    `--pods-per-node ${options.podsPerNode}`,
    `--name ${options.name}`,
    `--cidr ${options.networkCidr}`,
    `--pool ${options.poolCidr}`,
  ].join(' ');
}

/** Where the build context is: the installation's own folder, which holds containers/Dockerfile. */
function projectRoot(): string {
  try {
    return packageRoot();
  } catch (error) {
    throw new UsageError(`--compose: ${(error as Error).message}`);
  }
}

/** A path as Compose reads it from the Compose file's folder: relative, and marked as a path rather than a volume name. */
function relativeTo(folder: string, target: string): string {
  const relative = path.relative(folder, target);
  if (relative === '') return '.';
  return relative === '..' || relative.startsWith(`..${path.sep}`) ? relative : `./${relative}`;
}

function write(file: string, text: string): void {
  try {
    writeFileSync(file, text);
  } catch (error) {
    throw new UsageError(`cannot write ${file}: ${(error as Error).message}`);
  }
}

function generate(options: Required<GenerateSpecOptions>): GeneratedSpec {
  try {
    return generateSpec(options);
  } catch (error) {
    if (error instanceof GenerateSpecError) throw new UsageError(`gen-spec: ${FLAGS[error.option]}: ${error.message}`);
    throw error;
  }
}

/** A lab file beside the spec (--compose, --swarm) needs the spec in a file of its own. */
function checkLabFile(flag: string, file: string | undefined, output: string | undefined): void {
  if (file === undefined) return;
  if (output === undefined) throw new UsageError(`${flag} needs -o FILE too: the lab reads the spec from a file`);
  if (path.resolve(file) === path.resolve(output)) {
    throw new UsageError(`${flag} and -o name the same file: the lab's file would replace the spec`);
  }
}

function run(flags: GenSpecFlags, io: Io): void {
  const { output, compose, swarm } = flags;
  if (compose !== undefined && swarm !== undefined) {
    throw new UsageError('--compose and --swarm: choose one (a spec for a swarm lab has no node addresses)');
  }
  checkLabFile('--compose', compose, output);
  checkLabFile('--swarm', swarm, output);
  if (flags.datastore && compose === undefined) {
    throw new UsageError('--datastore shapes the Compose file: it needs --compose (a swarm lab always has an etcd)');
  }
  const options = {
    nodes: flags.nodes,
    podsPerNode: flags.podsPerNode,
    name: flags.name,
    networkCidr: flags.cidr,
    poolCidr: flags.pool,
  };
  const generated = generate(options);
  const command = canonicalCommand(options);
  const text = `# Made by: ${command}\n${generated.text}`;
  if (output === undefined) return io.out(text);
  if (swarm !== undefined) {
    const folder = path.dirname(path.resolve(swarm));
    write(output, swarmSpecText(text));
    const layout = {
      specFile: relativeTo(folder, path.resolve(output)),
      command: `${command} -o ${output} --swarm ${swarm}`,
    };
    return write(swarm, swarmStackFor(generated.spec, layout, swarm, `ipip-lab-${options.name}`));
  }
  if (compose === undefined) return write(output, text);
  const folder = path.dirname(path.resolve(compose));
  const layout = {
    specFile: relativeTo(folder, path.resolve(output)),
    buildContext: relativeTo(folder, projectRoot()),
    command: flags.datastore ? `${command} --datastore` : command,
    // As kind create cluster places it: the network's last host, the nodes taking .2, .3, …
    ...(flags.datastore && { controlPlane: { datastore: generated.spec.network.cidr.last().add(-1) } }),
  };
  write(output, text);
  write(compose, composeFileFor(generated.spec, layout, compose));
}

export function registerGenSpecCommand(program: Command, io: Io): void {
  program
    .command('gen-spec')
    .description('write a cluster spec for a lab of N kind-style nodes with the same number of pods on each')
    .requiredOption('--nodes <n>', 'how many nodes: one control plane, the rest workers', wholeNumber)
    .option(
      '--pods-per-node <n>',
      'hello-world pods on every node, the control plane included',
      wholeNumber,
      GENERATED_SPEC_DEFAULTS.podsPerNode,
    )
    .option('--name <name>', "the cluster's name, which prefixes the node names", GENERATED_SPEC_DEFAULTS.name)
    .option('--cidr <cidr>', 'the node network (a Docker internal network)', GENERATED_SPEC_DEFAULTS.networkCidr)
    .option('--pool <cidr>', "Calico's IP pool, where pod addresses come from", GENERATED_SPEC_DEFAULTS.poolCidr)
    .option('-o, --output <file>', 'write the spec here (default: standard output)')
    .option('--compose <file>', 'also write a Compose file that runs the lab (needs -o)')
    .option(
      '--datastore',
      "with --compose: the lab as kind create cluster runs it, the kernel dataplane and an etcd at the network's " +
        'last host (default: userspace nodes, the spec alone)',
    )
    .option(
      '--swarm <file>',
      'also write a stack file that runs the lab across a Docker Swarm (needs -o; the spec then has no node addresses)',
    )
    .addHelpText('after', HELP)
    .action((flags: GenSpecFlags) => run(flags, io));
}
