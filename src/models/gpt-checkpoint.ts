// GPT checkpoints as safetensors with LlamaGen's state_dict names and shapes (docs/gpt-checkpoint.md),
// the GptConfig and the weights hash in the metadata. Loading checks the stored config against the tensors
// before it builds anything, then every name, shape and dtype against the model, that every weight is
// finite and that the weights hash to the stored hash; a mismatch is refused with the offending tensor named.
import { CtfError } from '../errors.js';
import { shapeStr } from '../engine/tensor.js';
import {
  decodeSafetensors, encodeSafetensors, expectFinite, loadSafetensors, loadSafetensorsSync, saveSafetensors,
  saveSafetensorsSync, type SafetensorsFile, type TensorShapes, type StTensorInput,
} from '../io/safetensors.js';
import { weightsHash } from '../nn/module.js';
import { Gpt, ffnHidden, storedGptConfig, validateGptConfig, type GptConfig } from './gpt.js';

export const GPT_CHECKPOINT_KIND = 'ctfgen.gpt';
export const GPT_CHECKPOINT_FORMAT = '1';

/** Metadata keys: kind, format, config (JSON GptConfig), hash, plus whatever the caller adds (e.g. step, run). */
export function gptCheckpointMetadata(model: Gpt, extra: Record<string, string> = {}): Record<string, string> {
  for (const k of ['kind', 'format', 'config', 'hash'])
    if (k in extra) throw new CtfError(`gpt checkpoint: metadata key "${k}" is reserved`);
  return {
    ...extra, kind: GPT_CHECKPOINT_KIND, format: GPT_CHECKPOINT_FORMAT, config: JSON.stringify(model.config),
    hash: weightsHash(model.stateDict()),
  };
}

function tensorsOf(model: Gpt): Map<string, StTensorInput> {
  const out = new Map<string, StTensorInput>();
  for (const [name, t] of model.stateDict()) out.set(name, { dtype: 'F32', shape: t.shape, data: t.data });
  return out;
}

/** The checkpoint bytes (for callers that write several artifacts atomically themselves). */
export function encodeGptCheckpoint(model: Gpt, extra: Record<string, string> = {}): Uint8Array {
  return encodeSafetensors(tensorsOf(model), gptCheckpointMetadata(model, extra), 'gpt checkpoint');
}

export async function saveGptCheckpoint(path: string, model: Gpt, extra: Record<string, string> = {}): Promise<void> {
  await saveSafetensors(path, tensorsOf(model), gptCheckpointMetadata(model, extra));
}

export function saveGptCheckpointSync(path: string, model: Gpt, extra: Record<string, string> = {}): void {
  saveSafetensorsSync(path, tensorsOf(model), gptCheckpointMetadata(model, extra));
}

/** The GptConfig stored in a checkpoint's metadata, validated (types and bounds; see checkGptConfigAgainst). */
export function gptConfigOf(file: SafetensorsFile): GptConfig {
  const m = file.metadata;
  if (m['kind'] !== GPT_CHECKPOINT_KIND)
    throw new CtfError(`checkpoint ${file.source}: not a GPT checkpoint (metadata kind ` +
      `${m['kind'] === undefined ? 'missing' : `"${m['kind']}"`}, expected "${GPT_CHECKPOINT_KIND}")`);
  if (m['format'] !== GPT_CHECKPOINT_FORMAT)
    throw new CtfError(`checkpoint ${file.source}: format ${m['format']} is not supported (this build reads format ` +
      `${GPT_CHECKPOINT_FORMAT})`);
  let config: unknown;
  try {
    config = storedGptConfig(JSON.parse(m['config'] ?? ''));
  } catch {
    throw new CtfError(`checkpoint ${file.source}: metadata "config" is not valid JSON`);
  }
  try {
    validateGptConfig(config);
  } catch (e) {
    throw new CtfError(`checkpoint ${file.source}: stored config is invalid: ${(e as Error).message}`);
  }
  return config;
}

/**
 * Refuses a config that the tensors contradict, before a model is built from it, so a config claiming 10^7
 * layers or dim 2^20 is never allocated: every field a shape implies (layers, dim, inVocab, outVocab,
 * numClasses, fineVocab, the FFN width) must equal what the tensors say. `where` names the file in errors.
 */
export function checkGptConfigAgainst(config: GptConfig, tensors: TensorShapes, where: string): void {
  const dims = (name: string): readonly number[] => {
    const t = tensors.get(name);
    if (!t) throw new CtfError(`${where}: tensor "${name}" is missing`);
    if (t.shape.length !== 2)
      throw new CtfError(`${where}: tensor "${name}" has shape ${shapeStr(t.shape)}, expected 2 dimensions`);
    return t.shape;
  };
  const lie = (field: string, value: unknown, tensor: string, says: string): CtfError =>
    new CtfError(`${where}: the stored config says ${field} = ${JSON.stringify(value)}, but ${tensor} ${says} ` +
      '— the config does not describe these weights');
  const [inVocab, dim] = dims('tok_embeddings.weight') as [number, number];
  if (config.dim !== dim) throw lie('dim', config.dim, 'tensor "tok_embeddings.weight"', `has ${dim} columns`);
  if (config.inVocab !== inVocab)
    throw lie('inVocab', config.inVocab, 'tensor "tok_embeddings.weight"', `has ${inVocab} rows`);
  const outVocab = dims('output.weight')[0]!, classRows = dims('cls_embedding.embedding_table.weight')[0]!;
  if (config.outVocab !== outVocab)
    throw lie('outVocab', config.outVocab, 'tensor "output.weight"', `has ${outVocab} rows`);
  if (config.numClasses !== classRows - 1)
    throw lie('numClasses', config.numClasses, 'tensor "cls_embedding.embedding_table.weight"',
      `has ${classRows} rows (classes + null)`);
  const layers = new Set<string>();
  for (const name of tensors.keys()) {
    const m = /^layers\.(\d+)\./.exec(name);
    if (m) layers.add(m[1]!);
  }
  if (config.layers !== layers.size)
    throw lie('layers', config.layers, 'the file', `holds tensors of ${layers.size} layers`);
  const fineRows = tensors.has('fine_embeddings.weight') ? dims('fine_embeddings.weight')[0]! : 0;
  if (config.fineVocab !== fineRows)
    throw lie('fineVocab', config.fineVocab, 'the file', fineRows ? `has ${fineRows} fine-token rows` : 'has none');
  const hidden = dims('layers.0.feed_forward.w2.weight')[1]!;
  if (ffnHidden(config) !== hidden)
    throw lie('ffnMultipleOf', config.ffnMultipleOf, 'tensor "layers.0.feed_forward.w2.weight"',
      `has ${hidden} columns (the config gives an FFN width of ${ffnHidden(config)})`);
}

/**
 * Copies the file's tensors into model (in place, so optimizer references stay valid). Every state_dict
 * name must be present as a float tensor of exactly the model's shape, the file may hold nothing else, every
 * value must be finite, and a file with a weights hash must match it; nothing is copied unless all holds.
 * Files without ctfgen metadata (a LlamaGen state_dict exported to safetensors) load by names and shapes alone.
 */
export function loadGptWeights(model: Gpt, file: SafetensorsFile): void {
  const sd = model.stateDict();
  for (const [name, p] of sd) {
    const t = file.tensors.get(name);
    if (!t)
      throw new CtfError(
        `checkpoint ${file.source}: tensor "${name}" is missing — is this a GPT with ${model.config.layers} layers?`,
      );
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16')
      throw new CtfError(
        `checkpoint ${file.source}: tensor "${name}" is ${t.dtype}, expected a float tensor (F32, F16 or BF16)`,
      );
    if (shapeStr(t.shape) !== shapeStr(p.shape))
      throw new CtfError(`checkpoint ${file.source}: tensor "${name}" has shape ${shapeStr(t.shape)}, expected ` +
        `${shapeStr(p.shape)} — was it trained with another preset?`);
  }
  for (const name of file.tensors.keys())
    if (!sd.has(name))
      throw new CtfError(
        `checkpoint ${file.source}: tensor "${name}" is not part of this GPT (a different model kind or layer count?)`,
      );
  if (file.metadata['kind'] === GPT_CHECKPOINT_KIND) {
    // Fields that change the function without changing any shape (grid, causal, eps, RoPE base) must agree too.
    const stored = gptConfigOf(file);
    for (const k of Object.keys(stored) as (keyof GptConfig)[]) {
      if (k === 'dropout' || k === 'classDropout') continue;  // training-time only
      if (stored[k] !== model.config[k])
        throw new CtfError(`checkpoint ${file.source}: it was saved with ${k} = ${JSON.stringify(stored[k])}, this ` +
          `model has ${JSON.stringify(model.config[k])}`);
    }
  }
  // In state_dict order, as the hash was computed at save.
  const weights = new Map([...sd.keys()].map((name) => [name, file.tensors.get(name)!]));
  expectFinite(weights, `checkpoint ${file.source}`);
  const stored = file.metadata['hash'];
  if (stored !== undefined) {
    const hash = weightsHash(weights);
    if (stored !== hash)
      throw new CtfError(`checkpoint ${file.source}: the weights hash to ${hash.slice(0, 16)}…, ` +
        `the metadata says ${stored.slice(0, 16)}… — the file is corrupted or was edited`);
  }
  for (const [name, p] of sd) p.f32.set(weights.get(name)!.data as Float32Array);
}

/** A new Gpt built from the checkpoint's config, with its weights. */
export function gptFromFile(file: SafetensorsFile): Gpt {
  const config = gptConfigOf(file);
  checkGptConfigAgainst(config, file.tensors, `checkpoint ${file.source}`);
  const model = new Gpt(config);
  loadGptWeights(model, file);
  return model;
}

export async function loadGptCheckpoint(path: string): Promise<Gpt> {
  return gptFromFile(await loadSafetensors(path));
}

export function loadGptCheckpointSync(path: string): Gpt {
  return gptFromFile(loadSafetensorsSync(path));
}

/** Decodes checkpoint bytes (e.g. from a bundle) into a model; source names it in errors. */
export function decodeGptCheckpoint(bytes: Uint8Array, source: string): Gpt {
  return gptFromFile(decodeSafetensors(bytes, source));
}
