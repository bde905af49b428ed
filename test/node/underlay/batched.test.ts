/**
 * The batching rules of the native underlay, against a fake addon that records what each flush would have sent and
 * delivers what a test puts in its receive slots.
 */
import { constants } from 'node:os';
import { describe, expect, test } from 'vitest';
import { BatchedUnderlay, type IpipSocketBinding, type IpipSocketOptions } from '../../../src/node/underlay/batched.js';

const SLOT_SIZE = 128;

interface Sent {
  destination: number;
  packet: Buffer;
}

class FakeSocket {
  options!: IpipSocketOptions;
  flushes: Sent[][] = [];
  closed = 0;
  /** Per flush: the errno the kernel refuses each slot with (0: sent). */
  refusals: number[] = [];

  flush(count: number): number {
    const { sendBuffer, sendLengths, sendDestinations, sendErrnos } = this.options;
    if (this.closed) throw new Error('flush after close');
    this.flushes.push(
      Array.from({ length: count }, (_, slot) => ({
        destination: sendDestinations[slot],
        packet: Buffer.from(sendBuffer.subarray(slot * SLOT_SIZE, slot * SLOT_SIZE + sendLengths[slot])),
      })),
    );
    let failed = 0;
    for (let slot = 0; slot < count; slot++) {
      sendErrnos[slot] = this.refusals[slot] ?? 0;
      if (sendErrnos[slot] !== 0) failed++;
    }
    return failed;
  }

  close(): void {
    this.closed++;
  }

  /** What recvmmsg does: the packets in slots 0…n-1 and their lengths, then one callback. */
  receive(packets: Buffer[]): void {
    packets.forEach((packet, slot) => {
      packet.copy(this.options.receiveBuffer, slot * SLOT_SIZE);
      this.options.receiveLengths[slot] = packet.length;
    });
    this.options.onReceive(packets.length);
  }
}

/** A BatchedUnderlay over a fake socket; `onPacket` (default: keep it) may act on the underlay, as the dataplane does. */
function setup(batch = 4, onPacket?: (packet: Buffer, underlay: BatchedUnderlay) => void) {
  const socket = new FakeSocket();
  const binding: IpipSocketBinding = {
    maxBatch: 64,
    slotSize: SLOT_SIZE,
    IpipSocket: class {
      constructor(options: IpipSocketOptions) {
        socket.options = options;
        return socket;
      }
    } as unknown as IpipSocketBinding['IpipSocket'],
  };
  const received: Buffer[] = [];
  const errors: string[] = [];
  const underlay: BatchedUnderlay = new BatchedUnderlay(
    binding,
    {
      onPacket: (packet) => (onPacket ? onPacket(packet, underlay) : received.push(packet)),
      onError: (error) => errors.push(error.message),
    },
    batch,
  );
  return { socket, underlay, received, errors };
}

/** The end of the current microtask turn: a flush queued during it has run. */
const endOfTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const A = 0x0a2a000b; // 10.42.0.11
const B = 0x0a2a000c; // 10.42.0.12

describe('sending', () => {
  test('copies the packet: the caller may reuse its buffer as soon as send returns', async () => {
    const { socket, underlay } = setup();
    const packet = Buffer.from('45000014', 'hex');
    underlay.send(packet, A);
    packet.fill(0);
    await endOfTurn();
    expect(socket.flushes).toEqual([[{ destination: A, packet: Buffer.from('45000014', 'hex') }]]);
  });

  test('everything sent in one turn leaves in one flush, after the turn', async () => {
    const { socket, underlay } = setup();
    underlay.send(Buffer.from([1]), A);
    underlay.send(Buffer.from([2, 2]), B);
    underlay.send(Buffer.from([3]), A);
    expect(socket.flushes).toEqual([]);
    await Promise.resolve();
    expect(socket.flushes.map((flush) => flush.map((sent) => [...sent.packet]))).toEqual([[[1], [2, 2], [3]]]);
    expect(socket.flushes[0].map((sent) => sent.destination)).toEqual([A, B, A]);

    underlay.send(Buffer.from([4]), B);
    await endOfTurn();
    expect(socket.flushes).toHaveLength(2);
    expect(socket.flushes[1]).toEqual([{ destination: B, packet: Buffer.from([4]) }]);
  });

  test('a full batch leaves at once; the rest of the turn follows in one more flush', async () => {
    const { socket, underlay } = setup(4);
    for (let i = 0; i < 6; i++) underlay.send(Buffer.from([i]), A);
    expect(socket.flushes.map((flush) => flush.map((sent) => sent.packet[0]))).toEqual([[0, 1, 2, 3]]);
    await endOfTurn();
    expect(socket.flushes.map((flush) => flush.map((sent) => sent.packet[0]))).toEqual([
      [0, 1, 2, 3],
      [4, 5],
    ]);
  });

  test('a turn that filled exactly one batch makes no empty flush', async () => {
    const { socket, underlay } = setup(4);
    for (let i = 0; i < 4; i++) underlay.send(Buffer.from([i]), A);
    await endOfTurn();
    expect(socket.flushes).toHaveLength(1);
  });

  test('the packets a receive batch causes go out together, in one flush after the batch', async () => {
    // A reflector: every packet received is sent back at once, as the dataplane forwards.
    const { socket } = setup(8, (packet, underlay) => underlay.send(packet, B));
    socket.receive([Buffer.from([1]), Buffer.from([2]), Buffer.from([3])]);
    expect(socket.flushes).toEqual([]);
    await Promise.resolve();
    expect(socket.flushes.map((flush) => flush.map((sent) => sent.packet[0]))).toEqual([[1, 2, 3]]);
  });

  test('a packet larger than a slot is refused and counted, the others still go', async () => {
    const { socket, underlay, errors } = setup();
    underlay.send(Buffer.alloc(SLOT_SIZE + 1), A);
    underlay.send(Buffer.from([7]), A);
    await endOfTurn();
    expect(underlay.sendErrors).toBe(1);
    expect(errors).toEqual([`send to 10.42.0.11 failed: EMSGSIZE (${SLOT_SIZE + 1} bytes)`]);
    expect(socket.flushes).toEqual([[{ destination: A, packet: Buffer.from([7]) }]]);
  });
});

describe('send failures', () => {
  test('each packet the kernel refused is counted; one report per destination and errno in a row', async () => {
    const { socket, underlay, errors } = setup();
    socket.refusals = [0, constants.errno.EPERM, constants.errno.EPERM, constants.errno.EHOSTUNREACH];
    underlay.send(Buffer.from([0]), A);
    underlay.send(Buffer.from([1]), B);
    underlay.send(Buffer.from([2]), B);
    underlay.send(Buffer.from([3]), B);
    await endOfTurn();
    expect(underlay.sendErrors).toBe(3);
    expect(errors).toEqual(['send to 10.42.0.12 failed: EPERM', 'send to 10.42.0.12 failed: EHOSTUNREACH']);
  });

  test('a full send buffer drops what is left of the batch, every packet counted', async () => {
    const { socket, underlay, errors } = setup();
    socket.refusals = [0, constants.errno.EAGAIN, constants.errno.EAGAIN];
    for (let i = 0; i < 3; i++) underlay.send(Buffer.from([i]), A);
    await endOfTurn();
    expect(underlay.sendErrors).toBe(2);
    expect(errors).toEqual(['send to 10.42.0.11 failed: EAGAIN']);
  });
});

describe('receiving', () => {
  test('one callback per batch delivers each packet as a copy the handler may keep', () => {
    const { socket, received } = setup();
    socket.receive([Buffer.from('aa', 'hex'), Buffer.from('bbbb', 'hex'), Buffer.from('cc', 'hex')]);
    socket.receive([Buffer.from('dd', 'hex')]); // slot 0 reused
    expect(received.map((packet) => packet.toString('hex'))).toEqual(['aa', 'bbbb', 'cc', 'dd']);
  });

  test('a receive error reaches the handler with the system call and errno name', () => {
    const { socket, errors } = setup();
    socket.options.onError(constants.errno.ENOMEM, 'recvmmsg');
    expect(errors).toEqual(['recvmmsg failed: ENOMEM']);
  });
});

describe('closing', () => {
  test('sends already made leave before the socket closes; later ones are ignored', async () => {
    const { socket, underlay } = setup();
    underlay.send(Buffer.from([1]), A);
    underlay.close();
    underlay.send(Buffer.from([2]), A);
    underlay.close();
    await endOfTurn();
    expect(socket.flushes).toEqual([[{ destination: A, packet: Buffer.from([1]) }]]);
    expect(socket.closed).toBe(1);
  });

  test('a handler that closes the underlay mid-batch gets no more packets of it', () => {
    let delivered = 0;
    const { socket } = setup(4, (_, underlay) => {
      delivered++;
      underlay.close();
    });
    socket.receive([Buffer.from([1]), Buffer.from([2])]);
    expect(delivered).toBe(1);
    expect(socket.closed).toBe(1);
  });
});
