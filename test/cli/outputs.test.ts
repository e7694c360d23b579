// Every command that writes checks its outputs before any work (src/io/outputs.ts): never over one of its inputs,
// never over a checkpoint, train state, tokens or cluster file without --force, never where nothing can be written;
// and every command that takes no arguments refuses one (exit 2). The inputs here need not be valid: the checks
// come before anything is read.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/engine/rng.js';
import { encodeSafetensors } from '../../src/io/safetensors.js';
import { saveTokenizer } from '../../src/tokenizer/checkpoint.js';
import { tokenizerConfig } from '../../src/tokenizer/config.js';
import { VqTokenizer } from '../../src/tokenizer/model.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ctfgen = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
const dir = mkdtempSync(join(tmpdir(), 'ctf-cli-outputs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string, text = 'x'): string => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};
const safetensors = (name: string): string => {
  const bytes = encodeSafetensors({ w: { shape: [1], data: new Float32Array(1) } }, { kind: 'ctfgen.gpt' });
  writeFileSync(join(dir, name), bytes);
  return join(dir, name);
};

test('no command writes over one of its inputs (exit 1, naming both)', () => {
  const tok = safetensors('tok.safetensors'), base = safetensors('base.safetensors');
  const cls = safetensors('cls.safetensors'), clusters = safetensors('clusters.safetensors');
  const series = file('fid.json', '{"points": []}');
  const runDir = join(dir, 'run');
  mkdirSync(runDir, { recursive: true });
  for (const f of ['tokenizer', 'clusters', 'stage1', 'aux', 'baseline'])
    writeFileSync(join(runDir, `${f}.safetensors`), 'x');
  const sampleBaseline = ['sample', '--method', 'baseline', '--tokenizer', tok, '--baseline', base];
  const sampleRun = ['sample', '--run', runDir, '--out', join(dir, 's.png')];
  const evalBaseline = ['eval', '--method', 'baseline', '--tokenizer', tok, '--classifier', cls];
  const cases: [string[], RegExp][] = [
    [[...sampleBaseline, '--out', tok], /--out .*tok\.safetensors is the input --tokenizer/],
    [['sample', '--run', runDir, '--out', join(runDir, 'tokenizer.safetensors')],
      /--out .*is the input tokenizer \(from --run\)/],
    [[...sampleRun, '--tokens-out', join(runDir, 'stage1.safetensors')],
      /--tokens-out .* is the input stage1 \(from/],
    [[...sampleRun, '--progressive', join(runDir, 'aux.safetensors')], /--progressive .* is the input aux/],
    [[...evalBaseline, '--baseline', base, '--out', cls], /--out .*cls\.safetensors is the input --classifier/],
    [[...evalBaseline, '--baseline', join(dir, 'base-baseline.png'), '--out', join(dir, 'base.json')],
      /the baseline grid of --out .*base-baseline\.png is the input --baseline/],
    [['eval', 'real', '--classifier', cls, '--out', cls],
      /--out .*cls\.safetensors is the input --classifier/],
    [['eval', 'recon', '--tokenizer', tok, '--classifier', cls, '--out', tok], /--out .*tok\.safetensors is the input/],
    [['cluster', '--tokenizer', tok, '--k', '4', '--out', tok, '--force'], /--out .*tok\.safetensors is the input/],
    [['cluster', 'swap-demo', '--tokenizer', tok, '--clusters', clusters, '--out', clusters],
      /--out .*clusters\.safetensors is the input --clusters/],
    [['tokenizer', 'eval', '--tokenizer', tok, '--grid', tok], /--grid .*tok\.safetensors is the input --tokenizer/],
    [['plot', 'points', '--out', series, `fid=${series}`], /--out .*fid\.json is the input the series fid/],
  ];
  for (const [args, message] of cases) {
    const r = ctfgen(...args);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
  }
  assert.equal(readFileSync(tok).subarray(8, 9).toString(), '{', 'the inputs are untouched');
});

test('reports are replaced, but not over a safetensors file; artifacts need --force', async () => {
  const tok = safetensors('t.safetensors'), base = safetensors('b.safetensors');
  const model = safetensors('finished-model.safetensors');
  const r = ctfgen('sample', '--method', 'baseline', '--tokenizer', tok, '--baseline', base, '--out', model);
  assert.equal(r.status, 1);
  assert.match(r.stderr,
    /--out .*finished-model\.safetensors exists and holds a safetensors file .*; remove it first, or choose another/);
  const png = file('old.png', 'an old picture');
  const ok = ctfgen('sample', '--method', 'baseline', '--tokenizer', tok, '--baseline', base, '--out', png);
  assert.equal(ok.status, 1, 'fails later, on the invalid inputs');
  assert.doesNotMatch(ok.stderr, /old\.png/, 'an existing PNG may be replaced');

  const realTok = join(dir, 'real-tokenizer.safetensors');
  const config = tokenizerConfig('tiny', { inChannels: 1, imageSize: 8 }, { codebookSize: 32, codeDim: 4 });
  await saveTokenizer(realTok, new VqTokenizer(config, new Rng(3)));
  const out = join(dir, 'c.safetensors');
  const first = ctfgen('cluster', '--tokenizer', realTok, '--k', '4', '--restarts', '1', '--out', out);
  assert.equal(first.status, 0, first.stderr);
  const clusters = readFileSync(out);
  const again = ctfgen('cluster', '--tokenizer', realTok, '--k', '8', '--restarts', '1', '--out', out);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /--out .*c\.safetensors exists; pass --force to replace it/);
  assert.deepEqual(readFileSync(out), clusters);
  const forced = ctfgen('cluster', '--tokenizer', realTok, '--k', '8', '--restarts', '1', '--out', out, '--force');
  assert.equal(forced.status, 0, forced.stderr);
  assert.notDeepEqual(readFileSync(out), clusters);
});

test('output paths that cannot be written are refused before any work', () => {
  const md = file('report.md', '# a report');
  mkdirSync(join(dir, 'adir'), { recursive: true });
  const cases: [string[], RegExp][] = [
    [['plot', 'points', '--out', join(md, 's.png'), `a=${file('a.json')}`],
      /report\.md is a file, so nothing can be written below it/],
    [['eval', 'real', '--classifier', file('k.safetensors'), '--out', join(dir, 'adir')],
      /--out .*adir is a directory/],
    [['data', 'info', 'fashion-mnist', '--grid', join(md, 'g.png')], /report\.md is a file/],
    [['demo', '--run', md], /--run .*report\.md is a file; expected a directory/],
    [['eval', 'classifier', 'train', '--out', join(dir, 'adir')], /--out .*adir is a directory/],
  ];
  for (const [args, message] of cases) {
    const r = ctfgen(...args);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});

test('commands that take no arguments refuse one, and a flag value they do not accept, with exit 2', () => {
  const cases: string[][] = [
    ['sample', 'extra'], ['cluster', 'extra'], ['eval', 'real', 'extra'], ['demo', 'extra'],
    ['tokenizer', 'encode', 'extra'], ['bench', 'engine', 'extra'], ['train', 'aux', 'extra'],
    ['eval', 'classifier', 'train', 'extra'],
  ];
  for (const args of cases) {
    const r = ctfgen(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /unexpected argument "extra": this command takes flags only/);
  }
  const classifier = ['eval', 'classifier', 'train', '--out', join(dir, 'x.safetensors')];
  const values: [string[], RegExp][] = [
    [[...classifier, '--preset', 'XL'], /--preset: expected tiny, S, got "XL"/],
    [[...classifier, '--data', 'nope'], /--data: unknown dataset "nope"/],
    [['cluster', 'swap-demo', '--tokenizer', 'a', '--clusters', 'b', '--out', join(dir, 'x.png'), '--data', 'nope'],
      /--data: unknown dataset "nope"/],
    [['data', 'info', 'nope'], /DATASET: unknown dataset "nope"/],
  ];
  for (const [args, message] of values) {
    const r = ctfgen(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});
