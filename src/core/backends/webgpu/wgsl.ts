/**
 * Shared pieces of the backend's WGSL: bindings, one thread per output element
 * on a grid that stays under the 65,535 workgroups a dimension allows, literals,
 * and the element-wise template. Shapes are baked into each shader as
 * constants (the executor compiles each distinct source once), so indexing is
 * integer arithmetic on constants.
 *
 * Element-wise kernels are an expression over v0, v1, … (the operands' values
 * at the output's index): a later fused shader (jit) can splice several such
 * expressions into one `main` with the same template.
 */
import { stridesOf, type Shape } from '../../shape.js';

/** Threads per workgroup of the one-thread-per-element kernels. */
export const WG = 256;
const MAX_GROUPS = 65535;

/**
 * Non-finite values as bit patterns in private variables: a constant
 * `bitcast<f32>(0x7fc00000u)` is a const-expression, which WGSL rejects for
 * NaN and infinities; a read of a variable is evaluated at run time. Declared by
 * `bindings` (so every shader that uses `f32` of a non-finite value has them).
 */
export const NONFINITE = `var<private> BITS_NAN: u32 = 0x7fc00000u;
var<private> BITS_INF: u32 = 0x7f800000u;
var<private> BITS_NINF: u32 = 0xff800000u;`;

/** A WGSL f32 literal of `x` (non-finite values through NONFINITE's variables: WGSL has no inf or NaN literal). */
export const f32 = (x: number): string => {
  if (Number.isNaN(x)) return 'bitcast<f32>(BITS_NAN)';
  if (x === Infinity) return 'bitcast<f32>(BITS_INF)';
  if (x === -Infinity) return 'bitcast<f32>(BITS_NINF)';
  const v = Math.fround(x);
  if (Object.is(v, -0)) return '-0.0';
  const s = v.toPrecision(9);
  return /[.eE]/.test(s) ? `f32(${s})` : `f32(${s}.0)`;
};

/** Workgroups for `n` threads of WG each, as (x, y) with x ≤ 65535, and the flat-index stride of y. */
export const grid1d = (n: number): { gx: number; gy: number; stride: number } => {
  const groups = Math.max(1, Math.ceil(n / WG));
  const gx = Math.min(groups, MAX_GROUPS);
  return { gx, gy: Math.ceil(groups / gx), stride: gx * WG };
};

/** Storage bindings: inputs read-only (`a0`, `a1`, …), then outputs read-write (`out`, or `out0`, `out1`, …). */
export const bindings = (inputs: number, outputs = 1, inputType = 'f32'): string => {
  const lines: string[] = [NONFINITE];
  for (let k = 0; k < inputs; k++) lines.push(`@group(0) @binding(${k}) var<storage, read> a${k}: array<${k === 0 ? inputType : 'f32'}>;`);
  for (let k = 0; k < outputs; k++) lines.push(`@group(0) @binding(${inputs + k}) var<storage, read_write> out${outputs === 1 ? '' : k}: array<f32>;`);
  return lines.join('\n');
};

/** The entry point of a one-thread-per-element kernel over `n` elements: binds `i`, returns past the end. */
export const elementMain = (n: number, body: string): string => {
  const { stride } = grid1d(n);
  return [
    `@compute @workgroup_size(${WG})`,
    'fn main(@builtin(global_invocation_id) gid: vec3<u32>) {',
    `  let i = gid.x + gid.y * ${stride}u;`,
    `  if (i >= ${n}u) { return; }`,
    body,
    '}',
  ].join('\n');
};

/**
 * Per operand, how its flat index follows from the output's coordinates: `null`
 * reads element i itself; otherwise one stride per output axis (0 where the
 * operand is broadcast along it).
 */
export type Access = readonly number[] | null;

/** Strides over `outShape`'s axes for an operand of `inShape` broadcast to it (NumPy rules). */
export const broadcastAccess = (inShape: Shape, outShape: Shape): Access => {
  if (inShape.length === outShape.length && inShape.every((d, i) => d === outShape[i])) return null;
  const st = stridesOf(inShape);
  const off = outShape.length - inShape.length;
  return outShape.map((_, d) => (d < off || inShape[d - off] === 1 ? 0 : st[d - off]!));
};

/** Access strides of a transpose: output axis d reads input axis perm[d]. */
export const transposeAccess = (inShape: Shape, perm: readonly number[]): Access => {
  const st = stridesOf(inShape);
  return perm.every((p, d) => p === d) ? null : perm.map((p) => st[p]!);
};

/** WGSL binding c0, c1, … to the coordinates of flat index `i` in `shape` (only the axes `used`). */
export const coordLines = (shape: Shape, used: readonly boolean[], index = 'i'): string[] => {
  const st = stridesOf(shape);
  return shape.flatMap((d, k) => (used[k] && d !== 1 ? [`  let c${k} = (${index} / ${st[k]}u) % ${d}u;`] : []));
};

/** The flat index of `access` in terms of c0, c1, … */
export const indexExpr = (access: readonly number[], shape: Shape): string => {
  const terms = access.flatMap((s, d) => (s === 0 || shape[d] === 1 ? [] : [s === 1 ? `c${d}` : `c${d} * ${s}u`]));
  return terms.length === 0 ? '0u' : terms.join(' + ');
};

/**
 * An element-wise kernel: operand k read at its access as `v{k}`, the output
 * `out[i] = expr` (or `body` statements that assign `out[i]`). `helpers` are
 * WGSL functions placed before main.
 */
export const mapShader = (outShape: Shape, access: readonly Access[], expr: string, helpers = ''): string => {
  const n = outShape.reduce((p, d) => p * d, 1);
  const used = outShape.map((_, d) => access.some((a) => a !== null && a[d] !== 0));
  const reads = access.map((a, k) => `  let v${k} = a${k}[${a === null ? 'i' : indexExpr(a, outShape)}];`);
  return [bindings(access.length), helpers, elementMain(n, [...coordLines(outShape, used), ...reads, `  out[i] = ${expr};`].join('\n'))].join('\n');
};
