// Splitting a list of images across the ranks and putting the pieces back together on one rank.
import type { Communicator, NumericArray } from './communicator.js';
import { bytesOf } from './communicator.js';

/** The images [first, end) one rank works on. */
export interface Shard { first: number; end: number }

/**
 * The share of rank `rank` of `n` items processed in chunks of `chunk`: whole chunks, contiguous, in rank order.
 * Every chunk is then exactly a chunk one process would make (the same items in the same batch), so any kernel
 * whose float rounding depends on the batch still gives the bits of one process. Shares differ by at most one
 * chunk; when there are fewer chunks than ranks the last ranks get none (rank 0, which reports progress, has work).
 */
export function shardOf(n: number, chunk: number, rank: number, size: number): Shard {
  if (!(Number.isInteger(n) && n >= 0 && Number.isInteger(chunk) && chunk >= 1))
    throw new RangeError(`shardOf: expected n ≥ 0 items in chunks of ≥ 1, got n ${n}, chunk ${chunk}`);
  if (!(Number.isInteger(rank) && rank >= 0 && rank < size))
    throw new RangeError(`shardOf: rank ${rank} outside [0, ${size})`);
  const chunks = Math.ceil(n / chunk);
  const c0 = Math.ceil((chunks * rank) / size), c1 = Math.ceil((chunks * (rank + 1)) / size);
  return { first: Math.min(n, c0 * chunk), end: Math.min(n, c1 * chunk) };
}

type NumericCtor<T extends NumericArray> = new (length: number) => T;

/**
 * Every rank's `part` concatenated in rank order on `root` (a new array of the same type); null elsewhere.
 * With one rank, `part` itself.
 */
export function gatherConcat<T extends NumericArray>(comm: Communicator, part: T, root = 0): T | null {
  if (comm.size === 1) return part;
  const parts = comm.gatherBytes(bytesOf(part), root);
  if (parts === null) return null;
  const total = parts.reduce((s, p) => s + p.byteLength, 0), width = part.BYTES_PER_ELEMENT;
  if (total % width !== 0)
    throw new RangeError(`gatherConcat: ${total} bytes gathered, not whole ${width}-byte elements`);
  const out = new (part.constructor as NumericCtor<T>)(total / width), bytes = bytesOf(out);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** The element-wise maximum over the ranks of small float64 values (timings: the slowest rank's) on `root`. */
export function maxOverRanks(comm: Communicator, values: Float64Array, root = 0): Float64Array | null {
  const all = gatherConcat(comm, values, root);
  if (all === null) return null;
  const out = Float64Array.from(values.map(() => -Infinity));
  for (let i = 0; i < all.length; i++) out[i % values.length] = Math.max(out[i % values.length]!, all[i]!);
  return out;
}
