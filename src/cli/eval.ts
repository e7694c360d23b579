// `ctfgen eval` (sample quality of a run), `ctfgen eval real` (the "real data" row) and `ctfgen eval recon`
// (rFID of the tokenizer); `ctfgen eval ceiling` lives in eval-ceiling.ts. Flags → requests, progress → stderr, report
// JSON / PNG / .npz out. The numerics live in src/eval (evaluate.ts, features.ts, metrics.ts, reference.ts).
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CtfError } from '../errors.js';
import { loadClassifier } from '../eval/classifier.js';
import {
  gridSelection, realDataRow, realReference, reconstructSplit, sampleForEval, scoreImages, toNhwc, type EvalSamples,
} from '../eval/evaluate.js';
import { pixelFeatures } from '../eval/features.js';
import { classifierData } from '../eval/reference.js';
import { writeFileAtomic } from '../io/atomic.js';
import { writeNpz } from '../io/npz.js';
import { checkOutputs } from '../io/outputs.js';
import { writeImageGrid } from '../io/png.js';
import { communicator } from '../parallel/index.js';
import { RUN_LAYOUT, SAMPLER_METHODS, loadSampler, resolveSamplerPaths } from '../sample/run-dir.js';
import type { SamplerMethod, SamplerPieces } from '../sample/run-dir.js';
import { loadTokenizer } from '../tokenizer/checkpoint.js';
import type { DataIdentity } from '../tokenizer/data-identity.js';
import { UsageError, onOff, requireString } from './args.js';
import { ceilingCommand } from './eval-ceiling.js';
import { classifierCommands } from './eval-classifier.js';
import { checkReportOut, classifierSummary, command, log, metricsLine, reference, writeReport } from './eval-common.js';
import type { Command } from './main.js';
import { pieceFlags, pieceInputs, reportRole } from './piece-flags.js';
import { Progress, formatDuration } from './progress.js';
import { samplingFlags, samplingOptions } from './sampling-flags.js';

const evalCommand: Command = {
  spec: {
    name: 'eval',
    brief: 'sample quality of CTF and/or the baseline: FID, IS, precision/recall, class accuracy',
    summary:
      'Sample quality of a run: samples --n images (an equal number per class) with CTF and/or the baseline, times ' +
      'the sampling,\n' +
      'scores the images with the evaluation classifier against the real test split: FID, IS (mean ± std over 10 ' +
      'splits), precision /\n' +
      'recall (k-NN manifolds, k = 3) and class accuracy. Writes the report JSON (every knob, the metrics, timing, ' +
      'paths), a PNG grid\n' +
      '(one row per class) and an .npz of every sample (arr_0: uint8 NHWC; labels: int32) per method.',
    usage:
      'ctfgen eval (--run DIR | --tokenizer F [--clusters F --stage1 F --aux F] [--baseline F]) --classifier F ' +
      '[--method ctf|baseline|both] --out REPORT.json [options]',
    flags: {
      ...pieceFlags(),
      classifier: { type: 'string', help: 'evaluation classifier (ctfgen eval classifier train; required)' },
      method: { type: 'string', default: 'ctf', help: 'ctf, baseline or both' },
      n: { type: 'int', default: 10000, min: 1, help: 'images per method, a multiple of the class count' },
      ...samplingFlags(undefined, {
        batch: 'images per sampling batch (the timing is at this batch; never changes an image)',
      }),
      k: { type: 'int', default: 3, min: 1, help: 'neighbours of the precision/recall manifolds' },
      out: { type: 'string', help: 'report JSON (default with --run: DIR/eval-<method>.json)' },
      gridPerClass: {
        type: 'int',
        default: 8,
        min: 1,
        help: 'images per class (row) in the PNG grid <out>-<method>.png',
      },
      scale: { type: 'int', default: 2, min: 1, help: 'enlarge the grid tiles by this integer factor' },
      npzCrop: {
        type: 'string',
        default: 'on',
        help: 'on: the .npz holds the images without the dataset padding (28×28 for Fashion-MNIST); off: as decoded ' +
          '(32×32)',
      },
      json: { type: 'boolean', help: 'print the report as JSON on stdout' },
    },
  },
  async run(f) {
    const which = String(f['method']);
    if (which !== 'both' && !SAMPLER_METHODS.includes(which as SamplerMethod))
      throw new UsageError(`--method: expected ctf, baseline or both, got "${which}"`);
    const methods: SamplerMethod[] = which === 'both' ? ['baseline', 'ctf'] : [which as SamplerMethod];
    const run = typeof f['run'] === 'string' ? f['run'] : undefined;
    const explicit = Object.fromEntries(
      Object.keys(RUN_LAYOUT)
        .filter((k) => typeof f[k] === 'string')
        .map((k) => [k, f[k] as string]),
    );
    const { paths, missing } = resolveSamplerPaths(methods, run, explicit);
    if (missing.length)
      throw new UsageError(
        `${missing.map((m) => `--${m}`).join(', ')} ${missing.length > 1 ? 'are' : 'is'} required for --method ` +
        `${which} (or --run DIR)`,
      );
    const classifierPath = requireString(f, 'classifier');
    const out =
      typeof f['out'] === 'string' ? f['out'] : run !== undefined ? join(run, `eval-${which}.json`) : undefined;
    if (out === undefined) throw new UsageError('--out is required (or --run DIR)');
    const base = out.replace(/\.json$/, '');
    const outRole = reportRole(f);
    checkOutputs({
      inputs: pieceInputs(f, { ...paths, classifier: classifierPath }),
      outputs: [
        { role: outRole, path: out },
        ...methods.flatMap((m) => [
          { role: `the ${m} grid of ${outRole}`, path: `${base}-${m}.png` },
          { role: `the ${m} samples of ${outRole}`, path: `${base}-${m}.npz` },
        ]),
      ],
    });
    const sampling = samplingOptions(f),
      { stage1, stage2 } = sampling;
    // The report's names for the knobs (older reports use them too).
    const knobs = {
      n: f['n'] as number,
      seed: sampling.seed,
      batch: sampling.batchSize,
      cfg: stage1.cfgScale,
      t1: stage1.temperature,
      t2: stage2.temperature,
      topK: stage1.topK,
      topP: stage1.topP,
      mask: stage2.clusterMask,
      cfg2: stage2.cfgScale,
      rounds: stage2.rounds,
      k: f['k'] as number,
    };
    const crop = onOff(f, 'npzCrop') ?? true;

    const classifier = await loadClassifier(classifierPath);
    const pieces: SamplerPieces = await loadSampler(methods, paths);
    if (knobs.n % pieces.numClasses !== 0)
      throw new UsageError(
        `--n ${knobs.n} is not a multiple of the ${pieces.numClasses} classes; every class gets the same number of ` +
        `images`,
      );
    const { identity: classifierTrainData, load } = classifierData(classifier);
    const tokData = pieces.tokenizer.metadata['data']
      ? (JSON.parse(pieces.tokenizer.metadata['data']) as DataIdentity)
      : null;
    if (
      tokData &&
      (tokData.name !== classifierTrainData.name || tokData.preprocessing.pad !== classifierTrainData.preprocessing.pad)
    )
      throw new CtfError(
        `${paths.tokenizer} was trained on ${tokData.name} (padding ${tokData.preprocessing.pad}), the classifier ` +
        `${classifierPath} on ` +
          `${classifierTrainData.name} (padding ${classifierTrainData.preprocessing.pad}) — evaluate with a ` +
          `classifier of the same data`,
      );
    // Under mpirun every rank samples and scores its share of the images; rank 0 alone scores and writes.
    const comm = communicator();
    const ref = comm.rank === 0 ? await reference(classifier, 'test') : null;
    const real = ref && realReference(ref.features);
    const border = crop ? (load.pad ?? 0) : 0;

    const results: Record<string, unknown> = {};
    for (const method of methods) {
      const progress = comm.rank === 0 ? new Progress({ label: method, total: knobs.n, unit: 'img' }) : null;
      const s: EvalSamples | null = sampleForEval(
        pieces,
        classifier.model,
        {
          method,
          n: knobs.n,
          seed: sampling.seed,
          batchSize: sampling.batchSize,
          ...stage1,
          stage2,
        },
        (done) => progress?.update(Math.floor(done)),
        comm,
      );
      progress?.finish();
      if (s === null || ref === null || real === null) continue; // not rank 0: its share went to rank 0
      const t0 = performance.now();
      const metrics = scoreImages(s.features, s.classes, real, { k: knobs.k });
      const metricSeconds = (performance.now() - t0) / 1000;
      log(`${method}: ${metricsLine(metrics)}`);
      log(
        `${method}: sampled ${s.classes.length} images in ${formatDuration(s.seconds.total)} = ` +
        `${s.imagesPerSec.toFixed(1)} img/s at batch ${knobs.batch}` +
          (method === 'ctf'
            ? ` (stage 1 ${s.seconds.stage1.toFixed(1)} s, stage 2 ${s.seconds.stage2.toFixed(1)} s`
            : ` (generate ${s.seconds.stage1.toFixed(1)} s`) +
          `, decode ${s.seconds.decode.toFixed(1)} s); scoring ${s.seconds.scoring.toFixed(1)} s, metrics ` +
          `${metricSeconds.toFixed(1)} s`,
      );

      const grid = `${base}-${method}.png`,
        npz = `${base}-${method}.npz`;
      await mkdir(dirname(grid), { recursive: true });
      const order = gridSelection(s, f['gridPerClass'] as number);
      await writeImageGrid(grid, s.pixels, s.shape, {
        order,
        cols: order.length / pieces.numClasses,
        scale: f['scale'] as number,
      });
      const nhwc = toNhwc(s.pixels, s.shape, border);
      await writeNpz(npz, {
        arr_0: { data: nhwc.data, shape: nhwc.shape },
        labels: { data: s.classes, shape: [s.classes.length] },
      });
      log(`${method}: wrote ${grid}, ${npz} (arr_0 uint8 ${nhwc.shape.join('×')} NHWC)`);
      const parameters =
        method === 'ctf'
          ? { stage1: pieces.stage1!.model.numParameters(), aux: pieces.aux!.model.numParameters() }
          : { baseline: pieces.baseline!.model.numParameters() };
      results[method] = {
        metrics,
        timing: {
          images: s.classes.length,
          batch: knobs.batch,
          ranks: comm.size,
          seconds: s.seconds,
          imagesPerSec: s.imagesPerSec,
          metricSeconds,
        },
        parameters: { ...parameters, total: Object.values(parameters).reduce((a, b) => a + b, 0) },
        insideCluster: s.insideCluster,
        grid: { path: grid, perClass: order.length / pieces.numClasses, rows: 'one per class, in class order' },
        npz: {
          path: npz,
          arrays: {
            arr_0: { dtype: 'uint8', layout: 'NHWC', shape: nhwc.shape },
            labels: { dtype: 'int32', shape: [s.classes.length] },
          },
          pixels:
            border > 0
              ? `the ${nhwc.shape[1]}×${nhwc.shape[2]} dataset frame: the ${border}-pixel padding cut from the ` +
                `${s.shape[2]}×${s.shape[3]} decoded image`
              : `the ${s.shape[2]}×${s.shape[3]} decoded image`,
          order: `class-major: image i was asked for class floor(i / ${s.perClass})`,
        },
      };
    }
    if (ref === null) return;
    const report = {
      kind: 'ctfgen.eval-report',
      version: 1,
      date: new Date().toISOString(),
      command: command(),
      run: run ?? null,
      methods,
      knobs: {
        ...knobs,
        perClass: knobs.n / pieces.numClasses,
        numClasses: pieces.numClasses,
        classOrder: 'class-major',
      },
      paths: { ...paths, classifier: classifierPath },
      hashes: { tokenizer: pieces.tokenizer.hash, classifier: classifier.hash },
      classifier: classifierSummary(classifier),
      reference: {
        split: 'test',
        images: ref.features.n,
        dataset: ref.data.name,
        sha256: ref.data.sha256,
        cache: ref.cache,
        manifold: 'the same test images',
      },
      results,
    };
    await mkdir(dirname(out), { recursive: true });
    await writeFileAtomic(out, JSON.stringify(report, null, 2) + '\n');
    log(`wrote ${out}`);
    if (f['json']) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  },
};

const realCommand: Command = {
  spec: {
    name: 'eval real',
    brief: 'the real-data row: the test split scored against the training split',
    summary:
      'The "real data" row: the test split scored like samples against the training split — FID against the ' +
      'training\n' +
      "split's statistics, IS of the test images, precision/recall against a seeded subset of the training split as " +
      "large as the\n" +
      "test split, class accuracy = the classifier's test accuracy.",
    usage: 'ctfgen eval real --classifier F [--out REPORT.json] [--json]',
    flags: {
      classifier: { type: 'string', help: 'evaluation classifier (required)' },
      k: { type: 'int', default: 3, min: 1, help: 'neighbours of the precision/recall manifolds' },
      seed: { type: 'int', default: 0, min: 0, help: 'seed of the training-split subset for precision/recall' },
      out: { type: 'string', help: 'also write the report as JSON to this file' },
      json: { type: 'boolean', help: 'print the report as JSON on stdout' },
    },
  },
  async run(f) {
    const classifierPath = requireString(f, 'classifier');
    checkReportOut(f, [{ role: '--classifier', path: classifierPath }]);
    const c = await loadClassifier(classifierPath);
    const test = await reference(c, 'test'),
      train = await reference(c, 'train');
    const metrics = realDataRow(test.features, test.labels, train.features, {
      k: f['k'] as number,
      seed: f['seed'] as number,
    });
    log(`real (test vs train): ${metricsLine(metrics)}`);
    const report = {
      kind: 'ctfgen.eval-real',
      version: 1,
      date: new Date().toISOString(),
      command: command(),
      classifier: classifierSummary(c),
      images: { split: 'test', count: test.features.n, sha256: test.data.sha256 },
      reference: {
        split: 'train',
        count: train.features.n,
        sha256: train.data.sha256,
        manifold: `${metrics.manifoldImages} training images drawn with seed ${f['seed']}`,
      },
      knobs: { k: f['k'] },
      metrics,
    };
    await writeReport(f, report);
  },
};

const reconCommand: Command = {
  spec: {
    name: 'eval recon',
    brief: "rFID: the tokenizer's reconstructions of the test split",
    summary:
      'rFID of a tokenizer: its reconstructions (encode → decode, as u8) of the test split scored against the test ' +
      'split itself\n' +
      '(FID = rFID, IS, precision/recall, class accuracy against the true labels).',
    usage: 'ctfgen eval recon --tokenizer F --classifier F [--limit N] [--out REPORT.json] [--json]',
    flags: {
      tokenizer: { type: 'string', help: 'tokenizer checkpoint (required)' },
      classifier: { type: 'string', help: 'evaluation classifier (required)' },
      limit: {
        type: 'int',
        min: 4,
        help: 'reconstruct the first N test images only (the reference stays the whole split)',
      },
      batch: { type: 'int', default: 250, min: 1, help: 'images per tokenizer call' },
      k: { type: 'int', default: 3, min: 1, help: 'neighbours of the precision/recall manifolds' },
      out: { type: 'string', help: 'also write the report as JSON to this file' },
      json: { type: 'boolean', help: 'print the report as JSON on stdout' },
    },
  },
  async run(f) {
    const tokPath = requireString(f, 'tokenizer'),
      classifierPath = requireString(f, 'classifier');
    checkReportOut(f, [
      { role: '--tokenizer', path: tokPath },
      { role: '--classifier', path: classifierPath },
    ]);
    const c = await loadClassifier(classifierPath);
    const tok = await loadTokenizer(tokPath);
    const ref = await reference(c, 'test'),
      ds = ref.dataset;
    const n = Math.min(ds.count, (f['limit'] as number | undefined) ?? ds.count);
    const progress = new Progress({ label: 'reconstructing', total: n, unit: 'img' });
    const t0 = performance.now();
    const pixels = reconstructSplit(tok.model, ds, {
      limit: n,
      batchSize: f['batch'] as number,
      onBatch: (d) => progress.update(d),
    });
    progress.finish();
    const seconds = (performance.now() - t0) / 1000;
    const { inChannels: C, imageSize: S } = tok.model.config;
    const recon = pixelFeatures(c.model, pixels, [n, C, S, S]);
    const metrics = scoreImages(recon, ds.labels.subarray(0, n), realReference(ref.features), { k: f['k'] as number });
    log(`tokenizer ${tokPath} reconstructions: r${metricsLine(metrics)}`);
    const report = {
      kind: 'ctfgen.eval-recon',
      version: 1,
      date: new Date().toISOString(),
      command: command(),
      classifier: classifierSummary(c),
      tokenizer: { path: tokPath, hash: tok.hash, config: tok.model.config },
      images: { split: 'test', count: n },
      reference: { split: 'test', count: ref.features.n, sha256: ref.data.sha256 },
      knobs: { k: f['k'] },
      metrics: { rfid: metrics.fid, ...metrics },
      seconds,
      imagesPerSec: n / seconds,
    };
    await writeReport(f, report);
  },
};

export const evalCommands: Command[] = [evalCommand, realCommand, reconCommand, ceilingCommand, ...classifierCommands];
