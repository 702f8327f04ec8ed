/** nn: layers as values, initializers, losses, optimizers, training, metrics, serialization. */
export * from './init.js';
export * from './layers.js';
export * from './losses.js';
export * from './optimizers.js';
export * from './schedules.js';
export * from './metrics.js';
export * from './fit.js';
export * from './serialize.js';
export * from './presets.js';
export * from './blocks.js';
export * from './spec.js';
export { MlpSpecC, OptimizerSpecC, describeErrors } from './codecs.js';
