// The event log. A failed append (disk full: /dev/full answers every write with ENOSPC) stops training
// with a CtfError like a failed checkpoint and leaves the last checkpoint as it was; a torn last line left by a kill
// is cut off before the next run appends, and readers skip (and report) a torn line.
import assert from 'node:assert/strict';
import {
  existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { curveFromEventLog } from '../../src/cli/plot.js';
import { backward } from '../../src/engine/autograd.js';
import { mul } from '../../src/engine/ops/elementwise.js';
import { mean } from '../../src/engine/ops/reduce.js';
import { AdamW } from '../../src/engine/optim.js';
import { Tensor } from '../../src/engine/tensor.js';
import { CtfError } from '../../src/errors.js';
import { dropTornLastLine, eventLogSink } from '../../src/train/event-log.js';
import { runTraining, type TrainTask } from '../../src/train/loop.js';

const haveDevFull = existsSync('/dev/full');

test('dropTornLastLine cuts a line without its newline and nothing else', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-log-'));
  try {
    const p = join(dir, 'a.events.jsonl');
    const cases: [string, string][] = [
      ['{"a":1}\n{"b":2}\n', '{"a":1}\n{"b":2}\n'],
      ['{"a":1}\n{"b":', '{"a":1}\n'],
      ['{"b":', ''],
      ['', ''],
      ['x'.repeat(70000) + '\n' + 'y'.repeat(70000), 'x'.repeat(70000) + '\n'],  // the newline lies chunks back
    ];
    for (const [before, after] of cases) {
      writeFileSync(p, before);
      assert.equal(dropTornLastLine(p), before.length - after.length);
      assert.equal(readFileSync(p, 'utf8'), after);
    }
    assert.equal(dropTornLastLine(join(dir, 'absent')), 0);
    // The sink repairs before it appends: the next event starts on a line of its own.
    writeFileSync(p, '{"type":"start","step":0}\n{"type":"progr');
    eventLogSink(p)({ type: 'start', step: 4, totalSteps: 8, itemsPerStep: 1, resumed: true });
    const lines = readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number });
    assert.deepEqual(lines.map((e) => e.step), [0, 4]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const fullDisk = { skip: !haveDevFull && 'no /dev/full' };

test('a full disk while appending an event stops the run with a CtfError; the checkpoint stays', fullDisk, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-log-'));
  try {
    const full = join(dir, 'full.events.jsonl');
    symlinkSync('/dev/full', full);
    const sink = eventLogSink(full);
    const re = /cannot append to the event log .*full\.events\.jsonl: ENOSPC.* step 7; the last checkpoint is intact/;
    const isRe = (e: unknown): boolean => e instanceof CtfError && re.test(e.message);
    assert.throws(() => sink({ type: 'done', step: 7, elapsedSec: 1 }), isRe);
    const aDir = join(dir, 'is-a-dir.events.jsonl');
    mkdirSync(aDir);
    assert.throws(() => eventLogSink(aDir), /cannot write the event log .*is-a-dir\.events\.jsonl: EISDIR/);

    // Mid-run: the disk fills after the checkpoint at step 4; the run stops at the next event, step 4's file stays.
    const log = join(dir, 'run.events.jsonl'), ckpt = join(dir, 'ckpt.txt');
    const w = new Tensor(Float32Array.of(1, -2, 3), [3], { requiresGrad: true, name: 'w' });
    const task: TrainTask = {
      totalSteps: 12, stepsPerEpoch: 12, itemsPerStep: 1,
      forwardBackward() {
        const loss = mean(mul(w, w));
        backward(loss);
        return { loss: loss.item() };
      },
      async save(step) {
        writeFileSync(ckpt, `step ${step}`);
        if (step === 4) { renameSync(log, `${log}.old`); symlinkSync('/dev/full', log); }
        return ckpt;
      },
    };
    const optimizer = new AdamW([w], { lr: 0.1 }), emit = eventLogSink(log);
    const every = { checkpointEvery: 4, progressEvery: 1 };
    const training = runTraining(task, { optimizer, params: [w], lr: () => 0.1, startStep: 0, ...every, emit });
    const stoppedAt4 = (e: unknown): boolean => e instanceof CtfError && /ENOSPC.* stopped at step 4/.test(e.message);
    await assert.rejects(training, stoppedAt4);
    assert.equal(readFileSync(ckpt, 'utf8'), 'step 4');
    const lines = readFileSync(`${log}.old`, 'utf8').trim().split('\n');
    const logged = lines.map((l) => JSON.parse(l) as { type: string; step: number });
    assert.deepEqual(logged.filter((e) => e.type === 'progress').map((e) => e.step), [1, 2, 3, 4]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a reader skips a torn line and says so, at the end or joined to a resumed run (logs of older builds)', () => {
  const ev = (o: object): string => JSON.stringify({ ...o, time: '2025-01-01T00:00:00.000Z' });
  const progress = (step: number, loss: number): string => ev({
    type: 'progress', step, totalSteps: 8, epoch: step / 8, loss, lr: 1, metrics: {}, itemsPerSec: 1, elapsedSec: 1,
    etaSec: 1,
  });
  const start = (step: number, resumed: boolean): string => ev({ type: 'start', step, totalSteps: 8, resumed });
  const joined = '{"type":"progress","st' + start(4, true);  // a torn line, then a resume appended by an older build
  const torn = [start(0, false), progress(2, 3), progress(4, 2), joined, progress(6, 1), progress(8, 0.5)].join('\n');
  const c = curveFromEventLog(torn, 'old.events.jsonl', { metric: 'loss', x: 'step' });
  assert.deepEqual(c.points, [[2, 3], [4, 2], [6, 1], [8, 0.5]]);
  assert.match(c.notes.join('\n'), /old\.events\.jsonl:4: skipped a torn line of 22 bytes \(a run killed/);
  const live = [start(0, false), progress(2, 3), '{"type":"pro'].join('\n');
  const last = curveFromEventLog(live, 'live.events.jsonl', { metric: 'loss', x: 'step' });
  assert.deepEqual(last.points, [[2, 3]]);
  assert.match(last.notes[0]!, /live\.events\.jsonl:3: skipped a torn last line of 12 bytes/);
  const middle = [start(0, false), '{"type":"pro', progress(2, 3)].join('\n');
  assert.throws(() => curveFromEventLog(middle, 'bad', { metric: 'loss', x: 'step' }), /bad:2: not a JSON line/);
});
