// `ctfgen tokenizer train | eval | encode`: flags → options, events → stderr, results → stdout.
// The numerics live in src/tokenizer and src/train.
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { firstImages, loadDataset, type Dataset, type LoadOptions, type Split } from '../data/dataset.js';
import { toModelInput } from '../data/model-input.js';
import { Rng } from '../engine/rng.js';
import { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { checkOutputs } from '../io/outputs.js';
import { writeImageGrid } from '../io/png.js';
import type { LoadedTrainState } from '../train/checkpoint.js';
import { dataCheck } from '../train/identity.js';
import { trainRun, type TrainRunContext, type TrainRunSetup } from '../train/run.js';
import { graphBytes, trainingMemory } from '../train/memory.js';
import { benchTokenizer } from '../tokenizer/bench.js';
import { loadTokenizer, saveTokenizer } from '../tokenizer/checkpoint.js';
import {
  DEFAULT_TOKENIZER_PRESET,
  TOKENIZER_PRESETS,
  tokenizerConfig,
  type TokenizerConfig,
} from '../tokenizer/config.js';
import { dataIdentity, type DataIdentity } from '../tokenizer/data-identity.js';
import { encodeSplit } from '../tokenizer/encode.js';
import { evaluateTokenizer, reconstructionGrid, type TokenizerEval } from '../tokenizer/eval.js';
import { VqTokenizer } from '../tokenizer/model.js';
import { saveTokens } from '../tokenizer/tokens-file.js';
import {
  DEFAULT_TOKENIZER_TRAIN,
  TokenizerTrainTask,
  validateTrainOptions,
  type TokenizerTrainOptions,
} from '../tokenizer/train.js';
import {
  FORCE_FLAG, OPTIMIZER_OPTIONS, UsageError, checkConfigFlagsOnResume, givenOptions, onOff, optimizerFlags, presetOf,
  replaceMode, requireString, resolveTrainOptions, type ParsedFlags,
} from './args.js';
import { DATA_LOAD_FLAGS, datasetSpec, loadOptionsFromFlags, tokenizerDataOptions } from './data.js';
import { communicator } from '../parallel/index.js';
import type { Command } from './main.js';
import { formatDuration } from './progress.js';
import { exitOnRepeatedSignal, trainEventRenderer } from './train-render.js';

const MiB = 1024 * 1024;
const log = (s: string): void => { if (communicator().rank === 0) process.stderr.write(s + '\n'); };

/** Data load options: the shared data flags, with a 2-pixel border by default for the 28×28 named datasets. */
function dataOptions(f: ParsedFlags, spec: string, fallbackPad?: number): LoadOptions {
  const o = loadOptionsFromFlags(f, spec);
  if (o.pad === undefined) o.pad = fallbackPad ?? (spec === 'fashion-mnist' || spec === 'mnist' ? 2 : 0);
  return o;
}

async function loadSplit(spec: string, split: Split, o: LoadOptions): Promise<Dataset> {
  const t0 = performance.now();
  const ds = await loadDataset(spec, split, o);
  log(`loaded ${ds.name} ${split}: ${ds.count} images ${ds.channels}×${ds.height}×${ds.width} in ` +
    `${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (ds.height !== ds.width) throw new CtfError(`tokenizer: images of ${ds.name} are ${ds.height}×${ds.width}; the ` +
    `tokenizer needs square images (use --resize or --pad)`);
  return ds;
}

function metricsLine(m: Record<string, number>): string {
  const parts: string[] = [];
  if (m['psnr'] !== undefined) parts.push(`psnr ${m['psnr'].toFixed(2)} dB`);
  if (m['usage'] !== undefined) parts.push(`usage ${(100 * m['usage']).toFixed(1)}%`);
  if (m['perplexity'] !== undefined) parts.push(`ppl ${m['perplexity'].toFixed(0)}`);
  if (m['reinit']) parts.push(`reinit ${m['reinit']}`);
  return parts.join('  ');
}

function evalLine(e: TokenizerEval): string {
  const frame =
    e.border > 0 ? ` (inside the ${e.border}-pixel padding; ${e.psnrPadded.toFixed(2)} dB over the padded image)` : '';
  return `PSNR ${e.psnr.toFixed(2)} dB${frame}  MSE ${e.mse.toExponential(3)}  usage ${(100 * e.usage).toFixed(1)}%  ` +
    `perplexity ${e.perplexity.toFixed(0)}  ` +
    `(${e.images} images, ${e.imagesPerSec.toFixed(0)} img/s)`;
}

/** Training options from flags; on --resume, the saved ones (see resolveTrainOptions). */
function trainOptions(f: ParsedFlags, saved: LoadedTrainState | null): TokenizerTrainOptions {
  const given = givenOptions<TokenizerTrainOptions>(f, [...OPTIMIZER_OPTIONS, ['deadCodeWindow', 'deadCodeWindow']]);
  const reinit = onOff(f, 'deadCodeReinit'), flip = onOff(f, 'flip');
  if (reinit !== undefined) given.deadCodeReinit = reinit;
  if (flip !== undefined) given.flip = flip;
  return resolveTrainOptions(
    given,
    (saved?.options as TokenizerTrainOptions | undefined) ?? null,
    DEFAULT_TOKENIZER_TRAIN,
    validateTrainOptions,
  );
}

const trainCommand: Command = {
  spec: {
    name: 'tokenizer train',
    brief: 'train the VQ tokenizer',
    summary:
      'Trains the VQ tokenizer. Checkpoints (atomic) go to --out (the tokenizer) and beside it ' +
      '*.train-state.safetensors\n' +
      '(weights, AdamW state, step, RNG, data position) for --resume; Ctrl-C saves and exits. Ends with a test-split ' +
      'evaluation.',
    usage: 'ctfgen tokenizer train --out runs/NAME/tokenizer.safetensors [options]',
    flags: {
      data: { type: 'string', default: 'fashion-mnist', help: 'dataset: fashion-mnist, mnist or folder:PATH' },
      out: { type: 'string', help: 'tokenizer checkpoint to write (required)' },
      preset: {
        type: 'string',
        choices: Object.keys(TOKENIZER_PRESETS),
        help: `size preset: ${Object.keys(TOKENIZER_PRESETS).join(', ')} (default ${DEFAULT_TOKENIZER_PRESET})`,
      },
      codebook: { type: 'int', min: 2, help: 'codebook size V (default 4096)' },
      ...optimizerFlags(DEFAULT_TOKENIZER_TRAIN, {
        batchOf: 'images',
        passesOver: 'the training split',
        seedHelp: 'the initialisation, data order, flips and dead-code draws',
      }),
      flip: {
        type: 'string',
        help: 'random horizontal flips: on|off (default on; never for datasets where a flip changes the class)',
      },
      deadCodeReinit: { type: 'string', help: 'dead-code re-initialisation: on|off (default on)' },
      deadCodeWindow: {
        type: 'int',
        min: 1,
        help: `steps without a pick after which a codeword is re-initialised (default ` +
          `${DEFAULT_TOKENIZER_TRAIN.deadCodeWindow})`,
      },
      checkpointEvery: { type: 'int', default: 500, min: 0, help: 'steps between checkpoints, 0 = only at the end' },
      progressEvery: { type: 'int', default: 10, min: 1, help: 'steps between progress updates' },
      resume: { type: 'boolean', help: 'continue the run saved beside --out exactly where it stopped' },
      ...FORCE_FLAG,
      dryRun: { type: 'boolean', help: 'print the parameter count, memory estimate and schedule, then exit' },
      limit: { type: 'int', min: 1, help: 'train on the first N images only (quick runs)' },
      evalLimit: {
        type: 'int',
        min: 0,
        help: 'images of the test split for the final evaluation (default all; 0 = skip)',
      },
      json: { type: 'boolean', help: 'print the final evaluation as JSON on stdout' },
      ...DATA_LOAD_FLAGS,
    },
  },
  async run(f) {
    const { force, resume } = replaceMode(f);
    const out = requireString(f, 'out');
    const runJson = join(dirname(out), 'run.json');
    const spec = datasetSpec(String(f['data']));
    const fresh = resume ? null : trainOptions(f, null); // flag values before the disk: a bad one is a usage error
    const r = await trainRun(
      {
        out,
        task: 'tokenizer',
        resume,
        force,
        dryRun: f['dryRun'] === true,
        inputs: [],
        outputs: [{ role: 'the run record beside --out', path: runJson }],
        report: runJson,
        checkpointEvery: f['checkpointEvery'] as number,
        progressEvery: f['progressEvery'] as number,
        onRepeatedSignal: exitOnRepeatedSignal,
        comm: communicator(),
        emit: trainEventRenderer({ label: 'tokenizer', unit: 'img', formatMetrics: metricsLine }),
      },
      (ctx) => tokenizerSetup(f, fresh, spec, out, ctx),
    );
    if (communicator().rank !== 0) return; // rank 0 alone prints and writes
    if (r.dryRun) printDryRun(f, r.task);
    else if (f['json']) process.stdout.write(JSON.stringify((r.report as { eval: unknown }).eval, null, 2) + '\n');
  },
};

async function tokenizerSetup(
  f: ParsedFlags, fresh: TokenizerTrainOptions | null, spec: string, out: string, { saved, save }: TrainRunContext,
): Promise<TrainRunSetup<TokenizerTrainTask>> {
  if (saved) {
    const c = saved.config as TokenizerConfig;
    checkConfigFlagsOnResume(saved.source, [
      { flag: 'preset', given: f['preset'], saved: presetOf(TOKENIZER_PRESETS, c) ?? 'none' },
      { flag: 'codebook', given: f['codebook'], saved: c.codebookSize },
    ]);
  }
  const options = fresh ?? trainOptions(f, saved);
  const savedData = (saved?.extra as { data?: DataIdentity } | undefined)?.data;
  const all = await loadSplit(spec, 'train', dataOptions(f, spec, savedData?.preprocessing.pad));
  const ds = firstImages(all, f['limit'] as number | undefined);
  const identity = dataIdentity(ds);
  let config: TokenizerConfig;
  if (saved) config = saved.config as TokenizerConfig;
  else {
    const overrides = f['codebook'] !== undefined ? { codebookSize: f['codebook'] as number } : {};
    const preset = String(f['preset'] ?? DEFAULT_TOKENIZER_PRESET);
    config = tokenizerConfig(preset, { inChannels: ds.channels, imageSize: ds.height }, overrides);
  }
  const model = new VqTokenizer(config, new Rng(options.seed).split('init'));
  const task = new TokenizerTrainTask(model, ds, options, (_t, step) => save(step), communicator());
  return {
    task, extra: { data: identity }, checks: [dataCheck(identity)],
    saveModel: (path, step) =>
      saveTokenizer(path, model, { data: identity, training: { step, epochs: step / task.stepsPerEpoch, options } }),
    async finish({ step }) {
      const limit = f['evalLimit'] as number | undefined;
      let evaluation: TokenizerEval | null = null;
      if (limit !== 0 && communicator().rank === 0) {  // on rank 0 alone (not sharded): the others are done
        const test = await loadSplit(spec, 'test', dataOptions(f, spec, identity.preprocessing.pad));
        evaluation = evaluateTokenizer(model, test, { limit });
        log(`tokenizer test: ${evalLine(evaluation)}`);
        const training = { step, epochs: options.epochs, options };
        await saveTokenizer(out, model, { data: identity, training, eval: evaluation });
      }
      return {
        kind: 'ctfgen.run', stage: 'tokenizer', command: ['ctfgen', ...process.argv.slice(2)].join(' '), tokenizer: out,
        config, options, data: identity, steps: step, eval: evaluation,
      };
    },
  };
}

/** --dry-run: the parameter count, the memory estimate and the schedule. */
function printDryRun(f: ParsedFlags, task: TokenizerTrainTask): void {
  const { model, options, data: ds } = task, config = model.config;
  const side = config.imageSize;
  const x = new Tensor(new Float32Array(config.inChannels * side ** 2), [1, config.inChannels, side, side]);
  const mem = trainingMemory(model.parameters(), graphBytes(model.forward(x).loss), options.batchSize);
  const dataBytes = ds.images.byteLength;
  const report = {
    config, options, grid: model.grid, parameters: mem.parameters, stepsPerEpoch: task.stepsPerEpoch,
    totalSteps: task.totalSteps,
    memoryMiB: {
      weightsGradsAdam: mem.weightBytes / MiB, activations: mem.activationBytes / MiB, dataset: dataBytes / MiB,
      total: (mem.totalBytes + dataBytes) / MiB,
    },
  };
  const m = report.memoryMiB;
  if (f['json']) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else process.stdout.write(
    `tokenizer ${JSON.stringify(config)}\n` +
    `${model.grid}×${model.grid} tokens, ${mem.parameters.toLocaleString('en')} parameters\n` +
    `${task.stepsPerEpoch} steps/epoch × ${options.epochs} epochs = ${task.totalSteps} steps of ${options.batchSize} ` +
    'images\n' +
    `memory ≈ ${m.total.toFixed(0)} MiB: weights+grads+AdamW ${m.weightsGradsAdam.toFixed(1)}, ` +
    `activations ${m.activations.toFixed(0)} (+ as much again for their gradients), dataset ${m.dataset.toFixed(0)}\n`);
}

const evalCommand: Command = {
  spec: {
    name: 'tokenizer eval',
    brief: 'test PSNR, codebook usage and perplexity of a tokenizer',
    summary:
      'Test-split PSNR, MSE, codebook usage and perplexity of a tokenizer, and optionally a PNG of originals (odd ' +
      'rows)\nabove their reconstructions (even rows).',
    usage: 'ctfgen tokenizer eval --tokenizer CKPT [options]',
    flags: {
      tokenizer: { type: 'string', help: 'tokenizer checkpoint (required)' },
      data: { type: 'string', help: 'dataset (default: the one the tokenizer was trained on)' },
      split: { type: 'string', default: 'test', help: 'train or test' },
      limit: { type: 'int', min: 1, help: 'evaluate the first N images only' },
      grid: { type: 'string', help: 'write originals beside reconstructions to this PNG' },
      gridCount: { type: 'int', default: 32, min: 1, help: 'images in the grid (spread over the split)' },
      scale: { type: 'int', default: 2, min: 1, help: 'enlarge the grid tiles by this integer factor' },
      json: { type: 'boolean', help: 'print the evaluation as JSON on stdout' },
      ...DATA_LOAD_FLAGS,
    },
  },
  async run(f) {
    const path = requireString(f, 'tokenizer');
    if (typeof f['data'] === 'string') datasetSpec(f['data']);
    const split = String(f['split']);
    if (split !== 'train' && split !== 'test') throw new UsageError(`--split: expected train or test, got "${split}"`);
    checkOutputs({
      inputs: [{ role: '--tokenizer', path }],
      outputs: [typeof f['grid'] === 'string' ? { role: '--grid', path: f['grid'] } : null],
    });
    const { model, hash, metadata } = await loadTokenizer(path);
    const { spec, options } = tokenizerDataOptions(
      f,
      metadata['data'] ? (JSON.parse(metadata['data']) as DataIdentity) : null,
    );
    const ds = await loadSplit(spec, split, options);
    const e = evaluateTokenizer(model, ds, { limit: f['limit'] as number | undefined });
    log(
      `tokenizer ${path} (${hash.slice(0, 12)}…, V = ${model.config.codebookSize}) on ${ds.name} ${split}: ` +
      `${evalLine(e)}`,
    );
    if (typeof f['grid'] === 'string') {
      const g = reconstructionGrid(model, ds, f['gridCount'] as number, 8);
      await writeImageGrid(f['grid'], g.images, g.shape, { cols: 8, scale: f['scale'] as number });
      log(`wrote ${f['grid']} (rows of originals above rows of their reconstructions)`);
    }
    if (f['json'])
      process.stdout.write(
        JSON.stringify({ tokenizer: path, hash, config: model.config, data: spec, split, ...e }, null, 2) + '\n',
      );
  },
};

const encodeCommand: Command = {
  spec: {
    name: 'tokenizer encode',
    brief: 'encode a split to token grids (one safetensors file)',
    summary:
      'Encodes a whole split to token grids (and mirrored copies with --flip) with the labels, in one safetensors ' +
      'file\nthat records the tokenizer hash and the dataset identity.',
    usage: 'ctfgen tokenizer encode --tokenizer CKPT --out tokens.safetensors [options]',
    flags: {
      tokenizer: { type: 'string', help: 'tokenizer checkpoint (required)' },
      out: { type: 'string', help: 'token file to write (required)' },
      data: { type: 'string', help: 'dataset (default: the one the tokenizer was trained on)' },
      split: { type: 'string', default: 'train', help: 'train or test' },
      flip: {
        type: 'boolean',
        help: 'also encode every image mirrored left–right (refused where a flip changes the class)',
      },
      limit: { type: 'int', min: 1, help: 'encode the first N images only' },
      batch: { type: 'int', default: 256, min: 1, help: 'images per encoder call' },
      json: { type: 'boolean', help: 'print a summary as JSON on stdout' },
      ...FORCE_FLAG,
      ...DATA_LOAD_FLAGS,
    },
  },
  async run(f) {
    const path = requireString(f, 'tokenizer'),
      out = requireString(f, 'out');
    if (typeof f['data'] === 'string') datasetSpec(f['data']);
    const split = String(f['split']);
    if (split !== 'train' && split !== 'test') throw new UsageError(`--split: expected train or test, got "${split}"`);
    checkOutputs({
      inputs: [{ role: '--tokenizer', path }],
      outputs: [{ role: '--out', path: out, artifact: true }],
      force: f['force'] === true,
    });
    const { model, hash, metadata } = await loadTokenizer(path);
    const { spec, options } = tokenizerDataOptions(
      f,
      metadata['data'] ? (JSON.parse(metadata['data']) as DataIdentity) : null,
    );
    const ds = firstImages(await loadSplit(spec, split, options), f['limit'] as number | undefined);
    if (f['flip'] && !ds.flipPreservesClass)
      throw new UsageError(`--flip: a mirrored image of ${ds.name} is not of the same class`);
    let last = 0;
    const r = encodeSplit(model, ds, {
      flip: f['flip'] === true,
      batchSize: f['batch'] as number,
      onBatch: (done, total) => {
        const now = performance.now();
        if (now - last > 5000) {
          last = now;
          log(`encoding ${done}/${total}`);
        }
      },
    });
    const data = dataIdentity(ds);
    await mkdir(dirname(out), { recursive: true });
    await saveTokens(out, {
      tokens: r.tokens,
      labels: r.labels,
      flipped: r.flipped,
      tokenizerHash: hash,
      tokenizerConfig: model.config,
      data,
    });
    log(
      `encoded ${r.tokens.dim(0)} images of ${ds.name} ${split}${f['flip'] ? ' (+ mirrored copies)' : ''} to ` +
      `${model.grid}×${model.grid} tokens ` +
        `in ${formatDuration(r.seconds)}: ${r.imagesPerSec.toFixed(0)} img/s → ${out}`,
    );
    if (f['json'])
      process.stdout.write(
        JSON.stringify(
          {
            out,
            tokenizer: path,
            hash,
            images: r.tokens.dim(0),
            grid: model.grid,
            seconds: r.seconds,
            imagesPerSec: r.imagesPerSec,
            data,
          },
          null,
          2,
        ) + '\n',
      );
  },
};

const benchCommand: Command = {
  spec: {
    name: 'tokenizer bench',
    brief: 'tokenizer throughput, ours against PyTorch on the same weights',
    summary:
      'Encoding and training-step throughput (images/s) of our tokenizer beside an equivalent PyTorch model on the ' +
      'same\n' +
      'weights and images, in alternating rounds; also reports how often both pick the same tokens.',
    usage: 'ctfgen tokenizer bench [--tokenizer CKPT | --preset P --codebook V] [options]',
    flags: {
      tokenizer: { type: 'string', help: 'tokenizer checkpoint (default: a freshly initialised --preset)' },
      preset: {
        type: 'string',
        default: DEFAULT_TOKENIZER_PRESET,
        choices: Object.keys(TOKENIZER_PRESETS),
        help: 'size preset when no --tokenizer is given',
      },
      codebook: { type: 'int', default: 4096, min: 2, help: 'codebook size when no --tokenizer is given' },
      data: { type: 'string', default: 'fashion-mnist', help: 'images to encode (first ones of the test split)' },
      encodeBatch: { type: 'int', default: 256, min: 1, help: 'images per encoder call' },
      trainBatch: { type: 'int', default: 64, min: 1, help: 'images per training step' },
      rounds: { type: 'int', default: 3, min: 1, help: 'alternating rounds' },
      reps: { type: 'int', default: 5, min: 1, help: 'timed calls per round and side' },
      torchThreads: { type: 'string', default: '1,2', help: 'torch thread counts to run, comma-separated' },
      python: { type: 'string', default: '/usr/bin/python3', help: 'Python with torch' },
      json: { type: 'string', help: 'also write the report as JSON to this file' },
      ...DATA_LOAD_FLAGS,
    },
  },
  async run(f) {
    const spec = datasetSpec(String(f['data']));
    checkOutputs({
      inputs: [typeof f['tokenizer'] === 'string' ? { role: '--tokenizer', path: f['tokenizer'] } : null],
      outputs: [typeof f['json'] === 'string' ? { role: '--json', path: f['json'] } : null],
    });
    const ds = await loadSplit(spec, 'test', dataOptions(f, spec));
    const model =
      typeof f['tokenizer'] === 'string'
        ? (await loadTokenizer(f['tokenizer'])).model
        : new VqTokenizer(
            tokenizerConfig(
              String(f['preset']),
              { inChannels: ds.channels, imageSize: ds.height },
              { codebookSize: f['codebook'] as number },
            ),
            new Rng(0),
          );
    const n = Math.max(f['encodeBatch'] as number, f['trainBatch'] as number);
    if (ds.count < n)
      throw new CtfError(`tokenizer bench: ${ds.name} test has ${ds.count} images, the batches need ${n}`);
    const images = toModelInput(
      ds,
      Int32Array.from({ length: n }, (_, i) => i),
    ).x;
    const threads = String(f['torchThreads']).split(',').filter(Boolean).map(Number);
    if (threads.some((t) => !Number.isInteger(t) || t < 1))
      throw new UsageError(`--torch-threads: expected positive integers, got "${String(f['torchThreads'])}"`);
    const r = benchTokenizer(
      model,
      images,
      {
        encodeBatch: f['encodeBatch'] as number,
        trainBatch: f['trainBatch'] as number,
        rounds: f['rounds'] as number,
        reps: f['reps'] as number,
        torchThreads: threads,
        python: String(f['python']),
      },
      log,
    );
    const rows = [
      `side                     encode img/s   train img/s   (encode batch ${r.encodeBatch}, train batch ` +
      `${r.trainBatch}, ${r.parameters.toLocaleString('en')} parameters, V = ${r.config.codebookSize})`,
      `ours (OpenBLAS ${r.ours.blasThreads} thr)   ${r.ours.encodeImgPerSec.toFixed(0).padStart(12)} ` +
      `${r.ours.trainImgPerSec.toFixed(0).padStart(13)}`,
    ];
    for (const [t, s] of Object.entries(r.torch))
      rows.push(
        `torch ${s.version.padEnd(10)} ${t} thr  ${s.encodeImgPerSec.toFixed(0).padStart(10)} ` +
        `${s.trainImgPerSec.toFixed(0).padStart(13)}`,
      );
    rows.push(
      `same weights: ${(100 * r.check.tokenAgreement).toFixed(2)}% of the tokens of ${r.check.images} images agree, ` +
      `reconstructions differ by at most ${r.check.reconMaxAbsDiff.toExponential(2)}`,
    );
    process.stdout.write(rows.join('\n') + '\n');
    if (typeof f['json'] === 'string') await writeFileAtomic(f['json'], JSON.stringify(r, null, 2) + '\n');
  },
};

export const tokenizerCommands: Command[] = [trainCommand, evalCommand, encodeCommand, benchCommand];
