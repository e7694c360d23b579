// The evaluation classifier: shapes, gradients by finite differences, a few training steps lower the loss,
// resume is bit for bit, and checkpoints that do not fit are refused with the reason.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Dataset } from '../../src/data/dataset.js';
import { Rng } from '../../src/engine/rng.js';
import { Tensor } from '../../src/engine/tensor.js';
import { crossEntropy } from '../../src/engine/ops/softmax.js';
import { intTensor } from '../../src/engine/tensor.js';
import {
  Classifier,
  classifierConfig,
  classifierHash,
  loadClassifier,
  saveClassifier,
} from '../../src/eval/classifier.js';
import {
  ClassifierTrainTask,
  DEFAULT_CLASSIFIER_TRAIN,
  randomShift,
  type ClassifierTrainOptions,
} from '../../src/eval/classifier-train.js';
import {
  accuracyAndLoss,
  datasetFeatures,
  pixelFeatures,
  quantizeImages,
  unitImages,
} from '../../src/eval/features.js';
import { decodeSafetensors, encodeSafetensors, type StTensorInput } from '../../src/io/safetensors.js';
import { loadTrainState, saveTrainState } from '../../src/train/checkpoint.js';
import type { TrainEvent } from '../../src/train/events.js';
import { StopRequest } from '../../src/train/interrupt.js';
import { runTraining } from '../../src/train/loop.js';
import { gradcheck, randn } from '../helpers.js';

const data = { inChannels: 1, imageSize: 32, numClasses: 4 };
const tiny = classifierConfig('tiny', data);

/**
 * Class c is a bright horizontal band in the c-th quarter of the rows (a flip keeps the class), at random grey and
 * width.
 */
function bands(count: number, seed: number, size = 32): Dataset {
  const rng = new Rng(seed), images = new Uint8Array(count * size * size), labels = new Int32Array(count);
  for (let n = 0; n < count; n++) {
    const c = (labels[n] = n % 4),
      q = size / 4,
      v = 128 + rng.int(128),
      x0 = rng.int(size / 2),
      x1 = x0 + size / 4 + rng.int(size / 4);
    for (let y = c * q + 1; y < (c + 1) * q - 1; y++)
      for (let x = x0; x < x1; x++) images[(n * size + y) * size + x] = v;
  }
  return {
    name: 'bands',
    split: 'train',
    count,
    channels: 1,
    height: size,
    width: size,
    numClasses: 4,
    classNames: ['0', '1', '2', '3'],
    images,
    labels,
    flipPreservesClass: true,
    preprocessing: { pad: 0, padValue: 0, resize: null },
  };
}

test('classifier forward: features (B, featureDim), logits (B, classes), probabilities sum to 1; both pools', () => {
  for (const pool of ['mean', 'flatten'] as const) {
    const c = { ...tiny, pool };
    const model = new Classifier(c, new Rng(1));
    const x = new Tensor(new Rng(2).fillUniform(new Float32Array(3 * 1024), -1, 1), [3, 1, 32, 32]);
    const out = model.forward(x);
    assert.deepEqual(out.features.shape, [3, c.featureDim]);
    assert.deepEqual(out.logits.shape, [3, 4]);
    assert.ok(out.features.f32.every((v) => v >= 0), 'features are post-ReLU');
    const e = model.embed(x);
    for (let i = 0; i < 3; i++)
      assert.ok(Math.abs(e.probs.subarray(4 * i, 4 * i + 4).reduce((a, b) => a + b, 0) - 1) < 1e-5);
    assert.deepEqual(Array.from(e.features), Array.from(out.features.f32));
    assert.equal(model.fcWeight.dim(1), pool === 'mean' ? 8 : 8 * 16 * 16);
  }
  assert.throws(
    () => new Classifier(tiny).forward(new Tensor(new Float32Array(2 * 28 * 28), [2, 1, 28, 28])),
    /must be f32 \(B, 1, 32, 32\)/,
  );
  assert.throws(
    () => classifierConfig('tiny', data, { widths: [6, 8], normGroups: 4 }),
    /width 6 is not divisible by 4 GroupNorm groups/,
  );
  assert.throws(() => classifierConfig('XL', data), /unknown preset "XL"/);
});

test('classifier gradients (input and every kind of parameter) match finite differences', () => {
  for (const pool of ['mean', 'flatten'] as const) {
    const model = new Classifier({ ...tiny, imageSize: 8, pool }, new Rng(3));
    const x = randn([2, 1, 8, 8], 4, { requiresGrad: true });
    const targets = intTensor([1, 3], [2]);
    const params = model.parameters();
    // Two units (conv, norm), fc and head: every parameter role, input included.
    gradcheck(() => crossEntropy(model.forward(x).logits, targets), [x, ...params], { eps: 1e-3, maxPerInput: 12 });
  }
});

test('randomShift moves every image by its own offset, filling with the background', () => {
  const x = Float32Array.from({ length: 2 * 16 }, (_, i) => i);
  const shifted = x.slice();
  randomShift(shifted, [2, 1, 4, 4], 1, new Rng(5));
  for (let b = 0; b < 2; b++) {
    const img = Array.from(shifted.subarray(16 * b, 16 * b + 16)), src = Array.from(x.subarray(16 * b, 16 * b + 16));
    const kept = img.filter((v) => v !== -1);
    assert.ok(kept.every((v) => src.includes(v)), 'only the image\'s own pixels and background');
    const moves = new Set(img.map((v, p) => (v === -1 ? null : p - src.indexOf(v))).filter((d) => d !== null));
    assert.equal(moves.size, 1, 'one rigid offset per image');
  }
  const same = x.slice();
  randomShift(same, [2, 1, 4, 4], 0, new Rng(5));
  assert.deepEqual(same, x);
});

test('u8 round trip: quantize → unit → quantize is the identity; features of u8 ' +
  'images equal those of their dataset', () => {
  const u8 = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.deepEqual(quantizeImages(unitImages(u8)), u8);
  const ds = bands(8, 1),
    model = new Classifier(tiny, new Rng(0));
  const a = datasetFeatures(model, ds, { batchSize: 4 }),
    b = pixelFeatures(model, ds.images, [8, 1, 32, 32], { batchSize: 4 });
  assert.deepEqual(a.features, b.features);
  assert.deepEqual(a.probs, b.probs);
  assert.throws(
    () => pixelFeatures(model, new Uint8Array(28 * 28), [1, 1, 28, 28]),
    /images are 1×28×28, the classifier takes 1×32×32/,
  );
});

const options: ClassifierTrainOptions = {
  ...DEFAULT_CLASSIFIER_TRAIN,
  epochs: 4,
  batchSize: 16,
  warmup: 2,
  lr: 1e-2,
  seed: 7,
  shift: 1,
};

async function train(
  ds: Dataset,
  path: string,
  o: { stopAt?: number; resumeFrom?: string } = {},
): Promise<{ losses: number[]; model: Classifier; stopped: boolean }> {
  // the bands need positions; every random stream on: order, flips, shifts, dropout
  const config = { ...tiny, pool: 'flatten' as const, dropout: 0.1 };
  const model = new Classifier(config, new Rng(options.seed).split('init'));
  const task = new ClassifierTrainTask(model, ds, options, async (t, step) => {
    await saveTrainState(path, t.trainState(step));
    return path;
  });
  const start = o.resumeFrom ? task.restore(await loadTrainState(o.resumeFrom, 'classifier')) : 0;
  const stop = new StopRequest(),
    losses: number[] = [];
  const emit = (e: TrainEvent): void => {
    if (e.type !== 'progress') return;
    losses.push(e.loss);
    if (e.step === o.stopAt) stop.request('test');
  };
  const r = await runTraining(task, {
    optimizer: task.optimizer,
    params: model.parameters(),
    lr: (s) => task.lr(s),
    startStep: start,
    gradClip: 1,
    progressEvery: 1,
    stop,
    emit,
  });
  return { losses, model, stopped: r.stopped };
}

test('training lowers the loss and learns the bands; resume repeats it bit for bit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-cls-'));
  try {
    const ds = bands(64, 1);
    const whole = await train(ds, join(dir, 'a.safetensors'));
    assert.equal(whole.losses.length, 16);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(
      mean(whole.losses.slice(-4)) < 0.7 * mean(whole.losses.slice(0, 4)),
      `loss ${whole.losses.map((l) => l.toFixed(3)).join(' ')}`,
    );
    const held = bands(64, 2);
    assert.ok(
      accuracyAndLoss(datasetFeatures(whole.model, held), held.labels).accuracy > 0.5,
      'better than chance on unseen bands',
    );

    const first = await train(ds, join(dir, 'b.safetensors'), { stopAt: 6 });
    assert.equal(first.stopped, true);
    const second = await train(ds, join(dir, 'c.safetensors'), { resumeFrom: join(dir, 'b.safetensors') });
    assert.deepEqual([...first.losses, ...second.losses], whole.losses);
    whole.model.parameters().forEach((p, i) => assert.deepEqual(second.model.parameters()[i]!.f32, p.f32));

    const saved = await loadTrainState(join(dir, 'b.safetensors'), 'classifier');
    const other = new ClassifierTrainTask(
      new Classifier({ ...tiny, pool: 'flatten', dropout: 0.1 }),
      ds,
      { ...options, lr: 5e-3 },
      async () => '',
    );
    assert.throws(() => other.restore(saved), /it was trained with lr = 0.01, this run has 0.005/);
    const wider = new ClassifierTrainTask(
      new Classifier({ ...tiny, pool: 'flatten', dropout: 0.1, featureDim: 32 }),
      ds,
      options,
      async () => '',
    );
    assert.throws(() => wider.restore(saved), /its classifier config .* differs/);
    await assert.rejects(
      loadTrainState(join(dir, 'b.safetensors'), 'tokenizer'),
      /it resumes a "classifier" run, not a "tokenizer" run/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Rewrites a checkpoint file after editing its tensors and metadata. */
function edit(
  path: string,
  out: string,
  f: (t: Map<string, StTensorInput>, m: Record<string, string>) => void,
): string {
  const file = decodeSafetensors(readFileSync(path), path);
  const tensors = new Map<string, StTensorInput>(
    [...file.tensors].map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, data: t.data.slice() }]),
  );
  const meta = { ...file.metadata };
  f(tensors, meta);
  writeFileSync(out, encodeSafetensors(tensors, meta));
  return out;
}

test('classifier checkpoints round-trip and refuse files that do not fit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-clsck-'));
  try {
    const model = new Classifier(tiny, new Rng(3)), path = join(dir, 'c.safetensors');
    await saveClassifier(path, model, { data_load: { spec: 'bands', pad: 0 } });
    const loaded = await loadClassifier(path);
    assert.equal(loaded.hash, classifierHash(model));
    assert.deepEqual(loaded.model.config, model.config);
    const x = new Tensor(new Rng(0).fillUniform(new Float32Array(2 * 1024), -1, 1), [2, 1, 32, 32]);
    assert.deepEqual(loaded.model.embed(x).probs, model.embed(x).probs);
    assert.notEqual(classifierHash(new Classifier(tiny, new Rng(4))), loaded.hash);

    await assert.rejects(
      loadClassifier(
        edit(path, join(dir, 'kind.safetensors'), (_t, m) => {
          m['kind'] = 'ctfgen.tokenizer';
        }),
      ),
      /not a classifier checkpoint \(metadata kind "ctfgen.tokenizer", expected "ctfgen.classifier"\)/,
    );
    await assert.rejects(
      loadClassifier(
        edit(path, join(dir, 'state.safetensors'), (_t, m) => {
          m['kind'] = 'ctfgen.train-state';
        }),
      ),
      /this is the training state; pass the classifier file written beside it/,
    );
    await assert.rejects(
      loadClassifier(
        edit(path, join(dir, 'cfg.safetensors'), (_t, m) => {
          m['config'] = JSON.stringify({ ...tiny, featureDim: 32 });
        }),
      ),
      /"fc\.weight" has shape \[16,8\], expected \[32,8\]/,
    );
    await assert.rejects(
      loadClassifier(
        edit(path, join(dir, 'w.safetensors'), (t) => {
          (t.get('head.bias')!.data as Float32Array)[0]! += 1;
        }),
      ),
      /the weights hash to .* the metadata says .* corrupted or was edited/,
    );
    await assert.rejects(
      loadClassifier(
        edit(path, join(dir, 'bad.safetensors'), (_t, m) => {
          m['config'] = '{"widths": []}';
        }),
      ),
      /stored config is invalid/,
    );
    await assert.rejects(
      saveClassifier(join(dir, 'x.safetensors'), model, { hash: 'mine' }),
      /metadata key "hash" is reserved/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
