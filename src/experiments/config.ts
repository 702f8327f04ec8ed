/**
 * Experiment configs: YAML (or JSON) files decoded with io-ts. Unknown keys are
 * rejected by name (io-ts' exact types would drop them silently, hiding typos).
 * Anything left out comes from the chosen preset (`paper` or `defaults`).
 */
import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isScalar, LineCounter, parseDocument, visit } from 'yaml';
import { ActivationC, describeErrors, InitC, NonNegative, OptimizerSpecC, Positive, PositiveInt, ScheduleSpecC, SeedC, unknownKeys } from '../nn/codecs.js';
import { LayerSpecC, type LayerSpec } from '../nn/spec.js';
import { presets, type Preset } from '../nn/presets.js';
import type { ActivationName, EarlyStoppingOptions, InitName, L2Options, OptimizerSpec, ScheduleSpec } from '../nn/index.js';
import type { LabelKind, Normalization } from '../data/index.js';

const Fraction = t.refinement(t.number, (n) => n > 0 && n < 1, 'FractionBetween0And1');

const EarlyStoppingC = t.union([
  t.literal(false),
  t.exact(
    t.partial({
      patience: PositiveInt,
      rule: t.keyof({ paper: null, 'no-improvement': null }),
      restoreBest: t.keyof({ always: null, 'when-stopped': null }),
    }),
  ),
]);

/** One published row of a table, for the report: the varied values and the report's figures. */
const PaperRowC = t.exact(
  t.intersection([
    t.type({ values: t.array(t.union([t.number, t.string])), valAccuracy: t.number }),
    t.partial({ earlyStop: t.union([t.number, t.string]), testAccuracy: t.number }),
  ]),
);

const ValueC = t.union([t.number, t.string, t.boolean]);
const SweepExtrasC = t.partial({
  table: t.string,
  title: t.string,
  /** Column headings for the varied keys, e.g. `training.optimizer.lr: α`. */
  columns: t.record(t.string, t.string),
  /** The report's rows, matched to ours by the varied values. */
  paper: t.array(PaperRowC),
});
/** A grid (every combination) or explicit points, over dotted config paths. */
const SweepC = t.union([
  t.exact(t.intersection([t.type({ grid: t.record(t.string, t.array(ValueC)) }), SweepExtrasC])),
  t.exact(t.intersection([t.type({ keys: t.array(t.string), points: t.array(t.array(ValueC)) }), SweepExtrasC])),
]);

/**
 * A run's name: it titles plots and reports and names the run folder, so a
 * control character (which breaks the SVG plot written after training, and
 * terminals) is refused here, before anything trains.
 */
const NameC = t.refinement(t.string, (s) => !CONTROL.test(s), 'NameWithoutControlCharacters');
// C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is its purpose
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

export const ConfigC = t.exact(
  t.intersection([
    t.type({ name: NameC }),
    t.partial({
      description: t.string,
      preset: t.keyof({ paper: null, defaults: null }),
      seed: SeedC,
      backend: t.keyof({ auto: null, cpu: null, gpujs: null, reference: null, webgpu: null }),
      data: t.exact(
        t.partial({
          labels: t.keyof({ coarse: null, fine: null }),
          normalization: t.keyof({ 'per-image': null, 'per-dataset': null, unit: null }),
          trainFraction: Fraction,
          stratify: t.boolean,
          limitTrain: PositiveInt,
          limitTest: PositiveInt,
          /** Random crops (pixels of zero padding) and horizontal flips of training images (default none). */
          augment: t.exact(t.partial({ crop: t.refinement(t.number, (n) => Number.isInteger(n) && n >= 0 && n < 32, 'CropPixels'), flip: t.boolean })),
        }),
      ),
      model: t.exact(
        t.partial({
          hidden: t.union([PositiveInt, t.array(PositiveInt)]),
          activation: ActivationC,
          init: InitC,
          /** Any sequential architecture instead of the MLP (see src/nn/spec.ts); `input` is one example's shape. */
          layers: t.array(LayerSpecC),
          input: t.array(PositiveInt),
        }),
      ),
      training: t.exact(
        t.partial({
          epochs: PositiveInt,
          batchSize: PositiveInt,
          optimizer: OptimizerSpecC,
          /** Learning rate per step (default constant: the report's). */
          schedule: ScheduleSpecC,
          /** Clip gradients to this global L2 norm (default none). */
          clipNorm: Positive,
          /** Run the steps as a jitted program where the model allows (default true): the same numbers either way. */
          jit: t.boolean,
          l2: t.exact(t.partial({ lambda: NonNegative, mode: t.keyof({ loss: null, gradient: null }), includeBias: t.boolean })),
          shuffle: t.boolean,
          earlyStopping: EarlyStoppingC,
        }),
      ),
      /** The report's figures for this single run, printed beside ours. */
      paper: t.exact(t.partial({ valAccuracy: t.number, testAccuracy: t.number, earlyStop: t.union([t.number, t.string]) })),
      /** For `sweep`: a grid over dotted config paths, and how the table shows it. */
      sweep: SweepC,
    }),
  ]),
);

export type RawConfig = t.TypeOf<typeof ConfigC>;

/** A config with every default filled in: what a run actually uses (and saves). */
export interface ResolvedConfig {
  readonly name: string;
  readonly description: string;
  readonly preset: 'paper' | 'defaults';
  readonly seed: number;
  readonly backend: 'auto' | 'cpu' | 'gpujs' | 'reference' | 'webgpu';
  readonly data: {
    readonly labels: LabelKind;
    readonly normalization: Normalization;
    readonly trainFraction: number;
    readonly stratify: boolean;
    readonly limitTrain?: number;
    readonly limitTest?: number;
    /** Present only when set (older configs resolve as before). */
    readonly augment?: { readonly crop?: number; readonly flip?: boolean };
  };
  /** The MLP (hidden, activation, init), or with `layers` any sequential architecture (then hidden and activation are unused). */
  readonly model: {
    readonly hidden: readonly number[];
    readonly activation: ActivationName;
    readonly init: InitName;
    readonly layers?: readonly LayerSpec[];
    readonly input?: readonly number[];
  };
  readonly training: {
    readonly epochs: number;
    readonly batchSize: number;
    readonly optimizer: OptimizerSpec;
    readonly l2: L2Options;
    readonly shuffle: boolean;
    readonly earlyStopping: EarlyStoppingOptions | false;
    /** Present only when set, so configs without them resolve (and are saved) exactly as before. */
    readonly schedule?: ScheduleSpec;
    readonly clipNorm?: number;
    readonly jit?: boolean;
  };
  readonly sweep?: RawConfig['sweep'];
  readonly paper?: RawConfig['paper'];
}

/** A config problem: the file, and one line per problem naming the key. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * The largest config file read (1 MiB: the shipped ones are under 2 KiB) and
 * the most keys and array entries a config may hold (10,000), both checked
 * before the file is parsed or decoded, so a huge or hostile config is one
 * line, not minutes of work or an out-of-memory crash.
 */
export const MAX_CONFIG_BYTES = 2 ** 20;
export const MAX_CONFIG_ENTRIES = 10_000;

/** Whether `value` holds more than `limit` object keys and array entries in all (stops counting there). */
const tooManyEntries = (value: unknown, limit: number): boolean => {
  let n = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    const children = Array.isArray(v) ? v : Object.values(v as Record<string, unknown>);
    n += children.length;
    if (n > limit) return true;
    for (const c of children) stack.push(c);
  }
  return false;
};

/** At most this many names in one message; the rest are counted. */
const listed = (names: readonly string[], max = 5): string =>
  `${names
    .slice(0, max)
    .map((k) => `'${k}'`)
    .join(', ')}${names.length > max ? ` and ${names.length - max} more` : ''}`;

/** Decodes a parsed config object; `Left` names each bad or unknown key. */
export const decodeConfig = (value: unknown, source = 'config'): E.Either<ConfigError, ResolvedConfig> => {
  if (value === null || value === undefined)
    return E.left(new ConfigError(`${source}: the config is empty: it needs at least 'name: …' (see examples/configs/)`));
  if (tooManyEntries(value, MAX_CONFIG_ENTRIES)) {
    return E.left(
      new ConfigError(
        `${source}: the config holds more than ${MAX_CONFIG_ENTRIES} keys and list entries, far more than any config needs: check that this is a tapegrad config (see examples/configs/)`,
      ),
    );
  }
  const decoded = ConfigC.decode(value);
  if (E.isLeft(decoded)) return E.left(new ConfigError(`${source}: invalid config: ${oneLine(describeErrors(decoded.left))}`));
  const extra = unknownKeys(value, decoded.right).filter((k) => !/^sweep\.(grid|keys|points)\b/.test(k));
  if (extra.length > 0) {
    return E.left(
      new ConfigError(`${source}: unknown key${extra.length > 1 ? 's' : ''} ${listed(extra)} (check the spelling; see examples/configs/ for every key)`),
    );
  }
  return E.right(resolve(decoded.right));
};

/** A decoder's report kept to one readable line: control characters shown as escapes, at most 1,000 characters. */
const oneLine = (s: string): string => {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping control characters is its purpose
  const escaped = s.replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return escaped.length > 1000 ? `${escaped.slice(0, 1000)}… (${escaped.length - 1000} more characters)` : escaped;
};

/** Fills the preset's defaults in. */
export const resolve = (c: RawConfig): ResolvedConfig => {
  const preset = c.preset ?? 'paper';
  const p: Preset = presets[preset];
  const es = c.training?.earlyStopping;
  return {
    name: c.name,
    description: c.description ?? '',
    preset,
    seed: c.seed ?? 0,
    backend: c.backend ?? 'auto',
    data: {
      labels: c.data?.labels ?? 'coarse',
      normalization: c.data?.normalization ?? p.normalization,
      trainFraction: c.data?.trainFraction ?? p.trainFraction,
      stratify: c.data?.stratify ?? false,
      ...(c.data?.limitTrain !== undefined ? { limitTrain: c.data.limitTrain } : {}),
      ...(c.data?.limitTest !== undefined ? { limitTest: c.data.limitTest } : {}),
      ...(c.data?.augment !== undefined ? { augment: c.data.augment } : {}),
    },
    model: {
      hidden: typeof c.model?.hidden === 'number' ? [c.model.hidden] : (c.model?.hidden ?? [128]),
      activation: c.model?.activation ?? 'tanh',
      init: c.model?.init ?? p.init,
      ...(c.model?.layers !== undefined ? { layers: c.model.layers, input: c.model.input ?? [3072] } : {}),
    },
    training: {
      epochs: c.training?.epochs ?? p.epochs,
      batchSize: c.training?.batchSize ?? p.batchSize,
      optimizer: (c.training?.optimizer as OptimizerSpec | undefined) ?? { kind: 'momentum', lr: 0.001, momentum: 0.8 },
      l2: {
        lambda: c.training?.l2?.lambda ?? 0,
        mode: c.training?.l2?.mode ?? p.l2Mode,
        includeBias: c.training?.l2?.includeBias ?? p.l2IncludeBias,
      },
      shuffle: c.training?.shuffle ?? p.shuffle,
      earlyStopping: es === false ? false : { ...p.earlyStopping, ...(es ?? {}) },
      ...(c.training?.schedule !== undefined ? { schedule: c.training.schedule as ScheduleSpec } : {}),
      ...(c.training?.clipNorm !== undefined ? { clipNorm: c.training.clipNorm } : {}),
      ...(c.training?.jit !== undefined ? { jit: c.training.jit } : {}),
    },
    ...(c.sweep !== undefined ? { sweep: c.sweep } : {}),
    ...(c.paper !== undefined ? { paper: c.paper } : {}),
  };
};

/**
 * Reads and parses a YAML (or JSON) file of at most `MAX_CONFIG_BYTES`, with at
 * most about `MAX_CONFIG_ENTRIES` keys and entries (counted on the text,
 * before parsing), in time linear in its size: the YAML parser's own
 * duplicate-key check compares every key with every other (80,000 keys took
 * 91 s), so keys are checked for duplicates here, with a set per mapping.
 */
export const readYamlFile = (file: string, what = 'config'): E.Either<ConfigError, unknown> => {
  if (!existsSync(file)) return E.left(new ConfigError(`${file}: no such ${what} file (examples/configs/ has one per table of the paper)`));
  let text: string;
  try {
    const size = statSync(file).size;
    if (size > MAX_CONFIG_BYTES)
      return E.left(
        new ConfigError(
          `${file}: is ${size} bytes, more than the ${MAX_CONFIG_BYTES} a ${what} file may be (the shipped ones are under 2 KiB): check that this is a tapegrad ${what}`,
        ),
      );
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return E.left(
      new ConfigError(`${file}: cannot be read (${code === 'EISDIR' ? 'it is a folder' : code === 'EACCES' ? 'permission denied' : (e as Error).message})`),
    );
  }
  // Every key or entry needs one of these (a block entry its line, a flow one its comma, a key its colon).
  let marks = 0;
  for (let i = 0; i < text.length; i++) if (':,\n[{?-'.includes(text[i]!)) marks++;
  if (marks > 4 * MAX_CONFIG_ENTRIES) {
    return E.left(
      new ConfigError(
        `${file}: holds more than ${MAX_CONFIG_ENTRIES} keys and list entries (${marks} lines, colons, commas and brackets), far more than any ${what} needs: check that this is a tapegrad ${what}`,
      ),
    );
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: false, lineCounter: lines });
  const yamlError = doc.errors[0];
  if (yamlError !== undefined) return E.left(new ConfigError(`${file}: not valid YAML: ${yamlError.message.split('\n')[0]}`));
  let duplicate: string | undefined;
  visit(doc, {
    Map: (_key, map) => {
      const seen = new Set<string>();
      for (const pair of map.items) {
        const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        if (seen.has(k)) {
          const at = isScalar(pair.key) && pair.key.range !== undefined && pair.key.range !== null ? lines.linePos(pair.key.range[0]) : undefined;
          duplicate = `key '${k}' appears twice in one mapping${at !== undefined ? ` (again at line ${at.line}, column ${at.col})` : ''}: keep one`;
          return visit.BREAK;
        }
        seen.add(k);
      }
      return undefined;
    },
  });
  if (duplicate !== undefined) return E.left(new ConfigError(`${file}: not valid YAML: ${duplicate}`));
  try {
    return E.right(doc.toJS({ maxAliasCount: 100 }) as unknown);
  } catch (e) {
    return E.left(new ConfigError(`${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`));
  }
};

/** Reads a YAML or JSON config file, checked but not resolved (sweeps expand it first). */
export const readRawConfig = (file: string): E.Either<ConfigError, RawConfig> => {
  const value = readYamlFile(file);
  if (E.isLeft(value)) return value;
  const checked = decodeConfig(value.right, file);
  return E.isLeft(checked) ? checked : E.right(value.right as RawConfig);
};

/** Sets a dotted path (`training.optimizer.lr`) in a copy of a plain object. */
export const setPath = (obj: unknown, path: string, value: unknown): unknown => {
  const [head, ...rest] = path.split('.');
  const base = (obj ?? {}) as Record<string, unknown>;
  return { ...base, [head!]: rest.length === 0 ? value : setPath(base[head!], rest.join('.'), value) };
};

type Value = number | string | boolean;

/** The dotted config paths a sweep varies. */
export const sweepKeys = (sweep: NonNullable<RawConfig['sweep']>): string[] => ('grid' in sweep ? Object.keys(sweep.grid) : sweep.keys);

/**
 * The runs of a sweep as raw configs: every combination of `grid` (last key
 * fastest), or exactly the listed `points` (for tables that are not full grids).
 */
export const expandGrid = (raw: RawConfig): { values: Value[]; config: RawConfig }[] => {
  const sweep = raw.sweep;
  if (sweep === undefined) return [];
  const keys = sweepKeys(sweep);
  const combos: Value[][] = 'grid' in sweep ? keys.reduce<Value[][]>((acc, k) => acc.flatMap((c) => sweep.grid[k]!.map((v) => [...c, v])), [[]]) : sweep.points;
  const bad = combos.find((c) => c.length !== keys.length);
  if (bad !== undefined) throw new ConfigError(`sweep point [${bad.join(', ')}] has ${bad.length} values for ${keys.length} keys (${keys.join(', ')})`);
  const { sweep: _s, paper: _p, ...base } = raw;
  return combos.map((values) => ({
    values,
    config: values.reduce<RawConfig>((c, v, i) => setPath(c, keys[i]!, v) as RawConfig, { ...base, name: `${raw.name}-${values.join('-')}` }),
  }));
};

/**
 * The dotted paths where two configs differ, with both values
 * (`training.epochs: 2 there, 3 here`): what a continued run or sweep would
 * silently change if it went ahead.
 */
export const configDiff = (stored: unknown, now: unknown, path = ''): string[] => {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(stored) && isObj(now)) {
    const keys = [...new Set([...Object.keys(stored), ...Object.keys(now)])];
    return keys.flatMap((k) => configDiff(stored[k], now[k], path === '' ? k : `${path}.${k}`));
  }
  if (JSON.stringify(stored) === JSON.stringify(now)) return [];
  const show = (v: unknown) => (v === undefined ? 'unset' : JSON.stringify(v));
  return [`${path}: ${show(stored)} there, ${show(now)} now`];
};
