import type { DropReason } from '../../../wire/result.js';

/**
 * Why a pod discarded a received packet: the wire layer's parse failures plus what the pod's own stack refuses.
 * Kept as data so `stats` can list every reason, including those still at zero.
 */
export const POD_DROP_REASONS = [
  'not-for-pod',
  'fragment-overlap',
  'fragment-duplicate',
  'fragment-invalid',
  'reassembly-timeout',
  'reassembly-memory',
  'unknown-protocol',
  'udp-port-unreachable',
  'icmp-unmatched',
  'tcp-no-socket',
  'tcp-unacceptable',
] as const;

export type PodDropReason = DropReason | (typeof POD_DROP_REASONS)[number];

export interface PodCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Datagrams rebuilt from fragments (Linux ReasmOKs). */
  reassembled: number;
  /** Datagrams this pod cut into fragments (Linux FragOKs). */
  fragmented: number;
  /** ICMP errors the per-destination rate limit held back, as Linux's icmp_ratelimit does. */
  icmpRateLimited: number;
  drops: Partial<Record<PodDropReason, number>>;
}

export function emptyCounters(): PodCounters {
  return {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    reassembled: 0,
    fragmented: 0,
    icmpRateLimited: 0,
    drops: {},
  };
}

export function countDrop(counters: PodCounters, reason: PodDropReason): void {
  counters.drops[reason] = (counters.drops[reason] ?? 0) + 1;
}
