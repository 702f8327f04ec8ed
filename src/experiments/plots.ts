/**
 * Training curves as pictures: a Vega-Lite spec, rendered to SVG by Vega's
 * headless view and to PNG by resvg. (The report's Figures 1–12.)
 */
import type { TopLevelSpec } from 'vega-lite';
import type { EpochRecord } from '../nn/index.js';

export type Metric = 'accuracy' | 'loss';

/** Training and validation curves of one run (or several, labelled) for one metric. */
export const curvesSpec = (runs: readonly { label: string; history: readonly EpochRecord[] }[], metric: Metric, title: string): TopLevelSpec => {
  const values = runs.flatMap(({ label, history }) =>
    history.flatMap((h) => [
      { epoch: h.epoch, set: runs.length > 1 ? `${label} train` : 'training', value: metric === 'accuracy' ? h.trainAccuracy * 100 : h.trainLoss },
      { epoch: h.epoch, set: runs.length > 1 ? `${label} validation` : 'validation', value: metric === 'accuracy' ? h.valAccuracy * 100 : h.valLoss },
    ]),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 520,
    height: 300,
    background: 'white',
    data: { values },
    mark: { type: 'line', point: values.length <= 60 },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'Epoch', axis: { tickMinStep: 1 } },
      y: { field: 'value', type: 'quantitative', title: metric === 'accuracy' ? 'Accuracy (%)' : 'Cross-entropy loss', scale: { zero: false } },
      color: { field: 'set', type: 'nominal', title: null },
    },
    config: { font: 'DejaVu Sans' },
  } as TopLevelSpec;
};

/**
 * Renders a Vega-Lite spec to SVG text and PNG bytes. The renderers are loaded
 * on first use: kept out of a training process, whose every full garbage
 * collection would otherwise mark their ~10 MB of code and data.
 */
export const render = async (spec: TopLevelSpec): Promise<{ svg: string; png: Buffer }> => {
  const [vega, { compile }, { Resvg }] = await Promise.all([import('vega'), import('vega-lite'), import('@resvg/resvg-js')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
  return { svg, png };
};
