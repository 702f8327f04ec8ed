/**
 * Rules of the image primitives: convolution, pooling, batch normalization,
 * and the gradient kernels their VJPs call, which get rules of their own
 * (their transposes are known: conv2dGradInput's VJP is a conv2d and a
 * conv2dGradWeight, and so on), so derivatives of any order pass through a
 * convolutional network.
 *
 * Batch normalization's fused kernels are differentiated as the composites
 * they fuse (the first-order VJP keeps the fused gradient kernels; their own
 * derivatives come from the textbook formula in ops, with the statistics taken
 * from x itself so that every path through them is differentiated).
 */
import {
  add,
  bind,
  broadcastTo,
  cast,
  channelMoments,
  concat,
  mul,
  reshape,
  rsqrtVar,
  slice,
  sub,
  sum,
  zeros,
  type Shape,
  type Tensor,
} from '../../core/index.js';
import { jvpOf } from '../forward.js';
import { vjpOf } from '../tape.js';
import {
  asBatch,
  bilinearJvp,
  mergeBatch,
  perExample,
  splitBatch,
  type DifferentiableRule,
  type JvpRule,
  type Maybe,
  type RuleTable,
  type VjpRule,
} from './types.js';

type Images =
  | 'conv2d'
  | 'conv2dGradInput'
  | 'conv2dGradWeight'
  | 'maxPool2d'
  | 'maxPool2dGrad'
  | 'maxPool2dSelect'
  | 'avgPool2d'
  | 'avgPool2dGrad'
  | 'channelMoments'
  | 'batchNorm'
  | 'batchNormGrad'
  | 'batchNormParamGrad';

/** A per-channel statistic's shape against x [N, C, …]: [1, C, 1, …]. */
const statShape = (s: Shape): Shape => Object.freeze(s.map((d, i) => (i === 1 ? d : 1)));
/** Every axis but the channel axis 1. */
const otherAxes = (x: Tensor): number[] => x.shape.flatMap((_d, a) => (a === 1 ? [] : [a]));
/** Row r of [2, C] as [1, C, 1, …] against x. */
const row = (m: Tensor, r: number, x: Tensor): Tensor => reshape(slice(m, [r, 0], [1, x.shape[1]!]), statShape(x.shape));

/** x̂ = (x − μ)·inv and inv = 1/√(σ² + eps), from x's own (differentiable) statistics. */
const standardize = (x: Tensor, eps: number): { xhat: Tensor; inv: Tensor } => {
  const m = channelMoments(x);
  const inv = rsqrtVar(row(m, 1, x), eps);
  return { xhat: mul(sub(x, row(m, 0, x)), inv), inv };
};
const perChannel = (v: Tensor, x: Tensor): Tensor => reshape(v, statShape(x.shape));

/** batchNorm as the composite it fuses: x̂·g + b. */
const batchNormComposite =
  (eps: number) =>
  ([x, , g, b]: readonly Tensor[]): Tensor =>
    add(mul(standardize(x!, eps).xhat, perChannel(g!, x!)), perChannel(b!, x!));

/** batchNormGrad as the composite it fuses: g·inv·(ct − mean(ct) − x̂·mean(ct·x̂)), statistics and sums from x and ct. */
const batchNormGradComposite =
  (eps: number) =>
  ([x, , g, ct]: readonly Tensor[]): Tensor => {
    const { xhat, inv } = standardize(x!, eps);
    const axes = otherAxes(x!),
      M = x!.size / x!.shape[1]!;
    const meanCt = mul(sum(ct!, axes, true), 1 / M);
    const meanCtXhat = mul(sum(mul(ct!, xhat), axes, true), 1 / M);
    return mul(mul(perChannel(g!, x!), inv), sub(sub(ct!, meanCt), mul(xhat, meanCtXhat)));
  };

/** batchNormParamGrad as the composite it fuses: [Σ ct·x̂; Σ ct] per channel, float64. */
const batchNormParamGradComposite =
  (eps: number) =>
  ([x, , ct]: readonly Tensor[]): Tensor => {
    const { xhat } = standardize(x!, eps);
    const axes = otherAxes(x!),
      C = x!.shape[1]!;
    return cast(concat([reshape(sum(mul(ct!, xhat), axes), [1, C]), reshape(sum(ct!, axes), [1, C])], 0), 'float64');
  };

type Fused = 'batchNorm' | 'batchNormGrad' | 'batchNormParamGrad';

/** VJP and JVP of a fused kernel from the composite it computes (its other inputs, caches, get no derivative). */
const viaComposite = <P extends Fused>(composite: (eps: number) => (xs: readonly Tensor[]) => Tensor): Pick<DifferentiableRule<P>, 'vjp' | 'jvp'> => ({
  vjp: ((ct: Tensor, inputs: readonly Tensor[], _y: Tensor, { eps }: { readonly eps: number }) => {
    let gs: Maybe[] | undefined;
    const all = () => (gs ??= vjpOf(composite(eps), inputs, ct));
    return inputs.map((_x, i) => () => all()[i]!);
  }) as unknown as VjpRule<P>,
  jvp: ((ts: readonly Maybe[], inputs: readonly Tensor[], _y: Tensor, { eps }: { readonly eps: number }) =>
    jvpOf(composite(eps), inputs, ts)) as unknown as JvpRule<P>,
});

const conv = (p: { readonly stride: number; readonly padding: number }) => ({ stride: p.stride, padding: p.padding });

export const imageRules: RuleTable<Images> = {
  conv2d: {
    vjp: (ct, [x, w], _y, p) => [
      () => bind('conv2dGradInput', [ct, w], { ...p, inputShape: x.shape }),
      () => bind('conv2dGradWeight', [ct, x], { ...p, filterShape: w.shape }),
    ],
    jvp: bilinearJvp('conv2d'),
    // A batch of image batches against shared filters is one bigger image batch.
    batch: (values, batched, p, size) =>
      batched[0] && !batched[1] ? splitBatch(bind('conv2d', [mergeBatch(values[0]), values[1]], p), size) : perExample('conv2d')(values, batched, p, size),
  },
  conv2dGradInput: {
    // ct ↦ Aᵀct for the convolution A with filters w; its transpose is A itself.
    vjp: (g, [ct, w], _y, p) => [() => bind('conv2d', [g, w], conv(p)), () => bind('conv2dGradWeight', [ct, g], { ...conv(p), filterShape: w.shape })],
    jvp: bilinearJvp('conv2dGradInput'),
    batch: (values, batched, p, size) =>
      batched[0] && !batched[1]
        ? splitBatch(
            bind('conv2dGradInput', [mergeBatch(values[0]), values[1]], {
              ...p,
              inputShape: Object.freeze([size * p.inputShape[0]!, ...p.inputShape.slice(1)]),
            }),
            size,
          )
        : perExample('conv2dGradInput')(values, batched, p, size),
  },
  conv2dGradWeight: {
    // ⟨G, gradWeight(ct, x)⟩ = ⟨conv2d(x, G), ct⟩: bilinear in (ct, x).
    vjp: (g, [ct, x], _y, p) => [() => bind('conv2d', [x, g], conv(p)), () => bind('conv2dGradInput', [ct, g], { ...conv(p), inputShape: x.shape })],
    jvp: bilinearJvp('conv2dGradWeight'),
    // Sums over each example's own images: no one kernel call covers a batch of them.
    batch: perExample('conv2dGradWeight'),
  },
  maxPool2d: {
    vjp: (ct, [x], _y, p) => [() => bind('maxPool2dGrad', [ct, x], p)],
    jvp: ([t], [x], _y, p) => (t === null ? null : bind('maxPool2dSelect', [x, t], p)),
    batch: ([x], _b, p, size) => splitBatch(bind('maxPool2d', [mergeBatch(x)], p), size),
  },
  maxPool2dGrad: {
    // Linear in ct (x only chooses where); its transpose picks at the same positions.
    vjp: (g, [, x], _y, p) => [() => bind('maxPool2dSelect', [x, g], p), () => null],
    jvp: ([t], [, x], _y, p) => (t === null ? null : bind('maxPool2dGrad', [t, x], p)),
    batch: ([ct, x], [bc, bx], p, size) => splitBatch(bind('maxPool2dGrad', [mergeBatch(asBatch(ct, bc, size)), mergeBatch(asBatch(x, bx, size))], p), size),
  },
  maxPool2dSelect: {
    vjp: (g, [x], _y, p) => [() => null, () => bind('maxPool2dGrad', [g, x], p)],
    jvp: ([, t], [x], _y, p) => (t === null ? null : bind('maxPool2dSelect', [x, t], p)),
    batch: ([x, t], [bx, bt], p, size) => splitBatch(bind('maxPool2dSelect', [mergeBatch(asBatch(x, bx, size)), mergeBatch(asBatch(t, bt, size))], p), size),
  },
  avgPool2d: {
    vjp: (ct, [x], _y, p) => [() => bind('avgPool2dGrad', [ct], { ...p, inputShape: x.shape })],
    jvp: ([t], _x, _y, p) => (t === null ? null : bind('avgPool2d', [t], p)),
    batch: ([x], _b, p, size) => splitBatch(bind('avgPool2d', [mergeBatch(x)], p), size),
  },
  avgPool2dGrad: {
    // Linear: the transpose of the windows' mean's transpose is the mean.
    vjp: (g, _ct, _y, p) => [() => bind('avgPool2d', [g], { size: p.size, stride: p.stride })],
    jvp: ([t], _ct, _y, p) => (t === null ? null : bind('avgPool2dGrad', [t], p)),
    batch: ([ct], _b, p, size) =>
      splitBatch(bind('avgPool2dGrad', [mergeBatch(ct)], { ...p, inputShape: Object.freeze([size * p.inputShape[0]!, ...p.inputShape.slice(1)]) }), size),
  },
  channelMoments: {
    // ∂μ/∂x = 1/M, ∂σ²/∂x = 2(x − μ)/M (M values per channel).
    vjp: (ct, [x], y) => [
      () => {
        const C = x.shape[1]!,
          M = x.size / C,
          stat = statShape(x.shape);
        const ctRow = (r: number) => reshape(slice(ct, [r, 0], [1, C]), stat);
        const mu = reshape(slice(y, [0, 0], [1, C]), stat);
        return add(mul(broadcastTo(ctRow(0), x.shape), 1 / M), mul(mul(sub(x, mu), ctRow(1)), 2 / M));
      },
    ],
    jvp: ([t], [x], y) => {
      if (t === null) return null;
      const C = x.shape[1]!,
        M = x.size / C,
        axes = otherAxes(x);
      const dMean = mul(sum(t, axes), 1 / M);
      const dVar = mul(sum(mul(sub(x, row(y, 0, x)), t), axes), 2 / M); // Σ(x − μ) = 0 removes μ's own tangent
      return concat([reshape(dMean, [1, C]), reshape(dVar, [1, C])], 0);
    },
    // Statistics over each example's own batch axis.
    batch: perExample('channelMoments'),
  },
  batchNorm: {
    vjp: (ct, [x, m, g, b], _y, p) => {
      // The gain's and the bias's gradients come from one kernel, on first demand; x's reads its sums too.
      let params: Tensor | undefined;
      const both = () => (params ??= bind('batchNormParamGrad', [x, m, ct], p));
      const C = x.shape[1]!;
      return [
        () => bind('batchNormGrad', [x, m, g, ct, both()], p),
        // The moments are a cache of x's statistics (batchNormTrain passes them as constants); x's VJP covers them.
        () => zeros(m.shape, m.dtype, m.backend),
        () => cast(reshape(slice(both(), [0, 0], [1, C]), [C]), g.dtype),
        () => cast(reshape(slice(both(), [1, 0], [1, C]), [C]), b.dtype),
      ];
    },
    jvp: viaComposite<'batchNorm'>(batchNormComposite).jvp,
    batch: perExample('batchNorm'),
  },
  batchNormGrad: { ...viaComposite<'batchNormGrad'>(batchNormGradComposite), batch: perExample('batchNormGrad') },
  batchNormParamGrad: { ...viaComposite<'batchNormParamGrad'>(batchNormParamGradComposite), batch: perExample('batchNormParamGrad') },
};
