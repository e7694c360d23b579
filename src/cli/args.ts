// One validation path from kebab-case flags to typed options, shared by every command.
//
// Exit codes. 2 (a UsageError, printed with the help): the command line itself is wrong — an unknown or missing
// flag, a value the flag does not accept (out of range, an unknown preset or dataset name), flags that contradict
// each other or the run being resumed, an argument the command does not take. 1 (a CtfError): the command line is
// well formed but what it names on disk is not — a file that is missing, corrupt, of the wrong kind or from another
// run, an output that cannot or may not be written. So `--data nope` is 2 and `--data folder:nope` is 1.
// 130 / 143: stopped by SIGINT / SIGTERM after saving (errors.ts Interrupted).
import { parseArgs } from 'node:util';
import { closest } from './suggest.js';

/** Bad usage: the CLI prints the message and the command's help, and exits with code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface FlagSpec {
  type: 'string' | 'number' | 'boolean' | 'int';
  default?: string | number | boolean;
  help: string;
  short?: string;
  min?: number;
  below?: number;                // exclusive upper bound (a probability that must stay < 1)
  choices?: readonly string[];   // the values a string flag accepts
}

export interface CommandSpec {
  name: string;          // "bench engine"
  brief: string;         // one line for the command list: what it does, lower case, no full stop
  summary: string;
  usage: string;         // "ctfgen bench engine [options]"
  flags: Record<string, FlagSpec>;  // camelCase keys; the flag is the kebab-case form
  positionals?: string[];
  hidden?: boolean;      // an old name kept for scripts: runs, but is not listed
}

export function kebab(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

export type ParsedFlags = Record<string, string | number | boolean | undefined>;

export function parseCommand(spec: CommandSpec, argv: string[]): { flags: ParsedFlags; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const [key, f] of Object.entries(spec.flags))
    options[kebab(key)] = { type: f.type === 'boolean' ? 'boolean' : 'string', ...(f.short ? { short: f.short } : {}) };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    const msg = (e as Error).message, unknown = /Unknown option '(-{1,2}[^']+)'/.exec(msg);
    if (!unknown) throw new UsageError(msg.replace(/^.*?: /, ''));
    const flag = unknown[1]!, guess = closest(flag.replace(/^-+/, ''), ['help', ...Object.keys(spec.flags).map(kebab)]);
    throw new UsageError(`unknown flag ${flag}${guess ? `; did you mean --${guess}?` : ''}`);
  }
  const flags: ParsedFlags = { help: parsed.values['help'] as boolean | undefined };
  for (const [key, f] of Object.entries(spec.flags)) {
    const raw = parsed.values[kebab(key)] as string | boolean | undefined;
    if (raw === undefined) { flags[key] = f.default; continue; }
    if (f.type === 'number' || f.type === 'int') {
      const v = Number(raw);
      if (raw === '' || !Number.isFinite(v) || (f.type === 'int' && !Number.isInteger(v)))
        throw new UsageError(`--${kebab(key)}: expected ${f.type === 'int' ? 'an integer' : 'a number'}, got "${raw}"`);
      if (f.min !== undefined && v < f.min) throw new UsageError(`--${kebab(key)}: must be ≥ ${f.min}, got ${v}`);
      if (f.below !== undefined && !(v < f.below))
        throw new UsageError(`--${kebab(key)}: must be < ${f.below}, got ${v}`);
      flags[key] = v;
    } else {
      if (f.choices && !f.choices.includes(raw as string))
        throw new UsageError(`--${kebab(key)}: expected ${f.choices.join(', ')}, got "${String(raw)}"`);
      flags[key] = raw;
    }
  }
  return { flags, positionals: parsed.positionals };
}

export function helpText(spec: CommandSpec): string {
  const rows = Object.entries(spec.flags).map(([key, f]) => {
    const value = f.type === 'boolean' ? '' : ` <${f.type === 'string' ? 'value' : f.type}>`;
    const name = `  ${f.short ? `-${f.short}, ` : ''}--${kebab(key)}${value}`;
    const def = f.default !== undefined && f.type !== 'boolean' ? ` (default: ${f.default})` : '';
    return `${name.padEnd(30)} ${f.help}${def}`;
  });
  return `${spec.usage}\n\n${spec.summary}\n\nOptions:\n${rows.join('\n')}\n  -h, --help                   show this ` +
    `help\n`;
}

/** --force, for the commands that write checkpoints, train states, tokens or cluster files (src/io/outputs.ts). */
export const FORCE_FLAG: Record<'force', FlagSpec> = {
  force: {
    type: 'boolean', help: 'replace existing checkpoints, train states, tokens or cluster files among the outputs',
  },
};

/** --force and --resume: what may happen to an existing artifact; both at once is a contradiction. */
export function replaceMode(f: ParsedFlags): { force: boolean; resume: boolean } {
  const force = f['force'] === true, resume = f['resume'] === true;
  if (force && resume)
    throw new UsageError('give --resume (continue the saved run) or --force (start over and replace it), not both');
  return { force, resume };
}

/**
 * With --resume the model config comes from the saved run (`statePath`). A config flag given anyway must say the
 * same: each check is the flag (camelCase key), the value it asks for and the saved run's value.
 */
export function checkConfigFlagsOnResume(
  statePath: string, checks: { flag: string; given: unknown; saved: unknown }[],
): void {
  const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));
  for (const c of checks) {
    if (c.given === undefined || JSON.stringify(c.given) === JSON.stringify(c.saved)) continue;
    throw new UsageError(`--resume: ${statePath} was started with ${kebab(c.flag)} ${show(c.saved)}, ` +
      `--${kebab(c.flag)} asks for ${show(c.given)}; drop the flag or pass the same value ` +
      '(the model config comes from the saved run)');
  }
}

/** The name of the preset whose sizes `config` has, or null (a config made with overrides). */
export function presetOf(presets: Record<string, object>, config: object): string | null {
  const c = config as Record<string, unknown>;
  const hit = Object.entries(presets).find(([, sizes]) =>
    Object.entries(sizes).every(([k, v]) => JSON.stringify(c[k]) === JSON.stringify(v)));
  return hit?.[0] ?? null;
}

/** A path's name in messages: "--tokens" when given, "tokens (from --run)" when found in the run directory. */
export function flagRole(f: ParsedFlags, key: string): string {
  return typeof f[key] === 'string' ? `--${kebab(key)}` : `${kebab(key)} (from --run)`;
}

/** A required string flag (given by its camelCase key), or a UsageError naming it. */
export function requireString(f: ParsedFlags, key: string): string {
  const v = f[key];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${kebab(key)} is required`);
  return v;
}

/** An on|off flag (also true|false): undefined when absent, else the boolean; anything else is a UsageError. */
export function onOff(f: ParsedFlags, key: string): boolean | undefined {
  const v = f[key];
  if (v === undefined) return undefined;
  if (v === 'on' || v === 'true' || v === true) return true;
  if (v === 'off' || v === 'false' || v === false) return false;
  throw new UsageError(`--${kebab(key)}: expected on or off, got "${String(v)}"`);
}

/** The options of a training run. Fresh: the defaults with the flags given (validated). --resume: the saved
 * options, and any flag given explicitly must agree with them, since it decides the trajectory. */
export function resolveTrainOptions<T extends object>(
  given: Partial<T>,
  saved: T | null,
  defaults: T,
  validate: (o: T) => void,
): T {
  if (!saved) {
    const o = { ...defaults, ...given };
    try {
      validate(o);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    return o;
  }
  for (const [k, v] of Object.entries(given)) {
    const had = (saved as Record<string, unknown>)[k];
    if (JSON.stringify(had) !== JSON.stringify(v))
      throw new UsageError(
        `--resume: the run was started with ${k} = ${JSON.stringify(had)}, ` +
          `the flag asks for ${JSON.stringify(v)}; drop the flag or pass the same value (it decides the trajectory)`,
      );
  }
  return saved;
}

/** The flags given among `pairs` ([flag key, option key]), as a partial options object. */
export function givenOptions<T>(f: ParsedFlags, pairs: [string, keyof T][]): Partial<T> {
  const given: Partial<T> = {};
  for (const [flag, key] of pairs)
    if (f[flag] !== undefined) (given as Record<string, unknown>)[key as string] = f[flag];
  return given;
}

/** The optimiser options every training command has (tokenizer, classifier, GPT), as their defaults show them. */
export interface OptimizerDefaults {
  epochs: number; batchSize: number; lr: number; warmup: number; schedule: string;
  minLrRatio: number; weightDecay: number; gradClip: number;
}

/**
 * The flags of those options and --seed, with each command's defaults in the help. `batchOf` names what a step
 * batches ("images", "sequences"), `passesOver` what an epoch passes over, `seedHelp` what the seed decides.
 */
export function optimizerFlags(
  d: OptimizerDefaults,
  o: { batchOf: string; passesOver: string; seedHelp: string },
): Record<string, FlagSpec> {
  return {
    epochs: { type: 'int', min: 1, help: `passes over ${o.passesOver} (default ${d.epochs})` },
    batch: { type: 'int', min: 1, help: `${o.batchOf} per step (default ${d.batchSize})` },
    lr: { type: 'number', help: `peak learning rate (default ${d.lr})` },
    warmup: { type: 'int', min: 0, help: `linear warmup steps (default ${d.warmup})` },
    schedule: { type: 'string', choices: ['cosine', 'constant'], help: `cosine or constant (default ${d.schedule})` },
    minLrRatio: { type: 'number', help: `cosine floor as a fraction of --lr (default ${d.minLrRatio})` },
    weightDecay: { type: 'number', help: `AdamW decoupled weight decay on ≥2-D parameters (default ${d.weightDecay})` },
    gradClip: { type: 'number', help: `max global gradient norm, 0 = off (default ${d.gradClip})` },
    seed: { type: 'int', min: 0, help: `seed of ${o.seedHelp} (default 0)` },
  };
}

/** [flag, option] pairs of optimizerFlags(), for givenOptions(). */
export const OPTIMIZER_OPTIONS: [string, keyof OptimizerDefaults | 'seed'][] = [
  ['epochs', 'epochs'], ['batch', 'batchSize'], ['lr', 'lr'], ['warmup', 'warmup'], ['schedule', 'schedule'],
  ['minLrRatio', 'minLrRatio'], ['weightDecay', 'weightDecay'], ['gradClip', 'gradClip'], ['seed', 'seed'],
];
