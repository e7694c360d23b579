"""Golden cases for every op of docs/engine-api.md; one safetensors file per TS module (see opfile.py)."""
import json
import math
import os

import torch
import torch.nn.functional as F

from opfile import OpFile
import llamagen_gpt as lg


def _t(x, trans):
    return x.transpose(-1, -2) if trans else x


def matmul(o: OpFile):
    for ta in (False, True):
        for tb in (False, True):
            sfx = f"{'T' if ta else 'N'}{'T' if tb else 'N'}"
            M, K, N = 5, 4, 3
            a = o.randn(*((K, M) if ta else (M, K)))
            b = o.randn(*((N, K) if tb else (K, N)))
            args = {"transA": ta, "transB": tb}
            o.case(f"mm2d_{sfx}", "matmul", {"a": a, "b": b}, lambda a, b: _t(a, ta) @ _t(b, tb), args)
            a = o.randn(*((2, 3, K, M) if ta else (2, 3, M, K)))
            b = o.randn(*((2, 3, N, K) if tb else (2, 3, K, N)))
            o.case(f"bmm_{sfx}", "matmul", {"a": a, "b": b}, lambda a, b: _t(a, ta) @ _t(b, tb), args)
            b = o.randn(*((N, K) if tb else (K, N)))
            o.case(f"bmm_shared_{sfx}", "matmul", {"a": a, "b": b}, lambda a, b: _t(a, ta) @ _t(b, tb), args)
    o.case("linear", "linear", {"x": o.randn(2, 3, 4), "w": o.randn(5, 4)}, lambda x, w: F.linear(x, w))


def elementwise(o: OpFile):
    def away_from_zero(*shape):
        x = o.randn(*shape)
        return torch.sign(x) * (0.5 + x.abs())

    shapes = {"same": ((3, 4), (3, 4)), "row": ((2, 3, 4), (4,)), "mixed": ((2, 1, 4), (3, 1)),
              "lead": ((4,), (2, 3, 4)), "scalar": ((2, 3), (1,))}
    binary = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
    for fn, op in binary.items():
        for sname, (sa, sb) in shapes.items():
            b = away_from_zero(*sb) if fn == "div" else o.randn(*sb)
            o.case(f"{fn}_{sname}", fn, {"a": o.randn(*sa), "b": b}, lambda a, b, op=op: op(a, b))
    x = o.randn(2, 3, 5)
    o.case("addScalar", "addScalar", {"a": x}, lambda a: a + 1.5, {"s": 1.5})
    o.case("mulScalar", "mulScalar", {"a": x}, lambda a: a * -0.75, {"s": -0.75})
    o.case("neg", "neg", {"a": x}, lambda a: -a)
    o.case("exp", "exp", {"a": x}, lambda a: torch.exp(a))
    pos = 0.1 + o.randn(2, 3, 5).abs()
    o.case("log", "log", {"a": pos}, lambda a: torch.log(a))
    o.case("sqrt", "sqrt", {"a": pos}, lambda a: torch.sqrt(a))
    nz = torch.sign(x) * (0.05 + x.abs())  # relu's kink is away from every sample
    o.case("relu", "relu", {"a": nz}, lambda a: torch.relu(a))
    wide = o.randn(3, 7, scale=3.0)
    o.case("silu", "silu", {"a": wide}, lambda a: F.silu(a))
    o.case("gelu", "gelu", {"a": wide}, lambda a: F.gelu(a))  # exact erf form (torch default)


def reduce(o: OpFile):
    x = o.randn(2, 3, 4)
    for fn, op in (("sum", torch.sum), ("mean", torch.mean)):
        o.case(f"{fn}_all", fn, {"x": x}, lambda x, op=op: op(x), {"axes": None, "keepDim": False})
        o.case(f"{fn}_ax1", fn, {"x": x}, lambda x, op=op: op(x, 1), {"axes": 1, "keepDim": False})
        o.case(f"{fn}_ax02", fn, {"x": x}, lambda x, op=op: op(x, (0, 2)), {"axes": [0, 2], "keepDim": False})
        o.case(f"{fn}_last_keep", fn, {"x": x}, lambda x, op=op: op(x, -1, keepdim=True), {"axes": -1, "keepDim": True})
        o.case(f"{fn}_neg_keep", fn, {"x": x}, lambda x, op=op: op(x, (-1, 0), keepdim=True),
               {"axes": [-1, 0], "keepDim": True})


def shape(o: OpFile):
    x = o.randn(2, 3, 4)
    x4 = o.randn(2, 3, 4, 5)
    o.case("reshape", "reshape", {"x": x}, lambda x: x.reshape(4, -1), {"shape": [4, -1]})
    o.case("transpose_02", "transpose", {"x": x}, lambda x: x.transpose(0, 2), {"d0": 0, "d1": 2})
    o.case("transpose_last2", "transpose", {"x": x4}, lambda x: x.transpose(-1, -2), {"d0": -1, "d1": -2})
    o.case("transpose_12", "transpose", {"x": x4}, lambda x: x.transpose(1, 2), {"d0": 1, "d1": 2})
    o.case("permute", "permute", {"x": x4}, lambda x: x.permute(2, 0, 3, 1), {"dims": [2, 0, 3, 1]})
    y = o.randn(2, 5, 3)
    o.case("slice_ax1", "slice", {"x": y}, lambda x: x[:, 1:4], {"axis": 1, "start": 1, "end": 4})
    o.case("slice_last", "slice", {"x": y}, lambda x: x[..., 0:2], {"axis": -1, "start": 0, "end": 2})
    o.case("slice_ax0", "slice", {"x": y}, lambda x: x[1:2], {"axis": 0, "start": 1, "end": 2})
    xs = {"x0": o.randn(2, 1, 3), "x1": o.randn(2, 2, 3), "x2": o.randn(2, 3, 3)}
    o.case("concat_ax1", "concat", xs, lambda x0, x1, x2: torch.cat([x0, x1, x2], 1), {"axis": 1})
    xs = {"x0": o.randn(1, 4), "x1": o.randn(3, 4)}
    o.case("concat_ax0", "concat", xs, lambda x0, x1: torch.cat([x0, x1], 0), {"axis": 0})
    xs = {"x0": o.randn(2, 3, 2), "x1": o.randn(2, 3, 1)}
    o.case("concat_last", "concat", xs, lambda x0, x1: torch.cat([x0, x1], -1), {"axis": -1})


def embedding(o: OpFile):
    ids = torch.tensor([[1, 3, 3, 0], [6, 1, 1, 1]], dtype=torch.int32)  # repeats: the backward scatter-adds
    o.case("embedding", "embedding", {"table": o.randn(7, 5), "ids": ids}, lambda table, ids: F.embedding(ids, table))
    o.case("embedding_1d", "embedding", {"table": o.randn(4, 3), "ids": torch.tensor([3, 0, 3], dtype=torch.int32)},
           lambda table, ids: F.embedding(ids, table))


def softmax(o: OpFile):
    x = o.randn(2, 3, 6, scale=3.0)
    x[1, 2] += 50.0  # a shifted row: the kernel must subtract the max
    o.case("softmax", "softmax", {"x": x}, lambda x: torch.softmax(x, -1))
    o.case("logSoftmax", "logSoftmax", {"x": x}, lambda x: torch.log_softmax(x, -1))
    logits = o.randn(2, 5, 7, scale=2.0)
    targets = o.randint(0, 7, (2, 5))
    o.case("ce", "crossEntropy", {"logits": logits, "targets": targets},
           lambda logits, targets: F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1)), {"ignoreIndex": None})
    t_ign = targets.clone()
    t_ign[0, 1] = -100
    t_ign[1, 3] = -100
    t_ign[1, 4] = -100
    o.case("ce_ignore", "crossEntropy", {"logits": logits, "targets": t_ign},
           lambda logits, targets: F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1),
                                                   ignore_index=-100), {"ignoreIndex": -100})
    t_ign2 = targets[0].clone()
    t_ign2[2] = 7  # ignoreIndex may also be a value ≥ V (e.g. a padding id)
    o.case("ce_2d_ignore_high", "crossEntropy", {"logits": logits[0], "targets": t_ign2},
           lambda logits, targets: F.cross_entropy(logits, targets, ignore_index=7), {"ignoreIndex": 7})


def norm(o: OpFile):
    x = o.randn(2, 3, 8, scale=2.0) + 0.5
    w = 1 + o.randn(8, scale=0.3)
    b = o.randn(8, scale=0.3)
    # LlamaGen's RMSNorm, written out: x * rsqrt(mean(x^2) + eps) * weight.
    o.case("rmsNorm", "rmsNorm", {"x": x, "weight": w}, lambda x, weight: lg.rms_norm(x, weight, 1e-5), {"eps": 1e-5})
    o.case("rmsNorm_eps", "rmsNorm", {"x": x * 1e-3, "weight": w}, lambda x, weight: lg.rms_norm(x, weight, 1e-5),
           {"eps": 1e-5})
    o.case("layerNorm", "layerNorm", {"x": x, "weight": w, "bias": b}, lambda x, weight,
           bias: F.layer_norm(x, (8,), weight, bias, 1e-5), {"eps": 1e-5})
    o.case("layerNorm_plain", "layerNorm", {"x": x}, lambda x: F.layer_norm(x, (8,), eps=1e-5), {"eps": 1e-5})
    g = o.randn(2, 6, 3, 3, scale=1.5) + 0.3
    gw, gb = 1 + o.randn(6, scale=0.3), o.randn(6, scale=0.3)
    for groups in (1, 3, 6):
        o.case(f"groupNorm_g{groups}", "groupNorm", {"x": g, "weight": gw, "bias": gb},
               lambda x, weight, bias, groups=groups: F.group_norm(x, groups, weight, bias, 1e-5),
               {"groups": groups, "eps": 1e-5})
    o.case("groupNorm_plain", "groupNorm", {"x": g}, lambda x: F.group_norm(x, 2, eps=1e-5), {"groups": 2, "eps": 1e-5})


def conv(o: OpFile):
    x = o.randn(2, 3, 6, 6)
    x7 = o.randn(2, 3, 7, 5)
    for stride, pad in ((1, 1), (2, 1)):
        o.case(f"conv3x3_s{stride}_p{pad}", "conv2d", {"x": x, "w": o.randn(4, 3, 3, 3, scale=0.3), "bias": o.randn(4)},
               lambda x, w, bias, stride=stride, pad=pad: F.conv2d(x, w, bias, stride, pad),
               {"stride": stride, "padding": pad})
    o.case("conv1x1_nobias", "conv2d", {"x": x, "w": o.randn(5, 3, 1, 1)}, lambda x, w: F.conv2d(x, w),
           {"stride": 1, "padding": 0})
    o.case("conv2x2_s2_odd", "conv2d", {"x": x7, "w": o.randn(4, 3, 2, 2, scale=0.5), "bias": o.randn(4)},
           lambda x, w, bias: F.conv2d(x, w, bias, 2, 0), {"stride": 2, "padding": 0})
    o.case("conv3x3_s2_p0_nobias", "conv2d", {"x": x7, "w": o.randn(2, 3, 3, 3, scale=0.3)},
           lambda x, w: F.conv2d(x, w, None, 2, 0), {"stride": 2, "padding": 0})
    o.case("conv4x4_s2_p1", "conv2d", {"x": x, "w": o.randn(3, 3, 4, 4, scale=0.3), "bias": o.randn(3)},
           lambda x, w, bias: F.conv2d(x, w, bias, 2, 1), {"stride": 2, "padding": 1})
    o.case("upsample2", "upsampleNearest2d", {"x": o.randn(2, 3, 3, 4)},
           lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), {"scale": 2})
    o.case("upsample3", "upsampleNearest2d", {"x": o.randn(1, 2, 2, 3)},
           lambda x: F.interpolate(x, scale_factor=3, mode="nearest"), {"scale": 3})


def attention(o: OpFile):
    B, H, T, hd = 2, 3, 5, 4
    q, k, v = o.randn(B, H, T, hd), o.randn(B, H, T, hd), o.randn(B, H, T, hd)
    mask_tt = o.randn(T, T)
    mask_tt[0, 3] = -math.inf
    mask_tt[4, 1] = -math.inf
    mask_b = o.randn(B, 1, T, T)
    mask_b[1, 0, 2, 0] = -math.inf
    for name, causal, mask in (("causal", True, None), ("bidir", False, None),
                               ("bidir_mask", False, mask_tt), ("causal_mask_b", True, mask_b)):
        inputs = {"q": q, "k": k, "v": v}
        if mask is not None:
            inputs["mask"] = mask
        o.case(f"attn_{name}", "attention", inputs,
               lambda q, k, v, mask=None, causal=causal: lg.attention(q, k, v, causal, mask), {"causal": causal},
               grads=["q", "k", "v"])


def rope(o: OpFile):
    grid, hd, H, B = 3, 8, 2, 2
    table = lg.rope_table_2d(grid, hd, 10000.0, cls_token_num=1)  # (1 + grid², hd/2, 2)
    T = table.shape[0]
    o.put("rope_table.table", table.float())
    o.put("rope_table.cos", table[..., 0].float().contiguous())
    o.put("rope_table.sin", table[..., 1].float().contiguous())
    x = o.randn(B, T, H, hd)
    o.case("rope2d", "rope2d", {"x": x, "cos": table[..., 0].contiguous(), "sin": table[..., 1].contiguous()},
           lambda x, cos, sin: lg.apply_rope(x, torch.stack([cos, sin], -1)), {"grid": grid, "headDim": hd,
                                                                               "base": 10000.0}, grads=["x"])
    # A prefix of the table (training feeds T-1 tokens after the class token).
    xs = o.randn(B, T - 1, H, hd)
    o.case("rope2d_prefix", "rope2d",
           {"x": xs, "cos": table[: T - 1, :, 0].contiguous(), "sin": table[: T - 1, :, 1].contiguous()},
           lambda x, cos, sin: lg.apply_rope(x, torch.stack([cos, sin], -1)), {"grid": grid, "headDim": hd,
                                                                               "base": 10000.0}, grads=["x"])


def optim(o: OpFile):
    """AdamW (torch.optim.AdamW, float64) for 3 steps with decay on 2-D params only; clip_grad_norm_."""
    for cname, hp in (("adamw", dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)),
                      ("adamw_b", dict(lr=3e-3, betas=(0.8, 0.999), eps=1e-6, weight_decay=0.5))):
        init = {"w2d": o.randn(4, 3), "b1d": o.randn(3), "e3d": o.randn(2, 2, 2)}
        params = {k: torch.nn.Parameter(v.double().clone()) for k, v in init.items()}
        decay = [p for p in params.values() if p.ndim >= 2]
        no_decay = [p for p in params.values() if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp["weight_decay"]},
                                 {"params": no_decay,
                                  "weight_decay": 0.0}], lr=hp["lr"], betas=hp["betas"], eps=hp["eps"])
        for k, v in init.items():
            o.put(f"{cname}.init.{k}", v)
        for step in range(1, 4):
            for k, p in params.items():
                g = o.randn(*p.shape, scale=0.5 * step)
                o.put(f"{cname}.step{step}.grad.{k}", g)
                p.grad = g.double()
            opt.step()
            for k, p in params.items():
                o.put(f"{cname}.step{step}.param.{k}", p.detach().float())
        o.cases.append({"name": cname, "fn": "AdamW", "args": {"lr": hp["lr"], "betas": list(hp["betas"]),
                                                               "eps": hp["eps"],
                        "weightDecay": hp["weight_decay"], "steps": 3, "decay": "ndim>=2"},
                        "inputs": list(init), "grads": []})
    for cname, max_norm, scale in (("clip_big", 1.0, 2.0), ("clip_small", 100.0, 0.1)):
        grads = {"a": o.randn(3, 4, scale=scale), "b": o.randn(5, scale=scale)}
        params = {k: torch.nn.Parameter(torch.zeros_like(g, dtype=torch.float64)) for k, g in grads.items()}
        for k, p in params.items():
            p.grad = grads[k].double().clone()
            o.put(f"{cname}.grad.{k}", grads[k])
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm)
        o.put(f"{cname}.norm", norm.float().reshape(1))
        for k, p in params.items():
            o.put(f"{cname}.clipped.{k}", p.grad.float())
        o.cases.append({"name": cname, "fn": "clipGradNorm", "args": {"maxNorm": max_norm}, "inputs": list(grads),
                        "grads": []})


FILES = {
    "matmul": matmul, "elementwise": elementwise, "reduce": reduce, "shape": shape, "embedding": embedding,
    "softmax": softmax, "norm": norm, "conv": conv, "attention": attention, "rope": rope, "optim": optim,
}


def make_all(outdir: str) -> dict:
    os.makedirs(os.path.join(outdir, "ops"), exist_ok=True)
    sizes = {}
    for name, build in FILES.items():
        o = OpFile(name)
        build(o)
        rel = f"ops/{name}.safetensors"
        sizes[rel] = o.save(os.path.join(outdir, rel))
    return sizes
