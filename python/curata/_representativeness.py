"""Representativeness scores: how typical a row is of a dense region of the data (k-means based)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _array
from ._cluster import KMeansResult, _check_k, _cluster_sums, _matrix, kmeans, unit_rows

__all__ = ["representativeness"]

_METRICS = ("cosine", "l2")


def _result_labels(result: Any, n_rows: int, n_cols: int, n_clusters: int) -> np.ndarray:
    if not isinstance(result, KMeansResult):
        raise TypeError(f"result must be a curata.curate.KMeansResult, got {type(result).__name__}")
    cshape = tuple(getattr(result.centroids, "shape", ()))
    if cshape != (n_clusters, n_cols):
        raise ValueError(
            f"result centroids must have shape ({n_clusters}, {n_cols}) (n_clusters, columns of x), got {cshape}"
        )
    labels = _array.int_array(result.labels, "result labels")
    if labels.shape != (n_rows,):
        raise ValueError(f"result labels must have shape ({n_rows},) (rows of x), got {tuple(labels.shape)}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_clusters):
        raise ValueError(
            f"result labels must be in [0, {n_clusters - 1}], got values in [{labels.min()}, {labels.max()}]"
        )
    return np.ascontiguousarray(labels, dtype=np.int64)


def representativeness(
    x: Any,
    n_clusters: int,
    metric: str = "cosine",
    seed: int = 0,
    n_iter: int = 25,
    result: KMeansResult | None = None,
) -> Any:
    """Representativeness in [0, 1]: higher = more typical of a large, dense cluster.

    The rows are clustered with :func:`curata.curate.kmeans` (or ``result`` is used). With
    ``c(i)`` row i's cluster, ``n_c`` its size, ``mu_c`` the float64 mean of its members and
    ``d_i = |x_i - mu_c(i)|`` (Euclidean; on L2-normalised rows for ``"cosine"``)::

        s_c   = sqrt(mean of d_j^2 over the members j of c)       # RMS radius of the cluster
        t_i   = 1 / (1 + d_i^2 / s_c^2)    (t_i = 1 when s_c = 0) # typicality, in (0, 1]
        w_c   = n_c / max_c' n_c'                                  # size share, in (0, 1]
        score = w_c(i) * t_i                                       # in (0, 1]

    The score decreases strictly with the standardised distance ``d_i / s_c`` and increases with
    the cluster size; the member closest to the mean of the largest cluster scores near 1, a row
    at one RMS radius from its mean scores ``w_c / 2``, far-out rows and rows of small clusters
    tend to 0. Dividing by the cluster's own radius makes scores comparable between tight and
    loose clusters; ``t`` is the Cauchy (Student-t, one degree of freedom) kernel of the
    standardised distance, heavy-tailed so distant rows stay ordered rather than all rounding
    to 0.

    Parameters
    ----------
    x : array-like of shape (N, D)
        Finite embeddings (numpy, torch CPU/CUDA tensors, CuPy; device input is copied to the
        host). NaN or infinity raises ValueError.
    n_clusters : int
        ``1 <= n_clusters <= N``.
    metric : {"cosine", "l2"}
        ``"cosine"``: rows are L2-normalised first (an all-zero row raises ValueError), both for
        the clustering and for the scores. ``"l2"``: raw rows.
    seed : int
        k-means++ seed (ignored when ``result`` is given).
    n_iter : int
        Maximum Lloyd iterations (ignored when ``result`` is given).
    result : KMeansResult, optional
        A precomputed ``kmeans`` of the same rows (of the normalised rows for ``"cosine"``) with
        ``n_clusters`` clusters. Only its ``labels`` define the clusters; ``mu_c`` is always
        recomputed in float64 as the mean of the members, so the scores do not depend on the
        result's centroid dtype and are invariant to permuting the rows together with the labels.

    Returns
    -------
    scores : float64 array of shape (N,), in (0, 1], same array kind as ``x``.

    Notes
    -----
    Why the centroid rather than TypiClust's typicality (inverse mean distance to the k nearest
    neighbours inside the cluster; Hacohen, Dekel & Weinshall, "Active Learning on a Budget",
    ICML 2022): the kNN version costs O(sum_c n_c^2 D) (O(N^2 D) when one cluster dominates)
    and its scale differs between clusters, whereas the distance to the k-means centroid is
    O(N D) after clustering and is the prototypicality measure used for data pruning by
    Sorscher et al., "Beyond neural scaling laws", NeurIPS 2022. This score standardises that
    distance by the cluster radius and weights it by the cluster's size share so small clusters
    (rare modes, outlier groups) rank below the bulk.

    Complexity: the clustering, O(n_iter * N * n_clusters * D) (skipped with ``result``), then
    O(N * D). Peak extra memory at most 24 * N * D bytes + O(N + n_clusters * D): a float64 copy
    of ``x`` (none for float64 ``"l2"`` input), one (N, D) float64 work array (the differences to
    the means; the per-cluster sums take at most 16 (n_clusters, D) float64 partials, never more
    than 4 * N * D bytes) and, for ``"cosine"`` without ``result``, the normalised rows in the
    compute dtype for k-means. Each score is at least ``w_c / (1 + n_c)`` (since
    ``d_i^2 <= n_c s_c^2``), so it never underflows to 0. Scale-free for any finite data: ``"l2"``
    data whose largest ``|value|`` is outside ``[2^-40, 2^40]`` is multiplied by a power of two
    first (exact, in a float64 copy), and ``"cosine"`` rows each by their own power of two before
    normalising, so huge or tiny values neither overflow nor underflow.

    Raises
    ------
    ValueError
        Unknown metric, NaN/infinity or an all-zero row (cosine) in ``x``, ``n_clusters`` out of
        range, a ``result`` whose centroids are not (n_clusters, D) or whose labels are not (N,)
        in range.
    TypeError
        Non-integer ``n_clusters``, ``seed`` or ``n_iter``; ``result`` not a KMeansResult.
    """
    if not isinstance(metric, str) or metric not in _METRICS:
        raise ValueError(f"metric must be one of {list(_METRICS)}, got {metric!r}")
    a = _matrix(x, "x")
    N, D = a.shape
    k = _check_k(a, n_clusters)
    if metric == "cosine":
        # Normalised in float64 (a copy); k-means runs on it in the compute dtype.
        x64 = unit_rows(np.array(a, dtype=np.float64), in_place=True)
        if result is None:
            a = x64.astype(a.dtype, copy=False)
    else:
        x64 = np.asarray(a, dtype=np.float64)
        # The scores are scale-free: data whose float64 squares would overflow or underflow is
        # multiplied by a power of two first (exact; a copy, never the caller's array).
        scale = _array.power_of_two_scale(x64)
        if scale != 1.0:
            x64 = x64 * scale
    if result is None:
        labels = np.asarray(_array._to_numpy_view(kmeans(a, k, n_iter=n_iter, seed=seed).labels, "labels"))
        labels = np.ascontiguousarray(labels, dtype=np.int64)
    else:
        labels = _result_labels(result, N, D, k)

    counts = np.bincount(labels, minlength=k)
    sums = _cluster_sums(x64, labels, k)  # C++ core, no sorted copy of the rows
    mu = sums / np.maximum(counts, 1)[:, None]
    diff = mu[labels]
    np.subtract(x64, diff, out=diff)  # x64 may be the caller's float64 array: never written
    d2 = np.einsum("ij,ij->i", diff, diff)
    del diff
    s2 = np.bincount(labels, weights=d2, minlength=k) / np.maximum(counts, 1)
    s2i = s2[labels]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(s2i > 0, 1.0 / (1.0 + d2 / np.where(s2i > 0, s2i, 1.0)), 1.0)
    w = counts / counts.max()
    scores = w[labels] * t
    return _array.like(scores, x)
