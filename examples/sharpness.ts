// How sharp is the loss where training goes? The top Hessian eigenvalue of the headline
// network's loss after every epoch, by power iteration on Hessian-vector products (hvp),
// beside the training loss; written as a picture to docs/transforms/sharpness.{svg,png}.
import * as E from 'fp-ts/lib/Either.js';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import {
  add,
  div,
  ensureCifar100,
  fit,
  hvp,
  Key,
  leaves,
  loadCifar100,
  mapTree,
  mlp,
  mul,
  softmaxCrossEntropy,
  sqrt,
  sum,
  tidy,
  type MlpParams,
  type Tensor,
} from 'tapegrad';

const epochs = Number(process.env.EPOCHS ?? 20),
  probeSize = 2000,
  iterations = 20;
const dir = await ensureCifar100();
if (E.isLeft(dir)) throw dir.left;
const data = loadCifar100({ dir: dir.right, labels: 'coarse', normalization: 'per-image', seed: 0 });
if (E.isLeft(data)) throw data.left;
const { train, val } = data.right;

// The loss whose curvature we measure: mean cross-entropy on a fixed batch of training images.
const probe = Array.from({ length: probeSize }, (_, i) => i);
const x = train.gather(probe);
const labels = Array.from(probe, (i) => train.y[i]!);
const model = mlp([3072, 128, 20], { activation: 'relu', init: 'he-uniform' });
const loss = (p: MlpParams): Tensor => softmaxCrossEntropy(model.layer.apply(p, x), labels);

const dot = (a: MlpParams, b: MlpParams): Tensor =>
  leaves(a)
    .map((t, i) => sum(mul(t, leaves(b)[i]!)))
    .reduce((s, t) => add(s, t));
const normalized = (v: MlpParams): MlpParams => {
  const n = sqrt(dot(v, v));
  return mapTree(v, (t) => div(t, n));
};

/** Power iteration: v ← H v / ‖H v‖; λ = ⟨v, H v⟩ converges to the eigenvalue of largest magnitude. */
const topEigenvalue = (params: MlpParams): number => {
  let v = normalized(mapTree(params, (t, i) => new Key(7).fold(`leaf ${i}`).normal(t.shape, t.dtype, 0, 1, t.backend)));
  let lambda = 0;
  for (let k = 0; k < iterations; k++) {
    const next = tidy(() => {
      const hv = hvp(loss)(params, v);
      return { lambda: dot(v, hv).item(), v: normalized(hv) };
    });
    lambda = next.lambda;
    v = next.v;
  }
  return lambda;
};

const rows: { epoch: number; series: string; value: number }[] = [];
const run = fit(
  model,
  model.layer.init(new Key(0)),
  { train, val },
  {
    epochs,
    batchSize: 128,
    seed: 0,
    shuffle: true,
    optimizer: { kind: 'momentum', lr: 0.01, momentum: 0.9 },
    onEvent: (e) => {
      if (e.type !== 'epoch') return;
      const lambda = topEigenvalue(e.state.params);
      rows.push(
        { epoch: e.record.epoch, series: 'top Hessian eigenvalue', value: lambda },
        { epoch: e.record.epoch, series: 'training loss', value: e.record.trainLoss },
      );
      console.log(
        `epoch ${e.record.epoch}: training loss ${e.record.trainLoss.toFixed(4)}, validation accuracy ${(100 * e.record.valAccuracy).toFixed(2)}%, top Hessian eigenvalue ${lambda.toFixed(3)}`,
      );
    },
  },
);
if (E.isLeft(run)) throw run.left;

const spec: TopLevelSpec = {
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  title: 'Sharpness over training: 3072→128→20 ReLU on CIFAR-100 coarse',
  background: 'white',
  width: 520,
  height: 180,
  data: { values: rows },
  mark: { type: 'line', point: true },
  encoding: {
    x: { field: 'epoch', type: 'quantitative', title: 'Epoch' },
    y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
    row: { field: 'series', type: 'nominal', title: null },
  },
  resolve: { scale: { y: 'independent' } },
  config: { font: 'DejaVu Sans' },
};
// Vega-Lite to SVG with Vega's headless view, SVG to PNG with resvg.
const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
const svg = await view.toSVG();
const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
mkdirSync('docs/transforms', { recursive: true });
for (const [ext, body] of [
  ['svg', svg],
  ['png', png],
] as const) {
  writeFileSync(`docs/transforms/sharpness.${ext}.tmp`, body);
  renameSync(`docs/transforms/sharpness.${ext}.tmp`, `docs/transforms/sharpness.${ext}`);
}
console.log('wrote docs/transforms/sharpness.svg and .png');
