/**
 * Why a parse of untrusted bytes refused them. The node layer keeps one counter per reason, so the list is exported as
 * data as well as a type.
 */
export const DROP_REASONS = [
  'truncated',
  'not-ipv4',
  'bad-ihl',
  'total-length-mismatch',
  'bad-checksum',
  'bad-icmp-checksum',
  'bad-udp-length',
  'bad-udp-checksum',
  'bad-data-offset',
  'bad-tcp-checksum',
  'not-ipip',
  'nested-ipip',
  'outer-fragment',
  'ecn-non-ect-ce',
  'fragment-mismatch',
  'bad-pcapng',
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: DropReason };

export type Dropped = { ok: false; reason: DropReason };

// One frozen object per reason, so refusing a packet never allocates.
const DROPPED = Object.fromEntries(
  DROP_REASONS.map((reason) => [reason, Object.freeze({ ok: false as const, reason })]),
) as unknown as Record<DropReason, Dropped>;

export function dropped(reason: DropReason): Dropped {
  return DROPPED[reason];
}

export function parsed<T>(value: T): Parsed<T> {
  return { ok: true, value };
}

/** A checked constructor's result: the view, or why its bytes were refused. */
export function checkedView<View extends { validate(): DropReason | undefined }>(view: View): Parsed<View> {
  const reason = view.validate();
  return reason === undefined ? parsed(view) : dropped(reason);
}
