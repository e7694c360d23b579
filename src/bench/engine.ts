// `ctfgen bench engine`: each case run by our engine and by the PyTorch peer in worker processes, in
// alternation (the host's speed drifts minute to minute), under the same OpenBLAS environment.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { CtfError } from '../errors.js';
import { BENCH_CASES, PEAK_GFLOPS, caseFlops, stepsPerUnit, type BenchCase } from './cases.js';
import { Peer, type PeerInfo } from './peer.js';

export interface EngineBenchOptions {
  cases: string[];       // subset of BENCH_CASES names
  reps: number;          // measured rounds per case (each round: one step of ours, one of the peer's)
  warmup: number;        // unmeasured steps per implementation before the rounds
  python: string;        // interpreter with torch (Debian's /usr/bin/python3)
  torchThreads?: number; // override every case's torch.set_num_threads for the peer
}

export interface SideResult { ms: number[]; medianMs: number; gflops: number; peakFraction: number; info: PeerInfo }
export interface CaseResult {
  case: string; what: string; config: BenchCase['config']; gflopPerStep: number;
  ours: SideResult; torch: SideResult;
  ours_ms: number; torch_ms: number; ratio: number;
  /** decode case: medians per decode step (the unit is a whole generation) */
  ours_step_ms?: number; torch_step_ms?: number;
}
export interface EngineBenchReport {
  kind: 'ctfgen.bench.engine';
  version: 1;
  date: string;
  env: {
    OPENBLAS_CORETYPE: string | null;
    OPENBLAS_L2_SIZE: string | null;
    OPENBLAS_NUM_THREADS: string | null;
    OPENBLAS_THREAD_TIMEOUT: string | null;
    node: string;
  };
  reps: number;
  warmup: number;
  cases: CaseResult[];
}

export type BenchEvent =
  | { type: 'case-start'; case: string; what: string }
  | { type: 'round'; case: string; round: number; of: number; oursMs: number; torchMs: number };

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new CtfError('bench: cannot find the ctfgen package root');
    dir = up;
  }
  return dir;
}

export async function runEngineBench(
  o: EngineBenchOptions,
  emit: (e: BenchEvent) => void = () => {},
): Promise<EngineBenchReport> {
  const root = packageRoot();
  const chosen = BENCH_CASES.filter((c) => o.cases.includes(c.name));
  const unknown = o.cases.filter((n) => !BENCH_CASES.some((c) => c.name === n));
  if (unknown.length)
    throw new CtfError(
      `bench engine: unknown case(s) ${unknown.join(', ')}; known: ${BENCH_CASES.map((c) => c.name).join(', ')}`,
    );
  if (!existsSync(o.python))
    throw new CtfError(
      `bench engine: ${o.python} not found; the PyTorch peer needs Debian's python3-torch (CTFGEN_TORCH=1 npm run ` +
      `setup)`,
    );
  const results: CaseResult[] = [];
  for (const bc of chosen) {
    emit({ type: 'case-start', case: bc.name, what: bc.what });
    // Fresh workers per case, so each peak-memory figure belongs to that case alone.
    const ours = new Peer('ours', process.execPath, [join(root, 'dist', 'src', 'bench', 'worker.js')]);
    const torch = new Peer('torch', o.python, [
      join(root, 'bench', 'torch_peer.py'),
      '--threads',
      String(o.torchThreads ?? bc.torchThreads),
    ]);
    try {
      for (const p of [ours, torch]) await p.call({ cmd: 'setup', case: bc.name, config: bc.config });
      for (const p of [ours, torch]) await p.call({ cmd: 'run', n: o.warmup });
      const msOurs: number[] = [],
        msTorch: number[] = [];
      for (let r = 0; r < o.reps; r++) {
        const a = (await ours.call<{ ms: number[] }>({ cmd: 'run', n: 1 })).ms[0]!;
        const b = (await torch.call<{ ms: number[] }>({ cmd: 'run', n: 1 })).ms[0]!;
        msOurs.push(a);
        msTorch.push(b);
        emit({ type: 'round', case: bc.name, round: r + 1, of: o.reps, oursMs: a, torchMs: b });
      }
      const flop = caseFlops(bc);
      const side = async (p: Peer, ms: number[]): Promise<SideResult> => {
        const med = median(ms),
          gflops = flop / (med / 1e3) / 1e9;
        return {
          ms,
          medianMs: med,
          gflops,
          peakFraction: gflops / PEAK_GFLOPS,
          info: await p.call<PeerInfo>({ cmd: 'info' }),
        };
      };
      const so = await side(ours, msOurs),
        st = await side(torch, msTorch);
      results.push({
        case: bc.name,
        what: bc.what,
        config: bc.config,
        gflopPerStep: flop / 1e9,
        ours: so,
        torch: st,
        ours_ms: so.medianMs,
        torch_ms: st.medianMs,
        ratio: st.medianMs / so.medianMs,
        ...(stepsPerUnit(bc) > 1
          ? { ours_step_ms: so.medianMs / stepsPerUnit(bc), torch_step_ms: st.medianMs / stepsPerUnit(bc) }
          : {}),
      });
    } finally {
      await Promise.allSettled([ours.close(), torch.close()]);
    }
  }
  return {
    kind: 'ctfgen.bench.engine',
    version: 1,
    date: new Date().toISOString(),
    env: {
      OPENBLAS_CORETYPE: process.env['OPENBLAS_CORETYPE'] ?? null,
      OPENBLAS_L2_SIZE: process.env['OPENBLAS_L2_SIZE'] ?? null,
      OPENBLAS_NUM_THREADS: process.env['OPENBLAS_NUM_THREADS'] ?? null,
      OPENBLAS_THREAD_TIMEOUT: process.env['OPENBLAS_THREAD_TIMEOUT'] ?? null,
      node: process.version,
    },
    reps: o.reps,
    warmup: o.warmup,
    cases: results,
  };
}
