// `ctfgen train` on a small synthetic token file: outputs are checked before training starts (never over an
// input, never over a finished model without --resume or --force, never into a directory), two processes never
// train into one --out, --resume refuses other flags and other data, a bad label names its file, and runs and
// commands of before the renaming (coarse-ar → stage1, fine-aux → aux) still work.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/engine/rng.js';
import { Tensor } from '../../src/engine/tensor.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';
import { tokenizerConfig } from '../../src/tokenizer/config.js';
import { saveTokens } from '../../src/tokenizer/tokens-file.js';
import { makeTinyRun } from '../tiny-run.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ctfgen = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
const V = 32, grid = 4, N = 48, classes = 3;

/** A token file of N random grids; `seed` changes the tokens, `label` overrides the label of row 20. */
async function tokenFile(path: string, o: { seed?: number; label?: number } = {}): Promise<void> {
  const rng = new Rng(o.seed ?? 0);
  const labels = Int32Array.from({ length: N }, (_, n) => n % classes);
  if (o.label !== undefined) labels[20] = o.label;
  const tokens = Int32Array.from({ length: N * grid * grid }, () => rng.int(V));
  await saveTokens(path, {
    tokens: new Tensor(tokens, [N, grid, grid]), labels, flipped: new Int32Array(N), tokenizerHash: 'a'.repeat(64),
    tokenizerConfig: tokenizerConfig('tiny', { inChannels: 1, imageSize: 16 }, { codebookSize: V }),
    data: {
      name: 'synthetic', split: 'train', count: N, channels: 1, height: 16, width: 16, numClasses: classes,
      preprocessing: { pad: 0, padValue: 0, resize: null }, sha256: 'b'.repeat(64),
    },
  });
}

const quick = ['--preset', 'tiny', '--epochs', '1', '--batch', '16', '--warmup', '1', '--val-limit', '0'];

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ctf-cli-train-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('train: outputs are checked before training; a finished model is replaced only with --force', () =>
  withDir(async (dir) => {
    const tokens = join(dir, 'tokens.safetensors'), out = join(dir, 'run', 'baseline.safetensors');
    await tokenFile(tokens);
    const before = readFileSync(tokens);

    const overInput = ctfgen('train', 'baseline', '--tokens', tokens, '--out', tokens, ...quick);
    assert.equal(overInput.status, 1, overInput.stderr);
    assert.match(overInput.stderr, /--out .*tokens\.safetensors is the input --tokens .*tokens\.safetensors/);
    assert.doesNotMatch(overInput.stderr, /steps\/epoch/, 'refused before the model is built');
    assert.deepEqual(readFileSync(tokens), before);
    const x = join(dir, 'x.safetensors');
    const xState = join(dir, 'x.train-state.safetensors');
    const stateOverInput = ctfgen('train', 'baseline', '--tokens', xState, '--out', x, ...quick);
    assert.equal(stateOverInput.status, 1);
    assert.match(stateOverInput.stderr, /the train state of --out .* is the input --tokens/);

    mkdirSync(join(dir, 'adir'));
    const intoDir = ctfgen('train', 'baseline', '--tokens', tokens, '--out', join(dir, 'adir'), ...quick);
    assert.equal(intoDir.status, 1);
    assert.match(intoDir.stderr, /--out .*adir is a directory; expected the path of a file to write/);
    assert.doesNotMatch(intoDir.stderr, /steps\/epoch/);

    mkdirSync(join(dir, 'run'));
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
    const stray = `baseline.safetensors.tmp-${deadPid}-0123456789ab`;
    writeFileSync(join(dir, 'run', stray), 'left by a killed save');
    const first = ctfgen('train', 'baseline', '--tokens', tokens, '--out', out, ...quick);
    assert.equal(first.status, 0, first.stderr);
    assert.ok(!readdirSync(join(dir, 'run')).includes(stray),
      'a dead process\'s temporary is gone after the next save');
    assert.ok(!existsSync(`${out}.lock`), 'the lock is released');
    const model = readFileSync(out);

    const again = ctfgen('train', 'baseline', '--tokens', tokens, '--out', out, ...quick);
    assert.equal(again.status, 1);
    assert.match(again.stderr,
      /--out .*baseline\.safetensors exists; pass --resume to continue its run, or --force to replace it/);
    assert.deepEqual(readFileSync(out), model, 'the finished model is untouched');
    const dry = ctfgen('train', 'baseline', '--tokens', tokens, '--out', out, ...quick, '--dry-run');
    assert.equal(dry.status, 0, `a dry run writes nothing, so an existing model does not stop it: ${dry.stderr}`);
    const both = ctfgen('train', 'baseline', '--tokens', tokens, '--out', out, ...quick, '--resume', '--force');
    assert.equal(both.status, 2);
    assert.match(both.stderr, /give --resume .* or --force .*, not both/);
    const forced = ctfgen('train', 'baseline', '--tokens', tokens, '--out', out, ...quick, '--force', '--seed', '1');
    assert.equal(forced.status, 0, forced.stderr);
    assert.notDeepEqual(readFileSync(out), model, '--force replaced it');

    const snapOut = join(dir, 'snap', 'm.safetensors');
    mkdirSync(join(dir, 'snap'));
    writeFileSync(join(dir, 'snap', 'm.step2.safetensors'), 'an earlier run\'s snapshot');
    const snap = ctfgen('train', 'baseline', '--tokens', tokens, '--out', snapOut, ...quick);
    assert.equal(snap.status, 1);
    assert.match(snap.stderr, /a snapshot of --out .*m\.step2\.safetensors exists/);
  }));

test('train --resume refuses other config flags and other tokens, naming the saved and the given value', () =>
  withDir(async (dir) => {
    const tokens = join(dir, 'tokens.safetensors'), other = join(dir, 'other.safetensors');
    const out = join(dir, 'baseline.safetensors');
    await tokenFile(tokens);
    await tokenFile(other, { seed: 1 });
    const first = ctfgen('train', 'baseline', '--tokens', tokens, '--out', out, ...quick, '--dropout', '0.2');
    assert.equal(first.status, 0, first.stderr);
    const options = quick.slice(2);  // without --preset
    const resume = (...extra: string[]) =>
      ctfgen('train', 'baseline', '--tokens', tokens, '--out', out, ...options, '--resume', ...extra);

    const preset = resume('--preset', 'S');
    assert.equal(preset.status, 2, preset.stderr);
    assert.match(preset.stderr,
      /--resume: .*baseline\.train-state\.safetensors was started with preset tiny, --preset asks for S/);
    assert.match(preset.stderr, /drop the flag or pass the same value/);
    const dropout = resume('--dropout', '0.5');
    assert.equal(dropout.status, 2);
    assert.match(dropout.stderr, /was started with dropout 0\.2, --dropout asks for 0\.5/);
    const lr = resume('--lr', '0.01');
    assert.equal(lr.status, 2);
    assert.match(lr.stderr, /started with lr = 0\.003, the flag asks for 0\.01/);

    const data = ctfgen('train', 'baseline', '--tokens', other, '--out', out, ...options, '--resume');
    assert.equal(data.status, 1, data.stderr);
    assert.match(data.stderr, new RegExp('--resume: .*baseline\\.train-state\\.safetensors was trained on tokens ' +
      'with sha256 [0-9a-f]{12}…, --tokens .*other\\.safetensors holds tokens with sha256 [0-9a-f]{12}…'));

    const same = resume('--preset', 'tiny', '--dropout', '0.2');
    assert.equal(same.status, 0, `the same values are accepted: ${same.stderr}`);
  }));

test('two processes never train into one --out; a dead holder\'s lock is replaced', () => withDir(async (dir) => {
  const tokens = join(dir, 'tokens.safetensors'), out = join(dir, 'baseline.safetensors');
  await tokenFile(tokens);
  const long = ['--tokens', tokens, '--out', out, ...quick, '--epochs', '5000', '--progress-every', '1'];
  const child = spawn(process.execPath, [CLI, 'train', 'baseline', ...long], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  await new Promise<void>((resolve) => child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (/starting, \d+ steps/.test(stderr)) resolve();
  }));
  try {
    assert.equal(readFileSync(`${out}.lock`, 'utf8').trim(), String(child.pid));
    for (const flags of [[], ['--force'], ['--resume']]) {
      const second = ctfgen('train', 'baseline', ...long, ...flags);
      assert.equal(second.status, 1, second.stderr);
      assert.match(second.stderr,
        new RegExp(`--out .*baseline\\.safetensors is being written by another process \\(PID ${child.pid}\\)`));
    }
  } finally {
    child.kill('SIGTERM');
  }
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 143, stderr);
  assert.ok(!existsSync(`${out}.lock`), 'released on SIGTERM');

  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  writeFileSync(`${out}.lock`, `${deadPid}\n`);
  const forced = ctfgen('train', 'baseline', '--tokens', tokens, '--out', out, ...quick, '--force');
  assert.equal(forced.status, 0, forced.stderr);
  assert.ok(!existsSync(`${out}.lock`));
}));

test('a label outside the classes names the token file; flag values are usage errors (exit 2)', () =>
  withDir(async (dir) => {
    const bad = join(dir, 'bad.safetensors');
    await tokenFile(bad, { label: 99 });
    const r = ctfgen('train', 'baseline', '--tokens', bad, '--out', join(dir, 'm.safetensors'), ...quick);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /tokens .*bad\.safetensors: label 99 of row 20 is outside the 3 classes \[0, 3\)/);

    const cases: [string[], RegExp][] = [
      [['--dropout', '1'], /--dropout: must be < 1, got 1/],
      [['--class-dropout=-0.1'], /--class-dropout: must be ≥ 0/],
      [['--preset', 'XXL'], /--preset: expected tiny, S, M, ML, L, XL, got "XXL"/],
      [['--schedule', 'linear'], /--schedule: expected cosine, constant, got "linear"/],
      [['extra.safetensors'], /unexpected argument "extra\.safetensors": this command takes flags only/],
    ];
    for (const [flags, message] of cases) {
      const u = ctfgen('train', 'baseline', '--tokens', bad, '--out', join(dir, 'm.safetensors'), ...flags);
      assert.equal(u.status, 2, `${flags.join(' ')}: ${u.stderr}`);
      assert.match(u.stderr, message);
    }
  }));

test('the old command names still train; a run saved before the renaming (gpt:coarse-ar) resumes as stage1 bit for bit',
  () => withDir(async (dir) => {
    const run = await makeTinyRun(dir);
    const flags = (out: string): string[] => ['--tokens', run.tokens, '--clusters', run.clusters, '--out', out,
      '--val-limit', '0', '--checkpoint-every', '3', '--progress-every', '1'];
    const fresh = ['--preset', 'tiny', '--epochs', '20', '--batch', '8', '--seed', '1'];
    const whole = join(dir, 'whole', 'stage1.safetensors');
    const ref = ctfgen('train', 'stage1', ...flags(whole), ...fresh);
    assert.equal(ref.status, 0, ref.stderr);

    const old = join(dir, 'old', 'stage1.safetensors'), state = join(dir, 'old', 'stage1.train-state.safetensors');
    const child = spawn(process.execPath, [CLI, 'train', 'coarse-ar', ...flags(old), ...fresh],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '', sent = false;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!sent && /checkpoint at step 3 /.test(stderr)) sent = child.kill('SIGTERM');
    });
    assert.equal(await new Promise<number | null>((resolve) => child.on('close', resolve)), 143, stderr);
    assert.match(stderr, /^ctfgen train coarse-ar is now called `ctfgen train stage1`; running that\n/);
    // What a build of before the renaming wrote: the task and the kind under their old names.
    const file = decodeSafetensors(readFileSync(state), state);
    const extra = { ...JSON.parse(file.metadata['extra']!), ctf_kind: 'coarse-ar' };
    const metadata = { ...file.metadata, task: 'gpt:coarse-ar', extra: JSON.stringify(extra) };
    writeFileSync(state, encodeSafetensors(file.tensors, metadata));
    assert.match(ctfgen('train', 'aux', ...flags(old), '--resume').stderr,
      /it resumes a "gpt:coarse-ar" run, not a "gpt:aux" run/);

    const resumed = ctfgen('train', 'stage1', ...flags(old), '--resume');
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /stage1: resuming at step [1-9]\d*, 120 steps/);
    assert.deepEqual(readFileSync(old), readFileSync(whole), 'final checkpoint');
    const wholeState = join(dir, 'whole', 'stage1.train-state.safetensors');
    assert.deepEqual(readFileSync(state), readFileSync(wholeState), 'final train state');
    const reportPath = join(dir, 'old', 'stage1.report.json');
    const report = JSON.parse(readFileSync(reportPath, 'utf8')) as { model: string; ctf_kind: string };
    assert.deepEqual([report.model, report.ctf_kind], ['stage1', 'stage1']);
  }));
