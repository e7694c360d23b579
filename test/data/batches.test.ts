import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CtfError } from '../../src/errors.js';
import { EpochBatches } from '../../src/data/batches.js';
import { toModelInput } from '../../src/data/model-input.js';

test('an epoch visits every image once; dropLast keeps batches full', () => {
  const all = new EpochBatches({ count: 103, batchSize: 10, seed: 1, dropLast: false });
  assert.equal(all.batchesPerEpoch, 11);
  const seen: number[] = [];
  for (let i = 0; i < 11; i++) {
    const b = all.next();
    assert.deepEqual([b.epoch, b.index, b.step], [0, i, i]);
    assert.equal(b.indices.length, i < 10 ? 10 : 3);
    seen.push(...b.indices);
  }
  assert.deepEqual(seen.sort((a, b) => a - b), [...Array(103).keys()]);
  assert.equal(all.next().epoch, 1);
  const full = new EpochBatches({ count: 103, batchSize: 10, seed: 1 });
  assert.equal(full.batchesPerEpoch, 10);
  for (let i = 0; i < 25; i++) assert.equal(full.next().indices.length, 10);
  const ordered = new EpochBatches({ count: 5, batchSize: 2, seed: 1, shuffle: false, dropLast: false });
  assert.deepEqual([...ordered.next().indices, ...ordered.next().indices, ...ordered.next().indices], [0, 1, 2, 3, 4]);
});

test('batch composition depends only on (seed, epoch)', () => {
  const a = new EpochBatches({ count: 1000, batchSize: 32, seed: 7 });
  const b = new EpochBatches({ count: 1000, batchSize: 32, seed: 7 });
  b.epochOrder(5);  // touching other epochs changes nothing
  assert.deepEqual([...a.batchAt(3, 4).indices], [...b.batchAt(3, 4).indices]);
  assert.deepEqual([...a.epochOrder(2)], [...new EpochBatches({ count: 1000, batchSize: 32, seed: 7 }).epochOrder(2)]);
  assert.notDeepEqual([...a.epochOrder(0)], [...a.epochOrder(1)]);
  assert.notDeepEqual(
    [...a.epochOrder(0)],
    [...new EpochBatches({ count: 1000, batchSize: 32, seed: 8 }).epochOrder(0)],
  );
  assert.equal(a.batchAt(2, 3).rng.nextU32(), b.batchAt(2, 3).rng.nextU32());
  assert.notEqual(a.batchAt(2, 3).rng.nextU32(), a.batchAt(2, 4).rng.nextU32());
});

test('resume: a saved position continues with exactly the same batches and flips', () => {
  const images = Uint8Array.from({ length: 50 * 2 * 3 }, (_, i) => (i * 37) & 255);
  const ds = {
    images,
    labels: Int32Array.from({ length: 50 }, (_, i) => i % 3),
    count: 50,
    channels: 1,
    height: 2,
    width: 3,
  };
  const cfg = { count: 50, batchSize: 8, seed: 42 };
  const run = (it: EpochBatches, n: number): string[] => Array.from({ length: n }, () => {
    const b = it.next();
    const m = toModelInput(ds, b.indices, { flip: 'random', rng: b.rng });
    return `${b.epoch}/${b.index}: ${[...b.indices].join(',')} flips ${[...m.flipped].join('')} x0 ${m.x[0]}`;
  });
  const straight = run(new EpochBatches(cfg), 30);          // 6 batches per epoch: crosses 5 epoch boundaries
  const first = new EpochBatches(cfg);
  const head = run(first, 13);
  const saved = JSON.parse(JSON.stringify(first.getState()));
  assert.deepEqual(saved, { ...cfg, shuffle: true, dropLast: true, epoch: 2, index: 1 });
  const resumed = new EpochBatches(cfg);
  resumed.setState(saved);
  assert.deepEqual([...head, ...run(resumed, 17)], straight);
  assert.throws(
    () => new EpochBatches({ ...cfg, batchSize: 16 }).setState(saved),
    (e: unknown) => e instanceof CtfError && /batchSize = 8, this run has 16/.test(e.message),
  );
  assert.throws(() => resumed.setState({ ...saved, index: 6 }), /outside an epoch of 6 batches/);
  assert.throws(() => new EpochBatches({ count: 5, batchSize: 8, seed: 0 }), /no full batch/);
});

test('model input: u8 → [-1, 1] in (B, C, H, W); flips mirror each row; seeded flips repeat', () => {
  // 2 images, 2 channels, 2×3
  const images = Uint8Array.of(
    0,
    255,
    51,
    1,
    2,
    3,
    10,
    20,
    30,
    40,
    50,
    60,
    /* image 1 */ 255,
    255,
    255,
    0,
    0,
    0,
    1,
    1,
    1,
    2,
    2,
    2,
  );
  const ds = { images, labels: Int32Array.of(4, 9), count: 2, channels: 2, height: 2, width: 3 };
  const m = toModelInput(ds, [1, 0]);
  assert.deepEqual(m.shape, [2, 2, 2, 3]);
  assert.deepEqual([...m.labels], [9, 4]);
  assert.equal(m.x[0], 1);
  assert.equal(m.x[12], -1);
  assert.equal(m.x[13], 1);
  assert.ok(Math.abs(m.x[14]! - (51 / 127.5 - 1)) < 1e-7);
  const f = toModelInput(ds, [0], { flip: 'all' });
  const u = (v: number): number => Math.fround(v / 127.5 - 1);
  assert.deepEqual([...f.x], [51, 255, 0, 3, 2, 1, 30, 20, 10, 60, 50, 40].map(u));
  assert.deepEqual([...f.flipped], [1]);
  assert.throws(() => toModelInput(ds, [0], { flip: 'random' }), /needs an rng/);
  assert.throws(() => toModelInput(ds, [2]), /index 2 is outside the dataset/);
  // Random flips: decided by the rng alone, about half of many images.
  const many = { ...ds, images: new Uint8Array(1000 * 12), labels: new Int32Array(1000), count: 1000 };
  const idx = Array.from({ length: 1000 }, (_, i) => i);
  const it = new EpochBatches({ count: 1000, batchSize: 1000, seed: 3 });
  const r1 = toModelInput(many, idx, { flip: 'random', rng: it.batchAt(0, 0).rng }).flipped;
  const r2 = toModelInput(many, idx, { flip: 'random', rng: it.batchAt(0, 0).rng }).flipped;
  const r3 = toModelInput(many, idx, { flip: 'random', rng: it.batchAt(1, 0).rng }).flipped;
  assert.deepEqual(r1, r2);
  assert.notDeepEqual(r1, r3);
  const n = r1.reduce((a, b) => a + b, 0);
  assert.ok(n > 430 && n < 570, `${n} of 1000 flipped`);
  const out = new Float32Array(5000);
  assert.equal(toModelInput(ds, [0], { out }).x.buffer, out.buffer);
});
