// The autoregressive decode loop that stage 1 (coarse labels, stage1.ts) and the baseline (fine tokens,
// baseline.ts) share. Split like LlamaGen's generate.py:
//
//   ArSampler.prefill(classes)   position 0, the class token -> logits for token 0; restarts the KV cache
//   ArSampler.decodeOne(tokens)  feeds token p-1 at position p -> logits for token p
//   generateChunk                the loop over the T = grid² positions for one batch of images
//   generate                     a whole request, chunked into batches of at most batchSize images
//
// The KV cache and the native decoding step are src/models/kv-cache.ts. Classifier-free guidance doubles the batch
// to [cond; null] and mixes the two halves' logits at every step (cfg.ts).
//
// Every image draws from its own stream, named by (seed, class, index) — see imageRngs() — and exactly one
// number per position, so neither the chunk size nor the other images of a request change it.
import type { Rng } from '../engine/rng.js';
import { sampleLogits, type OptionName } from '../engine/sampling.js';
import { CtfError } from '../errors.js';
import type { Gpt } from '../models/gpt.js';
import { KvCache, decodeOne, prefill } from '../models/kv-cache.js';
import { cfgClasses, cfgTokens, guide, resolveGuidedOptions, usesCfg, type GuidedOptions } from './cfg.js';
import { imageRngs } from './logits.js';

/** The request every sampler takes: which images, their streams and how many go through the model at once. */
export interface RequestOptions {
  /** (N) class of each image, in [0, numClasses]; numClasses (the null class) samples unconditionally. */
  classes: Int32Array;
  /** Root of every image's random stream (default 0). */
  seed?: number;
  /** (N) index naming each image's stream (default: its rank among the request's images of its class). */
  imageIndices?: Int32Array;
  /** Images per chunk (default 64); the model sees twice as many rows with guidance. */
  batchSize?: number;
}

export interface GenerateOptions extends RequestOptions, GuidedOptions {
  /** Called after every position of every chunk, e.g. for progressive previews. */
  onToken?: (e: TokenEvent) => void;
}

export interface TokenEvent {
  first: number;       // request index of the chunk's first image
  count: number;       // images in the chunk
  position: number;    // the position just sampled, 0 … T-1
  tokens: Int32Array;  // (count, T) the chunk's tokens, valid up to position; a live view — copy what you keep
}

export const DEFAULT_BATCH_SIZE = 64;

/** batchSize with its default, or a CtfError naming it. */
export function resolveBatchSize(batchSize: number | undefined, name: OptionName): number {
  const b = batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isInteger(b) || b < 1) throw new CtfError(`${name('batchSize')} ${b} must be a positive integer`);
  return b;
}

/** Generation's knobs with their defaults, or a CtfError naming the bad one; the CLI checks its flags with this. */
export function resolveGenerateOptions(o: Omit<GenerateOptions, 'classes'>, name: OptionName):
  Required<GuidedOptions> & { batchSize: number } {
  return { ...resolveGuidedOptions(o, name), batchSize: resolveBatchSize(o.batchSize, name) };
}

/** Prefill / decode-one for a fixed batch of images: a KV cache (doubled with guidance) and guided logits. */
export class ArSampler {
  readonly model: Gpt;
  readonly batch: number;     // images
  readonly cfgScale: number;
  readonly cache: KvCache;    // batch rows, or 2·batch = [cond; null] with guidance
  private readonly doubled: Int32Array<ArrayBuffer>;   // (2·batch) tokens fed to both halves
  private readonly guided: Float32Array<ArrayBuffer>;  // (batch, outVocab)

  constructor(model: Gpt, batch: number, cfgScale: number) {
    const c = model.config;
    if (!c.causal)
      throw new CtfError('ArSampler: the model is bidirectional; autoregressive sampling needs a causal GPT ' +
        '(stage 1 or the baseline)');
    this.model = model;
    this.batch = batch;
    this.cfgScale = cfgScale;
    const cfg = usesCfg(cfgScale);
    this.cache = new KvCache(model, cfg ? 2 * batch : batch);
    this.doubled = new Int32Array(cfg ? 2 * batch : 0);
    this.guided = new Float32Array(cfg ? batch * c.outVocab : 0);
  }

  /** classes (batch) -> logits (batch, outVocab) for token 0; restarts the sequence. */
  prefill(classes: Int32Array): Float32Array {
    if (!usesCfg(this.cfgScale)) return prefill(this.model, this.cache, classes);
    return this.guide(prefill(this.model, this.cache, cfgClasses(classes, this.model.config.numClasses)));
  }

  /** tokens (batch) at the next position -> logits (batch, outVocab) for the token after it. */
  decodeOne(tokens: Int32Array): Float32Array {
    if (!usesCfg(this.cfgScale)) return decodeOne(this.model, this.cache, tokens);
    return this.guide(decodeOne(this.model, this.cache, cfgTokens(tokens, this.doubled)));
  }

  private guide(logits: Float32Array): Float32Array {
    return guide(logits, this.model.config.outVocab, this.cfgScale, this.guided);
  }
}

/**
 * One chunk: classes (B) and the images' streams (B) -> out (B, T) tokens. The logits buffers returned by
 * the sampler are reused; nothing else is allocated per position but the sampled row.
 */
export function generateChunk(ar: ArSampler, classes: Int32Array, rngs: readonly Rng[], o: GuidedOptions,
  out: Int32Array, onPosition?: (position: number) => void): Int32Array {
  const B = ar.batch, T = ar.model.config.grid ** 2, V = ar.model.config.outVocab;
  if (classes.length !== B || rngs.length !== B || out.length !== B * T)
    throw new CtfError(`generateChunk: ${classes.length} classes, ${rngs.length} rngs and ${out.length} outputs ` +
      `for a sampler of ${B} images × ${T} tokens`);
  let logits = ar.prefill(classes);
  for (let p = 0; p < T; p++) {
    const next = sampleLogits(logits, B, V, o, rngs);
    for (let b = 0; b < B; b++) out[b * T + p] = next[b]!;
    onPosition?.(p);
    if (p < T - 1) logits = ar.decodeOne(next);
  }
  return out;
}

/** Tokens (N, T) row-major, T = grid², for every image of the request. */
export function generate(model: Gpt, o: GenerateOptions): Int32Array {
  const s = resolveGenerateOptions(o, (field) => `generate: ${field}`);
  const { classes } = o, N = classes.length, T = model.config.grid ** 2;
  const rngs = imageRngs(o.seed ?? 0, classes, o.imageIndices).map((r) => r.split('ar'));
  const out = new Int32Array(N * T);
  let ar: ArSampler | undefined;
  for (let first = 0; first < N; first += s.batchSize) {
    const count = Math.min(s.batchSize, N - first);
    if (!ar || ar.batch !== count) ar = new ArSampler(model, count, s.cfgScale);
    const tokens = out.subarray(first * T, (first + count) * T);
    const onToken = o.onToken;
    generateChunk(ar, classes.subarray(first, first + count), rngs.slice(first, first + count), s, tokens,
      onToken && ((position) => onToken({ first, count, position, tokens })));
  }
  return out;
}
