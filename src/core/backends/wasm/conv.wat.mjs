/**
 * Direct convolution at stride 1 (functions of the GEMM's module, over the same
 * memory): the product im2col + GEMM computes, without writing the column
 * matrix or regrouping the result. Each output element is the GEMM's own
 * arithmetic: one `madd` chain over the taps (c, a, b) in column order, from
 * zero, per block of KC taps, the blocks after the first added onto the stored
 * value (gemm.wat's `accum`); taps outside the image read the zeros of a padded
 * copy, as the column matrix holds zeros there. So the result is the GEMM
 * path's bit for bit (test/core/cpu-image-kernels.test.ts compares them).
 *
 * Tiles of 6 filters × 8 output columns, twelve accumulators as the GEMM's
 * micro-kernel; the 8 columns are two unaligned vector loads from a padded row.
 * Addresses in bytes.
 */

import { chunked, gets, lanes, loop, storeTileRow } from './wat.mjs';

const ROWS = 6;

/** `madd(a, b, c)` = a·b + c as the GEMM computes it (relaxed FMA or mul + add). */
export const convWat = (shared, madd, KC) => {
  const rows = Array.from({ length: ROWS }, (_, r) => r);
  const zero = rows
    .map(
      (r) => `
              (local.set $c${r}0 (v128.const i32x4 0 0 0 0)) (local.set $c${r}1 (v128.const i32x4 0 0 0 0))`,
    )
    .join('');
  const fma = rows
    .map(
      (r) => `
                (local.set $av (v128.load32_splat offset=${r * 4} (local.get $w)))
                (local.set $c${r}0 ${madd('(local.get $av)', '(local.get $x0)', `(local.get $c${r}0)`)})
                (local.set $c${r}1 ${madd('(local.get $av)', '(local.get $x1)', `(local.get $c${r}1)`)})`,
    )
    .join('');
  const store = rows
    .map(
      (r) => `
              (if (i32.gt_u (local.get $rows) (i32.const ${r}))
                (then
                  (local.set $dst (i32.add (local.get $o) (i32.mul (i32.const ${r}) (local.get $plane))))${storeTileRow(r, '(local.get $kb)')}))`,
    )
    .join('');
  const accs = rows.map((r) => `(local $c${r}0 v128) (local $c${r}1 v128)`).join(' ');

  return `
  ;; The tile's filter count, for the host's packing.
  (global (export "CONV_ROWS") i32 (i32.const ${ROWS}))

  ;; One padded image xp (C planes of HP×WP floats) against packed filters wp
  ;; (blocks of ${ROWS} filters: [block][tap][${ROWS}] floats, zero past F) into out
  ;; [F, OH, OW] (OW a multiple of 8). offs: each tap's byte offset in xp,
  ;; ((c·HP + a)·WP + b)·4, in column order.
  (func $convImage (param $xp i32) (param $wp i32) (param $offs i32) (param $out i32)
    (param $ckk i32) (param $F i32) (param $OH i32) (param $OW i32) (param $WP i32)
    (local $f0 i32) (local $rows i32) (local $i i32) (local $j i32) (local $t i32) (local $kb i32) (local $kend i32)
    (local $xr i32) (local $p i32) (local $w i32) (local $o i32) (local $dst i32) (local $plane i32) (local $tap i32)
    (local $x0 v128) (local $x1 v128) (local $av v128) ${accs}
    (local.set $plane (i32.shl (i32.mul (local.get $OH) (local.get $OW)) (i32.const 2)))${loop(
      '$f0',
      '(local.get $F)',
      `
      (local.set $rows (i32.sub (local.get $F) (local.get $f0)))${loop(
        '$i',
        '(local.get $OH)',
        loop(
          '$j',
          '(local.get $OW)',
          `
          (local.set $xr (i32.add (local.get $xp) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $WP)) (local.get $j)) (i32.const 2))))
          ;; output (filter f0, row i, column j)
          (local.set $o (i32.add (i32.add (local.get $out) (i32.mul (local.get $f0) (local.get $plane)))
            (i32.shl (i32.add (i32.mul (local.get $i) (local.get $OW)) (local.get $j)) (i32.const 2))))
          (local.set $kb (i32.const 0))
          (block $doneK (loop $nextK
            (br_if $doneK (i32.ge_s (local.get $kb) (local.get $ckk)))
            (local.set $kend (select (local.get $ckk) (i32.add (local.get $kb) (i32.const ${KC}))
              (i32.gt_s (i32.add (local.get $kb) (i32.const ${KC})) (local.get $ckk))))${zero}
            ;; filter block f0 / ${ROWS}, tap kb: wp + 4·(f0·ckk + kb·${ROWS})
            (local.set $w (i32.add (local.get $wp) (i32.shl (i32.add (i32.mul (local.get $f0) (local.get $ckk)) (i32.mul (local.get $kb) (i32.const ${ROWS}))) (i32.const 2))))
            (local.set $tap (i32.add (local.get $offs) (i32.shl (local.get $kb) (i32.const 2))))
            (local.set $t (i32.add (local.get $offs) (i32.shl (local.get $kend) (i32.const 2))))
            (loop $nextT
                (local.set $p (i32.add (local.get $xr) (i32.load (local.get $tap))))
                (local.set $x0 (v128.load (local.get $p)))
                (local.set $x1 (v128.load offset=16 (local.get $p)))${fma}
              (local.set $w (i32.add (local.get $w) (i32.const ${ROWS * 4})))
              (local.set $tap (i32.add (local.get $tap) (i32.const 4)))
              (br_if $nextT (i32.lt_u (local.get $tap) (local.get $t))))${store}
            (local.set $kb (local.get $kend))
            (br $nextK)))`,
          'j',
          { step: 8 },
        ),
      )}`,
      'f0',
      { step: ROWS },
    )})

  ;; Image x (C planes of H×W floats) into the middle of xp (C planes of HP×WP,
  ;; zero borders of \`pad\` that this leaves as they are).
  (func $padImage (param $x i32) (param $xp i32) (param $C i32) (param $H i32) (param $W i32) (param $pad i32) (param $HP i32) (param $WP i32)
    (local $c i32) (local $r i32) (local $k i32) (local $src i32) (local $dst i32)
    (local.set $src (local.get $x))${loop(
      '$c',
      '(local.get $C)',
      loop(
        '$r',
        '(local.get $H)',
        `
        (local.set $dst (i32.add (local.get $xp) (i32.shl
          (i32.add (i32.mul (i32.add (i32.mul (local.get $c) (local.get $HP)) (i32.add (local.get $r) (local.get $pad))) (local.get $WP)) (local.get $pad))
          (i32.const 2))))${lanes(
            '$k',
            '(local.get $W)',
            [
              ['$src', 4],
              ['$dst', 4],
            ],
            `
          (v128.store (local.get $dst) (v128.load (local.get $src)))`,
            `
          (f32.store (local.get $dst) (f32.load (local.get $src)))`,
          )}`,
      ),
    )})

  ;; conv2d at stride 1 over images [n0, n1) of x [N, C, H, W] into out [N, F, OH, OW],
  ;; each image padded into xp (C·HP·WP floats of this thread's scratch, zeroed here first).
  (func $convImages (export "convImages") (param $x i32) (param $wp i32) (param $offs i32) (param $out i32) (param $xp i32)
    (param $n0 i32) (param $n1 i32) (param $C i32) (param $H i32) (param $W i32) (param $pad i32) (param $F i32) (param $ckk i32) (param $OH i32) (param $OW i32)
    (local $HP i32) (local $WP i32) (local $n i32)
    (local.set $HP (i32.add (local.get $H) (i32.shl (local.get $pad) (i32.const 1))))
    (local.set $WP (i32.add (local.get $W) (i32.shl (local.get $pad) (i32.const 1))))
    (memory.fill (local.get $xp) (i32.const 0) (i32.shl (i32.mul (local.get $C) (i32.mul (local.get $HP) (local.get $WP))) (i32.const 2)))
${loop(
  '$n',
  '(local.get $n1)',
  `
      (call $padImage (i32.add (local.get $x) (i32.shl (i32.mul (local.get $n) (i32.mul (local.get $C) (i32.mul (local.get $H) (local.get $W)))) (i32.const 2)))
        (local.get $xp) (local.get $C) (local.get $H) (local.get $W) (local.get $pad) (local.get $HP) (local.get $WP))
      (call $convImage (local.get $xp) (local.get $wp) (local.get $offs)
        (i32.add (local.get $out) (i32.shl (i32.mul (local.get $n) (i32.mul (local.get $F) (i32.mul (local.get $OH) (local.get $OW)))) (i32.const 2)))
        (local.get $ckk) (local.get $F) (local.get $OH) (local.get $OW) (local.get $WP))`,
  'n',
  { from: '(local.get $n0)' },
)})
${
  shared
    ? `
  ;; convImages over chunks of images, each thread with its own xp: each image's output computed whole by one thread.
${chunked('convChunks', 'x wp offs out xp N C H W pad F ckk OH OW', 'N', `(call $convImages ${gets('x wp offs out xp start end C H W pad F ckk OH OW')})`)}`
    : ''
}`;
};
