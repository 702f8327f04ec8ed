/**
 * The `gpujs` backend: matmul as gpu.js kernels on WebGL through headless-gl.
 * One kernel per (shape, transpose form), compiled on first use and reused;
 * all destroyed by `dispose`. gpu.js would silently fall back to its CPU mode
 * when WebGL is unavailable; this backend refuses instead and says why.
 */
import { createRequire } from 'node:module';
import type { IKernelFunctionThis, IKernelRunShortcut } from 'gpu.js';
import type { Backend } from '../backend.js';
import type { Data } from '../tensor.js';
import { referenceBackend } from './reference.js';
import { detectGpu } from './detect.js';

interface MatmulConstants {
  readonly m: number;
  readonly k: number;
  readonly n: number;
  readonly ta: number;
  readonly tb: number;
  [key: string]: number;
}

// Runs on the GPU: gpu.js translates it to GLSL. thread.x is the column, thread.y the row.
function matmulKernel(this: IKernelFunctionThis<MatmulConstants>, a: number[], b: number[]): number {
  const i = this.thread.y;
  const j = this.thread.x;
  let s = 0;
  for (let p = 0; p < this.constants.k; p++) {
    let av = 0;
    let bv = 0;
    if (this.constants.ta === 1) av = a[p * this.constants.m + i]!;
    else av = a[i * this.constants.k + p]!;
    if (this.constants.tb === 1) bv = b[j * this.constants.k + p]!;
    else bv = b[p * this.constants.n + j]!;
    s += av * bv;
  }
  return s;
}

export const createGpujsBackend = (): Backend & { readonly renderer: string } => {
  const report = detectGpu();
  if (!report.context) {
    throw new Error(`the gpujs backend cannot run: ${report.summary}`);
  }
  // Loaded here, not at import: other backends' processes then never hold
  // gpu.js (a few MB of code that every full garbage collection would mark).
  const { GPU } = createRequire(import.meta.url)('gpu.js') as typeof import('gpu.js');
  const gpu = new GPU({ mode: 'headlessgl' });
  if (gpu.mode !== 'headlessgl') {
    throw new Error(`gpu.js chose mode '${gpu.mode}' instead of headless WebGL: ${report.summary}`);
  }
  const kernels = new Map<string, IKernelRunShortcut>();
  const kernelFor = (m: number, k: number, n: number, ta: boolean, tb: boolean): IKernelRunShortcut => {
    const key = `${m}x${k}x${n}:${+ta}${+tb}`;
    let kern = kernels.get(key);
    if (kern === undefined) {
      kern = gpu
        .createKernel(matmulKernel as never)
        .setOutput([n, m])
        .setConstants({ m, k, n, ta: ta ? 1 : 0, tb: tb ? 1 : 0 })
        .setLoopMaxIterations(Math.max(k, 1))
        .setPrecision('single')
        .setTactic('precision');
      kernels.set(key, kern);
    }
    return kern;
  };
  const renderer = report.renderer ?? 'unknown renderer';
  return {
    name: 'gpujs',
    description: `gpujs: gpu.js ${gpu.mode} on ${renderer}${report.hardware ? '' : ' (software rendering: slow)'}`,
    renderer,
    matmul(a: Data, b: Data, m: number, k: number, n: number, transA: boolean, transB: boolean, out: Data) {
      if (!(a instanceof Float32Array) || !(b instanceof Float32Array)) {
        referenceBackend.matmul(a, b, m, k, n, transA, transB, out);
        return;
      }
      if (m === 0 || n === 0) return;
      if (k === 0) { out.fill(0); return; }
      const rows = kernelFor(m, k, n, transA, transB)(a, b) as Float32Array[] | Float32Array;
      if (m === 1 && rows instanceof Float32Array) out.set(rows);
      else (rows as Float32Array[]).forEach((row, i) => out.set(row, i * n));
    },
    dispose() {
      for (const k of kernels.values()) k.destroy();
      kernels.clear();
      gpu.destroy();
    },
  };
};
