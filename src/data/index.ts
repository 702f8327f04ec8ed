/** data: CIFAR-100 reading, downloading, normalization, splitting and batching. */
export * from './cifar.js';
export * from './preprocess.js';
export * from './download.js';
export * from './load.js';
export * from './augment.js';
