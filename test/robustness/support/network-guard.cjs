/**
 * Preloaded into `ipip-lab node` (NODE_OPTIONS=--require) by the bad-spec test: the first attempt to touch the
 * network (load either underlay's addon, listen, connect, open a UDP socket) prints NETWORK-GUARD and exits 99, so a
 * process that exits 2 without that line provably refused its spec before opening anything.
 */
'use strict';
const Module = require('node:module');
const net = require('node:net');
const dgram = require('node:dgram');

function trip(what) {
  process.stderr.write(`NETWORK-GUARD: ${what}\n`);
  process.exit(99);
}

const load = Module._load;
Module._load = function guardedLoad(request, ...rest) {
  if (request === 'raw-socket' || /(raw|ipip_socket)\.node$/.test(request)) trip(`loads ${request}`);
  return load.call(this, request, ...rest);
};
net.Server.prototype.listen = () => trip('listen');
net.Socket.prototype.connect = () => trip('connect');
dgram.createSocket = () => trip('a UDP socket');
