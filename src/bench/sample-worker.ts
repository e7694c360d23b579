// Our side of `ctfgen bench sample`: loads the same checkpoints as bench/torch_sampler.py and answers the same
// JSON lines (src/bench/peer.ts protocol, with a per-part breakdown and a greedy-token command):
//   setup  {config: SampleWorkerConfig}                -> {ok}
//   run    {method: 'baseline' | 'ctf', n, seed}       -> {ms: number[], cpuMs: number[], parts: {stage1, stage2,
// decode}[] (ms)}
//   tokens {method, count}                             -> {coarse, fine} greedy tokens of the first images
//   info                                               -> PeerInfo
import { createInterface } from 'node:readline';
import { CtfError } from '../errors.js';
import { sampleImages } from '../sample/pipeline.js';
import { loadSampler, type SamplerMethod, type SamplerPaths, type SamplerPieces } from '../sample/run-dir.js';
import { ctfgenPeerInfo } from './peer.js';

export interface SampleWorkerConfig {
  paths: SamplerPaths;   // every piece of both methods
  batch: number;         // images per timed run (one chunk)
  cfg: number;           // guidance scale (stage 1 / baseline)
  temperature: number;   // both stages
  numClasses: number;    // images cycle through the classes
  refineRounds: number;  // stage-2 rounds (1 = the single pass; more: an aux trained with --refine masked)
}

export interface SampleParts { stage1: number; stage2: number; decode: number }

let pieces: SamplerPieces | null = null;
let config: SampleWorkerConfig | null = null;

function classesOf(n: number, numClasses: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i % numClasses);
}

function sampleOnce(method: SamplerMethod, n: number, seed: number, topK: number) {
  if (!pieces || !config) throw new CtfError('sample worker: run before setup');
  return sampleImages(pieces, {
    method,
    classes: classesOf(n, config.numClasses),
    seed,
    batchSize: n,
    cfgScale: config.cfg,
    temperature: config.temperature,
    topK,
    stage2: { temperature: config.temperature, topK, clusterMask: true, rounds: config.refineRounds },
  });
}

async function handle(msg: {
  cmd: string;
  config?: SampleWorkerConfig;
  method?: SamplerMethod;
  n?: number;
  seed?: number;
  count?: number;
}): Promise<Record<string, unknown>> {
  switch (msg.cmd) {
    case 'setup':
      config = msg.config!;
      pieces = await loadSampler(['ctf', 'baseline'], config.paths);
      return { ok: true };
    case 'run': {
      const ms: number[] = [],
        cpuMs: number[] = [],
        parts: SampleParts[] = [];
      for (let i = 0; i < (msg.n ?? 1); i++) {
        const c0 = process.cpuUsage(),
          t0 = performance.now();
        const r = sampleOnce(msg.method!, config?.batch ?? 0, (msg.seed ?? 0) + i, 0);
        ms.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpuMs.push((c.user + c.system) / 1000);
        parts.push({ stage1: 1e3 * r.seconds.stage1, stage2: 1e3 * r.seconds.stage2, decode: 1e3 * r.seconds.decode });
      }
      return { ms, cpuMs, parts };
    }
    case 'tokens': {
      const r = sampleOnce(msg.method!, msg.count ?? 1, 0, 1);
      const T = pieces!.grid ** 2;
      const rows = (x: Int32Array): number[][] =>
        Array.from({ length: x.length / T }, (_, i) => Array.from(x.subarray(i * T, (i + 1) * T)));
      return { coarse: r.coarse ? rows(r.coarse) : null, fine: rows(r.fine) };
    }
    case 'info':
      return { ...ctfgenPeerInfo() };
    default:
      return { error: `unknown command ${msg.cmd}` };
  }
}

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (line.trim() === '') continue;
  const msg = JSON.parse(line) as { cmd: string };
  if (msg.cmd === 'exit') break;
  let reply: Record<string, unknown>;
  try {
    reply = await handle(msg);
  } catch (e) {
    reply = { error: e instanceof Error ? e.message : String(e) };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
}
