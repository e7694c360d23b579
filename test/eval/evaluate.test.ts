// Evaluation plumbing: equal classes, scoring invariants (a set against itself), the real-data row, the
// .npz layout, and that sampling for evaluation does not depend on the chunk size.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeRandomRun } from '../../src/bench/sample-bench.js';
import { Rng } from '../../src/engine/rng.js';
import { Classifier, classifierConfig } from '../../src/eval/classifier.js';
import {
  gridSelection, realDataRow, realReference, reconstructSplit, sampleForEval, scoreImages, toNhwc, uniformClasses,
} from '../../src/eval/evaluate.js';
import { pixelFeatures, type ImageFeatures } from '../../src/eval/features.js';
import { loadSampler, resolveSamplerPaths, type SamplerPieces } from '../../src/sample/run-dir.js';
import { assertClose, TINY_RUN } from '../helpers.js';

/** n rows of random features and softmax-like probabilities. */
function randomFeatures(n: number, dim: number, classes: number, seed: number): ImageFeatures {
  const rng = new Rng(seed),
    features = rng.fillNormal(new Float32Array(n * dim)),
    probs = new Float32Array(n * classes);
  for (let i = 0; i < n; i++) {
    const row = probs.subarray(i * classes, (i + 1) * classes);
    rng.fillUniform(row);
    const s = row.reduce((a, b) => a + b, 0);
    for (let c = 0; c < classes; c++) row[c] = row[c]! / s;
  }
  return { n, dim, classes, features, probs };
}

test('uniformClasses: class-major, equal counts, refuses n that does not split', () => {
  const u = uniformClasses(6, 3);
  assert.deepEqual([...u.classes], [0, 0, 1, 1, 2, 2]);
  assert.deepEqual([...u.imageIndices], [0, 1, 0, 1, 0, 1]);
  assert.equal(u.perClass, 2);
  assert.throws(() => uniformClasses(7, 3), /7 images cannot be split equally over 3 classes; pass a multiple of 3/);
  assert.deepEqual(gridSelection({ classes: u.classes, perClass: 2 }, 1), [0, 2, 4]);
  assert.deepEqual(gridSelection({ classes: u.classes, perClass: 2 }, 5), [0, 1, 2, 3, 4, 5]);
});

test('a set scored against itself: FID ≈ 0, precision = recall = 1; a shifted set is far', () => {
  const a = randomFeatures(200, 8, 4, 1);
  const m = scoreImages(a, null, realReference(a));
  assert.ok(Math.abs(m.fid) < 1e-6, `fid ${m.fid}`);
  assert.deepEqual([m.precision, m.recall, m.classAccuracy, m.images], [1, 1, null, 200]);
  const far: ImageFeatures = { ...a, features: a.features.map((v) => v + 10) };
  const f = scoreImages(far, null, realReference(a));
  assert.ok(Math.abs(f.fid - 8 * 100) < 1e-3, `fid of a shift by 10 in 8 dims is 800, got ${f.fid}`);
  assert.deepEqual([f.precision, f.recall], [0, 0]);
  assert.throws(
    () => scoreImages(randomFeatures(10, 4, 4, 2), null, realReference(a)),
    /features of dim 4 against a reference of dim 8/,
  );
});

test('the real-data row: FID against all of train, the manifold a seeded subset of train as large as test', () => {
  const train = randomFeatures(300, 6, 3, 3), test = randomFeatures(100, 6, 3, 4);
  const labels = Int32Array.from({ length: 100 }, (_, i) => i % 3);
  const r = realDataRow(test, labels, train, { seed: 5 });
  assert.equal(r.manifoldImages, 100);
  assert.equal(r.fid, scoreImages(test, labels, realReference(train)).fid);
  assert.deepEqual(realDataRow(test, labels, train, { seed: 5 }), r, 'seeded');
  assert.ok(r.classAccuracy! >= 0 && r.classAccuracy! <= 1);
  const itself = realDataRow(train, Int32Array.from({ length: 300 }, (_, i) => i % 3), train);
  assert.deepEqual([itself.precision, itself.recall, itself.manifoldImages], [1, 1, 300]);
});

test('toNhwc: channels last, the border cut', () => {
  // 1 image, 2 channels, 3×3: value = 100·c + 10·y + x
  const px = Uint8Array.from(
    { length: 18 },
    (_, i) => 100 * Math.floor(i / 9) + 10 * Math.floor((i % 9) / 3) + (i % 3),
  );
  const full = toNhwc(px, [1, 2, 3, 3]);
  assert.deepEqual(full.shape, [1, 3, 3, 2]);
  assert.deepEqual([...full.data.subarray(0, 6)], [0, 100, 1, 101, 2, 102]);
  const cut = toNhwc(px, [1, 2, 3, 3], 1);
  assert.deepEqual([cut.shape, [...cut.data]], [[1, 1, 1, 2], [11, 111]]);
  assert.throws(() => toNhwc(px, [1, 2, 3, 3], 2), /cannot cut 2 pixels from 3×3 images/);
});

let dir = '';
let pieces: SamplerPieces;
const classifier = new Classifier(
  classifierConfig('tiny', { inChannels: 1, imageSize: 32, numClasses: 10 }),
  new Rng(0),
);
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ctfgen-eval-'));
  await writeRandomRun(dir, TINY_RUN);
  pieces = await loadSampler(['ctf', 'baseline'], resolveSamplerPaths(['ctf', 'baseline'], dir, {}).paths);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('sampleForEval: the chunk size changes no image; features are those of the u8 pixels; timing adds up', () => {
  const o = { method: 'ctf' as const, n: 20, seed: 3, cfgScale: 2, temperature: 1, stage2: { clusterMask: true } };
  const done: number[] = [];
  const a = sampleForEval(pieces, classifier, { ...o, batchSize: 7 }, (d) => done.push(d));
  const b = sampleForEval(pieces, classifier, { ...o, batchSize: 20 });
  assert.deepEqual(a.pixels, b.pixels);
  assert.deepEqual([...a.classes], [...uniformClasses(20, 10).classes]);
  assert.deepEqual(a.shape, [20, 1, 32, 32]);
  assert.equal(a.insideCluster, 1);
  assert.equal(done.at(-1), 20);
  assert.ok(done.every((d, i) => i === 0 || d >= done[i - 1]!), 'progress never goes back');
  const f = pixelFeatures(classifier, a.pixels, a.shape);  // other batches: GEMM blocking may round differently
  assertClose(a.features.features, f.features, { atol: 1e-5, rtol: 1e-5 });
  const s = a.seconds;
  assert.ok(Math.abs(s.total - (s.stage1 + s.stage2 + s.decode)) < 1e-9 && a.imagesPerSec === 20 / s.total);
  const base = sampleForEval(pieces, classifier, { ...o, method: 'baseline', batchSize: 8 });
  assert.equal(base.insideCluster, null);
  assert.throws(
    () => sampleForEval(pieces, classifier, { ...o, n: 15, batchSize: 8 }),
    /15 images cannot be split equally over 10 classes/,
  );
  const wrong = new Classifier(classifierConfig('tiny', { inChannels: 1, imageSize: 28, numClasses: 10 }));
  assert.throws(
    () => sampleForEval(pieces, wrong, { ...o, batchSize: 8 }),
    /the tokenizer decodes 1×32×32 images, the classifier takes 1×28×28/,
  );
});

test('reconstructSplit: u8 reconstructions of the first images, any batch size', () => {
  const ds = {
    name: 'noise',
    split: 'test' as const,
    count: 5,
    channels: 1,
    height: 32,
    width: 32,
    numClasses: 10,
    classNames: [],
    images: Uint8Array.from({ length: 5 * 1024 }, (_, i) => (i * 37) % 256),
    labels: new Int32Array(5),
    flipPreservesClass: true,
    preprocessing: { pad: 0, padValue: 0, resize: null },
  };
  const r = reconstructSplit(pieces.tokenizer.model, ds, { limit: 4, batchSize: 3 });
  assert.equal(r.length, 4 * 1024);
  assert.deepEqual(r, reconstructSplit(pieces.tokenizer.model, ds, { limit: 4, batchSize: 4 }));
});

test('Inception Score of class-major samples: confident balanced predictions ' +
  'score the class count, whatever the order', () => {
  const n = 1000,
    classes = 10,
    dim = 4;
  const probs = new Float32Array(n * classes);
  for (let i = 0; i < n; i++) probs[i * classes + Math.floor(i / (n / classes))] = 1; // class-major, like ctfgen eval
  const features: ImageFeatures = { n, dim, classes, features: randomFeatures(n, dim, classes, 3).features, probs };
  const m = scoreImages(features, null, realReference(features));
  assert.ok(
    m.isMean > 9.3 && m.isMean <= 10,
    `IS of perfectly confident balanced class-major samples ${m.isMean} (unshuffled splits give 1)`,
  );
});
