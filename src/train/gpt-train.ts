// Training the three GPTs of CTF on encoded token files (docs/method.md):
//   baseline   causal, fine tokens in and out:      [class, t_0 … t_{T-2}] → t_0 … t_{T-1}   (plain LlamaGen)
//   stage1     causal, coarse labels in and out:    [class, c_0 … c_{T-2}] → c_0 … c_{T-1}   (CTF stage 1)
//   aux        bidirectional, coarse in, fine out:  [class, c_0 … c_{T-1}] → t_0 … t_{T-1}   (CTF stage 2,
//              teacher-forced on the ground-truth coarse labels); with a fine-token table (masked refinement) it
//              also reads the true fine tokens of the positions a cosine-scheduled mask leaves shown, and
//              takes the loss on the masked ones (src/models/masked-refine.ts)
// Dropout and class-dropout randomness of step s is Rng(seed).split('dropout').split(s): a pure function of
// the step, so a resumed run draws exactly what an uninterrupted one would.
// Data-parallel (a communicator of N ranks): rank r computes the rows shardOf(B, 1, r, N) of every global batch;
// class dropout and the masked-refinement mask are drawn for the whole batch and sliced, dropout masks are those
// of the rank's rows (ForwardOptions.rows), and the rank's loss is its token losses over the global count, so the
// allreduce-sum of the ranks' gradients is one process's gradient up to float summation order.
import { createHash } from 'node:crypto';
import { backward, noGrad } from '../engine/autograd.js';
import { Rng } from '../engine/rng.js';
import { CtfError } from '../errors.js';
import type { CoarseMap } from '../cluster/coarse-map.js';
import { IGNORE_TARGET, type Gpt, type GptConfig } from '../models/gpt.js';
import type { GptKind } from '../models/gpt-kind.js';
import { revealMask, trainingMask } from '../models/masked-refine.js';
import { LocalCommunicator, type Communicator } from '../parallel/communicator.js';
import { shardOf } from '../parallel/shard.js';
import type { TokenSet } from '../tokenizer/tokens-file.js';
import type { LoadedTrainState, TrainState } from './checkpoint.js';
import type { StepResult, TrainTask } from './loop.js';
import { sumOverRanks } from './rank-sync.js';
import { OPTIMIZER_TRAJECTORY_KEYS, validateOptimizerOptions, type LrScheduleOptions } from './resume.js';
import { EpochTrainTask } from './task.js';

export { GPT_KINDS, type GptKind } from '../models/gpt-kind.js';

export interface GptTrainOptions extends LrScheduleOptions {
  epochs: number;
  batchSize: number;     // sequences per step
  weightDecay: number;   // AdamW decoupled decay on ≥ 2-D parameters (LlamaGen: 0.05)
  gradClip: number;      // max global gradient norm (LlamaGen: 1.0); 0 = off
  seed: number;          // data order and dropout draws (the init has its own stream of the same seed)
}

/** LlamaGen's recipe (AdamW β = (0.9, 0.95), wd 0.05, clip 1.0) with the LR that trained stably at this scale. */
export const DEFAULT_GPT_TRAIN: GptTrainOptions = {
  epochs: 2,
  batchSize: 128,
  lr: 3e-3,
  warmup: 100,
  schedule: 'cosine',
  minLrRatio: 0.1,
  weightDecay: 0.05,
  gradClip: 1,
  seed: 0,
};

const TRAJECTORY_KEYS = OPTIMIZER_TRAJECTORY_KEYS;

export function validateGptTrainOptions(o: GptTrainOptions): void {
  validateOptimizerOptions(o, 'gpt training');
}

/** Identity of a coarse map for checkpoints: sha256 of its fineToCoarse bytes. */
export function coarseMapHash(map: Pick<CoarseMap, 'fineToCoarse'>): string {
  const b = map.fineToCoarse;
  return createHash('sha256').update(new Uint8Array(b.buffer, b.byteOffset, b.byteLength)).digest('hex');
}

/** Identity of a token file's contents for train states: sha256 of its tokens, labels and flip marks. */
export function tokenSetHash(s: Pick<TokenSet, 'tokens' | 'labels' | 'flipped'>): string {
  const h = createHash('sha256');
  for (const a of [s.tokens.i32, s.labels, s.flipped]) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest('hex');
}

/** What a GPT of each kind reads and predicts, from the token file (fine) and the coarse map. */
export function gptTask(
  kind: GptKind,
  tokens: TokenSet,
  map: CoarseMap | null,
): Pick<GptConfig, 'inVocab' | 'outVocab' | 'numClasses' | 'grid' | 'causal'> {
  const V = tokens.tokenizerConfig.codebookSize,
    grid = tokens.tokens.dim(1);
  const numClasses = tokens.data.numClasses;
  if (kind === 'baseline') return { inVocab: V, outVocab: V, numClasses, grid, causal: true };
  if (!map) throw new CtfError(`${kind} needs the coarse map (--clusters)`);
  if (map.v !== V)
    throw new CtfError(`coarse map clusters ${map.v} codewords, the tokens come from a codebook of ${V}`);
  if (map.tokenizerHash !== tokens.tokenizerHash)
    throw new CtfError(
      `coarse map was made from tokenizer ${map.tokenizerHash.slice(0, 16)}…, the tokens from ` +
      `${tokens.tokenizerHash.slice(0, 16)}… — cluster the same tokenizer's codebook`,
    );
  return kind === 'stage1'
    ? { inVocab: map.k, outVocab: map.k, numClasses, grid, causal: true }
    : { inVocab: map.k, outVocab: V, numClasses, grid, causal: false };
}

/** Inputs and targets of a batch of sequences (rows of fine tokens, T each). */
export function sequenceBatch(
  kind: GptKind,
  fine: Int32Array,
  rows: ArrayLike<number>,
  T: number,
  map: CoarseMap | null,
): { inputs: Int32Array; targets: Int32Array } {
  const B = rows.length;
  const seq = new Int32Array(B * T);
  for (let b = 0; b < B; b++) seq.set(fine.subarray(rows[b]! * T, (rows[b]! + 1) * T), b * T);
  if (kind === 'aux') {
    const coarse = seq.map((t) => map!.fineToCoarse[t]!);
    return { inputs: coarse, targets: seq };
  }
  const targets = kind === 'stage1' ? seq.map((t) => map!.fineToCoarse[t]!) : seq;
  const inputs = new Int32Array(B * (T - 1));
  for (let b = 0; b < B; b++) inputs.set(targets.subarray(b * T, b * T + T - 1), b * (T - 1));
  return { inputs, targets };
}

/**
 * Mean validation loss (nats per token) over up to `limit` sequences, in batches, without dropout. A masked-refinement
 * aux is shown round(reveal · T) true fine tokens per sequence (seeded) and scored on the others; reveal 0 (default)
 * masks every position, which is the paper's single-pass aux. With a communicator of several ranks each scores
 * whole batches of its own (the batches one process makes) and the sums are added over the ranks.
 */
export function validationLoss(model: Gpt, kind: GptKind, data: TokenSet, map: CoarseMap | null,
  o: { limit?: number; batchSize?: number; reveal?: number; comm?: Communicator } = {}): number {
  const T = data.tokens.dim(1) * data.tokens.dim(2),
    N = Math.min(data.tokens.dim(0), o.limit ?? Infinity),
    bs = o.batchSize ?? 256;
  const comm = o.comm ?? new LocalCommunicator(), share = shardOf(N, bs, comm.rank, comm.size);
  let sum = 0, count = 0;
  noGrad(() => {
    for (let i = share.first; i < share.end; i += bs) {
      const rows = Array.from({ length: Math.min(bs, N - i) }, (_, j) => i + j);
      const { inputs, targets } = sequenceBatch(kind, data.tokens.i32, rows, T, map);
      const classes = Int32Array.from(rows, (r) => data.labels[r]!);
      const masked = model.fineTable
        ? revealMask(targets, T, model.config.outVocab, o.reveal ?? 0, new Rng(0).split('validation mask').split(i))
        : null;
      const positions = masked ? masked.masked : targets.length;
      const { loss } = model.loss(classes, inputs, masked?.targets ?? targets, {
        training: false,
        fineInputs: masked?.fineInputs,
      });
      sum += loss.item() * positions;
      count += positions;
    }
  });
  const total = sumOverRanks(comm, Float64Array.of(sum, count));
  return total[0]! / total[1]!;
}

export class GptTrainTask extends EpochTrainTask<GptTrainOptions> implements TrainTask {
  private readonly T: number;
  private readonly classes: Int32Array;

  constructor(
    readonly kind: GptKind,
    readonly model: Gpt,
    readonly data: TokenSet,
    readonly map: CoarseMap | null,
    options: GptTrainOptions,
    readonly saveCheckpoint: (task: GptTrainTask, stepsDone: number) => Promise<string>,
    readonly validate?: (task: GptTrainTask) => Record<string, number>,
    readonly comm: Communicator = new LocalCommunicator(),
  ) {
    // Progress counts tokens per step, so it reports tokens/s.
    const T = model.config.grid * model.config.grid;
    super(options, validateGptTrainOptions, data.tokens.dim(0), model.parameters(), [0.9, 0.95], options.batchSize * T);
    const want = gptTask(kind, data, map),
      c = model.config;
    for (const k of ['inVocab', 'outVocab', 'numClasses', 'grid', 'causal'] as const)
      if (c[k] !== want[k])
        throw new CtfError(`${kind} training: the model has ${k} = ${c[k]}, the data and clusters need ${want[k]}`);
    this.T = T;
    this.classes = new Int32Array(options.batchSize);
  }

  forwardBackward(step: number): StepResult {
    const b = this.batches.next();
    if (b.step !== step)
      throw new CtfError(`${this.kind} training: data position (step ${b.step}) and step ${step} disagree`);
    const B = b.indices.length;
    const { inputs, targets } = sequenceBatch(this.kind, this.data.tokens.i32, b.indices, this.T, this.map);
    for (let i = 0; i < B; i++) this.classes[i] = this.data.labels[b.indices[i]!]!;
    const rng = new Rng(this.options.seed).split('dropout').split(step);
    const masked = this.model.fineTable
      ? trainingMask(targets, this.T, this.model.config.outVocab, new Rng(this.options.seed).split('mask').split(step))
      : null;
    if (this.comm.size === 1) {
      const { loss } = this.model.loss(this.classes, inputs, masked?.targets ?? targets, {
        training: true,
        rng,
        fineInputs: masked?.fineInputs,
      });
      backward(loss);
      return { loss: loss.item() };
    }
    // This rank's rows of the global batch; its loss is their token losses over the global count.
    const { first, end } = shardOf(B, 1, this.comm.rank, this.comm.size);
    if (first === end) return { loss: 0 }; // fewer rows than ranks: this rank adds zero gradients
    const rowsOf = <A extends Int32Array>(a: A): A => a.subarray((a.length / B) * first, (a.length / B) * end) as A;
    const mine = rowsOf(masked?.targets ?? targets);
    const counted = masked ? mine.reduce((n, t) => n + (t === IGNORE_TARGET ? 0 : 1), 0) : mine.length;
    const share = counted / (masked ? masked.masked : targets.length);
    const { loss } = this.model.loss(this.classes.subarray(first, end), rowsOf(inputs), mine, {
      training: true,
      rng,
      fineInputs: masked ? rowsOf(masked.fineInputs) : undefined,
      rows: { first, total: B },
    });
    backward(loss, Float32Array.of(share));
    return { loss: loss.item() * share };
  }

  epochMetrics(): Record<string, number> {
    return this.validate?.(this) ?? {};
  }

  evalMetrics(): Record<string, number> {
    return this.validate?.(this) ?? {};
  }

  save(stepsDone: number): Promise<string> {
    return this.saveCheckpoint(this, stepsDone);
  }

  trainState(stepsDone: number): TrainState {
    return {
      task: `gpt:${this.kind}`,
      step: stepsDone,
      config: this.model.config,
      options: this.options,
      rng: {},
      data: this.batches.getState(),
      model: this.model.stateDict(),
      optimizer: this.optimizer.stateDict(),
    };
  }

  /** Restores a saved run (same config and options); returns the step it stopped at. */
  restore(saved: LoadedTrainState): number {
    return this.restoreRun(saved, {
      keys: TRAJECTORY_KEYS, config: this.model.config, what: 'GPT', params: this.model.stateDict(),
    });
  }
}
