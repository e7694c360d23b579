// Encoded token files: the token grids of a whole split (and of its mirrored copies), the labels, and the
// identities of the tokenizer (its weights hash) and of the data, in one safetensors file:
//   tokens   i32 (N', g, g)   codebook indices; with flips, rows N..2N−1 are the mirrored images 0..N−1
//   labels   i32 (N')
//   flipped  i32 (N')         1 where the row encodes a mirrored image
//   metadata kind = ctfgen.tokens, format, tokenizer_hash, tokenizer_config, data (JSON DataIdentity)
// Readers pass the tokenizer they will decode with; a file made by another tokenizer is refused.
import { CtfError } from '../errors.js';
import { Tensor, expectShape } from '../engine/tensor.js';
import { expectTensor, loadSafetensors, saveSafetensors, type SafetensorsFile } from '../io/safetensors.js';
import type { TokenizerConfig } from './config.js';
import type { DataIdentity } from './data-identity.js';

export const TOKENS_KIND = 'ctfgen.tokens';
export const TOKENS_FORMAT = '1';

export interface TokenSet {
  tokens: Tensor;    // i32 (N, g, g)
  labels: Int32Array;
  flipped: Int32Array;
  tokenizerHash: string;
  tokenizerConfig: TokenizerConfig;
  data: DataIdentity;
  source: string;
}

export async function saveTokens(path: string, s: Omit<TokenSet, 'source'>): Promise<void> {
  const N = s.tokens.dim(0);
  if (s.labels.length !== N || s.flipped.length !== N) throw new CtfError(`tokens file: ${N} token grids but ${s.labels.length} labels and ${s.flipped.length} flip marks`);
  await saveSafetensors(path, {
    tokens: s.tokens, labels: { dtype: 'I32', shape: [N], data: s.labels }, flipped: { dtype: 'I32', shape: [N], data: s.flipped },
  }, {
    kind: TOKENS_KIND, format: TOKENS_FORMAT, tokenizer_hash: s.tokenizerHash, tokenizer_config: JSON.stringify(s.tokenizerConfig),
    data: JSON.stringify(s.data),
  });
}

export interface TokensLoadOptions {
  /** The hash of the tokenizer that will decode these tokens; a different one is refused. */
  tokenizerHash?: string;
}

export function parseTokens(file: SafetensorsFile, o: TokensLoadOptions = {}): TokenSet {
  const m = file.metadata;
  if (m['kind'] !== TOKENS_KIND)
    throw new CtfError(`tokens ${file.source}: not a token file (metadata kind ${m['kind'] === undefined ? 'missing' : `"${m['kind']}"`}, expected "${TOKENS_KIND}")`);
  if (m['format'] !== TOKENS_FORMAT) throw new CtfError(`tokens ${file.source}: format ${m['format']} is not supported (this build reads ${TOKENS_FORMAT})`);
  const hash = m['tokenizer_hash'] ?? '';
  if (o.tokenizerHash !== undefined && hash !== o.tokenizerHash)
    throw new CtfError(`tokens ${file.source} were made by tokenizer ${hash.slice(0, 16)}…, not by the given tokenizer ${o.tokenizerHash.slice(0, 16)}… — re-encode the data with \`ctfgen tokenizer encode\``);
  let config: TokenizerConfig, data: DataIdentity;
  try {
    config = JSON.parse(m['tokenizer_config'] ?? '') as TokenizerConfig;
    data = JSON.parse(m['data'] ?? '') as DataIdentity;
  } catch {
    throw new CtfError(`tokens ${file.source}: metadata "tokenizer_config" or "data" is not valid JSON`);
  }
  const tokens = expectTensor(file, 'tokens', undefined, 'i32');
  if (tokens.ndim !== 3 || tokens.dim(1) !== tokens.dim(2)) throw new CtfError(`tokens ${file.source}: tokens ${tokens.describe()} must be (N, g, g)`);
  const N = tokens.dim(0);
  const labels = expectTensor(file, 'labels', [N], 'i32'), flipped = expectTensor(file, 'flipped', [N], 'i32');
  expectShape(labels, [N], `tokens ${file.source}`);
  const numClasses = (data as Partial<DataIdentity> | null)?.numClasses;
  if (!Number.isInteger(numClasses) || numClasses! < 1)
    throw new CtfError(`tokens ${file.source}: metadata "data" has numClasses ${JSON.stringify(numClasses)}, ` +
      'expected a positive integer');
  const l = labels.i32;
  for (let i = 0; i < N; i++)
    if (l[i]! < 0 || l[i]! >= numClasses!)
      throw new CtfError(`tokens ${file.source}: label ${l[i]} of row ${i} is outside the ${numClasses} classes ` +
        `[0, ${numClasses})`);
  const V = config.codebookSize;
  const t = tokens.i32;
  for (let i = 0; i < t.length; i++)
    if (t[i]! < 0 || t[i]! >= V) throw new CtfError(`tokens ${file.source}: token ${t[i]} at position ${i} is outside the codebook [0, ${V})`);
  return { tokens, labels: labels.i32, flipped: flipped.i32, tokenizerHash: hash, tokenizerConfig: config, data, source: file.source };
}

export async function loadTokens(path: string, o: TokensLoadOptions = {}): Promise<TokenSet> {
  return parseTokens(await loadSafetensors(path), o);
}
