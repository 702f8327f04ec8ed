// How a user property-tests the gradient of their own layer with tapegrad/testing:
// random parameters and inputs from arbitraries, the tape's gradient against
// central differences, and the O(ε²) convergence that exposes a subtly wrong VJP.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { crossEntropy, sum, type Tensor } from 'tapegrad';
import { expectGradients, tensorArb, treeArb } from 'tapegrad/testing';
import { gatedDense, isru, type GatedParams } from './custom-layer.js';

describe('my gatedDense layer', () => {
  const layer = gatedDense(4, 3);

  it("isru's hand-written VJP matches finite differences, converging at O(ε²)", () => {
    fc.assert(
      fc.property(tensorArb({ shape: [2, 5], min: -4, max: 4 }), (x) => {
        expectGradients((p: Tensor) => sum(isru(p)), x);
      }),
      { numRuns: 30 },
    );
  });

  it('the gradient of a loss through the layer, for every parameter and the input', () => {
    fc.assert(
      fc.property(treeArb({ w: [4, 3], b: [3], gate: [3] } as const), tensorArb({ shape: [5, 4] }), (params, x) => {
        expectGradients((p: GatedParams) => crossEntropy(layer.apply(p, x), [0, 2, 1, 1, 0]), params);
        expectGradients((input: Tensor) => sum(layer.apply(params, input)), x);
      }),
      { numRuns: 15 },
    );
  });
});
