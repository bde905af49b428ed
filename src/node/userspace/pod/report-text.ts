/**
 * The text the real tools print, byte for byte: iputils ping (ping_common.c, ping.c), Linux traceroute 2.1
 * (traceroute.c print_probe), curl (body on stdout, then its error line).
 */
import { ICMP_TYPE, TIME_EXCEEDED_CODE } from '../../../wire/icmp.js';
import { ipv4ToString } from '../../../wire/ipv4-text.js';
import type { CurlReport } from './curl.js';
import type { PingReport, PingResult } from './ping.js';
import type { TracerouteReport } from './traceroute.js';

/** IPv4 header + ICMP header, which ping adds to the data size it announces: "56(84) bytes". */
const PING_OVERHEAD = 28;

export function formatPing(report: PingReport): string {
  const destination = ipv4ToString(report.destination);
  const lines = [`PING ${destination} (${destination}) ${report.size}(${report.size + PING_OVERHEAD}) bytes of data.`];
  for (const result of report.results) lines.push(pingLine(result));
  let statistics = `${report.transmitted} packets transmitted, ${report.received} received`;
  if (report.duplicates > 0) statistics += `, +${report.duplicates} duplicates`;
  if (report.errors > 0) statistics += `, +${report.errors} errors`;
  statistics += `, ${formatG(Math.fround(report.lossPercent))}% packet loss, time ${report.totalTimeMs}ms`;
  const { rtt } = report;
  // finish() ends with a newline whether or not it printed the rtt line, hence the empty last line without one.
  const rttValues = rtt && [rtt.minMs, rtt.avgMs, rtt.maxMs, rtt.mdevMs].map((ms) => ms.toFixed(3)).join('/');
  const rttLine = rttValues === undefined ? '' : `rtt min/avg/max/mdev = ${rttValues} ms`;
  lines.push('', `--- ${destination} ping statistics ---`, statistics, rttLine);
  return `${lines.join('\n')}\n`;
}

function pingLine(result: PingResult): string {
  switch (result.kind) {
    case 'reply': {
      let line = `${result.bytes} bytes from ${ipv4ToString(result.from)}: icmp_seq=${result.seq} ttl=${result.ttl}`;
      if (result.timeMs !== undefined) line += ` time=${formatPingTime(Math.round(result.timeMs * 1000))} ms`;
      if (result.duplicate) line += ' (DUP!)';
      if (result.differentAddress) line += ' (DIFFERENT ADDRESS!)';
      return line;
    }
    case 'icmp-error':
      return `From ${ipv4ToString(result.from)} icmp_seq=${result.seq} ${result.error}`;
    case 'local-error':
      return `ping: ${result.error}`;
  }
}

/** gather_statistics(): three significant digits or so, from integer microseconds, rounding as ping does. */
export function formatPingTime(micros: number): string {
  if (micros >= 100_000 - 50) return `${Math.floor((micros + 500) / 1000)}`;
  if (micros >= 10_000 - 5) return `${Math.floor((micros + 50) / 1000)}.${Math.floor(((micros + 50) % 1000) / 100)}`;
  if (micros >= 1000) {
    return `${Math.floor((micros + 5) / 1000)}.${String(Math.floor(((micros + 5) % 1000) / 10)).padStart(2, '0')}`;
  }
  return `${Math.floor(micros / 1000)}.${String(micros % 1000).padStart(3, '0')}`;
}

/** C's `%g`: six significant digits, trailing zeros dropped, exponent form outside 1e-4 ≤ |x| < 1e6. */
export function formatG(value: number): string {
  if (value === 0) return '0';
  const [mantissa, exponentText] = value.toExponential(5).split('e');
  const exponent = Number(exponentText);
  const strip = (digits: string) => (digits.includes('.') ? digits.replace(/0+$/, '').replace(/\.$/, '') : digits);
  if (exponent < -4 || exponent >= 6) {
    return `${strip(mantissa)}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  return strip(value.toFixed(5 - exponent));
}

/** pr_icmph() in ping.c, for the error types a ping socket is told about. */
export function icmpErrorText(type: number, code: number, info: number): string {
  if (type === ICMP_TYPE.TIME_EXCEEDED) {
    if (code === TIME_EXCEEDED_CODE.TTL) return 'Time to live exceeded';
    if (code === TIME_EXCEEDED_CODE.REASSEMBLY) return 'Frag reassembly time exceeded';
    return `Time exceeded, Bad Code: ${code}`;
  }
  if (type !== ICMP_TYPE.DESTINATION_UNREACHABLE) return `Bad ICMP type: ${type}`;
  if (code === 4) return `Frag needed and DF set (mtu = ${info})`;
  return UNREACHABLE_TEXT[code] ?? `Dest Unreachable, Bad Code: ${code}`;
}

const UNREACHABLE_TEXT: Readonly<Record<number, string>> = {
  0: 'Destination Net Unreachable',
  1: 'Destination Host Unreachable',
  2: 'Destination Protocol Unreachable',
  3: 'Destination Port Unreachable',
  5: 'Source Route Failed',
  6: 'Destination Net Unknown',
  7: 'Destination Host Unknown',
  8: 'Source Host Isolated',
  9: 'Destination Net Prohibited',
  10: 'Destination Host Prohibited',
  11: 'Destination Net Unreachable for Type of Service',
  12: 'Destination Host Unreachable for Type of Service',
  13: 'Packet filtered',
  14: 'Precedence Violation',
  15: 'Precedence Cutoff',
};

/** print_header(), then one print_probe() line per hop; an address is printed when it differs from the last one. */
export function formatTraceroute(report: TracerouteReport): string {
  const destination = ipv4ToString(report.destination);
  const lines = [
    `traceroute to ${destination} (${destination}), ${report.maxHops} hops max, ${report.packetSize} byte packets`,
  ];
  for (const hop of report.hops) {
    let line = `${String(hop.ttl).padStart(2, ' ')} `;
    let previous: number | undefined;
    for (const probe of hop.probes) {
      if (probe.from === undefined) {
        line += ' *';
      } else {
        if (probe.from !== previous) line += ` ${ipv4ToString(probe.from)} (${ipv4ToString(probe.from)})`;
        previous = probe.from;
      }
      if (probe.rttMs !== undefined) line += `  ${probe.rttMs.toFixed(3)} ms`;
      if (probe.annotation !== undefined) line += ` ${probe.annotation}`;
    }
    lines.push(line);
  }
  return `${lines.join('\n')}\n`;
}

/** What the terminal shows: the body as written to stdout, then curl's error line from stderr. */
export function formatCurl(report: CurlReport): string {
  return report.error === undefined ? report.body : `${report.body}${report.error}\n`;
}
