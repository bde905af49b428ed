import { describe, expect, it } from 'vitest';
import { parseHead, serveHelloApp } from '../../src/node/hello-app.js';

const NOW = Date.UTC(2024, 0, 15, 12, 0, 0);
const BODY = 'Hello, world!\nVersion: 1.0.0\nHostname: web-1\n';

function server() {
  const written: string[] = [];
  let closed = false;
  const events = serveHelloApp(
    {
      write: (data) => written.push(data.toString('latin1')),
      close: () => (closed = true),
    },
    'web-1',
    () => NOW,
  );
  const send = (text: string) => events.onData?.(Buffer.from(text, 'latin1'));
  return { events, send, written, isClosed: () => closed };
}

const OK_HEAD = `HTTP/1.1 200 OK\r\nDate: Mon, 15 Jan 2024 12:00:00 GMT\r\nContent-Length: ${BODY.length}\r\nContent-Type: text/plain; charset=utf-8\r\n`;

describe('hello-app', () => {
  it('answers any path like Go net/http and keeps the connection open', () => {
    const { send, written, isClosed } = server();
    send('GET /anything?x=1 HTTP/1.1\r\nHost: 192.168.87.198:8080\r\nUser-Agent: curl/7.58.0\r\nAccept: */*\r\n\r\n');
    expect(written).toEqual([`${OK_HEAD}\r\n${BODY}`]);
    expect(isClosed()).toBe(false);
  });

  it('serves pipelined requests in order, however the bytes are split', () => {
    const { send, written } = server();
    const two = 'GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\n';
    for (const char of two) send(char);
    expect(written).toEqual([`${OK_HEAD}\r\n${BODY}`, `${OK_HEAD}\r\n`]);
  });

  it('skips a request body by Content-Length before the next request', () => {
    const { send, written } = server();
    send('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(written).toHaveLength(2);
  });

  it('says Connection: close and closes when asked to', () => {
    const { send, written, isClosed } = server();
    send('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(written[0]).toBe(`${OK_HEAD}Connection: close\r\n\r\n${BODY}`);
    expect(isClosed()).toBe(true);
  });

  it('answers HTTP/1.0 in kind and closes, unless asked to keep alive', () => {
    const plain = server();
    plain.send('GET / HTTP/1.0\r\n\r\n');
    expect(plain.written[0].startsWith('HTTP/1.0 200 OK\r\nDate: ')).toBe(true);
    expect(plain.written[0]).not.toContain('Connection');
    expect(plain.isClosed()).toBe(true);
    const kept = server();
    kept.send('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    expect(kept.written[0]).toContain('Connection: keep-alive\r\n');
    expect(kept.isClosed()).toBe(false);
  });

  it("refuses what Go's server refuses, with its canned replies", () => {
    const cases: Array<[string, string]> = [
      [
        'garbage\r\n\r\n',
        'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request',
      ],
      [
        'GET / HTTP/1.1\r\n\r\n',
        'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: missing required Host header',
      ],
      [
        'GET / HTTP/2.0\r\nHost: a\r\n\r\n',
        'HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nunsupported protocol version',
      ],
    ];
    for (const [request, response] of cases) {
      const { send, written, isClosed } = server();
      send(request);
      expect(written).toEqual([response]);
      expect(isClosed()).toBe(true);
    }
  });

  it('refuses a head that never ends past 1 MiB', () => {
    const { send, written } = server();
    send(`GET / HTTP/1.1\r\nX: ${'a'.repeat((1 << 20) + 5000)}`);
    expect(written[0].startsWith('HTTP/1.1 431 Request Header Fields Too Large\r\n')).toBe(true);
  });

  it('closes its side when the client does', () => {
    const { events, isClosed } = server();
    events.onEnd?.();
    expect(isClosed()).toBe(true);
  });
});

describe('parseHead', () => {
  it('accepts bare LF line ends and reports the bytes consumed', () => {
    const head = parseHead(Buffer.from('HTTP/1.1 200 OK\nA: 1\nB:2\n\nbody'));
    expect(head).toEqual({
      startLine: ['HTTP/1.1', '200', 'OK'],
      headers: [
        ['A', '1'],
        ['B', '2'],
      ],
      length: 26,
    });
  });

  it('waits for more bytes or refuses a header line without a colon', () => {
    expect(parseHead(Buffer.from('HTTP/1.1 200 OK\r\nA: 1\r\n'))).toBe('incomplete');
    expect(parseHead(Buffer.from('HTTP/1.1 200 OK\r\nnot a header\r\n\r\n'))).toBe('malformed');
  });
});
