// The `ctfgen tokenizer` commands end to end on the first images of Fashion-MNIST: train, Ctrl-C (a real
// SIGINT) and --resume, eval with a grid, encode with flips, dry run, and usage errors.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '../../src/tokenizer/checkpoint.js';
import { loadTokens } from '../../src/tokenizer/tokens-file.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const haveData = existsSync('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz');
const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

test(
  'tokenizer train → SIGINT → resume → eval → encode',
  { skip: !haveData && 'Fashion-MNIST is not installed' },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctfgen-cli-'));
    try {
      const out = join(dir, 'run', 'tokenizer.safetensors');
      const common = [
        '--preset',
        'tiny',
        '--codebook',
        '64',
        '--limit',
        '256',
        '--batch',
        '16',
        '--epochs',
        '3',
        '--warmup',
        '2',
        '--eval-limit',
        '64',
      ];

      // Interrupted run: SIGINT once training has started; it saves and exits with 130 (128 + SIGINT), not 0:
      // a stopped run is not a finished one.
      const child = spawn(
        process.execPath,
        [CLI, 'tokenizer', 'train', '--out', out, ...common, '--progress-every', '1'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/starting, 48 steps/.test(stderr) && !child.killed) child.kill('SIGINT');
      });
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(code, 130, stderr);
      assert.match(stderr, /stopped by SIGINT/);
      assert.match(stderr, /SIGINT — saved step \d+ to .*train-state\.safetensors; continue with --resume/);
      assert.ok(existsSync(out) && existsSync(join(dir, 'run', 'tokenizer.train-state.safetensors')));

      const again = run(['tokenizer', 'train', '--out', out, ...common]);
      assert.equal(again.status, 1, 'a saved run is neither restarted nor replaced without being asked');
      assert.match(
        again.stderr,
        /--out .*tokenizer\.safetensors exists; pass --resume to continue its run, or --force/,
      );
      const bad = run(['tokenizer', 'train', '--out', out, ...common, '--resume', '--preset', 'S']);
      assert.equal(bad.status, 2, 'the model config comes from the saved run');
      assert.match(
        bad.stderr,
        /--resume: .*tokenizer\.train-state\.safetensors was started with preset tiny, --preset asks for S/,
      );
      const codebook = run(['tokenizer', 'train', '--out', out, '--limit', '256', '--resume', '--codebook', '128']);
      assert.equal(codebook.status, 2);
      assert.match(codebook.stderr, /was started with codebook 64, --codebook asks for 128/);
      const resumed = run(['tokenizer', 'train', '--out', out, ...common, '--resume', '--json']);
      assert.equal(resumed.status, 0, resumed.stderr);
      assert.match(resumed.stderr, /resuming at step ([1-9]|[1-3]\d|4[0-7]), 48 steps/);
      const evaluation = JSON.parse(resumed.stdout) as { psnr: number; usage: number; images: number };
      assert.equal(evaluation.images, 64);
      assert.ok(evaluation.psnr > 10 && evaluation.usage > 0);
      const runJson = JSON.parse(readFileSync(join(dir, 'run', 'run.json'), 'utf8')) as { steps: number; kind: string };
      assert.deepEqual([runJson.kind, runJson.steps], ['ctfgen.run', 48]);

      const grid = join(dir, 'grid.png');
      const ev = run([
        'tokenizer',
        'eval',
        '--tokenizer',
        out,
        '--limit',
        '32',
        '--grid',
        grid,
        '--grid-count',
        '8',
        '--json',
      ]);
      assert.equal(ev.status, 0, ev.stderr);
      assert.equal((JSON.parse(ev.stdout) as { images: number }).images, 32);
      assert.deepEqual([...readFileSync(grid).subarray(1, 4)], [...Buffer.from('PNG')]);

      const tokens = join(dir, 'tokens.safetensors');
      const enc = run([
        'tokenizer',
        'encode',
        '--tokenizer',
        out,
        '--split',
        'test',
        '--limit',
        '20',
        '--flip',
        '--out',
        tokens,
      ]);
      assert.equal(enc.status, 0, enc.stderr);
      assert.match(enc.stderr, /encoded 40 images .* img\/s/);
      const { hash } = await loadTokenizer(out);
      const t = await loadTokens(tokens, { tokenizerHash: hash });
      assert.deepEqual(t.tokens.shape, [40, 8, 8]);
      assert.equal(t.data.name, 'fashion-mnist');
      assert.equal(t.data.split, 'test');

      const dry = run([
        'tokenizer',
        'train',
        '--out',
        join(dir, 'x.safetensors'),
        '--dry-run',
        '--json',
        '--limit',
        '64',
      ]);
      assert.equal(dry.status, 0, dry.stderr);
      const d = JSON.parse(dry.stdout) as { parameters: number; memoryMiB: { total: number }; grid: number };
      assert.ok(d.parameters > 100_000 && d.memoryMiB.total > 0 && d.grid === 8);
      assert.ok(!existsSync(join(dir, 'x.safetensors')), 'a dry run writes nothing');

      assert.equal(run(['tokenizer', 'train', '--epochs', '1']).status, 2, '--out is required');
      const usage: [string[], RegExp][] = [
        [['--preset', 'XL'], /--preset: expected tiny, S, M, L, got "XL"/],
        [['--data', 'nope'], /--data: unknown dataset "nope" \(expected fashion-mnist, mnist, folder:PATH\)/],
        [['extra'], /unexpected argument "extra"/],
      ];
      for (const [flags, message] of usage) {
        const u = run(['tokenizer', 'train', '--out', join(dir, 'u', 'tok.safetensors'), ...flags]);
        assert.equal(u.status, 2, `${flags.join(' ')}: ${u.stderr}`);
        assert.match(u.stderr, message);
      }
      const nowhere = `folder:${join(dir, 'nowhere')}`;
      const noFolder = run(['tokenizer', 'train', '--out', join(dir, 'u', 't.safetensors'), '--data', nowhere]);
      assert.equal(noFolder.status, 1, 'a folder that does not exist is a file error');
      assert.match(noFolder.stderr, /nowhere/);
      const encode = ['tokenizer', 'encode', '--tokenizer', out, '--split', 'test', '--limit', '20'];
      const overTokens = run([...encode, '--out', tokens]);
      assert.equal(overTokens.status, 1);
      assert.match(overTokens.stderr, /--out .*tokens\.safetensors exists; pass --force to replace it/);
      const overTokenizer = run(['tokenizer', 'encode', '--tokenizer', out, '--out', out, '--force']);
      assert.equal(overTokenizer.status, 1);
      assert.match(overTokenizer.stderr, /--out .*tokenizer\.safetensors is the input --tokenizer/);
      const forced = run([...encode, '--out', tokens, '--force']);
      assert.equal(forced.status, 0, forced.stderr);
      assert.equal(run(['tokenizer', 'train', '--out', out, '--dead-code-reinit', 'maybe']).status, 2);
      const missing = run(['tokenizer', 'eval', '--tokenizer', join(dir, 'nope.safetensors')]);
      assert.equal(missing.status, 1);
      assert.match(missing.stderr, /does not exist/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
