/**
 * The report's Table 2: numerical against back-propagated gradients for chosen
 * weights of the 3072→128→20 tanh network on a real CIFAR-100 minibatch, with
 * ε = 0.01, so agreement is expected to O(ε²) = 1e-4.
 */
import { centralDifference, leafPaths, mapTree, valueAndGrad } from '../autodiff/index.js';
import { cast, Key, type Tensor } from '../core/index.js';
import { crossEntropy, mlp, type MlpParams } from '../nn/index.js';

export interface GradientRow {
  readonly weightType: 'Output bias' | 'Hidden bias' | 'Hidden to output' | 'Input to hidden';
  /** Path and index of the weight, e.g. `[1].w[5, 3]`. */
  readonly where: string;
  readonly numerical: number;
  readonly backprop: number;
  readonly absDiff: number;
}

/** Element to check: layer (0 = input→hidden), which tensor, flat index. */
type Pick = { readonly type: GradientRow['weightType']; readonly layer: number; readonly tensor: 'w' | 'b' };

const PICKS: readonly Pick[] = [
  { type: 'Output bias', layer: 1, tensor: 'b' },
  { type: 'Hidden bias', layer: 0, tensor: 'b' },
  { type: 'Hidden to output', layer: 1, tensor: 'w' },
  { type: 'Hidden to output', layer: 1, tensor: 'w' },
  { type: 'Input to hidden', layer: 0, tensor: 'w' },
  { type: 'Input to hidden', layer: 0, tensor: 'w' },
];

/**
 * Runs the check in float64 on minibatch `x` (rows of 3072 normalized pixels)
 * with coarse `labels`, using the report's initializer; the weights' indices are
 * drawn from `seed`.
 */
export const paperGradientCheck = (x: Tensor, labels: ArrayLike<number>, opts: { eps?: number; seed?: number; hidden?: number } = {}): GradientRow[] => {
  const eps = opts.eps ?? 0.01;
  const model = mlp([x.shape[1]!, opts.hidden ?? 128, 20], { activation: 'tanh', init: 'paper' });
  const params = mapTree(model.layer.init(new Key(0)), (t) => cast(t, 'float64')) as MlpParams;
  const x64 = cast(x, 'float64');
  const loss = (p: MlpParams): Tensor => crossEntropy(model.layer.apply(p, x64), labels);
  const grads = valueAndGrad(loss)(params).grads;
  const keys = new Key(opts.seed ?? 0).split(PICKS.length);
  return PICKS.map((pick, i) => {
    const t = params[pick.layer]![pick.tensor];
    const flat = keys[i]!.permutation(t.size)[0]!;
    const leaf = leafPaths(params).indexOf(`[${pick.layer}].${pick.tensor}`);
    const numerical = centralDifference(loss, params, leaf, flat, eps);
    const backprop = grads[pick.layer]![pick.tensor].toTypedArray()[flat]!;
    const cols = t.shape[1];
    const index = cols === undefined ? `${flat}` : `${Math.floor(flat / cols)}, ${flat % cols}`;
    return { weightType: pick.type, where: `[${pick.layer}].${pick.tensor}[${index}]`, numerical, backprop, absDiff: Math.abs(numerical - backprop) };
  });
};
