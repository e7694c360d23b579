// The GPT's final normed hidden states, i.e. Gpt.forward without its output head, for inference. Stage 2
// needs them so it can multiply by only the head rows it will sample from (ctf.ts). Same ops in the same
// order as src/models/gpt.ts forward() with training off; test/sample/ctf.test.ts checks that these states
// times the head reproduce forward()'s logits.
import { add } from '../engine/ops/elementwise.js';
import { attentionBlock, prefixEmbedding, swigluFfn } from '../engine/ops/fused.js';
import { rmsNorm } from '../engine/ops/norm.js';
import { slice } from '../engine/ops/shape.js';
import { noGrad } from '../engine/autograd.js';
import { CtfError } from '../errors.js';
import { Tensor } from '../engine/tensor.js';
import type { Gpt } from '../models/gpt.js';

/**
 * classes (B), tokens (B·L) -> rmsNorm(h) at the positions forward() returns logits for:
 * (B, L+1, dim) for a causal model, (B, L, dim) for a bidirectional one (token positions only).
 */
export function finalHidden(model: Gpt, classes: Int32Array, tokens: Int32Array): Tensor {
  const c = model.config, B = classes.length;
  if (B === 0 || tokens.length % B !== 0) throw new CtfError(`finalHidden: ${tokens.length} tokens do not split into ${B} rows`);
  const L = tokens.length / B;
  if (L + 1 > model.rope.rows) throw new CtfError(`finalHidden: sequence of 1 + ${L} positions exceeds the grid's ${model.rope.rows} (grid ${c.grid})`);
  return noGrad(() => {
    const cls = new Tensor(model.dropClasses(classes, { training: false }), [B]);  // validates the labels
    let h = prefixEmbedding(model.clsTable, cls, model.tokTable, new Tensor(tokens, [B, L]));  // (B, L+1, dim)
    const attn = { heads: c.heads, causal: c.causal, rope: model.rope };
    for (const blk of model.blocks) {
      h = add(h, attentionBlock(rmsNorm(h, blk.attnNorm, c.normEps), blk.wqkv, blk.wo, attn));
      h = add(h, swigluFfn(rmsNorm(h, blk.ffnNorm, c.normEps), blk.w13, blk.w2));
    }
    if (!c.causal) h = slice(h, 1, 1);
    return rmsNorm(h, model.norm, c.normEps);
  });
}
