/** The wire layer: packet formats, the tunnel's encapsulation rules and capture files. No I/O. */
export { DROP_REASONS, dropped, parsed, type DropReason, type Dropped, type Parsed } from './result.js';
export {
  foldSum,
  internetChecksum,
  onesComplementSum,
  pseudoHeaderSum,
  updateChecksum,
  updateChecksumWord32,
} from './checksum.js';
export {
  ECN,
  FRAGMENT_UNIT,
  IP_PROTOCOL,
  IPV4_FIELD,
  IPV4_MAX_HEADER_LENGTH,
  IPV4_MAX_TOTAL_LENGTH,
  IPV4_MIN_HEADER_LENGTH,
  Ipv4View,
  dscpOf,
  ecnOf,
  ipv4,
  tosOf,
  type DecodedIpv4Packet,
  type Ipv4Packet,
} from './ipv4.js';
export { fragment, joinFragments } from './fragment.js';
export { forEachOption } from './options.js';
export {
  ICMP_FIELD,
  ICMP_HEADER_LENGTH,
  ICMP_TYPE,
  IcmpView,
  QUOTED_PAYLOAD_LENGTH,
  TIME_EXCEEDED_CODE,
  UNREACHABLE_CODE,
  checkQuote,
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
export {
  UDP_FIELD,
  UDP_HEADER_LENGTH,
  UdpView,
  udp,
  type DecodedUdpDatagram,
  type PseudoHeader,
  type UdpDatagram,
} from './udp.js';
export {
  TCP_FIELD,
  TCP_FLAG,
  TCP_MIN_HEADER_LENGTH,
  TCP_OPTION,
  TCP_OPTION_SPACE,
  TcpView,
  tcp,
  tcpMss,
  tcpOptions,
  type DecodedTcpSegment,
  type TcpOptions,
  type TcpSegment,
} from './tcp.js';
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
