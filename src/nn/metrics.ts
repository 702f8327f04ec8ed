/** Classification metrics on logits (or probabilities) and integer labels. */
import { internal } from '../core/internal.js';
import { ShapeError, showShape } from '../core/index.js';
import type { Tensor } from '../core/index.js';

const rowsOf = (scores: Tensor, labels: ArrayLike<number>, who: string): [number, number] => {
  if (scores.rank !== 2 || scores.shape[0] !== labels.length) {
    throw new ShapeError(`${who}: scores of shape ${showShape(scores.shape)} do not fit ${labels.length} labels`);
  }
  return scores.shape as [number, number];
};

/** Index of the largest score in each row (first on ties), as class labels; `argmax` (core) does any axis and gives a tensor. */
export const predictedClasses = (scores: Tensor): Int32Array => {
  const [n, c] = scores.shape as [number, number];
  const d = internal.dataOf(scores);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0,
      bv = d[i * c]!;
    for (let j = 1; j < c; j++) {
      const v = d[i * c + j]!;
      if (v > bv) {
        bv = v;
        best = j;
      }
    }
    out[i] = best;
  }
  return out;
};

/** Number of rows whose argmax equals the label. */
export const correctCount = (scores: Tensor, labels: ArrayLike<number>): number => {
  rowsOf(scores, labels, 'accuracy');
  const pred = predictedClasses(scores);
  let k = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) k++;
  return k;
};

/** Share of rows whose argmax equals the label. */
export const accuracy = (scores: Tensor, labels: ArrayLike<number>): number => correctCount(scores, labels) / labels.length;

/** Share of rows whose label is among the k highest scores. */
export const topKAccuracy = (scores: Tensor, labels: ArrayLike<number>, k: number): number => {
  const [n, c] = rowsOf(scores, labels, 'topKAccuracy');
  const d = internal.dataOf(scores);
  let hits = 0;
  for (let i = 0; i < n; i++) {
    const own = d[i * c + labels[i]!]!;
    let above = 0;
    for (let j = 0; j < c; j++) {
      const v = d[i * c + j]!;
      if (v > own || (v === own && j < labels[i]!)) above++;
    }
    if (above < k) hits++;
  }
  return hits / n;
};

/** counts[true][predicted], as rows of a `classes × classes` matrix. */
export const confusionMatrix = (predicted: ArrayLike<number>, labels: ArrayLike<number>, classes: number): number[][] => {
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) m[labels[i]!]![predicted[i]!]!++;
  return m;
};

/** Accuracy of each true class from a confusion matrix (NaN for a class never seen). */
export const perClassAccuracy = (confusion: readonly (readonly number[])[]): number[] => confusion.map((row, c) => row[c]! / row.reduce((a, b) => a + b, 0));
