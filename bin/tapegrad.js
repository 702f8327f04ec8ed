#!/usr/bin/env node
// The `tapegrad` command. A command line may tune its own process, which the
// library never does: on Node 20 WebAssembly's relaxed SIMD (the cpu backend's
// FMA kernels) is behind a V8 flag, set here before any module is compiled.
// Engines that ship relaxed SIMD ignore it; without it the cpu backend runs its
// plain-SIMD kernels and says so in its start-up line.
import { setFlagsFromString } from 'node:v8';

// The command's own packages are optional peers of the library (an install of
// the library alone skips them): name the missing ones and the fix, once.
const cliPackages = ['commander', 'cli-progress', 'yaml', 'vega', 'vega-lite', '@resvg/resvg-js'];
const missing = cliPackages.filter((name) => {
  try {
    import.meta.resolve(name);
    return false;
  } catch {
    return true;
  }
});
if (missing.length > 0) {
  console.error(`tapegrad: the command needs ${missing.join(', ')}, which installing the library alone leaves out: npm install ${missing.join(' ')}`);
  process.exit(2);
}

setFlagsFromString('--experimental-wasm-relaxed-simd');
await import('../dist/cli/main.js');
