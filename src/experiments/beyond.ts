/**
 * The reproduce page's "Beyond the report" section: recipe configs (single runs,
 * chosen once and not tuned) beside the report's best rows for the same labels,
 * with their curves and wall time. The runs themselves go through the same
 * machinery as the tables' (sweep.ts `runInFolder`: run folders, checkpoints,
 * resume, finished runs read back); this file reads the recipes, the report's
 * rows and writes the Markdown.
 */
import * as E from 'fp-ts/lib/Either.js';
import { existsSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import type { LabelKind } from '../data/index.js';
import { architectureParamCount, type LayerSpec, type ModelArchitecture } from '../nn/index.js';
import { ConfigError, decodeConfig, expandGrid, readRawConfig, setPath, sweepKeys, type RawConfig, type ResolvedConfig } from './config.js';
import type { DivergedError, RunResult } from './run.js';
import { sanitizeName } from './runfolder.js';
import type { SweepRow } from './sweep.js';

/** One recipe: its file, the config it runs (with any quick-run overrides) and its folder's name. */
export interface Recipe {
  readonly file: string;
  readonly folder: string;
  readonly config: ResolvedConfig;
}

/** Quick-run overrides, as reproduce applies them to every config. */
export interface Overrides {
  readonly epochs?: number;
  readonly limitTrain?: number;
  readonly limitTest?: number;
}

/** A config with reproduce's quick-run overrides applied. */
export const withOverrides = (raw: RawConfig, o: Overrides): RawConfig => {
  let cfg = raw;
  if (o.epochs !== undefined) cfg = setPath(cfg, 'training.epochs', o.epochs) as RawConfig;
  if (o.limitTrain !== undefined) cfg = setPath(cfg, 'data.limitTrain', o.limitTrain) as RawConfig;
  if (o.limitTest !== undefined) cfg = setPath(cfg, 'data.limitTest', o.limitTest) as RawConfig;
  return cfg;
};

/**
 * Reads the recipes named in `files` (in `configDir`), each a single run: a
 * missing file, a config with a `sweep:` section or two recipes with one folder
 * name is a one-line `ConfigError`. `listedIn` says where the list came from.
 */
export const readRecipes = (configDir: string, files: readonly string[], overrides: Overrides, listedIn: string): E.Either<ConfigError, Recipe[]> => {
  if (files.length === 0) return E.left(new ConfigError(`the beyond section has no recipes: list config files under 'recipes:' in ${listedIn}`));
  const out: Recipe[] = [];
  for (const f of files) {
    const file = join(configDir, f);
    if (!existsSync(file))
      return E.left(new ConfigError(`${file}: no such recipe config (listed under 'recipes:' in ${listedIn}): add the file, or remove it from the list`));
    const raw = readRawConfig(file);
    if (E.isLeft(raw)) return raw;
    if (raw.right.sweep !== undefined)
      return E.left(new ConfigError(`${file}: a recipe is one run, but this config has a 'sweep:' section: list it as a table instead, or remove the sweep`));
    const d = decodeConfig(withOverrides(raw.right, overrides), file);
    if (E.isLeft(d)) return d;
    const folder = sanitizeName(basename(f, extname(f)));
    if (out.some((r) => r.folder === folder))
      return E.left(new ConfigError(`${listedIn}: recipe '${f}' is listed twice (or shares its name with another): each recipe needs its own name`));
    out.push({ file: f, folder, config: d.right });
  }
  return E.right(out);
};

const layerText = (l: LayerSpec): string => {
  switch (l.type) {
    case 'dense':
      return `dense ${l.units}`;
    case 'conv2d':
      return `conv ${l.filters}@${l.kernel}×${l.kernel}${l.stride !== undefined && l.stride !== 1 ? `/${l.stride}` : ''}`;
    case 'maxPool2d':
    case 'avgPool2d':
      return `${l.type === 'maxPool2d' ? 'max' : 'avg'}Pool ${l.size}`;
    case 'dropout':
      return `dropout ${l.rate}`;
    case 'residual':
      return `residual(${l.layers.map(layerText).join(' → ')})`;
    default:
      return l.type;
  }
};

/** A config's model in one line: the layers (or the MLP's widths) and the parameter count. */
export const modelSummary = (c: ResolvedConfig): string => {
  const classes = c.data.labels === 'fine' ? 100 : 20;
  const input = [...(c.model.input ?? [3072])];
  const arch: ModelArchitecture =
    c.model.layers !== undefined
      ? { kind: 'sequential', input, layers: [...c.model.layers] }
      : { kind: 'mlp', sizes: [3072, ...c.model.hidden, classes], activation: c.model.activation, init: c.model.init };
  const n = architectureParamCount(arch);
  const shape =
    c.model.layers !== undefined
      ? `${input.join('×')} → ${c.model.layers.map(layerText).join(' → ')}`
      : `MLP ${[3072, ...c.model.hidden, classes].join('→')} ${c.model.activation}`;
  return `${shape} (${E.isRight(n) ? n.right.toLocaleString('en') : '?'} parameters)`;
};

/** One of the report's rows, as its table config holds it, with the model it describes. */
export interface PaperRow {
  readonly table: string;
  readonly labels: LabelKind;
  /** The row's varied values, named by the table's columns. */
  readonly setting: string;
  readonly model: string;
  readonly valAccuracy: number;
  readonly testAccuracy?: number;
  readonly earlyStop?: number | string;
}

/**
 * The report's rows of Tables 3–8, from the table configs in `configDir`
 * (their `sweep.paper` values, the ones the tables' pages print). A table config
 * that is absent is skipped; one that cannot be read is an error.
 */
export const readPaperRows = (configDir: string, tables: readonly string[]): E.Either<ConfigError, PaperRow[]> => {
  const rows: PaperRow[] = [];
  for (const t of tables) {
    const file = join(configDir, `${t}.yaml`);
    if (!existsSync(file)) continue;
    const raw = readRawConfig(file);
    if (E.isLeft(raw)) return raw;
    const sweep = raw.right.sweep;
    if (sweep === undefined) continue;
    const keys = sweepKeys(sweep);
    let combos: ReturnType<typeof expandGrid>;
    try {
      combos = expandGrid(raw.right);
    } catch (e) {
      return E.left(new ConfigError(`${file}: ${(e as Error).message}`));
    }
    for (const p of sweep.paper ?? []) {
      const combo = combos.find((c) => c.values.length === p.values.length && c.values.every((v, j) => String(v) === String(p.values[j])));
      const cfg = combo === undefined ? undefined : decodeConfig(combo.config, file);
      if (cfg !== undefined && E.isLeft(cfg)) return cfg;
      rows.push({
        table: (sweep.title ?? raw.right.name).split(':')[0]!,
        labels: raw.right.data?.labels ?? 'coarse',
        setting: keys.map((k, j) => `${sweep.columns?.[k] ?? k} ${String(p.values[j])}`).join(', '),
        model: cfg === undefined ? '—' : modelSummary(cfg.right),
        valAccuracy: p.valAccuracy,
        ...(p.testAccuracy !== undefined ? { testAccuracy: p.testAccuracy } : {}),
        ...(p.earlyStop !== undefined ? { earlyStop: p.earlyStop } : {}),
      });
    }
  }
  return E.right(rows);
};

/** The report's best row for a label set by validation accuracy, and the best of the rows it gave a test accuracy for. */
export const paperBest = (rows: readonly PaperRow[], labels: LabelKind): { best?: PaperRow; tested?: PaperRow } => {
  const byVal = (xs: readonly PaperRow[]) => xs.reduce<PaperRow | undefined>((b, r) => (b === undefined || r.valAccuracy > b.valAccuracy ? r : b), undefined);
  const mine = rows.filter((r) => r.labels === labels);
  const best = byVal(mine),
    tested = byVal(mine.filter((r) => r.testAccuracy !== undefined));
  return { ...(best ? { best } : {}), ...(tested ? { tested } : {}) };
};

/** A recipe's outcome: a finished run, a diverged one, or (never on the page) another failure. */
export interface RecipeOutcome {
  readonly recipe: Recipe;
  readonly dir: string;
  readonly result: E.Either<Error, RunResult>;
}

/** Our best row of a table run in this report, for the comparison. */
export interface OurTableBest {
  readonly title: string;
  readonly headers: readonly string[];
  readonly labels: LabelKind;
  readonly row: SweepRow;
  readonly run?: RunResult;
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const secs = (s: number) => `${s.toFixed(1)} s`;

/**
 * The section's Markdown: one table of the recipes beside the report's best rows
 * (and ours, for tables run in this report) per label set, then each recipe's
 * curves. `rel` turns a path into the page's link; `exists` says whether a
 * picture was written (runs with plots off have none).
 */
export const beyondMarkdown = (
  outcomes: readonly RecipeOutcome[],
  paper: readonly PaperRow[],
  ours: readonly OurTableBest[],
  rel: (path: string) => string,
  exists: (path: string) => boolean,
): { markdown: string; summary: string[] } => {
  const lines: string[] = [];
  const summary: string[] = [];
  const header = '| Run | Labels | Model | Epochs run | Validation accuracy | Test accuracy | Wall time | Sum of epoch times |';
  const labelSets = [...new Set(outcomes.map((o) => o.recipe.config.data.labels))];
  for (const labels of labelSets) {
    const { best, tested } = paperBest(paper, labels);
    lines.push(`### ${labels === 'fine' ? '100 fine' : '20 coarse'} classes`, '', header, '|---|---|---|---|---|---|---|---|');
    for (const o of outcomes.filter((x) => x.recipe.config.data.labels === labels)) {
      const c = o.recipe.config;
      const name = `recipe **${c.name}** (\`${o.recipe.file}\`)`;
      if (E.isLeft(o.result)) {
        const d = o.result.left as DivergedError;
        lines.push(`| ${name} | ${labels} | ${modelSummary(c)} | ${d.epoch - 1} | diverged at epoch ${d.epoch} | — | — | — |`);
        summary.push(
          `| Beyond: ${c.name} (${labels}) | diverged at epoch ${d.epoch} | ${best ? `${best.valAccuracy.toFixed(2)}% (the report's best ${labels} row)` : '—'} | — |`,
        );
        continue;
      }
      const r = o.result.right;
      const epochSeconds = r.history.reduce((s, h) => s + h.seconds, 0);
      const early = r.stoppedAt !== undefined ? ` (early stop at ${r.stoppedAt}, weights of epoch ${r.returnedEpoch})` : '';
      lines.push(
        `| ${name} | ${labels} | ${modelSummary(c)} | ${r.history.length}${early} | ${pct(r.valAccuracy)} | ${pct(r.testAccuracy)} | ${secs(r.seconds)} | ${secs(epochSeconds)} |`,
      );
      summary.push(
        `| Beyond: ${c.name} (${labels}) | ${pct(r.valAccuracy)} | ${best ? `${best.valAccuracy.toFixed(2)}% (the report's best ${labels} row)` : '—'} | — |`,
      );
    }
    const paperLine = (what: string, p: PaperRow) =>
      `| the report, ${what}: ${p.table} (${p.setting}) | ${labels} | ${p.model} | ${p.earlyStop === undefined || p.earlyStop === '-' ? 'early stop did not trigger' : `early stop epoch ${p.earlyStop}`} | ` +
      `${p.valAccuracy.toFixed(2)}% | ${p.testAccuracy !== undefined ? `${p.testAccuracy.toFixed(2)}%` : 'not given'} | — | — |`;
    if (best) lines.push(paperLine('best validation row', best));
    if (tested && tested !== best) lines.push(paperLine('best row it gave a test accuracy for', tested));
    const ourBest = ours
      .filter((x) => x.labels === labels)
      .reduce<OurTableBest | undefined>((b, x) => (b === undefined || x.row.valAccuracy > b.row.valAccuracy ? x : b), undefined);
    if (ourBest) {
      const r = ourBest.row;
      lines.push(
        `| ours, best table row of this report: ${ourBest.title.split(':')[0]} (${r.values.map((v, j) => `${ourBest.headers[j] ?? ''} ${String(v)}`.trim()).join(', ')}) | ${labels} | ${ourBest.run ? modelSummary(ourBest.run.config) : '—'} | ${r.epochsRun} | ` +
          `${pct(r.valAccuracy)} | ${pct(r.testAccuracy)} | ${ourBest.run ? secs(ourBest.run.seconds) : '—'} | ${ourBest.run ? secs(ourBest.run.history.reduce((s, h) => s + h.seconds, 0)) : '—'} |`,
      );
    }
    lines.push('');
  }
  lines.push(
    'Validation accuracy is of the weights training returned (the best epoch when early stopping is on); each recipe was fixed before it ran and runs once, ' +
      'with the seed in its config: nothing here was chosen on the test set. Wall time is what the run recorded in its result.json (for a run continued after an interruption, ' +
      'its last session); the sum of epoch times spans every session.',
    '',
  );
  for (const o of outcomes) {
    if (E.isLeft(o.result)) continue;
    const acc = join(o.dir, 'accuracy.png'),
      loss = join(o.dir, 'loss.png');
    if (!exists(acc)) continue;
    lines.push(
      `Curves of **${o.recipe.config.name}**: training and validation accuracy and loss per epoch.`,
      '',
      `![${o.recipe.config.name} accuracy](${rel(acc)})`,
      '',
      `![${o.recipe.config.name} loss](${rel(loss)})`,
      '',
    );
  }
  return { markdown: lines.join('\n').trimEnd(), summary };
};
