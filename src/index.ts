/**
 * tapegrad: a small, functional reverse-mode autodiff framework.
 *
 * @example
 * import { valueAndGrad, matmul, softmaxCrossEntropy, Key } from 'tapegrad';
 */
export * from './core/index.js';
export * from './autodiff/index.js';
export * from './nn/index.js';
export * from './data/index.js';
