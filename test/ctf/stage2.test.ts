// Stage 2: the hidden-state path against forward(), the cluster mask, the fast (members-only) head against the
// full-V head, stage-2 guidance. Masked refinement's rounds: test/models/masked-refine.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { noGrad } from '../../src/engine/autograd.js';
import { linear } from '../../src/engine/ops/matmul.js';
import { cfgClasses, cfgTokens, guide } from '../../src/ctf/cfg.js';
import { ctfSample } from '../../src/ctf/ctf.js';
import { maskToClusters } from '../../src/ctf/logits.js';
import { refine, type RefineOptions } from '../../src/ctf/stage2.js';
import { finalHidden } from '../../src/models/gpt-native.js';
import { assertClose } from '../helpers.js';
import { GRID, NUM_CLASSES, agreement, argmax, tinyCtf } from './models.js';

const { V, map, stage1, aux, classes, coarse } = tinyCtf(), T = GRID * GRID;

test('final hidden states times the output head are forward()\'s logits', () => {
  noGrad(() => {
    const h = finalHidden(aux, classes, coarse);
    assert.deepEqual(h.shape, [classes.length, T, aux.config.dim]);
    assertClose(linear(h, aux.output).f32, aux.forward(classes, coarse, { training: false }).f32,
      { atol: 1e-5, what: 'logits' });
    const c = finalHidden(stage1, classes, coarse.subarray(0, classes.length * (T - 1)));
    assert.deepEqual(c.shape, [classes.length, T, stage1.config.dim], 'causal: the class position too');
    const prefix = coarse.subarray(0, classes.length * (T - 1));
    assertClose(linear(c, stage1.output).f32, stage1.forward(classes, prefix, { training: false }).f32,
      { atol: 1e-5, what: 'causal logits' });
    for (const n of [1, 3]) {  // the native pass gives each thread whole sequences: one alone, and an odd split
      const cl = classes.subarray(0, n), co = coarse.subarray(0, n * T);
      assertClose(linear(finalHidden(aux, cl, co), aux.output).f32, aux.forward(cl, co, { training: false }).f32,
        { atol: 1e-5, what: `logits of ${n}` });
    }
  });
});

test('with the cluster mask every fine id lies in its predicted cluster (both heads); without it many escape', () => {
  for (const seed of [0, 1, 2]) {
    for (const head of ['fast', 'full'] as const) {
      const o = { classes, cfgScale: 2, seed, stage2: { head, temperature: 1.5 } };
      const { coarse: c, fine } = ctfSample(stage1, aux, map, o);
      for (let i = 0; i < fine.length; i++)
        assert.equal(map.fineToCoarse[fine[i]!], c[i], `${head} head, seed ${seed}, token ${i}`);
    }
  }
  const { coarse: c, fine } = ctfSample(stage1, aux, map, { classes, seed: 0, stage2: { clusterMask: false } });
  let inside = 0;
  for (let i = 0; i < fine.length; i++) inside += map.fineToCoarse[fine[i]!] === c[i] ? 1 : 0;
  assert.ok(inside < fine.length / 2,
    `an untrained aux without the mask stays in the cluster ${inside}/${fine.length} times`);
});

const settings: [string, RefineOptions][] = [
  ['multinomial', {}],
  ['τ2 1.7, top-k 3', { temperature: 1.7, topK: 3 }],
  ['top-k 40 (more than any cluster), top-p 0.8', { topK: 40, topP: 0.8 }],
  ['greedy', { temperature: 0 }],
];
for (const [name, o] of settings) {
  test(`the fast masked head samples exactly what the full-V head with the mask does (${name})`, () => {
    const seeds = [0, 1, 2, 3];
    const largest = Math.max(...map.members.map((m) => m.length));
    if (o.topK === 40) assert.ok(largest < 40, 'top-k reaches past the cluster into −∞ logits');
    for (const seed of seeds) {
      const fast = refine(aux, map, classes, coarse, { ...o, seed, head: 'fast' });
      const full = refine(aux, map, classes, coarse, { ...o, seed, head: 'full' });
      assert.deepEqual(fast, full, `seed ${seed}`);
    }
  });
}

test('greedy stage 2 with the mask is the argmax of the masked full logits', () => {
  const fine = refine(aux, map, classes, coarse, { temperature: 0 });
  const logits = maskToClusters(noGrad(() => aux.forward(classes, coarse, { training: false }).f32), V, coarse, map);
  for (let i = 0; i < fine.length; i++) assert.equal(fine[i], argmax(logits.subarray(i * V, (i + 1) * V)));
});

test('stage-2 guidance: scale 1 is no guidance; other scales mix [cond; null] like stage 1', () => {
  const plain = refine(aux, map, classes, coarse, { seed: 5 });
  assert.deepEqual(refine(aux, map, classes, coarse, { seed: 5, cfgScale: 1 }), plain);
  assert.deepEqual(refine(aux, map, classes, coarse, { seed: 5, cfgScale: 1, head: 'full' }), plain);
  const doubled = noGrad(() =>
    aux.forward(cfgClasses(classes, NUM_CLASSES), cfgTokens(coarse), { training: false }).f32);
  const cond = noGrad(() => aux.forward(classes, coarse, { training: false }).f32);
  assertClose(guide(doubled, V, 1), cond, { atol: 1e-5, what: 'doubled batch guided at scale 1' });
  // Guidance through the hidden states (fast head) equals guidance of the logits (full head).
  const fast = refine(aux, map, classes, coarse, { seed: 5, cfgScale: 3 });
  const full = refine(aux, map, classes, coarse, { seed: 5, cfgScale: 3, head: 'full' });
  assert.ok(agreement(fast, full) > 0.995,
    `fast and full guided heads agree on ${agreement(fast, full)} of the tokens`);
  assert.ok(agreement(fast, plain) < 0.9, 'scale 3 changes the samples');
});
