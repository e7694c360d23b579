// Times the tokenizer's training step (forward + backward + AdamW) and encoding on random images for
// each preset, with the engine's per-kernel profile when CTFGEN_PROFILE=1.
//   npm run setup && node dist/bench/tokenizer-probe.js [--presets S,M] [--batch 64] [--steps 5] [--codebook 4096]
import { backward } from '../src/engine/autograd.js';
import { profileReport, kernelProfile } from '../src/engine/native.js';
import { AdamW } from '../src/engine/optim.js';
import { Rng } from '../src/engine/rng.js';
import { Tensor } from '../src/engine/tensor.js';
import { tokenizerConfig } from '../src/tokenizer/config.js';
import { VqTokenizer } from '../src/tokenizer/model.js';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] ?? dflt : dflt;
};
const presets = arg('--presets', 'S,M').split(',');
const B = Number(arg('--batch', '64')), steps = Number(arg('--steps', '5')), V = Number(arg('--codebook', '4096'));

for (const preset of presets) {
  const cfg = tokenizerConfig(preset, { inChannels: 1, imageSize: 32 }, { codebookSize: V });
  const model = new VqTokenizer(cfg, new Rng(0));
  const opt = new AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0 });
  const x = new Tensor(new Rng(1).fillUniform(new Float32Array(B * 32 * 32), -1, 1), [B, 1, 32, 32]);
  const times: number[] = [];
  for (let s = 0; s < steps + 1; s++) {
    if (s === 1) kernelProfile.forEach((e) => { e.calls = 0; e.ms = 0; });
    const t0 = performance.now();
    opt.zeroGrad();
    const out = model.forward(x);
    backward(out.loss);
    opt.step();
    times.push(performance.now() - t0);
  }
  const train = times.slice(1).sort((a, b) => a - b)[Math.floor(steps / 2)]!;
  const enc: number[] = [];
  for (let s = 0; s < steps + 1; s++) {
    const t0 = performance.now();
    model.encode(x);
    enc.push(performance.now() - t0);
  }
  const encMs = enc.slice(1).sort((a, b) => a - b)[Math.floor(steps / 2)]!;
  console.log(`${preset}: ${model.numParameters()} params; train ${train.toFixed(1)} ms/step = ` +
    `${((1000 * B) / train).toFixed(0)} img/s; encode ${encMs.toFixed(1)} ms = ${((1000 * B) / encMs).toFixed(0)} ` +
    `img/s`);
  if (process.env['CTFGEN_PROFILE'] === '1') console.log(profileReport());
}
