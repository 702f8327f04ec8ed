/**
 * Rules of `custom`: a function with a user-given VJP (`customVjp`).
 *
 * - Reverse mode runs the user's VJP, on values one level down, so an outer
 *   tape records it (second derivatives go through the user's VJP).
 * - Forward mode transposes the user's VJP (it is linear in the cotangent), so
 *   jvp, hvp and Hessians agree with grad, estimators such as straight-through
 *   included; the VJP must be written in tapegrad ops for this.
 * - Batching makes a new custom primitive whose forward and VJP are the user's,
 *   batched: reverse mode over the batched function still uses the user's VJP.
 */
import { add, bind, broadcastTo, mul, sameShape, ShapeError, showShape, sum, zeros, type CustomRule, type Tensor } from '../../core/index.js';
import { batchedCall } from '../batching.js';
import { gradOf } from '../tape.js';
import type { RuleTable } from './types.js';

/** The user's cotangents, checked: one per input, each of its input's shape. */
const userVjp = (rule: CustomRule, ct: Tensor, inputs: readonly Tensor[], y: Tensor): readonly Tensor[] => {
  const gs = rule.vjp(ct, inputs, y);
  if (gs.length !== inputs.length) throw new Error(`customVjp '${rule.name}': vjp returned ${gs.length} cotangents for ${inputs.length} inputs`);
  gs.forEach((g, i) => {
    if (!sameShape(g.shape, inputs[i]!.shape)) {
      throw new ShapeError(
        `customVjp '${rule.name}': the cotangent of input ${i} has shape ${showShape(g.shape)} but the input ${showShape(inputs[i]!.shape)}`,
      );
    }
  });
  return gs;
};

export const customRules: RuleTable<'custom'> = {
  custom: {
    vjp: (ct, inputs, y, rule) => {
      // Computed once, on first demand, then shared by every input's thunk.
      let gs: readonly Tensor[] | undefined;
      const all = () => (gs ??= userVjp(rule, ct, inputs, y));
      return inputs.map((_x, i) => () => all()[i]!);
    },
    // The user's VJP is the linear map ct ↦ Jᵀct; its transpose J t is the gradient in ct of ⟨Jᵀct, t⟩
    // (at any ct: it is linear), so forward mode agrees with reverse mode (a straight-through estimator included).
    jvp: (tangents, inputs, y, rule) => {
      if (tangents.every((t) => t === null)) return null;
      const [jt] = gradOf(
        ([ct]) => {
          const gs = userVjp(rule, ct!, inputs, y);
          return tangents.reduce<Tensor>((acc, t, i) => (t === null ? acc : add(acc, sum(mul(gs[i]!, t)))), zeros([], y.dtype, y.backend));
        },
        [zeros(y.shape, y.dtype, y.backend)],
      );
      return jt ?? null;
    },
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
