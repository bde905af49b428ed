/**
 * The seed labs' commands that the views in program.ts do not cover: `apply -f` and `delete -f`, which change the
 * lab's workloads, and `ifconfig`, the second seed's look at tunl0 with the agent's live counters.
 */
import type { Command } from 'commander';
import { loadCluster, resolveNode, resolveSpecPath } from '../cluster-source.js';
import { jsonOutputOption, printJson, specOption, type CommonOptions, type Io } from '../common.js';
import { ExitStatus } from '../errors.js';
import { runManifestCommand } from '../kubectl-apply.js';
import { agentFor } from './agent-client.js';
import { renderIfconfig } from './ifconfig-view.js';

const MANIFEST_HELP =
  "\nOnly apps/v1 Deployments are supported. The lab has no API server: the change is written into the lab's\n" +
  'spec (in a node container: /etc/ipip-lab/cluster.yaml, shared by every node), then every node agent re-reads it\n' +
  'and rebuilds its pods and routes. A Deployment is keyed by namespace and name; applying the same file twice\n' +
  'prints "unchanged". Outside a node container, --spec FILE names the spec to edit (no agent is told).\n';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function registerManifestCommand(program: Command, io: Io, verb: 'apply' | 'delete'): void {
  program
    .command(verb)
    .description(
      verb === 'apply'
        ? 'create or update Deployments from a manifest file, as kubectl apply -f does'
        : 'delete the Deployments a manifest file names, as kubectl delete -f does',
    )
    .requiredOption('-f, --filename <file>', 'the manifest file (repeat for several)', collect, [])
    .addOption(specOption())
    .addHelpText(
      'after',
      `${MANIFEST_HELP}\nExample (in the first seed's lab):\n  docker compose exec master-node ipip-lab ${verb} -f deployment.yml`,
    )
    .action((options: { filename: string[]; spec?: string }) =>
      runManifestCommand(verb, options.filename, io, options),
    );
}

function registerIfconfig(program: Command, io: Io): void {
  program
    .command('ifconfig')
    .description("a node's interfaces as net-tools ifconfig prints them, with the agent's live packet counters")
    .argument('[interface]', 'only this interface, e.g. tunl0')
    .option('--node <name>', 'the node (default: this node container)')
    .addOption(jsonOutputOption())
    .addOption(specOption())
    .addHelpText(
      'after',
      '\nExample (the second seed, on its control plane):\n  docker compose -f containers/networking/docker-compose.yml exec networking-control-plane ipip-lab ifconfig tunl0',
    )
    .action(async (name: string | undefined, options: CommonOptions & { node?: string }) => {
      const cluster = loadCluster(resolveSpecPath(options.spec));
      const node = options.node === undefined ? undefined : resolveNode(cluster, options.node);
      const commandLine = `ifconfig${name ? ` ${name}` : ''}${options.node ? ` --node ${options.node}` : ''}`;
      const { links } = await agentFor(cluster, node, commandLine).request('GET /v1/dataplane');
      const shown = name === undefined ? links : links.filter((link) => link.name === name);
      if (name !== undefined && shown.length === 0) {
        // net-tools' own words for an interface that does not exist.
        io.err(`${name}: error fetching interface information: Device not found\n`);
        throw new ExitStatus(1);
      }
      if (options.output === 'json') printJson(io, shown);
      else io.out(renderIfconfig(shown));
    });
}

export function registerManifestCommands(program: Command, io: Io): void {
  registerManifestCommand(program, io, 'apply');
  registerManifestCommand(program, io, 'delete');
  registerIfconfig(program, io);
}
