/**
 * `ipip-lab extcap`: the running labs' interfaces in Wireshark's own interface list (and tshark's `-D`), as a
 * Wireshark extcap (the protocol of wsdg_capture.adoc: --extcap-interfaces, --extcap-dlts, --extcap-config, then
 * --capture --fifo). `ipip-lab extcap install` puts a small script into the personal extcap folder of the Wireshark
 * found here; Wireshark runs it with the protocol's options, and it runs this command.
 *
 * It reaches the node containers as the host CLI does, with `docker exec` (never by sending to a lab address): a
 * capture is `ipip-lab capture -i IFACE -w -` inside the node's container, its pcapng streamed into Wireshark's FIFO.
 */
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, createWriteStream, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import type { Io } from '../common.js';
import { ExitStatus, UsageError } from '../errors.js';

const run = promisify(execFile);

/** The script's name in the extcap folder, and the prefix of every interface it offers. */
const EXTCAP_NAME = 'ipip-lab';
/** Every tap carries bare IPv4 (capture/session.ts writes LINKTYPE_RAW). */
const DLT = '{number=101}{name=RAW}{display=Raw IPv4 (ipip-lab)}';
const NODE_IMAGE = /^ipip-lab-node(:|$)/;
/** docker and tshark answer in well under this, or not at all. */
const COMMAND_TIMEOUT_MS = 15_000;

/** One capturable interface of a node container. */
export interface ExtcapInterface {
  /** What Wireshark passes back in --extcap-interface: `ipip-lab:CONTAINER:IFACE`. */
  value: string;
  display: string;
}

export function interfaceValue(container: string, iface: string): string {
  return `${EXTCAP_NAME}:${container}:${iface}`;
}

export function parseInterfaceValue(value: string): { container: string; iface: string } {
  const match = /^ipip-lab:([^:]+):([^:]+)$/.exec(value);
  if (!match) throw new UsageError(`--extcap-interface ${value}: not one of ipip-lab's (ipip-lab:CONTAINER:IFACE)`);
  return { container: match[1], iface: match[2] };
}

interface NodeContainer {
  name: string;
  lab: string;
  node: string;
}

/** The node containers running an agent: the node image, its command `node --name NODE`. */
async function nodeContainers(): Promise<NodeContainer[]> {
  const { stdout } = await run(
    'docker',
    [
      'ps',
      '--format',
      '{{.Names}}\t{{.Image}}\t{{.Command}}\t{{.Label "com.docker.compose.project"}}\t{{.Label "ipip-lab.lab"}}',
      '--no-trunc',
    ],
    { timeout: COMMAND_TIMEOUT_MS },
  );
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split('\t'))
    .filter(([, image, command]) => NODE_IMAGE.test(image) && /\bnode --name /.test(command))
    .map(([name, , command, project, lab]) => ({
      name,
      lab: lab || project || 'lab',
      node: /--name (\S+)/.exec(command)?.[1].replace(/"$/, '') ?? name,
    }));
}

/** A node's interfaces, from its agent: eth0, tunl0, one cali… per pod, and any. */
async function interfacesOf(container: NodeContainer): Promise<ExtcapInterface[]> {
  const { stdout } = await run('docker', ['exec', container.name, 'ipip-lab', 'api', 'GET', '/v1/node'], {
    timeout: COMMAND_TIMEOUT_MS,
  });
  const info = JSON.parse(stdout) as { pods: { name: string; hostInterface: string }[] };
  const named = (iface: string, what: string): ExtcapInterface => ({
    value: interfaceValue(container.name, iface),
    display: `${container.lab} ${container.node} ${what}`,
  });
  return [
    named('eth0', 'eth0'),
    named('tunl0', 'tunl0'),
    ...info.pods.map((pod) => named(pod.hostInterface, `${pod.hostInterface} (${pod.name})`)),
    named('any', 'any'),
  ];
}

export async function listInterfaces(): Promise<ExtcapInterface[]> {
  const containers = await nodeContainers();
  // A node that does not answer is left out, not the whole list.
  const lists = await Promise.all(containers.map((container) => interfacesOf(container).catch(() => [])));
  return lists.flat();
}

/**
 * Where this machine's Wireshark looks for personal extcaps: `Personal Extcap path` from `tshark -G folders` where
 * it says (4.2 and later), else the folder of its version (4.0: the personal configuration's extcap; 4.1 moved it).
 */
export async function personalExtcapFolder(): Promise<string> {
  let folders: string;
  let version: string;
  try {
    [folders, version] = await Promise.all([
      run('tshark', ['-G', 'folders'], { timeout: COMMAND_TIMEOUT_MS }).then((result) => result.stdout),
      run('tshark', ['-v'], { timeout: COMMAND_TIMEOUT_MS }).then((result) => result.stdout),
    ]);
  } catch (error) {
    throw new UsageError(
      `cannot ask tshark where Wireshark keeps extcaps (${(error as Error).message.split('\n')[0]}); install tshark ` +
        'or pass --folder DIR',
    );
  }
  const field = (name: string): string | undefined =>
    folders
      .split('\n')
      .find((line) => line.startsWith(`${name}:`))
      ?.split('\t')
      .pop()
      ?.trim();
  const personal = field('Personal Extcap path');
  if (personal) return personal;
  const [major = 0, minor = 0] = (/(\d+)\.(\d+)\.\d+/.exec(version)?.slice(1) ?? []).map(Number);
  if (major > 4 || (major === 4 && minor >= 1)) return path.join(os.homedir(), '.local', 'lib', 'wireshark', 'extcap');
  return path.join(field('Personal configuration') ?? path.join(os.homedir(), '.config', 'wireshark'), 'extcap');
}

/** This package's CLI, by absolute path: the script must work from any directory Wireshark starts it in. */
function cliEntry(): string {
  return fileURLToPath(new URL('../main.js', import.meta.url));
}

/**
 * The script Wireshark runs. It answers the two questions Wireshark asks once per interface itself (no options, one
 * link type): a Node.js start for each would keep a lab of many pods out of the list for seconds.
 */
function scriptText(): string {
  return [
    '#!/bin/sh',
    "# Wireshark's extcap for ipip-lab's labs (written by ipip-lab extcap install).",
    'for argument in "$@"; do',
    '  case "$argument" in',
    '    --extcap-config) exit 0 ;;',
    `    --extcap-dlts) echo 'dlt ${DLT}'; exit 0 ;;`,
    '  esac',
    'done',
    `exec "${process.execPath}" "${cliEntry()}" extcap "$@"`,
    '',
  ].join('\n');
}

/** A capture through docker exec into `fifo`, until Wireshark stops it (SIGINT, SIGTERM) or closes the FIFO. */
async function capture(value: string, fifo: string, filter: string | undefined, io: Io): Promise<number> {
  const { container, iface } = parseInterfaceValue(value);
  // The capture's process in the container, by a file of its own: a docker exec client that goes does not stop it.
  const pidFile = `/tmp/ipip-lab-extcap-${randomUUID()}.pid`;
  const inner = `echo $$ > ${pidFile}; exec ipip-lab capture -i "$0" -w - ${filter ? '-f "$1"' : ''}`;
  const child = spawn('docker', ['exec', container, 'sh', '-c', inner, iface, ...(filter ? [filter] : [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = createWriteStream(fifo);
  child.stdout.pipe(out);
  // Wireshark shows whatever an extcap writes to stderr as an error: the capture's progress lines are kept, and
  // said only if the capture fails.
  const said: Buffer[] = [];
  child.stderr.on('data', (data: Buffer) => said.push(data));
  let stopping: Promise<unknown> | undefined;
  const stop = (): void => {
    stopping ??= run('docker', ['exec', container, 'sh', '-c', `kill -INT "$(cat ${pidFile})"; rm -f ${pidFile}`], {
      timeout: COMMAND_TIMEOUT_MS,
    }).catch(() => undefined);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // Wireshark closed the FIFO: the next write fails.
  out.on('error', stop);
  const code = await new Promise<number>((resolve) => child.on('close', (status) => resolve(status ?? 1)));
  await stopping;
  out.end();
  if (stopping) return 0;
  if (code !== 0) io.err(Buffer.concat(said).toString());
  return code;
}

interface ExtcapOptions {
  extcapInterfaces?: boolean;
  extcapDlts?: boolean;
  extcapConfig?: boolean;
  extcapInterface?: string;
  capture?: boolean;
  fifo?: string;
  extcapCaptureFilter?: string;
}

export function registerExtcapCommand(program: Command, io: Io): void {
  const extcap = program
    .command('extcap')
    .description("Wireshark's interface list shows the running labs: install, uninstall, and the extcap protocol")
    .option('--extcap-interfaces', "list every running lab's interfaces (Wireshark asks)")
    .option('--extcap-dlts', "the interface's link type (Wireshark asks)")
    .option('--extcap-config', "the interface's options: none (Wireshark asks)")
    .option('--extcap-interface <value>', 'the interface Wireshark means')
    .option('--capture', 'capture into --fifo')
    .option('--fifo <path>', "Wireshark's FIFO")
    .option('--extcap-capture-filter <filter>', 'a capture filter (tcpdump words), passed to ipip-lab capture -f')
    // Wireshark passes options of its own (--extcap-version=4.0, the interface's preferences), and may add more.
    .allowUnknownOption()
    .allowExcessArguments()
    .addHelpText(
      'after',
      '\nInstall it once, then pick "<lab> <node> <interface>" in Wireshark, or capture with tshark:\n' +
        '  ipip-lab extcap install\n  tshark -D | grep ipip-lab\n' +
        '  tshark -i ipip-lab:ipip-lab-worker-node01-1:tunl0 -a duration:5 -w tunl0.pcapng\n  ipip-lab extcap uninstall',
    )
    .action(async (options: ExtcapOptions) => {
      if (options.extcapInterfaces) {
        const lines = [`extcap {version=0.1.0}{help=https://github.com/ipip-lab/ipip-lab}`];
        for (const entry of await listInterfaces())
          lines.push(`interface {value=${entry.value}}{display=${entry.display}}`);
        return io.out(`${lines.join('\n')}\n`);
      }
      if (options.extcapDlts) return io.out(`dlt ${DLT}\n`);
      if (options.extcapConfig) return;
      if (options.capture) {
        if (!options.extcapInterface || !options.fifo) {
          throw new UsageError('--capture needs --extcap-interface VALUE and --fifo PATH (Wireshark passes both)');
        }
        throw new ExitStatus(await capture(options.extcapInterface, options.fifo, options.extcapCaptureFilter, io));
      }
      extcap.outputHelp();
    });

  extcap
    .command('install')
    .description("put ipip-lab's extcap into the personal extcap folder of this machine's Wireshark")
    .option('--folder <dir>', 'another folder (default: asked of tshark -G folders)')
    .action(async (options: { folder?: string }) => {
      const folder = options.folder ?? (await personalExtcapFolder());
      mkdirSync(folder, { recursive: true });
      const file = path.join(folder, EXTCAP_NAME);
      writeFileSync(file, scriptText());
      chmodSync(file, 0o755);
      io.out(`installed ${file}: Wireshark and tshark -D list the running labs' interfaces as "ipip-lab:…"\n`);
    });

  extcap
    .command('uninstall')
    .description("remove ipip-lab's extcap from that folder")
    .option('--folder <dir>', 'another folder (default: asked of tshark -G folders)')
    .action(async (options: { folder?: string }) => {
      const file = path.join(options.folder ?? (await personalExtcapFolder()), EXTCAP_NAME);
      if (!existsSync(file)) return io.out(`nothing to remove: no ${file}\n`);
      rmSync(file);
      io.out(`removed ${file}\n`);
    });
}
