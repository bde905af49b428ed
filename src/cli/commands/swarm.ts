/**
 * `ipip-lab swarm status STACK`: every node of a swarm lab and the swarm machine it runs on, from a manager's Docker
 * (`docker stack ps` and the tasks' own records), so that a lab spread over machines can be read in one place.
 */
import { execFile } from 'node:child_process';
import type { Command } from 'commander';
import { jsonOutputOption, printJson, type Io } from '../common.js';
import { UsageError } from '../errors.js';
import { renderTable } from '../kubectl-table.js';
import { SWARM_WORKER_SUFFIX, workerName } from './gen-spec-swarm.js';

const DOCKER_TIMEOUT_MS = 30_000;

/** One node of the lab: its Kubernetes name, its swarm machine, its task's state and its lab address. */
export interface SwarmNodeStatus {
  readonly name: string;
  readonly machine: string;
  readonly state: string;
  readonly address: string;
  readonly task: string;
}

/** The fields of `docker inspect --type task` that the status reads. */
export interface SwarmTask {
  readonly ID: string;
  readonly Slot?: number;
  readonly NodeID: string;
  readonly ServiceID: string;
  readonly Status: { readonly State: string };
  readonly DesiredState: string;
  readonly Spec: { readonly ContainerSpec: { readonly Hostname?: string } };
  readonly NetworksAttachments?: readonly {
    readonly Network: { readonly Spec: { readonly Name: string } };
    readonly Addresses?: readonly string[];
  }[];
}

function docker(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('docker', args, { timeout: DOCKER_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout);
      const reason = stderr.trim().split('\n')[0] || error.message.split('\n')[0];
      reject(new UsageError(`docker ${args.slice(0, 2).join(' ')}: ${reason}`));
    });
  });
}

/**
 * A task's node name: its hostname, where the stack's template (the workers', kind's scheme by slot) is expanded as
 * Swarm expands it.
 */
function nodeName(service: string, task: SwarmTask): string {
  const hostname = task.Spec.ContainerSpec.Hostname ?? service;
  if (!hostname.includes('{{')) return hostname;
  const cluster = service.endsWith(SWARM_WORKER_SUFFIX) ? service.slice(0, -SWARM_WORKER_SUFFIX.length) : service;
  return workerName(cluster, task.Slot ?? 1);
}

/** The lab's nodes from the stack's running tasks, in name order (the control plane first, as kind lists them). */
export function swarmNodes(
  stack: string,
  tasks: readonly SwarmTask[],
  services: ReadonlyMap<string, string>,
  machines: ReadonlyMap<string, string>,
): SwarmNodeStatus[] {
  const labNetwork = `${stack}_lab`;
  return tasks
    .filter((task) => task.DesiredState === 'running')
    .map((task) => {
      const service = (services.get(task.ServiceID) ?? task.ServiceID).slice(stack.length + 1);
      const attachment = task.NetworksAttachments?.find((network) => network.Network.Spec.Name === labNetwork);
      return {
        name: nodeName(service, task),
        machine: machines.get(task.NodeID) ?? task.NodeID,
        state: task.Status.State,
        address: attachment?.Addresses?.[0]?.split('/')[0] ?? '<none>',
        task: task.ID.slice(0, 12),
        service,
      };
    })
    .filter((node) => node.service !== 'etcd')
    .map(({ service: _service, ...node }) => node)
    .sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
}

async function readStatus(stack: string): Promise<SwarmNodeStatus[]> {
  const ids = (await docker(['stack', 'ps', stack, '--quiet', '--no-trunc'])).split('\n').filter(Boolean);
  if (ids.length === 0) throw new UsageError(`no tasks in stack ${stack}: deploy it first (docker stack deploy)`);
  const tasks = JSON.parse(await docker(['inspect', '--type', 'task', ...ids])) as SwarmTask[];
  const serviceLines = await docker(['stack', 'services', stack, '--format', '{{.ID}} {{.Name}}']);
  const services = new Map<string, string>();
  for (const line of serviceLines.split('\n').filter(Boolean)) {
    const [id, name] = line.split(' ');
    // `docker stack services` shows short IDs; the tasks name their service in full.
    for (const task of tasks) if (task.ServiceID.startsWith(id)) services.set(task.ServiceID, name);
  }
  const nodeIds = [...new Set(tasks.map((task) => task.NodeID).filter(Boolean))];
  const machines = new Map<string, string>();
  for (const line of (await docker(['node', 'inspect', '--format', '{{.ID}} {{.Description.Hostname}}', ...nodeIds]))
    .split('\n')
    .filter(Boolean)) {
    const [id, hostname] = line.split(' ');
    machines.set(id, hostname);
  }
  return swarmNodes(stack, tasks, services, machines);
}

const HELP = `
Run it on a manager of the swarm, with the stack's name as \`docker stack deploy\` was given it. Each node's name
is its task's hostname (kind's scheme for the workers: slot 1 is <name>-worker, slot n <name>-worker<n>), its
MACHINE the swarm node the task runs on, its ADDRESS the one Swarm gave it on the lab's overlay.

Examples:
  ipip-lab swarm status ipip-lab-kind
  ipip-lab swarm status ipip-lab-kind -o json
`;

export function registerSwarmCommand(program: Command, io: Io): void {
  const swarm = program.command('swarm').description('a lab across the machines of a Docker Swarm (gen-spec --swarm)');
  swarm
    .command('status')
    .description("every node of a swarm lab and the swarm machine it runs on, from a manager's docker")
    .argument('<stack>', 'the stack name given to docker stack deploy')
    .addOption(jsonOutputOption())
    .addHelpText('after', HELP)
    .action(async (stack: string, options: { output?: 'json' }) => {
      const nodes = await readStatus(stack);
      if (options.output === 'json') return printJson(io, nodes);
      io.out(
        renderTable(
          ['NAME', 'MACHINE', 'STATE', 'ADDRESS', 'TASK'],
          nodes.map((node) => [node.name, node.machine, node.state, node.address, node.task]),
        ),
      );
    });
}
