// Tokenizer checkpoints: safetensors with the parameters under their LlamaGen-style names, and metadata
//   kind = ctfgen.tokenizer, format, config (JSON TokenizerConfig), hash, data (JSON: what it was trained
//   on), plus whatever the trainer adds (steps, epochs).
// The hash — sha256 over every parameter's name, shape and float32 bytes in checkpoint order — is the
// tokenizer's identity: token files record it, and anything that reads tokens refuses another tokenizer.
import { createHash } from 'node:crypto';
import { CtfError } from '../errors.js';
import { Rng } from '../engine/rng.js';
import { shapeStr, type Tensor } from '../engine/tensor.js';
import {
  decodeSafetensors, encodeSafetensors, loadInto, loadSafetensors, saveSafetensors, type SafetensorsFile, type StTensorInput,
} from '../io/safetensors.js';
import { validateTokenizerConfig, type TokenizerConfig } from './config.js';
import { VqTokenizer } from './model.js';

export const TOKENIZER_KIND = 'ctfgen.tokenizer';
export const TOKENIZER_FORMAT = '1';

/** sha256 (hex) of the weights: for each parameter in order, its name, shape and little-endian f32 bytes. */
export function weightsHash(params: Map<string, Tensor>): string {
  const h = createHash('sha256');
  for (const [name, t] of params) {
    h.update(`${name}\0${shapeStr(t.shape)}\0`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex');
}

export function tokenizerHash(model: VqTokenizer): string {
  return weightsHash(model.stateDict());
}

function tensorsOf(model: VqTokenizer): Map<string, StTensorInput> {
  return new Map([...model.stateDict()].map(([n, t]) => [n, t as StTensorInput]));
}

/** Metadata: kind, format, config, hash, plus extra fields (JSON-encoded unless already strings). */
export function tokenizerMetadata(model: VqTokenizer, extra: Record<string, unknown> = {}): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(extra)) meta[k] = typeof v === 'string' ? v : JSON.stringify(v);
  for (const k of ['kind', 'format', 'config', 'hash'])
    if (k in extra) throw new CtfError(`tokenizer checkpoint: metadata key "${k}" is reserved`);
  return { ...meta, kind: TOKENIZER_KIND, format: TOKENIZER_FORMAT, config: JSON.stringify(model.config), hash: tokenizerHash(model) };
}

export async function saveTokenizer(path: string, model: VqTokenizer, extra: Record<string, unknown> = {}): Promise<void> {
  await saveSafetensors(path, tensorsOf(model), tokenizerMetadata(model, extra));
}

export function encodeTokenizer(model: VqTokenizer, extra: Record<string, unknown> = {}): Uint8Array {
  return encodeSafetensors(tensorsOf(model), tokenizerMetadata(model, extra), 'tokenizer checkpoint');
}

/** The validated TokenizerConfig stored in a checkpoint. */
export function tokenizerConfigOf(file: SafetensorsFile): TokenizerConfig {
  const m = file.metadata;
  if (m['kind'] !== TOKENIZER_KIND)
    throw new CtfError(`tokenizer ${file.source}: not a tokenizer checkpoint (metadata kind ${m['kind'] === undefined ? 'missing' : `"${m['kind']}"`}, expected "${TOKENIZER_KIND}")` +
      (m['kind'] === 'ctfgen.train-state' ? ' — this is the training state; pass the tokenizer file written beside it' : ''));
  if (m['format'] !== TOKENIZER_FORMAT)
    throw new CtfError(`tokenizer ${file.source}: format ${m['format']} is not supported (this build reads format ${TOKENIZER_FORMAT})`);
  let config: TokenizerConfig;
  try {
    config = JSON.parse(m['config'] ?? '') as TokenizerConfig;
  } catch {
    throw new CtfError(`tokenizer ${file.source}: metadata "config" is not valid JSON`);
  }
  try {
    validateTokenizerConfig(config);
  } catch (e) {
    throw new CtfError(`tokenizer ${file.source}: stored config is invalid: ${(e as Error).message}`);
  }
  return config;
}

export interface LoadedTokenizer {
  model: VqTokenizer;
  hash: string;
  metadata: Record<string, string>;
}

/**
 * A tokenizer from checkpoint bytes: the config builds the model, every parameter must be present with
 * its shape (all mismatches listed), nothing else may be, and the weights must hash to the stored hash.
 */
export function tokenizerFromFile(file: SafetensorsFile): LoadedTokenizer {
  const model = new VqTokenizer(tokenizerConfigOf(file), new Rng(0));
  try {
    loadInto(model.stateDict(), file);
  } catch (e) {
    throw new CtfError(`tokenizer ${(e as Error).message.replace(/^safetensors /, '')}`);
  }
  const hash = tokenizerHash(model), stored = file.metadata['hash'];
  if (stored !== hash)
    throw new CtfError(`tokenizer ${file.source}: the weights hash to ${hash.slice(0, 16)}…, the metadata says ${stored === undefined ? 'nothing' : stored.slice(0, 16) + '…'} — the file is corrupted or was edited`);
  return { model, hash, metadata: { ...file.metadata } };
}

export async function loadTokenizer(path: string): Promise<LoadedTokenizer> {
  return tokenizerFromFile(await loadSafetensors(path));
}

export function decodeTokenizer(bytes: Uint8Array, source: string): LoadedTokenizer {
  return tokenizerFromFile(decodeSafetensors(bytes, source));
}
