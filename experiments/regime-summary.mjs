#!/usr/bin/env node
// Turns a regime run (experiments/regime.sh) into results/regime/: summary.json (one row per evaluated model and
// setting, the stage-2 ceiling rows, validation losses, wall clock), tables.md, the plots and sample grids. Reads only
// what the run wrote (eval reports, train reports, event logs, times.jsonl); a missing piece is simply absent.
//
// A run directory does not outlive its machine, and the plan takes several sessions: the small reports of every run
// are first archived into OUT_DIR/run/ (same layout; a report the run wrote again replaces the archived one, the
// .jsonl logs are merged line by line), and the tables are made from the archive. OUT_DIR/run/legacy-summary.json
// holds the rows of the first session, whose reports were not archived; a row measured again replaces its legacy row.
//
//   node experiments/regime-summary.mjs [RUN_DIR] [OUT_DIR]      (defaults: runs/regime, results/regime)
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const run = resolve(process.argv[2] ?? join(REPO, 'runs/regime'));
const out = process.argv[3] ?? join(REPO, 'results/regime');
const CLI = join(REPO, 'dist/src/cli/main.js');
const { GPT_PRESETS } = await import(join(REPO, 'dist/src/models/gpt.js'));
mkdirSync(out, { recursive: true });

const readJson = (path) => (existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : null);
const writeAtomic = (path, text) => { writeFileSync(path + '.tmp', text); renameSync(path + '.tmp', path); };

// The archive: every small report of the run, copied into OUT_DIR/run/ (see the header).
const runLive = run;
const archive = join(out, 'run');
const ARCHIVED = [
  /^eval-real\.json$/,
  /^(times|attempts)\.jsonl$/,
  /^v\d+\/tokenizer-eval\.json$/,
  /^v\d+\/eval\/[^/]+\.(json|png)$/,
  /^v\d+\/[^/]+\.report\.json$/,
  /^v\d+\/[^/]+\.events\.jsonl$/,
];
function walk(dir, prefix = '') {
  return existsSync(dir) ? readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory()
    ? (e.name.startsWith('.') ? [] : walk(join(dir, e.name), `${prefix}${e.name}/`)) : [`${prefix}${e.name}`])) : [];
}
for (const f of walk(runLive).filter((x) => ARCHIVED.some((re) => re.test(x)))) {
  const to = join(archive, f);
  mkdirSync(dirname(to), { recursive: true });
  if (f.endsWith('.jsonl') && existsSync(to) && !/\.events\.jsonl$/.test(f)) {
    // A log of steps: keep the archived lines and add the run's new ones (a relaunch on a new machine starts a new
    // log).
    const have = readFileSync(to, 'utf8').split('\n').filter(Boolean);
    const seen = new Set(have);
    const add = readFileSync(join(runLive, f), 'utf8').split('\n').filter((l) => l && !seen.has(l));
    writeAtomic(to, [...have, ...add].map((l) => l + '\n').join(''));
  } else copyFileSync(join(runLive, f), to);
}
const legacy = readJson(join(archive, 'legacy-summary.json'));
const rel = (path) => relative(REPO, path);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs) =>
  xs.length < 2 ? null : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1));

/** The preset whose sizes a config has (or "layers×dim"). */
function presetOf(c) {
  const hit = Object.entries(GPT_PRESETS).find(
    ([, p]) => p.layers === c.layers && p.dim === c.dim && p.heads === c.heads,
  );
  return hit ? hit[0] : `${c.layers}x${c.dim}`;
}

/** What a checkpoint path is: its train report (a snapshot `X.stepN.safetensors` reads X's) and passes done. */
function modelInfo(path) {
  if (!path) return null;
  const snap = /^(.*)\.step(\d+)\.safetensors$/.exec(path);
  const base = snap ? `${snap[1]}.safetensors` : path;
  // Eval reports name checkpoints as the run saw them (RUN_DIR/…): their train reports are read from the archive.
  const report = readJson(join(archive, relative(run, resolve(REPO, base)).replace(/\.safetensors$/, '.report.json')));
  if (!report) return null;
  const stepsPerPass = report.steps / report.options.epochs;
  return {
    file: rel(resolve(REPO, path)),
    preset: presetOf(report.config),
    parameters: report.parameters,
    dropout: report.config.dropout,
    refine: report.config.fineVocab > 0 ? 'masked' : null,
    K: report.clusters_k === undefined ? null : Number(report.clusters_k),
    passes: snap ? Math.round((100 * Number(snap[2])) / stepsPerPass) / 100 : report.options.epochs,
    valLoss: report.valLoss,
    valLossHalf: report.valLossHalf ?? null,
  };
}

// Every evaluation report under RUN/v*/eval/ (the ceiling reports aside).
const vocabDirs = existsSync(archive)
  ? readdirSync(archive)
      .filter((d) => /^v\d+$/.test(d))
      .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))
  : [];
const evaluated = [];
const ceiling = [];
const nll = [];  // the likelihood split of each ceiling report: which stage loses the nats
for (const vdir of vocabDirs) {
  const evalDir = join(archive, vdir, 'eval');
  const V = Number(vdir.slice(1));
  for (const f of existsSync(evalDir) ? readdirSync(evalDir).filter((x) => x.endsWith('.json')).sort() : []) {
    const r = readJson(join(evalDir, f)), source = rel(join(evalDir, f));
    if (r.kind === 'ctfgen.eval-ceiling') {
      const aux = modelInfo(r.paths.aux);
      if (r.nll) nll.push({ setting: `${vdir} ${f.replace(/^ceiling-|\.json$/g, '')}`, V, ...r.nll, source });
      for (const row of r.rows)
        ceiling.push({
          setting: `${vdir} ${f.replace(/^ceiling-|\.json$/g, '')}`,
          V,
          aux: aux ? aux.preset + (aux.refine ? `-${aux.refine}` : '') : null,
          rounds: r.knobs.rounds ?? 1,
          name: row.name,
          images: row.images,
          fid: row.metrics.fid,
          is: row.metrics.isMean,
          precision: row.metrics.precision,
          recall: row.metrics.recall,
          classAccuracy: row.metrics.classAccuracy,
          tokensKept: row.tokensKept,
          coarseKept: row.coarseKept,
          source,
        });
      continue;
    }
    if (r.kind !== 'ctfgen.eval-report') continue;
    for (const method of r.methods) {
      const res = r.results[method], m = res.metrics;
      const lead = modelInfo(method === 'ctf' ? r.paths.stage1 : r.paths.baseline),
        aux = method === 'ctf' ? modelInfo(r.paths.aux) : null;
      evaluated.push({
        name: f.replace(/\.json$/, ''),
        V,
        method,
        backbone: lead?.preset ?? null,
        K: method === 'ctf' ? (lead?.K ?? null) : null,
        aux: aux ? aux.preset + (aux.refine ? `-${aux.refine}` : '') : null,
        auxParams: aux?.parameters ?? null,
        params: res.parameters.total,
        passes: lead?.passes ?? null,
        auxPasses: aux?.passes ?? null,
        dropout: lead?.dropout ?? null,
        cfg: r.knobs.cfg,
        t1: r.knobs.t1,
        t2: method === 'ctf' ? r.knobs.t2 : null,
        rounds: method === 'ctf' ? (r.knobs.rounds ?? 1) : null,
        seed: r.knobs.seed,
        n: r.knobs.n,
        fid: m.fid,
        is: m.isMean,
        precision: m.precision,
        recall: m.recall,
        classAccuracy: m.classAccuracy,
        imagesPerSec: res.timing.imagesPerSec,
        source,
      });
    }
  }
}

// Rows that differ only in the sampling seed become one row: FID mean and standard deviation over the seeds.
const key = (r) =>
  JSON.stringify([
    r.V,
    r.method,
    r.backbone,
    r.K,
    r.aux,
    r.passes,
    r.auxPasses,
    r.dropout,
    r.cfg,
    r.t1,
    r.t2,
    r.rounds,
    r.n,
    r.params,
  ]);
const groups = new Map();
// The same seed evaluated twice under two names (a sweep point that is also the best setting) counts once.
for (const r of evaluated) {
  const g = groups.get(key(r)) ?? [];
  if (!g.some((x) => x.seed === r.seed)) groups.set(key(r), [...g, r]);
}
const rows = [...groups.values()].map((g) => {
  const first = g[0], fids = g.map((r) => r.fid);
  const avg = (k) => mean(g.map((r) => r[k]));
  return {
    ...first, name: g.map((r) => r.name).join(' + '), seeds: g.map((r) => r.seed),
    fid: mean(fids), fidStd: std(fids), is: avg('is'), precision: avg('precision'), recall: avg('recall'),
    classAccuracy: first.classAccuracy === null ? null : avg('classAccuracy'), imagesPerSec: avg('imagesPerSec'),
    source: g.map((r) => r.source),
  };
});
// The first session's rows, unless measured again (same settings).
const legacyOnly = (items, keyOf, have) => (items ?? []).filter((x) => !have.some((y) => keyOf(y) === keyOf(x)))
  .map((x) => ({ ...x, legacy: true }));
rows.push(...legacyOnly(legacy?.rows, key, rows));

// Validation losses of every trained GPT, and the wall clock of every finished step.
const models = {};
for (const vdir of vocabDirs)
  for (const f of readdirSync(join(archive, vdir)).filter((x) => x.endsWith('.report.json'))) {
    const r = readJson(join(archive, vdir, f));
    if (r.kind !== 'ctfgen.train-report') continue;
    models[`${vdir}/${f.replace(/\.report\.json$/, '')}`] = {
      model: r.model,
      preset: presetOf(r.config),
      parameters: r.parameters,
      passes: r.options.epochs,
      dropout: r.config.dropout,
      refine: r.config.fineVocab > 0 ? 'masked' : null,
      valLoss: r.valLoss,
      valLossHalf: r.valLossHalf ?? null,
      steps: r.steps,
    };
  }
for (const [k, m] of Object.entries(legacy?.models ?? {})) models[k] ??= { ...m, legacy: true };
const ceilingKey = (c) => `${c.setting} ${c.name}`;
ceiling.push(...legacyOnly(legacy?.ceiling, ceilingKey, ceiling));
nll.push(...legacyOnly(legacy?.nll, (x) => x.setting, nll));
const times = existsSync(join(archive, 'times.jsonl'))
  ? readFileSync(join(archive, 'times.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
  : [];
const attempts = existsSync(join(archive, 'attempts.jsonl'))
  ? readFileSync(join(archive, 'attempts.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
  : [];
const attemptSeconds = (step) => attempts.filter((a) => a.step === step).reduce((s, a) => s + a.seconds, 0);
const real = readJson(join(archive, 'eval-real.json')) ?? (legacy?.real ? { metrics: legacy.real } : null);
// Each vocabulary's tokenizer: test PSNR, usage, perplexity, and its reconstructions' scores (the ceiling of samples).
const tokenizers = Object.fromEntries(vocabDirs.map((vdir) => {
  const t = readJson(join(archive, vdir, 'tokenizer-eval.json')),
    r = readJson(join(archive, vdir, 'eval', 'recon.json'));
  return [
    vdir,
    {
      psnr: t?.psnr ?? null,
      usage: t?.usage ?? null,
      perplexity: t?.perplexity ?? null,
      recon: r
        ? {
            fid: r.metrics.fid,
            is: r.metrics.isMean,
            precision: r.metrics.precision,
            recall: r.metrics.recall,
            classAccuracy: r.metrics.classAccuracy,
          }
        : null,
    },
  ];
}));
for (const [v, t] of Object.entries(legacy?.tokenizers ?? {}))
  if (!tokenizers[v]?.psnr) tokenizers[v] = { ...t, legacy: true };

// Plots: FID gap (CTF − baseline, same V, backbone, passes, dropout, CFG and τ1) per setting; FID against passes;
// the validation curves of the auxes.
const plots = [];
const pointsFile = (name, points) => {
  const p = join(out, `${name}.points.json`);
  writeAtomic(p, JSON.stringify({ points }) + '\n');
  return p;
};
const plot = (args, png) => {
  const r = spawnSync(process.execPath, [CLI, 'plot', ...args, '--out', join(out, png)], { encoding: 'utf8' });
  if (r.status === 0) plots.push(png); else process.stderr.write(`plot ${png}: ${r.stderr}`);
};
const gaps = [];
for (const c of rows.filter((r) => r.method === 'ctf')) {
  const b = rows.find(
    (r) =>
      r.method === 'baseline' &&
      r.V === c.V &&
      r.backbone === c.backbone &&
      r.passes === c.passes &&
      r.dropout === c.dropout &&
      r.cfg === c.cfg &&
      r.t1 === c.t1 &&
      r.n === c.n,
  );
  if (b)
    gaps.push({
      V: c.V,
      backbone: c.backbone,
      aux: c.aux,
      passes: c.passes,
      dropout: c.dropout,
      ctf: c.fid,
      baseline: b.fid,
      gap: c.fid - b.fid,
    });
}
const curve = (method, aux, cfg) =>
  rows
    .filter(
      (r) =>
        r.method === method && r.V === 4096 && r.backbone === 'S' && r.n === 2000 && r.cfg === cfg &&
        (aux === null || r.aux === aux),
    )
    .map((r) => [r.passes, r.fid])
    .sort((a, b) => a[0] - b[0]);
const fidVsPass = {
  baseline: curve('baseline', null, 2), ctf: curve('ctf', 'S', 2),
  baseline15: curve('baseline', null, 1.5), ctf15: curve('ctf', 'S', 1.5),
};
if (fidVsPass.baseline.length > 1 || fidVsPass.ctf.length > 1)
  plot(
    [
      'points',
      '--x-label',
      'passes',
      '--y-label',
      'FID (2000 samples)',
      '--title',
      'FID against training passes, backbone S, V 4096',
      `baseline, CFG 2=${pointsFile('fid-vs-pass-baseline', fidVsPass.baseline)}`,
      `CTF (aux S, 1 pass), CFG 2=${pointsFile('fid-vs-pass-ctf', fidVsPass.ctf)}`,
      ...(fidVsPass.baseline15.length > 1 && fidVsPass.ctf15.length > 1
        ? [
            `baseline, CFG 1.5=${pointsFile('fid-vs-pass-baseline-cfg1.5', fidVsPass.baseline15)}`,
            `CTF (aux S, 1 pass), CFG 1.5=${pointsFile('fid-vs-pass-ctf-cfg1.5', fidVsPass.ctf15)}`,
          ]
        : []),
    ],
    'fid-vs-pass.png',
  );
const auxLogs = Object.keys(models)
  .filter((m) => ['aux', 'fine-aux'].includes(models[m].model))
  .map((m) => `${m}=${join(archive, `${m}.events.jsonl`)}`)
  .filter((a) => existsSync(a.split('=')[1]));
if (auxLogs.length)
  plot(
    ['curves', '--x', 'epoch', '--title', 'aux validation loss (all fine tokens masked)', ...auxLogs],
    'aux-val-loss.png',
  );
// The regime map: the gap at each (backbone, passes, dropout, aux) against V, both methods at CFG 2, τ 1 (10 000
// samples, seed 0); and, where the sweep ran, each method at its own best setting.
// The lowest FID among the rows pred takes; at that CFG and τ1, the row with the most sampling seeds stands for it.
const best = (pred) => {
  const pool = rows.filter((r) => pred(r) && r.n === 10000);
  const low = pool.reduce((a, r) => (a === null || r.fid < a.fid ? r : a), null);
  if (low === null) return null;
  return pool.filter((r) => r.cfg === low.cfg && r.t1 === low.t1).sort((a, b) => b.seeds.length - a.seeds.length)[0];
};
const mapSeries = new Map();
for (const g of gaps) {
  const c = rows.find(
    (r) =>
      r.method === 'ctf' &&
      r.V === g.V &&
      r.backbone === g.backbone &&
      r.aux === g.aux &&
      r.passes === g.passes &&
      r.dropout === g.dropout &&
      r.cfg === 2 &&
      r.t1 === 1 &&
      (r.t2 ?? 1) === 1 &&
      (r.rounds ?? 1) === 1 &&
      r.n === 10000 &&
      r.fid === g.ctf,
  );
  if (!c) continue;
  const k = `${g.backbone}, ${g.passes} pass${g.passes > 1 ? 'es' : ''}${g.dropout === 0 ? ', dropout 0' : ''}, aux ` +
    `${g.aux}`;
  mapSeries.set(k, [...(mapSeries.get(k) ?? []), [g.V, g.gap]]);
}
const bestGaps = [];
for (const V of [...new Set(rows.map((r) => r.V))])
  for (const backbone of [...new Set(rows.map((r) => r.backbone))]) {
    const same = (r) => r.V === V && r.backbone === backbone && r.passes === 1 && r.dropout === 0.1;
    const b = best((r) => same(r) && r.method === 'baseline'),
      c = best((r) => same(r) && r.method === 'ctf' && r.aux === 'S' && (r.rounds ?? 1) === 1);
    // A best setting needs a sweep: some other guidance than CFG 2 evaluated for the same method and models.
    const swept = (r) => r && rows.some((x) => x !== r && x.method === r.method && same(x) && x.cfg !== 2);
    if (b && c && swept(b) && swept(c)) bestGaps.push({ V, backbone, baseline: b, ctf: c, gap: c.fid - b.fid });
  }
for (const backbone of [...new Set(bestGaps.map((g) => g.backbone))])
  mapSeries.set(
    `${backbone}, 1 pass, aux S, each at its best CFG and temperature`,
    bestGaps.filter((g) => g.backbone === backbone).map((g) => [g.V, g.gap]),
  );
const addPoint = (series, k, pt) => series.set(k, [...(series.get(k) ?? []), pt]);
// The gap against the backbone's size at V = 16384 (aux S, one pass): at CFG 2, τ 1 and at each one's best.
const backboneSeries = new Map();
for (const r of rows.filter((x) => x.V === 16384 && x.method === 'baseline' && x.passes === 1 && x.dropout === 0.1)) {
  const at = (m) => (x) =>
    x.V === 16384 && x.method === m && x.backbone === r.backbone && x.passes === 1 && x.dropout === 0.1;
  if (r.cfg === 2 && r.t1 === 1 && r.n === 10000) {
    const c = rows.find(
      (x) => at('ctf')(x) && x.aux === 'S' && x.cfg === 2 && x.t1 === 1 && (x.t2 ?? 1) === 1 && x.n === 10000 &&
        (x.rounds ?? 1) === 1,
    );
    if (c) addPoint(backboneSeries, 'CFG 2, tau 1', [r.params / 1e6, c.fid - r.fid]);
  }
}
for (const g of bestGaps.filter((x) => x.V === 16384))
  addPoint(backboneSeries, 'each at its best', [g.baseline.params / 1e6, g.gap]);
if ([...backboneSeries.values()].some((pts) => pts.length > 1))
  plot(
    [
      'points',
      '--x-label',
      "baseline parameters (M); stage 1 has the same backbone",
      '--y-label',
      'FID(CTF) − FID(baseline)',
      '--title',
      'CTF - baseline FID by backbone, V 16384 (below 0: CTF wins)',
      ...[...backboneSeries].map(([k, pts]) =>
        `${k}=${pointsFile(`gap-vs-backbone-${k.replace(/\W+/g, '-').replace(/-+$/, '')}`,
          pts.sort((a, b) => a[0] - b[0]))}`),
    ],
    'fid-gap-vs-backbone.png',
  );
const mapArgs = [...mapSeries].filter(([, pts]) => pts.length).map(([k, pts]) =>
  `${k}=${pointsFile(`gap-${k.replace(/\W+/g, '-').replace(/-+$/, '')}`, pts.sort((a, b) => a[0] - b[0]))}`);
if (mapArgs.length)
  plot(
    [
      'points',
      '--x-label',
      'codebook size V (K = V/32)',
      '--y-label',
      'FID(CTF) − FID(baseline)',
      '--title',
      'CTF − baseline FID across the regime map (below 0: CTF wins)',
      ...mapArgs,
    ],
    'fid-gap.png',
  );
// Quality against speed at backbone S, one pass, CFG 2, τ 1, per V: the baseline, CTF's single pass, CTF with rounds.
for (const V of [4096, 16384]) {
  const speedRows = rows.filter(
    (r) =>
      r.V === V &&
      r.backbone === 'S' &&
      r.passes === 1 &&
      r.dropout === 0.1 &&
      r.n === 10000 &&
      r.cfg === 2 &&
      r.t1 === 1 &&
      (r.t2 ?? 1) === 1,
  );
  const speedSeries = new Map();
  for (const r of speedRows) {
    const k =
      r.method === 'baseline' ? 'baseline' : `CTF aux ${r.aux}${r.aux.endsWith('masked') ? ', R rounds' : ''}`;
    speedSeries.set(k, [...(speedSeries.get(k) ?? []), [r.imagesPerSec, r.fid]]);
  }
  if (speedRows.length > 1)
    plot(
      [
        'points',
        '--x-label',
        'images/s (during the run, both lanes busy)',
        '--y-label',
        'FID',
        '--title',
        `FID against sampling speed (backbone S, V ${V})`,
        ...[...speedSeries].map(
          ([k, pts]) =>
            `${k}=${pointsFile(
              `speed-V${V}-${k.replace(/\W+/g, '-').replace(/-+$/, '')}`,
              pts.sort((a, b) => a[0] - b[0]),
            )}`,
        ),
      ],
      `fid-vs-speed-V${V}.png`,
    );
}
// Sample grids of every evaluation, copied beside the summary.
for (const vdir of vocabDirs) {
  const evalDir = join(archive, vdir, 'eval');
  for (const f of existsSync(evalDir) ? readdirSync(evalDir).filter((x) => x.endsWith('.png')) : []) {
    mkdirSync(join(out, 'grids'), { recursive: true });
    copyFileSync(join(evalDir, f), join(out, 'grids', `${vdir}-${f}`));
  }
}

const summary = {
  kind: 'ctfgen.regime-summary',
  date: new Date().toISOString(),
  run: rel(run),
  command: 'bash experiments/regime.sh && node experiments/regime-summary.mjs',
  real: real?.metrics ?? null,
  tokenizers,
  rows,
  ceiling,
  nll,
  gaps,
  bestGaps: bestGaps.map((g) => ({
    V: g.V,
    backbone: g.backbone,
    gap: g.gap,
    baseline: { name: g.baseline.name, cfg: g.baseline.cfg, t1: g.baseline.t1, fid: g.baseline.fid },
    ctf: { name: g.ctf.name, cfg: g.ctf.cfg, t1: g.ctf.t1, t2: g.ctf.t2, fid: g.ctf.fid },
  })),
  models,
  plots,
  wallClock: {
    steps: [
      ...(legacy?.wallClock.steps ?? []).map((t) => ({ ...t, legacy: true })),
      ...times.map((t) => ({ ...t, allAttemptsSeconds: attemptSeconds(t.step) || t.seconds })),
    ],
    totalSeconds:
      (legacy?.wallClock.totalSeconds ?? 0) + times.reduce((s, t) => s + (attemptSeconds(t.step) || t.seconds), 0),
    note: 'seconds: the attempt that finished the step; allAttemptsSeconds: every attempt (stops and resumes included)',
  },
};
writeAtomic(join(out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');

const fmt = (x, d = 2) => (x === null || x === undefined ? '–' : typeof x === 'number' ? x.toFixed(d) : String(x));
const md = [
  '# Where CTF wins — tables (written by experiments/regime-summary.mjs from ' + rel(run) + ')',
  '',
  '| V | method | backbone | K | aux | params | passes | dropout | CFG | τ1 | τ2 | R | n | FID | ± (seeds) | IS | ' +
  'prec | rec | class acc | img/s | report |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.V} | ${r.method} | ${r.backbone} | ${fmt(r.K, 0)} | ${r.aux ?? '–'} | ${(r.params / 1e6).toFixed(2)} M ` +
      `| ${fmt(r.passes)} | ${r.dropout} | ${r.cfg} | ${r.t1} | ${fmt(r.t2, 1)} | ${r.rounds ?? '–'} | ${r.n} | ` +
      `${fmt(r.fid)} | ${r.fidStd === null ? '–' : `${fmt(r.fidStd)} (${r.seeds.length})`} | ${fmt(r.is)} | ` +
      `${fmt(r.precision, 3)} | ${fmt(r.recall, 3)} | ${fmt(r.classAccuracy, 3)} | ${fmt(r.imagesPerSec, 0)} | ` +
      `${r.name} |`,
  ),
  '',
  '## Each method at its best sampling setting (aux S, one pass)',
  '',
  '| V | backbone | baseline CFG / τ | baseline FID | IS | CTF CFG / τ1 / τ2 | CTF FID | IS | CTF − baseline |',
  '|---|---|---|---|---|---|---|---|---|',
  ...bestGaps.map((g) => {
    const fid = (r) => `${fmt(r.fid)}${r.fidStd === null ? '' : ` ± ${fmt(r.fidStd)} (${r.seeds.length} seeds)`}`;
    return `| ${g.V} | ${g.backbone} | ${g.baseline.cfg} / ${g.baseline.t1} | ${fid(g.baseline)} | ` +
      `${fmt(g.baseline.is)} | ${g.ctf.cfg} / ${g.ctf.t1} / ${g.ctf.t2} | ${fid(g.ctf)} | ${fmt(g.ctf.is)} | ` +
      `${fmt(g.gap)} |`;
  }),
  '',
  '## Tokenizers',
  '',
  '| V | test PSNR | usage | perplexity | rFID | recon IS | recon class acc |',
  '|---|---|---|---|---|---|---|',
  ...Object.entries(tokenizers).map(
    ([v, t]) =>
      `| ${v.slice(1)} | ${fmt(t.psnr)} dB | ${fmt(t.usage === null ? null : 100 * t.usage, 2)}% | ` +
      `${fmt(t.perplexity, 0)} | ${fmt(t.recon?.fid)} | ${fmt(t.recon?.is)} | ${fmt(t.recon?.classAccuracy, 3)} |`,
  ),
  '',
  '## Stage-2 ceiling',
  '',
  '| setting | R | row | images | FID | IS | prec | rec | class acc | tokens kept | clusters kept |',
  '|---|---|---|---|---|---|---|---|---|---|---|',
  ...ceiling.map(
    (c) =>
      `| ${c.setting} | ${c.rounds} | ${c.name} | ${c.images} | ${fmt(c.fid)} | ${fmt(c.is)} | ` +
      `${fmt(c.precision, 3)} | ${fmt(c.recall, 3)} | ${fmt(c.classAccuracy, 3)} | ${fmt(c.tokensKept, 3)} | ` +
      `${fmt(c.coarseKept, 3)} |`,
  ),
  '',
  '## Likelihood split (nats per test token)',
  '',
  '| setting | baseline | = coarse | + within | CTF | = stage 1 | + aux within | aux mass outside the cluster |',
  '|---|---|---|---|---|---|---|---|',
  ...nll.map(
    (x) =>
      `| ${x.setting} | ${fmt(x.baseline?.total, 3)} | ${fmt(x.baseline?.coarse, 3)} | ${fmt(x.baseline?.within, 3)} ` +
      `| ${fmt(x.ctf?.total, 3)} | ${fmt(x.stage1?.coarse, 3)} | ${fmt(x.aux?.within, 3)} | ` +
      `${fmt(x.aux?.outside, 3)} |`,
  ),
  '',
  '## Trained models',
  '',
  '| model | preset | parameters | passes | dropout | refine | val loss | val loss, half shown |',
  '|---|---|---|---|---|---|---|---|',
  ...Object.entries(models).map(
    ([k, m]) =>
      `| ${k} | ${m.preset} | ${m.parameters.toLocaleString('en')} | ${m.passes} | ${m.dropout} | ${m.refine ?? '–'} ` +
      `| ${fmt(m.valLoss, 4)} | ${fmt(m.valLossHalf, 4)} |`,
  ),
  '',
  '## Wall clock of every step',
  '',
  '| step | seconds (all attempts) | threads | finished |',
  '|---|---|---|---|',
  ...summary.wallClock.steps.map(
    (t) => `| ${t.step} | ${t.allAttemptsSeconds} | ${t.threads ?? ''} | ${t.finishedAt} |`,
  ),
  '',
  `Total: ${(summary.wallClock.totalSeconds / 3600).toFixed(2)} h of step time (two lanes side by side: wall clock ` +
  `is less).`,
  '',
];
writeAtomic(join(out, 'tables.md'), md.join('\n'));
process.stderr.write(`wrote ${rel(join(out, 'summary.json'))}, tables.md, ${plots.length} plots (${rows.length} ` +
  `rows, ${ceiling.length} ceiling rows)\n`);
