/**
 * Seeded randomness with explicit keys, in the manner of JAX: a `Key` is a value
 * (two unsigned 32-bit words); `split` and `fold` derive keys by hashing it, and
 * every draw is a pure function of the key and a counter, through Threefry-2x32
 * with 20 rounds (threefry.ts). Drawing from the same key twice gives the same
 * numbers. Every random choice in tapegrad (init, shuffle, split, dropout,
 * augmentation) flows from one seed this way.
 *
 * The counter space of a key is cut into domains by the first counter word, so
 * that derived keys never equal blocks a draw used: draws use blocks (0, i),
 * `split` uses (1, i), `fold` uses (2, ·) and (3, ·).
 *
 * `numpyUniform` is separate: MT19937 from pure-rand, reproducing
 * `np.random.seed(s); np.random.uniform(...)` bit for bit (the report's init).
 */
import prand from 'pure-rand';
import { makeShape, sizeOf } from './shape.js';
import { defaultBackend, resolveBackend, type BackendLike } from './backend.js';
import { internal, type DType, type Tensor } from './tensor.js';
import { checkFloatDType } from './dtypes.js';
import { threefry2x32Into } from './threefry.js';

const array = (dtype: DType, n: number, who: string) => (checkFloatDType(dtype, who) === 'float32' ? new Float32Array(n) : new Float64Array(n));
const placed = (b: BackendLike | undefined) => (b === undefined ? defaultBackend() : resolveBackend(b));

/** A double in [0, 1) with 53 random bits, as NumPy's random_sample builds it. */
const nextDouble = (g: { unsafeNext(): number }): number => {
  const a = (g.unsafeNext() >>> 0) >>> 5;
  const b = (g.unsafeNext() >>> 0) >>> 6;
  return (a * 67108864 + b) / 9007199254740992;
};

const DRAW = 0,
  SPLIT = 1,
  FOLD_WORD = 2,
  FOLD_END = 3;
const TWO32 = 4294967296;

/** `n` random words of `key`: words 2i and 2i+1 are Threefry's block (DRAW, i). */
const wordsOf = (k0: number, k1: number, n: number): Uint32Array => {
  const out = new Uint32Array(n + (n & 1));
  for (let i = 0; i < out.length; i += 2) threefry2x32Into(k0, k1, DRAW, i >>> 1, out, i);
  return n & 1 ? out.subarray(0, n) : out;
};

/** A double in [0, 1) from 53 bits of two words (27 of the first, 26 of the second), as NumPy builds one. */
const double53 = (a: number, b: number): number => ((a >>> 5) * 67108864 + (b >>> 6)) / 9007199254740992;

/** The largest value of `dtype` below `x` (x finite and positive or negative). */
const below = (x: number, dtype: DType): number => {
  if (dtype === 'float32') {
    const f = new Float32Array([x]);
    const u = new Int32Array(f.buffer);
    if (f[0] === 0) return -1.401298464324817e-45;
    u[0] = f[0]! > 0 ? u[0]! - 1 : u[0]! + 1;
    return f[0]!;
  }
  const f = new Float64Array([x]);
  const u = new BigInt64Array(f.buffer);
  if (f[0] === 0) return -5e-324;
  u[0] = f[0]! > 0 ? u[0]! - 1n : u[0]! + 1n;
  return f[0]!;
};

/**
 * A seeded, immutable source of randomness: `new Key(0)`. A key is two unsigned
 * 32-bit words (`words`); the same key always draws the same numbers; `split`
 * and `fold` derive independent keys by hashing.
 */
export class Key {
  // Set once, by the constructor or fromWords: a key never changes.
  #k0: number;
  #k1: number;
  /** The seed, or the derivation path, for printing. */
  readonly label: string;

  /**
   * The key of an integer seed (any safe integer; negative ones as their 64-bit
   * two's complement): words [high 32 bits, low 32 bits], as `jax.random.PRNGKey`.
   */
  constructor(seed: number, label = String(seed)) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`Key: seed must be a safe integer, got ${seed}`);
    this.#k0 = Math.floor(seed / TWO32) >>> 0;
    this.#k1 = seed >>> 0;
    this.label = label;
  }

  /** The key with these two words (each an integer in 0..2³²−1). */
  static fromWords(words: readonly [number, number], label?: string): Key {
    const [a, b] = words;
    for (const w of [a, b]) {
      if (!Number.isInteger(w) || w < 0 || w >= TWO32) throw new RangeError(`Key.fromWords: each word must be an integer in 0..2^32-1, got ${w}`);
    }
    const k = new Key(0, label ?? `[${a}, ${b}]`);
    k.#k0 = a;
    k.#k1 = b;
    return k;
  }

  /** The key's two words: the whole of its state. */
  get words(): readonly [number, number] {
    return [this.#k0, this.#k1];
  }

  /** `n` independent keys derived from this one: key i is Threefry's block (1, i) under this key. */
  split(n: number): Key[] {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`split: the number of keys must be a non-negative integer, got ${n}`);
    const w = new Uint32Array(2);
    const keys = Array.from({ length: n }, (_, i) => {
      threefry2x32Into(this.#k0, this.#k1, SPLIT, i, w, 0);
      return Key.fromWords([w[0]!, w[1]!], `${this.label}/${i}`);
    });
    // Under jit, a derived key is recomputed from each call's key (see tensor.ts, deriveKey).
    for (const [i, k] of keys.entries()) internal.deriveKey(this, k, (p) => p.split(n)[i]!);
    return keys;
  }

  /**
   * A key derived from this one and a name or a number, for readable
   * derivations: `key.fold('init')`, `key.fold(epoch)` (as `jax.random.fold_in`).
   * The name is hashed one UTF-16 code unit at a time through Threefry, then its
   * length, so distinct names give distinct keys.
   */
  fold(data: string | number): Key {
    const units = typeof data === 'number' ? null : data;
    if (units === null && (!Number.isInteger(data) || (data as number) < 0 || (data as number) >= TWO32)) {
      throw new RangeError(`fold: a number to fold in must be an integer in 0..2^32-1, got ${data}`);
    }
    const w = new Uint32Array(2);
    let k0 = this.#k0,
      k1 = this.#k1;
    if (units === null) {
      threefry2x32Into(k0, k1, FOLD_END, data as number, w, 0);
    } else {
      for (let i = 0; i < units.length; i++) {
        threefry2x32Into(k0, k1, FOLD_WORD, units.charCodeAt(i), w, 0);
        k0 = w[0]!;
        k1 = w[1]!;
      }
      // The end marker carries the length (and a bit no number's fold sets), so 'ab' ≠ 'a' then 'b', and '7' ≠ 7.
      threefry2x32Into(k0, k1, FOLD_END ^ 0x80000000, units.length, w, 0);
    }
    const k = Key.fromWords([w[0]!, w[1]!], `${this.label}:${data}`);
    internal.deriveKey(this, k, (p) => p.fold(data));
    return k;
  }

  /**
   * Uniform values on [low, high), never `high`. float32: 24 random bits per value
   * (u = w·2⁻²⁴, exact in float32); float64: 53 bits from two words. A value that
   * rounds up to `high` (possible for some low, high in float32) becomes the
   * largest value below it.
   */
  uniform(shape: readonly number[], low = 0, high = 1, dtype: DType = 'float32', backend?: BackendLike): Tensor {
    return internal.draw('Key.uniform', this, (k) => k.#uniform(shape, low, high, dtype, backend));
  }

  #uniform(shape: readonly number[], low: number, high: number, dtype: DType, backend?: BackendLike): Tensor {
    const s = makeShape(shape);
    const n = sizeOf(s);
    const out = array(dtype, n, 'Key.uniform');
    if (dtype === 'float32') {
      const w = wordsOf(this.#k0, this.#k1, n);
      for (let i = 0; i < n; i++) out[i] = low + (high - low) * ((w[i]! >>> 8) / 16777216);
    } else {
      const w = wordsOf(this.#k0, this.#k1, 2 * n);
      for (let i = 0; i < n; i++) out[i] = low + (high - low) * double53(w[2 * i]!, w[2 * i + 1]!);
    }
    if (low < high) {
      const top = below(high, dtype);
      for (let i = 0; i < n; i++) if (out[i]! >= high) out[i] = top;
    }
    return internal.adopt(out, s, placed(backend));
  }

  /**
   * Normal values by the Box–Muller transform on 53-bit uniforms: each pair
   * (z₀, z₁) = √(−2 ln u₁)·(cos 2πu₂, sin 2πu₂) with u₁ ∈ (0, 1] (1 − a
   * [0, 1) draw: the log stays finite) from words 4i, 4i+1 and u₂ from words
   * 4i+2, 4i+3; computed in float64, then rounded to `dtype`. The largest
   * |z| a draw can give is √(2·53·ln 2) ≈ 8.6.
   */
  normal(shape: readonly number[], dtype: DType = 'float32', mean = 0, std = 1, backend?: BackendLike): Tensor {
    return internal.draw('Key.normal', this, (k) => k.#normal(shape, dtype, mean, std, backend));
  }

  #normal(shape: readonly number[], dtype: DType, mean: number, std: number, backend?: BackendLike): Tensor {
    const s = makeShape(shape);
    const n = sizeOf(s);
    const out = array(dtype, n, 'Key.normal');
    const w = wordsOf(this.#k0, this.#k1, 2 * (n + (n & 1)));
    for (let i = 0; i < n; i += 2) {
      const u1 = 1 - double53(w[2 * i]!, w[2 * i + 1]!);
      const u2 = double53(w[2 * i + 2]!, w[2 * i + 3]!);
      const r = Math.sqrt(-2 * Math.log(u1));
      out[i] = mean + std * r * Math.cos(2 * Math.PI * u2);
      if (i + 1 < n) out[i + 1] = mean + std * r * Math.sin(2 * Math.PI * u2);
    }
    return internal.adopt(out, s, placed(backend));
  }

  /**
   * A uniformly random permutation of 0..n-1 (Fisher–Yates from the last
   * position down; each index uniform in 0..i by rejection of 32-bit words, so
   * no modulo bias).
   */
  permutation(n: number): Int32Array {
    if (!Number.isInteger(n) || n < 0 || n >= TWO32) throw new RangeError(`permutation: n must be an integer in 0..2^32-1, got ${n}`);
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    const buf = new Uint32Array(2);
    let block = 0,
      have = 0;
    const next = (): number => {
      if (have === 0) {
        threefry2x32Into(this.#k0, this.#k1, DRAW, block++, buf, 0);
        have = 2;
      }
      return buf[2 - have--]!;
    };
    for (let i = n - 1; i > 0; i--) {
      const m = i + 1;
      const limit = TWO32 - (TWO32 % m); // the largest multiple of m that fits: words at or above it are redrawn
      let x = next();
      while (x >= limit) x = next();
      const j = x % m;
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    return p;
  }
}

/**
 * `np.random.seed(seed); np.random.uniform(low, high, shape)` reproduced exactly
 * (MT19937 seeded by init_genrand, 53-bit doubles), then rounded to `dtype`.
 */
export const numpyUniform = (seed: number, shape: readonly number[], low = 0, high = 1, dtype: DType = 'float32', backend?: BackendLike): Tensor => {
  const s = makeShape(shape);
  const out = array(dtype, sizeOf(s), 'numpyUniform');
  const g = prand.mersenne(seed);
  for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * nextDouble(g);
  return internal.adopt(out, s, placed(backend));
};
