// `ctfgen bench engine`: renders the benchmark's progress and table; the numbers come from src/bench.
import { writeFileAtomic } from '../io/atomic.js';
import { checkOutputs } from '../io/outputs.js';
import { runEngineBench, type EngineBenchReport } from '../bench/engine.js';
import { UsageError } from './args.js';
import type { Command } from './main.js';

function table(r: EngineBenchReport): string {
  const lines = [
    'case     ours ms   torch ms   ratio  ours GFLOP/s (peak %)  ours peak MiB  torch peak MiB',
  ];
  for (const c of r.cases) {
    lines.push(
      `${c.case.padEnd(8)} ${c.ours_ms.toFixed(1).padStart(7)} ${c.torch_ms.toFixed(1).padStart(10)} ` +
      `${c.ratio.toFixed(2).padStart(7)}  ` +
        `${c.ours.gflops.toFixed(0).padStart(8)} (${(100 * c.ours.peakFraction).toFixed(0)}%)${' '.repeat(9)}` +
        `${c.ours.info.peakRssMb.toFixed(0).padStart(8)} ${c.torch.info.peakRssMb.toFixed(0).padStart(15)}`,
    );
    if (c.ours_step_ms !== undefined)
      lines.push(
        `         per decode step: ours ${c.ours_step_ms.toFixed(2)} ms, torch ${c.torch_step_ms!.toFixed(2)} ms`,
      );
  }
  const first = r.cases[0];
  if (first) lines.push(`OpenBLAS ${first.ours.info.corename}, ${first.ours.info.blasThreads} threads (torch sees ` +
    `${first.torch.info.corename}, ${first.torch.info.threads} torch thread(s)); ` +
    `OPENBLAS_CORETYPE=${r.env.OPENBLAS_CORETYPE ?? '(unset)'}`);
  return lines.join('\n') + '\n';
}

export const benchEngineCommand: Command = {
  spec: {
    name: 'bench engine',
    brief: 'the engine against PyTorch: a training step, KV-cached decoding, a conv layer',
    summary:
      'Times the engine against PyTorch on the reference training step, a KV-cached decode and a conv layer.\nBoth ' +
      'run in worker processes, alternating, under the same OpenBLAS setting; medians are reported.',
    usage: 'ctfgen bench engine [options]',
    flags: {
      json: { type: 'string', help: 'also write the report as JSON to this file' },
      cases: { type: 'string', default: 'train,decode,conv', help: 'comma-separated cases to run' },
      reps: { type: 'int', default: 9, min: 1, help: 'measured rounds per case' },
      warmup: { type: 'int', default: 2, min: 0, help: 'unmeasured warm-up steps per side' },
      python: { type: 'string', default: '/usr/bin/python3', help: 'Python with torch for the peer' },
      torchThreads: {
        type: 'int',
        min: 1,
        help: 'torch.set_num_threads for the peer in every case (default: 1 for the GPT cases, 2 for conv)',
      },
    },
  },
  async run(f) {
    const cases = String(f['cases'])
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (cases.length === 0) throw new UsageError('--cases: give at least one case');
    checkOutputs({ inputs: [], outputs: [typeof f['json'] === 'string' ? { role: '--json', path: f['json'] } : null] });
    const report = await runEngineBench(
      {
        cases,
        reps: f['reps'] as number,
        warmup: f['warmup'] as number,
        python: String(f['python']),
        torchThreads: f['torchThreads'] as number | undefined,
      },
      (e) => {
        if (e.type === 'case-start') process.stderr.write(`${e.case}: ${e.what}\n`);
        else
          process.stderr.write(
            `  round ${e.round}/${e.of}: ours ${e.oursMs.toFixed(1)} ms, torch ${e.torchMs.toFixed(1)} ms\n`,
          );
      },
    );
    process.stdout.write(table(report));
    if (typeof f['json'] === 'string') {
      await writeFileAtomic(f['json'], JSON.stringify(report, null, 2) + '\n');
      process.stderr.write(`wrote ${f['json']}\n`);
    }
  },
};
