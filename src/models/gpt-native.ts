// The GPT bound once to native code for inference (docs/gpt-native.md; native/gpt_bind.cc, native/gpt_infer.cc).
//
// gptHandle(model) binds Gpt.namedWeights on first use: the native side keeps references to the weights' own
// Float32Arrays (no copy) and checks every shape against the config once, by name, with a clear error. The
// handle reads those buffers live: AdamW updates parameters in place and loadGptWeights copies into them, so a
// handle bound before a training step or a load sees the new weights without rebinding (test/models/gpt-native).
// Calls then take the handle and their own inputs only: a KV-cached decode step (kv-cache.ts) and finalHidden,
// the blocks over whole sequences. Their scratch belongs to the handle (finalHidden) or the cache (decoding).
import { kernel } from '../engine/native.js';
import type { RopeTable } from '../engine/ops/rope.js';
import { slice } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import { ffnHidden, type Gpt, type GptConfig, type NamedWeight } from './gpt.js';

/** A native GPT handle (an opaque napi External). */
export interface GptHandle { readonly kind: 'gpt handle' }
/** A native KV cache of one GptHandle: keys, values and the decode step's scratch (an opaque napi External). */
export interface GptCacheHandle { readonly kind: 'gpt kv cache' }

interface BindSpec {
  layers: number; dim: number; heads: number; hidden: number; numClasses: number; inVocab: number; outVocab: number;
  fineVocab: number; causal: boolean; normEps: number;
  ropeCos: Float32Array; ropeSin: Float32Array; ropeRows: number;  // (ropeRows, headDim/2) each
  weights: { name: string; shape: readonly number[]; data: Float32Array }[];
}

const gptBind = kernel<(spec: BindSpec) => GptHandle>('gptBind');
const gptCacheNew = kernel<(model: GptHandle, batch: number, maxT: number) => GptCacheHandle>('gptCacheNew');
const gptDecodeStep = kernel<(model: GptHandle, cache: GptCacheHandle, pos: number, ids: Int32Array,
  logits: Float32Array) => void>('gptDecodeStep');
const gptHiddenForward = kernel<(model: GptHandle, classes: Int32Array, tokens: Int32Array,
  fineInputs: Int32Array | null, out: Float32Array) => void>('gptHiddenForward');

/**
 * A handle over these weights for a model of this config: each weight the config implies must be in the list
 * under its checkpoint name with exactly its shape, and nothing else may be. gptHandle(model) is the usual way.
 */
export function bindGptWeights(config: GptConfig, weights: readonly NamedWeight[], rope: RopeTable): GptHandle {
  const spec: BindSpec = {
    ...config, hidden: ffnHidden(config), ropeCos: rope.cos, ropeSin: rope.sin, ropeRows: rope.rows,
    weights: weights.map(({ name, tensor }) => ({ name, shape: tensor.shape, data: tensor.f32 })),
  };
  return asCtfError(() => gptBind(spec));
}

/** Native errors (a TypeError naming the kernel, argument and what was expected) as the library's own. */
function asCtfError<T>(call: () => T): T {
  try {
    return call();
  } catch (e) {
    throw new CtfError((e as Error).message);
  }
}

const handles = new WeakMap<Gpt, GptHandle>();

/** The model's native handle, bound on first use and kept as long as the model. */
export function gptHandle(model: Gpt): GptHandle {
  let h = handles.get(model);
  if (!h) handles.set(model, (h = bindGptWeights(model.config, model.namedWeights, model.rope)));
  return h;
}

/** A zeroed native KV cache of `batch` rows and maxT positions for the model (src/models/kv-cache.ts). */
export function newGptCache(model: Gpt, batch: number, maxT: number): GptCacheHandle {
  const handle = gptHandle(model);
  return asCtfError(() => gptCacheNew(handle, batch, maxT));
}

/**
 * One KV-cached decoding step at position pos of a cache made for this model: ids (N) are classes at position 0,
 * tokens after; logits (N, outVocab) receives the next token's logits.
 */
export function gptDecode(model: Gpt, cache: GptCacheHandle, pos: number, ids: Int32Array, logits: Float32Array): void {
  const handle = gptHandle(model);
  asCtfError(() => gptDecodeStep(handle, cache, pos, ids, logits));
}

/**
 * The final normed hidden states, i.e. Gpt.forward without its output head and with training off: stage 2
 * multiplies them by only the head rows it will sample from (src/sample/ctf.ts). classes (B), tokens (B·L)
 * and, for a masked-refinement aux, fineInputs (B·L) -> (B, L+1, dim) for a causal model, (B, L, dim) for a
 * bidirectional one (token positions only). test/sample/ctf.test.ts checks that these states times the head
 * reproduce forward()'s logits.
 */
export function finalHidden(model: Gpt, classes: Int32Array, tokens: Int32Array, fineInputs?: Int32Array): Tensor {
  const c = model.config, B = classes.length;
  if (B === 0 || tokens.length % B !== 0)
    throw new CtfError(`finalHidden: ${tokens.length} tokens do not split into ${B} rows`);
  const L = tokens.length / B, T = L + 1;
  if (T > model.rope.rows)
    throw new CtfError(`finalHidden: sequence of 1 + ${L} positions exceeds the grid's ${model.rope.rows} ` +
      `(grid ${c.grid})`);
  model.checkFineInputs(tokens, fineInputs);
  const out = new Tensor(new Float32Array(B * T * c.dim), [B, T, c.dim]);
  const handle = gptHandle(model);
  asCtfError(() => gptHiddenForward(handle, classes, tokens, fineInputs ?? null, out.f32));
  return c.causal ? out : slice(out, 1, 1);
}
