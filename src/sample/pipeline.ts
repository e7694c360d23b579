// One sampling request end to end on loaded pieces (run-dir.ts): CTF (stage 1 → stage 2) or the baseline,
// then the tokenizer's decoder. Each part is timed; progress is reported per position of stage 1.
import { baselineSample } from '../ctf/baseline.js';
import { ctfSample, type CtfSampleOptions } from '../ctf/ctf.js';
import type { TokenEvent } from '../ctf/generate.js';
import { CtfError } from '../errors.js';
import { decodeTokens } from './images.js';
import { indicesWithinClass } from '../ctf/logits.js';
import { gatherConcat, maxOverRanks, shardOf, type Communicator } from '../parallel/index.js';
import type { SamplerMethod, SamplerPieces } from './run-dir.js';

export interface SamplingRequest extends CtfSampleOptions {
  // As ctfSample's: classes, imageIndices, batchSize; cfgScale, temperature (τ1), topK, topP of stage 1 or the
  // baseline; stage2 (CTF only); onToken after every position of stage 1 or the baseline (live previews, src/serve).
  method: SamplerMethod;
  seed: number;
  onProgress?: (e: SamplingProgress) => void;
}

/** `done` of `total` images through a phase; stage 1 reports fractions of a chunk as its positions advance. */
export interface SamplingProgress { phase: 'stage1' | 'stage2' | 'decode'; done: number; total: number }

export interface SamplingResult {
  method: SamplerMethod;
  classes: Int32Array;
  coarse: Int32Array | null;   // (N, T) CTF stage-1 labels; null for the baseline
  fine: Int32Array;            // (N, T) codebook indices
  images: Float32Array;        // (N, C, S, S) decoded, about [−1, 1]
  shape: [number, number, number, number];
  seconds: { stage1: number; stage2: number; decode: number; total: number };
}

export function sampleImages(p: SamplerPieces, r: SamplingRequest): SamplingResult {
  const N = r.classes.length, T = p.grid * p.grid;
  for (const c of r.classes)
    if (!(Number.isInteger(c) && c >= 0 && c < p.numClasses))
      throw new CtfError(`sample: class ${c} outside [0, ${p.numClasses})`);
  const onToken = (r.onProgress || r.onToken) && ((e: TokenEvent): void => {
    r.onToken?.(e);
    r.onProgress?.({ phase: 'stage1', done: e.first + (e.count * (e.position + 1)) / T, total: N });
  });
  const gen = {
    classes: r.classes, imageIndices: r.imageIndices, seed: r.seed, batchSize: r.batchSize,
    cfgScale: r.cfgScale, temperature: r.temperature, topK: r.topK, topP: r.topP, onToken,
  };
  let coarse: Int32Array | null = null, fine: Int32Array, stage1: number, stage2 = 0;
  if (r.method === 'ctf') {
    if (!p.stage1 || !p.aux || !p.map)
      throw new CtfError('sample: CTF needs the stage-1 model, the auxiliary model and the coarse map');
    const s = ctfSample(p.stage1.model, p.aux.model, p.map, { ...gen, stage2: r.stage2 });
    ({ coarse, fine } = s);
    ({ stage1, stage2 } = s.seconds);
    r.onProgress?.({ phase: 'stage2', done: N, total: N });
  } else {
    if (!p.baseline) throw new CtfError('sample: the baseline method needs the baseline model');
    const s = baselineSample(p.baseline.model, gen);
    fine = s.fine;
    stage1 = s.seconds.stage1;
  }
  const t0 = performance.now();
  const tok = p.tokenizer.model;
  const images = decodeTokens(tok, fine, {
    batchSize: r.batchSize,
    onBatch: (done, total) => r.onProgress?.({ phase: 'decode', done, total }),
  });
  const decode = (performance.now() - t0) / 1000;
  return {
    method: r.method, classes: r.classes, coarse, fine, images,
    shape: [N, tok.config.inChannels, tok.config.imageSize, tok.config.imageSize],
    seconds: { stage1, stage2, decode, total: stage1 + stage2 + decode },
  };
}

/**
 * sampleImages split across the ranks of `comm` (mpirun -np N): each rank samples whole chunks of r.batchSize
 * images (parallel/shard.ts), rank 0 gathers them in order, so its result is one process's bit for bit; the other
 * ranks get null. Seconds are the slowest rank's; rank 0's progress stands for the job's.
 */
export function sampleImagesSharded(p: SamplerPieces, r: SamplingRequest, comm: Communicator): SamplingResult | null {
  if (comm.size === 1) return sampleImages(p, r);
  const N = r.classes.length, cfg = p.tokenizer.model.config;
  const { first, end } = shardOf(N, r.batchSize ?? 64, comm.rank, comm.size);
  const indices = r.imageIndices ?? indicesWithinClass(r.classes);
  const onProgress = comm.rank === 0 && r.onProgress;
  const mine = end > first ? sampleImages(p, {
    ...r, classes: r.classes.subarray(first, end), imageIndices: indices.subarray(first, end), onToken: undefined,
    onProgress: onProgress ? (e) => onProgress({ ...e, done: (e.done * N) / (end - first), total: N }) : undefined,
  }) : null;
  const coarse = r.method === 'ctf' ? gatherConcat(comm, mine?.coarse ?? new Int32Array(0)) : null;
  const fine = gatherConcat(comm, mine?.fine ?? new Int32Array(0));
  const images = gatherConcat(comm, mine?.images ?? new Float32Array(0));
  const s = mine?.seconds ?? { stage1: 0, stage2: 0, decode: 0, total: 0 };
  const slowest = maxOverRanks(comm, Float64Array.of(s.stage1, s.stage2, s.decode, s.total));
  if (fine === null || images === null || slowest === null) return null;
  const [stage1 = 0, stage2 = 0, decode = 0, total = 0] = slowest;
  return {
    method: r.method,
    classes: r.classes,
    coarse,
    fine,
    images,
    shape: [N, cfg.inChannels, cfg.imageSize, cfg.imageSize],
    seconds: { stage1, stage2, decode, total },
  };
}
