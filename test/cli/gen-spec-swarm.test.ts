import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generateSpec } from '../../src/calico/index.js';
import { swarmStackFor, workerHostnameTemplate } from '../../src/cli/commands/gen-spec-swarm.js';

const LAYOUT = { specFile: './swarm.yaml', command: 'ipip-lab gen-spec --nodes N' };

function stackFor(nodes: number): any {
  const spec = generateSpec({ nodes, networkCidr: '10.53.0.0/24' }).spec;
  return parse(swarmStackFor(spec, LAYOUT, 'swarm.stack.yml', 'lab'), { merge: true });
}

/** Go's template as Swarm expands it, for the one construct the hostname uses. */
function expand(template: string, slot: number): string {
  const match = /^\{\{if eq \.Task\.Slot "1"\}\}([^{]+)\{\{else\}\}([^{]+)\{\{\.Task\.Slot\}\}\{\{end\}\}$/.exec(
    template,
  );
  if (!match) throw new Error(`not the expected template: ${template}`);
  return slot === 1 ? match[1] : `${match[2]}${slot}`;
}

describe('swarmStackFor', () => {
  it('runs etcd, the control plane and the workers as one replicated service', () => {
    const stack = stackFor(20);
    expect(Object.keys(stack.services)).toEqual(['etcd', 'kind-control-plane', 'kind-worker']);
    expect(stack.services['kind-control-plane'].deploy).toEqual({ replicas: 1, endpoint_mode: 'dnsrr' });
    expect(stack.services['kind-worker'].deploy).toEqual({ replicas: 19, endpoint_mode: 'dnsrr' });
    expect(stack.services.etcd.entrypoint).toContain('--advertise-client-urls=http://etcd:2379');
  });

  it("names the workers' tasks as kind names its workers", () => {
    const template = stackFor(4).services['kind-worker'].hostname as string;
    expect(template).toBe(workerHostnameTemplate('kind'));
    expect([1, 2, 3].map((slot) => expand(template, slot))).toEqual(['kind-worker', 'kind-worker2', 'kind-worker3']);
    expect(
      generateSpec({ nodes: 4 })
        .spec.nodes.slice(1)
        .map((node) => node.name),
    ).toEqual(['kind-worker', 'kind-worker2', 'kind-worker3']);
  });

  it('puts the lab on an internal attachable overlay with the spec subnet', () => {
    expect(stackFor(3).networks).toEqual({
      lab: { driver: 'overlay', internal: true, attachable: true, ipam: { config: [{ subnet: '10.53.0.0/24' }] } },
    });
  });

  it('asks for the kernel dataplane with capabilities only, making /dev/net/tun itself', () => {
    const node = stackFor(3).services['kind-worker'];
    expect(node.cap_add).toEqual(['NET_ADMIN', 'SYS_ADMIN']);
    expect(node.privileged).toBeUndefined();
    expect(node.devices).toBeUndefined();
    expect(node.entrypoint.join(' ')).toContain('mknod /dev/net/tun c 10 200');
    expect(node.entrypoint.join(' ')).toContain('ip route add default via 10.53.0.1;');
    expect(node.command).toEqual(['node', '--dataplane', 'kernel']);
    expect(node.environment).toMatchObject({ IPIP_LAB_DATASTORE: 'http://etcd:2379' });
    expect(node.configs).toEqual([{ source: 'spec', target: '/etc/ipip-lab-seed.yaml' }]);
    expect(stackFor(3).configs).toEqual({ spec: { file: './swarm.yaml' } });
  });

  it('has no worker service for a cluster of one node', () => {
    expect(Object.keys(stackFor(1).services)).toEqual(['etcd', 'kind-control-plane']);
  });
});
