// The test processes, like the tapegrad command (bin/tapegrad.js), enable
// WebAssembly relaxed SIMD on Node 20 so that the cpu backend runs the same FMA
// kernels as the command line; the library itself never sets V8 flags.
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--experimental-wasm-relaxed-simd');
