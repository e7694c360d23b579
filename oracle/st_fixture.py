"""Cross-check fixture for src/io/safetensors.ts: every dtype, written by torch + hand-rolled format."""
import torch

import st


def half_sources() -> torch.Tensor:
    """float32 values over the whole F16 range (subnormals to 6e4), plus exact rounding ties."""
    g = torch.Generator().manual_seed(1)
    mag = torch.pow(2.0, torch.empty(200).uniform_(-26, 15.9, generator=g))
    sign = torch.where(torch.rand(200, generator=g) < 0.5, -1.0, 1.0)
    ties = torch.tensor([
        1 + 2**-11, 1 + 3 * 2**-11,          # normal ties: round to even mantissa
        2**-25, 3 * 2**-25, 2**-26,          # subnormal ties / underflow
        65504.0, 65519.0, -65504.0,          # the largest finite F16, and a value that rounds down to it
        2**-14, 2**-24, 0.0, -0.0, 1 / 3,
    ])
    return torch.cat([sign * mag, ties]).float()


def bf16_sources() -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    mag = torch.pow(2.0, torch.empty(200).uniform_(-130, 120, generator=g))
    sign = torch.where(torch.rand(200, generator=g) < 0.5, -1.0, 1.0)
    ties = torch.tensor([1 + 2**-8, 1 + 3 * 2**-8, 0.0, -0.0, 1 / 3, 3.0e38]).float()
    return torch.cat([sign * mag, ties]).float()


def make(path: str) -> int:
    g = torch.Generator().manual_seed(0)
    h = half_sources()
    b = bf16_sources()
    f16 = (torch.randn(7, generator=g) * 100).half()      # odd byte count: later tensors are unaligned
    bf16 = (torch.randn(2, 3, generator=g) * 1e3).bfloat16()
    tensors = {
        "f16": f16,
        "f16_as_f32": f16.float(),
        "bf16": bf16,
        "bf16_as_f32": bf16.float(),
        "f32": torch.randn(3, 5, generator=g),
        "i32": torch.randint(-(2**31), 2**31 - 1, (4,), generator=g, dtype=torch.int64).int(),
        "i64": torch.tensor([-(2**31), 2**31 - 1, 0, -1, 123456789], dtype=torch.int64),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "half_src": h,
        "half_src.f16": h.half(),
        "bf16_src": b,
        "bf16_src.bf16": b.bfloat16(),
    }
    return st.save(path, tensors, {"format": "ctfgen-test", "note": "unicode ✓", "writer": "oracle/st.py"})
