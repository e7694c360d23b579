// Data-parallel tokenizer training under mpirun: a tiny tokenizer on 192 Fashion-MNIST images (batches of 16, a
// dead-code window of 3 steps so codewords are re-initialised often) trained by 2 ranks follows one process: the
// same weights up to float summation order and the same re-initialisation decisions; 1 rank writes its bytes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadTrainState } from '../../src/train/checkpoint.js';
import { MPI_ENV, SKIP_MPI, mpirun } from './mpirun.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const haveData = existsSync('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz');

let dir = '';
const at = (f: string): string => join(dir, f);
before(() => { dir = mkdtempSync(join(tmpdir(), 'ctfgen-dp-tokenizer-')); });
after(() => rmSync(dir, { recursive: true, force: true }));

const train = (out: string): string[] => ['tokenizer', 'train', '--data', 'fashion-mnist', '--preset', 'tiny',
  '--codebook', '64', '--limit', '192', '--epochs', '2', '--batch', '16', '--warmup', '2', '--dead-code-window', '3',
  '--eval-limit', '0', '--progress-every', '1000', '--out', at(out)];

test('mpirun -np 2 ctfgen tokenizer train follows one process, re-initialising the same dead codes',
  { skip: SKIP_MPI || (!haveData && 'Fashion-MNIST is not installed'), timeout: 180_000 }, async () => {
  const one = spawnSync(process.execPath, [CLI, ...train('one.safetensors')], { encoding: 'utf8', env: MPI_ENV });
  assert.equal(one.status, 0, one.stderr);
  const np1 = await mpirun(1, [CLI, ...train('np1.safetensors')]);
  assert.equal(np1.status, 0, np1.stderr);
  assert.ok(readFileSync(at('one.safetensors')).equals(readFileSync(at('np1.safetensors'))), '1 rank: the same bytes');
  const two = await mpirun(2, [CLI, ...train('two.safetensors')]);
  assert.equal(two.status, 0, two.stderr);

  const [a, b] = await Promise.all(['one', 'two'].map((n) => loadTrainState(at(`${n}.train-state.safetensors`),
    'tokenizer')));
  let gap = 0;
  for (const [name, t] of a!.model) {
    const u = t.f32, v = b!.model.get(name)!.f32;
    for (let i = 0; i < u.length; i++) gap = Math.max(gap, Math.abs(u[i]! - v[i]!));
  }
  assert.ok(gap <= 1e-4, `the weights differ by up to ${gap}`);
  for (const k of ['usage.last_used', 'usage.last_reinit']) {
    assert.deepEqual(b!.state.get(k)!.i32, a!.state.get(k)!.i32, `${k}: the same picks and re-initialisations`);
  }
  assert.ok(a!.state.get('usage.last_reinit')!.i32.some((s) => s > 0), 'codewords were re-initialised');
});
