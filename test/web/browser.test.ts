/**
 * The demo page in a real browser (Debian's Chromium, headless, software
 * WebGL): it trains one epoch on a CIFAR-100 slice with the cpu backend (two
 * threads: Web Workers over shared memory) and with gpujs (the page's WebGL 2),
 * and its losses equal Node's run of the same program within float32
 * tolerance; the screenshot shows the plot drawn. Then WebGPU: this Chromium
 * gives no adapter by default on a machine without a GPU (the one-line error),
 * and with --enable-unsafe-webgpu it gives SwiftShader's (Vulkan on the CPU),
 * on which every kernel primitive matches the float64 reference, a small CNN's
 * 2 epochs match the reference's losses, and the demo trains as on cpu. Needs the build (dist), as
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
import type { WorkerReport } from './webgpu-worker.js';
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
  server = await startDemoServer({ port: 0, dataDir: CIFAR_DIR, workers: { '/webgpu-worker.js': join(root, 'test/web/webgpu-worker.ts') } });
  browser = await launch(exe);
  await browser.page.navigate(server.url);
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
});

const inBrowser = (backend: string, page = browser.page) =>
  page.evaluate<DemoResult>(
    `tapegradDemo.run(${JSON.stringify({ ...cfg, backend })}).then((r) => ({ backend: r.backend, losses: r.losses, testAccuracy: r.testAccuracy, confusion: r.confusion }))`,
  );

let nodeRun: DemoResult | undefined;
/** The demo's program under Node on the cpu backend (what the browser's runs are compared with), run once. */
const nodeDemo = (): DemoResult => {
  nodeRun ??= runDemo(firstRecords('train.bin', cfg.train + cfg.val), firstRecords('test.bin', cfg.test), { ...cfg, backend: 'cpu' });
  return nodeRun;
};

type OnPage = { description?: string; values?: number[]; syncRead?: string; error?: string };

describe.skipIf(!ok)('the demo page in headless Chromium', () => {
  let node: DemoResult;
  beforeAll(() => {
    node = nodeDemo();
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

  it('without a GPU this Chromium gives WebGPU no adapter by default: starting webgpu is one line, and naming it before that another', async () => {
    const r = await browser.page.evaluate<OnPage>('tapegradDemo.webgpuOnPage()');
    expect(r.error).toMatch(
      /^the webgpu backend found no WebGPU adapter in this browser \(navigator\.gpu\.requestAdapter\(\) returned null\): .*--enable-unsafe-webgpu/,
    );
    expect(r.error).not.toContain('\n');
    expect(await browser.page.evaluate<string>('tapegradDemo.describeOnPage("webgpu")')).toMatch(
      /^error: the webgpu backend starts asynchronously in a browser .*await startWebgpu\(\)/,
    );
  });

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

describe.skipIf(!ok)('the webgpu backend in headless Chromium (--enable-unsafe-webgpu: SwiftShader)', () => {
  let gpuBrowser: { page: Page; close(): Promise<void> };
  beforeAll(async () => {
    // The flag Debian's Chromium needs for an adapter without a GPU (checked: --enable-features=Vulkan,
    // --use-webgpu-adapter=swiftshader and --use-vulkan=swiftshader change nothing here; without it requestAdapter() is null).
    gpuBrowser = await launch(exe!, ['--enable-unsafe-webgpu']);
    await gpuBrowser.page.navigate(server.url);
  });
  afterAll(async () => {
    await gpuBrowser?.close();
  });

  it("on the page's main thread: an adapter, async reads, and sync reads refused with one line naming await data()", async () => {
    const r = await gpuBrowser.page.evaluate<OnPage>('tapegradDemo.webgpuOnPage()');
    expect(r.error).toBeUndefined();
    expect(r.description).toMatch(/^webgpu: navigator\.gpu on .*swiftshader.* \(software: slow\)$/);
    expect(r.values).toEqual([7, 10, 15, 22]); // [[1, 2], [3, 4]]²
    expect(r.syncRead).toMatch(
      /^webgpu: a synchronous read .* cannot wait for the GPU here \(this is a page's main thread, which may not block\): read with await tensor\.data\(\)/,
    );
    expect(r.syncRead).not.toContain('\n');
  });

  it('in a Web Worker: every kernel primitive matches the float64 reference, and a small CNN its 2 epochs', async () => {
    const report = await gpuBrowser.page.evaluate<WorkerReport & { error?: string }>(`new Promise((resolve) => {
      const w = new Worker('/webgpu-worker.js');
      w.onmessage = (e) => { w.terminate(); resolve(e.data); };
      w.onerror = (e) => resolve({ error: e.message });
      w.postMessage(null);
    })`);
    expect(report.error).toBeUndefined();
    expect(report.description).toMatch(/^webgpu: navigator\.gpu on .*swiftshader/);
    // As many cases as the Node table (test/webgpu/cases.ts): every kernel primitive at least once.
    const { cases } = await import('../webgpu/cases.js');
    expect(report.cases.length).toBe(Object.values(cases).flat().length);
    expect(new Set(report.cases.map((c) => c.prim))).toEqual(new Set(Object.keys(cases)));
    for (const c of report.cases) {
      const what = `${c.prim}: ${c.label}`;
      expect(c.backend, what).toBe('webgpu');
      expect(c.shape, what).toEqual(c.wantShape);
      if (c.exact === true) expect(c.equal, what).toBe(true);
      else expect(c.rel, what).toBeLessThan(c.tol);
    }
    const { webgpu, reference } = report.cnn;
    expect(webgpu).toHaveLength(2);
    webgpu.forEach((h, i) => {
      const w = reference[i]!;
      expect(Math.abs(h.trainLoss - w.trainLoss), `epoch ${i + 1} train loss`).toBeLessThan(1e-4 * w.trainLoss);
      expect(Math.abs(h.valLoss - w.valLoss), `epoch ${i + 1} val loss`).toBeLessThan(1e-4 * w.valLoss);
    });
    expect(webgpu[1]!.trainLoss).not.toBeCloseTo(webgpu[0]!.trainLoss, 3);
    // An index past the axis, caught on the GPU: the read fails with the host's words, and then reads NaN (−999 here) there.
    expect(report.badIndex.message).toMatch(
      /^webgpu: gather: index 3 is not an integer in -3\.\.2 \(axis 0 has length 3\), in a kernel queued before this read/,
    );
    expect(report.badIndex.values).toEqual([3, -999, 1]);
    // SwiftShader runs shaders on the CPU: about 70 s alone on the 2-core machine, more beside other test files.
  }, 300_000);

  it("the demo trains one epoch with webgpu in its worker, and its losses equal Node's", async () => {
    const node = nodeDemo();
    const web = await inBrowser('webgpu', gpuBrowser.page);
    expect(web.backend).toMatch(/^webgpu: navigator\.gpu on /);
    expect(web.losses).toHaveLength(5);
    for (let i = 0; i < 5; i++) expect(Math.abs(web.losses[i]! - node.losses[i]!)).toBeLessThan(1e-5 * node.losses[i]!);
    expect(Math.abs(web.testAccuracy - node.testAccuracy)).toBeLessThanOrEqual(2 / cfg.test);
  });
});
