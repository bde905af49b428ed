/**
 * Capture filters: the tcpdump words lab users already type, compiled once into a matcher over raw IPv4 bytes.
 *
 *   expression := and-list (("or" | "||") and-list)*
 *   and-list   := unary (("and" | "&&") unary)*
 *   unary      := ("not" | "!") unary | "inner" unary | "(" expression ")" | primitive
 *   primitive  := ["ip"] ["src" | "dst"] "host" ADDRESS     also ["src" | "dst"] ADDRESS
 *               | ["ip"] ["src" | "dst"] "net" (ADDRESS/LENGTH | ADDRESS ["mask" MASK])
 *               | ["tcp" | "udp"] ["src" | "dst"] "port" NUMBER
 *               | ["ip"] "proto" (icmp | udp | tcp | ipip | NUMBER)
 *               | "ip" | "icmp" | "udp" | "tcp" | "ipip"
 *               | VALUE                                   repeats the previous primitive's words, as tcpdump does:
 *                                                         `port 80 or 8080`, `host 10.0.0.11 or 10.0.0.12`
 *
 * Semantics are tcpdump's on a raw-IP link: every word looks at the outermost IPv4 header, so on eth0 `host 10.0.0.11`
 * is the underlay and `proto ipip` the tunnelled packets; port words read TCP/UDP ports in first fragments only.
 * `not` binds tighter than `and`, which binds tighter than `or`. An empty filter keeps everything.
 *
 * ipip-lab extension: `inner X` holds when the packet is IPIP (protocol 4, first fragment) and X holds for the packet
 * inside, so `inner host 192.168.87.198` finds a pod's traffic in an eth0 capture. It is a prefix like `not`:
 * `inner host A and tcp` is `(inner host A) and tcp`; write `inner (host A and tcp)` for both inside. A value list
 * repeats `inner` with the other words: `inner host A or B` is `inner host A or inner host B`.
 *
 * Bytes that are not an IPv4 header match nothing, and nothing the matcher is given can make it throw.
 */
import { Ipv4Prefix } from '../../routing/address.js';
import { ipv4FromString } from '../../wire/ipv4-text.js';
import { IPV4_MIN_HEADER_LENGTH, IP_PROTOCOL, Ipv4View } from '../../wire/ipv4.js';
import { TcpView } from '../../wire/tcp.js';
import { UdpView } from '../../wire/udp.js';

export type CompiledFilter = { ok: true; match: (packet: Buffer) => boolean } | { ok: false; error: string };

/** True when the IPv4 header at `at` matches; only ever called on a header that `isIpv4HeaderAt` accepted. */
type Matcher = (packet: Buffer, at: number) => boolean;

type Direction = 'src' | 'dst' | undefined;

/** The words of a primitive that takes a value, kept so that a bare value after it can repeat them. */
interface Qualifiers {
  kind: 'host' | 'net' | 'port' | 'proto';
  direction: Direction;
  /** `tcp port` / `udp port`; undefined for either. */
  transport?: number;
  /** How many `inner` the primitive sat under. */
  depth: number;
}

interface Token {
  text: string;
  /** 1-based, as users count. */
  column: number;
}

const PROTOCOL_NAMES: ReadonlyMap<string, number> = new Map([
  ['icmp', IP_PROTOCOL.ICMP],
  ['ipip', IP_PROTOCOL.IPIP],
  ['tcp', IP_PROTOCOL.TCP],
  ['udp', IP_PROTOCOL.UDP],
]);
const MAX_PORT = 0xffff;
const PORTS_LENGTH = 4;
const MAX_PROTOCOL = 0xff;
const TOKEN = /\s+|&&|\|\||[()!]|[\w./\\-]+/y;

/**
 * One view of each kind for every matcher: a matcher runs to its end before another starts, and attaches the view to
 * its own bytes before each read, so a capture that filters allocates nothing per packet.
 */
const ipHeader = new Ipv4View(Buffer.alloc(0));
const udpHeader = new UdpView(Buffer.alloc(0));
const tcpHeader = new TcpView(Buffer.alloc(0));
const ipv4At = (packet: Buffer, at: number): Ipv4View => ipHeader.attach(packet, at);

/** Whether a whole IPv4 header lies at `at`: what every matcher may then read without checking bounds. */
function isIpv4HeaderAt(packet: Buffer, at: number): boolean {
  if (at + IPV4_MIN_HEADER_LENGTH > packet.length || ipv4At(packet, at).version !== 4) return false;
  const length = ipv4At(packet, at).headerLength;
  return length >= IPV4_MIN_HEADER_LENGTH && at + length <= packet.length;
}

const isFirstFragment = (packet: Buffer, at: number): boolean => ipv4At(packet, at).fragmentOffset === 0;

function addressMatcher(direction: Direction, matches: (address: number) => boolean): Matcher {
  const src = (packet: Buffer, at: number) => matches(ipv4At(packet, at).src);
  const dst = (packet: Buffer, at: number) => matches(ipv4At(packet, at).dst);
  if (direction === 'src') return src;
  if (direction === 'dst') return dst;
  return (packet, at) => src(packet, at) || dst(packet, at);
}

function portMatcher(direction: Direction, port: number, transport: number | undefined): Matcher {
  return (packet, at) => {
    const protocol = ipv4At(packet, at).protocol;
    const carriesPorts =
      transport === undefined ? protocol === IP_PROTOCOL.TCP || protocol === IP_PROTOCOL.UDP : protocol === transport;
    if (!carriesPorts) return false;
    const ports = at + ipv4At(packet, at).headerLength;
    // Both protocols start with the two ports, which is all a port word reads.
    if (!isFirstFragment(packet, at) || ports + PORTS_LENGTH > packet.length) return false;
    const header = (protocol === IP_PROTOCOL.TCP ? tcpHeader : udpHeader).attach(packet, ports);
    if (direction !== 'dst' && header.srcPort === port) return true;
    return direction !== 'src' && header.dstPort === port;
  };
}

const protocolMatcher =
  (protocol: number): Matcher =>
  (packet, at) =>
    ipv4At(packet, at).protocol === protocol;

const innerMatcher =
  (matcher: Matcher): Matcher =>
  (packet, at) => {
    if (ipv4At(packet, at).protocol !== IP_PROTOCOL.IPIP || !isFirstFragment(packet, at)) return false;
    const inner = at + ipv4At(packet, at).headerLength;
    return isIpv4HeaderAt(packet, inner) && matcher(packet, inner);
  };

class FilterSyntaxError extends Error {}

class Parser {
  private position = 0;
  private depth = 0;
  private previous: Qualifiers | undefined;

  constructor(
    private readonly tokens: readonly Token[],
    private readonly endColumn: number,
  ) {}

  parse(): Matcher {
    const matcher = this.expression();
    if (this.position < this.tokens.length) this.fail('"and" or "or"');
    return matcher;
  }

  private expression(): Matcher {
    let left = this.conjunction();
    while (this.accept('or', '||')) {
      const first = left;
      const second = this.conjunction();
      left = (packet, at) => first(packet, at) || second(packet, at);
    }
    return left;
  }

  private conjunction(): Matcher {
    let left = this.unary();
    while (this.accept('and', '&&')) {
      const first = left;
      const second = this.unary();
      left = (packet, at) => first(packet, at) && second(packet, at);
    }
    return left;
  }

  private unary(): Matcher {
    if (this.accept('not', '!')) {
      const operand = this.unary();
      return (packet, at) => !operand(packet, at);
    }
    if (this.accept('inner')) {
      this.depth++;
      const operand = this.unary();
      this.depth--;
      return innerMatcher(operand);
    }
    if (this.accept('(')) {
      const inside = this.expression();
      if (!this.accept(')')) this.fail('"and", "or" or ")"');
      return inside;
    }
    return this.primitive();
  }

  private primitive(): Matcher {
    const word = this.peek()?.toLowerCase() ?? '';
    if (/^\d/.test(word)) return this.valueList();
    const protocol = PROTOCOL_NAMES.get(word);
    if (protocol !== undefined) {
      this.position++;
      const hasPorts = protocol === IP_PROTOCOL.TCP || protocol === IP_PROTOCOL.UDP;
      if (!hasPorts || !this.atAny('src', 'dst', 'port')) return protocolMatcher(protocol);
      const direction = this.direction();
      if (!this.accept('port')) return this.fail('"port"');
      return this.qualified({ kind: 'port', direction, transport: protocol, depth: this.depth });
    }
    const ip = this.accept('ip');
    if (this.accept('proto')) return this.qualified({ kind: 'proto', direction: undefined, depth: this.depth });
    if (ip && !this.atAny('src', 'dst', 'host', 'net')) return () => true;
    const direction = this.direction();
    const kinds = ip ? (['host', 'net'] as const) : (['host', 'net', 'port'] as const);
    const kind = kinds.find((candidate) => this.accept(candidate));
    if (kind !== undefined) return this.qualified({ kind, direction, depth: this.depth });
    if (direction === undefined) {
      return this.fail('a filter word (host, net, port, proto, ip, icmp, udp, tcp, ipip, inner, not or "(")');
    }
    if (!/^\d/.test(this.peek() ?? '')) {
      return this.fail(`${kinds.map((name) => `"${name}"`).join(', ')} or an address`);
    }
    return this.qualified({ kind: 'host', direction, depth: this.depth });
  }

  /** A bare value: tcpdump repeats the previous primitive's words, and takes a lone address as a host. */
  private valueList(): Matcher {
    const qualifiers = this.previous ?? { kind: 'host', direction: undefined, depth: this.depth };
    let matcher = this.qualified({ ...qualifiers, depth: Math.max(qualifiers.depth, this.depth) });
    for (let depth = this.depth; depth < qualifiers.depth; depth++) matcher = innerMatcher(matcher);
    return matcher;
  }

  private direction(): Direction {
    if (this.accept('src')) return 'src';
    if (this.accept('dst')) return 'dst';
    return undefined;
  }

  private qualified(qualifiers: Qualifiers): Matcher {
    this.previous = qualifiers;
    const { kind, direction } = qualifiers;
    switch (kind) {
      case 'host': {
        const address = ipv4FromString(this.peek() ?? '');
        if (address === undefined) return this.fail('an address');
        this.position++;
        return addressMatcher(direction, (candidate) => candidate === address);
      }
      case 'net': {
        const { network, mask } = this.network();
        return addressMatcher(direction, (candidate) => (candidate & mask) >>> 0 === network);
      }
      case 'port': {
        const port = this.number(MAX_PORT, 'a port number (0-65535)');
        return portMatcher(direction, port, qualifiers.transport);
      }
      case 'proto': {
        // tcpdump wants `ip proto \icmp` (icmp being a keyword there too); both spellings work here.
        const protocol = PROTOCOL_NAMES.get(this.peek()?.toLowerCase().replace(/^\\/, '') ?? '');
        if (protocol === undefined) {
          return protocolMatcher(this.number(MAX_PROTOCOL, 'a protocol (icmp, udp, tcp, ipip or 0-255)'));
        }
        this.position++;
        return protocolMatcher(protocol);
      }
    }
  }

  /** `A/LENGTH`, `A mask M` or a lone address (a /32, as tcpdump reads it); host bits set are an error there too. */
  private network(): { network: number; mask: number } {
    const token = this.tokens[this.position];
    const prefix = token === undefined ? undefined : Ipv4Prefix.tryParse(token.text);
    if (prefix === undefined) return this.fail('a network (a.b.c.d/len or a.b.c.d mask m.m.m.m)');
    this.position++;
    let mask = prefix.mask;
    if (!token.text.includes('/') && this.accept('mask')) {
      const parsed = ipv4FromString(this.peek() ?? '');
      if (parsed === undefined) return this.fail('a netmask');
      this.position++;
      mask = parsed;
    }
    const network = prefix.address.value;
    if ((network & mask) >>> 0 !== network) {
      throw new FilterSyntaxError(`filter: "${token.text}" has host bits set for its mask at column ${token.column}`);
    }
    return { network, mask };
  }

  private number(max: number, what: string): number {
    const text = this.peek() ?? '';
    if (!/^\d{1,5}$/.test(text) || Number(text) > max) return this.fail(what);
    this.position++;
    return Number(text);
  }

  private peek(): string | undefined {
    return this.tokens[this.position]?.text;
  }

  private atAny(...words: string[]): boolean {
    const text = this.peek()?.toLowerCase();
    return text !== undefined && words.includes(text);
  }

  private accept(...words: string[]): boolean {
    if (!this.atAny(...words)) return false;
    this.position++;
    return true;
  }

  /** `expected WHAT after "PREVIOUS" at column N, found "TOKEN"`: the column is where WHAT should have been. */
  private fail(what: string): never {
    const previous = this.tokens[this.position - 1];
    const found = this.tokens[this.position];
    const after = previous === undefined ? '' : ` after "${previous.text}"`;
    const column = found?.column ?? this.endColumn;
    const suffix = found === undefined ? '' : `, found "${found.text}"`;
    throw new FilterSyntaxError(`filter: expected ${what}${after} at column ${column}${suffix}`);
  }
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    const start = TOKEN.lastIndex;
    const match = TOKEN.exec(text);
    if (match === null) {
      throw new FilterSyntaxError(`filter: unexpected character "${text[start]}" at column ${start + 1}`);
    }
    if (!/^\s/.test(match[0])) tokens.push({ text: match[0], column: start + 1 });
  }
  return tokens;
}

export function parseFilter(text: string): CompiledFilter {
  try {
    const tokens = tokenize(text);
    if (tokens.length === 0) return { ok: true, match: () => true };
    const matcher = new Parser(tokens, text.length + 1).parse();
    return { ok: true, match: (packet) => isIpv4HeaderAt(packet, 0) && matcher(packet, 0) };
  } catch (error) {
    if (error instanceof FilterSyntaxError) return { ok: false, error: error.message };
    throw error;
  }
}
