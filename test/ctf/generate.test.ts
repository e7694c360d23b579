// Stage-1 / baseline sampling: greedy decoding against the full forward, guidance, and seeded samples that
// do not depend on batch size, chunking or the rest of the request.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { noGrad } from '../../src/engine/autograd.js';
import { sampleLogits } from '../../src/engine/sampling.js';
import { cfgClasses, cfgTokens, guide } from '../../src/ctf/cfg.js';
import { ArSampler, generate, type TokenEvent } from '../../src/ctf/generate.js';
import { imageRngs, indicesWithinClass } from '../../src/ctf/logits.js';
import { KvCache, decodeOne, prefill } from '../../src/models/kv-cache.js';
import { assertClose } from '../helpers.js';
import { GRID, NUM_CLASSES, argmax, tinyGpt } from './models.js';

const V = 48, T = GRID * GRID;
const model = tinyGpt(V, V, true, 1);
const classes = Int32Array.from([3, 1, 3, 0, 2, 3, 1]);

/** Full-forward logits (B, T, V) for the sequences tokens (B, T), guided when cfgScale ≠ 1. */
function fullLogits(cls: Int32Array, tokens: Int32Array, cfgScale: number): Float32Array {
  const B = cls.length, inputs = new Int32Array(B * (T - 1));
  for (let b = 0; b < B; b++) inputs.set(tokens.subarray(b * T, b * T + T - 1), b * (T - 1));
  return noGrad(() => {
    if (cfgScale === 1) return model.forward(cls, inputs, { training: false }).f32;
    return guide(model.forward(cfgClasses(cls, NUM_CLASSES), cfgTokens(inputs), { training: false }).f32, V, cfgScale);
  });
}

for (const cfgScale of [1, 2.5]) {
  test(`greedy (topK 1) takes the argmax of the full forward at every step (cfg ${cfgScale})`, () => {
    const tokens = generate(model, { classes, cfgScale, topK: 1, seed: 5 });
    assert.equal(tokens.length, classes.length * T);
    const logits = fullLogits(classes, tokens, cfgScale);
    for (let i = 0; i < classes.length * T; i++)
      assert.equal(tokens[i], argmax(logits.subarray(i * V, (i + 1) * V)),
        `image ${Math.floor(i / T)} position ${i % T}`);
    assert.deepEqual(generate(model, { classes, cfgScale, temperature: 0, seed: 9 }), tokens,
      'temperature 0 is greedy too');
  });
}

test('cfg scale 1 decodes the conditional rows only (no doubled batch) and matches conditional sampling', () => {
  const B = classes.length;
  const ar = new ArSampler(model, B, 1);
  assert.equal(ar.cache.batch, B, 'no [cond; null] doubling at scale 1');
  assert.equal(new ArSampler(model, B, 2).cache.batch, 2 * B);
  const opts = { temperature: 1.3, topK: 20, topP: 0.9 };
  const tokens = generate(model, { classes, cfgScale: 1, seed: 11, ...opts });
  // The same draws from a conditional-only KV-cached loop, written out.
  const rngs = imageRngs(11, classes).map((r) => r.split('ar'));
  const cache = new KvCache(model, B);
  let logits = prefill(model, cache, classes);
  for (let p = 0; p < T; p++) {
    const next = sampleLogits(logits, B, V, opts, rngs);
    for (let b = 0; b < B; b++) assert.equal(tokens[b * T + p], next[b], `image ${b} position ${p}`);
    if (p < T - 1) logits = decodeOne(model, cache, next);
  }
  // And guidance at scale 1 over a doubled batch gives the conditional logits.
  const doubled = prefill(model, new KvCache(model, 2 * B), cfgClasses(classes, NUM_CLASSES));
  assertClose(guide(doubled, V, 1), doubled.subarray(0, B * V),
    { atol: 1e-6, what: 'guided at scale 1 vs conditional' });
});

test('seeded samples do not depend on the chunk size or on the other images of the request', () => {
  const o = { classes, cfgScale: 2, temperature: 1, seed: 3 };
  const ref = generate(model, { ...o, batchSize: 64 });
  for (const batchSize of [1, 2, 3, 7])
    assert.deepEqual(generate(model, { ...o, batchSize }), ref, `batchSize ${batchSize}`);
  // The 0th and 1st images of class 3 alone, and in another order with other classes around them.
  const alone = generate(model, { ...o, classes: Int32Array.from([3, 3]) });
  const idx = indicesWithinClass(classes);
  const firstTwo = [...classes.keys()].filter((i) => classes[i] === 3 && idx[i]! < 2);
  for (const [j, i] of firstTwo.entries())
    assert.deepEqual(alone.subarray(j * T, (j + 1) * T), ref.subarray(i * T, (i + 1) * T));
  const shuffled = Int32Array.from([2, 3, 4, 3]);
  const mixed = generate(model, { ...o, classes: shuffled, batchSize: 3 });
  assert.deepEqual(mixed.subarray(T, 2 * T), ref.subarray(0, T), 'image (class 3, index 0)');
  // Explicit indices name the same streams.
  const named = generate(model, { ...o, classes: Int32Array.from([3]), imageIndices: Int32Array.from([2]) });
  assert.deepEqual(named, ref.subarray(5 * T, 6 * T), 'image (class 3, index 2)');
});

test('different seeds give different samples; the same seed the same', () => {
  const o = { classes, cfgScale: 2 };
  const a = generate(model, { ...o, seed: 1 }), b = generate(model, { ...o, seed: 2 });
  assert.deepEqual(generate(model, { ...o, seed: 1 }), a);
  let same = 0;
  for (let i = 0; i < a.length; i++) same += a[i] === b[i] ? 1 : 0;
  assert.ok(same < a.length / 4, `${same} of ${a.length} tokens agree across seeds`);
});

test('onToken reports every position of every chunk in order, with the tokens so far', () => {
  const events: { first: number; count: number; position: number; last: number }[] = [];
  const tokens = generate(model, {
    classes, seed: 4, batchSize: 4,
    onToken: (e: TokenEvent) => events.push({
      first: e.first, count: e.count, position: e.position, last: e.tokens[(e.count - 1) * T + e.position]!,
    }),
  });
  assert.equal(events.length, 2 * T);
  events.forEach((e, i) => {
    assert.deepEqual([e.first, e.count, e.position], i < T ? [0, 4, i] : [4, 3, i - T]);
    assert.equal(e.last, tokens[(e.first + e.count - 1) * T + e.position]);
  });
});

test('bad requests are refused with a clear error', () => {
  assert.throws(() => generate(model, { classes, batchSize: 0 }), /batchSize 0/);
  assert.throws(() => generate(model, { classes, topP: 1.5 }), /topP 1.5/);
  assert.throws(() => generate(model, { classes: Int32Array.from([NUM_CLASSES + 1]) }), /class 6/);
  assert.throws(() => new ArSampler(tinyGpt(8, 48, false, 2), 2, 1), /bidirectional/);
});
