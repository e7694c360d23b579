"""A PyTorch re-implementation of LlamaGen's class-conditional GPT (FoundationVision/LlamaGen,
autoregressive/models/gpt.py), written from its documented behaviour, for golden fixtures.

Same state_dict names and the same numerics as LlamaGen:
  tok_embeddings.weight                 (vocab_size, dim)
  cls_embedding.embedding_table.weight  (num_classes + 1, dim)  last row = null class (CFG)
  layers.{i}.attention.wqkv.weight      (3*dim, dim)  rows: q, then k, then v
  layers.{i}.attention.wo.weight        (dim, dim)
  layers.{i}.feed_forward.w1|w3.weight  (hidden, dim),  w2.weight (dim, hidden)
  layers.{i}.attention_norm.weight, layers.{i}.ffn_norm.weight, norm.weight  (dim,)
  output.weight                         (out_vocab_size, dim)
Pre-norm RMSNorm blocks, SwiGLU FFN w2(silu(w1 x) * w3 x) with hidden = find_multiple(int(8*dim/3), multiple_of),
2-D RoPE on interleaved pairs (first half of the pairs by grid row, second half by grid column) whose
class-token rows are all zero, attention scale 1/sqrt(head_dim), no biases, no dropout here.
Two additions for CTF: `causal=False` (bidirectional auxiliary model) and an output vocabulary that
may differ from the input one (the aux reads K coarse labels and predicts V fine labels).
"""
import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


def find_multiple(n: int, k: int) -> int:
    return n if n % k == 0 else n + k - n % k


@dataclass
class GptConfig:
    vocab_size: int                 # input token vocabulary (K for CTF stage 1 and aux input, V for the baseline)
    n_layer: int
    n_head: int
    dim: int
    num_classes: int                # class table has num_classes + 1 rows; the last is the null class
    block_size: int                 # grid * grid image tokens
    out_vocab_size: int | None = None  # defaults to vocab_size; V for the aux model
    multiple_of: int = 256
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    causal: bool = True
    cls_token_num: int = 1
    # ctfgen's masked-refinement aux: V + 1 fine-token rows (row V = [MASK]); not LlamaGen
    fine_vocab_size: int = 0
    ffn_hidden: int = field(init=False)

    def __post_init__(self):
        if self.out_vocab_size is None:
            self.out_vocab_size = self.vocab_size
        self.ffn_hidden = find_multiple(int(2 * 4 * self.dim / 3), self.multiple_of)
        assert self.dim % self.n_head == 0 and (self.dim // self.n_head) % 4 == 0, \
            "head_dim must be a multiple of 4 for 2-D RoPE"
        assert int(math.isqrt(self.block_size)) ** 2 == self.block_size

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def grid(self) -> int:
        return math.isqrt(self.block_size)

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------ functional pieces (also used by op fixtures)
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * weight


def rope_table_2d(grid: int, head_dim: int, base: float, cls_token_num: int = 1) -> torch.Tensor:
    """(cls_token_num + grid², head_dim/2, 2) of (cos, sin); class rows are zeros (q, k of the class token vanish)."""
    half = head_dim // 2
    # half/2 frequencies, shared by rows and columns: base^(-2j/half). Computed in float32 as LlamaGen does.
    freqs = 1.0 / (base ** (torch.arange(0, half, 2)[: half // 2].float() / half))
    pos = torch.arange(grid, dtype=torch.float32)
    ang = torch.outer(pos, freqs)                                    # (grid, half/2)
    rows = ang[:, None, :].expand(grid, grid, -1)                    # angle by grid row
    cols = ang[None, :, :].expand(grid, grid, -1)                    # angle by grid column
    angles = torch.cat([rows, cols], -1).reshape(grid * grid, half)  # cell (r, c) at index r*grid + c
    table = torch.stack([torch.cos(angles), torch.sin(angles)], -1)
    return torch.cat([torch.zeros(cls_token_num, half, 2), table], 0)


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """x (B, T, H, hd); table (T, hd/2, 2). Rotates the interleaved pairs (x[2j], x[2j+1])."""
    B, T, H, hd = x.shape
    pairs = x.reshape(B, T, H, hd // 2, 2)
    cos = table[:, :, 0].to(x.dtype)[None, :, None, :]
    sin = table[:, :, 1].to(x.dtype)[None, :, None, :]
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack([a * cos - b * sin, b * cos + a * sin], -1).reshape(B, T, H, hd)


def attention(q, k, v, causal: bool, mask=None, q_offset: int = 0):
    """q (B,H,Tq,hd), k/v (B,H,Tk,hd); additive mask (Tq,Tk) or (B,1,Tq,Tk); query i sits at position q_offset+i."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + mask
    if causal:
        Tq, Tk = q.shape[-2], k.shape[-2]
        allowed = torch.arange(Tk)[None, :] <= (torch.arange(Tq)[:, None] + q_offset)
        scores = scores.masked_fill(~allowed, -math.inf)
    return torch.softmax(scores, -1) @ v


# ------------------------------------------------------------------ modules
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


class FeedForward(nn.Module):
    def __init__(self, c: GptConfig):
        super().__init__()
        self.w1 = nn.Linear(c.dim, c.ffn_hidden, bias=False)
        self.w3 = nn.Linear(c.dim, c.ffn_hidden, bias=False)
        self.w2 = nn.Linear(c.ffn_hidden, c.dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Attention(nn.Module):
    def __init__(self, c: GptConfig):
        super().__init__()
        self.c = c
        self.wqkv = nn.Linear(c.dim, 3 * c.dim, bias=False)
        self.wo = nn.Linear(c.dim, c.dim, bias=False)

    def forward(self, x, table, cache=None, start: int = 0):
        """x (B, T, dim) at positions start..start+T-1; table holds those positions' RoPE rows.
        cache: None, or a dict {"k", "v": (B, H, maxT, hd)} filled up to start (KV-cached decoding)."""
        B, T, _ = x.shape
        H, hd = self.c.n_head, self.c.head_dim
        q, k, v = self.wqkv(x).split(self.c.dim, -1)
        q = apply_rope(q.reshape(B, T, H, hd), table).transpose(1, 2)
        k = apply_rope(k.reshape(B, T, H, hd), table).transpose(1, 2)
        v = v.reshape(B, T, H, hd).transpose(1, 2)
        if cache is not None:
            cache["k"][:, :, start:start + T] = k
            cache["v"][:, :, start:start + T] = v
            k, v = cache["k"][:, :, :start + T], cache["v"][:, :, :start + T]
        out = attention(q, k, v, self.c.causal, q_offset=start)
        return self.wo(out.transpose(1, 2).reshape(B, T, self.c.dim))


class Block(nn.Module):
    def __init__(self, c: GptConfig):
        super().__init__()
        self.attention = Attention(c)
        self.feed_forward = FeedForward(c)
        self.attention_norm = RMSNorm(c.dim, c.norm_eps)
        self.ffn_norm = RMSNorm(c.dim, c.norm_eps)

    def forward(self, x, table, cache=None, start=0):
        h = x + self.attention(self.attention_norm(x), table, cache, start)
        return h + self.feed_forward(self.ffn_norm(h))


class ClassEmbedding(nn.Module):
    """Named like LlamaGen's LabelEmbedder so the state_dict key is cls_embedding.embedding_table.weight."""
    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, dim)

    def forward(self, labels):
        return self.embedding_table(labels)[:, None, :]


class Gpt(nn.Module):
    def __init__(self, c: GptConfig):
        super().__init__()
        self.c = c
        self.cls_embedding = ClassEmbedding(c.num_classes, c.dim)
        self.tok_embeddings = nn.Embedding(c.vocab_size, c.dim)
        if c.fine_vocab_size:
            self.fine_embeddings = nn.Embedding(c.fine_vocab_size, c.dim)
        self.layers = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.norm = RMSNorm(c.dim, c.norm_eps)
        self.output = nn.Linear(c.dim, c.out_vocab_size, bias=False)
        self.register_buffer("rope", rope_table_2d(c.grid, c.head_dim, c.rope_base, c.cls_token_num), persistent=False)

    def forward(self, labels, tokens, fine=None):
        """labels (B,) with num_classes = null; tokens (B, L), L ≤ block_size -> logits (B, 1 + L, out_vocab).
        Causal training: tokens = t[:, :-1], logits predict t. Aux: tokens = coarse labels, logits[:, 1:] predict fine
        labels. Masked-refinement aux: fine (B, L) chosen fine tokens or [MASK], their embeddings added to the coarse
        labels'."""
        x = self.tok_embeddings(tokens)
        if fine is not None:
            x = x + self.fine_embeddings(fine)
        h = torch.cat([self.cls_embedding(labels), x], 1)
        table = self.rope[: h.shape[1]].to(h.dtype)
        for layer in self.layers:
            h = layer(h, table)
        return self.output(self.norm(h))

    # ---- KV-cached decoding (causal models)
    def new_cache(self, batch: int, max_len: int, dtype=torch.float32):
        shape = (batch, self.c.n_head, max_len, self.c.head_dim)
        return [{"k": torch.zeros(shape, dtype=dtype), "v": torch.zeros(shape, dtype=dtype)} for _ in self.layers]

    def step(self, x, cache, start: int):
        """x (B, T, dim) embeddings at positions start.. -> logits (B, T, out_vocab), filling the cache."""
        table = self.rope[start:start + x.shape[1]].to(x.dtype)
        for layer, lc in zip(self.layers, cache):
            x = layer(x, table, lc, start)
        return self.output(self.norm(x))


@torch.no_grad()
def generate_greedy_cfg(model: Gpt, labels: torch.Tensor, cfg_scale: float):
    """LlamaGen-style generation with a doubled batch [cond; null] and greedy picks.
    Returns (tokens (B, T) int, guided logits per step (B, T, V))."""
    c = model.c
    assert c.causal
    B, T = labels.shape[0], c.block_size
    both = torch.cat([labels, torch.full_like(labels, c.num_classes)])
    cache = model.new_cache(2 * B, T, model.tok_embeddings.weight.dtype)
    x = model.cls_embedding(both)
    tokens, guided = [], []
    for pos in range(T):
        logits = model.step(x, cache, pos)[:, -1]
        cond, uncond = logits[:B], logits[B:]
        g = uncond + (cond - uncond) * cfg_scale
        nxt = g.argmax(-1)
        tokens.append(nxt)
        guided.append(g)
        x = model.tok_embeddings(torch.cat([nxt, nxt]))[:, None, :]
    return torch.stack(tokens, 1), torch.stack(guided, 1)


@torch.no_grad()
def generate_greedy_cfg_uncached(model: Gpt, labels: torch.Tensor, cfg_scale: float):
    """The same generation by a full forward pass per step: a check on the cache."""
    c = model.c
    B = labels.shape[0]
    both = torch.cat([labels, torch.full_like(labels, c.num_classes)])
    seq = torch.zeros(2 * B, 0, dtype=torch.long)
    tokens, guided = [], []
    for _ in range(c.block_size):
        logits = model(both, seq)[:, -1]
        g = logits[B:] + (logits[:B] - logits[B:]) * cfg_scale
        nxt = g.argmax(-1)
        tokens.append(nxt)
        guided.append(g)
        seq = torch.cat([seq, torch.cat([nxt, nxt])[:, None]], 1)
    return torch.stack(tokens, 1), torch.stack(guided, 1)
