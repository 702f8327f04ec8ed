/**
 * Seeded randomness with explicit keys (in the manner of JAX): a `Key` is an
 * immutable value; drawing from the same key twice gives the same numbers, and
 * `split` derives independent keys. Every random choice in tapegrad (init,
 * shuffle, split, sampling) flows from one seed this way.
 *
 * Generators come from pure-rand: xoroshiro128+ for keys, and MT19937 for
 * `numpyUniform`, which reproduces `np.random.seed(s); np.random.uniform(...)`
 * bit for bit (the report's initializer).
 */
import prand from 'pure-rand';
import { makeShape, sizeOf } from './shape.js';
import { defaultBackend, resolveBackend, type BackendLike } from './backend.js';
import { internal, type DType, type Tensor } from './tensor.js';

const array = (dtype: DType, n: number) => (dtype === 'float32' ? new Float32Array(n) : new Float64Array(n));
const placed = (b: BackendLike | undefined) => (b === undefined ? defaultBackend() : resolveBackend(b));

type Gen = ReturnType<typeof prand.xoroshiro128plus>;

/** A double in [0, 1) with 53 random bits, as NumPy's random_sample builds it. */
const nextDouble = (g: { unsafeNext(): number }): number => {
  const a = (g.unsafeNext() >>> 0) >>> 5;
  const b = (g.unsafeNext() >>> 0) >>> 6;
  return (a * 67108864 + b) / 9007199254740992;
};

/**
 * A seeded, immutable source of randomness: `new Key(0)`. The same key always
 * draws the same numbers; `split` and `fold` derive independent keys.
 */
export class Key {
  readonly #gen: Gen;
  /** The seed, or the derivation path, for printing. */
  readonly label: string;

  constructor(seed: number, label = String(seed)) {
    if (!Number.isInteger(seed)) throw new RangeError(`Key: seed must be an integer, got ${seed}`);
    this.#gen = prand.xoroshiro128plus(seed | 0);
    this.label = label;
  }

  private gen(): Gen {
    return this.#gen.clone();
  }

  /** `n` independent keys derived from this one. */
  split(n: number): Key[] {
    const g = this.gen();
    const keys = Array.from({ length: n }, (_, i) => new Key(g.unsafeNext(), `${this.label}/${i}`));
    keys.forEach((k, i) => {
      internal.deriveKey(this, k, (p) => p.split(n)[i]!);
    });
    return keys;
  }

  /** One derived key per name, for readable derivations: `key.fold('init')`. */
  fold(name: string): Key {
    let h = 2166136261;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
    const g = this.gen();
    const k = new Key((g.unsafeNext() ^ h) | 0, `${this.label}:${name}`);
    internal.deriveKey(this, k, (p) => p.fold(name));
    return k;
  }

  /** Uniform values on [low, high). */
  uniform(shape: readonly number[], low = 0, high = 1, dtype: DType = 'float32', backend?: BackendLike): Tensor {
    return internal.draw('Key.uniform', this, (k) => k.#uniform(shape, low, high, dtype, backend));
  }

  #uniform(shape: readonly number[], low: number, high: number, dtype: DType, backend?: BackendLike): Tensor {
    const s = makeShape(shape);
    const out = array(dtype, sizeOf(s));
    const g = this.gen();
    for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * nextDouble(g);
    return internal.adopt(out, s, placed(backend));
  }

  /** Normal values (Box–Muller). */
  normal(shape: readonly number[], dtype: DType = 'float32', mean = 0, std = 1, backend?: BackendLike): Tensor {
    return internal.draw('Key.normal', this, (k) => k.#normal(shape, dtype, mean, std, backend));
  }

  #normal(shape: readonly number[], dtype: DType, mean: number, std: number, backend?: BackendLike): Tensor {
    const s = makeShape(shape);
    const out = array(dtype, sizeOf(s));
    const g = this.gen();
    for (let i = 0; i < out.length; i += 2) {
      const u1 = 1 - nextDouble(g); // (0, 1]: log is finite
      const u2 = nextDouble(g);
      const r = Math.sqrt(-2 * Math.log(u1));
      out[i] = mean + std * r * Math.cos(2 * Math.PI * u2);
      if (i + 1 < out.length) out[i + 1] = mean + std * r * Math.sin(2 * Math.PI * u2);
    }
    return internal.adopt(out, s, placed(backend));
  }

  /** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    const g = this.gen();
    for (let i = n - 1; i > 0; i--) {
      const j = prand.unsafeUniformIntDistribution(0, i, g);
      const t = p[i]!; p[i] = p[j]!; p[j] = t;
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
  const out = array(dtype, sizeOf(s));
  const g = prand.mersenne(seed);
  for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * nextDouble(g);
  return internal.adopt(out, s, placed(backend));
};
