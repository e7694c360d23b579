#!/usr/bin/env node
// Turns a reproduction run (experiments/reproduce.sh) into results: results/repro/summary.json (every number the
// README tables show, with the file it came from), results/repro/tables.md (the tables), the training-curve PNGs
// and copies of the sample grids. Reads only what the run wrote; a missing piece is reported as missing.
//
//   node experiments/summarize.mjs [RUN_DIR] [OUT_DIR]      (defaults: runs/repro, results/repro)
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const run = process.argv[2] ?? join(REPO, 'runs/repro');
const out = process.argv[3] ?? join(REPO, 'results/repro');
const CLI = join(REPO, 'dist/src/cli/main.js');
mkdirSync(out, { recursive: true });

const readJson = (path) => (existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : null);
const writeAtomic = (path, text) => { writeFileSync(path + '.tmp', text); renameSync(path + '.tmp', path); };
const rel = (path) => path.replace(REPO, '');

// Wall-clock time of every finished step (times.jsonl holds one line per step; a resumed step appears once, with
// the time of the process that finished it, so interrupted attempts are not counted: say so in the README).
const times = existsSync(join(run, 'times.jsonl'))
  ? readFileSync(join(run, 'times.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
const secondsOf = (prefix) => times.filter((t) => t.step.startsWith(prefix)).reduce((s, t) => s + t.seconds, 0);

const trainReport = (name) => readJson(join(run, `${name}.report.json`));

// Wall-clock seconds of a GPT training from its event log: the sum, over the processes that worked on it (a
// resumed run has several), of the time from its 'start' event to its last event.
function trainingWallSeconds(name) {
  const path = join(run, `${name}.events.jsonl`);
  if (!existsSync(path)) return null;
  let total = 0, start = null, last = null;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const e = JSON.parse(line), t = Date.parse(e.time);
    if (e.type === 'start') { if (start !== null) total += last - start; start = t; }
    last = t;
  }
  return start === null ? null : (total + last - start) / 1000;
}
const models = {};
for (const f of existsSync(run) ? readdirSync(run) : []) {
  const m = /^(baseline|coarse-ar|fine-aux)-(\w+(?:-k\d+|-random)?)\.report\.json$/.exec(f);
  if (!m) continue;
  const r = trainReport(`${m[1]}-${m[2]}`);
  const name = `${m[1]}-${m[2]}`;
  models[name] = {
    parameters: r.parameters,
    steps: r.steps,
    wallSeconds: trainingWallSeconds(name),
    lastProcessSeconds: r.seconds,
    valLoss: r.valLoss,
    epochs: r.options.epochs,
    preset: m[2],
  };
}

const evalReport = (name) => readJson(join(run, 'eval', `${name}.json`));
const metricsRow = (label, source, m, extra = {}) =>
  m && {
    label,
    source,
    fid: m.fid,
    isMean: m.isMean,
    isStd: m.isStd,
    precision: m.precision,
    recall: m.recall,
    classAccuracy: m.classAccuracy,
    images: m.images,
    ...extra,
  };
const bench = (name) => readJson(join(run, 'bench', `${name}.json`));

// The main table: per backbone, the baseline and CTF with each aux, at the main setting (CFG 2, τ1 = τ2 = 1).
const main = [];
const real = evalReport('real'), recon = evalReport('recon');
if (real)
  main.push(
    metricsRow('real data (test vs train)', 'eval/real.json', real.metrics ?? real.results?.real?.metrics ?? real),
  );
if (recon)
  main.push(
    metricsRow(
      'tokenizer reconstructions (rFID)',
      'eval/recon.json',
      recon.metrics ?? recon.results?.recon?.metrics ?? recon,
    ),
  );
for (const backbone of ['S', 'tiny']) {
  for (const aux of ['tiny', 'S']) {
    const name = `${backbone}-aux${aux}`, r = evalReport(name), b = bench(name);
    if (!r) continue;
    const speed = (method) => ({
      imagesPerSecondEval: r.results[method]?.timing.imagesPerSec ?? null,
      imagesPerSecondBench: b ? b.ours[method].imagesPerSecond : null,
      torchImagesPerSecondBench: b ? b.torch[method].imagesPerSecond : null,
    });
    if (r.results.baseline && !main.some((row) => row.label === `baseline ${backbone}`))
      main.push(
        metricsRow(`baseline ${backbone}`, `eval/${name}.json`, r.results.baseline.metrics, {
          parameters: r.results.baseline.parameters.total,
          ...speed('baseline'),
        }),
      );
    if (r.results.ctf)
      main.push(
        metricsRow(`+ CTF ${backbone} (aux ${aux})`, `eval/${name}.json`, r.results.ctf.metrics, {
          parameters: r.results.ctf.parameters.total,
          parametersStage1: r.results.ctf.parameters.stage1,
          parametersAux: r.results.ctf.parameters.aux,
          ...speed('ctf'),
        }),
      );
  }
}

// Sampling ablations on the S models (the main setting is the reference row).
const ablations = [];
const mainS = evalReport('S-auxtiny');
if (mainS) {
  ablations.push(
    metricsRow('CTF main (CFG 2, τ1 1, τ2 1, mask on, sampled)', 'eval/S-auxtiny.json', mainS.results.ctf?.metrics),
  );
  ablations.push(metricsRow('baseline main (CFG 2, τ 1)', 'eval/S-auxtiny.json', mainS.results.baseline?.metrics));
}
const ablationNames = [
  ['S-auxtiny-t1-0.9', 'CTF τ1 0.9'],
  ['S-auxtiny-t1-1.1', 'CTF τ1 1.1'],
  ['S-auxtiny-t2-0.9', 'CTF τ2 0.9'],
  ['S-auxtiny-t2-1.1', 'CTF τ2 1.1'],
  ['S-auxtiny-cfg-1.5', 'CTF CFG 1.5'],
  ['S-auxtiny-cfg-2.5', 'CTF CFG 2.5'],
  ['S-auxtiny-greedy2', 'CTF stage 2 greedy'],
  ['S-auxtiny-nomask', 'CTF cluster mask off'],
  ['S-auxtiny-k32', 'CTF K = 32 (stage 1 and aux retrained)'],
  ['S-auxtiny-k512', 'CTF K = 512 (stage 1 and aux retrained)'],
  ['S-auxtiny-random', 'CTF random clusters, K = 128 (stage 1 and aux retrained)'],
  ['S-baseline-t-0.9', 'baseline τ 0.9'],
  ['S-baseline-t-1.1', 'baseline τ 1.1'],
  ['S-baseline-cfg-1.5', 'baseline CFG 1.5'],
  ['S-baseline-cfg-2.5', 'baseline CFG 2.5'],
];
for (const [name, label] of ablationNames) {
  const r = evalReport(name);
  const m = r && (r.results.ctf ?? r.results.baseline)?.metrics;
  if (m) ablations.push(metricsRow(label, `eval/${name}.json`, m));
}

// The main comparisons over sampling seeds 0, 1, 2 (same models): each metric's mean and sample standard deviation.
const seeds = [];
for (const name of ['S-auxtiny', 'tiny-auxtiny']) {
  const reports = [name, `${name}-seed1`, `${name}-seed2`].map(evalReport).filter(Boolean);
  if (reports.length < 2) continue;
  for (const method of ['baseline', 'ctf']) {
    const spread = (key) => {
      const xs = reports.map((r) => r.results[method].metrics[key]);
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      return { mean, std: Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1)), values: xs };
    };
    seeds.push({
      models: name,
      method,
      seeds: reports.map((r) => r.knobs.seed),
      fid: spread('fid'),
      isMean: spread('isMean'),
      precision: spread('precision'),
      recall: spread('recall'),
      classAccuracy: spread('classAccuracy'),
    });
  }
}

// FID against training steps (snapshot evaluations, 2000 images each).
const curve = { baseline: [], ctf: [] };
for (const f of existsSync(join(run, 'eval')) ? readdirSync(join(run, 'eval')) : []) {
  const m = /^curve-(baseline|coarse-ar)-S(?:\.step(\d+))?(-auxtiny)?\.json$/.exec(f);
  if (!m) continue;
  const r = readJson(join(run, 'eval', f));
  const kind = m[1] === 'baseline' ? 'baseline' : 'ctf';
  const steps = m[2] ? Number(m[2]) : models[`${m[1]}-S`]?.steps;
  const metrics = r.results[kind].metrics;
  if (steps !== undefined)
    curve[kind].push({ step: steps, fid: metrics.fid, isMean: metrics.isMean, classAccuracy: metrics.classAccuracy });
}
for (const k of Object.keys(curve)) curve[k].sort((a, b) => a.step - b.step);

// A step's time: its line in times.jsonl, or for a GPT the event log's sum over every process that trained it.
for (const t of times) {
  const w = models[t.step]?.wallSeconds;
  if (w && w > t.seconds) { t.lastAttemptSeconds = t.seconds; t.seconds = Math.round(w); }
  t.command = t.command.split(REPO).join('');
}

const summary = {
  kind: 'ctfgen.reproduction-summary',
  run: rel(run),
  date: new Date().toISOString(),
  wallClock: {
    steps: times,
    totalSeconds: times.reduce((s, t) => s + t.seconds, 0),
    tokenizerSeconds: secondsOf('tokenizer'),
    gptSeconds: secondsOf('coarse-ar') + secondsOf('baseline') + secondsOf('fine-aux'),
    classifierSeconds: secondsOf('classifier'),
    evalSeconds: secondsOf('eval-'),
    benchSeconds: secondsOf('bench-'),
  },
  tokenizer: readJson(join(run, 'tokenizer-eval.json')),
  classifier: readJson(join(run, 'classifier.report.json')),
  models,
  main,
  seeds,
  ablations,
  fidVsStep: curve,
  bench: Object.fromEntries(
    ['S-auxtiny', 'S-auxS', 'tiny-auxtiny']
      .map((n) => [n, bench(n)])
      .filter(([, b]) => b)
      .map(([n, b]) => [
        n,
        { rounds: b.rounds, ours: b.ours, torch: b.torch, ratios: b.ratios, check: b.check, info: b.info, env: b.env },
      ]),
  ),
};
writeAtomic(join(out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');

// Tables.
const f2 = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(d));
const mins = (s) => `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
const metricTable = (rows) => [
  '| model | parameters | FID ↓ | IS ↑ | precision ↑ | recall ↑ | class accuracy ↑ | images/s (bench) | images/s ' +
  '(eval) | source |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...rows.filter(Boolean).map((r) => `| ${r.label} | ${r.parameters ? (r.parameters / 1e6).toFixed(2) + ' M' : ''} | ` +
    `${f2(r.fid)} | ${f2(r.isMean)} ± ${f2(r.isStd)} | ${f2(r.precision, 3)} | ${f2(r.recall, 3)} | ` +
    `${f2(r.classAccuracy, 3)} | ${f2(r.imagesPerSecondBench, 1)} | ${f2(r.imagesPerSecondEval, 1)} | ${r.source} |`),
];
const lines = [
  `# Reproduction tables (generated by experiments/summarize.mjs from ${rel(run)}, ${summary.date.slice(0, 10)})`,
  '',
  '## Main table (CFG 2, τ1 = τ2 = 1, top-k/top-p off, cluster mask on; 10 000 samples, equal per class)',
  '',
  ...metricTable(main),
  '',
  '## Sampling speed (`ctfgen bench sample`, batch 64, CFG 2; medians over the rounds, ms per batch of 64)',
  '',
  '| run | rounds | ours baseline img/s | ours CTF img/s | CTF / baseline | per-round median | CTF stage 1 / stage 2 ' +
  '/ decode ms | baseline generation / decode ms | PyTorch baseline / CTF img/s | PyTorch CTF / baseline | ours / ' +
  'PyTorch (baseline, CTF) |',
  '|---|---|---|---|---|---|---|---|---|---|---|',
  ...Object.entries(summary.bench).map(([n, b]) => {
    const o = b.ours,
      t = b.torch,
      r = b.ratios,
      p = o.ctf.partsMs,
      q = o.baseline.partsMs;
    return (
      `| ${n} | ${b.rounds ?? '–'} | ${f2(o.baseline.imagesPerSecond, 1)} | ${f2(o.ctf.imagesPerSecond, 1)} | ` +
      `${f2(r.ctfOverBaseline.ours)}× | ${r.ctfOverBaselinePaired ? f2(r.ctfOverBaselinePaired.ours) + '×' : '–'} | ` +
      `${f2(p.stage1, 0)} / ${f2(p.stage2, 0)} / ${f2(p.decode, 0)} | ${f2(q.stage1, 0)} / ${f2(q.decode, 0)} | ` +
      `${f2(t.baseline.imagesPerSecond, 1)} / ${f2(t.ctf.imagesPerSecond, 1)} | ` +
      `${f2(r.ctfOverBaseline.torch)}× | ${f2(r.oursOverTorch.baseline, 1)}×, ${f2(r.oursOverTorch.ctf, 1)}× |`
    );
  }),
  '',
  '## Over sampling seeds (the main setting, 10 000 samples per seed; mean ± standard deviation over the seeds)',
  '',
  '| models | method | seeds | FID ↓ | IS ↑ | precision ↑ | recall ↑ | class accuracy ↑ |',
  '|---|---|---|---|---|---|---|---|',
  ...seeds.map(
    (r) =>
      `| ${r.models} | ${r.method} | ${r.fid.values.length} | ${f2(r.fid.mean)} ± ${f2(r.fid.std)} | ` +
      `${f2(r.isMean.mean)} ± ${f2(r.isMean.std)} | ` +
      `${f2(r.precision.mean, 3)} ± ${f2(r.precision.std, 3)} | ${f2(r.recall.mean, 3)} ± ${f2(r.recall.std, 3)} | ` +
      `${f2(r.classAccuracy.mean, 3)} ± ${f2(r.classAccuracy.std, 3)} |`,
  ),
  '',
  '## Sampling ablations (backbone S, aux tiny; 10 000 samples each)',
  '',
  ...metricTable(ablations),
  '',
  '## FID against training steps (2 000 samples each)',
  '',
  '| model | step | FID | IS | class accuracy |',
  '|---|---|---|---|---|',
  ...Object.entries(curve).flatMap(([k, pts]) =>
    pts.map((p) => `| ${k} | ${p.step} | ${f2(p.fid)} | ${f2(p.isMean)} | ${f2(p.classAccuracy, 3)} |`),
  ),
  '',
  '## Trained models',
  '',
  '| model | parameters | steps | epochs | training time | validation loss (nats/token) |',
  '|---|---|---|---|---|---|',
  ...Object.entries(models).map(
    ([n, m]) =>
      `| ${n} | ${(m.parameters / 1e6).toFixed(2)} M | ${m.steps} | ${m.epochs} | ` +
      `${m.wallSeconds === null ? '–' : mins(m.wallSeconds)} | ${f2(m.valLoss, 4)} |`,
  ),
  '',
  '## Wall clock of every step',
  '',
  '| step | time | command |',
  '|---|---|---|',
  ...times.map((t) => `| ${t.step} | ${mins(t.seconds)} | \`${t.command.replace(/\|/g, '\\|')}\` |`),
  `| **total** | **${mins(summary.wallClock.totalSeconds)}** | |`,
  '',
];
writeAtomic(join(out, 'tables.md'), lines.join('\n'));

// Plots (ctfgen plot) and sample grids.
const plot = (args) => {
  const r = spawnSync(process.execPath, [CLI, 'plot', ...args], { encoding: 'utf8' });
  if (r.status !== 0) process.stderr.write(`summarize: ctfgen plot ${args.join(' ')} failed:\n${r.stderr}\n`);
};
const logs = ['baseline-S', 'coarse-ar-S', 'fine-aux-tiny', 'fine-aux-S', 'baseline-tiny', 'coarse-ar-tiny']
  .filter((n) => existsSync(join(run, `${n}.events.jsonl`))).map((n) => `${n}=${join(run, `${n}.events.jsonl`)}`);
if (logs.length) {
  plot([
    'curves',
    '--out',
    join(out, 'val-loss.png'),
    '--title',
    'Validation loss (test split)',
    '--x',
    'epoch',
    ...logs,
  ]);
  plot([
    'curves',
    '--out',
    join(out, 'train-loss.png'),
    '--metric',
    'loss',
    '--title',
    'Training loss',
    '--x',
    'epoch',
    ...logs,
  ]);
}
const series = [];
for (const [k, pts] of Object.entries(curve)) {
  if (!pts.length) continue;
  const file = join(out, `fid-vs-step-${k}.json`);
  writeAtomic(file, JSON.stringify({ points: pts.map((p) => [p.step, p.fid]) }) + '\n');
  series.push(`${k === 'ctf' ? 'CTF S (aux tiny)' : 'baseline S'}=${file}`);
}
if (series.length)
  plot([
    'points',
    '--out',
    join(out, 'fid-vs-step.png'),
    '--title',
    'FID vs training step (2000 samples)',
    '--x-label',
    'step',
    '--y-label',
    'FID',
    ...series,
  ]);
for (const name of ['S-auxtiny', 'S-auxS', 'tiny-auxtiny'])
  for (const method of ['ctf', 'baseline']) {
    const grid = evalReport(name)?.results?.[method]?.grid?.path;
    if (grid && existsSync(grid)) copyFileSync(grid, join(out, `samples-${name}-${method}.png`));
  }
// The reports themselves (not the .npz samples, 7.8 MB each), so every number above can be traced to its file.
for (const dir of ['eval', 'bench']) {
  if (!existsSync(join(run, dir))) continue;
  mkdirSync(join(out, dir), { recursive: true });
  for (const f of readdirSync(join(run, dir)))
    if (f.endsWith('.json')) copyFileSync(join(run, dir, f), join(out, dir, f));
}
if (existsSync(join(run, 'tokenizer-recon.png')))
  copyFileSync(join(run, 'tokenizer-recon.png'), join(out, 'tokenizer-recon.png'));
process.stderr.write(`summarize: wrote ${rel(out)}/summary.json and tables.md (${main.length} main rows, ` +
  `${ablations.length} ablation rows, ${times.length} timed steps)\n`);

