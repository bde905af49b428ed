/** `ipip-lab ifconfig`: net-tools' layout, checked against the second seed's tunl0 and net-tools' own rules. */
import { describe, expect, it } from 'vitest';
import { nodeDataplane } from '../../src/calico/index.js';
import { renderIfconfig, scaledBytes } from '../../src/cli/commands/ifconfig-view.js';
import { loadCluster } from '../../src/cli/cluster-source.js';
import { cli, SEED_NETWORKING } from '../support/cli.js';

const ZERO = { rxPackets: 0, rxBytes: 0, rxDropped: 0, txPackets: 0, txBytes: 0, txDropped: 0 };

function liveLinks(node: string, stats = ZERO) {
  return nodeDataplane(loadCluster(SEED_NETWORKING), node).links.map((link) => ({
    ...link,
    stats: link.name === 'lo' ? null : stats,
  }));
}

describe('renderIfconfig', () => {
  it("prints tunl0 exactly as the second seed's control plane did", () => {
    const tunl0 = liveLinks('networking-control-plane').filter((link) => link.name === 'tunl0');
    expect(renderIfconfig(tunl0)).toBe(
      'tunl0: flags=193<UP,RUNNING,NOARP>  mtu 1480\n' +
        '        inet 192.168.223.128  netmask 255.255.255.255\n' +
        '        tunnel   txqueuelen 1000  (IPIP Tunnel)\n' +
        '        RX packets 0  bytes 0 (0.0 B)\n' +
        '        RX errors 0  dropped 0  overruns 0  frame 0\n' +
        '        TX packets 0  bytes 0 (0.0 B)\n' +
        '        TX errors 0  dropped 0 overruns 0  carrier 0  collisions 0\n' +
        '\n',
    );
  });

  it('lists every interface sorted by name, eth0 with its broadcast, lo as Local Loopback', () => {
    const text = renderIfconfig(
      liveLinks('networking-worker2', { ...ZERO, rxPackets: 3, rxBytes: 2048, txDropped: 1 }),
    );
    expect(
      text
        .split('\n')
        .filter((line) => /^\S/.test(line))
        .map((line) => line.split(':')[0]),
    ).toEqual(['cali6d005ae501f', 'eth0', 'lo', 'tunl0']);
    expect(text).toContain(
      'eth0: flags=4163<UP,BROADCAST,RUNNING,MULTICAST>  mtu 1500\n        inet 172.20.0.4  netmask 255.255.0.0  broadcast 172.20.255.255\n',
    );
    expect(text).toContain(
      'lo: flags=73<UP,LOOPBACK,RUNNING>  mtu 65536\n        inet 127.0.0.1  netmask 255.0.0.0\n        loop  txqueuelen 1000  (Local Loopback)\n',
    );
    expect(text).toContain('        ether ee:ee:ee:ee:ee:ee  txqueuelen 0  (Ethernet)\n');
    expect(text).toContain('        RX packets 3  bytes 2048 (2.0 KiB)\n');
    expect(text).toContain('        TX errors 0  dropped 1 overruns 0  carrier 0  collisions 0\n');
  });

  it("scales byte counts as net-tools does: by 1024, one decimal truncated, past the unit's size only", () => {
    expect([0, 1024, 1025, 1536, 1048577, 5 * 1024 ** 3 + 1].map(scaledBytes)).toEqual([
      '0.0 B',
      '1024.0 B',
      '1.0 KiB',
      '1.5 KiB',
      '1.0 MiB',
      '5.0 GiB',
    ]);
  });
});

describe('ipip-lab ifconfig on the host', () => {
  it('needs the agents, so it points at docker compose exec', async () => {
    const result = await cli('ifconfig', 'tunl0', '--node', 'networking-worker', '--spec', SEED_NETWORKING);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      'docker compose exec networking-worker ipip-lab ifconfig tunl0 --node networking-worker',
    );
  });
});
