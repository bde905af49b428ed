/**
 * kernelDataplaneUnavailable over a fake host: /proc/self/status's CapEff mask as Docker sets it (the default set,
 * cap_add, privileged), /dev/net/tun, and a tunl0 that is the ipip module's (ARPHRD_TUNNEL, 768) or not there.
 */
import { describe, expect, it } from 'vitest';
import { kernelDataplaneUnavailable, type KernelHost } from '../../../src/node/kernel/requirements.js';

const bit = (n: number): bigint => 1n << BigInt(n);
const NET_ADMIN = bit(12);
const SYS_ADMIN = bit(21);

/** Docker's default capability set: CHOWN … AUDIT_WRITE, SETFCAP; neither NET_ADMIN nor SYS_ADMIN. */
const DOCKER_DEFAULT = 0x00000000a80425fbn;
/** A privileged container on a 5.8+ kernel: every capability up to CAP_CHECKPOINT_RESTORE (40). */
const PRIVILEGED = 0x000001ffffffffffn;

function status(capEff: bigint | undefined): string {
  const hex = (value: bigint) => value.toString(16).padStart(16, '0');
  return [
    'Name:\tnode',
    'Umask:\t0022',
    'State:\tS (sleeping)',
    'CapInh:\t0000000000000000',
    `CapPrm:\t${hex(capEff ?? 0n)}`,
    ...(capEff === undefined ? [] : [`CapEff:\t${hex(capEff)}`]),
    `CapBnd:\t${hex(capEff ?? 0n)}`,
    'CapAmb:\t0000000000000000',
    'NoNewPrivs:\t0',
    '',
  ].join('\n');
}

interface HostSpec {
  capEff?: bigint;
  tun?: boolean;
  /** The content of /sys/class/net/tunl0/type, or undefined for no tunl0. */
  tunl0Type?: string;
}

function host({ capEff, tun = true, tunl0Type }: HostSpec): KernelHost & { read: string[] } {
  const files = new Map<string, string>([['/proc/self/status', status(capEff)]]);
  if (tun) files.set('/dev/net/tun', '');
  if (tunl0Type !== undefined) files.set('/sys/class/net/tunl0/type', tunl0Type);
  const read: string[] = [];
  return {
    read,
    readFile: (path) => {
      read.push(path);
      const content = files.get(path);
      if (content === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      return content;
    },
    exists: (path) => files.has(path),
  };
}

describe('kernelDataplaneUnavailable', () => {
  it('is undefined with NET_ADMIN and SYS_ADMIN, /dev/net/tun and no tunl0', () => {
    expect(kernelDataplaneUnavailable(host({ capEff: DOCKER_DEFAULT | NET_ADMIN | SYS_ADMIN }))).toBeUndefined();
    expect(kernelDataplaneUnavailable(host({ capEff: PRIVILEGED }))).toBeUndefined();
    // Exactly the two bits, nothing else.
    expect(kernelDataplaneUnavailable(host({ capEff: NET_ADMIN | SYS_ADMIN }))).toBeUndefined();
  });

  it("names both capabilities in Docker's default set, and reads them from CapEff", () => {
    const reason = kernelDataplaneUnavailable(host({ capEff: DOCKER_DEFAULT }));
    expect(reason).toMatch(/NET_ADMIN/);
    expect(reason).toMatch(/SYS_ADMIN/);
    expect(reason).toMatch(/cap_add|privileged/);
  });

  it.each([
    { name: 'NET_ADMIN only', capEff: DOCKER_DEFAULT | NET_ADMIN, missing: 'SYS_ADMIN', present: 'NET_ADMIN' },
    { name: 'SYS_ADMIN only', capEff: DOCKER_DEFAULT | SYS_ADMIN, missing: 'NET_ADMIN', present: 'SYS_ADMIN' },
    // The neighbouring bits are other capabilities: NET_RAW (13), NET_BROADCAST (11), SYS_CHROOT (18), SYS_PTRACE (19).
    {
      name: 'bits 11 and 13, 20 and 22',
      capEff: bit(11) | bit(13) | bit(20) | bit(22) | SYS_ADMIN,
      missing: 'NET_ADMIN',
      present: 'SYS_ADMIN',
    },
    {
      name: 'bits 20 and 22 beside NET_ADMIN',
      capEff: bit(20) | bit(22) | NET_ADMIN,
      missing: 'SYS_ADMIN',
      present: 'NET_ADMIN',
    },
  ])('with $name names only what is missing', ({ capEff, missing, present }) => {
    const reason = kernelDataplaneUnavailable(host({ capEff }));
    expect(reason).toContain(missing);
    expect(reason).not.toContain(present);
  });

  it('treats a status without CapEff as no capabilities at all', () => {
    const reason = kernelDataplaneUnavailable(host({ capEff: undefined }));
    expect(reason).toMatch(/NET_ADMIN and SYS_ADMIN/);
  });

  it('reads the capabilities as hexadecimal, high bits included', () => {
    // "0000000000201000": read as decimal it would be another mask with neither bit set.
    expect(kernelDataplaneUnavailable(host({ capEff: NET_ADMIN | SYS_ADMIN }))).toBeUndefined();
    expect(kernelDataplaneUnavailable(host({ capEff: bit(40) | bit(33) | NET_ADMIN | SYS_ADMIN }))).toBeUndefined();
    expect(kernelDataplaneUnavailable(host({ capEff: bit(44) | bit(53) }))).toMatch(/NET_ADMIN and SYS_ADMIN/);
  });

  it('without /dev/net/tun says which device to pass in', () => {
    const reason = kernelDataplaneUnavailable(host({ capEff: PRIVILEGED, tun: false }));
    expect(reason).toMatch(/\/dev\/net\/tun/);
    expect(reason).not.toMatch(/NET_ADMIN|SYS_ADMIN/);
  });

  it('reports missing capabilities before a missing /dev/net/tun', () => {
    expect(kernelDataplaneUnavailable(host({ capEff: DOCKER_DEFAULT, tun: false }))).toMatch(/NET_ADMIN/);
  });

  it("refuses a tunl0 of type 768, the ipip module's fallback device, whose name no TUN can take", () => {
    const reason = kernelDataplaneUnavailable(host({ capEff: PRIVILEGED, tunl0Type: '768\n' }));
    expect(reason).toMatch(/ipip/);
    expect(reason).toMatch(/tunl0/);
  });

  it('accepts a tunl0 of another type (a TUN left by a previous run is ARPHRD_NONE, 65534) or none', () => {
    expect(kernelDataplaneUnavailable(host({ capEff: PRIVILEGED, tunl0Type: '65534\n' }))).toBeUndefined();
    expect(kernelDataplaneUnavailable(host({ capEff: PRIVILEGED, tunl0Type: '769\n' }))).toBeUndefined();
    const none = host({ capEff: PRIVILEGED });
    expect(kernelDataplaneUnavailable(none)).toBeUndefined();
    expect(none.read).not.toContain('/sys/class/net/tunl0/type');
  });
});
