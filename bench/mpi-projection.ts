// On paper, toward many machines: projected step time and scaling efficiency of data-parallel training for 4, 16
// and 64 hosts at presets S, M and L, from measured numbers (results/mpi.json from bench/mpi-train.ts, the
// allreduce times of results/mpi-allreduce.json), written back into results/mpi.json as `projection`.
//   node dist/bench/mpi-projection.js [--train results/mpi.json] [--allreduce results/mpi-allreduce.json]
//     [--host-speedup K]   a host computes K times faster than the one core measured (default 1)
//
// Model (no overlap: ctfgen reduces the whole flat gradient after the backward, then steps):
//   step(N, b) = b · c + t_ar(N)            b sequences per host, c the host's compute per sequence
//   t_ar(N)    = 2(N − 1)/N · G / BW + 2(N − 1) · α      ring allreduce of G gradient bytes
//   efficiency = b · c / step(N, b)         (speed-up = N · efficiency at the same per-host batch)
// and the per-host batch for efficiency ≥ 80% is b ≥ 4 · t_ar(N) / c.
import { readFileSync, writeFileSync } from 'node:fs';

interface Row { bytes: number; minMs: number }
interface Link { how: string; rows: Row[] }
interface Compute { parameters: number; gradientBytes: number; msPerSequenceOneThread: number }
interface Run { how: string; msPerStep: number; allreduceMs: number | null }
interface TrainReport {
  training: { preset: string; batch: number; runs: Run[] };
  computePerSequence: Record<string, Compute>;
  projection?: unknown;
}

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const round = (x: number): number => Number(x.toPrecision(3));

/** The 2-rank allreduce time of `bytes` on a link, interpolated log-log between the measured sizes (fastest call). */
function twoRankMs(link: Link, bytes: number): number {
  const rows = [...link.rows].sort((a, b) => a.bytes - b.bytes);
  const hi = rows.findIndex((r) => r.bytes >= bytes);
  if (hi <= 0) return hi === 0 ? rows[0]!.minMs : rows.at(-1)!.minMs * (bytes / rows.at(-1)!.bytes);
  const a = rows[hi - 1]!, b = rows[hi]!, f = Math.log(bytes / a.bytes) / Math.log(b.bytes / a.bytes);
  return Math.exp(Math.log(a.minMs) + f * Math.log(b.minMs / a.minMs));
}

interface Network { name: string; latencyMs: number; gbps: (bytes: number) => number; source: string }

/** A measured link: α from its smallest message (2 latencies for 2 ranks), bandwidth at the gradient's size. */
function measuredNetwork(name: string, link: Link): Network {
  const small = [...link.rows].sort((a, b) => a.bytes - b.bytes)[0]!;
  const alpha = small.minMs / 2;
  return {
    name, latencyMs: alpha, source: `${link.how}; fastest of repeated calls (results/mpi-allreduce.json)`,
    gbps: (bytes) => bytes / ((twoRankMs(link, bytes) - 2 * alpha) / 1000) / 1e9,
  };
}

/** A network by its nominal figures (an assumption, for comparison). */
const nominal = (name: string, gbps: number, latencyUs: number): Network =>
  ({ name, latencyMs: latencyUs / 1000, gbps: () => gbps, source: `assumed: ${gbps} GB/s, ${latencyUs} µs latency` });

const allreduceMs = (net: Network, N: number, bytes: number): number =>
  ((2 * (N - 1)) / N) * (bytes / (net.gbps(bytes) * 1e9)) * 1000 + 2 * (N - 1) * net.latencyMs;

function main(): void {
  const trainPath = flag('train', 'results/mpi.json'), arPath = flag('allreduce', 'results/mpi-allreduce.json');
  const report = JSON.parse(readFileSync(trainPath, 'utf8')) as TrainReport;
  const links = (JSON.parse(readFileSync(arPath, 'utf8')) as { links: Record<string, Link> }).links;
  const runs = report.training.runs, batch = report.training.batch;
  const S = report.computePerSequence['S']!;
  // A host computes a sequence in the one-thread time measured here over --host-speedup (default 1: one core as
  // measured; a host k times faster needs a k times larger batch for the same efficiency).
  const hostSpeedup = Number(flag('host-speedup', '1'));
  const networks = [
    measuredNetwork('measured TCP between two network namespaces (veth)', links['tcp']!),
    nominal('10 Gb Ethernet', 1.1, 30), nominal('100 Gb/s InfiniBand', 11, 3),
  ];
  const hostsRun = runs.find((r) => r.how.startsWith('2 hosts'));
  const check = hostsRun && {
    what: 'the model against the measured 2-host run (preset S, global batch split 2 ways)',
    predictedMsPerStep: round((batch / 2) * (S.msPerSequenceOneThread) + allreduceMs(networks[0]!, 2, S.gradientBytes)),
    measuredMsPerStep: hostsRun.msPerStep, measuredAllreduceMs: hostsRun.allreduceMs,
    predictedAllreduceMs: round(allreduceMs(networks[0]!, 2, S.gradientBytes)),
    note: 'on the shared machine the two ranks got about half a core each (load ~4.5 on 2 cores) while the ' +
      'one-thread compute was measured as one process, and the in-step allreduce holds waits for the slower rank: ' +
      'the gap is CPU contention, not the model',
  };
  const table = networks.map((net) => ({
    network: net.name, source: net.source, latencyMs: round(net.latencyMs),
    presets: Object.entries(report.computePerSequence).map(([preset, c]) => {
      const perSeq = c.msPerSequenceOneThread / hostSpeedup;
      return {
        preset, parameters: c.parameters, gradientMB: round(c.gradientBytes / 1e6), hostMsPerSequence: round(perSeq),
        gbpsAtGradient: round(net.gbps(c.gradientBytes)),
        hosts: [4, 16, 64].map((N) => {
          const ar = allreduceMs(net, N, c.gradientBytes), b = batch / N, step = b * perSeq + ar;
          const b80 = Math.ceil((4 * ar) / perSeq), step80 = b80 * perSeq + ar;
          return {
            N,
            allreduceMs: round(ar),
            [`globalBatch${batch}`]: {
              perHostBatch: round(b),
              stepMs: round(step),
              efficiency: round((b * perSeq) / step),
            },
            perHostBatchFor80: b80,
            globalBatchFor80: b80 * N,
            stepMsAt80: round(step80),
          };
        }),
      };
    }),
  }));
  report.projection = {
    model: 'step(N, b) = b·c + t_ar(N); t_ar(N) = 2(N−1)/N · G/BW + 2(N−1)·α (ring allreduce, no overlap with ' +
      'compute); efficiency = b·c / step; per-host batch for ≥ 80%: b ≥ 4·t_ar/c',
    assumptions: [
      `a host computes a sequence in the one-thread time measured here / ${hostSpeedup} (--host-speedup); a ` +
        'host k times faster needs a k times larger per-host batch for the same efficiency',
      'on this loaded machine (load ~4 on 2 cores) 2 BLAS threads gave no speed-up over 1, so one measured core is ' +
        'the host unit',
      'compute per sequence is constant in the batch (no small-batch slowdown; below ~8 sequences a host the ' +
        'GEMMs get thin and this is optimistic)',
      'gradients are float32, reduced once per step as one flat buffer (no bucketing, no overlap with the backward)',
      'the measured link\'s bandwidth is taken at each preset\'s gradient size from 2-rank calls on a loaded ' +
        'machine (memory copies compete with compute); the nominal networks are assumptions',
      'no stragglers: every host equally fast (the measured in-step allreduce also holds waits for the slower rank)',
    ],
    check, networks: table,
  };
  writeFileSync(trainPath, JSON.stringify(report, null, 2) + '\n');
  process.stderr.write(`wrote the projection into ${trainPath}\n`);
}

main();
