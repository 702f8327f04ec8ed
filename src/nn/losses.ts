/**
 * Losses and L2 regularization.
 *
 * Two L2 conventions are supported because they differ in more than a factor:
 * - 'loss': λ·Σw² is added to the loss (its gradient is 2λw) and reported with it;
 * - 'gradient': λ·w is added to the gradient only and the reported loss omits it
 *   (the report's code: λ, not 2λ, not scaled by the batch size).
 *
 * Which leaves are penalized is chosen by role (weight, bias, norm gain), as
 * each layer declares it (see `rolesOf`), or by any predicate over the leaf's
 * path and role: never by parameter names.
 */
import { add, mul, softmaxCrossEntropy, sumOfSquares, type Tensor } from '../core/index.js';
import { leafPaths, leaves, type Treelike } from '../autodiff/index.js';
import type { Role } from './layers.js';

/** What a predicate learns about one parameter tensor. */
export interface LeafInfo {
  /** Readable path in the tree: `[0].w`, `blocks[2].gain`. */
  readonly path: string;
  readonly role: Role;
  /** Position in `leaves(params)`. */
  readonly index: number;
}

/** Chooses parameters by what their layer says of them (role, path): for L2 and weight decay. */
export type LeafPredicate = (leaf: LeafInfo) => boolean;

/**
 * An L2 penalty: its strength λ, its form (added to the loss, or to the gradient as the report
 * does), and which parameters it applies to.
 */
export interface L2Options {
  /** Penalty strength λ (0 turns it off). */
  readonly lambda: number;
  /** See the module comment. */
  readonly mode: 'loss' | 'gradient';
  /** Penalize the biases too (the report does). */
  readonly includeBias: boolean;
  /**
   * Which leaves are penalized; overrides `includeBias`. Default: weights, and
   * biases when `includeBias`; norm gains and 'other' never.
   */
  readonly applies?: LeafPredicate;
}

/** The default selection: weights, and biases when asked. */
export const l2Applies = (l2: L2Options): LeafPredicate => l2.applies ?? ((leaf) => leaf.role === 'weight' || (l2.includeBias && leaf.role === 'bias'));

/** Path, role and index of every leaf, in leaf order. */
export const leafInfos = <P extends Treelike<P>>(params: P, roles: readonly Role[]): LeafInfo[] =>
  leafPaths(params).map((path, index) => ({ path, role: roles[index]!, index }));

/**
 * λ·Σw² over the selected leaves (in leaf order): the loss-form penalty.
 * `roles` gives each leaf's role, as `rolesOf(layer, params)` does.
 */
export const l2Penalty = <P extends Treelike<P>>(params: P, l2: L2Options, roles: readonly Role[]): Tensor | undefined => {
  if (l2.lambda === 0 || l2.mode !== 'loss') return undefined;
  const applies = l2Applies(l2);
  const infos = leafInfos(params, roles);
  const terms = leaves(params)
    .filter((_l, i) => applies(infos[i]!))
    .map(sumOfSquares);
  if (terms.length === 0) return undefined;
  return mul(
    terms.reduce((a, b) => add(a, b)),
    l2.lambda,
  );
};

/**
 * The gradient-form penalty as a per-leaf coefficient for the optimizers
 * (they add λ·p to the gradient, fused with their update): λ for the selected
 * leaves, 0 for the others and in 'loss' mode.
 */
export const gradientL2Of = (l2: L2Options, infos: readonly LeafInfo[]) => {
  const applies = l2Applies(l2);
  const lam = infos.map((leaf) => (l2.mode === 'gradient' && applies(leaf) ? l2.lambda : 0));
  return (_path: string, index: number): number => lam[index] ?? 0;
};

/** Mean (or summed) softmax cross-entropy of logits against integer labels. */
export const crossEntropy = (logits: Tensor, labels: ArrayLike<number>, reduction: 'mean' | 'sum' = 'mean'): Tensor =>
  softmaxCrossEntropy(logits, labels, { reduction });
