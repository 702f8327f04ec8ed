/**
 * Training checkpoints: written after every epoch, verified before any resume.
 *
 * A checkpoint is trusted only when every one of these holds: it is sealed JSON
 * whose checksum matches (version 2), it decodes with finite numbers
 * everywhere, its tensors have the architecture's shapes and finite values,
 * and its epoch agrees with its history (epochs 1..E, in order, E within the
 * config's epochs, the best epoch and early stop inside them). A checkpoint
 * failing any of them is refused with a one-line message naming the file and
 * the problem: resuming from it would train from wrong weights or on wrong epochs.
 */
import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Key } from '../core/index.js';
import type { Tree } from '../autodiff/index.js';
import {
  decodeTreeLike,
  encodeTree,
  firstNonFinite,
  initialState,
  optimizerFromSpec,
  readText,
  sealJson,
  unsealJson,
  writeFileAtomic,
  type EpochRecord,
  type FitState,
  type Model,
} from '../nn/index.js';
import { describeErrors, Finite } from '../nn/codecs.js';
import type { ResolvedConfig } from './config.js';

const CHECKPOINT_FORMAT = 'tapegrad.checkpoint';
const CHECKPOINT_VERSION = 2;

const Count = t.refinement(t.number, (n) => Number.isInteger(n) && n >= 0, 'NonNegativeInt');
export const EpochRecordC = t.exact(t.type({ epoch: Count, trainLoss: Finite, trainAccuracy: Finite, valLoss: Finite, valAccuracy: Finite, seconds: Finite }));
const EncodedC = t.array(t.exact(t.type({ path: t.string, shape: t.array(Count), data: t.string })));
const CheckpointC = t.exact(
  t.intersection([
    t.type({
      format: t.literal(CHECKPOINT_FORMAT),
      version: t.union([t.literal(1), t.literal(2)]),
      epoch: Count,
      history: t.array(EpochRecordC),
      best: t.union([t.null, t.exact(t.type({ epoch: Count, valLoss: Finite, params: EncodedC }))]),
      stoppedAt: t.union([t.null, Count]),
      params: EncodedC,
      optState: EncodedC,
    }),
    t.partial({
      /** The run it belongs to (checked on resume); absent in checkpoints written before runs had an id. */
      run: t.exact(t.type({ id: t.string, configSha256: t.string })),
      /** The model's architecture (checked on resume); absent in older checkpoints and for layers written in code. */
      architecture: t.unknown,
      /** The layers' state (running statistics); absent for stateless models. */
      layerState: EncodedC,
      bestLayerState: EncodedC,
    }),
  ]),
);
const KEYS = ['format', 'version', 'epoch', 'history', 'best', 'stoppedAt', 'params', 'optState', 'run', 'architecture', 'layerState', 'bestLayerState'];

/**
 * Which run a checkpoint belongs to: the run folder's id (made when the folder
 * is, kept in its sealed config.json) and the checksum of the config it trains.
 * Two runs of the same architecture have checkpoints of the same shapes: only
 * this tells one's from the other's.
 */
export interface RunIdentity {
  readonly id: string;
  readonly configSha256: string;
}

// biome-ignore lint/suspicious/noExplicitAny: checkpoints hold models built from configs, tree types known only at run time (see AnyLayer)
type AnyModel = Model<any, any>;
// biome-ignore lint/suspicious/noExplicitAny: as AnyModel
type AnyState = FitState<any, any>;

export const checkpointFile = (dir: string): string => join(dir, 'checkpoint.json');

/** Writes a training state as a sealed checkpoint (atomically: a crash leaves the previous one). */
export const saveCheckpoint = (dir: string, s: AnyState, model?: AnyModel, run?: RunIdentity): void => {
  const layerState = encodeTree(s.layerState as Tree);
  writeFileAtomic(
    checkpointFile(dir),
    sealJson({
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      epoch: s.epoch,
      history: s.history,
      ...(run !== undefined ? { run: { id: run.id, configSha256: run.configSha256 } } : {}),
      best: s.best === undefined ? null : { epoch: s.best.epoch, valLoss: s.best.valLoss, params: encodeTree(s.best.params) },
      stoppedAt: s.stoppedAt ?? null,
      params: encodeTree(s.params),
      optState: encodeTree(s.optState),
      ...(model?.spec !== undefined ? { architecture: model.spec } : {}),
      ...(layerState.length > 0 ? { layerState, ...(s.best !== undefined ? { bestLayerState: encodeTree(s.best.layerState as Tree) } : {}) } : {}),
    }),
  );
};

/** Whether a history is epochs 1..n in order, each with finite numbers; else what is wrong. */
export const historyProblem = (history: readonly EpochRecord[]): string | undefined => {
  for (let i = 0; i < history.length; i++) {
    if (history[i]!.epoch !== i + 1) return `history entry ${i + 1} is epoch ${history[i]!.epoch}, expected ${i + 1}`;
  }
  return undefined;
};

const FIX = 'resume is refused: start the run again (tapegrad train --config …), or restore the file from a backup';

/**
 * Reads and verifies `dir`'s checkpoint for `model` trained with `c`, in the
 * run `run` (when the folder has an id, the checkpoint must carry the same id
 * and config checksum). `Left` names the file, what is wrong, and what to do.
 */
export const loadCheckpoint = (dir: string, model: AnyModel, c: ResolvedConfig, run?: RunIdentity): E.Either<Error, AnyState> => {
  const file = checkpointFile(dir);
  const bad = (problem: string) => E.left(new Error(`${file}: ${problem}: ${FIX}`));
  if (!existsSync(file)) return E.left(new Error(`${dir}: no checkpoint.json, so no finished epoch to resume from`));
  const text = readText(file);
  if (E.isLeft(text)) return text;
  // Version 1 checkpoints had no checksum; version 2 ones must carry a good one.
  const sealed = unsealJson(file, text.right, !/"version":1[,}]/.test(text.right.slice(0, 80)));
  if (E.isLeft(sealed)) return bad(sealed.left.message.slice(file.length + 2));
  // io-ts' exact types drop unknown keys silently; a stray key here means a damaged file (or a renamed checksum).
  const stray = Object.keys(sealed.right).filter((k) => !KEYS.includes(k));
  if (stray.length > 0) return bad(`has an unexpected key ${JSON.stringify(stray[0])}, so it is damaged`);
  const d = CheckpointC.decode(sealed.right);
  if (E.isLeft(d)) return bad(`not a valid tapegrad checkpoint (${describeErrors(d.left)})`);
  const ck = d.right;
  if (run !== undefined) {
    if (ck.run === undefined) return bad(`has no run id, but ${dir} is run ${run.id}: it may be another run's checkpoint`);
    if (ck.run.id !== run.id) return bad(`belongs to run ${ck.run.id}, not to ${dir}'s run ${run.id}: it is another run's checkpoint`);
    if (ck.run.configSha256 !== run.configSha256)
      return bad(
        `was written for another config than ${dir}/config.json (config checksum ${ck.run.configSha256.slice(0, 12)}…, the folder's ${run.configSha256.slice(0, 12)}…)`,
      );
  }
  const h = historyProblem(ck.history);
  if (h !== undefined) return bad(h);
  if (ck.epoch !== ck.history.length) return bad(`epoch ${ck.epoch} disagrees with its history of ${ck.history.length} epochs`);
  if (ck.epoch > c.training.epochs) return bad(`epoch ${ck.epoch} is beyond the run's ${c.training.epochs} epochs`);
  if ((ck.best === null) !== (ck.epoch === 0))
    return bad(ck.best === null ? `${ck.epoch} epochs finished but no best epoch recorded` : 'a best epoch recorded before any epoch finished');
  if (ck.best !== null) {
    const rec = ck.history[ck.best.epoch - 1];
    if (ck.best.epoch < 1 || rec === undefined) return bad(`best epoch ${ck.best.epoch} is outside epochs 1..${ck.epoch}`);
    if (rec.valLoss !== ck.best.valLoss)
      return bad(`best epoch ${ck.best.epoch}'s validation loss ${ck.best.valLoss} differs from its history's ${rec.valLoss}`);
    if (ck.history.some((r) => r.valLoss < ck.best!.valLoss)) return bad(`best epoch ${ck.best.epoch} does not have the lowest validation loss of its history`);
  }
  if (ck.stoppedAt !== null && ck.stoppedAt !== ck.epoch) return bad(`early stop at epoch ${ck.stoppedAt}, but ${ck.epoch} epochs were saved`);
  if (ck.architecture !== undefined && JSON.stringify(ck.architecture) !== JSON.stringify(model.spec)) {
    return bad(`it was written by another architecture than ${dir}/config.json describes`);
  }
  const like = model.layer.init(new Key(0));
  const optLike = optimizerFromSpec(c.training.optimizer).init(like);
  const params = decodeTreeLike(file, like, ck.params);
  if (E.isLeft(params)) return bad(params.left.message.slice(file.length + 2));
  const opt = decodeTreeLike(file, optLike as Tree, ck.optState);
  if (E.isLeft(opt)) return bad(opt.left.message.slice(file.length + 2));
  const stateLike = initialState(model.layer) as Tree;
  const layerState = ck.layerState === undefined ? E.right(stateLike) : decodeTreeLike(file, stateLike, ck.layerState);
  if (E.isLeft(layerState)) return bad(layerState.left.message.slice(file.length + 2));
  const bestLayerState = ck.bestLayerState === undefined ? layerState : decodeTreeLike(file, stateLike, ck.bestLayerState);
  if (E.isLeft(bestLayerState)) return bad(bestLayerState.left.message.slice(file.length + 2));
  const best =
    ck.best === null
      ? E.right(undefined)
      : E.map((p: Tree) => ({ epoch: ck.best!.epoch, valLoss: ck.best!.valLoss, params: p, layerState: bestLayerState.right }))(
          decodeTreeLike(file, like as Tree, ck.best.params),
        );
  if (E.isLeft(best)) return bad(best.left.message.slice(file.length + 2));
  for (const [what, tree] of [
    ['weights', params.right],
    ['optimizer state', opt.right],
    ['best weights', best.right?.params ?? []],
    ['layer state', layerState.right],
    ['best layer state', bestLayerState.right],
  ] as const) {
    const nf = firstNonFinite(tree as Tree);
    if (nf !== undefined) return bad(`its ${what} hold a non-finite number (${nf}), which training never saves, so the file is corrupt`);
  }
  return E.right({
    epoch: ck.epoch,
    params: params.right,
    optState: opt.right,
    layerState: layerState.right,
    history: ck.history,
    best: best.right,
    stoppedAt: ck.stoppedAt ?? undefined,
  });
};
