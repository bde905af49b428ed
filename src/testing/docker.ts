/**
 * The Docker side of the harness: the node image, the lab's internal network, and containers pinned to fixed
 * addresses on it. Everything a lab creates carries the label `ipip-lab.lab=<name>`, so a run that was killed
 * leaves nothing that the next run of the same lab does not remove first.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { GenericContainer, getContainerRuntimeClient } from 'testcontainers';
import { packageRoot } from '../package-root.js';
import { Ipv4Prefix } from '../routing/index.js';

export const DEFAULT_IMAGE = 'ipip-lab-node:dev';
export const LAB_LABEL = 'ipip-lab.lab';
export const RESOURCE_PREFIX = 'ipip-lab-test-';
const BUILD_TIMEOUT_MS = 10 * 60_000;
const BUILD_OUTPUT_BYTES = 64 * 1024 * 1024;

const builds = new Map<string, Promise<void>>();

/**
 * Builds the node image once per process (Docker's layer cache makes a rebuild of unchanged sources quick). It runs
 * the docker CLI rather than testcontainers' builder, which reports success even when a build step fails and would
 * leave a lab running an old image.
 */
export function buildImage(
  tag: string = DEFAULT_IMAGE,
  /** The Dockerfile and the build context, relative to the package: the node image's by default. */
  source: { dockerfile: string; context: string } = { dockerfile: 'containers/Dockerfile', context: '.' },
): Promise<void> {
  let build = builds.get(tag);
  if (!build) {
    const root = packageRoot();
    build = new Promise<void>((resolve, reject) => {
      execFile(
        'docker',
        ['build', '--file', path.join(root, source.dockerfile), '--tag', tag, path.join(root, source.context)],
        { timeout: BUILD_TIMEOUT_MS, maxBuffer: BUILD_OUTPUT_BYTES },
        (error, stdout, stderr) => {
          if (!error) return resolve();
          const tail = `${stdout}${stderr}`.trim().split('\n').slice(-30).join('\n');
          reject(new Error(`docker build of ${tag} failed (${error.message.split('\n')[0]}):\n${tail}`));
        },
      );
    });
    builds.set(tag, build);
  }
  return build;
}

async function dockerode() {
  return (await getContainerRuntimeClient()).container.dockerode;
}

/** Docker's multiplexed log stream: 8-byte frame headers (stream, 0, 0, 0, length) before each chunk. */
const LOG_FRAME_HEADER = 8;

/** A container's whole log so far, stdout and stderr interleaved as written (not followed: it returns). */
export async function containerLogs(id: string): Promise<string> {
  const docker = await dockerode();
  const raw = await docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false });
  const chunks: Buffer[] = [];
  for (let at = 0; at + LOG_FRAME_HEADER <= raw.length;) {
    const length = raw.readUInt32BE(at + 4);
    chunks.push(raw.subarray(at + LOG_FRAME_HEADER, at + LOG_FRAME_HEADER + length));
    at += LOG_FRAME_HEADER + length;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Removes the containers and networks a previous run of this lab may have left. */
export async function removeLabResources(lab: string): Promise<void> {
  const docker = await dockerode();
  const labelled = { label: [`${LAB_LABEL}=${lab}`] };
  const containers = await docker.listContainers({ all: true, filters: labelled });
  await Promise.all(containers.map((info) => docker.getContainer(info.Id).remove({ force: true, v: true })));
  const networks = await docker.listNetworks({ filters: labelled });
  await Promise.all(networks.map((info) => docker.getNetwork(info.Id).remove()));
}

function overlapsAny(info: { IPAM?: { Config?: { Subnet?: string }[] } }, subnet: Ipv4Prefix): boolean {
  return (info.IPAM?.Config ?? []).some((config) => Ipv4Prefix.tryParse(config.Subnet ?? '')?.overlaps(subnet));
}

/**
 * Removes other harness labs on an overlapping subnet. Two such labs cannot run at once (Docker refuses the second
 * network), so one that exists is what a killed run left behind.
 */
export async function removeOverlappingLabs(subnet: Ipv4Prefix): Promise<void> {
  const docker = await dockerode();
  const labs = (await docker.listNetworks({ filters: { label: [LAB_LABEL] } })).filter((info) =>
    overlapsAny(info, subnet),
  );
  await Promise.all(labs.map((info) => removeLabResources(info.Labels?.[LAB_LABEL] ?? '')));
}

/**
 * Creates the lab's network: internal (no route off the machine) with the spec's subnet. Docker refuses a subnet that
 * overlaps another network's; this says which network holds it, since the usual culprit is the compose lab.
 */
export async function createLabNetwork(lab: string, networkName: string, subnet: Ipv4Prefix): Promise<string> {
  const docker = await dockerode();
  const networks = await docker.listNetworks();
  const clash = networks.find((info) => overlapsAny(info, subnet));
  if (clash) {
    throw new Error(
      `Docker network ${clash.Name} already uses a subnet overlapping ${subnet}: stop what uses it ` +
        `(for the compose lab: docker compose down) or give the lab a spec on another subnet`,
    );
  }
  const network = await docker.createNetwork({
    Name: networkName,
    Driver: 'bridge',
    Internal: true,
    CheckDuplicate: true,
    IPAM: { Driver: 'default', Config: [{ Subnet: subnet.toString() }] },
    Labels: { [LAB_LABEL]: lab },
  });
  return network.id;
}

/** The name of the Linux bridge behind a Docker network, on the host: where `tshark -i` sees the lab's wire. */
export async function bridgeInterface(networkName: string): Promise<string> {
  const info = (await (await dockerode()).getNetwork(networkName).inspect()) as { Id: string };
  return `br-${info.Id.slice(0, 12)}`;
}

/**
 * A container attached only to one network at a fixed IPv4 address, with optional `docker run --sysctl` settings of
 * its own network namespace. testcontainers has no option for either, so both are added to the create request just
 * before it is sent.
 */
export class PinnedContainer extends GenericContainer {
  constructor(
    image: string,
    private readonly networkName: string,
    private readonly ipv4: string,
    private readonly sysctls?: Readonly<Record<string, string>>,
    /** Host devices to pass in, e.g. /dev/net/tun for the kernel dataplane's tunl0. */
    private readonly devices: readonly string[] = [],
  ) {
    super(image);
    this.withNetworkMode(networkName);
  }

  protected override beforeContainerCreated(): Promise<void> {
    this.createOpts.NetworkingConfig = {
      EndpointsConfig: { [this.networkName]: { IPAMConfig: { IPv4Address: this.ipv4 } } },
    };
    if (this.sysctls) this.hostConfig.Sysctls = { ...this.sysctls };
    if (this.devices.length > 0) {
      this.hostConfig.Devices = this.devices.map((path) => ({
        PathOnHost: path,
        PathInContainer: path,
        CgroupPermissions: 'rwm',
      }));
    }
    return Promise.resolve();
  }
}
