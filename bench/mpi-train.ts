// Data-parallel training throughput, measured (not a test): a preset-S baseline GPT on synthetic tokens (V 4096,
// 8×8 grid, the shapes of the Fashion-MNIST runs) as 1 process × 2 BLAS threads, as mpirun -np 2 × 1 thread on
// this machine, and as 2 ranks on two network-namespace hosts over TCP (scripts/netns-hosts.sh, as root); then the
// compute per sequence of presets S, M and L on one thread, for the projection (bench/mpi-projection.ts).
//   node dist/bench/mpi-train.js [--out results/mpi.json] [--steps 40] [--batch 128] [--no-hosts]
// Each figure is the median over progress windows after the first (warm-up); the load average is recorded beside
// it, since the machine may be shared.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../src/engine/rng.js';
import { Tensor } from '../src/engine/tensor.js';
import { Gpt, gptConfig, type GptPreset } from '../src/models/gpt.js';
import { tokenizerConfig } from '../src/tokenizer/config.js';
import { saveTokens } from '../src/tokenizer/tokens-file.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const V = 4096, GRID = 8, CLASSES = 10;
const MPI_ENV = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

/** count random sequences of GRID² tokens in a token file (what a tokenizer encode writes). */
async function writeTokens(path: string, count: number): Promise<void> {
  const rng = new Rng(1), tokens = new Int32Array(count * GRID * GRID);
  for (let i = 0; i < tokens.length; i++) tokens[i] = rng.int(V);
  const labels = Int32Array.from({ length: count }, (_, i) => i % CLASSES);
  const config = tokenizerConfig('S', { inChannels: 1, imageSize: 32 }, { codebookSize: V });
  await saveTokens(path, {
    tokens: new Tensor(tokens, [count, GRID, GRID]), labels, flipped: new Int32Array(count),
    tokenizerHash: '0'.repeat(64), tokenizerConfig: config,
    data: {
      name: 'synthetic', split: 'train', count, channels: 1, height: 32, width: 32, numClasses: CLASSES,
      preprocessing: { pad: 2, padValue: 0, resize: null }, sha256: '0'.repeat(64),
    },
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (x: number): number => Number(x.toPrecision(4));
const load = (): number[] => loadavg().map((x) => Number(x.toFixed(2)));

interface Measured {
  how: string; command: string; loadavgBefore: number[]; loadavgAfter: number[];
  msPerStep: number; tokensPerSec: number; sequencesPerSec: number; allreduceMs: number | null;
  allreduceShare: number | null; windows: number;
}

/** Runs one training and reads its progress events (every 5 steps; the first window is warm-up). */
function measure(how: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, events: string): Measured {
  const before = load();
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${how}: ${cmd} exited with ${r.status}\n${r.stderr}`);
  type Progress = { type: string; itemsPerStep?: number; itemsPerSec: number; metrics: Record<string, number> };
  const lines = readFileSync(events, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Progress);
  const T = lines.find((e) => e.type === 'start')!.itemsPerStep!;
  const windows = lines.filter((e) => e.type === 'progress').slice(1);
  const tokensPerSec = median(windows.map((e) => e.itemsPerSec)), msPerStep = (1000 * T) / tokensPerSec;
  const ar = windows.map((e) => e.metrics['allreduceMs']).filter((x): x is number => x !== undefined);
  const allreduceMs = ar.length ? median(ar) : null;
  return {
    how, command: [cmd, ...args].join(' ').replaceAll(ROOT, ''), loadavgBefore: before, loadavgAfter: load(),
    msPerStep: round(msPerStep), tokensPerSec: round(tokensPerSec), sequencesPerSec: round(tokensPerSec / GRID ** 2),
    allreduceMs: allreduceMs === null ? null : round(allreduceMs),
    allreduceShare: allreduceMs === null ? null : round(allreduceMs / msPerStep), windows: windows.length,
  };
}

async function main(): Promise<void> {
  const out = flag('out', 'results/mpi.json'),
    steps = Number(flag('steps', '40')),
    batch = Number(flag('batch', '128'));
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-mpi-train-'));
  try {
    const tokens = join(dir, 'tokens.safetensors');
    await writeTokens(tokens, steps * batch);
    const train = (name: string, preset: string, b: number, more: string[] = []): string[] => [CLI, 'train', 'baseline',
      '--tokens', tokens, '--out', join(dir, `${name}.safetensors`), '--preset', preset, '--batch', String(b),
      '--epochs', '1', '--warmup', '5', '--val-limit', '0', '--progress-every', '5', '--checkpoint-every', '0',
      '--force', ...more];
    const events = (name: string): string => join(dir, `${name}.events.jsonl`);
    const threads = (n: number): NodeJS.ProcessEnv => ({ ...MPI_ENV, OPENBLAS_NUM_THREADS: String(n) });
    const node = process.execPath, runs: Measured[] = [];
    runs.push(measure('1 process × 2 threads', node, train('one', 'S', batch), threads(2), events('one')));
    runs.push(measure('mpirun -np 2 × 1 thread, one host (shared memory)', 'mpirun',
      ['-np', '2', '--bind-to', 'none', '-x', 'OPENBLAS_NUM_THREADS', node, ...train('two', 'S', batch)],
      threads(1), events('two')));
    if (process.argv.includes('--no-hosts') === false)
      runs.push(measure('2 hosts (network namespaces, TCP over veth), 1 rank × 1 thread each', 'bash',
        [join(ROOT, 'scripts/netns-hosts.sh'), 'mpirun', '-np', '2', '--map-by', 'node', node,
          ...train('hosts', 'S', batch)], threads(1), events('hosts')));
    // Compute per sequence on one core, for the projection: a short run per preset (batch 32, 20 steps).
    const compute: Record<string, object> = {};
    for (const preset of ['S', 'M', 'L'] as GptPreset[]) {
      const m = measure(
        `1 process × 1 thread, preset ${preset}`,
        node,
        train(`c${preset}`, preset, 32, ['--stop-at', '20']),
        threads(1),
        events(`c${preset}`),
      );
      const params = new Gpt(gptConfig(preset, { inVocab: V, outVocab: V, numClasses: CLASSES, grid: GRID,
        causal: true })).numParameters();
      compute[preset] = {
        parameters: params,
        gradientBytes: 4 * params,
        msPerSequenceOneThread: round(m.msPerStep / 32),
        loadavgBefore: m.loadavgBefore,
        loadavgAfter: m.loadavgAfter,
      };
    }
    const report = {
      kind: 'ctfgen.mpi-train', date: new Date().toISOString(),
      command: ['node', 'dist/bench/mpi-train.js', ...process.argv.slice(2)].join(' '),
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? '?', node: process.version,
        mpi: spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] },
      note: 'A baseline GPT of preset S (V 4096, 8×8 tokens: 64 tokens a sequence) trained on synthetic tokens, the ' +
        `global batch ${batch}. Medians over progress windows of 5 steps after the first. allreduceMs is rank 0's ` +
        'time in the step\'s allreduce, waits for the slower rank included. The machine is shared: see the load ' +
        'averages beside each figure (2 cores).',
      training: { preset: 'S', batch, steps, runs },
      computePerSequence: compute,
    };
    writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
    process.stderr.write(`wrote ${out}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
