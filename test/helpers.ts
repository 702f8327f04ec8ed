import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { expect } from 'vitest';
import { bind, conv2d, fromArray, toBackend, type Backend, type Tensor } from '../src/core/index.js';

/** Unwraps a Right or fails the test with the Left's message. */
export const right = <A>(e: E.Either<Error, A>): A => {
  if (E.isLeft(e)) throw e.left;
  return e.right;
};

/** A Left's error, or a failed test. */
export const left = <A>(e: E.Either<Error, A>): Error => {
  if (E.isRight(e)) throw new Error('expected a Left, got a Right');
  return e.left;
};

export const t64 = (values: number[], shape: number[]): Tensor => right(fromArray(values, shape, 'float64'));
export const t32 = (values: number[], shape: number[]): Tensor => right(fromArray(values, shape, 'float32'));

/** Elementwise closeness of two flat arrays: |a - b| <= atol + rtol |b|. */
export const expectAllClose = (a: ArrayLike<number>, b: ArrayLike<number>, atol = 1e-6, rtol = 1e-5): void => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= atol + rtol * Math.abs(b[i]!))) {
      throw new Error(`element ${i}: ${a[i]} vs ${b[i]} (difference ${d}, allowed ${atol + rtol * Math.abs(b[i]!)})`);
    }
  }
};

/** A shape of rank 1..3 with lengths 1..4. */
export const shapeArb = (minRank = 1, maxRank = 3): fc.Arbitrary<number[]> =>
  fc.array(fc.integer({ min: 1, max: 4 }), { minLength: minRank, maxLength: maxRank });

/** Values in [lo, hi] kept at least `gap` away from `avoid` (kinks such as relu at 0). */
export const valuesArb = (n: number, lo = -2, hi = 2, avoid?: number, gap = 0.05): fc.Arbitrary<number[]> =>
  fc
    .array(fc.double({ min: lo, max: hi, noNaN: true, noDefaultInfinity: true }), { minLength: n, maxLength: n })
    .map((xs) => (avoid === undefined ? xs : xs.map((x) => (Math.abs(x - avoid) < gap ? avoid + (x >= avoid ? gap : -gap) : x))));

/** A float64 tensor of a random shape and values. */
export const tensorArb = (opts: { lo?: number; hi?: number; avoid?: number; minRank?: number; maxRank?: number } = {}): fc.Arbitrary<Tensor> =>
  shapeArb(opts.minRank, opts.maxRank).chain((shape) =>
    valuesArb(
      shape.reduce((a, b) => a * b, 1),
      opts.lo,
      opts.hi,
      opts.avoid,
    ).map((v) => t64(v, shape)),
  );

/** Parsed JSON that a test edits freely (a file's keys, to damage or reseal it). */
// biome-ignore lint/suspicious/noExplicitAny: tests reach into parsed files by any path; a typed view would be longer than the edit
export type EditableJson = any;

/** conv2d and both its gradient primitives on `be`, from operands made elsewhere (moved there first). */
export const convAndGrads = (be: Backend, x: Tensor, w: Tensor, ct: Tensor, p: { stride: number; padding: number }) => {
  const [xb, wb, cb] = [x, w, ct].map((t) => toBackend(t, be)) as [Tensor, Tensor, Tensor];
  return {
    y: conv2d(xb, wb, p),
    dx: bind('conv2dGradInput', [cb, wb], { ...p, inputShape: x.shape }),
    dw: bind('conv2dGradWeight', [cb, xb], { ...p, filterShape: w.shape }),
  };
};
