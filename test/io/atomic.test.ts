import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileChecked, removeStaleTemporaries, writeFileAtomic, writeFileAtomicSync } from '../../src/io/atomic.js';

function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ctf-atomic-'));
  return Promise.resolve(fn(dir)).finally(() => rmSync(dir, { recursive: true, force: true }));
}

const temps = (dir: string): string[] => readdirSync(dir).filter((f) => f.includes('.tmp-'));

test('writeFileAtomic writes, replaces and leaves no temp files', () => withDir(async (dir) => {
  const p = join(dir, 'a.json');
  await writeFileAtomic(p, '{"v":1}');
  assert.equal(readFileSync(p, 'utf8'), '{"v":1}');
  await writeFileAtomic(p, new Uint8Array([1, 2, 3]));
  assert.deepEqual([...readFileSync(p)], [1, 2, 3]);
  writeFileAtomicSync(p, Buffer.from('sync'));
  assert.equal(readFileSync(p, 'utf8'), 'sync');
  assert.deepEqual(temps(dir), []);
}));

test('a failed write leaves no partial target and no temp file', () => withDir(async (dir) => {
  // The target is a non-empty directory: the data is written to the temp file, then rename fails.
  const target = join(dir, 'busy');
  mkdirSync(target);
  mkdirSync(join(target, 'child'));
  await assert.rejects(writeFileAtomic(target, 'x'.repeat(100000)), /cannot write .*busy/);
  assert.throws(() => writeFileAtomicSync(target, 'x'), /cannot write .*busy/);
  assert.deepEqual(temps(dir), []);
  assert.deepEqual(readdirSync(target), ['child']);
  // Missing directory.
  await assert.rejects(writeFileAtomic(join(dir, 'no', 'f'), 'x'), /cannot write .*no.f: ENOENT/);
  assert.deepEqual(readdirSync(dir), ['busy']);
}));

test('readFileChecked names missing files, directories and oversize files', () => withDir(async (dir) => {
  const p = join(dir, 'f.bin');
  await writeFileAtomic(p, new Uint8Array(10));
  assert.equal((await readFileChecked(p)).length, 10);
  await assert.rejects(readFileChecked(join(dir, 'none'), { what: 'checkpoint' }), /checkpoint .*none does not exist/);
  await assert.rejects(readFileChecked(dir), /is not a regular file/);
  await assert.rejects(readFileChecked(p, { maxBytes: 4 }), /f\.bin is 10 bytes, more than the 4 allowed/);
}));

test('a write removes the temporaries a dead writer left for its target, nothing else', () => withDir(async (dir) => {
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  const p = join(dir, 'model.safetensors');
  const stale = [`model.safetensors.tmp-${dead}-0123456789ab`, `model.safetensors.tmp-${dead}-ffffffffffff`];
  const kept = [
    `model.safetensors.tmp-${process.pid}-0123456789ab`,   // a live writer's
    `other.safetensors.tmp-${dead}-0123456789ab`,           // another target's
    `model.safetensors.tmp-${dead}-notours`,                // not a name writeFileAtomic makes
  ];
  for (const f of [...stale, ...kept]) writeFileSync(join(dir, f), 'partial');
  await writeFileAtomic(p, 'new');
  assert.deepEqual(temps(dir).sort(), [...kept].sort());
  assert.equal(readFileSync(p, 'utf8'), 'new');
  assert.deepEqual(removeStaleTemporaries(join(dir, 'x')), []);
}));
