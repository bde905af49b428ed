/**
 * `curl URL` run inside a pod, as the curl of the seed's Ubuntu 18.04 nodes (7.58) behaves: one GET over a fresh
 * connection, the body written out, exit codes and messages from curl's own error table.
 */
import { ipv4FromString } from '../../../wire/ipv4-text.js';
import type { Timer } from './clock.js';
import { ERRNO_TEXT, type Errno } from './icmp-errors.js';
import { headerValue, parseHead, type HttpHead } from '../../hello-app.js';
import type { PodKernel } from './kernel.js';
import type { TcpConnection } from './tcp-connection.js';

export interface CurlOptions {
  /** `--max-time`; without it curl waits as long as TCP does. */
  timeoutMs?: number;
}

export interface CurlReport {
  url: string;
  /**
   * curl's exit status: 0, 7 (could not connect), 28 (timeout), 52 (empty reply), 56 (receive failure), …;
   * 130 when interrupted.
   */
  exitCode: number;
  /** What curl prints on stderr, e.g. `curl: (7) Failed to connect to 10.0.0.1 port 8081: Connection refused`. */
  error?: string;
  httpVersion?: string;
  status?: number;
  statusText?: string;
  headers: Array<[string, string]>;
  /** The body as received (what curl writes to stdout), decoded as UTF-8. */
  body: string;
  timeMs: number;
}

const USER_AGENT = 'curl/7.58.0';
const STATUS_LINE_VERSION = /^HTTP\/\d(\.\d)?$/;
/** The exit status a shell reports for a command stopped with Ctrl-C. */
const INTERRUPTED = 130;

export function curl(kernel: PodKernel, url: string, options: CurlOptions = {}): Promise<CurlReport> {
  return new Promise((resolve) => new CurlRun(kernel, url, options, resolve).start());
}

class CurlRun {
  private readonly startTime: number;
  private connection?: TcpConnection;
  private connected = false;
  private ended = false;
  private received = Buffer.alloc(0);
  private head?: HttpHead;
  private timer?: Timer;
  private unregisterClose?: () => void;
  private done = false;

  constructor(
    private readonly kernel: PodKernel,
    private readonly url: string,
    private readonly options: CurlOptions,
    private readonly resolve: (report: CurlReport) => void,
  ) {
    this.startTime = kernel.now();
  }

  start(): void {
    // Like curl, a URL without a scheme is taken as http.
    let parsed: URL;
    try {
      parsed = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(this.url) ? this.url : `http://${this.url}`);
    } catch {
      return this.finish(3, 'URL using bad/illegal format or missing URL');
    }
    if (parsed.protocol !== 'http:') {
      return this.finish(1, `Protocol "${parsed.protocol.slice(0, -1)}" not supported or disabled in libcurl`);
    }
    const address = ipv4FromString(parsed.hostname);
    if (address === undefined) return this.finish(6, `Could not resolve host: ${parsed.hostname}`);
    const port = parsed.port === '' ? 80 : Number(parsed.port);
    const request =
      `GET ${parsed.pathname}${parsed.search} HTTP/1.1\r\nHost: ${parsed.host}\r\n` +
      `User-Agent: ${USER_AGENT}\r\nAccept: */*\r\n\r\n`;
    const connectFailure = (errno: Errno) =>
      `Failed to connect to ${parsed.hostname} port ${port}: ${ERRNO_TEXT[errno]}`;

    this.unregisterClose = this.kernel.onClose(() => this.finish(INTERRUPTED));
    if (this.options.timeoutMs !== undefined) {
      this.timer = this.kernel.timers.start(() => this.timedOut(), this.options.timeoutMs);
    }
    this.connection = this.kernel.tcp.connect(address, port, {
      onEstablished: () => {
        this.connected = true;
        this.connection?.write(Buffer.from(request, 'latin1'));
      },
      onData: (data) => {
        this.received = Buffer.concat([this.received, data]);
        this.progress();
      },
      onEnd: () => {
        this.ended = true;
        this.progress();
      },
      onError: (errno) => {
        if (this.connected) this.finish(56, `Recv failure: ${ERRNO_TEXT[errno]}`);
        else this.finish(7, connectFailure(errno));
      },
    });
    if (this.connection === undefined) this.finish(7, connectFailure('EADDRNOTAVAIL'));
  }

  private get elapsedMs(): number {
    return Math.floor(this.kernel.now() - this.startTime);
  }

  private bodyBytes(): Buffer {
    return this.head === undefined ? Buffer.alloc(0) : this.received.subarray(this.head.length);
  }

  private contentLength(): number | undefined {
    const value = this.head === undefined ? undefined : headerValue(this.head, 'Content-Length');
    return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
  }

  private progress(): void {
    if (this.head === undefined) {
      const head = parseHead(this.received);
      if (
        head === 'malformed' ||
        head === 'too-large' ||
        (head !== 'incomplete' && !STATUS_LINE_VERSION.test(head.startLine[0]))
      ) {
        return this.finish(8, 'Weird server reply');
      }
      if (head === 'incomplete') {
        if (!this.ended) return;
        if (this.received.length === 0) return this.finish(52, 'Empty reply from server');
        return this.finish(18, 'transfer closed with outstanding read data remaining');
      }
      this.head = head;
    }
    const length = this.contentLength();
    const body = this.bodyBytes();
    if (length !== undefined && body.length >= length) return this.finish(0);
    if (!this.ended) return;
    if (length === undefined) return this.finish(0);
    this.finish(18, `transfer closed with ${length - body.length} bytes remaining to read`);
  }

  private timedOut(): void {
    if (!this.connected) return this.finish(28, `Connection timed out after ${this.elapsedMs} milliseconds`);
    const length = this.contentLength();
    const got = this.bodyBytes().length;
    const progress = length === undefined ? `${got} bytes received` : `${got} out of ${length} bytes received`;
    this.finish(28, `Operation timed out after ${this.elapsedMs} milliseconds with ${progress}`);
  }

  private finish(exitCode: number, error?: string): void {
    if (this.done) return;
    this.done = true;
    this.timer?.cancel();
    this.unregisterClose?.();
    this.connection?.close();
    const head = this.head;
    const length = this.contentLength();
    const body = this.bodyBytes();
    this.resolve({
      url: this.url,
      exitCode,
      error: error === undefined ? undefined : `curl: (${exitCode}) ${error}`,
      httpVersion: head?.startLine[0].slice('HTTP/'.length),
      status: head === undefined ? undefined : Number(head.startLine[1]),
      statusText: head?.startLine[2],
      headers: head?.headers ?? [],
      body: body.subarray(0, length ?? body.length).toString('utf8'),
      timeMs: this.elapsedMs,
    });
  }
}
