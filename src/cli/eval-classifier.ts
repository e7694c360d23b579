// `ctfgen eval classifier train | test`: the evaluation classifier. Flags → options, events → stderr,
// results → stdout. The numerics live in src/eval (classifier.ts, classifier-train.ts, features.ts).
import { firstImages, loadDataset, type Split } from '../data/dataset.js';
import { Rng } from '../engine/rng.js';
import { CtfError } from '../errors.js';
import {
  CLASSIFIER_PRESETS,
  Classifier,
  DEFAULT_CLASSIFIER_PRESET,
  classifierConfig,
  loadClassifier,
  saveClassifier,
  type ClassifierConfig,
} from '../eval/classifier.js';
import {
  ClassifierTrainTask, DEFAULT_CLASSIFIER_TRAIN, validateClassifierTrainOptions, type ClassifierTrainOptions,
} from '../eval/classifier-train.js';
import { accuracyAndLoss, datasetFeatures } from '../eval/features.js';
import { loadClassifierSplit, type DataLoad } from '../eval/reference.js';
import { reportPath } from '../io/run-dir.js';
import { dataIdentity, type DataIdentity } from '../tokenizer/data-identity.js';
import type { LoadedTrainState } from '../train/checkpoint.js';
import { dataCheck } from '../train/identity.js';
import { trainRun, type TrainRunContext, type TrainRunSetup } from '../train/run.js';
import {
  FORCE_FLAG, OPTIMIZER_OPTIONS, UsageError, checkConfigFlagsOnResume, givenOptions, onOff, optimizerFlags,
  presetOf, replaceMode, requireString, resolveTrainOptions, type ParsedFlags,
} from './args.js';
import { DATA_LOAD_FLAGS, datasetSpec, loadOptionsFromFlags } from './data.js';
import type { Command } from './main.js';
import { Progress, formatDuration } from './progress.js';
import { exitOnRepeatedSignal, trainEventRenderer } from './train-render.js';

const log = (s: string): void => { process.stderr.write(s + '\n'); };
const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;

/** Training options from flags; on --resume the saved ones (see resolveTrainOptions). */
function trainOptions(f: ParsedFlags, saved: LoadedTrainState | null): ClassifierTrainOptions {
  const given = givenOptions<ClassifierTrainOptions>(f, [...OPTIMIZER_OPTIONS, ['shift', 'shift']]);
  const flip = onOff(f, 'flip');
  if (flip !== undefined) given.flip = flip;
  return resolveTrainOptions(
    given,
    (saved?.options as ClassifierTrainOptions | undefined) ?? null,
    DEFAULT_CLASSIFIER_TRAIN,
    validateClassifierTrainOptions,
  );
}

const trainCommand: Command = {
  spec: {
    name: 'eval classifier train',
    brief: 'train the evaluation classifier whose features the metrics use',
    summary:
      'Trains the evaluation classifier (a small CNN; its penultimate features and softmax feed FID, IS, ' +
      'precision/recall and\n' +
      'class accuracy) on the training split, as the tokenizer sees it (Fashion-MNIST padded to 32×32). Checkpoints ' +
      '(atomic) go to\n' +
      '--out and beside it *.train-state.safetensors for --resume; Ctrl-C saves and exits. Ends with the test ' +
      'accuracy.',
    usage: 'ctfgen eval classifier train --out runs/NAME/classifier.safetensors [options]',
    flags: {
      out: { type: 'string', help: 'classifier checkpoint to write (required)' },
      data: { type: 'string', default: 'fashion-mnist', help: 'dataset: fashion-mnist, mnist or folder:PATH' },
      preset: {
        type: 'string',
        choices: Object.keys(CLASSIFIER_PRESETS),
        help: `size preset: ${Object.keys(CLASSIFIER_PRESETS).join(', ')} (default ${DEFAULT_CLASSIFIER_PRESET})`,
      },
      ...optimizerFlags(DEFAULT_CLASSIFIER_TRAIN, {
        batchOf: 'images',
        passesOver: 'the training split',
        seedHelp: 'the initialisation, data order, flips, shifts and dropout',
      }),
      flip: {
        type: 'string',
        help: 'random horizontal flips: on|off (default on; never where a flip changes the class)',
      },
      shift: {
        type: 'int',
        min: 0,
        help: `random shifts by up to N pixels (default ${DEFAULT_CLASSIFIER_TRAIN.shift})`,
      },
      checkpointEvery: { type: 'int', default: 500, min: 0, help: 'steps between checkpoints, 0 = only at the end' },
      progressEvery: { type: 'int', default: 20, min: 1, help: 'steps between progress updates' },
      testLimit: {
        type: 'int',
        min: 0,
        help: 'test images scored after every epoch and at the end (default all; 0 = skip)',
      },
      limit: { type: 'int', min: 1, help: 'train on the first N images only (quick runs)' },
      resume: { type: 'boolean', help: 'continue the run saved beside --out exactly where it stopped' },
      ...FORCE_FLAG,
      json: { type: 'boolean', help: 'print the final report as JSON on stdout' },
      ...DATA_LOAD_FLAGS,
    },
  },
  async run(f) {
    const { force, resume } = replaceMode(f);
    const out = requireString(f, 'out');
    const report = reportPath(out);
    const spec = datasetSpec(String(f['data']));
    const fresh = resume ? null : trainOptions(f, null); // flag values before the disk: a bad one is a usage error
    const r = await trainRun(
      {
        out,
        task: 'classifier',
        resume,
        force,
        inputs: [],
        report,
        outputs: [{ role: 'the report of --out', path: report }],
        checkpointEvery: f['checkpointEvery'] as number,
        progressEvery: f['progressEvery'] as number,
        onRepeatedSignal: exitOnRepeatedSignal,
        emit: trainEventRenderer({
          label: 'classifier',
          unit: 'img',
          formatMetrics: (m) =>
            [
              m['trainAcc'] !== undefined ? `train acc ${pct(m['trainAcc'])}` : '',
              m['testAcc'] !== undefined ? `test acc ${pct(m['testAcc'])} (loss ${m['testLoss']!.toFixed(4)})` : '',
            ]
              .filter(Boolean)
              .join('  '),
        }),
      },
      (ctx) => classifierSetup(f, fresh, spec, out, ctx),
    );
    if (f['json']) process.stdout.write(JSON.stringify(r.report, null, 2) + '\n');
  },
};

async function classifierSetup(
  f: ParsedFlags, fresh: ClassifierTrainOptions | null, spec: string, out: string, { saved, save }: TrainRunContext,
): Promise<TrainRunSetup<ClassifierTrainTask>> {
  if (saved)
    checkConfigFlagsOnResume(saved.source, [
      { flag: 'preset', given: f['preset'], saved: presetOf(CLASSIFIER_PRESETS, saved.config as object) ?? 'none' },
    ]);
  const options = fresh ?? trainOptions(f, saved);
  const savedExtra = saved?.extra as { data?: DataIdentity; dataLoad?: DataLoad } | undefined;
  const load: DataLoad = { spec, ...loadOptionsFromFlags(f, spec) };
  load.pad ??= savedExtra?.dataLoad?.pad ?? (spec === 'fashion-mnist' || spec === 'mnist' ? 2 : 0);
  const t0 = performance.now();
  const ds = firstImages(await loadDataset(spec, 'train', load), f['limit'] as number | undefined);
  const identity = dataIdentity(ds);
  let config: ClassifierConfig;
  if (saved) config = saved.config as ClassifierConfig;
  else {
    const preset = String(f['preset'] ?? DEFAULT_CLASSIFIER_PRESET);
    config = classifierConfig(preset, { inChannels: ds.channels, imageSize: ds.height, numClasses: ds.numClasses });
    if (ds.height !== ds.width)
      throw new CtfError(`classifier: images of ${ds.name} are ${ds.height}×${ds.width}; it needs square images ` +
        '(use --resize or --pad)');
  }
  const testLimit = f['testLimit'] as number | undefined;
  const test = testLimit === 0 ? null : await loadDataset(spec, 'test', load);
  log(`loaded ${ds.name}: ${ds.count} train${test ? ` + ${test.count} test` : ''} images ` +
    `${ds.channels}×${ds.height}×${ds.width} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const model = new Classifier(config, new Rng(options.seed).split('init'));
  const meta = { data: identity, data_load: load };
  const scored = test ? { data: test, limit: testLimit } : null;
  const task = new ClassifierTrainTask(model, ds, options, (_t, step) => save(step), scored);
  log(`classifier: ${model.numParameters().toLocaleString('en')} parameters, ${JSON.stringify(config)}`);
  log(`${task.stepsPerEpoch} steps/epoch × ${options.epochs} epochs = ${task.totalSteps} steps of ` +
    `${options.batchSize} images`);
  return {
    task, extra: { data: identity, dataLoad: load }, checks: [dataCheck(identity)],
    saveModel: (path, step) =>
      saveClassifier(path, model, { ...meta, training: { step, epochs: step / task.stepsPerEpoch, options } }),
    async finish({ step, seconds }) {
      let evaluation = null;
      if (test) {
        const tested = firstImages(test, testLimit);
        const r = accuracyAndLoss(datasetFeatures(model, tested), tested.labels);
        evaluation = { split: 'test', images: tested.count, accuracy: r.accuracy, loss: r.loss, perClass: r.perClass };
        log(`classifier test accuracy ${pct(r.accuracy)} (loss ${r.loss.toFixed(4)}, ${tested.count} images); ` +
          `trained in ${formatDuration(seconds)} (this process)`);
      }
      const training = { step, epochs: options.epochs, options };
      await saveClassifier(out, model, { ...meta, training, ...(evaluation ? { eval: evaluation } : {}) });
      return {
        kind: 'ctfgen.classifier-report', out, command: ['ctfgen', ...process.argv.slice(2)].join(' '), config, options,
        parameters: model.numParameters(), steps: step, trainSeconds: seconds, data: identity, eval: evaluation,
      };
    },
  };
}

const testCommand: Command = {
  spec: {
    name: 'eval classifier test',
    brief: 'accuracy of the evaluation classifier on a split',
    summary:
      'Accuracy (overall and per class) and mean cross-entropy of the evaluation classifier on a split of the ' +
      'dataset it was trained on.',
    usage: 'ctfgen eval classifier test --classifier F [--split test] [options]',
    flags: {
      classifier: { type: 'string', help: 'classifier checkpoint (required)' },
      split: { type: 'string', default: 'test', help: 'train or test' },
      limit: { type: 'int', min: 1, help: 'the first N images only' },
      batch: { type: 'int', default: 250, min: 1, help: 'images per forward' },
      json: { type: 'boolean', help: 'print the result as JSON on stdout' },
    },
  },
  async run(f) {
    const c = await loadClassifier(requireString(f, 'classifier'));
    const split = String(f['split']) as Split;
    if (split !== 'train' && split !== 'test') throw new UsageError(`--split: expected train or test, got "${split}"`);
    const ds = firstImages(await loadClassifierSplit(c, split), f['limit'] as number | undefined);
    const progress = new Progress({ label: 'scoring', total: ds.count, unit: 'img' });
    const r = accuracyAndLoss(
      datasetFeatures(c.model, ds, { batchSize: f['batch'] as number, onBatch: (d) => progress.update(d) }),
      ds.labels,
    );
    progress.finish();
    const lines = [
      `classifier ${c.path} (${c.hash.slice(0, 12)}…) on ${ds.name} ${split}, ${ds.count} images: accuracy ` +
      `${pct(r.accuracy)}, loss ${r.loss.toFixed(4)}`,
      ...r.perClass.map((a, k) => `  ${String(k).padStart(2)} ${(ds.classNames[k] ?? '').padEnd(12)} ${pct(a)}`),
    ];
    log(lines.join('\n'));
    if (f['json'])
      process.stdout.write(
        JSON.stringify(
          {
            classifier: c.path,
            hash: c.hash,
            split,
            images: ds.count,
            accuracy: r.accuracy,
            loss: r.loss,
            perClass: r.perClass,
          },
          null,
          2,
        ) + '\n',
      );
  },
};

export const classifierCommands: Command[] = [trainCommand, testCommand];
