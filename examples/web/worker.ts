// The demo's training thread (a classic Web Worker, so it can importScripts
// gpu.js's browser build): runs train.ts's program on the bytes the page sends
// and posts every event back; the page stays responsive meanwhile. Here the cpu
// backend may block in Atomics.wait, so it runs its second thread (a nested
// worker over shared memory) when the page is cross-origin isolated, and the
// webgpu backend may block on its executor (a nested worker that owns the GPU
// device), so `fit` reads its losses synchronously as under Node.
import { backend, startWebgpu } from 'tapegrad';
import { runDemo, type DemoConfig } from './train.js';

declare const self: { onmessage: ((e: MessageEvent) => void) | null; postMessage(m: unknown): void };
declare function importScripts(url: string): void;

self.onmessage = async (e: MessageEvent<{ cfg: DemoConfig; train: Uint8Array; test: Uint8Array; gpujsUrl: string }>) => {
  const { cfg, train, test, gpujsUrl } = e.data;
  try {
    if (cfg.backend === 'gpujs') importScripts(gpujsUrl);
    // navigator.gpu's adapter is a promise: started here, then backend('webgpu') is it.
    if (cfg.backend === 'webgpu') await startWebgpu();
    if (cfg.backend === 'cpu') {
      // The cpu backend's second thread starts only once this one yields: give it up to a second.
      const cpu = backend('cpu') as ReturnType<typeof backend> & { workerRunning?(): boolean; threads?: number };
      for (let i = 0; i < 50 && cpu.threads === 2 && cpu.workerRunning?.() !== true; i++) await new Promise((ok) => setTimeout(ok, 20));
    }
    const result = runDemo(train, test, cfg, (ev) => self.postMessage(ev));
    self.postMessage({ type: 'done', result });
  } catch (err) {
    self.postMessage({ type: 'error', message: err instanceof Error ? `${err.message}` : String(err) });
  }
};
