"""Writes every golden fixture under the given directory (default test/fixtures).

Run with Debian's interpreter, which has torch:  /usr/bin/python3 oracle/make_fixtures.py test/fixtures
(`npm run oracle`). Deterministic: fixed seeds, one torch thread, so reruns give identical bytes.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gpt_fixtures  # noqa: E402
import ops_fixtures  # noqa: E402
import st_fixture  # noqa: E402


def main(outdir: str) -> None:
    torch.set_num_threads(1)
    os.makedirs(outdir, exist_ok=True)
    sizes = {}
    sizes["safetensors_torch.safetensors"] = st_fixture.make(os.path.join(outdir, "safetensors_torch.safetensors"))
    sizes.update(ops_fixtures.make_all(outdir))
    sizes.update(gpt_fixtures.make_all(outdir))
    total = sum(sizes.values())
    for name, n in sizes.items():
        print(f"{n:9d}  {name}")
    print(f"{total:9d}  total bytes in {len(sizes)} files")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "test/fixtures")
