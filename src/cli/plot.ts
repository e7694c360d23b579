// `ctfgen plot curves` and `ctfgen plot points`: training curves read from event logs (*.events.jsonl, one
// TrainEvent per line, see src/train/event-log.ts) and metric-vs-x series read from small JSON files, drawn by
// src/viz/plot.ts into a PNG. Parsing lives here because these files exist only for plotting.
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { CtfError } from '../errors.js';
import { readFileChecked } from '../io/atomic.js';
import { checkOutputs } from '../io/outputs.js';
import { writePng } from '../io/png.js';
import { renderLinePlot, type PlotSeries } from '../viz/plot.js';
import { UsageError, requireString, type FlagSpec, type ParsedFlags } from './args.js';
import type { Command } from './main.js';

const MAX_LOG_BYTES = 1024 * 1024 * 1024;

export type CurveX = 'step' | 'epoch';

export interface CurveOptions {
  // 'loss': the training loss of 'progress' events; else a metrics key (valLoss, …), see curveFromEventLog
  metric: string;
  x: CurveX;
}

export interface Curve {
  points: [number, number][];   // (x, y) sorted by step, one per step
  notes: string[];              // what was tolerated (torn lines of killed runs), for the CLI to show
}

type Event = Record<string, unknown>;

/**
 * A numeric field of an event (or of its metrics): undefined when absent and optional, null when JSON null
 * (how a NaN is written). `what` names the object in errors: 'the "eval" event', 'the metrics of …'.
 */
function field(
  e: Event,
  key: string,
  where: string,
  what: string,
  o: { optional?: boolean; integer?: boolean } = {},
): number | null | undefined {
  const v = e[key];
  if (v === undefined) {
    if (o.optional) return undefined;
    throw new CtfError(`${where}: ${what} has no "${key}" field`);
  }
  if (v === null) return null;
  if (typeof v !== 'number' || (o.integer && !(Number.isInteger(v) && v >= 0)))
    throw new CtfError(
      `${where}: "${key}" of ${what} is ${JSON.stringify(v)}, expected ` +
      `${o.integer ? 'a step count (integer ≥ 0)' : 'a number'}`,
    );
  return v;
}

/**
 * One curve from a training event log: `metric` 'loss' is the training loss of 'progress' events; any other name
 * is looked up in the metrics of 'eval' and 'epoch' events (valLoss), or, when no such event has it, in the
 * metrics of 'progress' events (psnr, …). A resumed run appends a 'start' event with resumed true and may repeat
 * steps: the last value per step wins, and values logged after the step it resumed from are dropped (that future
 * was abandoned). A 'start' with resumed false is a new run in the same file: earlier values are dropped.
 * `source` names the file in errors ("file:line: …").
 */
export function curveFromEventLog(text: string, source: string, o: CurveOptions): Curve {
  const notes: string[] = [];
  const fromEval = new Map<number, [number, number]>(), fromProgress = new Map<number, [number, number]>();
  const seen = { eval: new Set<string>(), progress: new Set<string>(), events: 0 };
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const where = `${source}:${i + 1}`;
    if (line.trim() === '') return;
    let e: unknown;
    try {
      e = JSON.parse(line);
    } catch (err) {
      // A log is appended line by line: a run killed mid-append leaves a torn line, last while nothing resumed the run;
      // logs written before event-log.ts cut torn lines off have the resumed run's 'start' event joined to it.
      const resumed = line.indexOf('{"type":"start"');
      if (i === lines.length - 1) {
        notes.push(`${where}: skipped a torn last line of ${line.length} bytes (the run is writing it, or was killed)`);
        return;
      }
      if (resumed <= 0) throw new CtfError(`${where}: not a JSON line (${(err as Error).message})`);
      try {
        e = JSON.parse(line.slice(resumed));
      } catch {
        throw new CtfError(`${where}: not a JSON line (${(err as Error).message})`);
      }
      notes.push(`${where}: skipped a torn line of ${resumed} bytes (a run killed while writing it) before a resume`);
    }
    if (typeof e !== 'object' || e === null || Array.isArray(e) || typeof (e as Event)['type'] !== 'string')
      throw new CtfError(
        `${where}: expected a training event object with a "type", got ${JSON.stringify(e).slice(0, 60)}`,
      );
    const ev = e as Event, what = `the "${ev['type']}" event`;
    seen.events++;
    if (ev['type'] === 'start') {
      const from = field(ev, 'step', where, what, { integer: true })!;
      if (typeof ev['resumed'] !== 'boolean')
        throw new CtfError(
          `${where}: "resumed" of the "start" event is ${JSON.stringify(ev['resumed'])}, expected true or false`,
        );
      for (const m of [fromEval, fromProgress])
        for (const s of [...m.keys()]) if (!ev['resumed'] || s > from) m.delete(s);
      return;
    }
    const isProgress = ev['type'] === 'progress', isEval = ev['type'] === 'eval' || ev['type'] === 'epoch';
    if (!isProgress && !isEval) return;
    const step = field(ev, 'step', where, what, { integer: true })!;
    const epoch = field(ev, 'epoch', where, what);
    if (epoch === null) throw new CtfError(`${where}: "epoch" of ${what} is null, expected a number`);
    const x = o.x === 'step' ? step : epoch!;
    const metrics = ev['metrics'] ?? {};
    if (typeof metrics !== 'object' || metrics === null || Array.isArray(metrics))
      throw new CtfError(`${where}: "metrics" of ${what} is ${JSON.stringify(metrics)}, expected an object of numbers`);
    for (const k of Object.keys(metrics)) (isEval ? seen.eval : seen.progress).add(k);
    let y: number | null | undefined;
    if (isProgress && o.metric === 'loss') y = field(ev, 'loss', where, what);
    else if (o.metric !== 'loss')
      y = field(metrics as Event, o.metric, where, `the metrics of ${what}`, { optional: true });
    if (y === undefined || y === null) return;   // not in this event, or non-finite when logged (NaN → null)
    (isEval ? fromEval : fromProgress).set(step, [x, y]);
  });
  const chosen = o.metric === 'loss' ? fromProgress : fromEval.size > 0 ? fromEval : fromProgress;
  if (chosen.size === 0) {
    if (seen.events === 0) throw new CtfError(`${source}: no training events (an empty log?)`);
    const have = [...(o.metric === 'loss' ? [] : seen.eval), ...seen.progress].filter((k) => k !== o.metric);
    const hint =
      o.metric === 'valLoss'
        ? ' — was the run trained without validation data? (`ctfgen train --help`: --val-limit, --eval-every)'
        : '';
    throw new CtfError(`${source}: no "${o.metric}" values in ${seen.events} ` +
      `events${have.length ? ` (metrics found: ${[...new Set(have)].join(', ')}; or "loss")` : ''}${hint}`);
  }
  const points = [...chosen.entries()].sort((a, b) => a[0] - b[0]).map(([, p]) => p);
  return { points, notes };
}

/** `{"points": [[x, y], ...]}` (null for a missing value) → points; errors name the file and the entry. */
export function pointsFromJson(text: string, source: string): [number, number][] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    const msg = (err as Error).message;
    const pos = /at position (\d+)/.exec(msg);
    const at = pos ? `:${text.slice(0, Number(pos[1])).split('\n').length}` : '';
    throw new CtfError(`${source}${at}: not valid JSON (${msg})`);
  }
  const pts = (doc as { points?: unknown } | null)?.points;
  if (typeof doc !== 'object' || doc === null || !Array.isArray(pts))
    throw new CtfError(`${source}: expected {"points": [[x, y], ...]}, got ${JSON.stringify(doc).slice(0, 60)}`);
  return pts.map((p, i): [number, number] => {
    if (!Array.isArray(p) || p.length !== 2 || !p.every((v) => typeof v === 'number' || v === null))
      throw new CtfError(
        `${source}: points[${i}] is ${JSON.stringify(p)}, expected [x, y] with two numbers (null for a missing value)`,
      );
    return [p[0] ?? NaN, p[1] ?? NaN];
  });
}

/**
 * "NAME=FILE", or "FILE" named after itself (runs/x/baseline.events.jsonl → baseline). Names and paths may both
 * contain '=' ("K=128=runs/k=128/fid.json"): the split is at the first '=' after which `exists` accepts the path,
 * else at the first '=' (so the error names the missing file), else the whole argument is a path.
 */
export function parseSeriesArg(
  arg: string,
  suffix: RegExp,
  exists: (path: string) => boolean = () => false,
): { name: string; path: string } {
  if (exists(arg)) return { name: basename(arg).replace(suffix, ''), path: arg };
  const cuts = [...arg.matchAll(/=/g)].map((m) => m.index!);
  const eq = cuts.find((i) => exists(arg.slice(i + 1))) ?? cuts[0];
  const [name, path] =
    eq !== undefined ? [arg.slice(0, eq), arg.slice(eq + 1)] : [basename(arg).replace(suffix, ''), arg];
  if (name === '' || path === '') throw new UsageError(`"${arg}": expected NAME=FILE (or just FILE)`);
  return { name, path };
}

function seriesArgs(positionals: string[], suffix: RegExp, what: string): { name: string; path: string }[] {
  if (positionals.length === 0) throw new UsageError(`give at least one ${what}`);
  const args = positionals.map((a) => parseSeriesArg(a, suffix, existsSync));
  const names = args.map((a) => a.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw new UsageError(`the series name "${twice}" is given twice; name them NAME=FILE`);
  return args;
}

function describe(name: string, pts: [number, number][], metric: string, xName: string): string {
  const ok = pts.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (ok.length === 0) return `${name}: no finite points`;
  const best = ok.reduce((a, b) => (b[1] < a[1] ? b : a));
  const f = (v: number): string => String(Number(v.toPrecision(5)));
  return `${name}: ${ok.length} points, ${metric} ${f(ok[0]![1])} → ${f(ok[ok.length - 1]![1])} (lowest ` +
    `${f(best[1])} at ${xName} ${f(best[0])})`;
}

/** --out must be writable and none of the series files, before any file is read. */
function checkPlotOut(f: ParsedFlags, args: { name: string; path: string }[]): void {
  checkOutputs({
    inputs: args.map((a) => ({ role: `the series ${a.name}`, path: a.path })),
    outputs: [{ role: '--out', path: requireString(f, 'out') }],
  });
}

async function drawAndWrite(
  f: ParsedFlags,
  series: PlotSeries[],
  title: string,
  xLabel: string,
  yLabel: string,
): Promise<void> {
  const out = requireString(f, 'out');
  const img = renderLinePlot({
    title,
    xLabel,
    yLabel,
    series,
    width: f['width'] as number,
    height: f['height'] as number,
    logY: f['logY'] === true,
  });
  await writePng(out, img);
  process.stderr.write(`wrote ${out} (${img.width}×${img.height})\n`);
}

const PICTURE_FLAGS: Record<string, FlagSpec> = {
  out: { type: 'string', help: 'the PNG to write (required)' },
  title: { type: 'string', help: 'the title above the plot' },
  width: { type: 'int', default: 800, min: 200, help: 'image width in pixels' },
  height: { type: 'int', default: 500, min: 150, help: 'image height in pixels' },
  logY: { type: 'boolean', help: 'logarithmic y axis (values ≤ 0 are left out)' },
};

const METRIC_LABEL: Record<string, string> = {
  valLoss: 'validation loss (nats/token)',
  loss: 'training loss (nats/token)',
};
const METRIC_TITLE: Record<string, string> = { valLoss: 'Validation loss', loss: 'Training loss' };

export const plotCurvesCommand: Command = {
  spec: {
    name: 'plot curves',
    brief: 'training curves from event logs as a PNG',
    summary:
      'Training curves from event logs (the *.events.jsonl beside each checkpoint), one line per NAME, as a PNG.\n' +
      'A resumed run in the same log counts once: the last value logged for a step wins.',
    usage: 'ctfgen plot curves --out curves.png [--metric valLoss|loss] [--x epoch|step] NAME=FILE.events.jsonl ...',
    positionals: ['NAME=FILE.events.jsonl'],
    flags: {
      ...PICTURE_FLAGS,
      metric: {
        type: 'string',
        default: 'valLoss',
        help: 'valLoss (eval/epoch events), loss (training loss of progress events), or another metric key',
      },
      x: { type: 'string', default: 'epoch', help: 'epoch or step' },
      yLabel: { type: 'string', help: 'y axis label (default: from the metric)' },
    },
  },
  async run(f, positionals) {
    const metric = String(f['metric']),
      x = String(f['x']);
    if (x !== 'step' && x !== 'epoch') throw new UsageError(`--x: expected epoch or step, got "${x}"`);
    if (metric === '') throw new UsageError('--metric: expected a metric name (valLoss, loss, …)');
    const args = seriesArgs(positionals, /\.events\.jsonl$|\.jsonl$/, 'NAME=FILE.events.jsonl');
    checkPlotOut(f, args);
    const series: PlotSeries[] = [];
    for (const a of args) {
      const text = (await readFileChecked(a.path, { maxBytes: MAX_LOG_BYTES, what: 'event log' })).toString('utf8');
      const curve = curveFromEventLog(text, a.path, { metric, x });
      for (const n of curve.notes) process.stderr.write(`note: ${n}\n`);
      process.stderr.write(describe(a.name, curve.points, metric, x) + '\n');
      series.push({ name: a.name, points: curve.points });
    }
    const title = typeof f['title'] === 'string' ? f['title'] : `${METRIC_TITLE[metric] ?? metric} vs ${x}`;
    const yLabel = typeof f['yLabel'] === 'string' ? f['yLabel'] : (METRIC_LABEL[metric] ?? metric);
    await drawAndWrite(f, series, title, x, yLabel);
  },
};

export const plotPointsCommand: Command = {
  spec: {
    name: 'plot points',
    brief: '(x, y) series from JSON files as a PNG',
    summary:
      'Series of (x, y) points from JSON files ({"points": [[x, y], ...]}, e.g. FID vs epoch), one line per NAME, as ' +
      'a PNG.',
    usage: 'ctfgen plot points --out F.png [--x-label X] [--y-label Y] NAME=FILE.json ...',
    positionals: ['NAME=FILE.json'],
    flags: {
      ...PICTURE_FLAGS,
      xLabel: { type: 'string', default: 'epoch', help: 'x axis label' },
      yLabel: { type: 'string', default: 'value', help: 'y axis label' },
    },
  },
  async run(f, positionals) {
    const args = seriesArgs(positionals, /\.json$/, 'NAME=FILE.json');
    checkPlotOut(f, args);
    const xLabel = String(f['xLabel']),
      yLabel = String(f['yLabel']);
    const series: PlotSeries[] = [];
    for (const a of args) {
      const points = pointsFromJson(
        (await readFileChecked(a.path, { maxBytes: 64 * 1024 * 1024, what: 'points file' })).toString('utf8'),
        a.path,
      );
      process.stderr.write(describe(a.name, points, yLabel, xLabel) + '\n');
      series.push({ name: a.name, points });
    }
    await drawAndWrite(
      f,
      series,
      typeof f['title'] === 'string' ? f['title'] : `${yLabel} vs ${xLabel}`,
      xLabel,
      yLabel,
    );
  },
};

export const plotCommands: Command[] = [plotCurvesCommand, plotPointsCommand];
