/**
 * Optimizers as pure state transitions:
 * `init(params) → state` and `step(state, params, grads) → { state, params }`.
 * Nothing is updated in place; states are trees of tensors, so they can be
 * saved in a checkpoint and a run resumed exactly.
 */
import { adamUpdate, add, momentumUpdate, mul, scalar, sub, zeros, type Tensor } from '../core/index.js';
import { leafPaths, leaves, mapTree, zipTree, type Tree, type Treelike } from '../autodiff/index.js';

/**
 * Coupled L2 (the classic SGD "weight decay", and the report's form): λ·p added
 * to the gradient, with λ chosen per leaf by its path (e.g. `[0].w`) or its
 * position in leaf order, so biases can be left out (`fit` derives it from the
 * layers' declared roles: see `gradientL2Of`). 0 means none.
 */
export type GradientL2 = (path: string, index: number) => number;

const noL2: GradientL2 = () => 0;

/** Which leaves decoupled weight decay shrinks, by path or leaf index (default: all). */
export type DecayMask = (path: string, index: number) => boolean;

const decayAll: DecayMask = () => true;

/** g + λ(path)·p for every leaf (the unfused form, for sgd and adam). */
const withL2 = <P extends Treelike<P>>(grads: P, params: P, l2: GradientL2): P => {
  const paths = leafPaths(params),
    ps = leaves(params);
  return mapTree(grads, (g, i) => {
    const lam = l2(paths[i]!, i);
    return lam === 0 ? g : add(g, mul(ps[i]!, lam));
  });
};

/**
 * An optimizer as pure transitions over trees: `init(params) → state`, `step(state, params, grads)
 * → { state, params }` (nothing updated in place).
 */
export interface Optimizer<S extends Tree = Tree> {
  /** For printing. */
  readonly describe: string;
  /** The optimizer's initial state for `params` (velocities, moments). */
  init<P extends Treelike<P>>(params: P): S;
  /** One update: the new state and parameters (nothing is changed in place). */
  step<P extends Treelike<P>>(state: S, params: P, grads: P): { readonly state: S; readonly params: P };
}

/** Config form of every optimizer (what configs and checkpoints hold). */
export type OptimizerSpec =
  | { readonly kind: 'sgd'; readonly lr: number; readonly weightDecay?: number }
  | { readonly kind: 'momentum'; readonly lr: number; readonly momentum: number; readonly nesterov?: boolean; readonly weightDecay?: number }
  | { readonly kind: 'adam'; readonly lr: number; readonly beta1?: number; readonly beta2?: number; readonly eps?: number; readonly weightDecay?: number };

const zerosLike = <P extends Treelike<P>>(p: P): P => mapTree(p, (t) => zeros(t.shape, t.dtype, t.backend));

/** Decoupled weight decay (Loshchilov & Hutter): p ← p − lr·wd·p, before the update. */
const decay = <P extends Treelike<P>>(params: P, lr: number, wd: number, mask: DecayMask): P => {
  if (wd === 0) return params;
  const paths = mask === decayAll ? [] : leafPaths(params);
  return mapTree(params, (p, i) => (mask === decayAll || mask(paths[i]!, i) ? mul(p, 1 - lr * wd) : p));
};

/** Plain gradient descent: p ← p − lr·g. */
export const sgd = ({
  lr,
  weightDecay = 0,
  gradientL2 = noL2,
  decays = decayAll,
}: {
  lr: number;
  weightDecay?: number;
  gradientL2?: GradientL2;
  decays?: DecayMask;
}): Optimizer<readonly []> => ({
  describe: `sgd(lr=${lr}${weightDecay ? `, wd=${weightDecay}` : ''})`,
  init: () => [],
  step: (state, params, grads) => ({
    state,
    params: zipTree(decay(params, lr, weightDecay, decays), withL2(grads, params, gradientL2), (p, g) => sub(p, mul(g, lr))),
  }),
});

/**
 * Momentum in the report's form: v ← γ·v + lr·g; p ← p − v.
 * With `nesterov`, the step looks ahead: p ← p − (γ·v_new + lr·g).
 * Each tensor is updated in one fused pass (gradient L2 included): on a
 * 393k-weight layer the six separate tensor ops cost more than the matmuls.
 */
export const momentum = ({
  lr,
  momentum: gamma,
  nesterov = false,
  weightDecay = 0,
  gradientL2 = noL2,
  decays = decayAll,
}: {
  lr: number;
  momentum: number;
  nesterov?: boolean;
  weightDecay?: number;
  gradientL2?: GradientL2;
  decays?: DecayMask;
}): Optimizer<Tree> => ({
  describe: `${nesterov ? 'nesterov' : 'momentum'}(lr=${lr}, γ=${gamma}${weightDecay ? `, wd=${weightDecay}` : ''})`,
  init: (params) => zerosLike(params),
  step: (state, params, grads) => {
    const paths = leafPaths(params),
      vs = leaves(state),
      gs = leaves(grads);
    const newV: Tensor[] = [];
    const newP = mapTree(decay(params, lr, weightDecay, decays), (p, i) => {
      const [pn, vn] = momentumUpdate(p, vs[i]!, gs[i]!, { lr, gamma, l2: gradientL2(paths[i]!, i), nesterov });
      newV.push(vn);
      return pn;
    });
    return { state: mapTree(state, (_v, i) => newV[i]!), params: newP };
  },
});

/**
 * Adam (Kingma & Ba), with optional decoupled weight decay (AdamW). Each
 * tensor is updated in one fused pass (`adamUpdate`): the ten separate tensor
 * ops it replaces took half of an MLP recipe's epoch.
 */
export const adam = ({
  lr,
  beta1 = 0.9,
  beta2 = 0.999,
  eps = 1e-8,
  weightDecay = 0,
  gradientL2 = noL2,
  decays = decayAll,
}: {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  gradientL2?: GradientL2;
  decays?: DecayMask;
}): Optimizer<Tree> => ({
  describe: `adam(lr=${lr}, β1=${beta1}, β2=${beta2}${weightDecay ? `, wd=${weightDecay}` : ''})`,
  init: (params) => ({ t: scalar(0, 'float64'), m: zerosLike(params), v: zerosLike(params) }),
  step: (state, params, grads) => {
    const s = state as { t: Tensor; m: typeof grads; v: typeof grads };
    const t = s.t.item() + 1;
    const c1 = 1 / (1 - beta1 ** t),
      c2 = 1 / (1 - beta2 ** t);
    const paths = leafPaths(params),
      ms = leaves(s.m),
      vs = leaves(s.v),
      gs = leaves(grads);
    const newM: Tensor[] = [],
      newV: Tensor[] = [];
    const newP = mapTree(params, (p, i) => {
      const decay = weightDecay !== 0 && (decays === decayAll || decays(paths[i]!, i)) ? 1 - lr * weightDecay : 1;
      const [pn, mn, vn] = adamUpdate(p, ms[i]!, vs[i]!, gs[i]!, { lr, beta1, beta2, eps, l2: gradientL2(paths[i]!, i), decay, c1, c2 });
      newM.push(mn);
      newV.push(vn);
      return pn;
    });
    return { state: { t: scalar(t, 'float64'), m: mapTree(s.m, (_m, i) => newM[i]!), v: mapTree(s.v, (_v, i) => newV[i]!) }, params: newP };
  },
});

/** The optimizer a spec describes, with optional gradient-form L2 and a weight-decay mask. */
export const optimizerFromSpec = (spec: OptimizerSpec, gradientL2: GradientL2 = noL2, decays: DecayMask = decayAll): Optimizer<Tree> => {
  switch (spec.kind) {
    case 'sgd':
      return sgd({ ...spec, gradientL2, decays }) as Optimizer<Tree>;
    case 'momentum':
      return momentum({ ...spec, gradientL2, decays });
    case 'adam':
      return adam({ ...spec, gradientL2, decays });
  }
};
