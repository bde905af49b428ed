/**
 * net-tools `ifconfig` (lib/interface.c, ife_print_long), as the second seed runs it on a node: every interface that
 * is up, sorted by name, each block ending in a blank line, with the agent's live counters.
 */
import type { DataplaneView } from '../../node/api-protocol.js';
import type { Link } from '../../routing/index.js';

type LiveLink = DataplaneView['links'][number];

/** The kernel's IFF_* bits for the flags iproute2 names; RUNNING is the operational state iproute2 shows as LOWER_UP. */
const IFF: readonly [name: string, bit: number, from: string][] = [
  ['UP', 0x1, 'UP'],
  ['BROADCAST', 0x2, 'BROADCAST'],
  ['LOOPBACK', 0x8, 'LOOPBACK'],
  ['RUNNING', 0x40, 'LOWER_UP'],
  ['NOARP', 0x80, 'NOARP'],
  ['MULTICAST', 0x1000, 'MULTICAST'],
];

/** net-tools' hardware types: what it calls the link layer, and its title. */
const HARDWARE: Record<Link['linkType'], (link: Link) => string> = {
  ether: (link) => `ether ${link.linkAddress}  txqueuelen ${link.qlen ?? 0}  (Ethernet)`,
  // No hardware address to print, so the name stands alone ("loop"), or with an empty one ("tunnel ").
  loopback: (link) => `loop  txqueuelen ${link.qlen ?? 0}  (Local Loopback)`,
  ipip: (link) => `tunnel   txqueuelen ${link.qlen ?? 0}  (IPIP Tunnel)`,
};

const IPV6_SCOPE: Record<string, string> = { global: '0x0<global>', link: '0x20<link>', host: '0x10<host>' };

/** `%lu.%lu %s` of bytes scaled by 1024 with one truncated decimal, as net-tools prints next to a byte count. */
export function scaledBytes(bytes: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let tenths = bytes * 10;
  let unit = 'B';
  for (let i = units.length - 1; i >= 0; i--) {
    const size = 1024 ** (i + 1);
    if (bytes > size) {
      tenths = Math.floor((bytes * 10) / size);
      unit = units[i];
      break;
    }
  }
  return `${Math.floor(tenths / 10)}.${tenths % 10} ${unit}`;
}

function netmask(length: number): string {
  const mask = length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
  return [24, 16, 8, 0].map((shift) => (mask >>> shift) & 0xff).join('.');
}

function block(link: LiveLink): string {
  const bits = IFF.filter(([, , from]) => link.flags.includes(from));
  const value = bits.reduce((sum, [, bit]) => sum + bit, 0);
  let out = `${link.name}: flags=${value}<${bits.map(([name]) => name).join(',')}>  mtu ${link.mtu}\n`;
  // ifconfig shows an interface's primary address only.
  const [primary] = link.addresses;
  if (primary) {
    out += `        inet ${primary.address}  netmask ${netmask(primary.prefixLength)}`;
    if (link.flags.includes('BROADCAST') && primary.broadcast) out += `  broadcast ${primary.broadcast}`;
    out += '\n';
  }
  for (const address of link.addresses6 ?? []) {
    out += `        inet6 ${address.address}  prefixlen ${address.prefixLength}  scopeid ${IPV6_SCOPE[address.scope]}\n`;
  }
  out += `        ${HARDWARE[link.linkType](link)}\n`;
  // The dataplane does not model lo: it carries nothing, and says so.
  const s = link.stats ?? { rxPackets: 0, rxBytes: 0, rxDropped: 0, txPackets: 0, txBytes: 0, txDropped: 0 };
  out += `        RX packets ${s.rxPackets}  bytes ${s.rxBytes} (${scaledBytes(s.rxBytes)})\n`;
  out += `        RX errors 0  dropped ${s.rxDropped}  overruns 0  frame 0\n`;
  out += `        TX packets ${s.txPackets}  bytes ${s.txBytes} (${scaledBytes(s.txBytes)})\n`;
  out += `        TX errors 0  dropped ${s.txDropped} overruns 0  carrier 0  collisions 0\n`;
  return `${out}\n`;
}

/** net-tools keeps its interface list sorted by name, digits compared as numbers (nstrcmp). */
const byName = new Intl.Collator('en', { numeric: true });

export function renderIfconfig(links: readonly LiveLink[]): string {
  return [...links]
    .filter((link) => link.flags.includes('UP'))
    .sort((a, b) => byName.compare(a.name, b.name))
    .map(block)
    .join('');
}
