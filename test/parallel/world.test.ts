// The single-process side of the MPI layer, no mpirun needed: which world the environment describes, how images
// are split over ranks, the one-process communicator (no MPI loaded), and sharded sampling / evaluation with
// ranks played one after another in this process (fake-world.ts) — rank 0 must get one process's result.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeRandomRun } from '../../src/bench/sample-bench.js';
import { Rng } from '../../src/engine/rng.js';
import { Classifier, classifierConfig } from '../../src/eval/classifier.js';
import { sampleForEval } from '../../src/eval/evaluate.js';
import {
  LocalCommunicator, communicator, gatherConcat, isMultiRank, launchedWorld, maxOverRanks, rankTag, shardOf,
} from '../../src/parallel/index.js';
import { sampleImages, sampleImagesSharded } from '../../src/sample/pipeline.js';
import { loadSampler, resolveSamplerPaths, type SamplerPieces } from '../../src/sample/run-dir.js';
import { playRanks } from './fake-world.js';
import { TINY_RUN } from './mpirun.js';

test('launchedWorld reads Open MPI, PMIx and PMI variables; none means one plain process', () => {
  assert.equal(launchedWorld({}), null);
  assert.deepEqual(launchedWorld({ OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '4', PMIX_RANK: '1' }),
    { launcher: 'openmpi', rank: 1, size: 4 });
  assert.deepEqual(launchedWorld({ PMIX_RANK: '2' }), { launcher: 'pmix', rank: 2, size: null });
  assert.deepEqual(launchedWorld({ PMI_RANK: '0', PMI_SIZE: '3' }), { launcher: 'pmi', rank: 0, size: 3 });
  assert.equal(launchedWorld({ OMPI_COMM_WORLD_RANK: 'x', OMPI_COMM_WORLD_SIZE: '2' }), null);
  assert.equal(isMultiRank({ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '1' }), false);
  assert.equal(isMultiRank({ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2' }), true);
  assert.equal(rankTag({ OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2' }), ' (rank 1 of 2)');
  assert.equal(rankTag({}), '');
});

test('shardOf: whole chunks, contiguous, in rank order, covering every item once, shares within one chunk', () => {
  for (const [n, chunk] of [[0, 4], [1, 4], [10, 4], [30, 4], [64, 64], [157, 8], [1000, 7]] as const)
    for (const size of [1, 2, 3, 5, 8]) {
      const shards = Array.from({ length: size }, (_, r) => shardOf(n, chunk, r, size));
      assert.equal(shards[0]!.first, 0);
      assert.equal(shards.at(-1)!.end, n);
      shards.forEach((s, r) => {
        if (r > 0) assert.equal(s.first, shards[r - 1]!.end, `n ${n} chunk ${chunk} size ${size} rank ${r}`);
        assert.ok((s.first % chunk === 0 || s.first === n) && (s.end % chunk === 0 || s.end === n) && s.end >= s.first);
      });
      const chunks = shards.map((s) => Math.ceil((s.end - s.first) / chunk));
      assert.ok(Math.max(...chunks) - Math.min(...chunks) <= 1, `n ${n} chunk ${chunk} size ${size}: ${chunks}`);
      assert.ok(n === 0 || chunks[0]! >= 1, `n ${n} chunk ${chunk} size ${size}: rank 0 has work`);
    }
  assert.throws(() => shardOf(10, 0, 0, 1), /chunks of ≥ 1/);
  assert.throws(() => shardOf(10, 4, 2, 2), /rank 2 outside \[0, 2\)/);
});

test('one process: communicator() is the local one, MPI is not loaded, every collective is the identity', () => {
  assert.equal(launchedWorld(), null, 'run the test suite outside mpirun');
  const comm = communicator();
  assert.equal(comm, communicator());
  assert.deepEqual([comm.kind, comm.rank, comm.size], ['local', 0, 1]);
  const v = Float32Array.of(1.5, -2, 3);
  assert.equal(comm.allreduceSum(v), v);
  assert.equal(comm.allreduceMean(v), v);
  assert.deepEqual([...v], [1.5, -2, 3]);
  assert.equal(comm.broadcast(v), v);
  const b = Uint8Array.of(1, 2);
  assert.deepEqual(comm.gatherBytes(b), [b]);
  assert.equal(gatherConcat(comm, v), v);
  assert.deepEqual([...maxOverRanks(comm, Float64Array.of(2, -1))!], [2, -1]);
  assert.throws(() => comm.broadcast(v, 1), /root 1 outside the ranks \[0, 1\)/);
  const libs = (process.report.getReport() as unknown as { sharedObjects: string[] }).sharedObjects;
  assert.ok(!libs.some((l) => /libmpi|ctfgen_mpi/.test(l)), `MPI loaded: ${libs.filter((l) => /mpi/.test(l))}`);
  assert.ok(new LocalCommunicator() instanceof LocalCommunicator);
});

let dir = '', pieces: SamplerPieces;
const classifier = new Classifier(classifierConfig('tiny', { inChannels: 1, imageSize: 32, numClasses: 10 }),
  new Rng(0));
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ctfgen-parallel-'));
  await writeRandomRun(dir, TINY_RUN);
  pieces = await loadSampler(['ctf', 'baseline'], resolveSamplerPaths(['ctf', 'baseline'], dir, {}).paths);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('sampleImagesSharded over 1–5 ranks (5: one with no chunk): rank 0 has one process\'s tokens and images', () => {
  const classes = Int32Array.from([0, 3, 3, 1, 9, 9, 9, 2, 5, 0, 4]);
  for (const method of ['ctf', 'baseline'] as const) {
    const request = { method, classes, seed: 5, batchSize: 3, cfgScale: 2, stage2: { clusterMask: true } };
    const one = sampleImages(pieces, request);
    for (const size of [1, 2, 3, 5]) {  // 11 images in 4 chunks of 3: with 5 ranks one gets none
      const results = playRanks(size, (comm) => sampleImagesSharded(pieces, request, comm));
      const root = results[0]!;
      assert.ok(root && results.slice(1).every((r) => r === null), `${method} size ${size}: rank 0 alone gets it`);
      assert.deepEqual(root.fine, one.fine, `${method} size ${size}: fine`);
      assert.deepEqual(root.coarse, one.coarse, `${method} size ${size}: coarse`);
      assert.deepEqual(root.images, one.images, `${method} size ${size}: images`);
      assert.deepEqual(root.shape, one.shape);
    }
  }
});

test('sampleForEval over 1–5 ranks: rank 0 holds one process\'s pixels, features, scores', () => {
  const o = {
    method: 'ctf' as const, n: 20, seed: 3, batchSize: 6, cfgScale: 2, temperature: 1, stage2: { clusterMask: true },
  };
  const one = sampleForEval(pieces, classifier, o);
  for (const size of [1, 2, 3, 5]) {
    const done: number[] = [];
    const results = playRanks(size,
      (comm) => sampleForEval(pieces, classifier, o, (d) => { if (comm.rank === 0) done.push(d); }, comm));
    const root = results[0]!;
    assert.ok(root && results.slice(1).every((r) => r === null), `size ${size}: only rank 0 gets the result`);
    assert.deepEqual(root.pixels, one.pixels, `size ${size}: pixels`);
    assert.deepEqual(root.features, one.features, `size ${size}: features and class probabilities`);
    assert.deepEqual([root.classes, root.perClass, root.insideCluster], [one.classes, one.perClass, one.insideCluster]);
    assert.equal(done.at(-1), 20, `size ${size}: rank 0's progress ends at the job's total`);
    assert.ok(root.seconds.total > 0 && root.imagesPerSec === 20 / root.seconds.total);
  }
});
