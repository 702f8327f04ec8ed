/**
 * dtypes: their names checked at run time, and the promotion rule of mixed
 * operands (JAX's lattice, bool < int32 < float32 < float64, with JavaScript
 * numbers weakly typed).
 */
import { DTYPES, type DType, type FloatDType } from './primitives.js';

/** Whether a value is one of tapegrad's dtype names. */
export const isDType = (d: unknown): d is DType => typeof d === 'string' && (DTYPES as readonly string[]).includes(d);

/** Why `dtype` is not one tapegrad has, or undefined when it is (a run-time check: JavaScript callers pass any string). */
export const badDType = (dtype: unknown, who: string): string | undefined =>
  isDType(dtype)
    ? undefined
    : `${who}: dtype ${typeof dtype === 'string' ? `'${dtype}'` : String(dtype)} is not one of ${DTYPES.map((d) => `'${d}'`).join(', ')}`;

/** Throws a TypeError for a dtype tapegrad does not have. */
export const checkDType = (dtype: unknown, who: string): DType => {
  const bad = badDType(dtype, who);
  if (bad !== undefined) throw new TypeError(bad);
  return dtype as DType;
};

/**
 * The dtype two operands of mixed dtypes compute in: the larger in the order
 * bool < int32 < float32 < float64 (JAX's lattice without its small types; as
 * NumPy's too, except that int32 with float32 gives float32, not float64).
 * A JavaScript number is weakly typed (`weakType`).
 *
 * @example
 * promoteTypes('int32', 'float32') // 'float32'
 * promoteTypes('bool', 'int32') // 'int32'
 */
export const promoteTypes = (a: DType, b: DType): DType => {
  checkDType(a, 'promoteTypes');
  checkDType(b, 'promoteTypes');
  return DTYPES.indexOf(a) >= DTYPES.indexOf(b) ? a : b;
};

/**
 * The dtype a JavaScript number takes next to a tensor of dtype `d` (a weak
 * type, as a Python scalar in JAX): the tensor's own dtype, except that a
 * number that is not an integer next to an int32 or bool tensor is float32,
 * and an integer other than 0 and 1 next to a bool tensor is int32.
 */
export const weakType = (d: DType, v: number): DType =>
  d === 'float32' || d === 'float64'
    ? d
    : !Number.isInteger(v)
      ? 'float32'
      : d === 'bool' && v !== 0 && v !== 1
        ? 'int32'
        : d === 'bool'
          ? 'bool'
          : Math.abs(v) < 2 ** 31
            ? 'int32'
            : 'float32';

/** Throws a TypeError unless `dtype` is float32 or float64 (what draws and float-only constructors make). */
export const checkFloatDType = (dtype: unknown, who: string): FloatDType => {
  const d = checkDType(dtype, who);
  if (d !== 'float32' && d !== 'float64')
    throw new TypeError(`${who}: makes floats, not ${d}: ask for float32 or float64 and cast the result (cast(x, '${d}'))`);
  return d;
};
