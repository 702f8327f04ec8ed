/**
 * Registers the backends and the auto-detection policy: gpujs only on a real
 * (hardware) GPU, else the WebAssembly cpu backend.
 */
import { registerBackend, setAutoPolicy } from '../backend.js';
import { createCpuBackend } from './cpu.js';
import { createGpujsBackend } from './gpujs.js';
import { referenceBackend } from './reference.js';
import { detectGpu, isHardwareRenderer } from './detect.js';

registerBackend('reference', () => referenceBackend);
registerBackend('cpu', () => createCpuBackend());
registerBackend('gpujs', () => createGpujsBackend());

setAutoPolicy(() => {
  const gpu = detectGpu();
  return gpu.hardware
    ? { name: 'gpujs', reason: `auto: ${gpu.summary}` }
    : { name: 'cpu', reason: `auto: no hardware GPU (${gpu.summary})` };
});

export { createCpuBackend, createGpujsBackend, referenceBackend, detectGpu, isHardwareRenderer };
export type { GpuReport } from './detect.js';
