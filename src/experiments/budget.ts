/**
 * Memory a run needs, checked before anything is allocated: a `hidden: [200000]`
 * is refused in milliseconds with the layer named, instead of growing to
 * gigabytes and dying with a RangeError.
 *
 * The estimate is deliberately simple and on the generous side: float32 data
 * (train + validation + test rows), and per dense layer its weights times the
 * copies training holds at once (weights, gradients, the step's new weights,
 * the best epoch's weights, and the optimizer's state: momentum one, Adam two),
 * plus activations of one training batch and one evaluation chunk.
 */
import * as E from 'fp-ts/lib/Either.js';
import { totalmem } from 'node:os';
import { CPU_KERNEL_MEMORY_BYTES } from '../core/internal.js';
import type { ResolvedConfig } from './config.js';

const F32 = 4;
const IMAGE = 3072;

const CIFAR_TRAIN = 50000;
const CIFAR_TEST = 10000;
const EVAL_CHUNK = 1000;
/** Where the cpu backend keeps tensors: one WebAssembly memory of at most 2 GiB (shared memories must declare a maximum). */
export const CPU_KERNEL_BYTES = CPU_KERNEL_MEMORY_BYTES;
/** The share of the machine's memory a run may plan to use (the rest: Node, the OS, other work). */
const MACHINE_SHARE = 0.8;

export const gib = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 2 : 1)} GiB`;

/** Bytes of float32 pixels a run's data holds. */
export const dataBytes = (c: ResolvedConfig): number =>
  (Math.min(c.data.limitTrain ?? CIFAR_TRAIN, CIFAR_TRAIN) + Math.min(c.data.limitTest ?? CIFAR_TEST, CIFAR_TEST)) * IMAGE * F32;

export interface LayerNeed {
  readonly index: number;
  readonly nIn: number;
  readonly nOut: number;
  readonly bytes: number;
}

/** The rows of one training batch: the batch size, or all training images when there are fewer. */
const batchRows = (c: ResolvedConfig): number => Math.min(c.training.batchSize, c.data.limitTrain ?? CIFAR_TRAIN, CIFAR_TRAIN);

/** Each dense layer's training memory (weights and their copies, and its activations for `batch` rows). */
export const layerNeeds = (c: ResolvedConfig, classes: number, batch = batchRows(c)): LayerNeed[] => {
  const sizes = [IMAGE, ...c.model.hidden, classes];
  const opt = c.training.optimizer.kind === 'adam' ? 2 : c.training.optimizer.kind === 'momentum' ? 1 : 0;
  const copies = 4 + opt;
  const rows = batch * 3 + EVAL_CHUNK * 2;
  return sizes.slice(1).map((nOut, i) => ({ index: i + 1, nIn: sizes[i]!, nOut, bytes: ((sizes[i]! + 1) * nOut * copies + rows * nOut) * F32 }));
};

/** The memory a run needs, in bytes. */
export const runBytes = (c: ResolvedConfig, classes: number): number => dataBytes(c) + layerNeeds(c, classes).reduce((s, l) => s + l.bytes, 0);

/**
 * `Right` when a run of `c` fits the backend's memory and the machine's;
 * else a `Left` naming the largest layer and how wide it may be.
 */
export const checkRunFits = (c: ResolvedConfig, classes: number, backend: string, machineBytes = totalmem()): E.Either<Error, void> => {
  const layers = layerNeeds(c, classes);
  const data = dataBytes(c);
  const need = data + layers.reduce((s, l) => s + l.bytes, 0);
  const cpu = backend === 'cpu' || backend === 'auto';
  const limits: [number, string][] = [[machineBytes * MACHINE_SHARE, `${Math.round(MACHINE_SHARE * 100)}% of this machine's ${gib(machineBytes)}`]];
  if (cpu) limits.push([CPU_KERNEL_BYTES, `the cpu backend's ${gib(CPU_KERNEL_BYTES)} of kernel memory`]);
  for (const [limit, what] of limits.sort((a, b) => a[0] - b[0])) {
    if (need <= limit) continue;
    // Were one row a batch enough, the batch size is what does not fit: name it, and the largest that does.
    const needOneRow = data + layerNeeds(c, classes, 1).reduce((s, l) => s + l.bytes, 0);
    if (needOneRow <= limit) {
      const perRow = (need - needOneRow) / (batchRows(c) - 1);
      const largest = 1 + Math.floor((limit - needOneRow) / perRow);
      return E.left(
        new Error(
          `training.batchSize ${c.training.batchSize}: one batch's activations need ${gib(need - needOneRow + perRow)}, and the run ${gib(need)} with its data, ` +
            `more than ${what}: use a batchSize of at most ${largest}`,
        ),
      );
    }
    const worst = layers.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    const perUnit = worst.bytes / worst.nOut;
    const room = limit - (need - worst.bytes);
    const widest = Math.max(0, Math.floor(room / perUnit));
    const key = worst.index <= c.model.hidden.length ? `model.hidden[${worst.index - 1}]` : 'the output layer';
    return E.left(
      new Error(
        `${key}: layer ${worst.index} (${worst.nIn} → ${worst.nOut}) needs ${gib(worst.bytes)} to train, and the run ${gib(need)} with its data, ` +
          `more than ${what}: ${widest > 0 ? `make that layer at most ${widest} wide` : 'make the model smaller or use fewer images (--limit-train)'}`,
      ),
    );
  }
  return E.right(undefined);
};
