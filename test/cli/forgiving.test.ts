// A CLI that forgives: a command group lists its commands, typos get "did you mean", usage errors show one usage line
// (not the whole help), the command list has one line per command, a closed stdout does not stop the work, and
// colours only reach a terminal.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { bold } from '../../src/cli/progress.js';
import { tokenizerDataOptions } from '../../src/cli/data.js';
import { classId } from '../../src/cli/sample.js';
import { closest, editDistance } from '../../src/cli/suggest.js';
import { NAMED_DATASETS } from '../../src/data/dataset.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;
const ctfgen = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

test('edit distance and the closest word', () => {
  assert.equal(editDistance('sampel', 'sample'), 1, 'a swap of neighbours is one edit');
  assert.equal(editDistance('codebok', 'codebook'), 1);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(closest('sampel', ['sample', 'demo', 'eval']), 'sample');
  assert.equal(closest('xyzzy', ['sample', 'demo', 'eval']), null, 'nothing close: no guess');
});

test('a group lists its commands; typos get a guess and one usage line', () => {
  const train = ctfgen('train');
  assert.equal(train.status, 2);
  for (const kind of ['baseline', 'stage1', 'aux']) assert.match(train.stderr, new RegExp(`ctfgen train ${kind} `));
  assert.doesNotMatch(train.stderr, /coarse-ar|fine-aux/, 'the old names run, but are not listed');
  const cmd = ctfgen('sampel');
  assert.equal(cmd.status, 2);
  assert.match(cmd.stderr, /unknown command "sampel"; did you mean `ctfgen sample`\?\nUsage: ctfgen sample /);
  const flag = ctfgen('tokenizer', 'train', '--codebok', '64');
  assert.equal(flag.status, 2);
  assert.match(flag.stderr, /unknown flag --codebok; did you mean --codebook\?\nUsage: ctfgen tokenizer train /);
  assert.doesNotMatch(flag.stderr, /Options:/, 'one usage line, not the whole help');
  const help = ctfgen('--help');
  const rows = help.stdout.split('\n').filter((l) => l.startsWith('  ctfgen '));
  assert.ok(rows.length >= 20);
  for (const r of rows) assert.ok(r.length <= 120 && !r.endsWith(' '), `one short line per command: ${r}`);
});

test('a closed stdout does not stop the command; no colour outside a terminal', async () => {
  const child = spawn(process.execPath, [CLI, 'data', 'info', 'fashion-mnist', '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.doesNotMatch(stderr, /EPIPE|internal error/);
  assert.ok(code === 0 || /not installed|does not exist/.test(stderr), `exit ${code}: ${stderr}`);
  assert.equal(bold('demo', { isTTY: false } as NodeJS.WriteStream), 'demo');
});

test('classes by id or by name: case, spacing and hyphens ignored, a unique part is enough', () => {
  const names = [...NAMED_DATASETS['fashion-mnist']!.classNames];
  assert.deepEqual(
    ['5', 'sandal', 'SANDAL', 'ankle boot', 'boot', 't-shirt', 'tshirt'].map((c) => classId(c, names, 10)),
    [5, 5, 5, 9, 9, 0, 0],
  );
  assert.throws(() => classId('s', names, 10), /class "s": ambiguous; the classes are 0 T-shirt\/top, 1 Trouser/);
  assert.throws(() => classId('hat', names, 10), /class "hat": unknown/);
  assert.throws(() => classId('12', names, 10), /class 12: the models know classes 0…9/);
  assert.throws(() => classId('coat', null, 10), /class "coat": unknown; the classes are ids 0…9/);
});

test('commands given a tokenizer prepare its data as it was trained: padding and resize inherited, flags win', () => {
  const trainedOn = {
    name: 'folder:/data/pets',
    split: 'train',
    count: 10,
    channels: 3,
    height: 16,
    width: 16,
    numClasses: 2,
    sha256: 'x',
    preprocessing: { pad: 1, padValue: 0, resize: [14, 14] as [number, number] },
  };
  assert.deepEqual(tokenizerDataOptions({}, trainedOn), {
    spec: 'folder:/data/pets',
    options: { pad: 1, resize: [14, 14] },
  });
  assert.deepEqual(tokenizerDataOptions({ pad: 0 }, trainedOn).options, { pad: 0, resize: [14, 14] });
  assert.deepEqual(
    tokenizerDataOptions({ data: 'fashion-mnist' }, trainedOn),
    { spec: 'fashion-mnist', options: { pad: 2 } },
    'other data: its own defaults',
  );
  assert.deepEqual(tokenizerDataOptions({}, null), { spec: 'fashion-mnist', options: { pad: 2 } });
});
