#!/usr/bin/python3
"""PyTorch peer of `ctfgen bench engine`: the same cases as src/bench/worker.ts, driven by the same JSON-lines
protocol (setup / run / info / exit). Run with Debian's /usr/bin/python3 (python3-torch, OpenBLAS)."""
import argparse
import ctypes
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'oracle'))


def blas_info():
    try:
        lib = ctypes.CDLL('libblas.so.3')
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode(), lib.openblas_get_num_threads()
    except (OSError, AttributeError):
        return 'unknown (not OpenBLAS)', 0


class TrainCase:
    def __init__(self, c):
        from llamagen_gpt import GPT, GPTConfig  # our faithful re-implementation of LlamaGen's GPT
        torch.manual_seed(0)
        self.T = c['grid'] * c['grid']
        self.model = GPT(GPTConfig(vocab_size=c['vocab'], n_layer=c['layers'], n_head=c['heads'], dim=c['dim'],
                                   num_classes=c['numClasses'], block_size=self.T, multiple_of=c['ffnMultipleOf'],
                                   causal=True))
        self.model.train()
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.05}, {'params': no_decay, 'weight_decay': 0.0}],
                                     lr=1e-4, betas=(0.9, 0.95))
        g = torch.Generator().manual_seed(1)
        self.tokens = torch.randint(0, c['vocab'], (c['batch'], self.T), generator=g)
        self.classes = torch.randint(0, c['numClasses'], (c['batch'],), generator=g)

    def step(self):
        logits, loss = self.model.training_loss(self.classes, self.tokens)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()


class DecodeCase:
    def __init__(self, c):
        from llamagen_gpt import GPT, GPTConfig
        torch.manual_seed(0)
        self.c = c
        self.model = GPT(GPTConfig(vocab_size=c['vocab'], n_layer=c['layers'], n_head=c['heads'], dim=c['dim'],
                                   num_classes=c['numClasses'], block_size=c['grid'] * c['grid'],
                                   multiple_of=c['ffnMultipleOf'], causal=True))
        with torch.no_grad():  # a random head so sampling is not uniform
            self.model.output.weight.normal_(0, 0.02)
        self.model.eval()
        self.classes = torch.arange(c['batch']) % c['numClasses']

    def step(self):
        with torch.no_grad():
            self.model.generate(self.classes, self.c['grid'] * self.c['grid'], cfg_scale=self.c['cfg'],
                                temperature=1.0, top_k=0, top_p=1.0)


class ConvCase:
    def __init__(self, c):
        torch.manual_seed(0)
        self.x = torch.randn(c['n'], c['c'], c['h'], c['w'], requires_grad=True)
        self.w = torch.randn(c['o'], c['c'], c['k'], c['k'], requires_grad=True)
        self.g = torch.randn(c['n'], c['o'], c['h'] + 2 * c['padding'] - c['k'] + 1, c['w'] + 2 * c['padding'] - c['k'] + 1)
        self.padding = c['padding']

    def step(self):
        self.x.grad = None
        self.w.grad = None
        y = F.conv2d(self.x, self.w, padding=self.padding)
        y.backward(self.g)


CASES = {'train': TrainCase, 'decode': DecodeCase, 'conv': ConvCase}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    case = None
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        try:
            if msg['cmd'] == 'exit':
                break
            if msg['cmd'] == 'setup':
                case = CASES[msg['case']](msg['config'])
                reply = {'ok': True}
            elif msg['cmd'] == 'run':
                ms = []
                for _ in range(msg.get('n', 1)):
                    t0 = time.perf_counter()
                    case.step()
                    ms.append((time.perf_counter() - t0) * 1e3)
                reply = {'ms': ms}
            elif msg['cmd'] == 'info':
                core, bt = blas_info()
                reply = {'impl': 'pytorch', 'version': torch.__version__, 'corename': core, 'blasThreads': bt,
                         'threads': torch.get_num_threads(),
                         'peakRssMb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
            else:
                reply = {'error': 'unknown command ' + msg['cmd']}
        except Exception as e:  # report to the orchestrator instead of dying silently
            reply = {'error': f'{type(e).__name__}: {e}'}
        sys.stdout.write(json.dumps(reply) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
