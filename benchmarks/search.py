"""Exact kNN: curata.search.knn vs faiss-cpu IndexFlatIP / IndexFlatL2 (and scikit-learn brute).

    python -m benchmarks.search [--quick] [--repeats N] [--base N] [--only REGEX] [--write]

Data: standard normal float32 vectors, D = 512, k = 10. Cases: a 2000-query batch (the
throughput case, GEMM path in both libraries), and 64-query and 1-query batches (latency). faiss
runs with the same thread count as curata (faiss.omp_set_num_threads). Results are compared
before timing (index agreement with faiss, which can differ only on float32 near-ties).

Rounds are interleaved (round r rotates the contender order); the table reports the median per
contender and the ratio time / curata (> 1: curata is faster). Self-contained: prints a markdown
table (the shared harness was not on main when this was written); ``--write`` also saves it to
``benchmarks/results/search-cpu-<cpus>c.md``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import statistics
import sys
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="50k base, 2 repeats")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--base", type=int, default=200_000, help="base rows (default 200k)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--only", default=None, help="regex over case names")
    ap.add_argument("--write", action="store_true", help="save the table under benchmarks/results/")
    args = ap.parse_args()
    if args.quick:
        args.base, args.repeats = 50_000, 2

    import curata
    from curata import search

    threads = curata.get_num_threads()
    rng = np.random.default_rng(0)
    base = rng.standard_normal((args.base, args.dim), dtype=np.float32)
    queries = rng.standard_normal((2000, args.dim), dtype=np.float32)

    contenders = {}
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
        flat = {"ip": faiss.IndexFlatIP(args.dim), "l2": faiss.IndexFlatL2(args.dim)}
        for index in flat.values():
            index.add(base)
        contenders["faiss-cpu " + faiss.__version__] = lambda q, k, metric: flat[metric].search(q, k)
    except ImportError:
        faiss = None
    contenders = {"curata": lambda q, k, metric: search.knn(base, q, k, metric), **contenders}

    cases = {
        f"{args.base // 1000}k x {args.dim}, 2000 queries, k=10, ip": (2000, 10, "ip"),
        f"{args.base // 1000}k x {args.dim}, 2000 queries, k=10, l2": (2000, 10, "l2"),
        f"{args.base // 1000}k x {args.dim}, 64 queries, k=10, ip": (64, 10, "ip"),
        f"{args.base // 1000}k x {args.dim}, 16 queries, k=10, ip": (16, 10, "ip"),
        f"{args.base // 1000}k x {args.dim}, 1 query, k=10, ip": (1, 10, "ip"),
    }
    rows = []
    for name, (m, k, metric) in cases.items():
        if args.only and not re.search(args.only, name):
            continue
        q = queries[:m]
        results = {c: fn(q, k, metric) for c, fn in contenders.items()}  # warm-up + check
        ref_i = results["curata"][1]
        agreement = {
            c: float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ref_i.tolist(), np.asarray(r[1]).tolist())]))
            for c, r in results.items()
        }
        times = {c: [] for c in contenders}
        names = list(contenders)
        for r in range(args.repeats):
            order = names[r % len(names) :] + names[: r % len(names)]
            for c in order:
                gc.collect()
                t0 = time.perf_counter()
                contenders[c](q, k, metric)
                times[c].append(time.perf_counter() - t0)
        med = {c: statistics.median(v) for c, v in times.items()}
        rows.append((name, med, agreement))

    lines = [
        "# kNN benchmark (python -m benchmarks.search)",
        "",
        f"machine: {_cpu_name()}, {os.cpu_count()} CPUs, curata {curata.__version__} ({threads} threads), "
        f"numpy {np.__version__}, load average {os.getloadavg()[0]:.2f}; data: standard normal float32, "
        f"{args.repeats} interleaved rounds, median",
        "",
    ]
    header = "| case | " + " | ".join(f"{c} (s)" for c in contenders) + " | " + " | ".join(
        f"{c} / curata" for c in contenders if c != "curata") + " | recall vs curata |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for name, med, agreement in rows:
        cells = [f"{med[c]:.4g}" for c in contenders]
        ratios = [f"{med[c] / med['curata']:.2f}" for c in contenders if c != "curata"]
        agree = ", ".join(f"{agreement[c]:.4f}" for c in contenders if c != "curata") or "-"
        lines.append(f"| {name} | " + " | ".join(cells + ratios) + f" | {agree} |")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.write:
        out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"search-cpu-{os.cpu_count()}c.md")
        with open(out, "w") as f:
            f.write(text)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
