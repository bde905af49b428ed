/**
 * The lab's node names in a container's /etc/hosts: one marked block after Docker's own lines, rewritten whole when
 * the nodes change, and nothing else in the file touched.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildCluster, type NodeState } from '../../src/calico/index.js';
import { withLabNodes, writeLabNodes } from '../../src/node/hosts-file.js';
import { Ipv4Address } from '../../src/routing/address.js';
import { seedSpec } from '../support/seed-cluster.js';

const SEED_NODES = buildCluster(seedSpec()).nodes;

/** The seed after a reload: worker-node02 at a new address and a fourth node joined. */
function reloadedNodes(): readonly NodeState[] {
  const spec = seedSpec();
  return buildCluster({
    ...spec,
    nodes: [
      ...spec.nodes.map((node) =>
        node.name === 'worker-node02' ? { ...node, ip: Ipv4Address.parse('10.0.0.22') } : node,
      ),
      { name: 'worker-node03', ip: Ipv4Address.parse('10.0.0.13'), role: 'worker' as const },
    ],
  }).nodes;
}

/** What Docker writes into a container on a user-defined network (`hostname: worker-node01`). */
const DOCKER_HOSTS =
  '127.0.0.1\tlocalhost\n' +
  '::1\tlocalhost ip6-localhost ip6-loopback\n' +
  'fe00::0\tip6-localnet\n' +
  'ff00::0\tip6-mcastprefix\n' +
  'ff02::1\tip6-allnodes\n' +
  'ff02::2\tip6-allrouters\n' +
  '10.0.0.11\tworker-node01\n';

const BEGIN = '# ipip-lab: the lab nodes (rewritten by the agent)';
const END = '# ipip-lab: end';

/** Docker's file already maps worker-node01, the container itself, to its address: the block leaves it out. */
const SEED_BLOCK = `${BEGIN}\n10.0.0.10\tmaster-node\n10.0.0.12\tworker-node02\n${END}\n`;

const count = (text: string, line: string): number => text.split('\n').filter((candidate) => candidate === line).length;

describe('withLabNodes', () => {
  it("adds one block naming every node after Docker's lines, which stay byte for byte", () => {
    const hosts = withLabNodes(DOCKER_HOSTS, SEED_NODES);
    expect(hosts).toBe(DOCKER_HOSTS + SEED_BLOCK);
    expect(hosts.startsWith(DOCKER_HOSTS)).toBe(true);
  });

  it("does not repeat the container's own line, so that hostname -i prints one address", () => {
    const hosts = withLabNodes(DOCKER_HOSTS, SEED_NODES);
    expect(hosts.split('\n').filter((line) => /^10\.0\.0\.11\s+worker-node01$/.test(line))).toHaveLength(1);
    // Another container of the lab keeps worker-node01 in the block, under its own Docker line.
    const onMaster = withLabNodes(
      DOCKER_HOSTS.replace('10.0.0.11\tworker-node01', '10.0.0.10\tmaster-node'),
      SEED_NODES,
    );
    expect(onMaster).toContain(`${BEGIN}\n10.0.0.11\tworker-node01\n10.0.0.12\tworker-node02\n${END}\n`);
  });

  it('is idempotent: the block is added once', () => {
    const once = withLabNodes(DOCKER_HOSTS, SEED_NODES);
    const twice = withLabNodes(once, SEED_NODES);
    expect(twice).toBe(once);
    expect(count(twice, BEGIN)).toBe(1);
    expect(count(twice, END)).toBe(1);
  });

  it('replaces the block when the nodes change, and keeps the rest', () => {
    const before = withLabNodes(DOCKER_HOSTS, SEED_NODES);
    const after = withLabNodes(before, reloadedNodes());
    expect(after).toBe(
      DOCKER_HOSTS + `${BEGIN}\n10.0.0.10\tmaster-node\n10.0.0.22\tworker-node02\n10.0.0.13\tworker-node03\n${END}\n`,
    );
    expect(after).not.toContain('10.0.0.12');
    expect(withLabNodes(after, reloadedNodes())).toBe(after);
    // Back to the seed: the same file as the first time.
    expect(withLabNodes(after, SEED_NODES)).toBe(before);
  });

  it('keeps lines someone added after the block, in their order, ahead of the rewritten block', () => {
    const edited = withLabNodes(DOCKER_HOSTS, SEED_NODES) + '192.0.2.7\tregistry.local\n';
    const rewritten = withLabNodes(edited, reloadedNodes());
    expect(rewritten).toBe(
      DOCKER_HOSTS +
        '192.0.2.7\tregistry.local\n' +
        `${BEGIN}\n10.0.0.10\tmaster-node\n10.0.0.22\tworker-node02\n10.0.0.13\tworker-node03\n${END}\n`,
    );
  });

  it('ends a file that had no final newline before the block, and writes an empty block for no nodes', () => {
    const unterminated = DOCKER_HOSTS.trimEnd();
    expect(withLabNodes(unterminated, SEED_NODES)).toBe(DOCKER_HOSTS + SEED_BLOCK);
    expect(withLabNodes(withLabNodes(DOCKER_HOSTS, SEED_NODES), [])).toBe(`${DOCKER_HOSTS}${BEGIN}\n${END}\n`);
  });
});

describe('writeLabNodes', () => {
  let directory: string | undefined;
  afterEach(() => {
    if (directory !== undefined) rmSync(directory, { recursive: true, force: true });
    directory = undefined;
  });

  function hostsFile(content: string): string {
    directory = mkdtempSync(path.join(tmpdir(), 'ipip-lab-hosts-'));
    const file = path.join(directory, 'hosts');
    writeFileSync(file, content);
    return file;
  }

  it('rewrites the file in place (Docker bind-mounts it), and not at all when nothing changed', () => {
    const file = hostsFile(DOCKER_HOSTS);
    const inode = statSync(file).ino;
    writeLabNodes(file, SEED_NODES);
    expect(readFileSync(file, 'utf8')).toBe(DOCKER_HOSTS + SEED_BLOCK);
    expect(statSync(file).ino).toBe(inode);

    // Unchanged nodes: no write at all, so a later mtime would be someone else's.
    const past = new Date('2020-01-01T00:00:00Z');
    utimesSync(file, past, past);
    writeLabNodes(file, SEED_NODES);
    expect(statSync(file).mtime.getTime()).toBe(past.getTime());

    writeLabNodes(file, reloadedNodes());
    expect(readFileSync(file, 'utf8')).toContain('10.0.0.13\tworker-node03\n');
    expect(statSync(file).ino).toBe(inode);
  });

  it('passes on a file it cannot read', () => {
    directory = mkdtempSync(path.join(tmpdir(), 'ipip-lab-hosts-'));
    expect(() => writeLabNodes(path.join(directory!, 'missing'), SEED_NODES)).toThrow(/ENOENT/);
  });
});
