// checkOutputs and lockOutput (src/io/outputs.ts): what a command may write, decided before it starts.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { encodeSafetensors } from '../../src/io/safetensors.js';
import { checkOutputs, existingSnapshots, lockOutput, lockPath, type OutputPlan } from '../../src/io/outputs.js';

function withDir(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ctf-outputs-'));
  return Promise.resolve(fn(dir)).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** A PID no process has: a child that has already exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  assert.ok(r.pid !== undefined && r.pid > 0);
  return r.pid;
}

function checkpoint(path: string): void {
  writeFileSync(path, encodeSafetensors({ w: { shape: [2], data: new Float32Array(2) } }, { kind: 'ctfgen.gpt' }));
}

test('an output that is one of the inputs is refused, through links too, naming both', () => withDir((dir) => {
  const tokens = join(dir, 'tokens.safetensors');
  checkpoint(tokens);
  const plan = (out: string, o: Partial<OutputPlan> = {}): OutputPlan =>
    ({ inputs: [{ role: '--tokens', path: tokens }], outputs: [{ role: '--out', path: out, artifact: true }], ...o });
  for (const force of [false, true])
    assert.throws(() => checkOutputs(plan(tokens, { force })),
      /--out .*tokens\.safetensors is the input --tokens .*tokens\.safetensors: a command never writes over what/);
  symlinkSync(tokens, join(dir, 'alias.safetensors'));
  assert.throws(() => checkOutputs(plan(join(dir, 'alias.safetensors'), { force: true })), /is the input --tokens/);
  linkSync(tokens, join(dir, 'hard.safetensors'));
  assert.throws(() => checkOutputs(plan(join(dir, 'hard.safetensors'), { force: true })), /is the input --tokens/);
  mkdirSync(join(dir, 'sub'));
  assert.throws(() => checkOutputs(plan(join(dir, 'sub', '..', 'tokens.safetensors'), { force: true })),
    /is the input --tokens/);
  checkOutputs(plan(join(dir, 'model.safetensors')));
}));

test('existing artifacts need --resume or --force; reports are replaced, but not over a safetensors file', () =>
  withDir((dir) => {
    const out = join(dir, 'model.safetensors'), png = join(dir, 'grid.png');
    checkpoint(out);
    writeFileSync(png, 'an old PNG');
    const artifact = { role: '--out', path: out, artifact: true };
    assert.throws(() => checkOutputs({ inputs: [], outputs: [artifact], force: false, resume: false }),
      /--out .*model\.safetensors exists; pass --resume to continue its run, or --force to replace it/);
    assert.throws(() => checkOutputs({ inputs: [], outputs: [artifact], force: false }),
      /exists; pass --force to replace it/);
    checkOutputs({ inputs: [], outputs: [artifact], force: false, resume: true });
    checkOutputs({ inputs: [], outputs: [artifact], force: true, resume: false });
    checkOutputs({ inputs: [], outputs: [{ role: '--out', path: png }] });
    assert.throws(() => checkOutputs({ inputs: [], outputs: [{ role: '--out', path: out }] }),
      /--out .*model\.safetensors exists and holds a safetensors file .*; remove it first, or choose another path/);
  }));

test('paths that cannot be written are refused before any work', () => withDir((dir) => {
  writeFileSync(join(dir, 'report.md'), '# report');
  mkdirSync(join(dir, 'run'));
  const one = (path: string, o: { directory?: boolean } = {}): void =>
    checkOutputs({ inputs: [], outputs: [{ role: '--out', path, ...o }] });
  assert.throws(() => one(join(dir, 'run')), /--out .*run is a directory; expected the path of a file to write/);
  assert.throws(() => one(join(dir, 'report.md', 's.png')), /report\.md is a file, so nothing can be written below it/);
  assert.throws(() => one(join(dir, 'report.md', 'a', 'b', 's.png')), /report\.md is a file/);
  assert.throws(() => one(join(dir, 'report.md'), { directory: true }), /is a file; expected a directory to write/);
  assert.throws(() => one('/dev/null'), /exists and is not a regular file/);
  one(join(dir, 'new', 'deeper', 's.png'));
  one(join(dir, 'run'), { directory: true });
  const twice = [{ role: '--out', path: join(dir, 'a.png') }, { role: '--progressive', path: join(dir, '.', 'a.png') }];
  assert.throws(() => checkOutputs({ inputs: [], outputs: twice }),
    /--progressive .*a\.png and --out .*a\.png are the same/);
}));

test('a directory output refuses to hold an input under a name it writes', () => withDir((dir) => {
  const each = join(dir, 'each');
  mkdirSync(each);
  writeFileSync(join(each, 'c0-1.png'), 'x');
  writeFileSync(join(each, 'notes.txt'), 'x');
  const plan = (input: string): OutputPlan => ({
    inputs: [{ role: '--tokenizer', path: input }],
    outputs: [{ role: '--each', path: each, directory: true, holds: /^c\d+-\d+\.png$/ }],
  });
  assert.throws(() => checkOutputs(plan(join(each, 'c0-1.png'))), /--each .*each\/c0-1\.png is the input --tokenizer/);
  checkOutputs(plan(join(each, 'notes.txt')));
}));

test('existingSnapshots lists the kept step copies of a checkpoint only', () => withDir((dir) => {
  const names = ['m.safetensors', 'm.step3.safetensors', 'm.step40.safetensors', 'mm.step3.safetensors'];
  names.push('m.step3.safetensors.tmp-1-ab');
  for (const f of names) writeFileSync(join(dir, f), '');
  assert.deepEqual(existingSnapshots(join(dir, 'm.safetensors'), '--out').map((o) => o.path).sort(),
    [join(dir, 'm.step3.safetensors'), join(dir, 'm.step40.safetensors')]);
}));

test('lockOutput: one holder at a time, released, a dead holder\'s lock replaced', () => withDir(async (dir) => {
  const out = join(dir, 'model.safetensors');
  const lock = lockOutput(out);
  assert.equal(readFileSync(lockPath(out), 'utf8').trim(), String(process.pid));
  lock.release();
  assert.ok(!existsSync(lockPath(out)));

  writeFileSync(lockPath(out), `${deadPid()}\n`);
  const again = lockOutput(out);
  assert.equal(readFileSync(lockPath(out), 'utf8').trim(), String(process.pid), 'the stale lock is replaced');
  again.release();

  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
  try {
    writeFileSync(lockPath(out), `${sleeper.pid}\n`);
    assert.throws(() => lockOutput(out),
      new RegExp(`--out .*model\\.safetensors is being written by another process \\(PID ${sleeper.pid}\\)`));
    assert.equal(readFileSync(lockPath(out), 'utf8').trim(), String(sleeper.pid), 'a live holder keeps its lock');
  } finally {
    sleeper.kill();
  }
}));

test('a lock is released when the process exits, also on an error or a signal', () => withDir(async (dir) => {
  const out = join(dir, 'model.safetensors');
  const mod = new URL('../../src/io/outputs.js', import.meta.url).href;
  const script = (end: string): string =>
    `import('${mod}').then((m) => { m.lockOutput(${JSON.stringify(out)}); ${end} });`;
  const thrown = spawnSync(process.execPath, ['-e', script('throw new Error("boom");')], { encoding: 'utf8' });
  assert.notEqual(thrown.status, 0);
  assert.ok(!existsSync(lockPath(out)), 'released after an uncaught error');

  const waits = script('console.log("locked"); setTimeout(() => {}, 30000);');
  const child = spawn(process.execPath, ['-e', waits], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.on('data', () => resolve()));
  assert.ok(existsSync(lockPath(out)));
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 143, 'a signal nothing else handles still ends the process, with 128 + its number');
  assert.ok(!existsSync(lockPath(out)), 'released on SIGTERM');
}));
