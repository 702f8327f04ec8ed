/** io-ts codecs for what crosses a boundary in nn: architectures and optimizer specs. */
import * as t from 'io-ts';

export const ActivationC = t.keyof({ tanh: null, relu: null, sigmoid: null, identity: null });
/** The io-ts codec of an initializer name. */
export const InitC = t.keyof({ paper: null, 'glorot-uniform': null, 'glorot-normal': null, 'he-uniform': null, 'he-normal': null });

export const PositiveInt = t.refinement(t.number, (n) => Number.isInteger(n) && n > 0, 'PositiveInt');
export const NonNegative = t.refinement(t.number, (n) => Number.isFinite(n) && n >= 0, 'NonNegativeNumber');
export const Positive = t.refinement(t.number, (n) => Number.isFinite(n) && n > 0, 'PositiveNumber');
/** Any finite number (JSON cannot hold NaN or Infinity, but YAML can: `.nan`, `.inf`). */
export const Finite = t.refinement(t.number, (n) => Number.isFinite(n), 'FiniteNumber');

/**
 * The largest seed. Seeds reach the generators as 32-bit integers (`Key` takes
 * `seed | 0`), so 0..2³²−1 are exactly the seeds that give different streams;
 * anything larger would silently alias a smaller one (2³² trains like 0).
 */
export const MAX_SEED = 0xffffffff;
export const SeedC = t.refinement(t.number, (n) => Number.isInteger(n) && n >= 0 && n <= MAX_SEED, 'Seed');

/** The io-ts codec of an MLP's architecture: widths, activation, init. */
export const MlpSpecC = t.exact(
  t.type({
    kind: t.literal('mlp'),
    sizes: t.array(PositiveInt),
    activation: ActivationC,
    init: InitC,
  }),
);

/**
 * The io-ts codec of an optimizer as configs write it (sgd, momentum, adam), each hyperparameter
 * checked.
 */
export const OptimizerSpecC = t.union([
  t.exact(t.intersection([t.type({ kind: t.literal('sgd'), lr: Positive }), t.partial({ weightDecay: NonNegative })])),
  t.exact(
    t.intersection([
      t.type({ kind: t.literal('momentum'), lr: Positive, momentum: NonNegative }),
      t.partial({ nesterov: t.boolean, weightDecay: NonNegative }),
    ]),
  ),
  t.exact(
    t.intersection([
      t.type({ kind: t.literal('adam'), lr: Positive }),
      t.partial({ beta1: NonNegative, beta2: NonNegative, eps: Positive, weightDecay: NonNegative }),
    ]),
  ),
]);

/** A learning-rate schedule (see schedules.ts). */
export const ScheduleSpecC = t.union([
  t.exact(t.intersection([t.type({ kind: t.literal('constant') }), t.partial({ warmupEpochs: NonNegative })])),
  t.exact(t.intersection([t.type({ kind: t.literal('step'), everyEpochs: Positive, factor: Positive }), t.partial({ warmupEpochs: NonNegative })])),
  t.exact(t.intersection([t.type({ kind: t.literal('cosine') }), t.partial({ minLr: NonNegative, warmupEpochs: NonNegative })])),
]);

/** What a refinement or primitive means, in words a config author reads. */
const NAMED: Record<string, string> = {
  PositiveInt: 'a positive integer',
  PositiveNumber: 'a positive number',
  NonNegativeNumber: 'a number ≥ 0',
  FiniteNumber: 'a finite number',
  FractionBetween0And1: 'a number strictly between 0 and 1',
  CropPixels: 'an integer from 0 to 31 (pixels)',
  Seed: `an integer from 0 to ${MAX_SEED}`,
  Integer: 'an integer',
  NameWithoutControlCharacters: 'a string without control characters (tabs, newlines, escapes)',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  null: 'null',
  unknown: 'a value',
};

/** The expected type as words, never io-ts' structural name (which can run to kilobytes). */
const expectedOf = (type: t.Decoder<unknown, unknown> & { _tag?: string }): string => {
  const named = NAMED[type.name];
  if (named !== undefined) return named;
  const any = type as unknown as { _tag?: string; keys?: Record<string, unknown>; value?: unknown; types?: t.Mixed[] };
  switch (any._tag) {
    case 'KeyofType':
      return `one of ${Object.keys(any.keys ?? {}).join(', ')}`;
    case 'LiteralType':
      return JSON.stringify(any.value);
    case 'ArrayType':
    case 'ReadonlyArrayType':
    case 'TupleType':
      return 'a list';
    case 'InterfaceType':
    case 'PartialType':
    case 'ExactType':
    case 'StrictType':
    case 'IntersectionType':
    case 'DictionaryType':
      return 'a mapping (key: value)';
    case 'UnionType':
      return (any.types ?? [])
        .map((m) => expectedOf(m))
        .filter((v, i, a) => a.indexOf(v) === i)
        .join(' or ');
    default:
      return type.name.length <= 40 ? type.name : 'another kind of value';
  }
};

/** A value as it appeared in the file: NaN and Infinity by name (JSON would print null), long values cut. */
export const showValue = (v: unknown): string => {
  if (v === undefined) return 'nothing';
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
};

const tagOf = (c: t.ContextEntry): string | undefined => (c.type as unknown as { _tag?: string })._tag;

type Inner = { _tag?: string; type?: Inner; types?: Inner[]; props?: Record<string, Inner>; value?: unknown; tag?: string };
/** A codec without its exact, readonly or refinement wrappers. */
const unwrap = (type: Inner): Inner => {
  let x = type;
  // A recursive codec (a layer that holds layers) is its definition once resolved.
  while ((x._tag === 'ExactType' || x._tag === 'RefinementType' || x._tag === 'ReadonlyType' || x._tag === 'RecursiveType') && x.type !== undefined) x = x.type;
  return x;
};
const isCombinator = (c: t.ContextEntry): boolean => {
  const tag = unwrap(c.type as unknown as Inner)._tag;
  return tag === 'UnionType' || tag === 'IntersectionType';
};
const isList = (c: t.ContextEntry): boolean => {
  const tag = unwrap(c.type as unknown as Inner)._tag;
  return tag === 'ArrayType' || tag === 'ReadonlyArrayType' || tag === 'TupleType';
};

/** The literal values a union's members hold at `tag` (`kind: sgd | momentum | adam`). */
const literalsAt = (type: Inner, tag: string): unknown[] => {
  const x = unwrap(type);
  if (x._tag === 'UnionType' || x._tag === 'IntersectionType') return (x.types ?? []).flatMap((m) => literalsAt(m, tag));
  const p = x.props?.[tag];
  return p !== undefined && unwrap(p)._tag === 'LiteralType' ? [unwrap(p).value] : [];
};

/** The user's path to a value: `training.optimizer.lr`, `model.hidden[1]`, without io-ts' union and intersection member numbers. */
const pathOf = (context: t.Context): string => {
  let path = '';
  for (let j = 1; j < context.length; j++) {
    const parent = context[j - 1]!;
    if (isCombinator(parent)) continue;
    const key = context[j]!.key;
    path += isList(parent) ? `[${key}]` : path === '' ? key : `.${key}`;
  }
  return path;
};

/**
 * Of a union's members, only those the value was meant for: a member whose
 * literal tag (`kind: sgd`) did not match says nothing about an `lr` of NaN, and
 * a member that got deeper into the value (a list of widths) says more than one
 * that failed at the top (a single width). When no member's tag matched, only
 * the tag errors are kept.
 */
const relevant = (errors: readonly t.ValidationError[], from = 0): t.ValidationError[] => {
  const isUnion = (c: t.ContextEntry) => unwrap(c.type as unknown as Inner)._tag === 'UnionType';
  const groups = new Map<string, { branch: string; depth: number; e: t.ValidationError; u: number }[]>();
  const rest: t.ValidationError[] = [];
  for (const e of errors) {
    const u = e.context.findIndex((c, i) => i >= from && isUnion(c));
    if (u < 0 || u + 1 >= e.context.length) {
      rest.push(e);
      continue;
    }
    const at = e.context
      .slice(0, u + 1)
      .map((c) => c.key)
      .join('/');
    const list = groups.get(at) ?? [];
    list.push({ branch: e.context[u + 1]!.key, depth: e.context.length, e, u });
    groups.set(at, list);
  }
  const kept = [...rest];
  for (const list of groups.values()) {
    // A member whose tag (`kind`, or a layer's `type`: a literal, or a keyof of several
    // tags) did not match; a tag inside a nested union belongs to that union, not this one.
    const tagFail = (x: { e: t.ValidationError; u: number }) => {
      const last = x.e.context[x.e.context.length - 1]!;
      const isTag = tagOf(last) === 'LiteralType' || (tagOf(last) === 'KeyofType' && (last.key === 'type' || last.key === 'kind'));
      return isTag && !x.e.context.slice(x.u + 1).some(isUnion);
    };
    const mismatched = new Set(list.filter(tagFail).map((x) => x.branch));
    let matching = list.filter((x) => !mismatched.has(x.branch));
    if (matching.length === 0) {
      kept.push(...list.filter(tagFail).map((x) => x.e));
      continue;
    }
    const reach = new Map<string, number>();
    for (const x of matching) reach.set(x.branch, Math.max(reach.get(x.branch) ?? 0, x.depth));
    const deepest = Math.max(...reach.values());
    matching = matching.filter((x) => reach.get(x.branch) === deepest);
    // Unions inside the chosen member (a layer inside a model) get the same treatment.
    kept.push(
      ...relevant(
        matching.map((x) => x.e),
        matching[0]!.u + 1,
      ),
    );
  }
  return kept;
};

/**
 * Decoding errors as one readable clause per problem, joined with `; ` so a
 * message stays one line: `training.optimizer.lr: expected a positive number, got NaN`.
 */
export const describeErrors = (errors: t.Errors): string => {
  const byPath = new Map<string, { expected: string[]; got: unknown }>();
  for (const e of relevant(errors)) {
    let path = pathOf(e.context);
    let got = e.value;
    const last = e.context[e.context.length - 1]!.type as unknown as Inner;
    let exp: string;
    // A tagged union whose tag matched no member fails as a whole: name the tag instead.
    if (last.tag !== undefined && typeof e.value === 'object' && e.value !== null && !Array.isArray(e.value)) {
      path = path === '' ? last.tag : `${path}.${last.tag}`;
      got = (e.value as Record<string, unknown>)[last.tag];
      exp = `one of ${literalsAt(last, last.tag)
        .map((v) => JSON.stringify(v))
        .join(', ')}`;
    } else {
      exp = expectedOf(last as unknown as t.Mixed);
    }
    const entry = byPath.get(path) ?? { expected: [], got };
    if (!entry.expected.includes(exp)) entry.expected.push(exp);
    byPath.set(path, entry);
  }
  // Several alternatives (a union's tags) read as one list: `one of "dense", "conv2d", maxPool2d, …`.
  const alternatives = (expected: readonly string[]): string =>
    expected.length > 1 && expected.every((x) => x.startsWith('one of ') || x.startsWith('"'))
      ? `one of ${expected.map((x) => x.replace(/^one of /, '')).join(', ')}`
      : expected.join(' or ');
  return [...byPath]
    .map(
      ([path, { expected, got }]) =>
        `${path === '' ? '(the whole value)' : path}: ${got === undefined ? `missing (expected ${alternatives(expected)})` : `expected ${alternatives(expected)}, got ${showValue(got)}`}`,
    )
    .join('; ');
};

/**
 * Paths of keys present in `input` but dropped by an exact codec's `output`:
 * io-ts' exact types strip unknown keys silently, which would hide a typo.
 */
export const unknownKeys = (input: unknown, output: unknown, path = ''): string[] => {
  if (input === null || typeof input !== 'object' || output === null || typeof output !== 'object') return [];
  if (Array.isArray(input)) return input.flatMap((v, i) => unknownKeys(v, (output as unknown[])[i], `${path}[${i}]`));
  return Object.keys(input).flatMap((k) => {
    const p = path === '' ? k : `${path}.${k}`;
    if (!(k in output)) return [p];
    return unknownKeys((input as Record<string, unknown>)[k], (output as Record<string, unknown>)[k], p);
  });
};
