// GPT checkpoints as safetensors with LlamaGen's state_dict names and shapes (docs/gpt-checkpoint.md),
// the GptConfig in the metadata. Loading checks every name, shape and dtype against the model the
// config describes and refuses a mismatch with the first offending tensor named.
import { CtfError } from '../errors.js';
import { shapeStr } from '../engine/tensor.js';
import {
  decodeSafetensors, encodeSafetensors, loadSafetensors, loadSafetensorsSync, saveSafetensors, saveSafetensorsSync,
  type SafetensorsFile, type StTensorInput,
} from '../io/safetensors.js';
import { Gpt, validateGptConfig, type GptConfig } from './gpt.js';

export const GPT_CHECKPOINT_KIND = 'ctfgen.gpt';
export const GPT_CHECKPOINT_FORMAT = '1';

/** Metadata keys: kind, format, config (JSON GptConfig), plus whatever the caller adds (e.g. step, run). */
export function gptCheckpointMetadata(model: Gpt, extra: Record<string, string> = {}): Record<string, string> {
  for (const k of ['kind', 'format', 'config'])
    if (k in extra) throw new CtfError(`gpt checkpoint: metadata key "${k}" is reserved`);
  return { ...extra, kind: GPT_CHECKPOINT_KIND, format: GPT_CHECKPOINT_FORMAT, config: JSON.stringify(model.config) };
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

/** The GptConfig stored in a checkpoint's metadata, validated. */
export function gptConfigOf(file: SafetensorsFile): GptConfig {
  const m = file.metadata;
  if (m['kind'] !== GPT_CHECKPOINT_KIND)
    throw new CtfError(`checkpoint ${file.source}: not a GPT checkpoint (metadata kind ${m['kind'] === undefined ? 'missing' : `"${m['kind']}"`}, expected "${GPT_CHECKPOINT_KIND}")`);
  if (m['format'] !== GPT_CHECKPOINT_FORMAT)
    throw new CtfError(`checkpoint ${file.source}: format ${m['format']} is not supported (this build reads format ${GPT_CHECKPOINT_FORMAT})`);
  let config: GptConfig;
  try {
    config = { fineVocab: 0, ...(JSON.parse(m['config'] ?? '') as Omit<GptConfig, 'fineVocab'>) };  // checkpoints before masked refinement
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
 * Copies the file's tensors into model (in place, so optimizer references stay valid). Every state_dict
 * name must be present as a float tensor of exactly the model's shape, and the file may hold nothing else.
 * Files without ctfgen metadata (a LlamaGen state_dict exported to safetensors) load by names and shapes alone.
 */
export function loadGptWeights(model: Gpt, file: SafetensorsFile): void {
  const sd = model.stateDict();
  for (const [name, p] of sd) {
    const t = file.tensors.get(name);
    if (!t) throw new CtfError(`checkpoint ${file.source}: tensor "${name}" is missing — is this a GPT with ${model.config.layers} layers?`);
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16')
      throw new CtfError(`checkpoint ${file.source}: tensor "${name}" is ${t.dtype}, expected a float tensor (F32, F16 or BF16)`);
    if (shapeStr(t.shape) !== shapeStr(p.shape))
      throw new CtfError(`checkpoint ${file.source}: tensor "${name}" has shape ${shapeStr(t.shape)}, expected ${shapeStr(p.shape)} — was it trained with another preset?`);
  }
  for (const name of file.tensors.keys())
    if (!sd.has(name)) throw new CtfError(`checkpoint ${file.source}: tensor "${name}" is not part of this GPT (a different model kind or layer count?)`);
  if (file.metadata['kind'] === GPT_CHECKPOINT_KIND) {
    // Fields that change the function without changing any shape (grid, causal, eps, RoPE base) must agree too.
    const stored = gptConfigOf(file);
    for (const k of Object.keys(stored) as (keyof GptConfig)[]) {
      if (k === 'dropout' || k === 'classDropout') continue;  // training-time only
      if (stored[k] !== model.config[k])
        throw new CtfError(`checkpoint ${file.source}: it was saved with ${k} = ${JSON.stringify(stored[k])}, this model has ${JSON.stringify(model.config[k])}`);
    }
  }
  for (const [name, p] of sd) p.f32.set(file.tensors.get(name)!.data as Float32Array);
}

/** A new Gpt built from the checkpoint's config, with its weights. */
export function gptFromFile(file: SafetensorsFile): Gpt {
  const model = new Gpt(gptConfigOf(file));
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
