// The MPI communicator under `mpirun -np N` (Open MPI over shared memory): every collective, seen from every rank.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SKIP_MPI, mpirun } from './mpirun.js';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

interface Seen { rank: number; size: number; kind: string; bigOk: boolean; mean: number[]; broadcast: number[] }

for (const np of [2, 3])
  test(`mpirun -np ${np}: allreduce sum (4 MB) and mean, broadcast from the last rank, gathers of any length`,
    { skip: SKIP_MPI, timeout: 120_000 }, async () => {
      const r = await mpirun(np, [WORKER, 'collectives']);
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { ranks: Seen[]; gathered: number[][]; floats: number[]; empty: number[] };
      const rankSum = (np * (np - 1)) / 2;
      assert.equal(out.ranks.length, np);
      out.ranks.forEach((s, rank) => {
        assert.deepEqual([s.rank, s.size, s.kind], [rank, np, 'mpi']);
        assert.ok(s.bigOk, `rank ${rank}: the 2^20-float sum`);
        // mean of [r, 2r + 1] over the ranks
        assert.deepEqual(s.mean, [rankSum / np, (2 * rankSum + np) / np]);
        assert.deepEqual(s.broadcast, [-5, 6, 2 ** 30]);
      });
      assert.deepEqual(out.gathered, Array.from({ length: np }, (_, r) => Array<number>(3 * r + 1).fill(r + 10)));
      const floats = Array.from({ length: np }, (_, r) => Array.from({ length: r + 1 }, (_, i) => r + i / 4));
      assert.deepEqual(out.floats, floats.flat());
      assert.deepEqual(out.empty, []);
    });
