/**
 * The type-length-value option lists IPv4 (RFC 791 §3.1) and TCP (RFC 9293 §3.1) share: type 0 ends the list, type 1
 * is a one-byte NOP, every other option carries its total length in its second byte.
 */
export const OPTION_END = 0;
export const OPTION_NOP = 1;

/**
 * Calls `visit` for each option other than END and NOP in `bytes[start, end)` until it returns `false`. A malformed
 * length ends the walk quietly, as the kernel's parsers stop, since options are kept rather than rejected here.
 */
export function forEachOption(
  bytes: Buffer,
  start: number,
  end: number,
  visit: (type: number, at: number, length: number) => boolean | void,
): void {
  let at = start;
  while (at < end) {
    const type = bytes[at];
    if (type === OPTION_END) return;
    if (type === OPTION_NOP) {
      at += 1;
      continue;
    }
    if (at + 1 >= end) return;
    const length = bytes[at + 1];
    if (length < 2 || at + length > end) return;
    if (visit(type, at, length) === false) return;
    at += length;
  }
}

/** A header of `fixedLength` bytes followed by the options padded to 32-bit words, as IPv4 and TCP both lay it out. */
export function paddedHeaderLength(
  protocol: string,
  fixedLength: number,
  maxLength: number,
  optionsLength: number,
): number {
  if (optionsLength > maxLength - fixedLength) {
    throw new RangeError(`${protocol} options are ${optionsLength} bytes; at most ${maxLength - fixedLength} fit`);
  }
  return fixedLength + Math.ceil(optionsLength / 4) * 4;
}
