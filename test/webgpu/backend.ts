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

export { relNorm, seeded } from './cases.js';
