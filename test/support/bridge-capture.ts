/**
 * tshark on a Docker bridge, from the host: the lab's wire itself, with no container's view in between. Needs the
 * rights to capture on the host (root, or dumpcap's capabilities), as CI has.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface BridgeCapture {
  /** Stops tshark (as Ctrl-C does) and returns the pcapng file it wrote. */
  stop(): Promise<string>;
}

const ARMED_WITHIN_MS = 10_000;
/**
 * dumpcap takes packets from the kernel's ring in batches, as libpcap does without immediate mode, and what the ring
 * still holds when it is told to stop is lost: the last packets get this long to be read first.
 */
const DRAIN_MS = 1_000;

/** Starts tshark on `bridge` with a capture filter; resolves once it says it is capturing. */
export function captureBridge(bridge: string, filter: string): Promise<BridgeCapture> {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'ipip-lab-bridge-')), `${bridge}.pcapng`);
  const tshark = spawn('tshark', ['-i', bridge, '-f', filter, '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => tshark.on('close', resolve));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      tshark.kill('SIGKILL');
      reject(new Error(`tshark on ${bridge} did not start capturing within ${ARMED_WITHIN_MS} ms: ${stderr.trim()}`));
    }, ARMED_WITHIN_MS);
    tshark.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`tshark could not run (${error.message}): the bridge tests need it on the host`));
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`tshark on ${bridge} exited ${code} before capturing: ${stderr.trim()}`));
    });
    tshark.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (!stderr.includes('Capturing on')) return;
      clearTimeout(timer);
      resolve({
        stop: async () => {
          await new Promise((resolveDrain) => setTimeout(resolveDrain, DRAIN_MS));
          tshark.kill('SIGINT');
          const code = await exited;
          if (code !== 0) throw new Error(`tshark on ${bridge} exited ${code}: ${stderr.trim()}`);
          return file;
        },
      });
    });
  });
}
