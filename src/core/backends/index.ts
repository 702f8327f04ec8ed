/**
 * Registers the built-in backends and the auto-detection policy: gpujs only on
 * a real (hardware) GPU, else the WebAssembly cpu backend.
 */
import { registerBackend, setAutoPolicy } from '../backend.js';
import { createCpuBackend } from './cpu.js';
import { createGpujsBackend } from './gpujs.js';
import { createReferenceBackend } from './reference.js';
import { detectGpu, isHardwareRenderer } from './detect.js';

registerBackend('reference', () => createReferenceBackend());
registerBackend('cpu', () => createCpuBackend());
registerBackend('gpujs', () => createGpujsBackend());

setAutoPolicy(() => {
  const gpu = detectGpu();
  return gpu.hardware
    ? { name: 'gpujs', reason: `auto: ${gpu.summary}` }
    : { name: 'cpu', reason: `auto: no hardware GPU (${gpu.summary})` };
});

export { createCpuBackend, createGpujsBackend, createReferenceBackend, detectGpu, isHardwareRenderer };
export { isHostBackend, type HostBackend } from './reference.js';
export type { GpuReport } from './detect.js';
