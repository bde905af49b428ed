/**
 * The underlay over this project's addon (native/ipip_socket.c): packets move in batches, received with one recvmmsg
 * and sent with one sendmmsg, through slots allocated once. The addon only does the system calls; the batching
 * rules live here, where tests can drive them with a fake binding.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';
import { ipv4ToString } from '../../wire/index.js';
import { rawSocketOpenError, UnderlayUnavailableError } from './errors.js';
import type { Underlay, UnderlayHandlers } from './index.js';

/**
 * What `new IpipSocket(options)` takes: the memory it shares with us and the two callbacks; `tun` or `packet` picks
 * another packet source than the raw IPIP socket, behind the same slots and callbacks.
 */
export interface IpipSocketOptions {
  /** Packets per recvmmsg and per sendmmsg, at most the binding's maxBatch. */
  batch: number;
  /** `batch` slots of `slotSize` bytes each: slot i holds received packet i. */
  receiveBuffer: Buffer;
  receiveLengths: Uint32Array;
  /** `batch` slots of `slotSize` bytes each: slot i holds the packet to send to sendDestinations[i]. */
  sendBuffer: Buffer;
  sendLengths: Uint32Array;
  /** IPv4 addresses as numbers, a.b.c.d = a << 24 | …, as the dataplane names next hops. */
  sendDestinations: Uint32Array;
  /** Written by flush: 0 for a packet sent, else the errno the kernel refused it with. */
  sendErrnos: Int32Array;
  /** `count` packets arrived, in slots 0…count-1; they are overwritten once this returns. */
  onReceive(count: number): void;
  onError(errno: number, syscall: string): void;
  /**
   * Drives the TUN device of this name instead (created if absent, gone once the socket closes): the slots hold
   * bare IP packets, IPv6 included, one read or write each, and sendDestinations are ignored.
   */
  tun?: string;
  /** Captures this interface's IPv4 packets, both directions, instead: receive only, flush throws. */
  packet?: string;
  /** With `packet`: 1 in slot i when packet i left through the interface (PACKET_OUTGOING), else 0. */
  receiveDirections?: Uint8Array;
}

/** The open socket; it keeps itself alive until close(), whoever holds it. */
export interface IpipSocket {
  /**
   * Sends slots 0…count-1 (one sendmmsg, more only after a refusal; a write each on a TUN device) and returns how
   * many failed. Throws on a capture (`packet`), which only receives.
   */
  flush(count: number): number;
  close(): void;
}

/** What BatchedUnderlay needs of the addon (and what the tests fake). */
export interface IpipSocketBinding {
  IpipSocket: new (options: IpipSocketOptions) => IpipSocket;
  maxBatch: number;
  slotSize: number;
}

/** The addon's exports. */
export interface IpipSocketAddon extends IpipSocketBinding {
  /**
   * A descriptor of a socket bound to 0.0.0.0:port inside that network namespace (e.g. /run/netns/cni-…), not yet
   * listening: for `net.createServer().listen({ fd })` or `dgram.createSocket('udp4').bind({ fd })`, and the
   * caller's to close until one of them takes it. Throws an Error with errno and syscall (setns, bind, …).
   */
  bindInNetns(netnsPath: string, protocol: 'tcp' | 'udp', port: number): number;
}

/** 64 packets per system call is where the measured gain levels off (native/README.md). */
export const DEFAULT_BATCH = 64;

const ADDON = path.join('native', 'build', 'Release', 'ipip_socket.node');

/** The package root above this module: the folder with package.json, from src/ (tests) and from dist/src/ alike. */
function packageRoot(): string {
  let directory = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(directory, 'package.json'))) {
    const parent = path.dirname(directory);
    if (parent === directory)
      throw new UnderlayUnavailableError('cannot find the ipip-lab package root above its code');
    directory = parent;
  }
  return directory;
}

/** Loads the addon that `npm install` builds; throws UnderlayUnavailableError when it was not built or will not load. */
export function loadIpipSocketBinding(): IpipSocketAddon {
  const root = packageRoot();
  const file = path.join(root, ADDON);
  if (!existsSync(file)) {
    throw new UnderlayUnavailableError(
      `the native addon is not built (no ${file}); \`npm run install\` in ${root} builds it or says why it cannot`,
    );
  }
  try {
    return createRequire(import.meta.url)(file) as IpipSocketAddon;
  } catch (error) {
    throw new UnderlayUnavailableError(
      `the native addon ${file} does not load: ${(error as Error).message.split('\n')[0]}`,
    );
  }
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

export class BatchedUnderlay implements Underlay {
  sendErrors = 0;
  private readonly batch: number;
  private readonly slotSize: number;
  private readonly receiveBuffer: Buffer;
  private readonly receiveLengths: Uint32Array;
  private readonly sendBuffer: Buffer;
  private readonly sendLengths: Uint32Array;
  private readonly sendDestinations: Uint32Array;
  private readonly sendErrnos: Int32Array;
  private readonly socket: IpipSocket;
  private queued = 0;
  private flushScheduled = false;
  private closed = false;

  constructor(
    binding: IpipSocketBinding,
    private readonly handlers: UnderlayHandlers,
    batch: number = DEFAULT_BATCH,
    /** Another packet source than the raw IPIP socket (a TUN device), behind the same slots. */
    source: Pick<IpipSocketOptions, 'tun'> = {},
  ) {
    this.batch = Math.min(batch, binding.maxBatch);
    this.slotSize = binding.slotSize;
    // allocUnsafeSlow: memory of their own (not the shared pool), which the addon may hold on to; pages the kernel
    // never writes are never touched, so 4 MiB of slots cost what the packets in them cost.
    this.receiveBuffer = Buffer.allocUnsafeSlow(this.batch * this.slotSize);
    this.receiveLengths = new Uint32Array(this.batch);
    this.sendBuffer = Buffer.allocUnsafeSlow(this.batch * this.slotSize);
    this.sendLengths = new Uint32Array(this.batch);
    this.sendDestinations = new Uint32Array(this.batch);
    this.sendErrnos = new Int32Array(this.batch);
    this.socket = new binding.IpipSocket({
      batch: this.batch,
      receiveBuffer: this.receiveBuffer,
      receiveLengths: this.receiveLengths,
      sendBuffer: this.sendBuffer,
      sendLengths: this.sendLengths,
      sendDestinations: this.sendDestinations,
      sendErrnos: this.sendErrnos,
      onReceive: (count) => this.deliver(count),
      onError: (errno, syscall) => handlers.onError(new Error(`${syscall} failed: ${errnoName(errno)}`)),
      ...source,
    });
  }

  /**
   * Copies the packet into the next send slot: the dataplane may reuse its buffer as soon as this returns. The
   * slots go out together at the end of the current microtask turn (after the whole receive batch, or timer, that
   * produced them was handled), or at once when every slot is taken.
   */
  send(packet: Buffer, destination: number): void {
    if (this.closed) return;
    if (packet.length > this.slotSize) {
      this.sendErrors++;
      this.handlers.onError(
        new Error(`send to ${ipv4ToString(destination)} failed: EMSGSIZE (${packet.length} bytes)`),
      );
      return;
    }
    const slot = this.queued++;
    packet.copy(this.sendBuffer, slot * this.slotSize);
    this.sendLengths[slot] = packet.length;
    this.sendDestinations[slot] = destination;
    if (this.queued === this.batch) {
      this.flush();
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushAtEndOfTurn);
    }
  }

  close(): void {
    if (this.closed) return;
    // What the dataplane sent before closing was accepted: it leaves before the socket closes.
    this.flush();
    this.closed = true;
    this.socket.close();
  }

  private readonly flushAtEndOfTurn = (): void => {
    this.flushScheduled = false;
    if (!this.closed) this.flush();
  };

  private flush(): void {
    const count = this.queued;
    if (count === 0) return;
    this.queued = 0;
    if (this.socket.flush(count) > 0) this.countFailures(count);
  }

  /** One error per destination and errno in a row, not per packet: a flood of refusals makes one report. */
  private countFailures(count: number): void {
    let previous: string | undefined;
    for (let slot = 0; slot < count; slot++) {
      const errno = this.sendErrnos[slot];
      if (errno === 0) continue;
      this.sendErrors++;
      const message = `send to ${ipv4ToString(this.sendDestinations[slot])} failed: ${errnoName(errno)}`;
      if (message !== previous) this.handlers.onError(new Error(message));
      previous = message;
    }
  }

  /** The packets of one recvmmsg, each copied out of its slot: the handler may keep it, and the slot is reused. */
  private deliver(count: number): void {
    for (let slot = 0; slot < count && !this.closed; slot++) {
      const start = slot * this.slotSize;
      const packet = Buffer.allocUnsafe(this.receiveLengths[slot]);
      this.receiveBuffer.copy(packet, 0, start, start + packet.length);
      this.handlers.onPacket(packet);
    }
  }
}

/** Opens the raw IPIP socket through the addon; throws UnderlayUnavailableError when it is not built. */
export function openBatchedUnderlay(handlers: UnderlayHandlers): Underlay {
  const binding = loadIpipSocketBinding();
  try {
    return new BatchedUnderlay(binding, handlers);
  } catch (error) {
    throw rawSocketOpenError(error);
  }
}

/**
 * Opens the TUN device `name` (IFF_TUN | IFF_NO_PI; it is gone once closed) through the addon, with the same batching:
 * `send(packet, 0)` writes one packet into the kernel, `onPacket` gets what the kernel routed into the device.
 */
export function openBatchedTun(binding: IpipSocketBinding, name: string, handlers: UnderlayHandlers): Underlay {
  return new BatchedUnderlay(binding, handlers, DEFAULT_BATCH, { tun: name });
}
