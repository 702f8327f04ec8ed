/**
 * Learning-rate schedules and gradient clipping, as pure functions of the
 * training step (0-based, counted over all epochs), so a resumed run takes
 * exactly the rates an uninterrupted one takes.
 *
 * - constant: the optimizer's `lr` at every step;
 * - step: `lr · factor^⌊step / (everyEpochs · stepsPerEpoch)⌋`;
 * - cosine: from `lr` down to `minLr` (default 0) along half a cosine over the
 *   steps after the warm-up (SGDR without restarts);
 * - `warmupEpochs` on any of them multiplies the first W = round(warmupEpochs ·
 *   stepsPerEpoch) steps' rate by (step + 1) / W (a linear ramp to the full rate).
 */
import { mul, sum, type Tensor } from '../core/index.js';
import { leaves, mapTree, type Treelike } from '../autodiff/index.js';

/** A schedule as configs and `FitOptions` give it. */
export type ScheduleSpec =
  | { readonly kind: 'constant'; readonly warmupEpochs?: number }
  | { readonly kind: 'step'; readonly everyEpochs: number; readonly factor: number; readonly warmupEpochs?: number }
  | { readonly kind: 'cosine'; readonly minLr?: number; readonly warmupEpochs?: number };

/** Where a step lies in training: how many steps an epoch has and how many epochs there are. */
export interface ScheduleClock {
  readonly stepsPerEpoch: number;
  readonly epochs: number;
}

/** The learning rate at `step` (0-based) for base rate `lr`. */
export const learningRate = (spec: ScheduleSpec, lr: number, step: number, clock: ScheduleClock): number => {
  const warm = Math.round((spec.warmupEpochs ?? 0) * clock.stepsPerEpoch);
  const ramp = step < warm ? (step + 1) / warm : 1;
  switch (spec.kind) {
    case 'constant':
      return lr * ramp;
    case 'step':
      return lr * ramp * spec.factor ** Math.floor(step / Math.max(1, Math.round(spec.everyEpochs * clock.stepsPerEpoch)));
    case 'cosine': {
      const total = clock.epochs * clock.stepsPerEpoch;
      const progress = total > warm ? Math.min(1, Math.max(0, step - warm) / (total - warm)) : 1;
      const min = spec.minLr ?? 0;
      return ramp * (min + (lr - min) * 0.5 * (1 + Math.cos(Math.PI * progress)));
    }
  }
};

/**
 * Clipping by global norm (Pascanu et al.): every leaf scaled by
 * min(1, maxNorm / ‖g‖), where ‖g‖ is the L2 norm of all leaves together
 * (summed leaf by leaf in leaf order, in float64). Returns the gradients (the
 * same tree when nothing is clipped) and the norm before clipping.
 */
export const clipByGlobalNorm = <P extends Treelike<P>>(grads: P, maxNorm: number): { readonly grads: P; readonly norm: number } => {
  let sq = 0;
  for (const g of leaves(grads) as Tensor[]) sq += sum(mul(g, g)).item();
  const norm = Math.sqrt(sq);
  if (!(norm > maxNorm)) return { grads, norm };
  const scale = maxNorm / norm;
  return { grads: mapTree(grads, (g) => mul(g, scale)), norm };
};
