/**
 * The seed labs' own compose files, brought up as a user would (testcontainers' DockerComposeEnvironment) under a
 * test project name, and commands run inside their node containers with `docker compose exec`'s equivalent. The
 * image is the harness's (`ipip-lab-node:dev`, built once per process), so `up` only starts containers.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  DockerComposeEnvironment,
  getContainerRuntimeClient,
  Wait,
  type StartedDockerComposeEnvironment,
} from 'testcontainers';
import { buildImage } from '../../src/testing/index.js';
import { REPO_ROOT } from './cli.js';

const run = promisify(execFile);

export interface ComposeLab {
  /** Milliseconds from `up` to every node container healthy. */
  readonly upMs: number;
  /** `docker compose exec SERVICE ARGV…`: exit code and both streams. */
  exec(service: string, ...argv: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** The same, for a command that must succeed: its standard output, or an error with what it printed. */
  ok(service: string, ...argv: string[]): Promise<string>;
  /** `docker compose down -v`; resolves with how long it took. */
  down(): Promise<number>;
  /** What Docker still holds of the project (containers, networks, volumes), by name. */
  leftovers(): Promise<string[]>;
  /** `docker compose port SERVICE PORT`: where the host reaches a published port, e.g. `127.0.0.1:49153`. */
  publishedAt(service: string, port: number): Promise<string>;
}

const PROJECT_LABEL = 'com.docker.compose.project';

async function leftovers(project: string): Promise<string[]> {
  const docker = (await getContainerRuntimeClient()).container.dockerode;
  const filters = { label: [`${PROJECT_LABEL}=${project}`] };
  const [containers, networks, volumes] = await Promise.all([
    docker.listContainers({ all: true, filters }),
    docker.listNetworks({ filters }),
    docker.listVolumes({ filters }),
  ]);
  return [
    ...containers.map((c) => `container ${c.Names.join(',')}`),
    ...networks.map((n) => `network ${n.Name}`),
    ...(volumes.Volumes ?? []).map((v) => `volume ${v.Name}`),
  ];
}

/**
 * Starts the compose file (relative to the repository) as project `project`, after removing what a killed run of the
 * same project left. Every node must be healthy within `healthyWithinMs`. The lab page is published on a port Docker
 * picks, so a test never takes the port of a lab the user runs.
 */
export async function startComposeLab(file: string, project: string, healthyWithinMs = 30_000): Promise<ComposeLab> {
  const absolute = path.join(REPO_ROOT, file);
  await Promise.all([
    buildImage(),
    run('docker', ['compose', '-f', absolute, '-p', project, 'down', '-v', '--remove-orphans', '--timeout', '0']),
  ]);
  const started = performance.now();
  const environment: StartedDockerComposeEnvironment = await new DockerComposeEnvironment(
    path.dirname(absolute),
    path.basename(absolute),
  )
    .withProjectName(project)
    .withEnvironment({ IPIP_LAB_PAGE_PORT: '' })
    .withDefaultWaitStrategy(Wait.forHealthCheck())
    .withStartupTimeout(healthyWithinMs)
    .up();
  const upMs = performance.now() - started;
  let downed = false;
  const exec: ComposeLab['exec'] = async (service, ...argv) => {
    const { exitCode, stdout, stderr } = await environment.getContainer(`${service}-1`).exec(argv);
    return { exitCode, stdout, stderr };
  };
  return {
    upMs,
    exec,
    async ok(service, ...argv) {
      const result = await exec(service, ...argv);
      if (result.exitCode !== 0)
        throw new Error(`${argv.join(' ')} on ${service} exited ${result.exitCode}: ${result.stderr}`);
      return result.stdout;
    },
    async down() {
      if (downed) return 0;
      downed = true;
      const begun = performance.now();
      await environment.down({ removeVolumes: true });
      return performance.now() - begun;
    },
    leftovers: () => leftovers(project),
    async publishedAt(service, port) {
      const { stdout } = await run('docker', ['compose', '-f', absolute, '-p', project, 'port', service, String(port)]);
      return stdout.trim();
    },
  };
}

/** Seed header `seed` with the padding after each named column loosened: those widths follow the values. */
export function headerPattern(seed: string, variableColumns: readonly string[]): RegExp {
  let pattern = seed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const column of variableColumns) pattern = pattern.replace(new RegExp(`${column} +`), `${column} {3,}`);
  return new RegExp(`^${pattern}$`);
}
