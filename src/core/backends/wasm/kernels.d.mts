// Types of kernels.mjs, which scripts/build-wasm.mjs generates (not committed).
export type KernelFile = 'gemm-simd.wasm' | 'gemm-relaxed.wasm' | 'local-simd.wasm' | 'local-relaxed.wasm';
/** Each compiled kernel module, base64. */
export declare const WASM: Readonly<Record<KernelFile, string>>;
/** cpu-worker.mjs with cpu-protocol.mjs, bundled into one ES module's source. */
export declare const WORKER_SOURCE: string;
