// The stage runner's rules with a stand-in for the command (src/run/stage.ts): a done stage is skipped, an interrupted
// training continues with --resume, a redone one gets --force over its old outputs, 130/143 and failures are not
// finishes, every attempt and every finish is recorded, stdout reaches its file only on success.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  finishedStages, recordedAs, runStage, stageArgs, type CtfgenExec, type Stage, type StageEvent,
} from '../../src/run/stage.js';

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-stage-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** A command that records its arguments, writes `writes` on exit 0 and prints `stdout`. */
function fakeExec(code: number, writes: string[] = [], stdout = ''): { exec: CtfgenExec; calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    exec: async (args) => {
      calls.push(args);
      if (code === 0) for (const f of writes) writeFileSync(f, 'x');
      return { code, stdout };
    },
  };
}

const lines = (path: string): Record<string, unknown>[] =>
  existsSync(path)
    ? readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) : [];

test('a stage runs until it finishes, then is skipped; its time is recorded once', () => withDir(async (dir) => {
  const out = join(dir, 'clusters.safetensors');
  const stage: Stage = { name: 'cluster', args: ['cluster', '--k', '8', '--out', out], done: [out] };
  const events: StageEvent['type'][] = [];
  const run = fakeExec(0, [out]);
  const first = await runStage(stage, { records: dir, exec: run.exec, threads: '1', emit: (e) => events.push(e.type) });
  assert.equal(first.status, 'finished');
  assert.deepEqual(run.calls, [stage.args]);
  const [time] = lines(join(dir, 'times.jsonl'));
  assert.deepEqual(Object.keys(time!), ['step', 'command', 'seconds', 'finishedAt', 'threads'], 'the scripts\' record');
  assert.equal(time!['command'], `ctfgen cluster --k 8 --out ${out}`);
  assert.equal(time!['threads'], '1');
  assert.match(String(time!['finishedAt']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.deepEqual(lines(join(dir, 'attempts.jsonl')).map((a) => [a['step'], a['exit']]), [['cluster', 0]]);

  const again = await runStage(stage, { records: dir, exec: run.exec, emit: (e) => events.push(e.type) });
  assert.equal(again.status, 'skipped');
  assert.equal(run.calls.length, 1, 'a done stage does not run');
  assert.deepEqual(events, ['run', 'end', 'skip']);
  assert.equal(lines(join(dir, 'times.jsonl')).length, 1);
  assert.ok(recordedAs(finishedStages(dir).get('cluster')!, stage));
  const changed = { ...stage, args: ['cluster', '--k', '16', '--out', out] };
  assert.ok(!recordedAs(finishedStages(dir).get('cluster')!, changed), 'another command is another stage');
}));

test('130 and 143 are stops, not finishes; the next run continues the training with --resume', () =>
  withDir(async (dir) => {
    const ckpt = join(dir, 'stage1.safetensors'),
      report = join(dir, 'stage1.report.json');
    const stage: Stage = {
      name: 'stage1',
      args: ['train', 'stage1', '--run', dir],
      done: [ckpt, report],
      resumes: ckpt,
      force: true,
    };
    for (const code of [130, 143]) {
      const stopped = await runStage(stage, { records: dir, exec: fakeExec(code).exec });
      assert.deepEqual([stopped.status, stopped.exit], ['stopped', code]);
    }
    assert.deepEqual(
      lines(join(dir, 'attempts.jsonl')).map((a) => a['exit']),
      [130, 143],
      'every attempt is recorded',
    );
    assert.equal(lines(join(dir, 'times.jsonl')).length, 0, 'a stop is not a finish');
    const failed = await runStage(stage, { records: dir, exec: fakeExec(1).exec });
    assert.equal(failed.status, 'failed');
    assert.equal(lines(join(dir, 'times.jsonl')).length, 0);

    // The stopped training saved its checkpoint and train state: the next attempt continues it.
    writeFileSync(ckpt, 'x');
    writeFileSync(join(dir, 'stage1.train-state.safetensors'), 'x');
    assert.deepEqual(stageArgs(stage), [...stage.args, '--resume']);
    const run = fakeExec(0, [report]);
    const resumed = await runStage(stage, { records: dir, exec: run.exec });
    assert.deepEqual([resumed.status, run.calls], ['finished', [[...stage.args, '--resume']]]);
    const [time] = lines(join(dir, 'times.jsonl'));
    assert.equal(time!['command'], `ctfgen train stage1 --run ${dir} --resume`);
    assert.ok(recordedAs(finishedStages(dir).get('stage1')!, stage), 'a resumed finish is a finish of the same stage');
    assert.equal(stageArgs(stage), null, 'done');
    // Redone (its inputs changed): anew, replacing the old outputs, never continuing the old run.
    assert.deepEqual(stageArgs(stage, true), [...stage.args, '--force']);
    assert.deepEqual(stageArgs({ ...stage, force: false }, true), stage.args);
  }));

test('stdout reaches its file only when the command finished; the file is part of being done', () =>
  withDir(async (dir) => {
  const png = join(dir, 'grid.png'), json = join(dir, 'sample.json');
  const stage: Stage = { name: 'sample', args: ['sample', '--json'], done: [png], stdoutTo: json };
  assert.equal((await runStage(stage, { records: dir, exec: fakeExec(1, [], '{"partial"').exec })).status, 'failed');
  assert.ok(!existsSync(json));
  await runStage(stage, { records: dir, exec: fakeExec(0, [png], '{"images": 4}\n').exec });
  assert.equal(readFileSync(json, 'utf8'), '{"images": 4}\n');
  rmSync(json);
  assert.deepEqual(stageArgs(stage), stage.args, 'without its stdout file the stage is not done');
}));

test('finishedStages keeps the last record of each stage and skips torn lines', () => withDir(async (dir) => {
  const path = join(dir, 'times.jsonl');
  appendFileSync(path, '{"step":"a","command":"ctfgen x","seconds":3,"finishedAt":"t"}\n');
  appendFileSync(path, '{"step":"a","command":"ctfgen y","seconds":5,"finishedAt":"t"}\n{"step":"b","comm');
  const records = finishedStages(dir);
  assert.deepEqual([...records.keys()], ['a']);
  assert.equal(records.get('a')!.command, 'ctfgen y');
  assert.equal(finishedStages(join(dir, 'none')).size, 0);
}));
