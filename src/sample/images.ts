// From sampled tokens to pixels: the tokenizer's decoder over a whole request in batches, and the stage-1
// preview — what the image looks like while only coarse labels exist.
//
// Preview choice: a coarse label is drawn as its cluster's *representative*, the member codeword nearest to
// the cluster centroid. The centroids (src/cluster) are means of l2-normalised codewords, not codewords; the
// representative is a real codeword, so the preview goes through the tokenizer's own decode() and stays in
// the inputs the decoder was trained on (a renormalised centroid would be a direction it never saw).
import type { CoarseMap } from '../cluster/coarse-map.js';
import { CtfError } from '../errors.js';
import { Tensor } from '../engine/tensor.js';
import type { VqTokenizer } from '../tokenizer/model.js';

/** fine (N, g·g) token ids -> images (N, C, S, S), values about [−1, 1]; decoded batchSize images at a time. */
export function decodeTokens(
  tokenizer: VqTokenizer,
  fine: Int32Array,
  o: { batchSize?: number; onBatch?: (done: number, total: number) => void } = {},
): Float32Array {
  const g = tokenizer.grid,
    T = g * g,
    { inChannels: C, imageSize: S } = tokenizer.config;
  if (fine.length % T !== 0) throw new CtfError(`decodeTokens: ${fine.length} tokens are not whole ${g}×${g} grids`);
  const N = fine.length / T,
    bs = o.batchSize ?? 64,
    px = C * S * S;
  const out = new Float32Array(N * px);
  for (let first = 0; first < N; first += bs) {
    const B = Math.min(bs, N - first);
    out.set(tokenizer.decode(new Tensor(fine.subarray(first * T, (first + B) * T), [B, g, g])).f32, first * px);
    o.onBatch?.(first + B, N);
  }
  return out;
}

/**
 * (K) for each cluster, the member whose unit codeword is nearest to the cluster centroid (largest dot product
 * with it: for unit x, ‖x − m‖² = 1 + ‖m‖² − 2 x·m). unitCodebook: (V, D) l2-normalised codewords.
 */
export function clusterRepresentatives(
  map: Pick<CoarseMap, 'k' | 'v' | 'dim' | 'members' | 'centroids'>,
  unitCodebook: Float32Array,
): Int32Array {
  const D = map.dim;
  if (unitCodebook.length !== map.v * D)
    throw new CtfError(
      `clusterRepresentatives: codebook of ${unitCodebook.length} values is not (V = ${map.v}, D = ${D})`,
    );
  return Int32Array.from(map.members, (members, c) => {
    let best = members[0]!,
      bestDot = -Infinity;
    for (const f of members) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += unitCodebook[f * D + d]! * map.centroids[c * D + d]!;
      if (dot > bestDot) {
        bestDot = dot;
        best = f;
      }
    }
    return best;
  });
}

/** Preview columns: the number of coarse labels known in each (quarters of the sequence: 16/32/48/64 for 8×8). */
export function previewSteps(T: number, columns = 4): number[] {
  return Array.from({ length: columns }, (_, i) => Math.round(((i + 1) * T) / columns));
}

export interface PreviewOptions {
  steps: number[];            // coarse labels known in each preview column
  batchSize?: number;         // decoder batch
}

/**
 * Token grids of which only the first known[i] positions are real -> images (N, C, S, S): tokens (N, T) fine ids
 * (a coarse label drawn as its representative); the other cells are decoded as the image's first token (so the
 * decoder sees a plausible background) and then painted mid-grey, so the picture shows exactly what is known.
 * known: one count for every image, or (N) counts. Used by the --progressive grid and the web demo's stream.
 */
export function partialImages(tokenizer: VqTokenizer, tokens: Int32Array, known: number | Int32Array,
  o: { batchSize?: number } = {}): Float32Array {
  const g = tokenizer.grid, T = g * g, { inChannels: C, imageSize: S } = tokenizer.config;
  const px = C * S * S, patch = S / g;
  const N = tokens.length / T;
  if (!Number.isInteger(N)) throw new CtfError(`partialImages: ${tokens.length} tokens are not whole ${g}×${g} grids`);
  const knownOf = (n: number): number => (typeof known === 'number' ? known : known[n]!);
  if (typeof known !== 'number' && known.length !== N)
    throw new CtfError(`partialImages: ${known.length} counts for ${N} images`);
  const filled = new Int32Array(tokens.length);
  for (let n = 0; n < N; n++) {
    const k = knownOf(n);
    if (!(Number.isInteger(k) && k >= 0 && k <= T))
      throw new CtfError(`partialImages: ${k} known tokens outside [0, ${T}]`);
    for (let p = 0; p < T; p++) filled[n * T + p] = tokens[n * T + (p < k ? p : 0)]!;
  }
  const images = decodeTokens(tokenizer, filled, o);
  for (let n = 0; n < N; n++) {
    const img = images.subarray(n * px, (n + 1) * px);
    for (let p = knownOf(n); p < T; p++) {
      const y0 = Math.floor(p / g) * patch, x0 = (p % g) * patch;
      for (let ch = 0; ch < C; ch++)
        for (let y = y0; y < y0 + patch; y++) img.fill(0, ch * S * S + y * S + x0, ch * S * S + y * S + x0 + patch);
    }
  }
  return images;
}

/**
 * Rows = images, columns = the stage-1 preview after steps[j] coarse labels, then the final image.
 * coarse (N, T) stage-1 labels, finals (N, C, S, S) the decoded CTF images -> (N·(steps+1), C, S, S).
 * Each preview is partialImages of the labels drawn as their representatives.
 */
export function progressivePreview(tokenizer: VqTokenizer, representatives: Int32Array, coarse: Int32Array,
  finals: Float32Array, o: PreviewOptions): { images: Float32Array; cols: number } {
  const g = tokenizer.grid, T = g * g, { inChannels: C, imageSize: S } = tokenizer.config, px = C * S * S;
  const N = coarse.length / T, cols = o.steps.length + 1, J = o.steps.length;
  if (!Number.isInteger(N) || finals.length !== N * px)
    throw new CtfError(`progressivePreview: ${coarse.length} labels and ${finals.length} pixels ` +
      'do not describe the same images');
  for (const s of o.steps)
    if (!(Number.isInteger(s) && s >= 0 && s <= T))
      throw new CtfError(`progressivePreview: step ${s} outside [0, ${T}]`);
  // One row of tokens per (image, step), decoded in one call.
  const tokens = new Int32Array(N * J * T), known = new Int32Array(N * J);
  for (let n = 0; n < N; n++)
    o.steps.forEach((k, j) => {
      known[n * J + j] = k;
      for (let p = 0; p < T; p++) tokens[(n * J + j) * T + p] = representatives[coarse[n * T + p]!]!;
    });
  const previews = partialImages(tokenizer, tokens, known, { batchSize: o.batchSize });
  const images = new Float32Array(N * cols * px);
  for (let n = 0; n < N; n++) {
    images.set(previews.subarray(n * J * px, (n + 1) * J * px), n * cols * px);
    images.set(finals.subarray(n * px, (n + 1) * px), (n * cols + cols - 1) * px);
  }
  return { images, cols };
}
