// Assembles the GEMM kernels (WebAssembly text → binary) with wabt, from npm:
// no prebuilt binaries, and copies the cpu backend's worker (plain JavaScript
// modules that tsc does not emit) into dist. Run by `npm run build:wasm` (and so
// by `npm ci` via prepare).
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';
import { gemmWat } from '../src/core/backends/wasm/gemm.wat.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const wabt = await wabtInit();
const outDirs = [join(root, 'src/core/backends/wasm'), join(root, 'dist/core/backends/wasm')];
const variants = [
  ['gemm-simd.wasm', false, true], ['gemm-relaxed.wasm', true, true],
  // Over a private memory, for the element-wise kernels (see gemmWat).
  ['local-simd.wasm', false, false], ['local-relaxed.wasm', true, false],
];
for (const [name, relaxed, shared] of variants) {
  const features = { simd: true, threads: true, relaxed_simd: relaxed, bulk_memory: true };
  const mod = wabt.parseWat(name, gemmWat(relaxed, shared), features);
  mod.validate(features);
  const { buffer } = mod.toBinary({});
  for (const dir of outDirs) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, name), buffer);
  }
  mod.destroy();
  console.log(`built ${name} (${buffer.length} bytes)`);
}

const backends = join(root, 'src/core/backends'), distBackends = join(root, 'dist/core/backends');
mkdirSync(distBackends, { recursive: true });
for (const name of ['cpu-worker.mjs', 'cpu-protocol.mjs', 'cpu-protocol.d.mts']) copyFileSync(join(backends, name), join(distBackends, name));
