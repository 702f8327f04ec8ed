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
  // Mesa's software adapter under Xvfb answered null once in three full runs while other suites loaded the
  // machine (the same suite passed in the runs before and after): up to three tries, two seconds apart, and
  // the last failure is what the skip (or, under CI=true, the failure) says.
  for (let attempt = 0; attempt < 3 && backend === undefined; attempt++) {
    if (attempt > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2000);
    try {
      backend = createWebgpuBackend();
    } catch (e) {
      missing = (e as Error).message;
      if (!/no WebGPU adapter/.test(missing)) break; // the package missing: no point in trying again
    }
  }
  return requireSystem({ suite, found: backend !== undefined, missing }) ? backend : undefined;
};

export { relNorm, seeded } from './cases.js';
