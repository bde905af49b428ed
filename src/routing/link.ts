import type { Ipv4Address } from './address.js';

/** One `inet` line of `ip addr`. */
export interface LinkAddress {
  readonly address: Ipv4Address;
  readonly prefixLength: number;
  /** Printed as `brd X` when present (eth0 and a pod's /32 have one, tunl0 does not). */
  readonly broadcast?: Ipv4Address;
  readonly scope: 'host' | 'global' | 'link';
  readonly label: string;
}

/**
 * One `inet6` line of `ip addr`. The emulator carries no IPv6 traffic; the address is kept as the text iproute2
 * prints (e.g. a VirtualBox NIC's `fe80::a00:27ff:fe23:f744`) so a node's `ip addr` can match a real one.
 */
export interface LinkAddress6 {
  readonly address: string;
  readonly prefixLength: number;
  readonly scope: 'host' | 'global' | 'link';
}

/** A network interface as `ip link` / `ip addr` describe it. */
export interface Link {
  readonly index: number;
  readonly name: string;
  /** What iproute2 prints after '@': `NONE` for tunl0, `if8` for a veth whose peer is ifindex 8. */
  readonly parent?: string;
  /** Flags in kernel order, e.g. ['NOARP', 'UP', 'LOWER_UP']. */
  readonly flags: readonly string[];
  readonly mtu: number;
  readonly qdisc: string;
  readonly state: 'UP' | 'DOWN' | 'UNKNOWN';
  /** iproute2 prints `group default` (group 0) when unset; the busybox `ip` in hello-app's pod never prints it. */
  readonly group?: string;
  readonly qlen?: number;
  readonly linkType: 'loopback' | 'ether' | 'ipip';
  /** Link-layer address and broadcast as printed (`0.0.0.0` for ipip). */
  readonly linkAddress: string;
  readonly linkBroadcast: string;
  /**
   * Where the veth peer lives: a number (`'0'`) prints as `link-netnsid 0` (a container's eth0), a name as
   * `link-netns cni-…` (a cali veth on the host). iproute2 only; busybox prints neither.
   */
  readonly linkNetns?: string;
  readonly addresses: readonly LinkAddress[];
  /** Printed after the IPv4 addresses, as the kernel dumps AF_INET before AF_INET6. */
  readonly addresses6?: readonly LinkAddress6[];
}
