// Devices and memory: tensors live on a backend, ops run where their inputs are, and tidy frees what a step made.
import { backend, Key, matmul, relu, sum, tidy, toBackend } from 'tapegrad';

const cpu = backend('cpu'),
  reference = backend('reference');
const w = new Key(0).normal([512, 256], 'float32', 0, 0.05, cpu); // placed explicitly (else: the default backend)
const x = new Key(1).normal([128, 512], 'float32', 0, 1, cpu);

const before = cpu.memory().liveBytes;
const loss = tidy(() => sum(relu(matmul(x, w)))); // the product and the relu are freed here; `loss` is returned
console.log(`the step kept ${cpu.memory().liveBytes - before} bytes on ${loss.backend.name}: loss ${loss.item().toFixed(3)}`);

const again = sum(relu(matmul(toBackend(x, reference), toBackend(w, reference)))); // the same on the reference backend
console.log('reference agrees:', Math.abs(again.item() - loss.item()) < 1e-4 * Math.abs(loss.item()));
loss.dispose(); // and now nothing of the step is left
