// GPT checkpoints: safetensors with LlamaGen names, the config in the metadata; round trip and refusals.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { noGrad } from '../../src/engine/autograd.js';
import { Rng } from '../../src/engine/rng.js';
import {
  decodeSafetensors, encodeSafetensors, loadSafetensorsSync, saveSafetensorsSync, type StTensorInput,
} from '../../src/io/safetensors.js';
import { weightsHash } from '../../src/nn/module.js';
import { throwsCtf } from '../helpers.js';
import { Gpt, gptConfig, type GptConfig } from '../../src/models/gpt.js';
import {
  decodeGptCheckpoint, encodeGptCheckpoint, loadGptCheckpoint, loadGptCheckpointSync, loadGptWeights, saveGptCheckpoint,
} from '../../src/models/gpt-checkpoint.js';

function config(over: Partial<GptConfig> = {}): GptConfig {
  return gptConfig('tiny', { inVocab: 12, outVocab: 20, numClasses: 3, grid: 4, causal: true }, over);
}

function randomModel(c: GptConfig, seed: number): Gpt {
  const m = new Gpt(c, new Rng(seed));
  m.output.f32.set(new Rng(seed + 1).fillNormal(new Float32Array(m.output.size), 0, 0.1));
  return m;
}

test('checkpoint round trip: names, shapes and metadata as documented; same weights, same logits', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-gpt-'));
  try {
    const m = randomModel(config(), 1);
    const path = join(dir, 'gpt.safetensors');
    await saveGptCheckpoint(path, m, { step: '42' });
    const file = loadSafetensorsSync(path);
    assert.equal(file.metadata['kind'], 'ctfgen.gpt');
    assert.equal(file.metadata['format'], '1');
    assert.equal(file.metadata['step'], '42');
    assert.deepEqual(JSON.parse(file.metadata['config']!), m.config);
    assert.deepEqual(file.tensors.get('layers.1.feed_forward.w3.weight')!.shape, [m.hidden, 64]);
    assert.deepEqual(file.tensors.get('layers.0.attention.wqkv.weight')!.shape, [192, 64]);
    assert.deepEqual([...file.tensors.keys()].sort(), [...m.stateDict().keys()].sort());
    for (const loaded of [
      await loadGptCheckpoint(path),
      loadGptCheckpointSync(path),
      decodeGptCheckpoint(encodeGptCheckpoint(m), 'bytes'),
    ]) {
      assert.deepEqual(loaded.config, m.config);
      for (const [name, t] of m.stateDict()) assert.deepEqual(loaded.stateDict().get(name)!.f32, t.f32, name);
      const classes = Int32Array.from([0, 3]),
        tokens = Int32Array.from({ length: 2 * 15 }, (_, i) => i % 12);
      const a = noGrad(() => m.forward(classes, tokens, { training: false })).f32;
      const b = noGrad(() => loaded.forward(classes, tokens, { training: false })).f32;
      assert.deepEqual(b, a);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loading refuses mismatches with the offending tensor or field named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-gpt-'));
  let n = 0;
  const save = (tensors: Map<string, StTensorInput>, meta: Record<string, string>): string => {
    const path = join(dir, `case${n++}.safetensors`);
    saveSafetensorsSync(path, tensors, meta);
    return path;
  };
  try {
    const m = randomModel(config(), 2);
    const weights = (): Map<string, StTensorInput> =>
      new Map([...m.stateDict()].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
    const meta = { kind: 'ctfgen.gpt', format: '1', config: JSON.stringify(m.config) };
    const ckpt = loadSafetensorsSync(save(weights(), meta));
    assert.throws(() => loadGptWeights(new Gpt(config({ dim: 96, heads: 4 })), ckpt),
      new RegExp(
        'checkpoint .*case0\\.safetensors: tensor "cls_embedding.embedding_table.weight" has shape \\[4,64\\], ' +
          'expected \\[4,96\\] — was it trained with another preset\\?',
      ));
    assert.throws(
      () => loadGptWeights(new Gpt(config({ layers: 3 })), ckpt),
      /tensor "layers.2.attention.wqkv.weight" is missing/,
    );
    // Fields that change no shape must agree as well; dropout settings are training-time only and may differ.
    assert.throws(() => loadGptWeights(new Gpt(config({ grid: 3 })), ckpt), /saved with grid = 4, this model has 3/);
    assert.throws(
      () => loadGptWeights(new Gpt(config({ causal: false })), ckpt),
      /saved with causal = true, this model has false/,
    );
    loadGptWeights(new Gpt(config({ dropout: 0.3 })), ckpt);

    const extra = weights().set('rope.freqs', { shape: [2], data: new Float32Array(2) });
    assert.throws(
      () => loadGptWeights(new Gpt(m.config), loadSafetensorsSync(save(extra, {}))),
      /tensor "rope.freqs" is not part of this GPT/,
    );
    const ints = weights().set('output.weight', {
      dtype: 'I32',
      shape: m.output.shape,
      data: new Int32Array(m.output.size),
    });
    assert.throws(
      () => loadGptWeights(new Gpt(m.config), loadSafetensorsSync(save(ints, {}))),
      /tensor "output.weight" is I32, expected a float tensor/,
    );

    assert.throws(() => loadGptCheckpointSync(save(weights(), {})), /not a GPT checkpoint \(metadata kind missing/);
    assert.throws(
      () => loadGptCheckpointSync(save(new Map(), { ...meta, config: JSON.stringify({ ...m.config, heads: 5 }) })),
      /stored config is invalid: .*not divisible by heads 5/,
    );
    assert.throws(() => loadGptCheckpointSync(save(new Map(), { ...meta, format: '2' })), /format 2 is not supported/);
    assert.throws(() => loadGptCheckpointSync(join(dir, 'absent.safetensors')), /does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Re-encodes checkpoint bytes after editing its tensors and metadata. */
function edit(bytes: Uint8Array, f: (t: Map<string, StTensorInput>, m: Record<string, string>) => void): Uint8Array {
  const file = decodeSafetensors(bytes, 'x');
  const tensors = new Map<string, StTensorInput>();
  for (const [n, t] of file.tensors) tensors.set(n, { dtype: t.dtype, shape: t.shape, data: t.data.slice() });
  const meta = { ...file.metadata };
  f(tensors, meta);
  return encodeSafetensors(tensors, meta);
}

const withConfig = (bytes: Uint8Array, over: Record<string, unknown>): Uint8Array =>
  edit(bytes, (_t, m) => { m['config'] = JSON.stringify({ ...JSON.parse(m['config']!), ...over }); });

test('a lying config is refused by field and value before anything is allocated', () => {
  const bytes = encodeGptCheckpoint(randomModel(config(), 3));
  const rss0 = process.memoryUsage().rss;
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ layers: 1e7 }, /f: stored config is invalid: gpt config: layers = 10000000, expected an integer in \[1, 256\]/],
    [{ dim: 2 ** 20 }, /dim = 1048576, expected an integer in \[1, 16384\]/],
    [{ grid: 1e5 }, /grid = 100000, expected an integer in \[1, 64\]/],
    [{ inVocab: 2 ** 31 }, /inVocab = 2147483648, expected an integer in \[1, 1048576\]/],
    [{ ropeBase: 'x' }, /ropeBase = "x", expected a finite number > 1/],
    [{ causal: 'true' }, /causal = "true", expected true or false/],
    [{ dim: 4096, heads: 2 }, /head dim 2048 = dim \/ heads, expected at most 1024/],
    [{ normEps: '1e-5' }, /normEps = "1e-5", expected a number in \(0, 1\]/],
    [{ layers: 200 }, /f: the stored config says layers = 200, but the file holds tensors of 2 layers/],
    [{ dim: 128 }, /says dim = 128, but tensor "tok_embeddings.weight" has 64 columns/],
    [{ inVocab: 500 }, /says inVocab = 500, but tensor "tok_embeddings.weight" has 12 rows/],
    [{ outVocab: 2 ** 20 }, /says outVocab = 1048576, but tensor "output.weight" has 20 rows/],
    [{ numClasses: 60000 }, /says numClasses = 60000, but tensor "cls_embedding.embedding_table.weight" has 4 rows/],
    [{ ffnMultipleOf: 4096 }, /says ffnMultipleOf = 4096, but tensor "layers.0.feed_forward.w2.weight" has 192/],
    [{ causal: false, fineVocab: 21 }, /says fineVocab = 21, but the file has none/],
    [{ fineVocab: 21 }, /fineVocab = 21 must be 0, or outVocab \+ 1 = 21 for a bidirectional aux/],
  ];
  for (const [over, re] of refused) throwsCtf(() => decodeGptCheckpoint(withConfig(bytes, over), 'f'), re);
  const notAnObject = edit(bytes, (_t, m) => { m['config'] = '[1]'; });
  assert.throws(() => decodeGptCheckpoint(notAnObject, 'f'), /gpt config: expected an object/);
  assert.ok(process.memoryUsage().rss - rss0 < 200e6, 'no lie was allocated');
  // A config field no shape implies may still differ harmlessly: the same FFN width from another multiple.
  assert.equal(decodeGptCheckpoint(withConfig(bytes, { ffnMultipleOf: 64 }), 'f').hidden, 192);
});

test('GPT weights are hashed and must be finite; a checkpoint without a hash still loads', () => {
  const m = randomModel(config(), 4);
  const bytes = encodeGptCheckpoint(m);
  assert.match(decodeSafetensors(bytes, 'x').metadata['hash']!, /^[0-9a-f]{64}$/);
  assert.equal(decodeSafetensors(bytes, 'x').metadata['hash'], weightsHash(m.stateDict()));
  const poke = (name: string, i: number, v: number) => (t: Map<string, StTensorInput>) => {
    (t.get(name)!.data as Float32Array)[i] = v;
  };
  assert.throws(() => decodeGptCheckpoint(edit(bytes, poke('layers.1.attention.wo.weight', 5, NaN)), 'f'),
    /checkpoint f: tensor "layers\.1\.attention\.wo\.weight" holds NaN at element 5, expected finite values/);
  assert.throws(() => decodeGptCheckpoint(edit(bytes, poke('output.weight', 0, -Infinity)), 'f'),
    /tensor "output\.weight" holds -Infinity at element 0/);
  // A flipped low mantissa bit keeps the value finite and plausible: only the hash sees it.
  const flipped = edit(bytes, (t) => {
    const d = t.get('tok_embeddings.weight')!.data as Float32Array;
    new Uint32Array(d.buffer)[7]! ^= 1;
  });
  assert.throws(() => decodeGptCheckpoint(flipped, 'f'),
    /checkpoint f: the weights hash to [0-9a-f]{16}…, the metadata says [0-9a-f]{16}… — the file is corrupted/);
  // Checkpoints written before the hash existed still load (docs/gpt-checkpoint.md), but not with a NaN.
  const old = edit(bytes, (_t, meta) => { delete meta['hash']; });
  assert.deepEqual(decodeGptCheckpoint(old, 'old').output.f32, m.output.f32);
  assert.throws(() => decodeGptCheckpoint(edit(old, poke('norm.weight', 3, NaN)), 'old'), /"norm\.weight" holds NaN/);
  assert.throws(() => encodeGptCheckpoint(m, { hash: 'x' }), /metadata key "hash" is reserved/);
});
