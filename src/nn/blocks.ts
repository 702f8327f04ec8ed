/**
 * Layers beyond dense: normalization, dropout, convolution and pooling. Each is
 * a `Layer` built from differentiable ops, declaring its parameters' roles
 * (norm gains are 'gain', so L2 leaves them alone by default).
 */
import {
  add,
  avgPool2d,
  batchNormTrain,
  conv2d as conv2dOp,
  dropout as dropoutOp,
  type Key,
  maxPool2d as maxPool2dOp,
  mean,
  mul,
  ones,
  reshape,
  rsqrtVar,
  slice,
  sub,
  zeros,
  type Tensor,
} from '../core/index.js';
import { ShapeError, showShape } from '../core/index.js';
import type { Layer, NoParams } from './layers.js';

/** A norm layer's learned scale and shift. */
export type NormParams = {
  /** Gain (scale), initialized to 1. */
  readonly g: Tensor;
  /** Bias (shift), initialized to 0. */
  readonly b: Tensor;
};

/** Normalizes each row over its last axis to mean 0, variance 1, then scales by g and shifts by b (Ba et al.). */
export const layerNorm = (features: number, eps = 1e-5): Layer<NormParams> => ({
  describe: `layerNorm(${features})`,
  init: () => ({ g: ones([features]), b: zeros([features]) }),
  apply: (p, x) => {
    if (x.shape[x.rank - 1] !== features) throw new ShapeError(`layerNorm(${features}): input of shape ${showShape(x.shape)} should end in ${features}`);
    const mu = mean(x, -1, true);
    const c = sub(x, mu);
    const inv = rsqrtVar(mean(mul(c, c), -1, true), eps);
    return add(mul(mul(c, inv), p.g), p.b);
  },
  roles: () => ['bias', 'gain'], // leaf order: b, g
});

/** batchNorm's running statistics: an explicit state, updated by training, read in eval mode. */
export type BatchNormState = { readonly mean: Tensor; readonly var: Tensor };

/**
 * Batch normalization (Ioffe & Szegedy) per channel: axis 1 of [N, C] or
 * [N, C, H, W]. Training normalizes with the batch's statistics and moves the
 * running ones by `momentum` (r ← (1 − m)·r + m·batch, the unbiased variance);
 * eval mode normalizes with the running statistics.
 */
export const batchNorm = (channels: number, opts: { momentum?: number; eps?: number } = {}): Layer<NormParams, BatchNormState> => {
  const momentum = opts.momentum ?? 0.1,
    eps = opts.eps ?? 1e-5;
  const statShape = (x: Tensor) => x.shape.map((d, i) => (i === 1 ? d : 1));
  const check = (x: Tensor) => {
    if ((x.rank !== 2 && x.rank !== 4) || x.shape[1] !== channels) {
      throw new ShapeError(`batchNorm(${channels}): input of shape ${showShape(x.shape)} should be [batch, ${channels}] or [batch, ${channels}, h, w]`);
    }
  };
  // Eval mode folds the running statistics into one scale and shift per channel: two passes over x.
  const evalMode = (p: NormParams, x: Tensor, s: BatchNormState) => {
    check(x);
    const scale = mul(p.g, rsqrtVar(s.var, eps));
    return add(mul(x, reshape(scale, statShape(x))), reshape(sub(p.b, mul(s.mean, scale)), statShape(x)));
  };
  return {
    describe: `batchNorm(${channels})`,
    init: () => ({ g: ones([channels]), b: zeros([channels]) }),
    initState: () => ({ mean: zeros([channels]), var: ones([channels]) }),
    apply: (p, x, s) => evalMode(p, x, s ?? { mean: zeros([channels]), var: ones([channels]) }),
    forward: (p, x, { train, state }) => {
      if (!train) return { y: evalMode(p, x, state), state };
      check(x);
      const { y, moments: m } = batchNormTrain(x, p.g, p.b, eps);
      const count = x.size / channels;
      // The batch's moments are constants: the running statistics are not differentiated through.
      const bm = reshape(slice(m, [0, 0], [1, channels]), [channels]);
      const bv = mul(reshape(slice(m, [1, 0], [1, channels]), [channels]), count > 1 ? count / (count - 1) : 1);
      const next = {
        mean: add(mul(state.mean, 1 - momentum), mul(bm, momentum)),
        var: add(mul(state.var, 1 - momentum), mul(bv, momentum)),
      };
      return { y, state: next };
    },
    roles: () => ['bias', 'gain'],
  };
};

/** Drops each element with probability `rate` in training (mask from the step's key); identity in eval mode. */
export const dropoutLayer = (rate: number): Layer<NoParams> => {
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`dropout: rate must be in [0, 1), got ${rate}`);
  return {
    describe: `dropout(${rate})`,
    init: () => [],
    apply: (_p, x) => x,
    forward: (_p, x, { train, key, state }) => {
      if (!train || rate === 0) return { y: x, state };
      if (key === undefined) throw new Error('dropout: training needs a key (fit passes one per step)');
      return { y: dropoutOp(x, rate, key), state };
    },
  };
};

/** Convolution parameters: filters [out, in, k, k] and one bias per output channel. */
export type ConvParams = { readonly w: Tensor; readonly b: Tensor };

/**
 * A 2-D convolution layer over NCHW images: `filters` outputs of `kernel`×`kernel`
 * windows, He-uniform filters (fan-in = in·k·k) and zero biases.
 */
export const conv2dLayer = (inChannels: number, filters: number, kernel: number, opts: { stride?: number; padding?: number } = {}): Layer<ConvParams> => {
  const stride = opts.stride ?? 1,
    padding = opts.padding ?? 0;
  return {
    describe: `conv2d(${inChannels} → ${filters}, ${kernel}×${kernel}${stride !== 1 ? `, stride ${stride}` : ''}${padding !== 0 ? `, pad ${padding}` : ''})`,
    init: (key: Key) => {
      const a = Math.sqrt(6 / (inChannels * kernel * kernel));
      return { w: key.uniform([filters, inChannels, kernel, kernel], -a, a), b: zeros([filters]) };
    },
    apply: (p, x) => add(conv2dOp(x, p.w, { stride, padding }), reshape(p.b, [1, filters, 1, 1])),
    roles: () => ['bias', 'weight'],
  };
};

/** Max pooling over size×size windows (stride defaults to size). */
export const maxPool2dLayer = (size: number, stride = size): Layer<NoParams> => ({
  describe: `maxPool2d(${size}${stride !== size ? `, stride ${stride}` : ''})`,
  init: () => [],
  apply: (_p, x) => maxPool2dOp(x, size, stride),
});

/** Average pooling over size×size windows (stride defaults to size). */
export const avgPool2dLayer = (size: number, stride = size): Layer<NoParams> => ({
  describe: `avgPool2d(${size}${stride !== size ? `, stride ${stride}` : ''})`,
  init: () => [],
  apply: (_p, x) => avgPool2d(x, size, stride),
});
