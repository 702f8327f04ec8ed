/**
 * Keys: Threefry-2x32-20 against the published known-answer vectors, and the
 * statistics a user relies on from the first draw of every seed: uniform draws
 * in [0, 1) and never 1, no correlation across consecutive seeds, split keys or
 * folded names, normal moments, chi-square on bins. The thresholds are those of
 * a test at about p = 0.001 (every draw here is seeded, so each test is
 * deterministic); the generator before this one (pure-rand's xoroshiro128+
 * seeded with the small integer) fails most of them: its first uniform was 1.0
 * for every seed and its second moved linearly with the seed.
 */
import { describe, expect, it } from 'vitest';
import { Key } from '../../src/core/index.js';
import { threefry2x32 } from '../../src/core/threefry.js';

const hex = (ws: readonly number[]) => ws.map((w) => w.toString(16).padStart(8, '0')).join(' ');

describe('Threefry-2x32, 20 rounds', () => {
  // Random123's tests/kat_vectors (Salmon et al., SC 2011): counter, key, expected output.
  it.each([
    [[0x00000000, 0x00000000], [0x00000000, 0x00000000], '6b200159 99ba4efe'],
    [[0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], '1cb996fc bb002be7'],
    [[0x243f6a88, 0x85a308d3], [0x13198a2e, 0x03707344], 'c4923a9c 483df7a0'],
  ] as const)('counter %j under key %j gives the published block', (ctr, key, expected) => {
    expect(hex(threefry2x32(key, ctr))).toBe(expected);
  });
});

/** Wilson–Hilferty: the chi-square quantile with `df` degrees of freedom at the normal quantile z (3.09: p = 0.001). */
const chiSquareCritical = (df: number, z = 3.09) => df * (1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df))) ** 3;
const chiSquare = (xs: readonly number[], bins: number): number => {
  const counts = new Array<number>(bins).fill(0);
  for (const x of xs) counts[Math.min(bins - 1, Math.max(0, Math.floor(x * bins)))]!++;
  const e = xs.length / bins;
  return counts.reduce((s, c) => s + (c - e) ** 2 / e, 0);
};
const correlation = (a: readonly number[], b: readonly number[]): number => {
  const n = a.length;
  const ma = a.reduce((s, v) => s + v, 0) / n,
    mb = b.reduce((s, v) => s + v, 0) / n;
  let sab = 0,
    saa = 0,
    sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i]! - ma) * (b[i]! - mb);
    saa += (a[i]! - ma) ** 2;
    sbb += (b[i]! - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
};
/** |r| of n independent pairs exceeds 3.3/√n with probability about 0.001. */
const corrBound = (n: number) => 3.3 / Math.sqrt(n);
const iota = (n: number) => Array.from({ length: n }, (_, i) => i);

/** A family of keys and its first and second uniform draws. */
const firstDraws = (keys: readonly Key[]) => {
  const draws = keys.map((k) => k.uniform([2], 0, 1, 'float64').toTypedArray());
  return { first: draws.map((d) => d[0]!), second: draws.map((d) => d[1]!) };
};

const N = 4000;
const families: readonly (readonly [string, () => Key[]])[] = [
  ['consecutive seeds 0, 1, 2, …', () => iota(N).map((s) => new Key(s))],
  ['the keys of one split', () => new Key(0).split(N)],
  ['names folded into one key', () => iota(N).map((i) => new Key(1).fold(`epoch-${i}`))],
];

describe.each(families)('first draws across %s', (_name, make) => {
  const keys = make();
  const { first, second } = firstDraws(keys);

  it('lie in [0, 1), are uniform on 20 bins (chi-square), and do not follow the key index', () => {
    expect(Math.min(...first)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...first)).toBeLessThan(1);
    expect(chiSquare(first, 20)).toBeLessThan(chiSquareCritical(19));
    expect(Math.abs(correlation(first, iota(N)))).toBeLessThan(corrBound(N));
    expect(Math.abs(correlation(second, iota(N)))).toBeLessThan(corrBound(N));
  });

  it('are uncorrelated between neighbouring keys and with the second draw', () => {
    expect(Math.abs(correlation(first.slice(1), first.slice(0, -1)))).toBeLessThan(corrBound(N));
    expect(Math.abs(correlation(second.slice(1), second.slice(0, -1)))).toBeLessThan(corrBound(N));
    expect(Math.abs(correlation(first, second))).toBeLessThan(corrBound(N));
  });

  it('first normal draws have mean 0 and variance 1, none beyond 5 sigma', () => {
    const z = keys.slice(0, 2000).map((k) => k.normal([1], 'float64').toTypedArray()[0]!);
    const m = z.reduce((s, v) => s + v, 0) / z.length;
    const v = z.reduce((s, x) => s + (x - m) ** 2, 0) / z.length;
    expect(Math.abs(m)).toBeLessThan(3.3 / Math.sqrt(z.length));
    expect(Math.abs(v - 1)).toBeLessThan(3.3 * Math.sqrt(2 / z.length));
    expect(Math.max(...z.map(Math.abs))).toBeLessThan(5);
  });
});

describe('one key, many draws', () => {
  it('uniform: 200 000 float32 and float64 values in [0, 1), chi-square on 100 bins, lag-1 uncorrelated', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      const u = Array.from(new Key(11).uniform([200_000], 0, 1, dtype).toTypedArray());
      expect(u.every((x) => x >= 0 && x < 1)).toBe(true);
      expect(chiSquare(u, 100)).toBeLessThan(chiSquareCritical(99));
      expect(Math.abs(correlation(u.slice(1), u.slice(0, -1)))).toBeLessThan(corrBound(u.length));
    }
  });

  it('uniform never returns high, even where float32 rounding would reach it', () => {
    // float32 values near 1e8 are 8 apart: 1e8 + 16·u rounds to 1e8 + 16 for u > 0.75 unless clamped.
    const x = new Key(0).uniform([1000], 1e8, 1e8 + 16, 'float32').toTypedArray();
    expect(Math.max(...x)).toBeLessThan(1e8 + 16);
    expect(Math.min(...x)).toBeGreaterThanOrEqual(1e8);
    expect(new Set(x).size).toBe(2); // both float32 values of [1e8, 1e8 + 16) are drawn
  });

  it('normal: moments of 200 000 draws (mean 0, variance 1, skewness 0, kurtosis 3) in both dtypes', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      const z = Array.from(new Key(12).normal([200_000], dtype).toTypedArray());
      const n = z.length;
      const m = z.reduce((s, v) => s + v, 0) / n;
      const c = (k: number) => z.reduce((s, v) => s + (v - m) ** k, 0) / n;
      const v = c(2);
      // Standard errors of the sample moments of a normal: 1/√n, √(2/n), √(6/n), √(24/n).
      expect(Math.abs(m)).toBeLessThan(3.3 / Math.sqrt(n));
      expect(Math.abs(v - 1)).toBeLessThan(3.3 * Math.sqrt(2 / n));
      expect(Math.abs(c(3) / v ** 1.5)).toBeLessThan(3.3 * Math.sqrt(6 / n));
      expect(Math.abs(c(4) / v ** 2 - 3)).toBeLessThan(3.3 * Math.sqrt(24 / n));
      // Normal CDF bins: chi-square of Φ(z) on 50 bins.
      const phi = (x: number) => 0.5 * (1 + erf(x / Math.SQRT2));
      expect(chiSquare(z.map(phi), 50)).toBeLessThan(chiSquareCritical(49));
    }
  });

  it('normal honours mean and std', () => {
    const z = Array.from(new Key(13).normal([50_000], 'float64', 3, 0.5).toTypedArray());
    const m = z.reduce((s, v) => s + v, 0) / z.length;
    const sd = Math.sqrt(z.reduce((s, v) => s + (v - m) ** 2, 0) / z.length);
    expect(Math.abs(m - 3)).toBeLessThan((3.3 * 0.5) / Math.sqrt(z.length));
    expect(Math.abs(sd - 0.5)).toBeLessThan(0.01);
  });
});

describe('permutation', () => {
  it('is a permutation, and the 6 orders of 3 items are equally likely across keys (chi-square)', () => {
    expect([...new Key(4).permutation(1000)].sort((a, b) => a - b)).toEqual(iota(1000));
    const counts = new Map<string, number>();
    const keys = new Key(5).split(6000);
    for (const k of keys) {
      const p = k.permutation(3).join();
      counts.set(p, (counts.get(p) ?? 0) + 1);
    }
    expect(counts.size).toBe(6);
    const chi = [...counts.values()].reduce((s, c) => s + (c - 1000) ** 2 / 1000, 0);
    expect(chi).toBeLessThan(chiSquareCritical(5));
  });

  it("each position's first element is uniform across consecutive seeds", () => {
    const firsts = iota(5000).map((s) => new Key(s).permutation(10)[0]! / 10 + 0.05);
    expect(chiSquare(firsts, 10)).toBeLessThan(chiSquareCritical(9));
  });
});

describe('keys are values', () => {
  it("a seed gives the words [high, low] of its 64-bit two's complement; fromWords gives the same key back", () => {
    expect(new Key(0).words).toEqual([0, 0]);
    expect(new Key(7).words).toEqual([0, 7]);
    expect(new Key(2 ** 32 + 5).words).toEqual([1, 5]);
    expect(new Key(-1).words).toEqual([0xffffffff, 0xffffffff]);
    const k = new Key(9).fold('x');
    const again = Key.fromWords(k.words);
    expect(again.uniform([4]).toTypedArray()).toEqual(k.uniform([4]).toTypedArray());
  });

  it('draws, splits and folds are functions of the key: the same key gives the same numbers', () => {
    const k = new Key(7);
    expect(k.uniform([5]).toTypedArray()).toEqual(new Key(7).uniform([5]).toTypedArray());
    expect(k.split(3).map((s) => s.words)).toEqual(new Key(7).split(3).map((s) => s.words));
    expect(k.fold('init').words).toEqual(new Key(7).fold('init').words);
    // A longer draw starts with the shorter one (a draw is the key's counter stream).
    expect(Array.from(k.uniform([9], 0, 1, 'float64').toTypedArray()).slice(0, 4)).toEqual(Array.from(k.uniform([4], 0, 1, 'float64').toTypedArray()));
  });

  it('derived keys differ from each other, from their parent, and by derivation path', () => {
    const k = new Key(3);
    const words = [k, ...k.split(4), k.fold('a'), k.fold('b'), k.fold('ab'), k.fold('a').fold('b'), k.fold(7), k.fold('7'), k.fold('')].map((x) =>
      x.words.join(),
    );
    expect(new Set(words).size).toBe(words.length);
  });

  it('refuses what is not a key', () => {
    expect(() => new Key(1.5)).toThrow(/seed must be a safe integer/);
    expect(() => Key.fromWords([2 ** 32, 0])).toThrow(/0\.\.2\^32-1/);
    expect(() => new Key(0).fold(-1)).toThrow(/fold/);
    expect(() => new Key(0).split(1.5)).toThrow(/split/);
  });
});

/** erf by Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7): enough for bin edges. */
function erf(x: number): number {
  const s = Math.sign(x),
    a = Math.abs(x),
    t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}
