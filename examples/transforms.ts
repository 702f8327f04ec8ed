// Transformations compose: grad of grad, forward mode, Hessians, and per-example gradients in one batched pass.
import {
  add,
  grad,
  hessian,
  hvp,
  jvp,
  Key,
  leaves,
  mlp,
  mul,
  oneHot,
  reshape,
  softmaxCrossEntropy,
  sqrt,
  sum,
  sumOfSquares,
  tanh,
  vmap,
  type Tensor,
} from 'tapegrad';

const f = (x: Tensor): Tensor => sum(mul(tanh(x), x)); // Σ x·tanh(x)
const x = new Key(0).normal([3], 'float64');
const v = new Key(1).normal([3], 'float64');

const secondDerivatives = grad((y: Tensor) => sum(grad(f)(y)))(x); // grad of grad: the Hessian's row sums
const H = hessian(f)(x); // [3, 3], forward over reverse
const Hv = hvp(f)(x, v); // H·v without forming H
const { tangent } = jvp(f)(x, v); // ⟨∇f, v⟩ in one forward pass, no tape
console.log(
  'row sums of H',
  secondDerivatives.toArray(),
  'H diagonal',
  [0, 1, 2].map((i) => H.get(i, i)),
);
console.log('H·v', Hv.toArray(), 'directional derivative', tangent.item());

// Per-example gradient norms of the headline network's loss: vmap(grad), one pass over the batch.
const model = mlp([3072, 128, 20], { activation: 'relu' });
const params = model.layer.init(new Key(2));
const images = new Key(3).normal([8, 1, 3072]); // 8 examples, each a batch of one
const targets = reshape(oneHot([3, 1, 4, 1, 5, 9, 2, 6], 20), [8, 1, 20]);
const lossOf = (p: typeof params, image: Tensor, target: Tensor): Tensor => softmaxCrossEntropy(model.layer.apply(p, image), target);
const perExample = vmap((image: Tensor, target: Tensor) => grad((p: typeof params) => lossOf(p, image, target))(params));
const grads = perExample(images, targets); // every leaf gains a leading axis of 8
const norms = vmap((g: typeof params) =>
  sqrt(
    leaves(g)
      .map(sumOfSquares)
      .reduce((a, b) => add(a, b)),
  ),
)(grads);
console.log('per-example gradient norms', Array.from(norms.toTypedArray(), (n) => n.toFixed(3)).join(' '));
