// The cpu backend's worker thread: the same WebAssembly module instantiated on
// the same shared memory, taking part in the chunked calls the main thread
// posts (cpu-protocol.mjs declares the message). Started by cpu.ts through
// platform.ts, as a worker_threads Worker under Node and a Web Worker in
// browsers; scripts/build-wasm.mjs bundles it into one source string, so it
// imports no Node built-in (bundlers for the browser would have to resolve it).
import { CHAIN_IMPORTS, DONE, FAILED, READY, readJob, SEQ, SGEMM_SIGNATURE } from './cpu-protocol.mjs';

const run = ({ module, memory, ctrl, native }, bye) => {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  // The native BLAS's band of a product (job 'sgemm'): the library bound here on first use, as the main thread
  // bound it (koffi's module and the library's file, from `native`), called on views of the shared memory.
  let sgemm;
  const band = (ta, tb, m, n, k, a, lda, b, ldb, c, ldc) => {
    if (sgemm === undefined) {
      const req = globalThis.process.getBuiltinModule('node:module').createRequire(native.koffi);
      sgemm = req(native.koffi).load(native.file).func(SGEMM_SIGNATURE);
    }
    const view = (at) => new Float32Array(memory.buffer, at);
    sgemm(101, ta ? 112 : 111, tb ? 112 : 111, m, n, k, 1, view(a), lda, view(b), ldb, 0, view(c), ldc);
  };
  // jit's fused chains, compiled from their bytes in the shared memory on first sight (job 'fused').
  const chains = new Map();
  const chain = (id, bytes, length) => {
    let exports = chains.get(id);
    if (exports === undefined) {
      const code = new Uint8Array(memory.buffer, bytes, length).slice();
      exports = new WebAssembly.Instance(new WebAssembly.Module(code), { env: { memory }, js: CHAIN_IMPORTS }).exports;
      chains.set(id, exports);
    }
    return exports;
  };
  const ints = new Int32Array(ctrl),
    floats = new Float32Array(ctrl);
  let seen = 0;
  Atomics.store(ints, READY, 1);
  for (;;) {
    // Spin a few milliseconds before sleeping: a training step calls again within
    // that time, and waking from Atomics.wait costs 50-120 µs each call.
    let spins = 0;
    while (Atomics.load(ints, SEQ) === seen) {
      if (++spins > 4000000) {
        Atomics.wait(ints, SEQ, seen);
        spins = 0;
      }
    }
    seen = Atomics.load(ints, SEQ);
    if (seen < 0) break;
    const { kernel, args } = readJob(ints, floats);
    try {
      if (kernel === 'chunks') chain(args[0], args[1], args[2]).chunks(...args.slice(3));
      else if (kernel === 'sgemm') band(...args);
      else instance.exports[kernel](...args);
    } catch {
      // Said to the main thread (which redoes the work or reports it), never a silent hang.
      Atomics.store(ints, FAILED, 1);
    }
    Atomics.store(ints, DONE, seen);
    Atomics.notify(ints, DONE);
  }
  bye();
};

const proc = globalThis.process;
if (typeof proc?.getBuiltinModule === 'function') {
  const { parentPort, workerData } = proc.getBuiltinModule('node:worker_threads');
  run(workerData, () => parentPort.postMessage('bye'));
} else {
  self.onmessage = (e) => run(e.data, () => self.postMessage('bye'));
}
