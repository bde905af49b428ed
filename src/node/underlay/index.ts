/**
 * The node's real underlay: one raw IPv4 socket for IP protocol 4. The kernel gives us every IPIP packet addressed to
 * this container, whole (outer header included), and sends ours as we built them (IP_HDRINCL), so the outer header on
 * the wire is exactly the one the dataplane computed. Nothing here knows about tunnels or routes.
 *
 * Two implementations of one interface: `native` (batched.ts, this project's addon: recvmmsg/sendmmsg, 64 packets
 * per system call) and `raw-socket` (raw-socket.ts, the npm package: one packet per event). The agent picks native
 * unless told otherwise or the addon is not built.
 */
import { openBatchedUnderlay } from './batched.js';
import { UnderlayUnavailableError } from './errors.js';
import { openRawSocketUnderlay } from './raw-socket.js';

export { UnderlayUnavailableError } from './errors.js';

/** A raw IPIP socket with IP_HDRINCL: `packet` includes its outer header; `destination` is the next hop. */
export interface UnderlayTx {
  send(packet: Buffer, destination: number): void;
}

export interface Underlay extends UnderlayTx {
  /** Send failures so far (the kernel refused a packet), e.g. for the stats view. */
  readonly sendErrors: number;
  close(): void;
}

export interface UnderlayHandlers {
  /** A whole IPv4 packet as received, outer header first. The buffer is the caller's to keep. */
  onPacket(packet: Buffer): void;
  /** A send or receive failure; the socket stays open where the kernel lets it. */
  onError(error: Error): void;
}

export const UNDERLAY_KINDS = ['native', 'raw-socket'] as const;
export type UnderlayKind = (typeof UNDERLAY_KINDS)[number];

/**
 * Native: between two containers it relayed twice the packets per second of raw-socket, at a lower round trip and a
 * tenth of the CPU in Node per packet (native/README.md has the figures).
 */
export const DEFAULT_UNDERLAY: UnderlayKind = 'native';

/** What each kind is, for the agent's startup line. */
const DESCRIPTIONS: Record<UnderlayKind, string> = {
  native: 'native (recvmmsg/sendmmsg in batches)',
  'raw-socket': 'raw-socket (one packet per event)',
};

export type UnderlayOpeners = Record<UnderlayKind, (handlers: UnderlayHandlers) => Underlay>;

const OPENERS: UnderlayOpeners = {
  native: openBatchedUnderlay,
  'raw-socket': openRawSocketUnderlay,
};

export interface OpenedUnderlay {
  underlay: Underlay;
  kind: UnderlayKind;
  /** For the agent's log: which implementation moves the packets. */
  description: string;
}

/**
 * Opens the requested underlay. Without a request it opens the default and, when the addon is not built, says so
 * through `log` and falls back to raw-socket; an explicit request that cannot be met throws
 * UnderlayUnavailableError instead, so that a user who asked for native never silently gets raw-socket.
 */
export function openUnderlay(
  requested: UnderlayKind | undefined,
  handlers: UnderlayHandlers,
  log: (line: string) => void,
  openers: UnderlayOpeners = OPENERS,
): OpenedUnderlay {
  const open = (kind: UnderlayKind): OpenedUnderlay => ({
    underlay: openers[kind](handlers),
    kind,
    description: DESCRIPTIONS[kind],
  });
  if (requested !== undefined) return open(requested);
  try {
    return open(DEFAULT_UNDERLAY);
  } catch (error) {
    if (!(error instanceof UnderlayUnavailableError)) throw error;
    const fallback: UnderlayKind = 'raw-socket';
    log(`underlay ${DEFAULT_UNDERLAY} unavailable (${error.message}): using ${fallback}`);
    return open(fallback);
  }
}
