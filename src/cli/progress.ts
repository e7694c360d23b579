// Progress rendering for long work: a redrawn bar with rate and ETA on a TTY, plain periodic lines
// otherwise (CI logs). Everything goes to stderr; stdout is for machine output.

export interface ProgressOptions {
  label: string;
  total: number;                 // units of work (steps, images…)
  unit?: string;                 // "step", "img"
  stream?: NodeJS.WriteStream;   // default process.stderr
  intervalMs?: number;           // plain mode: at most one line per interval (default 10 s)
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

export class Progress {
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly start = performance.now();
  private lastDraw = 0;
  private done = 0;
  private drawn = -1;  // the `done` of the last line written

  constructor(private readonly o: ProgressOptions) {
    this.stream = o.stream ?? process.stderr;
    this.tty = interactive(this.stream);
  }

  /** Marks `done` units complete (absolute, not a delta) with a short status such as "loss 1.23". */
  update(done: number, status = '', force = false): void {
    this.done = done;
    const now = performance.now();
    const every = this.tty ? 100 : (this.o.intervalMs ?? 10_000);
    if (!force && now - this.lastDraw < every && done < this.o.total) return;
    this.lastDraw = now;
    this.drawn = done;
    const elapsed = (now - this.start) / 1000;
    const rate = done / Math.max(elapsed, 1e-9);
    const eta = rate > 0 ? (this.o.total - done) / rate : Infinity;
    const pct = this.o.total > 0 ? (100 * done) / this.o.total : 100;
    const unit = this.o.unit ?? 'step';
    const stats = `${done}/${this.o.total} ${unit}s  ${rate >= 10 ? rate.toFixed(0) : rate.toFixed(2)} ${unit}/s  ` +
      `elapsed ${formatDuration(elapsed)}  ETA ${formatDuration(eta)}`;
    if (this.tty) {
      const width = 24, fill = Math.round((width * pct) / 100);
      const bar = '█'.repeat(fill) + '░'.repeat(width - fill);
      this.stream.write(`\r\x1b[2K${this.o.label} ${bar} ${pct.toFixed(0).padStart(3)}%  ${stats}  ${status}`);
    } else {
      this.stream.write(`${this.o.label} ${pct.toFixed(1)}%  ${stats}  ${status}\n`);
    }
  }

  /** A line of its own (e.g. a validation result) without breaking the bar. */
  log(line: string): void {
    this.stream.write(this.tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
    this.lastDraw = 0;
  }

  /** The final line (unless a plain-mode line already showed this count), then a newline on a TTY. */
  finish(status = ''): void {
    if (this.tty || this.drawn !== this.done || status !== '') this.update(this.done, status, true);
    if (this.tty) this.stream.write('\n');
  }
}

/** Bars and colours only on a terminal, never in CI; NO_COLOR (any value) turns colours off too. */
export function interactive(stream: NodeJS.WriteStream): boolean {
  return stream.isTTY === true && process.env['CI'] !== 'true';
}

export function bold(text: string, stream: NodeJS.WriteStream = process.stderr): string {
  return interactive(stream) && process.env['NO_COLOR'] === undefined ? `\x1b[1m${text}\x1b[0m` : text;
}
