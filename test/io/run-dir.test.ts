// The run directory described once (src/io/run-dir.ts): the file of each piece and of what sits beside a checkpoint,
// and a directory made before the renaming (coarse-ar / fine-aux files) found under its old names.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { RUN_FILES, reportPath, runPath, snapshotPath, trainStatePath } from '../../src/io/run-dir.js';
import { GPT_KINDS, storedGptKind } from '../../src/models/gpt-kind.js';
import { storedTrainTask } from '../../src/train/saved-config.js';

test('files beside a checkpoint', () => {
  assert.equal(trainStatePath('runs/x/aux.safetensors'), 'runs/x/aux.train-state.safetensors');
  assert.equal(reportPath('runs/x/aux.safetensors'), 'runs/x/aux.report.json');
  assert.equal(snapshotPath('runs/x/aux.safetensors', 200), 'runs/x/aux.step200.safetensors');
  assert.equal(trainStatePath('runs/x/model'), 'runs/x/model.train-state.safetensors');
  for (const kind of GPT_KINDS) assert.equal(RUN_FILES[kind], `${kind}.safetensors`, 'a model\'s file is its kind');
});

test('a run directory of before the renaming is found under its old names until a new file exists', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-rundir-'));
  try {
    assert.equal(runPath(dir, 'stage1'), join(dir, 'stage1.safetensors'), 'an empty directory: the new name');
    writeFileSync(join(dir, 'coarse-ar.safetensors'), 'x');
    writeFileSync(join(dir, 'fine-aux.train-state.safetensors'), 'x');  // an aux training stopped before its first save
    assert.equal(runPath(dir, 'stage1'), join(dir, 'coarse-ar.safetensors'));
    assert.equal(runPath(dir, 'aux'), join(dir, 'fine-aux.safetensors'));
    assert.equal(runPath(dir, 'baseline'), join(dir, 'baseline.safetensors'));
    writeFileSync(join(dir, 'stage1.safetensors'), 'x');
    assert.equal(runPath(dir, 'stage1'), join(dir, 'stage1.safetensors'), 'the new name wins once it exists');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stored kinds and train-state tasks of before the renaming read in today\'s names', () => {
  assert.deepEqual(['coarse-ar', 'fine-aux', 'baseline', 'stage1', 'aux'].map((k) => storedGptKind(k)),
    ['stage1', 'aux', 'baseline', 'stage1', 'aux']);
  assert.equal(storedGptKind(undefined), undefined);
  assert.equal(storedGptKind('toString'), 'toString', 'only the two old names map');
  assert.deepEqual(['gpt:coarse-ar', 'gpt:fine-aux', 'gpt:baseline', 'tokenizer'].map((t) => storedTrainTask(t)),
    ['gpt:stage1', 'gpt:aux', 'gpt:baseline', 'tokenizer']);
});
