/**
 * A tensor as text, like numpy's repr: nested brackets, one row per line,
 * values in a common width, and large tensors summarized with `...` (the
 * first and last 3 entries of each axis once there are over 1000 values,
 * numpy's edgeitems and threshold).
 */
import type { Data, DType } from './primitives.js';
import type { Shape } from './shape.js';

const THRESHOLD = 1000;
const EDGE = 3;

/** One value: at most 4 decimals, trailing zeros dropped, integers as `1.` (numpy's float style). */
const formatFloat = (v: number): string => {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e8 || a < 1e-4)) return v.toExponential(4).replace(/\.?0+e/, 'e');
  const s = v.toFixed(4).replace(/0+$/, '');
  return s === '-0.' ? '0.' : s;
};

/** `prefix(values)` with nested rows indented under the first bracket; int32 values as integers, bool ones as true and false. */
export const formatTensor = (data: Data, shape: Shape, prefix: string, suffix: string, dtype: DType = 'float32'): string => {
  const formatValue = dtype === 'int32' ? String : dtype === 'bool' ? (v: number) => String(v !== 0) : formatFloat;
  const summarize = data.length > THRESHOLD;
  const strides: number[] = [];
  for (let i = shape.length - 1, s = 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  const indices = (n: number): Array<number | '...'> =>
    summarize && n > 2 * EDGE
      ? [...Array.from({ length: EDGE }, (_, i) => i), '...', ...Array.from({ length: EDGE }, (_, i) => n - EDGE + i)]
      : Array.from({ length: n }, (_, i) => i);
  // Width from the values that are printed.
  const shown: number[] = [];
  const collect = (axis: number, off: number): void => {
    if (axis === shape.length) {
      shown.push(data[off]!);
      return;
    }
    for (const i of indices(shape[axis]!)) if (i !== '...') collect(axis + 1, off + i * strides[axis]!);
  };
  collect(0, 0);
  const width = Math.max(1, ...shown.map((v) => formatValue(v).length));
  const pad = ' '.repeat(prefix.length + 1);
  const build = (axis: number, off: number): string => {
    if (axis === shape.length) return formatValue(data[off]!).padStart(width);
    const parts = indices(shape[axis]!).map((i) => (i === '...' ? '...' : build(axis + 1, off + i * strides[axis]!)));
    const depth = shape.length - axis - 1;
    const sep = depth === 0 ? ', ' : `,${'\n'.repeat(depth)}${pad}${' '.repeat(axis)}`;
    return `[${parts.join(sep)}]`;
  };
  return `${prefix}(${build(0, 0)}${suffix})`;
};
