// Pieces of WebAssembly text the kernel generators share (gemm.wat.mjs,
// image.wat.mjs, conv.wat.mjs): loops, addresses, the chunked form two threads
// share, and a register tile's row store.

/**
 * Loop `$v` from `from` (0) while `$v < limit`, stepping by `step` (1), with
 * `body` inside; labels from `tag`.
 */
export const loop = (v, limit, body, tag = v.slice(1), { from = '(i32.const 0)', step = 1 } = {}) => `
    (local.set ${v} ${from})
    (block $done_${tag} (loop $next_${tag}
      (br_if $done_${tag} (i32.ge_s (local.get ${v}) ${limit}))${body}
      (local.set ${v} (i32.add (local.get ${v}) (i32.const ${step})))
      (br $next_${tag})))`;

/**
 * A loop over `n` elements, four at a time and then one at a time: `vec` and
 * `one` are the two bodies; `ptrs` the byte pointers both advance, each with its
 * element size in bytes. `n` is an expression (e.g. `(local.get $n)`).
 */
export const lanes = (i, n, ptrs, vec, one) => {
  const bump = (per) =>
    ptrs
      .map(
        ([ptr, size]) => `
      (local.set ${ptr} (i32.add (local.get ${ptr}) (i32.const ${per * size})))`,
      )
      .join('');
  return `
    (local.set ${i} (i32.const 0))
    (block $done4 (loop $next4
      (br_if $done4 (i32.gt_u (i32.add (local.get ${i}) (i32.const 4)) ${n}))${vec}${bump(4)}
      (local.set ${i} (i32.add (local.get ${i}) (i32.const 4)))
      (br $next4)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get ${i}) ${n}))${one}${bump(1)}
      (local.set ${i} (i32.add (local.get ${i}) (i32.const 1)))
      (br $next)))`;
};

export const get = (v) => `(local.get ${v})`;
/** Byte address of element `i` (an i32 expression) after `base`. */
export const at = (base, i) => `(i32.add ${base} (i32.shl ${i} (i32.const 2)))`;

/** WAT parameters, each i32, from space-separated names. */
const i32Params = (names) =>
  names
    .split(' ')
    .map((n) => `(param $${n} i32)`)
    .join(' ');
/** `(local.get $…)` of each space-separated name. */
export const gets = (names) =>
  names
    .split(' ')
    .map((n) => `(local.get $${n})`)
    .join(' ');

/**
 * An exported function `name` that runs `call` (WAT using $start and $end) over
 * chunks [start, end) of $chunk units of the parameter `total`, taken through the
 * atomic counter at $counter by whichever thread calling it with the same
 * arguments is free (as gemmChunks): units are computed apart, so the split never
 * changes a result. `names`: its parameters before $chunk and $counter (i32s);
 * `locals`: more locals `call` uses. Calls the module's $min.
 */
export const chunked = (name, names, total, call, locals = '') => `
  (func (export "${name}") ${i32Params(names)} (param $chunk i32) (param $counter i32)
    (local $start i32) (local $end i32) ${locals}
    (block $done (loop $next
      (local.set $start (i32.mul (i32.atomic.rmw.add (local.get $counter) (i32.const 1)) (local.get $chunk)))
      (br_if $done (i32.ge_u (local.get $start) (local.get $${total})))
      (local.set $end (i32.add (local.get $start) (call $min (local.get $chunk) (i32.sub (local.get $${total}) (local.get $start)))))
      ${call}
      (br $next))))`;

/**
 * Row r of a 6×8 register tile (accumulators $c{r}0, $c{r}1) into the 8 floats at
 * $dst: stored, or added onto them when `accum` (a WAT condition) holds, as the
 * GEMM adds a later K block's products (gemm.wat, conv.wat).
 */
export const storeTileRow = (r, accum) => `
          (if ${accum}
            (then
              (v128.store (local.get $dst) (f32x4.add (v128.load (local.get $dst)) (local.get $c${r}0)))
              (v128.store offset=16 (local.get $dst) (f32x4.add (v128.load offset=16 (local.get $dst)) (local.get $c${r}1))))
            (else
              (v128.store (local.get $dst) (local.get $c${r}0))
              (v128.store offset=16 (local.get $dst) (local.get $c${r}1))))`;
