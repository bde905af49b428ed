/**
 * The stack file that runs a generated spec across a Docker Swarm (`docker stack deploy`): the lab's etcd, the control
 * plane as one service and the workers as one replicated service that Swarm places over its machines, on an internal
 * attachable overlay. Swarm hands out the addresses (a stack cannot pin them), so the spec's nodes have none: each
 * agent takes the one it has in network.cidr and registers it in etcd (node/datastore/addresses.ts).
 */
import { Document, YAMLMap } from 'yaml';
import { withoutAddresses, type ClusterSpec } from '../../calico/index.js';
import type { Ipv4Prefix } from '../../routing/address.js';
import {
  etcdHealthcheck,
  ETCD_PORT,
  inline,
  KERNEL_NODE_CAPABILITIES,
  NODE_IMAGE,
  nodeHealthcheck,
  pair,
  SEED_PATH,
} from './gen-spec-compose.js';

/** Swarm's overlay is VXLAN: 50 bytes of each 1500-byte frame, so tunl0 gets 1450 - 20. */
export const OVERLAY_MTU = 1450;
const NETWORK = 'lab';
const SPEC_CONFIG = 'spec';
/** A stack's services find each other by name through Swarm's DNS. */
const DATASTORE = `http://etcd:${ETCD_PORT}`;

export interface SwarmLayout {
  /** The spec file, relative to the stack file's folder. */
  readonly specFile: string;
  /** The gen-spec command line that made the spec, quoted in the header. */
  readonly command: string;
}

/** The spec a swarm lab's nodes start from: no addresses (Swarm picks them), the overlay's MTU. */
export function swarmSpecText(specText: string): string {
  return withoutAddresses(specText, OVERLAY_MTU);
}

/** The workers' service: `<name>-worker`, kind's name for the first of them. */
export const SWARM_WORKER_SUFFIX = '-worker';

/** kind's names by Swarm's task slots: slot 1 is `<name>-worker`, slot n is `<name>-worker<n>`. */
export function workerName(clusterName: string, slot: number): string {
  return `${clusterName}${SWARM_WORKER_SUFFIX}${slot === 1 ? '' : slot}`;
}

/** workerName as a Go template, which Swarm expands in a service's hostname. */
export function workerHostnameTemplate(clusterName: string): string {
  const base = `${clusterName}${SWARM_WORKER_SUFFIX}`;
  return `{{if eq .Task.Slot "1"}}${base}{{else}}${base}{{.Task.Slot}}{{end}}`;
}

/**
 * What the node container needs before its agent starts, which a compose lab's container has already:
 * - /dev/net/tun: Swarm services take cap_add but no devices and no privileged, so the entrypoint makes it (CAP_MKNOD
 *   is one of Docker's defaults, and Docker's device rules let every container use 10:200).
 * - a default route: Docker gives a container on an internal bridge one (via the bridge's .1), but none on an
 *   internal overlay, and a Calico node needs it: the pods' gateway 169.254.1.1 is answered by proxy ARP on the
 *   cali veth, which the kernel does only for an address it has a route to, elsewhere. Swarm's IPAM keeps the
 *   subnet's first address for the overlay's own bridge, as on the bridge, and the network is internal.
 */
function nodeEntrypoint(network: Ipv4Prefix): string[] {
  const gateway = network.first().add(1);
  return [
    'sh',
    '-c',
    'mkdir -p /dev/net && { [ -c /dev/net/tun ] || mknod /dev/net/tun c 10 200; } && ' +
      `{ ip route show default | grep -q . || ip route add default via ${gateway}; } && ` +
      'exec /app/containers/node-entrypoint.sh "$$@"',
    'node-entrypoint',
  ];
}

function header(spec: ClusterSpec, layout: SwarmLayout, file: string, stack: string): string {
  const [controlPlane] = spec.nodes;
  return [
    ` A swarm lab of the cluster spec ${layout.specFile}: ${spec.nodes.length} nodes over the swarm's machines, on an`,
    ` internal overlay network ${spec.network.cidr}. Made by:`,
    `   ${layout.command}`,
    ` Build the node image on every machine of the swarm (docker build -t ${NODE_IMAGE} -f containers/Dockerfile .), then:`,
    `   docker stack deploy -c ${file} ${stack}`,
    `   docker exec -it $(docker ps -qf name=${stack}_${controlPlane.name}) kubectl get nodes -o wide`,
    `   ipip-lab swarm status ${stack}`,
    `   docker stack rm ${stack}`,
  ].join('\n');
}

function nodeDefaults(document: Document, spec: ClusterSpec): YAMLMap {
  const defaults = document.createNode({
    image: NODE_IMAGE,
    init: false,
    stop_grace_period: '2s',
    environment: {
      IPIP_LAB_SEED: SEED_PATH,
      IPIP_LAB_DATASTORE: DATASTORE,
      ETCDCTL_ENDPOINTS: DATASTORE,
    },
    configs: [{ source: SPEC_CONFIG, target: SEED_PATH }],
    // Each node's own copy of the spec, where its agent fills in the addresses the datastore gives.
    volumes: [{ type: 'tmpfs', target: '/etc/ipip-lab' }],
    cap_add: [...KERNEL_NODE_CAPABILITIES],
    entrypoint: nodeEntrypoint(spec.network.cidr),
    networks: [NETWORK],
    healthcheck: nodeHealthcheck(document, spec.nodes.length),
  }) as YAMLMap;
  defaults.anchor = 'node';
  return defaults;
}

function nodeService(document: Document, defaults: YAMLMap, own: Record<string, unknown>): YAMLMap {
  const service = new YAMLMap();
  service.items.push(pair('<<', document.createAlias(defaults)));
  service.items.push(...(document.createNode(own) as YAMLMap).items);
  return service;
}

/** The stack file, as YAML text; `file` and `stack` are as the user will type them in the header's commands. */
export function swarmStackFor(spec: ClusterSpec, layout: SwarmLayout, file: string, stack: string): string {
  const document = new Document();
  const defaults = nodeDefaults(document, spec);
  const [controlPlane, ...workers] = spec.nodes;
  // An endpoint per task, no virtual IP: each node is reached at its own address, as on a real network.
  const deploy = (replicas: number) => ({ replicas, endpoint_mode: 'dnsrr' });
  const services = new YAMLMap();
  services.items.push(
    pair(
      'etcd',
      document.createNode({
        image: NODE_IMAGE,
        init: false,
        stop_grace_period: '2s',
        entrypoint: [
          'etcd',
          '--name=etcd',
          '--data-dir=/var/lib/etcd/lab',
          `--listen-client-urls=http://0.0.0.0:${ETCD_PORT}`,
          `--advertise-client-urls=${DATASTORE}`,
        ],
        healthcheck: etcdHealthcheck(document),
        networks: [NETWORK],
        deploy: deploy(1),
      }),
      " The lab's datastore: Debian's etcd 3.4.",
    ),
    pair(
      controlPlane.name,
      nodeService(document, defaults, {
        hostname: controlPlane.name,
        command: inline(document, ['node', '--dataplane', 'kernel']),
        deploy: deploy(1),
      }),
    ),
  );
  if (workers.length > 0) {
    services.items.push(
      pair(
        `${spec.name}${SWARM_WORKER_SUFFIX}`,
        nodeService(document, defaults, {
          hostname: workerHostnameTemplate(spec.name),
          command: inline(document, ['node', '--dataplane', 'kernel']),
          deploy: deploy(workers.length),
        }),
        ' Every worker, spread over the machines by Swarm; each names itself from its slot, as kind names them.',
      ),
    );
  }
  const root = new YAMLMap();
  root.items.push(
    pair('version', '3.8'),
    pair(
      'x-node',
      defaults,
      " The kernel dataplane: NET_ADMIN for tunl0, the routes and the veths, SYS_ADMIN for the pods' namespaces.\n" +
        ' The agents find the datastore by its service name and each other through it.',
    ),
    pair('services', services),
    pair('configs', document.createNode({ [SPEC_CONFIG]: { file: layout.specFile } })),
    pair(
      'networks',
      document.createNode({
        [NETWORK]: {
          driver: 'overlay',
          internal: true,
          attachable: true,
          ipam: { config: [{ subnet: spec.network.cidr.toString() }] },
        },
      }),
      " internal: the lab's addresses never leave the swarm's machines. Between machines the overlay's VXLAN runs\n" +
        " over the address each gave `docker swarm init/join --data-path-addr`; add `driver_opts: { encrypted: '' }`\n" +
        ' to have it IPsec-encrypted (README, "A lab across machines").',
    ),
  );
  document.contents = root;
  document.commentBefore = header(spec, layout, file, stack);
  return document.toString({ lineWidth: 0, nullStr: '', flowCollectionPadding: false });
}
