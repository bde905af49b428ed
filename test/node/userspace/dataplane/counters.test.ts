/** The drop-reason list, the stats snapshot, and configuration the dataplane refuses. */
import { describe, expect, it } from 'vitest';
import {
  DATAPLANE_DROP_REASONS,
  DATAPLANE_EVENTS,
  Dataplane,
  unaccounted,
  type NodeConfig,
} from '../../../../src/node/userspace/dataplane.js';
import { Ipv4Prefix } from '../../../../src/routing/address.js';
import { DROP_REASONS } from '../../../../src/wire/result.js';
import { NODE_A, NODE_B, POD_A, POD_B, checkCountersAfterEachTest, configOf, echo, makeNode } from './harness.js';

checkCountersAfterEachTest();

const noUnderlay = { send: () => {} };

describe('drop reasons', () => {
  it("are one list: the wire layer's parse failures, then the node's, each named once", () => {
    expect(new Set(DATAPLANE_DROP_REASONS).size).toBe(DATAPLANE_DROP_REASONS.length);
    expect(DATAPLANE_DROP_REASONS.slice(0, DROP_REASONS.length)).toEqual([...DROP_REASONS]);
    expect(DATAPLANE_DROP_REASONS).toEqual(
      expect.arrayContaining([
        'unknown-ipip-source',
        'not-for-this-node',
        'blackhole',
        'no-route',
        'ttl-expired',
        'frag-needed',
        'spoofed-source',
        'ecn-non-ect-ce',
        'nested-ipip',
        'unknown-pod',
        'routing-loop',
      ]),
    );
    expect(DATAPLANE_DROP_REASONS).not.toContain('asymmetric-inner-source');
    expect(DATAPLANE_EVENTS).toContain('asymmetric-inner-source');
  });
});

describe('stats', () => {
  it('start at zero for every interface and reason, and are a snapshot', () => {
    const a = makeNode(NODE_A);
    const before = a.dp.stats();
    expect(Object.keys(before.interfaces).sort()).toEqual([POD_A.hostInterface, 'eth0', 'tunl0'].sort());
    expect(Object.keys(before.drops)).toEqual([...DATAPLANE_DROP_REASONS]);
    expect(Object.values(before.drops).every((count) => count === 0)).toBe(true);
    const packet = echo({ src: POD_A.ip, dst: POD_B.ip });
    a.dp.fromPod(POD_A.name, packet);
    expect(before.received).toBe(0);
    expect(before.tunnels).toEqual({});
    expect(before.interfaces.eth0.txPackets).toBe(0);
    const after = a.dp.stats();
    expect(after).toMatchObject({ received: 1, forwarded: 1, dropped: 0 });
    // The tunnel to pod-b's node carried it, outer header included.
    expect(after.tunnels).toEqual({
      [NODE_B.nodeIp]: { txPackets: 1, txBytes: packet.length + 20, rxPackets: 0, rxBytes: 0 },
    });
    expect(unaccounted(after)).toBe(0);
  });
});

describe('configuration', () => {
  it('refuses an impossible tunnel MTU, duplicate pods and duplicate routes', () => {
    const config = configOf(NODE_A);
    const build = (changes: Partial<NodeConfig>) => () => new Dataplane({ ...config, ...changes }, noUnderlay);
    expect(build({ tunnelMtu: 67 })).toThrow(RangeError);
    expect(build({ tunnelMtu: 65516 })).toThrow(RangeError);
    expect(build({ pods: [...config.pods, config.pods[0]] })).toThrow(/not unique/);
    const routes = [...config.routes];
    expect(build({ routes: [...routes, routes[0]] })).toThrow(/exists/);
    const unmasked = Ipv4Prefix.parse('10.1.2.3/8');
    expect(build({ routes: [{ kind: 'blackhole', destination: unmasked }] })).toThrow(/Invalid prefix/);
  });

  it('refuses to attach a pod it does not have', () => {
    const a = makeNode(NODE_A);
    expect(() => a.dp.attachPod('nobody', () => {})).toThrow(/no pod nobody/);
  });
});
