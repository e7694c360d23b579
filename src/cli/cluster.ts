// `ctfgen cluster`: the coarse map of a tokenizer's codebook (k-means on the l2-normalised codewords,
// or the random ablation), written as a cluster file. Renders the k-means events, the inertia and the
// cluster-size histogram; the numbers come from src/cluster.
import { loadCodebook } from '../cluster/codebook.js';
import {
  CLUSTER_MODES, buildCoarseMap, clusterSizeHistogram, defaultClusterCount, loadCoarseMap, randomCoarseMap,
  saveCoarseMap, type ClusterMode, type ClusterSizeHistogram, type CoarseMap,
} from '../cluster/coarse-map.js';
import type { KMeansEvent } from '../cluster/kmeans.js';
import { swapDemo, type SwapDemoRow } from '../cluster/swap.js';
import { indicesByClass, loadDataset, type Split } from '../data/dataset.js';
import { toModelInput } from '../data/model-input.js';
import { Rng } from '../engine/rng.js';
import { Tensor } from '../engine/tensor.js';
import { writeImageGrid } from '../io/png.js';
import { loadTokenizer } from '../tokenizer/checkpoint.js';
import type { DataIdentity } from '../tokenizer/data-identity.js';
import { checkOutputs } from '../io/outputs.js';
import { FORCE_FLAG, UsageError, type ParsedFlags } from './args.js';
import { DATA_LOAD_FLAGS, datasetSpec, tokenizerDataOptions } from './data.js';
import type { Command } from './main.js';

function requiredString(f: ParsedFlags, key: string, flag: string): string {
  const v = f[key];
  if (typeof v !== 'string' || v === '') throw new UsageError(`${flag} is required`);
  return v;
}

/** A text histogram, one line per bin: "  25–29  ████████ 17". */
export function formatHistogram(h: ClusterSizeHistogram, width = 40): string {
  const peak = Math.max(1, ...h.bins.map((b) => b.count));
  const label = (b: { lo: number; hi: number }): string => (b.lo === b.hi ? String(b.lo) : `${b.lo}–${b.hi}`);
  const w = Math.max(...h.bins.map((b) => label(b).length));
  return (
    h.bins
      .map(
        (b) =>
          `  ${label(b).padStart(w)}  ${'█'.repeat(Math.round((width * b.count) / peak)).padEnd(width)} ${b.count}`,
      )
      .join('\n') + '\n'
  );
}

function renderEvent(e: KMeansEvent, restarts: number): void {
  if (e.type === 'restart')
    process.stderr.write(`restart ${e.restart + 1}/${restarts}: inertia ${e.inertia.toFixed(4)} after ` +
      `${e.iterations} iterations (${e.stop}), ${(e.ms / 1000).toFixed(2)} s\n`);
}

export const clusterCommand: Command = {
  spec: {
    name: 'cluster',
    brief: "cluster a tokenizer's codebook into K coarse labels (k-means or random)",
    summary:
      "Clusters a tokenizer's codebook into K coarse labels: k-means (k-means++ seeding, restarts, fixed seed) on " +
      "the\nl2-normalised codewords, or --mode random: a random assignment with the k-means cluster sizes (the " +
      "paper's ablation).",
    usage: 'ctfgen cluster --tokenizer CKPT [--k K] --out FILE [options]',
    flags: {
      tokenizer: { type: 'string', help: 'tokenizer checkpoint (.safetensors) whose codebook is clustered' },
      k: {
        type: 'int',
        min: 1,
        help: 'clusters K, the coarse vocabulary (default V/32: a mean cluster of 32 codewords, as the paper)',
      },
      mode: { type: 'string', default: 'kmeans', help: `${CLUSTER_MODES.join(' or ')}` },
      restarts: { type: 'int', default: 4, min: 1, help: 'k-means++ seedings; the lowest inertia is kept' },
      iters: { type: 'int', default: 100, min: 0, help: 'at most this many Lloyd iterations per restart' },
      seed: { type: 'int', default: 0, min: 0, help: 'seeds k-means++ and the random assignment' },
      out: { type: 'string', help: 'cluster file to write (.safetensors)' },
      json: { type: 'boolean', help: 'print a machine-readable summary to stdout' },
      ...FORCE_FLAG,
    },
  },
  async run(f) {
    const tokenizer = requiredString(f, 'tokenizer', '--tokenizer'),
      out = requiredString(f, 'out', '--out');
    const mode = String(f['mode']) as ClusterMode;
    if (!CLUSTER_MODES.includes(mode))
      throw new UsageError(`--mode: expected ${CLUSTER_MODES.join(' or ')}, got "${mode}"`);
    checkOutputs({
      inputs: [{ role: '--tokenizer', path: tokenizer }],
      outputs: [{ role: '--out', path: out, artifact: true }],
      force: f['force'] === true,
    });
    const restarts = f['restarts'] as number,
      maxIter = f['iters'] as number,
      seed = f['seed'] as number;
    const { codebook, hash } = await loadCodebook(tokenizer);
    const [V, D] = codebook.shape as [number, number];
    const k = (f['k'] as number | undefined) ?? defaultClusterCount(V);
    if (k > V) throw new UsageError(`--k: ${k} clusters for a codebook of ${V} codewords; K must be ≤ V`);
    process.stderr.write(
      `tokenizer ${tokenizer}: codebook ${V} × ${D} (hash ${hash.slice(0, 12)}…); k-means into ${k} clusters, ` +
      `${restarts} restart${restarts > 1 ? 's' : ''}\n`,
    );
    const t0 = performance.now();
    const { map, kmeans } = buildCoarseMap(codebook, {
      k,
      mode,
      seed,
      restarts,
      maxIter,
      tokenizerHash: hash,
      onEvent: (e) => renderEvent(e, restarts),
    });
    const seconds = (performance.now() - t0) / 1000;
    await saveCoarseMap(out, map, { restarts, maxIter });
    const hist = clusterSizeHistogram(map);
    process.stderr.write(
      `k-means: best restart ${kmeans.best + 1}, inertia ${kmeans.inertia.toFixed(4)} ` +
      `(${(kmeans.inertia / V).toFixed(5)} per codeword), ${seconds.toFixed(2)} s\n` +
        (mode === 'random'
          ? `random clusters with the same sizes: inertia ${map.inertia.toFixed(4)} (${(map.inertia / V).toFixed(5)} ` +
            `per codeword)\n`
          : '') +
        `cluster sizes (${mode}): min ${hist.min}, median ${hist.median}, max ${hist.max}, mean ` +
        `${hist.mean.toFixed(1)}\n` +
        formatHistogram(hist) +
        `wrote ${out}\n`,
    );
    if (f['json']) {
      const summary = {
        out,
        tokenizer,
        tokenizerHash: hash,
        k,
        v: V,
        dim: D,
        mode,
        seed,
        inertia: map.inertia,
        kmeansInertia: kmeans.inertia,
        best: kmeans.best,
        seconds,
        restarts: kmeans.runs.map((r) => ({
          inertia: r.inertia,
          iterations: r.iterations,
          stop: r.stop,
          reseeded: r.reseeded,
          seconds: r.ms / 1000,
          history: r.history,
        })),
        sizes: hist,
      };
      process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
    }
  },
};

/** count test images, one per class in turn (class 0, 1, … then the second of each class, …). */
function spreadOverClasses(byClass: number[][], count: number): number[] {
  const out: number[] = [];
  for (let j = 0; out.length < count && byClass.some((c) => c.length > j); j++)
    for (const c of byClass) if (out.length < count && c[j] !== undefined) out.push(c[j]!);
  return out;
}

function swapTable(rows: SwapDemoRow[]): string {
  const lines = ['row               PSNR vs original   vs reconstruction   tokens changed'];
  for (const r of rows.slice(1)) {
    const vsRecon = r.name === 'reconstruction' ? '' : `${r.psnrVsRecon.toFixed(2)} dB`;
    const changed = `${(100 * r.tokensChanged).toFixed(1)}%`;
    const vsOriginal = `${r.psnrVsOriginal.toFixed(2)} dB`;
    lines.push(`${r.name.padEnd(18)}${vsOriginal.padStart(16)}${vsRecon.padStart(20)}${changed.padStart(16)}`);
  }
  return lines.join('\n') + '\n';
}

export const clusterSwapDemoCommand: Command = {
  spec: {
    name: 'cluster swap-demo',
    brief: 'picture: every token swapped within its cluster, k-means against random clusters',
    summary:
      "The paper's key observation as a picture: encode test images, replace every token by a random other member " +
      "of\nits cluster, decode. PNG rows: originals | reconstructions | k-means swap | random-cluster swap (PSNRs on " +
      "stderr).",
    usage: 'ctfgen cluster swap-demo --tokenizer CKPT --clusters FILE --out PNG [options]',
    flags: {
      tokenizer: { type: 'string', help: 'tokenizer checkpoint (required)' },
      clusters: { type: 'string', help: 'k-means cluster file of that tokenizer (required)' },
      randomClusters: {
        type: 'string',
        help: 'random cluster file (default: drawn here with the sizes of --clusters and --seed)',
      },
      out: { type: 'string', help: 'PNG to write (required)' },
      data: { type: 'string', help: 'dataset (default: the one the tokenizer was trained on)' },
      split: { type: 'string', default: 'test', help: 'train or test' },
      count: { type: 'int', default: 10, min: 1, help: 'images (columns), one per class in turn' },
      seed: { type: 'int', default: 0, min: 0, help: 'seeds the swaps (and the random clusters when drawn here)' },
      scale: { type: 'int', default: 2, min: 1, help: 'enlarge the tiles by this integer factor' },
      json: { type: 'boolean', help: 'print the PSNR rows as JSON on stdout' },
      ...DATA_LOAD_FLAGS,
    },
  },
  async run(f) {
    const tokPath = requiredString(f, 'tokenizer', '--tokenizer'),
      clustersPath = requiredString(f, 'clusters', '--clusters');
    const out = requiredString(f, 'out', '--out');
    const split = String(f['split']) as Split;
    if (split !== 'train' && split !== 'test') throw new UsageError(`--split: expected train or test, got "${split}"`);
    if (typeof f['data'] === 'string') datasetSpec(f['data']);
    checkOutputs({
      inputs: [
        { role: '--tokenizer', path: tokPath },
        { role: '--clusters', path: clustersPath },
        typeof f['randomClusters'] === 'string' ? { role: '--random-clusters', path: f['randomClusters'] } : null,
      ],
      outputs: [{ role: '--out', path: out }],
    });
    const seed = f['seed'] as number;
    const { model, hash, metadata } = await loadTokenizer(tokPath);
    const V = model.config.codebookSize;
    const map = await loadCoarseMap(clustersPath, { tokenizerHash: hash, v: V });
    if (map.mode !== 'kmeans')
      throw new UsageError(
        `--clusters: ${clustersPath} holds ${map.mode} clusters; pass the k-means file (and a random one with ` +
        `--random-clusters)`,
      );
    let random: CoarseMap;
    if (typeof f['randomClusters'] === 'string') {
      random = await loadCoarseMap(f['randomClusters'], { tokenizerHash: hash, v: V, k: map.k });
      if (random.mode !== 'random')
        throw new UsageError(
          `--random-clusters: ${f['randomClusters']} holds ${random.mode} clusters, not random ones`,
        );
    } else random = randomCoarseMap(map, model.quantizer.codebook, seed);

    const { spec, options } = tokenizerDataOptions(
      f,
      metadata['data'] ? (JSON.parse(metadata['data']) as DataIdentity) : null,
    );
    const ds = await loadDataset(spec, split, options);
    const idx = spreadOverClasses(indicesByClass(ds), f['count'] as number);
    const batch = toModelInput(ds, idx);
    const demo = swapDemo(
      model,
      new Tensor(batch.x, batch.shape),
      [
        { name: 'k-means swap', map },
        { name: 'random swap', map: random },
      ],
      new Rng(seed).split('swap-demo'),
    );
    await writeImageGrid(out, demo.images, demo.shape, { cols: idx.length, scale: f['scale'] as number });
    process.stderr.write(
      `tokenizer ${tokPath} (${hash.slice(0, 12)}…, V = ${V}), clusters ${clustersPath} (K = ${map.k}), random ` +
      `clusters ` +
        `${typeof f['randomClusters'] === 'string' ? f['randomClusters'] : `drawn with seed ${seed}`}; ${idx.length} ` +
        `${ds.name} ${split} images\n` +
        swapTable(demo.rows) +
        `wrote ${out} (rows: ${demo.rows.map((r) => r.name).join(' | ')})\n`,
    );
    if (f['json'])
      process.stdout.write(
        JSON.stringify(
          { out, tokenizer: tokPath, clusters: clustersPath, k: map.k, images: idx, rows: demo.rows.slice(1) },
          null,
          2,
        ) + '\n',
      );
  },
};
