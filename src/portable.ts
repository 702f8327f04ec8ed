/**
 * tapegrad for browsers and bundlers: `import … from 'tapegrad'` resolves here
 * everywhere but Node (the `browser`/`default` export conditions). It imports
 * no Node built-in: it is index.ts without what needs files (reading and
 * downloading CIFAR-100 from disk, saving and loading models), which Node gets
 * from index.ts (the `node` condition, and `tapegrad/node`). A test checks that
 * it lacks nothing else of index.ts.
 *
 * @example
 * import { valueAndGrad, matmul, softmaxCrossEntropy, Key } from 'tapegrad';
 */
export * from './core/index.js';
export * from './autodiff/index.js';
// nn/index.ts without serialize.ts (files): see node.ts.
export * from './nn/init.js';
export * from './nn/layers.js';
export * from './nn/losses.js';
export * from './nn/optimizers.js';
export * from './nn/metrics.js';
export * from './nn/fit.js';
export * from './nn/presets.js';
export * from './nn/blocks.js';
export * from './nn/spec.js';
export * from './nn/schedules.js';
export { InitC, MlpSpecC, OptimizerSpecC, describeErrors } from './nn/codecs.js';
// The CIFAR-100 format and preprocessing work on bytes; reading them from disk is in tapegrad/node.
export {
  RECORD_BYTES,
  PIXELS,
  CHANNEL_PIXELS,
  COARSE_CLASSES,
  FINE_CLASSES,
  CIFAR100_FILES,
  DataError,
  pixelOffset,
  labelsOf,
  classCount,
  parseCifar100,
  type LabelKind,
  type SplitName,
  type CifarSplit,
  type ReadOptions,
} from './data/cifar.js';
export * from './data/preprocess.js';
export * from './data/augment.js';
export { useGpuJs } from './core/backends/platform.js';
