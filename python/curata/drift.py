"""Distribution drift between a reference and a current sample, one column at a time.

Two-sample tests and distances on numeric columns — :func:`ks`, :func:`cramervonmises`,
:func:`mannwhitneyu`, :func:`wasserstein`, :func:`energy` — take ``ref`` of shape ``(n, D)`` and
``cur`` of shape ``(m, D)`` (1-D input is one column) and return one value per column. Columns
are compared independently; the sorting, merging, ranking and tie handling of every column runs
in the C++ core, in parallel over columns. Statistics and p-values equal ``scipy.stats`` 1.17
(``ks_2samp``, ``cramervonmises_2samp``, ``mannwhitneyu``, ``wasserstein_distance``,
``energy_distance``) to about 1e-14 relative, including scipy's choice between the exact and
the asymptotic null distribution (see each function). :func:`column_tests` runs several of them
from one sort of each column.

Binned comparisons — :func:`chi2`, :func:`psi`, :func:`jensen_shannon`, :func:`hellinger`,
:func:`tvd` — work on histograms: numeric columns are binned at reference quantiles, labels are
counted per category, or counts are passed directly.

:func:`mmd` (unbiased MMD^2 with a permutation p-value, all permutations in one tiled pass over
the kernel matrix) and :func:`mmd_linear` (linear-time estimator, normal p-value) compare whole
rows; :func:`c2st` (classifier two-sample test: cross-validated AUC of a scikit-learn
classifier) does too. :class:`Moments`, :class:`Histogram` and :class:`QuantileSketch` (with
:func:`ks_from_sketches`) are mergeable summaries for streaming and distributed monitoring.

:func:`correct` turns per-column p-values into per-column decisions and one dataset decision
(Bonferroni or Benjamini-Hochberg).

Input rules shared by every function:

* numpy arrays, array-likes and torch tensors; float32 is
  computed in float64 (exactly: every float32 is a float64), so ``ks(x32, y32)`` equals scipy
  on ``x32.astype(np.float64)``; float16 and integers are converted to float64.
* ``nan_policy="raise"`` (default) rejects NaN with ``ValueError``; ``"omit"`` drops NaN per
  column and per sample, and the result counts what was dropped (``nan_ref``, ``nan_cur``).
  ``+-inf`` are ordinary values for the rank-based tests (as in scipy).
* torch CUDA tensors (and CuPy arrays, through DLPack, when torch is importable) stay on the
  device for :func:`ks`, :func:`cramervonmises`, :func:`mannwhitneyu`, :func:`wasserstein`,
  :func:`energy` and :func:`mmd`: the statistics are computed there with torch
  (:mod:`curata._drift_device`) and only per-column summaries come to the host, where the
  p-values are computed by the same core code as for host input. Results equal the host path's
  to rounding (the rank statistics exactly; sums of float64 terms to ~1e-15 relative). The other
  functions copy device input to the host.
* A sample with too few rows (or a column left too small after omitting NaN) raises
  ``ValueError`` naming ``ref`` or ``cur``; so does a different number of columns.

scipy is optional: it is imported only for the asymptotic Cramér-von Mises p-value (modified
Bessel function K_1/4) and for the chi-square p-value (regularised incomplete gamma). Everything
else, including the exact and asymptotic Kolmogorov-Smirnov and Mann-Whitney distributions, is
computed by curata.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _array, _core, _drift_device
from ._drift_input import check_unmasked, column_pair, sample_pair
from ._drift_sketch import Histogram, Moments, QuantileSketch, SketchKSResult, ks_from_sketches
from ._drift_mmd import MMDResult, median_bandwidth, mmd, mmd_linear, permutation_labels
from ._drift_c2st import C2STResult, c2st

__all__ = [
    "TestResult",
    "DistanceResult",
    "BinnedResult",
    "Correction",
    "ks",
    "cramervonmises",
    "mannwhitneyu",
    "wasserstein",
    "energy",
    "column_tests",
    "chi2",
    "psi",
    "jensen_shannon",
    "hellinger",
    "tvd",
    "correct",
    "MMDResult",
    "mmd",
    "mmd_linear",
    "median_bandwidth",
    "permutation_labels",
    "C2STResult",
    "c2st",
    "Moments",
    "Histogram",
    "QuantileSketch",
    "SketchKSResult",
    "ks_from_sketches",
]

log = logging.getLogger("curata.drift")

_NAN_POLICIES = {"raise": 0, "omit": 1}
_ALTERNATIVES = {"two-sided": 0, "less": 1, "greater": 2}
_METHODS = {"auto": 0, "exact": 1, "asymptotic": 2}
_KS_METHODS = {"auto": 0, "exact": 1, "asymp": 2}
_WASSERSTEIN, _ENERGY = 8, 16


# ---------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class TestResult:
    """Per-column result of a two-sample test.

    Attributes
    ----------
    statistic, pvalue : array (D,) float64
        Same array kind and device as ``ref`` (numpy, torch CPU/CUDA tensor, CuPy array).
    method : numpy array (D,) of str
        ``"exact"`` or ``"asymptotic"``: the null distribution each column's p-value came from.
    n_ref, n_cur : numpy array (D,) int64
        Values used per column (NaN omitted).
    nan_ref, nan_cur : numpy array (D,) int64
        NaN values dropped per column (always 0 with ``nan_policy="raise"``).
    statistic_location, statistic_sign : array (D,) or None
        ``ks`` only: the value at which the ECDF gap is attained and +1 if ``F_ref - F_cur`` is
        the reported gap, -1 if ``F_cur - F_ref`` is (scipy's ``statistic_location/sign``).
    test : str
        Name of the test.
    """

    __test__ = False  # not a pytest class

    statistic: Any
    pvalue: Any
    method: np.ndarray
    n_ref: np.ndarray
    n_cur: np.ndarray
    nan_ref: np.ndarray
    nan_cur: np.ndarray
    test: str
    statistic_location: Any = None
    statistic_sign: Any = None


@dataclass(frozen=True)
class DistanceResult:
    """Per-column distance: ``statistic`` (D,) float64 plus the counts of :class:`TestResult`."""

    statistic: Any
    n_ref: np.ndarray
    n_cur: np.ndarray
    nan_ref: np.ndarray
    nan_cur: np.ndarray
    test: str


@dataclass(frozen=True)
class BinnedResult:
    """Per-column result of a binned comparison.

    Attributes
    ----------
    statistic : array (D,) float64
    pvalue : array (D,) float64 or None
        ``chi2`` only.
    dof : numpy array (D,) int64 or None
        ``chi2`` only: degrees of freedom (non-empty bins - 1).
    ref_counts, cur_counts : numpy array (D, K)
        The histograms compared (int64 unless counts were passed as floats). K is ``n_bins`` for
        numeric input, the largest number of categories of a column for labels (columns with
        fewer categories are padded with empty bins), the input length for counts.
    edges : numpy array (D, n_bins - 1) float64 or None
        Inner bin edges of numeric input (bin b is ``(edges[b-1], edges[b]]``).
    categories : list of D numpy arrays or None
        The category of each bin, for label input.
    n_ref, n_cur, nan_ref, nan_cur : numpy array (D,) int64
    test : str
    """

    statistic: Any
    pvalue: Any
    dof: np.ndarray | None
    ref_counts: np.ndarray
    cur_counts: np.ndarray
    edges: np.ndarray | None
    categories: list | None
    n_ref: np.ndarray
    n_cur: np.ndarray
    nan_ref: np.ndarray
    nan_cur: np.ndarray
    test: str


@dataclass(frozen=True)
class Correction:
    """Decisions after a multiple-testing correction.

    Attributes
    ----------
    reject : numpy array (D,) bool
        Per-column decision: drift detected in this column.
    adjusted : numpy array (D,) float64
        Adjusted p-values (NaN where the input was NaN); ``reject == (adjusted <= alpha)``.
    drift : bool
        Dataset decision: ``reject.any()``. With Bonferroni this is the Bonferroni global test
        (family-wise error <= alpha); with ``"fdr"`` it is Simes' global test, which has level
        alpha when the columns are independent or positively dependent (PRDS).
    alpha : float
    method : str
    n_tests : int
        Number of p-values corrected for (NaN included).
    """

    reject: np.ndarray
    adjusted: np.ndarray
    drift: bool
    alpha: float
    method: str
    n_tests: int


# ---------------------------------------------------------------------------------- inputs
def _choice(value: Any, name: str, options: dict) -> int:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return options[value]


def _methods(exact: np.ndarray) -> np.ndarray:
    return np.where(np.asarray(exact, dtype=bool), "exact", "asymptotic")


def _counts(r: dict) -> dict:
    return {k: r[k] for k in ("n_ref", "n_cur", "nan_ref", "nan_cur")}


def _scipy_special(what: str):
    try:
        from scipy import special  # noqa: PLC0415  (optional dependency)
    except ImportError as exc:  # pragma: no cover - scipy is installed in the test environment
        raise ImportError(f'{what} needs scipy: pip install "curata[drift]" (or scipy)') from exc
    return special


def _device_summaries(ref: Any, cur: Any, what: str, nan: int, min_size: int, test: str) -> dict:
    return _drift_device.column_summaries(ref, cur, (what,), nan_policy=nan, min_size=min_size, test=test)


# ---------------------------------------------------------------------------------- tests
def ks(ref: Any, cur: Any, *, alternative: str = "two-sided", method: str = "auto", nan_policy: str = "raise") -> TestResult:
    """Two-sample Kolmogorov-Smirnov test per column (``scipy.stats.ks_2samp``).

    Parameters
    ----------
    ref : array (n,) or (n, D)
        Reference sample; float32 is computed in float64.
    cur : array (m,) or (m, D)
        Current sample, same D.
    alternative : {"two-sided", "less", "greater"}
        "greater": the reference CDF lies above the current one somewhere (statistic
        ``max(F_ref - F_cur)``); "less": below (``max(F_cur - F_ref)``).
    method : {"auto", "exact", "asymp"}
        "auto" is exact when ``max(n, m) <= 10000`` and asymptotic otherwise. "exact" falls back
        to the asymptotic distribution when ``lcm(n, m)`` is too large or the exact computation
        overflows (logged as a warning, ``method`` of the column says ``"asymptotic"``).
    nan_policy : {"raise", "omit"}

    Returns
    -------
    TestResult
        ``statistic`` in [0, 1], ``pvalue``, ``statistic_location``, ``statistic_sign``. With the
        exact method the statistic is rounded to a multiple of ``1/lcm(n, m)`` (as scipy).

    Notes
    -----
    Exact p-values: two-sided from Hodges' lattice-path counts (an alternating sum when n == m,
    Viehmann's probability-scale recursion otherwise, O(max(n, m) * band width) per distinct
    statistic); one-sided from Hodges' path count, which overflows once C(n + m, n) leaves the
    double range (n != m; e.g. n + m above ~1030 for similar sizes) and then uses the asymptotic
    formula. Asymptotic two-sided: the one-sample distribution kstwo at ``round(n m / (n + m))``
    (Simard & L'Ecuyer's choice among Durbin's matrix, Pomeranz, Pelz-Good and Smirnov's series);
    one-sided: Hodges' exponential approximation. p-values are computed once per distinct
    (n, m, statistic). With ``method="asymp"`` and n m / (n + m) <= 140, curata's Pomeranz
    recursion runs in extended precision and differs from scipy's by up to ~2e-11 relative for
    p-values near 1e-3 (scipy's own error there, checked against a 40-digit evaluation).

    O((n + m) log(n + m) * D) time (radix sort), parallel over blocks of 8 columns; peak extra
    memory ~ 8 * 4 * (n + m) bytes per thread for float32 (and float16) input, sorted as 32-bit
    keys, ~ 8 * 8 * (n + m) for float64 (plus one converted copy of an input that is neither
    float32 nor float64).
    """
    alt = _choice(alternative, "alternative", _ALTERNATIVES)
    meth = _choice(method, "method", _KS_METHODS)
    nan = _choice(nan_policy, "nan_policy", _NAN_POLICIES)
    if _drift_device.wants_device(ref, cur):
        r = _core.drift_ks_from_summaries(_device_summaries(ref, cur, "ks", nan, 1, "ks"), alt, meth)
    else:
        a, b = sample_pair(ref, cur, 1)
        r = _core.drift_ks(a, b, alt, meth, nan)
    return _ks_result(r, ref)


def _ks_result(r: dict, ref: Any) -> TestResult:
    fell = np.flatnonzero(r["fell_back"])
    if fell.size:
        log.warning(
            "ks: exact p-value not possible for %d column(s) (first: %d, sizes %d and %d); used the asymptotic distribution",
            fell.size, fell[0], r["n_ref"][fell[0]], r["n_cur"][fell[0]],
        )
    return TestResult(
        statistic=_array.like(r["statistic"], ref),
        pvalue=_array.like(r["pvalue"], ref),
        method=_methods(r["exact"]),
        test="ks",
        statistic_location=_array.like(r["location"], ref),
        statistic_sign=_array.like(r["sign"], ref),
        **_counts(r),
    )


def _cvm_cdf_inf(x: np.ndarray, special) -> np.ndarray:
    """Limiting CDF of the one-sample Cramér-von Mises statistic (Csörgő & Faraway 1996, eq. 1.3).

    Terms are added per element until one is below 1e-7, evaluated in the same floating-point
    order as scipy so that the p-value 1 - cdf agrees with it even where cdf is close to 1.
    """
    total = np.zeros_like(x)
    active = np.ones(x.shape, dtype=bool)
    k = 0
    while active.any():
        xs = x[active]
        u = math.exp(special.gammaln(k + 0.5) - special.gammaln(k + 1)) / (np.pi**1.5 * np.sqrt(xs))
        y = 4 * k + 1
        q = y**2 / (16 * xs)
        z = u * math.sqrt(y) * np.exp(-q) * special.kv(0.25, q)
        total[active] = total[active] + z
        active[active] = np.abs(z) >= 1e-7
        k += 1
    return total


def _cvm_asymptotic_pvalues(t: np.ndarray, nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    """Anderson's (1962) normalisation of T to the limiting one-sample law, per column."""
    special = _scipy_special("cramervonmises with the asymptotic method")
    tn = np.empty(t.shape)
    cache: dict[tuple[int, int], tuple[float, float]] = {}
    for j in range(t.size):
        key = (int(nx[j]), int(ny[j]))
        if key not in cache:
            n1, n2 = key
            k, N = n1 * n2, n1 + n2
            et = (1 + 1 / N) / 6
            vt = (N + 1) * (4 * k * N - 3 * (n1**2 + n2**2) - 2 * k) / (45 * N**2 * 4 * k)  # exact int ratio
            cache[key] = (et, math.sqrt(45 * vt))
        et, scale = cache[key]
        tn[j] = 1 / 6 + (t[j] - et) / scale
    p = np.ones(t.shape)
    big = tn >= 0.003  # below, 1 - cdf rounds to 1
    if big.any():
        p[big] = np.clip(1.0 - _cvm_cdf_inf(tn[big], special), 0.0, None)
    return p


def cramervonmises(ref: Any, cur: Any, *, method: str = "auto", nan_policy: str = "raise") -> TestResult:
    """Two-sample Cramér-von Mises test per column (``scipy.stats.cramervonmises_2samp``).

    Parameters
    ----------
    ref : array (n,) or (n, D), n >= 2
    cur : array (m,) or (m, D), m >= 2
    method : {"auto", "exact", "asymptotic"}
        "auto" is exact when ``max(n, m) <= 20``. The exact null distribution (Xiao, Gordon &
        Yakovlev 2006) is built once per distinct (n, m) and shared by the columns; it is
        supported while C(n + m, n) < 2^126 (larger sizes raise ``ValueError``) and its cost grows
        quickly with the sizes. The asymptotic p-value (Anderson 1962 with the limiting law of
        Csörgő & Faraway 1996) needs scipy.
    nan_policy : {"raise", "omit"}

    Returns
    -------
    TestResult
        ``statistic`` is T of Anderson (1962), ties ranked by midranks: formed from the exact
        integer rank sums in 128-bit arithmetic and rounded once (the nearest double to the exact
        T; scipy's float64 formula differs from it by ~1e-12 to 1e-9 relative at 1e4 to 1e6 values,
        through cancellation).

    Notes
    -----
    O((n + m) log(n + m) * D) time in C++; the asymptotic p-value costs a few vectorised Bessel
    evaluations per column. Memory as :func:`ks`.
    """
    meth = _choice(method, "method", _METHODS)
    nan = _choice(nan_policy, "nan_policy", _NAN_POLICIES)
    if _drift_device.wants_device(ref, cur):
        r = _core.drift_cvm_from_summaries(_device_summaries(ref, cur, "cvm", nan, 2, "cramervonmises"), meth)
    else:
        a, b = sample_pair(ref, cur, 2)
        r = _core.drift_cvm(a, b, meth, nan)
    return _cvm_result(r, ref)


def _cvm_result(r: dict, ref: Any) -> TestResult:
    p = r["pvalue"]
    asym = ~np.asarray(r["exact"], dtype=bool)
    if asym.any():
        p = p.copy()
        p[asym] = _cvm_asymptotic_pvalues(r["statistic"][asym], r["n_ref"][asym], r["n_cur"][asym])
    return TestResult(
        statistic=_array.like(r["statistic"], ref),
        pvalue=_array.like(p, ref),
        method=_methods(r["exact"]),
        test="cramervonmises",
        **_counts(r),
    )


def mannwhitneyu(
    ref: Any,
    cur: Any,
    *,
    alternative: str = "two-sided",
    method: str = "auto",
    use_continuity: bool = True,
    nan_policy: str = "raise",
) -> TestResult:
    """Mann-Whitney U test per column (``scipy.stats.mannwhitneyu``).

    Parameters
    ----------
    ref : array (n,) or (n, D)
    cur : array (m,) or (m, D)
    alternative : {"two-sided", "less", "greater"}
        "greater": ref tends to be larger than cur.
    method : {"auto", "exact", "asymptotic"}
        "auto" is asymptotic when both n > 8 and m > 8 or when the column's pooled sample has
        ties, exact otherwise. "exact" ignores ties (U is truncated to an integer, as scipy).
    use_continuity : bool
        Continuity correction of the normal approximation.
    nan_policy : {"raise", "omit"}

    Returns
    -------
    TestResult
        ``statistic`` is U of ``ref`` (midranks for ties). The asymptotic p-value uses the tie
        correction of the variance.

    Notes
    -----
    The exact distribution is the Gaussian binomial coefficient sequence, built in exact 128-bit
    integers once per distinct (n, m) up to the largest U needed (in long double when
    ``C(n + m, n) >= 2^126``, which only a forced ``method="exact"`` on large samples reaches):
    O(min(n, m) * n * m) time, O(n m) entries of memory. Everything else (sort time, per-thread sort-key memory) as
    :func:`ks`.
    """
    alt = _choice(alternative, "alternative", _ALTERNATIVES)
    meth = _choice(method, "method", _METHODS)
    nan = _choice(nan_policy, "nan_policy", _NAN_POLICIES)
    if not isinstance(use_continuity, (bool, np.bool_)):
        raise TypeError(f"use_continuity must be a bool, got {use_continuity!r}")
    if _drift_device.wants_device(ref, cur):
        s = _device_summaries(ref, cur, "mwu", nan, 1, "mannwhitneyu")
        r = _core.drift_mwu_from_summaries(s, alt, meth, bool(use_continuity))
    else:
        a, b = sample_pair(ref, cur, 1)
        r = _core.drift_mwu(a, b, alt, meth, bool(use_continuity), nan)
    return _mwu_result(r, ref)


def _mwu_result(r: dict, ref: Any) -> TestResult:
    return TestResult(
        statistic=_array.like(r["statistic"], ref),
        pvalue=_array.like(r["pvalue"], ref),
        method=_methods(r["exact"]),
        test="mannwhitneyu",
        **_counts(r),
    )


def _distance(ref: Any, cur: Any, what: int, key: str, nan_policy: str) -> DistanceResult:
    nan = _choice(nan_policy, "nan_policy", _NAN_POLICIES)
    if _drift_device.wants_device(ref, cur):
        s = _device_summaries(ref, cur, key, nan, 1, key)
        return DistanceResult(statistic=_array.like(s[key], ref), test=key, **_counts(s))
    a, b = sample_pair(ref, cur, 1)
    r = _core.drift_distances(a, b, what, nan)
    return DistanceResult(statistic=_array.like(r[key], ref), test=key, **_counts(r))


def wasserstein(ref: Any, cur: Any, *, nan_policy: str = "raise") -> DistanceResult:
    """1-Wasserstein distance per column: the area between the two ECDFs
    (``scipy.stats.wasserstein_distance`` without weights).

    Parameters
    ----------
    ref : array (n,) or (n, D)
    cur : array (m,) or (m, D)
    nan_policy : {"raise", "omit"}

    Returns
    -------
    DistanceResult
        ``statistic`` (D,) float64 in the units of the data; inf/NaN if the data hold infinities
        (as scipy).

    Notes
    -----
    O((n + m) log(n + m) * D) time; the sum is accumulated in extended precision. Memory as
    :func:`ks` (per-thread sort keys for 8 columns, no (n, m) matrix).
    """
    return _distance(ref, cur, _WASSERSTEIN, "wasserstein", nan_policy)


def energy(ref: Any, cur: Any, *, nan_policy: str = "raise") -> DistanceResult:
    """Energy distance per column, ``sqrt(2 * integral (F_ref - F_cur)^2)``
    (``scipy.stats.energy_distance`` without weights).

    Parameters
    ----------
    ref : array (n,) or (n, D)
    cur : array (m,) or (m, D)
        Any real dtype (computed in float64); the same number of columns D as ``ref``.
    nan_policy : {"raise", "omit"}

    Returns
    -------
    DistanceResult
        ``statistic`` (D,) float64 in the units of the data (the array kind of ``ref``);
        inf/NaN if the data hold infinities (as scipy), plus the counts ``n_ref``, ``n_cur``,
        ``nan_ref``, ``nan_cur`` (D,) int64.

    Notes
    -----
    O((n + m) log(n + m) * D) time in C++ (one sort of each column, one merged walk); memory as
    :func:`ks` (per-thread sort keys for 8 columns, no (n, m) matrix).
    """
    return _distance(ref, cur, _ENERGY, "energy", nan_policy)


_COLUMN_TESTS = {
    "ks": ("ks", 1),
    "cramervonmises": ("cvm", 2),
    "mannwhitneyu": ("mwu", 4),
    "wasserstein": ("wasserstein", _WASSERSTEIN),
    "energy": ("energy", _ENERGY),
}


def column_tests(
    ref: Any,
    cur: Any,
    tests: Any = ("ks", "cramervonmises", "mannwhitneyu", "wasserstein", "energy"),
    *,
    nan_policy: str = "raise",
) -> dict:
    """Several per-column tests from one sort of each column.

    Equivalent to calling each of :func:`ks`, :func:`cramervonmises`, :func:`mannwhitneyu`,
    :func:`wasserstein` and :func:`energy` with its default options, but every column is gathered,
    sorted and walked once for all of them (in the C++ core for host input, with torch on the
    device for CUDA input), so asking for five tests costs about one.

    Parameters
    ----------
    ref : array (n,) or (n, D)
    cur : array (m,) or (m, D)
    tests : sequence of str
        Names among "ks", "cramervonmises", "mannwhitneyu", "wasserstein", "energy" (default
        all five).
    nan_policy : {"raise", "omit"}

    Returns
    -------
    dict
        Test name -> :class:`TestResult` (or :class:`DistanceResult` for the distances), each equal
        to what the single-test function returns.

    Notes
    -----
    Every column needs at least 2 values per sample when "cramervonmises" is asked for, 1
    otherwise. Time and memory as :func:`ks`.
    """
    tests = _check_column_tests(tests)
    nan = _choice(nan_policy, "nan_policy", _NAN_POLICIES)
    min_size = 2 if "cramervonmises" in tests else 1
    test = "cramervonmises" if min_size == 2 else tests[0]
    if _drift_device.wants_device(ref, cur):
        what = tuple(_COLUMN_TESTS[t][0] for t in tests)
        s = _drift_device.column_summaries(ref, cur, what, nan_policy=nan, min_size=min_size, test=test)
    else:
        bits = 0
        for name in tests:
            bits |= _COLUMN_TESTS[name][1]
        a, b = sample_pair(ref, cur, min_size)
        s = _core.drift_summaries(a, b, bits, nan, min_size, test)
    return _column_results(s, tests, ref)


def _check_column_tests(tests: Any) -> tuple:
    if isinstance(tests, str):
        tests = (tests,)
    tests = tuple(tests)
    if not tests:
        raise ValueError("tests must name at least one test")
    for name in tests:
        if name not in _COLUMN_TESTS:
            raise ValueError(f"tests must hold names from {sorted(_COLUMN_TESTS)}, got {name!r}")
    return tests


def _column_results(s: dict, tests: tuple, like: Any) -> dict:
    """The p-value half of :func:`column_tests` from the summaries ``s``."""
    out: dict = {}
    for name in tests:
        if name == "ks":
            out[name] = _ks_result(_core.drift_ks_from_summaries(s, 0, 0), like)
        elif name == "cramervonmises":
            out[name] = _cvm_result(_core.drift_cvm_from_summaries(s, 0), like)
        elif name == "mannwhitneyu":
            out[name] = _mwu_result(_core.drift_mwu_from_summaries(s, 0, 0, True), like)
        else:
            out[name] = DistanceResult(statistic=_array.like(s[name], like), test=name, **_counts(s))
    return out


class _SortedReference:
    """The columns of a host reference sample sorted once (NaN dropped and counted), so that
    :meth:`column_tests` compares a window with it by sorting only the window: the merged walk is
    the one of :func:`column_tests`, on the same sorted keys, so every result is identical to
    ``column_tests(ref, cur, tests, nan_policy=...)``. Used by :class:`curata.DriftMonitor`.

    Parameters
    ----------
    ref : numpy array (n, D), float32 or float64

    Notes
    -----
    Construction: O(n D) radix sort of the column keys; memory 4 n D bytes for a float32
    reference (uint32 keys), 8 n D for float64 (uint64 keys), kept.
    :meth:`column_tests`: O(m log m D) for the window plus an O(n + m) walk per column.
    """

    def __init__(self, ref: Any) -> None:
        a = np.asarray(ref)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"ref must have shape (n,) or (n, D), got {a.shape}")
        self.dtype = np.float32 if a.dtype == np.float32 else np.float64
        a = np.ascontiguousarray(a, dtype=self.dtype)
        r = _core.drift_sort_columns(a)
        self.keys, self.n, self.nan = r["keys"], r["n"], r["nan"]
        self.rows, self.columns = a.shape

    def column_tests(self, cur: Any, tests: Any, *, columns: Any = None, nan_policy: str = "raise") -> dict:
        """:func:`column_tests` of the reference (its ``columns``, default all) against ``cur``
        (a numpy array (m, len(columns)) of the reference's dtype, or (m,) for one column)."""
        tests = _check_column_tests(tests)
        nan = _choice(nan_policy, "nan_policy", _NAN_POLICIES)
        min_size = 2 if "cramervonmises" in tests else 1
        test = "cramervonmises" if min_size == 2 else tests[0]
        keys, n, nan_ref = self.keys, self.n, self.nan
        if columns is not None:
            idx = np.asarray(columns, dtype=np.int64)
            keys, n, nan_ref = keys[idx], n[idx], nan_ref[idx]
        b = np.asarray(cur)
        if b.ndim == 1:
            b = b[:, None]
        if b.ndim != 2 or b.shape[1] != keys.shape[0]:
            raise ValueError(f"cur must have shape (m, {keys.shape[0]}), got {b.shape}")
        b = np.ascontiguousarray(b, dtype=self.dtype)
        bits = 0
        for name in tests:
            bits |= _COLUMN_TESTS[name][1]
        s = _core.drift_summaries_sorted(keys, n, nan_ref, b, bits, nan, min_size, test)
        return _column_results(s, tests, b)


# ---------------------------------------------------------------------------------- binned
def _histograms(ref: Any, cur: Any, input: str, n_bins: int, nan_policy: str):
    """(ref_counts (D, K), cur_counts (D, K), edges, categories, counts dict)."""
    if input not in ("auto", "values", "labels", "counts"):
        raise ValueError(f"input must be one of ['auto', 'counts', 'labels', 'values'], got {input!r}")
    nan = _choice(nan_policy, "nan_policy", _NAN_POLICIES)
    if input == "counts":
        return _given_counts(ref, cur)
    a, b = column_pair(ref, cur, 1)
    if input == "auto":
        input = "values" if (a.dtype.kind == "f" and b.dtype.kind == "f") else "labels"
    if input == "values":
        n_bins = _array.check_count(n_bins, "n_bins", allow_none=False, minimum=1)
        fa, fb = sample_pair(a, b, 1)
        r = _core.drift_quantile_bins(fa, fb, n_bins, nan)
        return r["ref_counts"], r["cur_counts"], r["edges"], None, _counts(r)
    return _label_counts(a, b, nan)


def _label_kind(dtype: np.dtype) -> str:
    return "strings" if dtype.kind in "US" else "numbers" if dtype.kind in "biufc" else dtype.kind


def _label_counts(a: np.ndarray, b: np.ndarray, nan: int):
    D = a.shape[1]
    ka, kb = _label_kind(a.dtype), _label_kind(b.dtype)
    if ka != kb and "O" not in (ka, kb):
        # np.concatenate would turn the numbers into strings (1 and "1" one category, 1.0 and "1"
        # two) or fail deep inside numpy; object labels mixing str and int are refused likewise.
        raise TypeError(
            f"ref and cur labels must be of the same kind (all numbers or all strings), got dtypes {a.dtype} and {b.dtype}"
        )
    cats, rc, cc = [], [], []
    counts = {k: np.zeros(D, dtype=np.int64) for k in ("n_ref", "n_cur", "nan_ref", "nan_cur")}
    for j in range(D):
        x, y = a[:, j], b[:, j]
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            bad_x = np.isnan(x) if x.dtype.kind == "f" else np.zeros(x.shape, bool)
            bad_y = np.isnan(y) if y.dtype.kind == "f" else np.zeros(y.shape, bool)
            if nan == 0 and (bad_x.any() or bad_y.any()):
                which = "ref" if bad_x.any() else "cur"
                raise ValueError(f"{which} contains NaN (column {j}); pass nan_policy='omit' to drop NaN values per column")
            counts["nan_ref"][j], counts["nan_cur"][j] = int(bad_x.sum()), int(bad_y.sum())
            x, y = x[~bad_x], y[~bad_y]
        for arr, name in ((x, "ref"), (y, "cur")):
            if arr.size == 0:
                raise ValueError(f"{name} column {j} has no values after omitting NaN; binned statistics need at least 1 per column")
        both = np.concatenate([x, y])
        values, inverse = _array.unique_labels(both, f"ref and cur labels of column {j}", return_inverse=True)
        cats.append(values)
        rc.append(np.bincount(inverse[: x.size], minlength=values.size))
        cc.append(np.bincount(inverse[x.size :], minlength=values.size))
        counts["n_ref"][j], counts["n_cur"][j] = x.size, y.size
    K = max(v.size for v in cats) if cats else 0
    ref_counts = np.zeros((D, K), dtype=np.int64)
    cur_counts = np.zeros((D, K), dtype=np.int64)
    for j in range(D):
        ref_counts[j, : rc[j].size] = rc[j]
        cur_counts[j, : cc[j].size] = cc[j]
    return ref_counts, cur_counts, None, cats, counts


def _given_counts(ref: Any, cur: Any):
    out = []
    for x, name in ((ref, "ref"), (cur, "cur")):
        check_unmasked(x, name)
        c = _array._to_numpy_view(x, name)
        if c.dtype == np.bool_ or c.dtype.kind not in "fiu":
            raise TypeError(f"{name} counts must be a real numeric array, got dtype {c.dtype}")
        if c.ndim == 1:
            c = c.reshape(-1, 1)
        if c.ndim != 2:
            raise ValueError(f"{name} counts must have shape (K,) or (K, D), got {tuple(c.shape)}")
        if c.shape[0] < 1:
            raise ValueError(f"{name} counts must have at least 1 bin, got shape {tuple(c.shape)}")
        if not np.all(np.isfinite(c)) or np.any(c < 0):
            raise ValueError(f"{name} counts must be finite and >= 0")
        out.append(np.ascontiguousarray(c.T))
    rc, cc = out
    if rc.shape != cc.shape:
        raise ValueError(f"ref and cur counts must have the same shape (K, D), got {rc.shape[::-1]} and {cc.shape[::-1]}")
    n_ref, n_cur = rc.sum(axis=1), cc.sum(axis=1)
    for n, name in ((n_ref, "ref"), (n_cur, "cur")):
        if np.any(n <= 0):
            raise ValueError(f"{name} counts of column {int(np.argmax(n <= 0))} sum to 0; need a positive total")
    zeros = np.zeros(rc.shape[0], dtype=np.int64)
    return rc, cc, None, None, {"n_ref": n_ref, "n_cur": n_cur, "nan_ref": zeros, "nan_cur": zeros.copy()}


def _proportions(rc: np.ndarray, cc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rc = rc.astype(np.float64)
    cc = cc.astype(np.float64)
    return rc / rc.sum(axis=1, keepdims=True), cc / cc.sum(axis=1, keepdims=True)


def _binned_result(stat, ref, rc, cc, edges, cats, counts, test, pvalue=None, dof=None) -> BinnedResult:
    return BinnedResult(
        statistic=_array.like(stat, ref),
        pvalue=None if pvalue is None else _array.like(pvalue, ref),
        dof=dof,
        ref_counts=rc,
        cur_counts=cc,
        edges=edges,
        categories=cats,
        test=test,
        **counts,
    )


_BINNED_DOC = """
    Parameters
    ----------
    ref, cur : array
        With ``input="values"``: numeric samples (n,)/(n, D) and (m,)/(m, D), binned at the
        reference quantiles ``k / n_bins`` (numpy's default linear interpolation), bin b holding
        ``(edge[b-1], edge[b]]``; tied quantiles give empty bins, which every statistic ignores.
        Values must be finite. With ``input="labels"``: any dtype (int, bool, str, ...), one
        category per distinct value of the column in ref or cur. With ``input="counts"``: bin
        counts (K,) or (K, D), non-negative.
    input : {"auto", "values", "labels", "counts"}
        "auto": "values" for floating input, "labels" otherwise.
    n_bins : int
        Bins for numeric input (default 10).
    nan_policy : {"raise", "omit"}
        NaN handling for floating input.
"""


def chi2(
    ref: Any,
    cur: Any,
    *,
    input: str = "auto",
    n_bins: int = 10,
    correction: bool = True,
    nan_policy: str = "raise",
) -> BinnedResult:
    """Chi-square test of homogeneity per column on the 2 x K table of ref and cur counts
    (``scipy.stats.chi2_contingency``).
    {binned}
    correction : bool
        Yates' continuity correction when the table has 1 degree of freedom (two non-empty bins).

    Returns
    -------
    BinnedResult
        ``statistic`` (Pearson chi-square), ``pvalue``, ``dof``. Bins empty in both samples are
        dropped; a column with a single non-empty bin has statistic 0, p-value 1, dof 0.

    Notes
    -----
    The p-value ``chi2.sf(statistic, dof)`` needs scipy (``scipy.special.chdtrc``). Histograms
    of numeric columns in O((n + m) log(n + m) * D) in C++ with per-thread sort keys for 8
    columns (memory as :func:`ks`); the table arithmetic is O(D K) time and memory.
    """
    if not isinstance(correction, (bool, np.bool_)):
        raise TypeError(f"correction must be a bool, got {correction!r}")
    rc, cc, edges, cats, counts = _histograms(ref, cur, input, n_bins, nan_policy)
    obs_r = rc.astype(np.float64)
    obs_c = cc.astype(np.float64)
    col = obs_r + obs_c
    used = col > 0
    dof = used.sum(axis=1).astype(np.int64) - 1
    n_r = obs_r.sum(axis=1, keepdims=True)
    n_c = obs_c.sum(axis=1, keepdims=True)
    total = n_r + n_c
    with np.errstate(divide="ignore", invalid="ignore"):
        exp_r = n_r * col / total
        exp_c = n_c * col / total
        yates = bool(correction) & (dof == 1)
        if yates.any():
            for obs, exp in ((obs_r, exp_r), (obs_c, exp_c)):
                diff = exp - obs
                shift = np.sign(diff) * np.minimum(0.5, np.abs(diff))
                obs[yates] = obs[yates] + shift[yates]
        terms_r = np.where(used, (obs_r - exp_r) ** 2 / exp_r, 0.0)
        terms_c = np.where(used, (obs_c - exp_c) ** 2 / exp_c, 0.0)
    stat = np.where(dof > 0, terms_r.sum(axis=1) + terms_c.sum(axis=1), 0.0)
    p = np.ones_like(stat)
    if np.any(dof > 0):
        special = _scipy_special("chi2 p-values")
        pos = dof > 0
        p[pos] = special.chdtrc(dof[pos], stat[pos])
    return _binned_result(stat, ref, rc, cc, edges, cats, counts, "chi2", pvalue=p, dof=dof)


def psi(
    ref: Any,
    cur: Any,
    *,
    input: str = "auto",
    n_bins: int = 10,
    eps: float = 1e-4,
    nan_policy: str = "raise",
) -> BinnedResult:
    """Population stability index per column, ``sum_b (q_b - p_b) ln(q_b / p_b)`` with p the
    reference and q the current bin proportions.
    {binned}
    eps : float
        Proportions are clipped below at ``eps`` (default 1e-4) so that a bin empty in one sample
        contributes a finite amount; a bin empty in both contributes 0.

    Returns
    -------
    BinnedResult
        ``statistic`` >= 0 (common reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 large shift).

    Notes
    -----
    O(D K) time and memory after the histograms (see :func:`chi2` for their cost).
    """
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, numbers.Real) or not (0 < float(eps) < 1):
        raise ValueError(f"eps must be a number in (0, 1), got {eps!r}")
    rc, cc, edges, cats, counts = _histograms(ref, cur, input, n_bins, nan_policy)
    p, q = _proportions(rc, cc)
    p = np.maximum(p, eps)
    q = np.maximum(q, eps)
    stat = np.sum((q - p) * np.log(q / p), axis=1)
    return _binned_result(stat, ref, rc, cc, edges, cats, counts, "psi")


def jensen_shannon(
    ref: Any,
    cur: Any,
    *,
    input: str = "auto",
    n_bins: int = 10,
    base: float = 2.0,
    nan_policy: str = "raise",
) -> BinnedResult:
    """Jensen-Shannon distance per column: the square root of the JS divergence of the bin
    proportions (``scipy.spatial.distance.jensenshannon``), in [0, 1] for ``base=2``.
    {binned}
    base : float
        Logarithm base of the divergence (default 2).

    Returns
    -------
    BinnedResult
        ``statistic`` (D,) float64. No epsilon is needed: empty bins contribute 0
        (0 log 0 = 0).

    Notes
    -----
    {binned_cost}
    """
    if isinstance(base, (bool, np.bool_)) or not isinstance(base, numbers.Real) or not (float(base) > 0 and float(base) != 1):
        raise ValueError(f"base must be a positive number other than 1, got {base!r}")
    rc, cc, edges, cats, counts = _histograms(ref, cur, input, n_bins, nan_policy)
    p, q = _proportions(rc, cc)
    m = (p + q) / 2.0

    def rel_entr(x, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, x * np.log(x / y), 0.0)

    js = np.sum(rel_entr(p, m), axis=1) + np.sum(rel_entr(q, m), axis=1)
    js = js / math.log(float(base))  # a float32 base would make np.log round to float32
    stat = np.sqrt(np.maximum(js, 0.0) / 2.0)
    return _binned_result(stat, ref, rc, cc, edges, cats, counts, "jensen_shannon")


def hellinger(ref: Any, cur: Any, *, input: str = "auto", n_bins: int = 10, nan_policy: str = "raise") -> BinnedResult:
    """Hellinger distance per column, ``sqrt(sum_b (sqrt(p_b) - sqrt(q_b))^2 / 2)`` in [0, 1].
    {binned}
    Returns
    -------
    BinnedResult
        ``statistic`` (D,) float64 in [0, 1]; ``ref_counts``/``cur_counts`` (D, K) int64,
        ``edges`` (D, n_bins - 1) float64 (numeric input) or ``categories`` (labels).

    Notes
    -----
    {binned_cost}
    """
    rc, cc, edges, cats, counts = _histograms(ref, cur, input, n_bins, nan_policy)
    p, q = _proportions(rc, cc)
    stat = np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2, axis=1) / 2.0)
    return _binned_result(stat, ref, rc, cc, edges, cats, counts, "hellinger")


def tvd(ref: Any, cur: Any, *, input: str = "auto", n_bins: int = 10, nan_policy: str = "raise") -> BinnedResult:
    """Total variation distance per column, ``sum_b |p_b - q_b| / 2`` in [0, 1].
    {binned}
    Returns
    -------
    BinnedResult
        ``statistic`` (D,) float64 in [0, 1]; ``ref_counts``/``cur_counts`` (D, K) int64,
        ``edges`` (D, n_bins - 1) float64 (numeric input) or ``categories`` (labels).

    Notes
    -----
    {binned_cost}
    """
    rc, cc, edges, cats, counts = _histograms(ref, cur, input, n_bins, nan_policy)
    p, q = _proportions(rc, cc)
    stat = np.sum(np.abs(p - q), axis=1) / 2.0
    return _binned_result(stat, ref, rc, cc, edges, cats, counts, "tvd")


_BINNED_COST = """Numeric input: one sort of each reference column and a binary search per value, O((n log n
    + (n + m) log n_bins) * D) in C++, with per-thread sort keys for 8 columns (memory as
    :func:`ks`); labels are counted with numpy (O((n + m) log(n + m)) per column). The
    statistic itself is O(D K) on the (D, K) count tables."""

for _f in (chi2, psi, jensen_shannon, hellinger, tvd):
    _f.__doc__ = _f.__doc__.replace("{binned}", _BINNED_DOC).replace("{binned_cost}", _BINNED_COST)
del _f


# ---------------------------------------------------------------------------------- decisions
def correct(pvalues: Any, method: str = "bonferroni", alpha: float = 0.05) -> Correction:
    """Multiple-testing correction of per-column p-values and a dataset-level decision.

    Parameters
    ----------
    pvalues : array (D,) or a result with a ``pvalue`` attribute
        p-values in [0, 1]; NaN (a column that could not be tested) never rejects but counts
        in the number of tests.
    method : {"bonferroni", "fdr"}
        "bonferroni": ``adjusted = min(1, D p)``, controls the family-wise error rate.
        "fdr": Benjamini-Hochberg step-up, ``adjusted_(i) = min_{j >= i} D p_(j) / j`` (capped at
        1), controls the false discovery rate under independence or positive dependence.
    alpha : float
        Level in (0, 1).

    Returns
    -------
    Correction
        ``reject`` per column, ``adjusted`` p-values and the dataset decision ``drift``
        (any column rejected; see :class:`Correction`).

    Notes
    -----
    O(D log D) time, O(D) memory.
    """
    if method not in ("bonferroni", "fdr"):
        raise ValueError(f"method must be one of ['bonferroni', 'fdr'], got {method!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not (0 < float(alpha) < 1):
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    if hasattr(pvalues, "pvalue") and not isinstance(pvalues, np.ndarray):
        pvalues = pvalues.pvalue
        if pvalues is None:
            raise ValueError("the result has no p-values (pvalue is None)")
    check_unmasked(pvalues, "pvalues")
    p = _array._to_numpy_view(pvalues, "pvalues")
    if p.ndim == 0 and p.dtype == object:
        # a DistanceResult, the dict of column_tests, ...: numpy wraps it in a 0-d object array
        raise TypeError(
            f"pvalues must be an array (D,) of p-values or a result with a pvalue attribute, got {type(pvalues).__name__}"
        )
    if p.ndim != 1:
        raise ValueError(f"pvalues must have shape (D,), got {tuple(p.shape)}")
    if p.dtype == np.bool_ or p.dtype.kind not in "fiu":
        raise TypeError(f"pvalues must be a real numeric array, got dtype {p.dtype}")
    p = p.astype(np.float64)
    missing = np.isnan(p)
    if np.any((p[~missing] < 0) | (p[~missing] > 1)):
        raise ValueError("pvalues must lie in [0, 1] (or be NaN)")
    m = p.size
    work = np.where(missing, 1.0, p)
    if method == "bonferroni":
        adjusted = np.minimum(1.0, work * m)
    else:
        order = np.argsort(work, kind="stable")
        ranked = work[order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(1.0, ranked)
    reject = (adjusted <= alpha) & ~missing
    adjusted[missing] = np.nan
    return Correction(
        reject=reject,
        adjusted=adjusted,
        drift=bool(reject.any()),
        alpha=float(alpha),
        method=method,
        n_tests=m,
    )
