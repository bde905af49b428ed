import { describe, expect, it } from 'vitest';
import { Ipv4Address, Ipv4Prefix } from '../../src/routing/address.js';
import { LpmTable } from '../../src/routing/lpm.js';

const p = (text: string): Ipv4Prefix => Ipv4Prefix.parse(text);
const a = (text: string): number => Ipv4Address.parse(text).value;

describe('LpmTable', () => {
  it('answers nothing when empty, at both ends of the address space', () => {
    const table = new LpmTable<string>();
    expect(table.size).toBe(0);
    expect(table.lookup(0)).toBeUndefined();
    expect(table.lookup(0xffffffff)).toBeUndefined();
    expect(table.lookupPrefix(0x7fffffff)).toBeUndefined();
    expect([...table.entries()]).toEqual([]);
  });

  it('matches /0 everywhere and /32 only on its address', () => {
    const table = new LpmTable<string>();
    table.insert(p('0.0.0.0/0'), 'default');
    table.insert(p('255.255.255.255/32'), 'top');
    table.insert(p('0.0.0.0/32'), 'bottom');
    expect(table.lookup(0xffffffff)).toBe('top');
    expect(table.lookup(0xfffffffe)).toBe('default');
    expect(table.lookup(0)).toBe('bottom');
    expect(table.lookup(1)).toBe('default');
    expect(table.lookup(0x80000000)).toBe('default');
  });

  it('picks the longest of 33 nested prefixes, one per length, across every stride boundary', () => {
    const table = new LpmTable<number>();
    const address = a('192.168.77.130');
    for (let length = 0; length <= 32; length++) {
      table.insert(Ipv4Prefix.of(Ipv4Address.fromUint32(address), length), length);
    }
    expect(table.size).toBe(33);
    expect(table.lookup(address)).toBe(32);
    // Flipping bit `length` (from the top) leaves exactly the prefixes up to that length matching.
    for (let length = 0; length < 32; length++) {
      const flipped = (address ^ (0x80000000 >>> length)) >>> 0;
      expect(table.lookup(flipped)).toBe(length);
      expect(table.lookupPrefix(flipped)?.length).toBe(length);
    }
  });

  it('routes a Calico node the way the kernel does', () => {
    const table = new LpmTable<string>();
    table.insert(p('10.0.0.0/24'), 'eth0');
    table.insert(p('192.168.77.128/26'), 'blackhole');
    table.insert(p('192.168.77.130/32'), 'cali932a51510af');
    table.insert(p('192.168.87.192/26'), 'tunl0 via 10.0.0.11');
    expect(table.lookup(a('192.168.77.130'))).toBe('cali932a51510af');
    expect(table.lookup(a('192.168.77.131'))).toBe('blackhole');
    expect(table.lookup(a('192.168.77.128'))).toBe('blackhole');
    expect(table.lookup(a('192.168.87.198'))).toBe('tunl0 via 10.0.0.11');
    expect(table.lookup(a('192.168.87.0'))).toBeUndefined();
    expect(table.lookup(a('10.0.0.11'))).toBe('eth0');
  });

  it('takes the int32 view of an address as well as the uint32 one', () => {
    const table = new LpmTable<string>();
    table.insert(p('192.168.0.0/16'), 'pool');
    table.insert(p('192.168.158.2/32'), 'pod');
    expect(table.lookup(a('192.168.158.2') | 0)).toBe('pod');
    expect(table.lookup(a('192.168.1.1') | 0)).toBe('pool');
  });

  it('replaces the value of an identical prefix instead of adding one', () => {
    const table = new LpmTable<string>();
    table.insert(p('192.168.87.192/26'), 'via 10.0.0.11');
    table.insert(p('192.168.87.192/26'), 'via 10.0.0.12');
    expect(table.size).toBe(1);
    expect(table.lookup(a('192.168.87.200'))).toBe('via 10.0.0.12');
  });

  it('stores a prefix with host bits as its masked network', () => {
    const table = new LpmTable<string>();
    table.insert(p('10.0.0.11/24'), 'eth0');
    expect(table.get(p('10.0.0.0/24'))).toBe('eth0');
    expect(table.get(p('10.0.0.99/24'))).toBe('eth0');
    expect(String(table.lookupPrefix(a('10.0.0.200')))).toBe('10.0.0.0/24');
    expect([...table.entries()].map(([prefix]) => String(prefix))).toEqual(['10.0.0.0/24']);
    expect(table.remove(p('10.0.0.1/24'))).toBe(true);
    expect(table.size).toBe(0);
  });

  it('gets exact prefixes only, never a covering one', () => {
    const table = new LpmTable<string>();
    table.insert(p('192.168.0.0/16'), 'pool');
    expect(table.get(p('192.168.0.0/16'))).toBe('pool');
    expect(table.get(p('192.168.0.0/17'))).toBeUndefined();
    expect(table.get(p('192.168.0.0/15'))).toBeUndefined();
  });

  it('uncovers the shorter prefix when a longer one is removed, and reports absent removes', () => {
    const table = new LpmTable<string>();
    table.insert(p('0.0.0.0/0'), 'default');
    table.insert(p('192.168.77.128/26'), 'block');
    table.insert(p('192.168.77.130/32'), 'pod');
    expect(table.remove(p('192.168.77.130/32'))).toBe(true);
    expect(table.lookup(a('192.168.77.130'))).toBe('block');
    expect(table.remove(p('192.168.77.130/32'))).toBe(false);
    expect(table.remove(p('192.168.77.128/25'))).toBe(false);
    expect(table.remove(p('192.168.77.128/26'))).toBe(true);
    expect(table.lookup(a('192.168.77.130'))).toBe('default');
    expect(table.remove(p('0.0.0.0/0'))).toBe(true);
    expect(table.lookup(a('192.168.77.130'))).toBeUndefined();
    expect(table.size).toBe(0);
  });

  it('gives the matched prefix as a new object equal to the stored one, as it keeps no prefix objects', () => {
    const table = new LpmTable<string>();
    const stored = p('192.168.158.0/26');
    table.insert(stored, 'tunl0');
    const matched = table.lookupPrefix(a('192.168.158.2'));
    expect(matched).not.toBe(stored);
    expect(matched?.equals(stored)).toBe(true);
    expect(String(table.lookupPrefix(a('192.168.158.3')))).toBe('192.168.158.0/26');
  });

  it('finds, replaces and removes a prefix whose every trie slot went to longer prefixes of its level', () => {
    const table = new LpmTable<string>();
    // Both /16 halves of the /15 fill all its root slots, so the /15 is in none of them.
    table.insert(p('10.0.0.0/15'), 'outer');
    table.insert(p('10.0.0.0/16'), 'low');
    table.insert(p('10.1.0.0/16'), 'high');
    expect(table.get(p('10.0.0.0/15'))).toBe('outer');
    table.insert(p('10.0.0.0/15'), 'outer, replaced');
    expect(table.size).toBe(3);
    expect(table.remove(p('10.0.0.0/16'))).toBe(true);
    expect(table.lookup(a('10.0.1.1'))).toBe('outer, replaced');
    expect(table.remove(p('10.0.0.0/15'))).toBe(true);
    expect(table.lookup(a('10.0.1.1'))).toBeUndefined();
    expect(table.lookup(a('10.1.1.1'))).toBe('high');
    expect(table.get(p('10.0.0.0/15'))).toBeUndefined();
  });

  it('lists entries in kernel dump order: ascending network, longer prefix first on a tie', () => {
    const table = new LpmTable<number>();
    const order = ['0.0.0.0/32', '0.0.0.0/0', '10.0.0.0/24', '10.0.0.0/8', '10.0.0.1/32', '192.168.77.128/26'];
    for (const [i, text] of [...order].reverse().entries()) table.insert(p(text), i);
    expect([...table.entries()].map(([prefix]) => String(prefix))).toEqual(order);
  });

  it('iterates a snapshot, so removing while iterating is safe', () => {
    const table = new LpmTable<number>();
    for (let i = 0; i < 10; i++) table.insert(p(`10.0.${i}.0/24`), i);
    const seen: number[] = [];
    for (const [prefix, value] of table.entries()) {
      table.remove(prefix);
      seen.push(value);
    }
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(table.size).toBe(0);
  });
});
