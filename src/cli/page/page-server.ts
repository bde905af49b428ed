/**
 * The lab page's HTTP server: the page's files, the lab's snapshot, the examples, and traces. The compose labs run it
 * in their `page` service, published on the host's 127.0.0.1 only. It answers only requests addressed to it by a
 * loopback or its own name (a page elsewhere cannot reach it through DNS rebinding) and takes traces only as JSON
 * (a form on another site cannot post one). One trace runs at a time: each captures every node.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../../package-root.js';
import type { TraceResult } from './page-protocol.js';
import type { LabWatch } from './lab-watch.js';
import { traceExamples } from './tracer/examples.js';
import { TraceError, checkTraceRequest, runTrace } from './tracer/trace.js';

const MAX_BODY_BYTES = 16 * 1024;
/** Traces kept for their pcapng download. */
const KEPT_TRACES = 20;

/** The browser's compiled scripts sit beside this module's; its HTML and CSS are in the sources. */
const SCRIPTS_DIRECTORY = path.join(path.dirname(fileURLToPath(import.meta.url)), 'browser');
const STATIC_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

function sourcesDirectory(): string {
  return path.join(packageRoot(), 'src', 'cli', 'page', 'browser');
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value));
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': body.length,
    'cache-control': 'no-store',
  });
  response.end(body);
}

function readBody(request: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) reject(new HttpError(413, `a trace request is at most ${MAX_BODY_BYTES} bytes`));
      else chunks.push(chunk);
    });
    request.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new HttpError(400, 'the body is not JSON'));
      }
    });
    request.on('error', reject);
  });
}

/** Loopback names and addresses, and the names this container answers to, with any port. */
function isOwnHost(host: string | undefined, ownNames: ReadonlySet<string>): boolean {
  if (host === undefined) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
  return name === 'localhost' || name === '[::1]' || name.startsWith('127.') || ownNames.has(name);
}

export interface PageServerOptions {
  host: string;
  port: number;
  watch: LabWatch;
  /** Extra names the Host header may carry (the container's own hostname and addresses). */
  ownNames?: readonly string[];
  log: (line: string) => void;
}

export class PageServer {
  private readonly traces = new Map<string, { result: TraceResult; pcapng: Buffer }>();
  private nextTrace = 1;
  private tracing = false;
  private readonly server: Server;
  private readonly ownNames: ReadonlySet<string>;

  constructor(private readonly options: PageServerOptions) {
    this.ownNames = new Set(options.ownNames ?? []);
    this.server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        const status = error instanceof HttpError || error instanceof TraceError ? error.status : 500;
        const message = error instanceof Error ? error.message : String(error);
        if (status === 500) options.log(`page: ${request.method} ${request.url}: ${message}`);
        if (!response.headersSent) sendJson(response, status, { error: message });
        else response.end();
      });
    });
  }

  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        const address = this.server.address();
        const port = typeof address === 'object' && address !== null ? address.port : this.options.port;
        resolve({ host: this.options.host, port });
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (!isOwnHost(request.headers.host, this.ownNames)) {
      throw new HttpError(421, 'this page answers only to 127.0.0.1 or localhost');
    }
    const url = new URL(request.url ?? '/', 'http://page');
    const route = `${request.method} ${url.pathname}`;
    if (route === 'GET /api/lab') return sendJson(response, 200, this.options.watch.snapshot());
    if (route === 'GET /api/examples') return sendJson(response, 200, traceExamples(this.options.watch.cluster));
    if (route === 'POST /api/traces') return this.trace(request, response);
    const pcapng = /^GET \/api\/traces\/(\d+)\.pcapng$/.exec(route);
    if (pcapng !== null) return this.download(pcapng[1], response);
    if (request.method === 'GET') return this.serveFile(url.pathname, response);
    throw new HttpError(404, `no such endpoint: ${route}`);
  }

  private async trace(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (!(request.headers['content-type'] ?? '').startsWith('application/json')) {
      throw new HttpError(415, 'a trace request is JSON (content-type: application/json)');
    }
    const traceRequest = checkTraceRequest(await readBody(request));
    if (this.tracing) throw new HttpError(409, 'a trace is running: try again when it ends');
    this.tracing = true;
    try {
      const finished = await runTrace(this.options.watch, traceRequest);
      const id = String(this.nextTrace++);
      const result: TraceResult = { id, pcapng: `/api/traces/${id}.pcapng`, ...finished.result };
      this.traces.set(id, { result, pcapng: finished.pcapng });
      for (const old of this.traces.keys()) {
        if (this.traces.size <= KEPT_TRACES) break;
        this.traces.delete(old);
      }
      sendJson(response, 200, result);
    } finally {
      this.tracing = false;
    }
  }

  private download(id: string, response: ServerResponse): void {
    const trace = this.traces.get(id);
    if (trace === undefined) throw new HttpError(404, `no trace ${id} (the page keeps the last ${KEPT_TRACES})`);
    response.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-disposition': `attachment; filename="ipip-lab-trace-${id}.pcapng"`,
      'content-length': trace.pcapng.length,
    });
    response.end(trace.pcapng);
  }

  private async serveFile(pathname: string, response: ServerResponse): Promise<void> {
    const known = STATIC_FILES[pathname];
    const script = /^\/([a-z][a-z0-9-]*)\.js$/.exec(pathname);
    let file: string;
    let type: string;
    if (known !== undefined) {
      file = path.join(sourcesDirectory(), known.file);
      type = known.type;
    } else if (script !== null) {
      file = path.join(SCRIPTS_DIRECTORY, `${script[1]}.js`);
      type = 'text/javascript; charset=utf-8';
    } else {
      throw new HttpError(404, `no such page: ${pathname}`);
    }
    const body = await readFile(file).catch(() => {
      throw new HttpError(404, `no such page: ${pathname}`);
    });
    response.writeHead(200, { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-cache' });
    response.end(body);
  }
}
