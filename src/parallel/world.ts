// Which MPI world started this process, read from the environment the launcher sets — before, and without,
// loading MPI. `mpirun -np N ctfgen …` (Open MPI) sets OMPI_COMM_WORLD_SIZE / _RANK; a PMIx launcher (prterun,
// srun --mpi=pmix) sets PMIX_RANK; MPICH's Hydra sets PMI_SIZE / PMI_RANK. No variable: one process, no MPI.

export type Launcher = 'openmpi' | 'pmix' | 'pmi';

export interface LaunchedWorld {
  launcher: Launcher;
  rank: number;
  size: number | null;  // null when the launcher does not say (PMIx); MPI_Comm_size tells after init
}

function int(env: NodeJS.ProcessEnv, name: string): number | null {
  const v = env[name];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : null;
}

/** The world the launcher describes, or null when this process was not started by an MPI launcher. */
export function launchedWorld(env: NodeJS.ProcessEnv = process.env): LaunchedWorld | null {
  const ompiRank = int(env, 'OMPI_COMM_WORLD_RANK'), ompiSize = int(env, 'OMPI_COMM_WORLD_SIZE');
  if (ompiRank !== null && ompiSize !== null) return { launcher: 'openmpi', rank: ompiRank, size: ompiSize };
  const pmix = int(env, 'PMIX_RANK');
  if (pmix !== null) return { launcher: 'pmix', rank: pmix, size: null };
  const pmiRank = int(env, 'PMI_RANK'), pmiSize = int(env, 'PMI_SIZE');
  if (pmiRank !== null && pmiSize !== null) return { launcher: 'pmi', rank: pmiRank, size: pmiSize };
  return null;
}

/** True when this process is one of several ranks (a world of one runs as a plain process). */
export function isMultiRank(env: NodeJS.ProcessEnv = process.env): boolean {
  const w = launchedWorld(env);
  return w !== null && w.size !== 1;
}

/** " (rank r of n)" for messages when several ranks print, "" for one process. */
export function rankTag(env: NodeJS.ProcessEnv = process.env): string {
  const w = launchedWorld(env);
  return w === null || w.size === 1 ? '' : ` (rank ${w.rank} of ${w.size ?? '?'})`;
}
