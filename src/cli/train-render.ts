// Renders training events on stderr: a redrawn bar with throughput and ETA on a TTY, plain lines at most
// every intervalMs otherwise (CI logs). Shared by every `… train` command.
import { signalExitCode } from '../errors.js';
import type { TrainEvent } from '../train/events.js';
import { formatDuration, interactive } from './progress.js';

/**
 * What a training command does with a further SIGINT/SIGTERM while it saves: exit at once. One within a second of the
 * first is the same stop delivered twice (a process-group kill and a runner passing it on) and is ignored.
 */
export function exitOnRepeatedSignal(signal: NodeJS.Signals, msSinceFirst: number): void {
  if (msSinceFirst >= 1000) process.exit(signalExitCode(signal));
}

export interface RenderOptions {
  label: string;
  unit: string;                      // "img"
  formatMetrics: (m: Record<string, number>) => string;
  stream?: NodeJS.WriteStream;
  intervalMs?: number;               // plain mode (default 10 s)
}

export function trainEventRenderer(o: RenderOptions): (e: TrainEvent) => void {
  const stream = o.stream ?? process.stderr;
  const tty = interactive(stream);
  const interval = o.intervalMs ?? 10_000;
  let last = -Infinity, barShown = false;
  const line = (s: string): void => {
    stream.write(tty && barShown ? `\r\x1b[2K${s}\n` : `${s}\n`);
    barShown = false;
  };
  return (e) => {
    switch (e.type) {
      case 'start':
        line(`${o.label}: ${e.resumed ? `resuming at step ${e.step}` : 'starting'}, ${e.totalSteps} steps of ` +
          `${e.itemsPerStep} ${o.unit}s`);
        break;
      case 'progress': {
        const pct = (100 * e.step) / e.totalSteps;
        const stats = `step ${e.step}/${e.totalSteps} ep ${e.epoch.toFixed(2)}  loss ${e.loss.toFixed(4)}  ` +
          `${o.formatMetrics(e.metrics)}  ` +
          `lr ${e.lr.toExponential(1)}  ${e.itemsPerSec.toFixed(0)} ${o.unit}/s  ETA ${formatDuration(e.etaSec)}` +
          (e.metrics['allreduceMs'] !== undefined ? `  allreduce ${e.metrics['allreduceMs'].toFixed(0)} ms/step` : '');
        if (tty) {
          const width = 20, fill = Math.round((width * pct) / 100);
          stream.write(
            `\r\x1b[2K${'█'.repeat(fill)}${'░'.repeat(width - fill)} ${pct.toFixed(0).padStart(3)}% ${stats}`,
          );
          barShown = true;
        } else {
          const now = performance.now();
          if (now - last >= interval || e.step === e.totalSteps) {
            last = now;
            line(`${o.label} ${pct.toFixed(1)}% ${stats}`);
          }
        }
        break;
      }
      case 'epoch':
        line(`${o.label}: epoch ${e.epoch} done at step ${e.step}  ${o.formatMetrics(e.metrics)}`);
        break;
      case 'eval':
        line(`${o.label}: step ${e.step} (epoch ${e.epoch.toFixed(2)})  ${o.formatMetrics(e.metrics)}`);
        break;
      case 'checkpoint':
        if (!tty) line(`${o.label}: checkpoint at step ${e.step} → ${e.path} (${e.ms.toFixed(0)} ms)`);
        break;
      case 'nonfinite':
        line(
          `${o.label}: step ${e.step} skipped: loss ${e.loss}, gradient norm ${e.gradNorm} (${e.consecutive} in a row)`,
        );
        break;
      case 'note':
        line(`${o.label}: ${e.message}`);
        break;
      case 'stopped':
        line(`${o.label}: ${e.signal} — saved step ${e.step} to ${e.path}; continue with --resume`);
        break;
      case 'done':
        line(`${o.label}: done, ${e.step} steps (${formatDuration(e.elapsedSec)} of training in this process)`);
        break;
    }
  };
}
