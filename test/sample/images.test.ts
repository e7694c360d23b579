// Decoding sampled tokens and the stage-1 preview: cluster representatives against brute force, the preview's
// known / grey cells, and sampleImages on loaded pieces (decoded images = the tokenizer's decode of the tokens;
// the batch size never changes a seeded image).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeRandomRun } from '../../src/bench/sample-bench.js';
import { TINY_RUN } from '../helpers.js';
import { Rng } from '../../src/engine/rng.js';
import { Tensor } from '../../src/engine/tensor.js';
import { clusterRepresentatives, decodeTokens, previewSteps, progressivePreview } from '../../src/sample/images.js';
import { sampleImages } from '../../src/sample/pipeline.js';
import { loadSampler, type SamplerPieces } from '../../src/sample/run-dir.js';
import { randomCoarseMap } from '../ctf/models.js';

let dir = '';
let pieces: SamplerPieces;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ctfgen-images-'));
  const paths = await writeRandomRun(dir, TINY_RUN);
  pieces = await loadSampler(['ctf', 'baseline'], paths);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('each cluster\'s representative is the member nearest to its centroid', () => {
  const K = 6, V = 40, D = 5;
  const part = randomCoarseMap(K, V, 3);
  const unit = new Rng(4).fillNormal(new Float32Array(V * D));
  for (let i = 0; i < V; i++) {
    const n = Math.hypot(...unit.subarray(i * D, (i + 1) * D));
    for (let d = 0; d < D; d++) unit[i * D + d]! /= n;
  }
  const centroids = new Float32Array(K * D);
  part.members.forEach((m, c) =>
    m.forEach((f) => {
      for (let d = 0; d < D; d++) centroids[c * D + d]! += unit[f * D + d]! / m.length;
    }),
  );
  const reps = clusterRepresentatives({ ...part, dim: D, centroids }, unit);
  part.members.forEach((m, c) => {
    const dist = (f: number): number => {
      let s = 0;
      for (let d = 0; d < D; d++) s += (unit[f * D + d]! - centroids[c * D + d]!) ** 2;
      return s;
    };
    const best = [...m].sort((a, b) => dist(a) - dist(b))[0]!;
    assert.equal(reps[c], best, `cluster ${c}`);
  });
});

test('preview columns are quarters of the sequence', () => {
  assert.deepEqual(previewSteps(64), [16, 32, 48, 64]);
  assert.deepEqual(previewSteps(16, 2), [8, 16]);
});

test('the preview decodes the known labels as representatives, greys the rest, and ends with the final image', () => {
  const tok = pieces.tokenizer.model, map = pieces.map!, T = 64, px = 32 * 32;
  const reps = clusterRepresentatives(map, tok.quantizer.normalizedCodebook().f32);
  const coarse = Int32Array.from({ length: 2 * T }, (_, i) => (i * 7) % map.k);
  const finals = new Rng(1).fillUniform(new Float32Array(2 * px), -1, 1);
  const { images, cols } = progressivePreview(tok, reps, coarse, finals, { steps: [16, 64] });
  assert.equal(cols, 3);
  assert.equal(images.length, 2 * 3 * px);
  // Image 1, column 0: the first two token rows (8 pixel rows) are decoded, the rest is grey (0).
  const cell = images.subarray((1 * 3 + 0) * px, (1 * 3 + 1) * px);
  assert.ok(cell.subarray(8 * 32).every((v) => v === 0));
  assert.ok(cell.subarray(0, 8 * 32).some((v) => v !== 0));
  // Column 1 knows every label: exactly the decode of the representatives.
  const full = decodeTokens(tok, Int32Array.from(coarse.subarray(T, 2 * T), (c) => reps[c]!));
  assert.deepEqual(images.subarray((1 * 3 + 1) * px, (1 * 3 + 2) * px), full);
  assert.deepEqual(images.subarray((1 * 3 + 2) * px, (1 * 3 + 3) * px), finals.subarray(px, 2 * px));
});

test('sampleImages: images are the decode of the tokens, the batch size changes nothing, parts are timed', () => {
  const classes = Int32Array.from([0, 0, 3, 7, 7, 9, 2]);
  const request = { classes, seed: 3, cfgScale: 2, stage2: { clusterMask: true } };
  for (const method of ['ctf', 'baseline'] as const) {
    const a = sampleImages(pieces, { ...request, method, batchSize: 64 });
    const b = sampleImages(pieces, { ...request, method, batchSize: 3 });
    assert.deepEqual(a.fine, b.fine, method);
    assert.deepEqual(a.images, b.images, method);
    assert.deepEqual(a.shape, [7, 1, 32, 32]);
    assert.deepEqual(a.images, pieces.tokenizer.model.decode(new Tensor(a.fine, [7, 8, 8])).f32);
    assert.ok(a.seconds.stage1 > 0 && a.seconds.decode > 0 && (method === 'ctf') === a.seconds.stage2 > 0);
    assert.equal(a.coarse === null, method === 'baseline');
  }
  assert.throws(
    () => sampleImages(pieces, { ...request, method: 'ctf', classes: Int32Array.from([10]) }),
    /class 10 outside \[0, 10\)/,
  );
});
