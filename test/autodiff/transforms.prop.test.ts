/**
 * Every primitive under every transformation (cases.ts: random shapes,
 * broadcasting, strides, repeated indices), checked against independent
 * references, never against itself:
 * - forward and reverse mode are transposes: ⟨u, J v⟩ = ⟨Jᵀ u, v⟩ to 1e-12;
 * - `jvp` against float64 central differences, with the O(ε²) order check;
 * - `hvp` (jvp of grad) against central differences of the gradient, O(ε²);
 * - `hessian` symmetric;
 * - `vmap` equal, bit for bit, to the per-example calls stacked (reference
 *   backend in float64, cpu in float32), each input batched or shared at random.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as T from '../../src/index.js';
import { backend, Key, type Tensor } from '../../src/index.js';
import { expectJvp } from '../../src/testing/index.js';
import { cases, constantCases, valuesFor, type Instance } from './cases.js';
import { adRules } from '../../src/autodiff/rules/index.js';
import { t64 } from '../helpers.js';

const inputsOf = (inst: Instance, seed: number, dtype: 'float32' | 'float64' = 'float64', be = backend('reference')): Tensor[] =>
  inst.shapes.map((s, i) => T.toBackend(T.cast(t64(valuesFor(s, inst.ranges[i]!, new Key(seed).fold(`input ${i}`)), [...s]), dtype), be));

const normalLike = (ts: readonly Tensor[], key: Key): Tensor[] => ts.map((t, i) => key.fold(`leaf ${i}`).normal(t.shape, 'float64', 0, 1, t.backend));
const dot = (a: Tensor, b: Tensor): { value: number; scale: number } => {
  const x = a.toTypedArray(),
    y = b.toTypedArray();
  let value = 0,
    scale = 0;
  for (let i = 0; i < x.length; i++) {
    value += x[i]! * y[i]!;
    scale += Math.abs(x[i]! * y[i]!);
  }
  return { value, scale };
};
/** Fixed weights so every output element matters in a scalar function of f. */
const weights = (like: Tensor): Tensor =>
  T.toBackend(
    t64(
      Array.from({ length: like.size }, (_, i) => Math.sin(i + 1) + 1.5),
      [...like.shape],
    ),
    like.backend,
  );
const scalarized =
  (inst: Instance) =>
  (xs: readonly Tensor[]): Tensor => {
    const y = inst.f(xs);
    return T.sum(T.mul(T.cast(y, 'float64'), weights(y)));
  };
const flatGrads = (gs: readonly Tensor[]): Tensor =>
  T.concat(
    gs.map((g) => T.reshape(g, [-1])),
    0,
  );
const bits = (t: Tensor): string[] => Array.from(t.toTypedArray(), (v) => (Object.is(v, -0) ? '-0' : String(v)));

const runs = Number(process.env.TAPEGRAD_PROP_RUNS ?? 15); // about 10 s; raise it to search harder

describe.each(cases)('$name', (c) => {
  it('jvp and vjp are transposes of each other: ⟨u, J v⟩ = ⟨Jᵀ u, v⟩ to 1e-12', () => {
    fc.assert(
      fc.property(c.instance, fc.integer(), (inst, seed) => {
        const xs = inputsOf(inst, seed),
          vs = normalLike(xs, new Key(seed).fold('v'));
        const { value, tangent } = T.jvp((p: Tensor[]) => inst.f(p))(xs, vs);
        const u = new Key(seed).fold('u').normal(value.shape, 'float64', 0, 1, value.backend);
        const cts = T.vjp((p: Tensor[]) => inst.f(p))(xs).vjp(u);
        const lhs = dot(u, tangent);
        const rhs = cts.map((g, i) => dot(g, vs[i]!)).reduce((a, b) => ({ value: a.value + b.value, scale: a.scale + b.scale }), { value: 0, scale: 0 });
        expect(Math.abs(lhs.value - rhs.value)).toBeLessThanOrEqual(1e-12 * (lhs.scale + rhs.scale + 1e-300));
      }),
      { numRuns: runs },
    );
  });

  it('jvp matches float64 central differences, converging as O(ε²)', () => {
    fc.assert(
      fc.property(c.instance, fc.integer(), (inst, seed) => {
        expectJvp((p: Tensor[]) => inst.f(p), inputsOf(inst, seed), { seed });
      }),
      { numRuns: runs },
    );
  });

  it('hvp (jvp of grad) matches central differences of the gradient, converging as O(ε²)', () => {
    fc.assert(
      fc.property(c.instance, fc.integer(), (inst, seed) => {
        const g = scalarized(inst);
        expectJvp((p: Tensor[]) => flatGrads(T.grad(g)(p)), inputsOf(inst, seed), { seed, directions: 1 });
        // The hvp entry point, against central differences of the gradient along its own direction.
        const xs = inputsOf(inst, seed),
          vs = normalLike(xs, new Key(seed).fold('h')),
          eps = 1e-5;
        const shifted = (s: number) => flatGrads(T.grad(g)(xs.map((x, i) => T.add(x, T.mul(vs[i]!, s))))).toTypedArray();
        const [up, down] = [shifted(eps), shifted(-eps)];
        const hv = flatGrads(T.hvp(g)(xs, vs)).toTypedArray();
        hv.forEach((h, j) => {
          expect(Math.abs(h - (up[j]! - down[j]!) / (2 * eps))).toBeLessThanOrEqual(1e-6 + 1e-4 * Math.abs(h));
        });
      }),
      { numRuns: Math.max(2, runs >> 1) },
    );
  });

  it('the Hessian (jacfwd of grad) is symmetric', () => {
    fc.assert(
      fc.property(
        c.instance.filter((inst) => inst.shapes.reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0) <= 40),
        fc.integer(),
        (inst, seed) => {
          const xs = inputsOf(inst, seed);
          const sizes = xs.map((x) => x.size);
          // One flat vector of every input, so one Hessian covers the cross terms.
          const unflat = (z: Tensor): Tensor[] => T.split(z, sizes, 0).map((part, i) => T.reshape(part, [...xs[i]!.shape]));
          const H = T.hessian((z: Tensor) => scalarized(inst)(unflat(z)))(flatGrads(xs));
          const n = H.shape[0]!,
            h = Array.from(H.toTypedArray());
          const top = h.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(Math.abs(h[i * n + j]! - h[j * n + i]!)).toBeLessThanOrEqual(1e-9 * top + 1e-12);
        },
      ),
      { numRuns: Math.max(2, runs >> 1) },
    );
  });

  vmapChecks(c);
});

describe.each(constantCases)('$name (a constant)', (c) => {
  vmapChecks(c);
});

it('every primitive has a case here (a new primitive without one fails)', () => {
  const covered = new Set([...cases, ...constantCases].map((c) => c.prim));
  expect(Object.keys(adRules).filter((p) => !covered.has(p as never))).toEqual([]);
});

function vmapChecks(c: (typeof cases)[number]): void {
  const check = (dtype: 'float32' | 'float64', be: ReturnType<typeof backend>) =>
    fc.assert(
      fc.property(c.instance, fc.integer(), fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }), (inst, seed, pick) => {
        const B = 3;
        const examples = Array.from({ length: B }, (_, b) => inputsOf(inst, seed + b, dtype, be));
        const batched = inst.shapes.map((_s, i) => pick[i % pick.length]!);
        if (!batched.some((x) => x)) batched[0] = true;
        const args = inst.shapes.map((_s, i) =>
          batched[i]
            ? T.stack(
                examples.map((e) => e[i]!),
                0,
              )
            : examples[0]![i]!,
        );
        const got = T.vmap((...p: Tensor[]) => inst.f(p), { inAxes: batched.map((x) => (x ? 0 : null)) })(...args);
        const want = T.stack(
          examples.map((e) => inst.f(e.map((x, i) => (batched[i] ? x : examples[0]![i]!)))),
          0,
        );
        expect(got.shape).toEqual(want.shape);
        expect(bits(got)).toEqual(bits(want));
      }),
      { numRuns: runs },
    );
  it('vmap equals the per-example calls stacked, bit for bit (reference, float64)', () => check('float64', backend('reference')));
  it('vmap equals the per-example calls stacked, bit for bit (cpu, float32)', () => check('float32', backend('cpu')));
}
