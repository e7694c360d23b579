import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeImageFile, encodePng } from '../../src/io/png.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ctfgen = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });

test('ctfgen data info: JSON counts and a grid with one row per class', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ctf-cli-data-'));
  try {
    for (const [cls, n] of [['circle', 3], ['square', 1]] as const) {
      mkdirSync(join(root, 'imgs', 'train', cls), { recursive: true });
      mkdirSync(join(root, 'imgs', 'test', cls), { recursive: true });
      for (let i = 0; i < n; i++)
        writeFileSync(
          join(root, 'imgs', 'train', cls, `${i}.png`),
          encodePng({ width: 6, height: 5, channels: 1, data: new Uint8Array(30).fill(40 * i) }),
        );
      writeFileSync(
        join(root, 'imgs', 'test', cls, 'x.png'),
        encodePng({ width: 6, height: 5, channels: 1, data: new Uint8Array(30) }),
      );
    }
    const grid = join(root, 'grid.png');
    const r = ctfgen(
      'data',
      'info',
      `folder:${join(root, 'imgs')}`,
      '--json',
      '--grid',
      grid,
      '--per-class',
      '2',
      '--pad',
      '1',
    );
    assert.equal(r.status, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    assert.deepEqual(info.classNames, ['circle', 'square']);
    assert.deepEqual([info.channels, info.height, info.width], [1, 7, 8]);
    assert.deepEqual(info.splits, { train: { count: 4, perClass: [3, 1] }, test: { count: 2, perClass: [1, 1] } });
    const img = await decodeImageFile(grid);
    // 2 per class, one row per class, 2 px padding
    assert.deepEqual([img.width, img.height], [2 * 8 + 3 * 2, 2 * 7 + 3 * 2]);
    const table = ctfgen('data', 'info', `folder:${join(root, 'imgs')}`, '--split', 'test');
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /0  circle\s+1\n 1  square\s+1\n\s+total\s+2\n/);
    const noTest = ctfgen('data', 'info', `folder:${join(root, 'imgs', 'train')}`, '--json', '--test-fraction', '0');
    assert.equal(noTest.status, 0, noTest.stderr);
    assert.deepEqual(JSON.parse(noTest.stdout).splits.test, { count: 0, perClass: [0, 0] });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('ctfgen data info: bad usage (an unknown dataset name too) exits 2, bad data exits 1 with the reason', () => {
  const usage = ctfgen('data', 'info', 'mnist', '--split', 'validation');
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /--split: expected train, test or all, got "validation"/);
  assert.equal(ctfgen('data', 'info').status, 2);
  const missing = ctfgen('data', 'info', 'folder:/nonexistent/ctf-cli');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /\/nonexistent\/ctf-cli: not a directory/);
  const unknown = ctfgen('data', 'info', 'cifar10');
  assert.equal(unknown.status, 2, 'an unknown dataset name is a usage error, a missing folder (above) a file error');
  assert.match(unknown.stderr, /DATASET: unknown dataset "cifar10" \(expected fashion-mnist, mnist, folder:PATH\)/);
});
