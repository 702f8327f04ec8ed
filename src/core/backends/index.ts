/**
 * Registers the built-in backends and the auto-detection policy: webgpu when
 * its adapter is a real GPU, else gpujs on a real (hardware) WebGL renderer,
 * else the WebAssembly cpu backend.
 */
import { backend, registerBackend, setAutoPolicy } from '../backend.js';
import { createCpuBackend } from './cpu.js';
import { createGpujsBackend } from './gpujs.js';
import { createReferenceBackend } from './reference.js';
import { detectGpu, isHardwareRenderer } from './detect.js';
import { gpuJsAvailable, sharedMemoryError } from './platform.js';
import { probeWebgpu, takeProbedWebgpu } from './webgpu/probe.js';
import { createWebgpuBackend, createWebgpuBackendAsync, type WebgpuBackend, type WebgpuOptions } from './webgpu/index.js';

registerBackend('reference', () => createReferenceBackend());
registerBackend('cpu', () => createCpuBackend());
registerBackend('gpujs', () => createGpujsBackend());
let started: WebgpuBackend | undefined;
// The instance startWebgpu made, else the one auto's probe made, if any (starting Dawn twice costs a second thread and its start-up).
registerBackend('webgpu', () => started ?? takeProbedWebgpu() ?? createWebgpuBackend());

/**
 * Starts the webgpu backend without blocking and makes it the one `backend('webgpu')`
 * returns: what a browser needs before naming 'webgpu' (its adapter comes as a promise);
 * under Node the same as `backend('webgpu')`. Rejects with one line when there is no adapter.
 *
 * ```ts
 * await startWebgpu();
 * fit(model, params, data, { backend: 'webgpu', ... }); // in a Web Worker of a cross-origin isolated page
 * ```
 */
export const startWebgpu = async (options: WebgpuOptions = {}): Promise<WebgpuBackend> => {
  started ??= await createWebgpuBackendAsync(options);
  return backend('webgpu') as WebgpuBackend;
};

setAutoPolicy(() => {
  if (started?.hardware === true) return { name: 'webgpu', reason: `auto: ${started.description}` };
  const webgpu = probeWebgpu();
  if (webgpu.hardware) return { name: 'webgpu', reason: `auto: ${webgpu.summary}` };
  const gpu = detectGpu();
  if (gpu.hardware && gpuJsAvailable()) return { name: 'gpujs', reason: `auto: ${gpu.summary}` };
  // In a browser page that is not cross-origin isolated the cpu backend cannot have its shared memory.
  const noShared = sharedMemoryError();
  if (noShared !== undefined) return { name: 'reference', reason: `auto: ${noShared}` };
  return { name: 'cpu', reason: `auto: no hardware GPU (${gpu.hardware ? 'gpu.js is not available' : gpu.summary})` };
});

export { createCpuBackend, createGpujsBackend, createReferenceBackend, createWebgpuBackend, createWebgpuBackendAsync, detectGpu, isHardwareRenderer };
export type { WebgpuBackend, WebgpuBuffer, WebgpuOptions, WebgpuTransfers, AdapterReport } from './webgpu/index.js';
export { isHostBackend, type HostBackend } from './reference.js';
export type { GpuReport } from './detect.js';
