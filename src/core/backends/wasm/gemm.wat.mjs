// The float32 GEMM kernel as WebAssembly text, generated for two instruction
// sets: `relaxed` (f32x4.relaxed_madd, lowered to vfmadd231ps by V8) and `simd`
// (f32x4.mul + f32x4.add, for engines without relaxed SIMD).
//
// Design (see shared/docs/perf-notes.md): BLIS-style blocking (NC 512, KC 256,
// MC 144); A packed into 6-row and B into 8-column k-major panels, zero-padded,
// transposes handled by strides in the packers; a 6×8 micro-kernel holding twelve
// v128 accumulators. Twelve, not eight: V8 spends about as many instructions on
// addresses, loop and interrupt checks per k step as on the FMAs, and a 4×8 tile
// (8 FMAs a step) leaves the core issue-bound; 6×8 uses 15 of the 16 xmm
// registers (12 + two B vectors + the broadcast A value) without spilling.
// Unrolling k measured slower. MR 4 still builds, for comparison.
//
// gemm(m, n, k, a, sai, sap, b, sbp, sbj, c, ldc, ap, bp, scratch):
//   C[i, j] = Σ_p A(i, p) · B(p, j), with A(i, p) = f32 at a + 4(i·sai + p·sap),
//   B(p, j) at b + 4(p·sbp + j·sbj), C row-major with leading dimension ldc.
//   All addresses are byte offsets into the imported memory.

import { convWat } from './conv.wat.mjs';
import { imageWat } from './image.wat.mjs';
import { chunked, lanes, storeTileRow } from './wat.mjs';

export const BLOCK = { NC: 512, KC: 256, MC: 144, MR: 6, NR: 8 };

const madd = (relaxed, a, b, c) => (relaxed ? `(f32x4.relaxed_madd ${a} ${b} ${c})` : `(f32x4.add (f32x4.mul ${a} ${b}) ${c})`);

/**
 * addParts' loop body for one vector (`v128`) or one float (`f32`) of dst: sums
 * the count parts at that position into `acc`, in order, and stores it.
 */
const joinParts = (acc, type, add) => `
      (local.set ${acc} (${type}.load (local.get $dst)))
      (local.set $src (local.get $parts))
      (local.set $t (i32.const 0))
      (block $doneT (loop $nextT
        (br_if $doneT (i32.ge_u (local.get $t) (local.get $count)))
        (local.set ${acc} (${add} (local.get ${acc}) (${type}.load (local.get $src))))
        (local.set $src (i32.add (local.get $src) (local.get $stride)))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $nextT)))
      (${type}.store (local.get $dst) (local.get ${acc}))`;

/**
 * The module text. `shared`: import a shared memory (the GEMM, which two threads
 * run on); false builds the same kernels over a private memory, which the host
 * copies into and out of at plain memcpy speed (V8 copies typed arrays into and
 * out of a SharedArrayBuffer element by element, 2-3x slower), for the
 * one-thread element-wise kernels.
 */
export const gemmWat = (relaxed, shared = true) => {
  const { NC, KC, MC, MR } = BLOCK;
  if (MR !== 4 && MR !== 6) throw new Error(`gemmWat: MR must be 4 or 6, not ${MR}`);
  const pair = MR === 6; // rows 4-5 of a panel move as one 64-bit lane
  // Interleave the low (LO) or high (HI) halves of two vectors' 32-bit lanes.
  const LO = '0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23',
    HI = '8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31';
  const rows = Array.from({ length: MR }, (_, r) => r);
  const acc = rows.flatMap((r) => [`$c${r}0`, `$c${r}1`]);
  const fma = rows
    .map(
      (r) => `
        (local.set $av (v128.load32_splat offset=${r * 4} (local.get $ap)))
        (local.set $c${r}0 ${madd(relaxed, '(local.get $av)', '(local.get $b0)', `(local.get $c${r}0)`)})
        (local.set $c${r}1 ${madd(relaxed, '(local.get $av)', '(local.get $b1)', `(local.get $c${r}1)`)})`,
    )
    .join('');
  const storeFull = rows
    .map(
      (r) => `
        (local.set $dst (i32.add (local.get $c) (i32.mul (i32.const ${r}) (local.get $ldc4))))${storeTileRow(r, '(local.get $accum)')}`,
    )
    .join('');
  const storeScratch = rows
    .map(
      (r) => `
        (v128.store offset=${r * 32} (local.get $scratch) (local.get $c${r}0))
        (v128.store offset=${r * 32 + 16} (local.get $scratch) (local.get $c${r}1))`,
    )
    .join('');

  return `(module
  (import "env" "memory" (memory 1 65536${shared ? ' shared' : ''}))

  ;; The blocking, exported so the host sizes the pack buffers from this one source.
  (global (export "NC") i32 (i32.const ${NC}))
  (global (export "KC") i32 (i32.const ${KC}))
  (global (export "MC") i32 (i32.const ${MC}))
  (global (export "MR") i32 (i32.const ${MR}))

  ;; A block (mc × kc) into ${MR}-row panels: ap[panel][p][r], zero rows past mc.
  (func $packA (param $a i32) (param $sai i32) (param $sap i32) (param $mc i32) (param $kc i32) (param $ap i32)
    (local $i i32) (local $p i32) (local $r i32) (local $src i32) (local $rowStep i32) (local $colStep i32) (local $dst i32)
    (local $r0 v128) (local $r1 v128) (local $r2 v128) (local $r3 v128) (local $r4 v128) (local $r5 v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $rowStep (i32.shl (local.get $sai) (i32.const 2)))
    (local.set $colStep (i32.shl (local.get $sap) (i32.const 2)))
    (local.set $i (i32.const 0))
    (block $doneI (loop $nextI
      (br_if $doneI (i32.ge_u (local.get $i) (local.get $mc)))
      (if (i32.and (i32.eq (local.get $sai) (i32.const 1)) (i32.le_u (i32.add (local.get $i) (i32.const ${MR})) (local.get $mc)))
        (then
          ;; Aᵀ stored: the panel's ${MR} values at each k are contiguous.
          (local.set $src (i32.add (local.get $a) (i32.shl (local.get $i) (i32.const 2))))
          (local.set $dst (local.get $ap))
          (local.set $p (i32.const 0))
          (block $doneV (loop $nextV
            (br_if $doneV (i32.ge_u (local.get $p) (local.get $kc)))
            (v128.store (local.get $dst) (v128.load (local.get $src)))${
              pair
                ? `
            (i64.store offset=16 (local.get $dst) (i64.load offset=16 (local.get $src)))`
                : ''
            }
            (local.set $src (i32.add (local.get $src) (local.get $colStep)))
            (local.set $dst (i32.add (local.get $dst) (i32.const ${MR * 4})))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (br $nextV))))
        (else (if (i32.and
                    (i32.and (i32.eq (local.get $sap) (i32.const 1)) (i32.le_u (i32.add (local.get $i) (i32.const ${MR})) (local.get $mc)))
                    (i32.eqz (i32.and (local.get $kc) (i32.const 3))))
          (then
            ;; Row-major A: load ${MR} rows × 4 k, transpose in registers.
            (local.set $src (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $rowStep))))
            (local.set $dst (local.get $ap))
            (local.set $p (i32.const 0))
            (block $doneT (loop $nextT
              (br_if $doneT (i32.ge_u (local.get $p) (local.get $kc)))
              (local.set $r0 (v128.load (local.get $src)))
              (local.set $r1 (v128.load (i32.add (local.get $src) (local.get $rowStep))))
              (local.set $r2 (v128.load (i32.add (local.get $src) (i32.shl (local.get $rowStep) (i32.const 1)))))
              (local.set $r3 (v128.load (i32.add (local.get $src) (i32.mul (local.get $rowStep) (i32.const 3)))))
              ;; t0 = r0[0] r1[0] r0[1] r1[1]; t1 = r0[2] r1[2] r0[3] r1[3]; likewise t2, t3 from r2, r3
              (local.set $t0 (i8x16.shuffle ${LO} (local.get $r0) (local.get $r1)))
              (local.set $t1 (i8x16.shuffle ${HI} (local.get $r0) (local.get $r1)))
              (local.set $t2 (i8x16.shuffle ${LO} (local.get $r2) (local.get $r3)))
              (local.set $t3 (i8x16.shuffle ${HI} (local.get $r2) (local.get $r3)))
              ;; rows 0-3 of k column q = (r0[q], r1[q], r2[q], r3[q]), at q·${MR * 4} bytes
              (v128.store (local.get $dst) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
              (v128.store offset=${MR * 4} (local.get $dst) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
              (v128.store offset=${MR * 8} (local.get $dst) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
              (v128.store offset=${MR * 12} (local.get $dst) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3)))${
                pair
                  ? `
              ;; rows 4-5: (r4[q], r5[q]) as one 64-bit lane after them
              (local.set $r4 (v128.load (i32.add (local.get $src) (i32.shl (local.get $rowStep) (i32.const 2)))))
              (local.set $r5 (v128.load (i32.add (local.get $src) (i32.mul (local.get $rowStep) (i32.const 5)))))
              (local.set $t0 (i8x16.shuffle ${LO} (local.get $r4) (local.get $r5)))
              (local.set $t1 (i8x16.shuffle ${HI} (local.get $r4) (local.get $r5)))
              (v128.store64_lane offset=16 0 (local.get $dst) (local.get $t0))
              (v128.store64_lane offset=${16 + MR * 4} 1 (local.get $dst) (local.get $t0))
              (v128.store64_lane offset=${16 + MR * 8} 0 (local.get $dst) (local.get $t1))
              (v128.store64_lane offset=${16 + MR * 12} 1 (local.get $dst) (local.get $t1))`
                  : ''
              }
              (local.set $src (i32.add (local.get $src) (i32.const 16)))
              (local.set $dst (i32.add (local.get $dst) (i32.const ${MR * 16})))
              (local.set $p (i32.add (local.get $p) (i32.const 4)))
              (br $nextT))))
          (else
            (local.set $r (i32.const 0))
            (block $doneR (loop $nextR
              (br_if $doneR (i32.ge_u (local.get $r) (i32.const ${MR})))
              (local.set $p (i32.const 0))
              (if (i32.lt_u (i32.add (local.get $i) (local.get $r)) (local.get $mc))
                (then
                  (local.set $src (i32.add (local.get $a) (i32.mul (i32.add (local.get $i) (local.get $r)) (local.get $rowStep))))
                  (block $doneP (loop $nextP
                    (br_if $doneP (i32.ge_u (local.get $p) (local.get $kc)))
                    (f32.store
                      (i32.add (local.get $ap) (i32.shl (i32.add (i32.mul (local.get $p) (i32.const ${MR})) (local.get $r)) (i32.const 2)))
                      (f32.load (local.get $src)))
                    (local.set $src (i32.add (local.get $src) (local.get $colStep)))
                    (local.set $p (i32.add (local.get $p) (i32.const 1)))
                    (br $nextP))))
                (else
                  (block $doneZ (loop $nextZ
                    (br_if $doneZ (i32.ge_u (local.get $p) (local.get $kc)))
                    (f32.store
                      (i32.add (local.get $ap) (i32.shl (i32.add (i32.mul (local.get $p) (i32.const ${MR})) (local.get $r)) (i32.const 2)))
                      (f32.const 0))
                    (local.set $p (i32.add (local.get $p) (i32.const 1)))
                    (br $nextZ)))))
              (local.set $r (i32.add (local.get $r) (i32.const 1)))
              (br $nextR)))))))
      (local.set $ap (i32.add (local.get $ap) (i32.mul (local.get $kc) (i32.const ${MR * 4}))))
      (local.set $i (i32.add (local.get $i) (i32.const ${MR})))
      (br $nextI))))

  ;; B block (kc × nc) into 8-column panels: bp[panel][p][c], zero columns past nc.
  ;; Contiguous rows of 8 (sbj = 1) move as two v128 loads.
  (func $packB (param $b i32) (param $sbp i32) (param $sbj i32) (param $kc i32) (param $nc i32) (param $bp i32)
    (local $j i32) (local $p i32) (local $cc i32) (local $src i32) (local $rowStep i32) (local $colStep i32) (local $dst i32)
    (local.set $rowStep (i32.shl (local.get $sbp) (i32.const 2)))
    (local.set $colStep (i32.shl (local.get $sbj) (i32.const 2)))
    (local.set $j (i32.const 0))
    (block $doneJ (loop $nextJ
      (br_if $doneJ (i32.ge_u (local.get $j) (local.get $nc)))
      (local.set $p (i32.const 0))
      (block $doneP (loop $nextP
        (br_if $doneP (i32.ge_u (local.get $p) (local.get $kc)))
        (local.set $src (i32.add (local.get $b) (i32.add (i32.mul (local.get $p) (local.get $rowStep)) (i32.mul (local.get $j) (local.get $colStep)))))
        (local.set $dst (i32.add (local.get $bp) (i32.shl (local.get $p) (i32.const 5))))
        (if (i32.and (i32.eq (local.get $sbj) (i32.const 1)) (i32.le_u (i32.add (local.get $j) (i32.const 8)) (local.get $nc)))
          (then
            (v128.store (local.get $dst) (v128.load (local.get $src)))
            (v128.store offset=16 (local.get $dst) (v128.load offset=16 (local.get $src))))
          (else
            (local.set $cc (i32.const 0))
            (block $doneC (loop $nextC
              (br_if $doneC (i32.ge_u (local.get $cc) (i32.const 8)))
              (f32.store (local.get $dst)
                (select
                  (f32.load (local.get $src))
                  (f32.const 0)
                  (i32.lt_u (i32.add (local.get $j) (local.get $cc)) (local.get $nc))))
              (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
              ;; Past the last column the load address is still inside B's block row; it is discarded.
              (if (i32.lt_u (i32.add (i32.add (local.get $j) (local.get $cc)) (i32.const 1)) (local.get $nc))
                (then (local.set $src (i32.add (local.get $src) (local.get $colStep)))))
              (local.set $cc (i32.add (local.get $cc) (i32.const 1)))
              (br $nextC)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $nextP)))
      (local.set $bp (i32.add (local.get $bp) (i32.shl (local.get $kc) (i32.const 5))))
      (local.set $j (i32.add (local.get $j) (i32.const 8)))
      (br $nextJ))))

  ;; ${MR}×8 tile: C[0..mr, 0..nr] (+)= Ap panel · Bp panel over kc.
  (func $kernel (param $kc i32) (param $ap i32) (param $bp i32) (param $c i32) (param $ldc4 i32)
                (param $accum i32) (param $mr i32) (param $nr i32) (param $scratch i32)
    (local ${acc.join(' v128) (local ')} v128)
    (local $b0 v128) (local $b1 v128) (local $av v128)
    (local $end i32) (local $dst i32) (local $r i32) (local $cc i32) (local $v f32)
    ;; The loop counts with the A pointer itself: one add less per step.
    (local.set $end (i32.add (local.get $ap) (i32.mul (local.get $kc) (i32.const ${MR * 4}))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $ap) (local.get $end)))
      (local.set $b0 (v128.load (local.get $bp)))
      (local.set $b1 (v128.load offset=16 (local.get $bp)))${fma}
      (local.set $ap (i32.add (local.get $ap) (i32.const ${MR * 4})))
      (local.set $bp (i32.add (local.get $bp) (i32.const 32)))
      (br $next)))
    (if (i32.and (i32.eq (local.get $mr) (i32.const ${MR})) (i32.eq (local.get $nr) (i32.const 8)))
      (then${storeFull})
      (else${storeScratch}
        (local.set $r (i32.const 0))
        (block $doneR (loop $nextR
          (br_if $doneR (i32.ge_u (local.get $r) (local.get $mr)))
          (local.set $cc (i32.const 0))
          (block $doneC (loop $nextC
            (br_if $doneC (i32.ge_u (local.get $cc) (local.get $nr)))
            (local.set $dst (i32.add (i32.add (local.get $c) (i32.mul (local.get $r) (local.get $ldc4))) (i32.shl (local.get $cc) (i32.const 2))))
            (local.set $v (f32.load (i32.add (local.get $scratch) (i32.shl (i32.add (i32.shl (local.get $r) (i32.const 3)) (local.get $cc)) (i32.const 2)))))
            (if (local.get $accum)
              (then (f32.store (local.get $dst) (f32.add (f32.load (local.get $dst)) (local.get $v))))
              (else (f32.store (local.get $dst) (local.get $v))))
            (local.set $cc (i32.add (local.get $cc) (i32.const 1)))
            (br $nextC)))
          (local.set $r (i32.add (local.get $r) (i32.const 1)))
          (br $nextR))))))

  (func $min (param $a i32) (param $b i32) (result i32)
    (select (local.get $a) (local.get $b) (i32.lt_u (local.get $a) (local.get $b))))

  (func $gemm (export "gemm") (param $m i32) (param $n i32) (param $k i32)
        (param $a i32) (param $sai i32) (param $sap i32)
        (param $b i32) (param $sbp i32) (param $sbj i32)
        (param $c i32) (param $ldc i32) (param $ap i32) (param $bp i32) (param $scratch i32)
    (local $jc i32) (local $pc i32) (local $ic i32) (local $jr i32) (local $ir i32)
    (local $nc i32) (local $kc i32) (local $mc i32) (local $ldc4 i32)
    (local.set $ldc4 (i32.shl (local.get $ldc) (i32.const 2)))
    (local.set $jc (i32.const 0))
    (block $doneJC (loop $nextJC
      (br_if $doneJC (i32.ge_u (local.get $jc) (local.get $n)))
      (local.set $nc (call $min (i32.const ${NC}) (i32.sub (local.get $n) (local.get $jc))))
      (local.set $pc (i32.const 0))
      (block $donePC (loop $nextPC
        (br_if $donePC (i32.ge_u (local.get $pc) (local.get $k)))
        (local.set $kc (call $min (i32.const ${KC}) (i32.sub (local.get $k) (local.get $pc))))
        (call $packB
          (i32.add (local.get $b) (i32.shl (i32.add (i32.mul (local.get $pc) (local.get $sbp)) (i32.mul (local.get $jc) (local.get $sbj))) (i32.const 2)))
          (local.get $sbp) (local.get $sbj) (local.get $kc) (local.get $nc) (local.get $bp))
        (local.set $ic (i32.const 0))
        (block $doneIC (loop $nextIC
          (br_if $doneIC (i32.ge_u (local.get $ic) (local.get $m)))
          (local.set $mc (call $min (i32.const ${MC}) (i32.sub (local.get $m) (local.get $ic))))
          (call $packA
            (i32.add (local.get $a) (i32.shl (i32.add (i32.mul (local.get $ic) (local.get $sai)) (i32.mul (local.get $pc) (local.get $sap))) (i32.const 2)))
            (local.get $sai) (local.get $sap) (local.get $mc) (local.get $kc) (local.get $ap))
          (local.set $jr (i32.const 0))
          (block $doneJR (loop $nextJR
            (br_if $doneJR (i32.ge_u (local.get $jr) (local.get $nc)))
            (local.set $ir (i32.const 0))
            (block $doneIR (loop $nextIR
              (br_if $doneIR (i32.ge_u (local.get $ir) (local.get $mc)))
              (call $kernel (local.get $kc)
                (i32.add (local.get $ap) (i32.shl (i32.mul (local.get $ir) (local.get $kc)) (i32.const 2)))
                (i32.add (local.get $bp) (i32.shl (i32.mul (local.get $jr) (local.get $kc)) (i32.const 2)))
                (i32.add (local.get $c) (i32.shl (i32.add (i32.mul (i32.add (local.get $ic) (local.get $ir)) (local.get $ldc)) (i32.add (local.get $jc) (local.get $jr))) (i32.const 2)))
                (local.get $ldc4)
                (i32.ne (local.get $pc) (i32.const 0))
                (call $min (i32.const ${MR}) (i32.sub (local.get $mc) (local.get $ir)))
                (call $min (i32.const 8) (i32.sub (local.get $nc) (local.get $jr)))
                (local.get $scratch))
              (local.set $ir (i32.add (local.get $ir) (i32.const ${MR})))
              (br $nextIR)))
            (local.set $jr (i32.add (local.get $jr) (i32.const 8)))
            (br $nextJR)))
          (local.set $ic (i32.add (local.get $ic) (local.get $mc)))
          (br $nextIC)))
        (local.set $pc (i32.add (local.get $pc) (local.get $kc)))
        (br $nextPC)))
      (local.set $jc (i32.add (local.get $jc) (local.get $nc)))
      (br $nextJC))))

${
  shared
    ? `
  ;; One product split into chunks along one dimension, which the threads that
  ;; call this with the same arguments (and each its own pack buffers) share:
  ;; each takes the next chunk from the counter at $counter (an i32 the host
  ;; zeroes first) until none is left, so a thread that starts late or is
  ;; preempted takes fewer. $split: 0 = K, 1 = M, 2 = N; $chunk: its length.
  ;; Row and column chunks write their own part of C. K chunk t writes a partial
  ;; product: t = 0 into C, t > 0 into $parts + (t - 1)·m·ldc floats; the host
  ;; then adds them in order (addParts), so the result is the same whichever
  ;; thread took which chunk, and on one thread.
  (func (export "gemmChunks") (param $m i32) (param $n i32) (param $k i32)
        (param $a i32) (param $sai i32) (param $sap i32)
        (param $b i32) (param $sbp i32) (param $sbj i32)
        (param $c i32) (param $ldc i32) (param $ap i32) (param $bp i32) (param $scratch i32)
        (param $split i32) (param $chunk i32) (param $counter i32) (param $parts i32)
    (local $t i32) (local $start i32) (local $len i32) (local $dim i32)
    (local.set $dim (select (local.get $k) (select (local.get $m) (local.get $n) (i32.eq (local.get $split) (i32.const 1))) (i32.eqz (local.get $split))))
    (block $done (loop $next
      (local.set $t (i32.atomic.rmw.add (local.get $counter) (i32.const 1)))
      (local.set $start (i32.mul (local.get $t) (local.get $chunk)))
      (br_if $done (i32.ge_u (local.get $start) (local.get $dim)))
      (local.set $len (call $min (local.get $chunk) (i32.sub (local.get $dim) (local.get $start))))
      (if (i32.eqz (local.get $split))
        (then (call $gemm (local.get $m) (local.get $n) (local.get $len)
          (i32.add (local.get $a) (i32.shl (i32.mul (local.get $start) (local.get $sap)) (i32.const 2))) (local.get $sai) (local.get $sap)
          (i32.add (local.get $b) (i32.shl (i32.mul (local.get $start) (local.get $sbp)) (i32.const 2))) (local.get $sbp) (local.get $sbj)
          (select (local.get $c)
            (i32.add (local.get $parts) (i32.shl (i32.mul (i32.sub (local.get $t) (i32.const 1)) (i32.mul (local.get $m) (local.get $ldc))) (i32.const 2)))
            (i32.eqz (local.get $t)))
          (local.get $ldc) (local.get $ap) (local.get $bp) (local.get $scratch)))
        (else (if (i32.eq (local.get $split) (i32.const 1))
          (then (call $gemm (local.get $len) (local.get $n) (local.get $k)
            (i32.add (local.get $a) (i32.shl (i32.mul (local.get $start) (local.get $sai)) (i32.const 2))) (local.get $sai) (local.get $sap)
            (local.get $b) (local.get $sbp) (local.get $sbj)
            (i32.add (local.get $c) (i32.shl (i32.mul (local.get $start) (local.get $ldc)) (i32.const 2)))
            (local.get $ldc) (local.get $ap) (local.get $bp) (local.get $scratch)))
          (else (call $gemm (local.get $m) (local.get $len) (local.get $k)
            (local.get $a) (local.get $sai) (local.get $sap)
            (i32.add (local.get $b) (i32.shl (i32.mul (local.get $start) (local.get $sbj)) (i32.const 2))) (local.get $sbp) (local.get $sbj)
            (i32.add (local.get $c) (i32.shl (local.get $start) (i32.const 2)))
            (local.get $ldc) (local.get $ap) (local.get $bp) (local.get $scratch))))))
      (br $next))))

  ;; dst[i] = (…((dst[i] + p₀[i]) + p₁[i]) … ) + p_{count-1}[i], parts n floats apart:
  ;; the K chunks' partial products joined in chunk order.
  (func (export "addParts") (param $dst i32) (param $parts i32) (param $count i32) (param $n i32)
    (local $i i32) (local $t i32) (local $src i32) (local $stride i32) (local $acc v128) (local $s f32)
    (local.set $stride (i32.shl (local.get $n) (i32.const 2)))${lanes(
      '$i',
      '(local.get $n)',
      [
        ['$dst', 4],
        ['$parts', 4],
      ],
      joinParts('$acc', 'v128', 'f32x4.add'),
      joinParts('$s', 'f32', 'f32.add'),
    )})
`
    : ''
}
  ;; The momentum update, fused (one pass instead of six): with g' = g + l2·p,
  ;; v' = γ·v + lr·g'; p' = p − (nesterov ? γ·v' + lr·g' : v'). Writes p' to
  ;; pOut and v' to vOut, which may be p and v themselves (in place).
  (func $momentumStep (export "momentumStep") (param $p i32) (param $v i32) (param $g i32) (param $pOut i32) (param $vOut i32) (param $n i32)
        (param $lr f32) (param $gamma f32) (param $l2 f32) (param $nesterov i32)
    (local $i i32) (local $lr4 v128) (local $gm4 v128) (local $l24 v128)
    (local $gp v128) (local $vv v128) (local $step v128)
    (local $gs f32) (local $vs f32)
    (local.set $lr4 (f32x4.splat (local.get $lr)))
    (local.set $gm4 (f32x4.splat (local.get $gamma)))
    (local.set $l24 (f32x4.splat (local.get $l2)))
${lanes(
  '$i',
  '(local.get $n)',
  [
    ['$p', 4],
    ['$v', 4],
    ['$g', 4],
    ['$pOut', 4],
    ['$vOut', 4],
  ],
  `
      (local.set $gp (f32x4.add (v128.load (local.get $g)) (f32x4.mul (local.get $l24) (v128.load (local.get $p)))))
      (local.set $vv (f32x4.add (f32x4.mul (local.get $gm4) (v128.load (local.get $v))) (f32x4.mul (local.get $lr4) (local.get $gp))))
      (local.set $step (local.get $vv))
      (if (local.get $nesterov)
        (then (local.set $step (f32x4.add (f32x4.mul (local.get $gm4) (local.get $vv)) (f32x4.mul (local.get $lr4) (local.get $gp))))))
      (v128.store (local.get $pOut) (f32x4.sub (v128.load (local.get $p)) (local.get $step)))
      (v128.store (local.get $vOut) (local.get $vv))`,
  `
      (local.set $gs (f32.add (f32.load (local.get $g)) (f32.mul (local.get $l2) (f32.load (local.get $p)))))
      (local.set $vs (f32.add (f32.mul (local.get $gamma) (f32.load (local.get $v))) (f32.mul (local.get $lr) (local.get $gs))))
      (f32.store (local.get $vOut) (local.get $vs))
      (if (local.get $nesterov)
        (then (local.set $vs (f32.add (f32.mul (local.get $gamma) (local.get $vs)) (f32.mul (local.get $lr) (local.get $gs))))))
      (f32.store (local.get $pOut) (f32.sub (f32.load (local.get $p)) (local.get $vs)))`,
)})

${
  shared
    ? `
  ;; momentumStep over chunks of $chunk elements that the threads calling this
  ;; with the same arguments share through the counter at $counter (as
  ;; gemmChunks): element-wise, so the split never changes a result.
  (func (export "momentumChunks") (param $p i32) (param $v i32) (param $g i32) (param $pOut i32) (param $vOut i32) (param $n i32)
        (param $lr f32) (param $gamma f32) (param $l2 f32) (param $nesterov i32) (param $chunk i32) (param $counter i32)
    (local $start i32) (local $off i32)
    (block $done (loop $next
      (local.set $start (i32.mul (i32.atomic.rmw.add (local.get $counter) (i32.const 1)) (local.get $chunk)))
      (br_if $done (i32.ge_u (local.get $start) (local.get $n)))
      (local.set $off (i32.shl (local.get $start) (i32.const 2)))
      (call $momentumStep
        (i32.add (local.get $p) (local.get $off)) (i32.add (local.get $v) (local.get $off)) (i32.add (local.get $g) (local.get $off))
        (i32.add (local.get $pOut) (local.get $off)) (i32.add (local.get $vOut) (local.get $off))
        (call $min (local.get $chunk) (i32.sub (local.get $n) (local.get $start)))
        (local.get $lr) (local.get $gamma) (local.get $l2) (local.get $nesterov))
      (br $next))))
`
    : ''
}
  ;; Zeroes n bytes at ptr (recycled tensor memory): memset speed, where a
  ;; typed-array fill over a SharedArrayBuffer runs element by element.
  (func (export "zero") (param $ptr i32) (param $n i32)
    (memory.fill (local.get $ptr) (i32.const 0) (local.get $n)))

  ;; The element-wise kernels of a training step, each equal bit for bit to its
  ;; TypeScript version in kernels.ts / ops.ts (so results never depend on where
  ;; a tensor's memory happens to be). Addresses in bytes, counts in elements.

  ;; out = x <= 0 ? 0 : x: -0 gives +0 and NaN stays NaN, as \`v <= 0 ? 0 : v\` does.
  (func $relu (export "relu") (param $x i32) (param $out i32) (param $n i32)
    (local $i i32) (local $v v128)${lanes(
      '$i',
      '(local.get $n)',
      [
        ['$x', 4],
        ['$out', 4],
      ],
      `
      (local.set $v (v128.load (local.get $x)))
      (v128.store (local.get $out) (v128.andnot (local.get $v) (f32x4.le (local.get $v) (v128.const f32x4 0 0 0 0))))`,
      `
      (f32.store (local.get $out)
        (select (f32.const 0) (f32.load (local.get $x)) (f32.le (f32.load (local.get $x)) (f32.const 0))))`,
    )})

  ;; out = ct · (x > 0 ? 1 : 0): relu's VJP, a real multiply so that -0 and NaN
  ;; come out as from mul(ct, stepMask(x)).
  (func $reluGrad (export "reluGrad") (param $x i32) (param $ct i32) (param $out i32) (param $n i32)
    (local $i i32)${lanes(
      '$i',
      '(local.get $n)',
      [
        ['$x', 4],
        ['$ct', 4],
        ['$out', 4],
      ],
      `
      (v128.store (local.get $out)
        (f32x4.mul (v128.load (local.get $ct))
          (v128.and (v128.const f32x4 1 1 1 1) (f32x4.gt (v128.load (local.get $x)) (v128.const f32x4 0 0 0 0)))))`,
      `
      (f32.store (local.get $out)
        (f32.mul (f32.load (local.get $ct))
          (select (f32.const 1) (f32.const 0) (f32.gt (f32.load (local.get $x)) (f32.const 0)))))`,
    )})

  ;; out = a · b and out = a + b, operands of one shape (float32 multiplication
  ;; and addition are exact to the float64-then-round of the TypeScript loop):
  ;; dropout's mask and its gradient, a gradient's two terms summed.${['mul', 'add']
    .map(
      (op) => `
  (func $${op} (export "${op}") (param $a i32) (param $b i32) (param $out i32) (param $n i32)
    (local $i i32)${lanes(
      '$i',
      '(local.get $n)',
      [
        ['$a', 4],
        ['$b', 4],
        ['$out', 4],
      ],
      `
      (v128.store (local.get $out) (f32x4.${op} (v128.load (local.get $a)) (v128.load (local.get $b))))`,
      `
      (f32.store (local.get $out) (f32.${op} (f32.load (local.get $a)) (f32.load (local.get $b))))`,
    )})`,
    )
    .join('\n')}
${
  shared
    ? `
  ;; An element-wise kernel over chunks of elements (chunked): op 0 relu(a), 1 reluGrad(x = a, ct = b), 2 mul(a, b), 3 add(a, b).
${chunked(
  'elementChunks',
  'op a b out n',
  'n',
  `
      (local.set $off (i32.shl (local.get $start) (i32.const 2)))
      (local.set $len (i32.sub (local.get $end) (local.get $start)))
      (if (i32.eqz (local.get $op))
        (then (call $relu (i32.add (local.get $a) (local.get $off)) (i32.add (local.get $out) (local.get $off)) (local.get $len)))
        (else (if (i32.eq (local.get $op) (i32.const 1))
          (then (call $reluGrad (i32.add (local.get $a) (local.get $off)) (i32.add (local.get $b) (local.get $off)) (i32.add (local.get $out) (local.get $off)) (local.get $len)))
          (else (if (i32.eq (local.get $op) (i32.const 2))
            (then (call $mul (i32.add (local.get $a) (local.get $off)) (i32.add (local.get $b) (local.get $off)) (i32.add (local.get $out) (local.get $off)) (local.get $len)))
            (else (call $add (i32.add (local.get $a) (local.get $off)) (i32.add (local.get $b) (local.get $off)) (i32.add (local.get $out) (local.get $off)) (local.get $len))))))))`,
  '(local $off i32) (local $len i32)',
)}`
    : ''
}
  ;; out[r, c] = a[r, c] + b[c]: the bias add (float32 addition is exact to the
  ;; float64-then-round of the TypeScript loop).
  (func (export "addRow") (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $c i32) (local $bp i32)
    (local.set $r (i32.const 0))
    (block $doneR (loop $nextR
      (br_if $doneR (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $bp (local.get $b))${lanes(
        '$c',
        '(local.get $cols)',
        [
          ['$a', 4],
          ['$bp', 4],
          ['$out', 4],
        ],
        `
        (v128.store (local.get $out) (f32x4.add (v128.load (local.get $a)) (v128.load (local.get $bp))))`,
        `
        (f32.store (local.get $out) (f32.add (f32.load (local.get $a)) (f32.load (local.get $bp))))`,
      )}
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $nextR))))

  ;; acc[c] = Σ_r x[r, c] in float64, rows in order (as the TypeScript column sum);
  ;; acc is cols float64s, zeroed by the caller. The host rounds to float32.
  (func (export "sumRows") (param $x i32) (param $acc i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $c i32) (local $ap i32) (local $v v128)
    (local.set $r (i32.const 0))
    (block $doneR (loop $nextR
      (br_if $doneR (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $ap (local.get $acc))${lanes(
        '$c',
        '(local.get $cols)',
        [
          ['$x', 4],
          ['$ap', 8],
        ],
        `
        (local.set $v (v128.load (local.get $x)))
        (v128.store (local.get $ap) (f64x2.add (v128.load (local.get $ap)) (f64x2.promote_low_f32x4 (local.get $v))))
        (v128.store offset=16 (local.get $ap)
          (f64x2.add (v128.load offset=16 (local.get $ap))
            (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))))`,
        `
        (f64.store (local.get $ap) (f64.add (f64.load (local.get $ap)) (f64.promote_f32 (f32.load (local.get $x)))))`,
      )}
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $nextR))))

${imageWat(shared)}
${convWat(shared, (a, b, c) => madd(relaxed, a, b, c), KC)}
)`;
};
