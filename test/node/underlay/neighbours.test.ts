import { describe, expect, it } from 'vitest';
import { Ipv4Address } from '../../../src/routing/index.js';
import { NeighbourPins, type IpBatchRunner } from '../../../src/node/underlay/neighbours.js';

const ip = (text: string): Ipv4Address => Ipv4Address.parse(text);

function recorder(fail?: (lines: readonly string[]) => Error | undefined) {
  const batches: string[][] = [];
  const logs: string[] = [];
  const run: IpBatchRunner = (lines) => {
    batches.push([...lines]);
    const error = fail?.(lines);
    return error ? Promise.reject(error) : Promise.resolve();
  };
  return { batches, logs, pins: new NeighbourPins('eth0', (line) => logs.push(line), run) };
}

describe('NeighbourPins', () => {
  it("makes every peer's entry managed and externally learned, with no MAC of its own", async () => {
    const { batches, logs, pins } = recorder();
    await pins.pin([ip('10.0.0.11'), ip('10.0.0.12')]);
    expect(batches).toEqual([
      [
        'neigh replace 10.0.0.11 dev eth0 managed extern_learn',
        'neigh replace 10.0.0.12 dev eth0 managed extern_learn',
      ],
    ]);
    expect(logs).toEqual([
      "neighbour entries of 2 peers on eth0: managed by the kernel, outside the host's shared limit",
    ]);
  });

  it('on a change pins the new peers and removes only the entries it made for peers that left', async () => {
    const { batches, pins } = recorder();
    await pins.pin([ip('10.0.0.11'), ip('10.0.0.12')]);
    await pins.pin([ip('10.0.0.12'), ip('10.0.0.13')]);
    expect(batches[1]).toEqual([
      'neigh replace 10.0.0.13 dev eth0 managed extern_learn',
      'neigh del 10.0.0.11 dev eth0',
    ]);
  });

  it('runs nothing when the peers did not change, and keeps changes in order', async () => {
    const { batches, pins } = recorder();
    const first = pins.pin([ip('10.0.0.11')]);
    const second = pins.pin([ip('10.0.0.11')]);
    const third = pins.pin([]);
    await Promise.all([first, second, third]);
    expect(batches).toEqual([
      ['neigh replace 10.0.0.11 dev eth0 managed extern_learn'],
      ['neigh del 10.0.0.11 dev eth0'],
    ]);
  });

  it('without NET_ADMIN says so once, names the limit, and stops trying', async () => {
    const { batches, logs, pins } = recorder(() => new Error('RTNETLINK answers: Operation not permitted'));
    await pins.pin([ip('10.0.0.11')]);
    await pins.pin([ip('10.0.0.11'), ip('10.0.0.12')]);
    expect(batches).toHaveLength(1);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain('Operation not permitted: the container lacks NET_ADMIN');
    expect(logs[0]).toContain('net.ipv4.neigh.default.gc_thresh3');
  });

  it('after another failure tries again at the next change', async () => {
    let calls = 0;
    const { batches, logs, pins } = recorder(() => (calls++ === 0 ? new Error('Error: Invalid argument') : undefined));
    await pins.pin([ip('10.0.0.11')]);
    await pins.pin([ip('10.0.0.11'), ip('10.0.0.12')]);
    expect(batches[1]).toEqual([
      'neigh replace 10.0.0.11 dev eth0 managed extern_learn',
      'neigh replace 10.0.0.12 dev eth0 managed extern_learn',
    ]);
    expect(logs.at(-1)).toContain('neighbour entries of 2 peers');
  });
});
