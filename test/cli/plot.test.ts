// `ctfgen plot`: reading training event logs (resumed runs count once, the last value per step wins), points
// files, the errors that name file and line, and the command end to end (PNG written and decodable).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { UsageError, type ParsedFlags } from '../../src/cli/args.js';
import {
  curveFromEventLog,
  parseSeriesArg,
  plotCurvesCommand,
  plotPointsCommand,
  pointsFromJson,
} from '../../src/cli/plot.js';
import { CtfError } from '../../src/errors.js';
import { decodeImageFile } from '../../src/io/png.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ctfgen = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

const start = (step: number, resumed: boolean) => ({ type: 'start', step, totalSteps: 400, itemsPerStep: 8, resumed });
const progress = (step: number, loss: number | null) => ({
  type: 'progress',
  step,
  totalSteps: 400,
  epoch: step / 200,
  loss,
  lr: 1e-3,
  metrics: {},
  itemsPerSec: 100,
  elapsedSec: 1,
  etaSec: 1,
});
const val = (type: 'eval' | 'epoch', step: number, valLoss: number | null) => ({
  type,
  step,
  epoch: step / 200,
  metrics: { valLoss },
});
const jsonl = (events: object[]): string =>
  events.map((e) => JSON.stringify({ ...e, time: '2025-01-01T00:00:00.000Z' })).join('\n') + '\n';

// A run that trains to step 350, crashes, resumes from the checkpoint at step 200, repeats 300 and finishes at 400.
const RESUMED = jsonl([
  start(0, false),
  progress(100, 6.0),
  val('eval', 100, 5.0),
  { type: 'checkpoint', step: 100, path: 'x', ms: 1 },
  progress(200, 5.0),
  val('epoch', 200, 4.0),
  val('eval', 200, 4.0),
  { type: 'checkpoint', step: 200, path: 'x', ms: 1 },
  progress(300, 4.5),
  val('eval', 300, 3.5),
  progress(350, 4.4),
  val('eval', 350, 3.45),
  start(200, true),
  progress(300, 4.2),
  val('eval', 300, 3.4),
  progress(400, 4.0),
  val('epoch', 400, 3.0),
  val('eval', 400, 3.0),
  { type: 'done', step: 400, elapsedSec: 10 },
]);

test('a resumed run counts once: the last value per step wins, the abandoned steps after the resume point go', () => {
  const c = curveFromEventLog(RESUMED, 'r.events.jsonl', { metric: 'valLoss', x: 'step' });
  assert.deepEqual(c.points, [[100, 5.0], [200, 4.0], [300, 3.4], [400, 3.0]]);
  assert.deepEqual(c.notes, []);
  assert.deepEqual(curveFromEventLog(RESUMED, 'r', { metric: 'valLoss', x: 'epoch' }).points, [
    [0.5, 5.0],
    [1, 4.0],
    [1.5, 3.4],
    [2, 3.0],
  ]);
  assert.deepEqual(curveFromEventLog(RESUMED, 'r', { metric: 'loss', x: 'step' }).points, [
    [100, 6.0],
    [200, 5.0],
    [300, 4.2],
    [400, 4.0],
  ]);
});

test('a fresh start in the same log replaces the earlier run; NaN values (null in JSON) are skipped', () => {
  const log = jsonl([
    start(0, false),
    val('eval', 100, 9),
    val('eval', 200, 8),
    start(0, false),
    val('eval', 100, 5),
    val('eval', 200, null),
    progress(200, null),
  ]);
  assert.deepEqual(curveFromEventLog(log, 'f', { metric: 'valLoss', x: 'step' }).points, [[100, 5]]);
  assert.throws(() => curveFromEventLog(log, 'f', { metric: 'loss', x: 'step' }), /f: no "loss" values in 7 events/);
});

test('an unfinished last line is tolerated (the run is still writing); a bad ' +
  'line elsewhere names file and line', () => {
  const log = RESUMED + '{"type":"progress","st';
  const c = curveFromEventLog(log, 'live.events.jsonl', { metric: 'valLoss', x: 'step' });
  assert.equal(c.points.length, 4);
  assert.match(c.notes[0]!, /live\.events\.jsonl:20: skipped a torn last line of 22 bytes/);
  const lines = RESUMED.split('\n');
  const bad = (i: number, text: string): string => [...lines.slice(0, i), text, ...lines.slice(i + 1)].join('\n');
  const err = (text: string, re: RegExp) =>
    assert.throws(
      () => curveFromEventLog(text, 'b.events.jsonl', { metric: 'valLoss', x: 'step' }),
      (e: unknown) => e instanceof CtfError && re.test(e.message),
      re.source,
    );
  err(bad(2, '{"type": "eval", oops'), /^b\.events\.jsonl:3: not a JSON line/);
  err(bad(2, '[1, 2]'), /^b\.events\.jsonl:3: expected a training event object with a "type", got \[1,2\]/);
  err(
    bad(2, JSON.stringify({ ...val('eval', 100, 5), step: 'ten' })),
    /^b\.events\.jsonl:3: "step" of the "eval" event is "ten", expected a step count/,
  );
  err(bad(2, JSON.stringify({ ...val('eval', 100, 5), step: 1.5 })), /:3: "step" of the "eval" event is 1\.5/);
  err(bad(2, JSON.stringify({ type: 'eval', step: 100, metrics: {} })), /:3: the "eval" event has no "epoch" field/);
  err(
    bad(2, JSON.stringify({ ...val('eval', 100, 5), metrics: { valLoss: 'low' } })),
    /:3: "valLoss" of the metrics of the "eval" event is "low", expected a number/,
  );
  err(bad(0, JSON.stringify({ ...start(0, false), resumed: 'yes' })), /:1: "resumed" of the "start" event is "yes"/);
  err('', /b\.events\.jsonl: no training events/);
  assert.throws(
    () => curveFromEventLog(RESUMED, 'r', { metric: 'fid', x: 'step' }),
    /r: no "fid" values in 19 events \(metrics found: valLoss; or "loss"\)/,
  );
});

test('points files and series arguments', () => {
  assert.deepEqual(
    pointsFromJson('{"points": [[1, 30.5], [2, null], [4, 12]]}', 'fid.json').map((p) => p.map(String)),
    [
      ['1', '30.5'],
      ['2', 'NaN'],
      ['4', '12'],
    ],
  );
  assert.throws(
    () => pointsFromJson('{"points": [[1, 2], [3]]}', 'a.json'),
    /^CtfError: a\.json: points\[1\] is \[3\], expected \[x, y\] with two numbers/,
  );
  assert.throws(() => pointsFromJson('{"points": [[1, "2"]]}', 'a.json'), /a\.json: points\[0\] is \[1,"2"\]/);
  assert.throws(() => pointsFromJson('[[1, 2]]', 'a.json'), /a\.json: expected \{"points": \[\[x, y\], \.\.\.\]\}/);
  assert.throws(() => pointsFromJson('{"points": [[1, 2],\n', 'a.json'), /a\.json: not valid JSON/);
  assert.deepEqual(parseSeriesArg('CTF=runs/x/stage1.events.jsonl', /\.events\.jsonl$/), {
    name: 'CTF',
    path: 'runs/x/stage1.events.jsonl',
  });
  assert.deepEqual(parseSeriesArg('runs/x/baseline.events.jsonl', /\.events\.jsonl$/), {
    name: 'baseline',
    path: 'runs/x/baseline.events.jsonl',
  });
  assert.throws(() => parseSeriesArg('=x.json', /\.json$/), /expected NAME=FILE/);
  const exists = (p: string): boolean => ['runs/k=128/fid.json', 'a=b.json'].includes(p);
  assert.deepEqual(parseSeriesArg('CTF (K=128)=runs/k=128/fid.json', /\.json$/, exists), {
    name: 'CTF (K=128)',
    path: 'runs/k=128/fid.json',
  });
  assert.deepEqual(parseSeriesArg('a=b.json', /\.json$/, exists), { name: 'a=b', path: 'a=b.json' });
  assert.deepEqual(parseSeriesArg('K=8=missing.json', /\.json$/, exists), { name: 'K', path: '8=missing.json' });
});

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ctfgen-plot-cli-'));
  writeFileSync(join(dir, 'baseline.events.jsonl'), RESUMED);
  writeFileSync(
    join(dir, 'ctf.events.jsonl'),
    jsonl([
      start(0, false),
      val('eval', 100, 4.0),
      val('epoch', 200, 3.0),
      val('eval', 300, 2.6),
      val('epoch', 400, 2.4),
    ]),
  );
  writeFileSync(
    join(dir, 'broken.events.jsonl'),
    jsonl([start(0, false)]) + '{"type": "eval", "step": 100, "epoch": 0.5, "metrics": {"valLoss": tru}}\n',
  );
  writeFileSync(join(dir, 'fid.json'), JSON.stringify({ points: [[1, 80], [2, 40], [4, 25]] }));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a command in this process with stderr captured (what it reports goes there). */
async function inProcess(run: () => Promise<unknown>): Promise<string> {
  const write = process.stderr.write;
  let text = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try { await run(); } finally { process.stderr.write = write; }
  return text;
}
const flags = (f: ParsedFlags): ParsedFlags => ({ width: 800, height: 500, ...f });

test('ctfgen plot curves writes a PNG', async () => {
  const out = join(dir, 'curves.png');
  const r = ctfgen(
    'plot',
    'curves',
    '--out',
    out,
    '--width',
    '480',
    '--height',
    '320',
    join(dir, 'baseline.events.jsonl'),
    `CTF=${join(dir, 'ctf.events.jsonl')}`,
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /baseline: 4 points, valLoss 5 → 3 \(lowest 3 at epoch 2\)/);
  assert.match(r.stderr, /CTF: 4 points/);
  const png = await decodeImageFile(out);
  assert.deepEqual([png.width, png.height, png.channels], [480, 320, 3]);
});

test('plot points draws a points file; a bad log is a CtfError naming file and ' +
  'line; bad arguments are usage errors', async () => {
  const log = await inProcess(() =>
    plotPointsCommand.run(flags({ out: join(dir, 'fid.png'), xLabel: 'epoch', yLabel: 'FID' }), [
      `baseline=${join(dir, 'fid.json')}`,
    ]),
  );
  assert.match(log, /baseline: 3 points, FID 80 → 25/);
  assert.equal((await decodeImageFile(join(dir, 'fid.png'))).width, 800);
  const curves = (f: ParsedFlags, pos: string[]) =>
    inProcess(() =>
      plotCurvesCommand.run(flags({ out: join(dir, 'y.png'), metric: 'valLoss', x: 'epoch', ...f }), pos),
    );
  const ctf = join(dir, 'ctf.events.jsonl');
  await assert.rejects(
    curves({}, [join(dir, 'broken.events.jsonl')]),
    (e: unknown) => e instanceof CtfError && /broken\.events\.jsonl:2: not a JSON line/.test(e.message),
  );
  await assert.rejects(
    curves({ x: 'time' }, [ctf]),
    (e: unknown) => e instanceof UsageError && /--x: expected epoch or step, got "time"/.test(e.message),
  );
  await assert.rejects(
    curves({}, []),
    (e: unknown) => e instanceof UsageError && /at least one NAME=FILE\.events\.jsonl/.test(e.message),
  );
  await assert.rejects(
    curves({}, [ctf, `ctf=${ctf}`]),
    (e: unknown) => e instanceof UsageError && /"ctf" is given twice/.test(e.message),
  );
  await assert.rejects(
    curves({}, [join(dir, 'missing.events.jsonl')]),
    (e: unknown) => e instanceof CtfError && /event log .*missing\.events\.jsonl does not exist/.test(e.message),
  );
});
