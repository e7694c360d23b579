// Tokenizer checkpoints: safetensors with the parameters under their LlamaGen-style names, and metadata
//   kind = ctfgen.tokenizer, format, config (JSON TokenizerConfig), hash, data (JSON: what it was trained
//   on), plus whatever the trainer adds (steps, epochs).
// The hash — sha256 over every parameter's name, shape and float32 bytes in checkpoint order — is the
// tokenizer's identity: token files record it, and anything that reads tokens refuses another tokenizer.
import { CtfError } from '../errors.js';
import { Rng } from '../engine/rng.js';
import { shapeStr } from '../engine/tensor.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  loadInto,
  loadSafetensors,
  saveSafetensors,
  type SafetensorsFile,
  type StTensorInput,
  type TensorShapes,
} from '../io/safetensors.js';
import { validateTokenizerConfig, type TokenizerConfig } from './config.js';
import { validateDataIdentity } from './data-identity.js';
import { weightsHash } from '../nn/module.js';
import { VqTokenizer } from './model.js';

export const TOKENIZER_KIND = 'ctfgen.tokenizer';
export const TOKENIZER_FORMAT = '1';

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
  return {
    ...meta,
    kind: TOKENIZER_KIND,
    format: TOKENIZER_FORMAT,
    config: JSON.stringify(model.config),
    hash: tokenizerHash(model),
  };
}

export async function saveTokenizer(
  path: string,
  model: VqTokenizer,
  extra: Record<string, unknown> = {},
): Promise<void> {
  await saveSafetensors(path, tensorsOf(model), tokenizerMetadata(model, extra));
}

export function encodeTokenizer(model: VqTokenizer, extra: Record<string, unknown> = {}): Uint8Array {
  return encodeSafetensors(tensorsOf(model), tokenizerMetadata(model, extra), 'tokenizer checkpoint');
}

/** The validated TokenizerConfig stored in a checkpoint. */
export function tokenizerConfigOf(file: SafetensorsFile): TokenizerConfig {
  const m = file.metadata;
  if (m['kind'] !== TOKENIZER_KIND)
    throw new CtfError(
      `tokenizer ${file.source}: not a tokenizer checkpoint (metadata kind ` +
      `${m['kind'] === undefined ? 'missing' : `"${m['kind']}"`}, expected "${TOKENIZER_KIND}")` +
        (m['kind'] === 'ctfgen.train-state'
          ? ' — this is the training state; pass the tokenizer file written beside it'
          : ''),
    );
  if (m['format'] !== TOKENIZER_FORMAT)
    throw new CtfError(
      `tokenizer ${file.source}: format ${m['format']} is not supported (this build reads format ${TOKENIZER_FORMAT})`,
    );
  let config: unknown;
  try {
    config = JSON.parse(m['config'] ?? '');
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

/**
 * Refuses a config that the tensors contradict, before a model is built from it, so a config claiming a codebook
 * of 2^30 or 2^16 channels is never allocated: every field a shape implies (channels, inChannels, the levels and
 * their widths, resBlocks, midBlocks, zChannels, codeDim, codebookSize) must equal what the tensors say.
 */
export function checkTokenizerConfigAgainst(c: TokenizerConfig, tensors: TensorShapes, where: string): void {
  const dims = (name: string, rank: number): number[] => {
    const t = tensors.get(name);
    if (!t) throw new CtfError(`${where}: tensor "${name}" is missing`);
    if (t.shape.length !== rank)
      throw new CtfError(`${where}: tensor "${name}" has shape ${shapeStr(t.shape)}, expected ${rank} dimensions`);
    return [...t.shape];
  };
  const lie = (claim: string, tensor: string, says: string): CtfError =>
    new CtfError(`${where}: the stored config says ${claim}, but ${tensor} ${says} ` +
      '— the config does not describe these weights');
  const count = (re: RegExp): number => new Set([...tensors.keys()].flatMap((n) => re.exec(n)?.[1] ?? [])).size;
  const [channels, inChannels] = dims('encoder.conv_in.weight', 4) as [number, number];
  if (c.channels !== channels)
    throw lie(`channels = ${c.channels}`, 'tensor "encoder.conv_in.weight"', `has ${channels} output channels`);
  if (c.inChannels !== inChannels)
    throw lie(`inChannels = ${c.inChannels}`, 'tensor "encoder.conv_in.weight"', `has ${inChannels} input channels`);
  const levels = count(/^encoder\.conv_blocks\.(\d+)\./);
  if (c.channelMult.length !== levels)
    throw lie(`channelMult = ${JSON.stringify(c.channelMult)} (${c.channelMult.length} levels)`, 'the file',
      `holds ${levels} encoder levels`);
  c.channelMult.forEach((m, i) => {
    const name = `encoder.conv_blocks.${i}.res.0.conv1.weight`, width = dims(name, 4)[0]!;
    if (m * c.channels !== width)
      throw lie(`channelMult[${i}] = ${m} (a level ${m * c.channels} wide)`, `tensor "${name}"`,
        `has ${width} output channels`);
  });
  const res = count(/^encoder\.conv_blocks\.0\.res\.(\d+)\./), mid = count(/^encoder\.mid\.(\d+)\./);
  if (c.resBlocks !== res)
    throw lie(`resBlocks = ${c.resBlocks}`, 'the file', `holds ${res} ResBlocks in the first encoder level`);
  if (c.midBlocks !== mid) throw lie(`midBlocks = ${c.midBlocks}`, 'the file', `holds ${mid} encoder mid blocks`);
  const zChannels = dims('encoder.conv_out.weight', 4)[0]!;
  if (c.zChannels !== zChannels)
    throw lie(`zChannels = ${c.zChannels}`, 'tensor "encoder.conv_out.weight"', `has ${zChannels} output channels`);
  const [codebookSize, codeDim] = dims('quantize.embedding.weight', 2) as [number, number];
  if (c.codebookSize !== codebookSize)
    throw lie(`codebookSize = ${c.codebookSize}`, 'tensor "quantize.embedding.weight"', `has ${codebookSize} rows`);
  if (c.codeDim !== codeDim)
    throw lie(`codeDim = ${c.codeDim}`, 'tensor "quantize.embedding.weight"', `has ${codeDim} columns`);
}

export interface LoadedTokenizer {
  model: VqTokenizer;
  hash: string;
  metadata: Record<string, string>;
}

/**
 * A tokenizer from checkpoint bytes: the config builds the model, every parameter must be present with
 * its shape (all mismatches listed), nothing else may be, and the weights must hash to the stored hash.
 * The data identity in metadata "data", which commands read to find the dataset again, must be one.
 */
export function tokenizerFromFile(file: SafetensorsFile): LoadedTokenizer {
  const config = tokenizerConfigOf(file), data = file.metadata['data'];
  if (data !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      throw new CtfError(`tokenizer ${file.source}: metadata "data" is not valid JSON`);
    }
    validateDataIdentity(parsed, `tokenizer ${file.source}: metadata "data"`);
  }
  checkTokenizerConfigAgainst(config, file.tensors, `tokenizer ${file.source}`);
  const model = new VqTokenizer(config, new Rng(0));
  try {
    loadInto(model.stateDict(), file);
  } catch (e) {
    throw new CtfError(`tokenizer ${(e as Error).message.replace(/^safetensors /, '')}`);
  }
  const hash = tokenizerHash(model), stored = file.metadata['hash'];
  if (stored !== hash)
    throw new CtfError(`tokenizer ${file.source}: the weights hash to ${hash.slice(0, 16)}…, the metadata says ` +
      `${stored === undefined ? 'nothing' : stored.slice(0, 16) + '…'} — the file is corrupted or was edited`);
  return { model, hash, metadata: { ...file.metadata } };
}

export async function loadTokenizer(path: string): Promise<LoadedTokenizer> {
  return tokenizerFromFile(await loadSafetensors(path));
}

export function decodeTokenizer(bytes: Uint8Array, source: string): LoadedTokenizer {
  return tokenizerFromFile(decodeSafetensors(bytes, source));
}
