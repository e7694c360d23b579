// The GPT's native handle (src/models/gpt-native.ts): binding checks every weight against the config by name,
// the handle reads the live weight buffers (an optimiser step or a load after binding is seen by the next decode),
// caches belong to their model, the one list of named weights serves parameters/stateDict/namedGradients, and
// the engine subpath no longer carries GPT kernels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward, noGrad } from '../../src/engine/autograd.js';
import * as engine from '../../src/engine/index.js';
import { linear } from '../../src/engine/ops/matmul.js';
import { AdamW } from '../../src/engine/optim.js';
import { Rng } from '../../src/engine/rng.js';
import { Tensor } from '../../src/engine/tensor.js';
import { decodeSafetensors } from '../../src/io/safetensors.js';
import { decodeGptCheckpoint, encodeGptCheckpoint, loadGptWeights } from '../../src/models/gpt-checkpoint.js';
import { bindGptWeights, finalHidden, gptHandle } from '../../src/models/gpt-native.js';
import { Gpt, gptConfig, type GptConfig, type NamedWeight } from '../../src/models/gpt.js';
import { KvCache, decodeOne, prefill } from '../../src/models/kv-cache.js';
import { assertClose, throwsCtf } from '../helpers.js';

function tinyConfig(over: Partial<GptConfig> = {}): GptConfig {
  return gptConfig('tiny', { inVocab: 12, outVocab: 12, numClasses: 3, grid: 4, causal: true },
    { dropout: 0, classDropout: 0, ...over });
}

function randomModel(c: GptConfig, seed = 1): Gpt {
  const m = new Gpt(c, new Rng(seed));
  const rng = new Rng(seed + 1000);
  for (const p of m.parameters()) rng.fillNormal(p.f32, p.ndim === 1 ? 1 : 0, p.ndim === 1 ? 0.1 : 0.3);
  return m;
}

/** The model's weights with the one named `name` replaced (or dropped, or added when absent). */
function replaced(m: Gpt, name: string, tensor: Tensor | null): NamedWeight[] {
  const rest = m.namedWeights.filter((w) => w.name !== name);
  return tensor ? [...rest, { name, tensor }] : rest;
}

/** Decodes the whole sequence with a KV cache and checks every step against the full causal forward. */
function assertDecodeMatchesForward(m: Gpt, cache: KvCache, classes: Int32Array, seq: Int32Array, what: string): void {
  const B = classes.length, T = seq.length / B, V = m.config.outVocab;
  const inputs = new Int32Array(B * (T - 1));
  for (let b = 0; b < B; b++) inputs.set(seq.subarray(b * T, b * T + T - 1), b * (T - 1));
  const full = noGrad(() => m.forward(classes, inputs, { training: false })).f32;  // (B, T, V)
  const tok = new Int32Array(B);
  for (let p = 0; p < T; p++) {
    for (let b = 0; b < B; b++) tok[b] = seq[b * T + p - 1] ?? 0;
    const step = p === 0 ? prefill(m, cache, classes) : decodeOne(m, cache, tok);
    const expected = new Float32Array(B * V);
    for (let b = 0; b < B; b++) expected.set(full.subarray((b * T + p) * V, (b * T + p + 1) * V), b * V);
    assertClose(step, expected, { atol: 2e-5, rtol: 1e-4, what: `${what}: logits at position ${p}` });
  }
}

test('binding checks every weight against the config by name: wrong shape, missing, unexpected, twice', () => {
  const m = randomModel(tinyConfig());
  const bind = (weights: readonly NamedWeight[]): unknown => bindGptWeights(m.config, weights, m.rope);
  bind(m.namedWeights);
  bind([...m.namedWeights].reverse());  // found by name: order does not matter
  // wo (64, 64) bound where the config wants wqkv (192, 64): the swap that used to corrupt memory silently.
  const wo = m.blocks[1]!.wo;
  throwsCtf(
    () => bind(replaced(m, 'layers.1.attention.wqkv.weight', wo)),
    /gpt bind: weight "layers\.1\.attention\.wqkv\.weight" has shape \[64, 64\], expected \[192, 64\] = \(3·dim, dim\)/,
  );
  const narrow = new Tensor(new Float32Array(64 * 191), [64, 191]);
  throwsCtf(() => bind(replaced(m, 'layers.0.feed_forward.w2.weight', narrow)),
    /"layers\.0\.feed_forward\.w2\.weight" has shape \[64, 191\], expected \[64, 192\] = \(dim, hidden\), hidden 192/);
  throwsCtf(() => bind(replaced(m, 'output.weight', null)), /weight "output\.weight" \[12, 64\] is missing/);
  throwsCtf(() => bind(replaced(m, 'layers.2.ffn_norm.weight', m.norm)),
    /"layers\.2\.ffn_norm\.weight" is not part of a GPT of 2 layers/);
  throwsCtf(() => bind([...m.namedWeights, m.namedWeights[0]!]),
    /"cls_embedding\.embedding_table\.weight" is listed twice/);
  // A config that does not describe the weights (another inVocab) is refused the same way.
  throwsCtf(() => bindGptWeights(tinyConfig({ inVocab: 13 }), m.namedWeights, m.rope),
    /"tok_embeddings\.weight" has shape \[12, 64\], expected \[13, 64\] = \(inVocab, dim\)/);
});

test('a handle bound before an optimiser step or a load decodes with the new weights', () => {
  const m = randomModel(tinyConfig());
  const B = 2, T = 16, rng = new Rng(5);
  const classes = Int32Array.from([1, 3]);
  const seq = Int32Array.from({ length: B * T }, () => rng.int(12));
  const cache = new KvCache(m, B);  // binds the handle
  assertDecodeMatchesForward(m, cache, classes, seq, 'before the step');
  const before = Float32Array.from(prefill(m, cache, classes));
  const opt = new AdamW(m.parameters(), { lr: 1e-2, weightDecay: 0 });
  const inputs = new Int32Array(B * (T - 1));
  for (let b = 0; b < B; b++) inputs.set(seq.subarray(b * T, b * T + T - 1), b * (T - 1));
  backward(m.loss(classes, inputs, seq, { training: false }).loss);
  opt.step();
  const after = prefill(m, cache, classes);
  assert.ok(after.some((x, i) => Math.abs(x - before[i]!) > 1e-3), 'the step moved the logits');
  assertDecodeMatchesForward(m, cache, classes, seq, 'after an AdamW step');
  // Loading another model's weights into this one (in place) is seen too.
  const other = randomModel(tinyConfig(), 9);
  loadGptWeights(m, decodeSafetensors(encodeGptCheckpoint(other), 'other'));
  assertDecodeMatchesForward(m, cache, classes, seq, 'after a load');
  assertDecodeMatchesForward(other, new KvCache(other, B), classes, seq, 'the source model');
});

test('the hidden forward reads the live weights too, and its scratch is the handle\'s (any size, in turn)', () => {
  const aux = randomModel(tinyConfig({ causal: false }), 3);
  const classes = Int32Array.from([0, 2, 3]), coarse = Int32Array.from({ length: 3 * 16 }, (_, i) => (i * 7) % 12);
  const check = (cl: Int32Array, co: Int32Array, what: string): void =>
    assertClose(linear(finalHidden(aux, cl, co), aux.output).f32,
      noGrad(() => aux.forward(cl, co, { training: false })).f32, { atol: 1e-5, what });
  check(classes, coarse, 'three rows');
  for (const p of aux.parameters()) for (let i = 0; i < p.size; i += 7) p.f32[i]! *= -1.5;  // in place, after binding
  check(classes, coarse, 'after an in-place update');
  check(classes.subarray(0, 1), coarse.subarray(0, 16), 'one row (a smaller call reuses the scratch)');
  check(classes, coarse, 'three rows again');
  const bad = coarse.slice();
  bad[17] = 12;
  throwsCtf(() => finalHidden(aux, classes, bad), /gptHiddenForward: token 12 at \(1, 1\) outside \[0, 12\)/);
});

test('a cache belongs to its model; the one list of named weights serves parameters, stateDict and gradients', () => {
  const a = randomModel(tinyConfig()), b = randomModel(tinyConfig(), 2);
  assert.equal(gptHandle(a), gptHandle(a), 'bound once per model');
  const cache = new KvCache(a, 1);
  throwsCtf(() => prefill(b, cache, Int32Array.of(0)), /the KV cache was made for another GPT handle/);
  assert.deepEqual(a.parameters(), a.namedWeights.map((w) => w.tensor));
  assert.deepEqual(a.parameters().map((t) => t.name), a.namedWeights.map((w) => w.name));
  const sd = a.stateDict(), grads = a.namedGradients();
  assert.deepEqual([...grads.keys()], [...sd.keys()], 'gradients by the same names, in the same order');
  assert.equal([...sd.values()].reduce((n, t) => n + t.size, 0), a.numParameters(), 'every scalar stored once');
  const copy = decodeGptCheckpoint(encodeGptCheckpoint(a), 'copy');
  assert.deepEqual(copy.namedWeights.map((w) => w.name), a.namedWeights.map((w) => w.name));
  assert.ok(copy.namedWeights.every((w, i) => w.tensor.f32.every((x, j) => x === a.namedWeights[i]!.tensor.f32[j])));
});

test('the engine subpath carries no GPT kernels', () => {
  for (const name of ['gptDecodeStep', 'gptHiddenForward', 'gptBind']) assert.ok(!(name in engine), name);
});
