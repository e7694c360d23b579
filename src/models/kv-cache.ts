// KV-cached incremental decoding for a causal Gpt: prefill(classes) runs position 0 (the class token)
// and returns the logits for t_0; each decodeOne(tokens) feeds t_{p-1} at position p and returns the
// logits for t_p. No autograd, no allocation per step: every buffer lives in the KvCache and is reused.
// A step is one native call (native/fused.cc gptDecodeStep): every projection one GEMM over the whole
// batch, split by output columns over two threads, attention over the cache split by rows.
// Classifier-free guidance doubles the batch on top of this (src/ctf/cfg.ts); the cache just sees 2B rows.
import { CtfError } from '../errors.js';
import { gptDecodeStep } from '../engine/ops/fused.js';
import type { Gpt } from './gpt.js';

export class KvCache {
  readonly batch: number;
  readonly maxT: number;
  /** Per layer, keys transposed: (batch, heads, headDim, ldk), ldk = maxT rounded up to 16. */
  readonly k: Float32Array[];
  /** Per layer, values: (batch, heads, maxT, headDim). */
  readonly v: Float32Array[];
  readonly ldk: number;
  /** The next position to fill (0 before prefill). */
  pos = 0;
  // Per-step scratch, (batch, ·) each.
  readonly h: Float32Array;       // (B, dim) residual stream
  readonly x: Float32Array;       // (B, dim) normed input of a projection
  readonly qkv: Float32Array;     // (B, 3·dim)
  readonly att: Float32Array;     // (B, dim)
  readonly ab: Float32Array;      // (B, 2·hidden)
  readonly g: Float32Array;       // (B, hidden)
  readonly logits: Float32Array;  // (B, outVocab), returned by prefill/decodeOne, overwritten next step

  /** maxT: positions to hold (default grid², enough to generate a whole image). */
  constructor(model: Gpt, batch: number, maxT = model.config.grid ** 2) {
    const c = model.config;
    if (!c.causal) throw new CtfError('KvCache: only causal models decode token by token (the aux model needs one full forward)');
    if (!Number.isInteger(batch) || batch < 1) throw new CtfError(`KvCache: batch ${batch} must be a positive integer`);
    if (!Number.isInteger(maxT) || maxT < 1 || maxT > model.rope.rows)
      throw new CtfError(`KvCache: maxT ${maxT} must be in [1, ${model.rope.rows}] (1 + grid² RoPE positions)`);
    this.batch = batch;
    this.maxT = maxT;
    this.ldk = Math.ceil(maxT / 16) * 16;
    this.k = Array.from({ length: c.layers }, () => new Float32Array(batch * c.heads * model.headDim * this.ldk));
    this.v = Array.from({ length: c.layers }, () => new Float32Array(batch * c.heads * maxT * model.headDim));
    this.h = new Float32Array(batch * c.dim);
    this.x = new Float32Array(batch * c.dim);
    this.qkv = new Float32Array(batch * 3 * c.dim);
    this.att = new Float32Array(batch * c.dim);
    this.ab = new Float32Array(batch * 2 * model.hidden);
    this.g = new Float32Array(batch * model.hidden);
    this.logits = new Float32Array(batch * c.outVocab);
  }

  /** Forget the sequence (buffers are overwritten as positions refill). */
  reset(): void {
    this.pos = 0;
  }
}

function checkRows(cache: KvCache, ids: Int32Array, limit: number, what: string): void {
  if (ids.length !== cache.batch) throw new CtfError(`kv decode: ${ids.length} ${what}s for a cache of batch ${cache.batch}`);
  for (let b = 0; b < ids.length; b++)
    if (!(ids[b]! >= 0 && ids[b]! < limit)) throw new CtfError(`kv decode: ${what} ${ids[b]} at row ${b} outside [0, ${limit})`);
}

/** Copies table rows ids into h (B, dim). */
function gatherRows(table: Float32Array, ids: Int32Array, dim: number, h: Float32Array): void {
  for (let b = 0; b < ids.length; b++) h.set(table.subarray(ids[b]! * dim, (ids[b]! + 1) * dim), b * dim);
}

/** Runs the blocks and the head on cache.h at position cache.pos; returns cache.logits (B, outVocab). */
function step(model: Gpt, cache: KvCache): Float32Array {
  const c = model.config, pos = cache.pos;
  if (pos >= cache.maxT) throw new CtfError(`kv decode: cache full (${cache.maxT} positions); reset() or make a larger cache`);
  const pairs = model.headDim / 2;
  const cos = model.rope.cos.subarray(pos * pairs, (pos + 1) * pairs), sin = model.rope.sin.subarray(pos * pairs, (pos + 1) * pairs);
  const weights = model.blockWeights();
  gptDecodeStep(cache.h, cache.x, cache.qkv, cache.att, cache.ab, cache.g, cache.logits, weights, cache.k, cache.v, cos, sin,
    model.norm.f32, model.output.f32, cache.batch, c.dim, c.heads, model.hidden, c.outVocab, cache.maxT, cache.ldk, pos, c.normEps);
  cache.pos = pos + 1;
  return cache.logits;
}

/** Position 0: the class tokens (B) -> logits for t_0 (B, outVocab); resets the cache. */
export function prefill(model: Gpt, cache: KvCache, classes: Int32Array): Float32Array {
  checkRows(cache, classes, model.config.numClasses + 1, 'class');
  cache.reset();
  gatherRows(model.clsTable.f32, classes, model.config.dim, cache.h);
  return step(model, cache);
}

/** Feeds one token per row at the next position -> logits for the following token (B, outVocab). */
export function decodeOne(model: Gpt, cache: KvCache, tokens: Int32Array): Float32Array {
  if (cache.pos === 0) throw new CtfError('kv decode: decodeOne before prefill');
  checkRows(cache, tokens, model.config.inVocab, 'token');
  gatherRows(model.tokTable.f32, tokens, model.config.dim, cache.h);
  return step(model, cache);
}
