// Progress lines in plain mode (logs): at most one per interval, the last one at 100%, never doubled by finish().
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Progress, formatDuration } from '../../src/cli/progress.js';

function plainStream(): { stream: NodeJS.WriteStream; lines: () => string[] } {
  let text = '';
  const stream = { isTTY: false, write: (s: string) => { text += s; return true; } } as unknown as NodeJS.WriteStream;
  return { stream, lines: () => text.split('\n').filter(Boolean) };
}

test('plain progress: throttled lines, the final count once, finish() does not repeat it', () => {
  const { stream, lines } = plainStream();
  const p = new Progress({ label: 'work', total: 10, unit: 'img', stream, intervalMs: 60_000 });
  for (let d = 1; d <= 10; d++) p.update(d);
  p.finish();
  assert.equal(lines().length, 1, lines().join('\n'));  // nothing within the interval but the total
  assert.match(lines()[0]!, /^work 100\.0%  10\/10 imgs/);
});

test('plain progress: finish() after a partial count writes the count reached', () => {
  const { stream, lines } = plainStream();
  const p = new Progress({ label: 'work', total: 10, stream, intervalMs: 60_000 });
  p.update(3);
  p.update(7);
  p.finish('stopped');
  assert.equal(lines().length, 1);
  assert.match(lines()[0]!, /^work 70\.0%  7\/10 steps.*stopped$/);
});

test('formatDuration', () => {
  assert.deepEqual(
    [formatDuration(5), formatDuration(65), formatDuration(3700), formatDuration(NaN)],
    ['5s', '1m05s', '1h01m', '?'],
  );
});
