/**
 * Forward mode and batching as transformations of functions, and what they
 * compose into: `jvp`, `vmap`, `jacfwd`, `jacrev`, `hessian`, `hvp`.
 *
 * Each composes with `grad`, `valueAndGrad` and `vjp` (grad.ts) and with
 * itself, in any order and depth: a transformation started inside another's
 * function gets the higher level (level.ts), and every op is handed to the
 * innermost transformation first, which binds it again one level down.
 */
import { normalizeAxis, oneHot, reshape, sameShape, ShapeError, showShape, Tensor, transpose, zeros } from '../core/index.js';
import { BatchTrace } from './batching.js';
import { JvpTrace } from './forward.js';
import { fnName, grad, vjp } from './grad.js';
import { leafPaths, leaves, mapTree, type Treelike } from './tree.js';
import './rules/index.js'; // registers every primitive's rules (see rule-table.ts)

/** The result of `jvp`: f's value and its directional derivative, each in the structure of f's output. */
export interface JvpResult<R> {
  readonly value: R;
  readonly tangent: R;
}

const checkOutput = (who: string, out: unknown): void => {
  if (out instanceof Tensor || Array.isArray(out) || (out !== null && typeof out === 'object')) return;
  throw new TypeError(`${who}: the function must return a tensor or a tree of tensors, got ${out === null ? 'null' : typeof out}`);
};

/**
 * Forward mode: `jvp(f)(primals, tangents)` is f(primals) and its derivative
 * along `tangents` (a tree of primals' structure, each leaf of its primal's
 * shape and dtype), computed in one forward pass: no tape, at about the cost of
 * two evaluations of f. `f` may return any tree of tensors.
 *
 * @example
 * const { value, tangent } = jvp((x: Tensor) => sum(mul(x, x)))(x, v); // tangent = 2⟨x, v⟩
 */
export const jvp =
  <P extends Treelike<P>, R extends Treelike<R>>(f: (primals: P) => R) =>
  (primals: P, tangents: P): JvpResult<R> => {
    const who = `jvp(${fnName(f)})`;
    const ps = leaves(primals),
      ts = leaves(tangents),
      paths = leafPaths(primals);
    const tpaths = leafPaths(tangents);
    if (ps.length !== ts.length || tpaths.some((p, i) => p !== paths[i])) {
      throw new TypeError(
        `${who}: the tangents' structure (${tpaths.join(', ')}) differs from the primals' (${paths.join(', ')}): give one tangent per primal, in its structure`,
      );
    }
    ps.forEach((p, i) => {
      const t = ts[i]!;
      if (!sameShape(p.shape, t.shape))
        throw new ShapeError(`${who}: the tangent of ${paths[i]} has shape ${showShape(t.shape)} but the primal ${showShape(p.shape)}`);
      if (p.dtype !== t.dtype) throw new TypeError(`${who}: the tangent of ${paths[i]} is ${t.dtype} but the primal ${p.dtype}: cast one`);
      if (p.backend !== t.backend)
        throw new Error(`${who}: the tangent of ${paths[i]} lives on '${t.backend.name}' but the primal on '${p.backend.name}': move one with toBackend`);
    });
    const main = new JvpTrace();
    try {
      const out = f(mapTree(primals, (p, i) => main.wrap(p, ts[i]!)));
      checkOutput(who, out);
      return {
        value: mapTree(out, (y) => main.primalOf(y)),
        tangent: mapTree(out, (y) => main.tangentOf(y) ?? zeros(y.shape, y.dtype, y.backend)),
      };
    } finally {
      main.finish();
    }
  };

/** Which axis of each argument `vmap` maps over (`null`: the argument is shared by every example). */
export type InAxes = number | null | readonly (number | null)[];

/** Options of `vmap`. */
export interface VmapOptions {
  /** The batch axis of every argument (one value for all, or one per argument; `null`: not batched). Default 0. */
  readonly inAxes?: InAxes;
  /** Where the batch axis goes in every output leaf. Default 0. */
  readonly outAxes?: number;
}

/** t with axis `from` moved to position `to`. */
const moveAxis = (t: Tensor, from: number, to: number): Tensor => {
  if (from === to) return t;
  const rest = [...Array(t.rank).keys()].filter((a) => a !== from);
  rest.splice(to, 0, from);
  return transpose(t, rest);
};

/**
 * Batching: `vmap(f)(xs)` applies f to every example of a batch at once, as if
 * f were called on each slice along `inAxes` and the results stacked along
 * `outAxes`, but with each op run once over the whole batch (its batching
 * rule). f is written for one example; arguments with `inAxes` null, and
 * tensors f closes over, are shared by every example. Composes with every
 * transformation: `vmap(grad(loss))` gives per-example gradients in one pass.
 *
 * @example
 * const perExample = vmap((x: Tensor, y: Tensor) => grad((p: Params) => loss(p, x, y))(params));
 * const grads = perExample(images, labels); // each leaf [batch, …param shape]
 */
export const vmap =
  <A extends readonly unknown[], R>(f: (...args: A) => R, opts: VmapOptions = {}) =>
  (...args: A): R => {
    const who = `vmap(${fnName(f as (...a: never[]) => unknown)})`;
    const spec = opts.inAxes === undefined ? 0 : opts.inAxes;
    if (Array.isArray(spec) && spec.length !== args.length) {
      throw new TypeError(`${who}: inAxes has ${spec.length} entries for ${args.length} arguments: give one per argument (null for a shared one)`);
    }
    const axisOf = (i: number): number | null => (Array.isArray(spec) ? (spec as readonly (number | null)[])[i]! : (spec as number | null));
    let size: number | undefined,
      first = '';
    const axes = args.map((a, i) => {
      const ax = axisOf(i);
      if (ax === null) return [];
      const ls = leaves(a as Tensor),
        paths = ls.length > 1 ? leafPaths(a as Tensor) : [];
      return ls.map((t, k) => {
        const where = `argument ${i}${ls.length > 1 ? ` (${paths[k]})` : ''}`;
        if (t.rank === 0) throw new ShapeError(`${who}: ${where} is a scalar: it has no axis ${ax} to map over (give inAxes null to share it)`);
        const norm = normalizeAxis(ax, t.rank, who);
        const n = t.shape[norm]!;
        if (size === undefined) {
          size = n;
          first = `${where} of shape ${showShape(t.shape)}`;
        } else if (n !== size)
          throw new ShapeError(`${who}: ${where} of shape ${showShape(t.shape)} has ${n} examples along axis ${ax}, but ${first} has ${size}`);
        return norm;
      });
    });
    if (size === undefined) throw new TypeError(`${who}: no argument has a batch axis (inAxes is ${JSON.stringify(spec)}): nothing to map over`);
    if (size === 0) throw new ShapeError(`${who}: ${first} has no examples along its batch axis: nothing to map over`);
    const main = new BatchTrace(size);
    try {
      const wrapped = args.map((a, i) => (axisOf(i) === null ? a : mapTree(a as Tensor, (t, k) => main.wrap(moveAxis(t, axes[i]![k]!, 0)))));
      const out = f(...(wrapped as unknown as A));
      checkOutput(who, out);
      return mapTree(out as Tensor, (y) => {
        const batch = main.unwrap(y);
        return moveAxis(batch, 0, normalizeAxis(opts.outAxes ?? 0, batch.rank, who));
      }) as unknown as R;
    } finally {
      main.finish();
    }
  };

/** The identity as a batch of basis tensors of `like`'s shape: [n, …shape], n = like.size. */
const basis = (like: Tensor): Tensor => reshape(oneHot([...Array(like.size).keys()], like.size, like.dtype, like.backend), [like.size, ...like.shape]);

/**
 * The Jacobian of f at x by forward mode (one `jvp` per input element, batched
 * by `vmap`): shape [...f(x).shape, ...x.shape]. Best when x has fewer elements
 * than f(x).
 *
 * @example
 * const J = jacfwd((x: Tensor) => tanh(matmul(x, w)))(x); // [batch, out, batch, in]
 */
export const jacfwd =
  (f: (x: Tensor) => Tensor) =>
  (x: Tensor): Tensor => {
    const cols = vmap((t: Tensor) => jvp(f)(x, t).tangent)(basis(x)); // [n, ...out]
    const outRank = cols.rank - 1;
    return reshape(moveAxis(cols, 0, outRank), [...cols.shape.slice(1), ...x.shape]);
  };

/**
 * The Jacobian of f at x by reverse mode (one pullback per output element,
 * batched by `vmap`): shape [...f(x).shape, ...x.shape]. Best when f(x) has
 * fewer elements than x.
 *
 * @example
 * const J = jacrev((p: Tensor) => softmax(p))(logits); // [n, n]
 */
export const jacrev =
  (f: (x: Tensor) => Tensor) =>
  (x: Tensor): Tensor => {
    const { value, vjp: pullback } = vjp(f)(x);
    const rows = vmap((ct: Tensor) => pullback(ct))(basis(value)); // [m, ...x.shape]
    return reshape(rows, [...value.shape, ...x.shape]);
  };

/**
 * The Hessian of a scalar function: forward over reverse, `jacfwd(grad(f))`, shape [...x.shape, ...x.shape].
 *
 * @example
 * const H = hessian((x: Tensor) => sum(mul(tanh(x), x)))(x); // [3, 3] for x of shape [3]
 */
export const hessian = (f: (x: Tensor) => Tensor): ((x: Tensor) => Tensor) => jacfwd(grad(f));

/**
 * The Hessian-vector product of a scalar function of a tree, H(params)·v
 * (v in params' structure), as forward over reverse: one gradient's cost
 * about twice, never the Hessian itself.
 *
 * @example
 * const hv = hvp(loss)(params, direction); // same structure as params
 */
export const hvp =
  <P extends Treelike<P>>(f: (params: P) => Tensor) =>
  (params: P, v: P): P =>
    jvp(grad(f))(params, v).tangent;
