// What keeps the ranks of a data-parallel training run in step, besides the per-step allreduce (grad-sync.ts):
// a resumed run's train state read once, on rank 0, and handed to every rank (the ranks need not share a file
// system, and they start from the same bytes); and at every checkpoint the ranks' weights compared, since MPI does
// not promise the same reduction order on every rank and a rank that drifted would silently train another model.
import { createHash } from 'node:crypto';
import type { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import { readFileChecked } from '../io/atomic.js';
import { decodeSafetensors } from '../io/safetensors.js';
import { bytesOf, type Communicator, type NumericArray } from '../parallel/communicator.js';
import { gatherConcat } from '../parallel/shard.js';
import { loadTrainState, parseTrainState, type LoadedTrainState } from './checkpoint.js';

/** Rank 0's bytes on every rank (`bytes` is read on rank 0 only; the others pass null). */
export function bytesFromRank0(comm: Communicator, bytes: Uint8Array | null): Uint8Array {
  if (comm.size === 1) return bytes!;
  const length = Float64Array.of(comm.rank === 0 ? bytes!.length : 0);
  comm.broadcast(length, 0);
  const out = comm.rank === 0 ? bytes! : new Uint8Array(length[0]!);
  return comm.broadcast(out, 0);
}

/** The train state at `path` as rank 0 reads it, on every rank. */
export async function loadTrainStateOnRanks(comm: Communicator, path: string, task: string): Promise<LoadedTrainState> {
  if (comm.size === 1) return loadTrainState(path, task);
  const mine = comm.rank === 0 ? await readFileChecked(path, { what: 'safetensors file' }) : null;
  const bytes = bytesFromRank0(comm, mine && new Uint8Array(mine.buffer, mine.byteOffset, mine.byteLength));
  return parseTrainState(decodeSafetensors(bytes, path), task);
}

/** sha256 of the parameters' bytes, in order. */
export function weightsDigest(params: readonly Tensor[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of params) h.update(new Uint8Array(p.f32.buffer, p.f32.byteOffset, p.f32.byteLength));
  return new Uint8Array(h.digest());
}

/**
 * Every rank's weights hash compared on rank 0 after `step` steps; a difference ends the job (every rank) with a
 * message naming the ranks, before anything is written.
 */
export function checkRanksInStep(comm: Communicator, params: readonly Tensor[], step: number): void {
  if (comm.size === 1) return;
  const all = comm.gatherBytes(weightsDigest(params), 0);
  if (all === null) return;
  const hex = all.map((d) => Buffer.from(d).toString('hex'));
  const off = hex.flatMap((h, r) => (h === hex[0] ? [] : [r]));
  if (off.length > 0)
    comm.abort(`ctfgen: after step ${step} the weights of rank(s) ${off.join(', ')} differ from rank 0's ` +
      `(${hex[off[0]!]!.slice(0, 16)}… vs ${hex[0]!.slice(0, 16)}…): the ranks no longer train one model; ` +
      'ending the job before the checkpoint is written — resume from the last checkpoint', 1);
}

/** Every rank's `part` concatenated in rank order, on every rank (the rows of a batch sharded with shardOf). */
export function allGatherConcat<T extends NumericArray>(comm: Communicator, part: T): T {
  if (comm.size === 1) return part;
  const all = gatherConcat(comm, part, 0);
  const bytes = bytesFromRank0(comm, all && bytesOf(all));
  const width = part.BYTES_PER_ELEMENT, copy = bytes.slice();  // aligned for the typed view
  return new (part.constructor as new (b: ArrayBuffer, o: number, n: number) => T)(copy.buffer, 0,
    copy.byteLength / width);
}

/** Small float64 sums over the ranks, on every rank (added in rank order on rank 0, then broadcast). */
export function sumOverRanks(comm: Communicator, values: Float64Array): Float64Array {
  if (comm.size === 1) return values;
  const all = comm.gatherBytes(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 0);
  const out = new Float64Array(values.length);
  if (all !== null)
    for (const part of all) {
      const v = new Float64Array(part.buffer.slice(part.byteOffset, part.byteOffset + part.byteLength));
      if (v.length !== values.length)
        throw new CtfError(`sumOverRanks: a rank sent ${v.length} values, expected ${values.length}`);
      for (let i = 0; i < v.length; i++) out[i] = out[i]! + v[i]!;
    }
  return comm.broadcast(out, 0);
}
