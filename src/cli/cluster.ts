// `ctfgen cluster`: the coarse map of a tokenizer's codebook (k-means on the l2-normalised codewords,
// or the random ablation), written as a cluster file. Renders the k-means events, the inertia and the
// cluster-size histogram; the numbers come from src/cluster.
import { loadCodebook } from '../cluster/codebook.js';
import {
  CLUSTER_MODES, buildCoarseMap, clusterSizeHistogram, saveCoarseMap, type ClusterMode, type ClusterSizeHistogram,
} from '../cluster/coarse-map.js';
import type { KMeansEvent } from '../cluster/kmeans.js';
import { UsageError, type ParsedFlags } from './args.js';
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
  return h.bins.map((b) => `  ${label(b).padStart(w)}  ${'█'.repeat(Math.round((width * b.count) / peak)).padEnd(width)} ${b.count}`).join('\n') + '\n';
}

function renderEvent(e: KMeansEvent, restarts: number): void {
  if (e.type === 'restart')
    process.stderr.write(`restart ${e.restart + 1}/${restarts}: inertia ${e.inertia.toFixed(4)} after ${e.iterations} iterations (${e.stop}), ${(e.ms / 1000).toFixed(2)} s\n`);
}

export const clusterCommand: Command = {
  spec: {
    name: 'cluster',
    summary: 'Clusters a tokenizer\'s codebook into K coarse labels: k-means (k-means++ seeding, restarts, fixed seed) on the\nl2-normalised codewords, or --mode random: a random assignment with the k-means cluster sizes (the paper\'s ablation).',
    usage: 'ctfgen cluster --tokenizer CKPT --k K --out FILE [options]',
    flags: {
      tokenizer: { type: 'string', help: 'tokenizer checkpoint (.safetensors) whose codebook is clustered' },
      k: { type: 'int', default: 128, min: 1, help: 'number of clusters K (the coarse vocabulary)' },
      mode: { type: 'string', default: 'kmeans', help: `${CLUSTER_MODES.join(' or ')}` },
      restarts: { type: 'int', default: 4, min: 1, help: 'k-means++ seedings; the lowest inertia is kept' },
      iters: { type: 'int', default: 100, min: 0, help: 'at most this many Lloyd iterations per restart' },
      seed: { type: 'int', default: 0, min: 0, help: 'seeds k-means++ and the random assignment' },
      out: { type: 'string', help: 'cluster file to write (.safetensors)' },
      json: { type: 'boolean', help: 'print a machine-readable summary to stdout' },
    },
  },
  async run(f) {
    const tokenizer = requiredString(f, 'tokenizer', '--tokenizer'), out = requiredString(f, 'out', '--out');
    const mode = String(f['mode']) as ClusterMode;
    if (!CLUSTER_MODES.includes(mode)) throw new UsageError(`--mode: expected ${CLUSTER_MODES.join(' or ')}, got "${mode}"`);
    const k = f['k'] as number, restarts = f['restarts'] as number, maxIter = f['iters'] as number, seed = f['seed'] as number;
    const { codebook, hash } = await loadCodebook(tokenizer);
    const [V, D] = codebook.shape as [number, number];
    if (k > V) throw new UsageError(`--k: ${k} clusters for a codebook of ${V} codewords; K must be ≤ V`);
    process.stderr.write(`tokenizer ${tokenizer}: codebook ${V} × ${D} (hash ${hash.slice(0, 12)}…); k-means into ${k} clusters, ${restarts} restart${restarts > 1 ? 's' : ''}\n`);
    const t0 = performance.now();
    const { map, kmeans } = buildCoarseMap(codebook, { k, mode, seed, restarts, maxIter, tokenizerHash: hash, onEvent: (e) => renderEvent(e, restarts) });
    const seconds = (performance.now() - t0) / 1000;
    await saveCoarseMap(out, map, { restarts, maxIter });
    const hist = clusterSizeHistogram(map);
    process.stderr.write(
      `k-means: best restart ${kmeans.best + 1}, inertia ${kmeans.inertia.toFixed(4)} (${(kmeans.inertia / V).toFixed(5)} per codeword), ${seconds.toFixed(2)} s\n` +
        (mode === 'random' ? `random clusters with the same sizes: inertia ${map.inertia.toFixed(4)} (${(map.inertia / V).toFixed(5)} per codeword)\n` : '') +
        `cluster sizes (${mode}): min ${hist.min}, median ${hist.median}, max ${hist.max}, mean ${hist.mean.toFixed(1)}\n` +
        formatHistogram(hist) + `wrote ${out}\n`,
    );
    if (f['json']) {
      const summary = {
        out, tokenizer, tokenizerHash: hash, k, v: V, dim: D, mode, seed, inertia: map.inertia, kmeansInertia: kmeans.inertia,
        best: kmeans.best, seconds,
        restarts: kmeans.runs.map((r) => ({ inertia: r.inertia, iterations: r.iterations, stop: r.stop, reseeded: r.reseeded, seconds: r.ms / 1000, history: r.history })),
        sizes: hist,
      };
      process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
    }
  },
};
