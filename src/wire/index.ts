/** The wire layer: packet formats, the tunnel's encapsulation rules and capture files. No I/O. */
export { DROP_REASONS, dropped, parsed, type DropReason, type Dropped, type Parsed } from './result.js';
export { foldSum, internetChecksum, onesComplementSum, pseudoHeaderSum, updateChecksum } from './checksum.js';
export {
  ECN,
  FRAGMENT_UNIT,
  IP_PROTOCOL,
  IPV4_FIELD,
  IPV4_MAX_HEADER_LENGTH,
  IPV4_MAX_TOTAL_LENGTH,
  IPV4_MIN_HEADER_LENGTH,
  Ipv4View,
  ipv4,
  type DecodedIpv4Packet,
  type Ipv4Packet,
} from './ipv4.js';
export { fragment, joinFragments } from './fragment.js';
export { forEachOption } from './options.js';
export {
  ICMP_HEADER_LENGTH,
  ICMP_TYPE,
  TIME_EXCEEDED_CODE,
  UNREACHABLE_CODE,
  destinationUnreachable,
  fragmentationNeeded,
  icmp,
  icmpErrorTos,
  quoteOf,
  timeExceeded,
  type ErrorOptions,
  type IcmpMessage,
  type QuoteMode,
} from './icmp.js';
export { UDP_HEADER_LENGTH, udp, type DecodedUdpDatagram, type PseudoHeader, type UdpDatagram } from './udp.js';
export { TCP_FLAG, TCP_MIN_HEADER_LENGTH, tcp, tcpMss, type DecodedTcpSegment, type TcpSegment } from './tcp.js';
export {
  IPIP_OVERHEAD,
  decapsulate,
  decapsulateEcn,
  encapsulate,
  encapsulationEcn,
  type Decapsulated,
  type EcnDecapsulation,
  type TunnelHeader,
} from './ipip.js';
export { LINKTYPE, pcap, pcapng, type Capture, type CaptureInterface, type CapturedPacket } from './pcapng.js';
export { ipv4FromString, ipv4ToString } from './ipv4-text.js';
export { IPV4_MIN_MTU, IpIdCounter, LINUX_DEFAULT_TTL } from './linux-defaults.js';
