/**
 * The webgpu backend for a test file, or a skip: without the `webgpu` package
 * or a WebGPU adapter the suite skips with one line naming what is missing
 * (and fails under CI=true: test/system.ts). On a machine without a GPU the
 * adapter is Mesa's software GLES, found through Dawn's opengles backend.
 */
import { createWebgpuBackend, type WebgpuBackend } from '../../src/core/index.js';
import { requireSystem } from '../system.js';

export const webgpuFor = (suite: string): WebgpuBackend | undefined => {
  let backend: WebgpuBackend | undefined;
  let missing = '';
  try {
    backend = createWebgpuBackend();
  } catch (e) {
    missing = (e as Error).message;
  }
  return requireSystem({ suite, found: backend !== undefined, missing }) ? backend : undefined;
};

/** Values from a fixed seed in [lo, hi) (a small LCG: no dependence on the library's own random streams). */
export const seeded = (n: number, seed: number, lo = -2, hi = 2): number[] => {
  let s = (seed * 2654435761) >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((s >>> 8) / (1 << 24)) * (hi - lo);
  });
};

/** ‖a − b‖ / ‖b‖ (‖a − b‖ when b vanishes). */
export const relNorm = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let d = 0,
    r = 0;
  for (let i = 0; i < b.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    r += b[i]! ** 2;
  }
  return r === 0 ? Math.sqrt(d) : Math.sqrt(d / r);
};
