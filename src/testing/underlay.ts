/**
 * A lab's underlay on Docker: one internal network with the spec's `network.cidr`. A spec with routed subnets gets
 * them on that one bridge, each container addressed with its subnet's mask, and a one-armed router at each subnet's
 * last host address that forwards between them (with no ICMP redirects, which would teach the nodes to go around
 * it). Not one Docker network per subnet: an internal network drops, in the host's FORWARD chain, every frame whose
 * source is outside its own subnet, so nothing routed from another subnet could enter it.
 *
 * The same rule drops pod traffic that crosses the bridge unencapsulated (ipipMode CrossSubnet or Never) unless the
 * pod addresses are inside `network.cidr`: such a lab's pool must be there, beside its subnets.
 *
 * The router, the masks and the routes towards the router are the machine room's set-up, not Calico's: the harness
 * makes them, as a data centre would, and a node only sees its eth0 and a gateway. Changing them takes NET_ADMIN in
 * each container (`docker exec --privileged` cannot add capabilities where the engine itself runs without them), so
 * a routed lab's containers all have it.
 */
import type { StartedTestContainer } from 'testcontainers';
import { underlayRouter, underlaySubnet, type ClusterSpec, type NetworkSpec } from '../calico/index.js';
import { Ipv4Address } from '../routing/index.js';
import { bridgeInterface, createLabNetwork, LAB_LABEL, PinnedContainer, RESOURCE_PREFIX } from './docker.js';

/** The kernel's own forwarding, in the router's namespace only, and no redirects: every hop goes through it. */
const ROUTER_SYSCTLS = {
  'net.ipv4.ip_forward': '1',
  'net.ipv4.conf.all.send_redirects': '0',
  'net.ipv4.conf.eth0.send_redirects': '0',
};

/** Refuses, before anything starts, a spec whose unencapsulated pod traffic the lab's Docker bridge would drop. */
export function checkDockerCarries(spec: ClusterSpec): void {
  const { pool, network } = spec;
  if (pool.ipipMode === 'Always' || network.cidr.contains(pool.cidr.first())) return;
  throw new Error(
    `pool ${pool.name} (${pool.cidr}) has ipipMode ${pool.ipipMode} but lies outside network.cidr ${network.cidr}: ` +
      "Docker's internal network drops every frame from a source outside its subnet, so pod traffic that is not " +
      'encapsulated would never arrive. Give the network routed subnets and put the pool beside them, inside network.cidr',
  );
}

export class LabUnderlay {
  readonly networkName: string;

  constructor(
    readonly lab: string,
    private readonly spec: NetworkSpec,
  ) {
    this.networkName = `${RESOURCE_PREFIX}${lab}`;
  }

  private get routed(): boolean {
    return this.spec.subnets.length > 0;
  }

  /** The datastore's address: the third of the first subnet, after Docker's bridge (10.0.0.2 in the first seed). */
  get datastoreAddress(): string {
    return (this.spec.subnets[0] ?? this.spec.cidr).first().add(2).toString();
  }

  /** What every container of the lab needs beyond Docker's defaults: NET_ADMIN for its address and route, if routed. */
  get capabilities(): string[] {
    return this.routed ? ['NET_ADMIN'] : [];
  }

  /** Creates the network and, for routed subnets, starts the router (from `image`, doing nothing but forward). */
  async create(image: string): Promise<void> {
    await createLabNetwork(this.lab, this.networkName, this.spec.cidr);
    if (!this.routed) return;
    const [first] = this.spec.subnets;
    const router = await new PinnedContainer(image, this.networkName, underlayRouter(first).toString(), ROUTER_SYSCTLS)
      .withName(`${this.networkName}-router`)
      .withHostname('router')
      .withLabels({ [LAB_LABEL]: this.lab })
      .withAddedCapabilities(...this.capabilities)
      .withEntrypoint(['sleep', 'infinity'])
      .start();
    await run(router, [
      ...this.spec.subnets.map((subnet) => `ip addr add ${underlayRouter(subnet)}/${subnet.length} dev eth0`),
      `ip addr del ${underlayRouter(first)}/${this.spec.cidr.length} dev eth0`,
    ]);
  }

  /**
   * Gives a container that just started at `ip` its subnet's mask and its routes to the other subnets, through its
   * subnet's router. The address is added with the new mask before the old one goes, so it never leaves eth0.
   */
  async attached(container: StartedTestContainer, ip: string): Promise<void> {
    if (!this.routed) return;
    const subnet = underlaySubnet(this.spec, Ipv4Address.parse(ip));
    await run(container, [
      `ip addr add ${ip}/${subnet.length} dev eth0`,
      `ip addr del ${ip}/${this.spec.cidr.length} dev eth0`,
      ...this.spec.subnets
        .filter((other) => other !== subnet)
        .map((other) => `ip route replace ${other} via ${underlayRouter(subnet)} dev eth0`),
    ]);
  }

  /** The host's bridge for the lab's network: `tshark -i` on it sees the whole wire. */
  bridge(): Promise<string> {
    return bridgeInterface(this.networkName);
  }
}

async function run(container: StartedTestContainer, commands: readonly string[]): Promise<void> {
  const script = commands.join(' && ');
  const { exitCode, output } = await container.exec(['sh', '-c', script]);
  if (exitCode !== 0) throw new Error(`${script} in ${container.getName()} exited ${exitCode}: ${output.trim()}`);
}
