// The collectives data-parallel training and sharded sampling need, behind one interface: an MPI world
// (mpi.ts) or a single process (LocalCommunicator, size 1, no MPI loaded), so callers never branch on which.

/** A typed array whose bytes can travel between ranks. */
export type NumericArray = Uint8Array | Int32Array | Float32Array | Float64Array;

export interface Communicator {
  readonly rank: number;
  readonly size: number;
  /** 'local': one process; 'mpi': a rank of an MPI world (which may still be of size 1 under PMIx). */
  readonly kind: 'local' | 'mpi';
  /** Every element summed over the ranks, in place; returns `values`. */
  allreduceSum(values: Float32Array): Float32Array;
  /** Every element averaged over the ranks (sum / size), in place; returns `values`. */
  allreduceMean(values: Float32Array): Float32Array;
  /** `root`'s values copied into every rank's `values` (the same length on every rank), in place. */
  broadcast<T extends NumericArray>(values: T, root?: number): T;
  /** Each rank's bytes (any length) to `root`, in rank order; null on the other ranks. */
  gatherBytes(bytes: Uint8Array, root?: number): Uint8Array[] | null;
  barrier(): void;
  /** Prints `message` and ends the whole job (every rank) with `code`. */
  abort(message: string, code?: number): never;
  /**
   * Every rank agreed to exit with `code` (a training stopped by a signal, saved): leaving with it then ends MPI
   * cleanly on each rank instead of aborting the job, so mpirun passes the code on without an abort report.
   */
  exitTogether(code: number): void;
}

export function bytesOf(a: NumericArray): Uint8Array {
  return a instanceof Uint8Array ? a : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** sum / size in place: the one place both communicators turn a sum into a mean. */
export function divideBySize(values: Float32Array, size: number): Float32Array {
  if (size !== 1) for (let i = 0; i < values.length; i++) values[i]! /= size;
  return values;
}

/** One process: every collective is the identity (a sum over one rank is its own values, bit for bit). */
export class LocalCommunicator implements Communicator {
  readonly rank = 0;
  readonly size = 1;
  readonly kind = 'local' as const;
  allreduceSum(values: Float32Array): Float32Array { return values; }
  allreduceMean(values: Float32Array): Float32Array { return values; }
  broadcast<T extends NumericArray>(values: T, root = 0): T {
    checkRoot(root, 1);
    return values;
  }
  gatherBytes(bytes: Uint8Array, root = 0): Uint8Array[] {
    checkRoot(root, 1);
    return [bytes];
  }
  barrier(): void {}
  exitTogether(): void {}
  abort(message: string, code = 1): never {
    if (message) process.stderr.write(message + '\n');
    process.exit(code);
  }
}

export function checkRoot(root: number, size: number): void {
  if (!(Number.isInteger(root) && root >= 0 && root < size))
    throw new RangeError(`communicator: root ${root} outside the ranks [0, ${size})`);
}
