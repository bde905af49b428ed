/**
 * The Compose file that runs a generated spec, shaped as the root docker-compose.yml: one service per node pinned to
 * its address on an internal network with the spec's subnet, the node image built from the repository, the spec
 * shared through a volume so `kubectl apply` on one node reaches all, and a healthcheck per node.
 */
import { Document, isScalar, Pair, Scalar, YAMLMap, type YAMLSeq } from 'yaml';
import type { ClusterSpec } from '../../calico/index.js';
import type { Ipv4Address } from '../../routing/address.js';

export interface ComposeLayout {
  /** The spec file, relative to the Compose file's folder. */
  readonly specFile: string;
  /** The repository root (which holds containers/Dockerfile), relative to the Compose file's folder. */
  readonly buildContext: string;
  /** The gen-spec command line that made the spec, quoted in the header so the pair can be made again. */
  readonly command: string;
  /**
   * As the seed labs run (`ipip-lab kind create cluster`): the kernel dataplane, and an etcd at this address that the
   * agents claim their blocks in and take their BGP peers from. Without it, a large lab's userspace nodes, no etcd.
   */
  readonly controlPlane?: { readonly datastore: Ipv4Address };
}

export const NODE_IMAGE = 'ipip-lab-node:dev';
const NETWORK = 'lab';
const SPEC_VOLUME = 'spec';
export const SEED_PATH = '/etc/ipip-lab-seed.yaml';
const API_PORT = 9440;

/**
 * NET_ADMIN lets each agent make its peers' ARP entries managed (src/node/underlay/neighbours.ts): every node
 * container shares the host kernel's one neighbour table, whose limit of 1024 entries by default fifty nodes talking
 * to each other (2,450 entries) would overflow, and managed entries do not count against it.
 */
export const NODE_CAPABILITIES: readonly string[] = ['NET_ADMIN'];
/** The kernel dataplane's (README, "Privileges"): tunl0, the routes and the veths, the pods' namespaces. */
export const KERNEL_NODE_CAPABILITIES: readonly string[] = ['NET_ADMIN', 'SYS_ADMIN'];
export const ETCD_PORT = 2379;

/**
 * Each check is a `docker exec` (tens of milliseconds of the Docker daemons' CPU), so a larger lab checks each node less
 * often: about two checks a second in all, and every 5 s at most, as the root docker-compose.yml.
 */
const HEALTH_CHECKS_PER_SECOND = 2;
const MIN_HEALTH_INTERVAL_S = 5;

function healthInterval(nodes: number): string {
  return `${Math.max(MIN_HEALTH_INTERVAL_S, Math.ceil(nodes / HEALTH_CHECKS_PER_SECOND))}s`;
}

/**
 * bash's /dev/tcp asks the agent's API for its node: a few milliseconds of CPU, where `ipip-lab stats` starts a Node
 * process (~0.4 s of CPU). Fifty nodes checked every 5 s that way would keep two CPUs busy on health checks alone.
 * `$$` is Compose's escape for a literal `$`.
 */
const HEALTHCHECK =
  `exec 3<>/dev/tcp/$$(hostname -i)/${API_PORT} && printf 'GET /v1/node HTTP/1.0\\r\\n\\r\\n' >&3 && ` +
  `head -n 1 <&3 | grep -q ' 200 '`;

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function header(spec: ClusterSpec, layout: ComposeLayout, file: string): string {
  const [first] = spec.nodes;
  return [
    ` The lab of the cluster spec ${layout.specFile}: ${plural(spec.nodes.length, 'node')}, one container each, on the internal`,
    ` network ${spec.network.cidr}. Made by:`,
    `   ${layout.command}`,
    ' Run it:',
    `   docker compose -f ${file} up -d --build --wait     (builds ${NODE_IMAGE} once, by the first service)`,
    `   docker compose -f ${file} exec ${first.name} kubectl get pods -o wide`,
    `   docker compose -f ${file} down -v`,
  ].join('\n');
}

/** Short lists on one line, as the root docker-compose.yml writes them. */
export function inline(document: Document, items: readonly string[]): YAMLSeq {
  const seq = document.createNode(items) as YAMLSeq;
  seq.flow = true;
  return seq;
}

function etcdUrl(address: Ipv4Address): string {
  return `http://${address}:${ETCD_PORT}`;
}

function nodeDefaults(document: Document, spec: ClusterSpec, layout: ComposeLayout): YAMLMap {
  const datastore = layout.controlPlane?.datastore;
  const defaults = document.createNode({
    image: NODE_IMAGE,
    pull_policy: 'never',
    init: false,
    stop_grace_period: '2s',
    restart: 'unless-stopped',
    environment: {
      IPIP_LAB_SEED: SEED_PATH,
      ...(datastore && { IPIP_LAB_DATASTORE: etcdUrl(datastore), ETCDCTL_ENDPOINTS: etcdUrl(datastore) }),
    },
    volumes: [
      { type: 'volume', source: SPEC_VOLUME, target: '/etc/ipip-lab', volume: { nocopy: true } },
      // The long form: a path with a colon in it would split the short one.
      { type: 'bind', source: layout.specFile, target: SEED_PATH, read_only: true },
    ],
    cap_add: [...(datastore ? KERNEL_NODE_CAPABILITIES : NODE_CAPABILITIES)],
    ...(datastore && { devices: ['/dev/net/tun'] }),
    healthcheck: nodeHealthcheck(document, spec.nodes.length),
  }) as YAMLMap;
  defaults.anchor = 'node';
  commentKey(
    defaults,
    'pull_policy',
    ' Built once, by the first service (its build section), not once per node in parallel.',
  );
  commentKey(
    defaults,
    'cap_add',
    datastore
      ? " The kernel dataplane: NET_ADMIN for tunl0, the routes and the veths, SYS_ADMIN for the pods' namespaces,\n" +
          ' /dev/net/tun for tunl0 itself. Without them the agent says so and runs the userspace node.'
      : " To keep the peers' ARP entries out of the host's shared limit, which a large lab would fill.",
  );
  commentKey(
    defaults,
    'healthcheck',
    " The agent's API answers over bash's /dev/tcp; bigger labs are checked less often.",
  );
  return defaults;
}

function commentKey(map: YAMLMap, key: string, comment: string): void {
  const found = map.items.find((item) => isScalar(item.key) && item.key.value === key);
  if (!found || !isScalar(found.key)) throw new Error(`no ${key} in the node defaults`);
  found.key.commentBefore = comment;
}

export function pair(key: string, value: unknown, comment?: string): Pair {
  const keyNode = new Scalar(key);
  if (comment !== undefined) keyNode.commentBefore = comment;
  return new Pair(keyNode, value);
}

/** The agent's API asked over bash's /dev/tcp; bigger labs are checked less often. */
export function nodeHealthcheck(document: Document, nodes: number): unknown {
  return {
    test: inline(document, ['CMD', 'bash', '-c', HEALTHCHECK]),
    interval: healthInterval(nodes),
    timeout: '3s',
    retries: 5,
  };
}

export function etcdHealthcheck(document: Document): unknown {
  return {
    test: inline(document, ['CMD', 'etcdctl', `--endpoints=http://127.0.0.1:${ETCD_PORT}`, 'endpoint', 'health']),
    interval: '5s',
    timeout: '3s',
    retries: 5,
  };
}

/** etcd from the node image, its data in a volume that outlives `down` as the spec does (`down -v` forgets both). */
function etcdService(document: Document, address: Ipv4Address): YAMLMap {
  return document.createNode({
    image: NODE_IMAGE,
    pull_policy: 'never',
    init: false,
    stop_grace_period: '2s',
    restart: 'unless-stopped',
    entrypoint: [
      'etcd',
      '--name=etcd',
      '--data-dir=/var/lib/etcd/lab',
      `--listen-client-urls=${etcdUrl(address)},http://127.0.0.1:${ETCD_PORT}`,
      `--advertise-client-urls=${etcdUrl(address)}`,
    ],
    volumes: ['etcd:/var/lib/etcd'],
    healthcheck: etcdHealthcheck(document),
    networks: { [NETWORK]: { ipv4_address: address.toString() } },
  });
}

/** The Compose file, as YAML text; `file` is its own name as the user will type it in the header's commands. */
export function composeFileFor(spec: ClusterSpec, layout: ComposeLayout, file: string): string {
  const document = new Document();
  const defaults = nodeDefaults(document, spec, layout);
  const services = new YAMLMap();
  spec.nodes.forEach((node, i) => {
    const service = new YAMLMap();
    service.items.push(pair('<<', document.createAlias(defaults)));
    const own = document.createNode({
      ...(i === 0 && { build: { context: layout.buildContext, dockerfile: 'containers/Dockerfile' } }),
      hostname: node.name,
      command: inline(document, ['node', '--name', node.name]),
      networks: { [NETWORK]: { ipv4_address: node.ip.toString() } },
    }) as YAMLMap;
    service.items.push(...own.items);
    services.items.push(pair(node.name, service));
  });
  const datastore = layout.controlPlane?.datastore;
  if (datastore)
    services.items.push(pair('etcd', etcdService(document, datastore), " The lab's datastore: Debian's etcd 3.4."));
  const root = new YAMLMap();
  root.items.push(
    pair('name', `ipip-lab-${spec.name}`),
    pair(
      'x-node',
      defaults,
      ' As in the root docker-compose.yml: the spec volume starts empty and the first node up copies the generated\n' +
        ' spec into it (containers/node-entrypoint.sh); kubectl apply and delete rewrite that copy for every node.',
    ),
    pair('services', services),
    pair('volumes', document.createNode({ [SPEC_VOLUME]: null, ...(datastore && { etcd: null }) })),
    pair(
      'networks',
      document.createNode({
        [NETWORK]: { internal: true, ipam: { config: [{ subnet: spec.network.cidr.toString() }] } },
      }),
      " internal: the lab's addresses never leave this machine.",
    ),
  );
  document.contents = root;
  document.commentBefore = header(spec, layout, file);
  return document.toString({ lineWidth: 0, nullStr: '', flowCollectionPadding: false });
}
