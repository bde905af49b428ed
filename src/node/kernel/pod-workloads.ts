/**
 * What runs inside each kernel-backed pod, without a process per pod: the agent opens the pod's listening sockets
 * inside its namespace (the addon's bindInNetns: setns, bind, setns back) and serves them from its own event loop.
 * A socket keeps the namespace it was made in, so the kernel delivers to it as to a program in the pod; ping is the
 * pod kernel's own.
 * - hello-app on :8080 for pods of that image, the same responses as the userspace pod's (pod/http.ts);
 * - UDP echo on port 7 (RFC 862) for every pod.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { PodState } from '../../calico/index.js';
import { HELLO_APP_PORT, serveHelloApp } from '../hello-app.js';

export const UDP_ECHO_PORT = 7;

/** Binds a socket inside a namespace: the addon's bindInNetns. */
export type NetnsBinder = (netnsPath: string, protocol: 'tcp' | 'udp', port: number) => number;

export interface PodWorkload {
  close(): void;
}

function serveHello(fd: number, hostname: string, log: (line: string) => void): PodWorkload {
  const open = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    const events = serveHelloApp(
      { write: (data) => socket.write(data), close: () => socket.end() },
      hostname,
      Date.now,
    );
    socket.on('data', (data) => events.onData?.(data));
    socket.on('end', () => events.onEnd?.());
    // A client that resets is the client's business; the server goes on.
    socket.on('error', () => socket.destroy());
  });
  server.on('error', (error) => log(`hello-app on ${hostname}: ${error.message}`));
  server.listen({ fd });
  return {
    close: () => {
      server.close();
      // Open connections hold the namespace alive; the pod is going.
      for (const socket of open) socket.destroy();
    },
  };
}

function serveEcho(fd: number, hostname: string, log: (line: string) => void): dgram.Socket {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (message, from) => socket.send(message, from.port, from.address));
  socket.on('error', (error) => log(`udp echo on ${hostname}: ${error.message}`));
  socket.bind({ fd });
  return socket;
}

export function startPodWorkload(
  pod: PodState,
  netnsPath: string,
  runsHelloApp: boolean,
  bind: NetnsBinder,
  log: (line: string) => void,
): PodWorkload {
  const echo = serveEcho(bind(netnsPath, 'udp', UDP_ECHO_PORT), pod.name, log);
  const hello = runsHelloApp ? serveHello(bind(netnsPath, 'tcp', HELLO_APP_PORT), pod.name, log) : undefined;
  return {
    close: () => {
      echo.close();
      hello?.close();
    },
  };
}
