// The CLI's last line of defence: an error of the operating system (not a CtfError) that a command meets is still
// one clean line naming the call and the path, exit 1; anything else is a bug and says so.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { systemErrorMessage } from '../../src/errors.js';

function caught(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  assert.fail('expected an error');
}

test('systemErrorMessage: a file in the way of a directory, a missing file; null for a bug', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-errors-'));
  try {
    const file = join(dir, 'report.md');
    writeFileSync(file, '# a file\n');
    assert.equal(systemErrorMessage(caught(() => mkdirSync(file, { recursive: true }))),
      `cannot mkdir ${file}: it is a file, not a directory (EEXIST)`);
    assert.equal(systemErrorMessage(caught(() => mkdirSync(join(file, 'x'), { recursive: true }))),
      `cannot mkdir ${join(file, 'x')}: a part of the path is a file, not a directory (ENOTDIR)`);
    assert.match(systemErrorMessage(caught(() => writeFileSync(join(dir, 'no', 'such', 'f'), 'x')))!,
      /^cannot open .*no\/such\/f: no such file or directory \(ENOENT\)$/);
    assert.equal(systemErrorMessage(new TypeError('x is undefined')), null);
    assert.equal(systemErrorMessage('a string'), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
