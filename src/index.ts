/**
 * tapegrad: a small, functional reverse-mode autodiff framework.
 *
 * The entry under Node (`tapegrad` with the `node` export condition, and
 * `tapegrad/node`); browsers and bundlers for them get portable.ts, the same
 * without the file APIs.
 *
 * @example
 * import { valueAndGrad, matmul, softmaxCrossEntropy, Key } from 'tapegrad';
 */
export * from './core/index.js';
export * from './autodiff/index.js';
export * from './nn/index.js';
export * from './data/index.js';
export { useGpuJs } from './core/backends/platform.js';
