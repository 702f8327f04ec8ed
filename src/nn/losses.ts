/**
 * Losses and L2 regularization.
 *
 * Two L2 conventions are supported because they differ in more than a factor:
 * - 'loss': λ·Σw² is added to the loss (its gradient is 2λw) and reported with it;
 * - 'gradient': λ·w is added to the gradient only and the reported loss omits it
 *   (the report's code: λ, not 2λ, not scaled by the batch size).
 */
import { add, mul, softmaxCrossEntropy, sumOfSquares, type Tensor } from '../core/index.js';
import type { MlpParams } from './layers.js';

export interface L2Options {
  /** Penalty strength λ (0 turns it off). */
  readonly lambda: number;
  /** See the module comment. */
  readonly mode: 'loss' | 'gradient';
  /** Penalize the biases too (the report does). */
  readonly includeBias: boolean;
}

/** λ·Σw² over the weights (and biases when asked): the loss-form penalty. */
export const l2Penalty = (params: MlpParams, l2: L2Options): Tensor | undefined => {
  if (l2.lambda === 0 || l2.mode !== 'loss') return undefined;
  const terms = params.flatMap((p) => (l2.includeBias ? [sumOfSquares(p.w), sumOfSquares(p.b)] : [sumOfSquares(p.w)]));
  return mul(terms.reduce((a, b) => add(a, b)), l2.lambda);
};

/**
 * The gradient-form penalty as a per-leaf coefficient for the optimizers
 * (they add λ·p to the gradient, fused with their update): λ for weights,
 * and for biases when `includeBias`; 0 in 'loss' mode.
 */
export const gradientL2Of = (l2: L2Options) => (path: string): number =>
  l2.mode !== 'gradient' ? 0 : path.endsWith('.w') || l2.includeBias ? l2.lambda : 0;

/** Mean (or summed) softmax cross-entropy of logits against integer labels. */
export const crossEntropy = (logits: Tensor, labels: ArrayLike<number>, reduction: 'mean' | 'sum' = 'mean'): Tensor =>
  softmaxCrossEntropy(logits, labels, { reduction });
