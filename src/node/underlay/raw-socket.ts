/**
 * The underlay over the `raw-socket` package: one packet per event, one send per packet. It is the fallback where
 * the native addon is not built; raw-socket itself is an optional dependency, since it does not build on Node 24.
 */
import { createRequire } from 'node:module';
import { ipv4ToString } from '../../wire/index.js';
import { rawSocketOpenError, UnderlayUnavailableError } from './errors.js';
import type { Underlay, UnderlayHandlers } from './index.js';

const IPPROTO_IPIP = 4;

/** The subset of the `raw-socket` package we use; it ships no types. */
interface RawSocketModule {
  createSocket(options: { protocol: number; bufferSize?: number }): RawSocket;
  SocketLevel: { IPPROTO_IP: number; SOL_SOCKET: number };
  SocketOption: { IP_HDRINCL: number; SO_RCVBUF: number };
}

interface RawSocket {
  on(event: 'message', listener: (buffer: Buffer, source: string) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  on(event: 'close', listener: () => void): void;
  setOption(level: number, option: number, value: number): void;
  send(
    buffer: Buffer,
    offset: number,
    length: number,
    address: string,
    callback: (error: Error | null, bytes: number) => void,
  ): void;
  close(): void;
}

/** The largest IPv4 datagram: the receive buffer must hold any packet a peer could send. */
const RECEIVE_BUFFER_SIZE = 65_535;
/**
 * The kernel's queue for the socket, as the native addon asks for it: the default (~208 KB) is a few milliseconds of
 * traffic, one garbage collection's worth. The kernel caps the request at net.core.rmem_max without failing.
 */
const KERNEL_RECEIVE_BUFFER_REQUEST = 64 * 1024 * 1024;

/** Loaded lazily so that code which only fakes the underlay (tests, the CLI's read views) never needs the addon. */
function loadRawSocket(): RawSocketModule {
  try {
    return createRequire(import.meta.url)('raw-socket') as RawSocketModule;
  } catch (error) {
    throw new UnderlayUnavailableError(
      `the raw-socket package cannot be loaded (${(error as Error).message.split('\n')[0]}); it is an optional ` +
        'dependency that npm skips where its addon does not build (Node 24)',
    );
  }
}

class RawSocketUnderlay implements Underlay {
  sendErrors = 0;
  private closed = false;

  /**
   * raw-socket's native handle is only weakly held by the addon: this object keeps the socket reachable for as long
   * as the agent keeps the underlay, or the garbage collector closes it and Node exits as if it had nothing to do.
   */
  constructor(
    private readonly socket: RawSocket,
    private readonly handlers: UnderlayHandlers,
  ) {
    // raw-socket reuses one receive buffer for every packet: copy before the next read overwrites it.
    socket.on('message', (buffer) => handlers.onPacket(Buffer.from(buffer)));
    socket.on('error', (error) => handlers.onError(error));
  }

  send(packet: Buffer, destination: number): void {
    if (this.closed) return;
    // raw-socket queues the send until the socket is writable, and the dataplane may reuse its buffer by then.
    const copy = Buffer.from(packet);
    this.socket.send(copy, 0, copy.length, ipv4ToString(destination), (error) => {
      if (!error) return;
      this.sendErrors++;
      this.handlers.onError(new Error(`send to ${ipv4ToString(destination)} failed: ${error.message}`));
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }
}

/** Opens the raw IPIP socket through raw-socket; throws UnderlayUnavailableError when the package is missing. */
export function openRawSocketUnderlay(handlers: UnderlayHandlers): Underlay {
  const raw = loadRawSocket();
  let socket: RawSocket;
  try {
    socket = raw.createSocket({ protocol: IPPROTO_IPIP, bufferSize: RECEIVE_BUFFER_SIZE });
    socket.setOption(raw.SocketLevel.IPPROTO_IP, raw.SocketOption.IP_HDRINCL, 1);
    socket.setOption(raw.SocketLevel.SOL_SOCKET, raw.SocketOption.SO_RCVBUF, KERNEL_RECEIVE_BUFFER_REQUEST);
  } catch (error) {
    throw rawSocketOpenError(error);
  }
  return new RawSocketUnderlay(socket, handlers);
}
