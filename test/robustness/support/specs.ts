/**
 * The robustness suite's specs: its two labs (10.32.0.0/24, 10.33.0.0/24, never the seed's 10.0.0.0/24, which
 * other tests and the compose lab use) and the list of bad specs, as edits of a bundled spec text.
 */
import { parse, stringify } from 'yaml';
import { REPO_ROOT } from '../../support/cli.js';

export const ROBUSTNESS_SPEC = `${REPO_ROOT}test/fixtures/robustness.yaml`;
export const RESTART_SPEC = `${REPO_ROOT}test/fixtures/robustness-restart.yaml`;
export const RESTART_COMPOSE = `${REPO_ROOT}test/fixtures/robustness-restart.compose.yml`;

export interface BadSpec {
  name: string;
  /** The SpecError's field. */
  field: string;
  /** What the message must also say. */
  says: string[];
  edit(bundled: string): string;
}

/** Parses a spec text, lets `change` edit the data, and writes it back. */
function editing(change: (spec: any) => void): (bundled: string) => string {
  return (bundled) => {
    const spec = parse(bundled);
    change(spec);
    return stringify(spec);
  };
}

/** Issue 7's list: each names its field, so `ipip-lab node` exits 2 saying what to fix. */
export const BAD_SPECS: readonly BadSpec[] = [
  {
    name: 'duplicate node names',
    field: 'nodes[2].name',
    says: ['"worker-node01" is already used by nodes[1]'],
    edit: editing((s) => (s.nodes[2].name = 'worker-node01')),
  },
  {
    name: 'duplicate node IPs',
    field: 'nodes[2].ip',
    says: ['"10.32.0.11" is already used by nodes[1] (worker-node01)'],
    edit: editing((s) => (s.nodes[2].ip = '10.32.0.11')),
  },
  {
    name: 'a pool overlapping the node network',
    field: 'pool.cidr',
    says: ['"10.0.0.0/8" overlaps the node network 10.32.0.0/24'],
    edit: editing((s) => (s.pool.cidr = '10.0.0.0/8')),
  },
  {
    name: 'an invalid pool CIDR',
    field: 'pool.cidr',
    says: ['"192.168.0.0/33" is not an IPv4 CIDR'],
    edit: editing((s) => (s.pool.cidr = '192.168.0.0/33')),
  },
  {
    name: 'an invalid network CIDR',
    field: 'network.cidr',
    says: ['"10.32.0.0/24x" is not an IPv4 CIDR'],
    edit: editing((s) => (s.network.cidr = '10.32.0.0/24x')),
  },
  {
    name: "a block size under Calico's 20",
    field: 'pool.blockSize',
    says: ['19 is outside 20..32'],
    edit: editing((s) => (s.pool.blockSize = 19)),
  },
  {
    name: 'a block size over 32',
    field: 'pool.blockSize',
    says: ['33 is outside 20..32'],
    edit: editing((s) => (s.pool.blockSize = 33)),
  },
  {
    name: 'more replicas than the pool holds',
    field: 'workloads[0].spec.replicas',
    says: ['the cluster would have 62 pods', 'holds 61 pod addresses'],
    edit: editing((s) => {
      s.pool.cidr = '192.168.0.0/26';
      s.clusterCIDR = '10.244.0.0/16';
      s.workloads[0].spec.replicas = 62;
    }),
  },
  {
    name: 'an unknown field',
    field: 'nodes[1].zone',
    says: ['unknown field (expected one of: name, ip, role, labels)'],
    edit: editing((s) => (s.nodes[1].zone = 'a')),
  },
  {
    name: 'an unknown top-level field (a typo)',
    field: 'workload',
    says: ['unknown field'],
    edit: editing((s) => {
      s.workload = s.workloads;
      delete s.workloads;
    }),
  },
];
