/**
 * The thread that trains talks to the WebGPU device through an executor: it
 * sends commands (allocate, write, dispatch, free) in batches and reads buffers
 * back synchronously (blocking in `Atomics.wait`) or asynchronously. Under Node
 * the executor is a worker thread running worker-source.ts on Dawn (the npm
 * package `webgpu`, an optional dependency loaded here, at run time, never at
 * import).
 *
 * Which adapter: `WebgpuOptions`, else the TAPEGRAD_WEBGPU environment variable
 * (`backend=vulkan|opengles|opengl|…,featureLevel=core|compatibility,adapter=NAME,powerPreference=high-performance|low-power`),
 * else Dawn's default adapter (Vulkan on Linux) and, when that gives none, Dawn
 * on OpenGL ES in compatibility mode (Mesa's software GLES on a machine without
 * a GPU). For OpenGL ES without a display (no DISPLAY or WAYLAND_DISPLAY) Mesa
 * needs EGL_PLATFORM=surfaceless, which Dawn has no option for: when it is unset
 * the executor sets it while the adapter is created and removes it afterwards,
 * so the process's environment is as it was (the backend's description says so).
 */
import { envVar, isNode, nodeBuiltin } from '../platform.js';
import { BROWSER_EXECUTOR_SOURCE, EXECUTOR_SOURCE } from './worker-source.js';

/** How to choose the WebGPU adapter (all optional; see the module comment for the defaults). */
export interface WebgpuOptions {
  /** Dawn's backend: 'vulkan' (GPU servers), 'opengles' (Mesa, software), 'opengl', 'metal', 'd3d12', … */
  readonly backend?: string;
  /** 'core' (full WebGPU) or 'compatibility' (what OpenGL ES can do). */
  readonly featureLevel?: 'core' | 'compatibility';
  /** Dawn's adapter name (a wrong one makes Dawn list the available adapters in its error). */
  readonly adapter?: string;
  readonly powerPreference?: 'high-performance' | 'low-power';
  /** More of Dawn's `create` flags, e.g. 'enable-dawn-features=…'. */
  readonly dawnFlags?: readonly string[];
}

/** What the adapter says about itself. */
export interface AdapterReport {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly isFallbackAdapter: boolean;
  readonly featureLevel: string | undefined;
  /** The attempt that gave it (Dawn flags and adapter options), for the description. */
  readonly attempt: string;
  /** Whether EGL_PLATFORM=surfaceless was set (and removed again) while the adapter was created. */
  readonly setSurfaceless: boolean;
}

type Command = readonly unknown[];

/** The device behind a backend: commands in, bytes out. */
export interface Executor {
  readonly adapter: AdapterReport;
  /** Queues a command (sent with the next batch). */
  send(command: Command, transfer?: ArrayBuffer): void;
  /** The bytes of buffer `id`, now (blocks this thread until the device has them). */
  readSync(id: number, bytes: number): Uint8Array;
  /** The bytes of buffer `id`, without blocking. */
  readAsync(id: number, bytes: number): Promise<Uint8Array>;
  /** Waits until every queued command has run; throws a device error from any of them. */
  finish(): void;
  dispose(): void;
}

const SOFTWARE = /llvmpipe|softpipe|lavapipe|swiftshader|software|swrast|microsoft basic render/i;

/** Whether an adapter is a real GPU: not Dawn's fallback, and not a software rasterizer by name. */
export const isHardwareAdapter = (a: AdapterReport): boolean =>
  !a.isFallbackAdapter &&
  !SOFTWARE.test(`${a.vendor} ${a.architecture} ${a.device} ${a.description}`) &&
  `${a.description}${a.device}${a.vendor}`.trim() !== '';

interface Attempt {
  readonly dawnOptions: string[];
  readonly adapterOptions: { featureLevel?: string; powerPreference?: string };
}

/** TAPEGRAD_WEBGPU's `key=value,…` as options; an unknown key is an error naming the known ones. */
export const parseWebgpuEnv = (text: string): WebgpuOptions => {
  const out: Record<string, unknown> = {};
  const flags: string[] = [];
  for (const part of text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : part.slice(eq + 1);
    if (key === 'backend' || key === 'adapter' || key === 'powerPreference') out[key] = value;
    else if (key === 'featureLevel') {
      if (value !== 'core' && value !== 'compatibility') throw new Error(`TAPEGRAD_WEBGPU: featureLevel=${value}: use core or compatibility`);
      out[key] = value;
    } else if (key === 'flag') flags.push(value);
    else
      throw new Error(
        `TAPEGRAD_WEBGPU: unknown key '${key}' in '${text}': use backend=, featureLevel=, adapter=, powerPreference= or flag= (a Dawn flag), comma-separated`,
      );
  }
  if (flags.length > 0) out['dawnFlags'] = flags;
  return out as WebgpuOptions;
};

const attemptsFor = (o: WebgpuOptions): Attempt[] => {
  const one = (backend: string | undefined, featureLevel: string | undefined): Attempt => ({
    dawnOptions: [
      ...(backend === undefined ? [] : [`backend=${backend}`]),
      ...(o.adapter === undefined ? [] : [`adapter=${o.adapter}`]),
      ...(o.dawnFlags ?? []),
    ],
    adapterOptions: {
      ...(featureLevel === undefined ? {} : { featureLevel }),
      ...(o.powerPreference === undefined ? {} : { powerPreference: o.powerPreference }),
    },
  });
  if (o.backend !== undefined || o.featureLevel !== undefined)
    return [one(o.backend, o.featureLevel ?? (o.backend === 'opengles' ? 'compatibility' : undefined))];
  // Dawn's default first (Vulkan on Linux: a GPU server's driver), then Mesa's GLES (software, or a GPU's GL driver).
  return [one(undefined, undefined), one('opengles', 'compatibility')];
};

const describeAttempt = (a: Attempt): string =>
  [...a.dawnOptions, ...Object.entries(a.adapterOptions).map(([k, v]) => `${k}=${v}`)].join(',') || "Dawn's default";

/** Where the `webgpu` package is, or why it cannot be had. */
export const findWebgpuPackage = (): { readonly url: string } | { readonly missing: string } => {
  if (!isNode()) return { missing: 'not Node: in a browser, WebGPU comes from navigator.gpu (await startWebgpu())' };
  const { createRequire } = nodeBuiltin<typeof import('node:module')>('node:module', 'finding the webgpu package');
  const { pathToFileURL } = nodeBuiltin<typeof import('node:url')>('node:url', 'finding the webgpu package');
  try {
    // The package is ESM with no `require` export: resolve its package.json and load index.js beside it.
    const pkg = createRequire(import.meta.url).resolve('webgpu/package.json');
    const version = (createRequire(import.meta.url)('webgpu/package.json') as { version: string }).version;
    const [major, minor] = version.split('.').map(Number) as [number, number];
    if (major === 0 && minor < 6)
      return { missing: `the webgpu package ${version} is installed, and it needs glibc 2.38 (Dawn's older builds): npm install webgpu@^0.6.2` };
    return { url: pathToFileURL(pkg.replace(/package\.json$/, 'index.js')).href };
  } catch {
    return { missing: "the webgpu package (Dawn's Node bindings, an optional dependency) is not installed: npm install webgpu" };
  }
};

/** Starts the executor thread and waits (blocking, up to `timeoutMs`) for its adapter. Throws one line naming what is missing. */
export const startNodeExecutor = (options: WebgpuOptions = {}, timeoutMs = 60_000): Executor => {
  const found = findWebgpuPackage();
  if ('missing' in found) throw new Error(`the webgpu backend cannot start: ${found.missing}`);
  const env = envVar('TAPEGRAD_WEBGPU');
  const opts = Object.keys(options).length === 0 && env !== undefined && env !== '' ? parseWebgpuEnv(env) : options;
  const attempts = attemptsFor(opts);
  const { Worker } = nodeBuiltin<typeof import('node:worker_threads')>('node:worker_threads', 'the webgpu backend');
  const proc = (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process;
  const needsSurfaceless =
    attempts.some((a) => a.dawnOptions.includes('backend=opengles') || a.dawnOptions.includes('backend=opengl')) &&
    proc.env['EGL_PLATFORM'] === undefined &&
    proc.env['DISPLAY'] === undefined &&
    proc.env['WAYLAND_DISPLAY'] === undefined;
  const failures: string[] = [];
  for (const attempt of attempts) {
    const ctrl = new SharedArrayBuffer(8 + 16384);
    const c = new Int32Array(ctrl);
    // Mesa reads EGL_PLATFORM when the adapter is created; it is removed again once the adapter is there.
    if (needsSurfaceless) proc.env['EGL_PLATFORM'] = 'surfaceless';
    // No execArgv: a loader the parent runs under (tsx, a test runner's) would start in the worker too, and its start-up waits on this thread, which is blocked here.
    const worker = new Worker(EXECUTOR_SOURCE, { eval: true, execArgv: [], workerData: { ctrl, moduleUrl: found.url, ...attempt } });
    let waited: string;
    try {
      waited = Atomics.wait(c, 0, 0, timeoutMs);
    } finally {
      if (needsSurfaceless) delete proc.env['EGL_PLATFORM'];
    }
    const text = new TextDecoder().decode(new Uint8Array(ctrl, 8, Atomics.load(c, 1)).slice());
    if (waited === 'timed-out' || Atomics.load(c, 0) !== 1) {
      void worker.terminate();
      // One line: Dawn's own messages (a list of adapters) span several.
      failures.push(`${describeAttempt(attempt)}: ${waited === 'timed-out' ? `no adapter after ${timeoutMs} ms` : text.replace(/\s*\n\s*/g, ' ')}`);
      continue;
    }
    const info = JSON.parse(text) as Omit<AdapterReport, 'attempt' | 'setSurfaceless'>;
    worker.unref();
    const port: Port = {
      post: (m, transfers) => worker.postMessage(m, transfers),
      onMessage: (handler) => worker.on('message', handler),
      ref: () => worker.ref(),
      unref: () => worker.unref(),
      terminate: () => void worker.terminate(),
    };
    return clientExecutor(port, ctrl, { ...info, attempt: describeAttempt(attempt), setSurfaceless: needsSurfaceless }, undefined);
  }
  throw new Error(
    `the webgpu backend found no WebGPU adapter (${failures.join('; ')}): on a GPU machine install its Vulkan driver (NVIDIA's ICD, or mesa-vulkan-drivers); without one, Mesa's GLES (libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri) and TAPEGRAD_WEBGPU=backend=opengles give a software adapter`,
  );
};

/** How long a blocking read waits for the device (a software adapter runs a CNN step in seconds, not minutes). */
const READ_TIMEOUT_MS = 300_000;

/** A message from the executor: a read's bytes (or its error) by token; token 0 is the adapter (browsers). */
interface Reply {
  readonly token: number;
  readonly data?: ArrayBuffer;
  readonly error?: string;
  readonly ready?: string;
}

/** The executor's thread as the client sees it (a Node worker or a Web Worker). */
interface Port {
  post(message: unknown, transfers: ArrayBuffer[]): void;
  onMessage(handler: (m: Reply) => void): void;
  /** Keep the process alive while a read is outstanding (Node; nothing in a browser). */
  ref(): void;
  unref(): void;
  terminate(): void;
}

/**
 * The executor's client side; `ctrl` is the shared signal word the worker was started with
 * (none where there is no SharedArrayBuffer). `noBlock`, when set, is why this thread may not
 * wait on the device: sync reads are then refused with it, and only `readAsync` reads.
 */
const clientExecutor = (port: Port, ctrl: SharedArrayBuffer | undefined, adapter: AdapterReport, noBlock: string | undefined): Executor => {
  let batch: Command[] = [];
  let transfers: ArrayBuffer[] = [];
  const c = ctrl === undefined ? undefined : new Int32Array(ctrl);
  let disposed = false;
  const pending = new Map<number, { resolve(b: Uint8Array): void; reject(e: Error): void }>();
  let token = 0;
  port.onMessage((m) => {
    const p = pending.get(m.token);
    pending.delete(m.token);
    if (pending.size === 0) port.unref();
    if (m.data !== undefined) p?.resolve(new Uint8Array(m.data));
    else p?.reject(new Error(`webgpu: ${m.error ?? 'read failed'}`));
  });
  const flush = (): void => {
    if (batch.length === 0) return;
    port.post(batch, transfers);
    batch = [];
    transfers = [];
  };
  const alive = (): void => {
    if (disposed) throw new Error('the webgpu backend was disposed: create a new one');
  };
  /** Sends `command` with the batch and blocks until the executor signals. */
  const blocking = (command: Command, what: string): void => {
    if (noBlock !== undefined || c === undefined || ctrl === undefined) {
      throw new Error(
        `webgpu: ${what} cannot wait for the GPU here (${noBlock ?? 'no shared memory'}): read with await tensor.data(), or run tapegrad in a Web Worker of a cross-origin isolated page (headers Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy: require-corp)`,
      );
    }
    Atomics.store(c, 0, 0);
    batch.push(command);
    flush();
    if (Atomics.wait(c, 0, 0, READ_TIMEOUT_MS) === 'timed-out') {
      throw new Error(
        `webgpu: the device did not answer a ${String(command[0])} in ${READ_TIMEOUT_MS / 1000} s (its thread died, or the GPU hung): dispose this backend and create a new one`,
      );
    }
    if (Atomics.load(c, 0) !== 1) {
      throw new Error(`webgpu: ${new TextDecoder().decode(new Uint8Array(ctrl, 8, Atomics.load(c, 1)).slice())}`);
    }
  };
  return {
    adapter,
    send(command, transfer) {
      alive();
      batch.push(command);
      if (transfer !== undefined) transfers.push(transfer);
      // Big enough batches go out while the caller is still planning the next kernels.
      if (batch.length >= 64) flush();
    },
    readSync(id, bytes) {
      alive();
      // Checked before the SharedArrayBuffer is made: a page without COOP/COEP has none.
      const what = 'a synchronous read (item(), toArray(), toTypedArray(), the loss in fit)';
      if (noBlock !== undefined) blocking(['sync'], what);
      const out = new SharedArrayBuffer(Math.max(4, bytes));
      blocking(['read', id, bytes, out], what);
      return new Uint8Array(out, 0, bytes).slice();
    },
    readAsync(id, bytes) {
      alive();
      const t = ++token;
      const promise = new Promise<Uint8Array>((resolve, reject) => pending.set(t, { resolve, reject }));
      // Held while a read is outstanding, so Node waits for it.
      port.ref();
      batch.push(['readAsync', id, bytes, t]);
      flush();
      return promise;
    },
    finish() {
      alive();
      blocking(['sync'], 'finish()');
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      batch = [];
      port.terminate();
    },
  };
};

/**
 * In a browser: starts the executor in a Web Worker on `navigator.gpu` and resolves once it has
 * an adapter and a device (rejects with one line when there is none). Sync reads work where this
 * thread may block and share memory with the worker (a Web Worker of a cross-origin isolated
 * page); elsewhere (a page's main thread, a page without COOP/COEP) they are refused with one line
 * naming `await tensor.data()`, which works everywhere.
 */
export const startBrowserExecutor = async (options: WebgpuOptions = {}, timeoutMs = 60_000): Promise<Executor> => {
  const g = globalThis as unknown as {
    Worker?: new (
      url: string,
    ) => {
      postMessage(m: unknown, t?: ArrayBuffer[]): void;
      onmessage: ((e: { data: Reply }) => void) | null;
      onerror: ((e: { message: string }) => void) | null;
      terminate(): void;
    };
    crossOriginIsolated?: boolean;
    document?: unknown;
  };
  if (g.Worker === undefined) throw new Error('the webgpu backend cannot start: this thread cannot start a Web Worker (the executor runs in one)');
  const shared = typeof SharedArrayBuffer === 'function' && g.crossOriginIsolated === true;
  const ctrl = shared ? new SharedArrayBuffer(8 + 16384) : undefined;
  const url = URL.createObjectURL(new Blob([BROWSER_EXECUTOR_SOURCE], { type: 'text/javascript' }));
  const worker = new g.Worker(url);
  const adapterOptions = {
    ...(options.featureLevel === undefined ? {} : { featureLevel: options.featureLevel }),
    ...(options.powerPreference === undefined ? {} : { powerPreference: options.powerPreference }),
  };
  const first = await new Promise<Reply>((resolve) => {
    const timer = setTimeout(() => resolve({ token: 0, error: `no adapter after ${timeoutMs} ms` }), timeoutMs);
    worker.onmessage = (e) => {
      clearTimeout(timer);
      resolve(e.data);
    };
    worker.onerror = (e) => {
      clearTimeout(timer);
      resolve({ token: 0, error: e.message });
    };
    worker.postMessage({ ctrl, announce: true, adapterOptions });
  });
  if (first.ready === undefined) {
    worker.terminate();
    URL.revokeObjectURL(url);
    const why =
      first.error === 'requestAdapter returned null' ? 'navigator.gpu.requestAdapter() returned null' : `navigator.gpu: ${first.error ?? 'no answer'}`;
    throw new Error(
      `the webgpu backend found no WebGPU adapter in this browser (${why}): WebGPU may be off or blocklisted for this GPU (see chrome://gpu; Chromium without a GPU gives its SwiftShader adapter with --enable-unsafe-webgpu); use the gpujs or cpu backend`,
    );
  }
  let handler: ((m: Reply) => void) | undefined;
  worker.onmessage = (e) => handler?.(e.data);
  worker.onerror = null;
  const port: Port = {
    post: (m, transfers) => worker.postMessage(m, transfers),
    onMessage: (h) => {
      handler = h;
    },
    ref: () => {},
    unref: () => {},
    terminate: () => {
      worker.terminate();
      URL.revokeObjectURL(url);
    },
  };
  const noBlock = !shared
    ? 'the page is not cross-origin isolated, so there is no shared memory to wait on'
    : g.document !== undefined
      ? "this is a page's main thread, which may not block"
      : undefined;
  const info = JSON.parse(first.ready) as Omit<AdapterReport, 'attempt' | 'setSurfaceless'>;
  return clientExecutor(port, ctrl, { ...info, attempt: 'navigator.gpu', setSurfaceless: false }, noBlock);
};
