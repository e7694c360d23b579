// `ctfgen train baseline | stage1 | aux`: flags → options and a task, events → stderr. The run on disk (outputs,
// lock, --resume, checkpoints, snapshots, stop, report) is src/train/run.ts; the numerics src/train/gpt-train.ts.
// With --run DIR the inputs and the output are found in the run directory (src/io/run-dir.ts).
// `ctfgen train coarse-ar | fine-aux`, the names before the renaming, still work and say the new name.
// Under `mpirun -np N` the training is data-parallel (src/train/run.ts); rank 0 alone prints and writes.
import { existsSync } from 'node:fs';
import { loadCoarseMap, type CoarseMap } from '../cluster/coarse-map.js';
import { Rng } from '../engine/rng.js';
import { CtfError } from '../errors.js';
import { RUN_FILES, reportPath, runPath, type RunPiece } from '../io/run-dir.js';
import { GPT_PRESETS, Gpt, gptConfig, storedGptConfig, type GptConfig, type GptPreset } from '../models/gpt.js';
import { saveGptCheckpoint } from '../models/gpt-checkpoint.js';
import { GPT_KINDS, LEGACY_GPT_KINDS, type GptKind } from '../models/gpt-kind.js';
import { communicator } from '../parallel/index.js';
import { loadTokens, type TokenSet } from '../tokenizer/tokens-file.js';
import type { LoadedTrainState } from '../train/checkpoint.js';
import {
  DEFAULT_GPT_TRAIN, GptTrainTask, coarseMapHash, gptTask, tokenSetHash, validateGptTrainOptions, validationLoss,
  type GptTrainOptions,
} from '../train/gpt-train.js';
import type { IdentityCheck } from '../train/identity.js';
import { trainRun } from '../train/run.js';
import {
  FORCE_FLAG, OPTIMIZER_OPTIONS, UsageError, checkConfigFlagsOnResume, flagRole, givenOptions, kebab, optimizerFlags,
  presetOf, replaceMode, resolveTrainOptions, type ParsedFlags,
} from './args.js';
import type { Command } from './main.js';
import { exitOnRepeatedSignal, trainEventRenderer } from './train-render.js';

const log = (s: string): void => { if (communicator().rank === 0) process.stderr.write(s + '\n'); };
const DEFAULT_GPT_PRESET: GptPreset = 'S';
const valLossLine = (m: Record<string, number>): string =>
  [m['valLoss'] !== undefined ? `val loss ${m['valLoss'].toFixed(4)}` : '',
    m['valLossHalf'] !== undefined ? `half shown ${m['valLossHalf'].toFixed(4)}` : ''].filter(Boolean).join('  ');

const WHAT: Record<GptKind, { brief: string; what: string }> = {
  baseline: {
    brief: 'train the baseline GPT (plain LlamaGen) on fine tokens',
    what: 'the baseline GPT on fine tokens (plain LlamaGen)',
  },
  stage1: {
    brief: 'train CTF stage 1: the causal GPT on coarse labels', what: 'CTF stage 1: the causal GPT on coarse labels',
  },
  aux: {
    brief: 'train CTF stage 2: the auxiliary model, coarse labels in, fine labels out',
    what: 'CTF stage 2: the bidirectional auxiliary model, coarse labels in, fine labels out',
  },
};

/** An explicit path flag, else the run directory's file; `required` pieces must be found one way or the other. */
function pathFlag(
  f: ParsedFlags, key: string, run: string | undefined, piece: RunPiece, required: boolean,
): string | undefined {
  const v = f[key];
  if (typeof v === 'string' && v !== '') return v;
  const path = run !== undefined ? runPath(run, piece) : undefined;
  if (path !== undefined && (!required || existsSync(path) || key === 'out')) return path;
  if (required) throw new UsageError(`--${kebab(key)} is required (or --run DIR holding ${RUN_FILES[piece]})`);
  return undefined;
}

function trainOptions(f: ParsedFlags, savedOptions: GptTrainOptions | null): GptTrainOptions {
  const given = givenOptions<GptTrainOptions>(f, OPTIMIZER_OPTIONS);
  return resolveTrainOptions(given, savedOptions, DEFAULT_GPT_TRAIN, validateGptTrainOptions);
}

function trainSpec(kind: GptKind, name: string): Command['spec'] {
  return {
    name: `train ${name}`,
    brief: WHAT[kind].brief,
    summary: `Trains ${WHAT[kind].what}.\nCheckpoints (atomic) go to --out and beside it *.train-state.safetensors ` +
      'for --resume; Ctrl-C saves and exits.',
    usage: `ctfgen train ${kind} (--run DIR | --tokens FILE${kind === 'baseline' ? '' : ' --clusters FILE'} ` +
      '--out FILE) [options]',
    flags: {
      run: {
        type: 'string',
        help: `run directory: reads tokens-train/-test.safetensors, clusters.safetensors; writes ${RUN_FILES[kind]}`,
      },
      tokens: { type: 'string', help: 'encoded training split (ctfgen tokenizer encode)' },
      valTokens: { type: 'string', help: 'encoded test split for the validation loss (optional)' },
      ...(kind === 'baseline' ? {} : { clusters: { type: 'string' as const, help: 'coarse map (ctfgen cluster)' } }),
      out: { type: 'string', help: 'GPT checkpoint to write' },
      preset: {
        type: 'string', choices: Object.keys(GPT_PRESETS),
        help: `size preset: ${Object.keys(GPT_PRESETS).join(', ')} (default ${DEFAULT_GPT_PRESET})`,
      },
      ...optimizerFlags(DEFAULT_GPT_TRAIN, {
        batchOf: 'sequences', passesOver: 'the training tokens', seedHelp: 'the initialisation, data order and dropout',
      }),
      dropout: { type: 'number', min: 0, below: 1, help: 'dropout on embeddings, residual and FFN (default 0.1)' },
      classDropout: {
        type: 'number', min: 0, below: 1, help: 'p(label → null class) in training, for CFG (default 0.1)',
      },
      ...(kind === 'aux' ? {
        refine: {
          type: 'string' as const, choices: ['none', 'masked'],
          help: 'none (default): the paper\'s aux; masked: it also reads chosen fine tokens, trained with a ' +
            'MaskGIT mask (docs/refinement.md)',
        },
      } : {}),
      valLimit: {
        type: 'int', default: 2000, min: 0, help: 'test sequences for the validation loss each epoch (0 = skip)',
      },
      evalEvery: {
        type: 'int', default: 0, min: 0,
        help: 'also compute the validation loss every N steps, for curves (0 = only per epoch)',
      },
      snapshotEvery: {
        type: 'int', default: 0, min: 0,
        help: 'also checkpoint every N steps and keep a copy as <out>.step<N>.safetensors (e.g. the steps of one ' +
          'pass; 0 = none)',
      },
      checkpointEvery: { type: 'int', default: 200, min: 0, help: 'steps between checkpoints, 0 = only at the end' },
      progressEvery: { type: 'int', default: 10, min: 1, help: 'steps between progress updates' },
      stopAt: {
        type: 'int', default: 0, min: 0,
        help: 'save and stop once this many steps are done (0 = run to the end): a run split over several jobs, ' +
          'each continued with --resume',
      },
      resume: { type: 'boolean', help: 'continue the run saved beside --out exactly where it stopped' },
      ...FORCE_FLAG,
      dryRun: { type: 'boolean', help: 'print the model config, parameter count and schedule, then exit' },
    },
  };
}

const short = (h: unknown): string => (typeof h === 'string' && h !== '' ? `${h.slice(0, 12)}…` : 'none');

/** The config flags of a resumed run must say what the saved run has (a UsageError otherwise). */
function checkConfigFlags(saved: LoadedTrainState, f: ParsedFlags): GptConfig {
  const config = storedGptConfig(saved.config) as GptConfig;
  checkConfigFlagsOnResume(saved.source, [
    { flag: 'preset', given: f['preset'], saved: presetOf(GPT_PRESETS, config) ?? 'none' },
    { flag: 'dropout', given: f['dropout'], saved: config.dropout },
    { flag: 'classDropout', given: f['classDropout'], saved: config.classDropout },
    { flag: 'refine', given: f['refine'], saved: config.fineVocab > 0 ? 'masked' : 'none' },
  ]);
  return config;
}

/** What a resumed run must share with this one: the tokenizer, the coarse map and the training tokens. */
function identityChecks(identity: Record<string, string>, saved: LoadedTrainState, tokens: string): IdentityCheck[] {
  const hash = (key: string): IdentityCheck => ({
    key, value: identity[key],
    mismatch: (had) => `was trained with ${key.replace('_', ' ')} ${short(had)}, this run has ` +
      `${short(identity[key])} — resume with the same inputs`,
  });
  // Train states from before tokens_sha256 was recorded name the data the tokens encode.
  const had = (saved.extra ?? {}) as Record<string, unknown>;
  const key = had['tokens_sha256'] !== undefined ? 'tokens_sha256' : 'tokens_data';
  const what = (v: unknown): string => (key === 'tokens_sha256' ? `sha256 ${short(v)}` : String(v));
  return [hash('tokenizer_hash'), hash('clusters_hash'), {
    key, value: identity[key],
    mismatch: (had) => `was trained on tokens with ${what(had)}, --tokens ${tokens} holds tokens with ` +
      `${what(identity[key])} — resume with the same --tokens`,
  }];
}

async function runGptTraining(kind: GptKind, f: ParsedFlags): Promise<void> {
  const { force, resume } = replaceMode(f);
  const run = typeof f['run'] === 'string' ? f['run'] : undefined;
  const tokensPath = pathFlag(f, 'tokens', run, 'tokensTrain', true)!;
  const valPath = pathFlag(f, 'valTokens', run, 'tokensTest', false);
  const clustersPath = kind === 'baseline' ? undefined : pathFlag(f, 'clusters', run, 'clusters', true)!;
  const out = pathFlag(f, 'out', run, kind, true)!;
  const role = (key: string): string => flagRole(f, key);
  const fresh = resume ? null : trainOptions(f, null);  // flag values before the disk: a bad one is a usage error
  const report = reportPath(out), limit = f['valLimit'] as number, comm = communicator();
  await trainRun({
    out, outRole: role('out'), task: `gpt:${kind}`, resume, force, dryRun: f['dryRun'] === true,
    inputs: [
      { role: role('tokens'), path: tokensPath },
      valPath !== undefined ? { role: role('valTokens'), path: valPath } : null,
      clustersPath !== undefined ? { role: role('clusters'), path: clustersPath } : null,
    ],
    outputs: [{ role: `the report of ${role('out')}`, path: report }],
    report, eventLog: true,
    checkpointEvery: f['checkpointEvery'] as number, progressEvery: f['progressEvery'] as number,
    snapshotEvery: f['snapshotEvery'] as number, onRepeatedSignal: exitOnRepeatedSignal,
    stopAt: f['stopAt'] as number,
    emit: trainEventRenderer({ label: kind, unit: 'token', formatMetrics: valLossLine }), comm,
  }, async ({ saved, save }) => {
    const savedConfig = saved ? checkConfigFlags(saved, f) : null;
    const options = fresh ?? trainOptions(f, saved!.options as GptTrainOptions);
    const data: TokenSet = await loadTokens(tokensPath);
    const map: CoarseMap | null = clustersPath !== undefined
      ? await loadCoarseMap(clustersPath, { tokenizerHash: data.tokenizerHash, v: data.tokenizerConfig.codebookSize })
      : null;
    const identity: Record<string, string> = {
      ctf_kind: kind, tokenizer_hash: data.tokenizerHash, tokens_data: JSON.stringify(data.data),
      tokens_sha256: tokenSetHash(data),
      ...(map ? { clusters_hash: coarseMapHash(map), clusters_k: String(map.k), clusters_mode: map.mode } : {}),
    };
    const checks = saved ? identityChecks(identity, saved, tokensPath) : [];
    const val = valPath !== undefined && existsSync(valPath) && limit !== 0
      ? await loadTokens(valPath, { tokenizerHash: data.tokenizerHash }) : null;
    if (val && val.data.numClasses !== data.data.numClasses)
      throw new CtfError(`validation tokens ${val.source} are of ${val.data.numClasses} classes, ` +
        `the training tokens ${data.source} of ${data.data.numClasses}`);
    // States from before masked refinement have no fineVocab; the others keep their key order, so a resumed run's
    // checkpoints are byte for byte those of an uninterrupted one (test/train/crash.test.ts).
    const overrides: Partial<GptConfig> = {};
    if (f['dropout'] !== undefined) overrides.dropout = f['dropout'] as number;
    if (f['classDropout'] !== undefined) overrides.classDropout = f['classDropout'] as number;
    if (f['refine'] === 'masked') overrides.fineVocab = data.tokenizerConfig.codebookSize + 1;
    const config = savedConfig
      ?? gptConfig((f['preset'] ?? DEFAULT_GPT_PRESET) as GptPreset, gptTask(kind, data, map), overrides);
    const model = new Gpt(config, new Rng(options.seed).split('init'));
    // A masked-refinement aux also reports its loss with half of the fine tokens shown: what refinement can buy.
    const valLosses = (m: Gpt, v: TokenSet): Record<string, number> => ({
      valLoss: validationLoss(m, kind, v, map, { limit, comm }),
      ...(m.fineTable ? { valLossHalf: validationLoss(m, kind, v, map, { limit, reveal: 0.5, comm }) } : {}),
    });
    const validate = val ? (t: GptTrainTask): Record<string, number> => valLosses(t.model, val) : undefined;
    const task = new GptTrainTask(kind, model, data, map, options, (_t, step) => save(step), validate, comm);
    log(`${kind}: ${model.numParameters().toLocaleString('en')} parameters, ${JSON.stringify(config)}`);
    log(`${task.stepsPerEpoch} steps/epoch × ${options.epochs} epochs = ${task.totalSteps} steps of ` +
      `${options.batchSize} sequences${comm.size > 1 ? `, shared by ${comm.size} MPI ranks` : ''}`);
    return {
      task, extra: identity, checks, evalEvery: val ? (f['evalEvery'] as number) : 0,
      saveModel: (path, step) =>
        saveGptCheckpoint(path, model, { ...identity, step: String(step), options: JSON.stringify(options) }),
      async finish({ step, seconds }) {
        const t = performance.now(), losses = val ? valLosses(model, val) : null;
        const valLoss = losses?.['valLoss'] ?? null, valLossHalf = losses?.['valLossHalf'] ?? null;
        if (valLoss !== null) log(`${kind}: validation loss ${valLoss.toFixed(4)} nats/token`);
        if (valLossHalf !== null)
          log(`${kind}: with half of the fine tokens shown ${valLossHalf.toFixed(4)} nats per masked token`);
        return {
          kind: 'ctfgen.train-report', model: kind, out, command: ['ctfgen', ...process.argv.slice(2)].join(' '),
          config, options, parameters: model.numParameters(), steps: step,
          seconds: seconds + (performance.now() - t) / 1000, valLoss, valLossHalf, ...identity,
        };
      },
    };
  });
}

function trainCommand(kind: GptKind): Command {
  return { spec: trainSpec(kind, kind), run: (f) => runGptTraining(kind, f) };
}

/** `ctfgen train coarse-ar | fine-aux`: the old names, kept for scripts; one line says the new one. */
function aliasCommand(old: string, kind: GptKind): Command {
  return {
    spec: { ...trainSpec(kind, old), brief: `the old name of \`ctfgen train ${kind}\``, hidden: true },
    run(f) {
      process.stderr.write(`ctfgen train ${old} is now called \`ctfgen train ${kind}\`; running that\n`);
      return runGptTraining(kind, f);
    },
  };
}

export const trainCommands: Command[] = [
  ...GPT_KINDS.map(trainCommand),
  ...Object.entries(LEGACY_GPT_KINDS).map(([old, kind]) => aliasCommand(old, kind)),
];
