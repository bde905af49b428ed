/**
 * The internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * Sums are kept unfolded in a double: 16-bit words added to a JS number stay exact far beyond any IPv4 datagram
 * (2^53 / 2^16 words), so folding happens once at the end instead of per word.
 */

/** Adds the big-endian 16-bit words of `bytes[start, end)` to `initial`; an odd last byte is padded with zero. */
export function onesComplementSum(bytes: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  const pairedEnd = end - ((end - start) & 1);
  let i = start;
  for (; i < pairedEnd; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (i < end) sum += bytes[i] << 8;
  return sum;
}

export function foldSum(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/** The value to store in a checksum field; verifying a range that includes its checksum field yields 0. */
export function internetChecksum(bytes: Uint8Array, start = 0, end = bytes.length, initial = 0): number {
  return ~foldSum(onesComplementSum(bytes, start, end, initial)) & 0xffff;
}

/** The UDP/TCP pseudo-header (RFC 768, RFC 9293 §3.1) as a partial sum to pass as `initial`. */
export function pseudoHeaderSum(src: number, dst: number, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}

/**
 * RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'): the checksum after one 16-bit word changed from `oldWord` to `newWord`.
 * Eqn. 3 rather than eqn. 2 because it never produces the 0xffff/0x0000 mismatch a full recomputation would not.
 */
export function updateChecksum(checksum: number, oldWord: number, newWord: number): number {
  return ~foldSum((~checksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff)) & 0xffff;
}

/** `updateChecksum` for a 32-bit field, an IPv4 address above all: its two 16-bit words in turn. */
export function updateChecksumWord32(checksum: number, oldValue: number, newValue: number): number {
  return updateChecksum(
    updateChecksum(checksum, oldValue >>> 16, newValue >>> 16),
    oldValue & 0xffff,
    newValue & 0xffff,
  );
}
