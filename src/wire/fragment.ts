/**
 * IPv4 fragmentation the way Linux `ip_do_fragment()` cuts a packet for a smaller MTU (vectors rule 7: the tunnel
 * fragments the *inner* packet, then encapsulates each piece), and the inverse join the node's reassembly needs once
 * it holds every piece.
 */
import { FRAGMENT_UNIT, IPV4_MIN_HEADER_LENGTH, Ipv4View } from './ipv4.js';
import { forEachOption, OPTION_NOP } from './options.js';
import { dropped, parsed, type Parsed } from './result.js';

/** RFC 791: options with this bit in their type byte are copied into every fragment. */
const OPTION_COPIED = 0x80;

/**
 * Splits a packet to fit `mtu`: every non-last piece carries the largest multiple of 8 data bytes that fits after the
 * header, offsets stay relative to the original datagram, the ID is kept, and MF is set on every piece except the one
 * that ends the original datagram (so a piece of an input that already had MF keeps it). A packet that fits is
 * returned as is. DF is the caller's business (it answers ICMP 3/4 instead of calling this).
 *
 * Non-first pieces keep the same header length, with options that are not to be copied overwritten by NOPs, as Linux
 * `ip_options_fragment()` does rather than removing them.
 */
export function fragment(packet: Buffer, mtu: number): Parsed<Buffer[]> {
  const checked = Ipv4View.check(packet);
  if (!checked.ok) return checked;
  const original = checked.value;
  if (original.totalLength <= mtu) return parsed([original.packet]);

  const headerLength = original.headerLength;
  const dataPerPiece = Math.floor((mtu - headerLength) / FRAGMENT_UNIT) * FRAGMENT_UNIT;
  if (dataPerPiece < FRAGMENT_UNIT)
    throw new RangeError(`MTU ${mtu} leaves no room for data after ${headerLength} header bytes`);

  const data = original.payload;
  const laterHeader = Buffer.from(original.header);
  overwriteUncopiedOptions(laterHeader);

  const pieces: Buffer[] = [];
  for (let start = 0; start < data.length; start += dataPerPiece) {
    const end = Math.min(start + dataPerPiece, data.length);
    const bytes = Buffer.alloc(headerLength + end - start);
    (start === 0 ? original.header : laterHeader).copy(bytes);
    data.copy(bytes, headerLength, start, end);
    const piece = new Ipv4View(bytes);
    piece.totalLength = bytes.length;
    piece.fragmentOffset = original.fragmentOffset + start / FRAGMENT_UNIT;
    piece.moreFragments = end < data.length || original.moreFragments;
    piece.fillChecksum();
    pieces.push(bytes);
  }
  return parsed(pieces);
}

function overwriteUncopiedOptions(header: Buffer): void {
  forEachOption(header, IPV4_MIN_HEADER_LENGTH, header.length, (type, at, length) => {
    if ((type & OPTION_COPIED) === 0) header.fill(OPTION_NOP, at, at + length);
  });
}

/**
 * Joins the pieces of one datagram, given in offset order with nothing missing, into one packet carrying the first
 * piece's header (options included, as Linux reassembly keeps it) and the last piece's MF. Pieces of one fragment of
 * a larger datagram join into that fragment, which is how the tests undo the tunnel's re-fragmentation.
 */
export function joinFragments(pieces: readonly Buffer[]): Parsed<Buffer> {
  const views: Ipv4View[] = [];
  for (const bytes of pieces) {
    const checked = Ipv4View.check(bytes);
    if (!checked.ok) return checked;
    views.push(checked.value);
  }
  if (views.length === 0) return dropped('fragment-mismatch');
  const [first] = views;
  let nextOffset = first.fragmentByteOffset;
  for (const [index, view] of views.entries()) {
    const isLast = index === views.length - 1;
    const samePacket =
      view.src === first.src &&
      view.dst === first.dst &&
      view.identification === first.identification &&
      view.protocol === first.protocol;
    if (!samePacket || view.fragmentByteOffset !== nextOffset || (!isLast && !view.moreFragments)) {
      return dropped('fragment-mismatch');
    }
    nextOffset += view.payload.length;
  }

  const headerLength = first.headerLength;
  const dataLength = nextOffset - first.fragmentByteOffset;
  if (headerLength + dataLength > 0xffff) return dropped('fragment-mismatch');
  const joined = Buffer.concat([first.header, ...views.map((view) => view.payload)], headerLength + dataLength);
  const view = new Ipv4View(joined);
  view.totalLength = joined.length;
  view.moreFragments = views[views.length - 1].moreFragments;
  view.fillChecksum();
  return parsed(joined);
}
