import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCoarseMap } from '../../src/cluster/coarse-map.js';
import { Rng } from '../../src/engine/rng.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';
import { saveTokenizer, tokenizerHash } from '../../src/tokenizer/checkpoint.js';
import { tokenizerConfig } from '../../src/tokenizer/config.js';
import { VqTokenizer } from '../../src/tokenizer/model.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ctfgen = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
/** A real (untrained) tiny tokenizer checkpoint with a V × D codebook; returns its hash. */
async function tinyTokenizer(path: string, V: number, D: number): Promise<string> {
  const model = new VqTokenizer(
    tokenizerConfig('tiny', { inChannels: 1, imageSize: 8 }, { codebookSize: V, codeDim: D }),
    new Rng(3),
  );
  await saveTokenizer(path, model);
  return tokenizerHash(model);
}

test('ctfgen cluster: k-means and random cluster files, JSON summary, histogram on stderr', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctf-cli-cluster-'));
  try {
    const tok = join(dir, 'tokenizer.safetensors'),
      out = join(dir, 'clusters.safetensors'),
      outRandom = join(dir, 'clusters-random.safetensors');
    const HASH = await tinyTokenizer(tok, 256, 8);
    const r = ctfgen(
      'cluster',
      '--tokenizer',
      tok,
      '--k',
      '16',
      '--restarts',
      '2',
      '--seed',
      '3',
      '--out',
      out,
      '--json',
    );
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.deepEqual([s.k, s.v, s.dim, s.mode, s.seed, s.tokenizerHash], [16, 256, 8, 'kmeans', 3, HASH]);
    assert.equal(s.restarts.length, 2);
    assert.equal(s.inertia, Math.min(...s.restarts.map((x: { inertia: number }) => x.inertia)));
    assert.equal(s.sizes.bins.reduce((p: number, b: { count: number }) => p + b.count, 0), 16);
    assert.match(r.stderr, /restart 2\/2: inertia [\d.]+ after \d+ iterations \((converged|maxIter|rounding)\)/);
    assert.match(r.stderr, /cluster sizes \(kmeans\): min \d+, median [\d.]+, max \d+/);
    assert.match(r.stderr, /█/);
    const map = await loadCoarseMap(out, { tokenizerHash: HASH, k: 16, v: 256 });
    assert.equal(map.inertia, s.inertia);

    const rr = ctfgen(
      'cluster',
      '--tokenizer',
      tok,
      '--k',
      '16',
      '--restarts',
      '2',
      '--seed',
      '3',
      '--mode',
      'random',
      '--out',
      outRandom,
    );
    assert.equal(rr.status, 0, rr.stderr);
    assert.equal(rr.stdout, '');
    const random = await loadCoarseMap(outRandom);
    assert.equal(random.mode, 'random');
    assert.deepEqual(random.members.map((m) => m.length), map.members.map((m) => m.length));
    assert.match(rr.stderr, /random clusters with the same sizes: inertia/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ctfgen cluster: bad usage exits 2, a wrong file exits 1 with the reason', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctf-cli-cluster-'));
  try {
    const tok = join(dir, 'tokenizer.safetensors'), out = join(dir, 'c.safetensors');
    await tinyTokenizer(tok, 32, 4);
    const noOut = ctfgen('cluster', '--tokenizer', tok, '--k', '4');
    assert.equal(noOut.status, 2);
    assert.match(noOut.stderr, /--out is required/);
    const mode = ctfgen('cluster', '--tokenizer', tok, '--k', '4', '--out', out, '--mode', 'spectral');
    assert.equal(mode.status, 2);
    assert.match(mode.stderr, /--mode: expected kmeans or random, got "spectral"/);
    const tooMany = ctfgen('cluster', '--tokenizer', tok, '--k', '33', '--out', out);
    assert.equal(tooMany.status, 2);
    assert.match(tooMany.stderr, /--k: 33 clusters for a codebook of 32 codewords/);
    const notTok = join(dir, 'other.safetensors');
    writeFileSync(notTok, encodeSafetensors({ w: { shape: [2], data: new Float32Array(2) } }, { kind: 'ctfgen.gpt' }));
    const wrong = ctfgen('cluster', '--tokenizer', notTok, '--k', '4', '--out', out);
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /other\.safetensors: not a tokenizer checkpoint \(metadata kind "ctfgen.gpt"/);
    const file = decodeSafetensors(readFileSync(tok), tok), tampered = join(dir, 'tampered.safetensors');
    writeFileSync(tampered, encodeSafetensors(file.tensors, { ...file.metadata, hash: 'f'.repeat(64) }));
    const bad = ctfgen('cluster', '--tokenizer', tampered, '--k', '4', '--out', out);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /tampered\.safetensors: the weights hash to .* the metadata says ffff/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ctfgen cluster without --k takes K = V/32, the paper\'s mean cluster of 32 codewords', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctf-cli-cluster-k-'));
  try {
    const tok = join(dir, 'tokenizer.safetensors'),
      out = join(dir, 'clusters.safetensors');
    await tinyTokenizer(tok, 256, 8);
    const r = ctfgen('cluster', '--tokenizer', tok, '--restarts', '1', '--out', out, '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).k, 8);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
