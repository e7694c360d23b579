import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildCoarseMap, checkCoarseMap, clusterSizeHistogram, decodeCoarseMap, encodeCoarseMap, loadCoarseMap, membersOf,
  saveCoarseMap, type CoarseMap,
} from '../../src/cluster/coarse-map.js';
import { kmeans } from '../../src/cluster/kmeans.js';
import { l2Normalize } from '../../src/engine/ops/vq.js';
import { Rng } from '../../src/engine/rng.js';
import { Tensor } from '../../src/engine/tensor.js';
import { CtfError } from '../../src/errors.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';

const HASH = 'ab'.repeat(32);

function codebook(V: number, D: number, seed: number): Tensor {
  return new Tensor(new Rng(seed).fillNormal(new Float32Array(V * D)), [V, D]);
}

function sizesOf(m: CoarseMap): number[] {
  return m.members.map((l) => l.length);
}

test('coarse map: k-means runs on the l2-normalised codewords', () => {
  const V = 600, D = 8;
  const raw = codebook(V, D, 1);
  const unit = l2Normalize(raw);
  for (let i = 0; i < V; i++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += unit.f32[i * D + d]! ** 2;
    assert.ok(Math.abs(s - 1) < 1e-6);
  }
  // The same directions at wildly different lengths (powers of two, so normalising is exact) give the
  // same map, though plain k-means on those rows would not.
  const rng = new Rng(2), scaled = new Float32Array(raw.f32);
  for (let i = 0; i < V; i++) {
    const s = 2 ** (rng.int(13) - 6);
    for (let d = 0; d < D; d++) scaled[i * D + d]! *= s;
  }
  const a = buildCoarseMap(new Tensor(scaled, [V, D]), { k: 16, seed: 4, restarts: 2, tokenizerHash: HASH }).map;
  const b = buildCoarseMap(raw, { k: 16, seed: 4, restarts: 2, tokenizerHash: HASH }).map;
  assert.deepEqual(a.fineToCoarse, b.fineToCoarse);
  assert.deepEqual(a.centroids, b.centroids);
  const direct = kmeans(unit, { k: 16, seed: 4, restarts: 2 });
  assert.deepEqual(a.fineToCoarse, direct.assignment);
  assert.equal(a.inertia, direct.inertia);
  assert.notDeepEqual(kmeans(new Tensor(scaled, [V, D]), { k: 16, seed: 4, restarts: 2 }).assignment, a.fineToCoarse);
  for (let j = 0; j < 16; j++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += a.centroids[j * D + d]! ** 2;
    assert.ok(s <= 1 + 1e-6, 'means of unit vectors lie inside the unit ball');
  }
  checkCoarseMap(a, 'test');
});

test('coarse map: random mode keeps every cluster size, moves the ids, and is seeded', () => {
  const cb = codebook(512, 8, 5);
  const km = buildCoarseMap(cb, { k: 32, seed: 1, restarts: 1, tokenizerHash: HASH }).map;
  const rnd = buildCoarseMap(cb, { k: 32, seed: 1, restarts: 1, mode: 'random', tokenizerHash: HASH }).map;
  assert.deepEqual(sizesOf(rnd), sizesOf(km));
  assert.equal(rnd.mode, 'random');
  checkCoarseMap(rnd, 'test');
  let same = 0;
  for (let i = 0; i < 512; i++) same += Number(rnd.fineToCoarse[i] === km.fineToCoarse[i]);
  assert.ok(same < 512 / 4, `${same} of 512 ids kept their k-means cluster`);
  assert.ok(rnd.inertia > 2 * km.inertia, `random clusters should be much looser (${rnd.inertia} vs ${km.inertia})`);
  const again = buildCoarseMap(cb, { k: 32, seed: 1, restarts: 1, mode: 'random', tokenizerHash: HASH }).map;
  assert.deepEqual(again.fineToCoarse, rnd.fineToCoarse);
});

test('coarse map: save and load round trip (bytes and file), with expectations', async () => {
  const { map } = buildCoarseMap(codebook(300, 4, 6), { k: 10, seed: 9, restarts: 1, tokenizerHash: HASH });
  const back = decodeCoarseMap(encodeCoarseMap(map, { restarts: 1, maxIter: 100 }), 'mem');
  assert.deepEqual(back.fineToCoarse, map.fineToCoarse);
  assert.deepEqual(back.centroids, map.centroids);
  assert.deepEqual(back.members.map((m) => [...m]), map.members.map((m) => [...m]));
  assert.deepEqual(
    [back.k, back.v, back.dim, back.mode, back.seed, back.tokenizerHash, back.inertia],
    [10, 300, 4, 'kmeans', 9, HASH, map.inertia],
  );
  const dir = mkdtempSync(join(tmpdir(), 'ctf-clusters-'));
  try {
    const path = join(dir, 'clusters.safetensors');
    await saveCoarseMap(path, map);
    const loaded = await loadCoarseMap(path, { tokenizerHash: HASH, k: 10, v: 300 });
    assert.deepEqual(loaded.fineToCoarse, map.fineToCoarse);
    const meta = decodeSafetensors(encodeCoarseMap(map), 'x').metadata;
    assert.equal(meta['kind'], 'ctfgen.clusters');
    assert.equal(JSON.parse(meta['config']!).normalize, 'l2');
    await assert.rejects(
      loadCoarseMap(path, { tokenizerHash: 'cd'.repeat(32) }),
      /clusters .*clusters\.safetensors: made for tokenizer abababab.*re-run `ctfgen cluster`/,
    );
    await assert.rejects(loadCoarseMap(path, { k: 12 }), /has k = 10 clusters, expected 12/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('coarse map: no cluster is empty (k-means re-seeds, random mode copies sizes); the check refuses one', () => {
  // 40 codewords in only 5 directions (at different lengths) into 8 clusters: seeding has to reuse directions, so
  // clusters collide and k-means must re-seed the empty ones.
  const V = 40, D = 3, dirs = codebook(5, D, 9), rows = new Float32Array(V * D);
  for (let i = 0; i < V; i++) for (let d = 0; d < D; d++) rows[i * D + d] = dirs.f32[(i % 5) * D + d]! * (1 + (i % 3));
  for (const mode of ['kmeans', 'random'] as const) {
    const o = { k: 8, seed: 0, restarts: 2, mode, tokenizerHash: HASH };
    const { map, kmeans: km } = buildCoarseMap(new Tensor(rows, [V, D]), o);
    assert.ok(km.runs.some((r) => r.reseeded > 0), 'the codebook forces a re-seed');
    assert.ok(Math.min(...sizesOf(map)) >= 1, `${mode}: sizes ${sizesOf(map).join(' ')}`);
    checkCoarseMap(map, mode);
  }
  // The one check also takes the bare partition the samplers read (no centroids), with the same rule.
  const fineToCoarse = Int32Array.from({ length: 12 }, (_, i) => i % 4);
  checkCoarseMap({ k: 4, v: 12, fineToCoarse, members: membersOf(fineToCoarse, 4) }, 'partition');
  assert.throws(() => checkCoarseMap({ k: 5, v: 12, fineToCoarse, members: membersOf(fineToCoarse, 5) }, 'partition'),
    /partition: field "members": cluster 4 is empty; every cluster needs at least one member/);
});

test('coarse map: every kind of bad file is refused, naming the file and the field', () => {
  const { map } = buildCoarseMap(codebook(40, 3, 7), { k: 4, seed: 0, restarts: 1, tokenizerHash: HASH });
  const good = decodeSafetensors(encodeCoarseMap(map), 'good');
  /** Re-encodes the good file after edit() changed its tensors (name → {dtype, shape, data}) or metadata. */
  const variant = (
    edit: (
      t: Map<string, { dtype: 'I32' | 'F32'; shape: number[]; data: Int32Array | Float32Array }>,
      m: Record<string, string>,
    ) => void,
  ): Uint8Array => {
    const tensors = new Map(
      [...good.tensors].map(([n, t]) => [
        n,
        { dtype: t.dtype as 'I32' | 'F32', shape: [...t.shape], data: t.data.slice() },
      ]),
    );
    const meta = { ...good.metadata };
    edit(tensors, meta);
    return encodeSafetensors(tensors, meta);
  };
  const i32 = (t: { data: Int32Array | Float32Array }): Int32Array => t.data as Int32Array;
  const f2c = i32(good.tensors.get('fineToCoarse')!), offsets = i32(good.tensors.get('memberOffsets')!);
  const first = i32(good.tensors.get('members')!)[0]!;  // lowest id of cluster 0
  const cases: [string, Uint8Array, RegExp][] = [
    [
      'kind',
      variant((_, m) => {
        m['kind'] = 'ctfgen.tokenizer';
      }),
      /not a cluster file \(metadata kind "ctfgen.tokenizer"/,
    ],
    [
      'format',
      variant((_, m) => {
        m['format'] = '2';
      }),
      /format "2" is not supported/,
    ],
    [
      'k',
      variant((_, m) => {
        m['k'] = 'four';
      }),
      /metadata "k" is "four", expected an integer ≥ 1/,
    ],
    [
      'k > v',
      variant((_, m) => {
        m['k'] = '41';
      }),
      /k = 41 clusters for v = 40 codewords/,
    ],
    [
      'mode',
      variant((_, m) => {
        m['mode'] = 'spectral';
      }),
      /metadata "mode" is "spectral"/,
    ],
    [
      'hash',
      variant((_, m) => {
        delete m['tokenizerHash'];
      }),
      /metadata "tokenizerHash" is missing/,
    ],
    [
      'inertia',
      variant((_, m) => {
        m['inertia'] = 'NaN';
      }),
      /metadata "inertia" is "NaN"/,
    ],
    [
      'missing tensor',
      variant((t) => {
        t.delete('centroids');
      }),
      /tensor "centroids" is missing/,
    ],
    [
      'extra tensor',
      variant((t) => {
        t.set('extra', { dtype: 'I32', shape: [1], data: new Int32Array(1) });
      }),
      /unexpected tensor "extra"/,
    ],
    [
      'dtype',
      variant((t) => {
        t.set('fineToCoarse', { dtype: 'F32', shape: [40], data: new Float32Array(40) });
      }),
      /tensor "fineToCoarse" is F32, expected I32/,
    ],
    [
      'shape',
      variant((t) => {
        t.set('centroids', { dtype: 'F32', shape: [4, 2], data: new Float32Array(8) });
      }),
      /tensor "centroids" has shape \[4,2\], expected \[4,3\]/,
    ],
    [
      'range',
      variant((t) => {
        i32(t.get('fineToCoarse')!)[5] = 4;
      }),
      /field "fineToCoarse": fine id 5 maps to cluster 4, outside \[0, 4\)/,
    ],
    [
      'offsets',
      variant((t) => {
        i32(t.get('memberOffsets')!)[4] = 39;
      }),
      /field "memberOffsets" must run from 0 to v = 40/,
    ],
    [
      'empty',
      variant((t) => {
        i32(t.get('memberOffsets')!)[1] = 0;
      }),
      /field "memberOffsets": cluster 0 has 0 members/,
    ],
    [
      'order',
      variant((t) => {
        const m = i32(t.get('members')!);
        [m[0], m[1]] = [m[1]!, m[0]!];
      }),
      /field "members": cluster 0 is not strictly ascending/,
    ],
    [
      'mismatch',
      variant((t) => {
        i32(t.get('fineToCoarse')!)[first] = 1;
      }),
      new RegExp(`field "members": cluster 0 lists fine id ${first}, but fineToCoarse puts it in cluster 1`),
    ],
    [
      'duplicate',
      variant((t) => {
        const m = i32(t.get('members')!);
        m[offsets[2]!] = m[offsets[1]!]!;
      }),
      /field "members": cluster 2 (lists fine id \d+, but fineToCoarse puts it in cluster 1|is not strictly ascending)/,
    ],
    [
      'nonfinite',
      variant((t) => {
        (t.get('centroids')!.data as Float32Array)[4] = Infinity;
      }),
      /field "centroids": value 4 \(cluster 1\) is Infinity/,
    ],
    [
      'outside the ball',
      variant((t) => {
        (t.get('centroids')!.data as Float32Array)[4] = 3e38;
      }),
      /field "centroids": cluster 1 has norm .*, expected at most 1/,
    ],
  ];
  assert.ok(f2c.length === 40);
  for (const [what, bytes, re] of cases)
    assert.throws(() => decodeCoarseMap(bytes, 'bad.safetensors'), (e: Error) => {
      assert.ok(e instanceof CtfError, `${what}: ${e}`);
      assert.match(e.message, /^clusters bad\.safetensors: /, what);
      assert.match(e.message, re, what);
      return true;
    }, what);
});

test('clusterSizeHistogram: min, median, max and bins that count every cluster', () => {
  const members = [3, 1, 4, 1, 5, 9, 2, 6].map((n) => new Int32Array(n));
  const h = clusterSizeHistogram({ members }, 4);
  assert.deepEqual([h.min, h.median, h.max, h.mean], [1, 3.5, 9, 31 / 8]);
  assert.deepEqual(h.bins, [{ lo: 1, hi: 3, count: 4 }, { lo: 4, hi: 6, count: 3 }, { lo: 7, hi: 9, count: 1 }]);
  assert.deepEqual(clusterSizeHistogram({ members: [new Int32Array(7), new Int32Array(7)] }).bins, [
    { lo: 7, hi: 7, count: 2 },
  ]);
});
