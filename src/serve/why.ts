// The "why it works" view on the sampler thread: the paper's key observation (`ctfgen cluster swap-demo`, via the
// same swapDemo) on one image — a test image encoded by the tokenizer, or a generated image's tokens — and, for a
// clicked token, its cluster's members decoded in its place, for the k-means cluster and for a random one.
import { randomCoarseMap, type CoarseMap } from '../cluster/coarse-map.js';
import { swapDemo, type TokenCodec } from '../cluster/swap.js';
import { indicesByClass } from '../data/dataset.js';
import { toModelInput } from '../data/model-input.js';
import { Rng } from '../engine/rng.js';
import { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import { decodeTokens } from '../sample/images.js';
import type { ServeContext } from './context.js';
import { pixelsBase64 } from './generate.js';
import type { ClusterMembers, MembersResponse, WhyResponse, WhyRow } from './protocol.js';

export type WhyJob =
  | { source: 'test'; classId: number; index: number; seed: number }
  | { source: 'tokens'; tokens: Int32Array; seed: number };

export interface MembersJob { tokens: Int32Array; position: number; seed: number; maxMembers: number }

function kmeansMap(ctx: ServeContext): CoarseMap {
  if (!ctx.map) throw new CtfError(`${ctx.info.run} has no coarse map (clusters.safetensors): the view needs one`);
  return ctx.map;
}

// The random clusters of the ablation, as `ctfgen cluster swap-demo --seed S` draws them; the last one is kept.
let lastRandom: { seed: number; map: CoarseMap } | null = null;
function randomMap(ctx: ServeContext, seed: number): CoarseMap {
  if (lastRandom?.seed !== seed)
    lastRandom = { seed, map: randomCoarseMap(kmeansMap(ctx), ctx.pieces.tokenizer.model.quantizer.codebook, seed) };
  return lastRandom.map;
}

export function runWhy(ctx: ServeContext, job: WhyJob): WhyResponse {
  const map = kmeansMap(ctx), tok = ctx.pieces.tokenizer.model, g = tok.grid;
  let x: Tensor, tokens: Int32Array | null = null, codec: TokenCodec;
  if (job.source === 'test') {
    const ds = ctx.testSet;
    if (!ds)
      throw new CtfError('no test images: the tokenizer\'s dataset is not installed here; explain a generated image');
    const ofClass = indicesByClass(ds)[job.classId] ?? [];
    const i = ofClass[job.index];
    if (i === undefined)
      throw new CtfError(`index ${job.index}: class ${job.classId} (${ctx.info.classNames[job.classId]}) ` +
        `has ${ofClass.length} test images`);
    const batch = toModelInput(ds, [i]);
    x = new Tensor(batch.x, batch.shape);
    // swapDemo encodes the image; keep the tokens it swapped.
    codec = {
      grid: g, decode: (t) => tok.decode(t),
      reconstruct: (img) => { const r = tok.reconstruct(img); tokens = r.index; return r; },
    };
  } else {
    const given = job.tokens;
    x = new Tensor(decodeTokens(tok, given), [1, tok.config.inChannels, tok.config.imageSize, tok.config.imageSize]);
    tokens = given;
    codec = { grid: g, decode: (t) => tok.decode(t), reconstruct: (img) => ({ recon: img, index: given }) };
  }
  const maps = [{ name: 'k-means swap', map }, { name: 'random swap', map: randomMap(ctx, job.seed) }];
  const demo = swapDemo(codec, x, maps, new Rng(job.seed).split('swap-demo'));
  const pixels = pixelsBase64(demo.images, demo.rows.length);
  const rows: WhyRow[] = demo.rows.map((r, i) => ({
    name: r.name as WhyRow['name'], pixels: pixels[i]!, tokensChanged: r.tokensChanged,
    psnrVsRecon: r.name === 'original' || r.name === 'reconstruction' ? null : r.psnrVsRecon,
  }));
  const own = Array.from(tokens!);
  return {
    tokens: own, clusters: own.map((t) => map.fineToCoarse[t]!), seed: job.seed,
    // A generated image has no original: its "reconstruction" is itself.
    rows: job.source === 'test' ? rows : rows.filter((r) => r.name !== 'original'),
  };
}

/** Up to `max` members of a cluster: `own` first, then others spread evenly over the ascending list. */
export function pickMembers(members: Int32Array, own: number, max: number): number[] {
  const others = Array.from(members).filter((m) => m !== own);
  const take = Math.min(others.length, max - 1);
  return [own, ...Array.from({ length: take }, (_, i) => others[Math.floor((i * others.length) / take)]!)];
}

function clusterMembers(ctx: ServeContext, map: CoarseMap, job: MembersJob): ClusterMembers {
  const T = job.tokens.length, own = job.tokens[job.position]!, cluster = map.fineToCoarse[own]!;
  const ids = pickMembers(map.members[cluster]!, own, job.maxMembers);
  const grids = new Int32Array(ids.length * T);
  ids.forEach((id, i) => { grids.set(job.tokens, i * T); grids[i * T + job.position] = id; });
  const pixels = pixelsBase64(decodeTokens(ctx.pieces.tokenizer.model, grids), ids.length);
  return { cluster, size: map.members[cluster]!.length, members: ids.map((id, i) => ({ id, pixels: pixels[i]! })) };
}

export function runMembers(ctx: ServeContext, job: MembersJob): MembersResponse {
  return {
    position: job.position, token: job.tokens[job.position]!,
    kmeans: clusterMembers(ctx, kmeansMap(ctx), job),
    random: clusterMembers(ctx, randomMap(ctx, job.seed), job),
  };
}
