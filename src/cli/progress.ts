/**
 * Progress on long work: a live bar on a terminal (cli-progress), one line per
 * epoch otherwise (logs, CI).
 */
import cliProgress from 'cli-progress';
import type { ProgressEvent } from '../experiments/parallel.js';

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** A fit-event handler that draws progress on stderr. */
export const progressReporter = (label: string, stream: NodeJS.WriteStream = process.stderr): ((e: ProgressEvent) => void) & { stop(): void } => {
  const tty = stream.isTTY === true;
  let bar: cliProgress.SingleBar | undefined;
  let epochs = 0;
  const handler = (e: ProgressEvent): void => {
    if (e.type === 'start') {
      epochs = e.epochs;
      if (e.step !== undefined) stream.write(`${label} steps: ${e.step.path} (${e.step.reason})\n`);
      if (tty) {
        bar = new cliProgress.SingleBar(
          {
            stream,
            format: `${label} epoch {epoch}/{epochs} [{bar}] {value}/{total} batches | ETA {eta_formatted} | loss {loss} | acc {acc} | val {val}`,
            hideCursor: true,
            clearOnComplete: false,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(e.batchesPerEpoch, 0, { epoch: e.startEpoch, epochs, loss: '-', acc: '-', val: '-' });
      }
    } else if (e.type === 'batch' && bar) {
      if (e.batch === 1) bar.start(e.batches, 0, { epoch: e.epoch, epochs, loss: '-', acc: '-', val: bar ? '-' : '' });
      bar.update(e.batch, { loss: e.loss.toFixed(4), acc: pct(e.accuracy) });
    } else if (e.type === 'epoch') {
      const r = e.record;
      const line = `${label} epoch ${r.epoch}/${epochs}: train loss ${r.trainLoss.toFixed(4)} acc ${pct(r.trainAccuracy)} | validation loss ${r.valLoss.toFixed(4)} acc ${pct(r.valAccuracy)}${e.improved ? ' *' : ''} (${r.seconds.toFixed(1)} s)`;
      if (bar) {
        bar.stop();
        stream.write(`${line}\n`);
      } else stream.write(`${line}\n`);
    } else if (e.type === 'stepPath') {
      stream.write(`${label} steps: ${e.step.path} from now on (${e.step.reason})\n`);
    } else if (e.type === 'earlyStop') {
      bar?.stop();
      stream.write(`${label} early stopping at epoch ${e.epoch}: returning the weights of epoch ${e.bestEpoch} (lowest validation loss)\n`);
    } else if (e.type === 'interrupted') {
      bar?.stop();
      stream.write(`${label} interrupted: ${e.epoch} finished epochs are saved\n`);
    }
  };
  return Object.assign(handler, { stop: () => bar?.stop() });
};

/**
 * Progress of runs side by side (`--jobs`): on a terminal one bar per running
 * run (cli-progress MultiBar), and always one line per finished epoch, labelled
 * with its run.
 */
export const multiProgressReporter = (stream: NodeJS.WriteStream = process.stderr): ((label: string, e: ProgressEvent) => void) & { stop(): void } => {
  const multi =
    stream.isTTY === true
      ? new cliProgress.MultiBar(
          {
            stream,
            hideCursor: true,
            clearOnComplete: true,
            format: '{label} epoch {epoch}/{epochs} [{bar}] {value}/{total} | loss {loss} | acc {acc}',
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  const bars = new Map<string, { bar: cliProgress.SingleBar | undefined; epochs: number }>();
  const say = (line: string) => (multi ? multi.log(`${line}\n`) : stream.write(`${line}\n`));
  const handler = (label: string, e: ProgressEvent): void => {
    if (e.type === 'start') {
      const bar = multi?.create(e.batchesPerEpoch, 0, { label, epoch: e.startEpoch, epochs: e.epochs, loss: '-', acc: '-' });
      bars.set(label, { bar, epochs: e.epochs });
      say(
        `${label}: started (${e.epochs} epochs at most${e.startEpoch > 1 ? `, resumed at epoch ${e.startEpoch}` : ''}${e.step !== undefined ? `; ${e.step.path} steps` : ''})`,
      );
      return;
    }
    if (e.type === 'stepPath') {
      say(`${label} steps: ${e.step.path} from now on (${e.step.reason})`);
      return;
    }
    const entry = bars.get(label);
    if (e.type === 'batch') {
      entry?.bar?.update(e.batch, { epoch: e.epoch, loss: e.loss.toFixed(4), acc: pct(e.accuracy) });
    } else if (e.type === 'epoch') {
      const r = e.record;
      say(
        `${label} epoch ${r.epoch}/${entry?.epochs ?? '?'}: train loss ${r.trainLoss.toFixed(4)} acc ${pct(r.trainAccuracy)} | validation loss ${r.valLoss.toFixed(4)} acc ${pct(r.valAccuracy)}${e.improved ? ' *' : ''} (${r.seconds.toFixed(1)} s)`,
      );
    } else {
      if (e.type === 'earlyStop') say(`${label} early stopping at epoch ${e.epoch}: returning the weights of epoch ${e.bestEpoch}`);
      else say(`${label} interrupted: ${e.epoch} finished epochs are saved`);
    }
    if (e.type === 'earlyStop' || e.type === 'interrupted' || (e.type === 'epoch' && e.record.epoch === entry?.epochs)) {
      if (entry?.bar) multi?.remove(entry.bar);
      bars.delete(label);
    }
  };
  return Object.assign(handler, { stop: () => multi?.stop() });
};
