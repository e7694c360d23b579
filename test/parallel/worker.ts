// Run under `mpirun -np N node dist/test/parallel/worker.js SCENARIO` by the parallel tests (not a test itself):
//   collectives  every collective of the communicator; rank 0 prints what it saw as JSON on stdout
//   throw        rank 1 throws an uncaught exception while rank 0 waits in a barrier
//   reject       rank 1 leaves a promise rejection unhandled while rank 0 waits
//   exit         rank 1 exits with code 3 (as a command that failed) while rank 0 waits
//   kill         rank 1 is killed by SIGKILL while rank 0 waits
import { abortJobOnUncaughtErrors, communicator, gatherConcat } from '../../src/parallel/index.js';

abortJobOnUncaughtErrors();
const comm = communicator();
const scenario = process.argv[2];
const { rank, size } = comm;

if (scenario === 'collectives') {
  const big = new Float32Array(1 << 20).map((_, i) => (i % 7) + rank);  // rank r: (i mod 7) + r
  comm.allreduceSum(big);
  const mean = Float32Array.of(rank, 2 * rank + 1);
  comm.allreduceMean(mean);
  const fromLast = rank === size - 1 ? Int32Array.of(-5, 6, 2 ** 30) : new Int32Array(3);
  comm.broadcast(fromLast, size - 1);
  const bytes = comm.gatherBytes(new Uint8Array(3 * rank + 1).fill(rank + 10));
  const floats = gatherConcat(comm, Float32Array.from({ length: rank + 1 }, (_, i) => rank + i / 4));
  const empty = gatherConcat(comm, new Int32Array(0));
  comm.barrier();
  // Every rank checks what it got; rank 0 reports.
  let bigOk = true;
  const rankSum = (size * (size - 1)) / 2;
  for (let i = 0; i < big.length; i++) if (big[i] !== size * (i % 7) + rankSum) { bigOk = false; break; }
  const seen = { rank, size, kind: comm.kind, bigOk, mean: [...mean], broadcast: [...fromLast] };
  const all = comm.gatherBytes(new TextEncoder().encode(JSON.stringify(seen)));
  if (rank === 0)
    process.stdout.write(JSON.stringify({
      ranks: all!.map((b) => JSON.parse(new TextDecoder().decode(b)) as unknown),
      gathered: bytes!.map((b) => [...b]), floats: [...floats!], empty: [...empty!],
    }) + '\n');
} else if (rank === 1 && scenario === 'throw') {
  setTimeout(() => { throw new Error('rank one failed on purpose'); }, 200);
} else if (rank === 1 && scenario === 'reject') {
  void Promise.reject(new Error('rank one rejected on purpose'));
} else if (rank === 1 && scenario === 'exit') {
  setTimeout(() => process.exit(3), 200);
} else if (rank === 1 && scenario === 'kill') {
  setTimeout(() => process.kill(process.pid, 'SIGKILL'), 200);
} else {
  comm.barrier();  // rank 0 waits here for a rank that never comes
  process.stdout.write(`rank ${rank} passed the barrier\n`);
}
