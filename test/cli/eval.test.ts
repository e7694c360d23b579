// `ctfgen eval`, `eval recon` and `eval classifier train|test` end to end on tiny pieces: a random-weight run
// (writeRandomRun) and a random-weight classifier that says it was trained on Fashion-MNIST padded to 32×32.
// Quality is meaningless here; the report fields, the .npz, the PNG, the feature cache, re-scoring the
// .npz, and the refusals are what is checked.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SAMPLING_DEFAULTS } from '../../src/ctf/defaults.js';
import { writeRandomRun } from '../../src/bench/sample-bench.js';
import { TINY_RUN } from '../helpers.js';
import { Rng } from '../../src/engine/rng.js';
import { Classifier, classifierConfig, loadClassifier, saveClassifier } from '../../src/eval/classifier.js';
import { realReference, scoreImages } from '../../src/eval/evaluate.js';
import { pixelFeatures } from '../../src/eval/features.js';
import { referenceFeatures } from '../../src/eval/reference.js';
import { readNpz } from '../../src/io/npz.js';
import { decodeImageFile } from '../../src/io/png.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ctfgen = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
const haveData = existsSync('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz');
const skip = !haveData && 'Fashion-MNIST is not installed';

let dir = '';
const run = (): string => join(dir, 'run');
const cls = (): string => join(dir, 'classifier.safetensors');

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ctfgen-eval-cli-'));
  await writeRandomRun(run(), TINY_RUN);
  const model = new Classifier(classifierConfig('tiny', { inChannels: 1, imageSize: 32, numClasses: 10 }), new Rng(1));
  await saveClassifier(cls(), model, {
    data: { name: 'fashion-mnist', split: 'train', preprocessing: { pad: 2, padValue: 0, resize: null } },
    data_load: { spec: 'fashion-mnist', pad: 2 },
  });
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface Report {
  kind: string;
  methods: string[];
  knobs: Record<string, unknown>;
  paths: Record<string, string>;
  hashes: Record<string, string>;
  reference: { images: number; cache: string };
  results: Record<
    string,
    {
      metrics: {
        fid: number;
        isMean: number;
        isStd: number;
        precision: number;
        recall: number;
        classAccuracy: number;
        images: number;
      };
      timing: { images: number; imagesPerSec: number; seconds: { total: number } };
      parameters: { total: number };
      insideCluster: number | null;
      grid: { path: string };
      npz: { path: string; arrays: { arr_0: { shape: number[] } } };
    }
  >;
}

test(
  'eval --method both: report with every knob and metric, PNG grid, .npz (uint8 NHWC + labels), cached reference',
  { skip },
  async () => {
    const out = join(dir, 'report.json');
    const r = ctfgen(
      'eval',
      '--run',
      run(),
      '--classifier',
      cls(),
      '--method',
      'both',
      '--n',
      '10',
      '--batch',
      '4',
      '--cfg',
      '1.5',
      '--t2',
      '0.9',
      '--grid-per-class',
      '3',
      '--out',
      out,
      '--json',
    );
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout) as Report;
    assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), report);
    assert.equal(report.kind, 'ctfgen.eval-report');
    assert.deepEqual(report.methods, ['baseline', 'ctf']);
    assert.deepEqual(report.knobs, {
      n: 10,
      seed: 0,
      batch: 4,
      cfg: 1.5,
      t1: SAMPLING_DEFAULTS.t1,  // not given: the default
      t2: 0.9,
      topK: 0,
      topP: 1,
      mask: true,
      cfg2: 1,
      rounds: 1,
      k: 3,
      perClass: 1,
      numClasses: 10,
      classOrder: 'class-major',
    });
    assert.equal(report.reference.images, 10000);
    assert.ok(existsSync(report.reference.cache));
    assert.match(report.hashes.classifier!, /^[0-9a-f]{64}$/);
    for (const method of ['baseline', 'ctf']) {
      const m = report.results[method]!;
      for (const k of ['fid', 'isMean', 'isStd', 'precision', 'recall', 'classAccuracy'] as const)
        assert.ok(Number.isFinite(m.metrics[k]), `${method} ${k}`);
      assert.equal(m.metrics.images, 10);
      assert.ok(m.timing.imagesPerSec > 0 && m.timing.images === 10);
      assert.ok(m.parameters.total > 0);
      assert.equal(m.insideCluster, method === 'ctf' ? 1 : null);
      const npz = await readNpz(m.npz.path);
      assert.deepEqual(npz['arr_0']!.shape, [10, 28, 28, 1]);
      assert.ok(npz['arr_0']!.data instanceof Uint8Array);
      assert.deepEqual([...npz['labels']!.data], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      assert.deepEqual(m.npz.arrays.arr_0.shape, [10, 28, 28, 1]);
      const png = await decodeImageFile(m.grid.path); // 10 rows (classes) × 1 (all there is), tiles 64 px, 2 px padding
      assert.deepEqual([png.width, png.height], [64 + 2 * 2, 10 * 64 + 11 * 2]);
    }
    // The second run reads the reference features from the cache.
    const mtime = statSync(report.reference.cache).mtimeMs;
    const again = ctfgen(
      'eval',
      '--run',
      run(),
      '--classifier',
      cls(),
      '--n',
      '20',
      '--batch',
      '10',
      '--npz-crop',
      'off',
      '--out',
      join(dir, 'again.json'),
      '--json',
    );
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /features read from/);
    assert.equal(statSync(report.reference.cache).mtimeMs, mtime);
    // Whoever re-scores the uncropped .npz with the same classifier gets the same numbers.
    const a = JSON.parse(again.stdout) as Report,
      ctf = a.results['ctf']!;
    const npz = await readNpz(ctf.npz.path);
    assert.deepEqual(npz['arr_0']!.shape, [20, 32, 32, 1]);
    const c = await loadClassifier(cls());
    const ref = await referenceFeatures(c, 'test');
    const rescored = scoreImages(
      pixelFeatures(c.model, npz['arr_0']!.data as Uint8Array, [20, 1, 32, 32], { batchSize: 10 }),
      npz['labels']!.data as Int32Array,
      realReference(ref.features),
    );
    for (const k of ['fid', 'isMean', 'precision', 'recall', 'classAccuracy'] as const)
      assert.ok(
        Math.abs(rescored[k]! - ctf.metrics[k]) <= 1e-6 * Math.max(1, Math.abs(ctf.metrics[k])),
        `${k}: ${rescored[k]} vs ${ctf.metrics[k]}`,
      );
  },
);

test('eval recon: rFID of the tokenizer\'s reconstructions', { skip }, () => {
  const r = ctfgen(
    'eval',
    'recon',
    '--tokenizer',
    join(run(), 'tokenizer.safetensors'),
    '--classifier',
    cls(),
    '--limit',
    '30',
    '--json',
  );
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as {
    metrics: { rfid: number; fid: number; classAccuracy: number };
    images: { count: number };
  };
  assert.ok(Number.isFinite(rep.metrics.rfid) && rep.metrics.rfid === rep.metrics.fid);
  assert.equal(rep.images.count, 30);
});

test('eval refuses bad usage (exit 2) and pieces that do not fit (exit 1)', { skip }, () => {
  const cases: [string[], number, RegExp][] = [
    [
      ['eval', '--run', run(), '--classifier', cls(), '--n', '15', '--out', join(dir, 'x.json')],
      2,
      /--n 15 is not a multiple of the 10 classes/,
    ],
    [['eval', '--run', run(), '--out', join(dir, 'x.json')], 2, /--classifier is required/],
    [
      ['eval', '--run', run(), '--classifier', cls(), '--method', 'fast'],
      2,
      /--method: expected ctf, baseline or both/,
    ],
    [
      ['eval', 'classifier', '--classifier', cls()],
      2,
      /unexpected argument "classifier": this command takes flags only \(subcommands: .*eval classifier train, eval/,
    ],
    [
      ['eval', '--run', run(), '--classifier', join(run(), 'tokenizer.safetensors'), '--n', '10'],
      1,
      /not a classifier checkpoint \(metadata kind "ctfgen.tokenizer"/,
    ],
    [
      ['eval', '--tokenizer', join(run(), 'tokenizer.safetensors'), '--classifier', cls()],
      2,
      /--clusters, --stage1, --aux are required for --method ctf/,
    ],
  ];
  for (const [args, status, message] of cases) {
    const r = ctfgen(...args);
    assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});

test('eval classifier train / test on the first images; resume refuses other data', { skip }, () => {
  const out = join(dir, 'trained', 'classifier.safetensors');
  const r = ctfgen(
    'eval',
    'classifier',
    'train',
    '--out',
    out,
    '--preset',
    'tiny',
    '--limit',
    '256',
    '--epochs',
    '1',
    '--batch',
    '32',
    '--test-limit',
    '200',
    '--json',
  );
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as {
    steps: number;
    eval: { accuracy: number; images: number; perClass: number[] };
    trainSeconds: number;
  };
  assert.equal(rep.steps, 8);
  assert.equal(rep.eval.images, 200);
  assert.ok(rep.eval.accuracy >= 0 && rep.eval.accuracy <= 1 && rep.eval.perClass.length === 10);
  assert.ok(
    existsSync(out.replace('.safetensors', '.train-state.safetensors')) &&
      existsSync(out.replace('.safetensors', '.report.json')),
  );
  assert.match(r.stderr, /classifier test accuracy \d+\.\d\d%/);
  const t = ctfgen('eval', 'classifier', 'test', '--classifier', out, '--limit', '200', '--json');
  assert.equal(t.status, 0, t.stderr);
  assert.equal((JSON.parse(t.stdout) as { accuracy: number }).accuracy, rep.eval.accuracy);
  const other = ctfgen('eval', 'classifier', 'train', '--out', out, '--limit', '128', '--resume');
  assert.equal(other.status, 1);
  assert.match(other.stderr,
    /was trained on fashion-mnist \(256 images, sha256 [0-9a-f]{12}…\), not on this data: fashion-mnist \(128/);
  const lr = ctfgen('eval', 'classifier', 'train', '--out', out, '--limit', '256', '--resume', '--lr', '0.1');
  assert.equal(lr.status, 2);
  assert.match(lr.stderr, /--resume: the run was started with lr = 0.003, the flag asks for 0.1; drop the flag/);
  const preset = ctfgen('eval', 'classifier', 'train', '--out', out, '--limit', '256', '--resume', '--preset', 'S');
  assert.equal(preset.status, 2);
  assert.match(preset.stderr,
    /--resume: .*classifier\.train-state\.safetensors was started with preset tiny, --preset asks/);
  const again = ctfgen('eval', 'classifier', 'train', '--out', out, '--preset', 'tiny', '--limit', '256');
  assert.equal(again.status, 1, 'a finished classifier is not trained over without --resume or --force');
  assert.match(again.stderr, /--out .*classifier\.safetensors exists; pass --resume to continue its run, or --force/);
});
