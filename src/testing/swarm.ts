/**
 * The harness side of swarm labs (`ipip-lab gen-spec --swarm`): a one-machine swarm made for the run and left after
 * it (never one the engine was already in), a stack deployed and removed, and its nodes' pods, each read in its own
 * node's kernel, pinged all to all. The pings run inside the node containers, so the helpers work for any lab of
 * kernel-backed node containers: a swarm's, or startLab's on a bridge (podsOfLab).
 */
import { execFile } from 'node:child_process';

const DOCKER_TIMEOUT_MS = 120_000;
/** Swarm's ingress network would take 10.0.0.0/24 from the default pool, the seed labs' subnet. */
const SWARM_ADDRESS_POOL = '10.54.0.0/16';
/** Swarm makes it at init and keeps it after leave, on 172.18.0.0/16, where kind's network goes. */
const GATEWAY_BRIDGE = 'docker_gwbridge';

export function docker(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('docker', args, { timeout: DOCKER_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) =>
      error ? reject(new Error(`docker ${args.join(' ')}: ${stderr.trim() || error.message}`)) : resolve(stdout),
    );
  });
}

/** Polls `check` until it holds (a check that throws counts as not yet); returns how long that took. */
export async function until(
  check: () => Promise<boolean>,
  withinMs: number,
  what: string,
  pollMs = 200,
): Promise<number> {
  const started = Date.now();
  while (!(await check().catch(() => false))) {
    if (Date.now() - started > withinMs) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  return Date.now() - started;
}

/** What `joinSwarm` did to the engine, for `leaveSwarm` to undo and nothing more. */
export interface SwarmMembership {
  readonly made: boolean;
  readonly madeGatewayBridge: boolean;
}

/**
 * Makes the engine a one-machine swarm if it is in none; an engine already in one stays as it is. The swarm's own
 * ports listen on the loopback only.
 */
export async function joinSwarm(): Promise<SwarmMembership> {
  const state = (await docker('info', '--format', '{{.Swarm.LocalNodeState}}')).trim();
  if (state === 'active') return { made: false, madeGatewayBridge: false };
  if (state !== 'inactive') {
    throw new Error(`the engine's swarm is ${state}: it must be active, or inactive for the harness to init one`);
  }
  const madeGatewayBridge = await docker('network', 'inspect', GATEWAY_BRIDGE).then(
    () => false,
    () => true,
  );
  await docker(
    'swarm',
    'init',
    '--advertise-addr',
    '127.0.0.1',
    '--listen-addr',
    '127.0.0.1:2377',
    '--default-addr-pool',
    SWARM_ADDRESS_POOL,
    '--default-addr-pool-mask-length',
    '24',
  );
  return { made: true, madeGatewayBridge };
}

export async function leaveSwarm(membership: SwarmMembership): Promise<void> {
  if (!membership.made) return;
  await docker('swarm', 'leave', '--force');
  if (membership.madeGatewayBridge) await docker('network', 'rm', GATEWAY_BRIDGE);
}

/** A node's pod as its node's kernel has it: the container to run in, the pod's namespace and address. */
export interface NodePod {
  readonly node: string;
  readonly container: string;
  readonly netns: string;
  readonly ip: string;
}

/**
 * The first pod of each node container (kernel dataplane), read in the container's own kernel: the pod's namespace
 * (`ip netns`) and the address of its eth0.
 */
export async function podsIn(containers: ReadonlyMap<string, string>): Promise<NodePod[]> {
  return Promise.all(
    [...containers].map(async ([node, container]) => {
      const netns = (await docker('exec', container, 'ip', 'netns', 'list')).split(/\s/)[0];
      const address = await docker('exec', container, 'ip', '-n', netns, '-4', '-o', 'addr', 'show', 'dev', 'eth0');
      const ip = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(address)?.[1];
      if (!ip) throw new Error(`${node}: no pod address in ${address}`);
      return { node, container, netns, ip };
    }),
  );
}

/**
 * Pings every pod from every other, one `docker exec` per sender, each ping tried up to `attempts` times (the first
 * packet to a peer waits for ARP). Returns the pairs that never answered, as `node -> address`.
 */
export async function unreachablePods(pods: readonly NodePod[], attempts = 3): Promise<string[]> {
  const lost = await Promise.all(
    pods.map(async (from) => {
      const targets = pods.filter((to) => to !== from).map((to) => to.ip);
      const script = [
        `for ip in ${targets.join(' ')}; do`,
        `  n=0; until ip netns exec ${from.netns} ping -c 1 -W 2 -q "$ip" >/dev/null; do`,
        `    n=$((n + 1)); [ "$n" -ge ${attempts} ] && { echo "$ip"; break; }`,
        '  done',
        'done',
      ].join('\n');
      const output = await docker('exec', from.container, 'sh', '-c', script);
      return output
        .split('\n')
        .filter(Boolean)
        .map((ip) => `${from.node} -> ${ip}`);
    }),
  );
  return lost.flat();
}

/** A deployed swarm lab: its stack, and its node containers on this machine by node name. */
export class SwarmLab {
  private constructor(
    readonly stack: string,
    private running: ReadonlyMap<string, string>,
  ) {}

  /** The node containers as last looked up (deploy, refresh). */
  get containers(): ReadonlyMap<string, string> {
    return this.running;
  }

  /** Looks the node containers up again: Swarm replaces a task whose container died with a new one. */
  async refresh(): Promise<void> {
    this.running = await SwarmLab.containersOf(this.stack);
  }

  /** The stack's node containers on this machine (not etcd's), by the hostname each one has. */
  static async containersOf(stack: string): Promise<Map<string, string>> {
    const ids = (await docker('ps', '-q', '--filter', `label=com.docker.stack.namespace=${stack}`))
      .split('\n')
      .filter(Boolean);
    if (ids.length === 0) return new Map();
    // One inspect for all: the hostname as Swarm expanded its template, without an exec per container.
    const lines = await docker(
      'inspect',
      '--format',
      '{{.Id}} {{index .Config.Labels "com.docker.swarm.service.name"}} {{.Config.Hostname}}',
      ...ids,
    );
    const containers = new Map<string, string>();
    for (const line of lines.split('\n').filter(Boolean)) {
      const [id, service, hostname] = line.split(' ');
      if (service !== `${stack}_etcd`) containers.set(hostname, id);
    }
    return containers;
  }

  /** Removes the stack and waits until its containers and network are gone. */
  static async remove(stack: string): Promise<void> {
    await docker('stack', 'rm', stack).catch(() => undefined);
    await until(
      async () => {
        const left = await docker('ps', '-aq', '--filter', `label=com.docker.stack.namespace=${stack}`);
        const networks = await docker('network', 'ls', '-q', '--filter', `name=${stack}_lab`);
        return left.trim() === '' && networks.trim() === '';
      },
      60_000,
      `stack ${stack} to go`,
      1000,
    );
  }

  /**
   * Deploys `stackFile` as `stack` (removing what a killed run left of it first), and waits until `nodes` nodes are
   * Ready in `kubectl get nodes` on `controlPlane`.
   */
  static async deploy(options: {
    stack: string;
    stackFile: string;
    nodes: number;
    controlPlane: string;
    readyWithinMs: number;
  }): Promise<SwarmLab> {
    await SwarmLab.remove(options.stack);
    await docker('stack', 'deploy', '--compose-file', options.stackFile, options.stack);
    let containers = new Map<string, string>();
    await until(
      async () => {
        containers = await SwarmLab.containersOf(options.stack);
        const control = containers.get(options.controlPlane);
        if (containers.size !== options.nodes || !control) return false;
        const table = await docker('exec', control, 'kubectl', 'get', 'nodes');
        return table.split('\n').filter((line) => / Ready /.test(line)).length === options.nodes;
      },
      options.readyWithinMs,
      `${options.nodes} nodes Ready`,
      1000,
    );
    return new SwarmLab(options.stack, containers);
  }

  exec(node: string, script: string): Promise<string> {
    const container = this.containers.get(node);
    if (!container) throw new Error(`no node ${node} in stack ${this.stack}`);
    return docker('exec', container, 'sh', '-c', script);
  }

  /** Each node's pod (podsIn). */
  pods(): Promise<NodePod[]> {
    return podsIn(this.containers);
  }
}
