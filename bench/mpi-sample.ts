// Sharded sampling throughput, measured (not a test): `ctfgen sample` of a random-weight run with a preset-S
// backbone (V 4096, K 128, tiny aux) as 1 process × 2 BLAS threads and as mpirun -np 2 × 1 thread, images/s as
// the command reports it (the slowest rank's time). Written into results/mpi.json as `sampling`.
//   node dist/bench/mpi-sample.js [--out results/mpi.json] [--n 512]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeRandomRun } from '../src/bench/sample-bench.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const MPI_ENV = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const load = (): number[] => loadavg().map((x) => Number(x.toFixed(2)));

async function main(): Promise<void> {
  const out = flag('out', 'results/mpi.json'), n = flag('n', '512');
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-mpi-sample-'));
  try {
    await writeRandomRun(join(dir, 'run'), {
      tokenizerPreset: 'S', codebook: 4096, k: 128, preset: 'S', auxPreset: 'tiny', numClasses: 10, imageSize: 32,
    });
    const args = (name: string): string[] => [CLI, 'sample', '--run', join(dir, 'run'), '--method', 'ctf', '--n', n,
      '--batch', '64', '--out', join(dir, `${name}.png`)];
    const runs = [
      { how: '1 process × 2 threads', cmd: process.execPath, args: args('one'), threads: '2' },
      { how: 'mpirun -np 2 × 1 thread', cmd: 'mpirun', threads: '1',
        args: ['-np', '2', '--bind-to', 'none', '-x', 'OPENBLAS_NUM_THREADS', process.execPath, ...args('two')] },
    ].map((r) => {
      const before = load();
      const p = spawnSync(r.cmd, r.args, { env: { ...MPI_ENV, OPENBLAS_NUM_THREADS: r.threads }, encoding: 'utf8' });
      if (p.status !== 0) throw new Error(`${r.how}: exited with ${p.status}\n${p.stderr}`);
      const m = /(\d+) images in ([\d.]+) s = ([\d.]+) img\/s/.exec(p.stderr);
      if (!m) throw new Error(`${r.how}: no images/s in\n${p.stderr}`);
      return { how: r.how, command: [r.cmd, ...r.args].join(' ').replaceAll(dir, '<tmp>').replaceAll(ROOT, ''),
        images: Number(m[1]), seconds: Number(m[2]), imagesPerSec: Number(m[3]), loadavgBefore: before,
        loadavgAfter: load() };
    });
    const report = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
    report['sampling'] = {
      command: ['node', 'dist/bench/mpi-sample.js', ...process.argv.slice(2)].join(' '),
      note: 'ctfgen sample --method ctf (--n per class, 10 classes) of a random-weight run (tokenizer S, V 4096, ' +
        'K 128, backbone S, aux tiny), ' +
        'batch 64; the images are byte for byte the same for both (docs/mpi.md)', runs,
    };
    writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
    process.stderr.write(`wrote the sampling figures into ${out}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
