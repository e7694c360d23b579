// KV-cached incremental decoding for a causal Gpt: prefill(classes) runs position 0 (the class token)
// and returns the logits for t_0; each decodeOne(tokens) feeds t_{p-1} at position p and returns the
// logits for t_p. No autograd, no allocation per step: the keys, values and the step's scratch live in the
// cache's native half, and the logits buffer is reused.
// A step is one native call on the model's bound handle (gpt-native.ts, native/gpt_infer.cc gptDecodeStep):
// every projection one GEMM over the whole batch, attention over the cache split by rows over two threads.
// Classifier-free guidance doubles the batch on top of this (src/ctf/cfg.ts); the cache just sees 2B rows.
import { CtfError } from '../errors.js';
import type { Gpt } from './gpt.js';
import { gptDecode, newGptCache, type GptCacheHandle } from './gpt-native.js';

export class KvCache {
  readonly batch: number;
  readonly maxT: number;
  /** The next position to fill (0 before prefill). */
  pos = 0;
  /** (batch, outVocab), returned by prefill/decodeOne, overwritten next step. */
  readonly logits: Float32Array;
  /**
   * Keys (batch, heads, headDim, maxT rounded up to 16) and values (batch, heads, maxT, headDim) per layer, and the
   * step's scratch; native memory, made for this cache's model and usable with it only.
   */
  readonly native: GptCacheHandle;

  /** maxT: positions to hold (default grid², enough to generate a whole image). */
  constructor(model: Gpt, batch: number, maxT = model.config.grid ** 2) {
    const c = model.config;
    if (!c.causal)
      throw new CtfError('KvCache: only causal models decode token by token (the aux model needs one full forward)');
    if (!Number.isInteger(batch) || batch < 1) throw new CtfError(`KvCache: batch ${batch} must be a positive integer`);
    if (!Number.isInteger(maxT) || maxT < 1 || maxT > model.rope.rows)
      throw new CtfError(`KvCache: maxT ${maxT} must be in [1, ${model.rope.rows}] (1 + grid² RoPE positions)`);
    this.batch = batch;
    this.maxT = maxT;
    this.logits = new Float32Array(batch * c.outVocab);
    this.native = newGptCache(model, batch, maxT);
  }

  /** Forget the sequence (buffers are overwritten as positions refill). */
  reset(): void {
    this.pos = 0;
  }
}

function checkRows(cache: KvCache, ids: Int32Array, limit: number, what: string): void {
  if (ids.length !== cache.batch)
    throw new CtfError(`kv decode: ${ids.length} ${what}s for a cache of batch ${cache.batch}`);
  for (let b = 0; b < ids.length; b++)
    if (!(ids[b]! >= 0 && ids[b]! < limit))
      throw new CtfError(`kv decode: ${what} ${ids[b]} at row ${b} outside [0, ${limit})`);
}

/** Runs ids (classes at position 0, else tokens) at position cache.pos; returns cache.logits (B, outVocab). */
function step(model: Gpt, cache: KvCache, ids: Int32Array): Float32Array {
  if (cache.pos >= cache.maxT)
    throw new CtfError(`kv decode: cache full (${cache.maxT} positions); reset() or make a larger cache`);
  gptDecode(model, cache.native, cache.pos, ids, cache.logits);
  cache.pos++;
  return cache.logits;
}

/** Position 0: the class tokens (B) -> logits for t_0 (B, outVocab); resets the cache. */
export function prefill(model: Gpt, cache: KvCache, classes: Int32Array): Float32Array {
  checkRows(cache, classes, model.config.numClasses + 1, 'class');
  cache.reset();
  return step(model, cache, classes);
}

/** Feeds one token per row at the next position -> logits for the following token (B, outVocab). */
export function decodeOne(model: Gpt, cache: KvCache, tokens: Int32Array): Float32Array {
  if (cache.pos === 0) throw new CtfError('kv decode: decodeOne before prefill');
  checkRows(cache, tokens, model.config.inVocab, 'token');
  return step(model, cache, tokens);
}
