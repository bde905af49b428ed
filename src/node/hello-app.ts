/**
 * HTTP/1.x for the pods of both dataplanes: the head parser the userspace pod's curl and the server share, and the seed's hello-app
 * (gcr.io/google-samples/hello-app:1.0, a Go net/http server on :8080), whose responses are reproduced header for
 * header: Go writes Date, Content-Length, Content-Type (sniffed), then Connection when it closes.
 */

export const HELLO_APP_PORT = 8080;

/** The image the seed's Deployment runs; pods of it serve hello-app's page on port 8080. */
const HELLO_APP_IMAGE = /(^|\/)hello-app(:|@|$)/;

export function runsHelloApp(pod: { readonly containers: readonly { readonly image: string }[] }): boolean {
  return pod.containers.some((container) => HELLO_APP_IMAGE.test(container.image));
}

/** Go's DefaultMaxHeaderBytes plus the 4096 bytes of slack its reader allows. */
const MAX_HEADER_BYTES = (1 << 20) + 4096;

export interface HttpHead {
  /** Request: method, target, version. Response: version, status code, reason phrase. */
  startLine: [string, string, string];
  headers: Array<[string, string]>;
  /** Bytes taken by the head, blank line included. */
  length: number;
}

/** Lines may end in CRLF or a bare LF, as Go's textproto and curl both accept. */
export function parseHead(buffer: Buffer): HttpHead | 'incomplete' | 'malformed' | 'too-large' {
  const text = buffer.toString('latin1');
  const end = /\r?\n\r?\n/.exec(text);
  if (end === null) return buffer.length > MAX_HEADER_BYTES ? 'too-large' : 'incomplete';
  if (end.index > MAX_HEADER_BYTES) return 'too-large';
  const [first, ...lines] = text.slice(0, end.index).split(/\r?\n/);
  const startLine = /^(\S+) (\S+) ?(.*)$/.exec(first);
  if (startLine === null) return 'malformed';
  const headers: Array<[string, string]> = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) return 'malformed';
    headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  return { startLine: [startLine[1], startLine[2], startLine[3]], headers, length: end.index + end[0].length };
}

export function headerValue(head: HttpHead, name: string): string | undefined {
  const lower = name.toLowerCase();
  return head.headers.find(([key]) => key.toLowerCase() === lower)?.[1];
}

function hasToken(value: string | undefined, token: string): boolean {
  return value?.split(',').some((part) => part.trim().toLowerCase() === token) ?? false;
}

export function helloAppBody(hostname: string): string {
  return `Hello, world!\nVersion: 1.0.0\nHostname: ${hostname}\n`;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HTTP_VERSION = /^HTTP\/(\d)\.(\d)$/;

interface Connection {
  write(data: Buffer): void;
  close(): void;
}

/**
 * Serves one accepted connection like hello-app: every path and method gets the greeting (HEAD without the body),
 * requests are answered in order, the connection stays open until the client closes it or asks to.
 */
/** What a connection's owner feeds the server: a simulated pod's TCP connection, or a socket in a pod's namespace. */
export interface HelloAppConnectionEvents {
  onData(data: Buffer): void;
  onEnd(): void;
}

export function serveHelloApp(connection: Connection, hostname: string, now: () => number): HelloAppConnectionEvents {
  let pending = Buffer.alloc(0);
  let bodyToSkip = 0;
  let closed = false;
  const body = Buffer.from(helloAppBody(hostname));

  /** Go's canned error replies for requests it cannot parse (server.go, `errorHeaders`). */
  const refuse = (status: string, text = status) => {
    connection.write(
      Buffer.from(`HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n${text}`),
    );
    closed = true;
    connection.close();
  };

  const respond = (head: HttpHead) => {
    const [method, , version] = head.startLine;
    const is11 = version !== 'HTTP/1.0';
    const connectionHeader = headerValue(head, 'Connection');
    const keepAlive = is11 ? !hasToken(connectionHeader, 'close') : hasToken(connectionHeader, 'keep-alive');
    let headText = `${is11 ? 'HTTP/1.1' : 'HTTP/1.0'} 200 OK\r\nDate: ${new Date(now()).toUTCString()}\r\n`;
    headText += `Content-Length: ${body.length}\r\nContent-Type: text/plain; charset=utf-8\r\n`;
    if (is11 && !keepAlive) headText += 'Connection: close\r\n';
    if (!is11 && keepAlive) headText += 'Connection: keep-alive\r\n';
    connection.write(Buffer.concat([Buffer.from(`${headText}\r\n`), method === 'HEAD' ? Buffer.alloc(0) : body]));
    if (!keepAlive) {
      closed = true;
      connection.close();
    }
  };

  const serve = () => {
    while (!closed) {
      const skipped = Math.min(bodyToSkip, pending.length);
      pending = pending.subarray(skipped);
      bodyToSkip -= skipped;
      if (bodyToSkip > 0) return;
      const head = parseHead(pending);
      if (head === 'incomplete') return;
      if (head === 'too-large') return refuse('431 Request Header Fields Too Large');
      if (head === 'malformed') return refuse('400 Bad Request');
      pending = pending.subarray(head.length);
      const [method, , version] = head.startLine;
      const parsedVersion = HTTP_VERSION.exec(version);
      if (!TOKEN.test(method) || parsedVersion === null) return refuse('400 Bad Request');
      if (parsedVersion[1] !== '1') return refuse('505 HTTP Version Not Supported', 'unsupported protocol version');
      if (version !== 'HTTP/1.0' && headerValue(head, 'Host') === undefined) {
        return refuse('400 Bad Request', '400 Bad Request: missing required Host header');
      }
      if (headerValue(head, 'Transfer-Encoding') !== undefined) {
        return refuse('501 Not Implemented', 'unsupported transfer encoding');
      }
      const contentLength = headerValue(head, 'Content-Length') ?? '0';
      if (!/^\d{1,15}$/.test(contentLength)) return refuse('400 Bad Request');
      bodyToSkip = Number(contentLength);
      respond(head);
    }
  };

  return {
    onData: (data) => {
      if (closed) return;
      pending = Buffer.concat([pending, data]);
      serve();
    },
    // Go's server sees EOF on its read and closes its side too.
    onEnd: () => {
      closed = true;
      connection.close();
    },
  };
}
