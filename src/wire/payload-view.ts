/**
 * What the views of the protocols carried in IPv4 (UDP, TCP, ICMP) share, as smoltcp's `Packet<T>` types share theirs:
 * a byte range of a buffer they alias, reusable with `attach`, and a checked constructor built on `validate`.
 */
import type { DropReason } from './result.js';

/**
 * A view over `buffer[offset, end)`, the IP payload. Construct one directly only over bytes you are writing or bytes
 * known to hold the fields you read (the 8 bytes an ICMP error quotes hold a UDP or ICMP header, or TCP's ports and
 * sequence number); untrusted bytes go through the subclass's `check`, or `attach(…).validate()` to reuse one view.
 * Setters truncate values to the field's width.
 */
export abstract class IpPayloadView {
  constructor(
    public buffer: Buffer,
    public offset = 0,
    public end = buffer.length,
  ) {}

  attach(buffer: Buffer, offset = 0, end = buffer.length): this {
    this.buffer = buffer;
    this.offset = offset;
    this.end = end;
    return this;
  }

  /** Why the bytes cannot hold this protocol's header, or undefined when every getter stays inside them. */
  abstract validate(): DropReason | undefined;

  /** How many bytes the view covers (UDP's `length` is its header field, which may say less). */
  get byteLength(): number {
    return this.end - this.offset;
  }

  protected read16(field: number): number {
    return this.buffer.readUInt16BE(this.offset + field);
  }
  protected write16(field: number, value: number): void {
    this.buffer.writeUInt16BE(value & 0xffff, this.offset + field);
  }

  protected read32(field: number): number {
    return this.buffer.readUInt32BE(this.offset + field);
  }
  protected write32(field: number, value: number): void {
    this.buffer.writeUInt32BE(value >>> 0, this.offset + field);
  }
}
