// A run directory, described once: the file each piece of a CTF run has there, and the files that sit beside a
// checkpoint (its train state, report, event log, snapshots, lock). Training (`ctfgen train --run`), sampling,
// evaluation, serving, the benchmarks and `ctfgen demo` all find their files through these names.
//   tokenizer.safetensors        the VQ tokenizer             tokens-train.safetensors / tokens-test.safetensors
//   clusters.safetensors         the coarse map               baseline / stage1 / aux.safetensors  the three GPTs
//   <x>.train-state.safetensors  for --resume                 <x>.report.json, <x>.events.jsonl, <x>.step<N>.…
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { legacyGptKind } from '../models/gpt-kind.js';

export const RUN_FILES = {
  tokenizer: 'tokenizer.safetensors',
  tokensTrain: 'tokens-train.safetensors',
  tokensTest: 'tokens-test.safetensors',
  clusters: 'clusters.safetensors',
  baseline: 'baseline.safetensors',
  stage1: 'stage1.safetensors',
  aux: 'aux.safetensors',
} as const;

export type RunPiece = keyof typeof RUN_FILES;

const withSuffix = (checkpoint: string, suffix: string): string => checkpoint.replace(/(\.safetensors)?$/, suffix);

/** runs/x/tokenizer.safetensors → runs/x/tokenizer.train-state.safetensors (weights + optimizer + position). */
export function trainStatePath(checkpoint: string): string {
  return withSuffix(checkpoint, '.train-state.safetensors');
}

/** runs/x/baseline.safetensors → runs/x/baseline.report.json (what a finished training reports). */
export function reportPath(checkpoint: string): string {
  return withSuffix(checkpoint, '.report.json');
}

/** runs/x/baseline.safetensors → runs/x/baseline.step200.safetensors (a kept copy of the checkpoint at step 200). */
export function snapshotPath(checkpoint: string, step: number): string {
  return withSuffix(checkpoint, `.step${step}.safetensors`);
}

/**
 * The path of a piece in run directory `dir`. A directory made before the GPTs were renamed holds
 * coarse-ar.safetensors / fine-aux.safetensors (or only their train states); those are found, and continued by
 * `ctfgen train --run --resume`, under their old names when the new ones are absent.
 */
export function runPath(dir: string, piece: RunPiece): string {
  const path = join(dir, RUN_FILES[piece]);
  const legacy = piece === 'stage1' || piece === 'aux' ? legacyGptKind(piece) : undefined;
  if (legacy === undefined || existsSync(path) || existsSync(trainStatePath(path))) return path;
  const old = join(dir, `${legacy}.safetensors`);
  return existsSync(old) || existsSync(trainStatePath(old)) ? old : path;
}
