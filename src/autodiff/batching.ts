/**
 * Batching (`vmap`): a `BatchTrace` stands each traced tensor for one example
 * of a batch whose values (one level down) carry the batch along axis 0. Every
 * op runs once on the whole batch through the primitive's batching rule; a
 * tensor the function closes over, or makes, is shared by every example.
 */
import { broadcastTo, type Primitive, type Tensor } from '../core/index.js';
import { internal } from '../core/internal.js';
import { Tracer, Transformation } from './level.js';
import { ruleOf } from './rule-table.js';
import type { BatchRule } from './rules/types.js';

/** The storage holds the whole batch: nothing reads it as one example's values (not readable). */
class BatchTracer extends Tracer {
  constructor(
    readonly main: BatchTrace,
    readonly value: Tensor,
  ) {
    super(value, false);
  }

  get parts(): readonly Tensor[] {
    return [this.value];
  }
}

export class BatchTrace extends Transformation {
  readonly kind = 'vmap';
  constructor(readonly size: number) {
    super();
  }

  /** One example of `value` (batched along axis 0, of length `size`). */
  wrap(value: Tensor): Tensor {
    return internal.share(value, value.shape.slice(1), new BatchTracer(this, value));
  }

  /** Whether this trace batched t. */
  owns(t: Tensor): boolean {
    return t.trace?.main === this;
  }

  /** t as a batch along axis 0: its values if this trace batched it, else t repeated `size` times. */
  unwrap(t: Tensor): Tensor {
    return this.owns(t) ? (t.trace as BatchTracer).value : broadcastTo(t, [this.size, ...t.shape]);
  }

  protected apply(prim: string, inputs: readonly Tensor[], params: unknown): Tensor {
    const p = prim as Primitive;
    const values = inputs.map((t) => (this.owns(t) ? (t.trace as BatchTracer).value : t));
    const batched = inputs.map((t) => this.owns(t));
    const rule = ruleOf(p).batch as unknown as BatchRule<'add'>;
    return this.wrap(rule(values as unknown as readonly [Tensor, Tensor], batched as unknown as readonly [boolean, boolean], params as null, this.size));
  }
}

/** f applied to each example of batches along axis 0 (`xs`), by a fresh batch trace: the results batched along axis 0. */
export const batchedCall = (size: number, xs: readonly Tensor[], f: (examples: readonly Tensor[]) => readonly Tensor[]): Tensor[] => {
  const main = new BatchTrace(size);
  try {
    return f(xs.map((x) => main.wrap(x))).map((y) => main.unwrap(y));
  } finally {
    main.finish();
  }
};
