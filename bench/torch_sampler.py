#!/usr/bin/python3
"""PyTorch peer of `ctfgen bench sample`: a KV-cached sampler of the same checkpoints, driven by the JSON-lines
protocol of src/bench/peer.ts (setup / run / tokens / info / exit), like bench/torch_peer.py.

  setup  {"config": {"paths": {tokenizer, clusters, stage1, aux, baseline}, "batch", "cfg", "temperature", "numClasses",
                     "refineRounds"}}
  run    {"method": "baseline" | "ctf", "n", "seed"}
         -> {"ms": [...], "cpuMs": [...], "parts": [{"stage1", "stage2", "decode"} ms]}
  tokens {"method", "count", "seed"}                  -> greedy tokens of the first `count` images (cross-check)

The models: oracle/llamagen_gpt.py (LlamaGen's GPT, same state_dict names as our checkpoints) with LlamaGen's
generate() loop — CFG by batch doubling, KV cache, sample() per step; stage 2 is one forward of the bidirectional
auxiliary model whose head is evaluated only on each position's cluster members (the same algorithm as ours:
positions grouped by predicted cluster, one small matmul per cluster); the tokenizer is bench/torch_tokenizer.py.
Run with Debian's /usr/bin/python3 (python3-torch); --threads sets torch.set_num_threads (default 1)."""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'oracle'))
sys.path.insert(0, HERE)

import llamagen_gpt as lg  # noqa: E402
import st  # noqa: E402  (oracle/st.py: safetensors without the package)
from torch_peer import sample_logits, serve  # noqa: E402
from torch_tokenizer import VqTokenizer  # noqa: E402


def load_gpt(path):
    tensors, meta = st.load(path)
    c = json.loads(meta['config'])
    model = lg.Gpt(lg.GptConfig(vocab_size=c['inVocab'], out_vocab_size=c['outVocab'], n_layer=c['layers'],
                                n_head=c['heads'], dim=c['dim'], num_classes=c['numClasses'],
                                block_size=c['grid'] ** 2, multiple_of=c['ffnMultipleOf'],
                                norm_eps=c['normEps'], rope_base=c['ropeBase'], causal=c['causal'],
                                fine_vocab_size=c.get('fineVocab', 0)))
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    return model.eval()


def load_tokenizer(path):
    tensors, meta = st.load(path)
    model = VqTokenizer(json.loads(meta['config']))
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    return model.eval()


class Sampler:
    def __init__(self, c):
        p = c['paths']
        self.c = c
        self.baseline = load_gpt(p['baseline'])
        self.stage1 = load_gpt(p['stage1'])
        self.aux = load_gpt(p['aux'])
        self.tok = load_tokenizer(p['tokenizer'])
        cl, _ = st.load(p['clusters'])
        self.fine_to_coarse = cl['fineToCoarse'].long()
        offsets = cl['memberOffsets'].long().tolist()
        self.members = [cl['members'][offsets[j]:offsets[j + 1]].long() for j in range(len(offsets) - 1)]
        self.head_rows = [self.aux.output.weight[m].contiguous() for m in self.members]  # (|c|, dim) per cluster
        self.codebook = F.normalize(self.tok.quantize.embedding.weight, p=2, dim=-1)
        self.T = self.baseline.c.block_size

    def labels(self, n):
        return torch.arange(n) % self.c['numClasses']

    def generate(self, model, labels, top_k=0):
        """LlamaGen's generate(): prefill the class token, then one KV-cached step per token, CFG by batch doubling."""
        B, T, s = labels.shape[0], self.T, self.c['cfg']
        both = torch.cat([labels, torch.full_like(labels, model.c.num_classes)])
        cache = model.new_cache(2 * B, T)
        x = model.cls_embedding(both)
        out = torch.empty(B, T, dtype=torch.long)
        for pos in range(T):
            logits = model.step(x, cache, pos)[:, -1]
            cond, uncond = logits[:B], logits[B:]
            nxt = sample_logits(uncond + (cond - uncond) * s, self.c['temperature'], top_k, 1.0)
            out[:, pos] = nxt
            x = model.tok_embeddings(torch.cat([nxt, nxt]))[:, None, :]
        return out

    def aux_hidden(self, labels, coarse, fine=None):
        """The auxiliary model's final normed states at the token positions: (B, T, dim). fine: chosen fine tokens or
        [MASK] per position, for an aux trained with masked refinement."""
        m = self.aux
        x = m.tok_embeddings(coarse)
        if fine is not None:
            x = x + m.fine_embeddings(fine)
        h = torch.cat([m.cls_embedding(labels), x], 1)
        table = m.rope[: h.shape[1]].to(h.dtype)
        for layer in m.layers:
            h = layer(h, table)
        return m.norm(h)[:, 1:]

    def within_clusters(self, h, flat, top_k):
        """h (N, dim) states, flat (N) clusters -> (fine (N), probability of each drawn member under softmax(l / τ))."""
        fine, conf = torch.empty_like(flat), torch.empty(flat.shape[0])
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=len(self.members)).tolist()
        start, t = 0, self.c['temperature'] if self.c['temperature'] > 0 else 1.0
        for c, n in enumerate(counts):
            if n == 0:
                continue
            pos = order[start:start + n]
            start += n
            logits = h[pos] @ self.head_rows[c].t()
            local = sample_logits(logits, self.c['temperature'], top_k, 1.0)
            fine[pos] = self.members[c][local]
            conf[pos] = torch.softmax(logits / t, -1).gather(1, local[:, None])[:, 0]
        return fine, conf

    def refine(self, labels, coarse, top_k=0):
        """Stage 2 with the cluster mask: each position sampled among its cluster's members only; with an aux trained
        for masked refinement, in `refineRounds` rounds that keep the most confident tokens (MaskGIT's cosine
        schedule)."""
        R = self.c.get('refineRounds', 1)
        if self.aux.c.fine_vocab_size == 0:
            h = self.aux_hidden(labels, coarse).reshape(-1, self.aux.c.dim)
            return self.within_clusters(h, coarse.reshape(-1), top_k)[0].view_as(coarse)
        B, T, MASK = coarse.shape[0], self.T, self.aux.c.fine_vocab_size - 1
        fine = torch.full_like(coarse, MASK)
        masked = T
        for r in range(R):
            if masked == 0:
                break
            h = self.aux_hidden(labels, coarse, fine)
            left = 0 if r == R - 1 else min(masked - 1, int(T * math.cos(math.pi / 2 * (r + 1) / R)))
            for b in range(B):
                open_pos = (fine[b] == MASK).nonzero()[:, 0]
                drawn, conf = self.within_clusters(h[b, open_pos], coarse[b, open_pos], top_k)
                keep = torch.sort(conf, descending=True, stable=True).indices[:masked - left]
                fine[b, open_pos[keep]] = drawn[keep]
            masked = left
        return fine

    def decode(self, fine):
        g = int(self.T ** 0.5)
        z = self.codebook[fine].view(fine.shape[0], g, g, -1).permute(0, 3, 1, 2)
        return self.tok.decoder(self.tok.post_quant_conv(z))

    @torch.no_grad()
    def run(self, method, labels, top_k=0):
        t0 = time.perf_counter()
        if method == 'baseline':
            coarse, fine = None, self.generate(self.baseline, labels, top_k)
            t1 = t2 = time.perf_counter()
        else:
            coarse = self.generate(self.stage1, labels, top_k)
            t1 = time.perf_counter()
            fine = self.refine(labels, coarse, top_k)
            t2 = time.perf_counter()
        self.decode(fine)
        t3 = time.perf_counter()
        parts = {'stage1': 1e3 * (t1 - t0), 'stage2': 1e3 * (t2 - t1), 'decode': 1e3 * (t3 - t2)}
        return coarse, fine, parts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    state = {}

    def setup(msg):
        state['sampler'] = Sampler(msg['config'])
        return {'ok': True}

    def run(msg):
        sampler = state['sampler']
        ms, cpu_ms, parts = [], [], []
        labels = sampler.labels(sampler.c['batch'])
        for i in range(msg.get('n', 1)):
            torch.manual_seed(msg.get('seed', 0) + i)
            c0, t0 = time.process_time(), time.perf_counter()
            _, _, p = sampler.run(msg['method'], labels)
            ms.append(1e3 * (time.perf_counter() - t0))
            cpu_ms.append(1e3 * (time.process_time() - c0))
            parts.append(p)
        return {'ms': ms, 'cpuMs': cpu_ms, 'parts': parts}

    def tokens(msg):
        sampler = state['sampler']
        coarse, fine, _ = sampler.run(msg['method'], sampler.labels(msg['count']), top_k=1)
        return {'coarse': None if coarse is None else coarse.tolist(), 'fine': fine.tolist()}

    serve({'setup': setup, 'run': run, 'tokens': tokens})


if __name__ == '__main__':
    main()
