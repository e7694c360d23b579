// GPT training on token files: each kind learns, resume is exact, mismatched inputs are refused.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildCoarseMap, type CoarseMap } from '../../src/cluster/coarse-map.js';
import { Rng } from '../../src/engine/rng.js';
import { Tensor } from '../../src/engine/tensor.js';
import { Gpt, gptConfig } from '../../src/models/gpt.js';
import { tokenizerConfig } from '../../src/tokenizer/config.js';
import type { TokenSet } from '../../src/tokenizer/tokens-file.js';
import { loadTrainState, saveTrainState } from '../../src/train/checkpoint.js';
import type { TrainEvent } from '../../src/train/events.js';
import {
  GptTrainTask,
  gptTask,
  sequenceBatch,
  validationLoss,
  type GptKind,
  type GptTrainOptions,
} from '../../src/train/gpt-train.js';
import { StopRequest } from '../../src/train/interrupt.js';
import { runTraining } from '../../src/train/loop.js';

const V = 64, K = 8, grid = 4, T = grid * grid, N = 96, classes = 3;

/** Learnable synthetic "images": class c repeats a per-class pattern of fine tokens with a little noise. */
function tokenSet(hash = 'tok-hash'): TokenSet {
  const rng = new Rng(5);
  const patterns = Array.from({ length: classes }, () => Int32Array.from({ length: T }, () => rng.int(V)));
  const tokens = new Int32Array(N * T), labels = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    labels[n] = n % classes;
    for (let t = 0; t < T; t++) tokens[n * T + t] = rng.uniform() < 0.1 ? rng.int(V) : patterns[n % classes]![t]!;
  }
  return {
    tokens: new Tensor(tokens, [N, grid, grid]),
    labels,
    flipped: new Int32Array(N),
    tokenizerHash: hash,
    tokenizerConfig: tokenizerConfig('tiny', { inChannels: 1, imageSize: 16 }, { codebookSize: V }),
    data: {
      name: 'synthetic',
      split: 'train',
      count: N,
      channels: 1,
      height: 16,
      width: 16,
      numClasses: classes,
      preprocessing: { pad: 0 } as never,
      sha256: 'x',
    },
    source: 'synthetic',
  };
}

function coarseMap(hash = 'tok-hash'): CoarseMap {
  const codebook = new Tensor(new Rng(3).fillNormal(new Float32Array(V * 8)), [V, 8]);
  return buildCoarseMap(codebook, { k: K, seed: 0, restarts: 1, maxIter: 20, tokenizerHash: hash }).map;
}

const options: GptTrainOptions = {
  epochs: 4,
  batchSize: 16,
  lr: 3e-3,
  warmup: 4,
  schedule: 'cosine',
  minLrRatio: 0.1,
  weightDecay: 0.05,
  gradClip: 1,
  seed: 1,
};

async function train(
  kind: GptKind,
  data: TokenSet,
  map: CoarseMap | null,
  o: {
    path?: string;
    stopAt?: number;
    resumeFrom?: string;
    opts?: Partial<GptTrainOptions>;
    evalEvery?: number;
    evals?: TrainEvent[];
    masked?: boolean;
  } = {},
) {
  const opts = { ...options, ...o.opts };
  const sizes = { layers: 1, dim: 32, heads: 2, ...(o.masked ? { fineVocab: V + 1 } : {}) };
  const model = new Gpt(gptConfig('tiny', gptTask(kind, data, map), sizes), new Rng(opts.seed).split('init'));
  const task = new GptTrainTask(
    kind,
    model,
    data,
    map,
    opts,
    async (t, step) => {
      if (o.path) await saveTrainState(o.path, t.trainState(step));
      return o.path ?? '';
    },
    o.evalEvery ? (t) => ({ valLoss: validationLoss(t.model, kind, data, map) }) : undefined,
  );
  const start = o.resumeFrom ? task.restore(await loadTrainState(o.resumeFrom, `gpt:${kind}`)) : 0;
  const stop = new StopRequest();
  const losses: number[] = [];
  const emit = (e: TrainEvent): void => {
    if (e.type === 'eval') o.evals?.push(e);
    if (e.type !== 'progress') return;
    losses.push(e.loss);
    if (e.step === o.stopAt) stop.request('test');
  };
  const result = await runTraining(task, {
    optimizer: task.optimizer,
    params: model.parameters(),
    lr: (s) => task.lr(s),
    startStep: start,
    gradClip: 1,
    progressEvery: 1,
    evalEvery: o.evalEvery,
    stop,
    emit,
  });
  return { model, losses, result, weights: model.parameters().map((p) => p.f32.slice()) };
}

test('sequences: causal kinds shift by one, the aux reads all coarse labels and predicts fine ones', () => {
  const data = tokenSet(), map = coarseMap();
  const fine = data.tokens.i32;
  const base = sequenceBatch('baseline', fine, [2], T, null);
  assert.deepEqual([...base.targets], [...fine.subarray(2 * T, 3 * T)]);
  assert.deepEqual([...base.inputs], [...fine.subarray(2 * T, 3 * T - 1)]);
  const ar = sequenceBatch('stage1', fine, [2], T, map);
  assert.deepEqual([...ar.targets], [...fine.subarray(2 * T, 3 * T)].map((t) => map.fineToCoarse[t]!));
  assert.equal(ar.inputs.length, T - 1);
  const aux = sequenceBatch('aux', fine, [2], T, map);
  assert.deepEqual([...aux.inputs], [...ar.targets]);
  assert.deepEqual([...aux.targets], [...base.targets]);
  assert.deepEqual(gptTask('aux', data, map), { inVocab: K, outVocab: V, numClasses: classes, grid, causal: false });
  assert.deepEqual(gptTask('stage1', data, map), { inVocab: K, outVocab: K, numClasses: classes, grid, causal: true });
});

for (const kind of ['baseline', 'stage1', 'aux'] as const) {
  test(`${kind}: training lowers the validation loss well below chance`, async () => {
    const data = tokenSet(), map = kind === 'baseline' ? null : coarseMap();
    const { model } = await train(kind, data, map, { opts: { epochs: 12 } });
    const chance = Math.log(kind === 'stage1' ? K : V);
    const loss = validationLoss(model, kind, data, map);
    assert.ok(loss < 0.6 * chance, `validation loss ${loss} vs chance ${chance}`);
  });
}

test('resume continues exactly: N steps = N/2 + save + restore + N/2 (losses and weights bit for bit)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-gpt-'));
  try {
    const data = tokenSet(), map = coarseMap();
    const whole = await train('stage1', data, map, { path: join(dir, 'a.safetensors') });
    const first = await train('stage1', data, map, { path: join(dir, 'b.safetensors'), stopAt: 7 });
    assert.equal(first.result.stopped, true);
    const second = await train('stage1', data, map, {
      path: join(dir, 'c.safetensors'),
      resumeFrom: join(dir, 'b.safetensors'),
    });
    assert.deepEqual([...first.losses, ...second.losses], whole.losses);
    whole.weights.forEach((w, i) => assert.deepEqual(second.weights[i], w, `parameter ${i}`));
    await assert.rejects(
      train('stage1', data, map, { resumeFrom: join(dir, 'b.safetensors'), opts: { lr: 1e-3 } }),
      /trained with lr = 0\.003, this run has 0\.001/,
    );
    await assert.rejects(loadTrainState(join(dir, 'b.safetensors'), 'gpt:aux'), /not a "gpt:aux" run/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('resume of a masked-refinement aux is exact too (the masks are a function of the step)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-gpt-'));
  try {
    const data = tokenSet(), map = coarseMap();
    const whole = await train('aux', data, map, { path: join(dir, 'a.safetensors'), masked: true });
    await train('aux', data, map, { path: join(dir, 'b.safetensors'), stopAt: 9, masked: true });
    const second = await train('aux', data, map, {
      path: join(dir, 'c.safetensors'),
      resumeFrom: join(dir, 'b.safetensors'),
      masked: true,
    });
    whole.weights.forEach((w, i) => assert.deepEqual(second.weights[i], w, `parameter ${i}`));
    assert.equal(whole.model.fineTable!.size, (V + 1) * 32);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('validation every N steps reports a curve and leaves the trajectory ' +
  'untouched (losses and weights bit for bit)', async () => {
  const data = tokenSet(), map = coarseMap();
  const plain = await train('aux', data, map);
  const evals: TrainEvent[] = [];
  const watched = await train('aux', data, map, { evalEvery: 6, evals });
  assert.deepEqual(watched.losses, plain.losses);
  plain.weights.forEach((w, i) => assert.deepEqual(watched.weights[i], w, `parameter ${i}`));
  assert.deepEqual(evals.map((e) => e.step), [6, 12, 18, 24]);  // 4 epochs × 6 steps
  const curve = evals.map((e) => (e.type === 'eval' ? e.metrics['valLoss']! : NaN));
  assert.ok(curve.every(Number.isFinite) && curve[3]! < curve[0]!, `validation curve ${curve}`);
});

test('mismatched inputs are refused with the reason', () => {
  const data = tokenSet();
  assert.throws(
    () => gptTask('stage1', data, coarseMap('other-tokenizer')),
    /coarse map was made from tokenizer other-tok/,
  );
  assert.throws(() => gptTask('aux', data, null), /needs the coarse map/);
  const map = coarseMap();
  const wrongK = new Gpt(gptConfig('tiny', { ...gptTask('stage1', data, map), inVocab: K + 1, outVocab: K + 1 }));
  assert.throws(
    () => new GptTrainTask('stage1', wrongK, data, map, options, async () => ''),
    /the model has inVocab = 9, the data and clusters need 8/,
  );
});
