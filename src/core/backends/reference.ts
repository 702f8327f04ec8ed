/** The reference backend: plain loops, the trusted path for tests and gradcheck. */
import type { Backend } from '../backend.js';

/**
 * The float64-accumulating reference: plain loops, the trusted path for tests and
 * gradcheck. Loop order keeps the innermost access contiguous for every transpose form.
 */
export const referenceBackend: Backend = {
  name: 'reference',
  description: 'reference: plain TypeScript loops (float64 accumulation); slow, exact',
  matmul(a, b, m, k, n, transA, transB, out) {
    if (!transB) {
      // Row i of C accumulates a[i,p] * row p of B: contiguous over j.
      const acc = new Float64Array(n);
      for (let i = 0; i < m; i++) {
        acc.fill(0);
        for (let p = 0; p < k; p++) {
          const aip = transA ? a[p * m + i]! : a[i * k + p]!;
          if (aip === 0) continue;
          const bo = p * n;
          for (let j = 0; j < n; j++) acc[j]! += aip * b[bo + j]!;
        }
        out.set(acc, i * n);
      }
    } else {
      // B stored n×k: C[i,j] is a dot product of two contiguous rows (when !transA).
      const col = new Float64Array(k);
      for (let i = 0; i < m; i++) {
        for (let p = 0; p < k; p++) col[p] = transA ? a[p * m + i]! : a[i * k + p]!;
        for (let j = 0; j < n; j++) {
          let s = 0;
          const bo = j * k;
          for (let p = 0; p < k; p++) s += col[p]! * b[bo + p]!;
          out[i * n + j] = s;
        }
      }
    }
  },
};

