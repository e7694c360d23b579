// Invariants of src/models/gpt.ts and kv-cache.ts: shapes and input checks, KV-cached decoding equals the
// full causal forward, class dropout, a tiny GPT memorising sequences with AdamW.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward, noGrad } from '../../src/engine/autograd.js';
import { AdamW } from '../../src/engine/optim.js';
import { Rng } from '../../src/engine/rng.js';
import { GPT_PRESETS, Gpt, ffnHidden, gptConfig, type GptConfig } from '../../src/models/gpt.js';
import { KvCache, decodeOne, prefill } from '../../src/models/kv-cache.js';
import { assertClose } from '../helpers.js';

function tinyConfig(over: Partial<GptConfig> = {}): GptConfig {
  return gptConfig(
    'tiny',
    { inVocab: 12, outVocab: 12, numClasses: 3, grid: 4, causal: true },
    { dropout: 0, classDropout: 0, ...over },
  );
}

/** A model with every weight random (the output head too, so logits are not all zero). */
function randomModel(c: GptConfig, seed = 1): Gpt {
  const m = new Gpt(c, new Rng(seed));
  const rng = new Rng(seed + 1000);
  for (const p of m.parameters()) rng.fillNormal(p.f32, p.ndim === 1 ? 1 : 0, p.ndim === 1 ? 0.1 : 0.3);
  return m;
}

test('configs: presets validate, hidden size is LlamaGen find_multiple, bad configs are refused', () => {
  for (const preset of Object.keys(GPT_PRESETS) as (keyof typeof GPT_PRESETS)[]) {
    const c = gptConfig(preset, { inVocab: 128, outVocab: 4096, numClasses: 10, grid: 8, causal: false });
    assert.equal(c.dim % c.heads, 0);
  }
  assert.ok(
    new Gpt(gptConfig('S', { inVocab: 16, outVocab: 16, numClasses: 2, grid: 2, causal: true })).numParameters() > 0,
  );
  assert.equal(ffnHidden({ dim: 256, ffnMultipleOf: 256 }), 768);  // int(8·256/3) = 682 → 768
  assert.equal(ffnHidden({ dim: 64, ffnMultipleOf: 32 }), 192);    // 170 → 192
  assert.throws(() => tinyConfig({ heads: 3 }), /not divisible by heads/);
  assert.throws(() => tinyConfig({ dim: 72, heads: 12 }), /multiple of 4 for 2D RoPE/);
  assert.throws(() => tinyConfig({ dropout: 1 }), /dropout = 1, expected a number in \[0, 1\)/);
  assert.throws(
    () => gptConfig('nope' as 'tiny', { inVocab: 1, outVocab: 1, numClasses: 1, grid: 1, causal: true }),
    /unknown preset "nope"/,
  );
});

test('initialisation follows LlamaGen: normal(0, 0.02) weights, zero output head, unit norms', () => {
  const m = new Gpt(tinyConfig(), new Rng(3));
  assert.ok(m.output.f32.every((x) => x === 0));
  assert.ok(m.norm.f32.every((x) => x === 1) && m.blocks.every((b) => b.attnNorm.f32.every((x) => x === 1)));
  const w = m.blocks[0]!.wqkv.f32;
  const mean = w.reduce((a, b) => a + b, 0) / w.length,
    std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
  assert.ok(Math.abs(mean) < 2e-3 && Math.abs(std - 0.02) < 2e-3, `wqkv mean ${mean} std ${std}`);
});

test('forward shapes (causal: class + tokens; bidirectional: token positions only) and input checks', () => {
  const causal = randomModel(tinyConfig());
  const bidir = randomModel(tinyConfig({ causal: false, outVocab: 20 }));
  const classes = Int32Array.from([0, 3]);  // 3 = the null class
  const y = noGrad(() => causal.forward(classes, new Int32Array(2 * 15).fill(1), { training: false }));
  assert.deepEqual(y.shape, [2, 16, 12]);
  const z = noGrad(() => bidir.forward(classes, new Int32Array(2 * 16).fill(1), { training: false }));
  assert.deepEqual(z.shape, [2, 16, 20]);
  assert.throws(
    () => causal.forward(Int32Array.from([4, 0]), new Int32Array(2), { training: false }),
    /class 4 at batch row 0 outside \[0, 3\]/,
  );
  assert.throws(() => causal.forward(classes, Int32Array.from([0, 12]), { training: false }), /token 12 at \(1, 0\)/);
  assert.throws(() => causal.forward(classes, new Int32Array(2 * 17), { training: false }), /exceeds the grid's 17/);
  assert.throws(() => causal.forward(classes, new Int32Array(3), { training: false }), /do not split into 2 rows/);
  assert.throws(
    () => causal.loss(classes, new Int32Array(2 * 15), new Int32Array(2 * 15), { training: false }),
    /30 targets for logits of 2×16/,
  );
});

test('KV-cached decoding gives the logits of the full causal forward at every position', () => {
  const m = randomModel(tinyConfig());
  const B = 3, T = 16, V = 12;
  const classes = Int32Array.from([2, 3, 0]);
  const rng = new Rng(5);
  const seq = Int32Array.from({ length: B * T }, () => rng.int(V));
  const inputs = new Int32Array(B * (T - 1));
  for (let b = 0; b < B; b++) inputs.set(seq.subarray(b * T, b * T + T - 1), b * (T - 1));
  const full = noGrad(() => m.forward(classes, inputs, { training: false })).f32;  // (B, T, V)
  const cache = new KvCache(m, B);
  const tok = new Int32Array(B);
  for (let p = 0; p < T; p++) {
    const step =
      p === 0
        ? prefill(m, cache, classes)
        : (tok.set(Array.from({ length: B }, (_, b) => seq[b * T + p - 1]!)), decodeOne(m, cache, tok));
    const expected = new Float32Array(B * V);
    for (let b = 0; b < B; b++) expected.set(full.subarray((b * T + p) * V, (b * T + p + 1) * V), b * V);
    assertClose(step, expected, { atol: 2e-5, rtol: 1e-4, what: `logits at position ${p}` });
  }
  assert.equal(cache.pos, T);
  assert.throws(() => decodeOne(m, cache, tok), /cache full/);
  assert.throws(() => decodeOne(m, new KvCache(m, B), tok), /before prefill/);
  assert.throws(() => prefill(m, cache, Int32Array.from([0, 1])), /2 classs? for a cache of batch 3/);
  assert.throws(() => new KvCache(randomModel(tinyConfig({ causal: false })), 2), /only causal models/);
});

test('decoding a row does not depend on the rest of the batch', () => {
  const m = randomModel(tinyConfig(), 7);
  const big = new KvCache(m, 4), one = new KvCache(m, 1);
  const classes = Int32Array.from([1, 0, 2, 3]);
  let a = prefill(m, big, classes), b = prefill(m, one, classes.subarray(2, 3));
  assertClose(a.subarray(24, 36), b, { atol: 1e-6 });
  a = decodeOne(m, big, Int32Array.from([5, 6, 7, 8]));
  b = decodeOne(m, one, Int32Array.from([7]));
  assertClose(a.subarray(24, 36), b, { atol: 1e-6 });
});

test('class dropout: labels become the null class with the configured rate, only in training, reproducibly', () => {
  const m = new Gpt(tinyConfig({ classDropout: 0.3 }));
  const classes = new Int32Array(2000).fill(1);
  const dropped = m.dropClasses(classes, { training: true, rng: new Rng(9) });
  const rate = dropped.filter((c) => c === 3).length / classes.length;
  assert.ok(Math.abs(rate - 0.3) < 0.04, `drop rate ${rate}`);
  assert.ok(dropped.every((c) => c === 1 || c === 3));
  assert.deepEqual(dropped, m.dropClasses(classes, { training: true, rng: new Rng(9) }));
  assert.equal(m.dropClasses(classes, { training: false }), classes);
  assert.throws(() => m.forward(classes.subarray(0, 1), new Int32Array(0), { training: true }), /needs an rng/);
});

test('training: a tiny causal GPT memorises two class-conditional sequences (AdamW)', () => {
  const c = tinyConfig({ grid: 4, inVocab: 16, outVocab: 16, numClasses: 2 });
  const m = new Gpt(c, new Rng(11));
  const opt = new AdamW(m.parameters(), { lr: 3e-3, betas: [0.9, 0.95], weightDecay: 0 });
  const rng = new Rng(12);
  const classes = Int32Array.from([0, 1]);
  const seq = Int32Array.from({ length: 2 * 16 }, () => rng.int(16));
  const inputs = new Int32Array(2 * 15);
  for (let b = 0; b < 2; b++) inputs.set(seq.subarray(b * 16, b * 16 + 15), b * 15);
  let loss = Infinity;
  const t0 = performance.now();
  for (let step = 0; step < 300 && loss > 0.01; step++) {
    m.zeroGrad();
    const out = m.loss(classes, inputs, seq, { training: true, rng });
    backward(out.loss);
    opt.step();
    loss = out.loss.item();
  }
  assert.ok(loss < 0.02, `loss ${loss} after training`);
  assert.ok(performance.now() - t0 < 20000);
  // Greedy decoding from the class alone now reproduces each sequence.
  const cache = new KvCache(m, 2);
  let logits = prefill(m, cache, classes);
  const next = new Int32Array(2);
  for (let p = 0; p < 16; p++) {
    for (let b = 0; b < 2; b++) {
      let best = 0;
      for (let v = 1; v < 16; v++) if (logits[b * 16 + v]! > logits[b * 16 + best]!) best = v;
      next[b] = best;
      assert.equal(best, seq[b * 16 + p], `row ${b} position ${p}`);
    }
    if (p < 15) logits = decodeOne(m, cache, next);
  }
});

test('training: a tiny bidirectional aux GPT learns coarse → fine labels', () => {
  const c = tinyConfig({ causal: false, grid: 4, inVocab: 4, outVocab: 16, numClasses: 2 });
  const m = new Gpt(c, new Rng(21));
  const opt = new AdamW(m.parameters(), { lr: 3e-3, weightDecay: 0 });
  const rng = new Rng(22);
  const fine = Int32Array.from({ length: 2 * 16 }, () => rng.int(16));
  const coarse = fine.map((f) => f >> 2);  // 4 clusters of 4 fine labels
  let loss = Infinity;
  for (let step = 0; step < 300 && loss > 0.01; step++) {
    m.zeroGrad();
    const out = m.loss(Int32Array.from([0, 1]), coarse, fine, { training: true, rng });
    backward(out.loss);
    opt.step();
    loss = out.loss.item();
  }
  assert.ok(loss < 0.02, `loss ${loss} after training`);
});
