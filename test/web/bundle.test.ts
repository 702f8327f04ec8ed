/**
 * tapegrad as a package: its main entry bundles for the browser (no Node
 * built-in to resolve), a Node bundle runs from a folder with nothing beside
 * it (the WebAssembly kernels and the worker travel inside it) and gives the
 * same losses, bit for bit, as the unbundled program; `require` works.
 * Needs the build (dist), as `npm test` does first.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const work = join(root, '.tmp', 'bundle-test');
const away = mkdtempSync(join(tmpdir(), 'tapegrad-bundle-'));
afterAll(() => rmSync(away, { recursive: true, force: true }));

// A program using the library the way the demo does: made-up CIFAR bytes, a
// small MLP, one epoch on the cpu backend (two threads: the worker is inlined).
const program = `
import { syntheticCifar } from '../../test/web/synthetic.ts';
import { runDemo } from '../../examples/web/train.ts';
const r = runDemo(syntheticCifar(600, 1), syntheticCifar(100, 2), {
  hidden: [64], activation: 'relu', epochs: 1, batchSize: 100, lr: 0.01, momentum: 0.9,
  train: 500, val: 100, test: 100, seed: 0, backend: 'cpu',
});
console.log(JSON.stringify({ losses: r.losses, testAccuracy: r.testAccuracy, backend: r.backend }));
`;
mkdirSync(work, { recursive: true });
writeFileSync(join(work, 'program.ts'), program);

const runNode = (args: string[], cwd: string) => {
  // The bundle's folder has no node_modules, so the optional koffi (native BLAS) cannot load there: both
  // programs run the cpu backend's WebAssembly GEMM, whose bits they must then share.
  const r = spawnSync('node', args, { cwd, encoding: 'utf8', env: { ...process.env, TAPEGRAD_BACKEND: '', TAPEGRAD_BLAS: 'none' } });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
};

describe('the package under bundlers', () => {
  it('the main entry bundles for the browser with no Node built-in, and without the file-system modules', async () => {
    writeFileSync(
      join(work, 'browser.ts'),
      `import { Key, matmul, valueAndGrad, parseCifar100 } from 'tapegrad';\nconsole.log(Key, matmul, valueAndGrad, parseCifar100);\n`,
    );
    const r = await build({
      entryPoints: [join(work, 'browser.ts')],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(r.metafile.inputs);
    expect(inputs.some((f) => f.endsWith('dist/core/backends/cpu.js'))).toBe(true); // the backends are in it
    expect(inputs.filter((f) => /node:|dist\/(data\/(load|download)|nn\/serialize)\.js/.test(f))).toEqual([]);
    // Only the library's own dependencies: the command line's packages and gpu.js are optional peers.
    const packages = new Set(inputs.flatMap((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f)?.[1] ?? []));
    expect([...packages].sort()).toEqual(['fp-ts', 'io-ts', 'pure-rand']);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    expect(Object.keys(pkg.dependencies).sort()).toEqual(['io-ts', 'pure-rand', 'tar']); // tar: tapegrad/node's downloader
    const imports = Object.values(r.metafile.outputs).flatMap((o) => o.imports);
    expect(imports).toEqual([]); // nothing left for the browser to resolve
  });

  it('the browser entry has everything of the Node entry but the file APIs', async () => {
    const dist = (f: string) => import(join(root, 'dist', f));
    const full = Object.keys(await dist('index.js'));
    const portable = new Set(Object.keys(await dist('portable.js')));
    const nodeOnly = new Set<string>();
    for (const f of ['nn/serialize.js', 'data/download.js', 'data/load.js']) for (const k of Object.keys(await dist(f))) nodeOnly.add(k);
    nodeOnly.add('readCifar100').add('readLabelNames');
    expect(full.filter((k) => !portable.has(k) && !nodeOnly.has(k))).toEqual([]);
    expect([...portable].filter((k) => nodeOnly.has(k))).toEqual([]);
    expect(full.length).toBeGreaterThan(200);
  });

  it('a Node bundle runs alone in another folder and trains exactly as the unbundled program', async () => {
    const out = join(away, 'program.mjs');
    await build({ entryPoints: [join(work, 'program.ts')], bundle: true, platform: 'node', format: 'esm', outfile: out, logLevel: 'silent' });
    const bundled = JSON.parse(runNode([out], away));
    const unbundled = JSON.parse(runNode(['--import', 'tsx', join(work, 'program.ts')], root));
    expect(bundled.backend).toMatch(/^cpu: .*2 threads \(worker_threads\)/);
    expect(bundled.losses).toHaveLength(5);
    // Untrained on 20 classes: the first loss is near ln 20 = 3.0, not NaN or 0.
    expect(bundled.losses[0]).toBeGreaterThan(2);
    expect(bundled.losses[0]).toBeLessThan(6);
    expect(bundled).toEqual(unbundled);
  });

  it("require('tapegrad') and require('tapegrad/node') load the ES modules (no top-level await); under Node both are the full entry", () => {
    const code = `const t = require('tapegrad'); const n = require('tapegrad/node');
      const a = t.fromArray([1, 2, 3, 4], [2, 2]).right;
      console.log(t.sum(t.matmul(a, a)).item(), typeof n.loadCifar100, typeof n.saveModel, 'loadCifar100' in t, n.matmul === t.matmul);`;
    expect(runNode(['-e', code], root).trim()).toBe('54 function function true true');
  });

  it('a tensor prints its values like numpy', () => {
    const code = `const t = require('tapegrad'); console.log(t.fromArray([1, 2.5, -3, 4], [2, 2], 'float32', 'reference').right);
      console.log(require('node:util').inspect(t.zeros([40, 50], 'float32', 'reference')).split('\\n').length);`;
    expect(runNode(['-e', code], root)).toBe('Tensor([[ 1., 2.5],\n       [-3.,  4.]], dtype=float32, shape=[2, 2], backend=reference)\n7\n');
  });
});

describe('the package files', () => {
  it('declares fp-ts, which the examples import, as a peer; ships a LICENSE matching its license', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    expect(pkg.peerDependencies?.['fp-ts']).toBeDefined();
    expect(pkg.license).toBe('MIT');
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License/);
    expect(pkg.files).toContain('LICENSE');
  });
});
