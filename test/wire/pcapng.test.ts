import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Ipv4View, LINKTYPE, pcap, pcapng, type Capture } from '../../src/wire/index.js';
import { tsharkFields, tsharkRows } from '../support/wire-tshark.js';
import { VECTORS_DIR, frameOf, readVector, vectorFiles } from '../support/wire-vectors.js';

const workDir = mkdtempSync(join(tmpdir(), 'ipip-lab-wire-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function writeTemp(name: string, bytes: Buffer): string {
  const path = join(workDir, name);
  writeFileSync(path, bytes);
  return path;
}

/** tshark's frame.time_epoch text for a nanosecond timestamp. */
const epochText = (ns: bigint) => `${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}`;

const ipipPacket = frameOf('ping-df.pcapng', 1);
const innerPacket = new Ipv4View(ipipPacket).payload;

const twoInterfaces: Capture = {
  interfaces: [
    { linkType: LINKTYPE.IPV4, name: 'eth0', description: 'underlay, outer IPIP' },
    { linkType: LINKTYPE.RAW, name: 'tunl0' },
  ],
  packets: [
    { interfaceId: 0, timestampNs: 1_795_453_230_538_943_462n, data: ipipPacket },
    { interfaceId: 1, timestampNs: 1_795_453_230_538_943_999n, data: innerPacket },
  ],
};

describe('pcapng writer', () => {
  const bytes = pcapng.encode(twoInterfaces);

  it('lays out 32-bit padded little-endian blocks, each ending with its total length', () => {
    let blocks = 0;
    for (let at = 0; at < bytes.length; blocks++) {
      const total = bytes.readUInt32LE(at + 4);
      expect(total % 4).toBe(0);
      expect(bytes.readUInt32LE(at + total - 4)).toBe(total);
      at += total;
    }
    expect(blocks).toBe(5);
    expect(bytes.subarray(0, 4)).toEqual(Buffer.of(0x0a, 0x0d, 0x0d, 0x0a));
    expect(bytes.readUInt32LE(8)).toBe(0x1a2b3c4d);
    expect(bytes.includes(Buffer.from('ipip-lab'))).toBe(true);
  });

  it('reads back with its own reader', () => {
    expect(pcapng.decode(bytes)).toEqual({
      ok: true,
      value: {
        interfaces: twoInterfaces.interfaces,
        packets: twoInterfaces.packets.map((packet) => ({ ...packet, originalLength: packet.data.length })),
      },
    });
  });

  it('reads back with tshark: interface names, two nested IPv4 layers on eth0, nanosecond timestamps', async () => {
    const file = writeTemp('two-interfaces.pcapng', bytes);
    const rows = await tsharkRows([
      '-r',
      file,
      '-T',
      'fields',
      '-E',
      'occurrence=a',
      '-e',
      'frame.interface_name',
      '-e',
      'frame.interface_description',
      '-e',
      'ip.src',
      '-e',
      'ip.dst',
      '-e',
      'frame.time_epoch',
    ]);
    expect(rows).toEqual([
      [
        'eth0',
        'underlay, outer IPIP',
        '10.0.0.10,192.168.77.130',
        '10.0.0.11,192.168.87.198',
        epochText(twoInterfaces.packets[0].timestampNs),
      ],
      ['tunl0', '', '192.168.77.130', '192.168.87.198', epochText(twoInterfaces.packets[1].timestampNs)],
    ]);
  });

  it('gives tshark no packet with a bad IP checksum, and tshark does notice one when there is', async () => {
    const badChecksum = ['-o', 'ip.check_checksum:TRUE', '-Y', 'ip.checksum.status=="Bad"'];
    expect(await tsharkFields(writeTemp('good.pcapng', bytes), ['frame.number'], badChecksum)).toEqual([]);
    const corrupted = Buffer.from(ipipPacket);
    corrupted[10] ^= 0x01;
    const control = pcapng.encode({ ...twoInterfaces, packets: [{ ...twoInterfaces.packets[0], data: corrupted }] });
    expect(await tsharkFields(writeTemp('bad.pcapng', control), ['frame.number'], badChecksum)).toEqual([['1']]);
  });

  it('streams: a section header, interface descriptions and packets concatenated are the same file', () => {
    const streamed = Buffer.concat([
      pcapng.sectionHeader(),
      ...twoInterfaces.interfaces.map(pcapng.interfaceDescription),
      ...twoInterfaces.packets.map(pcapng.enhancedPacket),
    ]);
    expect(streamed).toEqual(bytes);
  });

  it("records a cut packet's original length", () => {
    const cut = {
      interfaceId: 0,
      timestampNs: 5n,
      data: ipipPacket.subarray(0, 40),
      originalLength: ipipPacket.length,
    };
    const decoded = pcapng.decode(pcapng.encode({ interfaces: [{ linkType: LINKTYPE.IPV4 }], packets: [cut] }));
    expect(decoded.ok && decoded.value.packets).toEqual([cut]);
    expect(decoded.ok && decoded.value.interfaces).toEqual([{ linkType: LINKTYPE.IPV4 }]);
  });
});

describe('record writers into a reused buffer', () => {
  const dirty = () => Buffer.alloc(4096, 0xee);
  const packets = [
    { interfaceId: 1, timestampNs: 1_795_453_230_538_943_462n, data: ipipPacket, direction: 'outbound' as const },
    // 1 byte: three bytes of padding, which must be zeros however dirty the buffer was.
    { interfaceId: 0, timestampNs: 1_795_453_230_538_943_999n, data: Buffer.of(0x45), direction: 'inbound' as const },
    { interfaceId: 0, timestampNs: 2n ** 40n + 7n, data: innerPacket },
  ];

  it('writes every byte of an EPB, padding included, the same as a block of its own', () => {
    const target = dirty();
    const view = new DataView(target.buffer, target.byteOffset, target.byteLength);
    let at = 3;
    for (const packet of packets) {
      const length = pcapng.writeEnhancedPacket(target, at, packet, view);
      expect(length).toBe(pcapng.enhancedPacketLength(packet));
      expect(target.subarray(at, at + length)).toEqual(pcapng.enhancedPacket(packet));
      at += length;
    }
    expect(target[2]).toBe(0xee);
    expect(target[at]).toBe(0xee);
    // Without a view of the caller's, the writer makes its own.
    const alone = dirty();
    expect(alone.subarray(0, pcapng.writeEnhancedPacket(alone, 0, packets[1]))).toEqual(
      pcapng.enhancedPacket(packets[1]),
    );
  });

  it('records the direction as epb_flags, which its reader and tshark read back', async () => {
    const capture: Capture = { interfaces: twoInterfaces.interfaces, packets };
    const decoded = pcapng.decode(pcapng.encode(capture));
    expect(decoded.ok && decoded.value.packets.map((packet) => packet.direction)).toEqual([
      'outbound',
      'inbound',
      undefined,
    ]);
    expect(decoded.ok && decoded.value.packets.map((packet) => packet.timestampNs)).toEqual(
      packets.map((packet) => packet.timestampNs),
    );
    const rows = await tsharkFields(writeTemp('directions.pcapng', pcapng.encode(capture)), [
      'frame.packet_flags_direction',
      'frame.time_epoch',
    ]);
    expect(rows).toEqual([
      ['0x00000002', epochText(packets[0].timestampNs)],
      ['0x00000001', epochText(packets[1].timestampNs)],
      ['', epochText(packets[2].timestampNs)],
    ]);
  });

  it('writes every byte of a pcap record, the same as a record of its own', () => {
    const target = dirty();
    const length = pcap.writeRecord(target, 5, packets[0]);
    expect(length).toBe(pcap.recordLength(packets[0]));
    expect(target.subarray(5, 5 + length)).toEqual(pcap.record(packets[0]));
    expect(target[5 + length]).toBe(0xee);
  });
});

describe('classic pcap writer', () => {
  it('writes a nanosecond pcap tshark reads with the same packets and times', async () => {
    const packets = twoInterfaces.packets.map(({ timestampNs, data }) => ({ timestampNs, data }));
    const bytes = pcap.encode({ linkType: LINKTYPE.RAW, packets });
    expect(bytes.readUInt32LE(0)).toBe(0xa1b23c4d);
    expect(bytes.length).toBe(24 + 16 * 2 + ipipPacket.length + innerPacket.length);
    const rows = await tsharkRows([
      '-r',
      writeTemp('classic.pcap', bytes),
      '-T',
      'fields',
      '-E',
      'occurrence=a',
      '-e',
      'ip.src',
      '-e',
      'frame.time_epoch',
    ]);
    expect(rows).toEqual([
      ['10.0.0.10,192.168.77.130', epochText(packets[0].timestampNs)],
      ['192.168.77.130', epochText(packets[1].timestampNs)],
    ]);
  });
});

describe('pcapng reader', () => {
  it('reads the kernel vectors like tshark: interface, link type, nanosecond times, lengths', async () => {
    await Promise.all(
      vectorFiles().map(async (file) => {
        const decoded = pcapng.decode(readVector(file));
        if (!decoded.ok) throw new Error(decoded.reason);
        expect(decoded.value.interfaces).toEqual([{ linkType: LINKTYPE.ETHERNET, name: 'br-df72f51da545' }]);
        const rows = await tsharkFields(fileURLToPath(new URL(file, VECTORS_DIR)), [
          'frame.interface_name',
          'frame.time_epoch',
          'frame.len',
        ]);
        expect(
          decoded.value.packets.map((packet) => [
            'br-df72f51da545',
            epochText(packet.timestampNs),
            String(packet.data.length),
          ]),
        ).toEqual(rows);
      }),
    );
  });

  /** A big-endian section written field by field: SHB, an IDB with the given options, one EPB. */
  function bigEndianSection(idbOptions: Buffer, timestamp: bigint, data: Buffer): Buffer {
    const block = (type: number, body: Buffer) => {
      const padded = Buffer.concat([body, Buffer.alloc((4 - (body.length % 4)) % 4)]);
      const out = Buffer.alloc(12 + padded.length);
      out.writeUInt32BE(type, 0);
      out.writeUInt32BE(out.length, 4);
      padded.copy(out, 8);
      out.writeUInt32BE(out.length, out.length - 4);
      return out;
    };
    const shb = Buffer.alloc(16);
    shb.writeUInt32BE(0x1a2b3c4d, 0);
    shb.writeUInt16BE(1, 4);
    shb.writeBigInt64BE(-1n, 8);
    const idb = Buffer.alloc(8);
    idb.writeUInt16BE(LINKTYPE.RAW, 0);
    const epb = Buffer.alloc(20);
    epb.writeUInt32BE(Number(timestamp >> 32n), 4);
    epb.writeUInt32BE(Number(timestamp & 0xffffffffn), 8);
    epb.writeUInt32BE(data.length, 12);
    epb.writeUInt32BE(data.length, 16);
    return Buffer.concat([
      block(0x0a0d0d0a, shb),
      block(1, Buffer.concat([idb, idbOptions])),
      block(6, Buffer.concat([epb, data])),
    ]);
  }

  const nameOption = (name: string) => {
    const option = Buffer.alloc(4 + name.length + ((4 - (name.length % 4)) % 4));
    option.writeUInt16BE(2, 0);
    option.writeUInt16BE(name.length, 2);
    option.write(name, 4);
    return option;
  };

  it('reads big-endian sections and numbers interfaces on across sections', () => {
    const defaultResolution = bigEndianSection(nameOption('cali3695aa26d3f'), 1_700_000_000_123_456n, innerPacket);
    const binaryResolution = bigEndianSection(Buffer.from('0009000183000000', 'hex'), 12n, innerPacket);
    const decoded = pcapng.decode(Buffer.concat([pcapng.encode(twoInterfaces), defaultResolution, binaryResolution]));
    if (!decoded.ok) throw new Error(decoded.reason);
    expect(decoded.value.interfaces.slice(2)).toEqual([
      { linkType: LINKTYPE.RAW, name: 'cali3695aa26d3f' },
      { linkType: LINKTYPE.RAW },
    ]);
    expect(decoded.value.packets.slice(2)).toEqual([
      // No if_tsresol means microseconds; 0x83 means 2^-3 s.
      {
        interfaceId: 2,
        timestampNs: 1_700_000_000_123_456_000n,
        data: innerPacket,
        originalLength: innerPacket.length,
      },
      { interfaceId: 3, timestampNs: 1_500_000_000n, data: innerPacket, originalLength: innerPacket.length },
    ]);
  });

  it('names malformed files instead of throwing', () => {
    const good = pcapng.encode(twoInterfaces);
    const edited = (edit: (bytes: Buffer) => void) => {
      const bytes = Buffer.from(good);
      edit(bytes);
      const decoded = pcapng.decode(bytes);
      return decoded.ok ? 'ok' : decoded.reason;
    };
    const shbLength = good.readUInt32LE(4);
    const firstIdb = shbLength;
    const firstEpb =
      shbLength + good.readUInt32LE(firstIdb + 4) + good.readUInt32LE(firstIdb + good.readUInt32LE(firstIdb + 4) + 4);
    expect(pcapng.decode(Buffer.alloc(0))).toEqual({ ok: false, reason: 'truncated' });
    expect(pcapng.decode(good.subarray(0, good.length - 4))).toEqual({ ok: false, reason: 'truncated' });
    expect(pcapng.decode(good.subarray(shbLength))).toEqual({ ok: false, reason: 'bad-pcapng' });
    expect(edited((b) => b.writeUInt32LE(0xdeadbeef, 8))).toBe('bad-pcapng');
    expect(edited((b) => b.writeUInt16LE(2, 12))).toBe('bad-pcapng');
    expect(edited((b) => b.writeUInt32LE(shbLength + 2, 4))).toBe('bad-pcapng');
    expect(edited((b) => b.writeUInt32LE(shbLength - 4, 4))).toBe('bad-pcapng');
    expect(edited((b) => b.writeUInt16LE(200, firstIdb + 16 + 2))).toBe('bad-pcapng');
    expect(edited((b) => b.writeUInt32LE(7, firstEpb + 8))).toBe('bad-pcapng');
    expect(edited((b) => b.writeUInt32LE(5000, firstEpb + 20))).toBe('bad-pcapng');
    expect(edited((b) => b.writeUInt32LE(5, firstEpb))).toBe('ok');
  });
});
