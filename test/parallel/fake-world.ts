// A world of `size` ranks played one after another in this process, for testing sharded code without mpirun:
// ranks size−1 … 1 run first and leave what they gather; rank 0 runs last and collects it. Gathers to rank 0 are
// the only collective this supports (what sharded sampling uses), each rank making the same gathers in order.
import type { Communicator, NumericArray } from '../../src/parallel/index.js';

class PlayedRank implements Communicator {
  readonly kind = 'local' as const;
  private call = 0;
  constructor(readonly rank: number, readonly size: number, private readonly left: Uint8Array[][][]) {}

  allreduceSum(): Float32Array { return unsupported('allreduceSum'); }
  allreduceMean(): Float32Array { return unsupported('allreduceMean'); }
  broadcast<T extends NumericArray>(): T { return unsupported('broadcast'); }
  barrier(): void {}
  exitTogether(): void {}
  abort(message: string): never { throw new Error(`played rank ${this.rank} aborted: ${message}`); }

  gatherBytes(bytes: Uint8Array, root = 0): Uint8Array[] | null {
    if (root !== 0) throw new Error('the played world gathers to rank 0 only');
    const i = this.call++;
    if (this.rank !== 0) {
      ((this.left[i] ??= [])[this.rank] = [bytes.slice()]);
      return null;
    }
    return Array.from({ length: this.size }, (_, r) => (r === 0 ? bytes : this.left[i]?.[r]?.[0] ?? fail(i, r)));
  }
}

function unsupported(what: string): never {
  throw new Error(`the played world has no ${what}`);
}

function fail(call: number, rank: number): never {
  throw new Error(`played world: rank ${rank} made no gather number ${call}`);
}

/** run(comm) for ranks size−1 … 0; the results in rank order. */
export function playRanks<T>(size: number, run: (comm: Communicator) => T): T[] {
  const left: Uint8Array[][][] = [], out: T[] = [];
  for (let rank = size - 1; rank >= 0; rank--) out[rank] = run(new PlayedRank(rank, size, left));
  return out;
}
