/**
 * `ipip-lab stats`: each interface as `ip -s link` shows it (header line, link line, RX/TX rows), then the
 * dataplane's drops by reason, which no kernel tool shows in one place (they hide in nstat, iptables counters and
 * dmesg).
 */
import type { DataplaneView, NodeStatsResponse } from '../../node/api-protocol.js';
import type { Link } from '../../routing/index.js';

function linkHeader(link: Link): string {
  const name = link.parent ? `${link.name}@${link.parent}` : link.name;
  const qlen = link.qlen === undefined ? '' : ` qlen ${link.qlen}`;
  return (
    `${link.index}: ${name}: <${link.flags.join(',')}> mtu ${link.mtu} qdisc ${link.qdisc} state ${link.state} ` +
    `mode DEFAULT group ${link.group ?? 'default'}${qlen}\n` +
    `    link/${link.linkType} ${link.linkAddress} brd ${link.linkBroadcast}\n`
  );
}

/** iproute2 right-aligns each number under its column heading. */
function counterRows(label: 'RX' | 'TX', bytes: number, packets: number, dropped: number): string {
  const cells = [bytes, packets, dropped].map((value, i) => String(value).padStart(i === 0 ? 10 : 8)).join('');
  return `    ${label}:  bytes packets dropped\n    ${cells}\n`;
}

export function renderStats(stats: NodeStatsResponse, links: DataplaneView['links']): string {
  let text = '';
  for (const link of links) {
    if (!link.stats) continue;
    const s = link.stats;
    text += linkHeader(link);
    text += counterRows('RX', s.rxBytes, s.rxPackets, s.rxDropped);
    text += counterRows('TX', s.txBytes, s.txPackets, s.txDropped);
  }
  const drops = Object.entries(stats.drops).filter(([, count]) => count > 0);
  text += `\nDrops on ${stats.node}: ${stats.dropped}\n`;
  const width = Math.max(0, ...drops.map(([reason]) => reason.length));
  for (const [reason, count] of drops) text += `    ${reason.padEnd(width)}  ${count}\n`;
  const events = Object.entries(stats.events).filter(([, count]) => count > 0);
  if (events.length > 0) {
    text += 'Events:\n';
    for (const [name, count] of events) text += `    ${name}  ${count}\n`;
  }
  if (stats.underlaySendErrors > 0) text += `Underlay send errors: ${stats.underlaySendErrors}\n`;
  return text;
}
