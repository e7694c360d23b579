// Deterministic shuffling and batching for training. The order of epoch e is a permutation that depends
// only on (seed, e), so a run resumed from a saved position sees exactly the batches it would have seen,
// and each batch carries its own augmentation stream, a pure function of (seed, epoch, index).
import { CtfError } from '../errors.js';
import { Rng } from '../engine/rng.js';

export interface BatchOrderConfig {
  count: number;        // N, images in the split
  batchSize: number;
  seed: number;
  shuffle?: boolean;    // default true; false: dataset order every epoch
  // default true: every batch is full and the last count % batchSize of each epoch's order are skipped
  dropLast?: boolean;
}

export interface Batch {
  epoch: number;
  index: number;        // batch within the epoch, 0 .. batchesPerEpoch - 1
  step: number;         // epoch · batchesPerEpoch + index
  indices: Int32Array;  // dataset indices of the batch's images
  rng: Rng;             // for this batch's augmentation (flips): Rng(seed).split('augment').split(epoch).split(index)
}

/** Everything needed to continue exactly where a run stopped; plain JSON. */
export interface BatchOrderState {
  count: number; batchSize: number; seed: number; shuffle: boolean; dropLast: boolean;
  epoch: number;        // the position of the next batch next() returns
  index: number;
}

export class EpochBatches implements Iterable<Batch> {
  readonly count: number;
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly batchesPerEpoch: number;
  private epoch = 0;
  private index = 0;
  private cached: { epoch: number; order: Int32Array } | null = null;

  constructor(c: BatchOrderConfig) {
    if (!Number.isInteger(c.count) || c.count <= 0)
      throw new CtfError(`batching: count must be a positive integer, got ${c.count}`);
    if (!Number.isInteger(c.batchSize) || c.batchSize <= 0)
      throw new CtfError(`batching: batchSize must be a positive integer, got ${c.batchSize}`);
    this.count = c.count;
    this.batchSize = c.batchSize;
    this.seed = c.seed;
    this.shuffle = c.shuffle ?? true;
    this.dropLast = c.dropLast ?? true;
    this.batchesPerEpoch = this.dropLast ? Math.floor(c.count / c.batchSize) : Math.ceil(c.count / c.batchSize);
    if (this.batchesPerEpoch === 0)
      throw new CtfError(
        `batching: ${c.count} images make no full batch of ${c.batchSize} (lower the batch size or set dropLast false)`,
      );
  }

  /** The image order of an epoch: a function of (seed, epoch) only. */
  epochOrder(epoch: number): Int32Array {
    if (this.cached?.epoch === epoch) return this.cached.order;
    let order: Int32Array;
    if (this.shuffle) order = new Rng(this.seed).split('shuffle').split(epoch).permutation(this.count);
    else {
      order = new Int32Array(this.count);
      for (let i = 0; i < this.count; i++) order[i] = i;
    }
    this.cached = { epoch, order };
    return order;
  }

  batchAt(epoch: number, index: number): Batch {
    if (!Number.isInteger(epoch) || epoch < 0 || !Number.isInteger(index) || index < 0 || index >= this.batchesPerEpoch)
      throw new CtfError(
        `batching: no batch (epoch ${epoch}, index ${index}); an epoch has ${this.batchesPerEpoch} batches`,
      );
    const start = index * this.batchSize;
    const indices = this.epochOrder(epoch).slice(start, Math.min(start + this.batchSize, this.count));
    const rng = new Rng(this.seed).split('augment').split(epoch).split(index);
    return { epoch, index, step: epoch * this.batchesPerEpoch + index, indices, rng };
  }

  /** The batch at the current position; then advances (into the next epoch after the last batch). */
  next(): Batch {
    const b = this.batchAt(this.epoch, this.index);
    if (++this.index === this.batchesPerEpoch) { this.index = 0; this.epoch++; }
    return b;
  }

  /** Endless: one epoch after another. */
  *[Symbol.iterator](): Iterator<Batch> {
    for (;;) yield this.next();
  }

  getState(): BatchOrderState {
    const { count, batchSize, seed, shuffle, dropLast, epoch, index } = this;
    return { count, batchSize, seed, shuffle, dropLast, epoch, index };
  }

  /** Restores a position saved by getState; the batching configuration must be the same. */
  setState(s: BatchOrderState): void {
    if (typeof s !== 'object' || s === null || Array.isArray(s))
      throw new CtfError(`batching: the saved position is ${JSON.stringify(s)?.slice(0, 60)}, expected {epoch, index}`);
    const mine = this.getState();
    for (const k of ['count', 'batchSize', 'seed', 'shuffle', 'dropLast'] as const)
      if (s[k] !== mine[k])
        throw new CtfError(`batching: the saved position was made with ${k} = ${String(s[k])}, this run has ` +
          `${String(mine[k])} — resume with the same data and batch settings`);
    if (
      !Number.isInteger(s.epoch) ||
      s.epoch < 0 ||
      !Number.isInteger(s.index) ||
      s.index < 0 ||
      s.index >= this.batchesPerEpoch
    )
      throw new CtfError(
        `batching: saved position (epoch ${s.epoch}, index ${s.index}) is outside an epoch of ` +
        `${this.batchesPerEpoch} batches`,
      );
    this.epoch = s.epoch;
    this.index = s.index;
  }
}
