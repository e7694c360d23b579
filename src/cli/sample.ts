// `ctfgen sample`: flags → a sampling request on the pieces of a run (src/sample/run-dir.ts), progress on
// stderr, PNGs and token JSON out. The numerics live in src/sample.
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { classNamesOf } from '../data/dataset.js';
import { writeFileAtomic } from '../io/atomic.js';
import { checkOutputs } from '../io/outputs.js';
import { MAX_PIXELS, gridSize, imageGrid, writeImageGrid, writePng } from '../io/png.js';
import { clusterRepresentatives, previewSteps, progressivePreview } from '../sample/images.js';
import { communicator } from '../parallel/index.js';
import { sampleImagesSharded, type SamplingResult } from '../sample/pipeline.js';
import { RUN_LAYOUT, SAMPLER_METHODS, loadSampler, resolveSamplerPaths } from '../sample/run-dir.js';
import type { SamplerMethod, SamplerPieces } from '../sample/run-dir.js';
import { UsageError, type ParsedFlags } from './args.js';
import type { Command } from './main.js';
import { pieceFlags, pieceInputs } from './piece-flags.js';
import { samplingFlags, samplingOptions } from './sampling-flags.js';
import { withRowLabels } from '../viz/row-labels.js';
import { Progress } from './progress.js';

const log = (s: string): void => { process.stderr.write(s + '\n'); };

/** --class / --classes as given: "all", or ids and names (checked once the models and their data are known). */
export function parseClasses(f: ParsedFlags): string[] | 'all' {
  if (f['class'] !== undefined && f['classes'] !== undefined)
    throw new UsageError('give --class or --classes, not both');
  if (f['class'] !== undefined) return [String(f['class']).trim()];
  const s = String(f['classes'] ?? 'all').trim();
  if (s === 'all') return 'all';
  const items = s.split(',').map((x) => x.trim());
  if (items.some((x) => x === ''))
    throw new UsageError(`--classes: expected "all" or comma-separated class ids or names, got "${s}"`);
  return items;
}

/**
 * A class given as an id ("5") or a name ("sandal", "Ankle boot", "t-shirt": case and spacing ignored, a unique
 * part is enough) -> its id, or a UsageError that lists the classes.
 */
export function classId(given: string, names: readonly string[] | null, numClasses: number): number {
  const list = names ? names.map((n, i) => `${i} ${n}`).join(', ') : `ids 0…${numClasses - 1}`;
  if (/^\d+$/.test(given)) {
    const id = Number(given);
    if (id < numClasses) return id;
    throw new UsageError(`class ${given}: the models know classes 0…${numClasses - 1} (${list})`);
  }
  const norm = (x: string): string => x.toLowerCase().replace(/[\s_-]+/g, '');
  const exact = names?.findIndex((n) => norm(n) === norm(given)) ?? -1;
  if (exact >= 0) return exact;
  const matches = (names ?? []).map((n, i) => [n, i] as const).filter(([n]) => norm(n).includes(norm(given)));
  if (matches.length === 1) return matches[0]![1];
  throw new UsageError(`class "${given}": ${matches.length > 1 ? 'ambiguous' : 'unknown'}; the classes are ${list}`);
}

/** JSON with one image per line: {"classes": [...], "coarse": [[...], ...], "fine": [[...], ...]}. */
/** The class names of the data the run's tokenizer was trained on (null when unknown). */
async function runClassNames(p: SamplerPieces): Promise<string[] | null> {
  const data = p.tokenizer.metadata['data'];
  const names = data ? await classNamesOf((JSON.parse(data) as { name: string }).name) : null;
  return names && names.length === p.numClasses ? names : null;
}

export function tokensJson(r: Pick<SamplingResult, 'classes' | 'coarse' | 'fine'>, T: number): string {
  const rows = (x: Int32Array): string => {
    const lines = Array.from(
      { length: x.length / T },
      (_, n) => `    ${JSON.stringify(Array.from(x.subarray(n * T, (n + 1) * T)))}`,
    );
    return `[\n${lines.join(',\n')}\n  ]`;
  };
  const parts = [`  "classes": ${JSON.stringify(Array.from(r.classes))}`];
  if (r.coarse) parts.push(`  "coarse": ${rows(r.coarse)}`);
  parts.push(`  "fine": ${rows(r.fine)}`);
  return `{\n${parts.join(',\n')}\n}\n`;
}

/** Refuses a --scale (or --cols) whose pictures would exceed MAX_PIXELS, before sampling rather than after it. */
function checkPictureSizes(f: ParsedFlags, side: number, N: number, cols: number, T: number): void {
  const scale = f['scale'] as number, previewCols = previewSteps(T).length + 1;  // the previews, then the final image
  const pictures: [string, number, number][] = [['--out grid', N, cols]];
  if (typeof f['each'] === 'string') pictures.push(['--each image', 1, 1]);
  if (typeof f['progressive'] === 'string')
    pictures.push(['--progressive grid', Math.min(N, f['progressiveCount'] as number) * previewCols, previewCols]);
  for (const [what, cells, c] of pictures) {
    const { width, height } = gridSize(cells, side, side, { cols: c, scale });
    if (width * height > MAX_PIXELS)
      throw new UsageError(`--scale ${scale}: the ${what} (${cells} images, ${c} columns) would be ` +
        `${width}×${height} pixels, expected at most ${MAX_PIXELS} — lower --scale or --cols`);
  }
}

export const sampleCommand: Command = {
  spec: {
    name: 'sample',
    brief: 'sample images with CTF or the baseline to a PNG grid',
    summary:
      'Samples images with CTF (stage 1 coarse labels, stage 2 fine labels) or the baseline, decodes them with the ' +
      'tokenizer\n' +
      'and writes a PNG grid. Pieces come from --run DIR (' +
      Object.values(RUN_LAYOUT).join(', ') +
      ')\n' +
      'or explicit paths, and are checked to belong together (tokenizer hash, coarse map, K, V) before sampling.\n' +
      'Every image draws from its own stream named by (seed, class, index), so --batch never changes an image.',
    usage:
      'ctfgen sample (--run DIR | --tokenizer F [--clusters F --stage1 F --aux F | --baseline F]) [--method ' +
      'ctf|baseline] [--class C | --classes all] --out grid.png [options]',
    flags: {
      ...pieceFlags(),
      method: { type: 'string', default: 'ctf', help: 'ctf or baseline' },
      class: { type: 'string', help: 'sample this class only: its id or its name (e.g. 5 or sandal)' },
      classes: { type: 'string', help: 'comma-separated class ids or names, or all (default all)' },
      n: { type: 'int', default: 8, min: 1, help: 'images per class' },
      ...samplingFlags(),
      out: { type: 'string', help: 'PNG grid to write (default with --run: DIR/samples-<method>.png)' },
      cols: {
        type: 'int',
        min: 1,
        help: 'grid columns (default: --n with several classes and --n ≤ 32, else a square)',
      },
      scale: { type: 'int', default: 2, min: 1, help: 'enlarge every tile by this integer factor' },
      each: { type: 'string', help: 'also write every image as DIR/c<class>-<index>.png' },
      tokensOut: {
        type: 'string',
        help: 'write the sampled tokens as JSON {classes, coarse, fine} (baseline: fine only)',
      },
      progressive: {
        type: 'string',
        help: 'CTF: PNG of the stage-1 preview (rows = images; after 1/4, 1/2, 3/4, all coarse labels; final)',
      },
      progressiveCount: { type: 'int', default: 8, min: 1, help: 'images (rows) in the --progressive PNG' },
      json: { type: 'boolean', help: 'print a summary as JSON on stdout' },
    },
  },
  async run(f) {
    const method = String(f['method']) as SamplerMethod;
    if (!SAMPLER_METHODS.includes(method))
      throw new UsageError(`--method: expected ${SAMPLER_METHODS.join(' or ')}, got "${method}"`);
    const run = typeof f['run'] === 'string' ? f['run'] : undefined;
    const explicit = Object.fromEntries(
      Object.keys(RUN_LAYOUT)
        .filter((k) => typeof f[k] === 'string')
        .map((k) => [k, f[k] as string]),
    );
    const { paths, missing } = resolveSamplerPaths([method], run, explicit);
    if (missing.length)
      throw new UsageError(
        `${missing.map((m) => `--${m}`).join(', ')} ${missing.length > 1 ? 'are' : 'is'} required for --method ` +
        `${method} (or --run DIR)`,
      );
    const out =
      typeof f['out'] === 'string' ? f['out'] : run !== undefined ? join(run, `samples-${method}.png`) : undefined;
    if (out === undefined) throw new UsageError('--out is required (or --run DIR)');
    const wanted = parseClasses(f);
    const sampling = samplingOptions(f);
    if (method === 'baseline' && typeof f['progressive'] === 'string')
      throw new UsageError("--progressive shows CTF's stage 1; use --method ctf");
    const given = (key: string): string | undefined => (typeof f[key] === 'string' ? (f[key] as string) : undefined);
    const each = given('each'),
      tokensOut = given('tokensOut'),
      progressivePath = given('progressive');
    checkOutputs({
      inputs: pieceInputs(f, paths),
      outputs: [
        { role: given('out') !== undefined ? '--out' : 'the grid (from --run)', path: out },
        each !== undefined ? { role: '--each', path: each, directory: true, holds: /^c\d+-\d+\.png$/ } : null,
        tokensOut !== undefined ? { role: '--tokens-out', path: tokensOut } : null,
        progressivePath !== undefined ? { role: '--progressive', path: progressivePath } : null,
      ],
    });

    // Under mpirun every rank samples its share of the images; rank 0 alone logs and writes.
    const comm = communicator(),
      say = comm.rank === 0 ? log : (): void => {};
    const t0 = performance.now();
    const pieces: SamplerPieces = await loadSampler([method], paths);
    const names = await runClassNames(pieces);
    const classIds =
      wanted === 'all'
        ? Array.from({ length: pieces.numClasses }, (_, c) => c)
        : wanted.map((w) => classId(w, names, pieces.numClasses));
    const n = f['n'] as number;
    const classes = Int32Array.from(classIds.flatMap((c) => Array<number>(n).fill(c)));
    const N = classes.length,
      T = pieces.grid ** 2;
    const cols = (f['cols'] as number | undefined) ?? (classIds.length > 1 && n <= 32 ? n : Math.ceil(Math.sqrt(N)));
    const scale = f['scale'] as number;
    checkPictureSizes(f, pieces.tokenizer.model.config.imageSize, N, cols, T);
    say(
      `${method}: ${N} images (${classIds.length} class${classIds.length > 1 ? 'es' : ''} × ${n}), ` +
        `loaded ${Object.values(paths).join(', ')} in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );

    const label = method === 'ctf' ? 'stage 1' : 'baseline';
    const progress = comm.rank === 0 ? new Progress({ label, total: N, unit: 'img' }) : null;
    const r = sampleImagesSharded(
      pieces,
      {
        method,
        classes,
        seed: sampling.seed,
        batchSize: sampling.batchSize,
        ...sampling.stage1,
        stage2: sampling.stage2,
        onProgress: (e) => {
          if (e.phase === 'stage1' && e.done < N) progress?.update(Math.floor(e.done));
        },
      },
      comm,
    );
    progress?.finish();
    if (r === null) return; // not rank 0: its images went to rank 0
    const s = r.seconds;
    let inside: number | null = null;
    if (r.coarse && pieces.map) {
      let k = 0;
      for (let i = 0; i < r.fine.length; i++) k += pieces.map.fineToCoarse[r.fine[i]!] === r.coarse[i] ? 1 : 0;
      inside = k / r.fine.length;
    }
    log(
      `${method}: ${N} images in ${s.total.toFixed(2)} s = ${(N / s.total).toFixed(1)} img/s ` +
        (method === 'ctf'
          ? `(stage 1 ${s.stage1.toFixed(2)} s, stage 2 ${s.stage2.toFixed(2)} s`
          : `(generate ${s.stage1.toFixed(2)} s`) +
        `, decode ${s.decode.toFixed(2)} s)` +
        (inside !== null ? `; ${(100 * inside).toFixed(2)}% of the fine tokens lie in their predicted cluster` : ''),
    );

    await mkdir(dirname(out), { recursive: true });
    // One row per class (the default layout): label the rows with the class names.
    const byClass = classIds.length > 1 && n === cols;
    const pad = 2,
      tile = r.shape[2] * scale;
    const grid = imageGrid(r.images, r.shape, { cols, scale, pad });
    await writePng(
      out,
      byClass
        ? withRowLabels(
            grid,
            classIds.map((c) => names?.[c] ?? `class ${c}`),
            { rowPitch: tile + pad, top: pad, rowHeight: tile },
          )
        : grid,
    );
    const written = [out];
    if (each !== undefined) {
      const dir = each;
      await mkdir(dir, { recursive: true });
      const [, C, H, W] = r.shape,
        px = C * H * W,
        width = String(n - 1).length;
      for (let i = 0; i < N; i++) {
        const file = join(dir, `c${classes[i]}-${String(i % n).padStart(width, '0')}.png`);
        await writeImageGrid(file, r.images.subarray(i * px, (i + 1) * px), [1, C, H, W], { cols: 1, pad: 0, scale });
      }
      written.push(`${dir}/ (${N} PNGs)`);
    }
    if (tokensOut !== undefined) {
      await mkdir(dirname(tokensOut), { recursive: true });
      await writeFileAtomic(tokensOut, tokensJson(r, T));
      written.push(tokensOut);
    }
    if (progressivePath !== undefined && r.coarse && pieces.map) {
      const count = Math.min(N, f['progressiveCount'] as number);
      // Spread the rows over the classes: every ⌈N/count⌉-th image.
      const rows = Array.from({ length: count }, (_, i) => Math.floor((i * N) / count));
      const [, C, H, W] = r.shape,
        px = C * H * W;
      const tok = pieces.tokenizer.model;
      const reps = clusterRepresentatives(pieces.map, tok.quantizer.normalizedCodebook().f32);
      const coarse = Int32Array.from(rows.flatMap((i) => Array.from(r.coarse!.subarray(i * T, (i + 1) * T))));
      const finals = new Float32Array(count * px);
      rows.forEach((i, j) => finals.set(r.images.subarray(i * px, (i + 1) * px), j * px));
      const steps = previewSteps(T);
      const p = progressivePreview(tok, reps, coarse, finals, { steps });
      await mkdir(dirname(progressivePath), { recursive: true });
      await writeImageGrid(progressivePath, p.images, [count * p.cols, C, H, W], { cols: p.cols, scale });
      written.push(`${progressivePath} (columns: after ${steps.join('/')} coarse labels, then the final image)`);
    }
    log(`wrote ${written.join(', ')}`);
    if (f['json'])
      process.stdout.write(
        JSON.stringify(
          {
            method,
            out,
            images: N,
            classes: classIds,
            n,
            seed: f['seed'],
            seconds: s,
            imagesPerSecond: N / s.total,
            insideCluster: inside,
            paths,
            written,
          },
          null,
          2,
        ) + '\n',
      );
  },
};

