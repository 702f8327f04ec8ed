/**
 * Where the transformations find each primitive's rules. The rules of fused
 * kernels and of `custom` run transformations themselves (a composite's VJP by
 * a fresh tape, a batched custom function by a fresh batch trace), so the rule
 * table (rules/index.ts) registers itself here instead of being imported by
 * the transformations: neither imports the other. grad.ts and transforms.ts,
 * the entry points, load the table.
 */
import type { Primitive } from '../core/index.js';
import type { AdRule } from './rules/types.js';

type Table = { readonly [P in Primitive]: AdRule<P> };
let table: Table | undefined;

/** Installs the rule table (rules/index.ts does, once). */
export const registerRules = (t: Table): void => {
  table = t;
};

/** The rules of a primitive. */
export const ruleOf = <P extends Primitive>(prim: P): AdRule<P> => {
  if (table === undefined) throw new Error(`no autodiff rules are registered (looking up '${prim}'): import tapegrad's entry, not a deep module`);
  return table[prim];
};
