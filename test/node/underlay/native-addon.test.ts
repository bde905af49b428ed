/**
 * The built addon on a real raw socket, over loopback only (127.0.0.1: nothing leaves the machine). Needs
 * CAP_NET_RAW, so root; and the addon, which `npm install` builds: a missing addon fails here rather than skipping.
 */
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { openBatchedUnderlay } from '../../../src/node/underlay/batched.js';
import { encapsulate, internetChecksum, IP_PROTOCOL, ipv4 } from '../../../src/wire/index.js';
import { REPO_ROOT } from '../../support/cli.js';

const ADDON = path.join(REPO_ROOT, 'native', 'build', 'Release', 'ipip_socket.node');
const LOOPBACK = 0x7f000001;
const canOpenRawSockets = process.getuid?.() === 0;

/** An IPIP packet on loopback whose inner payload (protocol UDP, not parsed) carries `marker`, so other traffic on lo cannot confuse us. */
function ipipPacket(marker: number, payloadBytes = 8): Buffer {
  const payload = Buffer.alloc(payloadBytes);
  payload.writeUInt32BE(marker);
  const inner = ipv4.encode({
    dscp: 0,
    ecn: 0,
    identification: marker & 0xffff,
    dontFragment: true,
    ttl: 64,
    protocol: IP_PROTOCOL.UDP,
    src: LOOPBACK,
    dst: LOOPBACK,
    payload,
  });
  return encapsulate(inner, { src: LOOPBACK, dst: LOOPBACK, id: marker & 0xffff || 1 });
}

const markerOf = (packet: Buffer): number => packet.readUInt32BE(40);

async function until(done: () => boolean, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe.runIf(canOpenRawSockets)('on a real raw socket (loopback)', () => {
  const base = Math.floor(Math.random() * 0x7fff0000);

  test('100 packets sent in one turn (a full batch, then the rest) all arrive, byte for byte as sent', async () => {
    const received = new Map<number, Buffer>();
    const errors: Error[] = [];
    const underlay = openBatchedUnderlay({
      onPacket: (packet) => received.set(markerOf(packet), packet),
      onError: (error) => errors.push(error),
    });
    try {
      const sent = Array.from({ length: 100 }, (_, i) => ipipPacket(base + i));
      for (const packet of sent) underlay.send(packet, LOOPBACK);
      await until(() => received.size >= sent.length);
      expect(errors).toEqual([]);
      expect(underlay.sendErrors).toBe(0);
      for (const packet of sent) expect(received.get(markerOf(packet))).toEqual(packet);
    } finally {
      underlay.close();
    }
  });

  test('a 65535-byte datagram fits a slot whole', async () => {
    let largest: Buffer | undefined;
    const underlay = openBatchedUnderlay({
      onPacket: (packet) => {
        if (packet.length > 60_000 && markerOf(packet) === base + 1000) largest = packet;
      },
      onError: () => undefined,
    });
    try {
      const packet = ipipPacket(base + 1000, 65_535 - 40);
      expect(packet.length).toBe(65_535);
      underlay.send(packet, LOOPBACK);
      await until(() => largest !== undefined);
      expect(largest).toEqual(packet);
    } finally {
      underlay.close();
    }
  });

  test('a packet the kernel refuses mid-batch is counted alone; the packets after it still go', async () => {
    const received = new Set<number>();
    const errors: string[] = [];
    const underlay = openBatchedUnderlay({
      onPacket: (packet) => received.add(markerOf(packet)),
      onError: (error) => errors.push(error.message),
    });
    try {
      // A header length (60 bytes) longer than the packet: raw_send_hdrinc refuses it with EINVAL, locally.
      const refused = ipipPacket(base + 2000).subarray(0, 20);
      refused[0] = 0x4f;
      refused.writeUInt16BE(0, 10);
      refused.writeUInt16BE(internetChecksum(refused, 0, 20), 10);
      underlay.send(ipipPacket(base + 2001), LOOPBACK);
      underlay.send(refused, LOOPBACK);
      underlay.send(ipipPacket(base + 2002), LOOPBACK);
      await until(() => received.has(base + 2002));
      expect([...received].filter((marker) => marker >= base + 2000).sort()).toEqual([base + 2001, base + 2002]);
      expect(underlay.sendErrors).toBe(1);
      expect(errors).toEqual(['send to 127.0.0.1 failed: EINVAL']);
    } finally {
      underlay.close();
    }
  });
});

/** Runs a script against the addon in its own process: how that process ends is what is tested. */
function runScript(
  script: string,
  killAfterMs: number,
): Promise<{ code: number | null; signal: string | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', '-e', script, ADDON], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGTERM'), killAfterMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
}

/** The scripts' preamble: `open(onReceive)` opens a socket with every option the addon needs. */
const OPEN = `
  const binding = require(process.argv[1]);
  const open = (onReceive) => {
    const options = {
      batch: 4,
      receiveBuffer: Buffer.allocUnsafeSlow(binding.slotSize * 4), receiveLengths: new Uint32Array(4),
      sendBuffer: Buffer.allocUnsafeSlow(binding.slotSize * 4), sendLengths: new Uint32Array(4),
      sendDestinations: new Uint32Array(4), sendErrnos: new Int32Array(4),
      onReceive, onError: (errno, call) => console.log(call, errno),
    };
    const socket = new binding.IpipSocket(options);
    return { socket, options };
  };
`;

/** An IPIP packet from and to 127.0.0.1, as hex: the kernel fills in the outer checksum. */
const LOOPBACK_IPIP = '4500002800014000400400007f0000017f000001' + '4500001400014000401100007f0000017f000001';

describe.runIf(canOpenRawSockets)('the socket keeps its process alive exactly while it is open', () => {
  test('open and unreferenced, through garbage collections, with no timer left: the process stays and still receives', async () => {
    const script = `${OPEN}
      open(() => console.log('received after collection'));
      for (let i = 0; i < 10; i++) global.gc();
      setTimeout(() => {
        for (let i = 0; i < 10; i++) global.gc();
        const { socket, options } = open(() => {});
        options.sendBuffer.write('${LOOPBACK_IPIP}', 'hex');
        options.sendLengths[0] = 40;
        options.sendDestinations[0] = 0x7f000001;
        socket.flush(1);
      }, 100);`;
    const result = await runScript(script, 1_500);
    expect(result.output).toBe('received after collection\n');
    expect(result.signal).toBe('SIGTERM');
  });

  test('closed: the process has nothing left to do and exits 0 by itself', async () => {
    const started = Date.now();
    const result = await runScript(
      `${OPEN} const { socket } = open(() => {}); setTimeout(() => socket.close(), 50);`,
      5_000,
    );
    expect(result).toEqual({ code: 0, signal: null, output: '' });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  test('bad options are refused with a message that names the option', async () => {
    const result = await runScript(
      `const binding = require(process.argv[1]); try { new binding.IpipSocket({ batch: 4 }); } catch (e) { console.log(e.message); }`,
      5_000,
    );
    expect(result.output).toBe('options.receiveBuffer must be a Buffer of at least 262140 bytes\n');
    expect(result.code).toBe(0);
  });
});

test('the addon imports only Node-API, libuv and libc: the ABI that Node 20, 22 and 24 share', async () => {
  const { stdout: symbols } = await promisify(execFile)('nm', ['-D', '--undefined-only', ADDON]);
  const imported = symbols
    .split('\n')
    .map((line) => line.trim().split(/\s+/).at(-1) ?? '')
    .filter((name) => name !== '' && !name.includes('@') && !/^(_ITM_|__gmon_start__|__cxa_finalize)/.test(name));
  expect(imported.length).toBeGreaterThan(0);
  expect(imported.filter((name) => !/^(napi_|uv_)/.test(name))).toEqual([]);
});
