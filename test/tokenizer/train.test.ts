import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Rng } from '../../src/engine/rng.js';
import { tokenizerConfig } from '../../src/tokenizer/config.js';
import { VqTokenizer } from '../../src/tokenizer/model.js';
import { DEFAULT_TOKENIZER_TRAIN, TokenizerTrainTask, type TokenizerTrainOptions } from '../../src/tokenizer/train.js';
import { loadTrainState, saveTrainState } from '../../src/train/checkpoint.js';
import type { TrainEvent } from '../../src/train/events.js';
import { StopRequest } from '../../src/train/interrupt.js';
import { runTraining } from '../../src/train/loop.js';
import { syntheticDataset } from './synthetic.js';

const ds = syntheticDataset(48, { seed: 1 });
// Every source of divergence is on: flips, dead-code re-initialisation (small window), warmup + cosine.
const options: TokenizerTrainOptions = {
  ...DEFAULT_TOKENIZER_TRAIN,
  epochs: 2,
  batchSize: 8,
  warmup: 3,
  deadCodeWindow: 2,
  seed: 7,
};
const config = tokenizerConfig('tiny', { inChannels: 1, imageSize: 32 }, { codebookSize: 256 });

/** Trains from scratch or from `resumeFrom`; stops after `stopAt` steps if given. Losses of every step. */
async function train(
  path: string,
  o: { stopAt?: number; resumeFrom?: string },
): Promise<{ losses: number[]; weights: Float32Array[]; result: Awaited<ReturnType<typeof runTraining>> }> {
  const model = new VqTokenizer(config, new Rng(options.seed).split('init'));
  const task = new TokenizerTrainTask(model, ds, options, async (t, step) => {
    await saveTrainState(path, t.trainState(step));
    return path;
  });
  const start = o.resumeFrom ? task.restore(await loadTrainState(o.resumeFrom, 'tokenizer')) : 0;
  const stop = new StopRequest();
  const losses: number[] = [];
  const emit = (e: TrainEvent): void => {
    if (e.type === 'progress') {
      losses.push(e.loss);
      if (e.step === o.stopAt) stop.request('test');
    }
  };
  const result = await runTraining(task, {
    optimizer: task.optimizer,
    params: model.parameters(),
    lr: (s) => task.lr(s),
    startStep: start,
    gradClip: 1,
    progressEvery: 1,
    stop,
    emit,
  });
  return { losses, weights: model.parameters().map((p) => p.f32.slice()), result };
}

test('resume continues the loss exactly: N steps in one go = N/2, save, restore, N/2 (bit for bit)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-tok-'));
  try {
    const whole = await train(join(dir, 'a.safetensors'), {});
    assert.equal(whole.losses.length, 12);
    assert.equal(whole.result.stopped, false);
    const first = await train(join(dir, 'b.safetensors'), { stopAt: 5 });
    assert.equal(first.result.stopped, true);
    assert.equal(first.result.step, 5);
    const second = await train(join(dir, 'c.safetensors'), { resumeFrom: join(dir, 'b.safetensors') });
    assert.deepEqual([...first.losses, ...second.losses], whole.losses);
    whole.weights.forEach((w, i) => assert.deepEqual(second.weights[i], w, `parameter ${i} after the last step`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('resume refuses changed options and configs with the offending field named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-tok-'));
  try {
    const path = join(dir, 's.safetensors');
    await train(path, { stopAt: 1 });
    const saved = await loadTrainState(path, 'tokenizer');
    const other = new TokenizerTrainTask(new VqTokenizer(config), ds, { ...options, lr: 1e-3 }, async () => '');
    assert.throws(() => other.restore(saved), /trained with lr = 0\.002, this run has 0\.001/);
    const wider = new TokenizerTrainTask(
      new VqTokenizer({ ...config, codebookSize: 128 }),
      ds,
      options,
      async () => '',
    );
    assert.throws(() => wider.restore(saved), /tokenizer config .* differs/);
    await assert.rejects(loadTrainState(path, 'gpt'), /resumes a "tokenizer" run, not a "gpt" run/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
