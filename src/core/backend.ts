/**
 * The backend interface: the few kernels whose speed decides a training step's
 * speed. Everything else runs in plain TypeScript in `kernels.ts`.
 *
 * Backends sit side by side (`reference` here, `cpu` (WebAssembly SIMD) and
 * `gpujs` in their own files) and are chosen by name with `setBackend`, by the
 * `TAPEGRAD_BACKEND` environment variable, or by auto-detection.
 */
import type { Data } from './tensor.js';
import { setKernelMemory } from './pool.js';

/** The matrix-multiply contract every backend fulfils. */
export interface Backend {
  /** Short name used in configs and on the command line. */
  readonly name: string;
  /** One line for the start-up banner: what runs and on what. */
  readonly description: string;
  /**
   * `out[m×n] = op(a) · op(b)` with `op(a)` of shape m×k and `op(b)` k×n, row-major.
   * `transA` means `a` is stored k×m; `transB` means `b` is stored n×k.
   * `out` is freshly allocated by the caller, of the same dtype as `a` and `b`,
   * with arbitrary contents: every element must be written.
   */
  matmul(a: Data, b: Data, m: number, k: number, n: number, transA: boolean, transB: boolean, out: Data): void;
  /**
   * Optional fused momentum update (see `kernels.momentumStep` for the
   * contract and the plain-TypeScript version used when a backend has none).
   */
  momentumStep?(p: Float32Array, v: Float32Array, g: Float32Array, hp: MomentumHyper, pOut: Float32Array, vOut: Float32Array): void;
  /**
   * Optional: a Float32Array of n elements in the backend's own memory (zeroed
   * unless `zeroed` is false),
   * where its kernels read and write without copies (the cpu backend's
   * WebAssembly memory); undefined when it has no room. New large float32
   * tensors are allocated here while the backend is selected.
   */
  allocFloat32?(n: number, zeroed: boolean): Float32Array | undefined;
  /** With allocFloat32: whether `x` lies in that memory. */
  owns?(x: Float32Array): boolean;
  /** Optional: the training step's element-wise kernels over the backend's own memory (see ElementwiseKernels). */
  readonly elementwise?: ElementwiseKernels;
  /** Frees kernels, textures, workers. */
  dispose?(): void;
}

/**
 * Element-wise kernels a backend runs faster than the TypeScript loops, over
 * arrays in its own memory (`allocFloat32`). Each writes `out` and returns true,
 * or returns false and writes nothing when it does not apply (an array outside
 * its memory); the caller then runs the TypeScript kernel. Results must equal
 * the TypeScript kernels' bit for bit, so that they never depend on where a
 * tensor's memory happens to be.
 */
export interface ElementwiseKernels {
  /** out = x > 0 ? x : 0. */
  relu(x: Float32Array, out: Float32Array): boolean;
  /** out = ct · (x > 0 ? 1 : 0): relu's VJP. */
  reluGrad(x: Float32Array, ct: Float32Array, out: Float32Array): boolean;
  /** out[r, c] = a[r, c] + b[c] for a row-major rows × cols `a` (the bias add). */
  addRow(a: Float32Array, b: Float32Array, out: Float32Array, rows: number, cols: number): boolean;
  /** out[c] = Σ_r x[r, c], accumulated in float64 with rows in order, then rounded (the bias gradient). */
  sumRows(x: Float32Array, out: Float32Array, rows: number, cols: number): boolean;
}

/** Hyperparameters of one fused momentum update. */
export interface MomentumHyper {
  readonly lr: number;
  readonly gamma: number;
  /** Coupled L2 added to the gradient: g + l2·p. */
  readonly l2: number;
  readonly nesterov: boolean;
}

const registry = new Map<string, () => Backend>();
/** One instance per name: switching back and forth must not start new workers. */
const instances = new Map<string, Backend>();
let current: Backend | undefined;
/** Makes `b` the backend in use, and its memory (if it has one) the home of new large tensors. */
const use = (b: Backend | undefined): void => {
  current = b;
  setKernelMemory(b?.allocFloat32 !== undefined && b.owns !== undefined
    ? { alloc: b.allocFloat32.bind(b), owns: b.owns.bind(b) }
    : undefined);
};
let selection: BackendSelection | undefined;

/** Which backend runs, and why (for the start-up line). */
export interface BackendSelection {
  readonly backend: Backend;
  /** How it was chosen: by name, by TAPEGRAD_BACKEND, or by auto-detection. */
  readonly reason: string;
}

/** Makes a backend choosable by name (backends register themselves on import). */
export const registerBackend = (name: string, make: () => Backend): void => {
  registry.set(name, make);
};

/** Names that `setBackend` accepts. */
export const backendNames = (): string[] => [...registry.keys()];

/**
 * Selects the backend all matmuls run on from now on. Throws with the valid names
 * when `name` is unknown.
 */
export const setBackend = (name: string, reason = `chosen by name ('${name}')`): Backend => {
  if (name === 'auto') return autoSelect().backend;
  const make = registry.get(name);
  if (make === undefined) {
    throw new Error(`unknown backend '${name}': choose one of auto, ${backendNames().join(', ')}`);
  }
  let instance = instances.get(name);
  if (instance === undefined) {
    instance = make();
    instances.set(name, instance);
  }
  use(instance);
  selection = { backend: instance, reason };
  return instance;
};

let autoPolicy: () => { name: string; reason: string } = () => ({ name: 'reference', reason: 'no other backend is registered' });

/** Installs the auto-detection policy (done by backends/index.ts). */
export const setAutoPolicy = (policy: () => { name: string; reason: string }): void => {
  autoPolicy = policy;
};

/** Picks a backend by auto-detection and selects it. */
export const autoSelect = (): BackendSelection => {
  const { name, reason } = autoPolicy();
  setBackend(name, reason);
  return selection!;
};

/**
 * The backend in use. On first use it is chosen from the TAPEGRAD_BACKEND
 * environment variable, else by auto-detection.
 */
export const getBackend = (): Backend => {
  if (current === undefined) {
    const env = process.env['TAPEGRAD_BACKEND'];
    if (env !== undefined && env !== '' && env !== 'auto') setBackend(env, `TAPEGRAD_BACKEND=${env}`);
    else autoSelect();
  }
  return current!;
};

/** The backend in use with the reason it was chosen. */
export const backendSelection = (): BackendSelection => {
  getBackend();
  return selection!;
};

/** Runs `f` with another backend, restoring the previous one afterwards. */
export const withBackend = <A>(name: string, f: () => A): A => {
  const prev = current, prevSel = selection;
  setBackend(name);
  try {
    return f();
  } finally {
    use(prev);
    selection = prevSel;
  }
};

/** Frees every backend created (workers, kernels); the next op selects one again. */
export const disposeBackend = (): void => {
  for (const b of instances.values()) b.dispose?.();
  instances.clear();
  use(undefined);
  selection = undefined;
};
