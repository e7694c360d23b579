// The communicator of this process: an MPI rank when an MPI launcher started it (mpirun -np N ctfgen …),
// otherwise a LocalCommunicator, and then MPI is never loaded. Created once, on first use.
import { LocalCommunicator, type Communicator } from './communicator.js';
import { MpiCommunicator } from './mpi.js';
import { launchedWorld, rankTag } from './world.js';

export { LocalCommunicator, bytesOf, type Communicator, type NumericArray } from './communicator.js';
export { gatherConcat, maxOverRanks, shardOf, type Shard } from './shard.js';
export { isMultiRank, launchedWorld, rankTag, type LaunchedWorld } from './world.js';

let current: Communicator | null = null;

export function communicator(): Communicator {
  if (current) return current;
  const world = launchedWorld();
  current = world === null || world.size === 1 ? new LocalCommunicator() : new MpiCommunicator(world);
  return current;
}

/** The communicator if one was created (an error handler must not start MPI just to abort). */
export function currentCommunicator(): Communicator | null {
  return current;
}

/**
 * Under an MPI launcher with several ranks: an uncaught exception or unhandled rejection on any rank prints a
 * message naming the rank and ends the whole job, instead of leaving the other ranks waiting in a collective.
 * One process keeps Node's own behaviour.
 */
export function abortJobOnUncaughtErrors(): void {
  const world = launchedWorld();
  if (world === null || world.size === 1) return;
  const stop = (what: string) => (e: unknown): void => {
    const text = e instanceof Error ? (e.stack ?? e.message) : String(e);
    const message = `ctfgen${rankTag()}: ${what}: ${text}\nending the MPI job (every rank)`;
    const comm = current;
    if (comm) comm.abort(message, 1);
    // MPI not started yet: exiting non-zero is enough, mpirun ends the job when a rank fails.
    process.stderr.write(message + '\n');
    process.exit(1);
  };
  process.on('uncaughtException', stop('uncaught exception'));
  process.on('unhandledRejection', stop('unhandled promise rejection'));
}
