// Data-parallel training under mpirun on a tiny GPT (48 sequences of 4×4 tokens, batches of 8, 36 steps): one rank
// under mpirun writes the bytes of a plain process; 2 and 3 ranks follow its trajectory up to float summation
// order; a run stopped with N ranks resumes with another N; a rank killed mid-training ends the job quickly, and
// the last checkpoint is whole and resumable.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { loadTrainState } from '../../src/train/checkpoint.js';
import { makeTinyRun, type TinyRun } from '../tiny-run.js';
import { MPI_ENV, SKIP_MPI, mpirun, rankPid, startMpirun } from './mpirun.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const TOLERANCE = { valLossRel: 1e-4, weightAbs: 1e-4 };

let dir = '', run: TinyRun;
const at = (f: string): string => join(dir, f);
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ctfgen-dp-train-'));
  run = await makeTinyRun(dir);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** ctfgen train args: a tiny baseline (or masked-refinement aux) of 6 epochs × 6 steps, validated on its tokens. */
function train(out: string, o: { kind?: 'baseline' | 'aux'; epochs?: number; more?: string[] } = {}): string[] {
  const kind = o.kind ?? 'baseline';
  return ['train', kind, '--tokens', run.tokens, '--val-tokens', run.tokens, '--out', at(out),
    '--preset', 'tiny', '--epochs', String(o.epochs ?? 6), '--batch', '8', '--warmup', '2', '--seed', '5',
    '--checkpoint-every', '12', '--progress-every', '1000',
    ...(kind === 'aux' ? ['--clusters', run.clusters, '--refine', 'masked'] : []), ...(o.more ?? [])];
}

function plain(args: string[]): void {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: MPI_ENV });
  assert.equal(r.status, 0, r.stderr);
}

async function ranks(np: number, args: string[]): Promise<string> {
  const r = await mpirun(np, [CLI, ...args], { timeoutMs: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const bytes = (f: string): Buffer => readFileSync(at(f));
const valLoss = (out: string): number =>
  (JSON.parse(readFileSync(at(out.replace(/\.safetensors$/, '.report.json')), 'utf8')) as { valLoss: number }).valLoss;

/** The largest absolute difference between two checkpoints' weights. */
async function weightGap(a: string, b: string): Promise<number> {
  const [x, y] = await Promise.all([loadSafetensors(at(a)), loadSafetensors(at(b))]);
  let gap = 0;
  for (const [name, t] of x.tensors) {
    const u = t.data as Float32Array, v = y.tensors.get(name)?.data as Float32Array;
    assert.equal(v?.length, u.length, `${name} in both`);
    for (let i = 0; i < u.length; i++) gap = Math.max(gap, Math.abs(u[i]! - v[i]!));
  }
  return gap;
}

async function assertSameTrajectory(ref: string, other: string, what: string): Promise<void> {
  const [a, b] = [valLoss(ref), valLoss(other)];
  assert.ok(Math.abs(a - b) <= TOLERANCE.valLossRel * Math.abs(a), `${what}: validation loss ${b} vs ${a}`);
  const gap = await weightGap(ref, other);
  assert.ok(gap <= TOLERANCE.weightAbs, `${what}: weights differ by up to ${gap}`);
}

test('mpirun -np 1 ctfgen train writes the bytes of a plain run; -np 2 and -np 3 follow its trajectory',
  { skip: SKIP_MPI, timeout: 180_000 }, async () => {
  plain(train('plain.safetensors'));
  await ranks(1, train('np1.safetensors'));
  for (const f of ['.safetensors', '.train-state.safetensors'])
    assert.ok(bytes(`plain${f}`).equals(bytes(`np1${f}`)), `plain${f} and np1${f} differ`);

  const log = await ranks(2, train('np2.safetensors'));
  await assertSameTrajectory('plain.safetensors', 'np2.safetensors', '2 ranks');
  assert.equal(log.match(/baseline: starting/g)?.length, 1, 'rank 0 alone reports');
  assert.match(log, /36 steps of 8 sequences, shared by 2 MPI ranks/);
  const events = readFileSync(at('np2.events.jsonl'), 'utf8').trim().split('\n');
  assert.equal(events.filter((l) => l.includes('"type":"done"')).length, 1, 'one event log, written once');

  // The masked-refinement aux over 3 ranks: 8 rows as 3 + 3 + 2, a mask drawn for the whole batch.
  plain(train('aux.safetensors', { kind: 'aux' }));
  await ranks(3, train('aux3.safetensors', { kind: 'aux' }));
  await assertSameTrajectory('aux.safetensors', 'aux3.safetensors', 'the aux on 3 ranks');
});

test('a run stopped with 2 ranks resumes with 1, and one stopped with 1 resumes with 2, as if never stopped',
  { skip: SKIP_MPI, timeout: 180_000 }, async () => {
  plain(train('whole.safetensors'));
  await ranks(2, train('two-one.safetensors', { more: ['--stop-at', '18'] }));
  assert.equal((await loadTrainState(at('two-one.train-state.safetensors'), 'gpt:baseline')).step, 18);
  plain(['train', 'baseline', '--tokens', run.tokens, '--val-tokens', run.tokens, '--out', at('two-one.safetensors'),
    '--resume', '--progress-every', '1000']);
  await assertSameTrajectory('whole.safetensors', 'two-one.safetensors', '2 ranks, then 1');

  plain(train('one-two.safetensors', { more: ['--stop-at', '18'] }));
  await ranks(2, ['train', 'baseline', '--tokens', run.tokens, '--val-tokens', run.tokens,
    '--out', at('one-two.safetensors'), '--resume', '--progress-every', '1000']);
  await assertSameTrajectory('whole.safetensors', 'one-two.safetensors', '1 rank, then 2');
});

test('a rank killed (SIGKILL) mid-training ends the job within 10 s; the last checkpoint is whole and resumes',
  { skip: SKIP_MPI, timeout: 120_000 }, async () => {
  const job = startMpirun(2, [CLI, ...train('killed.safetensors', { epochs: 200 })], { timeoutMs: 60_000 });
  let rank0: number | null = null;
  const killedAt = await new Promise<number>((resolve, reject) => {
    const poll = setInterval(() => {
      if (!/checkpoint at step (2[4-9]|[3-9]\d)/.test(job.stderr())) return;
      clearInterval(poll);
      const pid = rankPid(job.child.pid!, 1);
      rank0 = rankPid(job.child.pid!, 0);
      if (pid === null || rank0 === null) return reject(new Error('the ranks not found among mpirun\'s children'));
      process.kill(pid, 'SIGKILL');
      resolve(performance.now());
    }, 20);
    void job.done.then(() => { clearInterval(poll); reject(new Error(`the job ended first:\n${job.stderr()}`)); });
  });
  const r = await job.done;
  while (rank0 !== null && alive(rank0) && performance.now() - killedAt < 15_000) await sleep(20);
  const seconds = (performance.now() - killedAt) / 1000;  // until mpirun and the other rank are gone
  assert.ok(seconds < 10, `the job took ${seconds.toFixed(1)} s to end after the kill`);
  process.stderr.write(`# the job ended ${seconds.toFixed(2)} s after the kill\n`);
  assert.notEqual(r.status, 0, 'the job failed');
  assert.equal(r.signal, null, 'mpirun itself ended the job (not the test\'s timeout)');

  const saved = await loadTrainState(at('killed.train-state.safetensors'), 'gpt:baseline');  // hash-checked
  assert.ok(saved.step >= 24 && saved.step % 12 === 0, `a checkpoint step: ${saved.step}`);
  await loadSafetensors(at('killed.safetensors'));
  const stopAt = saved.step + 12;
  await ranks(2, ['train', 'baseline', '--tokens', run.tokens, '--out', at('killed.safetensors'), '--resume',
    '--stop-at', String(stopAt), '--progress-every', '1000']);
  assert.equal((await loadTrainState(at('killed.train-state.safetensors'), 'gpt:baseline')).step, stopAt);
});
