/**
 * The ops as total functions: each returns `Either<ShapeError, Tensor>` instead
 * of throwing, for code that takes shapes from users (configs, files, requests).
 *
 * @example
 * pipe(checked.matmul(x, w), E.map(relu))
 */
import * as E from 'fp-ts/lib/Either.js';
import * as everyday from './ops-everyday.js';
import * as ops from './ops.js';
import { ShapeError } from './shape.js';
import type { Tensor } from './tensor.js';

type Checked<F> = F extends (...args: infer A) => Tensor ? (...args: A) => E.Either<ShapeError, Tensor> : never;

const guard =
  <A extends unknown[]>(f: (...args: A) => Tensor) =>
  (...args: A): E.Either<ShapeError, Tensor> => {
    try {
      return E.right(f(...args));
    } catch (e) {
      if (e instanceof ShapeError) return E.left(e);
      throw e;
    }
  };

const names = [
  'add',
  'sub',
  'mul',
  'div',
  'matmul',
  'batchedMatmul',
  'reshape',
  'transpose',
  'broadcastTo',
  'slice',
  'concat',
  'conv2d',
  'sum',
  'mean',
  'max',
  'logSumExp',
  'softmax',
  'logSoftmax',
  'softmaxCrossEntropy',
  'oneHot',
] as const;
const everydayNames = ['einsum', 'gather', 'scatterAdd', 'squeeze', 'tile', 'repeat', 'stridedSlice', 'min', 'prod'] as const;
type CheckedName = (typeof names)[number];
type EverydayName = (typeof everydayNames)[number];

/** Shape-checked versions of the binary and shape-changing ops, returning `Either`. */
export const checked = Object.fromEntries([
  // biome-ignore lint/performance/noDynamicNamespaceImportAccess: it wraps every op by name, so every op is used anyway
  ...names.map((n) => [n, guard(ops[n] as (...a: unknown[]) => Tensor)]),
  // biome-ignore lint/performance/noDynamicNamespaceImportAccess: as above
  ...everydayNames.map((n) => [n, guard(everyday[n] as (...a: unknown[]) => Tensor)]),
]) as { readonly [N in CheckedName]: Checked<(typeof ops)[N]> } & { readonly [N in EverydayName]: Checked<(typeof everyday)[N]> };
