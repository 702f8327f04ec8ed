/**
 * tapegrad: a small, functional reverse-mode autodiff framework.
 *
 * This entry runs anywhere (Node, browsers, bundlers): it imports no Node
 * built-in. What needs Node (reading and downloading CIFAR-100 from disk,
 * saving and loading models) is in `tapegrad/node`, which re-exports all of
 * this too.
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
export { MlpSpecC, OptimizerSpecC, describeErrors } from './nn/codecs.js';
// The CIFAR-100 format and preprocessing work on bytes; reading them from disk is in tapegrad/node.
export {
  RECORD_BYTES, PIXELS, CHANNEL_PIXELS, COARSE_CLASSES, FINE_CLASSES, CIFAR100_FILES, DataError,
  pixelOffset, labelsOf, classCount, parseCifar100,
  type LabelKind, type SplitName, type CifarSplit, type ReadOptions,
} from './data/cifar.js';
export * from './data/preprocess.js';
export { useGpuJs } from './core/backends/platform.js';
