import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { backward } from '../../src/engine/autograd.js';
import { mean } from '../../src/engine/ops/reduce.js';
import { mul } from '../../src/engine/ops/elementwise.js';
import { AdamW } from '../../src/engine/optim.js';
import { Rng } from '../../src/engine/rng.js';
import { Tensor } from '../../src/engine/tensor.js';
import {
  loadTrainState,
  restoreModelAndOptimizer,
  saveTrainState,
  savedStateTensor,
} from '../../src/train/checkpoint.js';
import type { TrainEvent } from '../../src/train/events.js';
import { NonFiniteGuard } from '../../src/train/guard.js';
import { StopRequest } from '../../src/train/interrupt.js';
import { runTraining, type TrainTask } from '../../src/train/loop.js';

/** Minimises mean(w²); step `nanAt` reports a NaN loss. */
function quadratic(nanAt: number[] = []) {
  const w = new Tensor(Float32Array.of(1, -2, 3), [3], { requiresGrad: true, name: 'w' });
  const saves: number[] = [];
  const task: TrainTask = {
    totalSteps: 10, stepsPerEpoch: 4, itemsPerStep: 2,
    forwardBackward(step) {
      const loss = mean(mul(w, w));
      backward(loss);
      return { loss: nanAt.includes(step) ? NaN : loss.item(), metrics: { double: 2 * loss.item() } };
    },
    async save(step) { saves.push(step); return `ckpt-${step}`; },
  };
  return { w, task, saves, opt: new AdamW([w], { lr: 0.1, weightDecay: 0 }) };
}

test('runTraining: progress windows, epochs, checkpoint cadence, throughput and ETA', async () => {
  const { w, task, saves, opt } = quadratic();
  const events: TrainEvent[] = [];
  const r = await runTraining(task, {
    optimizer: opt,
    params: [w],
    lr: () => 0.1,
    startStep: 0,
    progressEvery: 3,
    checkpointEvery: 4,
    emit: (e) => events.push(e),
  });
  assert.deepEqual(r, { step: 10, stopped: false, atStopStep: false, checkpoint: 'ckpt-10' });
  assert.deepEqual(saves, [4, 8, 10]);
  const progress = events.filter((e) => e.type === 'progress');
  assert.deepEqual(progress.map((e) => e.step), [3, 6, 9, 10]);
  for (const p of progress) {
    assert.ok(Math.abs(p.metrics['double']! - 2 * p.loss) < 1e-6, 'metrics are window means like the loss');
    assert.ok(p.itemsPerSec > 0 && p.etaSec >= 0);
  }
  assert.deepEqual(events.filter((e) => e.type === 'epoch').map((e) => e.epoch), [1, 2]);
  assert.equal(events[0]!.type, 'start');
  assert.equal(events.at(-1)!.type, 'done');
  assert.ok(progress.at(-1)!.loss < progress[0]!.loss);
});

test('runTraining: a non-finite step is skipped (weights untouched); too many in a row stop the run', async () => {
  const { w, task, opt } = quadratic([2]);
  const seen: number[][] = [];
  const events: TrainEvent[] = [];
  const wrapped: TrainTask = {
    ...task,
    forwardBackward: (s) => {
      seen.push(Array.from(w.f32));
      return task.forwardBackward(s);
    },
    save: task.save,
  };
  await runTraining(wrapped, { optimizer: opt, params: [w], lr: () => 0.1, startStep: 0, emit: (e) => events.push(e) });
  assert.deepEqual(seen[3], seen[2], 'the NaN step did not move the weights');
  assert.notDeepEqual(seen[2], seen[1]);
  assert.deepEqual(events.filter((e) => e.type === 'nonfinite').map((e) => e.type === 'nonfinite' && e.step), [2]);

  const bad = quadratic([0, 1, 2, 3, 4, 5]);
  await assert.rejects(
    runTraining(bad.task, {
      optimizer: bad.opt,
      params: [bad.w],
      lr: () => 0.1,
      startStep: 0,
      guard: new NonFiniteGuard(3),
      emit: () => undefined,
    }),
    /training diverged: .* non-finite for 3 steps in a row/,
  );
  assert.deepEqual(bad.saves, [], 'nothing saved over the last good checkpoint');
});

test('runTraining: stopAt saves after that many steps and returns; a run resumed there goes on', async () => {
  const { w, task, saves, opt } = quadratic();
  const events: TrainEvent[] = [];
  const r = await runTraining(task, { optimizer: opt, params: [w], lr: () => 0.1, startStep: 0, stopAt: 6,
    emit: (e) => events.push(e) });
  assert.deepEqual(r, { step: 6, stopped: true, atStopStep: true, checkpoint: 'ckpt-6' });
  assert.deepEqual(events.at(-1), { type: 'stopped', step: 6, signal: '--stop-at 6', path: 'ckpt-6' });
  const again = await runTraining(task, { optimizer: opt, params: [w], lr: () => 0.1, startStep: 6, stopAt: 6,
    emit: () => undefined });
  assert.deepEqual([again.step, again.stopped, saves], [10, false, [6, 10]]);
});

test('runTraining: a stop request saves and returns; SIGINT raises it', async () => {
  const { w, task, saves, opt } = quadratic();
  const stop = new StopRequest();
  const r = await runTraining(task, {
    optimizer: opt, params: [w], lr: () => 0.1, startStep: 0, stop, progressEvery: 1,
    emit: (e) => { if (e.type === 'progress' && e.step === 4) stop.request('SIGINT'); },
  });
  assert.deepEqual(r, { step: 4, stopped: true, atStopStep: false, checkpoint: 'ckpt-4' });
  assert.deepEqual(saves, [4]);

  // A further signal goes to onRepeat (the CLI exits there); the library itself never exits the process.
  const repeats: [string, number][] = [];
  const s = new StopRequest().listen(['SIGUSR2'], (sig, ms) => repeats.push([sig, ms]));
  try {
    process.kill(process.pid, 'SIGUSR2');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(s.signal, 'SIGUSR2');
    assert.deepEqual(repeats, []);
    process.kill(process.pid, 'SIGUSR2');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(repeats.length, 1);
    assert.equal(repeats[0]![0], 'SIGUSR2');
    assert.ok(repeats[0]![1] >= 40, `${repeats[0]![1]} ms after the first`);
  } finally {
    s.dispose();
  }
});

test('train state: one file holds parameters, AdamW moments, step, RNG, data position and task tensors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-state-'));
  try {
    const { w, opt } = quadratic();
    backward(mean(mul(w, w)));
    opt.step();
    const rng = new Rng(4);
    rng.uniform();
    const path = join(dir, 's.safetensors');
    await saveTrainState(path, {
      task: 'demo',
      step: 1,
      config: { width: 3 },
      options: { lr: 0.1 },
      rng: { data: rng.getState() },
      data: { epoch: 0, index: 1 },
      extra: { note: 'x' },
      model: new Map([['w', w]]),
      optimizer: opt.stateDict(),
      state: new Map([['counts', new Tensor(Int32Array.of(1, 2), [2])]]),
    });
    const saved = await loadTrainState(path, 'demo');
    assert.equal(saved.step, 1);
    assert.deepEqual(saved.config, { width: 3 });
    assert.deepEqual(saved.data, { epoch: 0, index: 1 });
    assert.deepEqual(saved.extra, { note: 'x' });
    const r2 = new Rng(0);
    r2.setState(saved.rng['data']!);
    assert.equal(r2.uniform(), rng.uniform());
    assert.deepEqual(Array.from(savedStateTensor(saved, 'counts', [2], 'i32').i32), [1, 2]);

    const w2 = new Tensor(new Float32Array(3), [3], { requiresGrad: true, name: 'w' });
    const opt2 = new AdamW([w2], { lr: 0.1, weightDecay: 0 });
    restoreModelAndOptimizer(saved, new Map([['w', w2]]), opt2);
    assert.deepEqual(Array.from(w2.f32), Array.from(w.f32));
    assert.deepEqual(opt2.stateDict(), opt.stateDict());
    const wrong = new Tensor(new Float32Array(4), [4], { requiresGrad: true, name: 'w' });
    const v = new Tensor(new Float32Array(3), [3], { requiresGrad: true, name: 'v' });
    assert.throws(
      () =>
        restoreModelAndOptimizer(
          saved,
          new Map([
            ['w', wrong],
            ['v', v],
          ]),
          new AdamW([wrong, v], { lr: 0.1 }),
        ),
      /2 parameter\(s\) do not match: "w" has shape \[3\], the model has \[4\]; "v" is missing/,
    );
    await assert.rejects(loadTrainState(path, 'tokenizer'), /resumes a "demo" run, not a "tokenizer" run/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
