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

The real peers (``... (real peers)`` cases; the libraries themselves, called as their users call
them, in this process on the same data). Optional: a peer that cannot be imported is a clean skip
whose reason says why. Only NannyML is in the bench venv (Makefile ``BENCH_DEPS``:
``nannyml==0.13.1``); the other two cannot live next to the shared stack (numpy 2.4.6, pandas
3.1.1), which is not downgraded for them: alibi-detect 0.13.0, the newest, declares
``numpy<2.0.0``, ``pandas<3.0.0``, ``Pillow<11.0.0`` and ``numba<0.60`` (numba 0.59 itself needs
numpy < 1.27); Evidently 0.7.23 declares ``pandas>=1.3.5`` but ``import evidently`` fails on pandas
3 (``ImportError: cannot import name 'infer_dtype_from_object' from 'pandas.core.dtypes.common'``).
They run in a venv with numpy 1.26.4 and pandas 2.3.3 (docs/benchmarks.md, "Drift: the real peers").

* ``ks N vs M x 64 (real peers)`` (100k and 10k; ``--quick``: 10k), the per-column data above:
  ``curata.drift.ks``; ``scipy loop``; ``alibi-detect KSDrift`` (built on the reference outside
  the timing; timed: ``predict(cur, drift_type="feature")``: always-asymptotic KS per feature,
  float32 distances and p-values); ``Evidently DataDriftPreset(ks)`` (timed: the DataFrames, two
  ``Dataset.from_pandas``, ``Report([DataDriftPreset(method="ks")]).run`` and the p-values from
  ``snapshot.dict()``: its drift score for KS is scipy's ``ks_2samp`` p-value); NannyML's
  ``UnivariateDriftCalculator(continuous_methods=["kolmogorov_smirnov"], chunk_number=1)``, timed
  as DataFrames + ``fit(ref)`` + ``calculate(cur)`` + ``to_df()`` and, fitted outside the timing,
  ``calculate`` alone (no p-values; from 10,000 reference rows on, the statistic comes from 10,000
  equal-width bins). Checked: scipy and Evidently equal to 1e-12 relative; alibi-detect within
  float32 rounding (2^-23 relative, 1.2e-38 absolute) of curata's statistic and of curata's
  ``method="asymp"`` p-values (at 10k curata's default is the exact p-value, as scipy's: a "note");
  NannyML's statistic between curata's minus the largest share of either sample in one of its bins
  and curata's (:func:`nannyml_ks_gap`; a "note": approximate, no p-value). With Evidently present,
  no warm-up or calibration and 3 (100k) / 5 (10k) rounds of one call (its report takes ~15-30 s
  per call at 100k).
* ``mmd N + M x 512, B=100 (real peers)`` (the MMD data above; 2k and 10k per side; ``--quick``: 1k),
  one timed round after the check: ``curata.drift.mmd``; ``alibi-detect MMDDrift (torch CPU)``
  (``backend="pytorch"``, ``device="cpu"``, curata's median-heuristic bandwidth as ``sigma``, 100
  permutations; detector construction, which computes the reference kernel block, and
  ``predict`` both timed; 2k + 2k only: it gathers the dense (N x N) float32 kernel once per
  permutation, ~100 s per call at 5k + 5k here); Evidently's embeddings drift with its MMD method,
  default settings (no p-value; its own bandwidth: median distance between 1000-row samples of
  each side), as the method object alone on two DataFrames (``MMDDriftMethod()(cur, ref)``) and,
  at 10k only, as the ``Report([EmbeddingsDrift("emb", MMDDriftMethod())])`` a user runs, which
  also fits a t-SNE of 2 x 2500 rows for its plot (~1 min whatever the size). Checked: alibi-detect's
  MMD^2 within 1e-5 of curata's at the same bandwidth; Evidently's MMD^2 within 1e-5 of curata's
  computed at Evidently's bandwidth (:func:`evidently_bandwidth`), the report's equal to the
  method's (``MMD_FLOAT32_ATOL``: both sum float32 kernels in float32); permutation p-values are
  reported, not compared (alibi-detect's are unseeded and lack the +1). A "note".

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
import importlib
import warnings
from typing import Callable

import numpy as np

from ._harness import Case, Check, Contender, contender

PEER_DISTRIBUTIONS = ("scipy", "alibi-detect", "evidently", "nannyml", "pandas")
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


# ------------------------------------------------------------------------------ the real peers
# alibi-detect, Evidently and NannyML run as their users run them, in this process, on the data of
# the cases above. They are optional: a peer that cannot be imported is a clean skip, and the skip
# says why it is not in the bench venv (Makefile BENCH_DEPS). Facts read from each peer's metadata
# and code (2026-11-23).
PEER_WHY_MISSING = {
    "alibi_detect": "alibi-detect 0.13.0 (newest) requires numpy<2, pandas<3, Pillow<11, numba<0.60; "
                    "not in BENCH_DEPS (here: numpy {numpy}, pandas {pandas})",
    "evidently": "evidently 0.7.23 imports pandas.core.dtypes.common.infer_dtype_from_object, removed in "
                 "pandas 3; not in BENCH_DEPS (here: pandas {pandas})",
    "nannyml": "nannyml==0.13.1 is in BENCH_DEPS: run make bench-venv",
}
# KS per column: 100k vs 100k x 64 (Evidently's report takes ~30 s per call there: one check call
# plus REAL_KS_ROUNDS timed rounds, no warm-up) and 10k vs 10k x 64.
REAL_KS_CASES = {"100k vs 100k x 64": (100_000, 100_000, 64, 3), "10k vs 10k x 64": (10_000, 10_000, 64, 5)}
REAL_KS_QUICK = ("10k vs 10k x 64",)
# MMD (n, m, D, B, with alibi-detect, with Evidently's report), one timed round each. alibi-detect
# gathers the dense (n + m)^2 kernel once per permutation: ~100 s per call at 5k + 5k on 2 busy
# cores (~4x that at 10k + 10k), so it runs at 2k + 2k only. Evidently's report spends ~1 min on a
# t-SNE of 2 x 2500 rows for its plot whatever the size: 10k + 10k only.
REAL_MMD_CASES = [(2_000, 2_000, 512, 100, True, False), (10_000, 10_000, 512, 100, False, True)]
REAL_MMD_QUICK = [(1_000, 1_000, 512, 100, True, False)]
ALIBI_MMD_TOO_SLOW = ("not run at this size: alibi-detect gathers the dense (n + m)^2 kernel once per permutation "
                      "(~100 s per call at 5k + 5k on 2 cores, ~4x at 10k + 10k); timed at 2k + 2k")
EVIDENTLY_REPORT_SKIPPED = ("not run at this size: the report's t-SNE plot (~1 min, any size above 2500 rows per "
                            "side) dominates; timed at 10k + 10k")
# alibi-detect stores KS p-values (and distances) in float32: compared with curata's float64 values
# to float32 rounding, relative 2^-23 (one float32 ulp, twice the rounding error), absolute
# float32's smallest normal (below it float32 has fewer significant bits).
FLOAT32_RTOL = 2.0**-23
FLOAT32_ATOL = float(np.finfo(np.float32).tiny)
# NannyML's KS ("kolmogorov_smirnov", calculation_method "auto"): scipy's exact-or-asymptotic
# statistic when the reference has fewer than 10,000 rows, else the largest gap between the two
# cumulative shares at the edges of 10,000 equal-width bins over [min(ref), max(ref)].
NANNYML_EXACT_BELOW = 10_000
NANNYML_BINS = 10_000
# MMD^2 from alibi-detect (float32 kernel, torch float32 sums) and Evidently (scikit-learn's float32
# RBF kernel matrix summed by numpy in float32) against curata's float64 value at the same
# bandwidth. The statistic is ~1.3e-4 here, a difference of three block means of ~0.37 each, and
# float32 sums of 10^8 kernel values lose ~1e-6 of that: measured at 10k + 10k, Evidently is 1.1e-6
# below curata (the same float32 kernel summed in float64 agrees with curata to 2e-11); alibi-detect
# 6e-9 at 2k + 2k, 1.2e-7 at 5k + 5k. A wrong bandwidth or a biased (diagonal-included) estimate
# moves it by ~1e-4 or more.
MMD_FLOAT32_ATOL = 1e-5


def _peer(module: str):
    """Import a drift peer (or one of its modules); any failure to import is an ImportError saying
    why the peer is missing, so :func:`benchmarks._harness.contender` turns it into a clean skip."""
    if module.split(".")[0] == "nannyml":
        import os  # noqa: PLC0415

        os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # no usage telemetry from a benchmark
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - a peer broken by the installed stack is a missing peer
        from ._harness import _dist_version  # noqa: PLC0415

        why = PEER_WHY_MISSING[module.split(".")[0]].format(numpy=_dist_version("numpy"), pandas=_dist_version("pandas"))
        raise ImportError(f"{why} [{type(exc).__name__}: {exc}]") from exc


def _frames(ref, cur, prefix="x"):
    import pandas as pd  # noqa: PLC0415

    cols = [f"{prefix}{j}" for j in range(ref.shape[1])]
    return pd.DataFrame(ref, columns=cols), pd.DataFrame(cur, columns=cols), cols


def alibi_ks(ref, cur):
    """alibi-detect ``KSDrift``: the detector is built on ``ref`` outside the timing (what a
    monitoring job keeps); the callable predicts on ``cur`` and returns (distances, p-values),
    float32 per feature."""
    cd = _peer("alibi_detect.cd")
    detector = cd.KSDrift(ref, p_val=0.05)

    def run():
        out = detector.predict(cur, drift_type="feature", return_p_val=True, return_distance=True)["data"]
        return np.asarray(out["distance"]), np.asarray(out["p_val"])

    return run


def evidently_ks(ref, cur):
    """Evidently's data drift preset with the KS test forced for every column: DataFrames from the
    arrays, two ``Dataset.from_pandas``, ``Report([DataDriftPreset(method="ks")]).run`` and the
    p-values read from ``snapshot.dict()``, all in the callable (what a user runs per check)."""
    ev = _peer("evidently")
    presets = _peer("evidently.presets")

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rdf, cdf, cols = _frames(ref, cur)
            definition = ev.DataDefinition(numerical_columns=cols)
            snapshot = ev.Report([presets.DataDriftPreset(method="ks")]).run(
                ev.Dataset.from_pandas(cdf, data_definition=definition),
                ev.Dataset.from_pandas(rdf, data_definition=definition))
            values = {m["config"]["column"]: m["value"] for m in snapshot.dict()["metrics"]
                      if m["config"]["type"].endswith(":ValueDrift")}
        return np.array([values[c] for c in cols], dtype=np.float64)

    return run


def nannyml_ks(ref, cur, fitted: bool = False):
    """NannyML's ``UnivariateDriftCalculator`` with ``continuous_methods=["kolmogorov_smirnov"]``
    and one chunk (``chunk_number=1``: the whole current sample, like the other contenders).
    ``fitted=False``: DataFrames, ``fit(reference)`` and ``calculate(current)`` in the callable;
    ``fitted=True``: fitted outside the timing, the callable runs ``calculate`` only. Returns the
    statistic per column (NannyML gives no p-value)."""
    nml = _peer("nannyml")
    nml.disable_usage_logging()
    rdf, cdf, cols = _frames(ref, cur)

    def fit(reference):
        calc = nml.UnivariateDriftCalculator(column_names=cols, continuous_methods=["kolmogorov_smirnov"],
                                             chunk_number=1)
        return calc.fit(reference)

    def statistics(calc, current):
        table = calc.calculate(current).filter(period="analysis").to_df()
        return np.array([table[(c, "kolmogorov_smirnov", "value")].iloc[0] for c in cols], dtype=np.float64)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = fit(rdf) if fitted else None

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "number of chunks is too low" (one chunk on purpose)
            if fitted:
                return statistics(done, cdf)
            r, c, _ = _frames(ref, cur)
            return statistics(fit(r), c)

    return run


def nannyml_ks_gap(ref, cur) -> np.ndarray:
    """Per column, how far below the exact KS statistic NannyML's binned one may lie: the largest
    share of either sample in one of its bins (between two bin edges both empirical CDFs rise by at
    most their share of that bin, so the gap |F_ref - F_cur| moves by at most that much; at and
    beyond the edges NannyML evaluates it exactly). 0 where NannyML computes the exact statistic."""
    n, d = ref.shape
    if n < NANNYML_EXACT_BELOW:
        return np.zeros(d)
    out = np.empty(d)
    for j in range(d):
        edges = np.linspace(ref[:, j].min(), ref[:, j].max(), NANNYML_BINS + 1)
        share_ref = np.histogram(ref[:, j], edges)[0].max() / n
        share_cur = np.histogram(cur[:, j], edges)[0].max() / cur.shape[0]
        out[j] = max(share_ref, share_cur)
    return out


def _ks_peers_check(contenders: list[Contender], ref, cur) -> Check:
    from curata import drift  # noqa: PLC0415

    try:
        ours = drift.ks(ref, cur)
    except Exception as exc:  # noqa: BLE001
        return Check("unchecked", f"curata failed, peers timed alone: {type(exc).__name__}: {exc}")
    stat, p = np.asarray(ours.statistic, dtype=np.float64), np.asarray(ours.pvalue, dtype=np.float64)
    asymp = None
    problems, said, note = [], [], False
    for c in contenders[1:]:
        if c.fn is None or c.name.startswith("curata"):
            continue
        got = c.fn()
        if c.name == "scipy loop":
            s, q = _values(got)
            diff = max(_max_rel(s, stat), _max_rel(q, p))
            if not diff <= COLUMN_RTOL:
                problems.append(f"scipy loop differs by {diff:.3g} (relative)")
            said.append(f"scipy loop: statistic and p-value equal to {COLUMN_RTOL:g} (max {diff:.2g})")
        elif c.name.startswith("alibi-detect"):
            dist, q = (np.asarray(x, dtype=np.float64) for x in got)
            if asymp is None:
                asymp = np.asarray(drift.ks(ref, cur, method="asymp").pvalue, dtype=np.float64)
            if dist.shape != stat.shape or q.shape != p.shape:
                problems.append(f"{c.name}: shapes {dist.shape}, {q.shape}, expected {stat.shape}")
                continue
            bad_s = np.abs(dist - stat) > FLOAT32_RTOL * np.abs(stat) + FLOAT32_ATOL
            bad_p = np.abs(q - asymp) > FLOAT32_RTOL * np.abs(asymp) + FLOAT32_ATOL
            rel = max(_max_rel(dist, stat), _max_rel(q, asymp))
            if bad_s.any() or bad_p.any():
                problems.append(f"{c.name}: {int(bad_s.sum())} statistics / {int(bad_p.sum())} p-values outside "
                                f"float32 rounding of curata's (max relative difference {rel:.3g})")
            same_method = np.array_equal(asymp, p)
            note |= not same_method
            which = "" if same_method else "method='asymp' "
            said.append(f"{c.name}: float32 statistic and p-value within float32 rounding (relative 2^-23, "
                        f"absolute {FLOAT32_ATOL:.3g}) of curata's {which}values (max relative {rel:.2g})"
                        + ("" if same_method else "; alibi-detect's KS is always asymptotic, curata's and "
                           f"scipy's default is exact at this size (max |p_exact - p_asymp| "
                           f"{float(np.max(np.abs(p - asymp))):.2g})"))
        elif c.name.startswith("Evidently"):
            q = np.asarray(got, dtype=np.float64)
            diff = _max_rel(q, p)
            if not diff <= COLUMN_RTOL:
                problems.append(f"{c.name} p-values differ by {diff:.3g} (relative)")
            said.append(f"{c.name}: p-values (its drift score) equal to {COLUMN_RTOL:g} (max {diff:.2g})")
        elif c.name.startswith("NannyML"):
            s = np.asarray(got, dtype=np.float64)
            if s.shape != stat.shape:
                problems.append(f"{c.name}: shape {s.shape}, expected {stat.shape}")
                continue
            gap = nannyml_ks_gap(ref, cur)
            below = stat - s
            if np.any(below < -1e-12) or np.any(below > gap + 1e-12):
                problems.append(f"{c.name}: statistic outside [curata - bin bound, curata] (differences "
                                f"{float(below.min()):.3g} .. {float(below.max()):.3g}, bound {float(gap.max()):.3g})")
            note = True
            said.append(f"{c.name}: no p-value; statistic from {NANNYML_BINS} bins, below curata's by at most the "
                        f"largest bin share ({float(below.max()):.2g} <= bound {float(gap.max()):.2g})"
                        if gap.max() > 0 else f"{c.name}: no p-value; statistic equal to 1e-12")
    if problems:
        return Check("mismatch", "; ".join(problems))
    if not said:
        return Check("unchecked", "no peer importable")
    return Check("note" if note else "ok", "; ".join(said))


def _ks_peers_case(label: str, n: int, m: int, d: int, rounds: int) -> Case:
    from curata import drift  # noqa: PLC0415

    ref, cur = make_data(n, m, d)
    params = {"test": "ks", "n": n, "m": m, "columns": d, "dtype": "float64",
              "data": "N(0,1) columns; a quarter shifted by 0.05, an eighth scaled by 1.02", "seed": 0,
              "peers": "alibi-detect KSDrift, Evidently DataDriftPreset(method='ks'), NannyML UnivariateDriftCalculator"}
    contenders = [
        Contender("curata", lambda: drift.ks(ref, cur), note="curata.drift.ks(ref, cur): statistics and p-values"),
        contender("scipy loop", lambda: _scipy("ks", ref, cur), note="[scipy.stats.ks_2samp(ref[:, j], cur[:, j]) for j]"),
        contender("alibi-detect KSDrift", lambda: alibi_ks(ref, cur),
                  note="KSDrift(ref) built outside the timing; timed: predict(cur, drift_type='feature') "
                       "(asymptotic KS per feature, float32 p-values)"),
        contender("Evidently DataDriftPreset(ks)", lambda: evidently_ks(ref, cur),
                  note="timed: DataFrames, Dataset.from_pandas x2, Report([DataDriftPreset(method='ks')]).run, "
                       "p-values from snapshot.dict()"),
        contender("NannyML KS (fit + calculate)", lambda: nannyml_ks(ref, cur),
                  note="timed: DataFrames, UnivariateDriftCalculator(continuous_methods=['kolmogorov_smirnov'], "
                       "chunk_number=1).fit(ref).calculate(cur), statistics from to_df(); no p-values"),
        contender("NannyML KS (calculate)", lambda: nannyml_ks(ref, cur, fitted=True),
                  note="fitted on the reference outside the timing; timed: calculate(cur) and to_df()"),
    ]
    # Evidently's report costs seconds (10k) to ~30 s (100k) per call: when it runs, no warm-up or
    # calibration (the check has run every contender once), one call per sample, `rounds` rounds;
    # without it, the harness's usual warm-up, calibration and rounds.
    slow = any(c.fn is not None for c in contenders if c.name.startswith("Evidently"))
    return Case(f"ks {label} (real peers)", "ks-peers", params, contenders,
                check=lambda: _ks_peers_check(contenders, ref, cur), calibrate=not slow,
                max_repeats=rounds if slow else None)


def alibi_mmd(ref, cur, sigma: float, n_permutations: int):
    """alibi-detect ``MMDDrift`` with the PyTorch backend on the CPU, curata's bandwidth and
    ``n_permutations``: detector built (its reference kernel block included) and ``predict`` in the
    callable, as one test costs. Returns (MMD^2, p-value)."""
    cd = _peer("alibi_detect.cd")
    _peer("torch")

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            detector = cd.MMDDrift(ref, backend="pytorch", sigma=np.array([sigma], dtype=np.float32),
                                   n_permutations=n_permutations, device="cpu")
            out = detector.predict(cur, return_p_val=True, return_distance=True)["data"]
        return float(out["distance"]), float(out["p_val"])

    return run


def evidently_mmd(ref, cur, report: bool):
    """Evidently's embeddings drift with its MMD method (default settings: no bootstrap, hence no
    p-value; bandwidth = median Euclidean distance between 1000-row samples of each side, kernel
    exp(-d^2 / bandwidth^2)). ``report=True``: DataFrames, two ``Dataset.from_pandas`` with the
    embedding columns declared, ``Report([EmbeddingsDrift("emb", MMDDriftMethod())]).run`` (which
    also fits a t-SNE of 2 x 2500 rows for its plot) and the value from ``snapshot.dict()``;
    ``report=False``: the method object alone on the two DataFrames (``MMDDriftMethod()(cur, ref)``,
    what the report calls). Returns MMD^2 (clipped at 0 by Evidently)."""
    ev = _peer("evidently")
    metrics = _peer("evidently.metrics")
    method = _peer("evidently.metrics.embeddings").MMDDriftMethod

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rdf, cdf, cols = _frames(ref, cur, prefix="e")
            if not report:
                return float(method()(cdf, rdf)[0])
            definition = ev.DataDefinition(embeddings={"emb": cols})
            snapshot = ev.Report([metrics.EmbeddingsDrift(embeddings_name="emb", drift_method=method())]).run(
                ev.Dataset.from_pandas(cdf, data_definition=definition),
                ev.Dataset.from_pandas(rdf, data_definition=definition))
            return float(snapshot.dict()["metrics"][0]["value"])

    return run


def evidently_bandwidth(ref, cur) -> float:
    """The sigma of curata's kernel exp(-d^2 / (2 sigma^2)) equal to Evidently's MMD kernel
    exp(-d^2 / s^2), s = median Euclidean distance between ``sample(1000, random_state=0)`` of the
    reference and of the current DataFrame (pandas' seeded sampling; the sampling rule is Evidently's)."""
    import pandas as pd  # noqa: PLC0415

    x = pd.DataFrame(ref).sample(min(len(ref), 1000), random_state=0).to_numpy(np.float64)
    y = pd.DataFrame(cur).sample(min(len(cur), 1000), random_state=0).to_numpy(np.float64)
    d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return float(np.median(np.sqrt(np.maximum(d2, 0.0)))) / np.sqrt(2.0)


def _mmd_peers_check(contenders: list[Contender], ref, cur, sigma: float) -> Check:
    from curata import drift  # noqa: PLC0415

    try:
        ours = contenders[0].fn()
    except Exception as exc:  # noqa: BLE001
        return Check("unchecked", f"curata failed, peers timed alone: {type(exc).__name__}: {exc}")
    problems, said, metrics = [], [], {"curata_statistic": ours.statistic, "curata_pvalue": ours.pvalue}
    ev_values, ev_stat = {}, None
    for c in contenders[1:]:
        if c.fn is None:
            continue
        got = c.fn()
        if c.name.startswith("alibi-detect"):
            stat, pval = got
            err = abs(stat - ours.statistic)
            metrics.update(alibi_statistic=stat, alibi_pvalue=pval)
            if not err <= MMD_FLOAT32_ATOL:
                problems.append(f"{c.name}: MMD^2 {stat:.6g} vs curata's {ours.statistic:.6g} (|diff| {err:.3g})")
            said.append(f"{c.name}: MMD^2 at curata's bandwidth within {MMD_FLOAT32_ATOL:g} of curata's "
                        f"(|diff| {err:.2g}, float32); permutation p-values {pval:.3g} (no +1, unseeded "
                        f"randperm) vs curata's {ours.pvalue:.3g}")
        elif c.name.startswith("Evidently"):
            if ev_stat is None:
                s_ev = evidently_bandwidth(ref, cur)
                ev_stat = max(drift.mmd(ref, cur, bandwidth=s_ev, n_permutations=1, seed=0).statistic, 0.0)
                metrics.update(evidently_bandwidth_sigma=s_ev, curata_statistic_at_evidently_bandwidth=ev_stat)
            ev_values[c.name] = got
            err = abs(got - ev_stat)
            metrics[f"{c.name} statistic"] = got
            if not err <= MMD_FLOAT32_ATOL:
                problems.append(f"{c.name}: MMD^2 {got:.6g} vs curata's {ev_stat:.6g} at Evidently's bandwidth")
    if ev_values:
        first = next(iter(ev_values.values()))
        if len(set(ev_values.values())) > 1:
            problems.append(f"Evidently's report and its MMD method disagree: {ev_values}")
        said.append(f"Evidently: no p-value; MMD^2 {first:.6g} at its own bandwidth (median distance between "
                    f"1000-row samples; sigma {metrics['evidently_bandwidth_sigma']:.4g} vs curata's {sigma:.4g}) within "
                    f"{MMD_FLOAT32_ATOL:g} of curata's MMD^2 at that bandwidth ({ev_stat:.6g}; |diff| "
                    f"{abs(first - ev_stat):.2g}: Evidently sums its float32 kernel in float32)")
    if problems:
        return Check("mismatch", "; ".join(problems), metrics)
    if not said:
        return Check("unchecked", "no peer importable", metrics)
    return Check("note", "; ".join(said), metrics)


def _mmd_peers_case(n: int, m: int, d: int, b: int, with_alibi: bool = True, with_report: bool = True) -> Case:
    from curata import drift  # noqa: PLC0415

    ref, cur = make_mmd_data(n, m, d)
    sigma = drift.median_bandwidth(ref, seed=0)  # curata's bandwidth, given to alibi-detect
    params = {"n": n, "m": m, "dim": d, "permutations": b, "dtype": "float32", "kernel": "RBF", "seed": 0,
              "bandwidth": "curata's median heuristic (alibi-detect gets it); Evidently uses its own",
              "dense_float32_kernel_mib": round((n + m) ** 2 * 4 / 2**20)}
    contenders = [
        Contender("curata", lambda: drift.mmd(ref, cur, n_permutations=b, seed=0),
                  note="curata.drift.mmd: MMD^2, bandwidth and permutation p-value"),
        contender("alibi-detect MMDDrift (torch CPU)", lambda: alibi_mmd(ref, cur, sigma, b),
                  note=f"MMDDrift(ref, backend='pytorch', sigma=curata's, n_permutations={b}, device='cpu')"
                       ".predict(cur): dense float32 kernel, one gather per permutation")
        if with_alibi else Contender("alibi-detect MMDDrift (torch CPU)", None, skip_reason=ALIBI_MMD_TOO_SLOW),
        contender("Evidently MMDDriftMethod", lambda: evidently_mmd(ref, cur, report=False),
                  note="MMDDriftMethod()(cur_df, ref_df): dense kernel, no p-value (DataFrames included)"),
    ]
    if with_report:
        contenders.append(contender("Evidently EmbeddingsDrift report", lambda: evidently_mmd(ref, cur, report=True),
                                    note="Report([EmbeddingsDrift('emb', MMDDriftMethod())]).run: the MMD plus a "
                                         "t-SNE of 2 x 2500 rows for its plot (Datasets included)"))
    return Case(f"{_mmd_name(n, m, d, b)} (real peers)", "mmd-peers", params, contenders,
                check=lambda: _mmd_peers_check(contenders, ref, cur, sigma), calibrate=False, max_repeats=1)


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
    for label, (n, m, d, rounds) in REAL_KS_CASES.items():
        if quick and label not in REAL_KS_QUICK:
            continue
        plan.append((f"ks {label} (real peers)", lambda a=(label, n, m, d, rounds): _ks_peers_case(*a)))
    for spec in REAL_MMD_QUICK if quick else REAL_MMD_CASES:
        plan.append((f"{_mmd_name(*spec[:4])} (real peers)", lambda s=spec: _mmd_peers_case(*s)))
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
