/**
 * What `auto` learns about WebGPU, once per process: whether the `webgpu`
 * package is installed, and if an adapter comes up, which and whether it is a
 * real GPU. The probe starts Dawn only where an adapter can be expected without
 * console noise: with TAPEGRAD_WEBGPU set (the user asked), or where the Vulkan
 * loader is installed (Dawn's default on Linux; without it Dawn prints a
 * warning on every start). A software adapter is never chosen by `auto`.
 */
import { envVar, isNode, nodeBuiltin } from '../platform.js';
import { findWebgpuPackage } from './executor.js';
import { createWebgpuBackend, type WebgpuBackend } from './index.js';

/** The probe's finding. */
export interface WebgpuProbe {
  /** The backend, when an adapter came up (kept: choosing webgpu later reuses it). */
  readonly backend: WebgpuBackend | undefined;
  /** Whether the adapter found is a real GPU. */
  readonly hardware: boolean;
  /** One line: the adapter, or why there is none. */
  readonly summary: string;
}

const VULKAN_LOADER = [
  '/usr/lib/x86_64-linux-gnu/libvulkan.so.1',
  '/usr/lib/aarch64-linux-gnu/libvulkan.so.1',
  '/usr/lib64/libvulkan.so.1',
  '/usr/lib/libvulkan.so.1',
];

let cached: WebgpuProbe | undefined;

export const probeWebgpu = (): WebgpuProbe => {
  if (cached !== undefined) return cached;
  const pkg = findWebgpuPackage();
  if ('missing' in pkg) {
    cached = { backend: undefined, hardware: false, summary: pkg.missing };
    return cached;
  }
  const asked = (envVar('TAPEGRAD_WEBGPU') ?? '') !== '';
  const { existsSync } = nodeBuiltin<typeof import('node:fs')>('node:fs', 'probing WebGPU');
  const process = (globalThis as { process?: { platform?: string } }).process;
  const vulkan = !isNode() || process?.platform !== 'linux' || VULKAN_LOADER.some((p) => existsSync(p));
  if (!asked && !vulkan) {
    cached = { backend: undefined, hardware: false, summary: 'no Vulkan loader (libvulkan1) for Dawn, and TAPEGRAD_WEBGPU is unset' };
    return cached;
  }
  try {
    const backend = createWebgpuBackend();
    cached = { backend, hardware: backend.hardware, summary: `WebGPU adapter ${backend.description.replace(/^webgpu: /, '')}` };
  } catch (e) {
    cached = { backend: undefined, hardware: false, summary: (e as Error).message };
  }
  return cached;
};

/** The probed backend, handed over once (the registry owns it from then on, and `disposeBackends` may dispose it). */
export const takeProbedWebgpu = (): WebgpuBackend | undefined => {
  const b = cached?.backend;
  if (b !== undefined) cached = { ...cached!, backend: undefined };
  return b;
};

/** Forgets the finding (tests that change TAPEGRAD_WEBGPU probe again); a probed backend not yet handed over is disposed. */
export const forgetWebgpuProbe = (): void => {
  cached?.backend?.dispose();
  cached = undefined;
};
