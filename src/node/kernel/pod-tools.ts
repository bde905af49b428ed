/**
 * `ipip-lab ping|curl|traceroute --from POD` on the kernel-backed node: the node image's real iputils ping, curl and
 * traceroute, run in the pod's network namespace (pod-exec.ts). The text is theirs, byte for byte; the `-o json`
 * report is read back from it, in the same shapes as the userspace pod's tools report.
 */
import type { CurlOptions, CurlReport } from '../userspace/pod/curl.js';
import type { PingOptions, PingReport, PingResult } from '../userspace/pod/ping.js';
import type { TracerouteOptions, TracerouteProbe, TracerouteReport } from '../userspace/pod/traceroute.js';
import { Ipv4Address } from '../../routing/address.js';
import { ipv4ToString } from '../../wire/ipv4-text.js';
import { spawnInPod } from './pod-exec.js';

/** A tool's answer: what it printed, and the report read from that. */
export interface ToolOutput<Report> {
  text: string;
  report: Report;
}

/** What the API runs in a pod, on either node: the userspace pod's own tools, or the real ones here. */
export interface PodTools {
  ping(destination: number, options: PingOptions): Promise<ToolOutput<PingReport>>;
  curl(url: string, options: CurlOptions): Promise<ToolOutput<CurlReport>>;
  traceroute(destination: number, options: TracerouteOptions): Promise<ToolOutput<TracerouteReport>>;
}

interface Ran {
  stdout: string;
  stderr: string;
  exitCode: number;
  ms: number;
}

/** Runs a command to its end in the pod; the API's own limits bound how long that is. */
function run(netnsPath: string, podName: string, command: readonly string[]): Promise<Ran> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawnInPod(netnsPath, podName, command, false);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (data: Buffer) => out.push(data));
    child.stderr?.on('data', (data: Buffer) => err.push(data));
    child.stdin?.end();
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        exitCode: code ?? 1,
        ms: performance.now() - started,
      }),
    );
  });
}

const address = (text: string): number => Ipv4Address.parse(text).value;
const seconds = (ms: number): string => String(ms / 1000);

/** The ICMP errors iputils names (ping_common.c pr_icmph), back to their type and code. */
const ICMP_ERRORS: readonly [RegExp, number, number][] = [
  [/^Destination Net Unreachable/, 3, 0],
  [/^Destination Host Unreachable/, 3, 1],
  [/^Destination Protocol Unreachable/, 3, 2],
  [/^Destination Port Unreachable/, 3, 3],
  [/^Frag needed and DF set/, 3, 4],
  [/^Time to live exceeded/, 11, 0],
  [/^Frag reassembly time exceeded/, 11, 1],
];

export function parsePing(text: string, destination: number, size: number, exitCode: number): PingReport {
  const results: PingResult[] = [];
  for (const line of text.split('\n')) {
    const reply = /^(\d+) bytes from ([\d.]+): icmp_seq=(\d+) ttl=(\d+)(?: time=([\d.]+) ms)?( \(DUP!\))?/.exec(line);
    if (reply) {
      results.push({
        kind: 'reply',
        bytes: Number(reply[1]),
        from: address(reply[2]),
        seq: Number(reply[3]),
        ttl: Number(reply[4]),
        ...(reply[5] !== undefined && { timeMs: Number(reply[5]) }),
        duplicate: reply[6] !== undefined,
        differentAddress: line.includes('(DIFFERENT ADDRESS!)'),
      });
      continue;
    }
    const error = /^From ([\d.]+) icmp_seq=(\d+) (.*)$/.exec(line);
    if (error) {
      const [, type = 0, code = 0] = ICMP_ERRORS.find(([pattern]) => pattern.test(error[3])) ?? [];
      const mtu = /\(mtu = (\d+)\)/.exec(error[3]);
      results.push({
        kind: 'icmp-error',
        from: address(error[1]),
        seq: Number(error[2]),
        type,
        code,
        nextHopMtu: mtu ? Number(mtu[1]) : 0,
        error: error[3],
      });
      continue;
    }
    const local = /^ping: (local error: .*mtu=(\d+))$/.exec(line);
    if (local) results.push({ kind: 'local-error', seq: results.length + 1, mtu: Number(local[2]), error: local[1] });
  }
  const statistics =
    /^(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?(?:, \+(\d+) errors)?, ([\d.]+)% packet loss, time (\d+)ms$/m.exec(
      text,
    );
  const rtt = /^rtt min\/avg\/max\/mdev = ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms$/m.exec(text);
  return {
    destination,
    size,
    transmitted: Number(statistics?.[1] ?? 0),
    received: Number(statistics?.[2] ?? 0),
    duplicates: Number(statistics?.[3] ?? 0),
    errors: Number(statistics?.[4] ?? 0),
    results,
    lossPercent: Number(statistics?.[5] ?? 100),
    ...(rtt && {
      rtt: { minMs: Number(rtt[1]), avgMs: Number(rtt[2]), maxMs: Number(rtt[3]), mdevMs: Number(rtt[4]) },
    }),
    totalTimeMs: Number(statistics?.[6] ?? 0),
    exitCode: exitCode === 0 ? 0 : 1,
  };
}

/** Linux traceroute 2.1's lines: ` 1  name (a.b.c.d)  0.5 ms  0.4 ms !H  *` (or bare addresses with -n). */
export function parseTraceroute(text: string, destination: number): TracerouteReport {
  const [head = '', ...lines] = text.split('\n');
  const header = /, (\d+) hops max, (\d+) byte packets/.exec(head);
  const hops = lines
    .map((line) => /^ ?(\d+) (.*)$/.exec(line))
    .filter((match): match is RegExpExecArray => match !== null)
    .map(([, ttl, rest]) => {
      const probes: TracerouteProbe[] = [];
      let from: number | undefined;
      for (const token of rest.trim().split(/\s+/)) {
        if (token === '*') probes.push({});
        else if (/^\([\d.]+\)$/.test(token)) from = address(token.slice(1, -1));
        else if (/^[\d.]+$/.test(token) && token.split('.').length === 4) from = address(token);
        else if (/^[\d.]+$/.test(token)) probes.push({ from, rttMs: Number(token) });
        else if (token.startsWith('!') && probes.length > 0) probes[probes.length - 1].annotation = token;
      }
      return { ttl: Number(ttl), probes };
    });
  const last = hops[hops.length - 1];
  return {
    destination,
    maxHops: Number(header?.[1] ?? 30),
    packetSize: Number(header?.[2] ?? 60),
    hops,
    reached: last?.probes.some((probe) => probe.from === destination) ?? false,
  };
}

/** `curl -sS -i`: the status line and headers, a blank line, the body; curl's error line on stderr. */
export function parseCurl(url: string, ran: Ran): ToolOutput<CurlReport> {
  const split = ran.stdout.indexOf('\r\n\r\n');
  const head = split < 0 ? '' : ran.stdout.slice(0, split);
  const body = split < 0 ? ran.stdout : ran.stdout.slice(split + 4);
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const status = /^(HTTP\/[\d.]+) (\d{3}) ?(.*)$/.exec(statusLine);
  const error = ran.stderr
    .trim()
    .split('\n')
    .find((line) => line.startsWith('curl: '));
  const report: CurlReport = {
    url,
    exitCode: ran.exitCode,
    ...(error !== undefined && { error }),
    ...(status && { httpVersion: status[1].slice(5), status: Number(status[2]), statusText: status[3] }),
    headers: headerLines.map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon), line.slice(colon + 1).trim()] as [string, string];
    }),
    body,
    timeMs: Math.round(ran.ms),
  };
  return { text: error === undefined ? body : `${body}${error}\n`, report };
}

export function kernelPodTools(netnsPath: string, podName: string): PodTools {
  return {
    async ping(destination, options) {
      const size = options.size ?? 56;
      const command = [
        'ping',
        '-c',
        String(options.count ?? 4),
        '-i',
        seconds(options.intervalMs ?? 1000),
        '-s',
        String(size),
        ...(options.df === undefined ? [] : ['-M', options.df ? 'do' : 'dont']),
        ...(options.ttl === undefined ? [] : ['-t', String(options.ttl)]),
        ...(options.tos === undefined ? [] : ['-Q', String(options.tos)]),
        ...(options.timeoutMs === undefined ? [] : ['-W', seconds(options.timeoutMs)]),
        ipv4ToString(destination),
      ];
      const ran = await run(netnsPath, podName, command);
      const text = ran.stdout + ran.stderr;
      return { text, report: parsePing(text, destination, size, ran.exitCode) };
    },
    async curl(url, options) {
      const command = [
        'curl',
        '-sS',
        '-i',
        ...(options.timeoutMs === undefined ? [] : ['--max-time', seconds(options.timeoutMs)]),
        url,
      ];
      return parseCurl(url, await run(netnsPath, podName, command));
    },
    async traceroute(destination, options) {
      const command = [
        'traceroute',
        ...(options.maxHops === undefined ? [] : ['-m', String(options.maxHops)]),
        ...(options.probes === undefined ? [] : ['-q', String(options.probes)]),
        ...(options.timeoutMs === undefined ? [] : ['-w', seconds(options.timeoutMs)]),
        ipv4ToString(destination),
      ];
      const ran = await run(netnsPath, podName, command);
      return { text: ran.stdout + ran.stderr, report: parseTraceroute(ran.stdout, destination) };
    },
  };
}
