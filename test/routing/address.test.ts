import { describe, expect, it } from 'vitest';
import { Ipv4Address, Ipv4Prefix, maskOf } from '../../src/routing/address.js';

describe('Ipv4Address', () => {
  it('round-trips dotted quads through uint32', () => {
    const address = Ipv4Address.parse('192.168.77.128');
    expect(address.value).toBe(0xc0a84d80);
    expect(String(address)).toBe('192.168.77.128');
    expect(String(Ipv4Address.fromUint32(0xffffffff))).toBe('255.255.255.255');
    expect(String(Ipv4Address.fromUint32(0))).toBe('0.0.0.0');
    expect(JSON.stringify({ gw: Ipv4Address.parse('10.0.0.11') })).toBe('{"gw":"10.0.0.11"}');
  });

  it.each(['256.1.1.1', '01.2.3.4', '1.2.3', '1.2.3.4.5', '1.2.3.-4', ' 1.2.3.4', '1.2.3.4/32', ''])(
    'rejects %j',
    (text) => {
      expect(Ipv4Address.tryParse(text)).toBeUndefined();
      expect(() => Ipv4Address.parse(text)).toThrow(SyntaxError);
    },
  );

  it('refuses values outside 32 bits', () => {
    expect(() => Ipv4Address.fromUint32(-1)).toThrow(RangeError);
    expect(() => Ipv4Address.fromUint32(2 ** 32)).toThrow(RangeError);
    expect(() => Ipv4Address.fromUint32(1.5)).toThrow(RangeError);
  });

  it('orders and steps like numbers', () => {
    const base = Ipv4Address.parse('192.168.87.192');
    expect(String(base.add(6))).toBe('192.168.87.198');
    expect(base.compare(Ipv4Address.parse('192.168.158.0'))).toBeLessThan(0);
    expect(base.equals(Ipv4Address.parse('192.168.87.192'))).toBe(true);
  });
});

describe('Ipv4Prefix', () => {
  it('parses, formats and reads a bare address as a host route', () => {
    const block = Ipv4Prefix.parse('192.168.87.192/26');
    expect(block.length).toBe(26);
    expect(String(block)).toBe('192.168.87.192/26');
    expect(String(block.netmask)).toBe('255.255.255.192');
    expect(block.size).toBe(64);
    expect(String(block.last())).toBe('192.168.87.255');
    expect(String(Ipv4Prefix.parse('192.168.77.130'))).toBe('192.168.77.130/32');
  });

  it.each(['1.2.3.4/33', '1.2.3.4/', '1.2.3.4/-1', '1.2.3.4/08', '1.2.3.4/100', '256.0.0.0/8', '01.2.3.4/8', '/8'])(
    'rejects %j',
    (text) => {
      expect(Ipv4Prefix.tryParse(text)).toBeUndefined();
    },
  );

  it('masks host bits off but keeps them until asked', () => {
    const host = Ipv4Prefix.parse('10.0.0.11/24');
    expect(host.isMasked()).toBe(false);
    expect(String(host.masked())).toBe('10.0.0.0/24');
    expect(String(host.first())).toBe('10.0.0.0');
    const canonical = Ipv4Prefix.parse('10.0.0.0/24');
    expect(canonical.masked()).toBe(canonical);
  });

  it('contains addresses by value or uint32, including the int32 view of high addresses', () => {
    const block = Ipv4Prefix.parse('192.168.158.0/26');
    expect(block.contains(Ipv4Address.parse('192.168.158.63'))).toBe(true);
    expect(block.contains(Ipv4Address.parse('192.168.158.64'))).toBe(false);
    expect(block.contains(0xc0a89e02)).toBe(true);
    expect(block.contains(0xc0a89e02 | 0)).toBe(true);
  });

  it('overlaps exactly when one contains the other', () => {
    const pool = Ipv4Prefix.parse('192.168.0.0/16');
    const block = Ipv4Prefix.parse('192.168.77.128/26');
    const neighbour = Ipv4Prefix.parse('192.168.77.192/26');
    expect(pool.overlaps(block)).toBe(true);
    expect(block.overlaps(pool)).toBe(true);
    expect(block.overlaps(neighbour)).toBe(false);
    expect(Ipv4Prefix.parse('0.0.0.0/0').overlaps(neighbour)).toBe(true);
  });

  it('gives the address back as a value and as uint32, host bits and high addresses included', () => {
    const high = Ipv4Prefix.parse('192.168.77.130/26');
    expect(high.addressValue).toBe(0xc0a84d82);
    expect(high.address.equals(Ipv4Address.parse('192.168.77.130'))).toBe(true);
    expect(high.masked().addressValue).toBe(0xc0a84d80);
    expect(String(high.last())).toBe('192.168.77.191');
    expect(Ipv4Prefix.parse('255.255.255.255/32').addressValue).toBe(0xffffffff);
  });

  it('compares by value, however the prefix was made', () => {
    const parsed = Ipv4Prefix.parse('192.168.87.192/26');
    const built = Ipv4Prefix.of(Ipv4Address.fromUint32(0xc0a857c0), 26);
    expect(parsed.equals(built)).toBe(true);
    expect(parsed).toEqual(built);
    expect(parsed.equals(Ipv4Prefix.parse('192.168.87.192/27'))).toBe(false);
    expect(Ipv4Prefix.parse('192.168.87.193/26').masked()).toEqual(parsed);
  });

  it('handles /0 and /32 at the edges of the shift arithmetic', () => {
    expect(maskOf(0)).toBe(0);
    expect(maskOf(32)).toBe(0xffffffff);
    expect(maskOf(1)).toBe(0x80000000);
    const all = Ipv4Prefix.parse('0.0.0.0/0');
    expect(all.size).toBe(2 ** 32);
    expect(String(all.last())).toBe('255.255.255.255');
    expect(all.contains(Ipv4Address.parse('255.255.255.255'))).toBe(true);
    expect(String(Ipv4Prefix.parse('1.2.3.4/0').masked())).toBe('0.0.0.0/0');
    const host = Ipv4Prefix.parse('255.255.255.255/32');
    expect(host.contains(0xffffffff)).toBe(true);
    expect(host.contains(0xfffffffe)).toBe(false);
    expect(host.isMasked()).toBe(true);
    expect(() => Ipv4Prefix.of(Ipv4Address.parse('1.2.3.4'), 33)).toThrow(RangeError);
  });
});
