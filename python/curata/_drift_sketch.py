"""Mergeable drift state for streaming and distributed use: Moments, Histogram, QuantileSketch.

Every state has ``update(batch)`` (in place, returns ``self``) and ``merge(other)`` (returns a
new state; neither input changes). Exact states merge exactly: ``Moments`` (up to float64
rounding, Chan et al. 1979) and ``Histogram`` (integer counts). ``QuantileSketch`` carries a
certified rank-error bound that merging keeps valid. Re-exported by :mod:`curata.drift`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _array
from ._drift_input import check_unmasked


def _batch(x: Any, name: str, columns: int | None) -> np.ndarray:
    check_unmasked(x, name)
    a = _array._to_numpy_view(x, name)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    elif a.ndim != 2:
        raise ValueError(f"{name} must have shape (n,) or (n, D), got {tuple(a.shape)}")
    if columns is not None and a.shape[1] != columns:
        raise ValueError(f"{name} must have {columns} columns like the state, got shape {tuple(a.shape)}")
    a = np.asarray(_array.float_array(a, name), dtype=np.float64)
    if np.isnan(a).any():
        raise ValueError(f"{name} must not contain NaN")
    return a


# ---------------------------------------------------------------------------------- Moments
class Moments:
    """Per-column count, mean, M2 (sum of squared deviations), min and max.

    ``update(batch)`` folds a batch of shape (n, D) or (n,) (NaN rejected; +-inf make mean/M2
    non-finite); ``merge(other)`` combines two states with the parallel formulas of Chan, Golub
    & LeVeque (1979): ``delta = mean_b - mean_a``, ``mean = mean_a + delta n_b / n``,
    ``M2 = M2_a + M2_b + delta^2 n_a n_b / n``. A batch is summarised with a two-pass mean and
    M2 in float64, then merged the same way, so any split of the same rows gives the same
    moments up to rounding (about 1e-15 relative). The mean is carried with its rounding error
    (a second float64 per column, as in double-double arithmetic): ``delta`` is then accurate
    to the data's spread even far from the origin, where the plain formula loses
    ~1e-16 (|mean| / sd)^2 of M2 per merge (1e-9 relative after 1000 merges of data at 1e9 with
    sd 1).

    Time O(n D) per update, O(D) per merge; memory O(D).

    Attributes
    ----------
    count : int
    mean, m2, min, max : numpy array (D,) float64 (None before the first update)
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean = self.m2 = self.min = self.max = None
        self._mean_lo = None  # set with mean: the mean is mean + _mean_lo (|_mean_lo| <= half an ulp)

    @property
    def columns(self) -> int | None:
        return None if self.mean is None else self.mean.shape[0]

    def variance(self, ddof: int = 0) -> np.ndarray:
        """``m2 / (count - ddof)`` per column.

        Parameters
        ----------
        ddof : int
            Delta degrees of freedom (0: population variance, 1: sample variance).

        Returns
        -------
        float64 numpy array (D,)
            NaN when ``count <= ddof``; ``ValueError`` for a state that has seen no batch.
            O(D).
        """
        if self.mean is None:
            raise ValueError("variance of an empty Moments state")
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.m2 / (self.count - ddof) if self.count > ddof else np.full_like(self.m2, np.nan)

    def _combine(self, n_b: int, mean_b, lo_b, m2_b, min_b, max_b) -> None:
        if n_b == 0:
            return
        if self.count == 0:
            self.count, self.mean, self._mean_lo, self.m2 = n_b, mean_b.copy(), lo_b.copy(), m2_b.copy()
            self.min, self.max = min_b.copy(), max_b.copy()
            return
        n_a, n = self.count, self.count + n_b
        lo_a = self._mean_lo
        with np.errstate(invalid="ignore", over="ignore"):  # +-inf: documented non-finite results
            # mean_b - mean_a is exact for close means (Sterbenz): the low parts carry the rest
            delta = (mean_b - self.mean) + (lo_b - lo_a)
            step = delta * (n_b / n)
            hi, err = _two_sum(self.mean, step)
            hi, lo = _two_sum(hi, np.where(np.isfinite(hi), err, 0.0) + lo_a)
            self.mean = hi
            self._mean_lo = np.where(np.isfinite(hi) & np.isfinite(lo), lo, 0.0)
            self.m2 = self.m2 + m2_b + delta * delta * (n_a * n_b / n)
        self.min = np.minimum(self.min, min_b)
        self.max = np.maximum(self.max, max_b)
        self.count = n

    def update(self, batch: Any) -> Moments:
        """Fold ``batch`` into the state, in place.

        Parameters
        ----------
        batch : array (n, D) or (n,)
            Any real dtype (computed in float64); D must match earlier batches. NaN raises
            ``ValueError``; +-inf make that column's mean and M2 non-finite.

        Returns
        -------
        Moments
            ``self``. O(n D) time; memory: one float64 copy of the batch plus O(D).
        """
        a = _batch(batch, "batch", self.columns)
        if a.shape[0] == 0:
            if self.mean is None:
                z = np.zeros(a.shape[1])
                self.mean, self._mean_lo, self.m2 = z, z.copy(), z.copy()
                self.min, self.max = np.full(a.shape[1], np.inf), np.full(a.shape[1], -np.inf)
            return self
        with np.errstate(invalid="ignore", over="ignore"):  # +-inf: documented non-finite results
            mean = a.mean(axis=0)
            dev = a - mean  # exact for values within a factor 2 of the mean (Sterbenz)
            lo = dev.mean(axis=0)  # the rounding error of mean: the exact mean is ~ mean + lo
            # M2 about the exact mean: sum (x - mean)^2 - n lo^2
            m2 = np.einsum("ij,ij->j", dev, dev) - a.shape[0] * lo * lo
            lo = np.where(np.isfinite(lo), lo, 0.0)
            mean, lo = _two_sum(mean, lo)  # mean correctly rounded, lo what remains
            lo = np.where(np.isfinite(mean) & np.isfinite(lo), lo, 0.0)
        self._combine(a.shape[0], mean, lo, m2, a.min(axis=0), a.max(axis=0))
        return self

    def merge(self, other: Moments) -> Moments:
        """A new state equal (up to rounding) to the state of both inputs' rows together.

        Parameters
        ----------
        other : Moments
            Same number of columns (``ValueError`` otherwise; ``TypeError`` for another type).

        Returns
        -------
        Moments
            A new state; ``self`` and ``other`` are unchanged. O(D) time and memory.
        """
        if not isinstance(other, Moments):
            raise TypeError(f"other must be a Moments, got {type(other).__name__}")
        if self.columns is not None and other.columns is not None and self.columns != other.columns:
            raise ValueError(f"other must have {self.columns} columns, got {other.columns}")
        out = copy.deepcopy(self)
        if other.mean is not None:
            if out.mean is None:
                return copy.deepcopy(other)
            out._combine(other.count, other.mean, other._mean_lo, other.m2, other.min, other.max)
        return out


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s = fl(a + b) and the exact error a + b - s (Knuth's TwoSum, no branch on |a| >= |b|)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


# ---------------------------------------------------------------------------------- Histogram
class Histogram:
    """Counts on fixed bin edges, per column: mergeable by adding counts.

    Parameters
    ----------
    edges : array (K + 1,)
        Strictly increasing finite edges shared by all columns. Bin ``b`` holds
        ``edges[b] <= x < edges[b + 1]``, the last bin also ``x == edges[K]`` (``np.histogram``'s
        convention); values below ``edges[0]`` count in ``under``, above ``edges[K]`` in ``over``.

    ``update(batch)``: batch (n, D) or (n,), NaN rejected. ``merge(other)``: counts add; raises
    ValueError when the edges differ in value (-0.0 equals 0.0) or D differs. Time O(n D log K)
    per update; memory O(D K).

    Attributes
    ----------
    counts : numpy array (D, K) int64; under, over : numpy array (D,) int64; count : int
    """

    def __init__(self, edges: Any) -> None:
        e = np.asarray(edges, dtype=np.float64)
        if e.ndim != 1 or e.shape[0] < 2:
            raise ValueError(f"edges must have shape (K + 1,) with K >= 1, got {tuple(e.shape)}")
        if not np.isfinite(e).all() or not np.all(np.diff(e) > 0):
            raise ValueError("edges must be finite and strictly increasing")
        self.edges = e.copy()
        self.edges.setflags(write=False)
        self.counts = self.under = self.over = None
        self.count = 0

    @property
    def columns(self) -> int | None:
        return None if self.counts is None else self.counts.shape[0]

    def update(self, batch: Any) -> Histogram:
        """Count ``batch`` on the edges, in place.

        Parameters
        ----------
        batch : array (n, D) or (n,)
            Any real dtype (compared in float64); D must match earlier batches. NaN raises
            ``ValueError``.

        Returns
        -------
        Histogram
            ``self``. O(n D log K) time; memory O(n) per column on top of the (D, K) counts.
        """
        a = _batch(batch, "batch", self.columns)
        d, k = a.shape[1], self.edges.shape[0] - 1
        if self.counts is None:
            self.counts = np.zeros((d, k), dtype=np.int64)
            self.under = np.zeros(d, dtype=np.int64)
            self.over = np.zeros(d, dtype=np.int64)
        for j in range(d):
            col = a[:, j]
            idx = np.searchsorted(self.edges, col, side="right") - 1  # edges[idx] <= x < edges[idx + 1]
            idx[col == self.edges[-1]] = k - 1
            self.under[j] += int(np.count_nonzero(idx < 0))
            self.over[j] += int(np.count_nonzero(idx >= k))
            inside = idx[(idx >= 0) & (idx < k)]
            self.counts[j] += np.bincount(inside, minlength=k)
        self.count += a.shape[0]
        return self

    def merge(self, other: Histogram) -> Histogram:
        """A new histogram whose counts are the sums of both.

        Parameters
        ----------
        other : Histogram
            Same edges (equal values) and number of columns, else ``ValueError``; another type
            ``TypeError``.

        Returns
        -------
        Histogram
            A new state; the inputs are unchanged. O(D K) time and memory.
        """
        if not isinstance(other, Histogram):
            raise TypeError(f"other must be a Histogram, got {type(other).__name__}")
        if self.edges.shape != other.edges.shape or not np.array_equal(self.edges, other.edges):
            raise ValueError(
                f"histograms with different edges cannot be merged: {self.edges.shape[0]} edges "
                f"[{self.edges[0]}, {self.edges[-1]}] vs {other.edges.shape[0]} edges [{other.edges[0]}, {other.edges[-1]}]"
            )
        if self.columns is not None and other.columns is not None and self.columns != other.columns:
            raise ValueError(f"other must have {self.columns} columns, got {other.columns}")
        out = copy.deepcopy(self)
        if other.counts is not None:
            if out.counts is None:
                return copy.deepcopy(other)
            out.counts = out.counts + other.counts
            out.under = out.under + other.under
            out.over = out.over + other.over
            out.count += other.count
        return out


# ---------------------------------------------------------------------------------- quantiles
class QuantileSketch:
    """Mergeable quantile sketch of one column (compactor hierarchy, as in KLL) with a certified
    rank-error bound.

    Level h holds values of weight 2^h. When a level holds ``k`` or more values it is sorted
    and compacted: a seeded fair coin picks the even or odd positions (of an even-length
    prefix; an odd leftover stays), which move to level h + 1 with twice the weight. For every
    x at once, a compaction changes the weighted count of values <= x by at most 2^h, so
    ``rank_error_bound`` = sum of 2^h over all compactions performed (in this sketch and in
    every sketch merged into it) bounds ``|rank_estimate(x) - rank(x)|`` for all x,
    deterministically. With equal capacities it is at most about ``n log2(n / k) / k``
    (``normalized_rank_error`` ~ log2(n / k) / k: 1.0% for n = 1e6, k = 1024); the random
    offsets make the actual error much smaller (zero mean, typically ~sqrt of that).

    Parameters
    ----------
    k : int, even, >= 8
        Level capacity (memory ~ k log2(n / k) values). ``TypeError`` for a non-int (bools
        included), ``ValueError`` for an odd value or one below 8.
    seed : int
        Seeds the coin flips: the same updates and merges give the same sketch.

    ``update(batch)``: 1-D values (NaN rejected). ``merge(other)``: same ``k`` required; the
    levels are concatenated and compacted with ``self``'s random stream. Time O(n log n)
    amortised per update; memory O(k log(n / k)).

    Attributes
    ----------
    count : int; min, max : float; rank_error_bound : int
    """

    def __init__(self, k: int = 1024, seed: int = 0) -> None:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be an int, got {type(k).__name__}")
        if k < 8 or k % 2:
            raise ValueError(f"k must be an even int >= 8, got {int(k)}")
        self.k = int(k)
        self.count = 0
        self.rank_error_bound = 0
        self.min, self.max = np.inf, -np.inf
        self._levels: list[np.ndarray] = [np.empty(0)]
        self._rng = np.random.default_rng(_array.check_seed(seed))

    @property
    def normalized_rank_error(self) -> float:
        """``rank_error_bound / count``: a bound on |CDF estimate - empirical CDF| at every x."""
        return self.rank_error_bound / self.count if self.count else 0.0

    @property
    def retained(self) -> int:
        return sum(lv.shape[0] for lv in self._levels)

    def _compress(self) -> None:
        h = 0
        while h < len(self._levels):
            lv = self._levels[h]
            if lv.shape[0] >= self.k:
                lv = np.sort(lv, kind="stable")
                even = lv.shape[0] - (lv.shape[0] % 2)
                offset = int(self._rng.integers(2))
                promoted = lv[offset:even:2]
                self._levels[h] = lv[even:]
                if h + 1 == len(self._levels):
                    self._levels.append(np.empty(0))
                self._levels[h + 1] = np.concatenate([self._levels[h + 1], promoted])
                self.rank_error_bound += 1 << h
            h += 1

    def update(self, batch: Any) -> QuantileSketch:
        """Add the values of ``batch`` to the sketch, in place.

        Parameters
        ----------
        batch : array (n,)
            One column, any real dtype (kept as float64). NaN raises ``ValueError``; 2-D input
            ``ValueError``.

        Returns
        -------
        QuantileSketch
            ``self``. O((r + n) log(r + n)) time for r retained values (the levels that reach
            ``k`` are sorted and compacted); memory O(r + n) during the call, O(k log2(n / k))
            retained.
        """
        check_unmasked(batch, "batch")
        a = _array._to_numpy_view(batch, "batch")
        if a.ndim != 1:
            raise ValueError(f"batch must have shape (n,), got {tuple(a.shape)}")
        a = np.asarray(_array.float_array(a, "batch"), dtype=np.float64)
        if np.isnan(a).any():
            raise ValueError("batch must not contain NaN")
        if a.shape[0] == 0:
            return self
        self.count += a.shape[0]
        self.min = min(self.min, float(a.min()))
        self.max = max(self.max, float(a.max()))
        self._levels[0] = np.concatenate([self._levels[0], a])
        self._compress()
        return self

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """A new sketch of both inputs' values (levels concatenated, then compacted).

        Parameters
        ----------
        other : QuantileSketch
            Same ``k`` (``ValueError`` otherwise; ``TypeError`` for another type).

        Returns
        -------
        QuantileSketch
            A new sketch using ``self``'s random stream; the inputs are unchanged. Its
            ``rank_error_bound`` is the sum of both plus its own compactions. O(r log r) time
            and O(r) memory for r retained values.
        """
        if not isinstance(other, QuantileSketch):
            raise TypeError(f"other must be a QuantileSketch, got {type(other).__name__}")
        if other.k != self.k:
            raise ValueError(f"sketches with different k cannot be merged: {self.k} vs {other.k}")
        out = copy.deepcopy(self)
        while len(out._levels) < len(other._levels):
            out._levels.append(np.empty(0))
        for h, lv in enumerate(other._levels):
            out._levels[h] = np.concatenate([out._levels[h], lv])
        out.count += other.count
        out.rank_error_bound += other.rank_error_bound
        out.min, out.max = min(out.min, other.min), max(out.max, other.max)
        out._compress()
        return out

    def _weighted(self) -> tuple[np.ndarray, np.ndarray]:
        vals = np.concatenate(self._levels)
        w = np.concatenate([np.full(lv.shape[0], 1 << h, dtype=np.int64) for h, lv in enumerate(self._levels)])
        order = np.argsort(vals, kind="stable")
        return vals[order], w[order]

    def rank(self, x: Any) -> np.ndarray:
        """Estimated number of values <= x, within ``rank_error_bound``.

        Parameters
        ----------
        x : float or array
            Any shape. NaN raises ``ValueError`` (no value is <= NaN, yet a sorted search puts
            it last).

        Returns
        -------
        int64 array of the shape of ``x``. O(r log r + len(x) log r) time, O(r + len(x)) memory
        for r retained values.
        """
        vals, w = self._weighted()
        cw = np.concatenate([[0], np.cumsum(w)])
        xs = np.asarray(x, dtype=np.float64)
        if np.isnan(xs).any():
            raise ValueError("x must not contain NaN")
        return cw[np.searchsorted(vals, xs, side="right")]

    def cdf(self, x: Any) -> np.ndarray:
        """Estimated fraction of values <= x, within ``normalized_rank_error``.

        ``x`` as in :meth:`rank`; returns a float64 array of its shape. An empty sketch raises
        ``ValueError``. Cost as :meth:`rank`.
        """
        if self.count == 0:
            raise ValueError("cdf of an empty QuantileSketch")
        return self.rank(x) / self.count

    def quantile(self, q: Any) -> np.ndarray:
        """Smallest retained value whose estimated rank is >= q * count.

        ``q``: float or array in [0, 1] (outside or NaN: ``ValueError``; an empty sketch raises
        ``ValueError``). Returns a float64 array of the shape of ``q``. Cost as :meth:`rank`.
        """
        if self.count == 0:
            raise ValueError("quantile of an empty QuantileSketch")
        q = np.asarray(q, dtype=np.float64)
        if np.any((q < 0) | (q > 1)) or np.isnan(q).any():
            raise ValueError("q must be in [0, 1]")
        vals, w = self._weighted()
        cw = np.cumsum(w)
        idx = np.searchsorted(cw, q * self.count, side="left")
        return vals[np.minimum(idx, vals.shape[0] - 1)]


@dataclass(frozen=True)
class SketchKSResult:
    """:func:`ks_from_sketches`: ``statistic`` (float) with ``|statistic - KS| <= error_bound``."""

    statistic: float
    error_bound: float
    n_ref: int
    n_cur: int


def ks_from_sketches(a: QuantileSketch, b: QuantileSketch) -> SketchKSResult:
    """Two-sample Kolmogorov-Smirnov statistic from two :class:`QuantileSketch`.

    ``statistic = max_x |F_a(x) - F_b(x)|`` of the sketches' estimated CDFs, evaluated at every
    retained value (the estimated CDFs are step functions that only jump there). Since each
    estimated CDF is within ``normalized_rank_error`` of its sample's empirical CDF at every x,
    the exact two-sample KS statistic ``D`` satisfies
    ``|statistic - D| <= a.normalized_rank_error + b.normalized_rank_error = error_bound``;
    with no compaction yet (fewer than k values) both are 0 and ``statistic`` is exact.

    Parameters
    ----------
    a, b : QuantileSketch
        Non-empty sketches (``ValueError`` for an empty one, ``TypeError`` for another type);
        ``a`` plays the reference.

    Returns
    -------
    SketchKSResult
        ``statistic`` and ``error_bound`` (floats), ``n_ref = a.count``, ``n_cur = b.count``.

    Notes
    -----
    Time O(r log r) with r the retained values of both; memory O(r).
    """
    for s, name in ((a, "a"), (b, "b")):
        if not isinstance(s, QuantileSketch):
            raise TypeError(f"{name} must be a QuantileSketch, got {type(s).__name__}")
        if s.count == 0:
            raise ValueError(f"{name} is empty (count 0)")
    va, wa = a._weighted()
    vb, wb = b._weighted()
    grid = np.union1d(va, vb)
    ca = np.concatenate([[0], np.cumsum(wa)])[np.searchsorted(va, grid, side="right")] / a.count
    cb = np.concatenate([[0], np.cumsum(wb)])[np.searchsorted(vb, grid, side="right")] / b.count
    stat = float(np.max(np.abs(ca - cb)))
    return SketchKSResult(stat, a.normalized_rank_error + b.normalized_rank_error, a.count, b.count)
