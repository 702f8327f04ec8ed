/**
 * Weight initializers for a dense layer: each maps (key, nIn, nOut) to the
 * layer's weight [nIn, nOut] and bias [nOut]. All randomness comes from the key,
 * except `paperUniform`, which reproduces the report's fixed NumPy draw.
 */
import { type Key, numpyUniform, type Tensor, zeros } from '../core/index.js';
import { internal } from '../core/internal.js';

// A type alias, not an interface: aliases get the implicit index signature that `Tree` needs.
/** A dense layer's parameters: weights `w` [nIn, nOut] and bias `b` [nOut]. */
export type DenseParams = {
  /** Weights [nIn, nOut]. */
  readonly w: Tensor;
  /** Bias [nOut]. */
  readonly b: Tensor;
};

/** Draws a dense layer's parameters from a key (`(key, nIn, nOut) → { w, b }`). */
export type Initializer = (key: Key, nIn: number, nOut: number) => DenseParams;

/** Names usable in configs. */
export type InitName = 'paper' | 'glorot-uniform' | 'glorot-normal' | 'he-uniform' | 'he-normal';

/**
 * The report's initializer: `np.random.seed(seed)` re-set for every layer, then
 * uniform on [low, high) over the (nIn+1)×nOut matrix whose row 0 is the bias
 * (the report prepends a column of ones). The key is ignored: the same draw every run.
 */
export const paperUniform =
  ({ seed = 42, low = 0, high = 0.01 } = {}): Initializer =>
  (_key, nIn, nOut) => {
    const drawn = numpyUniform(seed, [nIn + 1, nOut], low, high, 'float32');
    const all = internal.dataOf(drawn);
    const be = drawn.backend;
    const params = {
      w: internal.adopt(all.slice(nOut), Object.freeze([nIn, nOut]), be),
      b: internal.adopt(all.slice(0, nOut), Object.freeze([nOut]), be),
    };
    drawn.dispose();
    return params;
  };

/** Glorot/Xavier uniform: U(±√(6/(nIn+nOut))), zero bias. */
export const glorotUniform: Initializer = (key, nIn, nOut) => {
  const a = Math.sqrt(6 / (nIn + nOut));
  return { w: key.uniform([nIn, nOut], -a, a), b: zeros([nOut]) };
};

/** Glorot/Xavier normal: N(0, 2/(nIn+nOut)), zero bias. */
export const glorotNormal: Initializer = (key, nIn, nOut) => ({
  w: key.normal([nIn, nOut], 'float32', 0, Math.sqrt(2 / (nIn + nOut))),
  b: zeros([nOut]),
});

/** He/Kaiming uniform: U(±√(6/nIn)), zero bias (for ReLU). */
export const heUniform: Initializer = (key, nIn, nOut) => {
  const a = Math.sqrt(6 / nIn);
  return { w: key.uniform([nIn, nOut], -a, a), b: zeros([nOut]) };
};

/** He/Kaiming normal: N(0, 2/nIn), zero bias (for ReLU). */
export const heNormal: Initializer = (key, nIn, nOut) => ({
  w: key.normal([nIn, nOut], 'float32', 0, Math.sqrt(2 / nIn)),
  b: zeros([nOut]),
});

/**
 * The initializers by name, as configs name them (`paper`, `glorot-uniform`, `glorot-normal`,
 * `he-uniform`, `he-normal`).
 */
export const initializers: { readonly [N in InitName]: Initializer } = {
  paper: paperUniform(),
  'glorot-uniform': glorotUniform,
  'glorot-normal': glorotNormal,
  'he-uniform': heUniform,
  'he-normal': heNormal,
};
