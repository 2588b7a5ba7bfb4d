"""Per-column two-sample drift statistics: curata.drift vs a loop of scipy.stats calls.

    python -m benchmarks.drift [--quick] [--repeats N] [--only REGEX] [--write]

Every case compares a reference (n, D) with a current (m, D) float64 sample: standard normal
columns, a quarter of them shifted by 0.05 and an eighth scaled by 1.02, so both the "no drift"
and the "drift" p-value paths run. curata computes all D columns in one call (its thread count is
the machine's unless CURATA_NUM_THREADS says otherwise; a 1-thread row is reported too); the peer
is ``[scipy.stats.<test>(ref[:, j], cur[:, j]) for j in range(D)]`` with default arguments, which
is what a per-feature drift check does. Results are compared before timing (statistic and p-value
to 1e-12 relative).

Rounds are interleaved (round r rotates the contender order) and the table reports the median per
contender and the ratio time / curata (> 1: curata is faster). Self-contained: prints a markdown
table (the shared harness was not on main when this was written).
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
import warnings

import numpy as np

TESTS = ("ks", "cramervonmises", "mannwhitneyu", "wasserstein", "energy")
CASES = {
    # name: (n, m, D, tests)
    "100k vs 100k x 64": (100_000, 100_000, 64, ("ks",)),
    "10k vs 10k x 64": (10_000, 10_000, 64, TESTS),
    "1k vs 1k x 64": (1_000, 1_000, 64, TESTS),
}


def make_data(n, m, d, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, d))
    cur = rng.normal(size=(m, d))
    cur[:, ::4] += 0.05
    cur[:, 1::8] *= 1.02
    return ref, cur


def _curata(test, ref, cur, threads=None):
    import curata
    from curata import drift

    fn = getattr(drift, test)

    def run():
        if threads is None:
            return fn(ref, cur)
        before = curata.get_num_threads()
        curata.set_num_threads(threads)
        try:
            return fn(ref, cur)
        finally:
            curata.set_num_threads(before)

    return run


def _scipy(test, ref, cur):
    from scipy import stats

    fn = {
        "ks": stats.ks_2samp,
        "cramervonmises": stats.cramervonmises_2samp,
        "mannwhitneyu": stats.mannwhitneyu,
        "wasserstein": stats.wasserstein_distance,
        "energy": stats.energy_distance,
    }[test]

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [fn(ref[:, j], cur[:, j]) for j in range(ref.shape[1])]

    return run


def _values(result):
    if isinstance(result, list):
        stat = np.array([getattr(r, "statistic", r) for r in result], dtype=np.float64)
        p = np.array([getattr(r, "pvalue", np.nan) for r in result], dtype=np.float64)
    else:
        stat = np.asarray(result.statistic, dtype=np.float64)
        p = np.asarray(getattr(result, "pvalue", None) if getattr(result, "pvalue", None) is not None else np.full(stat.shape, np.nan))
    return stat, p


def _max_rel(a, b) -> float:
    with np.errstate(all="ignore"):
        rel = np.abs(a - b) / np.abs(b)
    rel[(a == b) | (np.isnan(a) & np.isnan(b))] = 0.0
    return float(np.max(rel, initial=0.0))


def machine_line() -> str:
    import curata
    import scipy

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    n_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu}, {n_cpus} CPUs available, Python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}; curata {curata.__version__} ({curata.get_num_threads()} threads); "
        f"load average {os.getloadavg()[0]:.2f}"
    )


def run_case(name, n, m, d, tests, repeats):
    import curata

    ref, cur = make_data(n, m, d)
    rows = []
    for test in tests:
        contenders = {
            "curata": _curata(test, ref, cur),
            "curata, 1 thread": _curata(test, ref, cur, threads=1),
            "scipy loop": _scipy(test, ref, cur),
        }
        if curata.get_num_threads() == 1:
            del contenders["curata, 1 thread"]
        times = {k: [] for k in contenders}
        ours = None
        for label, fn in contenders.items():  # check + warm-up round
            t = time.perf_counter()
            result = fn()
            times[label].append(time.perf_counter() - t)
            stat, p = _values(result)
            if ours is None:
                ours = (stat, p)
            else:
                worst = max(_max_rel(ours[0], stat), _max_rel(ours[1], p))
                if worst > 1e-12:
                    raise SystemExit(f"{name} {test}: {label} differs from curata by {worst:.3g} (relative)")
        labels = list(contenders)
        for r in range(repeats - 1):
            for label in labels[r % len(labels):] + labels[: r % len(labels)]:
                gc.collect()
                gc.disable()
                t = time.perf_counter()
                contenders[label]()
                times[label].append(time.perf_counter() - t)
                gc.enable()
        base = statistics.median(times["curata"])
        for label in labels:
            med = statistics.median(times[label])
            rows.append((name, test, label, med, len(times[label]), med / base))
        print(f"# {name} {test}: " + ", ".join(f"{lab} {statistics.median(times[lab]):.4f} s" for lab in labels),
              file=sys.stderr)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.drift", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="only the 1k case, 3 rounds")
    p.add_argument("--repeats", type=int, default=7, help="rounds per contender (default 7)")
    p.add_argument("--only", default=None, help="regular expression on case names")
    p.add_argument("--write", action="store_true", help="also write benchmarks/results/drift-cpu-<N>c.md")
    args = p.parse_args(argv)
    cases = dict(CASES)
    if args.quick:
        cases = {"1k vs 1k x 64": CASES["1k vs 1k x 64"]}
        args.repeats = min(args.repeats, 3)
    if args.only:
        cases = {k: v for k, v in cases.items() if re.search(args.only, k)}
    lines = [f"machine at start: {machine_line()}", ""]
    rows = []
    for name, (n, m, d, tests) in cases.items():
        rows += run_case(name, n, m, d, tests, args.repeats)
    lines += ["| case | test | contender | median s | rounds | time / curata |", "|---|---|---|---:|---:|---:|"]
    for name, test, label, med, k, ratio in rows:
        lines.append(f"| {name} | {test} | {label} | {med:.4f} | {k} | {ratio:.2f}× |")
    lines += ["", f"load average at end: {os.getloadavg()[0]:.2f}"]
    text = "\n".join(lines)
    print(text)
    if args.write and not args.quick and not args.only:
        n_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"drift-cpu-{n_cpus}c.md")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            f.write("# drift benchmark (python -m benchmarks.drift --write)\n\n" + text + "\n")
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
