/**
 * Trees of tensors ("pytrees"): a tensor, an array of trees, or a record of trees.
 * All parameters of a model form one tree; gradients come back in the same shape.
 */
import { Tensor } from '../core/tensor.js';

/** A tensor, or arrays and records nesting tensors. */
export type Tree = Tensor | readonly Tree[] | { readonly [key: string]: Tree };

/**
 * Record keys in sorted order, as JAX does: the leaf order of a tree must not
 * depend on the order its keys happened to be created in.
 */
const keysOf = (rec: object): string[] => Object.keys(rec).sort();

/** The leaves in a fixed order: array order, and record keys sorted. */
export const leaves = (tree: Tree): Tensor[] => {
  const out: Tensor[] = [];
  const walk = (t: Tree): void => {
    if (t instanceof Tensor) out.push(t);
    else if (Array.isArray(t)) (t as readonly Tree[]).forEach(walk);
    else if (t !== null && typeof t === 'object') keysOf(t).forEach((k) => walk((t as Record<string, Tree>)[k]!));
    else throw new TypeError(`expected a tree of tensors, found ${t === null ? 'null' : typeof t}`);
  };
  walk(tree);
  return out;
};

/** The same structure with every leaf replaced by `f(leaf, index)`, in `leaves` order. */
export const mapTree = <T extends Tree>(tree: T, f: (leaf: Tensor, index: number) => Tensor): T => {
  let i = 0;
  const go = (t: Tree): Tree => {
    if (t instanceof Tensor) return f(t, i++);
    if (Array.isArray(t)) return (t as readonly Tree[]).map(go);
    const rec = t as { readonly [key: string]: Tree };
    const out: Record<string, Tree> = {};
    for (const k of keysOf(rec)) out[k] = go(rec[k]!);
    return out;
  };
  return go(tree) as T;
};

/** Combines two trees of the same structure leaf by leaf. */
export const zipTree = <T extends Tree>(a: T, b: T, f: (x: Tensor, y: Tensor) => Tensor): T => {
  const bl = leaves(b);
  const al = leaves(a);
  if (al.length !== bl.length) {
    throw new TypeError(`zipTree: trees have ${al.length} and ${bl.length} leaves`);
  }
  return mapTree(a, (x, i) => f(x, bl[i]!));
};

/** A readable path for every leaf, in `leaves` order: `w`, `layers[1].b`, `[0]`. */
export const leafPaths = (tree: Tree): string[] => {
  const out: string[] = [];
  const walk = (t: Tree, path: string): void => {
    if (t instanceof Tensor) out.push(path === '' ? '(root)' : path);
    else if (Array.isArray(t)) (t as readonly Tree[]).forEach((c, i) => walk(c, `${path}[${i}]`));
    else for (const k of keysOf(t)) walk((t as Record<string, Tree>)[k]!, path === '' ? k : `${path}.${k}`);
  };
  walk(tree, '');
  return out;
};
