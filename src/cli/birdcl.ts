/**
 * `birdcl` inside a node container: BIRD's light client, answering from the node agent's BGP speaker instead of a
 * BIRD control socket. Command lines are expanded as birdcl expands them (client/commands.c: unique abbreviations,
 * `No such command`, `Ambiguous command`), then answered as BIRD's CLI answers them (`show protocols`, `show route`,
 * `show status`), through birdcl's printing of the reply. With no command it reads commands from standard input
 * after a `bird> ` prompt, as birdcl does.
 */
import { createInterface } from 'node:readline';
import { Command, CommanderError, Option } from 'commander';
import { Ipv4Address, Ipv4Prefix } from '../routing/address.js';
import type { SpeakerStatus } from '../node/bgp/index.js';
import {
  BIRD_GREETING,
  BIRD_SOCKET,
  BIRD_VERSION,
  birdclText,
  birdPatternMatches,
  birdProtocols,
  birdRoutes,
  showProtocols,
  selectRoutes,
  showRoute,
  type BirdMessage,
  type ShowRouteOptions,
} from './bird-views.js';
import { AgentClient, AgentError, agentSocketPath } from './commands/agent-client.js';
import { printJson, processIo, type Io } from './common.js';
import { UsageError } from './errors.js';

/**
 * `[command, args, help, isRealCommand]`: BIRD's conf/commands.h for Calico's build (protocols bfd bgp pipe static),
 * in the order its Makefile's `sort` leaves them.
 */
const COMMANDS: readonly (readonly [string, string, string, boolean])[] = [
  ['add roa', '<prefix> max <num> as <num> [table <name>]', 'Add ROA record', true],
  ['add', 'roa ...', 'Add ROA record', false],
  ['configure check', '["<file>"]', 'Parse configuration and check its validity', true],
  ['configure confirm', '', 'Confirm last configuration change - deactivate undo timeout', true],
  ['configure soft', '["<file>"] [timeout [<sec>]]', 'Reload configuration and ignore changes in filters', true],
  ['configure undo', '', 'Undo last configuration change', true],
  ['configure', '...', 'Reload configuration', false],
  ['configure', '["<file>"] [timeout [<sec>]]', 'Reload configuration', true],
  [
    'debug',
    '(<protocol> | "<pattern>" | all) (all | off | { states|routes|filters|interfaces|events|packets [, ...] })',
    'Control protocol debugging via BIRD logs',
    true,
  ],
  ['debug', '...', 'Control protocol debugging via BIRD logs', false],
  ['delete roa', '<prefix> max <num> as <num> [table <name>]', 'Delete ROA record', true],
  ['delete', 'roa ...', 'Delete ROA record', false],
  ['disable', '(<protocol> | "<pattern>" | all) [message]', 'Disable protocol', true],
  ['down', '', 'Shut the daemon down', true],
  ['dump attributes', '', 'Dump attribute cache', true],
  ['dump events', '', 'Dump event log', true],
  ['dump interfaces', '', 'Dump interface information', true],
  ['dump neighbors', '', 'Dump neighbor cache', true],
  ['dump protocols', '', 'Dump protocol information', true],
  ['dump resources', '', 'Dump all allocated resource', true],
  ['dump routes', '', 'Dump routing table', true],
  ['dump sockets', '', 'Dump open sockets', true],
  ['dump', '...', 'Dump debugging information', false],
  [
    'echo',
    '(all | off | { debug|trace|info|remote|warning|error|auth [, ...] }) [<buffer-size>]',
    'Control echoing of log messages',
    true,
  ],
  ['echo', '...', 'Control echoing of log messages', false],
  ['enable', '(<protocol> | "<pattern>" | all) [message]', 'Enable protocol', true],
  ['eval', '<expr>', 'Evaluate an expression', true],
  ['exit', '', 'Exit the client', true],
  ['flush roa', '[table <name>]', 'Removes all dynamic ROA records', true],
  ['flush', 'roa [table <name>]', 'Removes all dynamic ROA records', false],
  ['help', '', 'Description of the help system', true],
  [
    'mrtdump',
    '(<protocol> | "<pattern>" | all) (all | off | { states|messages [, ...] })',
    'Control protocol debugging via MRTdump format',
    true,
  ],
  ['mrtdump', '...', 'Control protocol debugging via MRTdump files', false],
  ['quit', '', 'Quit the client', true],
  ['reload in', '<protocol> | "<pattern>" | all', 'Reload protocol (just imported routes)', true],
  ['reload out', '<protocol> | "<pattern>" | all', 'Reload protocol (just exported routes)', true],
  ['reload', '<protocol> | "<pattern>" | all', 'Reload protocol', true],
  ['restart', '(<protocol> | "<pattern>" | all) [message]', 'Restart protocol', true],
  ['restrict', '', 'Restrict current CLI session to safe commands', true],
  ['show bfd sessions', '[<name>]', 'Show information about BFD sessions', true],
  ['show bfd', '...', 'Show information about BFD protocol', false],
  ['show interfaces summary', '', 'Show summary of network interfaces', true],
  ['show interfaces', '', 'Show network interfaces', true],
  ['show memory', '', 'Show memory usage', true],
  ['show protocols all', '[<protocol> | "<pattern>"]', 'Show routing protocol details', true],
  ['show protocols', '[<protocol> | "<pattern>"]', 'Show routing protocols', true],
  ['show roa', '...', 'Show ROA table', false],
  ['show roa', '[<prefix> | in <prefix> | for <prefix>] [as <num>] [table <t>]', 'Show ROA table', true],
  ['show route', '...', 'Show routing table', false],
  [
    'show route',
    '[<prefix>|for <prefix>|for <ip>] [table <t>] [filter <f>|where <cond>] [all] [primary] [filtered] ' +
      '[(export|preexport|noexport) <p>] [protocol <p>] [stats|count]',
    'Show routing table',
    true,
  ],
  ['show static', '[<name>]', 'Show details of static protocol', true],
  ['show status', '', 'Show router status', true],
  ['show symbols', '...', 'Show all known symbolic names', false],
  ['show symbols', '[table|filter|function|protocol|template|roa|<symbol>]', 'Show all known symbolic names', true],
  ['show', '...', 'Show status information', false],
];

interface CommandInfo {
  readonly command: string;
  readonly args: string;
  readonly help: string;
}

interface CommandNode {
  readonly token: string;
  /** client/commands.c's hack: `roa` and `rip` lose ties to other abbreviations. */
  readonly prio: number;
  readonly sons: CommandNode[];
  cmd?: CommandInfo;
  help?: CommandInfo;
}

/** cmd_build_tree. */
function buildTree(): CommandNode {
  const root: CommandNode = { token: '', prio: 1, sons: [] };
  for (const [command, args, help, real] of COMMANDS) {
    let node = root;
    for (const token of command.split(' ')) {
      let son = node.sons.find((candidate) => candidate.token === token);
      if (!son) {
        son = { token, prio: token === 'roa' || token === 'rip' ? 0 : 1, sons: [] };
        node.sons.push(son);
      }
      node = son;
    }
    if (real) node.cmd = { command, args, help };
    else node.help = { command, args, help };
  }
  return root;
}

const TREE = buildTree();

/** cmd_find_abbrev: the exact token, else the one son it abbreviates; `ambiguous` when two of equal priority do. */
function findAbbrev(node: CommandNode, word: string): { found?: CommandNode; ambiguous: boolean } {
  let best: CommandNode | undefined;
  let second: CommandNode | undefined;
  for (const son of node.sons) {
    if (son.token === word) return { found: son, ambiguous: false };
    if (son.token.length > word.length && son.token.startsWith(word)) {
      if (best && best.prio > son.prio) continue;
      if (best && best.prio === son.prio) second = best;
      best = son;
    }
  }
  return second ? { ambiguous: true } : { ...(best && { found: best }), ambiguous: false };
}

/** The client's answer to a line it will not send: what birdcl prints itself. */
class ClientRefusal extends Error {}

/** cmd_expand: the full command and the rest of the line, or what birdcl says instead of sending it. */
export function expandCommand(line: string): string {
  let node = TREE;
  let rest = line;
  let position = 0;
  while (position < line.length) {
    if (/\s/.test(line[position])) {
      position++;
      continue;
    }
    const start = position;
    while (position < line.length && !/\s/.test(line[position])) position++;
    const word = line.slice(start, position);
    const { found, ambiguous } = findAbbrev(node, word);
    if (!found) {
      if (!ambiguous) break;
      const choices = node.sons
        .filter((son) => son.token.length > word.length && son.token.startsWith(word))
        .map((son) => son.help ?? son.cmd)
        .filter((info): info is CommandInfo => info !== undefined)
        .map((info) => `${`${info.command} ${info.args}`.padEnd(45)}  ${info.help}\n`);
      throw new ClientRefusal(`Ambiguous command, possible expansions are:\n${choices.join('')}`);
    }
    rest = line.slice(position);
    node = found;
  }
  if (!node.cmd) throw new ClientRefusal("No such command. Press `?' for help.\n");
  return `${node.cmd.command}${rest}`;
}

/** The BIRD commands this birdcl answers; it refuses BIRD's others. */
const EMULATED =
  'show protocols [NAME | "PATTERN"], show route [PREFIX | for ADDRESS] [protocol NAME] [count|stats], show status';

/** BIRD's lexer, as far as these commands need it: words, and "strings". */
function tokens(text: string): { text: string; quoted: boolean }[] {
  return [...text.matchAll(/"([^"]*)"|(\S+)/g)].map((match) =>
    match[1] !== undefined ? { text: match[1], quoted: true } : { text: match[2], quoted: false },
  );
}

/** A BIRD reply that ends in an error code (8xxx runtime, 9xxx syntax). */
function birdError(code: number, text: string): BirdMessage[] {
  return [{ code, text }];
}

/** A prefix as BIRD's grammar takes it: `Invalid prefix` when host bits are set. */
function parsePrefix(text: string): Ipv4Prefix | BirdMessage[] | undefined {
  const match = /^(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?$/.exec(text);
  if (!match) return undefined;
  const address = Ipv4Address.tryParse(match[1]);
  if (!address) return birdError(9001, `Invalid IPv4 address ${match[1]}`);
  if (match[2] === undefined) return Ipv4Prefix.of(address, 32);
  const length = Number(match[2]);
  if (length > 32) return birdError(9001, `Invalid prefix length ${length}`);
  const prefix = Ipv4Prefix.of(address, length);
  return prefix.isMasked() ? prefix : birdError(9001, 'Invalid prefix');
}

/** What the node's BIRD would hold, read from its agent on demand. */
export interface BirdSource {
  status(): Promise<SpeakerStatus>;
  birdRoutes(): Promise<ReturnType<typeof birdRoutes>>;
}

type Answer = { messages: BirdMessage[]; json: unknown } | { notEmulated: string };

async function answer(command: string, source: BirdSource, now: number): Promise<Answer> {
  const words = tokens(command);
  const head = words
    .slice(0, 3)
    .map((word) => word.text)
    .join(' ');
  if (head === 'show protocols all') return { notEmulated: 'show protocols all' };
  if (head.startsWith('show protocols')) {
    const args = words.slice(2);
    const all = birdProtocols(await source.status());
    if (args.length > 1) return { messages: birdError(9001, 'syntax error'), json: null };
    const [arg] = args;
    let chosen = all;
    if (arg?.quoted) chosen = all.filter((protocol) => birdPatternMatches(arg.text, protocol.name));
    else if (arg) {
      chosen = all.filter((protocol) => protocol.name === arg.text);
      if (chosen.length === 0) return { messages: birdError(9002, `${arg.text} is not a protocol`), json: null };
    }
    return { messages: showProtocols(chosen, now), json: { protocols: chosen } };
  }
  if (head.startsWith('show route')) return showRouteAnswer(words.slice(2), source, now);
  if (head === 'show status') {
    const status = await source.status();
    const base = (at: string | number): string => new Date(at).toISOString().slice(0, 19).replace('T', ' ');
    const messages: BirdMessage[] = [
      { code: -1000, text: `BIRD ${BIRD_VERSION}` },
      { code: -1011, text: `Router ID is ${status.routerId}` },
      { code: -1011, text: `Current server time is ${base(now)}` },
      { code: -1011, text: `Last reboot on ${base(status.startedAt)}` },
      { code: -1011, text: `Last reconfiguration on ${base(status.startedAt)}` },
      { code: 13, text: 'Daemon is up and running' },
    ];
    return { messages, json: { version: BIRD_VERSION, routerId: status.routerId, startedAt: status.startedAt } };
  }
  return { notEmulated: command };
}

const NOT_EMULATED_ROUTE_ARGS = new Set([
  'table',
  'filter',
  'where',
  'all',
  'primary',
  'filtered',
  'export',
  'preexport',
  'noexport',
]);

async function showRouteAnswer(
  args: readonly { text: string; quoted: boolean }[],
  source: BirdSource,
  now: number,
): Promise<Answer> {
  let options: ShowRouteOptions = {};
  let stats: 0 | 1 | 2 = 0;
  const routes = await source.birdRoutes();
  const protocols = new Set(birdProtocols(await source.status()).map((protocol) => protocol.name));
  for (let i = 0; i < args.length; i++) {
    const word = args[i];
    if (!word.quoted && NOT_EMULATED_ROUTE_ARGS.has(word.text)) return { notEmulated: `show route ${word.text}` };
    if (!word.quoted && (word.text === 'count' || word.text === 'stats')) {
      stats = word.text === 'count' ? 2 : 1;
      continue;
    }
    const longestMatch = !word.quoted && word.text === 'for';
    if (!word.quoted && word.text === 'protocol') {
      const name = args[++i];
      if (!name || name.quoted) return { messages: birdError(9001, 'syntax error'), json: null };
      if (options.protocol !== undefined) return { messages: birdError(9001, 'Protocol specified twice'), json: null };
      if (!protocols.has(name.text)) return { messages: birdError(9001, `${name.text} is not a protocol`), json: null };
      options = { ...options, protocol: name.text };
      continue;
    }
    const text = longestMatch ? args[++i] : word;
    const parsed = text && !text.quoted ? parsePrefix(text.text) : undefined;
    // A bare address is only a prefix after `for`.
    if (!parsed || (!longestMatch && !text.text.includes('/'))) {
      return { messages: birdError(9001, 'syntax error'), json: null };
    }
    if (Array.isArray(parsed)) return { messages: parsed, json: null };
    if (options.network) return { messages: birdError(9001, 'Only one prefix expected'), json: null };
    options = { ...options, network: { prefix: parsed, longestMatch } };
  }
  const messages = showRoute(routes, now, { ...options, count: stats === 2, stats: stats === 1 });
  return { messages, json: { routes: selectRoutes(routes, options).shown } };
}

const SUMMARY = "birdcl (ipip-lab's): BIRD's command-line client, answering for this node's BGP speaker.";

/** After the options: laid out by hand, so not wrapped as commander wraps a description. */
const GUIDE = `
On a Calico node, BIRD runs the node's BGP sessions (the node-to-node mesh) and programs the routes it learns. In the
lab the node agent runs a BGP speaker in BIRD's place; this birdcl shows that speaker as Calico's BIRD
(${BIRD_VERSION}) shows itself, from this node's agent.

  birdcl show protocols         static1 (this node's blocks, as blackholes), kernel1, device1, direct1, then one
                                BGP protocol per mesh peer (Mesh_10_0_0_11): up once Established, start while
                                Active, Connect, Passive ..., with BIRD's last error (Socket: Connection refused)
  birdcl show route             BIRD's table: own blocks (blackhole, static1), tunl0's /32 and eth0's subnet
                                (direct1), the pods' /32s (kernel1), the peers' blocks (via PEER on eth0
                                [Mesh_... ] * (100/0) [i]). BIRD's own table says eth0 even for IPIP: the route it
                                writes into the kernel is the one that says dev tunl0 onlink (ip route | grep bird)
  birdcl show route for 192.168.77.130        the route BIRD would use for that address
  birdcl show route protocol Mesh_10_0_0_10   what that peer announced
  birdcl show route count   |   birdcl show status   |   birdcl 'show protocols "Mesh*"'
  birdcl                        reads commands after a 'bird> ' prompt; quit or exit ends it

Commands abbreviate as birdcl abbreviates them (sh pro, sh ro). Emulated:
  ${EMULATED}
BIRD's other commands are recognised and refused (exit 2). Unknown or ambiguous ones get birdcl's own words and
exit 1 (the real birdcl exits 0).

-o json prints what the text is made of: show protocols -> {"protocols": [{name, proto, table, state, since, info,
neighbour}]} (neighbour: the speaker's own state of that session), show route -> {"routes": [{network, protocol,
via, since, preference, primary, from?, bgp?}]}, show status -> {version, routerId, startedAt}. Times there are
ISO; the text prints them as BIRD does: HH:MM:SS, in UTC (the containers' local time), or the date once older
than 20 hours.`;

export interface BirdclOptions {
  /** The agent's socket (default: $IPIP_LAB_SOCKET or the node container's). */
  readonly socketPath?: string;
  readonly now?: () => number;
  /** Where the interactive mode reads commands (default: standard input). */
  readonly input?: NodeJS.ReadableStream;
  readonly interactive?: boolean;
}

/** Reads the speaker once per command; a node without one is a node without BIRD. */
function agentSource(agent: AgentClient): BirdSource {
  let status: Promise<SpeakerStatus> | undefined;
  return {
    status: () => (status ??= agent.request('GET /v1/bgp')),
    birdRoutes: async () => {
      const [speaker, dataplane] = await Promise.all([
        (status ??= agent.request('GET /v1/bgp')),
        agent.request('GET /v1/dataplane'),
      ]);
      return birdRoutes({ status: speaker, links: dataplane.links, routes: dataplane.routes });
    },
  };
}

/** birdcl's own words when it finds no BIRD, and ours on why. */
function noBird(io: Io, error: unknown): number {
  const reason =
    error instanceof AgentError && error.status === 404
      ? "this node's agent runs no BGP speaker (it was started with --routes spec: its routes come from the spec)"
      : `${(error as Error).message}; birdcl asks this node's agent, so run it in a node container, e.g. ` +
        'docker compose exec master-node birdcl show protocols';
  io.err(`Unable to connect to server control socket (${BIRD_SOCKET}): No such file or directory\n`);
  io.err(`(ipip-lab: ${reason})\n`);
  return 1;
}

/** Runs one command line; resolves with the exit code. */
async function runOne(
  line: string,
  source: BirdSource,
  io: Io,
  options: { json: boolean; verbose: boolean; now: number },
): Promise<number> {
  let command: string;
  try {
    command = expandCommand(line);
  } catch (error) {
    if (!(error instanceof ClientRefusal)) throw error;
    io.out(error.message);
    return 1;
  }
  const result = await answer(command, source, options.now);
  if ('notEmulated' in result) {
    io.err(
      `birdcl (ipip-lab): BIRD has \`${result.notEmulated}\`, this lab does not emulate it (it does: ${EMULATED})\n`,
    );
    return 2;
  }
  const failed = result.messages.some((message) => message.code >= 8000);
  if (options.json && !failed) printJson(io, result.json);
  else io.out(birdclText(result.messages, options.verbose));
  return failed ? 1 : 0;
}

/** birdcl's interactive loop (client/birdcl.c): prompt, echo the line when input is not a terminal, EOF ends. */
async function interactive(
  source: () => BirdSource,
  io: Io,
  options: { json: boolean; verbose: boolean; now: () => number; input: NodeJS.ReadableStream; tty: boolean },
): Promise<number> {
  const lines = createInterface({ input: options.input, terminal: false });
  io.out('bird> ');
  for await (const line of lines) {
    if (!options.tty) io.out(`${line}\n`);
    const trimmed = line.trim();
    if (trimmed !== '') {
      let expanded: string | undefined;
      try {
        expanded = expandCommand(trimmed);
      } catch {
        expanded = undefined;
      }
      if (expanded === 'exit' || expanded === 'quit') {
        lines.close();
        return 0;
      }
      if (expanded === 'help') io.out("Press `?' for context sensitive help.\n");
      else await runOne(trimmed, source(), io, { ...options, now: options.now() });
    }
    io.out('bird> ');
  }
  io.out('\n');
  return 0;
}

export async function runBirdcl(
  argv: readonly string[],
  io: Io = processIo,
  options: BirdclOptions = {},
): Promise<number> {
  const program = new Command('birdcl')
    .description(SUMMARY)
    .addHelpText('after', GUIDE)
    .usage('[-s <control-socket>] [-v] [-r] [-l] [COMMAND...]')
    .argument('[command...]', 'a BIRD command, e.g. show protocols (the words may be given separately)')
    .option('-s <control-socket>', `BIRD's socket (default ${BIRD_SOCKET}); the lab's birdcl asks the agent instead`)
    .option('-v', 'verbose: print the reply codes, as birdcl -v does')
    .option('-r', 'restricted (accepted; the emulated commands are all read-only)')
    .option('-l', 'look for the socket in the current directory (accepted, as for -s)')
    .addOption(new Option('-o, --output <format>', 'json: what the text is made of (see below)').choices(['json']))
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      // birdcl's getopt refusal is its usage line (client/client.c usage()).
      outputError: (text, write) =>
        write(text.includes('unknown option') ? 'Usage: birdcl [-s <control-socket>] [-v] [-r] [-l]\n' : text),
    })
    .exitOverride()
    .allowExcessArguments(false);
  let words: string[] = [];
  try {
    program.action((command: string[]) => {
      words = command;
    });
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return error.code === 'commander.helpDisplayed' ? 0 : 1;
    throw error;
  }
  const flags = program.opts<{ v?: boolean; output?: string }>();
  const now = options.now ?? Date.now;
  const agent = new AgentClient({ socketPath: options.socketPath ?? agentSocketPath() }, 'this node', 5000);
  const json = flags.output === 'json';
  const verbose = flags.v === true;
  try {
    // BIRD greets first; a node without a speaker is one whose BIRD is not running.
    await agent.request('GET /v1/bgp');
  } catch (error) {
    if (error instanceof UsageError) return noBird(io, error);
    throw error;
  }
  if (!json) io.out(birdclText([BIRD_GREETING], verbose));
  try {
    if (words.length > 0) return await runOne(words.join(' '), agentSource(agent), io, { json, verbose, now: now() });
    return await interactive(() => agentSource(agent), io, {
      json,
      verbose,
      now,
      input: options.input ?? process.stdin,
      tty: options.interactive ?? process.stdin.isTTY === true,
    });
  } catch (error) {
    if (error instanceof UsageError) return noBird(io, error);
    throw error;
  }
}
