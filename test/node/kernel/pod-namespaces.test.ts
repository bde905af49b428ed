/**
 * PodNamespaces over fake KernelTools that record every call in order: how each seed pod is wired the way the
 * Calico CNI plugin wires it, what a converge changes (and what it leaves alone), and what a start after a crash
 * clears.
 */
import { describe, expect, it } from 'vitest';
import { nodeDataplane, type PodState } from '../../../src/calico/index.js';
import { PodNamespaces, netnsPath, type KernelTools } from '../../../src/node/kernel/pod-namespaces.js';
import { Ipv4Address } from '../../../src/routing/address.js';
import type { Link } from '../../../src/routing/index.js';
import { seedCluster } from '../../support/seed-cluster.js';

const SEED = seedCluster();
const NODE = 'worker-node01';
const PODS = SEED.pods.filter((pod) => pod.node === NODE);
const LINKS = nodeDataplane(SEED, NODE).links;

type Call =
  | { ip: string[] }
  | { batch: string[] }
  | { batchIn: string; lines: string[] }
  | { sysctl: string; value: string }
  | { inNamespace: string; command: string[] }
  | { beforeUnwire: string };

interface Fake {
  tools: KernelTools;
  calls: Call[];
  logs: string[];
  namespaces: PodNamespaces;
  beforeUnwire: (pod: PodState) => void;
}

interface FakeOptions {
  /** What `ip` prints, by its arguments joined with spaces. */
  outputs?: Record<string, string>;
  /** A batch whose first line matches fails with this error. */
  failBatch?: { when: RegExp; error: Error };
}

function fake(options: FakeOptions = {}): Fake {
  const calls: Call[] = [];
  const logs: string[] = [];
  const tools: KernelTools = {
    ip: (args) => {
      calls.push({ ip: [...args] });
      return Promise.resolve(options.outputs?.[args.join(' ')] ?? '');
    },
    batch: (lines) => {
      calls.push({ batch: [...lines] });
      const failure = options.failBatch;
      return failure && failure.when.test(lines[0]) ? Promise.reject(failure.error) : Promise.resolve();
    },
    batchIn: (netns, lines) => {
      calls.push({ batchIn: netns, lines: [...lines] });
      return Promise.resolve();
    },
    sysctl: (key, value) => void calls.push({ sysctl: key, value }),
    inNamespace: (netns, command) => {
      calls.push({ inNamespace: netns, command: [...command] });
      return Promise.resolve();
    },
  };
  return {
    tools,
    calls,
    logs,
    namespaces: new PodNamespaces((line) => void logs.push(line), tools),
    beforeUnwire: (pod) => void calls.push({ beforeUnwire: pod.name }),
  };
}

/** What the Calico CNI plugin does for one pod, call by call. */
function wiringOf(pod: PodState, hostMac = 'ee:ee:ee:ee:ee:ee'): Call[] {
  const cali = pod.hostInterface;
  return [
    {
      batch: [
        `netns add ${pod.netns}`,
        `link add ${cali} mtu ${pod.mtu} type veth peer name eth0 mtu ${pod.mtu} netns ${pod.netns}`,
        `link set ${cali} address ${hostMac} up`,
      ],
    },
    { sysctl: `net/ipv4/conf/${cali}/proxy_arp`, value: '1' },
    { sysctl: `net/ipv4/neigh/${cali}/proxy_delay`, value: '0' },
    { sysctl: `net/ipv4/conf/${cali}/rp_filter`, value: '1' },
    {
      batchIn: pod.netns,
      lines: [
        'link set lo up',
        `link set eth0 address ${pod.podMac} up`,
        `addr add ${pod.ip}/32 brd ${pod.ip} dev eth0`,
        'route replace 169.254.1.1 dev eth0 scope link',
        'route replace default via 169.254.1.1 dev eth0',
      ],
    },
    // No IPv6 in a pod of this cluster: the namespace's own /proc/sys turns it off.
    {
      inNamespace: pod.netns,
      command: expect.arrayContaining([expect.stringContaining('disable_ipv6')]) as string[],
    },
  ];
}

const unwiringOf = (pod: PodState): Call => ({ batch: [`link del ${pod.hostInterface}`, `netns del ${pod.netns}`] });

describe('PodNamespaces.converge', () => {
  it('wires each new pod as the Calico CNI plugin does, the link route to 169.254.1.1 before the default route', async () => {
    expect(PODS).toHaveLength(2);
    const { namespaces, calls, logs, beforeUnwire } = fake();
    const result = await namespaces.converge(SEED, PODS, LINKS, beforeUnwire);
    expect(calls).toEqual(PODS.flatMap((pod) => wiringOf(pod)));
    // The seed's network MTU 1500 less the IPIP header, on both ends of the veth.
    expect(calls[0]).toMatchObject({
      batch: [expect.any(String), expect.stringMatching(/ mtu 1480 .* mtu 1480 /), expect.any(String)],
    });
    expect(result.added.map((pod) => pod.name)).toEqual(PODS.map((pod) => pod.name));
    expect(result.removed).toEqual([]);
    for (const pod of PODS) {
      expect(pod.netns).toMatch(/^cni-[0-9a-f-]{36}$/);
      expect(pod.hostInterface).toMatch(/^cali[0-9a-f]{11}$/);
      expect(logs).toContain(`pod ${pod.name}: namespace ${pod.netns}, ${pod.hostInterface} <-> eth0 ${pod.ip}/32`);
    }
    // Inside the namespace the gateway's link route must exist before the default route that goes via it.
    const inside = calls.find((call): call is Extract<Call, { batchIn: string }> => 'batchIn' in call)!.lines;
    expect(inside.findIndex((line) => line.includes('169.254.1.1 dev eth0 scope link'))).toBeLessThan(
      inside.findIndex((line) => line.startsWith('route replace default ')),
    );
  });

  it('gives the host end the MAC of the node link Felix lists, ee:ee:ee:ee:ee:ee when it lists none', async () => {
    const [first] = PODS;
    const own: Link[] = LINKS.map((link) =>
      link.name === first.hostInterface ? { ...link, linkAddress: '02:00:00:00:be:ef' } : link,
    );
    const withOwn = fake();
    await withOwn.namespaces.converge(SEED, [first], own, withOwn.beforeUnwire);
    expect(withOwn.calls[0]).toEqual(wiringOf(first, '02:00:00:00:be:ef')[0]);
    const withNone = fake();
    await withNone.namespaces.converge(SEED, [first], [], withNone.beforeUnwire);
    expect(withNone.calls).toEqual(wiringOf(first));
  });

  it('does nothing at all when the same pods converge again, even from a cluster rebuilt from the spec', async () => {
    const { namespaces, calls, beforeUnwire } = fake();
    await namespaces.converge(SEED, PODS, LINKS, beforeUnwire);
    calls.length = 0;
    const again = await namespaces.converge(SEED, PODS, LINKS, beforeUnwire);
    const rebuilt = seedCluster();
    const fresh = rebuilt.pods.filter((pod) => pod.node === NODE);
    expect(fresh[0]).not.toBe(PODS[0]);
    const afterRebuild = await namespaces.converge(rebuilt, fresh, nodeDataplane(rebuilt, NODE).links, beforeUnwire);
    expect(calls).toEqual([]);
    expect(again).toEqual({ added: [], removed: [] });
    expect(afterRebuild).toEqual({ added: [], removed: [] });
  });

  it('unwires a pod that left, after beforeUnwire for it, and leaves the others alone', async () => {
    const [stays, leaves] = PODS;
    const { namespaces, calls, logs, beforeUnwire } = fake();
    await namespaces.converge(SEED, PODS, LINKS, beforeUnwire);
    calls.length = 0;
    const result = await namespaces.converge(SEED, [stays], LINKS, beforeUnwire);
    expect(calls).toEqual([{ beforeUnwire: leaves.name }, unwiringOf(leaves)]);
    expect(result).toEqual({ added: [], removed: [leaves] });
    expect(logs).toContain(`pod ${leaves.name}: namespace ${leaves.netns} removed`);
  });

  it('rewires a pod whose wiring changed: unwired first, then wired anew', async () => {
    const [first, second] = PODS;
    const { namespaces, calls, beforeUnwire } = fake();
    await namespaces.converge(SEED, PODS, LINKS, beforeUnwire);
    calls.length = 0;
    const moved: PodState = { ...first, ip: Ipv4Address.parse('192.168.87.200') };
    const result = await namespaces.converge(SEED, [moved, second], LINKS, beforeUnwire);
    expect(calls).toEqual([{ beforeUnwire: first.name }, unwiringOf(first), ...wiringOf(moved)]);
    expect(result.added).toEqual([moved]);
    expect(result.removed).toEqual([first]);
    expect(
      calls.some(
        (call) => 'batchIn' in call && call.lines.includes('addr add 192.168.87.200/32 brd 192.168.87.200 dev eth0'),
      ),
    ).toBe(true);
  });

  it('rewires a pod whose MTU changed (a reload with another network MTU)', async () => {
    const [first] = PODS;
    const { namespaces, calls, beforeUnwire } = fake();
    await namespaces.converge(SEED, [first], LINKS, beforeUnwire);
    calls.length = 0;
    const smaller: PodState = { ...first, mtu: 1430 };
    await namespaces.converge(SEED, [smaller], LINKS, beforeUnwire);
    expect(calls).toEqual([{ beforeUnwire: first.name }, unwiringOf(first), ...wiringOf(smaller)]);
    expect(calls[2]).toMatchObject({
      batch: [expect.any(String), expect.stringContaining(' mtu 1430 '), expect.any(String)],
    });
  });

  it('logs a pod that could not be unwired and forgets it, so that it is wired again when it comes back', async () => {
    const [first] = PODS;
    const { namespaces, calls, logs, beforeUnwire } = fake({
      failBatch: { when: /^link del /, error: new Error('Cannot remove namespace file: Device or resource busy') },
    });
    await namespaces.converge(SEED, [first], LINKS, beforeUnwire);
    await namespaces.converge(SEED, [], LINKS, beforeUnwire);
    expect(logs).toContain(
      `pod ${first.name}: removing its namespace: Cannot remove namespace file: Device or resource busy`,
    );
    calls.length = 0;
    await namespaces.converge(SEED, [first], LINKS, beforeUnwire);
    expect(calls).toEqual(wiringOf(first));
  });
});

describe('PodNamespaces.removeAll', () => {
  it('unwires every pod it wired, and nothing twice', async () => {
    const { namespaces, calls, beforeUnwire } = fake();
    await namespaces.converge(SEED, PODS, LINKS, beforeUnwire);
    calls.length = 0;
    await namespaces.removeAll();
    await namespaces.removeAll();
    expect(calls).toEqual(PODS.map(unwiringOf));
  });
});

describe('PodNamespaces.clearLeftovers', () => {
  const NETNS_LIST = [
    'cni-3f42f60d-69ef-4852-a975-db5bb5181644 (id: 1)',
    'cni-015f93dd-f6d8-423c-92ca-d4316d833838',
    'mytest (id: 0)',
    'cnix',
    '',
  ].join('\n');
  const VETHS = [
    '2: eth0@if41: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default \\    link/ether 02:42:0a:00:00:0b brd ff:ff:ff:ff:ff:ff link-netnsid 0',
    '5: cali699c69e1379@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1480 qdisc noqueue state UP mode DEFAULT group default qlen 1000\\    link/ether ee:ee:ee:ee:ee:ee brd ff:ff:ff:ff:ff:ff link-netns cni-3f42f60d-69ef-4852-a975-db5bb5181644',
    '6: veth1a2b3c4@if5: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT group default qlen 1000\\    link/ether 6e:11:22:33:44:55 brd ff:ff:ff:ff:ff:ff',
    '7: calic1cc0782249: <BROADCAST,MULTICAST,M-DOWN> mtu 1480 qdisc noop state DOWN mode DEFAULT group default qlen 1000\\    link/ether ee:ee:ee:ee:ee:ee brd ff:ff:ff:ff:ff:ff',
    '',
  ].join('\n');

  it('deletes the cni-* namespaces and cali* veths iproute2 lists, and nothing else', async () => {
    const { namespaces, calls, logs } = fake({
      outputs: { 'netns list': NETNS_LIST, '-o link show type veth': VETHS },
    });
    await namespaces.clearLeftovers();
    expect(calls).toEqual([
      { ip: ['netns', 'list'] },
      { ip: ['-o', 'link', 'show', 'type', 'veth'] },
      {
        batch: [
          'link del cali699c69e1379',
          'link del calic1cc0782249',
          'netns del cni-3f42f60d-69ef-4852-a975-db5bb5181644',
          'netns del cni-015f93dd-f6d8-423c-92ca-d4316d833838',
        ],
      },
    ]);
    expect(logs).toEqual(['removed what a previous run left: 2 cali links, 2 namespaces']);
  });

  it('makes no batch when nothing was left', async () => {
    const { namespaces, calls, logs } = fake({
      outputs: { 'netns list': 'mytest (id: 0)\n', '-o link show type veth': VETHS.split('\n')[0] },
    });
    await namespaces.clearLeftovers();
    expect(calls.filter((call) => 'batch' in call)).toEqual([]);
    expect(logs).toEqual([]);
  });

  it('carries on when some deletions fail (ip -force went past them)', async () => {
    const { namespaces, logs } = fake({
      outputs: { 'netns list': NETNS_LIST, '-o link show type veth': VETHS },
      failBatch: { when: /^link del /, error: new Error('Cannot find device "cali699c69e1379"') },
    });
    await expect(namespaces.clearLeftovers()).resolves.toBeUndefined();
    expect(logs).toHaveLength(1);
  });
});

describe('netnsPath', () => {
  it('is where ip netns mounts the namespace', () => {
    expect(netnsPath(PODS[0])).toBe(`/run/netns/${PODS[0].netns}`);
  });
});
