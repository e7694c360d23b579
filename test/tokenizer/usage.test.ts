import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toModelInput } from '../../src/data/model-input.js';
import { Rng } from '../../src/engine/rng.js';
import { Tensor } from '../../src/engine/tensor.js';
import { tokenizerConfig } from '../../src/tokenizer/config.js';
import { VqTokenizer } from '../../src/tokenizer/model.js';
import { DEFAULT_TOKENIZER_TRAIN, TokenizerTrainTask } from '../../src/tokenizer/train.js';
import { CodeUsage, codebookStats } from '../../src/tokenizer/usage.js';
import { runTraining } from '../../src/train/loop.js';
import { syntheticDataset } from './synthetic.js';

test('codebookStats: usage and perplexity', () => {
  const uniform = codebookStats([5, 5, 5, 5]);
  assert.equal(uniform.usage, 1);
  assert.ok(Math.abs(uniform.perplexity - 4) < 1e-12);
  const one = codebookStats([0, 9, 0, 0]);
  assert.equal(one.usage, 0.25);
  assert.equal(one.perplexity, 1);
  assert.deepEqual(codebookStats([0, 0]), { usage: 0, perplexity: 0 });
});

test('CodeUsage: dead codes are those neither picked nor re-initialised within the window', () => {
  const u = new CodeUsage(5);
  u.observe(Int32Array.of(0, 1, 1), 1);
  u.observe(Int32Array.of(2), 3);
  assert.deepEqual(u.deadCodes(4, 3), [0, 1, 3, 4]);
  assert.deepEqual(u.deadCodes(4, 2), [0, 1, 3, 4].filter((j) => 4 - [1, 1, 3, 0, 0][j]! >= 2));
  u.markReinit([3], 4);
  assert.deepEqual(u.deadCodes(5, 3), [0, 1, 4]);
  assert.equal(u.recentUsage(4, 4), 3 / 5);  // codes 0, 1, 2 picked; re-initialised 3 does not count
  assert.deepEqual(u.takeWindow().usage, 3 / 5);
  assert.equal(u.takeWindow().usage, 0);
});

test('dead-code re-initialisation raises usage where most codewords are never-picked duplicates', async () => {
  // Codewords 8..127 start as copies of codeword 0: ties go to the lowest index, so the copies are never
  // picked, get no gradient and stay dead unless re-initialised.
  const ds = syntheticDataset(64, { seed: 3 });
  const usage = async (reinit: boolean): Promise<number> => {
    const model = new VqTokenizer(
      tokenizerConfig('tiny', { inChannels: 1, imageSize: 32 }, { codebookSize: 128 }),
      new Rng(2),
    );
    const cb = model.quantizer.codebook.f32;
    for (let j = 8; j < 128; j++) cb.copyWithin(j * 8, 0, 8);
    const task = new TokenizerTrainTask(
      model,
      ds,
      { ...DEFAULT_TOKENIZER_TRAIN, epochs: 3, batchSize: 8, warmup: 0, deadCodeReinit: reinit, deadCodeWindow: 4 },
      async () => 'memory',
    );
    await runTraining(task, {
      optimizer: task.optimizer,
      params: model.parameters(),
      lr: (s) => task.lr(s),
      startStep: 0,
      emit: () => undefined,
    });
    const x = new Tensor(toModelInput(ds, Int32Array.from({ length: 64 }, (_, i) => i)).x, [64, 1, 32, 32]);
    const counts = new Float64Array(128);
    for (const j of model.encode(x).i32) counts[j]!++;
    return codebookStats(counts).usage;
  };
  const off = await usage(false), on = await usage(true);
  assert.ok(off <= 8 / 128, `usage without re-init ${off}`);
  assert.ok(on > 0.5, `usage with re-init ${on}`);
});
