// Coarse-to-fine sampling (docs/method.md, Stage 2 and Sampling): stage 1 samples the coarse labels autoregressively
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
import { maskedShare } from '../models/masked-refine.js';
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
  /**
   * Rounds of masked refinement (default 1 = the paper's single pass). Needs an aux trained with --refine masked and
   * the cluster mask: each round samples every still-masked position, keeps the most confident ones (MaskGIT's
   * cosine schedule says how many) and shows them to the next round (docs/refinement.md).
   */
  rounds?: number;
  /** Called after every round with the chunk's fine tokens so far ((B·T), V where still masked): previews. */
  onRound?: (e: RoundEvent) => void;
}

export interface RoundEvent {
  first: number;      // request index of the chunk's first image
  round: number;      // 1 … rounds
  rounds: number;
  fine: Int32Array;   // (count, T) the chunk's fine tokens, V (the [MASK] id) where still masked; a live view
}

/** Stage 2's options for one chunk, resolved. */
type Stage2Settings = Required<LogitsOptions> & {
  clusterMask: boolean; head: 'fast' | 'full'; rounds: number; onRound?: (round: number, fine: Int32Array) => void;
};

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
  o: SampleOptions, rngs: readonly Rng[], confidence?: Float32Array): Int32Array {
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
    if (confidence) for (let j = 0; j < n; j++) confidence[order[pos[c]! + j]!] = softmaxAt(logits.subarray(j * m, (j + 1) * m), local[j]!, o.temperature ?? 1);
  }
  return fine;
}

/** softmax(row / τ)[i] (τ = 0, greedy, scores as τ = 1): the probability of the drawn member. */
function softmaxAt(row: Float32Array, i: number, temperature: number): number {
  const t = temperature > 0 ? temperature : 1;
  let max = -Infinity, sum = 0;
  for (const v of row) max = Math.max(max, v);
  for (const v of row) sum += Math.exp((v - max) / t);
  return Math.exp((row[i]! - max) / t) / sum;
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
  o: Stage2Settings, clusterHead?: ClusterHead): Int32Array {
  const B = classes.length, N = coarse.length, V = aux.config.outVocab;
  const rngs = positionRngs(images, N / B);
  const cfg = usesCfg(o.cfgScale);
  const cls = cfg ? cfgClasses(classes, aux.config.numClasses) : classes, tokens = cfg ? cfgTokens(coarse) : coarse;
  return noGrad(() => {
    if (aux.fineTable) return refineRounds(aux, map, cls, tokens, coarse, rngs, o, clusterHead);
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

/**
 * Stage 2 of an aux that reads chosen fine tokens: o.rounds rounds over one chunk. cls / tokens: the (possibly
 * CFG-doubled) classes and coarse labels; coarse (B·T) and rngs (B·T) the chunk's own. Round 1 sees every position
 * masked; after round r (of R) ⌊T · cos(π/2 · r/R)⌋ positions per image stay masked (at least one fewer each round),
 * the others keep the token drawn for them, ranked by its probability. Round r > 1 draws from stream split(r − 1)
 * of each position's, so one round is exactly a single pass with the round-1 streams.
 */
function refineRounds(aux: Gpt, map: ClusterPartition, cls: Int32Array, tokens: Int32Array, coarse: Int32Array, rngs: readonly Rng[],
  o: Stage2Settings, clusterHead?: ClusterHead): Int32Array {
  if (!o.clusterMask || o.head !== 'fast')
    throw new CtfError('stage 2: masked refinement samples inside the predicted clusters: it needs the cluster mask on (and the fast head)');
  const N = coarse.length, B = cls.length / (usesCfg(o.cfgScale) ? 2 : 1), T = N / B, R = o.rounds, MASK = aux.config.outVocab;
  const head = clusterHead ?? new ClusterHead(aux.output.f32, aux.config.dim, map), D = aux.config.dim;
  const fine = new Int32Array(N).fill(MASK);
  let masked = T;
  for (let r = 0; r < R && masked > 0; r++) {
    const states = finalHidden(aux, cls, tokens, usesCfg(o.cfgScale) ? cfgTokens(fine) : fine).f32;  // (rows·T, dim)
    const hidden = usesCfg(o.cfgScale) ? guide(states, D, o.cfgScale) : states;
    const open = Int32Array.from({ length: N }, (_, i) => i).filter((i) => fine[i] === MASK);
    const sub = new Float32Array(open.length * D);
    open.forEach((i, j) => sub.set(hidden.subarray(i * D, (i + 1) * D), j * D));
    const confidence = new Float32Array(open.length);
    const streams = Array.from(open, (i) => (r === 0 ? rngs[i]! : rngs[i]!.split(r)));
    const drawn = sampleWithinClusters(head, map, sub, open.map((i) => coarse[i]!), o, streams, confidence);
    const left = r === R - 1 ? 0 : Math.min(masked - 1, Math.floor(T * maskedShare((r + 1) / R)));
    // open is ascending, so each image's still-masked positions are one run of it; keep the most confident.
    for (let b = 0, j0 = 0; b < B; b++) {
      let j1 = j0;
      while (j1 < open.length && open[j1]! < (b + 1) * T) j1++;
      const mine = Array.from({ length: j1 - j0 }, (_, k) => j0 + k).sort((x, y) => confidence[y]! - confidence[x]! || x - y);
      for (const j of mine.slice(0, masked - left)) fine[open[j]!] = drawn[j]!;
      j0 = j1;
    }
    masked = left;
    o.onRound?.(r + 1, fine);
  }
  return fine;
}

/** Refuses a stage-1 / aux / coarse-map triple that was not made for each other, naming the mismatch. */
export function checkCtfModels(stage1: Gpt | null, aux: Gpt, map: ClusterPartition): void {
  checkPartition(map, 'ctf');
  const a = aux.config;
  if (a.causal) throw new CtfError('ctf: the auxiliary model is causal; stage 2 needs the bidirectional aux model');
  if (a.inVocab !== map.k || a.outVocab !== map.v)
    throw new CtfError(`ctf: the auxiliary model reads ${a.inVocab} coarse labels and predicts ${a.outVocab} fine ones, the coarse map has K = ${map.k}, V = ${map.v}`);
  if (!stage1) return;
  const s = stage1.config;
  if (!s.causal) throw new CtfError('ctf: the stage-1 model is bidirectional; stage 1 needs the causal stage1 model');
  if (s.inVocab !== map.k || s.outVocab !== map.k)
    throw new CtfError(`ctf: the stage-1 model has vocabulary ${s.inVocab} in / ${s.outVocab} out, the coarse map has K = ${map.k} clusters`);
  if (s.grid !== a.grid || s.numClasses !== a.numClasses)
    throw new CtfError(`ctf: stage 1 (grid ${s.grid}, ${s.numClasses} classes) and the auxiliary model (grid ${a.grid}, ${a.numClasses} classes) do not match`);
}

/** Stage 2 over a whole request: classes (N), coarse (N, T) -> fine (N, T), chunked like generate(). */
export function refine(aux: Gpt, map: ClusterPartition, classes: Int32Array, coarse: Int32Array,
  o: RefineOptions & Pick<GenerateOptions, 'seed' | 'imageIndices' | 'batchSize'> = {}): Int32Array {
  checkCtfModels(null, aux, map);
  const s = { ...resolveLogitsOptions(o, 'stage 2'), clusterMask: o.clusterMask ?? true, head: o.head ?? 'fast', rounds: o.rounds ?? 1 };
  if (!Number.isInteger(s.rounds) || s.rounds < 1) throw new CtfError(`stage 2: rounds ${s.rounds} must be an integer ≥ 1`);
  if (s.rounds > 1 && !aux.fineTable)
    throw new CtfError(`stage 2: ${s.rounds} rounds need an aux trained with --refine masked; this aux reads coarse labels only (1 round)`);
  const N = classes.length, T = aux.config.grid ** 2, batchSize = o.batchSize ?? DEFAULT_BATCH_SIZE;
  if (coarse.length !== N * T) throw new CtfError(`stage 2: ${coarse.length} coarse labels for ${N} images of ${T} tokens`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new CtfError(`stage 2: batchSize ${batchSize} must be a positive integer`);
  const images = imageRngs(o.seed ?? 0, classes, o.imageIndices).map((r) => r.split('aux'));
  const head = s.clusterMask && s.head === 'fast' ? new ClusterHead(aux.output.f32, aux.config.dim, map) : undefined;
  const fine = new Int32Array(N * T);
  for (let first = 0; first < N; first += batchSize) {
    const end = Math.min(N, first + batchSize);
    const onRound = o.onRound && ((round: number, f: Int32Array): void => o.onRound!({ first, round, rounds: s.rounds, fine: f }));
    const chunk = refineChunk(aux, map, classes.subarray(first, end), coarse.subarray(first * T, end * T), images.slice(first, end), { ...s, onRound }, head);
    fine.set(chunk, first * T);
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
