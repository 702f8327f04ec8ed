#!/usr/bin/env node
// The `tapegrad` command. A command line may tune its own process, which the
// library never does: on Node 20 WebAssembly's relaxed SIMD (the cpu backend's
// FMA kernels) is behind a V8 flag, set here before any module is compiled.
// Engines that ship relaxed SIMD ignore it; without it the cpu backend runs its
// plain-SIMD kernels and says so in its start-up line.
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--experimental-wasm-relaxed-simd');
await import('../dist/cli/main.js');
