/** io-ts codecs for what crosses a boundary in nn: architectures and optimizer specs. */
import * as t from 'io-ts';

export const ActivationC = t.keyof({ tanh: null, relu: null, sigmoid: null, identity: null });
export const InitC = t.keyof({ paper: null, 'glorot-uniform': null, 'glorot-normal': null, 'he-uniform': null, 'he-normal': null });

export const PositiveInt = t.refinement(t.number, (n) => Number.isInteger(n) && n > 0, 'PositiveInt');
export const NonNegative = t.refinement(t.number, (n) => Number.isFinite(n) && n >= 0, 'NonNegativeNumber');
export const Positive = t.refinement(t.number, (n) => Number.isFinite(n) && n > 0, 'PositiveNumber');

export const MlpSpecC = t.exact(t.type({
  kind: t.literal('mlp'),
  sizes: t.array(PositiveInt),
  activation: ActivationC,
  init: InitC,
}));

export const OptimizerSpecC = t.union([
  t.exact(t.intersection([t.type({ kind: t.literal('sgd'), lr: Positive }), t.partial({ weightDecay: NonNegative })])),
  t.exact(t.intersection([
    t.type({ kind: t.literal('momentum'), lr: Positive, momentum: NonNegative }),
    t.partial({ nesterov: t.boolean, weightDecay: NonNegative }),
  ])),
  t.exact(t.intersection([
    t.type({ kind: t.literal('adam'), lr: Positive }),
    t.partial({ beta1: NonNegative, beta2: NonNegative, eps: Positive, weightDecay: NonNegative }),
  ])),
]);

const INDEXED = new Set(['ArrayType', 'ReadonlyArrayType', 'TupleType', 'ReadonlyTupleType', 'DictionaryType']);
const TAGS = new Set(['LiteralType', 'KeyofType']);

type Ctx = t.Context;
const tagOf = (c: t.ContextEntry | undefined) => (c?.type as { _tag?: string } | undefined)?._tag;
/** The data's path: keys that are branch numbers of unions, intersections or recursive codecs are left out. */
const dataPath = (ctx: Ctx): string =>
  ctx.filter((c, i) => c.key !== '' && (!/^\d+$/.test(c.key) || INDEXED.has(tagOf(ctx[i - 1]) ?? ''))).map((c) => c.key).join('.');
/** The branch an error is in: every key and codec down to the object holding the failing key. */
const branchOf = (ctx: Ctx): string => ctx.slice(0, -1).map((c) => `${c.key}:${c.type.name}`).join('/');

/**
 * Decoding errors as one readable line per problem: `at sizes.1: expected PositiveInt, got -3`.
 * In a union of tagged objects (`type: 'dense'`, `kind: 'mlp'`), branches whose
 * tag does not match are left out, so a bad field of a dense layer is reported
 * as such rather than with every other layer kind's complaints.
 */
export const describeErrors = (errors: t.Errors): string => {
  const wrongTag = new Set<string>();
  for (const e of errors) {
    const last = e.context[e.context.length - 1];
    if ((last?.key === 'type' || last?.key === 'kind') && TAGS.has(tagOf(last) ?? '')) wrongTag.add(branchOf(e.context));
  }
  const inWrongBranch = (e: t.ValidationError) => [...wrongTag].some((b) => branchOf(e.context).startsWith(b));
  let kept = errors.filter((e) => !inWrongBranch(e));
  if (kept.length === 0) {
    // No branch's tag matched: one line listing the tags there are.
    const byPath = new Map<string, { expected: string[]; got: unknown }>();
    for (const e of errors) {
      const last = e.context[e.context.length - 1];
      if (!((last?.key === 'type' || last?.key === 'kind') && TAGS.has(tagOf(last) ?? ''))) continue;
      const path = dataPath(e.context);
      const entry = byPath.get(path) ?? { expected: [], got: e.value };
      entry.expected.push(last.type.name);
      byPath.set(path, entry);
    }
    if (byPath.size > 0) return [...byPath].map(([path, v]) => `at ${path}: expected one of ${v.expected.join(' | ')}, got ${JSON.stringify(v.got)}`).join('\n');
    kept = errors;
  }
  return kept
    .map((e) => {
      const path = dataPath(e.context);
      const expected = e.context[e.context.length - 1]?.type.name ?? 'a valid value';
      return `at ${path === '' ? '(top level)' : path}: expected ${expected}, got ${JSON.stringify(e.value)}`;
    })
    .filter((v, i, a) => a.indexOf(v) === i)
    .join('\n');
};
