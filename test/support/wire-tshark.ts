/**
 * tshark as an independent reader of what the wire layer writes and decodes. CI installs it, so a missing tshark
 * fails the tests that use it instead of skipping them.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs tshark and returns stdout split into rows of tab-separated columns. */
export async function tsharkRows(args: string[]): Promise<string[][]> {
  const { stdout } = await run('tshark', args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.split('\t'));
}

/** `-T fields` with every occurrence of each field, `;`-joined, fragments left as on the wire. */
export function tsharkFields(file: string, fields: string[], extra: string[] = []): Promise<string[][]> {
  return tsharkRows([
    '-r',
    file,
    '-o',
    'ip.defragment:FALSE',
    ...extra,
    '-T',
    'fields',
    '-E',
    'occurrence=a',
    '-E',
    'aggregator=;',
    ...fields.flatMap((field) => ['-e', field]),
  ]);
}
