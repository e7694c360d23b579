// The codebook of a tokenizer checkpoint and the tokenizer's identity. Loading goes through the
// tokenizer's own checked loader, so a cluster file is only ever made from weights whose hash verifies.
import type { Tensor } from '../engine/tensor.js';
import { loadTokenizer } from '../tokenizer/checkpoint.js';

export interface Codebook {
  codebook: Tensor;  // (V, D) raw codewords (the tokenizer uses them l2-normalised)
  hash: string;      // the tokenizer's weights hash
}

export async function loadCodebook(path: string): Promise<Codebook> {
  const { model, hash } = await loadTokenizer(path);
  return { codebook: model.quantizer.codebook, hash };
}
