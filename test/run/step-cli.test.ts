// experiments/lib.sh's train_step through `ctfgen step` on a real training: a SIGTERM to the script's process group
// stops the lane with 143 (the training saved; the step is not finished), the next launch continues it with --resume
// to the end, the one after skips it; times.jsonl gets one finish, attempts.jsonl every attempt.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { makeTinyRun } from '../tiny-run.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const LIB = fileURLToPath(new URL('../../../experiments/lib.sh', import.meta.url));

test('lib.sh train_step: a stopped step exits 143 unfinished, the next launch resumes it, the one after skips it',
  async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-step-'));
  try {
    const run = await makeTinyRun(dir);
    const out = join(dir, 'm.safetensors'), report = join(dir, 'm.report.json');
    // 40 epochs of 6 steps: long enough to be stopped, short enough to finish.
    const script = `set -euo pipefail; RUN=${dir}; CTFGEN=(${process.execPath} ${CLI}); LOG_TAG=t; source ${LIB}
      train_step gpt ${report} ${out} -- train baseline --tokens ${run.tokens} --out ${out} --preset tiny --epochs 40 \\
        --batch 8 --val-limit 0 --checkpoint-every 6 --progress-every 1`;
    const lane = spawn('bash', ['-c', script], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    await new Promise<void>((resolve) => lane.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/starting, 240 steps/.test(stderr)) resolve();
    }));
    process.kill(-lane.pid!, 'SIGTERM');  // the lane's process group, as regime.sh stops a lane
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
      lane.on('close', (c, s) => resolve([c, s])));
    // bash dies of the signal once its command returns, or exits 143 under set -e: a shell sees 143 either way.
    assert.ok(code === 143 || signal === 'SIGTERM', `${code} ${signal}: ${stderr}`);
    assert.match(stderr, /\[t \d\d:\d\d:\d\d\] gpt: ctfgen train baseline /);
    assert.match(stderr, /SIGTERM — saved step \d+ to .*m\.train-state\.safetensors; continue with --resume/);
    assert.match(stderr, /gpt: not finished \(exit 143\)/);
    assert.ok(existsSync(join(dir, 'm.train-state.safetensors')) && !existsSync(report));
    assert.ok(!existsSync(join(dir, 'times.jsonl')), 'a stop is not a finish');

    const again = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /gpt: ctfgen train baseline .* --resume\n/);
    assert.match(again.stderr, /resuming at step [1-9]\d*/);
    assert.match(again.stderr, /gpt: finished in \d+ s/);
    assert.match(readFileSync(report, 'utf8'), /"steps": 240/);

    const third = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
    assert.equal(third.status, 0, third.stderr);
    assert.match(third.stderr, /gpt: done before \(.*m\.report\.json\)/);
    assert.doesNotMatch(third.stderr, /starting|resuming/);

    const jsonl = (f: string): Record<string, unknown>[] =>
      readFileSync(join(dir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(jsonl('attempts.jsonl').map((a) => [a['step'], a['exit']]), [['gpt', 143], ['gpt', 0]]);
    const times = jsonl('times.jsonl');
    assert.equal(times.length, 1);
    assert.match(String(times[0]!['command']), /^ctfgen train baseline --tokens .* --progress-every 1 --resume$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
