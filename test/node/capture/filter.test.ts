/**
 * The capture filter against the kernel's own packets, with tshark as the judge: each filter is paired with the
 * display filter that says the same thing about the outermost (`#1`) or inner (`#2`) IPv4 layer, and both must pick
 * the same frames of a file holding every vector twice: as eth0 saw it (outer IPIP) and as tunl0 would (inner).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFilter } from '../../../src/node/capture/filter.js';
import { IP_PROTOCOL, ipv4 } from '../../../src/wire/ipv4.js';
import { ipv4FromString } from '../../../src/wire/ipv4-text.js';
import { LINKTYPE, pcapng } from '../../../src/wire/pcapng.js';
import { mulberry32, randomBytes, randomInt } from '../../support/random.js';
import { allVectorFrames } from '../../support/wire-vectors.js';
import { tsharkRows } from '../../support/wire-tshark.js';

const eth0 = allVectorFrames();
const innerOf = (packet: Buffer) => packet.subarray((packet[0] & 0x0f) * 4);
const views = [
  ...eth0.map((frame) => ({ interfaceId: 0, timestampNs: frame.timestampNs, data: frame.ip })),
  ...eth0.map((frame) => ({ interfaceId: 1, timestampNs: frame.timestampNs, data: innerOf(frame.ip) })),
];

function matching(filter: string, packets: readonly Buffer[]): number[] {
  const compiled = parseFilter(filter);
  if (!compiled.ok) throw new Error(compiled.error);
  return packets.flatMap((packet, index) => (compiled.match(packet) ? [index] : []));
}

const pmatch = (filter: string, packet: Buffer): boolean => matching(filter, [packet]).length === 1;

/** Filter → the display filter tshark evaluates on the same frames; `#1` is the outermost IPv4 header. */
const AGAINST_TSHARK: [filter: string, displayFilter: string][] = [
  ['host 10.0.0.10', 'ip.addr#1 == 10.0.0.10'],
  ['src host 10.0.0.1', 'ip.src#1 == 10.0.0.1'],
  ['dst host 10.0.0.10', 'ip.dst#1 == 10.0.0.10'],
  ['host 192.168.87.198', 'ip.addr#1 == 192.168.87.198'],
  ['src 192.168.87.192', 'ip.src#1 == 192.168.87.192'],
  ['192.168.77.128', 'ip.addr#1 == 192.168.77.128'],
  ['net 192.168.0.0/16', 'ip.addr#1 == 192.168.0.0/16'],
  ['src net 192.168.77.128/26', 'ip.src#1 == 192.168.77.128/26'],
  ['dst net 192.168.87.192/26', 'ip.dst#1 == 192.168.87.192/26'],
  ['net 10.0.0.0 mask 255.255.255.0', 'ip.addr#1 == 10.0.0.0/24'],
  ['ip dst net 10.0.0.0/8', 'ip.dst#1 == 10.0.0.0/8'],
  ['proto ipip', 'ip.proto#1 == 4'],
  ['ip proto 4', 'ip.proto#1 == 4'],
  ['ipip', 'ip.proto#1 == 4'],
  ['proto icmp', 'ip.proto#1 == 1'],
  ['icmp', 'ip.proto#1 == 1'],
  ['ip proto \\udp', 'ip.proto#1 == 17'],
  ['udp', 'ip.proto#1 == 17'],
  ['tcp', 'ip.proto#1 == 6'],
  ['proto 6', 'ip.proto#1 == 6'],
  ['port 8080', '(ip.proto#1 == 6 and tcp.port#1 == 8080) or (ip.proto#1 == 17 and udp.port#1 == 8080)'],
  ['port 9999', '(ip.proto#1 == 6 and tcp.port#1 == 9999) or (ip.proto#1 == 17 and udp.port#1 == 9999)'],
  ['src port 8080', 'ip.proto#1 == 6 and tcp.srcport#1 == 8080'],
  ['dst port 8080', 'ip.proto#1 == 6 and tcp.dstport#1 == 8080'],
  ['tcp dst port 34786', 'ip.proto#1 == 6 and tcp.dstport#1 == 34786'],
  ['udp src port 40829', 'ip.proto#1 == 17 and udp.srcport#1 == 40829'],
  ['udp port 9999', 'ip.proto#1 == 17 and udp.port#1 == 9999'],
  ['inner host 192.168.87.198', 'ip.proto#1 == 4 and ip.addr#2 == 192.168.87.198'],
  ['inner src host 192.168.77.128', 'ip.proto#1 == 4 and ip.src#2 == 192.168.77.128'],
  ['inner net 192.168.87.192/26', 'ip.proto#1 == 4 and ip.addr#2 == 192.168.87.192/26'],
  ['inner proto icmp', 'ip.proto#1 == 4 and ip.proto#2 == 1'],
  ['inner tcp port 8080', 'ip.proto#1 == 4 and ip.proto#2 == 6 and tcp.port#1 == 8080'],
  ['inner icmp and not inner src net 192.168.77.0/24', 'ip.proto#2 == 1 and not ip.src#2 == 192.168.77.0/24'],
  ['src host 10.0.0.10 and inner udp', 'ip.src#1 == 10.0.0.10 and ip.proto#2 == 17'],
  ['tcp and src port 8080 or udp', '(ip.proto#1 == 6 and tcp.srcport#1 == 8080) or ip.proto#1 == 17'],
  ['not (icmp or tcp)', 'not (ip.proto#1 == 1 or ip.proto#1 == 6)'],
  ['! icmp && dst net 192.168.87.0/24', 'ip.proto#1 != 1 and ip.dst#1 == 192.168.87.0/24'],
  ['host 192.168.87.192 || 192.168.77.128', 'ip.addr#1 == 192.168.87.192 or ip.addr#1 == 192.168.77.128'],
  ['port 8080 or 9999', 'ip.proto#1 in {6, 17} and (tcp.port#1 in {8080, 9999} or udp.port#1 in {8080, 9999})'],
  ['inner host 192.168.87.192 or 192.168.77.128', 'ip.proto#1 == 4 and ip.addr#2 in {192.168.87.192, 192.168.77.128}'],
];

describe('filter words against tshark on the kernel vectors', () => {
  let directory: string;
  let file: string;
  beforeAll(() => {
    directory = mkdtempSync(join(tmpdir(), 'ipip-lab-filter-'));
    file = join(directory, 'views.pcapng');
    const interfaces = ['eth0', 'tunl0'].map((name) => ({ linkType: LINKTYPE.RAW, name }));
    writeFileSync(file, pcapng.encode({ interfaces, packets: views }));
  });
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  it.concurrent.each(AGAINST_TSHARK)('%s', async (filter, displayFilter) => {
    // Fragments as on the wire: a capture filter sees one packet at a time.
    const args = ['-r', file, '-o', 'ip.defragment:FALSE', '-Y', displayFilter, '-T', 'fields', '-e', 'frame.number'];
    const rows = await tsharkRows(args);
    const ours = matching(
      filter,
      views.map((view) => view.data),
    );
    expect(ours).toEqual(rows.map(([frame]) => Number(frame) - 1));
    // Every case tells frames apart, so none of them passes by matching all or nothing.
    expect(ours.length).toBeGreaterThan(0);
    expect(ours.length).toBeLessThan(views.length);
  });
});

describe('filter semantics', () => {
  const packet = (fields: { src: string; dst: string; protocol?: number; payload?: Buffer; fragmentOffset?: number }) =>
    ipv4.encode({
      identification: 1,
      ttl: 64,
      protocol: fields.protocol ?? IP_PROTOCOL.ICMP,
      src: ipv4FromString(fields.src)!,
      dst: ipv4FromString(fields.dst)!,
      fragmentOffset: fields.fragmentOffset,
      payload: fields.payload ?? Buffer.alloc(8),
    });
  const a = packet({ src: '10.1.1.1', dst: '10.9.9.9' });
  const neither = packet({ src: '10.7.7.7', dst: '10.8.8.8' });
  const bAndC = packet({ src: '10.2.2.2', dst: '10.3.3.3' });

  it('binds not tighter than and, and and tighter than or', () => {
    // Left to right, ((A or B) and C) would refuse `a`; not (A and B) would accept `neither`.
    expect(pmatch('host 10.1.1.1 or host 10.2.2.2 and host 10.3.3.3', a)).toBe(true);
    expect(pmatch('host 10.2.2.2 and host 10.3.3.3 or host 10.1.1.1', a)).toBe(true);
    expect(pmatch('not host 10.1.1.1 and host 10.2.2.2', neither)).toBe(false);
    expect(pmatch('not host 10.1.1.1 and host 10.2.2.2', bAndC)).toBe(true);
    expect(pmatch('not (host 10.1.1.1 and host 10.2.2.2)', neither)).toBe(true);
    expect(pmatch('(host 10.1.1.1 or host 10.2.2.2) and host 10.3.3.3', a)).toBe(false);
    expect(pmatch('! ! host 10.1.1.1', a)).toBe(true);
  });

  it('takes inner as a prefix, like not', () => {
    const tunnelled = ipv4.encode({
      identification: 2,
      ttl: 64,
      protocol: IP_PROTOCOL.IPIP,
      src: ipv4FromString('10.0.0.11')!,
      dst: ipv4FromString('10.0.0.12')!,
      payload: a,
    });
    expect(pmatch('inner host 10.1.1.1 and host 10.0.0.11', tunnelled)).toBe(true);
    expect(pmatch('inner (host 10.1.1.1 and host 10.0.0.11)', tunnelled)).toBe(false);
    expect(pmatch('inner not host 10.0.0.11', tunnelled)).toBe(true);
    expect(pmatch('not inner host 10.1.1.1', tunnelled)).toBe(false);
    expect(pmatch('inner host 10.5.5.5 or 10.0.0.12', tunnelled)).toBe(false);
    expect(pmatch('inner host 10.5.5.5 or 10.9.9.9', tunnelled)).toBe(true);
    expect(pmatch('inner ip', tunnelled)).toBe(true);
    expect(pmatch('inner ip', a)).toBe(false);
    expect(pmatch('inner inner ip', tunnelled)).toBe(false);
  });

  it('reads ports in first fragments only', () => {
    const ports = Buffer.from([0x27, 0x0f, 0x00, 0x35, 0, 8, 0, 0]); // 9999 → 53
    const first = packet({ src: '10.1.1.1', dst: '10.2.2.2', protocol: IP_PROTOCOL.UDP, payload: ports });
    const later = packet({
      src: '10.1.1.1',
      dst: '10.2.2.2',
      protocol: IP_PROTOCOL.UDP,
      payload: ports,
      fragmentOffset: 8,
    });
    expect(pmatch('src port 9999 and dst port 53', first)).toBe(true);
    expect(pmatch('port 9999', later)).toBe(false);
    expect(pmatch('udp', later)).toBe(true);
    expect(pmatch('tcp port 9999', first)).toBe(false);
  });

  it('keeps everything with an empty filter and matches no malformed packet, negated or not', () => {
    expect(matching('  ', [Buffer.alloc(0), a])).toEqual([0, 1]);
    const truncated = a.subarray(0, 19);
    const ipv6 = Buffer.from([0x60, ...Buffer.alloc(39)]);
    const headerPastTheEnd = Buffer.from([0x4f, ...Buffer.alloc(30)]);
    const malformed = [Buffer.alloc(0), truncated, ipv6, headerPastTheEnd];
    for (const filter of ['ip', 'not host 10.1.1.1', 'not port 80', '!inner ip']) {
      expect(matching(filter, malformed)).toEqual([]);
    }
    expect(pmatch('ip', a)).toBe(true);
  });

  it('reads words case-insensitively', () => {
    expect(pmatch('HOST 10.1.1.1 AND Proto ICMP', a)).toBe(true);
  });
});

describe('filter errors', () => {
  const WORD = 'a filter word (host, net, port, proto, ip, icmp, udp, tcp, ipip, inner, not or "(")';
  const PROTOCOL = 'a protocol (icmp, udp, tcp, ipip or 0-255)';
  it.each([
    ['host ', 'filter: expected an address after "host" at column 6'],
    ['host', 'filter: expected an address after "host" at column 5'],
    ['host 10.0.0', 'filter: expected an address after "host" at column 6, found "10.0.0"'],
    ['src host 10.0.0.1 and', `filter: expected ${WORD} after "and" at column 22`],
    ['hots 10.0.0.1', `filter: expected ${WORD} at column 1, found "hots"`],
    ['port 70000', 'filter: expected a port number (0-65535) after "port" at column 6, found "70000"'],
    ['port 80 or 10.0.0.1', 'filter: expected a port number (0-65535) after "or" at column 12, found "10.0.0.1"'],
    ['proto gre', `filter: expected ${PROTOCOL} after "proto" at column 7, found "gre"`],
    ['proto constructor', `filter: expected ${PROTOCOL} after "proto" at column 7, found "constructor"`],
    ['ip proto 256', `filter: expected ${PROTOCOL} after "proto" at column 10, found "256"`],
    ['net 10.0.0.1/8', 'filter: "10.0.0.1/8" has host bits set for its mask at column 5'],
    ['net 10.0.0.0 mask 255.0.0', 'filter: expected a netmask after "mask" at column 19, found "255.0.0"'],
    [
      'net 10.0.0.0/33',
      'filter: expected a network (a.b.c.d/len or a.b.c.d mask m.m.m.m) after "net" at column 5, found "10.0.0.0/33"',
    ],
    ['(host 10.0.0.1', 'filter: expected "and", "or" or ")" after "10.0.0.1" at column 15'],
    ['host 10.0.0.1)', 'filter: expected "and" or "or" after "10.0.0.1" at column 14, found ")"'],
    ['host 10.0.0.1 10.0.0.2', 'filter: expected "and" or "or" after "10.0.0.1" at column 15, found "10.0.0.2"'],
    ['tcp src host 10.0.0.1', 'filter: expected "port" after "src" at column 9, found "host"'],
    ['ip src port 80', 'filter: expected "host", "net" or an address after "src" at column 8, found "port"'],
    ['dst', 'filter: expected "host", "net", "port" or an address after "dst" at column 4'],
    ['host 10.0.0.1 & icmp', 'filter: unexpected character "&" at column 15'],
    ['80', 'filter: expected an address at column 1, found "80"'],
  ])('%j', (filter, error) => {
    expect(parseFilter(filter)).toEqual({ ok: false, error });
  });
});

describe('filter robustness', () => {
  const FILTERS = [
    'host 10.0.0.10',
    'src net 192.168.0.0/16',
    'dst host 10.0.0.11 or not icmp',
    'proto ipip',
    'udp or tcp',
    'port 53',
    'src port 8080',
    'tcp dst port 80',
    'inner host 192.168.87.198',
    'inner (tcp port 8080 or icmp)',
    'inner inner inner ip',
    'not inner udp port 9999',
    'ip',
  ].map((text) => {
    const compiled = parseFilter(text);
    if (!compiled.ok) throw new Error(compiled.error);
    return compiled;
  });
  const SENTINEL = 0x45;

  /** Random bytes, random bytes dressed as IPv4 (and IPIP), and real packets cut short or with a byte changed. */
  function* inputs(count: number): Generator<Buffer> {
    const random = mulberry32(0xcafe);
    const real = eth0.map((frame) => frame.ip);
    for (let i = 0; i < count; i++) {
      const kind = i % 4;
      if (kind === 0) yield randomBytes(random, randomInt(random, 80));
      else if (kind === 1) {
        const bytes = randomBytes(random, randomInt(random, 100));
        if (bytes.length > 0) bytes[0] = 0x40 | randomInt(random, 16);
        if (bytes.length > 9 && randomInt(random, 2) === 0) bytes[9] = IP_PROTOCOL.IPIP;
        if (bytes.length > 20 && randomInt(random, 2) === 0) bytes[20] = 0x40 | randomInt(random, 16);
        yield bytes;
      } else {
        const source = real[randomInt(random, real.length)];
        const bytes = Buffer.from(source.subarray(0, randomInt(random, source.length + 1)));
        if (kind === 3 && bytes.length > 0) {
          bytes[randomInt(random, Math.min(bytes.length, 64))] = randomInt(random, 256);
        }
        yield bytes;
      }
    }
  }

  it('never throws on 10,000 random and mutated buffers, and never reads past the packet', () => {
    let matched = 0;
    for (const input of inputs(10_000)) {
      // The same bytes followed by IPv4-looking ones: a read past the end would find them instead of nothing.
      const padded = Buffer.alloc(input.length + 64, SENTINEL);
      input.copy(padded);
      const window = padded.subarray(0, input.length);
      for (const filter of FILTERS) {
        const verdict = filter.match(input);
        expect(filter.match(window)).toBe(verdict);
        if (verdict) matched++;
      }
    }
    // The inputs reach the matchers' inner branches rather than all failing the first check.
    expect(matched).toBeGreaterThan(1000);
  });
});
