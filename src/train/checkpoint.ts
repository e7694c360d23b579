// The state of a training run in ONE safetensors file, written atomically, so a run can stop anywhere
// and continue bit for bit:
//   tensors   model.<name>               the parameters
//             optim.exp_avg.<name>       AdamW first moments
//             optim.exp_avg_sq.<name>    AdamW second moments
//             state.<name>               task state that is not a parameter (e.g. codebook usage)
//   metadata  kind = ctfgen.train-state, format, task (what is trained), step, optimizer step count,
//             config / options / rng / data / extra as JSON strings, hash (weightsHash of every tensor, by name)
import { CtfError } from '../errors.js';
import type { AdamW, AdamWState } from '../engine/optim.js';
import type { RngState } from '../engine/rng.js';
import { Tensor, shapeStr } from '../engine/tensor.js';
import {
  expectFinite, loadSafetensors, saveSafetensors, saveSafetensorsSync, type SafetensorsFile, type StTensorInput,
} from '../io/safetensors.js';
import { weightsHash, type NamedWeights } from '../nn/module.js';
import { checkSavedRun, storedTrainTask } from './saved-config.js';

export const TRAIN_STATE_KIND = 'ctfgen.train-state';
export const TRAIN_STATE_FORMAT = '1';

export interface TrainState {
  task: string;                      // "tokenizer", "gpt", …: a file of one task never resumes another
  step: number;                      // optimizer steps done
  config: unknown;                   // the model config (JSON)
  options: unknown;                  // training options (JSON); the resuming run compares what must agree
  rng: Record<string, RngState>;     // every random stream the run draws from, by name
  data: unknown;                     // the data iterator's position (JSON)
  extra?: unknown;                   // anything else the task needs (JSON)
  model: Map<string, Tensor>;        // parameters by checkpoint name
  optimizer: AdamWState;
  state?: Map<string, Tensor>;       // task tensors that are not parameters
}

function tensorsOf(s: TrainState): Map<string, StTensorInput> {
  const out = new Map<string, StTensorInput>();
  for (const [name, t] of s.model) out.set(`model.${name}`, t);
  for (const [name, m] of Object.entries(s.optimizer.expAvg))
    out.set(`optim.exp_avg.${name}`, { dtype: 'F32', shape: [m.length], data: m });
  for (const [name, v] of Object.entries(s.optimizer.expAvgSq))
    out.set(`optim.exp_avg_sq.${name}`, { dtype: 'F32', shape: [v.length], data: v });
  for (const [name, t] of s.state ?? []) out.set(`state.${name}`, t);
  return out;
}

/** weightsHash over every tensor of a train state in name order (a reader's order need not be the writer's). */
function stateHash(tensors: NamedWeights): string {
  return weightsHash(new Map([...tensors].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
}

function metadataOf(s: TrainState, tensors: NamedWeights): Record<string, string> {
  if (!Number.isInteger(s.step) || s.step < 0) throw new CtfError(`train state: step ${s.step} must be an integer ≥ 0`);
  const meta: Record<string, string> = {
    kind: TRAIN_STATE_KIND, format: TRAIN_STATE_FORMAT, task: s.task, step: String(s.step),
    optimizer_step: String(s.optimizer.step), config: JSON.stringify(s.config), options: JSON.stringify(s.options),
    rng: JSON.stringify(s.rng), data: JSON.stringify(s.data), hash: stateHash(tensors),
  };
  if (s.extra !== undefined) meta['extra'] = JSON.stringify(s.extra);
  return meta;
}

export async function saveTrainState(path: string, s: TrainState): Promise<void> {
  const tensors = tensorsOf(s);
  await saveSafetensors(path, tensors, metadataOf(s, tensors));
}

/** The synchronous twin, for exit paths that cannot await. */
export function saveTrainStateSync(path: string, s: TrainState): void {
  const tensors = tensorsOf(s);
  saveSafetensorsSync(path, tensors, metadataOf(s, tensors));
}

/** A train-state file as read: JSON fields parsed, tensors grouped; restore with restoreTrainState. */
export interface LoadedTrainState {
  source: string;
  task: string;
  step: number;
  config: unknown;
  options: unknown;
  rng: Record<string, RngState>;
  data: unknown;
  extra: unknown;
  model: Map<string, Tensor>;
  optimizer: AdamWState;
  state: Map<string, Tensor>;
}

function json(file: SafetensorsFile, key: string, optional = false): unknown {
  const raw = file.metadata[key];
  if (raw === undefined) {
    if (optional) return undefined;
    throw new CtfError(`train state ${file.source}: metadata "${key}" is missing`);
  }
  try {
    return JSON.parse(raw);
  } catch {
    throw new CtfError(`train state ${file.source}: metadata "${key}" is not valid JSON`);
  }
}

/** The JSON object metadata[key] (options, data: what a resuming trainer reads by key). */
function jsonObject(file: SafetensorsFile, key: string): Record<string, unknown> {
  const v = json(file, key), shown = JSON.stringify(v)?.slice(0, 60);
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new CtfError(`train state ${file.source}: metadata "${key}" is ${shown}, expected an object`);
  return v as Record<string, unknown>;
}

function rngStates(x: unknown, where: string): Record<string, RngState> {
  if (typeof x !== 'object' || x === null || Array.isArray(x))
    throw new CtfError(`${where}: metadata "rng" is ${JSON.stringify(x)?.slice(0, 60)}, expected RNG states by name`);
  const isU32 = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 0 && (v as number) < 2 ** 32;
  for (const [name, st] of Object.entries(x)) {
    const s = st as Partial<RngState> | null;
    const ok = typeof s === 'object' && s !== null && isU32(s.key0) && isU32(s.key1) && Number.isSafeInteger(s.counter);
    if (!ok || s!.counter! < 0)
      throw new CtfError(`${where}: rng.${name} is ${JSON.stringify(st)?.slice(0, 60)}, expected {key0,key1,counter}`);
  }
  return x as Record<string, RngState>;
}

/**
 * A train state checked as far as the file alone allows: kind, format, task, steps, the RNG states, finite
 * tensors, and (for the tasks src/train/saved-config.ts knows) the config against the model.* tensors and the
 * identity in `extra` — all before any model is built from it.
 */
export function parseTrainState(file: SafetensorsFile, task: string): LoadedTrainState {
  const m = file.metadata, where = `train state ${file.source}`;
  if (m['kind'] !== TRAIN_STATE_KIND)
    throw new CtfError(`${where}: not a training checkpoint (kind ${JSON.stringify(m['kind']) ?? 'missing'}, ` +
      `expected "${TRAIN_STATE_KIND}")`);
  if (m['format'] !== TRAIN_STATE_FORMAT)
    throw new CtfError(`${where}: format ${m['format']} is not supported (this build reads ${TRAIN_STATE_FORMAT})`);
  if (storedTrainTask(m['task']) !== task)
    throw new CtfError(`${where}: it resumes a "${m['task']}" run, not a "${task}" run`);
  const count = (s: string | undefined): number => (s !== undefined && /^\d{1,15}$/.test(s) ? Number(s) : NaN);
  const step = count(m['step']), optStep = count(m['optimizer_step']);
  if (!Number.isSafeInteger(step) || !Number.isSafeInteger(optStep))
    throw new CtfError(`${where}: step "${m['step']}", optimizer_step "${m['optimizer_step']}", expected integers`);
  const model = new Map<string, Tensor>(), state = new Map<string, Tensor>();
  const expAvg: Record<string, Float32Array> = {}, expAvgSq: Record<string, Float32Array> = {};
  for (const [name, t] of file.tensors) {
    const as = (n: string): Tensor => new Tensor(t.data, t.shape, { name: n });
    const moments = (n: string): Float32Array => {
      if (!(t.data instanceof Float32Array))
        throw new CtfError(`${where}: tensor "${name}" is ${t.dtype}, expected a float tensor`);
      return t.data;
    };
    if (name.startsWith('model.')) model.set(name.slice(6), as(name.slice(6)));
    else if (name.startsWith('optim.exp_avg_sq.')) expAvgSq[name.slice(17)] = moments(name);
    else if (name.startsWith('optim.exp_avg.')) expAvg[name.slice(14)] = moments(name);
    else if (name.startsWith('state.')) state.set(name.slice(6), as(name.slice(6)));
    else throw new CtfError(`${where}: unexpected tensor "${name}" (expected model.*, optim.*, state.*)`);
  }
  expectFinite(file.tensors, where);
  // States written before the hash existed have none; they are read with the other checks (docs/gpt-checkpoint.md).
  const stored = m['hash'];
  if (stored !== undefined && stored !== stateHash(file.tensors))
    throw new CtfError(`${where}: its tensors hash to ${stateHash(file.tensors).slice(0, 16)}…, the metadata says ` +
      `${stored.slice(0, 16)}… — the file is corrupted or was edited`);
  const config = json(file, 'config'), extra = json(file, 'extra', true);
  const options = jsonObject(file, 'options');
  checkSavedRun(task, { config, options, extra, model }, where);
  return {
    source: file.source, task, step, config, options, data: jsonObject(file, 'data'),
    rng: rngStates(json(file, 'rng'), where), extra, model, optimizer: { step: optStep, expAvg, expAvgSq }, state,
  };
}

export async function loadTrainState(path: string, task: string): Promise<LoadedTrainState> {
  return parseTrainState(await loadSafetensors(path), task);
}

/**
 * Copies saved parameters into the model's tensors (in place) and the moments into the optimizer.
 * Every parameter must be present with its shape and no other may be: all mismatches are listed.
 */
export function restoreModelAndOptimizer(saved: LoadedTrainState, params: Map<string, Tensor>, optimizer: AdamW): void {
  const problems: string[] = [];
  for (const [name, p] of params) {
    const t = saved.model.get(name);
    if (!t) problems.push(`"${name}" is missing`);
    else if (shapeStr(t.shape) !== shapeStr(p.shape))
      problems.push(`"${name}" has shape ${shapeStr(t.shape)}, the model has ${shapeStr(p.shape)}`);
  }
  for (const name of saved.model.keys())
    if (!params.has(name)) problems.push(`"${name}" is not a parameter of this model`);
  if (problems.length > 0)
    throw new CtfError(`train state ${saved.source}: ${problems.length} parameter(s) do not match: ` +
      `${problems.slice(0, 8).join('; ')}${problems.length > 8 ? '; …' : ''} — was it trained with another config?`);
  for (const [name, p] of params) p.f32.set(saved.model.get(name)!.f32);
  try {
    optimizer.loadStateDict(saved.optimizer);
  } catch (e) {
    throw new CtfError(`train state ${saved.source}: ${(e as Error).message}`);
  }
}

/** The saved tensor state.<name>, checked. */
export function savedStateTensor(
  saved: LoadedTrainState,
  name: string,
  shape: readonly number[],
  dtype: 'f32' | 'i32',
): Tensor {
  const t = saved.state.get(name);
  if (!t) throw new CtfError(`train state ${saved.source}: state tensor "${name}" is missing`);
  if (shapeStr(t.shape) !== shapeStr(shape) || t.dtype !== dtype)
    throw new CtfError(
      `train state ${saved.source}: state tensor "${name}" is ${t.dtype}${shapeStr(t.shape)}, expected ` +
      `${dtype}${shapeStr(shape)}`,
    );
  return t;
}
