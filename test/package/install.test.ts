// The npm package as a new user gets it: `npm pack`, then `npm install` of the tarball into an empty project (which
// builds the addon against this machine's OpenBLAS and Node headers), then the documented example, importing
// `ctfgen`, samples a tiny run to a PNG; the engine subpath loads too.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { writeRandomRun } from '../../src/bench/sample-bench.js';
import { TINY_RUN } from '../helpers.js';
import { decodeImageFile } from '../../src/io/png.js';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const npm = (args: string[], cwd: string) =>
  spawnSync('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], { cwd, encoding: 'utf8' });

test('npm pack → npm install in an empty project → the example samples a run', { timeout: 600_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-pack-'));
  try {
    const packed = npm(['pack', '--pack-destination', dir], REPO);
    assert.equal(packed.status, 0, packed.stderr);
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
    const project = join(dir, 'project');
    spawnSync('mkdir', [project]);
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'user-project', version: '1.0.0', type: 'module', private: true }),
    );
    const installed = npm(['install', join(dir, tarball)], project);
    assert.equal(installed.status, 0, installed.stderr);

    const run = join(dir, 'run');
    await writeRandomRun(run, TINY_RUN);
    copyFileSync(join(project, 'node_modules', 'ctfgen', 'examples', 'generate.mjs'), join(project, 'generate.mjs'));
    for (const method of ['ctf', 'baseline']) {
      const r = spawnSync(process.execPath, ['generate.mjs', run, `${method}.png`, method], {
        cwd: project,
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      const png = await decodeImageFile(join(project, `${method}.png`));
      assert.deepEqual(
        [png.width, png.height],
        [4 * 64 + 5 * 2, 10 * 64 + 11 * 2],
        'four images per class, ten classes',
      );
    }
    const engine = spawnSync(process.execPath, ['--input-type=module', '-e',
      "import { Tensor, matmul } from 'ctfgen/engine'; const a = new Tensor(Float32Array.of(1, 2, 3, 4), [2, 2]); " +
      "console.log(Array.from(matmul(a, a).f32).join(','));"],
    { cwd: project, encoding: 'utf8' });
    assert.equal(engine.stdout.trim(), '7,10,15,22', engine.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
