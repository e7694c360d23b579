// What every training task holds alike: its options, the epoch batches over its items, the step counts, AdamW over
// the model's parameters, the learning-rate schedule, and the part of a resume that restores these.
import { EpochBatches } from '../data/batches.js';
import { AdamW } from '../engine/optim.js';
import type { Tensor } from '../engine/tensor.js';
import type { LoadedTrainState } from './checkpoint.js';
import { restoreTrainRun, scheduledLr, type OptimizerOptions, type TrainRunParts } from './resume.js';

export abstract class EpochTrainTask<O extends OptimizerOptions> {
  readonly totalSteps: number;
  readonly stepsPerEpoch: number;
  readonly batches: EpochBatches;
  readonly optimizer: AdamW;

  /**
   * `validate` checks the options before anything is built from them; `items` is the size of the training split,
   * `itemsPerStep` what progress reports count per step (images, or tokens for a GPT).
   */
  protected constructor(
    readonly options: O,
    validate: (o: O) => void,
    items: number,
    params: Tensor[],
    betas: [number, number],
    readonly itemsPerStep: number,
  ) {
    validate(options);
    this.batches = new EpochBatches({ count: items, batchSize: options.batchSize, seed: options.seed });
    this.stepsPerEpoch = this.batches.batchesPerEpoch;
    this.totalSteps = options.epochs * this.stepsPerEpoch;
    this.optimizer = new AdamW(params, { lr: options.lr, betas, weightDecay: options.weightDecay });
  }

  lr(step: number): number {
    return scheduledLr(this.options, this.totalSteps, step);
  }

  /** restoreTrainRun for this task's options, optimizer and batches; returns the step the run stopped at. */
  protected restoreRun(
    saved: LoadedTrainState,
    p: Pick<TrainRunParts<unknown>, 'keys' | 'config' | 'what' | 'params' | 'rngs'>,
  ): number {
    return restoreTrainRun(saved, {
      ...p, options: this.options, optimizer: this.optimizer, batches: this.batches, stepsPerEpoch: this.stepsPerEpoch,
    });
  }
}
