// `ctfgen train baseline | coarse-ar | fine-aux`: flags → options, events → stderr. The numerics live in
// src/train/gpt-train.ts. With --run DIR the inputs and the output are found in the run directory.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { loadCoarseMap, type CoarseMap } from '../cluster/coarse-map.js';
import { Rng } from '../engine/rng.js';
import { CtfError, Interrupted } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { checkOutputs, existingSnapshots, lockOutput, type OutputLock } from '../io/outputs.js';
import { GPT_PRESETS, Gpt, gptConfig, storedGptConfig, type GptConfig, type GptPreset } from '../models/gpt.js';
import { saveGptCheckpoint } from '../models/gpt-checkpoint.js';
import { loadTokens, type TokenSet } from '../tokenizer/tokens-file.js';
import { loadTrainState, saveTrainState, type LoadedTrainState } from '../train/checkpoint.js';
import {
  DEFAULT_GPT_TRAIN, GPT_KINDS, GptTrainTask, coarseMapHash, gptTask, tokenSetHash, validateGptTrainOptions,
  validationLoss, type GptKind, type GptTrainOptions,
} from '../train/gpt-train.js';
import { eventLogPath, eventLogSink, teeEvents } from '../train/event-log.js';
import { StopRequest } from '../train/interrupt.js';
import { runTraining } from '../train/loop.js';
import {
  FORCE_FLAG, OPTIMIZER_OPTIONS, UsageError, checkConfigFlagsOnResume, flagRole, givenOptions, optimizerFlags, presetOf,
  replaceMode, resolveTrainOptions, type ParsedFlags,
} from './args.js';
import type { Command } from './main.js';
import { trainStatePath } from './tokenizer.js';
import { trainEventRenderer } from './train-render.js';

const log = (s: string): void => { process.stderr.write(s + '\n'); };
const DEFAULT_GPT_PRESET: GptPreset = 'S';
const valLossLine = (m: Record<string, number>): string =>
  [m['valLoss'] !== undefined ? `val loss ${m['valLoss'].toFixed(4)}` : '',
    m['valLossHalf'] !== undefined ? `half shown ${m['valLossHalf'].toFixed(4)}` : ''].filter(Boolean).join('  ');

/** Where a run directory keeps each piece (explicit flags override). */
export const RUN_FILES = {
  tokenizer: 'tokenizer.safetensors',
  tokensTrain: 'tokens-train.safetensors',
  tokensTest: 'tokens-test.safetensors',
  clusters: 'clusters.safetensors',
  model: (kind: GptKind): string => `${kind}.safetensors`,
};

function pathFlag(f: ParsedFlags, key: string, run: string | undefined, file: string, required: boolean): string | undefined {
  const v = f[key];
  if (typeof v === 'string' && v !== '') return v;
  if (run !== undefined && (!required || existsSync(join(run, file)) || key === 'out')) return join(run, file);
  if (required) throw new UsageError(`--${key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} is required (or --run DIR holding ${file})`);
  return undefined;
}

function trainOptions(f: ParsedFlags, savedOptions: GptTrainOptions | null): GptTrainOptions {
  const given = givenOptions<GptTrainOptions>(f, OPTIMIZER_OPTIONS);
  return resolveTrainOptions(given, savedOptions, DEFAULT_GPT_TRAIN, validateGptTrainOptions);
}

function trainCommand(kind: GptKind): Command {
  const what = { baseline: 'the baseline GPT on fine tokens (plain LlamaGen)', 'coarse-ar': 'CTF stage 1: the causal GPT on coarse labels',
    'fine-aux': 'CTF stage 2: the bidirectional auxiliary model, coarse labels in, fine labels out' }[kind];
  return {
    spec: {
      name: `train ${kind}`,
      brief: { baseline: 'train the baseline GPT (plain LlamaGen) on fine tokens', 'coarse-ar': 'train CTF stage 1: the causal GPT on coarse labels',
        'fine-aux': 'train CTF stage 2: the auxiliary model, coarse labels in, fine labels out' }[kind],
      summary: `Trains ${what}.\nCheckpoints (atomic) go to --out and beside it *.train-state.safetensors for --resume; Ctrl-C saves and exits.`,
      usage: `ctfgen train ${kind} (--run DIR | --tokens FILE${kind === 'baseline' ? '' : ' --clusters FILE'} --out FILE) [options]`,
      flags: {
        run: { type: 'string', help: 'run directory: reads tokens-train/-test.safetensors, clusters.safetensors; writes <kind>.safetensors' },
        tokens: { type: 'string', help: 'encoded training split (ctfgen tokenizer encode)' },
        valTokens: { type: 'string', help: 'encoded test split for the validation loss (optional)' },
        ...(kind === 'baseline' ? {} : { clusters: { type: 'string' as const, help: 'coarse map (ctfgen cluster)' } }),
        out: { type: 'string', help: 'GPT checkpoint to write' },
        preset: {
          type: 'string', choices: Object.keys(GPT_PRESETS),
          help: `size preset: ${Object.keys(GPT_PRESETS).join(', ')} (default ${DEFAULT_GPT_PRESET})`,
        },
        ...optimizerFlags(DEFAULT_GPT_TRAIN, { batchOf: 'sequences', passesOver: 'the training tokens', seedHelp: 'the initialisation, data order and dropout' }),
        dropout: { type: 'number', min: 0, below: 1, help: 'dropout on embeddings, residual and FFN (default 0.1)' },
        classDropout: {
          type: 'number', min: 0, below: 1, help: 'p(label → null class) in training, for CFG (default 0.1)',
        },
        ...(kind === 'fine-aux' ? {
          refine: {
            type: 'string' as const, choices: ['none', 'masked'],
            help: 'none (default): the paper\'s aux; masked: it also reads chosen fine tokens, trained with a MaskGIT mask ' +
              '(docs/refinement.md)',
          },
        } : {}),
        valLimit: { type: 'int', default: 2000, min: 0, help: 'test sequences for the validation loss each epoch (0 = skip)' },
        evalEvery: { type: 'int', default: 0, min: 0, help: 'also compute the validation loss every N steps, for curves (0 = only per epoch)' },
        snapshotEvery: { type: 'int', default: 0, min: 0, help: 'also checkpoint every N steps and keep a copy as <out>.step<N>.safetensors (e.g. the steps of one pass; 0 = none)' },
        checkpointEvery: { type: 'int', default: 200, min: 0, help: 'steps between checkpoints, 0 = only at the end' },
        progressEvery: { type: 'int', default: 10, min: 1, help: 'steps between progress updates' },
        resume: { type: 'boolean', help: 'continue the run saved beside --out exactly where it stopped' },
        ...FORCE_FLAG,
        dryRun: { type: 'boolean', help: 'print the model config, parameter count and schedule, then exit' },
      },
    },
    async run(f) {
      const { force, resume } = replaceMode(f);
      const run = typeof f['run'] === 'string' ? f['run'] : undefined;
      const tokensPath = pathFlag(f, 'tokens', run, RUN_FILES.tokensTrain, true)!;
      const valPath = pathFlag(f, 'valTokens', run, RUN_FILES.tokensTest, false);
      const clustersPath = kind === 'baseline' ? undefined : pathFlag(f, 'clusters', run, RUN_FILES.clusters, true)!;
      const out = pathFlag(f, 'out', run, RUN_FILES.model(kind), true)!;
      const statePath = trainStatePath(out), reportPath = out.replace(/(\.safetensors)?$/, '.report.json');
      const role = (key: string): string => flagRole(f, key);
      const fresh = resume ? null : trainOptions(f, null);  // flag values before the disk: a bad one is a usage error
      checkOutputs({
        inputs: [
          { role: role('tokens'), path: tokensPath },
          valPath !== undefined ? { role: role('valTokens'), path: valPath } : null,
          clustersPath !== undefined ? { role: role('clusters'), path: clustersPath } : null,
        ],
        outputs: [
          { role: role('out'), path: out, artifact: true },
          { role: `the train state of ${role('out')}`, path: statePath, artifact: true },
          { role: `the report of ${role('out')}`, path: reportPath },
          { role: `the event log of ${role('out')}`, path: eventLogPath(out) },
          ...existingSnapshots(out, role('out')),
        ],
        force: force || f['dryRun'] === true, resume,  // a dry run writes nothing
      });
      let lock: OutputLock | null = null;
      if (!f['dryRun']) {
        await mkdir(dirname(out), { recursive: true });
        lock = lockOutput(out, role('out'));
      }
      try {
        await trainRun(kind, f, fresh, { tokensPath, valPath, clustersPath, out, statePath, reportPath });
      } finally {
        lock?.release();
      }
    },
  };
}

interface TrainPaths {
  tokensPath: string; valPath?: string | undefined; clustersPath?: string | undefined;
  out: string; statePath: string; reportPath: string;
}

const short = (h: string | undefined): string => (h ? `${h.slice(0, 12)}…` : 'none');

/** On --resume, the saved run's config and inputs against the flags and files given now; throws on any difference. */
function checkResumeInputs(saved: LoadedTrainState, f: ParsedFlags, identity: Record<string, string>, tokens: string) {
  const config = storedGptConfig(saved.config) as GptConfig;
  checkConfigFlagsOnResume(saved.source, [
    { flag: 'preset', given: f['preset'], saved: presetOf(GPT_PRESETS, config) ?? 'none' },
    { flag: 'dropout', given: f['dropout'], saved: config.dropout },
    { flag: 'classDropout', given: f['classDropout'], saved: config.classDropout },
    { flag: 'refine', given: f['refine'], saved: config.fineVocab > 0 ? 'masked' : 'none' },
  ]);
  const had = (saved.extra ?? {}) as Record<string, unknown>;
  for (const k of ['tokenizer_hash', 'clusters_hash'] as const)
    if (had[k] !== identity[k])
      throw new CtfError(`--resume: ${saved.source} was trained with ${k.replace('_', ' ')} ` +
        `${short(had[k] as string | undefined)}, this run has ${short(identity[k])} — resume with the same inputs, ` +
        'or start over with --force');
  // Train states from before tokens_sha256 was recorded name the data the tokens encode.
  const key = had['tokens_sha256'] !== undefined ? 'tokens_sha256' : 'tokens_data';
  if (had[key] !== identity[key]) {
    const what = (v: unknown): string => (key === 'tokens_sha256' ? `sha256 ${short(v as string)}` : String(v));
    throw new CtfError(`--resume: ${saved.source} was trained on tokens with ${what(had[key])}, --tokens ${tokens} ` +
      `holds tokens with ${what(identity[key])} — resume with the same --tokens, or start anew with --force`);
  }
}

async function trainRun(kind: GptKind, f: ParsedFlags, fresh: GptTrainOptions | null, p: TrainPaths): Promise<void> {
  const { out, statePath } = p;
  const saved = f['resume'] ? await loadTrainState(statePath, `gpt:${kind}`) : null;
  const options = fresh ?? trainOptions(f, saved!.options as GptTrainOptions);
  const data: TokenSet = await loadTokens(p.tokensPath);
  const map: CoarseMap | null = p.clustersPath !== undefined
    ? await loadCoarseMap(p.clustersPath, { tokenizerHash: data.tokenizerHash, v: data.tokenizerConfig.codebookSize })
    : null;
  const identity: Record<string, string> = {
    ctf_kind: kind, tokenizer_hash: data.tokenizerHash, tokens_data: JSON.stringify(data.data),
    tokens_sha256: tokenSetHash(data),
    ...(map ? { clusters_hash: coarseMapHash(map), clusters_k: String(map.k), clusters_mode: map.mode } : {}),
  };
  if (saved) checkResumeInputs(saved, f, identity, p.tokensPath);
  const valPath = p.valPath;
  const val = valPath !== undefined && existsSync(valPath) && f['valLimit'] !== 0 ? await loadTokens(valPath, { tokenizerHash: data.tokenizerHash }) : null;
  if (val && val.data.numClasses !== data.data.numClasses)
    throw new CtfError(`validation tokens ${val.source} are of ${val.data.numClasses} classes, ` +
      `the training tokens ${data.source} of ${data.data.numClasses}`);

  let config: GptConfig;
  // States from before masked refinement have no fineVocab; the others keep their key order, so a resumed run's
  // checkpoints are byte for byte those of an uninterrupted one (test/train/crash.test.ts).
  if (saved) config = storedGptConfig(saved.config) as GptConfig;
  else {
    const overrides: Partial<GptConfig> = {};
    if (f['dropout'] !== undefined) overrides.dropout = f['dropout'] as number;
    if (f['classDropout'] !== undefined) overrides.classDropout = f['classDropout'] as number;
    if (f['refine'] === 'masked') overrides.fineVocab = data.tokenizerConfig.codebookSize + 1;
    config = gptConfig((f['preset'] ?? DEFAULT_GPT_PRESET) as GptPreset, gptTask(kind, data, map), overrides);
  }
  const model = new Gpt(config, new Rng(options.seed).split('init'));

  const snapshotEvery = f['snapshotEvery'] as number;
  const save = async (task: GptTrainTask, step: number): Promise<string> => {
    await mkdir(dirname(out), { recursive: true });
    await saveTrainState(statePath, { ...task.trainState(step), extra: identity });
    const meta = { ...identity, step: String(step), options: JSON.stringify(options) };
    await saveGptCheckpoint(out, model, meta);
    if (snapshotEvery > 0 && step % snapshotEvery === 0 && step < task.totalSteps)
      await saveGptCheckpoint(out.replace(/(\.safetensors)?$/, `.step${step}.safetensors`), model, meta);
    return statePath;
  };
  // A masked-refinement aux also reports its loss with half of the fine tokens shown: what refinement can buy.
  const limit = f['valLimit'] as number;
  const valLosses = (m: Gpt, v: TokenSet): Record<string, number> => ({
    valLoss: validationLoss(m, kind, v, map, { limit }),
    ...(m.fineTable ? { valLossHalf: validationLoss(m, kind, v, map, { limit, reveal: 0.5 }) } : {}),
  });
  const validate = val ? (t: GptTrainTask): Record<string, number> => valLosses(t.model, val) : undefined;
  const task = new GptTrainTask(kind, model, data, map, options, save, validate);
  log(`${kind}: ${model.numParameters().toLocaleString('en')} parameters, ${JSON.stringify(config)}`);
  log(`${task.stepsPerEpoch} steps/epoch × ${options.epochs} epochs = ${task.totalSteps} steps of ${options.batchSize} sequences`);
  if (f['dryRun']) return;
  const start = saved ? task.restore(saved) : 0;
  const stop = new StopRequest().listen();
  let result;
  const t0 = performance.now();
  try {
    result = await runTraining(task, {
      optimizer: task.optimizer, params: model.parameters(), lr: (s) => task.lr(s), startStep: start,
      gradClip: options.gradClip > 0 ? options.gradClip : undefined, checkpointEvery: f['checkpointEvery'] as number,
      checkpointAlsoAt: snapshotEvery > 0 ? (s) => s % snapshotEvery === 0 : undefined,
      progressEvery: f['progressEvery'] as number, evalEvery: val ? (f['evalEvery'] as number) : 0, stop,
      emit: teeEvents(
        trainEventRenderer({ label: kind, unit: 'token', formatMetrics: valLossLine }),
        eventLogSink(eventLogPath(out)),
      ),
    });
  } finally {
    stop.dispose();
  }
  if (result.stopped) throw new Interrupted(stop.signal ?? 'SIGINT');
  const losses = val ? valLosses(model, val) : null, valLoss = losses?.['valLoss'] ?? null, valLossHalf = losses?.['valLossHalf'] ?? null;
  if (valLoss !== null) log(`${kind}: validation loss ${valLoss.toFixed(4)} nats/token`);
  if (valLossHalf !== null) log(`${kind}: with half of the fine tokens shown ${valLossHalf.toFixed(4)} nats per masked token`);
  const report = {
    kind: 'ctfgen.train-report', model: kind, out, command: ['ctfgen', ...process.argv.slice(2)].join(' '), config, options,
    parameters: model.numParameters(), steps: result.step, seconds: (performance.now() - t0) / 1000, valLoss, valLossHalf,
    ...identity,
  };
  await writeFileAtomic(p.reportPath, JSON.stringify(report, null, 2) + '\n');
}

export const trainCommands: Command[] = GPT_KINDS.map(trainCommand);
