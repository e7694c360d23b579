#!/usr/bin/python3
"""PyTorch twin of ctfgen's VQ tokenizer (src/tokenizer/model.ts): same layers, same parameter names, so it
loads our safetensors checkpoints. Used by `ctfgen tokenizer bench` to time encoding and a training step beside
ours in the same run, and to cross-check tokens and reconstructions on the same weights.

  /usr/bin/python3 bench/torch_tokenizer.py --weights T.safetensors --input X.f32 --count N [--threads 1]
      [--encode-batch 256] [--train-batch 64] [--reps 5] [--warmup 1]
prints one JSON object: median timings, and the tokens and reconstruction of the first images of X."""
import argparse
import json
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        buf = f.read()
    meta = header.pop('__metadata__', {})
    tensors = {}
    for name, t in header.items():
        assert t['dtype'] == 'F32', f'{name}: {t["dtype"]}'
        b, e = t['data_offsets']
        tensors[name] = torch.from_numpy(np.frombuffer(buf[b:e], dtype='<f4').copy()).reshape(t['shape'])
    return tensors, meta


def norm(c, groups):
    return nn.GroupNorm(min(groups, c), c, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1, self.conv1 = norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = norm(cout, groups), nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if self.nin_shortcut is not None else x) + h


class Level(nn.Module):
    def __init__(self, blocks, resample):
        super().__init__()
        self.res = nn.ModuleList(blocks)
        if resample is not None:
            setattr(self, resample[0], nn.Module())
            getattr(self, resample[0]).conv = resample[1]
        self.resample = resample[0] if resample else None


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch, mult, g = c['channels'], c['channelMult'], c['normGroups']
        self.conv_in = nn.Conv2d(c['inChannels'], ch, 3, padding=1)
        w, levels = ch, []
        for i, m in enumerate(mult):
            blocks = []
            for _ in range(c['resBlocks']):
                blocks.append(ResBlock(w, ch * m, g))
                w = ch * m
            down = None if i == len(mult) - 1 else ('downsample', nn.Conv2d(w, w, 3, stride=2, padding=1))
            levels.append(Level(blocks, down))
        self.conv_blocks = nn.ModuleList(levels)
        self.mid = nn.ModuleList([ResBlock(w, w, g) for _ in range(c['midBlocks'])])
        self.norm_out, self.conv_out = norm(w, g), nn.Conv2d(w, c['zChannels'], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for lv in self.conv_blocks:
            for b in lv.res:
                h = b(h)
            if lv.resample:
                h = lv.downsample.conv(h)
        for b in self.mid:
            h = b(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch, mult, g = c['channels'], c['channelMult'], c['normGroups']
        w = ch * mult[-1]
        self.conv_in = nn.Conv2d(c['zChannels'], w, 3, padding=1)
        self.mid = nn.ModuleList([ResBlock(w, w, g) for _ in range(c['midBlocks'])])
        levels = []
        for i in reversed(range(len(mult))):
            blocks = []
            for _ in range(c['resBlocks']):
                blocks.append(ResBlock(w, ch * mult[i], g))
                w = ch * mult[i]
            up = None if i == 0 else ('upsample', nn.Conv2d(w, w, 3, padding=1))
            levels.append(Level(blocks, up))
        self.conv_blocks = nn.ModuleList(levels)
        self.norm_out, self.conv_out = norm(w, g), nn.Conv2d(w, c['inChannels'], 3, padding=1)

    def forward(self, z):
        h = self.conv_in(z)
        for b in self.mid:
            h = b(h)
        for lv in self.conv_blocks:
            for b in lv.res:
                h = b(h)
            if lv.resample:
                h = lv.upsample.conv(F.interpolate(h, scale_factor=2.0, mode='nearest'))
        return self.conv_out(F.silu(self.norm_out(h)))


class Quantize(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embedding = nn.Embedding(c['codebookSize'], c['codeDim'])


class VqTokenizer(nn.Module):
    """LlamaGen's VQModel with l2-normalised codes, as in src/tokenizer/model.ts."""
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.encoder, self.decoder = Encoder(c), Decoder(c)
        self.quant_conv = nn.Conv2d(c['zChannels'], c['codeDim'], 1)
        self.post_quant_conv = nn.Conv2d(c['codeDim'], c['zChannels'], 1)
        self.quantize = Quantize(c)

    def quantize_rows(self, x):
        z = self.quant_conv(self.encoder(x)).permute(0, 2, 3, 1)     # (B, g, g, D)
        zn = F.normalize(z, p=2, dim=-1)
        cb = F.normalize(self.quantize.embedding.weight, p=2, dim=-1)  # (V, D)
        flat = zn.reshape(-1, zn.shape[-1])
        d = (flat ** 2).sum(1, keepdim=True) + (cb ** 2).sum(1) - 2 * flat @ cb.t()
        index = d.argmin(1)
        zq = cb[index].view(zn.shape)
        return zn, zq, index

    def encode(self, x):
        return self.quantize_rows(x)[2].view(x.shape[0], -1)

    def forward(self, x):
        zn, zq, index = self.quantize_rows(x)
        codebook_loss = torch.mean((zq - zn.detach()) ** 2)
        commit_loss = torch.mean((zq.detach() - zn) ** 2)
        zq = zn + (zq - zn).detach()
        recon = self.decoder(self.post_quant_conv(zq.permute(0, 3, 1, 2)))
        loss = torch.mean((recon - x) ** 2) + codebook_loss + self.c['beta'] * commit_loss
        return recon, index, loss


def median(xs):
    s = sorted(xs)
    return s[len(s) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--weights', required=True)
    ap.add_argument('--input', required=True, help='raw little-endian f32 images (N, C, S, S) in [-1, 1]')
    ap.add_argument('--count', type=int, required=True)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--encode-batch', type=int, default=256)
    ap.add_argument('--train-batch', type=int, default=64)
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--check', type=int, default=8, help='images whose tokens and reconstructions are reported')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tensors, meta = read_safetensors(a.weights)
    c = json.loads(meta['config'])
    model = VqTokenizer(c)
    missing, unexpected = model.load_state_dict(tensors, strict=True), None
    S, C = c['imageSize'], c['inChannels']
    x = torch.from_numpy(np.fromfile(a.input, dtype='<f4')).reshape(a.count, C, S, S)

    out = {'threads': a.threads, 'torch': torch.__version__}
    model.eval()
    with torch.no_grad():
        k = min(a.check, a.count)
        recon, index, _ = model(x[:k])
        out['tokens'] = index.view(k, -1).tolist()
        out['recon'] = recon.reshape(-1).tolist()
        eb = x[:a.encode_batch]
        times = []
        for r in range(a.warmup + a.reps):
            t = time.perf_counter()
            model.encode(eb)
            if r >= a.warmup:
                times.append(time.perf_counter() - t)
        out['encode_ms'] = 1e3 * median(times)
        out['encode_batch'] = eb.shape[0]
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    tb = x[:a.train_batch]
    times = []
    for r in range(a.warmup + a.reps):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        _, _, loss = model(tb)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if r >= a.warmup:
            times.append(time.perf_counter() - t)
    out['train_ms'] = 1e3 * median(times)
    out['train_batch'] = tb.shape[0]
    print(json.dumps(out))


if __name__ == '__main__':
    main()
