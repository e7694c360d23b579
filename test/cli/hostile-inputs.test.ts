// Hostile inputs, reproduced through the command a user runs: every lying or broken input ends in a
// clean message naming the file and the field, exit 1 (2 for a bad flag value), never `internal error`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeSafetensors, encodeSafetensors, type StTensorInput } from '../../src/io/safetensors.js';
import { encodePng } from '../../src/io/png.js';
import { makeTinyRun, type TinyRun } from '../tiny-run.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ctfgen = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60e3 });
const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

let dir = '', run: TinyRun;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ctfgen-hostile-'));
  mkdirSync(join(dir, 'run'));
  run = await makeTinyRun(join(dir, 'run'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

type Edit = (t: Map<string, StTensorInput>, m: Record<string, string>) => void;

/** A copy of `path` with its tensors and metadata edited, at `out`. */
function edited(path: string, out: string, f: Edit): string {
  const file = decodeSafetensors(readFileSync(path), path);
  const tensors = new Map<string, StTensorInput>();
  for (const [n, t] of file.tensors) tensors.set(n, { dtype: t.dtype, shape: t.shape, data: t.data.slice() });
  const meta = { ...file.metadata };
  f(tensors, meta);
  writeFileSync(out, encodeSafetensors(tensors, meta));
  return out;
}

const lying = (key: string, over: Record<string, unknown>): Edit => (_t, m) => {
  m[key] = JSON.stringify({ ...JSON.parse(m[key]!), ...over });
};
const setValue = (name: string, i: number, v: number): Edit => (t) => { (t.get(name)!.data as Float32Array)[i] = v; };

function assertClean(r: ReturnType<typeof ctfgen>, status: number, re: RegExp): void {
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, r.stderr);
  assert.equal(r.status, status, r.stderr);
  assert.match(r.stderr, re);
}

test('sample refuses a lying GPT or tokenizer config and non-finite weights, by file and field', () => {
  const cases: ['baseline' | 'tokenizer', Edit, RegExp][] = [
    ['baseline', lying('config', { layers: 1e7 }), /baseline-0\.safetensors: .*invalid: .*layers = 10000000/],
    ['baseline', lying('config', { dim: 2 ** 20 }), /dim = 1048576, expected an integer in \[1, 16384\]/],
    ['baseline', lying('config', { grid: 1e5 }), /grid = 100000, expected an integer in \[1, 64\]/],
    ['baseline', lying('config', { inVocab: 2 ** 31 }), /inVocab = 2147483648/],
    ['baseline', lying('config', { ropeBase: 'x' }), /ropeBase = "x", expected a finite number > 1/],
    ['baseline', setValue('layers.0.attention.wo.weight', 3, NaN), /"layers\.0\.attention\.wo\.weight" holds NaN/],
    ['baseline', setValue('norm.weight', 0, 1.0000001), /the weights hash to .* — the file is corrupted or was edited/],
    ['tokenizer', lying('config', { codebookSize: 2 ** 30 }), /tokenizer-7\.safetensors: .*codebookSize = 1073741824/],
    ['tokenizer', lying('config', { channels: 2 ** 16 }), /channels = 65536, expected an integer in \[1, 1024\]/],
  ];
  for (const [i, [piece, f, re]] of cases.entries()) {
    const pieces = { ...run, [piece]: edited(run[piece], join(dir, `${piece}-${i}.safetensors`), f) };
    const r = ctfgen('sample', '--method', 'baseline', '--tokenizer', pieces.tokenizer, '--baseline', pieces.baseline,
      '--n', '1', '--class', '0', '--out', join(dir, 's.png'));
    assertClean(r, 1, re);
  }
});

test('--resume refuses a lying train state and a tokenizer_hash that is not a string', () => {
  const cases: [Edit, RegExp][] = [
    [lying('config', { layers: 1e7 }), /train state .*baseline\.train-state\.safetensors: .*layers = 10000000/],
    [lying('config', { inVocab: 2 ** 31 }), /inVocab = 2147483648/],
    [lying('config', { dim: 128 }), /stored config says dim = 128, but tensor "tok_embeddings\.weight" has 64 columns/],
    [lying('extra', { tokenizer_hash: 12 }), /state\.safetensors: extra\.tokenizer_hash is 12, expected a string/],
  ];
  for (const [i, [f, re]] of cases.entries()) {
    const d = join(dir, `resume-${i}`);
    mkdirSync(d);
    edited(run.baselineState, join(d, 'baseline.train-state.safetensors'), f);
    writeFileSync(join(d, 'baseline.safetensors'), readFileSync(run.baseline));
    const r = ctfgen('train', 'baseline', '--tokens', run.tokens, '--out', join(d, 'baseline.safetensors'), '--resume');
    assertClean(r, 1, re);
  }
});

test('a failed append to the event log ends the training cleanly; checkpoint and train state stay', () => {
  // A file-size limit stands in for a full disk (test/train/event-log.test.ts has ENOSPC itself): the log is at the
  // limit, so its first append fails (EFBIG) while the checkpoints, smaller, could still be written.
  const d = join(dir, 'full');
  mkdirSync(d);
  const out = join(d, 'baseline.safetensors'), state = join(d, 'baseline.train-state.safetensors');
  writeFileSync(out, readFileSync(run.baseline));
  writeFileSync(state, readFileSync(run.baselineState));
  const LIMIT_KB = 4096, line = JSON.stringify({ type: 'note', step: 0, message: 'x'.repeat(1000) }) + '\n';
  const log = line.repeat(Math.floor((LIMIT_KB * 1024) / line.length));
  writeFileSync(join(d, 'baseline.events.jsonl'), log + ' '.repeat(LIMIT_KB * 1024 - log.length - 1) + '\n');
  const hashes = [sha(out), sha(state)];
  const args = [CLI, 'train', 'baseline', '--tokens', run.tokens, '--out', out, '--resume'];
  const limited = ['-c', `ulimit -f ${LIMIT_KB} && exec "$0" "$@"`, process.execPath, ...args];
  const r = spawnSync('sh', limited, { encoding: 'utf8' });
  assertClean(r, 1, /cannot append to the event log .*baseline\.events\.jsonl: EFBIG.* last checkpoint is intact/);
  assert.deepEqual([sha(out), sha(state)], hashes);
});

test('--scale too large is refused before sampling; an --out under a file is a clean error', () => {
  const base = ['sample', '--method', 'baseline', '--tokenizer', run.tokenizer, '--baseline', run.baseline, '--n', '2',
    '--class', '0'];
  const big = ctfgen(...base, '--scale', '100000', '--out', join(dir, 'big.png'));
  assertClean(big, 2, /--scale 100000: the --out grid \(2 images, 2 columns\) would be 3200006×1600004 pixels/);
  assert.doesNotMatch(big.stderr, /images in/, 'refused before sampling');
  writeFileSync(join(dir, 'report.md'), '# a file\n');
  // Refused before any work since the outputs are checked first (src/io/outputs.ts); errors of the system met later
  // end the same way (systemErrorMessage, tested in test/cli/errors.test.ts).
  for (const under of [['s.png'], ['x', 's.png']])
    assertClean(ctfgen(...base, '--out', join(dir, 'report.md', ...under)), 1, /report\.md is a file|not a directory/);
});

test('tokenizer train --codebook 1000000000 --dry-run is refused before the model is built', () => {
  const data = join(dir, 'images');
  for (const split of ['train', 'test'])
    for (const [c, grey] of [['a', 40], ['b', 200]] as const) {
      mkdirSync(join(data, split, c), { recursive: true });
      const pixels = new Uint8Array(256).fill(grey);
      writeFileSync(join(data, split, c, '0.png'), encodePng({ width: 16, height: 16, channels: 1, data: pixels }));
    }
  const r = ctfgen('tokenizer', 'train', '--data', `folder:${data}`, '--codebook', '1000000000', '--dry-run',
    '--out', join(dir, 'tk', 't.safetensors'));
  assert.doesNotMatch(r.stderr, /internal error/, r.stderr);
  assert.ok(r.status === 1 || r.status === 2, r.stderr);  // a bad flag value: a usage error (2) or a refusal (1)
  assert.match(r.stderr, /codebookSize = 1000000000, expected an integer in \[1, 262144\]/);
});
