import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CtfError } from '../../src/errors.js';
import { encodeIdx, parseIdx, readIdxFile } from '../../src/data/idx.js';

const images = Uint8Array.from({ length: 3 * 4 * 5 }, (_, i) => (i * 7) & 255);
const good = encodeIdx([3, 4, 5], images);

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ctf-idx-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** Asserts a CtfError whose message contains every fragment. */
async function rejectsWith(p: Promise<unknown> | (() => unknown), ...fragments: string[]): Promise<void> {
  await assert.rejects(async () => (typeof p === 'function' ? p() : p), (e: unknown) => {
    assert.ok(e instanceof CtfError, `expected CtfError, got ${String(e)}`);
    for (const f of fragments) assert.ok(e.message.includes(f), `message "${e.message}" lacks "${f}"`);
    return true;
  });
}

test('IDX header layout: magic 0x00000803 and big-endian dimensions', () => {
  assert.deepEqual([...good.subarray(0, 16)], [0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5]);
  const r = parseIdx(good, 'mem', { ndims: 3 });
  assert.deepEqual(r.dims, [3, 4, 5]);
  assert.deepEqual([...r.data], [...images]);
  const labels = parseIdx(encodeIdx([4], Uint8Array.of(1, 2, 3, 9)), 'mem', { ndims: 1 });
  assert.deepEqual(labels.dims, [4]);
  assert.deepEqual([...labels.data], [1, 2, 3, 9]);
});

test('plain and gzipped files read the same (gzip recognised by its magic, not the name)', () =>
  withDir(async (dir) => {
    writeFileSync(join(dir, 'a-idx3-ubyte'), good);
    writeFileSync(join(dir, 'b-idx3-ubyte'), gzipSync(good)); // gzipped without a .gz name
    writeFileSync(join(dir, 'c-idx3-ubyte.gz'), gzipSync(good));
    for (const f of ['a-idx3-ubyte', 'b-idx3-ubyte', 'c-idx3-ubyte.gz']) {
      const r = await readIdxFile(join(dir, f), { ndims: 3 });
      assert.deepEqual(r.dims, [3, 4, 5]);
      assert.deepEqual([...r.data], [...images]);
    }
  }));

test('corrupted buffers are refused with what was wrong', async () => {
  const wrongMagic = good.slice(); wrongMagic[0] = 0x1a;
  await rejectsWith(() => parseIdx(wrongMagic, 'x.idx'), 'x.idx', 'magic number 0x1a000803', 'not an IDX file');
  const floats = good.slice(); floats[2] = 0x0d;
  await rejectsWith(() => parseIdx(floats, 'x.idx'), 'x.idx', 'item type 0x0d (float32)', 'expected 0x08');
  await rejectsWith(
    () => parseIdx(good, 'x.idx', { ndims: 1, what: 'labels' }),
    'labels file x.idx',
    'declares 3 dimension(s), expected 1',
    '0x00000801',
  );
  await rejectsWith(() => parseIdx(good.subarray(0, 2), 'x.idx'), 'too short');
  await rejectsWith(() => parseIdx(good.subarray(0, 10), 'x.idx'), 'truncated header', 'need 16 bytes');
  await rejectsWith(
    () => parseIdx(good.subarray(0, good.length - 3), 'x.idx'),
    'truncated',
    'need 60 data bytes',
    'has 57',
    '3 missing',
  );
  const extra = new Uint8Array(good.length + 2); extra.set(good);
  await rejectsWith(() => parseIdx(extra, 'x.idx'), '2 extra byte(s)', 'after the 60 data bytes');
  const zeroDims = good.slice(); zeroDims[3] = 0;
  await rejectsWith(() => parseIdx(zeroDims, 'x.idx'), 'declares 0 dimensions');
});

test('corrupted files name the file: truncated gzip stream, gzip of a truncated file, damaged gzip', () =>
  withDir(async (dir) => {
    const gz = gzipSync(good);
    const cut = join(dir, 'cut.gz');
    writeFileSync(cut, gz.subarray(0, gz.length - 10));
    await rejectsWith(readIdxFile(cut), cut, 'corrupt or truncated gzip');
    const inner = join(dir, 'inner.gz');
    writeFileSync(inner, gzipSync(good.subarray(0, 40)));
    await rejectsWith(
      readIdxFile(inner, { ndims: 3, what: 'images' }),
      `images file ${inner}`,
      'truncated',
      'the file has 24 (36 missing)',
    );
    const damaged = Buffer.from(gz);
    damaged[damaged.length >> 1] = damaged[damaged.length >> 1]! ^ 0xff;
    const dpath = join(dir, 'damaged.gz');
    writeFileSync(dpath, damaged);
    await rejectsWith(readIdxFile(dpath), dpath);
    await rejectsWith(readIdxFile(join(dir, 'missing')), 'does not exist');
  }));
