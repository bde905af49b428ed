/**
 * `ipip-lab page`: the lab page's server (src/cli/page). The compose labs run it as their `page` service, on the lab
 * network beside the nodes, published on the host's 127.0.0.1 only; it asks the agents over the lab network.
 */
import os from 'node:os';
import type { Command } from 'commander';
import type { Io } from '../common.js';
import { UsageError } from '../errors.js';
import { LabWatch, parseAgentAddress, type AgentAddress } from '../page/lab-watch.js';
import { PageServer } from '../page/page-server.js';

export const DEFAULT_PAGE_PORT = 8480;

interface PageOptions {
  listen: string;
  agent: AgentAddress[];
  wait: string;
}

function parseListen(text: string): { host: string; port: number } {
  const colon = text.lastIndexOf(':');
  const host = colon < 0 ? text : text.slice(0, colon);
  const port = colon < 0 ? DEFAULT_PAGE_PORT : Number(text.slice(colon + 1));
  if (host === '' || !Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new UsageError(`--listen ${text}: expected HOST:PORT, e.g. 127.0.0.1:${DEFAULT_PAGE_PORT}`);
  }
  return { host, port };
}

/** The names a browser may reach this container by, besides loopback: its hostname and its addresses. */
function ownNames(): string[] {
  const addresses = Object.values(os.networkInterfaces())
    .flatMap((infos) => infos ?? [])
    .map((info) => info.address);
  return [os.hostname(), ...addresses];
}

export function registerPageCommand(program: Command, io: Io): void {
  program
    .command('page')
    .description("the lab page: the topology, each node's tables and a hop-by-hop packet tracer, in a browser")
    .option('--listen <host:port>', 'where the page listens', `127.0.0.1:${DEFAULT_PAGE_PORT}`)
    .option(
      '--agent <address>',
      "a node's lab address (IPv4[:PORT]) to learn the lab from; repeat for more. The page then asks every node",
      (text: string, previous: AgentAddress[]) => [...previous, parseAgentAddress(text)],
      [],
    )
    .option('--wait <seconds>', 'how long to wait for the first agent to answer', '60')
    .addHelpText(
      'after',
      '\nThe compose labs start it for you: open http://127.0.0.1:8480/ (the second seed: :8481).\n' +
        'By hand, in a container on the lab network:\n' +
        '  ipip-lab page --listen 0.0.0.0:8480 --agent 10.0.0.10 --agent 10.0.0.11\n' +
        'It only talks to agents on a network its machine is directly on, and answers only to 127.0.0.1/localhost.',
    )
    .action(async (options: PageOptions) => {
      if (options.agent.length === 0) {
        throw new UsageError('give at least one --agent ADDRESS: a node of the lab, e.g. --agent 10.0.0.10');
      }
      const waitSeconds = Number(options.wait);
      if (!Number.isFinite(waitSeconds) || waitSeconds < 0)
        throw new UsageError(`--wait ${options.wait}: expected seconds`);
      const listen = parseListen(options.listen);
      const log = (line: string) => io.err(`${line}\n`);
      const watch = await LabWatch.open(options.agent, log, waitSeconds * 1000);
      watch.start();
      const server = new PageServer({ ...listen, watch, ownNames: ownNames(), log });
      const bound = await server.listen();
      log(
        `lab page for ${watch.cluster.spec.name} (${watch.cluster.nodes.length} nodes) on http://${bound.host}:${bound.port}/`,
      );
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await server.close();
      await watch.close();
    });
}
