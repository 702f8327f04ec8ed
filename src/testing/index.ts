/**
 * tapegrad/testing: property-testing your own layers and gradients.
 *
 * - fast-check arbitraries for shapes, tensors (dtype, value range, kinks to
 *   avoid) and parameter trees built from a template;
 * - `expectGradients(f, params)`: the tape's gradient against float64 central
 *   differences, element by element within a tolerance, and along random
 *   directions, showing the O(ε²) convergence of the central difference
 *   (halving ε cuts its error by about 4×), which exposes a slightly wrong
 *   gradient that a loose tolerance lets through;
 * - `expectJvp(f, primals)`: forward mode's tangent (`jvp`) against float64
 *   central differences along random directions, element by element and with
 *   the same O(ε²) order check; second derivatives need nothing new:
 *   `expectGradients` of a function that calls `grad` checks a Hessian-vector
 *   product, since gradients of gradients are gradients;
 * - `expectAllClose(actual, expected)`.
 * Failures throw an Error naming the worst element, so they work in any test
 * runner (vitest, jest, node:test). fast-check is a peer dependency.
 *
 * @example
 * import fc from 'fast-check';
 * import { expectGradients, tensorArb } from 'tapegrad/testing';
 * fc.assert(fc.property(tensorArb({ shape: [2, 3] }), (x) => { expectGradients((p) => sum(tanh(p)), x); }));
 */
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { gradcheck, GradcheckError, type GradcheckReport } from '../autodiff/gradcheck.js';
import { valueAndGrad } from '../autodiff/grad.js';
import { jvp } from '../autodiff/transforms.js';
import { leafPaths, leaves, mapTree, type Treelike } from '../autodiff/tree.js';
import { cast, fromArray, Key, Tensor, tidy, type DType, type NestedArray } from '../core/index.js';
import { internal } from '../core/internal.js';

/** The Right of an Either, or its Left thrown (for tests of functions that return Either). */
export const unwrap = <A>(e: E.Either<Error, A>): A => {
  if (E.isLeft(e)) throw e.left;
  return e.right;
};

export interface ShapeOptions {
  readonly minRank?: number;
  readonly maxRank?: number;
  /** Largest length of an axis (default 4). */
  readonly maxDim?: number;
  readonly minDim?: number;
}

/** Shapes of rank minRank..maxRank (default 1..3) with lengths minDim..maxDim (default 1..4). */
export const shapeArb = (o: ShapeOptions = {}): fc.Arbitrary<number[]> =>
  fc.array(fc.integer({ min: o.minDim ?? 1, max: o.maxDim ?? 4 }), { minLength: o.minRank ?? 1, maxLength: o.maxRank ?? 3 });

export interface TensorOptions extends ShapeOptions {
  /** A fixed shape, or an arbitrary of shapes (default `shapeArb(this)`). */
  readonly shape?: readonly number[] | fc.Arbitrary<readonly number[]>;
  /** Default float64 (what gradient checks need). */
  readonly dtype?: DType;
  /** Value range (default [-2, 2]). */
  readonly min?: number;
  readonly max?: number;
  /** Points to keep away from (kinks: relu at 0, abs at 0), by at least `gap` (default 0.05). */
  readonly avoid?: readonly number[];
  readonly gap?: number;
}

/** Finite values in [min, max], pushed `gap` away from each `avoid` point. */
export const valuesArb = (n: number, o: TensorOptions = {}): fc.Arbitrary<number[]> => {
  const lo = o.min ?? -2,
    hi = o.max ?? 2,
    gap = o.gap ?? 0.05;
  return fc.array(fc.double({ min: lo, max: hi, noNaN: true, noDefaultInfinity: true }), { minLength: n, maxLength: n }).map((xs) =>
    xs.map((x) => {
      for (const a of o.avoid ?? []) if (Math.abs(x - a) < gap) x = a + (x >= a ? gap : -gap);
      return x;
    }),
  );
};

const sizeOf = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Tensors of a given or random shape, dtype and value range. */
export const tensorArb = (o: TensorOptions = {}): fc.Arbitrary<Tensor> => {
  const shapes: fc.Arbitrary<readonly number[]> =
    o.shape === undefined ? shapeArb(o) : Array.isArray(o.shape) ? fc.constant(o.shape as readonly number[]) : (o.shape as fc.Arbitrary<readonly number[]>);
  return shapes.chain((shape) => valuesArb(sizeOf(shape), o).map((v) => unwrap(fromArray(v, [...shape], o.dtype ?? 'float64'))));
};

/**
 * A template of a parameter tree: a shape (an array of numbers, [] for a
 * scalar) or a tensor (its shape) at each leaf, nested in arrays and records.
 */
export type TreeTemplate = readonly number[] | Tensor | readonly TreeTemplate[] | { readonly [key: string]: TreeTemplate };

/** The tree type a template describes. */
export type TreeFromTemplate<T> = T extends readonly number[]
  ? Tensor
  : T extends Tensor
    ? Tensor
    : T extends readonly unknown[]
      ? { readonly [K in keyof T]: TreeFromTemplate<T[K]> }
      : { readonly [K in keyof T]: TreeFromTemplate<T[K]> };

const isShape = (t: unknown): t is readonly number[] => Array.isArray(t) && t.every((d) => typeof d === 'number');

/**
 * Parameter trees with the template's structure and shapes, random values.
 *
 * @example
 * treeArb({ w: [3, 2], b: [2] })   // fc.Arbitrary<{ w: Tensor; b: Tensor }>
 */
export const treeArb = <T extends TreeTemplate>(template: T, o: Omit<TensorOptions, 'shape'> = {}): fc.Arbitrary<TreeFromTemplate<T>> => {
  const go = (t: TreeTemplate): fc.Arbitrary<unknown> => {
    if (t instanceof Tensor) return tensorArb({ ...o, shape: t.shape });
    if (isShape(t)) return tensorArb({ ...o, shape: t });
    if (Array.isArray(t)) return fc.tuple(...(t as readonly TreeTemplate[]).map(go));
    const rec = t as { readonly [key: string]: TreeTemplate };
    return fc.record(Object.fromEntries(Object.keys(rec).map((k) => [k, go(rec[k]!)])));
  };
  return go(template) as fc.Arbitrary<TreeFromTemplate<T>>;
};

export interface ExpectGradientsOptions {
  /** Step of the element-wise check (default 1e-6). */
  readonly eps?: number;
  /** Element-wise tolerance |numerical − analytic| ≤ atol + rtol·|numerical| (defaults 1e-6, 1e-4). */
  readonly atol?: number;
  readonly rtol?: number;
  /** Check at most this many elements per leaf (default all). */
  readonly maxElementsPerInput?: number;
  /** Seeds the element sample and the directions (default 0). */
  readonly seed?: number;
  /**
   * The convergence-order check along random directions, or false to skip it
   * (functions with kinks near the point). `eps`: the largest step (default
   * 1e-3, then ε/2 and ε/4: small enough that the O(ε⁴) term is negligible); each halving must cut the error by a ratio in [min, max] (default
   * [3, 5.5]: about 4 for O(ε²)); `directions` (default 3).
   */
  readonly order?: false | { readonly eps?: number; readonly min?: number; readonly max?: number; readonly directions?: number };
}

/** What `expectGradients` measured. */
export interface GradientsReport {
  readonly elementwise: GradcheckReport;
  /** Per direction: the error at ε and ε/2 and their ratio (undefined when the error is at rounding level: the function is quadratic along it). */
  readonly order: readonly { readonly errors: readonly [number, number]; readonly ratio: number | undefined }[];
}

/** A gradient that disagrees with finite differences. */
export class GradientMismatchError extends Error {
  override readonly name = 'GradientMismatchError';
}

/**
 * Throws unless the tape's gradient of the scalar function `f` at `params` (any
 * tree, computed in float64) matches central differences element by element
 * and, along random directions, the central difference's error shrinks as
 * O(ε²) towards it. The message names the worst element.
 */
export const expectGradients = <P extends Treelike<P>>(f: (params: P) => Tensor, params: P, opts: ExpectGradientsOptions = {}): GradientsReport => {
  const x = mapTree(params, (t) => cast(t, 'float64'));
  const r = gradcheck(f, x, {
    eps: opts.eps ?? 1e-6,
    atol: opts.atol ?? 1e-6,
    rtol: opts.rtol ?? 1e-4,
    seed: opts.seed ?? 0,
    ...(opts.maxElementsPerInput !== undefined ? { maxElementsPerInput: opts.maxElementsPerInput } : {}),
  });
  if (E.isLeft(r)) throw new GradientMismatchError(r.left.message);
  const order: { errors: readonly [number, number]; ratio: number | undefined }[] = [];
  if (opts.order !== false) {
    const o = opts.order ?? {};
    const eps = o.eps ?? 1e-3,
      lo = o.min ?? 3,
      hi = o.max ?? 5.5;
    const g = leaves(valueAndGrad(f)(x).grads).map((t) => t.toTypedArray());
    const xs = leaves(x);
    for (const key of new Key(opts.seed ?? 0).fold('directions').split(o.directions ?? 3)) {
      const vs = key.split(xs.length).map((k, i) => k.normal(xs[i]!.shape, 'float64').toTypedArray());
      let analytic = 0;
      g.forEach((gi, i) => {
        for (let j = 0; j < gi.length; j++) analytic += gi[j]! * vs[i]![j]!;
      });
      const along = (s: number) =>
        tidy(() =>
          f(
            mapTree(x, (t, i) => {
              const d = internal.dataOf(t).slice();
              for (let j = 0; j < d.length; j++) d[j] = d[j]! + s * vs[i]![j]!;
              return internal.adopt(d, t.shape, t.backend);
            }),
          ).item(),
        );
      const err = (e: number) => Math.abs((along(e) - along(-e)) / (2 * e) - analytic);
      // Three steps, two halvings: a constant error (a wrong gradient) flattens the ratios towards 1 however it mixes with the O(ε²) part.
      const es = [err(eps), err(eps / 2), err(eps / 4)] as const;
      // Rounding error of a difference quotient is about 1e-16·|f|/ε; below ~1000× that, the ratio means nothing.
      const floor = (1e-13 * (Math.abs(along(0)) + Math.abs(analytic) + 1)) / (eps / 4);
      if (es[0] <= floor) {
        order.push({ errors: [es[0], es[1]], ratio: undefined });
        continue;
      }
      for (let k = 0; k < 2; k++) {
        const ratio = es[k]! / es[k + 1]!;
        if (k === 0) order.push({ errors: [es[0], es[1]], ratio });
        if (es[k + 1]! <= floor) break;
        if (!(ratio >= lo && ratio <= hi)) {
          const e1 = es[k]!,
            e2 = es[k + 1]!,
            h = eps / 2 ** k;
          throw new GradientMismatchError(
            `gradient convergence order: along a random direction, the central-difference error went from ${e1.toExponential(3)} (ε = ${h}) ` +
              `to ${e2.toExponential(3)} (ε = ${h / 2}), a ratio of ${ratio.toFixed(2)}; O(ε²) needs about 4 (accepted ${lo}..${hi}). ` +
              `⟨v, ∇f⟩ from the tape is ${analytic}: a ratio that drifts towards 1 means the tape's gradient is off by about ${es[2].toExponential(3)} along v`,
          );
        }
      }
    }
  }
  return { elementwise: r.right, order };
};

export interface ExpectJvpOptions<P = unknown> {
  /** Tangents in the primals' structure (default: standard normal directions from `seed`). */
  readonly tangents?: P;
  /** Step of the element-wise check (default 1e-6). */
  readonly eps?: number;
  /** Element-wise tolerance |numerical − jvp| ≤ atol + rtol·|numerical| (defaults 1e-6, 1e-4). */
  readonly atol?: number;
  readonly rtol?: number;
  /** Seeds the directions (default 0). */
  readonly seed?: number;
  /** Random directions to check (default 2; 1 when `tangents` is given). */
  readonly directions?: number;
  /** The O(ε²) order check as in `expectGradients` (largest step, accepted ratio band), or false to skip it. */
  readonly order?: false | { readonly eps?: number; readonly min?: number; readonly max?: number };
}

/** What `expectJvp` measured, per direction. */
export interface JvpReport {
  /** Largest |numerical − jvp| over the output's elements at the element-wise step. */
  readonly maxError: number;
  /** The errors at ε, ε/2, ε/4 of the order check and the first ratio (undefined: at rounding level, or the check was off). */
  readonly order: readonly { readonly errors: readonly number[]; readonly ratio: number | undefined }[];
}

/**
 * Throws unless forward mode's tangent of f (any output shape) at `primals`
 * (any tree, computed in float64) matches central differences
 * (f(x + εv) − f(x − εv)) / 2ε along each direction v, element by element, and
 * unless the central difference's error shrinks as O(ε²) towards it. The
 * message names the worst output element and the direction.
 *
 * @example
 * expectJvp((x: Tensor) => tanh(matmul(x, w)), x);
 */
export const expectJvp = <P extends Treelike<P>>(f: (primals: P) => Tensor, primals: P, opts: ExpectJvpOptions<P> = {}): JvpReport[] => {
  const x = mapTree(primals, (t) => cast(t, 'float64'));
  const xs = leaves(x),
    paths = leafPaths(x);
  const atol = opts.atol ?? 1e-6,
    rtol = opts.rtol ?? 1e-4,
    eps = opts.eps ?? 1e-6;
  const dirs: Float64Array[][] =
    opts.tangents !== undefined
      ? [leaves(opts.tangents).map((t) => Float64Array.from(t.toTypedArray()))]
      : new Key(opts.seed ?? 0)
          .fold('jvp directions')
          .split(opts.directions ?? 2)
          .map((k) => k.split(xs.length).map((ki, i) => ki.normal(xs[i]!.shape, 'float64').toTypedArray() as Float64Array));
  const reports: JvpReport[] = [];
  dirs.forEach((vs, d) => {
    const v = mapTree(x, (t, i) => internal.adopt(Float64Array.from(vs[i]!), t.shape, t.backend));
    const tangent = Array.from(tidy(() => jvp(f)(x, v).tangent.toTypedArray()));
    const along = (s: number): number[] =>
      Array.from(
        tidy(() =>
          f(
            mapTree(x, (t, i) => {
              const a = internal.dataOf(t).slice();
              for (let j = 0; j < a.length; j++) a[j] = a[j]! + s * vs[i]![j]!;
              return internal.adopt(a, t.shape, t.backend);
            }),
          ).toTypedArray(),
        ),
      );
    const quotient = (e: number): number[] => {
      const p = along(e),
        m = along(-e);
      return p.map((pv, j) => (pv - m[j]!) / (2 * e));
    };
    const numerical = quotient(eps);
    let worst = 0,
      worstScore = 0,
      maxError = 0;
    numerical.forEach((n, j) => {
      const err = Math.abs(n - tangent[j]!);
      maxError = Math.max(maxError, err);
      const score = err / (atol + rtol * Math.abs(n));
      if (!(score <= worstScore)) {
        worstScore = score;
        worst = j;
      }
    });
    if (!(worstScore <= 1)) {
      throw new GradientMismatchError(
        `jvp: output element ${worst} along direction ${d} (over ${paths.join(', ')}): numerical ${numerical[worst]} vs jvp ${tangent[worst]} ` +
          `(difference ${Math.abs(numerical[worst]! - tangent[worst]!)}, allowed ${atol + rtol * Math.abs(numerical[worst]!)})`,
      );
    }
    const order: { errors: number[]; ratio: number | undefined }[] = [];
    if (opts.order !== false) {
      const o = opts.order ?? {};
      const e0 = o.eps ?? 1e-3,
        lo = o.min ?? 3,
        hi = o.max ?? 5.5;
      const errAt = (e: number) => quotient(e).reduce((m, n, j) => Math.max(m, Math.abs(n - tangent[j]!)), 0);
      const es = [errAt(e0), errAt(e0 / 2), errAt(e0 / 4)];
      const scale = along(0).reduce((m, y) => Math.max(m, Math.abs(y)), 0) + tangent.reduce((m, y) => Math.max(m, Math.abs(y)), 0) + 1;
      const floor = (1e-13 * scale) / (e0 / 4);
      if (es[0]! <= floor) order.push({ errors: es, ratio: undefined });
      else {
        order.push({ errors: es, ratio: es[0]! / es[1]! });
        for (let k = 0; k < 2; k++) {
          if (es[k + 1]! <= floor) break;
          const ratio = es[k]! / es[k + 1]!;
          if (!(ratio >= lo && ratio <= hi)) {
            throw new GradientMismatchError(
              `jvp convergence order along direction ${d}: the central-difference error went from ${es[k]!.toExponential(3)} (ε = ${e0 / 2 ** k}) ` +
                `to ${es[k + 1]!.toExponential(3)} (ε = ${e0 / 2 ** (k + 1)}), a ratio of ${ratio.toFixed(2)}; O(ε²) needs about 4 (accepted ${lo}..${hi})`,
            );
          }
        }
      }
    }
    reports.push({ maxError, order });
  });
  return reports;
};

export interface AllCloseOptions {
  /** Default 1e-6. */
  readonly atol?: number;
  /** Default 1e-5. */
  readonly rtol?: number;
  /** NaN equals NaN (default true: NaN where NaN is expected is right). */
  readonly equalNaN?: boolean;
}

const flat = (v: Tensor | ArrayLike<number> | NestedArray): { values: ArrayLike<number>; shape: readonly number[] | undefined } => {
  if (v instanceof Tensor) return { values: v.toTypedArray(), shape: v.shape };
  if (typeof v === 'number') return { values: [v], shape: [] };
  if (Array.isArray(v)) return { values: (v as unknown[]).flat(Infinity as 1) as number[], shape: undefined };
  return { values: v as ArrayLike<number>, shape: undefined };
};

/**
 * Throws unless every element satisfies |actual − expected| ≤ atol + rtol·|expected|
 * (and shapes agree for tensors), naming the worst element.
 */
export const expectAllClose = (
  actual: Tensor | ArrayLike<number> | NestedArray,
  expected: Tensor | ArrayLike<number> | NestedArray,
  o: AllCloseOptions = {},
): void => {
  const atol = o.atol ?? 1e-6,
    rtol = o.rtol ?? 1e-5,
    equalNaN = o.equalNaN ?? true;
  const a = flat(actual),
    b = flat(expected);
  if (a.shape !== undefined && b.shape !== undefined && a.shape.join() !== b.shape.join()) {
    throw new Error(`expectAllClose: shapes differ: [${a.shape.join(', ')}] vs expected [${b.shape.join(', ')}]`);
  }
  if (a.values.length !== b.values.length) throw new Error(`expectAllClose: ${a.values.length} elements vs ${b.values.length} expected`);
  let worst = -1,
    worstScore = 0;
  for (let i = 0; i < a.values.length; i++) {
    const x = a.values[i]!,
      y = b.values[i]!;
    if (Number.isNaN(x) || Number.isNaN(y)) {
      if (equalNaN && Number.isNaN(x) && Number.isNaN(y)) continue;
      worst = i;
      worstScore = Infinity;
      break;
    }
    if (x === y) continue; // equal infinities
    const score = Math.abs(x - y) / (atol + rtol * Math.abs(y));
    if (score > worstScore) {
      worstScore = score;
      worst = i;
    }
  }
  if (worstScore > 1) {
    const x = a.values[worst]!,
      y = b.values[worst]!;
    throw new Error(
      `expectAllClose: element ${worst}: ${x} vs expected ${y} (difference ${Math.abs(x - y)}, allowed ${atol + rtol * Math.abs(y)}` +
        `${Number.isNaN(x) !== Number.isNaN(y) ? '; one is NaN' : ''})`,
    );
  }
};

export { GradcheckError };
