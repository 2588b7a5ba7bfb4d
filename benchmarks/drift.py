"""Suite ``drift``: per-column two-sample tests and the MMD permutation test against their peers.

Run with ``python -m benchmarks.run drift [--quick] [--device cuda]``.

Monitoring (``monitor check n vs m x D``): ``curata.DriftMonitor.check`` with its defaults (KS on
every column, 8-cluster share shift, one Benjamini-Hochberg correction over the D + 1 p-values)
on the per-column data below; the monitor (k-means on the reference) is built once, outside the
timing. Contenders: ``curata.drift.ks alone`` (the same KS without the monitor: its ratio < 1 is
the monitor's overhead) and ``scipy loop + numpy``, what a hand-written check does: a
``scipy.stats.ks_2samp`` loop over the columns, numpy nearest-centroid assignment to the
monitor's centroids, ``scipy.stats.chi2_contingency`` of the cluster counts and
``scipy.stats.false_discovery_control``. Checked before timing: the adjusted p-values agree to
1e-9 relative and the cluster counts exactly. Sizes: 100k vs 100k x 64 and 10k vs 10k x 64;
``--quick``: 10k only. ``monitor check all tests``: the same with ``tests=("ks", "cramervonmises",
"mannwhitneyu", "wasserstein", "energy")`` against the five single-test calls one after the other
(what a check cost before it shared one sort per column and presorted the reference) and
``curata.drift.column_tests`` alone; checked bit for bit against the single-test calls.

Per-column tests (``TEST n vs m x D``: ks, cramervonmises, mannwhitneyu, wasserstein, energy):
a reference (n, D) and a current (m, D) float64 sample with standard normal columns, a quarter of
them shifted by 0.05 and an eighth scaled by 1.02, so both the "no drift" and the "drift" p-value
paths run. curata computes all D columns in one call with its default threads
(``CURATA_NUM_THREADS`` or every available core) and, as a second contender, with one thread
(``curata, 1 thread``: its ratio is the thread speed-up). The peer ``scipy loop`` is
``[scipy.stats.<test>(ref[:, j], cur[:, j]) for j in range(D)]`` with default arguments, which is
what a per-feature drift check does. Checked before timing: statistic and p-value of every
contender equal curata's to 1e-12 relative. Sizes: 100k vs 100k x 64 (ks only), 10k vs 10k x 64
and 1k vs 1k x 64 (all five tests); ``--quick``: 1k only.

MMD (``mmd n + m x D, B=100``): standard normal float32 rows, ``cur`` shifted by 0.02 in every
column; median-heuristic bandwidth, 100 permutations, seed 0. ``curata.drift.mmd`` evaluates all
101 labellings in one tiled pass (memory O(N (D + B))). The peers are what dense implementations
do (alibi-detect's PyTorch MMD backend, Evidently's embedding MMD), written here in float64 torch
on the CPU: build the full pooled (N x N) kernel matrix, then either index it with each permuted
order and sum the three blocks (``dense torch (index per permutation)``, only at 2k + 2k: minutes
beyond) or use the same algebra as curata with one BLAS GEMM ``K @ labels``
(``dense torch (K @ labels GEMM)``, up to 5k + 5k: dense memory is N^2 x 8 bytes plus a
temporary). They get curata's bandwidth and the labellings of ``curata.drift.permutation_labels``
(both computed once, outside the timing) and must reproduce curata's statistic and its 100 null
statistics to 1e-9 before anything is timed. Sizes: 2k, 5k and 10k per side (10k: curata alone);
``--quick``: 1k + 1k with both dense peers.

Sanity timing of the torch device path on the CPU (``--device cpu``, ``all tests 10k vs 10k x 64
(torch CPU)``): :func:`curata.drift.column_tests` (five tests from one sort per column in the C++
core) against the same five tests computed by ``curata._drift_device`` on CPU torch tensors (the
code the GPU runs, here on the CPU; it is not meant to be fast there). Checked: equal results.
``all tests 100k vs 100k x 64 (host)``: ``column_tests`` against the five single-test calls on
the host (what one shared sort saves). Checked: identical results.

``--device cuda`` (float32 data generated on the GPU with torch, seed 0; skipped cleanly by
``benchmarks.run`` when torch has no usable GPU):

* ``all tests 1M vs 1M x 512 (cuda)``: ``curata column_tests (cuda)`` (one sort per column, all
  five statistics, p-values on the host) and ``curata 5 calls (cuda)`` (ks, cramervonmises,
  mannwhitneyu, wasserstein, energy one after the other) against ``curata host (C++ core)`` on host
  copies of the same data. Goal: under 0.5 s. Checked: the device results equal the host core's
  (statistics and p-values exactly, the float64 sums of the distances to 1e-12 relative).
* ``mmd 20k + 20k x 512, B=100 (cuda)``: ``curata float64 (cuda)`` and ``curata float32 (cuda)``
  against the host core; checked: float64 within 1e-12 of the host, float32 within 1e-6.
* ``mmd 1000k + 1000k x 512, B=100 (cuda)``: ``curata float32 (cuda)`` alone, one timed round.
  Goal: <= 30 s. ``precision="float64"`` at this size is estimated at ~45 s (H100 FP64 tensor
  core peak) and not timed.
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable

import numpy as np

from ._harness import Case, Check, Contender, contender

PEER_DISTRIBUTIONS = ("scipy",)
TESTS = ("ks", "cramervonmises", "mannwhitneyu", "wasserstein", "energy")
# name: (n, m, D, tests)
COLUMN_CASES = {
    "100k vs 100k x 64": (100_000, 100_000, 64, ("ks",)),
    "10k vs 10k x 64": (10_000, 10_000, 64, TESTS),
    "1k vs 1k x 64": (1_000, 1_000, 64, TESTS),
}
COLUMN_QUICK = ("1k vs 1k x 64",)
COLUMN_RTOL = 1e-12
# cramervonmises: curata's T is the exact rational T rounded once (checked below against integer
# arithmetic); scipy's float64 T = U / (n m N) - (4 n m - 1) / (6 N) loses digits to cancellation
# (~5e-12 relative at 10k, ~3e-10 at 1M), which the p-value inherits, amplified where p is small
# (1 - cdf is accurate to ~eps absolute only). So scipy's statistic is held to this looser
# tolerance, and the p-value code is checked at scipy's own statistic (see _cvm_scipy_diff).
CVM_SCIPY_RTOL = 1e-8
CVM_SCIPY_ATOL_P = 4 * float(np.finfo(np.float64).eps)

# (n, m, D, B, dense peers, warm-up override, max rounds); the 1k case is the --quick one.
MMD_CASES = [
    (2_000, 2_000, 512, 100, ("index", "gemm"), 0, 3),
    (5_000, 5_000, 512, 100, ("gemm",), 1, 5),
    (10_000, 10_000, 512, 100, (), 1, 5),
]
MMD_QUICK = [(1_000, 1_000, 512, 100, ("index", "gemm"), 0, 3)]
MMD_ATOL = 1e-9
DENSE_NAMES = {"index": "dense torch (index per permutation)", "gemm": "dense torch (K @ labels GEMM)"}


# ------------------------------------------------------------------------------------------ data
@functools.lru_cache(maxsize=1)  # the five tests of one size share the data
def make_data(n, m, d, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, d))
    cur = rng.normal(size=(m, d))
    cur[:, ::4] += 0.05
    cur[:, 1::8] *= 1.02
    return ref, cur


def make_mmd_data(n, m, d, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, d)).astype(np.float32)
    cur = (rng.normal(size=(m, d)) + 0.02).astype(np.float32)
    return ref, cur


# ---------------------------------------------------------------------------- per-column tests
def _curata(test, ref, cur, threads=None):
    import curata  # noqa: PLC0415
    from curata import drift  # noqa: PLC0415

    fn = getattr(drift, test)
    if threads is None:
        return lambda: fn(ref, cur)

    def run():
        before = curata.get_num_threads()
        curata.set_num_threads(threads)
        try:
            return fn(ref, cur)
        finally:
            curata.set_num_threads(before)

    return run


def _scipy(test, ref, cur):
    from scipy import stats  # noqa: PLC0415

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
        pvalue = getattr(result, "pvalue", None)
        p = np.asarray(pvalue, dtype=np.float64) if pvalue is not None else np.full(stat.shape, np.nan)
    return stat, p


def _max_rel(a, b) -> float:
    if a.shape != b.shape:
        return float("inf")
    with np.errstate(all="ignore"):
        rel = np.abs(a - b) / np.abs(b)
    rel[(a == b) | (np.isnan(a) & np.isnan(b))] = 0.0
    return float(np.max(rel, initial=0.0))


def cvm_exact_statistic(x, y):
    """Cramér-von Mises T of two 1-D samples as an exact Fraction (doubled midranks are integers)."""
    from fractions import Fraction  # noqa: PLC0415

    x = np.sort(np.asarray(x, dtype=np.float64))
    y = np.sort(np.asarray(y, dtype=np.float64))
    n, m = x.size, y.size
    pooled = np.sort(np.concatenate([x, y]))

    def four_sum_sq(v):
        below = np.searchsorted(pooled, v, side="left")
        d = 2 * below + (np.searchsorted(pooled, v, side="right") - below) + 1 - 2 * np.arange(1, v.size + 1)
        return sum(int(t) for t in np.add.reduceat(d * d, np.arange(0, v.size, 4096)))  # int64 chunks, exact

    k, total = n * m, n + m
    return Fraction(6 * (n * four_sum_sq(x) + m * four_sum_sq(y)) - 4 * k * (4 * k - 1), 24 * k * total)


def _cvm_scipy_diff(ours, theirs, n: int, m: int) -> float:
    """How far curata's cramervonmises is from scipy's, split where the error is: the statistic's
    relative difference (scipy's cancellation, held to CVM_SCIPY_RTOL), and curata's p-value code
    evaluated at scipy's own statistic against scipy's p-value (held to COLUMN_RTOL + 4 eps absolute:
    comparing the p-values of two statistics an ulp apart would measure the conditioning of
    1 - cdf instead). Returns max(statistic difference, p-value difference * CVM_SCIPY_RTOL / COLUMN_RTOL)."""
    from curata import drift  # noqa: PLC0415

    with np.errstate(all="ignore"):
        s = np.abs(ours[0] - theirs[0]) / np.abs(theirs[0])
        p_at_theirs = drift._cvm_asymptotic_pvalues(theirs[0], np.full(theirs[0].shape, n), np.full(theirs[0].shape, m))
        p = np.abs(p_at_theirs - theirs[1]) / (np.abs(theirs[1]) + CVM_SCIPY_ATOL_P / COLUMN_RTOL)
    s[ours[0] == theirs[0]] = 0.0
    p[(p_at_theirs == theirs[1]) | (np.isnan(p_at_theirs) & np.isnan(theirs[1]))] = 0.0
    return float(max(np.max(s, initial=0.0), np.max(p, initial=0.0) * CVM_SCIPY_RTOL / COLUMN_RTOL))


def _cvm_not_exact(stat, ref, cur, columns: int) -> str | None:
    """None when curata's statistic is the correctly rounded exact T on the first ``columns``."""
    for j in range(min(columns, stat.size)):
        exact = float(cvm_exact_statistic(ref[:, j], cur[:, j]))
        if stat[j] != exact:
            return f"curata's statistic of column {j} is {stat[j]!r}, the exact value rounds to {exact!r}"
    return None


def _column_check(contenders: list[Contender], test: str = "", ref=None, cur=None) -> Check:
    try:
        ours = _values(contenders[0].fn())
    except Exception as exc:  # noqa: BLE001
        return Check("unchecked", f"curata failed, peers timed alone: {type(exc).__name__}: {exc}")
    problems, worst = [], 0.0
    cvm = test == "cramervonmises"
    for c in contenders[1:]:
        if c.fn is None:
            continue
        stat, p = _values(c.fn())
        if cvm and c.name == "scipy loop":
            diff = _cvm_scipy_diff(ours, (stat, p), ref.shape[0], cur.shape[0])
            tol = CVM_SCIPY_RTOL
        else:
            diff = max(_max_rel(stat, ours[0]), _max_rel(p, ours[1]))
            tol = COLUMN_RTOL
        worst = max(worst, diff) if c.name == "scipy loop" else worst
        if not diff <= tol:
            problems.append(f"{c.name} differs from curata by {diff:.3g} (relative)")
    if cvm and ref is not None:
        problem = _cvm_not_exact(ours[0], ref, cur, 8)
        if problem:
            problems.append(problem)
    if problems:
        return Check("mismatch", "; ".join(problems))
    peer = next(c for c in contenders if c.name == "scipy loop")
    if peer.fn is None:
        return Check("unchecked", f"scipy missing: {peer.skip_reason}")
    if cvm:
        return Check("ok", f"statistic of the first 8 columns equal to the exact value rounded once; statistic of "
                     f"{ours[0].size} columns within {CVM_SCIPY_RTOL:g} of scipy's (max relative difference "
                     f"{worst:.3g}: scipy's float64 cancellation), p-value code at scipy's statistic equal to "
                     f"scipy's p-value to {COLUMN_RTOL:g}")
    return Check("ok", f"statistic and p-value of {ours[0].size} columns equal scipy's "
                 f"(max relative difference {worst:.3g})")


def _column_case(label: str, test: str, n: int, m: int, d: int) -> Case:
    import curata  # noqa: PLC0415

    ref, cur = make_data(n, m, d)
    params = {"test": test, "n": n, "m": m, "columns": d, "dtype": "float64",
              "data": "N(0,1) columns; a quarter shifted by 0.05, an eighth scaled by 1.02", "seed": 0}
    contenders = [Contender("curata", _curata(test, ref, cur))]
    if curata.get_num_threads() > 1:
        contenders.append(Contender("curata, 1 thread", _curata(test, ref, cur, threads=1),
                                    note="curata.set_num_threads(1) around the call"))
    contenders.append(contender("scipy loop", lambda: _scipy(test, ref, cur),
                                note=f"[scipy.stats.<{test}>(ref[:, j], cur[:, j]) for j in range(D)]"))
    return Case(f"{test} {label}", test, params, contenders, check=lambda: _column_check(contenders, test, ref, cur))


# ---------------------------------------------------------------------------------- monitoring
MONITOR_CASES = {"100k vs 100k x 64": (100_000, 100_000, 64), "10k vs 10k x 64": (10_000, 10_000, 64)}
MONITOR_QUICK = ("10k vs 10k x 64",)
MONITOR_RTOL = 1e-9


def _monitor_by_hand(mon, ref, cur):
    """KS loop + nearest centroid + chi2 + BH, as a hand-written check would do it."""
    from scipy import stats  # noqa: PLC0415

    cent = mon._centroids
    mean, scale = mon._emb_mean, mon._emb_scale
    ref_counts = mon._ref_cluster_counts

    def run():
        p = [stats.ks_2samp(ref[:, j], cur[:, j]).pvalue for j in range(ref.shape[1])]
        z = (cur - mean) / scale
        d = (z * z).sum(1)[:, None] - 2.0 * z @ cent.T + (cent * cent).sum(1)[None, :]
        counts = np.bincount(np.argmin(d, axis=1), minlength=cent.shape[0])
        p.append(stats.chi2_contingency(np.vstack([ref_counts, counts])).pvalue)
        return stats.false_discovery_control(np.array(p)), counts

    return run


def _monitor_check(contenders: list[Contender]) -> Check:
    try:
        rep = contenders[0].fn()
    except Exception as exc:  # noqa: BLE001
        return Check("unchecked", f"curata failed, peers timed alone: {type(exc).__name__}: {exc}")
    ours = np.array([r.adjusted_pvalue for r in rep.results] + [rep.clusters.adjusted_pvalue])
    peer = next(c for c in contenders if c.name == "scipy loop + numpy")
    if peer.fn is None:
        return Check("unchecked", f"scipy missing: {peer.skip_reason}")
    adj, counts = peer.fn()
    diff = _max_rel(ours, np.asarray(adj, dtype=np.float64))
    if not diff <= MONITOR_RTOL or not np.array_equal(counts, rep.clusters.cur_counts):
        return Check("mismatch", f"adjusted p-values differ by {diff:.3g} (relative) or cluster counts differ")
    return Check("ok", f"{ours.size} adjusted p-values equal the hand-written check's (max relative difference "
                 f"{diff:.3g}); cluster counts equal")


def _monitor_case(label: str, n: int, m: int, d: int) -> Case:
    from curata import drift  # noqa: PLC0415
    from curata.monitor import DriftMonitor  # noqa: PLC0415

    ref, cur = make_data(n, m, d)
    mon = DriftMonitor(ref, n_clusters=8, seed=0)
    params = {"n": n, "m": m, "columns": d, "dtype": "float64", "tests": "ks", "n_clusters": 8,
              "correction": "fdr", "data": "N(0,1) columns; a quarter shifted by 0.05, an eighth scaled by 1.02",
              "seed": 0}
    contenders = [
        Contender("curata", lambda: mon.check(cur), note="DriftMonitor.check (monitor built outside the timing)"),
        Contender("curata.drift.ks alone", lambda: drift.ks(ref, cur), note="the per-column KS without the monitor"),
        contender("scipy loop + numpy", lambda: _monitor_by_hand(mon, ref, cur),
                  note="ks_2samp loop, numpy nearest centroid, chi2_contingency, false_discovery_control"),
    ]
    return Case(f"monitor check {label}", "monitor", params, contenders, check=lambda: _monitor_check(contenders),
                max_repeats=5)


MONITOR_TESTS = ("ks", "cramervonmises", "mannwhitneyu", "wasserstein", "energy")
MONITOR_ALL_CASES = {"100k vs 100k x 64": (100_000, 100_000, 64), "10k vs 10k x 64": (10_000, 10_000, 64)}


def _monitor_all_check(mon, ref, cur) -> Check:
    try:
        rep = mon.check(cur)
    except Exception as exc:  # noqa: BLE001
        return Check("unchecked", f"curata failed, peers timed alone: {type(exc).__name__}: {exc}")
    worst = 0
    for test in MONITOR_TESTS:
        r = getattr(_drift(), test)(ref, cur)
        ours = np.array([[x.statistic, x.pvalue] for x in rep.results if x.test == test])
        theirs = np.column_stack([np.asarray(r.statistic), np.asarray(r.pvalue) if hasattr(r, "pvalue") else np.full(ours.shape[0], np.nan)])
        if not np.array_equal(ours, theirs, equal_nan=True):
            worst += 1
    if worst:
        return Check("mismatch", f"{worst} test(s) differ from the per-test calls")
    return Check("ok", f"statistics and p-values of {len(MONITOR_TESTS)} tests x {ref.shape[1]} columns equal the "
                 "per-test drift calls bit for bit")


def _drift():
    from curata import drift  # noqa: PLC0415

    return drift


def _monitor_all_case(label: str, n: int, m: int, d: int) -> Case:
    from curata.monitor import DriftMonitor  # noqa: PLC0415

    drift = _drift()
    ref, cur = make_data(n, m, d)
    mon = DriftMonitor(ref, tests=MONITOR_TESTS, n_clusters=8, seed=0)
    params = {"n": n, "m": m, "columns": d, "dtype": "float64", "tests": ",".join(MONITOR_TESTS), "n_clusters": 8,
              "correction": "fdr", "data": "N(0,1) columns; a quarter shifted by 0.05, an eighth scaled by 1.02",
              "seed": 0}

    def per_test():
        return [getattr(drift, t)(ref, cur) for t in MONITOR_TESTS]

    contenders = [
        Contender("curata", lambda: mon.check(cur), note="DriftMonitor.check, five numeric tests (monitor built outside the timing)"),
        Contender("per-test drift calls", per_test,
                  note="drift.ks, cramervonmises, mannwhitneyu, wasserstein, energy one after the other (each sorts both samples): what check did before"),
        Contender("curata.drift.column_tests alone", lambda: drift.column_tests(ref, cur, MONITOR_TESTS),
                  note="one sort of both samples per column, without the monitor"),
    ]
    return Case(f"monitor check all tests {label}", "monitor", params, contenders,
                check=lambda: _monitor_all_check(mon, ref, cur), max_repeats=5)


# ------------------------------------------------------------------------------------------ MMD
def _dense_kernel(ref, cur, sigma):
    import torch  # noqa: PLC0415

    z = torch.from_numpy(np.vstack([ref, cur]).astype(np.float64))
    d2 = torch.cdist(z, z).pow_(2)
    return torch.exp_(d2.mul_(-1.0 / (2.0 * sigma * sigma)))


def dense_torch_gemm(ref, cur, sigma, labels):
    """Dense kernel matrix, then the same quadratic forms as curata with one BLAS GEMM (K @ A)."""
    import torch  # noqa: PLC0415

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
    import torch  # noqa: PLC0415

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


def _mmd_name(n: int, m: int, d: int, b: int) -> str:
    return f"mmd {n // 1000}k + {m // 1000}k x {d}, B={b}"


def _mmd_check(contenders: list[Contender]) -> Check:
    try:
        r = contenders[0].fn()
    except Exception as exc:  # noqa: BLE001
        return Check("unchecked", f"curata failed, peers timed alone: {type(exc).__name__}: {exc}")
    ours = np.concatenate([[r.statistic], r.null_statistics])
    problems, compared, worst = [], [], 0.0
    for c in contenders[1:]:
        if c.fn is None:
            continue
        got = np.asarray(c.fn(), dtype=np.float64)
        err = float(np.max(np.abs(got - ours))) if got.shape == ours.shape else float("inf")
        worst = max(worst, err)
        compared.append(c.name)
        if not err <= MMD_ATOL:
            problems.append(f"{c.name} disagrees with curata by {err:.3g}")
    if problems:
        return Check("mismatch", "; ".join(problems))
    if not compared:
        skipped = [c.skip_reason for c in contenders[1:] if c.fn is None]
        if skipped:
            return Check("unchecked", f"dense peers missing: {skipped[0]}")
        return Check("none", "no dense peer at this size (dense memory too large to be practical)")
    return Check("ok", f"statistic and {len(ours) - 1} null statistics equal to {MMD_ATOL:g} "
                 f"(max |diff| {worst:.3g})")


def _mmd_case(n: int, m: int, d: int, b: int, dense: tuple[str, ...], warmup: int | None,
              max_repeats: int | None) -> Case:
    from curata import drift  # noqa: PLC0415

    ref, cur = make_mmd_data(n, m, d)
    big_n = n + m
    params = {"n": n, "m": m, "dim": d, "permutations": b, "dtype": "float32 (dense peers: float64)",
              "kernel": "RBF, median-heuristic bandwidth", "seed": 0,
              "curata_memory_mib": round(big_n * (d + b) * 8 / 2**20),
              "dense_memory_mib": round(2 * big_n * big_n * 8 / 2**20)}
    contenders = [Contender("curata", lambda: drift.mmd(ref, cur, n_permutations=b, seed=0),
                            note="curata.drift.mmd, all labellings in one tiled pass")]
    if dense:
        # Bandwidth and labellings as curata uses them, computed once outside the timing.
        sigma = drift.mmd(ref, cur, n_permutations=b, seed=0).bandwidth
        labels = drift.permutation_labels(n, m, b, 0)
        for kind in dense:
            fn = dense_torch if kind == "index" else dense_torch_gemm

            def make(fn=fn):
                import torch  # noqa: PLC0415, F401

                return lambda: fn(ref, cur, sigma, labels)

            contenders.append(contender(DENSE_NAMES[kind], make,
                                        note=f"float64 torch, dense (N x N) kernel: ~{params['dense_memory_mib']} MiB"))
    return Case(_mmd_name(n, m, d, b), "mmd", params, contenders, check=lambda: _mmd_check(contenders),
                warmup=warmup, max_repeats=max_repeats)


# ------------------------------------------------------------------------------ device path
def _results_check(ours: dict, expect: dict, dist_rtol: float) -> str | None:
    """None when every statistic / p-value of ``ours`` equals ``expect`` (distances to dist_rtol)."""
    for name, e in expect.items():
        o = ours[name]
        stat, p = _values(_host_result(o))
        e_stat, e_p = _values(_host_result(e))
        tol = dist_rtol if name in ("wasserstein", "energy") else 0.0
        diff = max(_max_rel(stat, e_stat), _max_rel(p, e_p))
        if not diff <= tol:
            return f"{name} differs from the host core by {diff:.3g} (relative)"
    return None


def _host_result(r):
    """A result whose arrays may be torch tensors, with numpy arrays instead."""
    from types import SimpleNamespace  # noqa: PLC0415

    def host(v):
        return v.cpu().numpy() if hasattr(v, "cpu") else v

    return SimpleNamespace(statistic=host(r.statistic), pvalue=host(getattr(r, "pvalue", None)))


def torch_column_tests(ref, cur):
    """curata.drift.column_tests computed by the torch device path, whatever the tensors' device."""
    from curata import _core, _drift_device, drift  # noqa: PLC0415

    s = _drift_device.column_summaries(ref, cur, _drift_device.ALL, min_size=2, test="cramervonmises")
    return {
        "ks": drift._ks_result(_core.drift_ks_from_summaries(s, 0, 0), ref),
        "cramervonmises": drift._cvm_result(_core.drift_cvm_from_summaries(s, 0), ref),
        "mannwhitneyu": drift._mwu_result(_core.drift_mwu_from_summaries(s, 0, 0, True), ref),
        "wasserstein": s["wasserstein"],
        "energy": s["energy"],
    }


def _torch_cpu_case() -> Case:
    import torch  # noqa: PLC0415
    from curata import drift  # noqa: PLC0415

    ref, cur = make_data(10_000, 10_000, 64)
    rt, ct = torch.from_numpy(ref), torch.from_numpy(cur)
    params = {"n": 10_000, "m": 10_000, "columns": 64, "dtype": "float64", "tests": list(TESTS)}
    contenders = [
        Contender("curata column_tests", lambda: drift.column_tests(ref, cur), note="C++ core, one sort per column"),
        Contender("torch device path (CPU)", lambda: torch_column_tests(rt, ct),
                  note="curata._drift_device on CPU torch tensors (the GPU code, run on the CPU)"),
    ]

    def check():
        from types import SimpleNamespace  # noqa: PLC0415

        ours = drift.column_tests(ref, cur)
        dev = torch_column_tests(rt, ct)
        dev = {k: (SimpleNamespace(statistic=v) if isinstance(v, np.ndarray) else v) for k, v in dev.items()}
        problem = _results_check(dev, ours, 1e-12)
        return Check("mismatch", problem) if problem else Check("ok", "the torch path equals the core")

    return Case("all tests 10k vs 10k x 64 (torch CPU)", "device", params, contenders, check=check)


def _column_tests_case(n: int, m: int, d: int) -> Case:
    from curata import drift  # noqa: PLC0415

    ref, cur = make_data(n, m, d)
    params = {"n": n, "m": m, "columns": d, "dtype": "float64", "tests": list(TESTS)}
    contenders = [
        Contender("curata column_tests", lambda: drift.column_tests(ref, cur), note="one sort per column"),
        Contender("curata 5 calls", lambda: {t: getattr(drift, t)(ref, cur) for t in TESTS},
                  note="ks, cramervonmises, mannwhitneyu, wasserstein, energy one after the other"),
    ]

    def check():
        problem = _results_check(drift.column_tests(ref, cur), contenders[1].fn(), 0.0)
        return Check("mismatch", problem) if problem else Check("ok", "column_tests equals the five calls exactly")

    return Case(f"all tests {n // 1000}k vs {m // 1000}k x {d} (host)", "device", params, contenders, check=check)


def _cuda_data(n: int, m: int, d: int):
    import torch  # noqa: PLC0415

    g = torch.Generator(device="cuda").manual_seed(0)
    ref = torch.randn((n, d), generator=g, device="cuda", dtype=torch.float32)
    cur = torch.randn((m, d), generator=g, device="cuda", dtype=torch.float32)
    cur[:, ::4] += 0.05
    cur[:, 1::8] *= 1.02
    return ref, cur


def _cuda_columns_case(n: int, m: int, d: int) -> Case:
    from curata import drift  # noqa: PLC0415

    ref, cur = _cuda_data(n, m, d)
    href, hcur = ref.cpu().numpy(), cur.cpu().numpy()
    params = {"n": n, "m": m, "columns": d, "dtype": "float32", "tests": list(TESTS), "data": "torch CUDA tensors"}

    def five():
        return {t: getattr(drift, t)(ref, cur) for t in TESTS}

    contenders = [
        Contender("curata column_tests (cuda)", lambda: drift.column_tests(ref, cur), note="one sort per column"),
        Contender("curata 5 calls (cuda)", five, note="drift.ks, cramervonmises, mannwhitneyu, wasserstein, energy"),
        Contender("curata host (C++ core)", lambda: drift.column_tests(href, hcur), note="column_tests on host copies"),
    ]

    def check():
        expect = drift.column_tests(href, hcur)
        for got in (drift.column_tests(ref, cur), five()):
            problem = _results_check(got, expect, 1e-12)
            if problem:
                return Check("mismatch", problem)
        return Check("ok", f"device results equal the host core's on {d} columns")

    return Case(f"all tests {n // 1000}k vs {m // 1000}k x {d} (cuda)".replace("1000k", "1M"), "device", params,
                contenders, check=check, warmup=1, max_repeats=5)


def _cuda_mmd_case(n: int, m: int, d: int, b: int, with_host: bool) -> Case:
    from curata import drift  # noqa: PLC0415

    ref, cur = _cuda_data(n, m, d)
    params = {"n": n, "m": m, "dim": d, "permutations": b, "dtype": "float32", "data": "torch CUDA tensors"}
    contenders = [Contender("curata float32 (cuda)",
                            lambda: drift.mmd(ref, cur, n_permutations=b, seed=0, precision="float32"))]
    if with_host:
        href, hcur = ref.cpu().numpy(), cur.cpu().numpy()
        contenders.append(Contender("curata float64 (cuda)",
                                    lambda: drift.mmd(ref, cur, n_permutations=b, seed=0, precision="float64")))
        contenders.append(Contender("curata host (C++ core)", lambda: drift.mmd(href, hcur, n_permutations=b, seed=0)))

        def check():
            host = contenders[2].fn()
            h = np.concatenate([[host.statistic], host.null_statistics])
            for c, tol in ((contenders[1], 1e-12), (contenders[0], 1e-6)):
                r = c.fn()
                err = float(np.max(np.abs(np.concatenate([[r.statistic], r.null_statistics]) - h)))
                if not err <= tol:
                    return Check("mismatch", f"{c.name} differs from the host core by {err:.3g}")
            return Check("ok", "float64 within 1e-12 and float32 within 1e-6 of the host core")
    else:
        check = None
    name = f"mmd {n // 1000}k + {m // 1000}k x {d}, B={b} (cuda)"
    return Case(name, "mmd-cuda", params, contenders, check=check, warmup=0 if not with_host else 1,
                max_repeats=1 if not with_host else 3)


def _cuda_cases(quick: bool) -> list[tuple[str, Callable[[], Case]]]:
    if quick:
        return [
            ("all tests 100k vs 100k x 64 (cuda)", lambda: _cuda_columns_case(100_000, 100_000, 64)),
            ("mmd 20k + 20k x 512, B=100 (cuda)", lambda: _cuda_mmd_case(20_000, 20_000, 512, 100, True)),
        ]
    return [
        ("all tests 1M vs 1M x 512 (cuda)", lambda: _cuda_columns_case(1_000_000, 1_000_000, 512)),
        ("mmd 20k + 20k x 512, B=100 (cuda)", lambda: _cuda_mmd_case(20_000, 20_000, 512, 100, True)),
        ("mmd 1000k + 1000k x 512, B=100 (cuda)", lambda: _cuda_mmd_case(1_000_000, 1_000_000, 512, 100, False)),
    ]


# ---------------------------------------------------------------------------------------- cases
def cases(device: str = "cpu", quick: bool = False) -> list[tuple[str, Callable[[], Case]]]:
    """The suite's plan: (case name, builder) pairs; per-column cases first, then MMD."""
    if device == "cuda":
        return _cuda_cases(quick)
    plan: list[tuple[str, Callable[[], Case]]] = [("all tests 10k vs 10k x 64 (torch CPU)", _torch_cpu_case)]
    if not quick:
        plan.append(("all tests 100k vs 100k x 64 (host)", lambda: _column_tests_case(100_000, 100_000, 64)))
    for label, (n, m, d, tests) in COLUMN_CASES.items():
        if quick and label not in COLUMN_QUICK:
            continue
        for test in tests:
            plan.append((f"{test} {label}", lambda a=(label, test, n, m, d): _column_case(*a)))
    for label, (n, m, d) in MONITOR_CASES.items():
        if quick and label not in MONITOR_QUICK:
            continue
        plan.append((f"monitor check {label}", lambda a=(label, n, m, d): _monitor_case(*a)))
    for label, (n, m, d) in MONITOR_ALL_CASES.items():
        if quick and label not in MONITOR_QUICK:
            continue
        plan.append((f"monitor check all tests {label}", lambda a=(label, n, m, d): _monitor_all_case(*a)))
    for spec in MMD_QUICK if quick else MMD_CASES:
        plan.append((_mmd_name(*spec[:4]), lambda s=spec: _mmd_case(*s)))
    return plan


# ------------------------------------------------------------------------- 1M vs 1M x 512 (big)
# Not in the timed plan above (4 GB of input and minutes per run): ``python -m benchmarks.drift big``.
BIG_N, BIG_M, BIG_D = 1_000_000, 1_000_000, 512
BIG_SCIPY_COLUMNS = 4
BIG_GOAL_S = 60.0


def make_big_data(n=BIG_N, m=BIG_M, d=BIG_D, seed=0):
    """float32 (n, d) and (m, d) generated in float32 (no float64 temporary): 4 GB at full size.
    Same shifts as make_data: a quarter of the columns +0.05, an eighth scaled by 1.02."""
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((n, d), dtype=np.float32)
    cur = rng.standard_normal((m, d), dtype=np.float32)
    for lo in range(0, m, 65_536):  # in row chunks: a strided column update touches every page anyway
        blk = cur[lo : lo + 65_536]
        blk[:, ::4] += np.float32(0.05)
        blk[:, 1::8] *= np.float32(1.02)
    return ref, cur


def _cpu_seconds() -> float:
    import resource  # noqa: PLC0415

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_big(n=BIG_N, m=BIG_M, d=BIG_D, scipy_columns=BIG_SCIPY_COLUMNS, tests=TESTS, seed=0) -> dict:
    """Every per-column test once on (n, d) vs (m, d) float32, timed (wall and process CPU time),
    plus the scipy loop on ``scipy_columns`` columns, extrapolated to d; curata's first columns are
    checked against scipy's to COLUMN_RTOL (cramervonmises: to CVM_SCIPY_RTOL, and its statistic
    against the exact value) before anything is reported."""
    import time  # noqa: PLC0415

    import curata  # noqa: PLC0415
    from curata import drift  # noqa: PLC0415

    from ._harness import ForeignLoad  # noqa: PLC0415

    t0 = time.perf_counter()
    ref, cur = make_big_data(n, m, d, seed)
    gen_s = time.perf_counter() - t0
    rows = []
    for test in tests:
        fn = getattr(drift, test)
        load = ForeignLoad()
        w0, c0 = time.perf_counter(), _cpu_seconds()
        res = fn(ref, cur)
        wall, cpu = time.perf_counter() - w0, _cpu_seconds() - c0
        other = load.cores()
        ours = _values(res)
        # float64 copies, as curata computes float32 in float64 (scipy on float32 input keeps
        # float32 ranks/sums in places and differs at 1e-5); the copy is outside the timing.
        peer = _scipy(test, ref[:, :scipy_columns].astype(np.float64), cur[:, :scipy_columns].astype(np.float64))
        w1, c1 = time.perf_counter(), _cpu_seconds()
        theirs = _values(peer())
        scipy_s, scipy_cpu = time.perf_counter() - w1, _cpu_seconds() - c1
        head = (ours[0][:scipy_columns], ours[1][:scipy_columns])
        if test == "cramervonmises":
            diff = _cvm_scipy_diff(head, theirs, n, m)
            ok = diff <= CVM_SCIPY_RTOL and _cvm_not_exact(ours[0], ref, cur, scipy_columns) is None
        else:
            diff = max(_max_rel(head[0], theirs[0]), _max_rel(head[1], theirs[1]))
            ok = diff <= COLUMN_RTOL
        rows.append({
            "test": test, "curata_wall_s": wall, "curata_cpu_s": cpu, "other_processes_cores": other,
            "scipy_columns": scipy_columns, "scipy_wall_s": scipy_s, "scipy_cpu_s": scipy_cpu,
            "scipy_extrapolated_s": scipy_s * d / scipy_columns,
            "scipy_extrapolated_cpu_s": scipy_cpu * d / scipy_columns,
            "max_rel_diff_vs_scipy": diff, "check": "ok" if ok else "mismatch",
        })
        print(f"  {test}: curata {wall:.2f} s wall ({cpu:.2f} s CPU, other processes {other or 0:.2f} cores), "
              f"scipy {scipy_columns} columns {scipy_s:.2f} s ({scipy_cpu:.2f} s CPU) -> {scipy_s * d / scipy_columns:.0f} s for {d}; "
              f"max rel diff {diff:.2g}", flush=True)
        del res
    # All the tests in one call: one gather, sort and walk per column (drift.column_tests).
    load = ForeignLoad()
    w0, c0 = time.perf_counter(), _cpu_seconds()
    together = drift.column_tests(ref, cur, tests)
    one_wall, one_cpu = time.perf_counter() - w0, _cpu_seconds() - c0
    one_other = load.cores()
    same = all(np.array_equal(_values(together[t])[k][:scipy_columns],
                              _values(getattr(drift, t)(ref[:, :scipy_columns], cur[:, :scipy_columns]))[k], equal_nan=True)
               for t in tests for k in (0, 1))
    print(f"  column_tests (all {len(tests)} in one call): {one_wall:.2f} s wall ({one_cpu:.2f} s CPU, other processes "
          f"{one_other or 0:.2f} cores); first {scipy_columns} columns equal to the single calls: {same}", flush=True)
    del together
    total_wall = sum(r["curata_wall_s"] for r in rows)
    total_cpu = sum(r["curata_cpu_s"] for r in rows)
    return {
        "n": n, "m": m, "columns": d, "dtype": "float32", "seed": seed, "tests": list(tests),
        "threads": curata.get_num_threads(), "generate_s": gen_s, "rows": rows,
        "total_curata_wall_s": total_wall, "total_curata_cpu_s": total_cpu,
        "total_scipy_extrapolated_s": sum(r["scipy_extrapolated_s"] for r in rows),
        "total_scipy_extrapolated_cpu_s": sum(r["scipy_extrapolated_cpu_s"] for r in rows),
        "column_tests": {"wall_s": one_wall, "cpu_s": one_cpu, "other_processes_cores": one_other,
                         "equal_to_single_calls_on_checked_columns": bool(same)},
        "goal_s": BIG_GOAL_S,
    }


def _main_big(argv=None) -> int:
    import argparse  # noqa: PLC0415
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from . import _harness as h  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m benchmarks.drift big",
                                description="every per-column test on 1M vs 1M x 512 float32, against the 60 s goal")
    p.add_argument("--rows", type=int, default=BIG_N, help="rows per sample (default 1,000,000)")
    p.add_argument("--columns", type=int, default=BIG_D)
    p.add_argument("--scipy-columns", type=int, default=BIG_SCIPY_COLUMNS)
    p.add_argument("--tests", default=",".join(TESTS))
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    facts = h.machine_facts("cpu", PEER_DISTRIBUTIONS)
    machine = h.machine_tag(facts, "cpu")
    print(f"drift big on {machine}: {h.machine_line(facts)}", file=sys.stderr)
    created = h.now_utc()
    out = run_big(args.rows, args.rows, args.columns, args.scipy_columns, tuple(args.tests.split(",")))
    facts["loadavg_end"] = h.loadavg()
    out.update({"created": created, "machine": machine, "facts": facts, "git": facts.get("git")})
    status = "met" if out["total_curata_wall_s"] <= BIG_GOAL_S else "not met"
    one = out["column_tests"]
    print(f"total curata {out['total_curata_wall_s']:.1f} s wall, {out['total_curata_cpu_s']:.1f} s CPU "
          f"({out['threads']} threads; goal {BIG_GOAL_S:.0f} s: {status}); column_tests {one['wall_s']:.1f} s wall, "
          f"{one['cpu_s']:.1f} s CPU (goal: {'met' if one['wall_s'] <= BIG_GOAL_S else 'not met'}); scipy loop "
          f"extrapolated {out['total_scipy_extrapolated_s']:.0f} s")
    full = (args.rows, args.columns, args.tests) == (BIG_N, BIG_D, ",".join(TESTS))
    if not args.no_write:
        h.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = h.RESULTS_DIR / f"drift_big-{machine}{'' if full else '-partial'}.json"
        path.write_text(json.dumps(out, indent=1, default=str) + "\n", encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    bad = [r["test"] for r in out["rows"] if r["check"] != "ok"]
    return 1 if bad else 0


if __name__ == "__main__":
    import sys as _sys

    if len(_sys.argv) > 1 and _sys.argv[1] == "big":
        _sys.exit(_main_big(_sys.argv[2:]))
    _sys.exit("usage: python -m benchmarks.drift big [--rows N] [--columns D] ... "
              "(the timed suite runs with: python -m benchmarks.run drift)")
