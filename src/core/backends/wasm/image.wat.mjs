/**
 * The image kernels of a CNN step in WebAssembly (functions of the GEMM's
 * module, over the same memory): im2col / col2im rows, max pooling and its
 * gradient, and batch normalization's passes. Each computes exactly what its
 * TypeScript version computes (kernels-nd.ts, conv-gemm.ts), in the same order
 * and precision, so results never depend on which one ran: float64 sums are
 * sequential chains as in the TypeScript loops, and an element-wise float32
 * result is the float64 expression rounded once, as a Float32Array store
 * rounds it. Addresses in bytes, counts in elements.
 */

import { at, chunked, get, gets, loop } from './wat.mjs';

/** Zeroes the floats [from, to) after $d: vectors, then singles (uses $j). */
const zeros = (from, to) => `
            (local.set $j ${from})
            (block $doneZ4 (loop $nextZ4
              (br_if $doneZ4 (i32.gt_s (i32.add (local.get $j) (i32.const 4)) ${to}))
              (v128.store ${at(get('$d'), get('$j'))} (v128.const i32x4 0 0 0 0))
              (local.set $j (i32.add (local.get $j) (i32.const 4)))
              (br $nextZ4)))
            (block $doneZ (loop $nextZ
              (br_if $doneZ (i32.ge_s (local.get $j) ${to}))
              (f32.store ${at(get('$d'), get('$j'))} (f32.const 0))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br $nextZ)))`;

/**
 * bnApply's body for two lanes (`v128.load64_zero`, `v128.store64_lane`) or the
 * last one (`…32…`): x (and ct) promoted to float64, the mode's expression, one rounding.
 */
const bnLanes = (load, store) => {
  const elem = (base) => at(get(base), '(i32.add (local.get $o) (local.get $j))');
  return `
          (local.set $vx (f64x2.promote_low_f32x4 (${load} ${elem('$x')})))
          (if (local.get $mode)
            (then
              (local.set $vc (f64x2.promote_low_f32x4 (${load} ${elem('$ct')})))
              (local.set $r (f64x2.mul (local.get $k0)
                (f64x2.sub (f64x2.sub (local.get $vc) (local.get $k1))
                  (f64x2.mul (f64x2.mul (f64x2.sub (local.get $vx) (local.get $k2)) (local.get $k3)) (local.get $k4))))))
            (else
              (local.set $r (f64x2.add (f64x2.mul (f64x2.sub (local.get $vx) (local.get $k0)) (local.get $k1)) (local.get $k2)))))
          (${store} 0 ${elem('$out')} (f32x4.demote_f64x2_zero (local.get $r)))`;
};

const LANES = ['a', 'b', 'c', 'd'];
/** Bytes of lane k (0–3) of v128 `u` followed by lane k of `v`, as an i8x16.shuffle's first eight indices. */
const zipLane = (k) =>
  [0, 1, 2, 3]
    .map((i) => 4 * k + i)
    .concat([0, 1, 2, 3].map((i) => 16 + 4 * k + i))
    .concat([0, 1, 2, 3, 4, 5, 6, 7])
    .join(' ');
/** Element k of the float32 vectors `u` and `v`, as the float64 pair (u[k], v[k]). */
const pairAt = (u, v, k) => `(f64x2.promote_low_f32x4 (i8x16.shuffle ${zipLane(k)} (local.get ${u}) (local.get ${v})))`;
/** The float64 pair (a, b) of two f64 expressions. */
const pairOf = (a, b) => `(f64x2.replace_lane 1 (f64x2.splat ${a}) ${b})`;
/** mean[(q + k) mod C] as an f64 expression. */
const meanOf = (k) => `(f64.load (i32.add (local.get $mean) (i32.shl (i32.rem_u (i32.add (local.get $q) (i32.const ${k})) (local.get $C)) (i32.const 3))))`;
/** One element's step of the four chains in `mode`: chains a, b in vector 0, c, d in vector 1, their float64 pairs built by `pair(u, v)`. */
const chainStep = (mode, pair) =>
  [0, 1]
    .map((v) => {
      const [l, r] = [LANES[2 * v], LANES[2 * v + 1]];
      const e = pair(`$x${l}`, `$x${r}`);
      if (mode === 2)
        return `
            (local.set $c ${pair(`$c${l}`, `$c${r}`)})
            (local.set $s${v} (f64x2.add (local.get $s${v}) (local.get $c)))
            (local.set $u${v} (f64x2.add (local.get $u${v}) (f64x2.mul (local.get $c) (f64x2.sub ${e} (local.get $m${v})))))`;
      if (mode === 1)
        return `
            (local.set $e (f64x2.sub ${e} (local.get $m${v})))
            (local.set $s${v} (f64x2.add (local.get $s${v}) (f64x2.mul (local.get $e) (local.get $e))))`;
      return `
            (local.set $s${v} (f64x2.add (local.get $s${v}) ${e}))`;
    })
    .join('');
/** The four chains' loads at element j (vectors, or one float into lane 0 with `load` v128.load32_zero). */
const chainLoads = (mode, load) =>
  LANES.map(
    (l) => `
          (local.set $x${l} (${load} ${at(`(local.get $p${l})`, '(local.get $j)')}))${
            mode === 2
              ? `
          (local.set $c${l} (${load} ${at(`(i32.add (local.get $p${l}) (local.get $ctOff))`, '(local.get $j)')}))`
              : ''
          }`,
  ).join('');
/** The four chains through their segments in `mode`. */
const chainLoops = (mode) => `
      (local.set $t (i32.const 0))
      (block $doneT (loop $nextT
        (br_if $doneT (i32.ge_s (local.get $t) (local.get $steps)))
        (local.set $j (i32.const 0))
        (block $done4 (loop $next4
          (br_if $done4 (i32.gt_s (i32.add (local.get $j) (i32.const 4)) (local.get $S)))${chainLoads(mode, 'v128.load')}${[0, 1, 2, 3].map((k) => chainStep(mode, (u, v) => pairAt(u, v, k))).join('')}
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $next4)))
        ;; S not a multiple of 4: the last elements one at a time, in lane 0 of each load.
        (block $doneJ (loop $nextJ
          (br_if $doneJ (i32.ge_s (local.get $j) (local.get $S)))${chainLoads(mode, 'v128.load32_zero')}${chainStep(mode, (u, v) => pairAt(u, v, 0))}
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $nextJ)))${LANES.map(
            (l) => `
        (local.set $p${l} (i32.add (local.get $p${l}) (local.get $stride)))`,
          ).join('')}
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $nextT)))`;
const outAt = (extra) => `(i32.add (i32.add (local.get $out) (i32.shl (local.get $q) (i32.const 3))) ${extra})`;

/**
 * Float64 sums over float32 data as independent chains: batch normalization's
 * sums and the conv bias's gradient. Chains q0 ≤ q < q1 of `chains` (q0 a
 * multiple of 4; q1 too, or chains). Chain q reads `steps`
 * segments of S floats, the first at x + 4·q·S and each next `stride` bytes on,
 * adding element by element in that order onto out[q] (the host sets the start):
 * mode 0: out[q] += x; mode 1: out[q] += (x − m)², m = mean[q mod C];
 * mode 2: out[q] += ct and out[pad + q] += ct·(x − m), ct at the same offsets
 * from ct as x from x. pad: chains rounded up to 4 (out's length per sum).
 * One chain is latency-bound (each float64 add waits for the one before), so
 * two chains share a vector and two vectors run at once: four chains a loop,
 * each lane's additions exactly the scalar chain's. Past the last chain (chains
 * not a multiple of 4), lanes repeat the last one's reads into out's padding.
 */
const chainSumsWat = () => `
  (func $chainSums (export "chainSums") (param $x i32) (param $ct i32) (param $mean i32) (param $out i32)
    (param $q0 i32) (param $q1 i32) (param $chains i32) (param $C i32) (param $S i32) (param $steps i32) (param $stride i32) (param $mode i32)
    (local $q i32) (local $t i32) (local $j i32) (local $pad8 i32) (local $seg i32) (local $ctOff i32)
    ${LANES.map((l) => `(local $p${l} i32) (local $x${l} v128) (local $c${l} v128)`).join(' ')}
    (local $m0 v128) (local $m1 v128) (local $s0 v128) (local $s1 v128) (local $u0 v128) (local $u1 v128) (local $e v128) (local $c v128)
    (local.set $pad8 (i32.shl (i32.and (i32.add (local.get $chains) (i32.const 3)) (i32.const -4)) (i32.const 3)))
    (local.set $seg (i32.shl (local.get $S) (i32.const 2)))
    (local.set $ctOff (i32.sub (local.get $ct) (local.get $x)))
    (local.set $q (local.get $q0))
    (block $doneQ (loop $nextQ
      (br_if $doneQ (i32.ge_s (local.get $q) (local.get $q1)))${LANES.map(
        (l, k) => `
      (local.set $p${l} (i32.add (local.get $x) (i32.mul (local.get $seg)
        (select (i32.add (local.get $q) (i32.const ${k})) (i32.sub (local.get $chains) (i32.const 1)) (i32.lt_s (i32.add (local.get $q) (i32.const ${k})) (local.get $chains))))))`,
      ).join('')}
      (if (local.get $mode)
        (then
          (local.set $m0 ${pairOf(meanOf(0), meanOf(1))})
          (local.set $m1 ${pairOf(meanOf(2), meanOf(3))})))
      (local.set $s0 (v128.load ${outAt('(i32.const 0)')}))
      (local.set $s1 (v128.load offset=16 ${outAt('(i32.const 0)')}))
      (if (i32.eq (local.get $mode) (i32.const 2))
        (then
          (local.set $u0 (v128.load ${outAt('(local.get $pad8)')}))
          (local.set $u1 (v128.load offset=16 ${outAt('(local.get $pad8)')}))${chainLoops(2)})
        (else (if (local.get $mode) (then${chainLoops(1)}) (else${chainLoops(0)}))))
      (v128.store ${outAt('(i32.const 0)')} (local.get $s0))
      (v128.store offset=16 ${outAt('(i32.const 0)')} (local.get $s1))
      (if (i32.eq (local.get $mode) (i32.const 2))
        (then
          (v128.store ${outAt('(local.get $pad8)')} (local.get $u0))
          (v128.store offset=16 ${outAt('(local.get $pad8)')} (local.get $u1))))
      (local.set $q (i32.add (local.get $q) (i32.const 4)))
      (br $nextQ))))
`;

/** The image kernels' chunked forms (see `chunked`), for two threads. */
const chunksWat = () =>
  [
    // chainSums over whole vectors of chains (chunk a multiple of 4).
    chunked(
      'chainChunks',
      'x ct mean out chains C S steps stride mode',
      'chains',
      `(call $chainSums ${gets('x ct mean out start end chains C S steps stride mode')})`,
    ),
    chunked('applyChunks', 'x ct out coef planes C S mode', 'planes', `(call $bnApply ${gets('x ct out coef start end C S mode')})`),
    // maxPool's planes start…: x and (grad) out at start·H·W floats, ct and (forward) out at start·OH·OW.
    chunked(
      'poolChunks',
      'x ct out planes H W size stride OH OW grad',
      'planes',
      `(call $maxPool
        (i32.add (local.get $x) (i32.shl (i32.mul (local.get $start) (i32.mul (local.get $H) (local.get $W))) (i32.const 2)))
        (i32.add (local.get $ct) (i32.shl (i32.mul (local.get $start) (i32.mul (local.get $OH) (local.get $OW))) (i32.const 2)))
        (i32.add (local.get $out) (i32.shl (i32.mul (local.get $start)
          (select (i32.mul (local.get $H) (local.get $W)) (i32.mul (local.get $OH) (local.get $OW)) (local.get $grad))) (i32.const 2)))
        (i32.sub (local.get $end) (local.get $start)) ${gets('H W size stride OH OW grad')})`,
    ),
    chunked(
      'unrollChunks',
      'mode x col bounds planeStep count C H W KH KW OH OW stride pad units',
      'units',
      `(call $unroll ${gets('mode x col bounds planeStep count C H W KH KW OH OW stride pad start end')})`,
    ),
    chunked('regroupChunks', 'nchw mat F count n0 ohw toMatrix', 'F', `(call $regroup ${gets('nchw mat F count n0 ohw toMatrix start end')})`),
    // rowSums over channel pairs (chunk even), applyRows over rows.
    chunked('rowSumsChunks', 'x ct mean inv acc1 acc2 N C mode', 'C', `(call $rowSums ${gets('x ct mean inv acc1 acc2 N C start end mode')})`),
    chunked('applyRowsChunks', 'x ct out coefT N C mode', 'N', `(call $applyRows ${gets('x ct out coefT start end C mode')})`),
  ].join('\n');

/**
 * Batch normalization over rows x [N, C] (one value a plane: S = 1), vectors
 * over channel pairs, so each channel's chain through the rows is its own lane
 * and C independent chains keep the adds in flight. Each element's term is its
 * plane's sum as kernels-nd's jsPasses forms it (0 + term), added in row order.
 * rowSums over channels [c0, c1) (c0 even): mode 0 acc1[c] += 0 + x;
 * mode 1 acc1[c] += 0 + (x − mean[c])²; mode 2 acc1[c] += 0 + ct and
 * acc2[c] += (0 + ct·(x − mean[c]))·inv[c]. mean, inv, acc1, acc2: C float64s.
 */
const rowTerm = (mode, load, v) => {
  const xv = `(f64x2.promote_low_f32x4 (${load} (i32.add (local.get $x) (local.get $o))))`;
  const f64 = (base) => `(${v === 2 ? 'v128.load' : 'v128.load64_zero'} (i32.add (local.get ${base}) (local.get $c8)))`;
  const zero = '(v128.const f64x2 0 0)';
  if (mode === 0)
    return `
          (v128.store${v === 2 ? '' : '64_lane 0'} (i32.add (local.get $acc1) (local.get $c8)) (f64x2.add ${f64('$acc1')} (f64x2.add ${zero} ${xv})))`;
  if (mode === 1)
    return `
          (local.set $d (f64x2.sub ${xv} ${f64('$mean')}))
          (v128.store${v === 2 ? '' : '64_lane 0'} (i32.add (local.get $acc1) (local.get $c8)) (f64x2.add ${f64('$acc1')} (f64x2.add ${zero} (f64x2.mul (local.get $d) (local.get $d)))))`;
  return `
          (local.set $d (f64x2.promote_low_f32x4 (${load} (i32.add (local.get $ct) (local.get $o)))))
          (v128.store${v === 2 ? '' : '64_lane 0'} (i32.add (local.get $acc1) (local.get $c8)) (f64x2.add ${f64('$acc1')} (f64x2.add ${zero} (local.get $d))))
          (v128.store${v === 2 ? '' : '64_lane 0'} (i32.add (local.get $acc2) (local.get $c8))
            (f64x2.add ${f64('$acc2')} (f64x2.mul (f64x2.add ${zero} (f64x2.mul (local.get $d) (f64x2.sub ${xv} ${f64('$mean')}))) ${f64('$inv')})))`;
};
const rowLoop = (mode) => `
      (local.set $n (i32.const 0))
      (block $doneN (loop $nextN
        (br_if $doneN (i32.ge_s (local.get $n) (local.get $N)))
        (local.set $c (local.get $c0))
        (block $doneC (loop $nextC
          (br_if $doneC (i32.gt_s (i32.add (local.get $c) (i32.const 2)) (local.get $c1)))
          (local.set $o (i32.shl (i32.add (i32.mul (local.get $n) (local.get $C)) (local.get $c)) (i32.const 2)))
          (local.set $c8 (i32.shl (local.get $c) (i32.const 3)))${rowTerm(mode, 'v128.load64_zero', 2)}
          (local.set $c (i32.add (local.get $c) (i32.const 2)))
          (br $nextC)))
        (if (i32.lt_s (local.get $c) (local.get $c1))
          (then
            (local.set $o (i32.shl (i32.add (i32.mul (local.get $n) (local.get $C)) (local.get $c)) (i32.const 2)))
            (local.set $c8 (i32.shl (local.get $c) (i32.const 3)))${rowTerm(mode, 'v128.load32_zero', 1)}))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $nextN)))`;
const rowsWat = () => `
  (func $rowSums (export "rowSums") (param $x i32) (param $ct i32) (param $mean i32) (param $inv i32) (param $acc1 i32) (param $acc2 i32)
    (param $N i32) (param $C i32) (param $c0 i32) (param $c1 i32) (param $mode i32)
    (local $n i32) (local $c i32) (local $o i32) (local $c8 i32) (local $d v128)
    (if (i32.eq (local.get $mode) (i32.const 2))
      (then${rowLoop(2)})
      (else (if (local.get $mode) (then${rowLoop(1)}) (else${rowLoop(0)})))))

  ;; bnApply for rows [r0, r1) of x [N, C] (S = 1), coefficients planar: k_i[c] at coefT + 8·(i·C + c).
  (func $applyRows (export "applyRows") (param $x i32) (param $ct i32) (param $out i32) (param $coefT i32) (param $r0 i32) (param $r1 i32) (param $C i32) (param $mode i32)
    (local $n i32) (local $j i32) (local $o i32) (local $C8 i32)
    (local $k0 v128) (local $k1 v128) (local $k2 v128) (local $k3 v128) (local $k4 v128) (local $vx v128) (local $vc v128) (local $r v128)
    (local.set $C8 (i32.shl (local.get $C) (i32.const 3)))
    (local.set $n (local.get $r0))
    (block $doneN (loop $nextN
      (br_if $doneN (i32.ge_s (local.get $n) (local.get $r1)))
      (local.set $o (i32.mul (local.get $n) (local.get $C)))
      (local.set $j (i32.const 0))
      (block $done2 (loop $next2
        (br_if $done2 (i32.gt_s (i32.add (local.get $j) (i32.const 2)) (local.get $C)))${coefLoads('v128.load')}
${bnLanes('v128.load64_zero', 'v128.store64_lane')}
        (local.set $j (i32.add (local.get $j) (i32.const 2)))
        (br $next2)))
      (if (i32.lt_s (local.get $j) (local.get $C))
        (then${coefLoads('v128.load64_zero')}
${bnLanes('v128.load32_zero', 'v128.store32_lane')}))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $nextN))))
`;
/** applyRows' five coefficient vectors for channels j, j + 1 (`v128.load`) or j alone (`v128.load64_zero`). */
const coefLoads = (load) =>
  [0, 1, 2, 3, 4]
    .map(
      (i) => `
        (local.set $k${i} (${load} (i32.add (local.get $coefT) (i32.add (i32.mul (i32.const ${i}) (local.get $C8)) (i32.shl (local.get $j) (i32.const 3))))))`,
    )
    .join('');

/** The module's image kernels; `shared` adds those that two threads share through a counter. */
export const imageWat = (shared) => `
  ;; One row (c, a, b) of an im2col column matrix, for \`count\` images: for image
  ;; img and output row i, OW values starting at dst + 4·(img·OH·OW + i·OW):
  ;; x[img][r][j·stride + colOff] for r = i·stride + rowOff inside [0, H) and j in
  ;; [lo, hi) (the columns inside x), zero elsewhere. x points at image 0's plane c;
  ;; planeStep is the bytes from one image's plane c to the next's. Segments are
  ;; short (a row of 8–32 values): inline vector moves, not memory.copy / memory.fill,
  ;; whose calls cost more than the copying (measured: half a conv's time).
  (func $im2colRow (param $x i32) (param $planeStep i32) (param $count i32) (param $H i32) (param $W i32)
    (param $OH i32) (param $OW i32) (param $stride i32) (param $rowOff i32) (param $colOff i32) (param $lo i32) (param $hi i32) (param $dst i32)
    (local $img i32) (local $i i32) (local $j i32) (local $r i32) (local $d i32) (local $xr i32) (local $xp i32) (local $from i32) (local $to i32)
    (local.set $xp (local.get $x))
    (local.set $d (local.get $dst))${loop(
      '$img',
      get('$count'),
      `${loop(
        '$i',
        get('$OH'),
        `
        (local.set $r (i32.add (i32.mul (local.get $i) (local.get $stride)) (local.get $rowOff)))
        (if (i32.or (i32.lt_s (local.get $r) (i32.const 0)) (i32.ge_s (local.get $r) (local.get $H)))
          (then (local.set $from (i32.const 0)) (local.set $to (local.get $OW)))
          (else
            ;; xr: the address of x[img][r][colOff] (j = 0's column, possibly outside the row)
            (local.set $xr (i32.add (local.get $xp) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $W)) (local.get $colOff)) (i32.const 2))))
            ${zeros('(i32.const 0)', get('$lo'))}
            (local.set $j (local.get $lo))
            (if (i32.eq (local.get $stride) (i32.const 1))
              (then
                (block $done4 (loop $next4
                  (br_if $done4 (i32.gt_s (i32.add (local.get $j) (i32.const 4)) (local.get $hi)))
                  (v128.store ${at(get('$d'), get('$j'))} (v128.load ${at(get('$xr'), get('$j'))}))
                  (local.set $j (i32.add (local.get $j) (i32.const 4)))
                  (br $next4)))))
            (block $doneJ (loop $nextJ
              (br_if $doneJ (i32.ge_s (local.get $j) (local.get $hi)))
              (f32.store ${at(get('$d'), get('$j'))} (f32.load ${at(get('$xr'), '(i32.mul (local.get $j) (local.get $stride))')}))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br $nextJ)))
            (local.set $from (local.get $hi)) (local.set $to (local.get $OW))))
        ${zeros(get('$from'), get('$to'))}
        (local.set $d (i32.add (local.get $d) (i32.shl (local.get $OW) (i32.const 2))))`,
        'i',
      )}
      (local.set $xp (i32.add (local.get $xp) (local.get $planeStep)))`,
      'img',
    )})

  ;; conv-gemm's regroup for planes f0 ≤ f < f1: count planes each of ohw floats between
  ;; NCHW (images n0…) and an [F, count·ohw] matrix, toMatrix 1 gathering, 0 scattering:
  ;; one memory.copy a plane (V8 copies typed arrays over shared memory element by element).
  (func $regroup (export "regroup") (param $nchw i32) (param $mat i32) (param $F i32) (param $count i32) (param $n0 i32) (param $ohw i32) (param $toMatrix i32)
    (param $f0 i32) (param $f1 i32)
    (local $f i32) (local $img i32) (local $src i32) (local $dst i32) (local $bytes i32)
    (local.set $bytes (i32.shl (local.get $ohw) (i32.const 2)))
    (local.set $f (local.get $f0))
    (block $done_f (loop $next_f
      (br_if $done_f (i32.ge_s (local.get $f) (local.get $f1)))${loop(
        '$img',
        get('$count'),
        `
        (local.set $src (i32.add (local.get $nchw) (i32.mul (i32.add (i32.mul (i32.add (local.get $n0) (local.get $img)) (local.get $F)) (local.get $f)) (local.get $bytes))))
        (local.set $dst (i32.add (local.get $mat) (i32.mul (i32.add (i32.mul (local.get $f) (local.get $count)) (local.get $img)) (local.get $bytes))))
        (if (local.get $toMatrix)
          (then (memory.copy (local.get $dst) (local.get $src) (local.get $bytes)))
          (else (memory.copy (local.get $src) (local.get $dst) (local.get $bytes))))`,
        'img',
      )}
      (local.set $f (i32.add (local.get $f) (i32.const 1)))
      (br $next_f))))

  ;; The rows (c, a, b) of a column matrix in units u0 ≤ u < u1, conv-gemm's
  ;; forEachColumnRow order: mode 0 (im2col) a unit is a pair (c, a), its rows b in
  ;; order; mode 1 (col2im) a unit is a channel c, its rows (a, b) in order, so each
  ;; element of dx receives its rows' additions in the same order however units are
  ;; split. x: image n0's plane 0 (dx for col2im); planeStep: bytes from one image to
  ;; the next; bounds: [lo, hi) of the output columns inside x for each b (2·KW i32s).
  (func $unroll (export "unroll") (param $mode i32) (param $x i32) (param $col i32) (param $bounds i32) (param $planeStep i32) (param $count i32)
    (param $C i32) (param $H i32) (param $W i32) (param $KH i32) (param $KW i32) (param $OH i32) (param $OW i32) (param $stride i32) (param $pad i32)
    (param $u0 i32) (param $u1 i32)
    (local $u i32) (local $c i32) (local $a i32) (local $a1 i32) (local $b i32) (local $row i32) (local $plane i32)
    (local.set $u (local.get $u0))
    (block $done_u (loop $next_u
      (br_if $done_u (i32.ge_s (local.get $u) (local.get $u1)))
      (if (local.get $mode)
        (then (local.set $c (local.get $u)) (local.set $a (i32.const 0)) (local.set $a1 (local.get $KH)))
        (else
          (local.set $c (i32.div_u (local.get $u) (local.get $KH)))
          (local.set $a (i32.rem_u (local.get $u) (local.get $KH)))
          (local.set $a1 (i32.add (local.get $a) (i32.const 1)))))
      (local.set $plane (i32.add (local.get $x) (i32.shl (i32.mul (local.get $c) (i32.mul (local.get $H) (local.get $W))) (i32.const 2))))
      (block $done_a (loop $next_a
        (br_if $done_a (i32.ge_s (local.get $a) (local.get $a1)))${loop(
          '$b',
          get('$KW'),
          `
          (local.set $row (i32.mul (i32.add (i32.mul (i32.add (i32.mul (local.get $c) (local.get $KH)) (local.get $a)) (local.get $KW)) (local.get $b))
            (i32.mul (local.get $count) (i32.mul (local.get $OH) (local.get $OW)))))
          (if (local.get $mode)
            (then (call $col2imRow (local.get $plane) (local.get $planeStep) (local.get $count) (local.get $H) (local.get $W) (local.get $OH) (local.get $OW) (local.get $stride)
              (i32.sub (local.get $a) (local.get $pad)) (i32.sub (local.get $b) (local.get $pad))
              (i32.load (i32.add (local.get $bounds) (i32.shl (local.get $b) (i32.const 3)))) (i32.load offset=4 (i32.add (local.get $bounds) (i32.shl (local.get $b) (i32.const 3))))
              (i32.add (local.get $col) (i32.shl (local.get $row) (i32.const 2)))))
            (else (call $im2colRow (local.get $plane) (local.get $planeStep) (local.get $count) (local.get $H) (local.get $W) (local.get $OH) (local.get $OW) (local.get $stride)
              (i32.sub (local.get $a) (local.get $pad)) (i32.sub (local.get $b) (local.get $pad))
              (i32.load (i32.add (local.get $bounds) (i32.shl (local.get $b) (i32.const 3)))) (i32.load offset=4 (i32.add (local.get $bounds) (i32.shl (local.get $b) (i32.const 3))))
              (i32.add (local.get $col) (i32.shl (local.get $row) (i32.const 2))))))`,
          'b',
        )}
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (br $next_a)))
      (local.set $u (i32.add (local.get $u) (i32.const 1)))
      (br $next_u))))

  ;; col2im for one row (c, a, b): the inverse gather of im2colRow, added onto dx
  ;; (dx[...] + col[...] in float32: the float64 sum of two floats rounds to the same float).
  (func $col2imRow (param $dx i32) (param $planeStep i32) (param $count i32) (param $H i32) (param $W i32)
    (param $OH i32) (param $OW i32) (param $stride i32) (param $rowOff i32) (param $colOff i32) (param $lo i32) (param $hi i32) (param $src i32)
    (local $img i32) (local $i i32) (local $j i32) (local $r i32) (local $s i32) (local $xr i32) (local $xp i32) (local $p i32) (local $q i32)
    (local.set $xp (local.get $dx))
    (local.set $s (local.get $src))${loop(
      '$img',
      get('$count'),
      `${loop(
        '$i',
        get('$OH'),
        `
        (local.set $r (i32.add (i32.mul (local.get $i) (local.get $stride)) (local.get $rowOff)))
        (if (i32.and (i32.ge_s (local.get $r) (i32.const 0)) (i32.lt_s (local.get $r) (local.get $H)))
          (then
            (local.set $xr (i32.add (local.get $xp) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $W)) (local.get $colOff)) (i32.const 2))))
            (local.set $j (local.get $lo))
            (if (i32.eq (local.get $stride) (i32.const 1))
              (then
                (local.set $p ${at(get('$xr'), get('$lo'))})
                (local.set $q ${at(get('$s'), get('$lo'))})
                (block $done4 (loop $next4
                  (br_if $done4 (i32.gt_s (i32.add (local.get $j) (i32.const 4)) (local.get $hi)))
                  (v128.store (local.get $p) (f32x4.add (v128.load (local.get $p)) (v128.load (local.get $q))))
                  (local.set $p (i32.add (local.get $p) (i32.const 16)))
                  (local.set $q (i32.add (local.get $q) (i32.const 16)))
                  (local.set $j (i32.add (local.get $j) (i32.const 4)))
                  (br $next4)))))
            (block $doneJ (loop $nextJ
              (br_if $doneJ (i32.ge_s (local.get $j) (local.get $hi)))
              (local.set $p ${at(get('$xr'), '(i32.mul (local.get $j) (local.get $stride))')})
              (f32.store (local.get $p) (f32.add (f32.load (local.get $p)) (f32.load ${at(get('$s'), get('$j'))})))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br $nextJ)))))
        (local.set $s (i32.add (local.get $s) (i32.shl (local.get $OW) (i32.const 2))))`,
        'i',
      )}
      (local.set $xp (i32.add (local.get $xp) (local.get $planeStep)))`,
      'img',
    )})

  ;; Max pooling over \`planes\` H×W planes, size×size windows moved by stride:
  ;; the window's maximum in row order, the first on ties, a NaN winning (as
  ;; kernels-nd.ts's maxPoolArgmax). grad = 0: out[o] = the maximum. grad = 1:
  ;; out (zeroed, x's shape) receives ct[o] at the maximum's position, for
  ;; windows that do not overlap (each input gets at most one). grad = 2: the
  ;; same for 2×2 windows at stride 2 that tile x exactly, rows a multiple of 4
  ;; outputs, into an out not zeroed: every element written, +0 where no maximum.
  ;; 2×2 windows at stride 2 go four outputs at a time in SIMD: V8 compiles a
  ;; scalar float compare-and-select to branches, which random data mispredicts
  ;; (15 ns an output); f32x4 compares and bitselect have none.
  (func $maxPool (export "maxPool") (param $x i32) (param $ct i32) (param $out i32) (param $planes i32) (param $H i32) (param $W i32)
    (param $size i32) (param $stride i32) (param $OH i32) (param $OW i32) (param $grad i32)
    (local $p i32) (local $i i32) (local $j i32) (local $a i32) (local $k i32) (local $base i32) (local $w0 i32) (local $r i32)
    (local $bi i32) (local $bv f32) (local $v f32) (local $o i32) (local $take i32) (local $W4 i32) (local $vec i32)
    (local $va v128) (local $vb v128) (local $vv v128) (local $vi v128) (local $vt v128) (local $lanes v128) (local $vc v128)
    (local.set $W4 (i32.shl (local.get $W) (i32.const 2)))
    (local.set $vec (i32.and (i32.eq (local.get $size) (i32.const 2)) (i32.eq (local.get $stride) (i32.const 2))))
    (local.set $o (i32.const 0))${loop(
      '$p',
      get('$planes'),
      `
      (local.set $base (i32.add (local.get $x) (i32.shl (i32.mul (local.get $p) (i32.mul (local.get $H) (local.get $W))) (i32.const 2))))${loop(
        '$i',
        get('$OH'),
        `
        (local.set $j (i32.const 0))
        (block $done_j (loop $next_j
          (br_if $done_j (i32.ge_s (local.get $j) (local.get $OW)))
          (local.set $w0 (i32.add (local.get $base) (i32.shl (i32.add (i32.mul (i32.mul (local.get $i) (local.get $stride)) (local.get $W)) (i32.mul (local.get $j) (local.get $stride))) (i32.const 2))))
          (if (i32.and (local.get $vec) (i32.le_s (i32.add (local.get $j) (i32.const 4)) (local.get $OW)))
            (then
              ;; Outputs j…j+3: their windows' top-left values are the even lanes of 8 floats from w0.
              (local.set $lanes (i32x4.add (i32x4.splat (local.get $w0)) (v128.const i32x4 0 8 16 24)))
              (local.set $va (v128.load (local.get $w0)))
              (local.set $vv (v128.load offset=16 (local.get $w0)))
              (local.set $vb (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $va) (local.get $vv)))
              (local.set $vi (local.get $lanes))${[
                ['(i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $va) (local.get $vv))', '(v128.const i32x4 4 4 4 4)', ''],
                [
                  '(i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $va) (local.get $vv))',
                  '(i32x4.splat (local.get $W4))',
                  `
              (local.set $va (v128.load (i32.add (local.get $w0) (local.get $W4))))
              (local.set $vv (v128.load offset=16 (i32.add (local.get $w0) (local.get $W4))))`,
                ],
                [
                  '(i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $va) (local.get $vv))',
                  '(i32x4.splat (i32.add (local.get $W4) (i32.const 4)))',
                  '',
                ],
              ]
                .map(
                  ([value, delta, loads]) => `${loads}
              (local.set $vc ${value})
              (local.set $vt (v128.and (f32x4.eq (local.get $vb) (local.get $vb))
                (v128.or (f32x4.gt (local.get $vc) (local.get $vb)) (f32x4.ne (local.get $vc) (local.get $vc)))))
              (local.set $vb (v128.bitselect (local.get $vc) (local.get $vb) (local.get $vt)))
              (local.set $vi (v128.bitselect (i32x4.add (local.get $lanes) ${delta}) (local.get $vi) (local.get $vt)))`,
                )
                .join('')}
              (if (local.get $grad)
                (then
                  (local.set $vc (v128.load ${at(get('$ct'), get('$o'))}))
                  (if (i32.eq (local.get $grad) (i32.const 2))
                    (then
                      ;; The four windows' eight columns of both rows, whole: ct at each maximum, +0 elsewhere.
                      (local.set $va (v128.and (local.get $vc) (i32x4.eq (local.get $vi) (local.get $lanes))))
                      (local.set $vv (v128.and (local.get $vc) (i32x4.eq (local.get $vi) (i32x4.add (local.get $lanes) (v128.const i32x4 4 4 4 4)))))
                      (local.set $w0 (i32.add (local.get $out) (i32.sub (local.get $w0) (local.get $x))))
                      (v128.store (local.get $w0) (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $va) (local.get $vv)))
                      (v128.store offset=16 (local.get $w0) (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $va) (local.get $vv)))
                      (local.set $va (v128.and (local.get $vc) (i32x4.eq (local.get $vi) (i32x4.add (local.get $lanes) (i32x4.splat (local.get $W4))))))
                      (local.set $vv (v128.and (local.get $vc) (i32x4.eq (local.get $vi) (i32x4.add (local.get $lanes) (i32x4.splat (i32.add (local.get $W4) (i32.const 4)))))))
                      (local.set $w0 (i32.add (local.get $w0) (local.get $W4)))
                      (v128.store (local.get $w0) (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $va) (local.get $vv)))
                      (v128.store offset=16 (local.get $w0) (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $va) (local.get $vv))))
                    (else${[0, 1, 2, 3]
                      .map(
                        (l) => `
                      (f32.store (i32.add (local.get $out) (i32.sub (i32x4.extract_lane ${l} (local.get $vi)) (local.get $x))) (f32x4.extract_lane ${l} (local.get $vc)))`,
                      )
                      .join('')})))
                (else (v128.store ${at(get('$out'), get('$o'))} (local.get $vb))))
              (local.set $o (i32.add (local.get $o) (i32.const 4)))
              (local.set $j (i32.add (local.get $j) (i32.const 4))))
            (else
              (local.set $bi (local.get $w0))
              (local.set $bv (f32.load (local.get $w0)))${loop(
                '$a',
                get('$size'),
                `
              (local.set $r (i32.add (local.get $w0) (i32.shl (i32.mul (local.get $a) (local.get $W)) (i32.const 2))))${loop(
                '$k',
                get('$size'),
                `
                (local.set $v (f32.load ${at(get('$r'), get('$k'))}))
                (local.set $take (i32.and (f32.eq (local.get $bv) (local.get $bv)) (i32.or (f32.gt (local.get $v) (local.get $bv)) (f32.ne (local.get $v) (local.get $v)))))
                (local.set $bv (select (local.get $v) (local.get $bv) (local.get $take)))
                (local.set $bi (select ${at(get('$r'), get('$k'))} (local.get $bi) (local.get $take)))`,
                'k',
              )}`,
                'a',
              )}
              (if (local.get $grad)
                (then (f32.store (i32.add (local.get $out) (i32.sub (local.get $bi) (local.get $x))) (f32.load ${at(get('$ct'), get('$o'))})))
                (else (f32.store ${at(get('$out'), get('$o'))} (local.get $bv))))
              (local.set $o (i32.add (local.get $o) (i32.const 1)))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))))
          (br $next_j)))`,
        'i',
      )}`,
      'p',
    )})

${chainSumsWat()}${rowsWat()}
${shared ? chunksWat() : ''}
  ;; Planes p0 ≤ p < p1 of x [N, C, S] (plane p: channel p mod C, S floats at 4·p·S),
  ;; with coefficients k0..k4 per channel c (5 float64s at coef + 40·c):
  ;; mode 0 (forward):  out = f32((x − k0)·k1 + k2)                     (mean, scale, shift)
  ;; mode 1 (gradient): out = f32(k0·((ct − k1) − ((x − k2)·k3)·k4))    (g·inv, mean(ct), mean, inv, mean(ct·x̂))
  ;; the same float64 operations in the same order as kernels-nd.ts's loops, two lanes at a time.
  (func $bnApply (export "bnApply") (param $x i32) (param $ct i32) (param $out i32) (param $coef i32) (param $p0 i32) (param $p1 i32) (param $C i32) (param $S i32) (param $mode i32)
    (local $p i32) (local $j i32) (local $o i32) (local $cp i32)
    (local $k0 v128) (local $k1 v128) (local $k2 v128) (local $k3 v128) (local $k4 v128) (local $vx v128) (local $vc v128) (local $r v128)
    (local.set $p (local.get $p0))
    (block $doneP (loop $nextP
      (br_if $doneP (i32.ge_s (local.get $p) (local.get $p1)))
        (local.set $o (i32.mul (local.get $p) (local.get $S)))
        (local.set $cp (i32.add (local.get $coef) (i32.mul (i32.rem_u (local.get $p) (local.get $C)) (i32.const 40))))
        (local.set $k0 (f64x2.splat (f64.load (local.get $cp))))
        (local.set $k1 (f64x2.splat (f64.load offset=8 (local.get $cp))))
        (local.set $k2 (f64x2.splat (f64.load offset=16 (local.get $cp))))
        (local.set $k3 (f64x2.splat (f64.load offset=24 (local.get $cp))))
        (local.set $k4 (f64x2.splat (f64.load offset=32 (local.get $cp))))
        (local.set $j (i32.const 0))
        (block $done2 (loop $next2
          (br_if $done2 (i32.gt_s (i32.add (local.get $j) (i32.const 2)) (local.get $S)))
${bnLanes('v128.load64_zero', 'v128.store64_lane')}
          (local.set $j (i32.add (local.get $j) (i32.const 2)))
          (br $next2)))
        (if (i32.lt_s (local.get $j) (local.get $S))
          (then
${bnLanes('v128.load32_zero', 'v128.store32_lane')}))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br $nextP))))
`;
