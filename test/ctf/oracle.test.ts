// Greedy CFG sampling through generate() against LlamaGen's PyTorch GPT (oracle/gpt_fixtures.py): the same
// weights must give the same tokens, and ArSampler the same guided logits at every step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadInto, type SafetensorsFile } from '../../src/io/safetensors.js';
import { Gpt } from '../../src/models/gpt.js';
import { ArSampler, generate } from '../../src/ctf/generate.js';
import { assertClose } from '../helpers.js';
import { fx, loadFixture } from '../oracle/fixtures.js';

interface OracleConfig {
  vocab_size: number; out_vocab_size: number; n_layer: number; n_head: number; dim: number; num_classes: number;
  block_size: number; multiple_of: number; norm_eps: number; rope_base: number; causal: boolean;
}

/** The fixture's LlamaGen state_dict in a Gpt of its config (the file also holds inputs and references). */
function modelFromFixture(file: SafetensorsFile): Gpt {
  const oc = JSON.parse(file.metadata['config']!) as OracleConfig;
  const model = new Gpt({
    inVocab: oc.vocab_size, outVocab: oc.out_vocab_size, numClasses: oc.num_classes, grid: Math.sqrt(oc.block_size),
    layers: oc.n_layer, dim: oc.dim, heads: oc.n_head, causal: oc.causal, dropout: 0, classDropout: 0,
    ffnMultipleOf: oc.multiple_of, normEps: oc.norm_eps, ropeBase: oc.rope_base, fineVocab: 0,
  });
  const sd = model.stateDict();
  loadInto(sd, { ...file, tensors: new Map([...file.tensors].filter(([k]) => sd.has(k))) });
  return model;
}

test('generate() with topK 1 reproduces the PyTorch oracle greedy CFG tokens (gpt_causal fixture)', () => {
  const file = loadFixture('gpt_causal.safetensors');
  const model = modelFromFixture(file);
  const gen = JSON.parse(file.metadata['generate']!) as { cfg_scale: number; greedy: boolean };
  assert.ok(gen.greedy);
  const labels = fx(file, 'generate.labels').i32, ref = fx(file, 'generate.tokens').i32;
  for (const batchSize of [64, 1]) {
    const tokens = generate(model, { classes: labels, cfgScale: gen.cfg_scale, topK: 1, batchSize });
    assert.deepEqual(Array.from(tokens), Array.from(ref), `batchSize ${batchSize}`);
  }
});

test('ArSampler: prefill and decodeOne return the oracle\'s guided logits at every position', () => {
  const file = loadFixture('gpt_causal.safetensors');
  const model = modelFromFixture(file);
  const gen = JSON.parse(file.metadata['generate']!) as { cfg_scale: number };
  const labels = fx(file, 'generate.labels').i32, ref = fx(file, 'generate.tokens').i32;
  const refLogits = fx(file, 'generate.logits').f32;  // (B, T, V)
  const B = labels.length, T = model.config.grid ** 2, V = model.config.outVocab;
  const ar = new ArSampler(model, B, gen.cfg_scale);
  const got = new Float32Array(B * T * V);
  let logits = ar.prefill(labels);
  for (let p = 0; p < T; p++) {
    for (let b = 0; b < B; b++) got.set(logits.subarray(b * V, (b + 1) * V), (b * T + p) * V);
    if (p < T - 1) logits = ar.decodeOne(Int32Array.from({ length: B }, (_, b) => ref[b * T + p]!));
  }
  assertClose(got, refLogits, { atol: 2e-4, rtol: 1e-4, what: 'guided logits' });
});
