/**
 * Gradient checking for users, like `torch.autograd.gradcheck` and JAX's
 * `check_grads`: the tape's gradient against central differences, in float64.
 */
import * as E from 'fp-ts/lib/Either.js';
import { cast, Key, tidy, type Tensor } from '../core/index.js';
import { internal } from '../core/internal.js';
import { valueAndGrad } from './grad.js';
import { leafPaths, leaves, mapTree, type Treelike } from './tree.js';

/** `gradcheck`'s step, tolerances (|numerical − analytic| ≤ atol + rtol·|numerical|), sampling and dtype. */
export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6, as PyTorch). */
  readonly eps?: number;
  /** Absolute tolerance (default 1e-5). */
  readonly atol?: number;
  /** Relative tolerance (default 1e-3). */
  readonly rtol?: number;
  /**
   * Check at most this many elements per input tensor, drawn with `seed`
   * (default: all). Large weight matrices need this: each element costs two evaluations.
   */
  readonly maxElementsPerInput?: number;
  /** Seed for the element sample (default 0). */
  readonly seed?: number;
  /** Compute in float64 (default true: float32 differences are too coarse to check). */
  readonly float64?: boolean;
}

/** One compared element. */
export interface GradientComparison {
  /** Path of the input in the tree, e.g. `layers[0].w`. */
  readonly input: string;
  /** Multi-index of the element. */
  readonly index: readonly number[];
  readonly numerical: number;
  readonly analytic: number;
  readonly absDiff: number;
  /** absDiff / max(|numerical|, |analytic|) (0 when both are 0). */
  readonly relDiff: number;
}

/** What `gradcheck` compared: every element checked, and the worst one. */
export interface GradcheckReport {
  /** Elements compared. */
  readonly checked: number;
  /** The element furthest outside (or closest to) the tolerance. */
  readonly worst: GradientComparison;
  /** Every comparison, in input order. */
  readonly comparisons: readonly GradientComparison[];
}

/**
 * `gradcheck`'s failure: names the worst element (input, index, both values, their difference) and
 * how many were checked.
 */
export class GradcheckError extends Error {
  override readonly name = 'GradcheckError';
  constructor(readonly report: GradcheckReport) {
    const w = report.worst;
    super(
      `gradcheck failed: input ${w.input} at index [${w.index.join(', ')}]: numerical ${w.numerical} vs analytic ${w.analytic} ` +
        `(absolute difference ${w.absDiff.toExponential(3)}, relative ${w.relDiff.toExponential(3)}); ${report.checked} elements checked`,
    );
  }
}

const unravel = (flat: number, shape: readonly number[]): number[] => {
  const idx = new Array<number>(shape.length);
  for (let ax = shape.length - 1; ax >= 0; ax--) {
    idx[ax] = flat % shape[ax]!;
    flat = Math.floor(flat / shape[ax]!);
  }
  return idx;
};

/** `t` with element `i` shifted by `delta` (a new tensor). */
export const perturb = (t: Tensor, i: number, delta: number): Tensor => {
  const data = internal.dataOf(t).slice(); // float: perturbed tensors are differentiated
  data[i] = data[i]! + delta;
  return internal.adopt(data, t.shape, t.backend);
};

const sampleIndices = (size: number, max: number | undefined, key: Key): number[] => {
  if (max === undefined || max >= size) return [...Array(size).keys()];
  return Array.from(key.permutation(size).subarray(0, max)).sort((a, b) => a - b);
};

/** The central difference (f(x + eps·eᵢ) − f(x − eps·eᵢ)) / 2eps for one element of one leaf. */
export const centralDifference = <P extends Treelike<P>>(f: (p: P) => Tensor, params: P, leaf: number, i: number, eps: number): number => {
  // Each evaluation frees what it made: a check runs f twice per element.
  const at = (delta: number): number => tidy(() => f(mapTree(params, (t, j) => (j === leaf ? perturb(t, i, delta) : t))).item());
  return (at(eps) - at(-eps)) / (2 * eps);
};

/**
 * Compares the tape's gradient of a scalar function with central differences,
 * element by element. `Right(report)` when every element satisfies
 * |numerical − analytic| ≤ atol + rtol·|numerical|, else `Left` naming the worst one.
 */
export const gradcheck = <P extends Treelike<P>>(
  f: (params: P) => Tensor,
  params: P,
  opts: GradcheckOptions = {},
): E.Either<GradcheckError, GradcheckReport> => {
  const eps = opts.eps ?? 1e-6,
    atol = opts.atol ?? 1e-5,
    rtol = opts.rtol ?? 1e-3;
  const x = opts.float64 === false ? params : mapTree(params, (t) => cast(t, 'float64'));
  const analytic = leaves(valueAndGrad(f)(x).grads);
  const paths = leafPaths(x);
  const keys = new Key(opts.seed ?? 0).split(analytic.length);
  const comparisons: GradientComparison[] = [];
  let worst: GradientComparison | undefined,
    worstScore = -1,
    ok = true;
  leaves(x).forEach((leaf, li) => {
    const g = analytic[li]!.toTypedArray();
    for (const i of sampleIndices(leaf.size, opts.maxElementsPerInput, keys[li]!)) {
      const numerical = centralDifference(f, x, li, i, eps);
      const a = g[i]!;
      const absDiff = Math.abs(numerical - a);
      const scale = Math.max(Math.abs(numerical), Math.abs(a));
      const c: GradientComparison = {
        input: paths[li]!,
        index: unravel(i, leaf.shape),
        numerical,
        analytic: a,
        absDiff,
        relDiff: scale === 0 ? 0 : absDiff / scale,
      };
      comparisons.push(c);
      const score = absDiff / (atol + rtol * Math.abs(numerical));
      if (!(score <= 1)) ok = false;
      if (!(score <= worstScore)) {
        worstScore = score;
        worst = c;
      }
    }
  });
  if (worst === undefined) throw new Error('gradcheck: the inputs hold no elements to check');
  const report: GradcheckReport = { checked: comparisons.length, worst, comparisons };
  return ok ? E.right(report) : E.left(new GradcheckError(report));
};

/**
 * One direction of `checkGradsDirectional`: ⟨v, ∇f⟩ from the tape against the central difference
 * of f along v.
 */
export interface DirectionalCheck {
  /** ⟨v, ∇f⟩ from the tape. */
  readonly analytic: number;
  /** (f(x + εv) − f(x − εv)) / 2ε. */
  readonly numerical: number;
  readonly absDiff: number;
  readonly relDiff: number;
}

/**
 * The scalable check (JAX's `check_grads` idea): along random directions v,
 * compare ⟨v, ∇f(x)⟩ with the central difference of f along v. Costs two
 * evaluations per direction whatever the number of parameters.
 */
export const checkGradsDirectional = <P extends Treelike<P>>(
  f: (params: P) => Tensor,
  params: P,
  opts: { readonly eps?: number; readonly atol?: number; readonly rtol?: number; readonly directions?: number; readonly seed?: number } = {},
): E.Either<Error, readonly DirectionalCheck[]> => {
  const eps = opts.eps ?? 1e-5,
    atol = opts.atol ?? 1e-6,
    rtol = opts.rtol ?? 1e-4;
  const x = mapTree(params, (t) => cast(t, 'float64'));
  const g = leaves(valueAndGrad(f)(x).grads).map((t) => t.toTypedArray());
  const keys = new Key(opts.seed ?? 0).split(opts.directions ?? 3);
  const checks: DirectionalCheck[] = [];
  for (const key of keys) {
    const vs = key.split(g.length).map((k, i) => k.normal(leaves(x)[i]!.shape, 'float64').toTypedArray());
    let analytic = 0;
    g.forEach((gi, i) => {
      const v = vs[i]!;
      for (let j = 0; j < gi.length; j++) analytic += gi[j]! * v[j]!;
    });
    const shifted = (s: number): number =>
      tidy(() =>
        f(
          mapTree(x, (t, i) => {
            const d = internal.dataOf(t).slice();
            const v = vs[i]!;
            for (let j = 0; j < d.length; j++) d[j] = d[j]! + s * v[j]!;
            return internal.adopt(d, t.shape, t.backend);
          }),
        ).item(),
      );
    const numerical = (shifted(eps) - shifted(-eps)) / (2 * eps);
    const absDiff = Math.abs(numerical - analytic);
    const scale = Math.max(Math.abs(numerical), Math.abs(analytic));
    checks.push({ analytic, numerical, absDiff, relDiff: scale === 0 ? 0 : absDiff / scale });
  }
  const bad = checks.find((c) => !(c.absDiff <= atol + rtol * Math.abs(c.numerical)));
  return bad === undefined
    ? E.right(checks)
    : E.left(
        new Error(
          `directional gradient check failed: ⟨v, ∇f⟩ = ${bad.analytic} from the tape vs ${bad.numerical} by central differences (absolute difference ${bad.absDiff.toExponential(3)})`,
        ),
      );
};
