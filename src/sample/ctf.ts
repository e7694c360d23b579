// Coarse-to-fine sampling (spec/ctf.md §4, §6): stage 1 samples the coarse labels autoregressively
// (generate.ts), stage 2 reads the whole coarse sequence once with the bidirectional auxiliary model and
// samples every fine label. The baseline is stage 1 alone over fine tokens. Decoding tokens to images is the
// tokenizer's job; the caller does it with what these return.
//
// Stage 2 with the cluster mask only ever samples among the members of each position's cluster, so the
// fast path computes just those logits (~V/K per position) from the final hidden states, instead of all V:
// positions are grouped by cluster and each group is one small GEMM against that cluster's head rows.
import { CtfError } from '../errors.js';
import { noGrad } from '../engine/autograd.js';
import { sgemm } from '../engine/ops/matmul.js';
import type { Rng } from '../engine/rng.js';
import { sampleLogits, type SampleOptions } from '../engine/sampling.js';
import type { Gpt } from '../models/gpt.js';
import { DEFAULT_BATCH_SIZE, generate, type GenerateOptions } from './generate.js';
import { finalHidden } from './hidden.js';
import {
  cfgClasses, cfgTokens, checkPartition, guide, imageRngs, maskToClusters, resolveLogitsOptions, usesCfg,
  type ClusterPartition, type LogitsOptions,
} from './logits.js';

export interface RefineOptions extends LogitsOptions {
  // temperature: τ2 (default 1); topK / topP as in stage 1; temperature 0 or topK 1 is greedy.
  // cfgScale: stage-2 guidance (default 1 = off: it doubles the stage-2 cost and changed little in trials).
  /** Fine ids outside the predicted cluster get −∞ (default true). */
  clusterMask?: boolean;
  /** 'fast' (default) computes only the cluster members' logits when the mask is on; 'full' always all V. */
  head?: 'fast' | 'full';
}

/** The output head's rows regrouped cluster by cluster: cluster c is rows start[c] … start[c+1]-1 of w. */
export class ClusterHead {
  readonly w: Float32Array;      // (V, dim) output-head rows in cluster order
  readonly start: Int32Array;    // (K+1)
  readonly dim: number;

  constructor(output: Float32Array, dim: number, map: ClusterPartition) {
    this.dim = dim;
    this.w = new Float32Array(map.v * dim);
    this.start = new Int32Array(map.k + 1);
    let row = 0;
    map.members.forEach((m, c) => {
      this.start[c] = row;
      for (const f of m) this.w.set(output.subarray(f * dim, (f + 1) * dim), row++ * dim);
    });
    this.start[map.k] = row;
  }
}

/**
 * hidden (N, dim) final normed states, coarse (N) their clusters, rngs (N) one per position -> fine (N):
 * each position sampled among its cluster's members only. Equal to masking the full logits to −∞ outside
 * the cluster and sampling (same options, same rng ⇒ same token up to float rounding in the head).
 */
export function sampleWithinClusters(head: ClusterHead, map: ClusterPartition, hidden: Float32Array, coarse: Int32Array,
  o: SampleOptions, rngs: readonly Rng[]): Int32Array {
  const N = coarse.length, D = head.dim, K = map.k;
  if (hidden.length !== N * D || rngs.length !== N)
    throw new CtfError(`sampleWithinClusters: hidden of ${hidden.length} values, ${rngs.length} rngs for ${N} positions of dim ${D}`);
  // Counting sort of the positions by cluster: order[pos[c] … pos[c+1]) are cluster c's positions.
  const pos = new Int32Array(K + 1);
  for (let n = 0; n < N; n++) {
    const c = coarse[n]!;
    if (!(c >= 0 && c < K)) throw new CtfError(`stage 2: coarse label ${c} at position ${n} outside [0, K = ${K})`);
    pos[c + 1] = pos[c + 1]! + 1;
  }
  for (let c = 0; c < K; c++) pos[c + 1] = pos[c + 1]! + pos[c]!;
  const order = new Int32Array(N), fill = pos.slice(0, K);
  for (let n = 0; n < N; n++) order[fill[coarse[n]!]!++] = n;
  const grouped = new Float32Array(N * D);  // (N, dim) hidden rows in cluster order
  for (let i = 0; i < N; i++) grouped.set(hidden.subarray(order[i]! * D, (order[i]! + 1) * D), i * D);
  let most = 0;
  for (let c = 0; c < K; c++) most = Math.max(most, (pos[c + 1]! - pos[c]!) * (head.start[c + 1]! - head.start[c]!));
  const logits = new Float32Array(most);  // (positions of c, members of c), reused across clusters
  const fine = new Int32Array(N);
  for (let c = 0; c < K; c++) {
    const n = pos[c + 1]! - pos[c]!, m = head.start[c + 1]! - head.start[c]!;
    if (n === 0) continue;
    if (m === 0) throw new CtfError(`stage 2: stage 1 predicted cluster ${c}, which has no members — is the coarse map the one stage 1 was trained with?`);
    sgemm(false, true, n, m, D, 1, grouped, pos[c]! * D, D, head.w, head.start[c]! * D, D, 0, logits, 0, m);
    const rows = Array.from(order.subarray(pos[c]!, pos[c + 1]!), (p) => rngs[p]!);
    const local = sampleLogits(logits.subarray(0, n * m), n, m, o, rows);
    const members = map.members[c]!;
    for (let j = 0; j < n; j++) fine[order[pos[c]! + j]!] = members[local[j]!]!;
  }
  return fine;
}

/** The stage-2 streams of a chunk: one per (image, position), split from each image's stream. */
function positionRngs(images: readonly Rng[], T: number): Rng[] {
  return images.flatMap((r) => Array.from({ length: T }, (_, p) => r.split(p)));
}

/**
 * Stage 2 for one chunk: classes (B), coarse (B·T), image streams (B) -> fine (B·T). One forward pass of
 * the auxiliary model (two rows per image with stage-2 guidance).
 */
export function refineChunk(aux: Gpt, map: ClusterPartition, classes: Int32Array, coarse: Int32Array, images: readonly Rng[],
  o: Required<LogitsOptions> & { clusterMask: boolean; head: 'fast' | 'full' }, clusterHead?: ClusterHead): Int32Array {
  const B = classes.length, N = coarse.length, V = aux.config.outVocab;
  const rngs = positionRngs(images, N / B);
  const cfg = usesCfg(o.cfgScale);
  const cls = cfg ? cfgClasses(classes, aux.config.numClasses) : classes, tokens = cfg ? cfgTokens(coarse) : coarse;
  return noGrad(() => {
    if (o.clusterMask && o.head === 'fast') {
      // The head is linear and bias-free: guiding the hidden states guides the logits.
      const states = finalHidden(aux, cls, tokens).f32;  // (rows·T, dim)
      const hidden = cfg ? guide(states, aux.config.dim, o.cfgScale) : states;
      return sampleWithinClusters(clusterHead ?? new ClusterHead(aux.output.f32, aux.config.dim, map), map, hidden, coarse, o, rngs);
    }
    const full = aux.forward(cls, tokens, { training: false }).f32;  // (rows·T, V)
    const logits = cfg ? guide(full, V, o.cfgScale) : full;
    if (o.clusterMask) maskToClusters(logits, V, coarse, map);
    return sampleLogits(logits, N, V, o, rngs);
  });
}

/** Refuses a stage-1 / aux / coarse-map triple that was not made for each other, naming the mismatch. */
export function checkCtfModels(stage1: Gpt | null, aux: Gpt, map: ClusterPartition): void {
  checkPartition(map, 'ctf');
  const a = aux.config;
  if (a.causal) throw new CtfError('ctf: the auxiliary model is causal; stage 2 needs the bidirectional fine-aux model');
  if (a.inVocab !== map.k || a.outVocab !== map.v)
    throw new CtfError(`ctf: the auxiliary model reads ${a.inVocab} coarse labels and predicts ${a.outVocab} fine ones, the coarse map has K = ${map.k}, V = ${map.v}`);
  if (!stage1) return;
  const s = stage1.config;
  if (!s.causal) throw new CtfError('ctf: the stage-1 model is bidirectional; stage 1 needs the causal coarse-ar model');
  if (s.inVocab !== map.k || s.outVocab !== map.k)
    throw new CtfError(`ctf: the stage-1 model has vocabulary ${s.inVocab} in / ${s.outVocab} out, the coarse map has K = ${map.k} clusters`);
  if (s.grid !== a.grid || s.numClasses !== a.numClasses)
    throw new CtfError(`ctf: stage 1 (grid ${s.grid}, ${s.numClasses} classes) and the auxiliary model (grid ${a.grid}, ${a.numClasses} classes) do not match`);
}

/** Stage 2 over a whole request: classes (N), coarse (N, T) -> fine (N, T), chunked like generate(). */
export function refine(aux: Gpt, map: ClusterPartition, classes: Int32Array, coarse: Int32Array,
  o: RefineOptions & Pick<GenerateOptions, 'seed' | 'imageIndices' | 'batchSize'> = {}): Int32Array {
  checkCtfModels(null, aux, map);
  const s = { ...resolveLogitsOptions(o, 'stage 2'), clusterMask: o.clusterMask ?? true, head: o.head ?? 'fast' };
  const N = classes.length, T = aux.config.grid ** 2, batchSize = o.batchSize ?? DEFAULT_BATCH_SIZE;
  if (coarse.length !== N * T) throw new CtfError(`stage 2: ${coarse.length} coarse labels for ${N} images of ${T} tokens`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new CtfError(`stage 2: batchSize ${batchSize} must be a positive integer`);
  const images = imageRngs(o.seed ?? 0, classes, o.imageIndices).map((r) => r.split('aux'));
  const head = s.clusterMask && s.head === 'fast' ? new ClusterHead(aux.output.f32, aux.config.dim, map) : undefined;
  const fine = new Int32Array(N * T);
  for (let first = 0; first < N; first += batchSize) {
    const end = Math.min(N, first + batchSize);
    fine.set(refineChunk(aux, map, classes.subarray(first, end), coarse.subarray(first * T, end * T), images.slice(first, end), s, head), first * T);
  }
  return fine;
}

export interface CtfSampleOptions extends GenerateOptions {
  // Stage 1: cfgScale, temperature (τ1), topK, topP, seed, batchSize, onToken (coarse labels as they arrive).
  stage2?: RefineOptions;
}

export interface CtfSample {
  coarse: Int32Array;  // (N, T) cluster labels from stage 1
  fine: Int32Array;    // (N, T) codebook indices from stage 2, for the tokenizer's decoder
  seconds: { stage1: number; stage2: number };
}

/** CTF: stage 1 (coarse AR) then stage 2 (aux), for every image of o.classes. */
export function ctfSample(stage1: Gpt, aux: Gpt, map: ClusterPartition, o: CtfSampleOptions): CtfSample {
  checkCtfModels(stage1, aux, map);
  const t0 = performance.now();
  const coarse = generate(stage1, o);
  const t1 = performance.now();
  const fine = refine(aux, map, o.classes, coarse, { ...o.stage2, seed: o.seed, imageIndices: o.imageIndices, batchSize: o.batchSize });
  const t2 = performance.now();
  return { coarse, fine, seconds: { stage1: (t1 - t0) / 1000, stage2: (t2 - t1) / 1000 } };
}

/** The baseline: plain LlamaGen sampling of fine tokens. */
export function baselineSample(model: Gpt, o: GenerateOptions): { fine: Int32Array; seconds: { stage1: number } } {
  const t0 = performance.now();
  const fine = generate(model, o);
  return { fine, seconds: { stage1: (performance.now() - t0) / 1000 } };
}
