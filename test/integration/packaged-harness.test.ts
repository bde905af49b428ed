/**
 * The harness as a user gets it: this repository packed with `npm pack`, installed into an empty project with the
 * README's own install command, and the README's own test pasted in unchanged and run with that project's vitest.
 * It starts the first seed's lab (10.0.0.0/24), so it runs alone, as every container test does here.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const REPOSITORY = fileURLToPath(new URL('../..', import.meta.url));
const STEP_TIMEOUT_MS = 8 * 60_000;
const OUTPUT_BYTES = 32 * 1024 * 1024;

interface Run {
  code: number;
  output: string;
}

/** The environment of a user's shell: none of this run's vitest variables, which would make the inner one a worker. */
function userEnvironment(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(VITEST|NODE_OPTIONS$|TEST$|FORCE_COLOR$)/.test(key)),
  );
  return {
    ...env,
    NO_COLOR: '1',
    TESTCONTAINERS_RYUK_DISABLED: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
  };
}

function run(command: string, args: readonly string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd, env: userEnvironment(), timeout: STEP_TIMEOUT_MS, maxBuffer: OUTPUT_BYTES },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}

/** The README's code block of this language that comes first after `marker`. */
function readmeBlock(marker: string, language: string): string {
  const readme = readFileSync(path.join(REPOSITORY, 'README.md'), 'utf8');
  const at = readme.indexOf(marker);
  if (at < 0) throw new Error(`the README no longer says ${JSON.stringify(marker)}`);
  const block = new RegExp('```' + language + '\\n([\\s\\S]*?)```').exec(readme.slice(at));
  if (!block) throw new Error(`no ${language} block after ${JSON.stringify(marker)} in the README`);
  return block[1];
}

/** `npm install …` as the README gives it, split into words, its comment left off. */
function readmeInstallCommand(): string[] {
  const line = readmeBlock('In your own project:', 'bash').split('\n')[0];
  const words = line.replace(/#.*$/, '').trim().split(/\s+/);
  expect(words.slice(0, 2)).toEqual(['npm', 'install']);
  return words.slice(1);
}

let project: string;
let tarball: string;

beforeAll(async () => {
  project = mkdtempSync(path.join(tmpdir(), 'ipip-lab-user-project-'));
  const packed = await run('npm', ['pack', '--pack-destination', project], REPOSITORY);
  if (packed.code !== 0) throw new Error(`npm pack failed:\n${packed.output}`);
  [tarball] = readdirSync(project).filter((file) => file.endsWith('.tgz'));
  writeFileSync(
    path.join(project, 'package.json'),
    `${JSON.stringify({ name: 'my-lab-tests', private: true }, null, 2)}\n`,
  );
}, STEP_TIMEOUT_MS);

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

describe('the harness from a packed tarball, in a project of its own', () => {
  test('the package holds what the node image builds from, and no build output of this machine', async () => {
    const listed = await run('tar', ['tzf', tarball], project);
    const files = listed.output.split('\n');
    expect(files).toEqual(
      expect.arrayContaining([
        'package/npm-shrinkwrap.json',
        'package/containers/Dockerfile',
        'package/src/node/agent.ts',
        'package/tsconfig.json',
      ]),
    );
    expect(files.filter((file) => /^package\/(native\/build|node_modules|test)\//.test(file))).toEqual([]);
    // The repository itself keeps package-lock.json; the shrinkwrap exists only while npm packs.
    expect(readdirSync(REPOSITORY)).not.toContain('npm-shrinkwrap.json');
  });

  test(
    "installs with the README's command",
    async () => {
      const installed = await run('npm', readmeInstallCommand(), project);
      expect(installed.code, installed.output).toBe(0);
      const files = readdirSync(path.join(project, 'node_modules', 'ipip-lab'));
      expect(files).toEqual(
        expect.arrayContaining(['npm-shrinkwrap.json', 'src', 'containers', 'dist', 'tsconfig.json']),
      );
    },
    STEP_TIMEOUT_MS,
  );

  test(
    "passes the README's test, pasted unchanged",
    async () => {
      writeFileSync(path.join(project, 'lab.test.ts'), readmeBlock('A test you can paste', 'ts'));
      const tested = await run('npx', ['vitest', 'run'], project);
      expect(tested.code, tested.output).toBe(0);
      expect(tested.output).toMatch(/Tests\s+1 passed \(1\)/);
    },
    STEP_TIMEOUT_MS,
  );
});
