import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generateSpec } from '../../src/calico/index.js';
import { composeFileFor } from '../../src/cli/commands/gen-spec-compose.js';

const LAYOUT = { specFile: './lab.yaml', buildContext: '..', command: 'ipip-lab gen-spec --nodes N' };

function composeFor(nodes: number): { text: string; value: any } {
  const text = composeFileFor(generateSpec({ nodes }).spec, LAYOUT, 'lab.compose.yml');
  return { text, value: parse(text, { merge: true }) };
}

describe('composeFileFor', () => {
  it('shares the node settings through one anchor, as the root docker-compose.yml does', () => {
    const { text, value } = composeFor(4);
    expect(text).toContain('x-node: &node');
    expect(text.match(/<<: \*node/g)).toHaveLength(4);
    expect(value.services['kind-worker3']).toMatchObject({
      restart: 'unless-stopped',
      init: false,
      pull_policy: 'never',
    });
  });

  it("checks health through the agent's API with bash, not a Node process, escaping $ for Compose", () => {
    const { value } = composeFor(2);
    const [kind, shell, flag, script] = value.services['kind-worker'].healthcheck.test as string[];
    expect([kind, shell, flag]).toEqual(['CMD', 'bash', '-c']);
    expect(script).toContain('/dev/tcp/$$(hostname -i)/9440');
    expect(script).toContain('GET /v1/node');
  });

  it("grants every node NET_ADMIN and nothing more, for its peers' managed ARP entries", () => {
    const { text, value } = composeFor(3);
    expect(value.services['kind-worker2'].cap_add).toEqual(['NET_ADMIN']);
    expect(value.services['kind-worker2'].privileged).toBeUndefined();
    expect(text).toMatch(/# To keep the peers' ARP entries out of the host's shared limit.*\n\s+cap_add:/);
  });

  it.each([
    [3, '5s'],
    [10, '5s'],
    [11, '6s'],
    [50, '25s'],
  ])('checks each of %i nodes every %s: about two checks a second in all', (nodes, interval) => {
    expect(composeFor(nodes).value['x-node'].healthcheck.interval).toBe(interval);
  });

  it('heads the file with the command that made it and how to run it', () => {
    const { text } = composeFor(3);
    const header = text.slice(0, text.indexOf('\nname:'));
    expect(header).toContain(LAYOUT.command);
    expect(header).toContain('docker compose -f lab.compose.yml up -d --build --wait');
    expect(header).toContain('docker compose -f lab.compose.yml exec kind-control-plane kubectl get pods -o wide');
    expect(header.split('\n').every((line) => line === '' || line.startsWith('#'))).toBe(true);
  });
});
