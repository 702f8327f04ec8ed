/**
 * Reverse-mode transformations: `valueAndGrad`, `grad`, `vjp`.
 *
 * Each call makes a fresh tape, traces the arguments on it, runs the function
 * and walks the tape backwards. Nothing is global, so calls interleave, and
 * they nest: `grad(grad(f))`, `grad` of a function calling `valueAndGrad`,
 * `grad` under `vmap` or `jvp` (see transforms.ts), in any order.
 */
import { ones, ShapeError, showShape, Tensor, zeros } from '../core/index.js';
import { Tape } from './tape.js';
import { leaves, mapTree, type Treelike } from './tree.js';
import './rules/index.js'; // registers every primitive's rules (see rule-table.ts)

export interface ValueAndGrad<P extends Treelike<P>> {
  /** f(params), as a constant. */
  readonly value: Tensor;
  /** ∂f/∂params, in the structure of params. */
  readonly grads: P;
}

export interface ValueAndGradWithAux<P extends Treelike<P>, A> extends ValueAndGrad<P> {
  /** Whatever f returned beside the loss, with tensors detached from the tape. */
  readonly aux: A;
}

const trace = <P extends Treelike<P>>(tape: Tape, params: P): P => mapTree(params, (t) => tape.leaf(t));

const gradsOf = <P extends Treelike<P>>(tape: Tape, traced: P, cts: Map<number, Tensor>): P =>
  mapTree(traced, (t) => cts.get(tape.idOf(t)) ?? zeros(t.shape, t.dtype, t.backend));

/** Every tensor in a (any) structure one level below the tape: constants to it, still traced by outer transformations. */
const detach = <A>(tape: Tape, a: A): A => {
  if (a instanceof Tensor) return tape.lower(a) as A;
  if (Array.isArray(a)) return a.map((v) => detach(tape, v)) as A;
  if (a !== null && typeof a === 'object' && Object.getPrototypeOf(a) === Object.prototype) {
    return Object.fromEntries(Object.entries(a).map(([k, v]) => [k, detach(tape, v)])) as A;
  }
  return a;
};

const scalarSeed = (value: Tensor, who: string): Tensor => {
  // A plain number (or anything else) has no tape to walk back: say so, not "reading 'join'".
  if (!(value instanceof Tensor)) {
    throw new TypeError(
      `${who}: the function must return a Tensor computed from its argument, got ${typeof value === 'number' ? `the plain number ${value}` : typeof value}`,
    );
  }
  if (value.size !== 1) {
    throw new ShapeError(
      `${who}: the function must return a single number (a tensor of one element), got shape ${showShape(value.shape)}; ` +
        'reduce it (sum, mean) or use vjp() for non-scalar outputs',
    );
  }
  if (value.dtype !== 'float32' && value.dtype !== 'float64')
    throw new TypeError(`${who}: the function returned a ${value.dtype} tensor, which has no derivative: return a float one (cast(x, 'float32'))`);
  return ones(value.shape, value.dtype, value.backend);
};

/**
 * `valueAndGrad(f)(params)` returns f(params) and the gradient of f with respect
 * to every tensor in `params` (a tensor or any tree of tensors).
 *
 * @example
 * const { value, grads } = valueAndGrad((p: { w: Tensor }) => sumOfSquares(p.w))({ w });
 */
export const valueAndGrad =
  <P extends Treelike<P>>(f: (params: P) => Tensor) =>
  (params: P): ValueAndGrad<P> => {
    const tape = new Tape();
    try {
      const traced = trace(tape, params);
      const out = f(traced);
      const cts = tape.backward(out, scalarSeed(out, 'valueAndGrad'));
      return { value: tape.lower(out), grads: gradsOf(tape, traced, cts) };
    } finally {
      tape.finish();
    }
  };

/**
 * Like `valueAndGrad`, for a function returning `[loss, aux]`: aux (logits,
 * metrics…) comes back detached, so a training step needs one forward pass.
 */
export const valueAndGradWithAux =
  <P extends Treelike<P>, A>(f: (params: P) => readonly [Tensor, A]) =>
  (params: P): ValueAndGradWithAux<P, A> => {
    const tape = new Tape();
    try {
      const traced = trace(tape, params);
      const [out, aux] = f(traced);
      const cts = tape.backward(out, scalarSeed(out, 'valueAndGradWithAux'));
      return { value: tape.lower(out), grads: gradsOf(tape, traced, cts), aux: detach(tape, aux) };
    } finally {
      tape.finish();
    }
  };

/** `grad(f)(params)`: only the gradient. */
export const grad =
  <P extends Treelike<P>>(f: (params: P) => Tensor) =>
  (params: P): P =>
    valueAndGrad(f)(params).grads;

/**
 * `vjp(f)(primals)` returns f(primals) and a function that maps a cotangent of
 * the output's shape to cotangents of the inputs (any output shape). The tape
 * may be pulled back through several times, also later under other
 * transformations (`vmap` over the pullback is how `jacrev` works).
 */
export const vjp =
  <P extends Treelike<P>>(f: (primals: P) => Tensor) =>
  (
    primals: P,
  ): {
    /** f(primals), as a constant. */
    readonly value: Tensor;
    /** Cotangents of the inputs for a cotangent of the output (any number of times). */
    readonly vjp: (cotangent: Tensor) => P;
  } => {
    const tape = new Tape();
    const traced = trace(tape, primals);
    let out: Tensor;
    try {
      out = f(traced);
    } finally {
      tape.finish(); // the pullback walks the recorded nodes; nothing may record more
    }
    if (!(out instanceof Tensor)) throw new TypeError(`vjp(${fnName(f)}): the function must return a Tensor, got ${typeof out}`);
    return {
      value: tape.lower(out),
      vjp: (ct) => {
        if (!(ct instanceof Tensor) || ct.shape.join() !== out.shape.join()) {
          throw new ShapeError(
            `vjp(${fnName(f)}): cotangent of shape ${ct instanceof Tensor ? showShape(ct.shape) : typeof ct} does not match the output's shape ${showShape(out.shape)}`,
          );
        }
        return gradsOf(tape, traced, tape.backward(out, ct));
      },
    };
  };

/** A function's name for messages ('f' when it has none). */
export const fnName = (f: (...args: never[]) => unknown): string => (f.name !== '' ? f.name : 'f');

/** Number of scalars in a tree (e.g. a model's parameter count). */
export const countParams = <P extends Treelike<P>>(tree: P): number => leaves(tree).reduce((n, t) => n + t.size, 0);
