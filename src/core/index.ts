/** Core: shapes, the immutable Tensor and its memory, ops, backends, randomness. */
export * from './shape.js';
export {
  Tensor,
  tensor,
  fromArray,
  full,
  zeros,
  ones,
  scalar,
  toBackend,
  tidy,
  dispose,
  keep,
  type DType,
  type Data,
  type HostData,
  type NestedArray,
  type NestedInput,
  type Trace,
  type MainTrace,
} from './tensor.js';
export type { Arity, ArityTuple, CustomRule, FloatDType, KernelPrimitive, PrimitiveParams, ViewPrimitive } from './primitives.js';
export { DTYPES, isFloatDType } from './primitives.js';
export { checkDType, checkFloatDType, isDType, promoteTypes, weakType } from './dtypes.js';
export type { Conv2dParams, PadParams, Pool2dParams, RoundMode, SliceParams, TakeParams } from './kernels-nd.js';
export type { CpuBackendOptions } from './backends/cpu.js';
export type { BlasChoice, BlasFamily, NativeBlas } from './backends/cpu/blas.js';
export type { GpuBuffer, GpuTexture, TransferStats } from './backends/gpujs.js';
export type { GpuJsModule } from './backends/platform.js';
export * from './ops.js';
export * from './ops-everyday.js';
export { checked } from './checked.js';
export {
  type Backend,
  type BackendLike,
  type BackendSelection,
  type FusedKernels,
  type Kernel,
  type KernelTable,
  type MemoryStats,
  type AdamHyper,
  type MomentumHyper,
  type Operand,
  type OutSpec,
  UnknownBackendError,
  backend,
  int32Limit,
  storageDType,
  backendNames,
  backendSelection,
  chooseBackend,
  defaultBackend,
  disposeBackends,
  registerBackend,
  resolveBackend,
  setDefaultBackend,
  withBackend,
} from './backend.js';
export {
  createCpuBackend,
  createGpujsBackend,
  createReferenceBackend,
  createWebgpuBackend,
  createWebgpuBackendAsync,
  startWebgpu,
  isHostBackend,
  detectGpu,
  isHardwareRenderer,
  type GpuReport,
  type HostBackend,
} from './backends/index.js';
export type { AdapterReport, WebgpuBackend, WebgpuBuffer, WebgpuOptions, WebgpuTransfers } from './backends/index.js';
export { Key, numpyUniform } from './random.js';
export { isChainable, type ChainAccess, type ChainKernel, type ChainOp, type ChainPrimitive, type ChainSum, type FusedChain } from './chains.js';
