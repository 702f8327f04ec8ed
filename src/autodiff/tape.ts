/**
 * The reverse-mode tape.
 *
 * One `Tape` lives for one `valueAndGrad` / `vjp` call and is reached only through
 * the tensors it traced, never through a global: nested or interleaved calls each
 * have their own tape and cannot corrupt each other. Nodes are appended in
 * execution order, which is a topological order, so the backward pass is one
 * reverse walk. Gradients are lazy per input: a VJP is evaluated only for inputs
 * that are traced (so the data matrix of a first layer costs nothing).
 */
import { add, cast, rules, type Primitive, type Rule } from '../core/ops.js';
import { internal, Tensor, untraced, type TapeLike } from '../core/tensor.js';

interface Node {
  readonly id: number;
  readonly prim: Primitive;
  readonly inputs: readonly Tensor[];
  readonly output: Tensor;
  readonly params: unknown;
}

let levels = 0;

export class Tape implements TapeLike {
  /** Creation order, for error messages and debugging. */
  readonly level = ++levels;
  private readonly nodes: Node[] = [];
  private nextId = 0;

  /** Marks `t` as an input to differentiate with respect to. */
  leaf(t: Tensor): Tensor {
    if (t.trace !== undefined && t.trace.tape !== this) {
      throw new Error('higher-order differentiation (grad of grad) is not supported: pass plain tensors into the inner call');
    }
    return internal.share(t, t.shape, { tape: this, id: this.nextId++ });
  }

  record(prim: string, inputs: readonly Tensor[], output: Tensor, params: unknown): Tensor {
    const id = this.nextId++;
    this.nodes.push({ id, prim: prim as Primitive, inputs, output: untraced(output), params });
    return internal.share(output, output.shape, { tape: this, id });
  }

  /**
   * Cotangents of every traced tensor reachable backwards from `output`, seeded
   * with `seed` (same shape as output). Returns them by trace id.
   */
  backward(output: Tensor, seed: Tensor): Map<number, Tensor> {
    const cts = new Map<number, Tensor>();
    if (output.trace?.tape !== this) return cts;
    cts.set(output.trace.id, seed);
    for (let n = this.nodes.length - 1; n >= 0; n--) {
      const node = this.nodes[n]!;
      const ct = cts.get(node.id);
      if (ct === undefined) continue;
      cts.delete(node.id); // intermediates' cotangents are no longer needed
      const rule = rules[node.prim] as unknown as Rule<'add'>;
      const plainInputs = node.inputs.map(untraced) as unknown as readonly [Tensor, Tensor];
      const thunks = rule.vjp(ct, plainInputs, node.output, node.params as null);
      node.inputs.forEach((inp, i) => {
        const tr = inp.trace;
        if (tr === undefined || tr.tape !== this) return;
        let g = thunks[i]!();
        if (g.dtype !== inp.dtype) g = cast(g, inp.dtype);
        const prev = cts.get(tr.id);
        cts.set(tr.id, prev === undefined ? g : add(prev, g));
      });
    }
    return cts;
  }
}
