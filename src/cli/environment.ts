import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { AgentSystemInfo } from '../node/api-protocol.js';

export const IPIP_LAB_VERSION = '0.1.0';

function prettyName(): string {
  try {
    const match = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (match) return match[1];
  } catch {
    // Not Linux, or a stripped image: fall through to the generic name.
  }
  return `${os.type()} ${os.release()}`;
}

/**
 * The honest values for kubectl's OS-IMAGE, KERNEL-VERSION and CONTAINER-RUNTIME columns: the node containers run
 * Debian, share the host's kernel, and their pods are simulated by ipip-lab itself.
 */
export function localSystemInfo(): AgentSystemInfo {
  return {
    osImage: prettyName(),
    kernelVersion: os.release(),
    containerRuntime: `ipip-lab://${IPIP_LAB_VERSION}`,
    architecture: process.arch === 'x64' ? 'amd64' : process.arch,
  };
}
