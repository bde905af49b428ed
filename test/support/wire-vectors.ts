/**
 * The kernel captures in `test/fixtures/vectors` (see its README), read with the wire layer's own pcapng reader. They are Ethernet
 * captures of the lab bridge, so frames are returned with the 14-byte Ethernet header stripped.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { LINKTYPE, pcapng } from '../../src/wire/index.js';

export const VECTORS_DIR = new URL('../fixtures/vectors/', import.meta.url);

const ETHERNET_HEADER_LENGTH = 14;
const ETHERTYPE_IPV4 = 0x0800;

export interface VectorFrame {
  file: string;
  /** 1-based, as tshark and the vectors README number frames. */
  frame: number;
  timestampNs: bigint;
  /** The IPv4 packet (outer header first). */
  ip: Buffer;
}

export function vectorFiles(): string[] {
  return readdirSync(VECTORS_DIR)
    .filter((name) => name.endsWith('.pcapng'))
    .sort();
}

export function readVector(file: string): Buffer {
  return readFileSync(new URL(file, VECTORS_DIR));
}

export function loadVector(file: string): VectorFrame[] {
  const capture = pcapng.decode(readVector(file));
  if (!capture.ok) throw new Error(`${file}: ${capture.reason}`);
  return capture.value.packets.map((packet, index) => {
    const linkType = capture.value.interfaces[packet.interfaceId].linkType;
    if (linkType !== LINKTYPE.ETHERNET || packet.data.readUInt16BE(12) !== ETHERTYPE_IPV4) {
      throw new Error(`${file} frame ${index + 1} is not IPv4 over Ethernet`);
    }
    return {
      file,
      frame: index + 1,
      timestampNs: packet.timestampNs,
      ip: packet.data.subarray(ETHERNET_HEADER_LENGTH),
    };
  });
}

export function frameOf(file: string, frame: number): Buffer {
  const found = loadVector(file).find((candidate) => candidate.frame === frame);
  if (found === undefined) throw new Error(`${file} has no frame ${frame}`);
  return found.ip;
}

export function allVectorFrames(): VectorFrame[] {
  return vectorFiles().flatMap(loadVector);
}
