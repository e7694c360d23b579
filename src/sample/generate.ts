// Class-conditional autoregressive sampling with the KV cache: stage 1 of CTF (coarse labels) and the
// whole baseline (fine tokens). Split like LlamaGen's generate.py: prefill (the class token) and
// decode-one (one token for every row) on a Decoder, and generate() looping over positions and chunking
// the request into batches. Classifier-free guidance doubles the batch to [cond; null] (docs/method.md, Sampling).
//
// Every image draws from its own stream, named by (seed, class, index) — see imageRngs() — and exactly one
// number per position, so neither the chunk size nor the other images of a request change it.
import { CtfError } from '../errors.js';
import type { Rng } from '../engine/rng.js';
import { sampleLogits } from '../engine/sampling.js';
import type { Gpt } from '../models/gpt.js';
import { KvCache, cfgClasses, cfgTokens, decodeOne, prefill } from '../models/kv-cache.js';
import { guide, imageRngs, resolveLogitsOptions, usesCfg, type LogitsOptions } from './logits.js';

export interface GenerateOptions extends LogitsOptions {
  /** (N) class of each image, in [0, numClasses]; numClasses (the null class) samples unconditionally. */
  classes: Int32Array;
  /** Root of every image's random stream (default 0). */
  seed?: number;
  /** (N) index naming each image's stream (default: its rank among the request's images of its class). */
  imageIndices?: Int32Array;
  /** Images per chunk (default 64); the model sees twice as many rows with guidance. */
  batchSize?: number;
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

/** Prefill / decode-one for a fixed batch of images: a KV cache (doubled with guidance) and guided logits. */
export class Decoder {
  readonly model: Gpt;
  readonly batch: number;     // images
  readonly cfgScale: number;
  readonly cache: KvCache;    // batch rows, or 2·batch = [cond; null] with guidance
  private readonly doubled: Int32Array<ArrayBuffer>;   // (2·batch) tokens fed to both halves
  private readonly guided: Float32Array<ArrayBuffer>;  // (batch, outVocab)

  constructor(model: Gpt, batch: number, cfgScale: number) {
    if (!model.config.causal) throw new CtfError('Decoder: the model is bidirectional; autoregressive sampling needs a causal GPT (stage 1 or the baseline)');
    this.model = model;
    this.batch = batch;
    this.cfgScale = cfgScale;
    const cfg = usesCfg(cfgScale);
    this.cache = new KvCache(model, cfg ? 2 * batch : batch);
    this.doubled = new Int32Array(cfg ? 2 * batch : 0);
    this.guided = new Float32Array(cfg ? batch * model.config.outVocab : 0);
  }

  /** classes (batch) -> logits (batch, outVocab) for token 0; restarts the sequence. */
  prefill(classes: Int32Array): Float32Array {
    if (!usesCfg(this.cfgScale)) return prefill(this.model, this.cache, classes);
    return this.combine(prefill(this.model, this.cache, cfgClasses(classes, this.model.config.numClasses)));
  }

  /** tokens (batch) at the next position -> logits (batch, outVocab) for the token after it. */
  decodeOne(tokens: Int32Array): Float32Array {
    if (!usesCfg(this.cfgScale)) return decodeOne(this.model, this.cache, tokens);
    return this.combine(decodeOne(this.model, this.cache, cfgTokens(tokens, this.doubled)));
  }

  private combine(logits: Float32Array): Float32Array {
    return guide(logits, this.model.config.outVocab, this.cfgScale, this.guided);
  }
}

/**
 * One chunk: classes (B) and the images' streams (B) -> out (B, T) tokens. The logits buffers returned by
 * the decoder are reused; nothing else is allocated per position but the sampled row.
 */
export function generateChunk(dec: Decoder, classes: Int32Array, rngs: readonly Rng[], o: LogitsOptions, out: Int32Array,
  onPosition?: (position: number) => void): Int32Array {
  const B = dec.batch, T = dec.model.config.grid ** 2, V = dec.model.config.outVocab;
  if (classes.length !== B || rngs.length !== B || out.length !== B * T)
    throw new CtfError(`generateChunk: ${classes.length} classes, ${rngs.length} rngs and ${out.length} outputs for a decoder of ${B} images × ${T} tokens`);
  let logits = dec.prefill(classes);
  for (let p = 0; p < T; p++) {
    const next = sampleLogits(logits, B, V, o, rngs);
    for (let b = 0; b < B; b++) out[b * T + p] = next[b]!;
    onPosition?.(p);
    if (p < T - 1) logits = dec.decodeOne(next);
  }
  return out;
}

/** Tokens (N, T) row-major, T = grid², for every image of the request. */
export function generate(model: Gpt, o: GenerateOptions): Int32Array {
  const s = resolveLogitsOptions(o, 'generate');
  const { classes } = o, N = classes.length, T = model.config.grid ** 2;
  const batchSize = o.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new CtfError(`generate: batchSize ${batchSize} must be a positive integer`);
  const rngs = imageRngs(o.seed ?? 0, classes, o.imageIndices).map((r) => r.split('ar'));
  const out = new Int32Array(N * T);
  let dec: Decoder | undefined;
  for (let first = 0; first < N; first += batchSize) {
    const count = Math.min(batchSize, N - first);
    if (!dec || dec.batch !== count) dec = new Decoder(model, count, s.cfgScale);
    const tokens = out.subarray(first * T, (first + count) * T);
    const onToken = o.onToken;
    generateChunk(dec, classes.subarray(first, first + count), rngs.slice(first, first + count), s, tokens,
      onToken && ((position) => onToken({ first, count, position, tokens })));
  }
  return out;
}
