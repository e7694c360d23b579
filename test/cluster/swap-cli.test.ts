import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/engine/rng.js';
import { decodeImageFile, encodePng } from '../../src/io/png.js';
import { saveTokenizer } from '../../src/tokenizer/checkpoint.js';
import { tokenizerConfig } from '../../src/tokenizer/config.js';
import { VqTokenizer } from '../../src/tokenizer/model.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ctfgen = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });

test('ctfgen cluster swap-demo: PNG rows original | reconstruction | k-means ' +
  'swap | random swap, PSNRs as JSON', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctf-cli-swap-'));
  try {
    // Two classes of three 8×8 grey images, in train/ and test/.
    const rng = new Rng(1);
    for (const split of ['train', 'test'])
      for (const cls of ['a', 'b']) {
        mkdirSync(join(dir, 'imgs', split, cls), { recursive: true });
        for (let i = 0; i < 3; i++)
          writeFileSync(
            join(dir, 'imgs', split, cls, `${i}.png`),
            encodePng({ width: 8, height: 8, channels: 1, data: Uint8Array.from({ length: 64 }, () => rng.int(256)) }),
          );
      }
    const tok = join(dir, 'tokenizer.safetensors'),
      clusters = join(dir, 'clusters.safetensors'),
      png = join(dir, 'swap.png');
    await saveTokenizer(
      tok,
      new VqTokenizer(tokenizerConfig('tiny', { inChannels: 1, imageSize: 8 }, { codebookSize: 64 }), new Rng(0)),
    );
    const c = ctfgen('cluster', '--tokenizer', tok, '--k', '8', '--restarts', '1', '--out', clusters);
    assert.equal(c.status, 0, c.stderr);
    const r = ctfgen(
      'cluster',
      'swap-demo',
      '--tokenizer',
      tok,
      '--clusters',
      clusters,
      '--data',
      `folder:${join(dir, 'imgs')}`,
      '--count',
      '3',
      '--scale',
      '1',
      '--out',
      png,
      '--json',
    );
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.deepEqual(
      s.rows.map((x: { name: string }) => x.name),
      ['reconstruction', 'k-means swap', 'random swap'],
    );
    assert.equal(s.images.length, 3);
    assert.match(r.stderr, /k-means swap\s+[\d.]+ dB\s+[\d.]+ dB\s+[\d.]+%/);
    const img = await decodeImageFile(png);
    assert.deepEqual([img.width, img.height], [3 * 8 + 4 * 2, 4 * 8 + 5 * 2]); // 3 columns, 4 rows, 2 px padding
    const random = join(dir, 'random.safetensors');
    assert.equal(
      ctfgen('cluster', '--tokenizer', tok, '--k', '8', '--restarts', '1', '--mode', 'random', '--out', random).status,
      0,
    );
    const swapped = ctfgen(
      'cluster',
      'swap-demo',
      '--tokenizer',
      tok,
      '--clusters',
      random,
      '--data',
      `folder:${join(dir, 'imgs')}`,
      '--out',
      png,
    );
    assert.equal(swapped.status, 2);
    assert.match(swapped.stderr, /--clusters: .* holds random clusters; pass the k-means file/);
    const withRandom = ctfgen(
      'cluster',
      'swap-demo',
      '--tokenizer',
      tok,
      '--clusters',
      clusters,
      '--random-clusters',
      random,
      '--data',
      `folder:${join(dir, 'imgs')}`,
      '--out',
      png,
    );
    assert.equal(withRandom.status, 0, withRandom.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
