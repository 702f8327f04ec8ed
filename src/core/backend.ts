/**
 * What a backend is: a device that owns the memory of its tensors and runs the
 * forward kernel of every primitive on it (jax-js's and tfjs's design).
 *
 * - Memory: a tensor holds a buffer of its backend (`B`: a typed array for the
 *   host backends, a texture for gpujs). Buffers are released through `free`
 *   as soon as the last tensor using one is disposed (explicitly, by `tidy`, or,
 *   as a safety net, when the garbage collector has collected it).
 * - Kernels: one typed table over all primitive names (`KernelTable`), so a
 *   backend missing a kernel does not compile. A backend may implement a kernel
 *   by moving its operands to the host and back (gpujs does for float64); that
 *   transfer is the backend's own, documented where it happens.
 * - Fused work that is not differentiable (the optimizers' updates) is a second
 *   table, `FusedKernels`, required of every backend just the same.
 *
 * Placement travels with tensors: an op runs on the backend of its inputs and
 * its result lives there. Only tensors made from host values (constructors,
 * random draws, data sets) need a backend chosen for them: the one passed
 * explicitly, else the default (`defaultBackend`), which the TAPEGRAD_BACKEND
 * environment variable or auto-detection chooses once, and `setDefaultBackend`
 * / `withBackend` change only when asked.
 */
import type { ChainKernel, FusedChain } from './chains.js';
import type { ArityTuple, Data, DType, FloatDType, KernelPrimitive, PrimitiveParams } from './primitives.js';
import type { Shape } from './shape.js';

/**
 * The float dtype a backend stores a dtype in. Kernels see only these: int32
 * and bool tensors hold exact integers in float storage (tfjs's WebGL design),
 * bool as float32 everywhere (0 and 1; a mask is then the float32 operand it
 * always was), int32 as float64 on host backends (every int32 exact) and as
 * float32 on the GPU backends, which declare `int32Storage: 'float32'` (exact
 * within ±2^24, what uploads there accept).
 */
export const storageDType = (b: Backend, d: DType): FloatDType =>
  d === 'float32' || d === 'float64' ? d : d === 'bool' ? 'float32' : (b.int32Storage ?? 'float64');

/** The largest |value| an int32 tensor holds exactly on a backend. */
export const int32Limit = (b: Backend): number => (storageDType(b, 'int32') === 'float32' ? 2 ** 24 : 2 ** 31);

/** One input of a kernel: a buffer of the backend with its shape and (storage) dtype. */
export interface Operand<B> {
  readonly buf: B;
  readonly shape: Shape;
  readonly dtype: DType;
}

/** The shape and dtype a kernel's result must have (the rule computes them). */
export interface OutSpec {
  readonly shape: Shape;
  readonly dtype: DType;
}

/** A primitive's forward computation on one backend: a new buffer holding the result. */
export type Kernel<P extends KernelPrimitive, B> = (inputs: ArityTuple<P, Operand<B>>, params: PrimitiveParams<P>, out: OutSpec) => B;

/** Every primitive's kernel (reshape, a view, has none). */
export type KernelTable<B> = { readonly [P in KernelPrimitive]: Kernel<P, B> };

/** Hyperparameters of one fused momentum update. */
export interface MomentumHyper {
  readonly lr: number;
  readonly gamma: number;
  /** Coupled L2 added to the gradient: g + l2·p. */
  readonly l2: number;
  readonly nesterov: boolean;
}

/**
 * Hyperparameters of one fused Adam update (AdamW with `decay`): the bias
 * corrections c1 = 1/(1 − β1ᵗ), c2 = 1/(1 − β2ᵗ) are the caller's, from its step count.
 */
export interface AdamHyper {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Coupled L2 added to the gradient: g + l2·p. */
  readonly l2: number;
  /** Decoupled weight decay as a factor on p: 1 − lr·wd (1 for none). */
  readonly decay: number;
  readonly c1: number;
  readonly c2: number;
}

/** Fused, non-differentiable kernels (an optimizer's arithmetic), required of every backend. */
export interface FusedKernels<B> {
  /**
   * g' = g + l2·p; v' = γ·v + lr·g'; p' = p − v' (Nesterov: p − (γ·v' + lr·g')),
   * in one pass, all operands of one shape and dtype. Returns [p', v'].
   */
  momentumStep(p: Operand<B>, v: Operand<B>, g: Operand<B>, hp: MomentumHyper): readonly [B, B];
  /**
   * g' = g + l2·p; m' = β1·m + (1 − β1)·g'; v' = β2·v + (1 − β2)·g'²;
   * p' = decay·p − lr·(c1·m') / (√(c2·v') + eps), in one pass, each element in
   * float64 and rounded once. Returns [p', m', v'].
   */
  adamStep(p: Operand<B>, m: Operand<B>, v: Operand<B>, g: Operand<B>, hp: AdamHyper): readonly [B, B, B];
}

/** A backend's memory, in bytes of tensor buffers. */
export interface MemoryStats {
  /** Bytes held by live buffers now. */
  readonly liveBytes: number;
  /** The most `liveBytes` has been. */
  readonly peakBytes: number;
  /** Live buffers. */
  readonly buffers: number;
}

/**
 * A device: memory of its own and a kernel for every primitive. `B` is its
 * buffer type; code that holds backends of any kind uses plain `Backend`
 * (buffers are then opaque: only the backend that made one reads it).
 */
// biome-ignore lint/suspicious/noExplicitAny: a backend of any buffer type; its methods take and return B, so Backend<unknown> would accept none
export interface Backend<B = any> {
  /** Short name used in configs and on the command line. */
  readonly name: string;
  /** One line for the start-up banner: what runs and on what. */
  readonly description: string;
  readonly kernels: KernelTable<B>;
  readonly fused: FusedKernels<B>;
  /**
   * Optional: the float type int32 tensors live in (see `storageDType`); absent,
   * float64. float32 (the GPU backends) holds integers exactly within ±2^24 only.
   */
  readonly int32Storage?: FloatDType;
  /** A new buffer holding a copy of `data`. */
  upload(data: Data): B;
  /**
   * Optional (host backends): takes `data` itself as a buffer, without a copy;
   * the caller hands it over and never touches it again.
   */
  adopt?(data: Data): B;
  /** A new buffer of `n` elements, each `value`. */
  full(dtype: DType, n: number, value: number): B;
  /**
   * The values on the host. Host backends return the buffer itself, which
   * callers must treat as read-only; others return a copy (a download).
   */
  read(buf: B, dtype: DType, n: number): Data;
  /**
   * Optional: the values without blocking the calling thread (`Tensor.data()`),
   * for backends whose reads wait on a device (webgpu). Absent: `read`.
   */
  readAsync?(buf: B, dtype: DType, n: number): Promise<Data>;
  /** Releases a buffer; called once, when the last tensor using it is gone. */
  free(buf: B): void;
  /**
   * Optional: false when dropping `buf` without `free` loses nothing the garbage
   * collector does not reclaim anyway (a small host array: only the accounting
   * of `memory()` misses it). Such buffers get no finalizer, which costs about
   * as much as a small op. Absent: every buffer needs its `free`.
   */
  needsRelease?(buf: B): boolean;
  /** Optional: elements [offset, offset + n) of `buf` without a copy, or undefined where the backend cannot. */
  view?(buf: B, offset: number, n: number): B | undefined;
  /**
   * Optional: a chain of element-wise ops compiled into one kernel, for `jit`'s
   * fusion (chains.ts), giving the bits the unfused kernels give; undefined
   * where this chain cannot be compiled. Absent: programs run unfused.
   */
  fuse?(chain: FusedChain): ChainKernel<B> | undefined;
  /** Live and peak bytes of its buffers, and how many there are. */
  memory(): MemoryStats;
  /** Frees kernels, textures, workers. The backend must not be used afterwards. */
  dispose(): void;
}

/** Which backend is the default for new tensors, and why (for the start-up line). */
export interface BackendSelection {
  readonly backend: Backend;
  /** How it was chosen: by name, by TAPEGRAD_BACKEND, or by auto-detection. */
  readonly reason: string;
}

const registry = new Map<string, () => Backend>();
/** One instance per name: switching back and forth must not start new workers. */
const instances = new Map<string, Backend>();
let selection: BackendSelection | undefined;

/** Makes a backend choosable by name (the built-in ones register on import of backends/index.ts). */
export const registerBackend = (name: string, make: () => Backend): void => {
  registry.set(name, make);
};

/** Names that `backend()` and `setDefaultBackend` accept (besides 'auto'). */
export const backendNames = (): string[] => [...registry.keys()];

/** An unknown backend name, with the valid ones. */
export class UnknownBackendError extends Error {
  override readonly name = 'UnknownBackendError';
  constructor(
    readonly requested: string,
    where: string,
  ) {
    super(`unknown backend '${requested}'${where}: choose one of auto, ${backendNames().join(', ')}`);
  }
}

let autoPolicy: () => { name: string; reason: string } = () => ({ name: 'reference', reason: 'no other backend is registered' });

/** Installs the auto-detection policy (done by backends/index.ts). */
export const setAutoPolicy = (policy: () => { name: string; reason: string }): void => {
  autoPolicy = policy;
};

/** The auto-detected backend's name and why. */
export const autoChoice = (): { name: string; reason: string } => autoPolicy();

/**
 * The backend of a name (created on first use, then shared), 'auto' for the
 * auto-detected one. Throws `UnknownBackendError` listing the valid names.
 */
export const backend = (name: string): Backend => {
  if (name === 'auto') return backend(autoPolicy().name);
  const make = registry.get(name);
  if (make === undefined) throw new UnknownBackendError(name, '');
  let instance = instances.get(name);
  if (instance === undefined) {
    instance = make();
    instances.set(name, instance);
  }
  return instance;
};

/** A backend given by name or as itself. */
export type BackendLike = string | Backend;
/** The backend a name stands for (created on first use), or the backend itself. */
export const resolveBackend = (b: BackendLike): Backend => (typeof b === 'string' ? backend(b) : b);

/**
 * Chooses the default backend for new tensors made from host values (tensors
 * already made stay where they are; ops follow their inputs).
 */
export const setDefaultBackend = (name: string, reason = `chosen by name ('${name}')`): Backend => {
  if (name === 'auto') {
    const auto = autoPolicy();
    selection = { backend: backend(auto.name), reason: auto.reason };
  } else {
    selection = { backend: backend(name), reason };
  }
  return selection.backend;
};

/**
 * The backend for a request, by precedence: a name given explicitly (a flag, a
 * config) wins; 'auto' or nothing defers to the TAPEGRAD_BACKEND environment
 * variable, then to auto-detection. Unknown names, in either place, throw
 * `UnknownBackendError` listing the valid ones.
 */
export const chooseBackend = (requested: string | undefined, source = 'the request'): { readonly name: string; readonly reason: string } => {
  if (requested !== undefined && requested !== 'auto') {
    if (!registry.has(requested)) throw new UnknownBackendError(requested, ` (from ${source})`);
    return { name: requested, reason: `chosen in ${source} ('${requested}')` };
  }
  const env = typeof process === 'undefined' ? undefined : process.env['TAPEGRAD_BACKEND'];
  if (env !== undefined && env !== '' && env !== 'auto') {
    if (!registry.has(env)) throw new UnknownBackendError(env, ' in TAPEGRAD_BACKEND');
    return { name: env, reason: `TAPEGRAD_BACKEND=${env}` };
  }
  return autoPolicy();
};

/**
 * The default backend with the reason it was chosen. On first use it comes from
 * the TAPEGRAD_BACKEND environment variable (an unknown name is an error), else
 * from auto-detection.
 */
export const backendSelection = (): BackendSelection => {
  if (selection === undefined) {
    const { name, reason } = chooseBackend(undefined);
    selection = { backend: backend(name), reason };
  }
  return selection;
};

/** The backend new tensors made from host values go to unless another is named. */
export const defaultBackend = (): Backend => backendSelection().backend;

/**
 * Runs `f` with `name` as the default backend for tensors it makes from host
 * values, restoring the previous default afterwards. Synchronous only: for work
 * across `await`, pass the backend explicitly (`fit`'s `backend` option,
 * constructors' `backend` argument) or move tensors with `toBackend`.
 */
export const withBackend = <A>(name: BackendLike, f: () => A): A => {
  const prev = selection;
  const b = resolveBackend(name);
  selection = { backend: b, reason: `withBackend('${b.name}')` };
  try {
    return f();
  } finally {
    selection = prev;
  }
};

/** Frees every backend created (workers, kernels); the next use creates them again. */
export const disposeBackends = (): void => {
  for (const b of instances.values()) b.dispose();
  instances.clear();
  selection = undefined;
};
