// The codebook of a tokenizer checkpoint, read straight from the safetensors file: clustering needs
// only the (V, D) codeword matrix and the tokenizer's identity (its weights hash, stored in the
// metadata by src/tokenizer/checkpoint.ts), not the encoder and decoder.
import { CtfError } from '../errors.js';
import type { Tensor } from '../engine/tensor.js';
import { expectTensor, loadSafetensors, type SafetensorsFile } from '../io/safetensors.js';

export const CODEBOOK_TENSOR = 'quantize.embedding.weight';  // LlamaGen's name, as src/tokenizer/quantizer.ts
const TOKENIZER_KIND = 'ctfgen.tokenizer';

export interface Codebook {
  codebook: Tensor;  // (V, D) raw codewords (the tokenizer uses them l2-normalised)
  hash: string;      // the tokenizer's weights hash
}

export function codebookFromFile(file: SafetensorsFile): Codebook {
  const kind = file.metadata['kind'];
  if (kind !== TOKENIZER_KIND)
    throw new CtfError(`tokenizer ${file.source}: not a tokenizer checkpoint (metadata kind ${kind === undefined ? 'missing' : `"${kind}"`}, expected "${TOKENIZER_KIND}")`);
  const hash = file.metadata['hash'];
  if (!hash) throw new CtfError(`tokenizer ${file.source}: metadata "hash" is missing; cluster files must name the tokenizer they belong to`);
  const codebook = expectTensor(file, CODEBOOK_TENSOR, undefined, 'f32');
  if (codebook.ndim !== 2 || codebook.dim(0) < 1 || codebook.dim(1) < 1)
    throw new CtfError(`tokenizer ${file.source}: tensor "${CODEBOOK_TENSOR}" ${codebook.describe()} is not a non-empty (V, D) matrix`);
  return { codebook, hash };
}

export async function loadCodebook(path: string): Promise<Codebook> {
  return codebookFromFile(await loadSafetensors(path));
}
