// The stage-2 ceiling rows: what each row keeps of the tokens it starts from (the coarse labels always, with the
// cluster mask), which rows the pieces allow, and seeded rows.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeRandomRun } from '../../src/bench/sample-bench.js';
import { TINY_RUN } from '../helpers.js';
import { Rng } from '../../src/engine/rng.js';
import {
  CEILING_ROWS,
  clusterSwap,
  stage2Ceiling,
  toCoarse,
  type CeilingPieces,
  type CeilingRow,
} from '../../src/eval/ceiling.js';
import { Classifier, classifierConfig } from '../../src/eval/classifier.js';
import { realReference } from '../../src/eval/evaluate.js';
import { pixelFeatures } from '../../src/eval/features.js';
import { loadSampler, resolveSamplerPaths, type SamplerPieces } from '../../src/sample/run-dir.js';
import { randomCoarseMap } from '../ctf/models.js';

test('clusterSwap draws inside each token\'s cluster, singletons stay, every member is reachable', () => {
  const map = randomCoarseMap(6, 40, 3);
  const fine = Int32Array.from({ length: 4000 }, (_, i) => i % 40);
  const swapped = clusterSwap(fine, map, new Rng(1));
  assert.deepEqual(toCoarse(swapped, map), toCoarse(fine, map));
  assert.deepEqual(clusterSwap(fine, map, new Rng(1)), swapped, 'seeded');
  assert.equal(new Set(swapped).size, 40, 'every codeword drawn somewhere');
  const single = {
    fineToCoarse: Int32Array.from([0, 1, 2]),
    members: [Int32Array.of(0), Int32Array.of(1), Int32Array.of(2)],
  };
  assert.deepEqual(clusterSwap(Int32Array.of(2, 0, 1), single, new Rng(0)), Int32Array.of(2, 0, 1));
});

let dir = '';
let pieces: SamplerPieces;
const classifier = new Classifier(
  classifierConfig('tiny', { inChannels: 1, imageSize: 32, numClasses: 10 }),
  new Rng(0),
);
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ctfgen-ceiling-'));
  await writeRandomRun(dir, TINY_RUN);
  pieces = await loadSampler(['ctf', 'baseline'], resolveSamplerPaths(['ctf', 'baseline'], dir, {}).paths);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('stage2Ceiling: rows in order, coarse labels kept by every stage-2 row, the recon row is the test tokens', () => {
  const test = {
    name: 'noise',
    split: 'test' as const,
    count: 30,
    channels: 1,
    height: 32,
    width: 32,
    numClasses: 10,
    classNames: [],
    images: Uint8Array.from({ length: 30 * 1024 }, (_, i) => (i * 37 + (i >> 10) * 11) % 256),
    labels: Int32Array.from({ length: 30 }, (_, i) => i % 10),
    flipPreservesClass: true,
    preprocessing: { pad: 0, padValue: 0, resize: null },
  };
  const real = realReference(pixelFeatures(classifier, test.images, [30, 1, 32, 32]));
  const p: CeilingPieces = {
    tokenizer: pieces.tokenizer.model, map: pieces.map!, aux: pieces.aux!.model, classifier, test, real,
  };
  const o = { n: 20, seed: 4, batchSize: 7, stage1: { cfgScale: 2, temperature: 1 }, t2: 1, limit: 20 };
  const seen: CeilingRow[] = [];
  const { rows: short, nll: shortNll } = stage2Ceiling(p, o, (r) => seen.push(r));
  assert.deepEqual(short.map((r) => r.name), ['recon', 'cluster-swap', 'aux-true-coarse', 'aux-true-coarse-greedy']);
  assert.equal(seen.length, 4);
  assert.equal(short[0]!.tokensKept, 1);
  assert.ok(short.every((r) => r.images === 'test' && r.metrics.images === 20));

  const { rows: full, nll } = stage2Ceiling(
    { ...p, baseline: pieces.baseline!.model, stage1: pieces.stage1!.model },
    o,
  );
  assert.deepEqual(full.map((r) => r.name), [...CEILING_ROWS]);
  assert.deepEqual(
    full.slice(0, 4).map((r) => r.metrics),
    short.map((r) => r.metrics),
    'seeded, and the optional rows change none',
  );
  assert.deepEqual(
    full.slice(4).map((r) => [r.images, r.metrics.images]),
    [
      ['samples', 20],
      ['samples', 20],
      ['samples', 20],
    ],
  );
  const { rows: again } = stage2Ceiling(
    { ...p, baseline: pieces.baseline!.model, stage1: pieces.stage1!.model },
    { ...o, batchSize: 20 },
  );
  assert.deepEqual(again.map((r) => r.metrics.fid), full.map((r) => r.metrics.fid), 'the batch size changes no row');
  // Every row that starts from tokens keeps their coarse labels: the swap by construction, stage 2 by the mask.
  assert.deepEqual(full.map((r) => r.coarseKept), [1, 1, 1, 1, null, 1, null]);
  assert.ok(full[1]!.tokensKept! < 1 && full[5]!.tokensKept! < 1, 'the swap and the re-sampling change tokens');
  // The likelihood split: parts add up, and the aux-only run has no baseline or stage-1 parts.
  assert.deepEqual(Object.keys(shortNll!).sort(), ['aux', 'sequences']);
  const b = nll!.baseline!;
  assert.ok(Math.abs(b.total - b.coarse - b.within) < 1e-9 && b.coarse > 0 && b.within > 0);
  assert.ok(Math.abs(nll!.ctf!.total - nll!.stage1!.coarse - nll!.aux!.within) < 1e-12);
  assert.ok(nll!.aux!.outside >= 0 && nll!.sequences === 20);
});
