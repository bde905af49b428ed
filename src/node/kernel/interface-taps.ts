/**
 * Taps on the interfaces the kernel owns in the kernel-backed node (the pods' cali veths): what crosses them never
 * passes through the agent, so a capture of one opens a packet socket on it (the addon's `packet` mode, AF_PACKET),
 * for as long as some capture selects it. eth0's IPIP and tunl0 are the driver's own taps, as in the userspace node.
 *
 * Directions are the host's, as everywhere in the captures: `rx` what the pod sent, `tx` what the node sent it.
 */
import type { TapSource } from '../capture/session.js';
import type { TapEvent } from '../tap-hub.js';
import { epochClock } from '../tap-hub.js';
import type { IpipSocket, IpipSocketBinding } from '../underlay/batched.js';

type Listener = (event: TapEvent) => void;

const BATCH = 16;

/** One packet socket on one interface, shared by every capture of it. */
class InterfaceTap {
  readonly listeners = new Set<Listener>();
  private readonly socket: IpipSocket;
  private readonly receiveBuffer: Buffer;
  private readonly receiveLengths = new Uint32Array(BATCH);
  private readonly receiveDirections = new Uint8Array(BATCH);

  constructor(
    binding: IpipSocketBinding,
    readonly name: string,
    private readonly now: () => bigint,
    onError: (error: Error) => void,
  ) {
    this.receiveBuffer = Buffer.allocUnsafeSlow(BATCH * binding.slotSize);
    const slotSize = binding.slotSize;
    this.socket = new binding.IpipSocket({
      batch: BATCH,
      receiveBuffer: this.receiveBuffer,
      receiveLengths: this.receiveLengths,
      // A capture sends nothing, but the addon takes send slots of the batch's size: pages never written cost nothing.
      sendBuffer: Buffer.allocUnsafeSlow(BATCH * slotSize),
      sendLengths: new Uint32Array(BATCH),
      sendDestinations: new Uint32Array(BATCH),
      sendErrnos: new Int32Array(BATCH),
      packet: name,
      receiveDirections: this.receiveDirections,
      onReceive: (count) => this.deliver(count, slotSize),
      onError: (errno, syscall) => onError(new Error(`${syscall} on ${name} failed: errno ${errno}`)),
    });
  }

  close(): void {
    this.socket.close();
  }

  private deliver(count: number, slotSize: number): void {
    for (let slot = 0; slot < count; slot++) {
      const start = slot * slotSize;
      const packet = Buffer.from(this.receiveBuffer.subarray(start, start + this.receiveLengths[slot]));
      const event: TapEvent = {
        interfaceName: this.name,
        direction: this.receiveDirections[slot] === 1 ? 'tx' : 'rx',
        packet,
        timestampNs: this.now(),
      };
      for (const listener of this.listeners) listener(event);
    }
  }
}

export class KernelInterfaceTaps implements TapSource {
  private readonly taps = new Map<string, InterfaceTap>();
  private readonly now = epochClock();

  constructor(
    /** The driver's taps: eth0 and tunl0. */
    private readonly driver: TapSource,
    private readonly driverInterfaces: ReadonlySet<string>,
    /** The kernel's interfaces a capture may select, read on each subscription (pods come and go). */
    private readonly kernelInterfaces: () => readonly string[],
    private readonly binding: IpipSocketBinding | undefined,
    private readonly log: (line: string) => void,
  ) {}

  onTap(listener: Listener, interfaces?: Iterable<string>): () => void {
    const wanted = interfaces === undefined ? undefined : new Set(interfaces);
    const fromDriver = this.driver.onTap(
      listener,
      wanted === undefined ? undefined : [...wanted].filter((name) => this.driverInterfaces.has(name)),
    );
    const kernel = this.kernelInterfaces().filter((name) => wanted === undefined || wanted.has(name));
    const opened: InterfaceTap[] = [];
    for (const name of kernel) {
      const tap = this.tapOf(name);
      if (tap === undefined) continue;
      tap.listeners.add(listener);
      opened.push(tap);
    }
    return () => {
      fromDriver();
      for (const tap of opened) {
        tap.listeners.delete(listener);
        if (tap.listeners.size > 0) continue;
        tap.close();
        this.taps.delete(tap.name);
      }
    };
  }

  private tapOf(name: string): InterfaceTap | undefined {
    const existing = this.taps.get(name);
    if (existing !== undefined) return existing;
    if (this.binding === undefined) {
      this.log(`capture of ${name}: the native addon is not loaded, so the kernel's interfaces cannot be tapped`);
      return undefined;
    }
    try {
      const tap = new InterfaceTap(this.binding, name, this.now, (error) => this.log(`capture: ${error.message}`));
      this.taps.set(name, tap);
      return tap;
    } catch (error) {
      this.log(`capture of ${name}: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
  }
}
