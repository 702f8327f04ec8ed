/**
 * What graphics the gpujs backend would run on. headless-gl hides the renderer
 * ("ANGLE"), so the renderer string is read from the X display with
 * `glxinfo -B` (Debian's mesa-utils); software renderers are named as such.
 * In a browser the page's WebGL 2 is probed and names its own renderer.
 * Node's modules come from platform.ts when probing, not at import.
 */
import { isNode, nodeBuiltin } from './platform.js';

/** What `detectGpu` found: whether WebGL works here, and on what renderer. */
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
export const isHardwareRenderer = (renderer: string | undefined): boolean => renderer !== undefined && renderer.trim() !== '' && !SOFTWARE.test(renderer);

let cached: GpuReport | undefined;

/** Probes once per process. */
export const detectGpu = (): GpuReport => {
  if (cached !== undefined) return cached;
  if (!isNode()) {
    cached = detectBrowserGpu();
    return cached;
  }
  const why = 'probing the GPU';
  const { execFileSync } = nodeBuiltin<typeof import('node:child_process')>('node:child_process', why);
  const { existsSync } = nodeBuiltin<typeof import('node:fs')>('node:fs', why);
  const { dirname, join } = nodeBuiltin<typeof import('node:path')>('node:path', why);
  const { isMainThread } = nodeBuiltin<typeof import('node:worker_threads')>('node:worker_threads', why);
  const require = nodeBuiltin<typeof import('node:module')>('node:module', why).createRequire(import.meta.url);
  let glBuilt = false,
    context = false,
    loadError: string | undefined,
    installed = true;
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
      installed = false; // gpu.js (which brings gl) is an optional peer of the library
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
  const summary = !installed
    ? 'gpu.js and headless-gl are not installed (optional for the library): npm install gpu.js'
    : loadError !== undefined
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

/** The page's (or worker's) WebGL 2: a context from a canvas, and the unmasked renderer where the browser tells it. */
const detectBrowserGpu = (): GpuReport => {
  const g = globalThis as { OffscreenCanvas?: new (w: number, h: number) => { getContext(k: string): WebGL2RenderingContext | null }; document?: Document };
  let gl: WebGL2RenderingContext | null = null;
  try {
    gl =
      g.OffscreenCanvas !== undefined ? new g.OffscreenCanvas(1, 1).getContext('webgl2') : (g.document?.createElement('canvas').getContext('webgl2') ?? null);
  } catch {
    gl = null;
  }
  if (gl === null) {
    return {
      glBuilt: true,
      context: false,
      renderer: undefined,
      hardware: false,
      summary: 'this browser gave no WebGL 2 context (hardware acceleration off, or no GPU process)',
    };
  }
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = String(gl.getParameter(info !== null ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  gl.getExtension('WEBGL_lose_context')?.loseContext();
  const hardware = isHardwareRenderer(renderer);
  return { glBuilt: true, context: true, renderer, hardware, summary: `WebGL renderer: ${renderer}${hardware ? '' : ' (software)'}` };
};
