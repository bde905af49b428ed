/**
 * A bug the flood exposed: every IPIP packet with ECN marked on the outer header over a Not-ECT inner one made the
 * agent print "ip_tunnel: non-ECT from …", so anyone allowed to send IPIP could fill the node's log (and the disk
 * under Docker's log). The kernel rate-limits that message with net_ratelimit(): 10 per 5 s, then a count of what it
 * held back. The dataplane now does the same for every line a packet can cause.
 */
import { describe, expect, it } from 'vitest';
import {
  NODE_A,
  NODE_B,
  POD_B,
  checkCountersAfterEachTest,
  echo,
  ipip,
  makeNode,
} from '../node/userspace/dataplane/harness.js';

checkCountersAfterEachTest();

describe('log lines caused by packets', () => {
  it('10,000 non-ECT packets under a CE outer header: 10 lines per 5 s, then how many were suppressed', () => {
    let now = 1_000_000_000_000n;
    const node = makeNode(NODE_B, { now: () => now });
    const packet = ipip(NODE_A.nodeIp, NODE_B.nodeIp, echo({ src: '192.168.77.130', dst: POD_B.ip, tos: 0 }), {
      tos: 0x03,
    });
    for (let i = 0; i < 10_000; i++) node.dp.fromUnderlay(packet);
    expect(node.dp.stats().drops['ecn-non-ect-ce']).toBe(10_000);
    expect(node.logs).toHaveLength(10);
    expect(new Set(node.logs)).toEqual(new Set(['ip_tunnel: non-ECT from 10.0.0.10 with TOS=0x3']));

    now += 5_000_000_000n;
    node.dp.fromUnderlay(packet);
    expect(node.logs.slice(10)).toEqual([
      'net_ratelimit: 9990 callbacks suppressed',
      'ip_tunnel: non-ECT from 10.0.0.10 with TOS=0x3',
    ]);
  });
});
