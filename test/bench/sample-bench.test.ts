import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pairedRatio } from '../../src/bench/sample-bench.js';

test('pairedRatio: the median of the round-by-round baseline/CTF time ratios, not the ratio of the medians', () => {
  // Round 2 is a slow spell for both methods: the ratio of medians (400 / 300 = 1.33) hides that CTF was never that far
  // ahead.
  const base = [300, 600, 400], ctf = [250, 500, 300];
  assert.equal(pairedRatio(base, ctf), 1.2);
  assert.equal(pairedRatio([1, 2], [1, 1]), 1.5);  // even count: mean of the middle two
});
