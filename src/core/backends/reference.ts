/**
 * The reference backend: every primitive as plain TypeScript loops over host
 * typed arrays (matmul accumulating in float64). The complete implementation,
 * the trusted path for tests and gradient checks, and the model for new ones.
 */
import { hostChain } from '../chains.js';
import type { Backend } from '../backend.js';
import { hostFused, hostKernels } from '../kernels.js';
import { createHostPool, MIN_POOLED_BYTES } from '../pool.js';
import type { Data, DType } from '../primitives.js';

/** A backend whose buffers are host typed arrays. */
export interface HostBackend extends Backend<Data> {
  readonly host: true;
  /** A buffer of n elements in the backend's memory (zeroed unless `zeroed` is false), for code that fills it in place. */
  alloc(dtype: DType, n: number, zeroed: boolean): Data;
}

/** Whether a backend keeps its tensors in host typed arrays. */
export const isHostBackend = (b: Backend): b is HostBackend => (b as Partial<HostBackend>).host === true;

/** Creates a reference backend with memory of its own. */
export const createReferenceBackend = (): HostBackend => {
  const pool = createHostPool();
  return {
    name: 'reference',
    description: 'reference: plain TypeScript loops (float64 accumulation); slow, exact',
    host: true,
    kernels: hostKernels(pool.alloc),
    fused: hostFused(pool.alloc),
    alloc: pool.alloc,
    upload: (data) => {
      const out = pool.alloc(data instanceof Float32Array ? 'float32' : 'float64', data.length, false);
      out.set(data);
      return out;
    },
    adopt: pool.adopt,
    full: (dtype, n, value) => {
      const out = pool.alloc(dtype, n, value === 0);
      if (value !== 0) out.fill(value);
      return out;
    },
    read: (buf) => buf,
    needsRelease: (buf) => buf.byteLength >= MIN_POOLED_BYTES,
    free: pool.free,
    view: (buf, offset, n) => buf.subarray(offset, offset + n),
    fuse: (chain) => hostChain(pool.alloc, chain),
    memory: pool.memory,
    dispose: () => {},
  };
};
