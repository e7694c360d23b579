// Sampling throughput of the baseline and of CTF at equal backbone (docs/method.md, Evaluation: images/s at batch 64),
// with CTF's two stages timed apart. Models have random weights: speed does not depend on training.
import { Rng } from '../engine/rng.js';
import { Gpt, gptConfig, type GptPreset } from '../models/gpt.js';
import { refine, type RefineOptions } from './ctf.js';
import { generate } from './generate.js';
import type { ClusterPartition } from './logits.js';

export interface SpeedOptions {
  preset: GptPreset;      // backbone of the baseline and the stage-1 model
  auxPreset?: GptPreset;  // the auxiliary model's (default: preset)
  k: number;              // clusters (stage-1 vocabulary)
  v: number;              // codebook size (baseline vocabulary, aux output)
  grid: number;           // tokens per side
  numClasses: number;
  batch: number;          // images per timed run (one chunk)
  cfgScale: number;       // stage 1 / baseline
  repeats: number;        // timed runs after one warm-up; the median is reported
  stage2?: RefineOptions; // default: mask on, fast head
}

/** Wall and process CPU seconds (all threads): on a shared machine the CPU time is the steadier figure. */
export interface Clock { wall: number; cpu: number }

export interface SpeedRow {
  method: string;
  imagesPerSecond: number;                              // batch / median total wall time
  seconds: { total: Clock; stage1: Clock; stage2: Clock };  // per batch, medians over the repeats
}

function timed(fn: () => void): Clock {
  const c0 = process.cpuUsage(), t0 = performance.now();
  fn();
  const c = process.cpuUsage(c0);
  return { wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 };
}

function randomGpt(preset: GptPreset, inVocab: number, outVocab: number, causal: boolean, o: SpeedOptions, seed: number): Gpt {
  const model = new Gpt(gptConfig(preset, { inVocab, outVocab, numClasses: o.numClasses, grid: o.grid, causal }), new Rng(seed));
  new Rng(seed).split('head').fillNormal(model.output.f32, 0, 0.02);
  return model;
}

/** Contiguous clusters of V/K fine ids each (the timing only depends on the sizes). */
function evenPartition(k: number, v: number): ClusterPartition {
  const fineToCoarse = Int32Array.from({ length: v }, (_, f) => Math.floor((f * k) / v));
  const members = Array.from({ length: k }, (_, c) => Int32Array.from(fineToCoarse.keys()).filter((f) => fineToCoarse[f] === c));
  return { k, v, fineToCoarse, members };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Times baseline and CTF sampling (one warm-up run each); the CTF rows differ only in the stage-2 options. */
export function measureSampling(o: SpeedOptions, ctfVariants: [string, RefineOptions][] = [['ctf', o.stage2 ?? {}]]): SpeedRow[] {
  const classes = Int32Array.from({ length: o.batch }, (_, i) => i % o.numClasses);
  const gen = { classes, cfgScale: o.cfgScale, batchSize: o.batch };
  const baseline = randomGpt(o.preset, o.v, o.v, true, o, 1);
  const stage1 = randomGpt(o.preset, o.k, o.k, true, o, 2);
  const aux = randomGpt(o.auxPreset ?? o.preset, o.k, o.v, false, o, 3);
  const map = evenPartition(o.k, o.v);
  const none: Clock = { wall: 0, cpu: 0 };
  const row = (method: string, runs: { stage1: Clock; stage2: Clock }[]): SpeedRow => {
    const med = (f: (r: { stage1: Clock; stage2: Clock }) => number): number => median(runs.map(f));
    const total = { wall: med((r) => r.stage1.wall + r.stage2.wall), cpu: med((r) => r.stage1.cpu + r.stage2.cpu) };
    return {
      method, imagesPerSecond: o.batch / total.wall,
      seconds: { total, stage1: { wall: med((r) => r.stage1.wall), cpu: med((r) => r.stage1.cpu) }, stage2: { wall: med((r) => r.stage2.wall), cpu: med((r) => r.stage2.cpu) } },
    };
  };
  const baseRuns: { stage1: Clock; stage2: Clock }[] = [];
  const ctfRuns = ctfVariants.map(() => [] as { stage1: Clock; stage2: Clock }[]);
  // Interleaved, so load from elsewhere on the machine spreads over every method alike.
  for (let r = -1; r < o.repeats; r++) {
    const seed = r + 1;
    const b = timed(() => generate(baseline, { ...gen, seed }));
    if (r >= 0) baseRuns.push({ stage1: b, stage2: none });
    let coarse: Int32Array = new Int32Array(0);
    const s1 = timed(() => { coarse = generate(stage1, { ...gen, seed }); });
    ctfVariants.forEach(([, stage2], i) => {
      const s2 = timed(() => refine(aux, map, classes, coarse, { ...stage2, seed, batchSize: o.batch }));
      if (r >= 0) ctfRuns[i]!.push({ stage1: s1, stage2: s2 });
    });
  }
  return [row('baseline', baseRuns), ...ctfVariants.map(([name], i) => row(name, ctfRuns[i]!))];
}
