/**
 * Trees of tensors ("pytrees"): a tensor, an array of trees, or a plain record of trees.
 * All parameters of a model form one tree; gradients come back in the same shape.
 *
 * Types: `Tree` is the structural union. Functions generic over a tree take
 * `<P extends Treelike<P>>`, which also accepts parameter types declared as
 * `interface`s or readonly records (an interface has no implicit index
 * signature, so it is not assignable to `Tree` itself), and refuses records
 * holding anything but tensors (numbers, strings, methods).
 *
 * Runtime: only plain objects (prototype `Object.prototype` or null) and arrays
 * are walked. A class instance is refused with an error naming its class, never
 * silently rebuilt as a plain object (which would lose its prototype).
 */
import { Tensor } from '../core/index.js';

/** A tensor, or arrays and records nesting tensors. */
export type Tree = Tensor | readonly Tree[] | { readonly [key: string]: Tree };

/** Any function: trees must not hold one (see `Treelike`). */
export type Fn = (...args: never[]) => unknown;

/**
 * P with every leaf checked to be a tensor. The `[Tree] extends [...]` branch
 * stops the recursion on `Tree` itself (which is infinite as a mapped type).
 */
export type TreeOf<P> = {
  readonly [K in keyof P]: [Tree] extends [P[K]] ? Tree : P[K] extends Tensor ? Tensor : P[K] extends Fn ? never : P[K] extends object ? TreeOf<P[K]> : never;
};

/**
 * The constraint for a generic parameter tree: `<P extends Treelike<P>>`.
 *
 * @example
 * interface Affine { readonly w: Tensor; readonly b: Tensor }   // accepted
 * const g = grad((p: Affine) => sumOfSquares(p.w))({ w, b });
 */
export type Treelike<P> = Tree | TreeOf<P>;

/**
 * Record keys in sorted order, as JAX does: the leaf order of a tree must not
 * depend on the order its keys happened to be created in.
 */
const keysOf = (rec: object): string[] => Object.keys(rec).sort();

const isPlainObject = (t: object): boolean => {
  const proto = Object.getPrototypeOf(t);
  return proto === Object.prototype || proto === null;
};

/** Throws a TypeError naming what is not a tree node, and where. */
const notATree = (t: unknown, path: string): never => {
  const at = path === '' ? 'at the root' : `at ${path}`;
  if (t !== null && typeof t === 'object') {
    const name = (Object.getPrototypeOf(t) as { constructor?: { name?: string } } | null)?.constructor?.name ?? 'an unknown class';
    throw new TypeError(
      `expected a tree of tensors, found an instance of ${name} ${at}: class instances are not trees ` +
        '(their prototype would be lost); use a plain object or array of tensors',
    );
  }
  throw new TypeError(`expected a tree of tensors, found ${t === null ? 'null' : typeof t} ${at}`);
};

/** Calls `visit` on every leaf with its readable path, in leaf order. */
const walk = (tree: unknown, visit: (leaf: Tensor, path: string) => void): void => {
  const go = (t: unknown, path: string): void => {
    if (t instanceof Tensor) visit(t, path === '' ? '(root)' : path);
    else if (Array.isArray(t))
      (t as readonly unknown[]).forEach((c, i) => {
        go(c, `${path}[${i}]`);
      });
    else if (t !== null && typeof t === 'object' && isPlainObject(t)) {
      for (const k of keysOf(t)) go((t as Record<string, unknown>)[k], path === '' ? k : `${path}.${k}`);
    } else notATree(t, path);
  };
  go(tree, '');
};

/** The leaves in a fixed order: array order, and record keys sorted. */
export const leaves = <P extends Treelike<P>>(tree: P): Tensor[] => {
  const out: Tensor[] = [];
  walk(tree, (l) => out.push(l));
  return out;
};

/** The same structure with every leaf replaced by `f(leaf, index)`, in `leaves` order. */
export const mapTree = <T extends Treelike<T>>(tree: T, f: (leaf: Tensor, index: number) => Tensor): T => {
  let i = 0;
  const go = (t: unknown, path: string): unknown => {
    if (t instanceof Tensor) return f(t, i++);
    if (Array.isArray(t)) return (t as readonly unknown[]).map((c, j) => go(c, `${path}[${j}]`));
    if (t === null || typeof t !== 'object' || !isPlainObject(t)) return notATree(t, path);
    const out: Record<string, unknown> = {};
    for (const k of keysOf(t)) out[k] = go((t as Record<string, unknown>)[k], path === '' ? k : `${path}.${k}`);
    return out;
  };
  return go(tree, '') as T;
};

/** Combines two trees of the same structure leaf by leaf. */
export const zipTree = <T extends Treelike<T>>(a: T, b: T, f: (x: Tensor, y: Tensor) => Tensor): T => {
  const bl = leaves(b);
  const al = leaves(a);
  if (al.length !== bl.length) {
    throw new TypeError(`zipTree: trees have ${al.length} and ${bl.length} leaves`);
  }
  return mapTree(a, (x, i) => f(x, bl[i]!));
};

/** A readable path for every leaf, in `leaves` order: `w`, `layers[1].b`, `[0]`. */
export const leafPaths = <P extends Treelike<P>>(tree: P): string[] => {
  const out: string[] = [];
  walk(tree, (_l, p) => out.push(p));
  return out;
};
