// jit: trace a step once, replay it as a planned program with fused element-wise chains; the same bits as eager.
import { jit, Key, mlp, oneHot, softmaxCrossEntropy, valueAndGrad, type Tensor } from 'tapegrad';

const model = mlp([3072, 128, 20], { activation: 'relu' });
const params = model.layer.init(new Key(0));
type Params = typeof params;
const x = new Key(1).normal([128, 3072]);
const targets = oneHot(
  Array.from({ length: 128 }, (_, i) => i % 20),
  20,
); // a tensor argument: labels are not frozen into the program
const loss = (p: Params, x: Tensor, t: Tensor): Tensor => softmaxCrossEntropy(model.layer.apply(p, x), t);
const step = jit((p: Params, x: Tensor, t: Tensor) => valueAndGrad((q: Params) => loss(q, x, t))(p));

const eager = valueAndGrad((q: Params) => loss(q, x, targets))(params);
step(params, x, targets); // the first call traces (and computes eagerly)
const replayed = step(params, x, targets); // later calls replay the program: kernels only
const same = replayed.grads.every((g, i) => g.w.toArray().toString() === eager.grads[i]!.w.toArray().toString());
console.log(`same loss and gradients, bit for bit: ${replayed.value.item() === eager.value.item() && same}; traced ${step.traces} time(s)`);
const program = String(step.lower(params, x, targets)); // what runs, like a jaxpr
console.log(program.split('\n').slice(0, 4).join('\n'));
console.log(
  program
    .split('\n')
    .filter((l) => l.startsWith('  fused'))
    .join('\n'),
);
