/**
 * Rules of `custom`: a function with a user-given VJP (`customVjp`).
 *
 * - Reverse mode runs the user's VJP, on values one level down, so an outer
 *   tape records it (second derivatives go through the user's VJP).
 * - Forward mode differentiates the user's forward (run again under a forward
 *   trace): a VJP says nothing about tangents.
 * - Batching makes a new custom primitive whose forward and VJP are the user's,
 *   batched: reverse mode over the batched function still uses the user's VJP.
 */
import { bind, broadcastTo } from '../../core/ops.js';
import type { CustomRule } from '../../core/primitives.js';
import { sameShape, ShapeError, showShape } from '../../core/shape.js';
import type { Tensor } from '../../core/tensor.js';
import { batchedCall } from '../batching.js';
import { jvpOf } from '../forward.js';
import type { RuleTable } from './types.js';

export const customRules: RuleTable<'custom'> = {
  custom: {
    vjp: (ct, inputs, y, rule) => {
      // Computed once, on first demand, then shared by every input's thunk.
      let gs: readonly Tensor[] | undefined;
      const all = () => {
        if (gs === undefined) {
          gs = rule.vjp(ct, inputs, y);
          if (gs.length !== inputs.length) throw new Error(`customVjp '${rule.name}': vjp returned ${gs.length} cotangents for ${inputs.length} inputs`);
          gs.forEach((g, i) => {
            if (!sameShape(g.shape, inputs[i]!.shape)) {
              throw new ShapeError(`customVjp '${rule.name}': the cotangent of input ${i} has shape ${showShape(g.shape)} but the input ${showShape(inputs[i]!.shape)}`);
            }
          });
        }
        return gs;
      };
      return inputs.map((_x, i) => () => all()[i]!);
    },
    jvp: (tangents, inputs, _y, rule) => jvpOf((xs) => rule.forward(xs), inputs, tangents),
    batch: (values, batched, rule, size) => {
      const xs = values.map((v, i) => (batched[i] ? v : broadcastTo(v, [size, ...v.shape])));
      const inner: CustomRule = {
        name: rule.name,
        forward: (ins) => batchedCall(size, ins, (ts) => [rule.forward(ts)])[0]!,
        vjp: (ct, ins, out) => batchedCall(size, [ct, out, ...ins], ([c, o, ...ts]) => rule.vjp(c!, ts, o!)),
      };
      return bind('custom', xs, inner);
    },
  },
};
