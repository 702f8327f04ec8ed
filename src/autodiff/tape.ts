/**
 * Reverse mode: the tape.
 *
 * One `Tape` lives for one `valueAndGrad` / `vjp` call and is reached only
 * through the tensors it traced, never through a global, so nested and
 * interleaved calls each have their own. Tapes nest: a tape started inside
 * another's function has the higher level, records the ops on its own tracers,
 * and binds each op again one level down, where the outer tape records it too.
 * The backward pass evaluates VJP rules on the values one level down, so an
 * outer tape records the backward pass itself: that is grad of grad. Which
 * tape differentiates what is decided by level, so two nested derivatives never
 * confuse their perturbations.
 *
 * Nodes are appended in execution order, a topological order, so the backward
 * pass is one reverse walk. Gradients are lazy per input: a VJP is evaluated
 * only for inputs this tape traced (the data matrix of a first layer costs
 * nothing).
 */
import { add, bind, cast, ones, type Primitive, type Tensor } from '../core/index.js';
import { internal } from '../core/internal.js';
import { Tracer, Transformation } from './level.js';
import { ruleOf } from './rule-table.js';
import type { DifferentiableRule } from './rules/types.js';

interface Node {
  readonly id: number;
  readonly prim: Primitive;
  /** The inputs one level down (what the VJP rule reads). */
  readonly inputs: readonly Tensor[];
  /** Each input's id on this tape, or -1 where this tape did not trace it. */
  readonly ids: readonly number[];
  readonly output: Tensor;
  readonly params: unknown;
}

/** A tensor this tape traced: its id, and its value one level down. */
class TapeTracer extends Tracer {
  constructor(
    readonly main: Tape,
    readonly id: number,
    readonly primal: Tensor,
  ) {
    super(primal);
  }

  get parts(): readonly Tensor[] {
    return [this.primal];
  }
}

export class Tape extends Transformation {
  readonly kind = 'grad';
  private readonly nodes: Node[] = [];
  private nextId = 0;

  private wrap(value: Tensor, id: number): Tensor {
    return internal.share(value, value.shape, new TapeTracer(this, id, value));
  }

  /** Marks `t` as an input to differentiate with respect to (float only: an int32 or bool input is an error naming the fix). */
  leaf(t: Tensor): Tensor {
    if (t.dtype !== 'float32' && t.dtype !== 'float64') {
      throw new TypeError(
        `grad: an input of dtype ${t.dtype} (shape [${t.shape.join(', ')}]) has no derivative: cast it to a float (cast(x, 'float32')), or pass it as an argument not differentiated`,
      );
    }
    return this.wrap(t, this.nextId++);
  }

  /** t one level down: its value if this tape traced it, else t itself. */
  lower(t: Tensor): Tensor {
    return t.trace?.main === this ? (t.trace as TapeTracer).primal : t;
  }

  /** t's id on this tape, or -1. */
  idOf(t: Tensor): number {
    return t.trace?.main === this ? (t.trace as TapeTracer).id : -1;
  }

  protected apply(prim: string, inputs: readonly Tensor[], params: unknown): Tensor {
    const p = prim as Primitive;
    const lowered = inputs.map((t) => this.lower(t));
    const out = bind(p, lowered as never, params as never);
    // No derivative flows through a constant, nor into an int32 or bool result.
    if (ruleOf(p).constant === true || (out.dtype !== 'float32' && out.dtype !== 'float64')) return out;
    const id = this.nextId++;
    this.nodes.push({ id, prim: p, inputs: lowered, ids: inputs.map((t) => this.idOf(t)), output: out, params });
    return this.wrap(out, id);
  }

  /**
   * Cotangents of every traced tensor reachable backwards from `output`, seeded
   * with `seed` (same shape as output). Returns them by trace id. The seed may
   * itself be traced by another transformation (a `vmap` over the pullback, an
   * outer tape): the VJP rules compute with it as with any tensor.
   */
  backward(output: Tensor, seed: Tensor): Map<number, Tensor> {
    const cts = new Map<number, Tensor>();
    if (output.trace?.main !== this) return cts;
    cts.set((output.trace as TapeTracer).id, seed);
    for (let n = this.nodes.length - 1; n >= 0; n--) {
      const node = this.nodes[n]!;
      const ct = cts.get(node.id);
      if (ct === undefined) continue;
      cts.delete(node.id); // intermediates' cotangents are no longer needed
      const rule = ruleOf(node.prim) as unknown as DifferentiableRule<'add'>;
      const thunks = rule.vjp(ct, node.inputs as unknown as readonly [Tensor, Tensor], node.output, node.params as null);
      node.ids.forEach((tid, i) => {
        if (tid < 0) return;
        let g = thunks[i]!();
        if (g === null) return; // a symbolic zero adds nothing
        const want = node.inputs[i]!.dtype;
        if (g.dtype !== want) g = cast(g, want);
        const prev = cts.get(tid);
        cts.set(tid, prev === undefined ? g : add(prev, g));
      });
    }
    return cts;
  }
}

/** Cotangents of `inputs` by a fresh tape, seeded with `seedOf(output)` (null: the output does not depend on that input). */
const pullback = (f: (xs: readonly Tensor[]) => Tensor, inputs: readonly Tensor[], seedOf: (out: Tensor) => Tensor): (Tensor | null)[] => {
  const tape = new Tape();
  try {
    const traced = inputs.map((x) => tape.leaf(x));
    const out = f(traced);
    const cts = tape.backward(out, seedOf(out));
    return traced.map((t) => cts.get(tape.idOf(t)) ?? null);
  } finally {
    tape.finish();
  }
};

/**
 * Cotangents of `inputs` for f's output cotangent `ct` (null where the output
 * does not depend on an input). The rules of fused kernels use it to
 * differentiate their defining composite.
 */
export const vjpOf = (f: (xs: readonly Tensor[]) => Tensor, inputs: readonly Tensor[], ct: Tensor): (Tensor | null)[] => pullback(f, inputs, () => ct);

/** The gradient of f's (one-element) output with respect to each input (null: no dependence). */
export const gradOf = (f: (xs: readonly Tensor[]) => Tensor, inputs: readonly Tensor[]): (Tensor | null)[] =>
  pullback(f, inputs, (out) => ones(out.shape, out.dtype, out.backend));
