/**
 * Learned path MTUs, as the kernel's route exceptions keep them after an ICMP "fragmentation needed" (vectors case 5b:
 * `ip route get` then shows `cache expires 597sec mtu 1480`, and the next DF ping fails locally with mtu=1480).
 */

/** `net.ipv4.route.mtu_expires`. */
const EXPIRES_MS = 600_000;
/** `net.ipv4.route.min_pmtu`: smaller advertised MTUs are raised to this, so a forged ICMP cannot shrink us further. */
const MIN_PMTU = 552;
/** Bounded like the kernel's per-nexthop exception table (FNHE_HASH_SIZE): forged ICMP cannot grow it without end. */
const MAX_ENTRIES = 2048;

export class PathMtuCache {
  private readonly learned = new Map<number, { mtu: number; expiresAt: number }>();

  constructor(
    private readonly linkMtu: number,
    private readonly now: () => number,
  ) {}

  mtuTo(destination: number): number {
    const entry = this.learned.get(destination);
    if (entry === undefined) return this.linkMtu;
    if (entry.expiresAt <= this.now()) {
      this.learned.delete(destination);
      return this.linkMtu;
    }
    return entry.mtu;
  }

  /** Returns whether the path MTU went down, which is what makes TCP resegment. */
  learn(destination: number, advertisedMtu: number): boolean {
    // An MTU of 0 comes from pre-RFC 1191 routers; Linux then guesses from plateaus, which a lab never needs.
    if (advertisedMtu === 0) return false;
    const mtu = Math.max(advertisedMtu, MIN_PMTU);
    if (mtu >= this.mtuTo(destination)) return false;
    this.learned.delete(destination);
    if (this.learned.size >= MAX_ENTRIES) this.learned.delete(this.learned.keys().next().value as number);
    this.learned.set(destination, { mtu, expiresAt: this.now() + EXPIRES_MS });
    return true;
  }
}
