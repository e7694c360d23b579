// Masked refinement of the fine tokens: the masks (counts, targets, seeds), the aux that reads chosen fine tokens
// (embedding, checkpoint layout, the native hidden pass), and that training it buys what the neighbours' tokens say.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildCoarseMap } from '../../src/cluster/coarse-map.js';
import { imageRngs, maskToClusters } from '../../src/ctf/logits.js';
import { refine } from '../../src/ctf/stage2.js';
import { noGrad } from '../../src/engine/autograd.js';
import { linear } from '../../src/engine/ops/matmul.js';
import { Rng } from '../../src/engine/rng.js';
import { Tensor } from '../../src/engine/tensor.js';
import { Gpt, IGNORE_TARGET, gptConfig } from '../../src/models/gpt.js';
import { decodeGptCheckpoint, encodeGptCheckpoint } from '../../src/models/gpt-checkpoint.js';
import { finalHidden } from '../../src/models/gpt-native.js';
import { maskedShare, revealMask, trainingMask } from '../../src/models/masked-refine.js';
import { sampleLogits } from '../../src/engine/sampling.js';
import { tokenizerConfig } from '../../src/tokenizer/config.js';
import type { TokenSet } from '../../src/tokenizer/tokens-file.js';
import { GptTrainTask, gptTask, validationLoss } from '../../src/train/gpt-train.js';
import { runTraining } from '../../src/train/loop.js';
import { assertClose } from '../helpers.js';

test('masks: counts, targets only where masked, inputs [MASK] there, seeded per row', () => {
  const T = 10, fine = Int32Array.from({ length: 4 * T }, (_, i) => i % 7);
  const half = revealMask(fine, T, 99, 0.5, new Rng(1));
  assert.equal(half.masked, 20);
  for (let i = 0; i < fine.length; i++) {
    const isMasked = half.fineInputs[i] === 99;
    assert.equal(half.targets[i], isMasked ? fine[i] : IGNORE_TARGET);
    if (!isMasked) assert.equal(half.fineInputs[i], fine[i]);
  }
  for (let b = 0; b < 4; b++)
    assert.equal(half.fineInputs.subarray(b * T, (b + 1) * T).filter((f) => f === 99).length, 5);
  assert.deepEqual(revealMask(fine, T, 99, 0.5, new Rng(1)), half);
  assert.equal(revealMask(fine, T, 99, 0, new Rng(1)).masked, 40, 'reveal 0 masks everything: the paper\'s aux');
  assert.throws(() => revealMask(fine, T, 99, 1, new Rng(1)), /reveal 1 must be in \[0, 1\)/);
  const counts = Array.from({ length: 200 }, (_, s) => trainingMask(fine.subarray(0, T), T, 99, new Rng(s)).masked);
  assert.ok(counts.every((m) => m >= 1 && m <= T), 'at least one masked position');
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  assert.ok(Math.abs(mean / T - 2 / Math.PI) < 0.1, `mean masked share ${mean / T}, the cosine schedule's is 2/π`);
  assert.equal(maskedShare(0), 1);
  assert.ok(Math.abs(maskedShare(1)) < 1e-12);
});

const V = 64, K = 8, grid = 4, T = grid * grid;
const task = { inVocab: K, outVocab: V, numClasses: 3, grid, causal: false };

test('an aux with a fine-token table: needs fine inputs, saves fine_embeddings, the native pass agrees', () => {
  const model = new Gpt(gptConfig('tiny', task, { fineVocab: V + 1 }), new Rng(2));
  new Rng(3).fillNormal(model.output.f32, 0, 0.1);
  const classes = Int32Array.of(0, 2), coarse = Int32Array.from({ length: 2 * T }, (_, i) => i % K);
  const fineInputs = Int32Array.from({ length: 2 * T }, (_, i) => (i % 3 === 0 ? V : (5 * i) % V));
  assert.throws(
    () => model.forward(classes, coarse, { training: false }),
    /needs one fine input per token \(32\), got none/,
  );
  assert.throws(
    () => gptConfig('tiny', { ...task, causal: true }, { fineVocab: V + 1 }),
    /fineVocab = 65 must be 0, or outVocab \+ 1/,
  );
  noGrad(() => {
    const logits = model.forward(classes, coarse, { training: false, fineInputs });
    const other = model.forward(classes, coarse, { training: false, fineInputs: fineInputs.map(() => V) });
    assert.ok(logits.f32.some((v, i) => Math.abs(v - other.f32[i]!) > 1e-4), 'the fine inputs change the logits');
    assertClose(linear(finalHidden(model, classes, coarse, fineInputs), model.output).f32, logits.f32, {
      atol: 1e-5,
      what: 'native pass',
    });
  });
  const loaded = decodeGptCheckpoint(encodeGptCheckpoint(model), 'mem');
  assert.equal(loaded.config.fineVocab, V + 1);
  assert.deepEqual(loaded.fineTable!.f32, model.fineTable!.f32);
  const plain = decodeGptCheckpoint(encodeGptCheckpoint(new Gpt(gptConfig('tiny', task), new Rng(2))), 'mem');
  assert.equal(plain.fineTable, null);
  assert.ok(!plain.stateDict().has('fine_embeddings.weight'));
});

test('trained on images whose tokens all repeat one codeword, it learns to copy ' +
  'what is shown; rounds of sampling do', async () => {
  // The coarse labels say the cluster (8 members on average); only the shown tokens say which member.
  const N = 512,
    rng = new Rng(7),
    tokens = new Int32Array(N * T),
    labels = new Int32Array(N);
  for (let n = 0; n < N; n++) tokens.fill(rng.int(V), n * T, (n + 1) * T);
  const data: TokenSet = {
    tokens: new Tensor(tokens, [N, grid, grid]),
    labels,
    flipped: new Int32Array(N),
    tokenizerHash: 'h',
    tokenizerConfig: tokenizerConfig('tiny', { inChannels: 1, imageSize: 16 }, { codebookSize: V }),
    data: {
      name: 'synthetic',
      split: 'train',
      count: N,
      channels: 1,
      height: 16,
      width: 16,
      numClasses: 3,
      preprocessing: { pad: 0 } as never,
      sha256: 'x',
    },
    source: 'synthetic',
  };
  const map = buildCoarseMap(new Tensor(new Rng(3).fillNormal(new Float32Array(V * 8)), [V, 8]), {
    k: K,
    seed: 0,
    restarts: 1,
    maxIter: 20,
    tokenizerHash: 'h',
  }).map;
  const model = new Gpt(
    gptConfig('tiny', gptTask('aux', data, map), { layers: 1, dim: 32, heads: 2, fineVocab: V + 1, dropout: 0 }),
    new Rng(1),
  );
  const opts = {
    epochs: 20,
    batchSize: 32,
    lr: 1e-2,
    warmup: 4,
    schedule: 'cosine' as const,
    minLrRatio: 0.1,
    weightDecay: 0,
    gradClip: 1,
    seed: 1,
  };
  const t = new GptTrainTask('aux', model, data, map, opts, async () => '');
  await runTraining(t, {
    optimizer: t.optimizer,
    params: model.parameters(),
    lr: (s) => t.lr(s),
    startStep: 0,
    gradClip: 1,
    emit: () => undefined,
  });
  const blind = validationLoss(model, 'aux', data, map, { limit: 128 }),
    half = validationLoss(model, 'aux', data, map, { limit: 128, reveal: 0.5 });
  assert.ok(
    half < 0.5 && blind > 1,
    `loss with half shown ${half.toFixed(3)} vs none shown ${blind.toFixed(3)} (a cluster of ~8 members: ln 8 = 2.08)`,
  );

  // Sampling: one round draws every position alone (images rarely come out as one codeword); with rounds, the
  // later positions see the earlier choices and copy them.
  const images = 40,
    classes = Int32Array.from({ length: images }, (_, i) => i % 3);
  const coarse = new Int32Array(images * T);
  for (let n = 0; n < images; n++) coarse.fill(map.fineToCoarse[tokens[n * T]!]!, n * T, (n + 1) * T);
  const uniform = (fine: Int32Array): number => {
    let same = 0;
    for (let n = 0; n < images; n++) same += fine.subarray(n * T, (n + 1) * T).every((f) => f === fine[n * T]) ? 1 : 0;
    return same / images;
  };
  const sample = (rounds: number, batchSize: number): Int32Array =>
    refine(model, map, classes, coarse, { rounds, batchSize, seed: 3 });
  const one = sample(1, 40),
    many = sample(8, 40);
  assert.deepEqual(toCoarseLabels(many, map), coarse, 'every round samples inside the cluster');
  assert.ok(
    uniform(many) > 0.8 && uniform(one) < 0.3,
    `images of one codeword: ${uniform(one)} with 1 round, ${uniform(many)} with 8`,
  );
  assert.deepEqual(sample(8, 7), many, 'the batch size changes no image');
  // One round is the single pass: the full logits with every position masked, the cluster mask, the usual streams.
  const logits = noGrad(() =>
    model.forward(classes, coarse, { training: false, fineInputs: new Int32Array(images * T).fill(V) }),
  ).f32;
  const streams = imageRngs(3, classes).flatMap((r) => Array.from({ length: T }, (_, p) => r.split('aux').split(p)));
  assert.deepEqual(
    sampleLogits(maskToClusters(logits, V, coarse, map), images * T, V, { temperature: 1 }, streams),
    one,
  );
  // Rounds only ever add tokens: what a round keeps, every later round keeps.
  const seen: Int32Array[] = [];
  refine(model, map, classes, coarse, { rounds: 4, batchSize: 40, seed: 3, onRound: (e) => seen.push(e.fine.slice()) });
  const open = seen.map((f) => f.filter((x) => x === V).length / images);
  assert.deepEqual(open, [
    Math.floor(T * Math.cos(Math.PI / 8)),
    Math.floor(T * Math.cos(Math.PI / 4)),
    Math.floor(T * Math.cos((3 * Math.PI) / 8)),
    0,
  ]);
  for (let r = 1; r < seen.length; r++)
    assert.ok(
      seen[r - 1]!.every((f, i) => f === V || f === seen[r]![i]),
      `round ${r + 1} changed a kept token`,
    );
  assert.deepEqual(seen.at(-1), sample(4, 40), 'the last round is the result');
  assert.deepEqual(sample(1, 13), one);
  assert.throws(
    () => refine(model, map, classes, coarse, { rounds: 2, clusterMask: false }),
    /needs the cluster mask on/,
  );
  const plain = new Gpt(gptConfig('tiny', gptTask('aux', data, map), { layers: 1, dim: 32, heads: 2 }), new Rng(1));
  assert.throws(
    () => refine(plain, map, classes, coarse, { rounds: 2 }),
    /2 rounds need an aux trained with --refine masked/,
  );
});

function toCoarseLabels(fine: Int32Array, map: { fineToCoarse: Int32Array }): Int32Array {
  return fine.map((f) => map.fineToCoarse[f]!);
}
