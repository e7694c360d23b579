// Every line of the project's code (TypeScript, JavaScript, C++, Python, shell, gyp) fits in 120 characters, so
// that a file reads without horizontal scrolling. `node scripts/wrap-long-lines.mjs FILE…` wraps most long lines.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const WIDTH = 120;
const CODE = /\.(ts|mjs|js|cc|h|py|sh|gyp)$/;

test(`every tracked code line is at most ${WIDTH} characters`, (t) => {
  const git = spawnSync('git', ['ls-files', '-z'], { encoding: 'utf8' });
  if (git.status !== 0) return t.skip('not a git checkout');
  const files = git.stdout.split('\0').filter((f) => CODE.test(f) && !f.startsWith('test/fixtures/'));
  assert.ok(files.length > 100, `only ${files.length} code files tracked`);
  const long: string[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;  // deleted in the working tree
    }
    // Characters, not UTF-16 units: "×" and "≥" count one, as they show.
    text.split('\n').forEach((line, i) => {
      const n = [...line].length;
      if (n > WIDTH) long.push(`${f}:${i + 1} (${n})`);
    });
  }
  assert.deepEqual(long, [], `lines longer than ${WIDTH} characters:\n${long.slice(0, 40).join('\n')}`);
});
