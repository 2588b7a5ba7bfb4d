"""Kernel two-sample tests on multivariate samples: :func:`mmd` and :func:`mmd_linear`.

Re-exported by :mod:`curata.drift`; see ``docs/_fragments/drift_mmd.md`` for the derivation.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _array, _core, _drift_device
from ._drift_input import columns, sample_pair

MEDIAN_SUBSAMPLE = 1000
# MMD^2 of an RBF kernel lies in [-2, 2]; null statistics within this of the observed one are ties.
TIE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class MMDResult:
    """Result of :func:`mmd` or :func:`mmd_linear`.

    Attributes
    ----------
    statistic : float
        Unbiased MMD^2 estimate (:func:`mmd`) or the linear-time estimate (:func:`mmd_linear`).
        Either can be slightly negative when the samples agree.
    pvalue : float
        Permutation p-value ``(1 + #{null >= statistic}) / (1 + B)`` (:func:`mmd`) or the
        one-sided asymptotic normal p-value (:func:`mmd_linear`).
    bandwidth : float
        The kernel bandwidth sigma used: ``k(x, y) = exp(-|x - y|^2 / (2 sigma^2))``.
    n_ref, n_cur : int
        Rows of each sample (for :func:`mmd_linear`: rows used, ``2 * (min(n, m) // 2)`` each).
    null_statistics : numpy array (B,) float64 or None
        :func:`mmd`: the statistic under each of the B permutations, in permutation order.
    std : float or None
        :func:`mmd_linear`: estimated standard error of the statistic.
    kernel, method : str
        ``"rbf"``; ``"permutation"`` or ``"linear"``.
    """

    statistic: float
    pvalue: float
    bandwidth: float
    n_ref: int
    n_cur: int
    kernel: str
    method: str
    null_statistics: np.ndarray | None = None
    std: float | None = None


def _samples(ref: Any, cur: Any, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = sample_pair(ref, cur, min_rows)
    if a.shape[1] < 1:
        raise ValueError(f"ref must have at least one column, got shape {tuple(a.shape)}")
    for arr, name in ((a, "ref"), (b, "cur")):
        if not np.isfinite(arr).all():
            bad = "NaN" if np.isnan(arr).any() else "inf"
            raise ValueError(f"{name} must be finite, got {bad} values")
    return a, b


def _check_kernel(kernel: Any) -> None:
    if kernel != "rbf":
        raise ValueError(f"kernel must be 'rbf', got {kernel!r}")


def median_bandwidth(ref: Any, seed: int = 0) -> float:
    """Median-heuristic bandwidth of :func:`mmd`: ``sigma = sqrt(median(d2) / 2)``.

    ``d2`` are the squared Euclidean distances of all pairs ``i < j`` of reference rows; when
    ``ref`` has more than 1000 rows, of a subsample of 1000 rows drawn without replacement by
    ``np.random.default_rng([seed, 1]).choice(n, 1000, replace=False)``. The median of an even
    count is the mean of the two middle values (``np.median``). The kernel is then
    ``exp(-d2 / median(d2))``.

    Parameters
    ----------
    ref : array (n, D) or (n,)
        At least 2 rows; any real dtype (the used rows are converted to float64).
    seed : int >= 0
        Seeds the subsample (only used when n > 1000).

    Returns
    -------
    float
        sigma > 0. ``ValueError`` when the median squared distance is 0 (all used rows equal).

    Notes
    -----
    Time O(s^2 D) with s = min(n, 1000); memory O(s D + s^2) (only the subsampled rows are
    converted to float64).
    """
    seed = _array.check_seed(seed)
    a = columns(ref, "ref")
    n = a.shape[0]
    # Subsample before converting: only s = min(n, 1000) rows are used, so only they are copied
    # to float64 (memory O(s D + s^2), not a float64 copy of the whole reference).
    idx = median_subsample(n, seed) if n >= 2 else None
    if idx is not None:
        a = a[idx]
    a = np.asarray(_array.float_array(a, "ref"), dtype=np.float64)
    if n < 2:
        raise ValueError(f"ref must have at least 2 rows for the median heuristic, got shape {tuple(a.shape)}")
    # Centred: distances are unchanged, but |a_i|^2 + |a_j|^2 - 2 a_i.a_j cancels catastrophically
    # for data far from the origin (an offset of 1e8 on unit-spread data leaves no correct digit).
    a = a - a.mean(axis=0)
    sq = np.einsum("ij,ij->i", a, a)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (a @ a.T)
    iu = np.triu_indices(a.shape[0], k=1)
    med = float(np.median(np.maximum(d2[iu], 0.0)))
    if not med > 0.0:
        raise ValueError("bandwidth='median' needs distinct reference rows (median squared distance is 0); pass a bandwidth")
    return math.sqrt(med / 2.0)


def median_subsample(n: int, seed: int) -> np.ndarray | None:
    """Rows of the median heuristic: None (all) up to 1000 rows, else 1000 seeded rows."""
    if n <= MEDIAN_SUBSAMPLE:
        return None
    return np.random.default_rng([int(seed), 1]).choice(n, MEDIAN_SUBSAMPLE, replace=False)


# Smallest sigma whose 1 / (2 sigma^2) is finite: below, the kernel's scale overflows and
# exp(-0 * inf) makes every statistic NaN (mmd_linear divided by zero).
MIN_BANDWIDTH = math.sqrt(np.finfo(np.float64).tiny / 2.0)  # ~1.05e-154


def _bandwidth(bandwidth: Any, a: Any, seed: int) -> float:
    if isinstance(bandwidth, str):
        if bandwidth != "median":
            raise ValueError(f"bandwidth must be 'median' or a number > 0, got {bandwidth!r}")
        if not isinstance(a, np.ndarray):  # a device tensor: only the subsample comes to the host
            idx = median_subsample(a.shape[0], seed)
            rows = a if idx is None else a[_drift_device.as_tensor(idx, "idx", a.device)]
            s = median_bandwidth(rows.cpu().numpy(), seed)
        else:
            s = median_bandwidth(a, seed)
        if s < MIN_BANDWIDTH:
            raise ValueError(
                f"bandwidth='median' gives sigma = {s!r}, below {MIN_BANDWIDTH:.3g} where 1 / (2 sigma^2) "
                "overflows; rescale the data"
            )
        return s
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, numbers.Real):
        raise TypeError(f"bandwidth must be 'median' or a number > 0, got {type(bandwidth).__name__}")
    s = float(bandwidth)
    if not (s > 0.0 and math.isfinite(s)):
        raise ValueError(f"bandwidth must be 'median' or a finite number > 0, got {bandwidth!r}")
    if s < MIN_BANDWIDTH:
        raise ValueError(f"bandwidth must be >= {MIN_BANDWIDTH:.3g} (1 / (2 sigma^2) overflows below), got {bandwidth!r}")
    return s


def permutation_labels(n: int, m: int, n_permutations: int, seed: int = 0) -> np.ndarray:
    """Labellings used by :func:`mmd`.

    Column 0 is the observed labelling (rows ``0..n-1`` of ``[ref; cur]``). Column ``p >= 1`` is
    1 on ``perm[:n]`` where ``perm`` is the ``p``-th draw of
    ``np.random.default_rng(seed).permutation(n + m)``.

    Parameters
    ----------
    n, m : int >= 0
        Rows of ``ref`` and ``cur``.
    n_permutations : int >= 0
        B.
    seed : int >= 0

    Returns
    -------
    numpy uint8 array (n + m, 1 + B) of 0/1.

    Notes
    -----
    Time O((n + m) B) (one permutation per column); memory O((n + m) B) bytes plus one
    permutation of n + m int64 at a time.
    """
    n = _array.check_count(n, "n", allow_none=False, minimum=0)
    m = _array.check_count(m, "m", allow_none=False, minimum=0)
    n_permutations = _array.check_count(n_permutations, "n_permutations", allow_none=False, minimum=0)
    seed = _array.check_seed(seed)
    N = n + m
    labels = np.zeros((N, 1 + n_permutations), dtype=np.uint8)
    labels[:n, 0] = 1
    rng = np.random.default_rng(int(seed))
    for p in range(n_permutations):
        labels[rng.permutation(N)[:n], p + 1] = 1
    return labels


def _device_samples(ref: Any, cur: Any, min_rows: int):
    a, b = _drift_device.tensor_pair(ref, cur, min_rows)
    if a.shape[1] < 1:
        raise ValueError(f"ref must have at least one column, got shape {tuple(a.shape)}")
    for t, name in ((a, "ref"), (b, "cur")):
        if not bool(_drift_device._torch().isfinite(t).all()):
            bad = "NaN" if bool(t.isnan().any()) else "inf"
            raise ValueError(f"{name} must be finite, got {bad} values")
    return a, b


def mmd(
    ref: Any,
    cur: Any,
    *,
    kernel: str = "rbf",
    bandwidth: Any = "median",
    n_permutations: int = 100,
    seed: int = 0,
    precision: str = "float64",
) -> MMDResult:
    """Kernel two-sample test: unbiased MMD^2 with a permutation p-value.

    Parameters
    ----------
    ref : array (n, D) or (n,)
        Reference sample, float16/32/64 or integer (computed in float64), numpy or torch.
    cur : array (m, D) or (m,)
        Current sample with the same D.
    kernel : {"rbf"}
        Gaussian kernel ``k(x, y) = exp(-|x - y|^2 / (2 sigma^2))``.
    bandwidth : "median" or float > 0
        sigma. ``"median"``: ``sigma = sqrt(median(d2) / 2)`` over reference pairs (at most
        1000 seeded reference rows; see :func:`median_bandwidth`). sigma below ~1.05e-154
        (``MIN_BANDWIDTH``, where ``1 / (2 sigma^2)`` overflows) raises ``ValueError``.
    n_permutations : int >= 1
        B, the number of label permutations.
    seed : int
        Seeds the permutations (:func:`permutation_labels`) and the median subsample.
    precision : {"float64", "float32"}
        Device input only (host input is always float64): "float64" agrees with the host path to
        rounding; "float32" centres the data, computes distances with a split-precision GEMM that
        TF32 tensor cores run at about float32 accuracy and the label products in TF32, and
        accumulates block sums in float64 (statistics within ~1e-4 / min(n, m) of float64: far
        below the spread of the permutation null; about 3x less GEMM time than float64 on an H100
        by its peak rates).

    Returns
    -------
    MMDResult
        ``statistic`` = MMD^2_u = sum_{i != j} k(x_i, x_j) / (n (n - 1)) + sum_{i != j}
        k(y_i, y_j) / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / (n m) (diagonal excluded);
        ``pvalue = (1 + #{null >= statistic - 1e-12}) / (1 + B)`` (rounding-level ties count as
        ">=", conservatively); ``null_statistics`` (B,).

    Notes
    -----
    All B + 1 statistics come from one tiled pass over the pooled (n + m)^2 kernel matrix
    (upper triangle of 128 x 128 tiles, OpenMP over tile rows): each is a function of
    ``a'Ka``, ``a'K1`` and ``1'K1`` for the 0/1 label vector ``a``, and the tile products with
    the label block are GEMM-shaped. Float64 throughout. Result independent of thread count.

    Time O((n + m)^2 (D + B)); peak memory O((n + m)(D + B)) (no (n + m)^2 matrix).

    Device input (torch CUDA, CuPy): the same statistics from a tiled torch pass on the device
    (:func:`curata._drift_device.mmd_statistics`: blocks of up to 4 GiB, the permutation labels
    generated on the host as above and uploaded, (n + m) x (B + 1) bytes); only the median
    subsample (<= 1000 rows) and the B + 1 statistics cross to the host.

    Raises
    ------
    ValueError
        NaN/inf in a sample, different D, fewer than 2 rows in a sample, n_permutations < 1,
        bandwidth <= 0 or below ``MIN_BANDWIDTH``, unknown kernel.
    """
    _check_kernel(kernel)
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, numbers.Integral):
        raise TypeError(f"n_permutations must be an int >= 1, got {type(n_permutations).__name__}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    if precision not in ("float64", "float32"):
        raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
    seed = _array.check_seed(seed)
    device = _drift_device.wants_device(ref, cur)
    a, b = _device_samples(ref, cur, 2) if device else _samples(ref, cur, 2)
    sigma = _bandwidth(bandwidth, a, seed)
    n, m = a.shape[0], b.shape[0]
    labels = permutation_labels(n, m, int(n_permutations), seed)
    if device:
        stats = _drift_device.mmd_statistics(a, b, labels, sigma, precision=precision)
    else:
        stats = np.asarray(_core.drift_mmd(a, b, labels, sigma), dtype=np.float64)
    observed, null = float(stats[0]), stats[1:]
    # Labellings equivalent to the observed one (the same split, or the swapped split when n == m)
    # give the same MMD^2 up to rounding; they count as ">=" (the conservative side).
    pvalue = (1.0 + float(np.count_nonzero(null >= observed - TIE_TOLERANCE))) / (1.0 + n_permutations)
    return MMDResult(observed, pvalue, sigma, n, m, "rbf", "permutation", null_statistics=null)


def _rbf_rows(x: np.ndarray, y: np.ndarray, inv: float) -> np.ndarray:
    diff = x - y
    with np.errstate(over="ignore"):  # a small sigma: d2 * inv -> inf, exp(-inf) = 0 as it should
        return np.exp(-np.einsum("ij,ij->i", diff, diff) * inv)


def mmd_linear(ref: Any, cur: Any, *, kernel: str = "rbf", bandwidth: Any = "median", seed: int = 0) -> MMDResult:
    """Linear-time MMD^2 (Gretton et al. 2012, section 6) with its asymptotic normal p-value.

    With ``k = min(n, m) // 2`` and the first ``2k`` rows of each sample in the given order,
    ``h_i = k(x_{2i}, x_{2i+1}) + k(y_{2i}, y_{2i+1}) - k(x_{2i}, y_{2i+1}) - k(x_{2i+1}, y_{2i})``;
    ``statistic = mean(h)``, ``std = std(h, ddof=1) / sqrt(k)`` and ``pvalue = P(Z >= statistic /
    std)`` for standard normal Z (one-sided: MMD^2 > 0 under drift); if every ``h_i`` is equal
    (``std == 0``) the p-value is 0 for a positive statistic and 1 otherwise. Rows beyond ``2k``
    are not used; shuffle beforehand if the row order is not random. Computed with numpy in
    float64 (O(k D) vectorised row differences; no pairwise matrix).

    Parameters
    ----------
    ref : array (n, D) or (n,)
    cur : array (m, D) or (m,)
        At least 4 rows each, finite, any real dtype (computed in float64); numpy or torch.
    kernel, bandwidth : as :func:`mmd`
    seed : int
        Seeds only the median-heuristic subsample.

    Returns
    -------
    MMDResult
        ``statistic`` (float), ``std`` (its standard error), ``pvalue`` (float),
        ``bandwidth``; ``n_ref = n_cur = 2k`` (rows used); ``null_statistics`` is None.

    Notes
    -----
    Time O((n + m) D) plus O(min(n, 1000)^2 D) for the median heuristic; memory O((n + m) D)
    (float64 copies of the samples and the row differences).
    """
    _check_kernel(kernel)
    seed = _array.check_seed(seed)
    a, b = _samples(ref, cur, 4)
    sigma = _bandwidth(bandwidth, a, seed)
    k = min(a.shape[0], b.shape[0]) // 2
    x = a[: 2 * k].astype(np.float64)
    y = b[: 2 * k].astype(np.float64)
    inv = 1.0 / (2.0 * sigma * sigma)
    x0, x1, y0, y1 = x[0::2], x[1::2], y[0::2], y[1::2]
    h = _rbf_rows(x0, x1, inv) + _rbf_rows(y0, y1, inv) - _rbf_rows(x0, y1, inv) - _rbf_rows(x1, y0, inv)
    stat = float(h.mean())
    std = float(h.std(ddof=1)) / math.sqrt(k)
    if std > 0.0:
        pvalue = 0.5 * math.erfc(stat / std / math.sqrt(2.0))
    else:
        pvalue = 1.0 if stat <= 0.0 else 0.0
    return MMDResult(stat, pvalue, sigma, 2 * k, 2 * k, "rbf", "linear", std=std)
