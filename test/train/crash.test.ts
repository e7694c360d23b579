// Crash test: a tiny GPT training killed with SIGKILL at seeded points (a seeded delay after a seeded checkpoint, so
// kills land between steps, inside steps and inside checkpoint writes) and resumed with --resume each time, ends
// with the same final checkpoint and train state, byte for byte, as one uninterrupted run.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/engine/rng.js';
import { makeTinyRun } from '../tiny-run.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const EPOCHS = 8, STEPS = 6 * EPOCHS, EVERY = 4;  // 48 images in batches of 8: 6 steps an epoch

/** Runs `ctfgen args`; once stderr reports a checkpoint at step ≥ killAfter, waits delayMs and kills it (SIGKILL). */
type Outcome = { killed: boolean; code: number | null; stderr: string };

function runAndKill(args: string[], killAfter: number, delayMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '', armed = false;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      stderr += s;
      const steps = [...stderr.matchAll(/checkpoint at step (\d+)/g)].map((m) => Number(m[1]));
      if (!armed && steps.some((s) => s >= killAfter)) {
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    child.on('exit', (code, signal) => resolve({ killed: signal === 'SIGKILL', code, stderr }));
  });
}

test('SIGKILL at seeded points, then --resume: the final checkpoint equals an uninterrupted run\'s', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-crash-'));
  try {
    const run = await makeTinyRun(dir);
    const train = (out: string): string[] => ['train', 'baseline', '--tokens', run.tokens, '--out', out,
      '--val-limit', '0', '--checkpoint-every', String(EVERY), '--progress-every', '1'];
    const fresh = (out: string): string[] =>
      [...train(out), '--preset', 'tiny', '--epochs', String(EPOCHS), '--batch', '8', '--seed', '3'];

    mkdirSync(join(dir, 'whole'));
    const whole = join(dir, 'whole', 'baseline.safetensors');
    const ref = spawnSync(process.execPath, [CLI, ...fresh(whole)], { encoding: 'utf8' });
    assert.equal(ref.status, 0, ref.stderr);

    mkdirSync(join(dir, 'killed'));
    const out = join(dir, 'killed', 'baseline.safetensors');
    const state = join(dir, 'killed', 'baseline.train-state.safetensors');
    const rng = new Rng(10);
    // Kill i after the checkpoint at step 4·(1 + 3i + {0,1,2}), then 0–29 ms later.
    const points = [0, 1, 2].map((i) => ({ after: EVERY * (1 + 3 * i + rng.int(3)), delayMs: rng.int(30) }));
    let kills = 0, finished = false;
    for (const p of points) {
      const r = await runAndKill(existsSync(state) ? [...train(out), '--resume'] : fresh(out), p.after, p.delayMs);
      assert.doesNotMatch(r.stderr, /internal error/, r.stderr);
      if (!r.killed) {
        assert.equal(r.code, 0, r.stderr);  // it finished before the kill landed
        finished = true;
        break;
      }
      kills++;
    }
    assert.ok(kills >= 2, `${kills} kills landed (points ${JSON.stringify(points)})`);
    if (!finished) {
      const last = spawnSync(process.execPath, [CLI, ...train(out), '--resume'], { encoding: 'utf8' });
      assert.equal(last.status, 0, last.stderr);
    }
    assert.equal(sha(out), sha(whole), 'final checkpoint');
    assert.equal(sha(state), sha(join(dir, 'whole', 'baseline.train-state.safetensors')), 'final train state');
    assert.match(readFileSync(join(dir, 'killed', 'baseline.report.json'), 'utf8'), new RegExp(`"steps": ${STEPS}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
