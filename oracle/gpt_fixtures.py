"""Whole-model fixtures: tiny LlamaGen GPTs (causal stage-1 and bidirectional aux) with random weights."""
import json
import math
import os

import torch
import torch.nn.functional as F

import llamagen_gpt as lg
import st


def init_random(model: lg.Gpt, gen: torch.Generator) -> None:
    """Random non-zero weights large enough that attention is far from uniform and the head matters."""
    d = model.c.dim
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.data = 1 + 0.2 * torch.randn(p.shape, generator=gen)
        elif "embedding" in name:
            p.data = torch.randn(p.shape, generator=gen)
        else:
            p.data = torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1])
    assert model.output.weight.abs().sum() > 0 and d > 0


def state_dict32(model: lg.Gpt) -> dict:
    return {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}


def make_model(c: lg.GptConfig, seed: int) -> lg.Gpt:
    gen = torch.Generator().manual_seed(seed)
    m = lg.Gpt(c)
    init_random(m, gen)
    # The reference runs in float64 on the float32 weights we store.
    for p in m.parameters():
        p.data = p.data.float().double()
    return m.double()


def forward_loss(model: lg.Gpt, labels, tokens, targets, first: int, fine=None):
    logits = model(labels.long(), tokens.long(), None if fine is None else fine.long())
    pred = logits[:, first:first + targets.shape[1]]
    # ignore_index -1: the positions a masked-refinement aux is shown take no loss (ctfgen's IGNORE_TARGET)
    loss = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), targets.long().reshape(-1), ignore_index=-1)
    return logits, loss


def make_one(path: str, c: lg.GptConfig, seed: int, generate: bool) -> int:
    model = make_model(c, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    T = c.block_size
    labels = torch.tensor([2, c.num_classes, 7], dtype=torch.int32)  # includes the null class
    if c.causal:
        targets = torch.randint(0, c.vocab_size, (3, T), generator=gen, dtype=torch.int32)
        tokens, first = targets[:, :-1].contiguous(), 0      # [class, t_0 .. t_{T-2}] predicts t_0 .. t_{T-1}
    else:
        tokens = torch.randint(0, c.vocab_size, (3, T), generator=gen, dtype=torch.int32)
        targets = torch.randint(0, c.out_vocab_size, (3, T), generator=gen, dtype=torch.int32)
        # [class, c_0 .. c_{T-1}]: positions 1..T predict fine labels
        first = 1
    fine = None
    if c.fine_vocab_size:
        # Show about half of the true fine tokens; the rest are [MASK] (row V) and are the only targets.
        shown = torch.rand((3, T), generator=gen) < 0.5
        fine = torch.where(shown, targets, torch.full_like(targets, c.fine_vocab_size - 1))
        targets = torch.where(shown, torch.full_like(targets, -1), targets)
    logits, loss = forward_loss(model, labels, tokens, targets, first, fine)
    loss.backward()

    tensors = dict(state_dict32(model))
    tensors["input.labels"] = labels
    tensors["input.tokens"] = tokens
    tensors["input.targets"] = targets
    if fine is not None:
        tensors["input.fine"] = fine
    tensors["logits"] = logits.detach().float()
    tensors["loss"] = loss.detach().float()
    for name, p in model.named_parameters():
        tensors[f"grad.{name}"] = p.grad.float()
    meta = {
        "kind": "ctfgen-gpt-fixture",
        "config": json.dumps(c.to_dict()),
        "loss": f"mean cross-entropy of logits[:, {first}:{first + T}] against input.targets (-1: no loss)",
        "loss_first_position": str(first),
        "params": json.dumps([n for n, _ in model.named_parameters()]),
    }
    if generate:
        g_labels = torch.tensor([1, 5], dtype=torch.int32)
        cfg = 2.0
        toks, guided = lg.generate_greedy_cfg(model, g_labels.long(), cfg)
        toks_full, guided_full = lg.generate_greedy_cfg_uncached(model, g_labels.long(), cfg)
        assert torch.equal(toks, toks_full), "KV-cached and full-forward greedy decoding disagree"
        assert torch.allclose(guided, guided_full, atol=1e-9), "KV-cached logits differ from full forward"
        top2 = guided.topk(2, -1).values
        margin = (top2[..., 0] - top2[..., 1]).min().item()
        assert margin > 1e-3, f"greedy path has a near-tie (margin {margin}); pick another seed"
        tensors["generate.labels"] = g_labels
        tensors["generate.tokens"] = toks.int()
        tensors["generate.logits"] = guided.float()
        meta["generate"] = json.dumps({"cfg_scale": cfg, "greedy": True, "temperature": 1.0,
                                       "batch": "[cond; null] doubled, logits = uncond + (cond - uncond) * cfg_scale",
                                       "min_top2_margin": margin})
    return st.save(path, tensors, meta)


CAUSAL = lg.GptConfig(vocab_size=32, n_layer=2, n_head=4, dim=32, num_classes=10, block_size=16, multiple_of=16,
                      causal=True)
BIDIR = lg.GptConfig(vocab_size=32, out_vocab_size=48, n_layer=2, n_head=4, dim=32, num_classes=10, block_size=16,
                     multiple_of=16, causal=False)
MASKED = lg.GptConfig(vocab_size=32, out_vocab_size=48, n_layer=2, n_head=4, dim=32, num_classes=10, block_size=16,
                      multiple_of=16, causal=False, fine_vocab_size=49)


def make_all(outdir: str) -> dict:
    sizes = {}
    for name, c, seed, gen in (("gpt_causal", CAUSAL, 100, True), ("gpt_bidir", BIDIR, 200, False),
                               ("gpt_masked_aux", MASKED, 300, False)):
        rel = f"{name}.safetensors"
        sizes[rel] = make_one(os.path.join(outdir, rel), c, seed, gen)
    return sizes
