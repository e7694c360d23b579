// GPT checkpoints: safetensors with LlamaGen names, the config in the metadata; round trip and refusals.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { noGrad } from '../../src/engine/autograd.js';
import { Rng } from '../../src/engine/rng.js';
import { loadSafetensorsSync, saveSafetensorsSync, type StTensorInput } from '../../src/io/safetensors.js';
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
    for (const loaded of [await loadGptCheckpoint(path), loadGptCheckpointSync(path), decodeGptCheckpoint(encodeGptCheckpoint(m), 'bytes')]) {
      assert.deepEqual(loaded.config, m.config);
      for (const [name, t] of m.stateDict()) assert.deepEqual(loaded.stateDict().get(name)!.f32, t.f32, name);
      const classes = Int32Array.from([0, 3]), tokens = Int32Array.from({ length: 2 * 15 }, (_, i) => i % 12);
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
    const weights = (): Map<string, StTensorInput> => new Map([...m.stateDict()].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
    const meta = { kind: 'ctfgen.gpt', format: '1', config: JSON.stringify(m.config) };
    const ckpt = loadSafetensorsSync(save(weights(), meta));
    assert.throws(() => loadGptWeights(new Gpt(config({ dim: 96, heads: 4 })), ckpt),
      /checkpoint .*case0\.safetensors: tensor "cls_embedding.embedding_table.weight" has shape \[4,64\], expected \[4,96\] — was it trained with another preset\?/);
    assert.throws(() => loadGptWeights(new Gpt(config({ layers: 3 })), ckpt), /tensor "layers.2.attention.wqkv.weight" is missing/);
    // Fields that change no shape must agree as well; dropout settings are training-time only and may differ.
    assert.throws(() => loadGptWeights(new Gpt(config({ grid: 3 })), ckpt), /saved with grid = 4, this model has 3/);
    assert.throws(() => loadGptWeights(new Gpt(config({ causal: false })), ckpt), /saved with causal = true, this model has false/);
    loadGptWeights(new Gpt(config({ dropout: 0.3 })), ckpt);

    const extra = weights().set('rope.freqs', { shape: [2], data: new Float32Array(2) });
    assert.throws(() => loadGptWeights(new Gpt(m.config), loadSafetensorsSync(save(extra, {}))), /tensor "rope.freqs" is not part of this GPT/);
    const ints = weights().set('output.weight', { dtype: 'I32', shape: m.output.shape, data: new Int32Array(m.output.size) });
    assert.throws(() => loadGptWeights(new Gpt(m.config), loadSafetensorsSync(save(ints, {}))), /tensor "output.weight" is I32, expected a float tensor/);

    assert.throws(() => loadGptCheckpointSync(save(weights(), {})), /not a GPT checkpoint \(metadata kind missing/);
    assert.throws(() => loadGptCheckpointSync(save(new Map(), { ...meta, config: JSON.stringify({ ...m.config, heads: 5 }) })),
      /stored config is invalid: .*not divisible by heads 5/);
    assert.throws(() => loadGptCheckpointSync(save(new Map(), { ...meta, format: '2' })), /format 2 is not supported/);
    assert.throws(() => loadGptCheckpointSync(join(dir, 'absent.safetensors')), /does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
