/**
 * A real BIRD in a node's place on the lab network: Debian's BIRD 1.6, the base of Calico's fork, running the bird.cfg
 * confd would write for that node, so that the agents' BGP speaker meets the daemon it stands in for.
 */
import type { StartedTestContainer } from 'testcontainers';
import { buildImage, containerLogs } from './docker.js';
import type { KernelCapture, LabNodeHandle } from './lab.js';

export const BIRD_IMAGE = 'ipip-lab-bird:dev';
/** Where containers/bird/Dockerfile's BIRD reads its config and serves birdc. */
export const BIRD_CONFIG = '/etc/bird/bird.cfg';
const BIRD_CONTROL_SOCKET = '/run/bird/bird.ctl';
/** What BIRD logs (with -d, on stderr) once it has read its config and started its protocols. */
export const BIRD_STARTED = /bird: Started/;

/** Builds the BIRD image once per process. Its context is containers/bird alone: the image copies nothing in. */
export function buildBirdImage(): Promise<void> {
  return buildImage(BIRD_IMAGE, { dockerfile: 'containers/bird/Dockerfile', context: 'containers/bird' });
}

/** A row of `show protocols`, BIRD's `%-8s %-8s %-8s %-5s  %-10s  %s`. */
export interface BirdProtocol {
  name: string;
  /** `BGP`, `Kernel`, `Static`, … */
  proto: string;
  table: string;
  /** `down`, `start`, `wait`, `feed` or `up`. */
  state: string;
  since: string;
  /** For BGP, the session state and the last error: `Established`, `Active        Socket: Connection refused`. */
  info: string;
}

/** A route of `show route`: `192.168.77.128/26  via 10.0.0.10 on eth0 [Mesh_10_0_0_10 13:17:57] * (100/0) [i]`. */
export interface BirdRoute {
  prefix: string;
  /** `via 10.0.0.10 on eth0`, `blackhole`, `dev eth0`, … */
  target: string;
  /** The protocol it came from, `Mesh_10_0_0_10`. */
  protocol: string;
}

/** birdc's first line, before any reply. */
const GREETING = /^BIRD [\d.]+ ready\.$/;
const PROTOCOL_HEADER = /^name +proto +table +state +since +info$/;
/** The info column keeps BIRD's own spacing: `%-14s` pads the BGP state before the error. */
const PROTOCOL_ROW = /^(\S+) +(\S+) +(\S+) +(\S+) +(\S+)(?: +(.*?))? *$/;
const ROUTE_LINE = /^(\S*)\s+(.+?) \[(\S+) [^\]]*\]/;

export class BirdHandle {
  constructor(
    /** The spec node this BIRD stands in for, or the name of a peer that is no node (a BGPPeer). */
    readonly name: string,
    readonly ip: string,
    readonly container: StartedTestContainer,
    /**
     * A node handle's background-command and tcpdump plumbing (it needs only sh, tcpdump and base64, as here): for a
     * BIRD in a node's place.
     */
    private readonly shell?: LabNodeHandle,
  ) {}

  /** One birdc command (`show protocols`, `disable Mesh_10_0_0_11`); its reply without the greeting line. */
  async birdc(command: string): Promise<string> {
    const result = await this.container.exec(['birdc', '-s', BIRD_CONTROL_SOCKET, ...command.split(/\s+/)]);
    if (result.exitCode !== 0) {
      throw new Error(`birdc ${command} on ${this.name} exited ${result.exitCode}: ${result.output.trim()}`);
    }
    return result.stdout
      .split('\n')
      .filter((line) => !GREETING.test(line))
      .join('\n');
  }

  async protocols(): Promise<BirdProtocol[]> {
    return (await this.birdc('show protocols')).split('\n').flatMap((line): BirdProtocol[] => {
      const match = PROTOCOL_ROW.exec(line);
      if (!match || PROTOCOL_HEADER.test(line)) return [];
      const [, name, proto, table, state, since, info] = match;
      return [{ name, proto, table, state, since, info: info ?? '' }];
    });
  }

  async routes(): Promise<BirdRoute[]> {
    let prefix = '';
    return (await this.birdc('show route')).split('\n').flatMap((line): BirdRoute[] => {
      const match = ROUTE_LINE.exec(line);
      if (!match) return [];
      // BIRD prints the prefix on the first route of a net only.
      prefix = match[1] || prefix;
      return [{ prefix, target: match[2], protocol: match[3] }];
    });
  }

  /** tcpdump on the container's eth0 (or another interface), armed when this resolves. */
  tcpdump(options: { interface?: string; filter?: string } = {}): Promise<KernelCapture> {
    if (!this.shell) throw new Error(`tcpdump is for a BIRD in a node's place, which ${this.name} is not`);
    return this.shell.tcpdump(options);
  }

  /** BIRD's log so far: its protocols' state changes (`debug { states }`). */
  logs(): Promise<string> {
    return containerLogs(this.container.getId());
  }
}
