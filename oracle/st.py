"""Minimal safetensors reader/writer (struct + json), so the oracle needs no `safetensors` package.

Format: u64 little-endian header length N, N bytes of JSON header, then the data buffer.
Tensors are written in the order given (no alignment sorting), which also exercises unaligned reads.
"""
import json
import struct

import torch

DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int32: "I32",
    torch.int64: "I64",
}
TORCH_DTYPES = {v: k for k, v in DTYPES.items()}


def _raw_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def save(path: str, tensors: dict, metadata: dict | None = None) -> int:
    """Writes tensors {name: torch.Tensor}; returns the file size in bytes."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    offset = 0
    for name, t in tensors.items():
        if t.dtype not in DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {t.dtype}")
        raw = _raw_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    js = json.dumps(header, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for c in chunks:
            f.write(c)
    return 8 + len(js) + offset


def load(path: str) -> tuple[dict, dict]:
    """Reads a file written by save (or by ctfgen): ({name: torch.Tensor}, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    buf = data[8 + n :]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        dt = TORCH_DTYPES[e["dtype"]]
        raw = bytearray(buf[b:end])
        if dt in (torch.float16, torch.bfloat16):
            t = torch.frombuffer(raw, dtype=torch.int16).view(dt) if raw else torch.empty(0, dtype=dt)
        else:
            t = torch.frombuffer(raw, dtype=dt) if raw else torch.empty(0, dtype=dt)
        out[name] = t.reshape(e["shape"]).clone()
    return out, meta
