/**
 * What a Linux host writes into the IPv4 headers it makes itself, where the protocol leaves the choice to the host.
 * The node's own stack and the pods' stacks both follow these; the kernel captures in test/fixtures/vectors show them.
 */

/** net.ipv4.ip_default_ttl: the TTL of every packet a node or pod originates (its echo replies and ICMP errors too). */
export const LINUX_DEFAULT_TTL = 64;

/** RFC 791's minimum: every IPv4 host must take 68-byte datagrams unfragmented, so no link MTU may be lower. */
export const IPV4_MIN_MTU = 68;

/**
 * The identification of the datagrams one sender makes: each takes the current value, then the counter moves on,
 * wrapping at 16 bits. Linux keys its counters by destination; one per sender is enough for what a lab shows, a fresh
 * ID per datagram.
 */
export class IpIdCounter {
  private value: number;

  constructor(start = 0) {
    this.value = start & 0xffff;
  }

  next(): number {
    const id = this.value;
    this.value = (id + 1) & 0xffff;
    return id;
  }
}
