/**
 * Progress on long work: a live bar on a terminal (cli-progress), one line per
 * epoch otherwise (logs, CI).
 */
import cliProgress from 'cli-progress';
import type { FitEvent } from '../nn/index.js';

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** A fit-event handler that draws progress on stderr. */
export const progressReporter = (label: string, stream: NodeJS.WriteStream = process.stderr): ((e: FitEvent) => void) & { stop(): void } => {
  const tty = stream.isTTY === true;
  let bar: cliProgress.SingleBar | undefined;
  let epochs = 0;
  const handler = (e: FitEvent): void => {
    if (e.type === 'start') {
      epochs = e.epochs;
      if (tty) {
        bar = new cliProgress.SingleBar({
          stream,
          format: `${label} epoch {epoch}/{epochs} [{bar}] {value}/{total} batches | ETA {eta_formatted} | loss {loss} | acc {acc} | val {val}`,
          hideCursor: true,
          clearOnComplete: false,
        }, cliProgress.Presets.shades_classic);
        bar.start(e.batchesPerEpoch, 0, { epoch: e.startEpoch, epochs, loss: '-', acc: '-', val: '-' });
      }
    } else if (e.type === 'batch' && bar) {
      if (e.batch === 1) bar.start(e.batches, 0, { epoch: e.epoch, epochs, loss: '-', acc: '-', val: bar ? '-' : '' });
      bar.update(e.batch, { loss: e.loss.toFixed(4), acc: pct(e.accuracy) });
    } else if (e.type === 'epoch') {
      const r = e.record;
      const line = `${label} epoch ${r.epoch}/${epochs}: train loss ${r.trainLoss.toFixed(4)} acc ${pct(r.trainAccuracy)} | validation loss ${r.valLoss.toFixed(4)} acc ${pct(r.valAccuracy)}${e.improved ? ' *' : ''} (${r.seconds.toFixed(1)} s)`;
      if (bar) { bar.stop(); stream.write(`${line}\n`); }
      else stream.write(`${line}\n`);
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
