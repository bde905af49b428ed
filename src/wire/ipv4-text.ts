/**
 * Dotted-quad text for the uint32 addresses of this layer, for tests and human-readable output. The routing layer
 * owns the real address types.
 */
export function ipv4ToString(address: number): string {
  return `${address >>> 24}.${(address >>> 16) & 0xff}.${(address >>> 8) & 0xff}.${address & 0xff}`;
}

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Strict dotted quad: four decimal octets, no leading zeros (which some parsers read as octal). */
export function ipv4FromString(text: string): number | undefined {
  const match = DOTTED_QUAD.exec(text);
  if (match === null) return undefined;
  let address = 0;
  for (const octet of match.slice(1)) {
    if ((octet.length > 1 && octet[0] === '0') || Number(octet) > 255) return undefined;
    address = address * 256 + Number(octet);
  }
  return address;
}
