#!/usr/bin/python3
"""Reference values for src/eval/metrics.ts, computed the standard way with numpy + scipy.

    /usr/bin/python3 oracle/make_eval_fixtures.py test/fixtures/eval-metrics.json   (npm run oracle:eval)

Inputs are not stored; both sides regenerate them from a seeded integer hash (see `uniform` and
`features`), using only IEEE operations done in the same order (+, -, *, sqrt), so the TypeScript test
rebuilds bit-identical float32 features and checks that with the stored checksums. Each set is
x = float32(mu + z @ mix) with z[i, k] = (u0 + u1 + u2 + u3 - 2) * sqrt(3) (mean 0, variance 1) from
the hash, and mu, mix (float32-rounded, stored) from numpy's seeded generator.

References:
  fid_scipy  pytorch-fid's calculate_frechet_distance: scipy.linalg.sqrtm of sigma1 @ sigma2, retried
             with 1e-6 on the diagonals when not finite, real part taken; mu/sigma from np.mean / np.cov.
  fid_eigh   the same distance through numpy.linalg.eigh (what the TS code does), as a cross-check.
  precision / recall  Kynkaenniemi et al. by brute force: all float64 pairwise distances, k-th nearest
             neighbour excluding self, inside when distance <= radius.
  inception  exp(mean KL(p(y|x) || p(y))) per split (rows [s*n//splits, (s+1)*n//splits), as the ADM
             evaluator; with splits dividing n this is the original Inception Score loop), mean and np.std.
Deterministic: a rerun writes a byte-identical file.
"""
import json
import math
import sys

import numpy as np
import scipy
from scipy import linalg
from scipy.stats import entropy

M32 = 0xFFFFFFFF


def fmix32(h):
    """murmur3's finaliser on uint64 arrays holding 32-bit values (products fit in 64 bits)."""
    h = h ^ (h >> np.uint64(16))
    h = (h * np.uint64(0x85EBCA6B)) & np.uint64(M32)
    h = h ^ (h >> np.uint64(13))
    h = (h * np.uint64(0xC2B2AE35)) & np.uint64(M32)
    return h ^ (h >> np.uint64(16))


def uniform(seed, idx):
    """(fmix32(seed * 0x9E3779B1 + idx mod 2^32) + 0.5) / 2^32 in (0, 1), exact in float64."""
    h = (np.uint64((seed * 0x9E3779B1) & M32) + idx.astype(np.uint64)) & np.uint64(M32)
    return (fmix32(h).astype(np.float64) + 0.5) / 2.0**32


def latent(seed, n, dim):
    m = np.arange(n * dim, dtype=np.uint64) * np.uint64(4)
    u = [uniform(seed, m + np.uint64(t)) for t in range(4)]
    return (((u[0] + u[1]) + u[2]) + u[3] - 2.0) * math.sqrt(3.0)


def features(seed, n, dim, mu, mix):
    z = latent(seed, n, dim).reshape(n, dim)
    acc = np.zeros((n, dim))
    for k in range(dim):  # sequential in k, exactly like the TS loop
        acc = acc + z[:, k:k + 1] * mix[k:k + 1, :]
    return (acc + mu[None, :]).astype(np.float32)


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def make_set(name, seed, n, dim, gen, shift=0.0, scale=1.0, singular=False):
    mu = f32(shift + 0.3 * gen.standard_normal(dim))
    mix = scale * gen.standard_normal((dim, dim)) / math.sqrt(dim)
    if singular:  # the last quarter of the directions almost vanish, one column repeats another
        mix[:, 3 * dim // 4:] *= 1e-3
        mix[:, -1] = mix[:, 0]
    mix = f32(mix)
    x = features(seed, n, dim, mu, mix)
    return name, {"seed": seed, "n": n, "dim": dim, "mu": mu.tolist(), "mix": mix.ravel().tolist(),
                  "sum": float(x.astype(np.float64).sum()), "head": x[0, :4].astype(np.float64).tolist(),
                  "last": float(x[-1, -1])}, x


def fid_pytorch(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance, verbatim in substance."""
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    offset_used = False
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
        offset_used = True
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("imaginary component %s" % np.max(np.abs(covmean.imag)))
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)), offset_used


def fid_eigh(mu1, sigma1, mu2, sigma2):
    w, v = np.linalg.eigh(sigma1)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = r @ sigma2 @ r
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(np.clip(lam, 0, None)).sum())


def stats(x):
    x = x.astype(np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def sq_dists(a, b):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def precision_recall(real, fake, k):
    def radii(x):
        d = sq_dists(x, x)
        np.fill_diagonal(d, np.inf)  # exclude self
        return np.sort(d, axis=1)[:, k - 1]
    rr, rf = radii(real), radii(fake)
    d = sq_dists(fake, real)  # (nFake, nReal)
    precision = float((d <= rr[None, :]).any(axis=1).mean())
    recall = float((d.T <= rf[None, :]).any(axis=1).mean())
    # How close the nearest decision came to its threshold (relative): shows the test is not on a knife edge.
    margin = float(np.min(np.abs(d - rr[None, :]) / rr[None, :]))
    return precision, recall, margin


def probs(seed, n, classes, peak):
    """w = u^8 + peak on class i mod classes; p = w / sum(w), the sum taken in class order."""
    idx = np.arange(n * classes, dtype=np.uint64)
    u = uniform(seed, idx).reshape(n, classes)
    u2 = u * u
    u4 = u2 * u2
    w = u4 * u4
    w[np.arange(n), np.arange(n) % classes] += peak
    s = w[:, 0].copy()
    for c in range(1, classes):
        s = s + w[:, c]
    return w / s[:, None]


def inception(p, splits):
    n = p.shape[0]
    scores = []
    for s in range(splits):
        part = p[s * n // splits:(s + 1) * n // splits]
        py = part.mean(axis=0)
        scores.append(math.exp(np.mean([entropy(row, py) for row in part])))
    return float(np.mean(scores)), float(np.std(scores))


def main(out_path):
    gen = np.random.default_rng(20250503)
    sets, data = {}, {}
    specs = [("a16", 1, 200, 16, {}), ("b16", 2, 200, 16, {"shift": 0.5, "scale": 1.3}),
             ("a32", 3, 500, 32, {}), ("b32", 4, 500, 32, {"shift": 0.2, "scale": 0.8}),
             ("s32", 5, 500, 32, {"singular": True}), ("few32", 6, 24, 32, {"shift": 0.1})]
    for name, seed, n, dim, kw in specs:
        name, meta, x = make_set(name, seed, n, dim, gen, **kw)
        sets[name], data[name] = meta, x
    mu, cov = stats(data["a16"])
    cases = []
    for a, b in [("a16", "b16"), ("a16", "a16"), ("a32", "b32"), ("a32", "s32"), ("s32", "b32"), ("few32", "a32")]:
        m1, s1 = stats(data[a])
        m2, s2 = stats(data[b])
        fs, offset_used = fid_pytorch(m1, s1, m2, s2)
        case = {"a": a, "b": b, "fid_scipy": fs, "scipy_offset": offset_used, "fid_eigh": fid_eigh(m1, s1, m2, s2),
                "cond_a": float(np.linalg.cond(s1)), "cond_b": float(np.linalg.cond(s2))}
        if data[a].shape[0] > 3 and a != b:
            p, r, margin = precision_recall(data[a], data[b], 3)
            case.update({"k": 3, "precision": p, "recall": r, "radius_margin": margin})
        cases.append(case)
    inc = []
    for seed, n, classes, peak, splits in [(7, 1000, 10, 2.0, 10), (8, 1003, 10, 0.5, 10), (9, 600, 7, 20.0, 4)]:
        mean, std = inception(probs(seed, n, classes, peak), splits)
        inc.append({"seed": seed, "n": n, "classes": classes, "peak": peak, "splits": splits, "mean": mean, "std": std})
    fixture = {
        "about": "oracle/make_eval_fixtures.py (numpy %s, scipy %s); inputs regenerated from the seeded hash"
                 % (np.__version__, scipy.__version__),
        "sets": sets,
        "a16_stats": {"mean": mu.tolist(), "cov": cov.ravel().tolist()},
        "frechet": cases,
        "inception": inc,
    }
    text = json.dumps(fixture, indent=None, separators=(",", ":")) + "\n"
    with open(out_path, "w") as f:
        f.write(text)
    print("%s: %d bytes" % (out_path, len(text)))
    for c in cases:
        print("  FD %-5s %-5s scipy %.10g eigh %.10g (rel %.2e, offset %s) cond %.1e/%.1e%s" % (
            c["a"], c["b"], c["fid_scipy"], c["fid_eigh"],
            abs(c["fid_scipy"] - c["fid_eigh"]) / max(abs(c["fid_eigh"]),
                                                      1e-300), c["scipy_offset"], c["cond_a"], c["cond_b"],
            "  P %.4f R %.4f margin %.1e" % (c["precision"], c["recall"],
                                             c["radius_margin"]) if "precision" in c else ""))
    for c in inc:
        print("  IS n=%d C=%d splits=%d: %.10g +- %.6g" % (c["n"], c["classes"], c["splits"], c["mean"], c["std"]))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/eval-metrics.json")
