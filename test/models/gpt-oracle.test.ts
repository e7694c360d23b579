// src/models/gpt.ts against the PyTorch oracle (oracle/llamagen_gpt.py, fixtures test/fixtures/gpt_*.safetensors):
// LlamaGen state_dict loaded by name, then logits, loss, every parameter gradient, and greedy CFG decoding; also the
// masked-refinement aux (fine-token embeddings added to the coarse labels', loss on the masked positions only).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward, noGrad } from '../../src/engine/autograd.js';
import { loadInto, type SafetensorsFile } from '../../src/io/safetensors.js';
import { Gpt, type GptConfig } from '../../src/models/gpt.js';
import { cfgClasses, cfgTokens, guide } from '../../src/ctf/cfg.js';
import { KvCache, decodeOne, prefill } from '../../src/models/kv-cache.js';
import { assertClose } from '../helpers.js';
import { fx, loadFixture } from '../oracle/fixtures.js';

interface OracleConfig {
  vocab_size: number; out_vocab_size: number; n_layer: number; n_head: number; dim: number; num_classes: number;
  block_size: number; multiple_of: number; norm_eps: number; rope_base: number; causal: boolean; ffn_hidden: number;
  fine_vocab_size?: number;
}

function modelFromFixture(file: SafetensorsFile): { model: Gpt; oc: OracleConfig } {
  const oc = JSON.parse(file.metadata['config']!) as OracleConfig;
  const config: GptConfig = {
    inVocab: oc.vocab_size, outVocab: oc.out_vocab_size, numClasses: oc.num_classes, grid: Math.sqrt(oc.block_size),
    layers: oc.n_layer, dim: oc.dim, heads: oc.n_head, causal: oc.causal, dropout: 0, classDropout: 0,
    ffnMultipleOf: oc.multiple_of, normEps: oc.norm_eps, ropeBase: oc.rope_base, fineVocab: oc.fine_vocab_size ?? 0,
  };
  const model = new Gpt(config);
  assert.equal(model.hidden, oc.ffn_hidden);
  const sd = model.stateDict();
  // The fixture also holds inputs, outputs and gradients: load only the state_dict entries, all of which must be there.
  const weights: SafetensorsFile = { ...file, tensors: new Map([...file.tensors].filter(([k]) => sd.has(k))) };
  loadInto(sd, weights);
  assert.deepEqual([...sd.keys()].sort(), (JSON.parse(file.metadata['params']!) as string[]).sort());
  return { model, oc };
}

for (const name of ['gpt_causal', 'gpt_bidir', 'gpt_masked_aux']) {
  test(`${name}: logits, loss and every parameter gradient match the PyTorch oracle`, () => {
    const file = loadFixture(`${name}.safetensors`);
    const { model, oc } = modelFromFixture(file);
    const labels = fx(file, 'input.labels').i32,
      tokens = fx(file, 'input.tokens').i32,
      targets = fx(file, 'input.targets').i32;
    assert.ok(labels.includes(oc.num_classes), 'the batch has a null-class row');
    // masked-refinement aux
    const fineInputs = file.tensors.has('input.fine') ? fx(file, 'input.fine').i32 : undefined;
    const { loss, logits } = model.loss(labels, tokens, targets, { training: false, fineInputs });
    const ref = fx(file, 'logits');  // (B, 1 + L, V), every position
    const [B, L1, V] = ref.shape as [number, number, number];
    const first = Number(file.metadata['loss_first_position']);
    assert.equal(first, oc.causal ? 0 : 1);
    const expected = new Float32Array(B * (L1 - first) * V);
    for (let b = 0; b < B; b++)
      expected.set(ref.f32.subarray((b * L1 + first) * V, (b + 1) * L1 * V), b * (L1 - first) * V);
    assert.deepEqual(logits.shape, [B, L1 - first, V]);
    assertClose(logits.f32, expected, { atol: 1e-4, rtol: 1e-4, what: 'logits' });
    assertClose(loss.f32, fx(file, 'loss').f32, { atol: 1e-5, rtol: 1e-5, what: 'loss' });
    backward(loss);
    const grads = model.namedGradients();
    assert.equal(grads.size, model.stateDict().size);
    for (const [n, g] of grads) {
      assert.ok(g, `no gradient reached ${n}`);
      const r = fx(file, `grad.${n}`).f32;
      let scale = 0;
      for (const x of r) scale = Math.max(scale, Math.abs(x));
      assertClose(g, r, { atol: 1e-5 + 1e-4 * scale, rtol: 1e-3, what: `gradient of ${n}` });
    }
  });
}

test('gpt_causal: KV-cached greedy CFG generation reproduces the oracle tokens and guided logits', () => {
  const file = loadFixture('gpt_causal.safetensors');
  const { model, oc } = modelFromFixture(file);
  const gen = JSON.parse(file.metadata['generate']!) as { cfg_scale: number };
  const labels = fx(file, 'generate.labels').i32;
  const refTokens = fx(file, 'generate.tokens').i32, refLogits = fx(file, 'generate.logits').f32;  // (B, T), (B, T, V)
  const B = labels.length, T = oc.block_size, V = oc.out_vocab_size;
  const cache = new KvCache(model, 2 * B);
  const tokens = new Int32Array(B * T), guidedAll = new Float32Array(B * T * V);
  const next = new Int32Array(B), doubled = new Int32Array(2 * B), guided = new Float32Array(B * V);
  noGrad(() => {
    let logits = prefill(model, cache, cfgClasses(labels, oc.num_classes));
    for (let p = 0; p < T; p++) {
      guide(logits, V, gen.cfg_scale, guided);
      for (let b = 0; b < B; b++) {
        let best = 0;
        for (let v = 1; v < V; v++) if (guided[b * V + v]! > guided[b * V + best]!) best = v;
        next[b] = best;
        tokens[b * T + p] = best;
        guidedAll.set(guided.subarray(b * V, (b + 1) * V), (b * T + p) * V);
      }
      if (p < T - 1) logits = decodeOne(model, cache, cfgTokens(next, doubled));
    }
  });
  assert.deepEqual(Array.from(tokens), Array.from(refTokens));
  assertClose(guidedAll, refLogits, { atol: 2e-4, rtol: 1e-4, what: 'guided logits' });
});
