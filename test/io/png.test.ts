import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { CtfError } from '../../src/errors.js';
import { decodeImage, decodeImageFile, encodePng, imageGrid, writeImageGrid } from '../../src/io/png.js';

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ctf-png-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('grid round trip (u8 grey): tiles where expected, padding between them, no temp files left', () =>
  withDir(async (dir) => {
    const n = 5,
      h = 3,
      w = 4;
    const images = Uint8Array.from({ length: n * h * w }, (_, i) => i % 200);
    const path = join(dir, 'grid.png');
    await writeImageGrid(path, images, [n, 1, h, w], { cols: 3, pad: 1, padValue: 255 });
    const img = await decodeImageFile(path);
    assert.deepEqual([img.width, img.height, img.channels], [3 * w + 4, 2 * h + 3, 1]);
    for (let k = 0; k < n; k++) {
      const x0 = 1 + (k % 3) * (w + 1),
        y0 = 1 + Math.floor(k / 3) * (h + 1);
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++)
          assert.equal(
            img.data[(y0 + y) * img.width + x0 + x],
            images[k * h * w + y * w + x],
            `tile ${k} (${y}, ${x})`,
          );
    }
    assert.equal(img.data[0], 255); // border
    assert.equal(img.data[(1 + h + 1) * img.width + 1 + 2 * (w + 1)], 255); // the empty sixth cell
    assert.deepEqual(readdirSync(dir), ['grid.png']);
  }));

test('grid round trip (float RGB in [-1, 1]): rounding, clamping and channel order survive', () =>
  withDir(async (dir) => {
    // 2 images (2, 3, 1, 2): image 0 red/green-ish, image 1 out-of-range values clamp
    const x = Float32Array.of(1, -1, -1, 1, 0, 0, /* image 1 */ 2, -3, 0.5, -0.5, 0.2, 0.2);
    const path = join(dir, 'rgb.png');
    await writeImageGrid(path, x, [2, 3, 1, 2], { cols: 2, pad: 0 });
    const img = await decodeImageFile(path);
    assert.deepEqual([img.width, img.height, img.channels], [4, 1, 3]);
    const px = (i: number): number[] => [...img.data.subarray(3 * i, 3 * i + 3)];
    assert.deepEqual(px(0), [255, 0, 128]); // (x + 1)·127.5 rounded: 0 → 127.5 → 128
    assert.deepEqual(px(1), [0, 255, 128]);
    assert.deepEqual(px(2), [255, 191, 153]);
    assert.deepEqual(px(3), [0, 64, 153]);
    const big = imageGrid(x, [2, 3, 1, 2], { cols: 1, pad: 0, scale: 3 });
    assert.deepEqual([big.width, big.height], [6, 6]);
    assert.deepEqual([...big.data.subarray(0, 3)], [...big.data.subarray(3 * (2 * 6 + 2), 3 * (2 * 6 + 2) + 3)]);
  }));

test('decoding keeps the fewest exact channels: grey 1, RGB 3, translucent 4; JPEG too', () => {
  const rgba = Uint8Array.of(10, 20, 30, 255, 40, 50, 60, 128);
  const a = decodeImage(encodePng({ width: 2, height: 1, channels: 4, data: rgba }), 'a.png');
  assert.deepEqual([a.channels, ...a.data], [4, ...rgba]);
  const rgb = decodeImage(
    encodePng({ width: 2, height: 1, channels: 3, data: Uint8Array.of(1, 2, 3, 4, 5, 6) }),
    'b.png',
  );
  assert.deepEqual([rgb.channels, ...rgb.data], [3, 1, 2, 3, 4, 5, 6]);
  const grey = decodeImage(
    encodePng({ width: 2, height: 1, channels: 3, data: Uint8Array.of(7, 7, 7, 9, 9, 9) }),
    'c.png',
  );
  assert.deepEqual([grey.channels, ...grey.data], [1, 7, 9]);
  const jpg = jpeg.encode({ width: 8, height: 8, data: Buffer.alloc(256, 255) }, 90).data;
  const j = decodeImage(jpg, 'd.jpg');
  assert.deepEqual([j.width, j.height, j.channels], [8, 8, 1]);
  assert.ok(j.data.every((v) => v >= 253));
  assert.throws(
    () => decodeImage(Buffer.from('GIF89a....'), 'e.gif'),
    (e: unknown) => e instanceof CtfError && /e\.gif: not a PNG or JPEG/.test(e.message),
  );
  assert.throws(() => encodePng({ width: 2, height: 2, channels: 1, data: new Uint8Array(3) }), /3 bytes for 2×2×1/);
});

test('decodeImageFile names a missing file', () => withDir(async (dir) => {
  await assert.rejects(decodeImageFile(join(dir, 'none.png')), /image .*none\.png does not exist/);
  writeFileSync(join(dir, 'empty.png'), '');
  await assert.rejects(decodeImageFile(join(dir, 'empty.png')), /empty\.png: not a PNG or JPEG/);
}));

/** The CRC-32 of PNG chunks (ISO 3309), bit by bit: node:zlib has crc32 only from Node 20.15. */
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** A 16000×16000 grey PNG of one colour: 249 KB that inflates to 256 MB, and to 1 GB of RGBA in pngjs. */
async function hugeBlankPng(): Promise<Buffer> {
  const { createDeflate } = await import('node:zlib');
  const side = 16000, row = Buffer.alloc(side + 1);  // filter byte 0, then black pixels
  const deflate = createDeflate({ level: 9 }), parts: Buffer[] = [];
  deflate.on('data', (b: Buffer) => parts.push(b));
  const done = new Promise((resolve) => deflate.on('end', resolve));
  for (let y = 0; y < side; y++) deflate.write(row);
  deflate.end();
  await done;
  const chunk = (type: string, data: Buffer): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr.set([8, 0, 0, 0, 0], 8);  // 8-bit grey, deflate, no filter, no interlace
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const idat = chunk('IDAT', Buffer.concat(parts));
  return Buffer.concat([signature, chunk('IHDR', ihdr), idat, chunk('IEND', Buffer.alloc(0))]);
}

test('a PNG too large is refused from its header, before a pixel is inflated', async () => {
  const png = await hugeBlankPng();
  assert.ok(png.length < 400_000, `${png.length} bytes`);
  const rss0 = process.memoryUsage().rss, t0 = performance.now();
  const re = /^huge\.png: a 16000×16000 PNG, expected at most 8192×8192 pixels$/;
  assert.throws(() => decodeImage(png, 'huge.png'), (e: unknown) => e instanceof CtfError && re.test(e.message));
  assert.ok(process.memoryUsage().rss - rss0 < 100e6 && performance.now() - t0 < 1000, 'refused without decoding');
  assert.throws(() => decodeImage(png.subarray(0, 20), 'cut.png'), /cut\.png: corrupt PNG image \(no IHDR chunk/);
  // A grid scaled past the limit is refused before its buffer is allocated.
  const tooBig = (): unknown => imageGrid(new Uint8Array(4), [1, 1, 2, 2], { scale: 1e5 });
  assert.throws(tooBig, /imageGrid: a 200004×200004 grid .* 8192×8192/);
});
