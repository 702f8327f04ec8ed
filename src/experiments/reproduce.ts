/**
 * `tapegrad reproduce`: every table and figure of the report into one Markdown
 * page, ours beside the report's numbers; then "Beyond the report", the recipe
 * configs (single runs) beside the report's best rows for the same labels.
 */
import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { fsMessage } from './runfolder.js';
import { describeErrors } from '../nn/codecs.js';
import { ConfigError, readYamlFile } from './config.js';
import { join, relative } from 'node:path';
import { backendSelection } from '../core/index.js';
import { ensureCifar100, readCifar100, cifarSet, sliceRows } from '../data/index.js';
import { presets, readText, unsealJson, writeFileAtomic } from '../nn/index.js';
import { readRawConfig, type RawConfig } from './config.js';
import { paperGradientCheck } from './gradcheck-table.js';
import { paperTable1 } from './stats.js';
import { runInFolder, runSweep, type SweepResult } from './sweep.js';
import { beyondMarkdown, readPaperRows, readRecipes, withOverrides, type OurTableBest, type Recipe, type RecipeOutcome } from './beyond.js';
import { DivergedError, type RunResult } from './run.js';
import { lockFolder, type RunLock } from './runfolder.js';
import type { ProgressEvent, RunPool } from './parallel.js';
import type { RunOptions } from './run.js';

/**
 * The sections, in order: the report's Tables 1–8 (Figures 1–12 come with
 * Tables 3–8), then `beyond`: the recipes beside the report's best rows.
 */
export const SECTIONS = ['table1', 'table2', 'table3', 'table4', 'table5', 'table6', 'table7', 'table8', 'beyond'] as const;
export type Section = (typeof SECTIONS)[number];
/** The report's sections that are sweeps of a table config (tableN.yaml). */
const TABLE_SWEEPS = ['table3', 'table4', 'table5', 'table6', 'table7', 'table8'] as const;

const ReproduceFileC = t.exact(
  t.intersection([
    t.type({ sections: t.array(t.keyof(Object.fromEntries(SECTIONS.map((k) => [k, null])) as Record<Section, null>)) }),
    t.partial({ recipes: t.array(t.string) }),
  ]),
);

/** A reproduce config: the sections to run and, for `beyond`, the recipe config files (names in the configs folder). */
export interface ReproduceFile {
  readonly sections: Section[];
  readonly recipes?: string[];
}

/** Reads a reproduce config (`sections: [table1, …]`, `recipes: [mlp-recipe.yaml, …]`), rejecting unknown keys and sections by name. */
export const readReproduceFile = (file: string): E.Either<ConfigError, ReproduceFile> => {
  const read = readYamlFile(file, 'reproduce config');
  if (E.isLeft(read)) return read;
  const value = read.right;
  const d = ReproduceFileC.decode(value);
  if (E.isLeft(d)) return E.left(new ConfigError(`${file}: ${describeErrors(d.left)} (sections are ${SECTIONS.join(', ')}; recipes a list of config files)`));
  const extra = Object.keys(value as object).filter((k) => k !== 'sections' && k !== 'recipes');
  if (extra.length > 0) return E.left(new ConfigError(`${file}: unknown key '${extra[0]}'`));
  return E.right(d.right);
};

/** Reads a reproduce config's sections (see readReproduceFile). */
export const readSections = (file: string): E.Either<ConfigError, Section[]> => E.map((f: ReproduceFile) => f.sections)(readReproduceFile(file));

/** Which of the report's figures each table's best run draws. */
const FIGURES: Partial<Record<Section, string>> = {
  table3: 'Figures 1–2',
  table4: 'Figures 3–4',
  table5: 'Figures 5–6',
  table6: 'Figures 7–8',
  table7: 'Figures 9–10',
  table8: 'Figures 11–12',
};

/** The report's Table 2, for the page (its published figures). */
const PAPER_TABLE2 = [
  ['Output bias', 0.05000545, 0.05000554],
  ['Output bias', -0.050007452, -0.05000774],
  ['Hidden bias', -0.001354726, -0.001354793],
  ['Hidden to output', 0.001833257, 0.001833293],
  ['Hidden to output', -0.001040988, -0.001041008],
  ['Input to hidden', -0.000608575, -0.000608623],
  ['Input to hidden', -0.000534352, -0.000534341],
] as const;

export interface ReproduceOptions extends RunOptions {
  readonly only?: readonly Section[];
  readonly configDir?: string;
  /**
   * The `beyond` section's recipe configs, file names in `configDir`; default:
   * the `recipes:` list of `configDir`/reproduce.yaml.
   */
  readonly recipes?: readonly string[];
  /** Overrides for quick runs: applied to every sweep config. */
  readonly overrides?: { readonly epochs?: number; readonly limitTrain?: number; readonly limitTest?: number };
  readonly onSection?: (s: Section) => void;
  /** Progress of one run of a section's sweep. */
  readonly onRunEvent?: (section: Section, i: number, total: number, values: readonly unknown[], e: ProgressEvent) => void;
  /** Runs side by side on this pool (see parallel.ts); without one, one after another. */
  readonly pool?: RunPool;
  /** The sections' sweep configs, already read (a queued report's, from its queue.json). */
  readonly configs?: ReadonlyMap<Section, RawConfig>;
  /** The report of a queue's finished sweeps: read back, nothing trained; `since` is when it was enqueued. */
  readonly fromQueue?: { readonly since: string };
}

/** The file a report folder run through a queue holds: its sections and the sweep configs they were enqueued with. */
export const REPORT_QUEUE_FILE = 'queue.json';
export const REPORT_QUEUE_FORMAT = 'tapegrad.queued-report';

const num = (x: number, d = 9) => x.toFixed(d);

/** Runs the chosen sections and writes `report.md` into `outDir`. */
export const reproduce = async (outDir: string, opts: ReproduceOptions = {}): Promise<E.Either<Error, { report: string; sweeps: SweepResult[] }>> => {
  const held: RunLock[] = [];
  try {
    return await reproduceUnguarded(outDir, opts, held);
  } catch (e) {
    return E.left(new Error((e as NodeJS.ErrnoException).code !== undefined ? fsMessage(e, outDir) : (e as Error).message.split('\n')[0]!));
  } finally {
    for (const l of held) l.release();
  }
};

const reproduceUnguarded = async (
  outDir: string,
  opts: ReproduceOptions,
  held: RunLock[],
): Promise<E.Either<Error, { report: string; sweeps: SweepResult[] }>> => {
  const t0 = performance.now();
  if (existsSync(outDir) && !statSync(outDir).isDirectory()) return E.left(new Error(`${outDir} is a file, not a folder: choose another --out`));
  if (existsSync(join(outDir, 'report.md'))) return E.left(new Error(`${outDir} holds a finished report, which is never overwritten: choose another --out`));
  // Only a report's own folder is continued: someone else's files are never mixed with (or overwritten by) a report.
  const foreign = existsSync(outDir)
    ? readdirSync(outDir).filter((f) => !(SECTIONS as readonly string[]).includes(f) && !f.startsWith('.') && f !== REPORT_QUEUE_FILE && !f.endsWith('.lock'))
    : [];
  if (foreign.length > 0)
    return E.left(
      new Error(
        `${outDir} is not empty and is not a tapegrad report folder (it holds ${foreign.slice(0, 3).join(', ')}): choose a new or empty folder for --out`,
      ),
    );
  mkdirSync(outDir, { recursive: true });
  const sections = opts.only ?? SECTIONS;
  const dataDir = await ensureCifar100(opts.dataDir);
  if (E.isLeft(dataDir)) return dataDir;
  const train = readCifar100(dataDir.right, 'train');
  if (E.isLeft(train)) return train;
  const parts: string[] = [];
  const sweeps: SweepResult[] = [];
  const summary: string[] = [];
  const dataCache = opts.dataCache ?? new Map();

  // Every sweep's config first, so a bad one fails before hours of training.
  const configDir = opts.configDir ?? join('examples', 'configs');
  let configs: ReadonlyMap<Section, RawConfig>;
  if (opts.configs !== undefined) configs = opts.configs;
  else {
    const read = readSectionConfigs(sections, opts);
    if (E.isLeft(read)) return read;
    configs = read.right;
  }
  // The recipes too, and the report's rows they are shown beside.
  let recipes: Recipe[] = [];
  const beyondDir = join(outDir, 'beyond');
  if (sections.includes('beyond')) {
    const listFile = join(configDir, 'reproduce.yaml');
    let files = opts.recipes;
    if (files === undefined) {
      const listed = readReproduceFile(listFile);
      if (E.isLeft(listed)) return E.left(new ConfigError(`the beyond section reads its recipes from ${listed.left.message}`));
      files = listed.right.recipes ?? [];
    }
    const read = readRecipes(configDir, files, opts.overrides ?? {}, opts.recipes === undefined ? listFile : 'the recipes given');
    if (E.isLeft(read)) return read;
    recipes = read.right;
    mkdirSync(beyondDir, { recursive: true });
    const lock = lockFolder(beyondDir, 'beyond.lock');
    if (E.isLeft(lock)) return lock;
    held.push(lock.right);
  }
  const paperRows = sections.includes('beyond') ? readPaperRows(configDir, TABLE_SWEEPS) : E.right([]);
  if (E.isLeft(paperRows)) return paperRows;
  // Read back rather than run: every recipe had finished in an earlier invocation.
  const beyondReused = recipes.length > 0 && recipes.every((r) => existsSync(join(beyondDir, r.folder, 'result.json')));
  const runRecipe = (i: number): Promise<E.Either<Error, RunResult>> => {
    const r = recipes[i]!;
    const onProgress = (e: ProgressEvent) => opts.onRunEvent?.('beyond', i, recipes.length, [r.config.name], e);
    return runInFolder(join(beyondDir, r.folder), r.config, { ...opts, dataCache, onProgress }, 'the reproduce');
  };
  // Run again into the same folder after an interruption, finished sections are read back.
  const startSweep = (section: Section, cfg: RawConfig) =>
    runSweep(cfg, {
      ...opts,
      dataCache,
      outDir: join(outDir, section),
      reuseFinished: true,
      ...(opts.fromQueue !== undefined ? { collectOnly: true } : {}),
      onRunEvent: (i, n, values, e) => opts.onRunEvent?.(section, i, n, values, e),
    });
  // With a pool, every section's runs join one queue now, so no core idles at the
  // end of a section while its last run finishes; the report is still written in order.
  const started = new Map<Section, ReturnType<typeof startSweep>>();
  if (opts.pool !== undefined) for (const [section, cfg] of configs) started.set(section, startSweep(section, cfg));
  const recipesStarted = opts.pool !== undefined && recipes.length > 0 ? Promise.all(recipes.map((_, i) => runRecipe(i))) : undefined;

  for (const section of sections) {
    opts.onSection?.(section);
    if (section === 'table1') {
      const t1 = paperTable1(train.right, 0);
      parts.push(
        `## Table 1: mean and standard deviation of one normalized image\n\nTraining image ${t1.image}, each channel z-scored on its own (population std).\n\n` +
          `| Channel | Mean (ours) | Std (ours) | Mean (paper) | Std (paper) |\n|---|---|---|---|---|\n` +
          t1.rows.map((r) => `| ${r.channel} | ${r.mean.toExponential(2)} | ${r.std.toFixed(6)} | 0.0 | 1.0 |`).join('\n'),
      );
      continue;
    }
    if (section === 'table2') {
      const batch = sliceRows(
        cifarSet(
          train.right,
          Int32Array.from({ length: 128 }, (_, i) => i),
          'coarse',
          'per-image',
        ),
        0,
        128,
      );
      const rows = paperGradientCheck(batch.x, batch.y, { seed: 1 });
      const worst = Math.max(...rows.map((r) => r.absDiff));
      parts.push(
        `## Table 2: numerical vs back-propagated gradients (ε = 0.01)\n\n3072→128→20 tanh network, the report's initializer, the first 128 training images, float64.\n\n` +
          `| Weight type | Weight | Numerical | Backprop | Absolute difference |\n|---|---|---|---|---|\n` +
          rows.map((r) => `| ${r.weightType} | ${r.where} | ${num(r.numerical)} | ${num(r.backprop)} | ${r.absDiff.toExponential(2)} |`).join('\n') +
          `\n\nLargest difference ${worst.toExponential(2)} ${worst < 1e-4 ? '<' : '≥'} ε² = 1e-4.\n\nThe report's Table 2:\n\n| Weight type | Numerical | Backprop |\n|---|---|---|\n` +
          PAPER_TABLE2.map(([w, n, b]) => `| ${w} | ${num(n)} | ${num(b)} |`).join('\n'),
      );
      summary.push(`| Table 2 | largest difference ${worst.toExponential(2)} | all < 1e-4 | ${worst < 1e-4 ? 'yes' : 'no'} |`);
      continue;
    }
    if (section === 'beyond') {
      let results: E.Either<Error, RunResult>[];
      if (recipesStarted !== undefined) {
        results = await recipesStarted;
      } else {
        results = [];
        for (let i = 0; i < recipes.length; i++) {
          const r = await runRecipe(i);
          results.push(r);
          if ((E.isLeft(r) && !(r.left instanceof DivergedError)) || (E.isRight(r) && r.right.interrupted)) break;
        }
      }
      const failed = results.find((r) => E.isLeft(r) && !(r.left instanceof DivergedError));
      if (opts.signal?.aborted === true || results.length < recipes.length || results.some((r) => E.isRight(r) && r.right.interrupted)) {
        return E.left(new Error(`interrupted during beyond; finished runs are kept in ${beyondDir}`));
      }
      if (failed !== undefined && E.isLeft(failed)) return failed;
      const outcomes: RecipeOutcome[] = recipes.map((recipe, i) => ({ recipe, dir: join(beyondDir, recipe.folder), result: results[i]! }));
      const ours: OurTableBest[] = sweeps.flatMap((sw) => {
        const labels = sw.bestRun?.config.data.labels ?? 'coarse';
        return sw.best === undefined ? [] : [{ title: sw.title, headers: sw.headers, labels, row: sw.best, ...(sw.bestRun ? { run: sw.bestRun } : {}) }];
      });
      const b = beyondMarkdown(outcomes, paperRows.right, ours, (f) => relative(outDir, f), existsSync);
      summary.push(...b.summary);
      parts.push(
        "## Beyond the report: recipes\n\nConfigs that go past the report's MLPs and training (listed under `recipes:` in the configs' reproduce.yaml), " +
          "each one run with the same machinery as the tables, beside the report's best rows for the same labels (its published numbers, from the table configs)" +
          `${ours.length > 0 ? ' and the best rows of the tables this report ran' : ''}.\n\n${b.markdown}`,
      );
      continue;
    }
    const cfg = configs.get(section);
    if (cfg === undefined) continue;
    const sw = await (started.get(section) ?? startSweep(section, cfg));
    if (E.isLeft(sw)) return sw;
    sweeps.push(sw.right);
    if (sw.right.interrupted) return E.left(new Error(`interrupted during ${section}; finished runs are kept in ${sw.right.dir}`));
    const rel = (f: string) => relative(outDir, join(sw.right.dir, f));
    const best = sw.right.best;
    if (best === undefined) {
      summary.push(`| ${sw.right.title} | every run diverged | — | no |`);
      parts.push(
        `## ${sw.right.title}\n\n${cfg.description ?? ''}\n\n${sw.right.markdown}\n\nEvery run of this table diverged, so it has no best row and no figures.`,
      );
      continue;
    }
    const paperBest = Math.max(...(cfg.sweep?.paper ?? []).map((p) => p.valAccuracy));
    const ours = best.valAccuracy * 100;
    const within = Number.isFinite(paperBest) ? Math.abs(ours - paperBest) <= 2 : undefined;
    summary.push(
      `| ${sw.right.title} | ${ours.toFixed(2)}% (${best.values.join(', ')}) | ${Number.isFinite(paperBest) ? `${paperBest.toFixed(2)}%` : '—'} | ${within === undefined ? '—' : within ? 'yes' : 'no'} |`,
    );
    parts.push(
      `## ${sw.right.title}\n\n${cfg.description ?? ''}\n\n${sw.right.markdown}\n\n` +
        `Best row: ${best.values.join(', ')} — validation ${(best.valAccuracy * 100).toFixed(2)}%, test ${(best.testAccuracy * 100).toFixed(2)}%` +
        `${best.paper?.testAccuracy !== undefined ? ` (paper: test ${best.paper.testAccuracy.toFixed(2)}%)` : ''}.\n\n` +
        `${FIGURES[section] ?? 'Figures'} (ours): training and validation accuracy and loss of the best row.\n\n` +
        `![accuracy](${rel('best-accuracy.png')})\n\n![loss](${rel('best-loss.png')})`,
    );
  }

  const sel = backendSelection();
  const reused = [...sweeps.filter((s) => s.reused).map((s) => s.title.split(':')[0]), ...(beyondReused ? ['the recipes'] : [])];
  const p = presets.paper;
  const report = [
    '# Multiclass classification on CIFAR-100 with back-propagation: the report reproduced with tapegrad',
    '',
    (opts.fromQueue !== undefined
      ? `Generated ${new Date().toISOString()} by \`tapegrad worker\` processes from a queue, ${((Date.now() - Date.parse(opts.fromQueue.since)) / 60000).toFixed(1)} minutes after \`tapegrad reproduce --queue\` enqueued it; backend ${sel.backend.name} here.`
      : `Generated ${new Date().toISOString()} by \`tapegrad reproduce\` in ${((performance.now() - t0) / 60000).toFixed(1)} minutes, `) +
      (opts.fromQueue !== undefined
        ? ''
        : opts.pool !== undefined
          ? `${opts.pool.jobs} runs side by side on one core each, backend ${sel.backend.name} (${sel.reason}).`
          : `on ${sel.backend.description} (${sel.reason}).`) +
      (reused.length > 0 && opts.fromQueue === undefined
        ? ` This invocation continued an earlier, interrupted one into the same folder: ${reused.join(', ')} were read back from it, not run again.`
        : '') +
      (opts.overrides && Object.keys(opts.overrides).length > 0
        ? ` **Quick run with overrides ${JSON.stringify(opts.overrides)}: not comparable with the report.**`
        : ''),
    '',
    sections.every((s) => s === 'beyond')
      ? // Only the recipes ran: the report's conventions are not theirs.
        "Conventions: each recipe's own config (its data, model, optimizer and schedule, listed under `recipes:` in reproduce.yaml); " +
        "the report's tables, and the `paper` preset they follow (the conventions section of tapegrad's README), are not part of this page."
      : "Conventions: the `paper` preset (the conventions section of tapegrad's README) — per-image, per-channel z-scoring; the report's initializer " +
        `(uniform [0, 0.01), NumPy seed 42 per layer, bias row included); batch ${p.batchSize} in a fixed order; mean cross-entropy; ` +
        'L2 added to the gradient only (λ·W, biases too); momentum v ← γv + αg; up to 100 epochs; early stopping when the validation loss ' +
        'exceeds each of the previous 5. One deliberate difference: the report restores a window epoch by faulty index arithmetic; ' +
        'we restore the epoch with the lowest validation loss.',
    '',
    '## Summary: best validation accuracy per table',
    '',
    '| Table | Ours | Paper | Within 2 points |',
    '|---|---|---|---|',
    ...summary,
    '',
    ...parts.flatMap((x) => [x, '']),
  ].join('\n');
  writeFileAtomic(join(outDir, 'report.md'), report);
  return E.right({ report, sweeps });
};

/** The sweep configs of the report's sections (table3 on), with the quick-run overrides applied. */
export const readSectionConfigs = (sections: readonly Section[], opts: ReproduceOptions): E.Either<Error, Map<Section, RawConfig>> => {
  const configs = new Map<Section, RawConfig>();
  for (const section of sections) {
    if (section === 'table1' || section === 'table2' || section === 'beyond') continue;
    const raw = readRawConfig(join(opts.configDir ?? join('examples', 'configs'), `${section}.yaml`));
    if (E.isLeft(raw)) return raw;
    configs.set(section, withOverrides(raw.right, opts.overrides ?? {}));
  }
  return E.right(configs);
};

/** What a queued report folder's queue.json holds. */
interface QueuedReport {
  readonly sections: Section[];
  readonly overrides: NonNullable<ReproduceOptions['overrides']>;
  readonly configs: Partial<Record<Section, RawConfig>>;
  readonly since: string;
}

export const readQueuedReport = (outDir: string): E.Either<Error, QueuedReport> => {
  const file = join(outDir, REPORT_QUEUE_FILE);
  const v = E.chain((text: string) => unsealJson(file, text))(readText(file));
  if (E.isLeft(v)) return v;
  if (v.right['format'] !== REPORT_QUEUE_FORMAT) return E.left(new Error(`${file}: not a tapegrad queued report`));
  return E.right(v.right as unknown as QueuedReport);
};

/**
 * Writes a queued report's report.md once every section's table is written,
 * from the tables and runs on disk alone (nothing trains); under report.lock,
 * so of two finishers one writes and the other finds it written.
 */
export const finishQueuedReport = async (outDir: string, dataDir?: string): Promise<E.Either<Error, void>> => {
  const q = readQueuedReport(outDir);
  if (E.isLeft(q)) return q;
  const swept = q.right.sections.filter((s) => s !== 'table1' && s !== 'table2');
  if (swept.some((s) => !existsSync(join(outDir, s, 'table.md')))) return E.right(undefined);
  const lock = lockFolder(outDir, 'report.lock');
  if (E.isLeft(lock)) return E.right(undefined);
  try {
    if (existsSync(join(outDir, 'report.md'))) return E.right(undefined);
    const configs = new Map(Object.entries(q.right.configs) as [Section, RawConfig][]);
    const r = await reproduce(outDir, {
      only: q.right.sections,
      configs,
      overrides: q.right.overrides,
      fromQueue: { since: q.right.since },
      ...(dataDir !== undefined ? { dataDir } : {}),
    });
    return E.isLeft(r) ? r : E.right(undefined);
  } finally {
    lock.right.release();
  }
};
