/**
 * tapegrad for Node: everything in `tapegrad`, plus what needs the file
 * system: reading, locating and downloading CIFAR-100, and saving and loading
 * models.
 *
 * @example
 * import { loadCifar100, saveModel, fit, mlp, Key } from 'tapegrad/node';
 */
export * from './index.js';
export * from './data/index.js';
export * from './nn/serialize.js';
