// conv2d forward and forward+backward on the reference case (x 32×64×32×32, 3×3, 64→64, padding 1)
// against PyTorch's CPU conv (Debian /usr/bin/python3, torch 1.13, mkldnn), alternating rounds in one run
// because two-core timings here drift from minute to minute. Medians over all rounds, and the ratio.
//   npm run setup && node dist/bench/conv-probe.js [--rounds 5] [--torch-threads 1,2]
// "ours" goes through the public autograd.backward(y, dy) (which first copies dy into y's gradient);
// "ours, op" calls the conv's own backward with dy directly, as it runs inside a network.
import { spawnSync } from 'node:child_process';
import { backward, noGrad } from '../src/engine/autograd.js';
import { blasInfo } from '../src/engine/native.js';
import { conv2d } from '../src/engine/ops/conv.js';
import { Rng } from '../src/engine/rng.js';
import { Tensor } from '../src/engine/tensor.js';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] ?? dflt : dflt;
};
const rounds = Number(arg('--rounds', '5'));
const perRound = 5;
const torchThreads = arg('--torch-threads', '1,2').split(',').filter((s) => s !== '').map(Number);
const [N, C, H, W, O, k] = [32, 64, 32, 32, 64, 3];

const rng = new Rng(0);
const x = new Tensor(rng.fillNormal(new Float32Array(N * C * H * W)), [N, C, H, W], { requiresGrad: true });
const w = new Tensor(rng.fillNormal(new Float32Array(O * C * k * k), 0, 0.05), [O, C, k, k], { requiresGrad: true });
const b = new Tensor(rng.fillNormal(new Float32Array(O)), [O], { requiresGrad: true });
const gy = rng.fillNormal(new Float32Array(N * O * H * W));

type Sample = { fwd: number; fb: number };
function ours(direct: boolean): Sample {
  let t = performance.now();
  noGrad(() => conv2d(x, w, b, { padding: 1 }));
  const fwd = performance.now() - t;
  t = performance.now();
  x.grad = w.grad = b.grad = null;
  const y = conv2d(x, w, b, { padding: 1 });
  if (direct) y.node!.backward(gy);
  else backward(y, gy);
  return { fwd, fb: performance.now() - t };
}

const TORCH = `
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
x = torch.randn(${N}, ${C}, ${H}, ${W}, requires_grad=True)
conv = torch.nn.Conv2d(${C}, ${O}, ${k}, padding=1)
g = torch.randn(${N}, ${O}, ${H}, ${W})
def once():
    t = time.perf_counter()
    with torch.no_grad(): conv(x)
    f = time.perf_counter() - t
    t = time.perf_counter()
    x.grad = None; conv.weight.grad = None; conv.bias.grad = None
    conv(x).backward(g)
    return f, time.perf_counter() - t
for _ in range(3): once()
for _ in range(int(sys.argv[2])):
    f, fb = once()
    print(f * 1e3, fb * 1e3)
`;
function torch(threads: number): Sample[] {
  const r = spawnSync('/usr/bin/python3', ['-c', TORCH, String(threads), String(perRound)], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  return r.stdout.trim().split('\n').map((line) => {
    const [fwd, fb] = line.split(/\s+/).map(Number);
    return { fwd: fwd!, fb: fb! };
  });
}

const median = (a: number[]): number => [...a].sort((p, q) => p - q)[a.length >> 1]!;
for (let i = 0; i < 3; i++) ours(false);
const res = new Map<string, Sample[]>([
  ['ours', []],
  ['ours, op', []],
  ...torchThreads.map((t): [string, Sample[]] => [`torch ${t} thr`, []]),
]);
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < perRound; i++) res.get('ours')!.push(ours(false));
  for (let i = 0; i < perRound; i++) res.get('ours, op')!.push(ours(true));
  for (const t of torchThreads) res.get(`torch ${t} thr`)!.push(...torch(t));
}
const info = blasInfo();
console.log(
  `OpenBLAS ${info.corename}, ${info.threads} threads; conv ${N}×${C}×${H}×${W}, ${k}×${k}, ${C}→${O}, padding 1; ` +
    `${rounds} alternating rounds × ${perRound}, medians`,
);
const ourFb = median(res.get('ours')!.map((s) => s.fb));
for (const [name, v] of res) {
  if (v.length === 0) { console.log(`${name.padEnd(12)} not available`); continue; }
  const fb = median(v.map((s) => s.fb));
  console.log(
    `${name.padEnd(12)} forward ${median(v.map((s) => s.fwd))
      .toFixed(1)
      .padStart(6)} ms   forward+backward ${fb.toFixed(1).padStart(6)} ms` +
      (name.startsWith('torch') ? `   ours/torch ${(ourFb / fb).toFixed(2)}` : ''),
  );
}
