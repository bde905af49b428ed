/**
 * Packets and captures for the lab tests: hand-built echo requests (to inject or to send from a stranger), and
 * tshark's reading of a capture that came out of a node container.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ICMP_TYPE,
  IP_PROTOCOL,
  encapsulate,
  icmp,
  internetChecksum,
  ipv4,
  ipv4FromString,
} from '../../src/wire/index.js';
import { tsharkFields } from './wire-tshark.js';

function address(text: string): number {
  const value = ipv4FromString(text);
  if (value === undefined) throw new Error(`not an address: ${text}`);
  return value;
}

export interface EchoOptions {
  src: string;
  dst: string;
  /** ICMP data bytes. */
  size?: number;
  ttl?: number;
  df?: boolean;
  tos?: number;
  sequence?: number;
}

/** An ICMP echo request as a pod would send it. */
export function echoRequest(options: EchoOptions): Buffer {
  const tos = options.tos ?? 0;
  return ipv4.encode({
    dscp: tos >> 2,
    ecn: tos & 3,
    identification: 0x4242,
    dontFragment: options.df ?? true,
    ttl: options.ttl ?? 64,
    protocol: IP_PROTOCOL.ICMP,
    src: address(options.src),
    dst: address(options.dst),
    payload: icmp.encode({
      kind: 'echo-request',
      identifier: 0x1234,
      sequence: options.sequence ?? 1,
      data: Buffer.alloc(options.size ?? 56, 0x61),
    }),
  });
}

/** `inner` in an outer IPv4 header, protocol 4, as a node (or a stranger) puts it on the wire. */
export function ipipPacket(inner: Buffer, outer: { src: string; dst: string; ecn?: number }): Buffer {
  const packet = encapsulate(inner, { src: address(outer.src), dst: address(outer.dst), id: 0x7777 });
  if (outer.ecn !== undefined) {
    packet[1] = (packet[1] & 0xfc) | outer.ecn;
    packet.writeUInt16BE(0, 10);
    packet.writeUInt16BE(internetChecksum(packet, 0, 20), 10);
  }
  return packet;
}

/** ICMP type and code of an IPv4 packet carrying ICMP, else undefined. */
export function icmpTypeOf(
  packet: Buffer,
): { type: number; code: number; src: string; dst: string; nextHopMtu: number } | undefined {
  if (packet[9] !== IP_PROTOCOL.ICMP) return undefined;
  const header = (packet[0] & 0x0f) * 4;
  const dotted = (offset: number) => [...packet.subarray(offset, offset + 4)].join('.');
  return {
    type: packet[header],
    code: packet[header + 1],
    src: dotted(12),
    dst: dotted(16),
    nextHopMtu: packet[header] === ICMP_TYPE.DESTINATION_UNREACHABLE ? packet.readUInt16BE(header + 6) : 0,
  };
}

let captureDirectory: string | undefined;

/**
 * Writes a capture from a node container to a temporary file and reads it back with tshark: one row per packet, each
 * cell `outer;inner[;quoted]` as in the vectors' tables.
 */
export async function captureRows(capture: Buffer, fields: string[]): Promise<string[][]> {
  captureDirectory ??= mkdtempSync(path.join(tmpdir(), 'ipip-lab-captures-'));
  const file = path.join(captureDirectory, `capture-${Date.now()}-${Math.random().toString(16).slice(2)}.pcap`);
  writeFileSync(file, capture);
  return tsharkFields(file, fields);
}
