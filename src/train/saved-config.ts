// What a train state says about its run, checked before anything is built from it. parseTrainState runs the check
// of the state's task, so every --resume refuses a config that the model.* tensors contradict (a config claiming
// 10^7 layers must not decide an allocation), optimiser options that are not (a resuming command seeds and sizes
// things from them before any trainer exists) and an identity (`extra`) of the wrong shape, naming file and field.
// Options only one trainer has (the tokenizer's flip, …) are checked when that trainer is built.
import { CtfError } from '../errors.js';
import type { TensorShapes } from '../io/safetensors.js';
import { checkGptConfigAgainst } from '../models/gpt-checkpoint.js';
import { storedGptConfig, validateGptConfig } from '../models/gpt.js';
import { storedGptKind } from '../models/gpt-kind.js';
import { checkTokenizerConfigAgainst } from '../tokenizer/checkpoint.js';
import { validateTokenizerConfig } from '../tokenizer/config.js';
import { validateDataIdentity } from '../tokenizer/data-identity.js';
import { validateOptimizerOptions } from './resume.js';

interface SavedRunCheck {
  /** config: the stored model config; model: the model.* tensors, by parameter name. */
  config(config: unknown, model: TensorShapes, where: string): void;
  extra(extra: unknown, where: string): void;
}

function validated(validate: (c: unknown) => void, config: unknown, where: string): void {
  try {
    validate(config);
  } catch (e) {
    throw new CtfError(`${where}: stored config is invalid: ${(e as Error).message}`);
  }
}

function record(x: unknown, where: string, field: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x))
    throw new CtfError(`${where}: metadata "${field}" is ${JSON.stringify(x)?.slice(0, 60)}, expected an object`);
  return x as Record<string, unknown>;
}

const gptRun: SavedRunCheck = {
  config(stored, model, where) {
    const config = storedGptConfig(stored);
    validated(validateGptConfig, config, where);
    checkGptConfigAgainst(config as Parameters<typeof checkGptConfigAgainst>[0], model, where);
  },
  // The identity `ctfgen train` stores and compares on resume: tokenizer_hash, clusters_hash, … — strings only.
  extra(extra, where) {
    if (extra === undefined) return;
    for (const [k, v] of Object.entries(record(extra, where, 'extra')))
      if (typeof v !== 'string')
        throw new CtfError(`${where}: extra.${k} is ${JSON.stringify(v)?.slice(0, 60)}, expected a string`);
  },
};

const tokenizerRun: SavedRunCheck = {
  config(config, model, where) {
    validated(validateTokenizerConfig, config, where);
    checkTokenizerConfigAgainst(config as Parameters<typeof checkTokenizerConfigAgainst>[0], model, where);
  },
  extra(extra, where) {
    if (extra === undefined) return;
    const data = record(extra, where, 'extra')['data'];
    if (data !== undefined) validateDataIdentity(data, `${where}: extra.data`);
  },
};

const CHECKS: Record<string, SavedRunCheck> = {
  tokenizer: tokenizerRun, 'gpt:baseline': gptRun, 'gpt:stage1': gptRun, 'gpt:aux': gptRun,
};

/** A stored task in today's naming: train states of before the renaming say gpt:coarse-ar / gpt:fine-aux. */
export function storedTrainTask(task: string): string;
export function storedTrainTask(task: string | undefined): string | undefined;
export function storedTrainTask(task: string | undefined): string | undefined {
  return task?.startsWith('gpt:') ? `gpt:${storedGptKind(task.slice(4))}` : task;
}

/** What parseTrainState hands the check of its task. */
export interface SavedRun { config: unknown; options: unknown; extra: unknown; model: TensorShapes }

/** Runs the check of `task` (none for a task without one); `where` names the file. */
export function checkSavedRun(task: string, run: SavedRun, where: string): void {
  if (!Object.hasOwn(CHECKS, task)) return;
  const check = CHECKS[task]!;
  check.config(run.config, run.model, where);
  validateOptimizerOptions(run.options, `${where}: options`);
  check.extra(run.extra, where);
}
