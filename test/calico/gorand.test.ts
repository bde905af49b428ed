import { describe, expect, it } from 'vitest';
import { bigRandBelow, fnv1_32, fnv1a_32, GoRand } from '../../src/calico/gorand.js';

// Golden values from Go's own src/math/rand/regress_test.go: every method group re-seeds with Seed(0).
const INT63_SEED0 = [
  8717895732742165505n,
  2259404117704393152n,
  6050128673802995827n,
  501233450539197794n,
  3390393562759376202n,
  2669985732393126063n,
  1774932891286980153n,
  6044372234677422456n,
  8274930044578894929n,
  1543572285742637646n,
  2661732831099943416n,
  8325060299420976708n,
  7837839688282259259n,
  2518412263346885298n,
  5617773211005988520n,
  2339563716805116249n,
  7144924247938981575n,
  161231572858529631n,
  7259475919510918339n,
  7373105480197164748n,
];
const UINT64_SEED0 = [
  8717895732742165505n,
  2259404117704393152n,
  6050128673802995827n,
  9724605487393973602n,
  12613765599614152010n,
  11893357769247901871n,
  1774932891286980153n,
  15267744271532198264n,
  17498302081433670737n,
  1543572285742637646n,
  11885104867954719224n,
  17548432336275752516n,
  7837839688282259259n,
  2518412263346885298n,
  5617773211005988520n,
  11562935753659892057n,
  16368296284793757383n,
  161231572858529631n,
  16482847956365694147n,
  16596477517051940556n,
];
const UINT32_SEED0 = [
  4059586549, 1052117029, 2817310706, 233405013, 1578775030, 1243308993, 826517535, 2814630155, 3853314576, 718781857,
  1239465936, 3876658295, 3649778518, 1172727096, 2615979505, 1089444252, 3327114623, 75079301, 3380456901, 3433369789,
];
const INT31_SEED0 = [
  2029793274, 526058514, 1408655353, 116702506, 789387515, 621654496, 413258767, 1407315077, 1926657288, 359390928,
  619732968, 1938329147, 1824889259, 586363548, 1307989752, 544722126, 1663557311, 37539650, 1690228450, 1716684894,
];
// The regress test cycles through these arguments for Intn and Int63n.
const INT64_ARGS = [
  1n,
  10n,
  32n,
  1n << 20n,
  (1n << 20n) + 1n,
  1000000000n,
  1n << 30n,
  (1n << 31n) - 2n,
  (1n << 31n) - 1n,
  1000000000000000000n,
  1n << 60n,
  (1n << 63n) - 2n,
  (1n << 63n) - 1n,
];
const INTN_SEED0 = [
  0,
  4,
  25,
  310570,
  857611,
  621654496,
  413258767,
  1407315077,
  1926657288,
  543572285742637646n,
  355889821886249464n,
  8325060299420976708n,
  7837839688282259259n,
  0,
  2,
  14,
  515775,
  839455,
  690228450,
  642943070,
];
const INT63N_SEED0 = [
  0n,
  2n,
  19n,
  959842n,
  688912n,
  393126063n,
  89212473n,
  834026388n,
  1577188963n,
  543572285742637646n,
  355889821886249464n,
  8325060299420976708n,
  7837839688282259259n,
  0n,
  0n,
  25n,
  679623n,
  882178n,
  510918339n,
  782454476n,
];
const INT32_ARGS = [1, 10, 32, 1 << 20, (1 << 20) + 1, 1000000000, 1 << 30, 2 ** 31 - 2, 2 ** 31 - 1];
const INT31N_SEED0 = [
  0, 4, 25, 310570, 857611, 621654496, 413258767, 1407315077, 1926657288, 0, 8, 27, 367019, 209005, 307989752,
  544722126, 1663557311, 37539650, 0, 4,
];

function draw<T>(count: number, next: (i: number) => T): T[] {
  return Array.from({ length: count }, (_, i) => next(i));
}

describe('GoRand matches Go math/rand', () => {
  it('reproduces the regress_test golden Int63, Uint64, Uint32 and Int31 sequences for seed 0', () => {
    let rand = new GoRand(0n);
    expect(draw(20, () => rand.int63())).toEqual(INT63_SEED0);
    rand = new GoRand(0n);
    expect(draw(20, () => rand.uint64())).toEqual(UINT64_SEED0);
    rand = new GoRand(0n);
    expect(draw(20, () => rand.uint32())).toEqual(UINT32_SEED0);
    rand = new GoRand(0n);
    expect(draw(20, () => rand.int31())).toEqual(INT31_SEED0);
  });

  it('reproduces the golden Int31n, Int63n and Intn sequences, rejection sampling included', () => {
    let rand = new GoRand(0n);
    expect(draw(20, (i) => rand.int31n(INT32_ARGS[i % INT32_ARGS.length]))).toEqual(INT31N_SEED0);
    rand = new GoRand(0n);
    expect(draw(20, (i) => rand.int63n(INT64_ARGS[i % INT64_ARGS.length]))).toEqual(INT63N_SEED0);
    rand = new GoRand(0n);
    // Intn takes a JS number, so arguments past 2^53 go through int63n exactly as Go's Intn does on 64-bit.
    const intn = draw(20, (i) => {
      const n = INT64_ARGS[i % INT64_ARGS.length];
      return n <= BigInt(Number.MAX_SAFE_INTEGER) ? rand.intn(Number(n)) : rand.int63n(n);
    });
    expect(intn).toEqual(INTN_SEED0);
  });

  // Outputs of go1.19 programs: rand.New(rand.NewSource(seed)).
  it('matches Go for other seeds, including negative and int64-extreme ones', () => {
    const seed1 = new GoRand(1n);
    expect(draw(5, () => seed1.uint64())).toEqual([
      5577006791947779410n,
      8674665223082153551n,
      15352856648520921629n,
      13260572831089785859n,
      3916589616287113937n,
    ]);
    const negative = new GoRand(-7n);
    expect(draw(3, () => negative.int63())).toEqual([747107023976529931n, 7084732931963018726n, 6995717851144434728n]);
    const minusOne = new GoRand(-1);
    expect([minusOne.int63(), minusOne.uint64()]).toEqual([3644962268338389676n, 9773543399016688047n]);
    expect(new GoRand(-(1n << 63n)).int63()).toBe(7681445645332086223n);
    // 2^63-1 ≡ 1 (mod 2^31-1): the same stream as seed 1.
    expect(new GoRand((1n << 63n) - 1n).int63()).toBe(5577006791947779410n);
    // 2^31-1 ≡ 0, which Seed maps to 89482311 like seed 0.
    expect(new GoRand(2 ** 31 - 1).int63()).toBe(INT63_SEED0[0]);
  });

  it('stays exact after the lag table has wrapped several times', () => {
    const rand = new GoRand(1n);
    for (let i = 0; i < 700; i++) rand.uint64();
    expect(rand.uint64()).toBe(9889876019586549186n);
    expect(rand.uint32()).toBe(2256692625);
    expect(rand.intn(1000)).toBe(778);
  });

  it('rejects seeds outside int64 and non-positive bounds, as Go panics', () => {
    expect(() => new GoRand(1n << 63n)).toThrow(RangeError);
    expect(() => new GoRand(0).intn(0)).toThrow(RangeError);
    expect(() => new GoRand(0).int31n(2 ** 31)).toThrow(RangeError);
    expect(() => new GoRand(0).int63n(0n)).toThrow(RangeError);
  });
});

describe('bigRandBelow matches math/big Int.Rand', () => {
  // go1.19: h := fnv.New32(); h.Write("worker-node01"); r := rand.New(rand.NewSource(int64(h.Sum32())));
  // new(big.Int).Rand(r, big.NewInt(n)).
  it.each([
    [1n, 0n],
    [2n, 0n],
    [3n, 0n],
    [5n, 4n],
    [7n, 4n],
    [1000n, 351n],
    [1024n, 351n],
    [1n << 20n, 715103n],
    [(1n << 31n) + 5n, 1461808369n],
    [1n << 40n, 501155031391n],
    [(1n << 62n) + 12345n, 2893437917415008607n],
  ])('limit %s gives %s for worker-node01', (limit, expected) => {
    expect(bigRandBelow(new GoRand(BigInt(fnv1_32('worker-node01'))), limit)).toBe(expected);
  });

  it('assembles multi-word values low word first and masks only the top word', () => {
    const rand = new GoRand(42n);
    const limit = (1n << 128n) + 1n;
    expect(draw(3, () => bigRandBelow(rand, limit))).toEqual([
      71057322547948245168792544375371385187n,
      44223721447002513651124977729759236128n,
      339371078645079437802819859290107041565n,
    ]);
    expect(rand.uint32()).toBe(4023267949);
    const other = new GoRand(BigInt(fnv1_32('worker-node01')));
    expect(bigRandBelow(other, (1n << 128n) / 3n)).toBe(44448900238321236069869435795012249951n);
  });

  it('returns 0 for a non-positive limit without drawing, like Go', () => {
    const rand = new GoRand(0n);
    expect(bigRandBelow(rand, 0n)).toBe(0n);
    expect(bigRandBelow(rand, -5n)).toBe(0n);
    expect(rand.int63()).toBe(INT63_SEED0[0]);
  });
});

describe('FNV-32', () => {
  it('computes FNV-1 (Calico) and FNV-1a (Kubernetes) as Go hash/fnv does', () => {
    expect(fnv1_32('')).toBe(2166136261);
    expect(fnv1a_32('')).toBe(2166136261);
    expect(fnv1_32('a')).toBe(84696446);
    expect(fnv1a_32('a')).toBe(3826002220);
    expect(fnv1_32('master-node')).toBe(3303821900);
    expect(fnv1a_32('master-node')).toBe(3105737366);
    expect(fnv1a_32(new TextEncoder().encode('hello-world'))).toBe(1116541326);
    expect(fnv1_32('hello-world')).toBe(939086692);
  });
});
