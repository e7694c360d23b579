// Encoded token files: the token grids of a whole split (and of its mirrored copies), the labels, and the
// identities of the tokenizer (its weights hash) and of the data, in one safetensors file:
//   tokens   i32 (N', g, g)   codebook indices; with flips, rows N..2N−1 are the mirrored images 0..N−1
//   labels   i32 (N')
//   flipped  i32 (N')         1 where the row encodes a mirrored image
//   metadata kind = ctfgen.tokens, format, tokenizer_hash, tokenizer_config, data (JSON DataIdentity)
// Readers pass the tokenizer they will decode with; a file made by another tokenizer is refused.
import { CtfError } from '../errors.js';
import type { Tensor } from '../engine/tensor.js';
import { expectTensor, loadSafetensors, saveSafetensors, type SafetensorsFile } from '../io/safetensors.js';
import { tokenGrid, validateTokenizerConfig, type TokenizerConfig } from './config.js';
import { validateDataIdentity, type DataIdentity } from './data-identity.js';

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
  if (s.labels.length !== N || s.flipped.length !== N)
    throw new CtfError(
      `tokens file: ${N} token grids but ${s.labels.length} labels and ${s.flipped.length} flip marks`,
    );
  await saveSafetensors(
    path,
    {
      tokens: s.tokens,
      labels: { dtype: 'I32', shape: [N], data: s.labels },
      flipped: { dtype: 'I32', shape: [N], data: s.flipped },
    },
    {
      kind: TOKENS_KIND,
      format: TOKENS_FORMAT,
      tokenizer_hash: s.tokenizerHash,
      tokenizer_config: JSON.stringify(s.tokenizerConfig),
      data: JSON.stringify(s.data),
    },
  );
}

export interface TokensLoadOptions {
  /** The hash of the tokenizer that will decode these tokens; a different one is refused. */
  tokenizerHash?: string;
}

/**
 * A token file checked as far as it alone allows: kind, format, the tokenizer config (types and bounds, and its
 * token grid against the tokens' shape), the data identity, every token inside the codebook, every label a class
 * of the data, flip marks 0 or 1; and, when asked, the tokenizer that made it.
 */
export function parseTokens(file: SafetensorsFile, o: TokensLoadOptions = {}): TokenSet {
  const m = file.metadata, where = `tokens ${file.source}`;
  if (m['kind'] !== TOKENS_KIND)
    throw new CtfError(`${where}: not a token file (metadata kind ${JSON.stringify(m['kind']) ?? 'missing'}, ` +
      `expected "${TOKENS_KIND}")`);
  if (m['format'] !== TOKENS_FORMAT)
    throw new CtfError(`${where}: format ${m['format']} is not supported (this build reads ${TOKENS_FORMAT})`);
  const hash = m['tokenizer_hash'];
  if (hash === undefined || !/^[0-9a-f]{64}$/.test(hash))
    throw new CtfError(`${where}: metadata "tokenizer_hash" is ${JSON.stringify(hash) ?? 'missing'}, expected a hash`);
  if (o.tokenizerHash !== undefined && hash !== o.tokenizerHash)
    throw new CtfError(`${where} were made by tokenizer ${hash.slice(0, 16)}…, not by the given tokenizer ` +
      `${o.tokenizerHash.slice(0, 16)}… — re-encode the data with \`ctfgen tokenizer encode\``);
  const parsed = (key: string): unknown => {
    try {
      return JSON.parse(m[key] ?? '');
    } catch {
      throw new CtfError(`${where}: metadata "${key}" is ${m[key] === undefined ? 'missing' : 'not valid JSON'}`);
    }
  };
  const config = parsed('tokenizer_config'), data = parsed('data');
  try {
    validateTokenizerConfig(config);
  } catch (e) {
    throw new CtfError(`${where}: metadata "tokenizer_config" is invalid: ${(e as Error).message}`);
  }
  validateDataIdentity(data, `${where}: metadata "data"`);
  const tokens = expectTensor(file, 'tokens', undefined, 'i32'), g = tokenGrid(config);
  if (tokens.ndim !== 3 || tokens.dim(1) !== g || tokens.dim(2) !== g)
    throw new CtfError(`${where}: tokens ${tokens.describe()}, expected (N, ${g}, ${g}) (its tokenizer config's grid)`);
  const N = tokens.dim(0);
  const labels = expectTensor(file, 'labels', [N], 'i32').i32, flipped = expectTensor(file, 'flipped', [N], 'i32').i32;
  const inRange = (name: string, x: Int32Array, end: number, what: string, at = 'of row'): void => {
    for (let i = 0; i < x.length; i++)
      if (!(x[i]! >= 0 && x[i]! < end)) throw new CtfError(`${where}: ${name} ${x[i]} ${at} ${i} is outside ${what}`);
  };
  inRange('token', tokens.i32, config.codebookSize, `the codebook [0, ${config.codebookSize})`, 'at position');
  inRange('label', labels, data.numClasses, `the ${data.numClasses} classes [0, ${data.numClasses})`);
  inRange('flip mark', flipped, 2, '{0, 1}');
  return { tokens, labels, flipped, tokenizerHash: hash, tokenizerConfig: config, data, source: file.source };
}

export async function loadTokens(path: string, o: TokensLoadOptions = {}): Promise<TokenSet> {
  return parseTokens(await loadSafetensors(path), o);
}
