// A rank that fails must end the whole MPI job quickly, non-zero, with a message naming it — never leave the other
// ranks waiting in a collective. Rank 0 waits in a barrier in every case (worker.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SKIP_MPI, mpirun } from './mpirun.js';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

const cases: [string, string, RegExp][] = [
  ['throws an uncaught exception', 'throw',
    /ctfgen \(rank 1 of 2\): uncaught exception: Error: rank one failed on purpose/],
  ['leaves a rejection unhandled', 'reject',
    /ctfgen \(rank 1 of 2\): unhandled promise rejection: Error: rank one rejected/],
  ['exits with code 3', 'exit', /ctfgen: rank 1 of 2 exits with code 3: ending the job/],
  ['is killed by SIGKILL', 'kill', /rank 1 .*exited on signal 9/],
];

for (const [what, scenario, message] of cases)
  test(`mpirun -np 2: a rank that ${what} ends the job within 10 s, non-zero, naming the rank`,
    { skip: SKIP_MPI, timeout: 60_000 }, async () => {
      const r = await mpirun(2, [WORKER, scenario], { timeoutMs: 30_000 });
      assert.ok(r.seconds < 10, `the job took ${r.seconds.toFixed(1)} s to end`);
      assert.notEqual(r.status, 0, `exit status ${r.status}, signal ${r.signal}`);
      assert.equal(r.signal, null, 'mpirun itself ended the job (not the test\'s timeout)');
      assert.match(r.stderr + r.stdout, message);
      assert.doesNotMatch(r.stdout, /passed the barrier/);
    });
