/** Which underlay the agent gets: the one asked for, or the default with a logged fallback when it is not built. */
import { describe, expect, test } from 'vitest';
import type { SpecDocument } from '../../../src/calico/index.js';
import { clusterOf, readSpecFile } from '../../../src/cli/cluster-source.js';
import { AgentConfigError, startAgent } from '../../../src/node/agent.js';
import {
  DEFAULT_UNDERLAY,
  openUnderlay,
  UnderlayUnavailableError,
  type Underlay,
  type UnderlayKind,
  type UnderlayOpeners,
} from '../../../src/node/underlay/index.js';
import { SEED_CNI_OVERVIEW } from '../../support/cli.js';

const handlers = { onPacket: () => undefined, onError: () => undefined };

function fakeUnderlay(): Underlay {
  return { sendErrors: 0, send: () => undefined, close: () => undefined };
}

/** Openers that record what was tried: an available kind opens, the others fail as given. */
function openers(failures: Partial<Record<UnderlayKind, Error>>) {
  const tried: UnderlayKind[] = [];
  const opener = (kind: UnderlayKind) => () => {
    tried.push(kind);
    const failure = failures[kind];
    if (failure) throw failure;
    return fakeUnderlay();
  };
  const table: UnderlayOpeners = { native: opener('native'), 'raw-socket': opener('raw-socket') };
  return { table, tried };
}

/** An in-process agent on the seed's worker-node01, with the underlay `table` opens and nothing listening. */
function startTestAgent(spec: SpecDocument, table: UnderlayOpeners, underlay?: UnderlayKind) {
  return startAgent({
    spec,
    cluster: clusterOf(spec),
    nodeName: 'worker-node01',
    apiPort: 9440,
    socketPath: '/nonexistent/agent.sock',
    system: {
      osImage: 'Test OS',
      kernelVersion: '6.1.0',
      containerRuntime: 'ipip-lab://0.1.0',
      architecture: 'amd64',
    },
    log: () => undefined,
    networkInterfaces: () => ({ eth0: [{ family: 'IPv4', address: '10.0.0.11' } as never] }),
    ...(underlay && { underlay }),
    openUnderlay: (requested, handlers, log) => openUnderlay(requested, handlers, log, table),
  });
}

const notBuilt = new UnderlayUnavailableError('the native addon is not built');

test('the default is native', () => {
  expect(DEFAULT_UNDERLAY).toBe('native');
});

describe('without --underlay', () => {
  test('opens native and names it', () => {
    const { table, tried } = openers({});
    const log: string[] = [];
    const opened = openUnderlay(undefined, handlers, (line) => log.push(line), table);
    expect(opened.kind).toBe('native');
    expect(opened.description).toMatch(/^native \(recvmmsg\/sendmmsg/);
    expect(tried).toEqual(['native']);
    expect(log).toEqual([]);
  });

  test('falls back to raw-socket when the addon is not built, and says why', () => {
    const { table, tried } = openers({ native: notBuilt });
    const log: string[] = [];
    const opened = openUnderlay(undefined, handlers, (line) => log.push(line), table);
    expect(opened.kind).toBe('raw-socket');
    expect(opened.description).toMatch(/^raw-socket/);
    expect(tried).toEqual(['native', 'raw-socket']);
    expect(log).toEqual(['underlay native unavailable (the native addon is not built): using raw-socket']);
  });

  test('does not fall back from a socket that would not open: that is the machine, not the build', () => {
    const { table, tried } = openers({
      native: new Error('cannot open a raw IPIP socket (socket: Operation not permitted)'),
    });
    expect(() => openUnderlay(undefined, handlers, () => undefined, table)).toThrow(/Operation not permitted/);
    expect(tried).toEqual(['native']);
  });
});

describe('with --underlay', () => {
  test('native that is not built is refused, never replaced by raw-socket', () => {
    const { table, tried } = openers({ native: notBuilt });
    expect(() => openUnderlay('native', handlers, () => undefined, table)).toThrow(UnderlayUnavailableError);
    expect(tried).toEqual(['native']);
  });

  test('raw-socket opens raw-socket', () => {
    const { table, tried } = openers({});
    expect(openUnderlay('raw-socket', handlers, () => undefined, table).kind).toBe('raw-socket');
    expect(tried).toEqual(['raw-socket']);
  });

  test('the agent turns an unavailable underlay into a config error (the CLI exits 2) naming the option', async () => {
    const spec = readSpecFile(SEED_CNI_OVERVIEW);
    const { table } = openers({ native: notBuilt });
    const started = startTestAgent(spec, table, 'native');
    await expect(started).rejects.toThrow(AgentConfigError);
    await expect(started).rejects.toThrow('--underlay native: the native addon is not built');
  });
});

describe('a pool that sends pod traffic unencapsulated', () => {
  test.each(['CrossSubnet', 'Never'])(
    'ipipMode %s: the userspace node refuses to start, and says why',
    async (mode) => {
      const seed = readSpecFile(SEED_CNI_OVERVIEW);
      const spec = { ...seed, text: seed.text.replace('ipipMode: Always', `ipipMode: ${mode}`) };
      expect(clusterOf(spec).pool.ipipMode).toBe(mode);
      const started = startTestAgent(spec, openers({}).table);
      await expect(started).rejects.toThrow(AgentConfigError);
      await expect(started).rejects.toThrow(
        `pool default-ipv4-ippool has ipipMode ${mode}, which sends pod traffic over eth0 unencapsulated; the userspace ` +
          'node receives only IPIP',
      );
    },
  );
});
