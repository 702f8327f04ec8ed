// The demo page: reads the form, fetches or reads the CIFAR-100 files, runs
// training in a Web Worker (worker.ts) and draws what it reports: loss and
// accuracy per epoch (vega-lite), a progress bar with an ETA, the test
// accuracy and the confusion matrix of the 20 coarse classes.
// `window.tapegradDemo.run(config)` runs the same from a script (the browser test).
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { backend, fromArray, matmul, startWebgpu } from 'tapegrad';
import type { DemoConfig, DemoEvent, DemoResult } from './train.js';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const num = (id: string): number => Number($<HTMLInputElement>(id).value);

const COARSE = [
  'aquatic mammals',
  'fish',
  'flowers',
  'food containers',
  'fruit and vegetables',
  'household electrical devices',
  'household furniture',
  'insects',
  'large carnivores',
  'large man-made outdoor things',
  'large natural outdoor scenes',
  'large omnivores and herbivores',
  'medium-sized mammals',
  'non-insect invertebrates',
  'people',
  'reptiles',
  'small mammals',
  'trees',
  'vehicles 1',
  'vehicles 2',
];

const draw = async (id: string, spec: TopLevelSpec): Promise<void> => {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'canvas', container: $(id), hover: false });
  await view.runAsync();
};

const lineSpec = (title: string, values: object[], y: string): TopLevelSpec => ({
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  title,
  width: 420,
  height: 240,
  data: { values },
  mark: { type: 'line', point: true },
  encoding: {
    x: { field: 'step', type: 'quantitative', title: 'epoch' },
    y: { field: y, type: 'quantitative', title: y, scale: { zero: false } },
    color: { field: 'series', type: 'nominal', title: null },
  },
});

/** Bytes of a split: the user's file, else the first `records` images from the demo server. */
const bytesOf = async (input: HTMLInputElement | undefined, split: 'train' | 'test', records: number): Promise<Uint8Array> => {
  const file = input?.files?.[0];
  if (file !== undefined) return new Uint8Array(await file.slice(0, records * 3074).arrayBuffer());
  const res = await fetch(`/data/${split}.bin?records=${records}`);
  if (!res.ok) throw new Error(`${split}.bin: ${res.status} ${await res.text()}`);
  return new Uint8Array(await res.arrayBuffer());
};

const run = async (cfg: DemoConfig, files: { train?: HTMLInputElement; test?: HTMLInputElement } = {}): Promise<DemoResult & { events: DemoEvent[] }> => {
  document.body.dataset['state'] = 'running';
  $('error').textContent = '';
  $('testLine').textContent = '';
  const [train, test] = await Promise.all([bytesOf(files.train, 'train', cfg.train + cfg.val), bytesOf(files.test, 'test', cfg.test)]);
  const worker = new Worker('/worker.js');
  const events: DemoEvent[] = [];
  const curves: Array<{ step: number; series: string; loss?: number; accuracy?: number }> = [];
  const started = performance.now();
  let total = 1;
  try {
    const result = await new Promise<DemoResult>((resolve, reject) => {
      worker.onerror = (e) => reject(new Error(e.message));
      worker.onmessage = (e: MessageEvent<DemoEvent | { type: 'done'; result: DemoResult } | { type: 'error'; message: string }>) => {
        const m = e.data;
        if (m.type === 'done') return resolve(m.result);
        if (m.type === 'error') return reject(new Error(m.message));
        events.push(m);
        if (m.type === 'start') {
          total = m.batches * m.epochs;
          $('backendLine').textContent = `backend: ${m.backend}`;
        } else if (m.type === 'batch') {
          const done = (m.epoch - 1) * m.batches + m.batch;
          const elapsed = (performance.now() - started) / 1000;
          $<HTMLProgressElement>('progress').value = done / total;
          $('status').textContent =
            `epoch ${m.epoch}, batch ${m.batch}/${m.batches}: loss ${m.loss.toFixed(4)}; ETA ${Math.round((elapsed / done) * (total - done))} s`;
          // Within the first epoch, the batch losses (the epoch axis in fractions).
          curves.push({ step: m.epoch - 1 + m.batch / m.batches, series: 'train (batch)', loss: m.loss, accuracy: m.accuracy });
          if (m.batch % 4 === 0 || m.batch === m.batches)
            void draw(
              'lossPlot',
              lineSpec(
                'loss',
                curves.filter((c) => c.loss !== undefined),
                'loss',
              ),
            );
        } else if (m.type === 'epoch') {
          curves.push({ step: m.epoch, series: 'validation', loss: m.valLoss, accuracy: m.valAccuracy });
          void draw('lossPlot', lineSpec('loss', curves, 'loss'));
          void draw('accPlot', lineSpec('accuracy', curves, 'accuracy'));
        }
      };
      worker.postMessage({ cfg, train, test, gpujsUrl: new URL('/vendor/gpu-browser.min.js', location.href).href }, [train.buffer, test.buffer]);
    });
    $('testLine').textContent = `test accuracy ${(result.testAccuracy * 100).toFixed(1)}% on ${cfg.test} images (chance: 5%)`;
    const cells = result.confusion.flatMap((row, t) => row.map((count, p) => ({ truth: COARSE[t], predicted: COARSE[p], count })));
    await draw('confusion', {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'confusion matrix (test set, coarse classes)',
      width: 440,
      height: 440,
      data: { values: cells },
      mark: 'rect',
      encoding: {
        x: { field: 'predicted', type: 'nominal', sort: COARSE },
        y: { field: 'truth', type: 'nominal', sort: COARSE },
        color: { field: 'count', type: 'quantitative' },
      },
    });
    await Promise.all([draw('lossPlot', lineSpec('loss', curves, 'loss')), draw('accPlot', lineSpec('accuracy', curves, 'accuracy'))]);
    $('status').textContent = `done in ${((performance.now() - started) / 1000).toFixed(1)} s`;
    document.body.dataset['state'] = 'done';
    return { ...result, events };
  } catch (e) {
    $('error').textContent = String(e);
    document.body.dataset['state'] = 'error';
    throw e;
  } finally {
    worker.terminate();
  }
};

$('form').addEventListener('submit', (e) => {
  e.preventDefault();
  const hidden = $<HTMLInputElement>('hidden')
    .value.split(',')
    .map((s) => Number(s.trim()))
    .filter((n) => n > 0);
  const cfg: DemoConfig = {
    hidden,
    activation: $<HTMLSelectElement>('activation').value as DemoConfig['activation'],
    epochs: num('epochs'),
    batchSize: num('batchSize'),
    lr: num('lr'),
    momentum: num('momentum'),
    train: num('train'),
    val: num('val'),
    test: num('test'),
    seed: num('seed'),
    backend: $<HTMLSelectElement>('backend').value as DemoConfig['backend'],
  };
  void run(cfg, { train: $<HTMLInputElement>('trainFile'), test: $<HTMLInputElement>('testFile') }).catch(() => {});
});

/** A backend made on the page's own thread: its description (the tests read it), or the error's message. */
const describeOnPage = (name: string): string => {
  try {
    return backend(name).description;
  } catch (e) {
    return `error: ${(e as Error).message}`;
  }
};

/**
 * The webgpu backend started on the page's own thread: its description, a 2×2 matmul read with
 * `await data()`, and what a synchronous read says here (the main thread may not block); or the
 * error's message when there is no adapter. The tests read it.
 */
const webgpuOnPage = async (): Promise<{ description?: string; values?: number[]; syncRead?: string; error?: string }> => {
  try {
    const gpu = await startWebgpu();
    const x = fromArray([1, 2, 3, 4], [2, 2], 'float32', gpu);
    if (x._tag === 'Left') throw x.left;
    const y = matmul(x.right, x.right);
    const values = Array.from(await y.data());
    let syncRead = 'no error';
    try {
      y.toArray();
    } catch (e) {
      syncRead = (e as Error).message;
    }
    return { description: gpu.description, values, syncRead };
  } catch (e) {
    return { error: (e as Error).message };
  }
};

(window as unknown as { tapegradDemo: unknown }).tapegradDemo = { run, describeOnPage, webgpuOnPage };
document.body.dataset['state'] = 'ready';
