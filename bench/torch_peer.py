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


def gpt_config(c):
    from llamagen_gpt import GptConfig  # our faithful re-implementation of LlamaGen's GPT (oracle/)
    return GptConfig(vocab_size=c['vocab'], n_layer=c['layers'], n_head=c['heads'], dim=c['dim'],
                     num_classes=c['numClasses'], block_size=c['grid'] * c['grid'], multiple_of=c['ffnMultipleOf'])


def train_model(c, p=0.1):
    """LlamaGen's GPT in training mode: its dropouts (token 0.1 on the embeddings, residual 0.1 after the
    attention output, FFN 0.1 after w2) and class dropout 0.1, hooked onto the oracle's modules."""
    from llamagen_gpt import Gpt
    model = Gpt(gpt_config(c))
    for layer in model.layers:
        layer.attention.wo.register_forward_hook(lambda m, i, out: F.dropout(out, p, m.training))
        layer.feed_forward.w2.register_forward_hook(lambda m, i, out: F.dropout(out, p, m.training))
    model.tok_embeddings.register_forward_hook(lambda m, i, out: F.dropout(out, p, m.training))
    model.cls_embedding.embedding_table.register_forward_hook(lambda m, i, out: F.dropout(out, p, m.training))
    return model


class TrainCase:
    def __init__(self, c):
        torch.manual_seed(0)
        self.c = c
        self.model = train_model(c)
        self.model.train()
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.05},
                                      {'params': no_decay, 'weight_decay': 0.0}],
                                     lr=1e-4, betas=(0.9, 0.95))
        g = torch.Generator().manual_seed(1)
        T = c['grid'] * c['grid']
        self.tokens = torch.randint(0, c['vocab'], (c['batch'], T), generator=g)
        self.classes = torch.randint(0, c['numClasses'], (c['batch'],), generator=g)

    def step(self):
        # class dropout as LlamaGen's LabelEmbedder.token_drop: label -> null class with p = 0.1
        drop = torch.rand(self.classes.shape[0]) < 0.1
        labels = torch.where(drop, torch.full_like(self.classes, self.c['numClasses']), self.classes)
        logits = self.model(labels, self.tokens[:, :-1])  # (B, T, V): [class, t_0 … t_{T-2}] predicts t_0 … t_{T-1}
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.tokens.reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()


def sample_logits(logits, temperature, top_k, top_p):
    """LlamaGen's sample(): temperature, top-k / top-p filtering, softmax, multinomial."""
    logits = logits / max(temperature, 1e-5)
    if top_k > 0:
        kth = torch.topk(logits, top_k)[0][..., -1, None]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, idx = torch.sort(logits, descending=True)
        cum = torch.softmax(sorted_logits, -1).cumsum(-1)
        remove = cum > top_p
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = False
        logits = logits.masked_fill(remove.scatter(1, idx, remove), -math.inf)
    return torch.multinomial(torch.softmax(logits, -1), 1)[:, 0]


class DecodeCase:
    def __init__(self, c):
        from llamagen_gpt import Gpt
        torch.manual_seed(0)
        self.c = c
        self.model = Gpt(gpt_config(c))
        with torch.no_grad():  # random weights, like a trained model's, so sampling is not uniform
            for p in self.model.parameters():
                if p.dim() >= 2:
                    p.normal_(0, 0.02)
        self.model.eval()
        self.labels = torch.arange(c['batch']) % c['numClasses']

    @torch.no_grad()
    def step(self):
        """KV-cached generation with CFG by batch doubling, LlamaGen's generate() loop."""
        m, B, T, s = self.model, self.c['batch'], self.c['grid'] * self.c['grid'], self.c['cfg']
        both = torch.cat([self.labels, torch.full_like(self.labels, self.c['numClasses'])])
        cache = m.new_cache(2 * B, T)
        x = m.cls_embedding(both)
        for pos in range(T):
            logits = m.step(x, cache, pos)[:, -1]
            cond, uncond = logits[:B], logits[B:]
            nxt = sample_logits(uncond + (cond - uncond) * s, 1.0, 0, 1.0)
            x = m.tok_embeddings(torch.cat([nxt, nxt]))[:, None, :]


class ConvCase:
    def __init__(self, c):
        torch.manual_seed(0)
        self.x = torch.randn(c['n'], c['c'], c['h'], c['w'], requires_grad=True)
        self.w = torch.randn(c['o'], c['c'], c['k'], c['k'], requires_grad=True)
        ho = c['h'] + 2 * c['padding'] - c['k'] + 1
        wo = c['w'] + 2 * c['padding'] - c['k'] + 1
        self.g = torch.randn(c['n'], c['o'], ho, wo)
        self.padding = c['padding']

    def step(self):
        self.x.grad = None
        self.w.grad = None
        y = F.conv2d(self.x, self.w, padding=self.padding)
        y.backward(self.g)


CASES = {'train': TrainCase, 'decode': DecodeCase, 'conv': ConvCase}


def peer_info():
    """The protocol's `info` reply: implementation, OpenBLAS kernel and threads, peak memory."""
    core, bt = blas_info()
    return {'impl': 'pytorch', 'version': torch.__version__, 'corename': core, 'blasThreads': bt,
            'threads': torch.get_num_threads(), 'peakRssMb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def serve(handlers):
    """The JSON-lines worker loop of src/bench/peer.ts: one command per line on stdin, one JSON reply per line
    on stdout. handlers maps a command name to fn(msg) -> reply dict; `info` and `exit` are built in, and an
    exception becomes an error reply for the orchestrator instead of a silent death."""
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        if msg['cmd'] == 'exit':
            break
        try:
            if msg['cmd'] == 'info':
                reply = peer_info()
            elif msg['cmd'] in handlers:
                reply = handlers[msg['cmd']](msg)
            else:
                reply = {'error': 'unknown command ' + msg['cmd']}
        except Exception as e:
            reply = {'error': f'{type(e).__name__}: {e}'}
        sys.stdout.write(json.dumps(reply) + '\n')
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    state = {}

    def setup(msg):
        state['case'] = CASES[msg['case']](msg['config'])
        return {'ok': True}

    def run(msg):
        ms = []
        for _ in range(msg.get('n', 1)):
            t0 = time.perf_counter()
            state['case'].step()
            ms.append((time.perf_counter() - t0) * 1e3)
        return {'ms': ms}

    serve({'setup': setup, 'run': run})


if __name__ == '__main__':
    main()
