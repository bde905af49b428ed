/**
 * `ipip-lab kind create cluster` and `kind delete cluster`: the second seed's first step, `kind create cluster --name
 * networking --config=setup/kind-config.yaml`, with kind's own config file. It writes the lab's spec (kind's node
 * names, the config's podSubnet as Calico's pool) and a Compose file (the kernel dataplane, an etcd) into the
 * cluster's folder, and starts it with Docker Compose; delete takes it down and forgets it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import {
  generateSpec,
  GenerateSpecError,
  KIND_DEFAULT_POD_SUBNET,
  KindConfigError,
  parseKindConfig,
  type KindConfig,
} from '../../calico/index.js';
import { packageRoot } from '../../package-root.js';
import { Ipv4Prefix } from '../../routing/address.js';
import type { Io } from '../common.js';
import { UsageError } from '../errors.js';
import { composeFileFor } from './gen-spec-compose.js';

/** kind's own default name, and the subnet Docker usually gives kind's network (the first after docker0's). */
const DEFAULT_NAME = 'kind';
const DEFAULT_SUBNET = '172.18.0.0/16';
const SPEC_FILE = 'cluster.yaml';
const COMPOSE_FILE = 'docker-compose.yml';

/** Where a cluster's files live: $XDG_STATE_HOME/ipip-lab/kind/NAME, as kind keeps nothing but containers. */
export function clustersFolder(env: NodeJS.ProcessEnv = process.env): string {
  const state = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(state, 'ipip-lab', 'kind');
}

function projectName(name: string): string {
  return `ipip-lab-kind-${name}`;
}

function compose(folder: string, name: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'docker',
      ['compose', '-f', path.join(folder, COMPOSE_FILE), '-p', projectName(name), ...args],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    child.on('error', (error) => reject(new UsageError(`cannot run docker compose: ${error.message}`)));
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new UsageError(`docker compose ${args[0]} exited ${code} (its output is above)`)),
    );
  });
}

function readConfig(file: string | undefined): KindConfig {
  const text = file === undefined ? 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n' : readText(file);
  try {
    return parseKindConfig(text, file ?? 'the default config');
  } catch (error) {
    if (error instanceof KindConfigError) throw new UsageError(`failed to create cluster: ${error.message}`);
    throw error;
  }
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`failed to create cluster: cannot read ${file}: ${(error as Error).message}`);
  }
}

interface CreateFlags {
  name?: string;
  config?: string;
  subnet: string;
  dir?: string;
}

async function create(io: Io, flags: CreateFlags): Promise<void> {
  const config = readConfig(flags.config);
  const name = flags.name ?? config.name ?? DEFAULT_NAME;
  const folder = path.join(flags.dir ?? clustersFolder(), name);
  if (existsSync(path.join(folder, COMPOSE_FILE))) {
    throw new UsageError(
      `failed to create cluster: node(s) already exist for a cluster with the name "${name}" ` +
        `(ipip-lab kind delete cluster --name ${name} removes it)`,
    );
  }
  const subnet = Ipv4Prefix.tryParse(flags.subnet);
  if (!subnet) throw new UsageError(`--subnet: ${JSON.stringify(flags.subnet)} is not an IPv4 CIDR`);
  let generated;
  try {
    generated = generateSpec({
      nodes: config.controlPlanes + config.workers,
      podsPerNode: 0,
      name,
      networkCidr: flags.subnet,
      poolCidr: config.podSubnet.toString(),
    });
  } catch (error) {
    if (error instanceof GenerateSpecError) throw new UsageError(`failed to create cluster: ${error.message}`);
    throw error;
  }
  io.err(`Creating cluster "${name}" ...\n`);
  if (!config.disableDefaultCNI) {
    io.err(' • kindnetd is not emulated: the nodes run Calico, as after disableDefaultCNI: true and calico.yaml\n');
  }
  if (config.ignored.length > 0) {
    io.err(` • not emulated, so left out: ${config.ignored.join(', ')} (they shape kind's own node containers)\n`);
  }
  const command = `ipip-lab kind create cluster --name ${name}${flags.config ? ` --config ${flags.config}` : ''}`;
  mkdirSync(folder, { recursive: true });
  writeFileSync(path.join(folder, SPEC_FILE), `# Made by: ${command}\n${generated.text}`);
  const layout = {
    specFile: `./${SPEC_FILE}`,
    buildContext: packageRoot(),
    command,
    // The network's last host address: the nodes take the first ones, from .2, as kind's do.
    controlPlane: { datastore: subnet.last().add(-1) },
  };
  writeFileSync(path.join(folder, COMPOSE_FILE), composeFileFor(generated.spec, layout, COMPOSE_FILE));
  const nodes = generated.spec.nodes;
  io.err(
    ` ✓ Writing configuration: ${path.join(folder, SPEC_FILE)} (${nodes.length} nodes on ${subnet}, ` +
      `pool ${config.podSubnet}${flags.config || config.podSubnet.toString() !== KIND_DEFAULT_POD_SUBNET ? '' : ", kind's default podSubnet"})\n`,
  );
  io.err(' • Starting the nodes and etcd (docker compose up --build --wait; the first build takes a few minutes)\n');
  try {
    await compose(folder, name, ['up', '-d', '--build', '--wait']);
  } catch (error) {
    io.err(`the lab's files are kept in ${folder}: ipip-lab kind delete cluster --name ${name} removes them\n`);
    throw error;
  }
  const controlPlane = nodes[0].name;
  io.err(
    ` ✓ Nodes ready: ${nodes.map((node) => `${node.name} (${node.ip})`).join(', ')}\n` +
      `You can now use your cluster with:\n\n` +
      `docker compose -p ${projectName(name)} exec ${controlPlane} kubectl get nodes -o wide\n` +
      `docker compose -p ${projectName(name)} exec ${controlPlane} calicoctl node status\n`,
  );
}

async function remove(io: Io, flags: { name?: string; dir?: string }): Promise<void> {
  const name = flags.name ?? DEFAULT_NAME;
  const folder = path.join(flags.dir ?? clustersFolder(), name);
  io.err(`Deleting cluster "${name}" ...\n`);
  // As kind: deleting a cluster that is not there is no error.
  if (!existsSync(path.join(folder, COMPOSE_FILE))) return;
  await compose(folder, name, ['down', '-v', '--remove-orphans']);
  rmSync(folder, { recursive: true, force: true });
  io.err(`Deleted nodes: ${name}\n`);
}

function list(io: Io, flags: { dir?: string }): void {
  const folder = flags.dir ?? clustersFolder();
  const names = existsSync(folder)
    ? readdirSync(folder).filter((name) => existsSync(path.join(folder, name, COMPOSE_FILE)))
    : [];
  if (names.length === 0) io.err('No kind clusters found.\n');
  for (const name of names.sort()) io.out(`${name}\n`);
}

const HELP = `
The second seed's first step, with kind's own config (kind.x-k8s.io/v1alpha4): nodes[].role (one control plane,
any number of workers), networking.podSubnet (Calico's pool; kind's default ${KIND_DEFAULT_POD_SUBNET}) and
disableDefaultCNI. The nodes are named as kind names them (NAME-control-plane, NAME-worker, NAME-worker2, …) at .2,
.3, … of --subnet, run the kernel dataplane (NET_ADMIN, SYS_ADMIN, /dev/net/tun) and share an etcd. Calico is built
in: kubectl apply -f of Calico's manifest says so and changes nothing. The files stay in ${path.join('$XDG_STATE_HOME', 'ipip-lab', 'kind', 'NAME')}.

Examples:
  ipip-lab kind create cluster --name networking --config containers/networking/kind-config.yaml --subnet 172.20.0.0/16
  docker compose -p ipip-lab-kind-networking exec networking-control-plane kubectl get nodes -o wide
  ipip-lab kind get clusters
  ipip-lab kind delete cluster --name networking`;

export function registerKindCommand(program: Command, io: Io): void {
  const kind = program
    .command('kind')
    .description("kind's create/delete cluster for a lab: kind's config, kind's node names, Calico built in")
    .addHelpText('after', HELP);
  const dirOption = ['--dir <folder>', `where the clusters' files live (default: ${clustersFolder()})`] as const;
  kind
    .command('create')
    .description('create a lab cluster')
    .command('cluster')
    .description('create a lab cluster from a kind config, and start it')
    .option('--name <name>', `the cluster's name (default: the config's name, else ${DEFAULT_NAME})`)
    .option('--config <file>', "kind's cluster config (kind.x-k8s.io/v1alpha4)")
    .option('--subnet <cidr>', "the nodes' network (an internal Docker network)", DEFAULT_SUBNET)
    .option(...dirOption)
    .addHelpText('after', HELP)
    .action((flags: CreateFlags) => create(io, flags));
  kind
    .command('delete')
    .description('delete a lab cluster')
    .command('cluster')
    .description('stop a lab cluster and remove its containers, volumes and files')
    .option('--name <name>', `the cluster's name (default: ${DEFAULT_NAME})`)
    .option(...dirOption)
    .action((flags: { name?: string; dir?: string }) => remove(io, flags));
  kind
    .command('get')
    .description('list lab clusters')
    .command('clusters')
    .description('the lab clusters kind create made here')
    .option(...dirOption)
    .action((flags: { dir?: string }) => list(io, flags));
}
