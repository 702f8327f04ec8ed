/**
 * What graphics the gpujs backend would run on. headless-gl hides the renderer
 * ("ANGLE"), so the renderer string is read from the X display with
 * `glxinfo -B` (Debian's mesa-utils); software renderers are named as such.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { isMainThread } from 'node:worker_threads';

const require = createRequire(import.meta.url);

export interface GpuReport {
  /** headless-gl's native module is built (npm succeeds silently without it). */
  readonly glBuilt: boolean;
  /** A WebGL context could be created (needs an X display, e.g. `xvfb-run -a`). */
  readonly context: boolean;
  /** The OpenGL renderer string, when it could be read. */
  readonly renderer: string | undefined;
  /** A real GPU: a renderer that is known and not a software one. */
  readonly hardware: boolean;
  /** One line saying what was found. */
  readonly summary: string;
}

const SOFTWARE = /llvmpipe|softpipe|swiftshader|software|swrast/i;

/** Whether an OpenGL renderer string names real hardware: known, and none of the software rasterizers. */
export const isHardwareRenderer = (renderer: string | undefined): boolean =>
  renderer !== undefined && renderer.trim() !== '' && !SOFTWARE.test(renderer);

let cached: GpuReport | undefined;

/** Probes once per process. */
export const detectGpu = (): GpuReport => {
  if (cached !== undefined) return cached;
  let glBuilt = false, context = false, loadError: string | undefined;
  try {
    const gl = require('gl') as (w: number, h: number) => { getExtension(n: string): { destroy(): void } | null } | null;
    glBuilt = true;
    const ctx = gl(1, 1);
    context = ctx !== null;
    ctx?.getExtension('STACKGL_destroy_context')?.destroy();
  } catch (e) {
    glBuilt = false;
    // Built but not loadable here: e.g. in a worker thread (headless-gl's addon is not context-aware).
    try {
      if (existsSync(join(dirname(require.resolve('gl/package.json')), 'build', 'Release', 'webgl.node'))) {
        loadError = `${(e as Error).message.split('\n')[0]}${isMainThread ? '' : ' (in a worker thread)'}`;
      }
    } catch {
      /* not installed at all */
    }
  }
  let renderer: string | undefined;
  if (context) {
    try {
      const out = execFileSync('glxinfo', ['-B'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
      renderer = /OpenGL renderer string:\s*(.+)/.exec(out)?.[1]?.trim();
    } catch {
      renderer = undefined;
    }
  }
  const hardware = isHardwareRenderer(renderer);
  const summary = loadError !== undefined
    ? `headless-gl is built but could not be loaded: ${loadError}`
    : !glBuilt
    ? "headless-gl ('gl') is not built: install libxi-dev libx11-dev libxext-dev pkg-config and a C++ toolchain, then npm rebuild gl"
    : !context
      ? 'headless-gl is built but no WebGL context could be made: no X display (run under xvfb-run -a)'
      : renderer === undefined
        ? 'WebGL works but its renderer is unknown (install mesa-utils for glxinfo)'
        : `WebGL renderer: ${renderer}${hardware ? '' : ' (software)'}`;
  cached = { glBuilt, context, renderer, hardware, summary };
  return cached;
};
