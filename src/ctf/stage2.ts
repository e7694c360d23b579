// Stage 2 of CTF (docs/method.md, Stage 2 and Sampling): the bidirectional auxiliary model reads a whole
// coarse sequence at once and every fine token is sampled, by default only among the members of its position's
// cluster (the cluster mask). Read top to bottom:
//
//   ClusterHead / sampleWithinClusters  the members-only head: with the mask on, only the ~V/K logits of each
//       position's cluster are computed, from the final hidden states — positions grouped by cluster, one small
//       GEMM per cluster against that cluster's head rows — instead of all V
//   refineChunk    one chunk of images: one pass of the aux (CFG-doubled with stage-2 guidance), then the sampler
//   refineRounds   masked refinement (docs/refinement.md): an aux that also reads chosen fine tokens samples in
//                  R rounds, keeping the most confident tokens of each round for the next
//   refine         a whole request, chunked like generate()
import { checkCoarseMap, type CoarsePartition } from '../cluster/coarse-map.js';
import { noGrad } from '../engine/autograd.js';
import { sgemm } from '../engine/ops/matmul.js';
import type { Rng } from '../engine/rng.js';
import { sampleLogits, type OptionName, type SampleOptions } from '../engine/sampling.js';
import { CtfError } from '../errors.js';
import type { Gpt } from '../models/gpt.js';
import { maskedShare } from '../models/masked-refine.js';
import { finalHidden } from '../models/gpt-native.js';
import { cfgClasses, cfgTokens, guide, resolveGuidedOptions, usesCfg, type GuidedOptions } from './cfg.js';
import { resolveBatchSize, type RequestOptions } from './generate.js';
import { imageRngs, maskToClusters, probabilityAt } from './logits.js';

export interface RefineOptions extends GuidedOptions {
  // temperature: τ2 (default 1); topK / topP as in stage 1; temperature 0 or topK 1 is greedy.
  // cfgScale: stage-2 guidance (default 1 = off: it doubles the stage-2 cost and changed little in trials).
  /** Fine ids outside the predicted cluster get −∞ (default true). */
  clusterMask?: boolean;
  /** 'fast' (default) computes only the cluster members' logits when the mask is on; 'full' always all V. */
  head?: 'fast' | 'full';
  /**
   * Rounds of masked refinement (default 1 = the paper's single pass). Needs an aux trained with --refine masked
   * and the cluster mask: each round samples every still-masked position, keeps the most confident ones
   * (MaskGIT's cosine schedule says how many) and shows them to the next round (docs/refinement.md).
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
type Stage2Settings = Required<GuidedOptions> & {
  clusterMask: boolean; head: 'fast' | 'full'; rounds: number; onRound?: (round: number, fine: Int32Array) => void;
};

/** Stage 2's knobs with their defaults, or a CtfError naming the bad one; the CLI checks its flags with this. */
export function resolveRefineOptions(o: Omit<RefineOptions, 'onRound'>, name: OptionName):
  Omit<Stage2Settings, 'onRound'> {
  const s = {
    ...resolveGuidedOptions(o, name), clusterMask: o.clusterMask ?? true, head: o.head ?? 'fast', rounds: o.rounds ?? 1,
  };
  if (typeof s.clusterMask !== 'boolean')
    throw new CtfError(`${name('clusterMask')} ${String(s.clusterMask)} must be true or false`);
  if (s.head !== 'fast' && s.head !== 'full')
    throw new CtfError(`${name('head')} "${String(s.head)}" must be fast or full`);
  if (!Number.isInteger(s.rounds) || s.rounds < 1)
    throw new CtfError(`${name('rounds')} ${s.rounds} must be an integer ≥ 1`);
  return s;
}

/** Refuses an aux that does not read the K coarse labels and predict the V fine ones of map. */
export function checkAux(aux: Gpt, map: Pick<CoarsePartition, 'k' | 'v'>, where: string): void {
  const a = aux.config;
  if (a.causal)
    throw new CtfError(`${where}: the auxiliary model is causal; stage 2 needs the bidirectional aux model`);
  if (a.inVocab !== map.k || a.outVocab !== map.v)
    throw new CtfError(`${where}: the auxiliary model reads ${a.inVocab} coarse labels and predicts ${a.outVocab} ` +
      'fine ones, ' +
      `the coarse map has K = ${map.k}, V = ${map.v}`);
}

/** The output head's rows regrouped cluster by cluster: cluster c is rows start[c] … start[c+1]-1 of w. */
export class ClusterHead {
  readonly w: Float32Array;      // (V, dim)
  readonly start: Int32Array;    // (K+1)
  readonly dim: number;

  constructor(output: Float32Array, dim: number, map: CoarsePartition) {
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
 * confidence (N), when given, receives the probability of each drawn member (refineRounds ranks by it).
 */
export function sampleWithinClusters(head: ClusterHead, map: CoarsePartition, hidden: Float32Array, coarse: Int32Array,
  o: SampleOptions, rngs: readonly Rng[], confidence?: Float32Array): Int32Array {
  const N = coarse.length, D = head.dim, K = map.k;
  if (hidden.length !== N * D || rngs.length !== N)
    throw new CtfError(`sampleWithinClusters: hidden of ${hidden.length} values, ${rngs.length} rngs ` +
      `for ${N} positions of dim ${D}`);
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
    sgemm(false, true, n, m, D, 1, grouped, pos[c]! * D, D, head.w, head.start[c]! * D, D, 0, logits, 0, m);
    const rows = Array.from(order.subarray(pos[c]!, pos[c + 1]!), (p) => rngs[p]!);
    const local = sampleLogits(logits.subarray(0, n * m), n, m, o, rows);
    const members = map.members[c]!;
    for (let j = 0; j < n; j++) fine[order[pos[c]! + j]!] = members[local[j]!]!;
    if (confidence)
      for (let j = 0; j < n; j++)
        confidence[order[pos[c]! + j]!] =
          probabilityAt(logits.subarray(j * m, (j + 1) * m), local[j]!, o.temperature ?? 1);
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
function refineChunk(aux: Gpt, map: CoarsePartition, classes: Int32Array, coarse: Int32Array, images: readonly Rng[],
  o: Stage2Settings, head?: ClusterHead): Int32Array {
  const B = classes.length, N = coarse.length, V = aux.config.outVocab;
  const rngs = positionRngs(images, N / B);
  const cfg = usesCfg(o.cfgScale);
  const cls = cfg ? cfgClasses(classes, aux.config.numClasses) : classes, tokens = cfg ? cfgTokens(coarse) : coarse;
  return noGrad(() => {
    if (aux.fineTable) return refineRounds(aux, map, cls, tokens, coarse, rngs, o, head);
    if (o.clusterMask && o.head === 'fast') {
      // The head is linear and bias-free: guiding the hidden states guides the logits.
      const states = finalHidden(aux, cls, tokens).f32;  // (rows·T, dim)
      const hidden = cfg ? guide(states, aux.config.dim, o.cfgScale) : states;
      const h = head ?? new ClusterHead(aux.output.f32, aux.config.dim, map);
      return sampleWithinClusters(h, map, hidden, coarse, o, rngs);
    }
    const full = aux.forward(cls, tokens, { training: false }).f32;  // (rows·T, V)
    const logits = cfg ? guide(full, V, o.cfgScale) : full;
    if (o.clusterMask) maskToClusters(logits, V, coarse, map);
    return sampleLogits(logits, N, V, o, rngs);
  });
}

/**
 * Stage 2 of an aux that reads chosen fine tokens: o.rounds rounds over one chunk. cls / tokens: the (possibly
 * CFG-doubled) classes and coarse labels; coarse (B·T) and rngs (B·T) the chunk's own. Round 1 sees every
 * position masked; after round r (of R) ⌊T · cos(π/2 · r/R)⌋ positions per image stay masked (at least one fewer
 * each round), the others keep the token drawn for them, ranked by its probability. Round r > 1 draws from stream
 * split(r − 1) of each position's, so one round is exactly a single pass with the round-1 streams.
 */
function refineRounds(aux: Gpt, map: CoarsePartition, cls: Int32Array, tokens: Int32Array, coarse: Int32Array,
  rngs: readonly Rng[], o: Stage2Settings, clusterHead?: ClusterHead): Int32Array {
  if (!o.clusterMask || o.head !== 'fast')
    throw new CtfError('stage 2: masked refinement samples inside the predicted clusters: ' +
      'it needs the cluster mask on (and the fast head)');
  const cfg = usesCfg(o.cfgScale), D = aux.config.dim, MASK = aux.config.outVocab;
  const N = coarse.length, B = cls.length / (cfg ? 2 : 1), T = N / B, R = o.rounds;
  const head = clusterHead ?? new ClusterHead(aux.output.f32, D, map);
  const fine = new Int32Array(N).fill(MASK);
  let masked = T;
  for (let r = 0; r < R && masked > 0; r++) {
    const states = finalHidden(aux, cls, tokens, cfg ? cfgTokens(fine) : fine).f32;  // (rows·T, dim)
    const hidden = cfg ? guide(states, D, o.cfgScale) : states;
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
      const mine = Array.from({ length: j1 - j0 }, (_, k) => j0 + k)
        .sort((x, y) => confidence[y]! - confidence[x]! || x - y);
      for (const j of mine.slice(0, masked - left)) fine[open[j]!] = drawn[j]!;
      j0 = j1;
    }
    masked = left;
    o.onRound?.(r + 1, fine);
  }
  return fine;
}

/** Stage 2 over a whole request: classes (N), coarse (N, T) -> fine (N, T), chunked like generate(). */
export function refine(aux: Gpt, map: CoarsePartition, classes: Int32Array, coarse: Int32Array,
  o: RefineOptions & Omit<RequestOptions, 'classes'> = {}): Int32Array {
  checkCoarseMap(map, 'stage 2: coarse map');
  checkAux(aux, map, 'stage 2');
  const name = (field: string): string => `stage 2: ${field}`;
  const s = resolveRefineOptions(o, name), batchSize = resolveBatchSize(o.batchSize, name);
  if (s.rounds > 1 && !aux.fineTable)
    throw new CtfError(`stage 2: ${s.rounds} rounds need an aux trained with --refine masked; ` +
      'this aux reads coarse labels only (1 round)');
  const N = classes.length, T = aux.config.grid ** 2;
  if (coarse.length !== N * T)
    throw new CtfError(`stage 2: ${coarse.length} coarse labels for ${N} images of ${T} tokens`);
  const images = imageRngs(o.seed ?? 0, classes, o.imageIndices).map((r) => r.split('aux'));
  const head = s.clusterMask && s.head === 'fast' ? new ClusterHead(aux.output.f32, aux.config.dim, map) : undefined;
  const fine = new Int32Array(N * T);
  for (let first = 0; first < N; first += batchSize) {
    const end = Math.min(N, first + batchSize);
    const onRound = o.onRound &&
      ((round: number, f: Int32Array): void => o.onRound!({ first, round, rounds: s.rounds, fine: f }));
    const chunk = refineChunk(aux, map, classes.subarray(first, end), coarse.subarray(first * T, end * T),
      images.slice(first, end), { ...s, onRound }, head);
    fine.set(chunk, first * T);
  }
  return fine;
}
