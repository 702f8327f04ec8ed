/**
 * Registers the built-in backends and the auto-detection policy: gpujs only on
 * a real (hardware) GPU, else the WebAssembly cpu backend.
 */
import { registerBackend, setAutoPolicy } from '../backend.js';
import { createCpuBackend } from './cpu.js';
import { createGpujsBackend } from './gpujs.js';
import { createReferenceBackend } from './reference.js';
import { detectGpu, isHardwareRenderer } from './detect.js';
import { gpuJsAvailable, sharedMemoryError } from './platform.js';

registerBackend('reference', () => createReferenceBackend());
registerBackend('cpu', () => createCpuBackend());
registerBackend('gpujs', () => createGpujsBackend());

setAutoPolicy(() => {
  const gpu = detectGpu();
  if (gpu.hardware && gpuJsAvailable()) return { name: 'gpujs', reason: `auto: ${gpu.summary}` };
  // In a browser page that is not cross-origin isolated the cpu backend cannot have its shared memory.
  const noShared = sharedMemoryError();
  if (noShared !== undefined) return { name: 'reference', reason: `auto: ${noShared}` };
  return { name: 'cpu', reason: `auto: no hardware GPU (${gpu.hardware ? 'gpu.js is not available' : gpu.summary})` };
});

export { createCpuBackend, createGpujsBackend, createReferenceBackend, detectGpu, isHardwareRenderer };
export { isHostBackend, type HostBackend } from './reference.js';
export type { GpuReport } from './detect.js';
