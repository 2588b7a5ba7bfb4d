"""Coreset selection (k-center greedy) and k-means on embeddings; re-exported by :mod:`curata.curate`.

k-center greedy and the k-means++ seeding are vectorised numpy (BLAS matrix-vector /
matrix-matrix products); the k-means Lloyd step (assignment and per-cluster sums) runs in the C++
core (``cpp/src/cluster.cpp``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _array, _core

__all__ = ["k_center_greedy", "kmeans", "kmeans_plus_plus_init", "KMeansResult"]

_KCENTER_METRICS = ("l2", "cosine")
# k-center: at most this many near-maximum candidates are re-checked exactly in float64 per pick.
_REFINE_MAX = 256
# k-means, float64 rows: rows per assignment block are chosen so one block's (rows, k) matrix of
# BLAS dot products has at most this many entries (2**22 entries = 32 MiB).
_BLOCK_ENTRIES = 1 << 22


def _matrix(x: Any, name: str, dtype: np.dtype | None = None) -> np.ndarray:
    a = _array.float_array(x, name, dtype=dtype)
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(a.shape)}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column, got shape {tuple(a.shape)}")
    _array.check_finite_rows(a, name)
    return a


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _owns_buffer(a: np.ndarray, x: Any) -> bool:
    """Whether ``a`` (from :func:`_matrix`) is a conversion made by curata, free to modify in place.

    The conversion comes back as a reshape view (``owndata`` False), so look at the array that
    owns the buffer: it must own its data (a torch tensor's numpy view does not) and not be the
    caller's array or the base of it.
    """
    root = _root(a)
    return bool(root.flags.owndata) and not (isinstance(x, np.ndarray) and root is _root(x))


def _unit_scaled(a: np.ndarray) -> tuple[np.ndarray, float]:
    """``(a * scale, scale)`` with ``scale`` the power of two of :func:`_array.power_of_two_scale`
    (``a`` itself when it is 1): k-means and its seeding are scale-equivariant, but their float32
    squares overflow beyond ~1e19 and underflow below ~1e-19 (NaN or all-zero distances). The
    caller's array is never modified."""
    scale = _array.power_of_two_scale(a)
    return (a if scale == 1.0 else a * a.dtype.type(scale)), scale


def unit_rows(a: np.ndarray, in_place: bool) -> np.ndarray:
    """L2-normalised rows of the float64 array ``a`` (overwriting ``a`` when ``in_place``); an
    all-zero row raises ValueError naming it.

    Each row is first multiplied by the power of two that puts its largest |value| in [0.5, 1):
    exact (the same unit vector), so a row far smaller or larger than the others neither
    underflows to a false zero norm (|v| < ~1e-154) nor overflows (|v| > ~1e154). O(N D) time;
    one (N, D) float64 array of memory unless ``in_place``.
    """
    e = np.frexp(np.maximum(a.max(axis=1, initial=0.0), -a.min(axis=1, initial=0.0)))[1]
    a = np.ldexp(a, -e[:, None], out=a if in_place else None)
    norms = np.sqrt(np.einsum("ij,ij->i", a, a))
    zero = norms == 0
    if zero.any():
        raise ValueError(f"x must have non-zero rows for metric 'cosine', got an all-zero row {int(np.argmax(zero))}")
    a /= norms[:, None]
    return a


def _cosine_tie_tol(d: int) -> float:
    """Squared-distance differences below which two cosine k-center candidates tie.

    Normalising rounds: rows that are exactly as far (parallel rows such as [1, 1] and [3, 3], or
    rows equal up to a permutation of coordinates) get float64 squared distances on the unit
    sphere a few ulps apart, which would break their tie by rounding noise instead of by index.
    Bound on that noise: each normalised coordinate is within ~2 eps64 relative, and a squared
    distance (<= 4) of d terms adds d roundings: (16 + 4 d) eps64, doubled for both sides."""
    return 2.0 * (16 + 4 * d) * float(np.finfo(np.float64).eps)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


# --------------------------------------------------------------------------- k-center greedy


def k_center_greedy(x: Any, n: int, already_selected: Any = None, metric: str = "l2") -> Any:
    """Pick ``n`` points by exact farthest-first traversal (greedy k-center, Gonzalez 1985).

    Each pick is the point whose distance to its nearest already chosen centre is largest. The
    chosen set is a 2-approximation of the optimal k-center covering radius (the coreset of Sener &
    Savarese 2018 without the robust/outlier variant).

    Parameters
    ----------
    x : array-like of shape (N, D)
        Finite float/int embeddings (numpy, torch CPU/CUDA tensors, CuPy). torch CUDA tensors and
        CuPy arrays (with torch installed) run on their GPU with the same rules
        (``curata._kcenter_device``: one matrix-vector product per pick); results come back on
        that device. NaN or infinity raises ValueError.
    n : int
        Number of new points to pick, ``0 <= n <= N - len(already_selected)``.
    already_selected : array-like of int, optional
        Indices already in the set (e.g. the labelled pool). Duplicates are ignored; out of range
        raises ValueError. When given, every one of the ``n`` picks is farthest-first from it.
        When ``None`` (or empty) the traversal starts at **index 0** (returned as the first
        pick) and the remaining ``n - 1`` are farthest-first.
    metric : {"l2", "cosine"}
        ``"l2"``: Euclidean distance. ``"cosine"``: cosine distance ``1 - cos``; rows are
        L2-normalised first (farthest in cosine = farthest in Euclidean on the unit sphere; each
        row is first multiplied by its own power of two, so rows of any finite scale work), so an
        all-zero row raises ValueError.

    Returns
    -------
    indices : (n,) int64, same array kind as ``x``
        The new picks in pick order (never an element of ``already_selected``).

    Notes
    -----
    Deterministic, no randomness. Ties go to the lowest index: distances are computed in float32
    (mean-centred float32 rows, ``|x|^2 - 2 x.c + |c|^2`` by BLAS matrix-vector product) and every point
    within a rigorous float32 rounding bound of the maximum is re-checked with exact float64
    distances to all chosen centres, so the pick is the float64 farthest point (lowest index on an
    exact tie; for ``"cosine"``, distances within the rounding of the normalisation, about
    ``(32 + 8 D) * 2^-52``, count as a tie, so parallel rows such as [1, 1] and [3, 3] tie). When
    more than 256 points are that close to the maximum (mass duplicates) the lowest index among
    the float32 maxima is taken instead. Data whose largest ``|value|`` lies
    outside ``[2^-40, 2^40]`` is first multiplied by a power of two (exact; the picks do not
    depend on the scale), so huge or tiny values do not overflow or underflow the float32 scan
    (a C-contiguous float64 ``x`` is then copied once).

    Complexity O(n * N * D) time (one pass over ``x`` per pick, memory bound). Peak memory
    beyond the input: the float64 rows kept for the exact re-check (none when ``x`` is C-contiguous
    float64 and ``metric="l2"``; else one converted or normalised copy, 8 N D bytes), a centred
    float32 copy scanned each pick (4 N D bytes, centred block by block), plus O(N) float64
    vectors: at most 12 * N * D bytes + O(N) (6 GB at 1M x 512: run it on a sample or on reduced
    dimensions at that size, or on the GPU).
    """
    if _array.torch_device_path(x):
        from . import _kcenter_device  # noqa: PLC0415

        return _kcenter_device.k_center_greedy_torch(x, n, already_selected, metric)
    if not isinstance(metric, str) or metric not in _KCENTER_METRICS:
        raise ValueError(f"metric must be one of {list(_KCENTER_METRICS)}, got {metric!r}")
    n = _count(n, "n")
    a = _matrix(x, "x", dtype=np.dtype(np.float64))
    # A conversion made just now (float32/int/list input) is ours to centre in place; the caller's
    # own float64 array (or a view of a float64 tensor) never is.
    fresh = a is not x and _owns_buffer(a, x)
    N, D = a.shape
    # Farthest-first is scale-invariant, but squares of values beyond ~1e19 overflow float32 (and
    # beyond ~1e154 float64), below ~1e-19 they underflow: NaN or all-zero distances, picks by
    # index. Such data is scaled by a power of two first (exact, the same picks).
    scale = _array.power_of_two_scale(a)
    if scale != 1.0:
        a = np.multiply(a, scale, out=a if fresh else None)
        fresh = True
    if already_selected is None:
        sel = np.zeros(0, dtype=np.int64)
    else:
        sel = _array.int_array(already_selected, "already_selected")
        if sel.size and (sel.min() < 0 or sel.max() >= N):
            raise ValueError(
                f"already_selected must hold indices in [0, {N - 1}], got values in [{sel.min()}, {sel.max()}]"
            )
        sel = np.unique(sel)
    available = N - sel.size
    if n > available:
        raise ValueError(
            f"n must be <= {available} (rows of x not in already_selected), got {n}"
        )
    out = np.zeros(n, dtype=np.int64)
    if n == 0:
        return _array.like(out, x)

    if metric == "cosine":
        a = unit_rows(a, in_place=fresh)
        fresh = True
    # The float32 scan works on centred rows (distances are translation invariant; centring limits
    # cancellation); the exact float64 re-check uses the uncentred rows ``a``, because centring
    # rounds and could split an exact tie of the original data. Centred block by block: no float64
    # temporary of the whole array.
    mean = a.mean(axis=0)
    x32 = np.empty(a.shape, dtype=np.float32)
    step = max(1, (1 << 20) // max(1, D))
    for s0 in range(0, N, step):
        np.subtract(a[s0 : s0 + step], mean, out=x32[s0 : s0 + step], casting="same_kind")
    sq32 = np.einsum("ij,ij->i", x32, x32, dtype=np.float64)  # |x|^2 of the float32 rows
    # Rounding bound of |x|^2 - 2 x.c + |c|^2 in float32 (dot products of length D, float64 norms):
    # |error| <= (D + 2) eps32 (|x| |c|) * 2 + small; use max norms for a global bound, plus the
    # float32 rounding of the centred data itself (relative eps32 per coordinate).
    maxnorm = float(np.sqrt(sq32.max()))
    tol = 4.0 * (D + 4) * float(np.finfo(np.float32).eps) * maxnorm * maxnorm + 1e-300

    tie_tol = _cosine_tie_tol(D) if metric == "cosine" else 0.0
    mind = np.full(N, np.inf, dtype=np.float64)
    chosen: list[int] = []

    def add_centre(i: int) -> None:
        d2 = sq32 - 2.0 * (x32 @ x32[i]).astype(np.float64) + sq32[i]
        np.minimum(mind, d2, out=mind)
        chosen.append(i)

    def exact_min(cands: np.ndarray) -> np.ndarray:
        centres = a[np.asarray(chosen, dtype=np.int64)]
        rows = a[cands]
        best = np.full(cands.size, np.inf)
        step = max(1, (1 << 20) // max(1, cands.size * D))
        for s in range(0, centres.shape[0], step):
            diff = rows[:, None, :] - centres[None, s : s + step, :]
            best = np.minimum(best, np.einsum("ijk,ijk->ij", diff, diff).min(axis=1))
        return best

    for i in sel:
        add_centre(int(i))
    taken = np.zeros(N, dtype=bool)
    taken[sel] = True
    start = 0
    if sel.size == 0:
        out[0] = 0
        add_centre(0)
        taken[0] = True
        start = 1
    for p in range(start, n):
        masked = np.where(taken, -np.inf, mind)
        top = int(np.argmax(masked))
        m = masked[top]
        cands = np.flatnonzero(masked >= m - tol)
        if 1 < cands.size <= _REFINE_MAX:
            ex = exact_min(cands)
            # cands ascending -> lowest index on ties (within tie_tol for cosine)
            top = int(cands[int(np.argmax(ex >= ex.max() - tie_tol))])
        out[p] = top
        taken[top] = True
        if p + 1 < n:
            add_centre(top)
    return _array.like(out, x)


# --------------------------------------------------------------------------- k-means


@dataclass(frozen=True)
class KMeansResult:
    """Result of :func:`kmeans`.

    Attributes
    ----------
    centroids : (k, D) float32 or float64 (the compute dtype), same array kind as ``x``
    labels : (N,) int64, same array kind as ``x``; index of the nearest centroid (lowest on ties)
    inertia : float
        Sum of squared Euclidean distances of the points to their assigned centroids.
    n_iter : int
        Lloyd updates performed (< ``n_iter`` when the assignment stopped changing).
    """

    centroids: Any
    labels: Any
    inertia: float
    n_iter: int


def _sqdist_rows(x: np.ndarray, sq: np.ndarray, cen: np.ndarray) -> np.ndarray:
    """Squared distances (m, N) float64 of the m centres ``cen`` to every row, clamped at 0."""
    c64 = cen.astype(np.float64)
    g = (cen.astype(x.dtype, copy=False) @ x.T).astype(np.float64)
    g *= -2.0
    g += sq[None, :]
    g += np.einsum("ij,ij->i", c64, c64)[:, None]
    return np.maximum(g, 0.0, out=g)


def _assign(x: np.ndarray, sq: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,) int64, squared distance to the assigned centroid (N,) float64).

    Labels are the exact float64 nearest centroid (lowest index on exact ties): each row takes the
    centroid minimising ``|c|^2 - 2 x.c`` over dot products in the dtype of ``x``, unless its
    runner-up lies within a rigorous rounding bound of that minimum, in which case it is decided
    again with float64 differences against its near-best centroids (without the re-check, float32
    rows far from the origin, |x| ~ 1e4, were mislabelled by cancellation). The distance is
    ``max(|x|^2 + |c|^2 - 2 x.c, 0)`` (``sq`` = ``|x|^2``), or the float64 difference for a
    re-decided row. The same rule as the device path (``_kmeans_device._assign``), so both give
    the same labels.

    float32 rows: all in the C++ core (``_core.kmeans_assign_f32``: the kNN dot kernels in tiles
    with the argmin fused into the tile consumer; no (N, k) matrix; ``curata.set_num_threads``
    threads). float64 rows: BLAS products of row blocks whose (rows, k) float64 block holds at most
    2**22 entries (32 MiB), each decided by ``_core.kmeans_assign_f64``.
    """
    c = np.ascontiguousarray(c, dtype=x.dtype)
    x = np.ascontiguousarray(x)
    sq = np.ascontiguousarray(sq, dtype=np.float64)
    if x.dtype == np.float32:
        return _core.kmeans_assign_f32(x, c, sq)
    N = x.shape[0]
    k = c.shape[0]
    labels = np.empty(N, dtype=np.int64)
    dist = np.empty(N, dtype=np.float64)
    rows = max(1, _BLOCK_ENTRIES // max(1, k))
    for s in range(0, N, rows):
        xb = x[s : s + rows]
        m = xb.shape[0]
        # (k, rows) = c @ xb.T: the core reads it centroid by centroid against 8 rows at a time.
        labels[s : s + m], dist[s : s + m] = _core.kmeans_assign_f64(xb, c, sq[s : s + m], c @ xb.T)
    return labels, dist


def _cluster_sums(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per-cluster float64 sums (k, D) (``_core.cluster_sums``): row chunks whose number depends
    on (N, k) only, summed in row order in parallel, then added in chunk order; the bits do not
    depend on the thread count. Extra memory: at most 16 partial (k, D) float64 sums and never
    more than 4 N D bytes."""
    return _core.cluster_sums(np.ascontiguousarray(x), np.ascontiguousarray(labels, dtype=np.int64), k)


def _check_k(x: np.ndarray, k: Any, name: str = "n_clusters") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(k).__name__}")
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"{name} must be in [1, {x.shape[0]}] (rows of x), got {k}")
    return int(k)


def _check_seed(seed: Any) -> int:
    return _array.check_seed(seed)


def _init_pp(a: np.ndarray, sq: np.ndarray, k: int, seed: int) -> np.ndarray:
    N = a.shape[0]
    rng = np.random.default_rng(seed)
    trials = 2 + int(np.log(k))
    idx = np.empty(k, dtype=np.int64)
    idx[0] = int(rng.integers(N))
    d2 = _sqdist_rows(a, sq, a[idx[0] : idx[0] + 1])[0]
    d2[idx[0]] = 0.0
    used = np.zeros(N, dtype=bool)
    used[idx[0]] = True
    for j in range(1, k):
        cum = np.cumsum(d2)
        total = cum[-1]
        u = rng.random(trials)
        if not total > 0:  # fewer distinct points than k: duplicate centres, lowest unused index
            i = int(np.argmin(used))
            best = np.minimum(d2, _sqdist_rows(a, sq, a[i : i + 1])[0])
        else:
            cands = np.minimum(np.searchsorted(cum, u * total, side="right"), N - 1)
            zero = d2[cands] == 0.0
            if zero.any():  # rounding landed on a zero-weight row: the lowest positive one
                cands[zero] = int(np.argmax(d2 > 0.0))
            # All trials against every row in one pass over `a` (one GEMM, not one matrix-vector
            # product per trial); each row of nd is contiguous, so its sum is numpy's pairwise one.
            nd = np.minimum(d2[None, :], _sqdist_rows(a, sq, a[cands]))
            pots = nd.sum(axis=1)
            t = min(range(trials), key=lambda t: (pots[t], cands[t]))  # greedy: lowest potential
            best, i = nd[t], int(cands[t])
        idx[j] = i
        used[i] = True
        d2 = best
        d2[i] = 0.0
    return idx


def kmeans_plus_plus_init(x: Any, k: int, seed: int = 0) -> Any:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): indices of the ``k`` initial centres.

    Parameters
    ----------
    x : array-like of shape (N, D)
        Finite embeddings; float32 stays float32, float64 stays float64, others become float32
        (float16) or float64 (integers). torch CUDA tensors and CuPy arrays (with torch installed)
        run on their GPU (``curata._kmeans_device``) with the same random numbers and rules; the
        picks are the same unless a draw falls within rounding of a cumulative-weight boundary.
    k : int
        ``1 <= k <= N``.
    seed : int
        Seed of ``numpy.random.default_rng``. The first centre is ``rng.integers(N)``. Each next
        one is "greedy" k-means++: ``2 + floor(ln k)`` candidates are drawn with probability
        proportional to the squared distance to the nearest chosen centre (one ``rng.random(t)``
        draw inverted through the cumulative sum) and the candidate that lowers the total squared
        distance most is kept (lowest index on ties). If all remaining weight is zero (fewer than
        ``k`` distinct rows) the lowest unused index is taken.

    Returns
    -------
    indices : (k,) int64, same array kind as ``x``; ``x[indices]`` are the initial centroids.

    Notes
    -----
    O(k * log k * N * D) time: one (t, D) x (D, N) GEMM per pick for its t = 2 + ln k candidates
    (one pass over ``x``), O(N t) extra memory (float64 distances); the same on a GPU.
    """
    if _array.torch_device_path(x):
        from . import _kmeans_device  # noqa: PLC0415

        return _kmeans_device.kmeans_plus_plus_init_torch(x, k, seed)
    a, _ = _unit_scaled(_matrix(x, "x"))
    k = _check_k(a, k, "k")
    seed = _check_seed(seed)
    sq = np.einsum("ij,ij->i", a, a, dtype=np.float64)
    return _array.like(_init_pp(a, sq, k, seed), x)


def kmeans(x: Any, n_clusters: int, n_iter: int = 25, seed: int = 0) -> KMeansResult:
    """Lloyd k-means with k-means++ initialisation.

    Parameters
    ----------
    x : array-like of shape (N, D)
        Finite embeddings (numpy, torch, CuPy). Compute dtype: float32 stays float32, float64
        stays float64, float16 -> float32, integers -> float64. torch CUDA tensors and CuPy arrays
        (with torch installed) run on their GPU (``curata._kmeans_device``: the same seeding random
        numbers, assignment by GEMM tiles of at most 2**24 distances, float64 ``index_add_`` sums,
        the same empty-cluster and stopping rules); the result's arrays stay on that device. Both
        paths decide close calls by float64 differences, so labels can differ from the host path
        only where a point's two nearest centroids are equidistant to float64 rounding (the two
        sum the squared differences in different orders), picks only where a k-means++ draw is
        within rounding of a boundary.
    n_clusters : int
        ``1 <= n_clusters <= N``.
    n_iter : int
        Maximum number of Lloyd updates (>= 0); stops early when no label changes.
    seed : int
        Seed of the k-means++ initialisation (:func:`kmeans_plus_plus_init`); nothing else is random.

    Returns
    -------
    KMeansResult
        ``centroids`` (k, D), ``labels`` (N,) int64, ``inertia`` and ``n_iter`` (updates run).

    Notes
    -----
    Each iteration assigns every point to its nearest centroid and then sets each centroid to
    the mean of its points. Assignment (C++ core): ``|c|^2 - 2 x.c`` from float32 dot products
    (float32 data: curata's kNN dot kernels on tiles of 64 rows x chunks of at most 1008
    centroids, the minimum, runner-up and rounding-bound test fused into the tile pass, on
    ``curata.set_num_threads`` threads) or BLAS float64 products in row blocks of at most 2**22
    entries (float64 data); a point whose two nearest centroids are within the rigorous rounding
    bound of the products is decided again with float64 differences, so labels are the float64
    nearest centroid, lowest index on exact ties, and do not depend on the thread count. The
    means are float64 sums (row chunks summed in parallel and added in a fixed order: the bits do
    not depend on the thread count either). An empty cluster is re-seeded deterministically with
    the point farthest from its assigned centroid (lowest index on ties; a point that is the only
    member of its cluster is skipped, and each point re-seeds at most one cluster per
    iteration), which is moved to that cluster. Labels and inertia are those of the final
    centroids; the inertia sums ``max(|x|^2 + |c|^2 - 2 x.c, 0)``
    (float64 differences for the re-decided points), so it carries the products' rounding.

    Complexity O(n_iter * N * k * D) time (measured about 22 ms per iteration at 100k x 128,
    k = 100 on one AMD EPYC core with AVX-512), plus the seeding's O(k log k * N * D). Extra
    memory: O(N) (labels, distances, norms), a packed and a transposed copy of the centroids
    (8 k D bytes; 16 k D for float64 data) and a float32 tile of at most 64 x 1008 entries
    (258 KiB) per thread for float32 data (a (k, rows) float64 block of at most 32 MiB for float64
    data), at most 16 (k, D) float64 partial sums
    (never more than 4 N D bytes), besides the compute-dtype copy of ``x`` when the input is not
    already a C-contiguous float32/float64 array. On a GPU: the data (plus a compute-dtype copy for
    float16/bfloat16/integer input), O(N), O(k D) and a 192 MiB assignment workspace (float32
    data; 128 MiB for float64).
    """
    if _array.torch_device_path(x):
        from . import _kmeans_device  # noqa: PLC0415

        return _kmeans_device.kmeans_torch(x, n_clusters, n_iter, seed)
    a, scale = _unit_scaled(_matrix(x, "x"))
    k = _check_k(a, n_clusters)
    n_iter = _count(n_iter, "n_iter")
    seed = _check_seed(seed)
    sq = np.einsum("ij,ij->i", a, a, dtype=np.float64)
    c, labels, dist, run = _lloyd(a, sq, a[_init_pp(a, sq, k, seed)].copy(), n_iter)
    inertia = float(dist.sum())
    if scale != 1.0:  # back to the caller's scale (exact: powers of two)
        c = (c.astype(np.float64) / scale).astype(c.dtype)
        inertia = inertia / scale / scale  # may overflow to inf: the true value does too
    return KMeansResult(
        centroids=_array.like_float(c, x), labels=_array.like(labels, x), inertia=inertia, n_iter=run
    )


def _lloyd(
    a: np.ndarray, sq: np.ndarray, c: np.ndarray, n_iter: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Lloyd iterations of :func:`kmeans` from the centroids ``c`` (k, D) in the dtype of ``a``
    (C-contiguous float32/float64 rows, ``sq`` their float64 squared norms): (centroids, labels,
    squared distances to the assigned centroids, updates run). The benchmarks time it from a given
    initialisation."""
    N = a.shape[0]
    k = c.shape[0]
    labels, dist = _assign(a, sq, c)
    run = 0
    for _ in range(n_iter):
        labels = labels.copy()
        counts = np.bincount(labels, minlength=k)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            order = np.lexsort((np.arange(N), -dist))  # farthest first, lowest index on ties
            pos = 0
            for j in empty:
                while counts[labels[order[pos]]] <= 1:  # never empty another cluster
                    pos += 1
                i = order[pos]
                pos += 1
                counts[labels[i]] -= 1
                counts[j] += 1
                labels[i] = j
        c = (_cluster_sums(a, labels, k) / counts[:, None]).astype(a.dtype)
        run += 1
        new_labels, dist = _assign(a, sq, c)
        changed = not np.array_equal(new_labels, labels)
        labels = new_labels
        if not changed:
            break
    return c, labels, dist, run
