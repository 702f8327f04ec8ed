/**
 * The one module of core's internals that the rest of the library (nn, data,
 * experiments) may import besides core's public surface (index.ts). Everything
 * here is library-internal: not exported from the package entries, free to
 * change, and each item says why code outside core needs it. A test
 * (test/architecture.test.ts) holds other folders to index.ts and this file.
 */

/**
 * Tensor storage without copies: the layers, losses, metrics and data sets
 * read and adopt buffers directly on their hot paths (a copy per batch would
 * cost as much as the step). Rule: read-only for buffers you did not allocate.
 */
export { internal, Storage } from './tensor.js';
/** A pooling or convolution window's output length: the spec decoder sizes layers from shapes without running them. */
export { slidingOut } from './kernels-nd.js';
/** The cpu backend's kernel memory: the run-size check plans against it before anything is allocated. */
export { CPU_KERNEL_MEMORY_BYTES } from './backends/cpu.js';
/** Node built-ins loaded only where Node runs, so the browser bundle of the data readers has none. */
export { nodeBuiltin } from './backends/platform.js';
/** A reduction's output shape: the autodiff rules of sum and max reshape cotangents to it. */
export { reducedShape } from './kernels.js';
