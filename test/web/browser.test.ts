/**
 * The demo page in a real browser (Debian's Chromium, headless, software
 * WebGL): it trains one epoch on a CIFAR-100 slice with the cpu backend (two
 * threads: Web Workers over shared memory) and with gpujs (the page's WebGL 2),
 * and its losses equal Node's run of the same program within float32
 * tolerance; the screenshot shows the plot drawn. Needs the build (dist), as
 * `npm test` does first, and `apt-get install chromium` (.ci/run does): without
 * it the suite skips with one line, except under CI=true, where it fails.
 */
import { mkdirSync, openSync, readSync, closeSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDemo, type DemoConfig, type DemoResult } from '../../examples/web/train.js';
// @ts-expect-error: a plain JavaScript script without declarations
import { startDemoServer } from '../../scripts/demo-server.mjs';
import { CIFAR_DIR } from '../data/location.js';
import { chromiumPath, launch, type Page } from './chromium.js';
import { requireSystem } from '../system.js';

const root = resolve(import.meta.dirname, '../..');
const cfg: Omit<DemoConfig, 'backend'> = {
  hidden: [64],
  activation: 'relu',
  epochs: 1,
  batchSize: 100,
  lr: 0.01,
  momentum: 0.9,
  train: 500,
  val: 100,
  test: 200,
  seed: 0,
};
const firstRecords = (file: string, n: number): Uint8Array => {
  const buf = new Uint8Array(n * 3074);
  const fd = openSync(join(CIFAR_DIR, file), 'r');
  try {
    readSync(fd, buf, 0, buf.length, 0);
  } finally {
    closeSync(fd);
  }
  return buf;
};

const exe = chromiumPath();
const ok = requireSystem({
  suite: 'browser tests (test/web/browser.test.ts)',
  found: exe !== undefined,
  missing: "Chromium not found: apt-get install chromium (Debian's package), or set CHROMIUM to a browser's path",
});
let server: { url: string; close(): Promise<void> };
let browser: { page: Page; close(): Promise<void> };
beforeAll(async () => {
  if (!ok || exe === undefined) return;
  server = await startDemoServer({ port: 0, dataDir: CIFAR_DIR });
  browser = await launch(exe);
  await browser.page.navigate(server.url);
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
});

const inBrowser = (backend: string) =>
  browser.page.evaluate<DemoResult>(
    `tapegradDemo.run(${JSON.stringify({ ...cfg, backend })}).then((r) => ({ backend: r.backend, losses: r.losses, testAccuracy: r.testAccuracy, confusion: r.confusion }))`,
  );

describe.skipIf(!ok)('the demo page in headless Chromium', () => {
  let node: DemoResult;
  beforeAll(() => {
    node = runDemo(firstRecords('train.bin', cfg.train + cfg.val), firstRecords('test.bin', cfg.test), { ...cfg, backend: 'cpu' });
  });

  it('is cross-origin isolated, so the cpu backend can share its memory with a worker', async () => {
    expect(await browser.page.evaluate('[document.body.dataset.state, crossOriginIsolated]')).toEqual(['ready', true]);
  });

  it("on the page's own thread the cpu backend runs one thread and says why; gpujs names what it lacks", async () => {
    const [cpu, gpujs] = await browser.page.evaluate<[string, string]>('[tapegradDemo.describeOnPage("cpu"), tapegradDemo.describeOnPage("gpujs")]');
    expect(cpu).toMatch(/^cpu: WebAssembly SIMD GEMM .*1 thread: on the page's main thread, which may not block/);
    // The page has not loaded gpu.js (the worker does), and Chrome's own `GPU` (WebGPU) is not mistaken for it.
    expect(gpujs).toMatch(/^error: the gpujs backend needs gpu\.js: load .*gpu-browser\.min\.js/);
  });

  for (const backend of ['cpu', 'gpujs'] as const) {
    it(`trains one epoch with ${backend} and its losses equal Node's`, async () => {
      const web = await inBrowser(backend);
      expect(web.backend).toMatch(backend === 'cpu' ? /^cpu: WebAssembly SIMD GEMM .*2 threads \(Web Worker\)$/ : /^gpujs: gpu\.js webgl2 on /);
      expect(web.losses).toHaveLength(5);
      expect(node.losses[0]).toBeGreaterThan(2.5); // an untrained 20-class net: near ln 20 ≈ 3, well above 0
      for (let i = 0; i < 5; i++) expect(Math.abs(web.losses[i]! - node.losses[i]!)).toBeLessThan(1e-5 * node.losses[i]!);
      // Evaluated through the same kernels as Node's cpu run: the same predictions.
      if (backend === 'cpu') expect(web.confusion).toEqual(node.confusion);
      expect(Math.abs(web.testAccuracy - node.testAccuracy)).toBeLessThanOrEqual(backend === 'cpu' ? 0 : 2 / cfg.test);
    });
  }

  it('draws the plots: the loss line in the canvas, and a screenshot', async () => {
    // Pixels of vega's first series colour (#4c78a8) in the loss plot's canvas.
    const line = await browser.page.evaluate<number>(`(() => {
      const c = document.querySelector('#lossPlot canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - 76) < 12 && Math.abs(d[i + 1] - 120) < 12 && Math.abs(d[i + 2] - 168) < 12) n++;
      return n;
    })()`);
    expect(line).toBeGreaterThan(200);
    expect(await browser.page.evaluate('document.querySelectorAll("#confusion canvas").length')).toBe(1);
    expect(await browser.page.evaluate('document.getElementById("testLine").textContent')).toMatch(/^test accuracy \d+\.\d% on 200 images/);
    const png = await browser.page.screenshot();
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    // The whole page (IHDR's width and height): the form, both plots and the confusion matrix below them.
    // (The width is the 1200-pixel window's, less the scroll bar's.)
    const height = await browser.page.evaluate<number>('document.documentElement.scrollHeight');
    expect(png.readUInt32BE(20)).toBe(height);
    expect(height).toBeGreaterThan(1200);
    expect(png.readUInt32BE(16)).toBeGreaterThan(1100);
    mkdirSync(join(root, '.tmp'), { recursive: true });
    writeFileSync(join(root, '.tmp', 'demo-screenshot.png'), png);
  });
});
