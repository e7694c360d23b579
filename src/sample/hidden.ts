// The GPT's final normed hidden states, i.e. Gpt.forward without its output head, for inference. Stage 2
// needs them so it can multiply by only the head rows it will sample from (ctf.ts). The blocks run in one
// native call (native/fused.cc gptHiddenForward: each of two threads takes half of the sequences through every
// block), with the arithmetic of src/models/gpt.ts forward() with training off; test/sample/ctf.test.ts checks
// that these states times the head reproduce forward()'s logits.
import { noGrad } from '../engine/autograd.js';
import { gptHiddenForward } from '../engine/ops/fused.js';
import { ropeRows } from '../engine/ops/rope.js';
import { slice } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import type { Gpt } from '../models/gpt.js';

/**
 * classes (B), tokens (B·L) -> rmsNorm(h) at the positions forward() returns logits for:
 * (B, L+1, dim) for a causal model, (B, L, dim) for a bidirectional one (token positions only).
 */
export function finalHidden(model: Gpt, classes: Int32Array, tokens: Int32Array, fineInputs?: Int32Array): Tensor {
  const c = model.config, B = classes.length;
  if (B === 0 || tokens.length % B !== 0) throw new CtfError(`finalHidden: ${tokens.length} tokens do not split into ${B} rows`);
  const L = tokens.length / B, T = L + 1, D = c.dim, hid = model.hidden;
  if (T > model.rope.rows) throw new CtfError(`finalHidden: sequence of 1 + ${L} positions exceeds the grid's ${model.rope.rows} (grid ${c.grid})`);
  return noGrad(() => {
    const h = model.embed(classes, tokens, { training: false, fineInputs }).f32;  // (B, T, dim)
    const N = B * T, rope = ropeRows(model.rope, 0, T);
    const out = new Tensor(new Float32Array(N * D), [B, T, D]);
    const weights = model.blockWeights();
    const [x, qkv, att, ab, g] = scratch([N * D, N * 3 * D, N * D, N * 2 * hid, N * hid]);
    gptHiddenForward(h, x!, qkv!, att!, ab!, g!, out.f32, weights, rope.cos, rope.sin, model.norm.f32, B, T, D, c.heads, hid, c.causal, c.normEps);
    return c.causal ? out : slice(out, 1, 1);
  });
}

// The pass's scratch, kept from one call to the next (sampling calls it once per chunk with the same sizes):
// fresh buffers of 20–40 MB per chunk made V8 collect garbage for "external memory pressure" inside stage 2.
let kept: Float32Array[] = [];
function scratch(sizes: number[]): Float32Array[] {
  if (kept.length !== sizes.length || kept.some((b, i) => b.length !== sizes[i])) kept = sizes.map((n) => new Float32Array(n));
  return kept;
}
