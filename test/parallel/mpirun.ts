// Starting `mpirun -np N` from a test (as root in CI: Open MPI refuses root unless told), and whether to skip:
// only where mpirun is absent and CI is not set; in CI a missing MPI fails the suite.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

export const MPI_ENV: NodeJS.ProcessEnv = {
  ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1',
  OPENBLAS_NUM_THREADS: '1',  // 2 ranks on 2 cores: one BLAS thread each
};

/** The random-weight run (writeRandomRun) the parallel tests sample. */
export const TINY_RUN = {
  tokenizerPreset: 'tiny', codebook: 64, k: 8, preset: 'tiny', auxPreset: 'tiny', numClasses: 10, imageSize: 32,
} as const;

const found = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
export const HAVE_MPIRUN = !found.error && found.status === 0;
export const SKIP_MPI: string | false = !HAVE_MPIRUN && !process.env['CI'] &&
  'mpirun not found: install Open MPI (CTFGEN_MPI=1 bash scripts/setup.sh) to run the MPI tests';

export interface MpiRun {
  status: number | null; signal: string | null; stdout: string; stderr: string; seconds: number;
}

/** `mpirun -np np node args…` to completion (killed after timeoutMs); extra mpirun flags first. */
export function mpirun(np: number, args: string[], o: { timeoutMs?: number; mpiFlags?: string[] } = {},
): Promise<MpiRun> {
  return startMpirun(np, args, o).done;
}

export interface StartedMpirun {
  child: ChildProcess;
  done: Promise<MpiRun>;
  /** stderr so far. */
  stderr(): string;
}

/** Starts `mpirun -np np node args…` and returns at once; `done` settles when it ends. */
export function startMpirun(np: number, args: string[], o: { timeoutMs?: number; mpiFlags?: string[] } = {},
): StartedMpirun {
  const t0 = performance.now();
  const command = ['--oversubscribe', '-np', String(np), ...(o.mpiFlags ?? []), process.execPath, ...args];
  const child = spawn('mpirun', command, { env: MPI_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
  const done = new Promise<MpiRun>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, seconds: (performance.now() - t0) / 1000 });
    });
  });
  return { child, done, stderr: () => stderr };
}

/** The pid of rank `rank` among mpirun's children (its environment names the rank), or null. */
export function rankPid(mpirunPid: number, rank: number): number | null {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== mpirunPid) continue;
      const env = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (env.includes(`OMPI_COMM_WORLD_RANK=${rank}`)) return Number(entry);
    } catch {
      // the process ended while we looked
    }
  }
  return null;
}
