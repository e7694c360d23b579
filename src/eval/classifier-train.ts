// Training the evaluation classifier: cross-entropy on the training split with random horizontal flips
// (where the dataset allows them) and optional random shifts, AdamW under a warmup + cosine schedule.
// Weights, AdamW moments, step, data position and the dropout stream are saved, so a resumed run repeats
// the same losses bit for bit.
import { backward } from '../engine/autograd.js';
import { crossEntropy } from '../engine/ops/softmax.js';
import { Rng } from '../engine/rng.js';
import { Tensor, intTensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import type { Dataset } from '../data/dataset.js';
import { toModelInput } from '../data/model-input.js';
import type { LoadedTrainState, TrainState } from '../train/checkpoint.js';
import type { StepResult, TrainTask } from '../train/loop.js';
import { OPTIMIZER_TRAJECTORY_KEYS, validateOptimizerOptions } from '../train/resume.js';
import { EpochTrainTask } from '../train/task.js';
import type { Classifier } from './classifier.js';
import { accuracyAndLoss, datasetFeatures } from './features.js';

export interface ClassifierTrainOptions {
  epochs: number;           // passes over the training split
  batchSize: number;        // images per step
  lr: number;               // peak learning rate
  warmup: number;           // linear warmup steps
  schedule: 'cosine' | 'constant';
  minLrRatio: number;       // cosine floor as a fraction of lr
  weightDecay: number;      // AdamW decoupled decay on conv kernels and linear weights
  gradClip: number;         // max global gradient norm (0 = off)
  seed: number;             // data order, flips, shifts and dropout (the initialisation has its own split)
  flip: boolean;            // random horizontal flips (only where the dataset allows them)
  shift: number;            // random translation by up to this many pixels in x and y (0 = off)
}

export const DEFAULT_CLASSIFIER_TRAIN: ClassifierTrainOptions = {
  epochs: 3, batchSize: 64, lr: 3e-3, warmup: 100, schedule: 'cosine', minLrRatio: 0.02, weightDecay: 0.05, gradClip: 1,
  seed: 0, flip: true, shift: 0,
};

const TRAJECTORY_KEYS = [...OPTIMIZER_TRAJECTORY_KEYS, 'flip', 'shift'] as const;

export function validateClassifierTrainOptions(o: ClassifierTrainOptions): void {
  validateOptimizerOptions(o, 'classifier training');
  if (!Number.isSafeInteger(o.shift) || o.shift < 0)
    throw new CtfError(`classifier training: shift = ${JSON.stringify(o.shift)}, expected an integer ≥ 0`);
  if (typeof o.flip !== 'boolean')
    throw new CtfError(`classifier training: flip = ${JSON.stringify(o.flip)}, expected true or false`);
}

/**
 * Shifts every image (B, C, S, S) in place by its own (dy, dx) ∈ [−max, max]², drawn from rng in batch
 * order; pixels shifted in take `fill` (the background, −1 = black).
 */
export function randomShift(
  x: Float32Array,
  shape: readonly [number, number, number, number],
  max: number,
  rng: Rng,
  fill = -1,
): void {
  const [B, C, H, W] = shape,
    plane = H * W;
  const tmp = new Float32Array(plane);
  for (let b = 0; b < B; b++) {
    const dy = rng.int(2 * max + 1) - max,
      dx = rng.int(2 * max + 1) - max;
    if (dy === 0 && dx === 0) continue;
    for (let c = 0; c < C; c++) {
      const img = x.subarray((b * C + c) * plane, (b * C + c + 1) * plane);
      tmp.fill(fill);
      for (let y = Math.max(0, dy); y < Math.min(H, H + dy); y++) {
        const src = (y - dy) * W;
        for (let xx = Math.max(0, dx); xx < Math.min(W, W + dx); xx++) tmp[y * W + xx] = img[src + xx - dx]!;
      }
      img.set(tmp);
    }
  }
}

export class ClassifierTrainTask extends EpochTrainTask<ClassifierTrainOptions> implements TrainTask {
  private readonly input: Float32Array;
  private readonly dropoutRng: Rng;
  private correct = 0;
  private seen = 0;

  /** test: scored at the end of every epoch (its first testLimit images) when given. */
  constructor(readonly model: Classifier, readonly data: Dataset, options: ClassifierTrainOptions,
    readonly saveCheckpoint: (task: ClassifierTrainTask, stepsDone: number) => Promise<string>,
    readonly test: { data: Dataset; limit?: number } | null = null) {
    super(options, validateClassifierTrainOptions, data.count, model.parameters(), [0.9, 0.999], options.batchSize);
    const c = model.config;
    if (data.channels !== c.inChannels || data.height !== c.imageSize || data.width !== c.imageSize)
      throw new CtfError(`classifier training: images of ${data.name} are ` +
        `${data.channels}×${data.height}×${data.width}, the classifier takes ` +
        `${c.inChannels}×${c.imageSize}×${c.imageSize}`);
    if (data.numClasses !== c.numClasses)
      throw new CtfError(
        `classifier training: ${data.name} has ${data.numClasses} classes, the classifier ${c.numClasses}`,
      );
    this.input = new Float32Array(options.batchSize * c.inChannels * c.imageSize * c.imageSize);
    this.dropoutRng = new Rng(options.seed).split('dropout');
  }

  forwardBackward(step: number): StepResult {
    const c = this.model.config, b = this.batches.next();
    if (b.step !== step)
      throw new CtfError(`classifier training: data position (step ${b.step}) and step ${step} disagree`);
    const flip = this.options.flip && this.data.flipPreservesClass ? 'random' : 'none';
    const mb = toModelInput(this.data, b.indices, { flip, rng: b.rng, out: this.input });
    if (this.options.shift > 0) randomShift(mb.x, mb.shape, this.options.shift, b.rng);
    const B = b.indices.length;
    const out = this.model.forward(new Tensor(mb.x, [B, c.inChannels, c.imageSize, c.imageSize]), {
      training: true,
      rng: this.dropoutRng.split(step),
    });
    const loss = crossEntropy(out.logits, intTensor(mb.labels, [B]));
    backward(loss);
    const logits = out.logits.f32, K = c.numClasses;
    for (let i = 0; i < B; i++) {
      let best = 0;
      for (let k = 1; k < K; k++) if (logits[i * K + k]! > logits[i * K + best]!) best = k;
      if (best === mb.labels[i]) this.correct++;
    }
    this.seen += B;
    return { loss: loss.item() };
  }

  windowMetrics(): Record<string, number> {
    const m = { trainAcc: this.seen > 0 ? this.correct / this.seen : NaN };
    this.correct = this.seen = 0;
    return m;
  }

  epochMetrics(): Record<string, number> {
    if (!this.test) return {};
    const t = this.test;
    const f = datasetFeatures(this.model, t.data, { limit: t.limit });
    const r = accuracyAndLoss(f, t.data.labels.subarray(0, f.n));
    return { testAcc: r.accuracy, testLoss: r.loss };
  }

  save(stepsDone: number): Promise<string> {
    return this.saveCheckpoint(this, stepsDone);
  }

  trainState(stepsDone: number): TrainState {
    return {
      task: 'classifier', step: stepsDone, config: this.model.config, options: this.options,
      rng: { dropout: this.dropoutRng.getState() }, data: this.batches.getState(),
      model: this.model.stateDict(), optimizer: this.optimizer.stateDict(),
    };
  }

  /** Restores a saved run into this task (built with the saved config and options); returns the step. */
  restore(saved: LoadedTrainState): number {
    return this.restoreRun(saved, {
      keys: TRAJECTORY_KEYS, config: this.model.config, what: 'classifier', params: this.model.stateDict(),
      rngs: { dropout: this.dropoutRng },
    });
  }
}
