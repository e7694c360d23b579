// Fuzz test: seeded mutations (./mutate.ts) of small real files — a GPT checkpoint, a tokenizer, both
// train states, a token file and a cluster file — each read the way the command that takes it reads it (in-process
// for speed, and a sample of them through the CLI). Every case must end in a clean CtfError (the CLI: exit 1, or 2
// for usage) or in a successful load of a file that still works (its oracle below passes): no other exception, no
// `internal error`, no hang, and the process never above 1 GB.
//
// CI runs 600 cases. A developer's long run, which prints the same counts:
//   CTFGEN_FUZZ_CASES=20000 CTFGEN_FUZZ_SEED=1 node scripts/run-tests.mjs fuzz/inputs
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkCoarseMap, coarseMapFromFile } from '../../src/cluster/coarse-map.js';
import { noGrad } from '../../src/engine/autograd.js';
import { Rng } from '../../src/engine/rng.js';
import { intTensor } from '../../src/engine/tensor.js';
import { CtfError } from '../../src/errors.js';
import { decodeSafetensors, type SafetensorsFile } from '../../src/io/safetensors.js';
import { Gpt, gptConfig, type GptConfig } from '../../src/models/gpt.js';
import { gptFromFile } from '../../src/models/gpt-checkpoint.js';
import { weightsHash } from '../../src/nn/module.js';
import { checkGptPiece } from '../../src/sample/run-dir.js';
import { tokenizerFromFile, type LoadedTokenizer } from '../../src/tokenizer/checkpoint.js';
import { VqTokenizer } from '../../src/tokenizer/model.js';
import { parseTokens, type TokenSet } from '../../src/tokenizer/tokens-file.js';
import { TokenizerTrainTask, type TokenizerTrainOptions } from '../../src/tokenizer/train.js';
import { parseTrainState } from '../../src/train/checkpoint.js';
import { GptTrainTask, gptTask, type GptTrainOptions } from '../../src/train/gpt-train.js';
import { makeTinyRun, tinyDataset, type TinyRun } from '../tiny-run.js';
import { mutate } from './mutate.js';

const CASES = Number(process.env['CTFGEN_FUZZ_CASES'] ?? 600);
const SEED = Number(process.env['CTFGEN_FUZZ_SEED'] ?? 1);
const CLI_CASES = Math.min(CASES, Number(process.env['CTFGEN_FUZZ_CLI_CASES'] ?? 24));
const VERBOSE = process.env['CTFGEN_FUZZ_VERBOSE'] === '1';  // list every accepted changed file
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

interface Target {
  name: string;
  file: keyof TinyRun;
  /** What the command does with the file; throws a CtfError when it refuses it. */
  load(file: SafetensorsFile): unknown;
  /** A loaded file must still work: throws when it does not. */
  works(loaded: unknown): void;
  /** The command that reads the file, given where the mutated copy was written (none: in-process only). */
  cli?(path: string, dir: string): string[];
}

function targets(run: TinyRun, tokens: TokenSet, tokenizer: LoadedTokenizer): Target[] {
  const ds = tinyDataset();
  const finite = (xs: Float32Array, what: string): void => assert.ok(xs.every(Number.isFinite), `${what} are finite`);
  const sampleArgs = (tok: string, base: string, dir: string): string[] => ['sample', '--method', 'baseline',
    '--tokenizer', tok, '--baseline', base, '--n', '1', '--class', '0', '--out', join(dir, 's.png')];
  return [
    {
      name: 'gpt checkpoint', file: 'baseline',
      load(file) {  // src/sample/run-dir.ts: loadGptPiece, then checkGptPiece
        const model = gptFromFile(file);
        const piece = { model, path: file.source, meta: { ...file.metadata } };
        checkGptPiece('baseline', piece, { ...tokenizer, path: run.tokenizer }, undefined);
        return { model, hash: file.metadata['hash'] };
      },
      works(x) {
        const { model, hash } = x as { model: Gpt; hash?: string };
        if (hash !== undefined) assert.equal(weightsHash(model.stateDict()), hash);
        const T = model.config.grid ** 2;
        finite(noGrad(() => model.forward(Int32Array.of(0), new Int32Array(T - 1), { training: false })).f32, 'logits');
      },
      cli: (path, dir) => sampleArgs(run.tokenizer, path, dir),
    },
    {
      name: 'tokenizer', file: 'tokenizer',
      load: (file) => tokenizerFromFile(file),
      works(x) {
        const { model } = x as LoadedTokenizer;
        const g = model.grid;
        finite(model.decode(intTensor(new Int32Array(g * g), [1, g, g])).f32, 'decoded pixels');
      },
      cli: (path, dir) => sampleArgs(path, run.baseline, dir),
    },
    {
      name: 'gpt train state', file: 'baselineState',
      load(file) {  // src/cli/train.ts with --resume
        const saved = parseTrainState(file, 'gpt:baseline');
        const config = { fineVocab: 0, ...(saved.config as object) } as GptConfig;
        const options = saved.options as unknown as GptTrainOptions;
        const model = new Gpt(config, new Rng(options.seed).split('init'));
        if ((saved.extra as Record<string, string> | undefined)?.['tokenizer_hash'] !== tokens.tokenizerHash)
          throw new CtfError('--resume: trained with another tokenizer hash');
        const task = new GptTrainTask('baseline', model, tokens, null, options, async () => '');
        return { task, step: task.restore(saved) };
      },
      works(x) {
        const { task, step } = x as { task: GptTrainTask; step: number };
        if (step < task.totalSteps) assert.ok(Number.isFinite(task.forwardBackward(step).loss), 'the next step trains');
      },
      cli(path, dir) {
        copyFileSync(path, join(dir, 'baseline.train-state.safetensors'));
        const out = join(dir, 'baseline.safetensors');
        return ['train', 'baseline', '--tokens', run.tokens, '--out', out, '--resume', '--val-limit', '0'];
      },
    },
    {
      name: 'tokenizer train state', file: 'tokenizerState',
      load(file) {  // src/cli/tokenizer.ts with --resume
        const saved = parseTrainState(file, 'tokenizer');
        const options = saved.options as unknown as TokenizerTrainOptions;
        const model = new VqTokenizer(saved.config as VqTokenizer['config'], new Rng(options.seed).split('init'));
        const task = new TokenizerTrainTask(model, ds, options, async () => '');
        return { task, step: task.restore(saved) };
      },
      works(x) {
        const { task, step } = x as { task: TokenizerTrainTask; step: number };
        if (step < task.totalSteps) assert.ok(Number.isFinite(task.forwardBackward(step).loss), 'the next step trains');
      },
    },
    {
      name: 'token file', file: 'tokens',
      load(file) {  // src/cli/train.ts: loadTokens, then the model config from it
        const t = parseTokens(file);
        return { t, config: gptConfig('tiny', gptTask('baseline', t, null)) };
      },
      works(x) {
        const { t } = x as { t: TokenSet };
        const V = t.tokenizerConfig.codebookSize, K = t.data.numClasses;
        assert.ok(t.tokens.i32.every((v) => v >= 0 && v < V) && t.labels.every((c) => c >= 0 && c < K));
      },
      cli: (path, dir) => ['train', 'baseline', '--tokens', path, '--out', join(dir, 'b.safetensors'),
        '--preset', 'tiny', '--batch', '8', '--dry-run'],
    },
    {
      name: 'cluster file', file: 'clusters',
      load(file) {  // src/cli/train.ts stage1: loadCoarseMap with the tokens' expectations, then the task
        const expected = { tokenizerHash: tokens.tokenizerHash, v: tokens.tokenizerConfig.codebookSize };
        const map = coarseMapFromFile(file, expected);
        gptTask('stage1', tokens, map);
        return map;
      },
      works(x) {
        const map = x as Parameters<typeof checkCoarseMap>[0];
        checkCoarseMap(map, 'fuzz');
        assert.equal(map.members.reduce((n, m) => n + m.length, 0), map.v);
      },
      cli: (path, dir) => ['train', 'stage1', '--tokens', run.tokens, '--clusters', path,
        '--out', join(dir, 'c.safetensors'), '--preset', 'tiny', '--batch', '8', '--dry-run'],
    },
  ];
}

interface Tally { cases: number; refused: number; accepted: number; unchanged: number; cli: number; failures: string[] }

const title = `fuzz: ${CASES} seeded mutations of real files end in a clean error or a working load (seed ${SEED})`;

test(title, { timeout: 60 * 60e3 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-fuzz-'));
  try {
    const run = await makeTinyRun(dir);
    const tokens = parseTokens(decodeSafetensors(readFileSync(run.tokens), run.tokens));
    const tokenizer = tokenizerFromFile(decodeSafetensors(readFileSync(run.tokenizer), run.tokenizer));
    const all = targets(run, tokens, tokenizer);
    // Each command accepts the unmutated file, in-process and through the CLI: the paths fuzzed below are live.
    for (const target of all) {
      target.works(target.load(decodeSafetensors(readFileSync(run[target.file]), run[target.file])));
      if (!target.cli) continue;
      const d = join(dir, `original-${target.file}`);
      mkdirSync(d);
      copyFileSync(run[target.file], join(d, 'a.safetensors'));
      const r = spawnSync(process.execPath, [CLI, ...target.cli(join(d, 'a.safetensors'), d)], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${target.name} through the CLI: ${r.stderr}`);
    }
    const rng = new Rng(SEED);
    const tally: Tally = { cases: 0, refused: 0, accepted: 0, unchanged: 0, cli: 0, failures: [] };
    const byKind = new Map<string, [number, number]>();  // mutation kind → [refused, accepted]
    // Coprime with the number of targets, so the CLI sample rotates through all of them.
    let cliEvery = Math.max(1, Math.floor(CASES / Math.max(1, CLI_CASES)));
    while (gcd(cliEvery, all.length) !== 1) cliEvery++;
    let slowest = 0, cliMaxRssMB = 0;
    for (let i = 0; i < CASES; i++) {
      const target = all[i % all.length]!, original = readFileSync(run[target.file]);
      const m = mutate(original, rng.split(`case ${i}`));
      const label = `case ${i} (${target.name}: ${m.kind}, ${m.what})`;
      const t0 = performance.now();
      let refused = false;
      try {
        const loaded = target.load(decodeSafetensors(m.bytes, `case-${i}`));
        try {
          target.works(loaded);
        } catch (e) {
          tally.failures.push(`${label}: accepted, but the loaded file does not work: ${(e as Error).message}`);
        }
        tally.accepted++;
        if (Buffer.compare(Buffer.from(m.bytes), original) === 0) tally.unchanged++;
        else if (VERBOSE) t.diagnostic(`accepted ${label}`);
      } catch (e) {
        if (e instanceof CtfError) refused = true;
        else tally.failures.push(`${label}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      }
      if (refused) tally.refused++;
      const k = byKind.get(m.kind) ?? [0, 0];
      k[refused ? 0 : 1]++;
      byKind.set(m.kind, k);
      slowest = Math.max(slowest, performance.now() - t0);
      tally.cases++;
      if (target.cli && i % cliEvery === 0 && tally.cli < CLI_CASES) {
        const d = join(dir, `cli-${i}`);
        mkdirSync(d);
        const path = join(d, `mutated.safetensors`);
        writeFileSync(path, m.bytes);
        // GNU time reports the command's peak RSS (in KB) as the last line of stderr, where it is available.
        const argv = [process.execPath, CLI, ...target.cli(path, d)];
        const r = TIME ? spawnSync(TIME, ['-f', 'maxrss %M', ...argv], { encoding: 'utf8', timeout: 120e3 })
          : spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 120e3 });
        tally.cli++;
        const rssKB = Number(/maxrss (\d+)\s*$/.exec(r.stderr)?.[1] ?? 0);
        cliMaxRssMB = Math.max(cliMaxRssMB, rssKB / 1024);
        const clean = !r.error && !/internal error/.test(r.stderr) && [0, 1, 2].includes(r.status ?? -1);
        if (rssKB >= 1024 ** 2) tally.failures.push(`${label} through the CLI: peak RSS ${rssKB} KB`);
        if (!clean || (refused && r.status === 0))
          tally.failures.push(`${label} through the CLI: status ${r.status} ${r.error?.message ?? ''}\n${r.stderr}`);
        rmSync(d, { recursive: true, force: true });
      }
    }
    const maxRssMB = process.resourceUsage().maxRSS / 1024;
    const kinds = [...byKind].sort().map(([k, [r, a]]) => `${k} ${r}/${a}`).join(', ');
    t.diagnostic(`fuzz seed ${SEED}: ${tally.cases} cases, ${tally.refused} clean errors, ${tally.accepted} accepted ` +
      `(${tally.unchanged} byte-identical), ${tally.cli} through the CLI; slowest case ${slowest.toFixed(0)} ms; ` +
      `max RSS ${maxRssMB.toFixed(0)} MB (CLI ${TIME ? cliMaxRssMB.toFixed(0) : '?'} MB); ` +
      `refused/accepted by mutation: ${kinds}`);
    assert.deepEqual(tally.failures, []);
    assert.ok(maxRssMB < 1024, `max RSS ${maxRssMB.toFixed(0)} MB`);
    assert.ok(slowest < 10e3, `slowest case ${slowest.toFixed(0)} ms`);
    assert.equal(tally.refused + tally.accepted, tally.cases);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
