// The tensor / tape API in a few lines: gradients of a function of a tree of tensors.
import * as E from 'fp-ts/lib/Either.js';
import { gradcheck, Key, matmul, softmaxCrossEntropy, tanh, add, valueAndGrad, type Tensor } from 'tapegrad';

const [k1, k2] = new Key(0).split(2);
const params = { w: k1!.normal([4, 3]), b: k2!.normal([3]) };
const x = new Key(1).normal([5, 4]);
const labels = [0, 2, 1, 1, 0];

const loss = (p: typeof params): Tensor => softmaxCrossEntropy(add(matmul(tanh(x), p.w), p.b), labels);

const { value, grads } = valueAndGrad(loss)(params); // grads has the shape of params: { w, b }
console.log('loss', value.item(), 'dL/db', grads.b.toArray());

const check = gradcheck(loss, params); // float64 central differences, element by element
if (E.isLeft(check)) throw check.left;
console.log(`gradcheck: ${check.right.checked} elements, worst difference ${check.right.worst.absDiff.toExponential(1)}`);
