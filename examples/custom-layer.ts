// A layer written in code, on a primitive with a hand-written VJP, trained on a
// CIFAR-100 slice with fit, saved, and loaded back by passing the layer.
//   node --import tsx examples/custom-layer.ts
import * as E from 'fp-ts/lib/Either.js';
import { pathToFileURL } from 'node:url';
import {
  add,
  customVjp,
  dense,
  ensureCifar100,
  evaluate,
  fit,
  fromArray,
  Key,
  loadCifar100,
  loadModel,
  matmul,
  mul,
  saveModel,
  sequential,
  sub,
  tanh,
  type Layer,
  type Tensor,
} from 'tapegrad';

const elementwise = (x: Tensor, f: (v: number) => number): Tensor => {
  const t = fromArray(Array.from(x.toTypedArray(), f), [...x.shape], x.dtype);
  if (E.isLeft(t)) throw t.left;
  return t.right;
};

/**
 * isru(x) = x / √(1 + x²) (the inverse square root unit), a new primitive with
 * its own VJP: (1 + x²)^(−3/2). Smooth everywhere, unlike softsign, whose kink
 * at 0 would break the O(ε²) convergence that the gradient test checks.
 */
export const isru = customVjp(
  'isru',
  ([x]: [Tensor]) => elementwise(x, (v) => v / Math.sqrt(1 + v * v)),
  (ct, [x]) => [
    mul(
      ct,
      elementwise(x, (v) => (1 + v * v) ** -1.5),
    ),
  ],
);

/** Parameters as an interface: trees need no index signature. */
export interface GatedParams {
  readonly w: Tensor;
  readonly b: Tensor;
  /** Per unit: how much isru (vs tanh) to use. */
  readonly gate: Tensor;
}

/** A dense layer whose units mix isru and tanh by a learned gate. */
export const gatedDense = (nIn: number, nOut: number): Layer<GatedParams> => ({
  describe: `gatedDense(${nIn} → ${nOut})`,
  init: (key) => {
    const a = Math.sqrt(6 / nIn);
    return { w: key.uniform([nIn, nOut], -a, a), b: key.fold('b').uniform([nOut], -0.1, 0.1), gate: key.fold('gate').uniform([nOut], 0, 1) };
  },
  apply: (p, x) => {
    const z = add(matmul(x, p.w), p.b);
    return add(mul(isru(z), p.gate), mul(tanh(z), sub(1, p.gate)));
  },
  // Leaves in sorted-key order (b, gate, w): L2 and weight decay skip the gate.
  roles: () => ['bias', 'other', 'weight'],
});

const main = async () => {
  const dir = await ensureCifar100();
  if (E.isLeft(dir)) throw dir.left;
  const data = loadCifar100({ dir: dir.right, labels: 'coarse', normalization: 'per-image', seed: 0, limitTrain: 2000 });
  if (E.isLeft(data)) throw data.left;
  const { train, val, test } = data.right;

  const model = sequential(gatedDense(3072, 64), dense(64, 20));
  const run = fit(
    model,
    model.init(new Key(0)),
    { train, val },
    {
      epochs: 3,
      batchSize: 64,
      seed: 0,
      shuffle: true,
      optimizer: { kind: 'adam', lr: 0.002 },
      l2: { lambda: 1e-4, mode: 'loss', includeBias: false },
    },
  );
  if (E.isLeft(run)) throw run.left;
  const params = run.right.params; // typed: readonly [GatedParams, DenseParams]
  console.log('test accuracy', evaluate(model, params, test).accuracy);
  saveModel('runs/custom-layer-model.json', model, params);
  const loaded = loadModel('runs/custom-layer-model.json', model);
  if (E.isLeft(loaded)) throw loaded.left;
  console.log('reloaded test accuracy', evaluate(model, loaded.right.params, test).accuracy);
};

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
