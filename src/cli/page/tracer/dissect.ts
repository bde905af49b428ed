/**
 * A hop's bytes as Wireshark's packet pane shows them: each header a layer, each field with its byte range. Keys name
 * a field the same way at every hop (`ip.ttl` is the pod's packet wherever it is, `outer.ttl` the IPIP header added
 * for the tunnel), so that the page can mark what a node changed.
 */
import {
  ICMP_TYPE,
  IP_PROTOCOL,
  IPV4_FIELD,
  IcmpView,
  Ipv4View,
  TCP_FIELD,
  TCP_FLAG,
  TcpView,
  UDP_FIELD,
  UdpView,
  ipv4ToString,
} from '../../../wire/index.js';
import type { PacketField, PacketLayer } from '../page-protocol.js';

export interface Dissection {
  layers: PacketLayer[];
  summary: string;
}

const PROTOCOL_NAMES: Record<number, string> = {
  [IP_PROTOCOL.ICMP]: 'ICMP',
  [IP_PROTOCOL.IPIP]: 'IPIP',
  [IP_PROTOCOL.TCP]: 'TCP',
  [IP_PROTOCOL.UDP]: 'UDP',
};

const ECN_NAMES = ['Not-ECT', 'ECT(1)', 'ECT(0)', 'CE'];

const hex = (value: number, digits: number) => `0x${value.toString(16).padStart(digits, '0')}`;

function ipv4Layer(view: Ipv4View, base: number, prefix: 'outer' | 'ip', title: string): PacketLayer {
  const at = (field: number) => base + field;
  const field = (key: string, label: string, value: string, offset: number, length: number): PacketField => ({
    key: `${prefix}.${key}`,
    label,
    value,
    offset,
    length,
  });
  const flags = [view.dontFragment ? 'DF' : '', view.moreFragments ? 'MF' : ''].filter(Boolean).join(', ');
  return {
    title,
    fields: [
      field('version', 'Version', String(view.version), at(IPV4_FIELD.versionIhl), 1),
      field('headerLength', 'Header Length', `${view.headerLength} bytes (${view.ihl})`, at(IPV4_FIELD.versionIhl), 1),
      field('dscp', 'Differentiated Services Codepoint', String(view.dscp), at(IPV4_FIELD.tos), 1),
      field('ecn', 'Explicit Congestion Notification', ECN_NAMES[view.ecn], at(IPV4_FIELD.tos), 1),
      field('totalLength', 'Total Length', String(view.totalLength), at(IPV4_FIELD.totalLength), 2),
      field(
        'id',
        'Identification',
        `${hex(view.identification, 4)} (${view.identification})`,
        at(IPV4_FIELD.identification),
        2,
      ),
      field('flags', 'Flags', flags === '' ? 'none' : flags, at(IPV4_FIELD.flagsFragmentOffset), 1),
      field(
        'fragmentOffset',
        'Fragment Offset',
        String(view.fragmentByteOffset),
        at(IPV4_FIELD.flagsFragmentOffset),
        2,
      ),
      field('ttl', 'Time to Live', String(view.ttl), at(IPV4_FIELD.ttl), 1),
      field(
        'protocol',
        'Protocol',
        `${PROTOCOL_NAMES[view.protocol] ?? 'unknown'} (${view.protocol})`,
        at(IPV4_FIELD.protocol),
        1,
      ),
      field('checksum', 'Header Checksum', hex(view.headerChecksum, 4), at(IPV4_FIELD.headerChecksum), 2),
      field('src', 'Source Address', ipv4ToString(view.src), at(IPV4_FIELD.src), 4),
      field('dst', 'Destination Address', ipv4ToString(view.dst), at(IPV4_FIELD.dst), 4),
    ],
  };
}

function icmpTypeName(type: number, code: number): string {
  if (type === ICMP_TYPE.ECHO_REQUEST) return 'Echo (ping) request';
  if (type === ICMP_TYPE.ECHO_REPLY) return 'Echo (ping) reply';
  if (type === ICMP_TYPE.DESTINATION_UNREACHABLE) {
    const reasons: Record<number, string> = {
      0: 'Network unreachable',
      1: 'Host unreachable',
      3: 'Port unreachable',
      4: 'Fragmentation needed',
    };
    return `Destination unreachable (${reasons[code] ?? `code ${code}`})`;
  }
  if (type === ICMP_TYPE.TIME_EXCEEDED) return 'Time-to-live exceeded';
  return `type ${type}`;
}

function icmpLayer(view: IcmpView, base: number): { layer: PacketLayer; info: string } {
  const fields: PacketField[] = [
    { key: 'icmp.type', label: 'Type', value: String(view.type), offset: base, length: 1 },
    { key: 'icmp.code', label: 'Code', value: String(view.code), offset: base + 1, length: 1 },
    { key: 'icmp.checksum', label: 'Checksum', value: hex(view.checksum, 4), offset: base + 2, length: 2 },
  ];
  const echo = view.type === ICMP_TYPE.ECHO_REQUEST || view.type === ICMP_TYPE.ECHO_REPLY;
  if (echo) {
    fields.push(
      { key: 'icmp.id', label: 'Identifier', value: hex(view.identifier, 4), offset: base + 4, length: 2 },
      { key: 'icmp.seq', label: 'Sequence Number', value: String(view.sequence), offset: base + 6, length: 2 },
    );
  }
  const fragNeeded = view.type === ICMP_TYPE.DESTINATION_UNREACHABLE && view.code === 4;
  if (fragNeeded) {
    fields.push({
      key: 'icmp.mtu',
      label: 'MTU of next hop',
      value: String(view.nextHopMtu),
      offset: base + 6,
      length: 2,
    });
  }
  const name = icmpTypeName(view.type, view.code);
  const details = echo
    ? ` id=${hex(view.identifier, 4)}, seq=${view.sequence}`
    : fragNeeded
      ? ` (MTU ${view.nextHopMtu})`
      : '';
  return { layer: { title: 'Internet Control Message Protocol', fields }, info: `${name}${details}` };
}

function tcpFlags(flags: number): string {
  const names: [number, string][] = [
    [TCP_FLAG.SYN, 'SYN'],
    [TCP_FLAG.ACK, 'ACK'],
    [TCP_FLAG.FIN, 'FIN'],
    [TCP_FLAG.RST, 'RST'],
    [TCP_FLAG.PSH, 'PSH'],
  ];
  return names
    .filter(([bit]) => (flags & bit) !== 0)
    .map(([, name]) => name)
    .join(', ');
}

function transportLayer(
  protocol: number,
  packet: Buffer,
  start: number,
  end: number,
): { layer: PacketLayer; info: string } | undefined {
  if (protocol === IP_PROTOCOL.ICMP && end - start >= 8) return icmpLayer(new IcmpView(packet, start, end), start);
  if (protocol === IP_PROTOCOL.UDP && end - start >= 8) {
    const view = new UdpView(packet, start, end);
    const at = (field: number) => start + field;
    return {
      layer: {
        title: 'User Datagram Protocol',
        fields: [
          {
            key: 'udp.srcport',
            label: 'Source Port',
            value: String(view.srcPort),
            offset: at(UDP_FIELD.srcPort),
            length: 2,
          },
          {
            key: 'udp.dstport',
            label: 'Destination Port',
            value: String(view.dstPort),
            offset: at(UDP_FIELD.dstPort),
            length: 2,
          },
          { key: 'udp.length', label: 'Length', value: String(view.length), offset: at(UDP_FIELD.length), length: 2 },
          {
            key: 'udp.checksum',
            label: 'Checksum',
            value: hex(view.checksum, 4),
            offset: at(UDP_FIELD.checksum),
            length: 2,
          },
        ],
      },
      info: `${view.srcPort} → ${view.dstPort} Len=${view.length - 8}`,
    };
  }
  if (protocol === IP_PROTOCOL.TCP && end - start >= 20) {
    const view = new TcpView(packet, start, end);
    const at = (field: number) => start + field;
    const flags = tcpFlags(view.flags);
    return {
      layer: {
        title: 'Transmission Control Protocol',
        fields: [
          {
            key: 'tcp.srcport',
            label: 'Source Port',
            value: String(view.srcPort),
            offset: at(TCP_FIELD.srcPort),
            length: 2,
          },
          {
            key: 'tcp.dstport',
            label: 'Destination Port',
            value: String(view.dstPort),
            offset: at(TCP_FIELD.dstPort),
            length: 2,
          },
          {
            key: 'tcp.seq',
            label: 'Sequence Number (raw)',
            value: String(view.sequence),
            offset: at(TCP_FIELD.sequence),
            length: 4,
          },
          { key: 'tcp.flags', label: 'Flags', value: flags, offset: at(TCP_FIELD.flags), length: 1 },
          { key: 'tcp.window', label: 'Window', value: String(view.window), offset: at(TCP_FIELD.window), length: 2 },
          {
            key: 'tcp.checksum',
            label: 'Checksum',
            value: hex(view.checksum, 4),
            offset: at(TCP_FIELD.checksum),
            length: 2,
          },
        ],
      },
      info: `${view.srcPort} → ${view.dstPort} [${flags}]`,
    };
  }
  return undefined;
}

/** Decodes an IPv4 packet, tunnelled or not; bytes that are not one give a single `Data` layer. */
export function dissect(packet: Buffer): Dissection {
  const outer = Ipv4View.check(packet);
  if (!outer.ok) {
    return {
      layers: [
        {
          title: 'Data',
          fields: [{ key: 'data', label: 'Bytes', value: String(packet.length), offset: 0, length: packet.length }],
        },
      ],
      summary: `${packet.length} bytes that are not an IPv4 packet (${outer.reason})`,
    };
  }
  const layers: PacketLayer[] = [];
  let ip = outer.value;
  let base = 0;
  if (ip.protocol === IP_PROTOCOL.IPIP && !ip.isFragment) {
    layers.push(ipv4Layer(ip, 0, 'outer', 'Internet Protocol Version 4 (outer: the tunnel)'));
    const inner = Ipv4View.check(ip.payload);
    if (!inner.ok)
      return { layers, summary: `IPIP ${ipv4ToString(ip.src)} → ${ipv4ToString(ip.dst)} (inner: ${inner.reason})` };
    base = ip.headerLength;
    ip = new Ipv4View(packet, base);
  }
  layers.push(
    ipv4Layer(
      ip,
      base,
      'ip',
      base === 0 ? 'Internet Protocol Version 4' : "Internet Protocol Version 4 (inner: the pod's packet)",
    ),
  );
  const start = base + ip.headerLength;
  const end = base + ip.totalLength;
  const transport = ip.fragmentOffset === 0 ? transportLayer(ip.protocol, packet, start, end) : undefined;
  if (transport) layers.push(transport.layer);
  const tunnel = base === 0 ? '' : `IPIP ${ipv4ToString(outer.value.src)} → ${ipv4ToString(outer.value.dst)}: `;
  const name = PROTOCOL_NAMES[ip.protocol] ?? `proto ${ip.protocol}`;
  const info = transport?.info ?? (ip.fragmentOffset > 0 ? `fragment at ${ip.fragmentByteOffset}` : '');
  return { layers, summary: `${tunnel}${ipv4ToString(ip.src)} → ${ipv4ToString(ip.dst)} ${name} ${info}`.trimEnd() };
}

/** The keys whose values differ from `previous`, and the keys `previous` did not have (a header just added). */
export function changedFields(previous: readonly PacketLayer[] | undefined, current: readonly PacketLayer[]): string[] {
  if (previous === undefined) return [];
  const before = new Map(previous.flatMap((layer) => layer.fields).map((field) => [field.key, field.value]));
  return current
    .flatMap((layer) => layer.fields)
    .filter((field) => before.get(field.key) !== field.value)
    .map((field) => field.key);
}
