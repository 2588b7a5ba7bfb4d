"""Kernel two-sample test (MMD^2 with permutations): curata.drift.mmd vs a dense torch version.

    python -m benchmarks.drift_mmd [--quick] [--repeats N] [--write]

Data: standard normal float32 rows, ``cur`` shifted by 0.02 in every column; bandwidth from the
median heuristic, 100 permutations, seed 0. curata evaluates all 101 labellings in one tiled pass
(memory O(N (D + B))). The peer is what dense implementations do (alibi-detect's PyTorch MMD
backend, Evidently's embedding MMD): build the full pooled (N x N) kernel matrix once, then for
each permutation index it with the permuted order and sum the three blocks ("index per
permutation", only at 2k + 2k: it takes minutes beyond). A stronger dense baseline uses the same
algebra as curata on the dense matrix with one BLAS GEMM ``K @ labels`` ("K @ labels GEMM").
Both are float64 torch on the CPU, written in this file (no peer code), run on the same
labellings, and checked against curata before being reported (1e-9 absolute). Dense memory is
N^2 x 8 bytes plus a temporary, so dense rows stop at 5k + 5k (10k + 10k would need ~3 GiB).

Prints a markdown table: median wall time over the repeats and time / curata.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

CASES = [
    # (n, m, D, B, dense contenders)
    (2_000, 2_000, 512, 100, ("index", "gemm")),
    (5_000, 5_000, 512, 100, ("gemm",)),
    (10_000, 10_000, 512, 100, ()),
]


def make_data(n, m, d, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, d)).astype(np.float32)
    cur = (rng.normal(size=(m, d)) + 0.02).astype(np.float32)
    return ref, cur


def _dense_kernel(ref, cur, sigma):
    import torch

    z = torch.from_numpy(np.vstack([ref, cur]).astype(np.float64))
    d2 = torch.cdist(z, z).pow_(2)
    return torch.exp_(d2.mul_(-1.0 / (2.0 * sigma * sigma)))


def dense_torch_gemm(ref, cur, sigma, labels):
    """Dense kernel matrix, then the same quadratic forms as curata with one BLAS GEMM (K @ A)."""
    import torch

    k = _dense_kernel(ref, cur, sigma)
    k.fill_diagonal_(0.0)  # unbiased: drop the diagonal (RBF diagonal is 1)
    n, m = len(ref), len(cur)
    a = torch.from_numpy(labels.astype(np.float64))
    ka = k @ a
    q = (a * ka).sum(0)  # S_xx off-diagonal
    lin = ka.sum(0)  # a'K1
    t = k.sum()
    sxy = lin - q
    syy = t - 2 * lin + q
    return (q / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * sxy / (n * m)).numpy()


def dense_torch(ref, cur, sigma, labels):
    """All B + 1 unbiased MMD^2 from a dense kernel matrix, one indexing per labelling."""
    import torch

    k = _dense_kernel(ref, cur, sigma)
    n, m = len(ref), len(cur)
    out = []
    for p in range(labels.shape[1]):
        a = torch.from_numpy(labels[:, p].astype(bool))
        order = torch.cat([torch.nonzero(a).flatten(), torch.nonzero(~a).flatten()])
        kp = k[order][:, order]
        kxx, kyy, kxy = kp[:n, :n], kp[n:, n:], kp[:n, n:]
        out.append(
            float((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
                  - 2.0 * kxy.sum() / (n * m))
        )
    return np.array(out)


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the 2k + 2k case")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="write benchmarks/results/drift-mmd-cpu-2c.md")
    args = ap.parse_args(argv)

    import curata
    from curata import drift

    try:
        import torch

        torch_info = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch = None
        torch_info = "torch not installed (dense rows skipped)"
    lines = [
        "# MMD permutation test (python -m benchmarks.drift_mmd)",
        "",
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"numpy {np.__version__}; curata {curata.__version__} ({curata.get_num_threads()} threads), {torch_info}; "
        f"load average {os.getloadavg()[0]:.2f}",
        "",
        "| case | contender | median s | repeats | time / curata | working memory (formula) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    cases = CASES[:1] if args.quick else CASES
    for n, m, d, B, dense in cases:
        ref, cur = make_data(n, m, d)
        name = f"{n // 1000}k + {m // 1000}k x {d}, B={B}"
        t_ours, r = timed(lambda: drift.mmd(ref, cur, n_permutations=B, seed=0), args.repeats)
        N = n + m
        lines.append(f"| {name} | curata.drift.mmd | {t_ours:.3f} | {args.repeats} | 1.00 | O(N(D+B)): {N * (d + B) * 8 / 2**20:.0f} MiB |")
        for kind in dense if torch is not None else ():
            labels = drift.permutation_labels(n, m, B, 0)
            reps = 1 if kind == "index" else args.repeats
            fn = dense_torch if kind == "index" else dense_torch_gemm
            t_dense, stats = timed(lambda: fn(ref, cur, r.bandwidth, labels), reps)
            ours = np.concatenate([[r.statistic], r.null_statistics])
            err = float(np.max(np.abs(stats - ours)))
            if err > 1e-9:
                raise SystemExit(f"dense torch ({kind}) disagrees with curata by {err:.3g} on {name}")
            label = "index per permutation" if kind == "index" else "K @ labels GEMM"
            lines.append(
                f"| {name} | dense torch float64 ({label}) | {t_dense:.3f} | {reps} | {t_dense / t_ours:.1f} | "
                f"~2 N^2 x 8 B: {2 * N * N * 8 / 2**20:.0f} MiB |"
            )
        print(f"done {name}", file=sys.stderr)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        path = os.path.join(os.path.dirname(__file__), "results", "drift-mmd-cpu-2c.md")
        with open(path, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
