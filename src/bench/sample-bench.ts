// `ctfgen bench sample`: images/s of the baseline and of CTF (stage 1 + stage 2 + decode, each part timed) at
// one batch with CFG, by our sampler (src/bench/sample-worker.ts) and by a PyTorch KV-cached sampler of the same
// checkpoints (bench/torch_sampler.py), each in its own worker process, in alternating rounds (two-core timings
// drift minute to minute; medians are reported). A greedy run of both on the same weights cross-checks them.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCoarseMap, saveCoarseMap } from '../cluster/coarse-map.js';
import { Rng } from '../engine/rng.js';
import { CtfError } from '../errors.js';
import { saveGptCheckpoint } from '../models/gpt-checkpoint.js';
import { Gpt, gptConfig, type GptConfig, type GptPreset } from '../models/gpt.js';
import { resolveSamplerPaths, loadSampler, type SamplerMethod, type SamplerPaths } from '../sample/run-dir.js';
import { saveTokenizer, tokenizerHash } from '../tokenizer/checkpoint.js';
import { tokenizerConfig } from '../tokenizer/config.js';
import { VqTokenizer } from '../tokenizer/model.js';
import { coarseMapHash } from '../train/gpt-train.js';
import { Peer, type PeerInfo } from './peer.js';
import type { SampleParts, SampleWorkerConfig } from './sample-worker.js';

export interface RandomRunOptions {
  tokenizerPreset: string;  // tokenizer size preset (decode cost)
  codebook: number;         // V
  k: number;                // K clusters
  preset: GptPreset;        // baseline and stage 1 (equal backbone)
  auxPreset: GptPreset;     // the auxiliary model
  numClasses: number;
  imageSize: number;        // 32: 8×8 tokens with the 3-level presets
  seed?: number;            // of the tokenizer's and the GPTs' weights (default 0)
}

export interface SampleBenchOptions {
  run?: string;             // a trained run directory; else random weights described by `random`
  random: RandomRunOptions;
  batch: number;            // images per timed run (the paper: 64)
  cfg: number;              // guidance scale of stage 1 / the baseline
  temperature: number;      // both stages; top-k and top-p off
  rounds: number;           // measured rounds; each runs both methods on both sides once
  refineRounds?: number;    // CTF stage-2 rounds of masked refinement (default 1)
  warmup: number;           // unmeasured runs per method and side first
  python: string;
  torchThreads: number;
  checkImages: number;      // greedy cross-check images
}

/** Wall-clock medians; cpuMs is the process CPU time of each run (all threads: ours uses two, torch one). */
export interface BenchSide {
  ms: number[];
  medianMs: number;
  imagesPerSecond: number;
  partsMs: SampleParts;
  cpuMs: number[];
  medianCpuMs: number;
}
export interface SampleBenchReport {
  kind: 'ctfgen.bench.sample';
  version: 1;
  date: string;
  command: string;
  source: { run: string } | { random: RandomRunOptions };
  models: Record<
    'baseline' | 'stage1' | 'aux',
    Pick<GptConfig, 'layers' | 'dim' | 'heads' | 'inVocab' | 'outVocab'> & { parameters: number }
  > & {
    tokenizer: { config: Record<string, unknown>; parameters: number };
    k: number;
    v: number;
    equalBackbone: boolean;
  };
  batch: number;
  cfg: number;
  temperature: number;
  rounds: number;
  refineRounds: number;
  warmup: number;
  torchThreads: number;
  ours: Record<SamplerMethod, BenchSide>;
  torch: Record<SamplerMethod, BenchSide>;
  /** ctfOverBaseline: ratio of the median images/s; ctfOverBaselinePaired: median over rounds of baseline ms / CTF ms
   *  within a round (both ran back to back there, so a slow spell of the machine hits both). */
  ratios: {
    oursOverTorch: Record<SamplerMethod, number>;
    ctfOverBaseline: { ours: number; torch: number };
    ctfOverBaselinePaired: { ours: number; torch: number };
  };
  check: { images: number; baselineAgreement: number; coarseAgreement: number; fineAgreement: number };
  info: { ours: PeerInfo; torch: PeerInfo };
  env: {
    OPENBLAS_CORETYPE: string | null;
    OPENBLAS_NUM_THREADS: string | null;
    OPENBLAS_THREAD_TIMEOUT: string | null;
    node: string;
  };
}

export type SampleBenchEvent =
  { type: 'round'; round: number; of: number; line: string } | { type: 'note'; line: string };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Random-weight checkpoints of every piece with the metadata `ctfgen train` writes, so both sides load files. */
export async function writeRandomRun(dir: string, o: RandomRunOptions): Promise<SamplerPaths> {
  mkdirSync(dir, { recursive: true });
  const tok = new VqTokenizer(
    tokenizerConfig(o.tokenizerPreset, { inChannels: 1, imageSize: o.imageSize }, { codebookSize: o.codebook }),
    new Rng(o.seed ?? 0),
  );
  const { paths } = resolveSamplerPaths(['ctf', 'baseline'], dir, {});
  await saveTokenizer(paths.tokenizer!, tok);
  const hash = tokenizerHash(tok);
  const { map } = buildCoarseMap(tok.quantizer.codebook, { k: o.k, tokenizerHash: hash, restarts: 1, maxIter: 20 });
  await saveCoarseMap(paths.clusters!, map);
  const grid = tok.grid, V = o.codebook, K = o.k;
  const make = async (
    path: string,
    kind: string,
    preset: GptPreset,
    inVocab: number,
    outVocab: number,
    causal: boolean,
    seed: number,
  ): Promise<void> => {
    const model = new Gpt(
      gptConfig(preset, { inVocab, outVocab, numClasses: o.numClasses, grid, causal }),
      new Rng(seed),
    );
    // LlamaGen zero-inits it: sampling would be uniform
    new Rng(seed).split('head').fillNormal(model.output.f32, 0, 0.02);
    await saveGptCheckpoint(path, model, {
      ctf_kind: kind,
      tokenizer_hash: hash,
      ...(kind === 'baseline'
        ? {}
        : { clusters_hash: coarseMapHash(map), clusters_k: String(K), clusters_mode: map.mode }),
    });
  };
  const seed = 10 * (o.seed ?? 0);
  await make(paths.baseline!, 'baseline', o.preset, V, V, true, seed + 1);
  await make(paths.stage1!, 'stage1', o.preset, K, K, true, seed + 2);
  await make(paths.aux!, 'aux', o.auxPreset, K, V, false, seed + 3);
  return paths;
}

/** Median over rounds of baseline ms / CTF ms, round by round. */
export function pairedRatio(baselineMs: readonly number[], ctfMs: readonly number[]): number {
  return median(baselineMs.map((b, i) => b / ctfMs[i]!));
}

function agreement(a: number[][], b: number[][]): number {
  let same = 0, n = 0;
  a.forEach((row, i) => row.forEach((t, j) => { n++; if (b[i]?.[j] === t) same++; }));
  return n ? same / n : NaN;
}

export async function runSampleBench(
  o: SampleBenchOptions,
  command: string,
  emit: (e: SampleBenchEvent) => void = () => {},
): Promise<SampleBenchReport> {
  if (!existsSync(o.python))
    throw new CtfError(
      `bench sample: ${o.python} not found; the PyTorch sampler needs Debian's python3-torch (CTFGEN_TORCH=1 bash ` +
      `scripts/setup.sh)`,
    );
  const tmp = o.run === undefined ? mkdtempSync(join(tmpdir(), 'ctfgen-bench-sample-')) : null;
  const ours = new Peer('ours', process.execPath, [fileURLToPath(new URL('./sample-worker.js', import.meta.url))]);
  const torch = new Peer('torch', o.python, [
    fileURLToPath(new URL('../../../bench/torch_sampler.py', import.meta.url)),
    '--threads',
    String(o.torchThreads),
  ]);
  try {
    let paths: SamplerPaths;
    if (tmp) {
      emit({
        type: 'note',
        line: `random weights in ${tmp}: tokenizer ${o.random.tokenizerPreset}, V = ${o.random.codebook}, K = ` +
          `${o.random.k}, GPT ${o.random.preset}, aux ${o.random.auxPreset}`,
      });
      paths = await writeRandomRun(tmp, o.random);
    } else paths = resolveSamplerPaths(['ctf', 'baseline'], o.run, {}).paths;
    // the same checks the workers make, and the model summary
    const pieces = await loadSampler(['ctf', 'baseline'], paths);
    const summary = (g: Gpt): BenchModel => {
      const c = g.config;
      return {
        layers: c.layers,
        dim: c.dim,
        heads: c.heads,
        inVocab: c.inVocab,
        outVocab: c.outVocab,
        parameters: g.numParameters(),
      };
    };
    const [b, s1] = [pieces.baseline!.model.config, pieces.stage1!.model.config];
    const models = {
      baseline: summary(pieces.baseline!.model),
      stage1: summary(pieces.stage1!.model),
      aux: summary(pieces.aux!.model),
      tokenizer: { config: { ...pieces.tokenizer.model.config }, parameters: pieces.tokenizer.model.numParameters() },
      k: pieces.map!.k,
      v: pieces.map!.v,
      equalBackbone: b.layers === s1.layers && b.dim === s1.dim && b.heads === s1.heads,
    };
    const config: SampleWorkerConfig = {
      paths,
      batch: o.batch,
      cfg: o.cfg,
      temperature: o.temperature,
      numClasses: pieces.numClasses,
      refineRounds: o.refineRounds ?? 1,
    };
    for (const p of [ours, torch]) await p.call({ cmd: 'setup', config });

    // Greedy on the same weights: the two samplers must pick (almost) the same tokens.
    const count = Math.min(o.checkImages, o.batch);
    const [gb, tb, gc, tc] = [
      await ours.call<{ fine: number[][] }>({ cmd: 'tokens', method: 'baseline', count }),
      await torch.call<{ fine: number[][] }>({ cmd: 'tokens', method: 'baseline', count }),
      await ours.call<{ coarse: number[][]; fine: number[][] }>({ cmd: 'tokens', method: 'ctf', count }),
      await torch.call<{ coarse: number[][]; fine: number[][] }>({ cmd: 'tokens', method: 'ctf', count }),
    ];
    const check = {
      images: count,
      baselineAgreement: agreement(gb.fine, tb.fine),
      coarseAgreement: agreement(gc.coarse, tc.coarse),
      fineAgreement: agreement(gc.fine, tc.fine),
    };
    emit({
      type: 'note',
      line: `greedy cross-check on ${count} images: baseline tokens agree ` +
        `${(100 * check.baselineAgreement).toFixed(1)}%, CTF coarse ${(100 * check.coarseAgreement).toFixed(1)}%, ` +
        `fine ${(100 * check.fineAgreement).toFixed(1)}%`,
    });

    const methods: SamplerMethod[] = ['baseline', 'ctf'];
    type Runs = { ms: number[]; cpuMs: number[]; parts: SampleParts[] };
    const empty = (): Runs => ({ ms: [], cpuMs: [], parts: [] });
    const runs: Record<'ours' | 'torch', Record<SamplerMethod, Runs>> = {
      ours: { baseline: empty(), ctf: empty() },
      torch: { baseline: empty(), ctf: empty() },
    };
    for (const m of methods)
      for (const p of [ours, torch]) if (o.warmup > 0) await p.call({ cmd: 'run', method: m, n: o.warmup, seed: 1000 });
    for (let r = 0; r < o.rounds; r++) {
      // Alternate who goes first, so a slow spell of the machine does not always hit the same side.
      const order: ['ours' | 'torch', Peer][] =
        r % 2 === 0
          ? [
              ['ours', ours],
              ['torch', torch],
            ]
          : [
              ['torch', torch],
              ['ours', ours],
            ];
      const line: string[] = [];
      for (const m of methods)
        for (const [side, p] of order) {
          const res = await p.call<Runs>({ cmd: 'run', method: m, n: 1, seed: r });
          runs[side][m].ms.push(res.ms[0]!);
          runs[side][m].cpuMs.push(res.cpuMs[0]!);
          runs[side][m].parts.push(res.parts[0]!);
          line.push(`${side} ${m} ${res.ms[0]!.toFixed(0)} ms`);
        }
      emit({ type: 'round', round: r + 1, of: o.rounds, line: line.join(', ') });
    }
    const side = (x: Runs): BenchSide => {
      const med = median(x.ms);
      return {
        ms: x.ms,
        medianMs: med,
        imagesPerSecond: (1000 * o.batch) / med,
        cpuMs: x.cpuMs,
        medianCpuMs: median(x.cpuMs),
        partsMs: {
          stage1: median(x.parts.map((p) => p.stage1)),
          stage2: median(x.parts.map((p) => p.stage2)),
          decode: median(x.parts.map((p) => p.decode)),
        },
      };
    };
    const res = {
      ours: { baseline: side(runs.ours.baseline), ctf: side(runs.ours.ctf) },
      torch: { baseline: side(runs.torch.baseline), ctf: side(runs.torch.ctf) },
    };
    const info = {
      ours: await ours.call<PeerInfo>({ cmd: 'info' }),
      torch: await torch.call<PeerInfo>({ cmd: 'info' }),
    };
    return {
      kind: 'ctfgen.bench.sample',
      version: 1,
      date: new Date().toISOString(),
      command,
      source: o.run !== undefined ? { run: o.run } : { random: o.random },
      models,
      batch: o.batch,
      cfg: o.cfg,
      temperature: o.temperature,
      rounds: o.rounds,
      refineRounds: o.refineRounds ?? 1,
      warmup: o.warmup,
      torchThreads: o.torchThreads,
      ...res,
      ratios: {
        oursOverTorch: {
          baseline: res.ours.baseline.imagesPerSecond / res.torch.baseline.imagesPerSecond,
          ctf: res.ours.ctf.imagesPerSecond / res.torch.ctf.imagesPerSecond,
        },
        ctfOverBaseline: {
          ours: res.ours.ctf.imagesPerSecond / res.ours.baseline.imagesPerSecond,
          torch: res.torch.ctf.imagesPerSecond / res.torch.baseline.imagesPerSecond,
        },
        ctfOverBaselinePaired: {
          ours: pairedRatio(runs.ours.baseline.ms, runs.ours.ctf.ms),
          torch: pairedRatio(runs.torch.baseline.ms, runs.torch.ctf.ms),
        },
      },
      check,
      info,
      env: {
        OPENBLAS_CORETYPE: process.env['OPENBLAS_CORETYPE'] ?? null,
        OPENBLAS_NUM_THREADS: process.env['OPENBLAS_NUM_THREADS'] ?? null,
        OPENBLAS_THREAD_TIMEOUT: process.env['OPENBLAS_THREAD_TIMEOUT'] ?? null,
        node: process.version,
      },
    };
  } finally {
    await Promise.allSettled([ours.close(), torch.close()]);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

type BenchModel = SampleBenchReport['models']['baseline'];
