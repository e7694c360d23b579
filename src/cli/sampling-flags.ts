// The sampling flags of every command that samples from a run (sample, eval, eval ceiling), declared once, and
// read into the library's options through the library's own checks (resolveGenerateOptions for stage 1 and the
// baseline, resolveRefineOptions for stage 2), so the CLI and the API accept exactly the same values. A value the
// library refuses is a UsageError (exit 2) that names the flag.
import type { GuidedOptions } from '../ctf/cfg.js';
import { SAMPLING_DEFAULTS } from '../ctf/defaults.js';
import { resolveGenerateOptions } from '../ctf/generate.js';
import { resolveRefineOptions } from '../ctf/stage2.js';
import type { OptionName } from '../engine/sampling.js';
import { CtfError } from '../errors.js';
import { UsageError, onOff, type FlagSpec, type ParsedFlags } from './args.js';

export const SAMPLING_FLAGS = {
  cfg: {
    type: 'number',
    default: SAMPLING_DEFAULTS.cfg,
    help: 'classifier-free guidance scale of stage 1 and of the baseline (1 = off)',
  },
  t1: {
    type: 'number',
    default: SAMPLING_DEFAULTS.t1,
    help: 'temperature of stage 1 and of the baseline (0 = greedy)',
  },
  t2: { type: 'number', default: SAMPLING_DEFAULTS.t2, help: 'temperature of stage 2 (0 = greedy)' },
  topK: { type: 'int', default: 0, min: 0, help: 'top-k of both stages (0 = off, 1 = greedy)' },
  topP: { type: 'number', default: 1, help: 'top-p of both stages, in (0, 1] (1 = off)' },
  mask: { type: 'string', default: 'on', help: 'stage 2 samples only inside the predicted cluster: on|off' },
  cfg2: { type: 'number', default: 1, help: 'guidance scale of stage 2 (1 = off; doubles its cost)' },
  refineRounds: {
    type: 'int',
    default: 1,
    min: 1,
    help:
      "stage-2 rounds of masked refinement (1 = the paper's single pass; more need an aux trained with " +
      '--refine masked)',
  },
  seed: { type: 'int', default: 0, min: 0, help: "root of every image's random stream" },
  batch: {
    type: 'int',
    default: 64,
    min: 1,
    help: 'images per sampling batch (memory and speed only: never changes an image)',
  },
} as const satisfies Record<string, FlagSpec>;

export type SamplingFlag = keyof typeof SAMPLING_FLAGS;

/** The sampling flags a command takes (default: all); `help` replaces a flag's help text. */
export function samplingFlags(keys: readonly SamplingFlag[] = Object.keys(SAMPLING_FLAGS) as SamplingFlag[],
  help: Partial<Record<SamplingFlag, string>> = {}): Record<string, FlagSpec> {
  return Object.fromEntries(keys.map((k) => [k, { ...SAMPLING_FLAGS[k], help: help[k] ?? SAMPLING_FLAGS[k].help }]));
}

/** What the sampling flags ask for, as the library's options with every default filled in. */
export interface SamplingOptions {
  stage1: Required<GuidedOptions>;  // stage 1 of CTF, or the baseline
  stage2: Required<GuidedOptions> & { clusterMask: boolean; rounds: number };
  seed: number;
  batchSize: number;
}

const STAGE1_FLAGS: Record<string, string> = {
  cfgScale: 'cfg', temperature: 't1', topK: 'top-k', topP: 'top-p', batchSize: 'batch',
};
const STAGE2_FLAGS: Record<string, string> = {
  cfgScale: 'cfg2', temperature: 't2', topK: 'top-k', topP: 'top-p', clusterMask: 'mask', rounds: 'refine-rounds',
};

/** The flags (a command without one of them gets its default) -> the options, checked by the library. */
export function samplingOptions(f: ParsedFlags): SamplingOptions {
  const num = (k: SamplingFlag): number => (f[k] ?? SAMPLING_FLAGS[k].default) as number;
  const flagName = (flags: Record<string, string>): OptionName => (field) => `--${flags[field] ?? field}`;
  const shared = { topK: num('topK'), topP: num('topP') };
  try {
    const { batchSize, ...stage1 } = resolveGenerateOptions(
      { cfgScale: num('cfg'), temperature: num('t1'), ...shared, batchSize: num('batch') }, flagName(STAGE1_FLAGS));
    const { head: _, ...stage2 } = resolveRefineOptions({
      cfgScale: num('cfg2'), temperature: num('t2'), ...shared, clusterMask: onOff(f, 'mask') ?? true,
      rounds: num('refineRounds'),
    }, flagName(STAGE2_FLAGS));
    return { stage1, stage2, seed: num('seed'), batchSize };
  } catch (e) {
    if (e instanceof CtfError) throw new UsageError(e.message);
    throw e;
  }
}
