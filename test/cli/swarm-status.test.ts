import { describe, expect, it } from 'vitest';
import { workerHostnameTemplate } from '../../src/cli/commands/gen-spec-swarm.js';
import { swarmNodes, type SwarmTask } from '../../src/cli/commands/swarm.js';
import { cli } from '../support/cli.js';

function task(id: string, service: string, slot: number, node: string, hostname: string, address?: string): SwarmTask {
  return {
    ID: id.padEnd(25, '0'),
    Slot: slot,
    NodeID: node,
    ServiceID: service,
    Status: { State: 'running' },
    DesiredState: 'running',
    Spec: { ContainerSpec: { Hostname: hostname } },
    NetworksAttachments: address
      ? [{ Network: { Spec: { Name: 'lab1_lab' } }, Addresses: [`${address}/24`] }]
      : undefined,
  };
}

describe('swarmNodes', () => {
  const services = new Map([
    ['s-etcd', 'lab1_etcd'],
    ['s-cp', 'lab1_kind-control-plane'],
    ['s-w', 'lab1_kind-worker'],
  ]);
  const machines = new Map([
    ['m1', 'machine-a'],
    ['m2', 'machine-b'],
  ]);
  const template = workerHostnameTemplate('kind');

  it("names each task's node as its hostname template does, with its machine and lab address", () => {
    const tasks = [
      task('t1', 's-etcd', 1, 'm1', '', '10.53.0.2'),
      task('t12', 's-w', 10, 'm2', template, '10.53.0.30'),
      task('t2', 's-w', 2, 'm1', template, '10.53.0.5'),
      task('t3', 's-cp', 1, 'm2', 'kind-control-plane', '10.53.0.3'),
      task('t4', 's-w', 1, 'm2', template),
      { ...task('t5', 's-w', 3, 'm1', template, '10.53.0.9'), DesiredState: 'shutdown' },
    ];
    expect(swarmNodes('lab1', tasks, services, machines)).toEqual([
      {
        name: 'kind-control-plane',
        machine: 'machine-b',
        state: 'running',
        address: '10.53.0.3',
        task: 't30000000000',
      },
      { name: 'kind-worker', machine: 'machine-b', state: 'running', address: '<none>', task: 't40000000000' },
      { name: 'kind-worker2', machine: 'machine-a', state: 'running', address: '10.53.0.5', task: 't20000000000' },
      { name: 'kind-worker10', machine: 'machine-b', state: 'running', address: '10.53.0.30', task: 't12000000000' },
    ]);
  });
});

describe('ipip-lab swarm', () => {
  it('teaches what status shows', async () => {
    const result = await cli('swarm', 'status', '--help');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/MACHINE the swarm node the task runs on/);
  });

  it('needs the stack name', async () => {
    const result = await cli('swarm', 'status');
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/missing required argument 'stack'/);
  });
});
