// `ctfgen eval ceiling`: the stage-2 ceiling of a CTF run, row by row (src/eval/ceiling.ts says what each row is).
// Flags → options, rows → stderr as they finish, report JSON and one picture (a row of images per ceiling row).
import { join } from 'node:path';
import { loadClassifier } from '../eval/classifier.js';
import { CEILING_ROWS, stage2Ceiling } from '../eval/ceiling.js';
import type { NllSplit } from '../eval/nll-split.js';
import { realReference } from '../eval/evaluate.js';
import { checkOutputs } from '../io/outputs.js';
import { runPath } from '../io/run-dir.js';
import { writeImageGrid } from '../io/png.js';
import { loadPieces, type PieceName, type SamplerPaths } from '../sample/run-dir.js';
import { UsageError, requireString } from './args.js';
import { classifierSummary, command, log, metricsLine, reference, writeReport } from './eval-common.js';
import type { Command } from './main.js';
import { pieceFlags, pieceInputs, reportRole } from './piece-flags.js';
import { samplingFlags, samplingOptions } from './sampling-flags.js';

export const ceilingCommand: Command = {
  spec: {
    name: 'eval ceiling',
    brief: 'what stage 2 costs: cluster swaps, the aux on true and on baseline coarse labels',
    summary:
      "How much sample quality stage 2 costs, as rows scored like samples: the test split's tokens decoded (recon); " +
      "every test\n" +
      "token swapped for a random member of its cluster; the test split's true coarse labels through the aux " +
      "(sampled, greedy);\n" +
      "with --baseline its samples, and the same samples' coarse labels through the aux; with --stage1 CTF's samples.",
    usage:
      'ctfgen eval ceiling (--run DIR | --tokenizer F --clusters F --aux F) [--baseline F] [--stage1 F] --classifier ' +
      'F --out REPORT.json',
    flags: {
      ...pieceFlags({
        baseline: 'baseline checkpoint: adds the baseline and baseline → coarse → aux rows',
        stage1: 'CTF stage 1: stage1 checkpoint: adds the CTF row',
      }),
      classifier: { type: 'string', help: 'evaluation classifier (required)' },
      n: { type: 'int', default: 10000, min: 1, help: 'images per sample row, a multiple of the class count' },
      limit: { type: 'int', min: 10, help: 'test images of the rows on test tokens (default: the whole split)' },
      // The aux rows always sample inside the clusters, without stage-2 guidance, with no top-k / top-p.
      ...samplingFlags(['cfg', 't1', 't2', 'refineRounds', 'seed', 'batch'], {
        t2: 'temperature of the sampled aux rows (the greedy row takes 0)',
        seed: 'root of every random stream',
      }),
      out: {
        type: 'string',
        help: 'report JSON (default with --run: DIR/eval-ceiling.json); the picture goes beside it (.png)',
      },
      scale: { type: 'int', default: 2, min: 1, help: "enlarge the picture's tiles by this integer factor" },
      nllLimit: { type: 'int', default: 2000, min: 0, help: 'test sequences of the likelihood split (0 = skip it)' },
      json: { type: 'boolean', help: 'print the report as JSON on stdout' },
    },
  },
  async run(f) {
    const run = typeof f['run'] === 'string' ? f['run'] : undefined;
    const paths: SamplerPaths = {};
    const wanted: PieceName[] = [
      'tokenizer',
      'clusters',
      'aux',
      ...(['baseline', 'stage1'] as const).filter((k) => typeof f[k] === 'string'),
    ];
    for (const name of wanted) {
      const p = typeof f[name] === 'string' ? (f[name] as string) : run !== undefined ? runPath(run, name) : undefined;
      if (p === undefined) throw new UsageError(`--${name} is required (or --run DIR)`);
      paths[name] = p;
    }
    const out =
      typeof f['out'] === 'string' ? f['out'] : run !== undefined ? join(run, 'eval-ceiling.json') : undefined;
    if (out === undefined) throw new UsageError('--out is required (or --run DIR)');
    const sampling = samplingOptions(f),
      t1 = sampling.stage1.temperature,
      t2 = sampling.stage2.temperature;
    const classifierPath = requireString(f, 'classifier');
    const picture = out.replace(/(\.json)?$/, '.png'),
      outRole = reportRole(f);
    checkOutputs({
      inputs: pieceInputs(f, { ...paths, classifier: classifierPath }),
      outputs: [
        { role: outRole, path: out },
        { role: `the picture of ${outRole}`, path: picture },
      ],
    });

    const classifier = await loadClassifier(classifierPath);
    const pieces = await loadPieces(wanted, paths);
    const n = f['n'] as number;
    if (n % pieces.numClasses !== 0)
      throw new UsageError(`--n ${n} is not a multiple of the ${pieces.numClasses} classes`);
    const ref = await reference(classifier, 'test');
    const { rows: rowsOut, nll } = stage2Ceiling(
      {
        tokenizer: pieces.tokenizer.model,
        map: pieces.map!,
        aux: pieces.aux!.model,
        baseline: pieces.baseline?.model,
        stage1: pieces.stage1?.model,
        classifier: classifier.model,
        test: ref.dataset,
        real: realReference(ref.features),
      },
      {
        n,
        seed: sampling.seed,
        batchSize: sampling.batchSize,
        t2,
        limit: f['limit'] as number | undefined,
        rounds: sampling.stage2.rounds,
        nllLimit: f['nllLimit'] as number,
        stage1: sampling.stage1,
      },
      (r) =>
        log(
          `${r.name.padEnd(22)} ${metricsLine(r.metrics)}` +
            (r.tokensKept !== null
              ? `  tokens kept ${(100 * r.tokensKept).toFixed(1)}%, clusters ${(100 * r.coarseKept!).toFixed(1)}%`
              : '') +
            `  (${r.seconds.toFixed(1)} s)`,
        ),
    );

    const { inChannels: C, imageSize: S } = pieces.tokenizer.model.config,
      px = C * S * S,
      k = pieces.numClasses;
    const previews = new Uint8Array(rowsOut.length * k * px);
    rowsOut.forEach((r, i) => previews.set(r.preview, i * k * px));
    await writeImageGrid(picture, previews, [rowsOut.length * k, C, S, S], { cols: k, scale: f['scale'] as number });
    const report = {
      kind: 'ctfgen.eval-ceiling',
      version: 1,
      date: new Date().toISOString(),
      command: command(),
      paths: { ...paths, classifier: classifierPath },
      hashes: { tokenizer: pieces.tokenizer.hash, classifier: classifier.hash },
      classifier: classifierSummary(classifier),
      knobs: {
        n,
        limit: f['limit'] ?? null,
        seed: sampling.seed,
        batch: sampling.batchSize,
        cfg: sampling.stage1.cfgScale,
        t1,
        t2,
        clusterMask: true,
        rounds: sampling.stage2.rounds,
      },
      reference: { split: 'test', images: ref.features.n, dataset: ref.data.name, sha256: ref.data.sha256 },
      picture: { path: picture, rows: rowsOut.map((r) => r.name), columns: 'the first image of every class' },
      rowOrder: CEILING_ROWS,
      rows: rowsOut.map(({ preview: _, ...r }) => r),
      nll,
    };
    await writeReport({ ...f, out }, report);
    if (nll) log(nllLine(nll));
    log(`wrote ${out} and ${picture}`);
  },
};

function nllLine(s: NllSplit): string {
  const f = (x: number | undefined): string => (x === undefined ? '–' : x.toFixed(3));
  return `nats per token on ${s.sequences} test sequences: baseline ${f(s.baseline?.total)} = coarse ` +
    `${f(s.baseline?.coarse)} + ` +
    `within ${f(s.baseline?.within)}; CTF ${f(s.ctf?.total)} = stage 1 ${f(s.stage1?.coarse)} + aux within ` +
    `${f(s.aux?.within)} ` +
    `(aux mass outside the cluster ${f(s.aux?.outside)})`;
}
