/** Core: shapes, the immutable Tensor, ops, backends, randomness. */
export * from './shape.js';
export { Tensor, tensor, fromArray, full, zeros, ones, scalar, cast, type DType, type Data, type NestedArray } from './tensor.js';
export * from './ops.js';
export { checked } from './checked.js';
export { type Backend, type BackendSelection, type ElementwiseKernels, type MomentumHyper, registerBackend, setBackend, getBackend, withBackend, backendNames, backendSelection, autoSelect, disposeBackend } from './backend.js';
export { createCpuBackend, createGpujsBackend, referenceBackend, detectGpu, isHardwareRenderer, type GpuReport } from './backends/index.js';
export { Key, numpyUniform } from './random.js';
export { reclaimTensorMemory } from './pool.js';
