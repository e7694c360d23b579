// `ctfgen sample` refuses pieces that do not belong together (exit 1, a message naming the files) and bad
// flags (exit 2 with the help). The runs here are random-weight checkpoints with the metadata `ctfgen train`
// writes (writeRandomRun), so no training is needed: consistency is about identities, not quality.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { writeRandomRun } from '../../src/bench/sample-bench.js';
import { TINY_RUN } from '../helpers.js';
import { decodeImageFile } from '../../src/io/png.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ctfgen = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

let dir = '';
const A = (): string => join(dir, 'a');            // a consistent run
const OTHER_TOK = (): string => join(dir, 'b');    // another tokenizer (other weights, same shapes)
const OTHER_K = (): string => join(dir, 'k16');    // the same tokenizer, K = 16

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ctfgen-sample-cli-'));
  await writeRandomRun(A(), TINY_RUN);
  await writeRandomRun(OTHER_TOK(), { ...TINY_RUN, seed: 1 });
  await writeRandomRun(OTHER_K(), { ...TINY_RUN, k: 16 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('a run directory of before the renaming (coarse-ar / fine-aux files and kinds) still samples', async () => {
  const legacy = join(dir, 'legacy');
  mkdirSync(legacy);
  for (const f of ['tokenizer.safetensors', 'clusters.safetensors'])
    writeFileSync(join(legacy, f), readFileSync(join(A(), f)));
  for (const [kind, old] of [['stage1', 'coarse-ar'], ['aux', 'fine-aux']] as const) {
    const file = decodeSafetensors(readFileSync(join(A(), `${kind}.safetensors`)), kind);
    assert.equal(file.metadata['ctf_kind'], kind);
    const metadata = { ...file.metadata, ctf_kind: old };
    writeFileSync(join(legacy, `${old}.safetensors`), encodeSafetensors(file.tensors, metadata));
  }
  const tokens = (run: string): unknown => {
    const out = join(dir, `${basename(run)}.json`);
    const r = ctfgen('sample', '--run', run, '--classes', '0,3', '--n', '2', '--out', join(dir, `${basename(run)}.png`),
      '--tokens-out', out);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(readFileSync(out, 'utf8'));
  };
  assert.deepEqual(tokens(legacy), tokens(A()), 'the same weights under the old names sample the same images');
  const wrong = ctfgen('sample', '--run', A(), '--stage1', join(legacy, 'fine-aux.safetensors'), '--n', '1',
    '--out', join(dir, 'wrong.png'));
  assert.equal(wrong.status, 1, wrong.stderr);
  assert.match(wrong.stderr,
    /fine-aux\.safetensors is an aux checkpoint; the stage-1 model must be a stage1 checkpoint/);
});

test('a consistent run samples with both methods; explicit paths work without --run', async () => {
  const out = join(dir, 'ok.png');
  const r = ctfgen('sample', '--run', A(), '--classes', '0,3', '--n', '2', '--out', out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { images: number; insideCluster: number };
  assert.deepEqual([s.images, s.insideCluster], [4, 1]);
  const png = await decodeImageFile(out);
  assert.equal(png.channels, 1);
  const b = ctfgen(
    'sample',
    '--method',
    'baseline',
    '--tokenizer',
    join(A(), 'tokenizer.safetensors'),
    '--baseline',
    join(A(), 'baseline.safetensors'),
    '--class',
    '1',
    '--n',
    '3',
    '--out',
    join(dir, 'b.png'),
  );
  assert.equal(b.status, 0, b.stderr);
  assert.ok(existsSync(join(dir, 'b.png')));
});

const refusals: [string, () => string[], RegExp][] = [
  [
    "stage 1 trained on another tokenizer's tokens",
    () => ['--run', A(), '--stage1', join(OTHER_TOK(), 'stage1.safetensors')],
    new RegExp(
      'stage1\\.safetensors was trained on tokens of tokenizer [0-9a-f]{12}…, ' +
        'but .*a/tokenizer\\.safetensors is tokenizer [0-9a-f]{12}…',
    ),
  ],
  [
    "baseline trained on another tokenizer's tokens",
    () => ['--run', A(), '--method', 'baseline', '--baseline', join(OTHER_TOK(), 'baseline.safetensors')],
    /baseline\.safetensors was trained on tokens of tokenizer/,
  ],
  [
    'an aux model trained with another K',
    () => ['--run', A(), '--aux', join(OTHER_K(), 'aux.safetensors')],
    /k16\/aux\.safetensors was trained with K = 16 clusters \(kmeans\), but .*a\/clusters\.safetensors has K = 8/,
  ],
  [
    'a coarse map of another tokenizer',
    () => ['--run', A(), '--clusters', join(OTHER_TOK(), 'clusters.safetensors')],
    /b\/clusters\.safetensors clusters the codebook of tokenizer [0-9a-f]{12}…, but .* — re-run `ctfgen cluster`/,
  ],
  [
    'another tokenizer for the whole run',
    () => ['--run', A(), '--tokenizer', join(OTHER_TOK(), 'tokenizer.safetensors')],
    /clusters the codebook of tokenizer .* but .*b\/tokenizer\.safetensors is tokenizer/,
  ],
  [
    'a baseline checkpoint passed as stage 1',
    () => ['--run', A(), '--stage1', join(A(), 'baseline.safetensors')],
    /baseline\.safetensors is a baseline checkpoint; the stage-1 model must be a stage1 checkpoint/,
  ],
  [
    'a checkpoint whose config says another preset',
    () => ['--run', A(), '--stage1', join(dir, 'other-preset.safetensors')],
    /other-preset\.safetensors: the stored config says layers = 3, but the file holds tensors of 2 layers/,
  ],
  [
    'a run without the CTF models',
    () => ['--run', join(dir, 'empty')],
    /empty\/.*\.safetensors does not exist — make it with `ctfgen /,
  ],
];

for (const [name, args, message] of refusals) {
  test(`sample refuses ${name} (exit 1)`, () => {
    if (name.includes('preset')) {
      // The stage-1 checkpoint of run A with its stored config edited to 3 layers: the tensors are for 2.
      const file = decodeSafetensors(readFileSync(join(A(), 'stage1.safetensors')), 'a');
      const config = { ...JSON.parse(file.metadata['config']!), layers: 3 };
      writeFileSync(
        join(dir, 'other-preset.safetensors'),
        encodeSafetensors(file.tensors, { ...file.metadata, config: JSON.stringify(config) }),
      );
    }
    if (name.includes('without')) {
      mkdirSync(join(dir, 'empty'), { recursive: true });
      writeFileSync(join(dir, 'empty', 'tokenizer.safetensors'), readFileSync(join(A(), 'tokenizer.safetensors')));
    }
    const out = join(dir, `refused-${name.length}.png`);
    const r = ctfgen('sample', ...args(), '--n', '1', '--out', out);
    assert.equal(r.status, 1, `${name}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /internal error|Options:/);
    assert.ok(!existsSync(out), 'nothing is sampled');
  });
}

test('bad flags exit 2 with the help', () => {
  const bad: string[][] = [
    ['--run', 'x', '--method', 'diffusion'],
    ['--run', 'x', '--class', '3', '--classes', '1,2'],
    ['--run', 'x', '--classes', '1,,2'],
    ['--run', 'x', '--n', '0'],
    ['--run', 'x', '--mask', 'maybe'],
    ['--run', 'x', '--t1', '-1'],
    ['--run', 'x', '--top-p', '0'],
    ['--run', 'x', '--cfg', 'strong'],
    ['--run', 'x', '--bogus'],
    ['--run', 'x', '--method', 'baseline', '--progressive', 'p.png'],
    ['--class', '1'],                                   // no --run and no paths
    ['--tokenizer', 't', '--stage1', 's', '--out', 'o.png'],  // CTF without --clusters and --aux
  ];
  for (const args of bad) {
    const r = ctfgen('sample', ...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /Usage: |ctfgen sample \(--run DIR/, args.join(' '));
  }
  const range = ctfgen('sample', '--run', A(), '--class', '12', '--out', join(dir, 'c12.png'));
  assert.equal(range.status, 2, range.stderr);
  assert.match(range.stderr, /class 12: the models know classes 0…9/);
  const named = ctfgen('sample', '--run', A(), '--class', 'hat', '--out', join(dir, 'hat.png'));
  assert.equal(named.status, 2, named.stderr);
  assert.match(named.stderr, /class "hat": unknown; the classes are ids 0…9/);  // random weights: no data, no names
});
