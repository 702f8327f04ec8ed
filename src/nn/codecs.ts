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

/** Decoding errors as one readable line per problem: `at sizes.1: expected PositiveInt, got -3`. */
export const describeErrors = (errors: t.Errors): string =>
  errors
    .map((e) => {
      // Keys under a union or an intersection are branch numbers, not the data's keys: leave them out.
      const path = e.context
        .filter((c, i) => {
          const tag = (e.context[i - 1]?.type as { _tag?: string } | undefined)?._tag;
          return c.key !== '' && tag !== 'UnionType' && tag !== 'IntersectionType';
        })
        .map((c) => c.key)
        .join('.');
      const expected = e.context[e.context.length - 1]?.type.name ?? 'a valid value';
      return `at ${path === '' ? '(top level)' : path}: expected ${expected}, got ${JSON.stringify(e.value)}`;
    })
    .filter((v, i, a) => a.indexOf(v) === i)
    .join('\n');
