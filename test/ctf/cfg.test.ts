// Classifier-free guidance: the doubled batch, the mix, and that guiding final hidden states guides the logits
// (what stage 2's members-only head relies on). Guidance inside sampling: generate.test.ts, stage2.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cfgClasses, cfgTokens, guide, resolveGuidedOptions, usesCfg } from '../../src/ctf/cfg.js';
import { noGrad } from '../../src/engine/autograd.js';
import { linear } from '../../src/engine/ops/matmul.js';
import { Tensor } from '../../src/engine/tensor.js';
import { finalHidden } from '../../src/models/gpt-native.js';
import { assertClose } from '../helpers.js';
import { NUM_CLASSES, tinyGpt } from './models.js';

test('the doubled batch is [cond; null] over the same tokens, and guide mixes its halves', () => {
  assert.deepEqual(Array.from(cfgClasses(Int32Array.from([1, 2]), 3)), [1, 2, 3, 3]);
  assert.deepEqual(Array.from(cfgTokens(Int32Array.from([4, 5]))), [4, 5, 4, 5]);
  // 1 + 2·(3 − 1), 1 + 2·(1 − 1)
  assert.deepEqual(Array.from(guide(Float32Array.from([3, 1, 1, 1]), 2, 2)), [5, 1]);
  const out = new Float32Array(2);
  assert.equal(guide(Float32Array.from([3, 1, 1, 1]), 2, 0, out), out, 'into the given buffer');
  assert.deepEqual(Array.from(out), [1, 1], 'scale 0 is the unconditional half');
  assert.throws(() => guide(new Float32Array(6), 2, 2), /guide: 6 values are not \(2B, 2\) rows/);
  assert.ok(!usesCfg(1) && usesCfg(0) && usesCfg(2));
});

test('guiding the final hidden states guides the logits: the head is linear and bias-free', () => {
  const aux = tinyGpt(8, 40, false, 2), T = aux.config.grid ** 2, B = 3;
  const classes = Int32Array.from([0, 2, 4]), coarse = Int32Array.from({ length: B * T }, (_, i) => (i * 7) % 8);
  noGrad(() => {
    const cls = cfgClasses(classes, NUM_CLASSES), tokens = cfgTokens(coarse);
    const states = finalHidden(aux, cls, tokens).f32, D = aux.config.dim;
    const viaHidden = linear(new Tensor(guide(states, D, 2.5), [B * T, D]), aux.output).f32;
    const viaLogits = guide(aux.forward(cls, tokens, { training: false }).f32, aux.config.outVocab, 2.5);
    assertClose(viaHidden, viaLogits, { atol: 1e-4, what: 'guided logits' });
  });
});

test('guided options: defaults, and a bad value is refused under the name the caller gives it', () => {
  assert.deepEqual(resolveGuidedOptions({}, (f) => f), { cfgScale: 1, temperature: 1, topK: 0, topP: 1 });
  const flags: Record<string, string> = { cfgScale: '--cfg', temperature: '--t1', topK: '--top-k', topP: '--top-p' };
  const flag = (f: string): string => flags[f]!;
  assert.throws(() => resolveGuidedOptions({ cfgScale: NaN }, flag), /--cfg NaN must be a finite number/);
  assert.throws(() => resolveGuidedOptions({ temperature: -1 }, flag), /--t1 -1 must be a number ≥ 0/);
  assert.throws(() => resolveGuidedOptions({ topK: 1.5 }, flag), /--top-k 1.5 must be an integer ≥ 0/);
  for (const topP of [0, 1.5])
    assert.throws(() => resolveGuidedOptions({ topP }, flag), /--top-p .* must lie in \(0, 1\]/);
});
