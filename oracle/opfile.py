"""A fixture file of op cases: inputs, output, loss weight and input gradients, computed in float64.

Every case stores, under the case name:
  <case>.in.<arg>    the inputs (F32, or I32 for ids/targets), exactly what the TS op receives
  <case>.out         the op's output, computed in float64 from those float32 inputs, stored as F32
  <case>.w           a fixed random weight of the output's shape (F32)
  <case>.grad.<arg>  d sum(out * w) / d input, for every float input listed in "grads"
and the metadata key "cases" holds a JSON list [{name, fn, args, inputs, grads}] where fn names the
TS function of docs/engine-api.md and args its non-tensor arguments.
"""
import json
import zlib

import torch

import st


class OpFile:
    def __init__(self, name: str):
        self.name = name
        self.tensors: dict[str, torch.Tensor] = {}
        self.cases: list[dict] = []
        # A seed per file, so adding a case to one file never changes another file's bytes.
        self.gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))

    def randn(self, *shape, scale=1.0) -> torch.Tensor:
        return torch.randn(shape, generator=self.gen) * scale

    def rand(self, *shape) -> torch.Tensor:
        return torch.rand(shape, generator=self.gen)

    def randint(self, lo, hi, shape) -> torch.Tensor:
        return torch.randint(lo, hi, shape, generator=self.gen, dtype=torch.int32)

    def case(self, name: str, fn: str, inputs: dict, f, args: dict | None = None, grads: list | None = None):
        """f(**float64 inputs) -> output. grads defaults to every float input."""
        assert name not in {c["name"] for c in self.cases}, name
        inputs = {k: (v.float() if v.is_floating_point() else v.int()) for k, v in inputs.items()}
        if grads is None:
            grads = [k for k, v in inputs.items() if v.is_floating_point()]
        x64 = {}
        for k, v in inputs.items():
            x64[k] = v.double().requires_grad_(k in grads) if v.is_floating_point() else v.long()
        out = f(**x64)
        w = self.randn(*out.shape)
        if grads:
            (out * w.double()).sum().backward()
        for k, v in inputs.items():
            self.tensors[f"{name}.in.{k}"] = v
        self.tensors[f"{name}.out"] = out.detach().float()
        self.tensors[f"{name}.w"] = w
        for k in grads:
            self.tensors[f"{name}.grad.{k}"] = x64[k].grad.float()
        self.cases.append({"name": name, "fn": fn, "args": args or {}, "inputs": list(inputs), "grads": grads})

    def put(self, key: str, t: torch.Tensor):
        self.tensors[key] = t

    def save(self, path: str, extra_meta: dict | None = None) -> int:
        meta = {"kind": "ctfgen-op-fixture", "file": self.name, "cases": json.dumps(self.cases, separators=(",", ":"))}
        meta.update(extra_meta or {})
        return st.save(path, self.tensors, meta)
