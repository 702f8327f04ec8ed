/**
 * Forward mode: a `JvpTrace` carries each traced tensor's tangent beside its
 * value (one level down), and every op computes its output's tangent from its
 * inputs' by the primitive's JVP rule, as it runs: no tape, memory for one
 * tangent per live value. Tangents that are zero (inputs nobody perturbed) are
 * `null` and cost nothing.
 */
import { bind, cast, type Primitive, type Tensor } from '../core/index.js';
import { internal } from '../core/internal.js';
import { Tracer, Transformation } from './level.js';
import { ruleOf } from './rule-table.js';
import type { DifferentiableRule, Maybe } from './rules/types.js';

class JvpTracer extends Tracer {
  constructor(
    readonly main: JvpTrace,
    readonly primal: Tensor,
    readonly tangent: Tensor,
  ) {
    super(primal);
  }

  get parts(): readonly Tensor[] {
    return [this.primal, this.tangent];
  }
}

export class JvpTrace extends Transformation {
  readonly kind = 'jvp';

  /** primal with `tangent` (same shape) attached at this level. */
  wrap(primal: Tensor, tangent: Tensor): Tensor {
    return internal.share(primal, primal.shape, new JvpTracer(this, primal, tangent));
  }

  /** t's value one level down. */
  primalOf(t: Tensor): Tensor {
    return t.trace?.main === this ? (t.trace as JvpTracer).primal : t;
  }

  /** t's tangent at this level (null: zero). */
  tangentOf(t: Tensor): Maybe {
    return t.trace?.main === this ? (t.trace as JvpTracer).tangent : null;
  }

  protected apply(prim: string, inputs: readonly Tensor[], params: unknown): Tensor {
    const p = prim as Primitive;
    const primals = inputs.map((t) => this.primalOf(t));
    const out = bind(p, primals as never, params as never);
    const rule = ruleOf(p);
    if (rule.constant === true || (out.dtype !== 'float32' && out.dtype !== 'float64')) return out; // an int32 or bool result has no tangent
    const tangents = inputs.map((t) => this.tangentOf(t));
    let tangent = (rule as unknown as DifferentiableRule<'add'>).jvp(
      tangents as unknown as readonly [Maybe, Maybe],
      primals as unknown as readonly [Tensor, Tensor],
      out,
      params as null,
    );
    if (tangent === null) return out;
    if (tangent.dtype !== out.dtype) tangent = cast(tangent, out.dtype);
    return this.wrap(out, tangent);
  }
}

/**
 * The tangent of f's output at `inputs` along `tangents` (null entries: not
 * perturbed), by a fresh forward trace; null when the output does not depend
 * on any perturbed input.
 */
export const jvpOf = (f: (xs: readonly Tensor[]) => Tensor, inputs: readonly Tensor[], tangents: readonly Maybe[]): Maybe => {
  const main = new JvpTrace();
  try {
    const out = f(inputs.map((x, i) => (tangents[i] === null || tangents[i] === undefined ? x : main.wrap(x, tangents[i]!))));
    return main.tangentOf(out);
  } finally {
    main.finish();
  }
};
