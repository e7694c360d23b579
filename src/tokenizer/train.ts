// Training the VQ tokenizer: one step = a batch of images → forward → backward (the loop then clips,
// applies AdamW, and calls afterUpdate, where dead codewords are re-initialised from this step's codes).
// Everything that decides the trajectory — weights, AdamW moments, step, data position, the dead-code
// RNG and the codebook usage history — is saved, so a resumed run repeats the same losses bit for bit.
// Data-parallel (a communicator of N ranks): each rank takes the rows shardOf(B, 1, rank, N) of every batch, its
// flips drawn at those rows of the batch's stream, and backpropagates its share of the global mean losses; the
// codes every rank picked are gathered to all, so the usage history and the dead-code re-initialisation (from the
// whole batch's encoder outputs) are decided identically on every rank, as one process decides them.
import { backward } from '../engine/autograd.js';
import { Rng } from '../engine/rng.js';
import { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import type { Dataset } from '../data/dataset.js';
import { toModelInput } from '../data/model-input.js';
import { LocalCommunicator, type Communicator } from '../parallel/communicator.js';
import { shardOf } from '../parallel/shard.js';
import { allGatherConcat } from '../train/rank-sync.js';
import { savedStateTensor, type LoadedTrainState, type TrainState } from '../train/checkpoint.js';
import type { StepResult, TrainTask } from '../train/loop.js';
import { OPTIMIZER_TRAJECTORY_KEYS, validateOptimizerOptions } from '../train/resume.js';
import { EpochTrainTask } from '../train/task.js';
import type { VqTokenizer } from './model.js';
import { mseInside, psnr } from './metrics.js';
import { CodeUsage, reinitDeadCodes } from './usage.js';

export interface TokenizerTrainOptions {
  epochs: number;           // passes over the training split
  batchSize: number;        // images per step (64)
  lr: number;               // peak learning rate
  warmup: number;           // linear warmup steps
  schedule: 'cosine' | 'constant';  // cosine decays to lr · minLrRatio at the last step
  minLrRatio: number;
  weightDecay: number;      // AdamW decoupled decay on conv kernels and the codebook (0: plain Adam, like LlamaGen)
  gradClip: number;         // max global gradient norm (0 = off)
  seed: number;             // data order, flips and dead-code draws (the model init has its own seed)
  flip: boolean;            // random horizontal flips (only where the dataset allows them)
  deadCodeReinit: boolean;  // re-initialise codewords nobody picked for deadCodeWindow steps
  deadCodeWindow: number;   // steps
}

export const DEFAULT_TOKENIZER_TRAIN: TokenizerTrainOptions = {
  epochs: 2, batchSize: 64, lr: 2e-3, warmup: 200, schedule: 'cosine', minLrRatio: 0.05, weightDecay: 0, gradClip: 1,
  seed: 0, flip: true, deadCodeReinit: true, deadCodeWindow: 100,
};

/** Options whose change would make a resumed run differ from an uninterrupted one. */
const TRAJECTORY_KEYS = [...OPTIMIZER_TRAJECTORY_KEYS, 'flip', 'deadCodeReinit', 'deadCodeWindow'] as const;

export function validateTrainOptions(o: TokenizerTrainOptions): void {
  validateOptimizerOptions(o, 'tokenizer training');
  if (!Number.isSafeInteger(o.deadCodeWindow) || o.deadCodeWindow < 1)
    throw new CtfError(`tokenizer training: deadCodeWindow = ${JSON.stringify(o.deadCodeWindow)}, expected steps ≥ 1`);
  for (const k of ['flip', 'deadCodeReinit'] as const)
    if (typeof o[k] !== 'boolean')
      throw new CtfError(`tokenizer training: ${k} = ${JSON.stringify(o[k])}, expected true or false`);
}

export class TokenizerTrainTask extends EpochTrainTask<TokenizerTrainOptions> implements TrainTask {
  readonly usage: CodeUsage;
  readonly deadRng: Rng;
  private readonly input: Float32Array;
  private lastCodes: Float32Array | null = null;
  private reinitInWindow = 0;

  constructor(readonly model: VqTokenizer, readonly data: Dataset, options: TokenizerTrainOptions,
    readonly saveCheckpoint: (task: TokenizerTrainTask, stepsDone: number) => Promise<string>,
    readonly comm: Communicator = new LocalCommunicator()) {
    super(options, validateTrainOptions, data.count, model.parameters(), [0.9, 0.95], options.batchSize);
    const c = model.config;
    if (data.channels !== c.inChannels || data.height !== c.imageSize || data.width !== c.imageSize)
      throw new CtfError(`tokenizer training: images of ${data.name} are ` +
        `${data.channels}×${data.height}×${data.width}, the tokenizer takes ` +
        `${c.inChannels}×${c.imageSize}×${c.imageSize}`);
    if (options.batchSize < comm.size)
      throw new CtfError(`tokenizer training: a batch of ${options.batchSize} images leaves some of the ` +
        `${comm.size} ranks no image; use a batch of at least ${comm.size}`);
    this.usage = new CodeUsage(c.codebookSize);
    this.deadRng = new Rng(options.seed).split('dead-code');
    this.input = new Float32Array(options.batchSize * c.inChannels * c.imageSize * c.imageSize);
  }

  forwardBackward(step: number): StepResult {
    const c = this.model.config, b = this.batches.next();
    if (b.step !== step)
      throw new CtfError(`tokenizer training: data position (step ${b.step}) and step ${step} disagree`);
    const flip = this.options.flip && this.data.flipPreservesClass ? 'random' : 'none';
    const total = b.indices.length, { first, end } = shardOf(total, 1, this.comm.rank, this.comm.size);
    const indices = this.comm.size === 1 ? b.indices : b.indices.subarray(first, end);
    const B = indices.length, share = B / total;  // this rank's share of the global batch's mean losses
    const mb = toModelInput(this.data, indices, { flip, rng: b.rng, out: this.input, firstRow: first });
    const x = new Tensor(mb.x, [B, c.inChannels, c.imageSize, c.imageSize]);
    const out = this.model.forward(x);
    if (share === 1) backward(out.loss);
    else backward(out.loss, Float32Array.of(share));
    this.usage.observe(allGatherConcat(this.comm, out.index), step + 1);
    this.lastCodes = out.zn.f32;
    const errors = mseInside(
      out.recon.f32,
      mb.x,
      [B, c.inChannels, c.imageSize, c.imageSize],
      this.data.preprocessing.pad,
    );
    const psnrSum = errors.reduce((s, e) => s + psnr(e), 0);
    return {
      loss: share === 1 ? out.loss.item() : out.loss.item() * share,
      metrics: share === 1
        ? { recon: out.reconLoss.item(), codebook: out.codebookLoss.item(), psnr: psnrSum / B }
        : { recon: out.reconLoss.item() * share, codebook: out.codebookLoss.item() * share, psnr: psnrSum / total },
    };
  }

  afterUpdate(step: number): void {
    if (!this.options.deadCodeReinit || this.lastCodes === null) return;
    const dead = this.usage.deadCodes(step + 1, this.options.deadCodeWindow);
    if (dead.length === 0) return;
    // Every rank holds the same usage, so all get here together; the codes come from the whole batch.
    reinitDeadCodes(this.model.quantizer.codebook, dead, allGatherConcat(this.comm, this.lastCodes), this.deadRng);
    this.usage.markReinit(dead, step + 1);
    this.reinitInWindow += dead.length;
  }

  windowMetrics(): Record<string, number> {
    const stepsDone = this.batches.getState().epoch * this.stepsPerEpoch + this.batches.getState().index;
    const w = this.usage.takeWindow();
    const m = {
      usage: this.usage.recentUsage(stepsDone, this.options.deadCodeWindow),
      perplexity: w.perplexity,
      reinit: this.reinitInWindow,
    };
    this.reinitInWindow = 0;
    return m;
  }

  epochMetrics(): Record<string, number> {
    const e = this.usage.takeEpoch();
    return { usage: e.usage, perplexity: e.perplexity };
  }

  save(stepsDone: number): Promise<string> {
    return this.saveCheckpoint(this, stepsDone);
  }

  /** Everything a resumed run needs, as of `stepsDone` steps. */
  trainState(stepsDone: number): TrainState {
    return {
      task: 'tokenizer', step: stepsDone, config: this.model.config, options: this.options,
      rng: { deadCode: this.deadRng.getState() }, data: this.batches.getState(),
      model: this.model.stateDict(), optimizer: this.optimizer.stateDict(),
      state: new Map([
        ['usage.last_used', new Tensor(this.usage.lastUsed, [this.usage.size])],
        ['usage.last_reinit', new Tensor(this.usage.lastReinit, [this.usage.size])],
      ]),
    };
  }

  /** Restores a saved run into this task (built with the saved config and options); returns the step. */
  restore(saved: LoadedTrainState): number {
    const step = this.restoreRun(saved, {
      keys: TRAJECTORY_KEYS, config: this.model.config, what: 'tokenizer', params: this.model.stateDict(),
      rngs: { deadCode: this.deadRng },
    });
    const V = this.usage.size;
    this.usage.lastUsed.set(savedStateTensor(saved, 'usage.last_used', [V], 'i32').i32);
    this.usage.lastReinit.set(savedStateTensor(saved, 'usage.last_reinit', [V], 'i32').i32);
    return step;
  }
}
