// Allreduce time against buffer size between two ranks, over shared memory (one host) and over TCP between two
// network namespaces (scripts/netns-hosts.sh): the cost data-parallel training pays once per step for its flat
// gradient buffer. Not a test.
//   node dist/bench/mpi-allreduce.js [--out results/mpi-allreduce.json]   (as root for the TCP link)
// Started without an MPI launcher it drives both runs; under mpirun it is a rank and rank 0 prints one JSON line.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { communicator, launchedWorld } from '../src/parallel/index.js';

const SIZES = Array.from({ length: 9 }, (_, i) => 2 ** (8 + 2 * i));  // 256 … 16 Mi floats (1 KiB … 64 MiB)

interface Row { floats: number; bytes: number; reps: number; minMs: number; medianMs: number; busGBpsAtMin: number }

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const round = (x: number): number => Number(x.toPrecision(4));

/** One rank: every size, a barrier before each call so the ranks start together; rank 0's clock. */
function rank(): void {
  const comm = communicator(), rows: Row[] = [];
  for (const n of SIZES) {
    const buf = new Float32Array(n).fill(comm.rank + 1);
    const reps = Math.max(5, Math.min(50, Math.floor(2 ** 27 / (4 * n))));
    const ms: number[] = [];
    for (let r = -2; r < reps; r++) {  // two warm-up calls
      comm.barrier();
      const t0 = performance.now();
      comm.allreduceSum(buf);
      if (r >= 0) ms.push(performance.now() - t0);
    }
    const min = Math.min(...ms), bytes = 4 * n;
    // Bus bandwidth (the NCCL convention): the bytes each rank must move, 2(p − 1)/p · size, over the time. At the
    // fastest call: on a busy machine the median also holds the waits for a CPU.
    const busGBps = ((2 * (comm.size - 1)) / comm.size) * bytes / (min / 1000) / 1e9;
    rows.push({ floats: n, bytes, reps, minMs: round(min), medianMs: round(median(ms)), busGBpsAtMin: round(busGBps) });
  }
  if (comm.rank === 0) process.stdout.write(JSON.stringify({ ranks: comm.size, rows }) + '\n');
}

/** Runs cmd (an mpirun of this file) and returns rank 0's JSON line. */
function launch(cmd: string, args: string[]): object {
  const env = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as object;
}

function drive(out: string): void {
  const self = fileURLToPath(import.meta.url), node = process.execPath;
  const links: Record<string, object> = {
    sharedMemory: {
      how: 'mpirun -np 2 on one host (Open MPI vader BTL)',
      ...launch('mpirun', ['-np', '2', '--bind-to', 'none', node, self]),
    },
  };
  if (process.getuid?.() === 0) {
    const netns = fileURLToPath(new URL('../../scripts/netns-hosts.sh', import.meta.url));
    links['tcp'] = {
      how: 'one rank in each of two network namespaces joined by a veth pair (scripts/netns-hosts.sh; btl tcp,self)',
      ...launch('bash', [netns, 'mpirun', '-np', '2', '--map-by', 'node', node, self]),
    };
    spawnSync('bash', [netns, 'down'], { stdio: 'inherit' });
  } else {
    links['tcp'] = { skipped: 'not root: the network namespaces need root' };
  }
  const mpi = spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '';
  const report = {
    kind: 'ctfgen.mpi-allreduce', date: new Date().toISOString(),
    command: `node dist/bench/mpi-allreduce.js --out ${out}`,
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? null, loadavg: loadavg(), node: process.version, mpi },
    note: 'float32 MPI_Allreduce(MPI_SUM) in place on a JS Float32Array between 2 ranks, each call after a barrier. ' +
      'The load average counts other work on the machine: where it exceeds the cores, the median includes waits ' +
      'for a CPU, and the fastest call (minMs) is the better measure of the link.',
    links,
  };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
  console.error(`wrote ${out}`);
}

if (launchedWorld()) rank();
else {
  const i = process.argv.indexOf('--out');
  drive(i > 0 ? process.argv[i + 1]! : 'results/mpi-allreduce.json');
}
