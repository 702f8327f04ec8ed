/**
 * What the three transformations (the reverse tape, forward mode, batching)
 * share: a level, and the rule that their tracers may not be used once the
 * transformation has returned.
 *
 * Levels order the running transformations: one started later (inside
 * another's function, or on another's results) has the higher level, and
 * `bind` hands each op to the highest level among its inputs' traces. A
 * counter, not a stack: a pullback returned by `vjp` can be called later under
 * `vmap` or another tape, whose higher levels then see the tape's values as
 * constants, as they are.
 */
import type { MainTrace, Tensor, Trace } from '../core/index.js';

let counter = 0;

/** A running transformation: its level, and whether it has returned. */
export abstract class Transformation implements MainTrace {
  readonly level = ++counter;
  abstract readonly kind: string;
  private done = false;

  /** Called when the transformation returns: its tracers may no longer enter ops. */
  finish(): void {
    this.done = true;
  }

  process(prim: string, inputs: readonly Tensor[], params: unknown): Tensor {
    if (this.done) {
      // It escaped through a closure or a variable, and what it stands for is gone.
      throw new Error(
        `${prim}: one of its inputs was traced by a ${this.kind} transformation that has already returned (it escaped the function ` +
          'through a closure or an outer variable); use the values the transformation returned instead',
      );
    }
    return this.apply(prim, inputs, params);
  }

  /** `process` for a transformation still running. */
  protected abstract apply(prim: string, inputs: readonly Tensor[], params: unknown): Tensor;
}

/** A tracer standing for `primal` (one level down): readable where its primal is. */
export abstract class Tracer implements Trace {
  readonly readable: boolean;
  abstract readonly main: MainTrace;
  abstract readonly parts: readonly Tensor[];
  constructor(primal: Tensor, readable = true) {
    this.readable = readable && (primal.trace?.readable ?? true);
  }
}
