/**
 * The executor that owns the WebGPU device, as JavaScript source: it runs in a
 * worker thread (Node: worker_threads, `eval`; browsers: a Web Worker from a
 * Blob, on `navigator.gpu`), so the thread that trains can
 * block on a read with `Atomics.wait` while the executor's own event loop
 * resolves `mapAsync`. That is what lets `item()` and `toArray()` stay
 * synchronous on this backend under Node: Dawn's Node binding resolves
 * `mapAsync` only from its event loop, and has no blocking poll (checked on
 * webgpu 0.6.2: a busy loop on the calling thread never sees the map complete).
 *
 * It is a dumb executor: the backend (index.ts) plans everything (WGSL source
 * with the shapes baked in, which buffers, how many workgroups) and sends
 * batches of commands; the executor keeps buffers by integer id, compiles each
 * shader once, records dispatches into one compute pass and submits when it must
 * (before a write, a free, a read, and at the end of every batch).
 *
 * Inlined as a string, like the cpu backend's worker: a bundle or a `dist/`
 * folder needs no file beside it, and vitest runs it without a TypeScript loader.
 *
 * Commands (arrays, first element the verb):
 * - ['alloc', id, bytes]        a zeroed storage buffer (reused from a pool of freed ones of that size)
 * - ['write', id, ArrayBuffer]  upload bytes into buffer id
 * - ['free', id]                back to the pool
 * - ['run', key, wgsl|null, ids[], uniforms ArrayBuffer|null, gx, gy, gz]
 *                               dispatch shader `key` (its source the first time) with storage buffers
 *                               ids bound to 0.. in order and the uniforms, if any, bound after them
 * - ['read', id, bytes, SharedArrayBuffer]   sync: copy into the shared buffer, then signal ctrl
 * - ['readAsync', id, bytes, token]          async: post { token, data } back
 * ctrl (Int32Array over a SharedArrayBuffer): [0] state 0 waiting, 1 done, 2 failed; [1] message length;
 * the message (adapter info or an error, UTF-8) follows at byte 8. A browser page that is not
 * cross-origin isolated has no SharedArrayBuffer: then there is no ctrl, only messages, and the
 * adapter (or why there is none) also comes as the message { token: 0, ready | error }.
 *
 * CORE is the executor proper; each platform's prelude defines `workerData`, `post(message,
 * transfers)`, `listen(handler)` and `openAdapter()` (resolving to { gpu, adapter, G }, G holding
 * GPUBufferUsage and GPUMapMode), then calls `main()`.
 */
const CORE = `
const ctrl = workerData.ctrl === undefined ? undefined : new Int32Array(workerData.ctrl);
const ctrlBytes = workerData.ctrl === undefined ? undefined : new Uint8Array(workerData.ctrl);
const signal = (state, text) => {
  if (ctrl === undefined) return;
  const bytes = new TextEncoder().encode(text || '');
  const n = Math.min(bytes.length, ctrlBytes.length - 8);
  ctrlBytes.set(bytes.subarray(0, n), 8);
  Atomics.store(ctrl, 1, n);
  Atomics.store(ctrl, 0, state);
  Atomics.notify(ctrl, 0);
};
// The adapter (state 1) or why there is none, at start: in ctrl, then (browsers) as a message too.
// Message last: a client woken by it may at once reset ctrl for its first read, and a later store
// here would then look like that read's answer (seen: a first read that returned zeros).
const started = (state, text) => {
  signal(state, text);
  if (workerData.announce) post(state === 1 ? { token: 0, ready: text } : { token: 0, error: text }, []);
};
let device, G, pendingError;
const buffers = new Map();
const pool = new Map();
let pooledBytes = 0;
const POOL_LIMIT = 256 * 1024 * 1024;
const pipelines = new Map();
let encoder, pass, transient = [];
const endPass = () => {
  if (pass !== undefined) { pass.end(); pass = undefined; }
};
const submit = () => {
  endPass();
  if (encoder !== undefined) { device.queue.submit([encoder.finish()]); encoder = undefined; }
  for (const b of transient) b.destroy();
  transient = [];
};
const STORAGE = () => G.GPUBufferUsage.STORAGE | G.GPUBufferUsage.COPY_SRC | G.GPUBufferUsage.COPY_DST;
const alloc = (id, bytes) => {
  const size = Math.max(4, Math.ceil(bytes / 4) * 4);
  const free = pool.get(size);
  let b;
  if (free !== undefined && free.length > 0) {
    b = free.pop();
    // Not cleared: every kernel writes each element of its output.
    pooledBytes -= size;
  } else {
    b = device.createBuffer({ size, usage: STORAGE() });
  }
  buffers.set(id, b);
};
const release = (id) => {
  const b = buffers.get(id);
  if (b === undefined) return;
  buffers.delete(id);
  if (pooledBytes + b.size > POOL_LIMIT) { submit(); b.destroy(); return; }
  let free = pool.get(b.size);
  if (free === undefined) { free = []; pool.set(b.size, free); }
  free.push(b);
  pooledBytes += b.size;
};
const bufferOf = (id) => {
  const b = buffers.get(id);
  if (b === undefined) throw new Error('webgpu executor: no buffer ' + id + ' (freed, or never allocated)');
  return b;
};
const run = (key, wgsl, ids, uniforms, gx, gy, gz) => {
  let pipe = pipelines.get(key);
  if (pipe === undefined) {
    if (wgsl === null) throw new Error('webgpu executor: shader ' + key + ' has no source');
    const module = device.createShaderModule({ code: wgsl });
    pipe = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    pipelines.set(key, pipe);
  }
  const entries = ids.map((id, binding) => ({ binding, resource: { buffer: bufferOf(id) } }));
  if (uniforms !== null) {
    const u = device.createBuffer({ size: Math.max(16, Math.ceil(uniforms.byteLength / 16) * 16), usage: G.GPUBufferUsage.UNIFORM | G.GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(u, 0, uniforms);
    transient.push(u);
    entries.push({ binding: ids.length, resource: { buffer: u } });
  }
  const group = device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries });
  if (encoder === undefined) encoder = device.createCommandEncoder();
  if (pass === undefined) pass = encoder.beginComputePass();
  pass.setPipeline(pipe);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(gx, gy, gz);
};
const OPS = ['', 'gather', 'scatterAdd'];
// The error word (buffer 0: op, the bad value's bits, the axis length, the axis), copied after the
// data in the same staging buffer: a bad index fails the read that follows its kernel.
const readBack = async (id, bytes) => {
  const src = bufferOf(id);
  const size = Math.max(4, Math.ceil(bytes / 4) * 4);
  // getMappedRange wants offsets that are multiples of 8.
  const at = Math.ceil(size / 8) * 8;
  const staging = device.createBuffer({ size: at + 16, usage: G.GPUBufferUsage.MAP_READ | G.GPUBufferUsage.COPY_DST });
  if (encoder === undefined) encoder = device.createCommandEncoder();
  endPass();
  encoder.copyBufferToBuffer(src, 0, staging, 0, size);
  encoder.copyBufferToBuffer(bufferOf(0), 0, staging, at, 16);
  submit();
  await staging.mapAsync(G.GPUMapMode.READ);
  const out = new Uint8Array(staging.getMappedRange(0, size).slice(0, bytes));
  const flag = new Uint32Array(staging.getMappedRange(at, 16).slice(0));
  staging.unmap();
  staging.destroy();
  if (flag[0] !== 0) {
    device.queue.writeBuffer(bufferOf(0), 0, new Uint32Array(4));
    const v = new Float32Array(flag.buffer, 4, 1)[0], len = flag[2];
    // The host kernels' message (kernels-nd.ts: indexAt), and where it came from.
    pendingError = pendingError || (OPS[flag[0]] + ': index ' + v + ' is not an integer in ' + -len + '..' + (len - 1) + ' (axis ' + flag[3] + ' has length ' + len + '), in a kernel queued before this read (checked on the GPU: gather gave NaN for it, scatterAdd left it out)');
  }
  return out;
};
const errorText = (e) => (e && e.message ? e.message : String(e));
const handle = async (commands) => {
  for (const c of commands) {
    try {
      switch (c[0]) {
        case 'alloc': alloc(c[1], c[2]); break;
        case 'write': submit(); device.queue.writeBuffer(bufferOf(c[1]), 0, new Uint8Array(c[2])); break;
        case 'free': submit(); release(c[1]); break;
        case 'run': run(c[1], c[2], c[3], c[4], c[5], c[6], c[7]); break;
        case 'read': {
          const data = await readBack(c[1], c[2]);
          // A device error from earlier work (a shader that did not compile, a bad binding) is reported here, where the caller waits.
          if (pendingError !== undefined) { const e = pendingError; pendingError = undefined; signal(2, e); break; }
          new Uint8Array(c[3]).set(data);
          signal(1, '');
          break;
        }
        case 'readAsync': {
          const data = await readBack(c[1], c[2]);
          const e = pendingError;
          pendingError = undefined;
          post({ token: c[3], data: e === undefined ? data.buffer : undefined, error: e }, e === undefined ? [data.buffer] : []);
          break;
        }
        case 'sync': {
          // Reads the error word (a 4-byte read), so finish() reports a bad index too.
          await readBack(0, 4);
          const e = pendingError;
          pendingError = undefined;
          signal(e === undefined ? 1 : 2, e);
          break;
        }
      }
    } catch (e) {
      pendingError = pendingError || errorText(e);
      if (c[0] === 'read' || c[0] === 'sync') { const m = pendingError; pendingError = undefined; signal(2, m); }
      if (c[0] === 'readAsync') { const m = pendingError; pendingError = undefined; post({ token: c[3], error: m }, []); }
    }
  }
  submit();
};
// Dawn's instance, held for the executor's life: with webgpu 0.6.2, once it was garbage-collected
// (a local nothing read again) the worker hung or crashed within a few hundred commands.
let instance;
const main = () => (async () => {
  const opened = await openAdapter();
  instance = opened.gpu;
  G = opened.G;
  const adapter = opened.adapter;
  if (adapter === null) throw new Error('requestAdapter returned null');
  const want = ['maxStorageBuffersPerShaderStage', 'maxComputeWorkgroupStorageSize', 'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY'];
  const requiredLimits = {};
  for (const k of want) if (adapter.limits[k] !== undefined) requiredLimits[k] = adapter.limits[k];
  device = await adapter.requestDevice({ requiredLimits });
  buffers.set(0, device.createBuffer({ size: 16, usage: STORAGE() }));
  device.addEventListener('uncapturederror', (ev) => { pendingError = pendingError || errorText(ev.error); });
  device.lost.then((info) => { pendingError = pendingError || ('the WebGPU device was lost: ' + info.message); });
  const i = adapter.info;
  started(1, JSON.stringify({
    vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description,
    isFallbackAdapter: Boolean(i.isFallbackAdapter || adapter.isFallbackAdapter),
    featureLevel: adapter.featureLevel, limits: requiredLimits,
  }));
  // Dawn is called only from this one async loop, never from inside the message callback: on webgpu 0.6.2
  // a worker that ran Dawn calls (createBuffer, mapAsync) in its 'message' handler crashed the process
  // (SIGSEGV or std::system_error) after a few hundred messages; the same calls from a loop woken by the
  // messages ran thousands of batches.
  const inbox = [];
  let wake;
  listen((commands) => {
    inbox.push(commands);
    if (wake !== undefined) { const w = wake; wake = undefined; w(); }
  });
  for (;;) {
    if (inbox.length === 0) await new Promise((r) => { wake = r; });
    await handle(inbox.shift());
  }
})().catch((e) => started(2, errorText(e)));
`;

/** Under Node: a worker_threads worker started with `eval` and Dawn's module URL. */
export const EXECUTOR_SOURCE = `
'use strict';
const { workerData, parentPort } = require('node:worker_threads');
const post = (m, transfers) => parentPort.postMessage(m, transfers);
const listen = (handler) => parentPort.on('message', handler);
const openAdapter = async () => {
  const { create, globals } = await import(workerData.moduleUrl);
  const gpu = create(workerData.dawnOptions);
  return { G: globals, gpu, adapter: await gpu.requestAdapter(workerData.adapterOptions) };
};
${CORE}
main();
`;

/** In a browser: a Web Worker whose first message is its workerData; the adapter is navigator.gpu's. */
export const BROWSER_EXECUTOR_SOURCE = `
'use strict';
let workerData;
const post = (m, transfers) => self.postMessage(m, transfers);
const listen = (handler) => { self.onmessage = (e) => handler(e.data); };
const openAdapter = async () => {
  if (self.navigator.gpu === undefined) throw new Error('this browser has no navigator.gpu (WebGPU is off, or not in this browser)');
  return { G: self, gpu: self.navigator.gpu, adapter: await self.navigator.gpu.requestAdapter(workerData.adapterOptions) };
};
self.onmessage = (e) => {
  workerData = e.data;
  self.onmessage = null;
${CORE}
  main();
};
`;
