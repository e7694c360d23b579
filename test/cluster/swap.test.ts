import assert from 'node:assert/strict';
import { test } from 'node:test';
import { membersOf, randomAssignment, type CoarseMap } from '../../src/cluster/coarse-map.js';
import { swapDemo, swapWithinClusters, type TokenCodec } from '../../src/cluster/swap.js';
import { Rng } from '../../src/engine/rng.js';
import { Tensor } from '../../src/engine/tensor.js';
import { CtfError } from '../../src/errors.js';

test('swapWithinClusters: another member of the same cluster, uniformly; singletons stay; seeded', () => {
  const fineToCoarse = Int32Array.from([0, 1, 0, 2, 0, 1, 0]);  // cluster 0: {0,2,4,6}, 1: {1,5}, 2: {3}
  const map: Pick<CoarseMap, 'v' | 'fineToCoarse' | 'members'> = {
    v: 7,
    fineToCoarse,
    members: membersOf(fineToCoarse, 3),
  };
  const tokens = Int32Array.from({ length: 6000 }, (_, i) => [2, 5, 3][i % 3]!);
  const out = swapWithinClusters(tokens, map, new Rng(1));
  const counts = new Map<string, number>();
  out.forEach((s, i) => {
    const t = tokens[i]!;
    assert.equal(fineToCoarse[s], fineToCoarse[t], `token ${t} left its cluster for ${s}`);
    if (t === 3) assert.equal(s, 3);
    else assert.notEqual(s, t);
    counts.set(`${t}→${s}`, (counts.get(`${t}→${s}`) ?? 0) + 1);
  });
  assert.equal(counts.get('5→1'), 2000);
  for (const s of [0, 4, 6])
    assert.ok(Math.abs(counts.get(`2→${s}`)! - 2000 / 3) < 100, `2→${s}: ${counts.get(`2→${s}`)}`);
  assert.deepEqual(swapWithinClusters(tokens, map, new Rng(1)), out);
  assert.throws(() => swapWithinClusters(Int32Array.from([7]), map, new Rng(1)), CtfError);
});

/** A toy tokenizer on (B, 1, 4, 4) images: a token per 2×2 patch, the nearest of V grey levels. */
function greyCodec(V: number): TokenCodec {
  const level = (t: number): number => -1 + (2 * t) / (V - 1);
  const decode = (tokens: Tensor): Tensor => {
    const B = tokens.dim(0), out = new Float32Array(B * 16);
    for (let b = 0; b < B; b++) for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++)
      out[b * 16 + y * 4 + x] = level(tokens.i32[b * 4 + (y >> 1) * 2 + (x >> 1)]!);
    return new Tensor(out, [B, 1, 4, 4]);
  };
  return {
    grid: 2,
    decode,
    reconstruct(x) {
      const B = x.dim(0), index = new Int32Array(B * 4);
      for (let b = 0; b < B; b++) for (let p = 0; p < 4; p++) {
        const y0 = (p >> 1) * 2, x0 = (p & 1) * 2;
        let m = 0;
        for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) m += x.f32[b * 16 + (y0 + dy) * 4 + x0 + dx]! / 4;
        index[b * 4 + p] = Math.round(((m + 1) / 2) * (V - 1));
      }
      return { recon: decode(new Tensor(index, [B, 2, 2])), index };
    },
  };
}

function mapOf(fineToCoarse: Int32Array, k: number): CoarseMap {
  return {
    k,
    v: fineToCoarse.length,
    dim: 1,
    fineToCoarse,
    members: membersOf(fineToCoarse, k),
    mode: 'kmeans',
    seed: 0,
    tokenizerHash: 'x',
    inertia: 0,
    centroids: new Float32Array(k),
  };
}

test('swapDemo: rows original | reconstruction | one per map; neighbouring ' +
  'clusters keep the image, random ones do not', () => {
  const V = 64,
    codec = greyCodec(V);
  const near = mapOf(
    Int32Array.from({ length: V }, (_, t) => t >> 2),
    V / 4,
  ); // runs of 4 adjacent levels
  const random = mapOf(randomAssignment(new Array(V / 4).fill(4), new Rng(5)), V / 4);
  const rng = new Rng(2);
  // exactly representable
  const x = codec.decode(
    new Tensor(
      Int32Array.from({ length: 6 * 4 }, () => rng.int(V)),
      [6, 2, 2],
    ),
  );
  const demo = swapDemo(
    codec,
    x,
    [
      { name: 'kmeans', map: near },
      { name: 'random', map: random },
    ],
    new Rng(0),
  );
  assert.deepEqual(demo.shape, [24, 1, 4, 4]);
  assert.deepEqual(
    demo.rows.map((r) => r.name),
    ['original', 'reconstruction', 'kmeans', 'random'],
  );
  assert.deepEqual(demo.images.subarray(0, 96), x.f32);
  assert.deepEqual(
    demo.rows.map((r) => r.tokensChanged),
    [0, 0, 1, 1],
  );
  const [, rec, km, rnd] = demo.rows as [
    unknown,
    { psnrVsOriginal: number },
    { psnrVsRecon: number },
    { psnrVsRecon: number },
  ];
  assert.ok(rec.psnrVsOriginal > 30, `reconstruction ${rec.psnrVsOriginal} dB`);
  assert.ok(km.psnrVsRecon > rnd.psnrVsRecon + 10, `k-means swap ${km.psnrVsRecon} dB vs random ${rnd.psnrVsRecon} dB`);
  const again = swapDemo(
    codec,
    x,
    [
      { name: 'kmeans', map: near },
      { name: 'random', map: random },
    ],
    new Rng(0),
  );
  assert.deepEqual(again.images, demo.images);
});
