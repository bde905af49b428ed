import { describe, expect, it } from 'vitest';
import { buildCluster, renderBirdConfig, type ClusterState } from '../../src/calico/index.js';
import { Ipv4Address } from '../../src/routing/address.js';
import { seedCluster, seedSpec } from '../support/seed-cluster.js';

const cluster = seedCluster();

function config(node: string, stockBird = false): string {
  return renderBirdConfig(cluster, node, { stockBird });
}

/** The body of `protocol bgp NAME from bgp_template { … }`, or undefined when the config has no such protocol. */
function meshProtocol(text: string, name: string): string | undefined {
  return new RegExp(`^protocol bgp ${name} from bgp_template \\{\\n([\\s\\S]*?)\\n\\}$`, 'm').exec(text)?.[1];
}

function meshProtocolNames(text: string): string[] {
  return [...text.matchAll(/^protocol bgp (\S+) from bgp_template \{$/gm)].map((match) => match[1]);
}

function blocksOf(state: ClusterState, node: string): string[] {
  return state.nodes.find((candidate) => candidate.name === node)!.blocks.map(String);
}

describe('renderBirdConfig on the seed cluster', () => {
  it('names every other node Mesh_<address>, with our address as router id and TCP source', () => {
    const text = config('worker-node02');
    expect(text).toContain('\nrouter id 10.0.0.12;\n');
    expect(meshProtocolNames(text)).toEqual(['Mesh_10_0_0_10', 'Mesh_10_0_0_11']);
    expect(text).toContain('# For peer /bgp/v1/host/worker-node02/ip_addr_v4\n# Skipping ourselves (10.0.0.12)\n');
    expect(meshProtocol(text, 'Mesh_10_0_0_10')!.split('\n')).toEqual([
      '  neighbor 10.0.0.10 as 64512;',
      '  source address 10.0.0.12;  # The local address we use for the TCP connection',
      "  import all;        # Import all routes, since we don't know what the upstream",
      '                     # topology is and therefore have to trust the ToR/RR.',
      '  export filter {',
      '    calico_export_to_bgp_peers(true);',
      '    reject;',
      '  };  # Only want to export routes for workloads.',
    ]);
  });

  it('makes a node passive towards each peer whose address string is greater', () => {
    const passive = (node: string, peer: string) =>
      meshProtocol(config(node), peer)!.endsWith('\n  passive on; # Mesh is unidirectional, peer will connect to us.');
    expect(passive('master-node', 'Mesh_10_0_0_11')).toBe(true);
    expect(passive('master-node', 'Mesh_10_0_0_12')).toBe(true);
    expect(passive('worker-node01', 'Mesh_10_0_0_10')).toBe(false);
    expect(passive('worker-node01', 'Mesh_10_0_0_12')).toBe(true);
    expect(passive('worker-node02', 'Mesh_10_0_0_10')).toBe(false);
    expect(passive('worker-node02', 'Mesh_10_0_0_11')).toBe(false);
  });

  it('compares the addresses as strings, not numbers: 10.0.0.9 connects to 10.0.0.10', () => {
    const spec = seedSpec();
    const renumbered = buildCluster({
      ...spec,
      nodes: spec.nodes.map((node) =>
        node.name === 'worker-node02' ? { ...node, ip: Ipv4Address.parse('10.0.0.9') } : node,
      ),
    });
    const master = renderBirdConfig(renumbered, 'master-node');
    const worker = renderBirdConfig(renumbered, 'worker-node02');
    expect(meshProtocol(master, 'Mesh_10_0_0_9')).toContain('passive on;');
    expect(meshProtocol(worker, 'Mesh_10_0_0_10')).not.toContain('passive on;');
  });

  it("announces the node's blocks: a blackhole static each, exported by calico_aggr and nothing beneath them", () => {
    for (const node of cluster.nodes) {
      const text = config(node.name);
      const blocks = blocksOf(cluster, node.name);
      expect(blocks.length).toBeGreaterThan(0);
      const statics = /^protocol static \{\n {3}# IP blocks for this host\.\n([\s\S]*?)\n\}$/m.exec(text)![1];
      expect(statics.split('\n')).toEqual(blocks.map((block) => `   route ${block} blackhole;`));
      const aggr = /^function calico_aggr \(\)\n\{\n([\s\S]*?)\n\}$/m.exec(text)![1];
      expect(aggr.split('\n')).toEqual(
        blocks.flatMap((block) => [
          `      # Block ${block} is confirmed`,
          `      if ( net = ${block} ) then { accept; }`,
          `      if ( net ~ ${block} ) then { reject; }`,
        ]),
      );
    }
  });

  it('exports what is in the pool after calico_aggr, and programs the pool through tunl0 (IPIP Always)', () => {
    const text = config('master-node');
    expect(text).toContain('  calico_aggr();\n\n  if ( net ~ 192.168.0.0/16 ) then {\n    accept;\n  }\n}\n');
    expect(text).toContain(
      'filter calico_kernel_programming {\n\n  if ( net ~ 192.168.0.0/16 ) then {\n' +
        '    krt_tunnel = "tunl0";\n    accept;\n  }\n\n  accept;\n}\n',
    );
  });

  it('leaves krt_tunnel out for a stock BIRD, which has no such attribute, and changes nothing else', () => {
    const stock = config('master-node', true);
    expect(stock).not.toMatch(/^\s*krt_tunnel/m);
    expect(stock).toMatch(/^ {4}# krt_tunnel left out: it is an attribute of Calico's BIRD fork only/m);
    const withoutComments = (text: string) =>
      text
        .split('\n')
        .filter((line) => !/^\s*(#|krt_tunnel)/.test(line))
        .join('\n');
    expect(withoutComments(stock)).toBe(withoutComments(config('master-node')));
  });

  it("has confd's template for every BGP session, and its kernel, device and direct protocols", () => {
    const text = config('worker-node01');
    expect(text).toContain(
      [
        'template bgp bgp_template {',
        '  debug { states };',
        '  description "Connection to BGP peer";',
        '  local as 64512;',
        '  gateway recursive; # This should be the default, but just in case.',
        '  add paths on;',
        '  graceful restart;  # See comment in kernel section about graceful restart.',
        '  connect delay time 2;',
        '  connect retry time 5;',
        '  error wait time 5,30;',
        '}',
      ].join('\n'),
    );
    const kernel = /^protocol kernel \{\n([\s\S]*?)\n\}$/m.exec(text)![1];
    const statements = kernel.split('\n').map((line) => line.replace(/#.*/, '').trim());
    expect(statements.filter(Boolean)).toEqual([
      'learn;',
      'persist;',
      'scan time 2;',
      'import all;',
      'export filter calico_kernel_programming;',
      'graceful restart;',
      'merge paths on;',
    ]);
    expect(text).toMatch(/^protocol device \{\n {2}debug \{ states \};\n {2}scan time 2; /m);
    expect(text).toMatch(
      /^protocol direct \{\n {2}debug \{ states \};\n {2}interface -"cali\*", -"kube-ipvs\*", "\*"; /m,
    );
  });

  it('inlines the included files where bird.cfg includes them, so that functions come before they are used', () => {
    const text = config('worker-node01');
    const order = [
      '# ------------- bird.cfg -------------',
      'function apply_communities ()',
      '# ------------- bird_aggr.cfg -------------',
      'protocol static {',
      'function calico_aggr ()',
      '# ------------- bird_ipam.cfg -------------',
      'function calico_export_to_bgp_peers(bool internal_peer) {',
      'filter calico_kernel_programming {',
      '# ------------- bird.cfg, after its includes -------------',
      'router id 10.0.0.11;',
      'protocol kernel {',
      'template bgp bgp_template {',
      'protocol bgp Mesh_10_0_0_10 from bgp_template {',
    ].map((line) => `\n${text}`.indexOf(`\n${line}\n`));
    expect(order).not.toContain(-1);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(text).not.toMatch(/^include /m);
  });

  it('refuses a node the cluster does not have', () => {
    expect(() => config('worker-node03')).toThrow('no node "worker-node03" in the cluster');
  });
});
