// A tiny CTF run end to end through the CLI on the first images of Fashion-MNIST: `ctfgen demo --profile tiny`
// (tokenizer → encode → cluster + swap picture → baseline, stage1, aux → samples → report), then `ctfgen sample` for
// both methods with every output, and the demo's idempotence (a second run skips every finished stage; a
// deleted output reruns its stage only).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadCoarseMap } from '../../src/cluster/coarse-map.js';
import { decodeImageFile } from '../../src/io/png.js';
import { textWidth } from '../../src/viz/font.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ctfgen = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
const haveData = existsSync('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz');

interface TokensJson { classes: number[]; coarse?: number[][]; fine: number[][] }

test(
  'tiny run: demo pipeline, sample both methods, PNGs decode, demo resumes idempotently',
  { skip: !haveData && 'Fashion-MNIST is not installed' },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctfgen-e2e-'));
    try {
      const run = join(dir, 'run');
      const first = ctfgen('demo', '--run', run, '--profile', 'tiny');
      assert.equal(first.status, 0, first.stderr);
      for (const f of [
        'tokenizer.safetensors',
        'tokens-train.safetensors',
        'tokens-test.safetensors',
        'clusters.safetensors',
        'baseline.safetensors',
        'stage1.safetensors',
        'aux.safetensors',
        'baseline.report.json',
        'times.jsonl',
        'attempts.jsonl',
        'samples-ctf.png',
        'samples-baseline.png',
        'progressive.png',
        'tokens-ctf.json',
        'tokens-baseline.json',
        'swap-demo.png',
        'report.md',
        'report.json',
      ])
        assert.ok(existsSync(join(run, f)), `${f} written`);
      const report = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8')) as {
        stages: { name: string; ranNow: boolean; command: string }[];
        valLoss: Record<string, number>;
        tokenizer: { psnr: number };
        samples: { ctf: { insideCluster: number } };
      };
      assert.equal(report.stages.length, 10);
      assert.ok(report.stages.every((s) => s.ranNow && s.command.startsWith('ctfgen ')));
      for (const k of ['baseline', 'stage1', 'aux'])
        assert.ok(Number.isFinite(report.valLoss[k]) && report.valLoss[k]! > 0, `val loss ${k}`);
      assert.ok(report.tokenizer.psnr > 5);
      const events = readFileSync(join(run, 'aux.events.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; step: number });
      assert.deepEqual([events[0]!.type, events.at(-1)!.type], ['start', 'done'], 'the event log holds the whole run');
      assert.ok(events.some((e) => e.type === 'epoch') && events.some((e) => e.type === 'progress'));
      assert.equal(report.samples.ctf.insideCluster, 1);
      assert.match(
        readFileSync(join(run, 'report.md'), 'utf8'),
        /\| baseline \| \d+s \| `ctfgen train baseline --run /,
      );

      // Idempotent: everything is skipped; a removed output reruns its stage and nothing before it.
      const again = ctfgen('demo', '--run', run, '--profile', 'tiny');
      assert.equal(again.status, 0, again.stderr);
      assert.equal(again.stderr.match(/done earlier \(\d+s\), skipped/g)?.length, 10);
      rmSync(join(run, 'samples-baseline.png'));
      const partial = ctfgen('demo', '--run', run, '--profile', 'tiny');
      assert.equal(partial.status, 0, partial.stderr);
      assert.equal(partial.stderr.match(/skipped/g)?.length, 9);
      assert.match(partial.stderr, /\[10\/10\] sample-baseline: ctfgen sample/);
      // A remade input makes every later stage start over: the demo says --force, since their old outputs are stale.
      rmSync(join(run, 'tokens-test.safetensors'));
      const remade = ctfgen('demo', '--run', run, '--profile', 'tiny');
      assert.equal(remade.status, 0, remade.stderr);
      assert.equal(remade.stderr.match(/skipped/g)?.length, 2);
      assert.match(remade.stderr, /\[6\/10\] baseline: ctfgen train baseline --run .* --force/);
      assert.match(remade.stderr, /\[4\/10\] cluster: ctfgen cluster .* --force/);

      // CTF with every output; chunks of 2 images give the same images as one chunk of 64.
      const tokens = join(dir, 'ctf.json'),
        each = join(dir, 'each'),
        progressive = join(dir, 'progressive.png');
      const ctf = ctfgen(
        'sample',
        '--run',
        run,
        '--classes',
        '0,1',
        '--n',
        '3',
        '--out',
        join(dir, 'ctf.png'),
        '--each',
        each,
        '--tokens-out',
        tokens,
        '--progressive',
        progressive,
        '--batch',
        '2',
        '--seed',
        '5',
      );
      assert.equal(ctf.status, 0, ctf.stderr);
      const t = JSON.parse(readFileSync(tokens, 'utf8')) as TokensJson;
      assert.deepEqual(t.classes, [0, 0, 0, 1, 1, 1]);
      assert.equal(t.coarse!.length, 6);
      assert.ok(t.fine.every((row) => row.length === 64));
      const map = await loadCoarseMap(join(run, 'clusters.safetensors'));
      t.fine.forEach((row, i) =>
        row.forEach((f, p) =>
          assert.equal(map.fineToCoarse[f], t.coarse![i]![p], 'the cluster mask keeps every fine token in its cluster'),
        ),
      );
      const one = ctfgen(
        'sample',
        '--run',
        run,
        '--classes',
        '0,1',
        '--n',
        '3',
        '--out',
        join(dir, 'ctf64.png'),
        '--tokens-out',
        join(dir, 'ctf64.json'),
        '--seed',
        '5',
      );
      assert.equal(one.status, 0, one.stderr);
      assert.deepEqual(
        JSON.parse(readFileSync(join(dir, 'ctf64.json'), 'utf8')),
        t,
        'the batch size does not change a seeded sample',
      );
      assert.deepEqual(readFileSync(join(dir, 'ctf64.png')), readFileSync(join(dir, 'ctf.png')));

      // 2 rows (classes) × 3, tiles 64 px (scale 2), 2 px padding, and a margin with the class names at font scale 2
      const grid = await decodeImageFile(join(dir, 'ctf.png'));
      const labels = textWidth('T-shirt/top', 2) + 2 * 6;
      assert.deepEqual([grid.width, grid.height, grid.channels], [labels + 3 * 64 + 4 * 2, 2 * 64 + 3 * 2, 1]);
      const singles = readdirSync(each).sort();
      assert.deepEqual(singles, ['c0-0.png', 'c0-1.png', 'c0-2.png', 'c1-0.png', 'c1-1.png', 'c1-2.png']);
      const single = await decodeImageFile(join(each, 'c1-2.png'));
      assert.deepEqual([single.width, single.height], [64, 64]);
      const prog = await decodeImageFile(progressive); // 6 images × (4 previews + final)
      assert.deepEqual([prog.width, prog.height], [5 * 64 + 6 * 2, 6 * 64 + 7 * 2]);

      const base = ctfgen(
        'sample',
        '--run',
        run,
        '--method',
        'baseline',
        '--class',
        '2',
        '--n',
        '4',
        '--out',
        join(dir, 'base.png'),
        '--tokens-out',
        join(dir, 'base.json'),
      );
      assert.equal(base.status, 0, base.stderr);
      const b = JSON.parse(readFileSync(join(dir, 'base.json'), 'utf8')) as TokensJson;
      assert.deepEqual([b.classes, b.coarse, b.fine.length], [[2, 2, 2, 2], undefined, 4]);
      const bg = await decodeImageFile(join(dir, 'base.png'));
      assert.deepEqual([bg.width, bg.height], [2 * 64 + 3 * 2, 2 * 64 + 3 * 2]);

      // Snapshots are kept copies of checkpoints; a snapshot step between checkpoint steps is checkpointed too.
      const snapOut = join(dir, 'snap', 'stage1.safetensors');
      const snap = ctfgen(
        'train',
        'stage1',
        '--run',
        run,
        '--out',
        snapOut,
        '--preset',
        'tiny',
        '--epochs',
        '1',
        '--batch',
        '32',
        '--checkpoint-every',
        '2',
        '--snapshot-every',
        '3',
        '--eval-every',
        '2',
        '--val-limit',
        '32',
      );
      assert.equal(snap.status, 0, snap.stderr);
      // 8 steps: 3 and 6 kept (8 is the final model)
      assert.deepEqual(
        readdirSync(join(dir, 'snap'))
          .filter((f) => f.includes('.step'))
          .sort(),
        ['stage1.step3.safetensors', 'stage1.step6.safetensors'],
      );
      const ckpts = readFileSync(join(dir, 'snap', 'stage1.events.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; step: number })
        .filter((e) => e.type === 'checkpoint')
        .map((e) => e.step);
      assert.deepEqual(ckpts, [2, 3, 4, 6, 8]);
      const evals = readFileSync(join(dir, 'snap', 'stage1.events.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; step: number })
        .filter((e) => e.type === 'eval')
        .map((e) => e.step);
      assert.deepEqual(evals, [2, 4, 6, 8]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
