// `mpirun -np 2 ctfgen sample|eval` on a random-weight run writes the bytes one process writes: every PNG, the
// token JSON, the .npz and the metrics. Commands that do not split their work refuse to run as several ranks.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { writeRandomRun } from '../../src/bench/sample-bench.js';
import { Rng } from '../../src/engine/rng.js';
import { Classifier, classifierConfig, saveClassifier } from '../../src/eval/classifier.js';
import { MPI_ENV, SKIP_MPI, TINY_RUN, mpirun } from './mpirun.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const haveData = existsSync('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz');
const one = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: MPI_ENV });

let dir = '';
const at = (f: string): string => join(dir, f);
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ctfgen-mpi-cli-'));
  await writeRandomRun(at('run'), TINY_RUN);
  const model = new Classifier(classifierConfig('tiny', { inChannels: 1, imageSize: 32, numClasses: 10 }), new Rng(1));
  await saveClassifier(at('classifier.safetensors'), model, {
    data: { name: 'fashion-mnist', split: 'train', preprocessing: { pad: 2, padValue: 0, resize: null } },
    data_load: { spec: 'fashion-mnist', pad: 2 },
  });
});
after(() => rmSync(dir, { recursive: true, force: true }));

const same = (a: string, b: string): void =>
  assert.ok(readFileSync(at(a)).equals(readFileSync(at(b))), `${a} and ${b} differ`);

test('mpirun -np 2 ctfgen sample writes the grid, every image, the tokens and the preview of one process',
  { skip: SKIP_MPI, timeout: 180_000 }, async () => {
  const outs = (p: string): string[] =>
    ['--out', at(`${p}.png`), '--tokens-out', at(`${p}.json`), '--each', at(`${p}-each`),
      '--progressive', at(`${p}-p.png`)];
  const flags = ['sample', '--run', at('run'), '--n', '5', '--batch', '4', '--seed', '7'];
  const a = one(...flags, ...outs('one'));
  assert.equal(a.status, 0, a.stderr);
  const b = await mpirun(2, [CLI, ...flags, ...outs('two')]);
  assert.equal(b.status, 0, b.stderr);
  for (const [x, y] of [['one.png', 'two.png'], ['one.json', 'two.json'], ['one-p.png', 'two-p.png']]) same(x!, y!);
  const each = readdirSync(at('one-each')).sort();
  assert.equal(each.length, 50);
  assert.deepEqual(readdirSync(at('two-each')).sort(), each);
  for (const f of each) same(join('one-each', f), join('two-each', f));
  assert.equal(b.stderr.match(/^wrote /gm)?.length, 1, 'rank 0 alone writes and logs');
});

test('mpirun -np 2 ctfgen eval writes the .npz, the grid and the metrics of one process',
  { skip: SKIP_MPI || (!haveData && 'Fashion-MNIST is not installed'), timeout: 300_000 }, async () => {
  const flags = ['eval', '--run', at('run'), '--classifier', at('classifier.safetensors'), '--method', 'both',
    '--n', '30', '--batch', '4'];
  const a = one(...flags, '--out', at('e1.json'));
  assert.equal(a.status, 0, a.stderr);
  const b = await mpirun(2, [CLI, ...flags, '--out', at('e2.json')]);
  assert.equal(b.status, 0, b.stderr);
  type Report = { results: Record<string, { metrics: unknown; insideCluster: unknown; timing: { ranks: number } }> };
  const [r1, r2] = ['e1.json', 'e2.json'].map((f) => JSON.parse(readFileSync(at(f), 'utf8')) as Report);
  for (const m of ['ctf', 'baseline']) {
    same(`e1-${m}.npz`, `e2-${m}.npz`);
    same(`e1-${m}.png`, `e2-${m}.png`);
    assert.deepEqual(r2!.results[m]!.metrics, r1!.results[m]!.metrics, `${m}: metrics`);
    assert.equal(r2!.results[m]!.insideCluster, r1!.results[m]!.insideCluster);
    assert.deepEqual([r1!.results[m]!.timing.ranks, r2!.results[m]!.timing.ranks], [1, 2]);
  }
});

test('mpirun -np 2 ctfgen cluster (or any command that does not split its work) refuses, saying why',
  { skip: SKIP_MPI, timeout: 60_000 }, async () => {
  const r = await mpirun(2, [CLI, 'cluster', '--run', at('run'), '--k', '4', '--force']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr,
    /ctfgen cluster: runs as one process, not as 2 MPI ranks; under mpirun only ctfgen sample, eval, train and/);
  assert.equal(r.stderr.match(/runs as one process/g)?.length, 1, 'rank 0 alone says so');
});
