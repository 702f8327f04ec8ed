/** A function handed to valueAndGrad that returns a plain number is named as such (it used to fail with "reading 'join'"). */
import { describe, expect, it } from 'vitest';
import { valueAndGrad } from '../../src/autodiff/index.js';
import { ones, type Tensor } from '../../src/core/index.js';

describe('valueAndGrad of a function that does not return a tensor', () => {
  it('says what it got', () => {
    expect(() => valueAndGrad((_p: Tensor) => 3 as unknown as Tensor)(ones([2]))).toThrow(
      'valueAndGrad: the function must return a Tensor computed from its argument, got the plain number 3',
    );
    expect(() => valueAndGrad((_p: Tensor) => undefined as unknown as Tensor)(ones([2]))).toThrow(/got undefined$/);
  });
});
