"""Dataset curation on embeddings: near-duplicates, uniqueness, outliers, class balance.

Every embedding function works on the exact kNN graph of :func:`curata.search.knn_graph` and
accepts a precomputed one (``graph=(distances, indices)``), so the expensive self-join is done
once and shared::

    g = curata.search.knn_graph(x, 10, "cosine")
    groups = curate.near_duplicates(x, 0.02, k=10, graph=g)
    scores = curate.outlier_scores(x, k=10, graph=g)
    uniq = curate.uniqueness(x, k=3, graph=(g[0][:, :3], g[1][:, :3]))  # best-first, so slicing is valid

Distances. ``knn_graph`` reports cosine *similarity* for ``"cosine"`` and *squared* Euclidean
distance for ``"l2"``; this module converts them to true distances, higher = farther:

* ``"cosine"``: cosine distance ``1 - cos(a, b)`` in ``[0, 2]`` (float32 rounding can leave an exact
  copy at about 1e-7 rather than 0). An all-zero row has no direction: as in
  :func:`curata.search.knn` its similarity with every row is 0, so its distance to every row
  (another all-zero row included) is 1: it is never a near-duplicate and scores as far from all.
* ``"l2"``: Euclidean distance ``sqrt(|a - b|^2)``. Data whose largest ``|value|`` is outside
  ``[2^-40, 2^40]`` (float32 squared distances would overflow or underflow) is multiplied by a
  power of two for the graph (a copy) and the distances are scaled back in float64 (exact).

``"ip"`` is not a distance and is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, MappingView
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _array
from ._cluster import KMeansResult, k_center_greedy, kmeans, kmeans_plus_plus_init
from .search import knn_graph
from ._label_issues import LabelIssues, label_issues  # noqa: E402,F401
from ._representativeness import representativeness  # noqa: E402,F401

__all__ = [
    "near_duplicates",
    "uniqueness",
    "outlier_scores",
    "class_balance",
    "ClassBalance",
    "slice_indices",
    "DISTANCE_METRICS",
    "label_issues",
    "LabelIssues",
    "k_center_greedy",
    "kmeans",
    "kmeans_plus_plus_init",
    "KMeansResult",
    "representativeness",
]

log = logging.getLogger("curata.curate")

DISTANCE_METRICS = ("cosine", "l2")


# --------------------------------------------------------------------------- helpers


def _metric(metric: Any) -> str:
    if not isinstance(metric, str) or metric not in DISTANCE_METRICS:
        raise ValueError(f"metric must be one of {list(DISTANCE_METRICS)}, got {metric!r}")
    return metric


def _k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


def _l2_scale(x: Any) -> float:
    """The power of two that brings ``x``'s largest |value| into [0.5, 1) when it lies outside
    [2^-40, 2^40] (else 1.0): Euclidean distances scale with the data, but the graph's float32
    squared distances overflow for values beyond ~1e19 and underflow to 0 below ~1e-20. Only
    numeric numpy arrays and torch tensors are looked at (anything else is checked by knn_graph)."""
    kind = _array.kind_of(x)
    if kind == "numpy" and isinstance(x, np.ndarray) and x.dtype.kind in "fiu":
        return _array.power_of_two_scale(x)
    torch = _array._torch()
    if (kind == "torch" and not x.is_nested and x.layout == torch.strided and x.numel()
            and (x.is_floating_point() or (x.dtype != torch.bool and not x.is_complex()))):
        return _array.power_of_two_scale(x.detach())
    return 1.0


def _graph_distances(x: Any, k: int, metric: str, graph: Any) -> tuple[np.ndarray, np.ndarray, Any]:
    """(distances (N, k) float64 true distances, indices (N, k) int64, array-kind reference)."""
    scale = 1.0
    if graph is None:
        if x is None:
            raise ValueError("x must be given when graph is None")
        shape = getattr(x, "shape", None)
        n = int(shape[0]) if shape is not None and len(shape) >= 1 else len(x)
        if n >= 2 and k >= n:
            raise ValueError(f"k must be in [1, {n - 1}] (number of rows of x minus 1), got {k}")
        scale = _l2_scale(x) if metric == "l2" else 1.0
        sims, idx = knn_graph(x if scale == 1.0 else x * scale, k, metric)
        d = np.asarray(_array._to_numpy_view(sims, "graph"), dtype=np.float64)
        i = np.asarray(_array._to_numpy_view(idx, "graph"), dtype=np.int64)
        ref = x
    else:
        if not isinstance(graph, (tuple, list)) or len(graph) != 2:
            raise ValueError("graph must be a (distances, indices) pair from curata.search.knn_graph")
        d = _array.float_array(graph[0], "graph distances", dtype=np.dtype(np.float64))
        i = _array._to_numpy_view(graph[1], "graph indices")
        if i.dtype.kind not in "iu":
            raise TypeError(f"graph indices must have an integer dtype, got {i.dtype}")
        i = np.ascontiguousarray(i, dtype=np.int64)
        if d.ndim != 2 or i.shape != d.shape:
            raise ValueError(
                f"graph distances and indices must both have shape (N, k), got {tuple(d.shape)} and {tuple(i.shape)}"
            )
        n = d.shape[0]
        if n < 2:
            raise ValueError(f"graph must have at least 2 rows, got shape {tuple(d.shape)}")
        if d.shape[1] != k:
            raise ValueError(
                f"graph has {d.shape[1]} neighbours per row but k={k}; pass k={d.shape[1]} or the "
                f"first {k} columns of the graph (it is sorted best first)"
            )
        if k >= n:
            raise ValueError(f"k must be in [1, {n - 1}] (number of rows minus 1), got {k}")
        if x is not None:
            a = _array.float_array(x, "x")
            if a.ndim != 2 or a.shape[0] != n:
                raise ValueError(f"x must have shape ({n}, D) to match graph, got {tuple(a.shape)}")
            _array.check_finite_rows(a, "x")
        if not np.isfinite(d).all():
            raise ValueError("graph distances must be finite, got NaN or infinity")
        if i.size and (i.min() < 0 or i.max() >= n):
            raise ValueError(f"graph indices must be in [0, {n - 1}], got values in [{i.min()}, {i.max()}]")
        if np.any(i == np.arange(n)[:, None]):
            raise ValueError("graph must not list a row among its own neighbours (use knn_graph)")
        # Best first: similarities non-increasing (cosine), squared distances non-decreasing (l2).
        step = np.diff(d, axis=1)
        if metric == "cosine":
            if np.any(step > 1e-6) or np.any(np.abs(d) > 1.0 + 1e-5):
                raise ValueError(
                    "graph distances must be cosine similarities in [-1, 1], best first, as "
                    "knn_graph(x, k, 'cosine') returns; got values that are not (wrong metric?)"
                )
        else:
            if np.any(step < -1e-6 * (1.0 + np.abs(d[:, 1:]))) or np.any(d < 0):
                raise ValueError(
                    "graph distances must be squared L2 distances >= 0, best first, as "
                    "knn_graph(x, k, 'l2') returns; got values that are not (wrong metric?)"
                )
        ref = x if x is not None else graph[1]
    if metric == "cosine":
        dist = np.clip(1.0 - d, 0.0, 2.0)
    else:
        dist = np.sqrt(np.maximum(d, 0.0))
        if scale != 1.0:
            # exact (a power of two), after the square root: data near 2^±600 has squared
            # distances beyond float64 too, and scale**2 would itself overflow or underflow
            dist /= scale
    return dist, i, ref


def _components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Connected components of an undirected graph on n nodes: each node's smallest member.

    Vectorised union-find: hook every edge's larger root onto its smaller root
    (``np.minimum.at``), then compress paths by pointer jumping; repeat until every edge joins
    equal roots. Roots only ever decrease, so it terminates, and a root is its component's minimum.
    """
    parent = np.arange(n, dtype=np.int64)
    if u.size == 0:
        return parent
    while True:
        ru, rv = parent[u], parent[v]
        diff = ru != rv
        if not diff.any():
            return parent
        ru, rv = ru[diff], rv[diff]
        np.minimum.at(parent, np.maximum(ru, rv), np.minimum(ru, rv))
        while True:
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt


# --------------------------------------------------------------------------- near-duplicates


def near_duplicates(x: Any, threshold: float, metric: str = "cosine", k: int = 10, graph: Any = None) -> Any:
    """Group near-duplicate rows: rows within ``threshold`` of each other share a group id.

    Two rows are *linked* when one is among the other's ``k`` nearest neighbours and their
    distance (cosine distance ``1 - cos`` or Euclidean distance, see the module notes) is
    ``<= threshold``; links are symmetric. Groups are the connected components of the links, so
    near-duplicates chain: ``a ~ b`` and ``b ~ c`` put ``a`` and ``c`` in one group even when
    ``d(a, c) > threshold``.

    Parameters
    ----------
    x : array of shape (N, D), or None when ``graph`` is given
        Finite embeddings, N >= 2 (any float/integer dtype; computed in float32).
    threshold : float
        Largest distance that counts as a duplicate, >= 0. For ``"cosine"`` note that float32
        rounding puts exact copies at up to about 1e-7, so use a small positive threshold.
    metric : {"cosine", "l2"}
    k : int
        Neighbours examined per row, 1 <= k <= N - 1.
    graph : (distances, indices), optional
        ``curata.search.knn_graph(x, k, metric)`` computed beforehand (same ``k`` and metric; a
        different ``k`` is refused, a different metric only when its values do not fit).

    Returns
    -------
    groups : int64 array of shape (N,)
        ``groups[i]`` is the smallest row index of row i's group; a row without duplicates has
        ``groups[i] == i``. Same array kind as ``x`` (or the graph's indices when ``x`` is None).
        ``np.unique(groups)`` lists one representative (the first row) per group.

    Notes
    -----
    Only pairs within each row's k nearest neighbours are examined. A cluster of more than
    ``k + 1`` mutual duplicates is still joined through chains as long as its kNN links connect
    it (they almost always do: every member links to k others in the cluster). What can be
    missed: a pair within ``threshold`` where neither is in the other's k-list because each has
    at least k *closer* neighbours (e.g. two points at the edges of a dense cluster of more than
    k members, each with k nearer duplicates) and no chain joins them; a larger ``k`` removes
    that case.

    Time: the kNN graph, O(N^2 D) (skipped with ``graph``), then O(N k) per union-find round
    (a few rounds: roots are hooked onto smaller roots and paths compressed by pointer jumping).
    Peak memory beyond the inputs: the graph when it is computed here (12 N k bytes), plus about
    four float64 (N, k) arrays while it is checked and converted to distances (32 N k bytes;
    measured 60 MiB at N = 200k, k = 10) and O(N) for the union-find.

    Raises
    ------
    ValueError
        threshold < 0 or not finite, k out of range, NaN/inf in ``x``, a graph whose shape, k or
        values do not match, unknown metric.
    """
    metric = _metric(metric)
    limit = _array.real_number(threshold, "threshold", "a number")  # a huge Python int: inf
    if not np.isfinite(limit) or limit < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold}")
    kk = _k(k)
    dist, idx, ref = _graph_distances(x, kk, metric, graph)
    n = dist.shape[0]
    rows, cols = np.nonzero(dist <= limit)
    groups = _components(n, rows.astype(np.int64), idx[rows, cols])
    return _array.like(groups, ref)


# --------------------------------------------------------------------------- scores


def uniqueness(x: Any, k: int = 3, metric: str = "cosine", graph: Any = None) -> Any:
    """Mean distance to the ``k`` nearest other rows; higher = more unique.

    Parameters
    ----------
    x : array of shape (N, D), or None when ``graph`` is given
        Finite embeddings, N >= 2.
    k : int
        Neighbours averaged, 1 <= k <= N - 1.
    metric : {"cosine", "l2"}
        Cosine distance ``1 - cos`` (in [0, 2]) or Euclidean distance.
    graph : (distances, indices), optional
        ``curata.search.knn_graph(x, k, metric)``.

    Returns
    -------
    scores : float64 array of shape (N,)
        Unnormalised mean distances (0 for a row with k exact copies), same array kind as ``x``.

    Notes
    -----
    FiftyOne's uniqueness uses a *weighted* mean of the 3 nearest distances (weights favouring
    the nearest) and rescales by the maximum to [0, 1]; this one is the plain mean in the
    metric's own units, so scores are comparable across datasets and stable when rows are added.
    Divide by ``scores.max()`` for the rescaled form; rankings differ from FiftyOne's only where
    the weighting changes the order.

    Time O(N^2 D) for the graph (skipped with ``graph``), O(N k) after. Peak memory as
    :func:`near_duplicates`: the graph if computed here (12 N k bytes) plus about 32 N k bytes.
    """
    metric = _metric(metric)
    dist, _, ref = _graph_distances(x, _k(k), metric, graph)
    return _array.like(dist.mean(axis=1), ref)


def outlier_scores(x: Any, k: int = 10, metric: str = "cosine", graph: Any = None) -> Any:
    """Outlier / edge-case score in [0, 1): higher = farther from its neighbours.

    With ``m`` the mean distance of each row to its ``k`` nearest neighbours (as
    :func:`uniqueness`), the score is ``m / (m + c)`` where ``c`` is the median of ``m`` over
    the dataset (or, if that median is 0 because most rows have exact copies, the median of the
    positive ``m``). The transform is monotone in ``m``, maps 0 to 0, the median row to 0.5 and
    tends to 1 for far outliers; ranking by score equals ranking by ``m``. If every ``m`` is 0
    all scores are 0.

    Parameters
    ----------
    x : array of shape (N, D), or None when ``graph`` is given
    k : int
        1 <= k <= N - 1.
    metric : {"cosine", "l2"}
    graph : (distances, indices), optional
        ``curata.search.knn_graph(x, k, metric)``.

    Returns
    -------
    scores : float64 array of shape (N,), in [0, 1), same array kind as ``x``.

    Notes
    -----
    Scores are relative to the dataset (through ``c``): a score says how unusual a row is
    compared with the typical row of the same data. Time O(N^2 D) for the graph, O(N k) after.
    Peak memory as :func:`near_duplicates`: the graph if computed here (12 N k bytes) plus about
    32 N k bytes (measured 61 MiB at N = 200k, k = 10).
    """
    metric = _metric(metric)
    dist, _, ref = _graph_distances(x, _k(k), metric, graph)
    m = dist.mean(axis=1)
    c = float(np.median(m))
    if c <= 0:
        pos = m[m > 0]
        c = float(np.median(pos)) if pos.size else 0.0
    scores = np.zeros_like(m) if c == 0 else m / (m + c)
    return _array.like(scores, ref)


# --------------------------------------------------------------------------- labels


def _labels(labels: Any) -> np.ndarray:
    a = _array._to_numpy_view(labels, "labels") if _array.kind_of(labels) != "numpy" else np.asarray(labels)
    if a.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {tuple(a.shape)}")
    if a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
        raise ValueError(f"labels must not contain NaN or infinity, got one in row {int(np.argmax(~np.isfinite(a)))}")
    if a.dtype.kind == "O":
        # Float NaN/inf held in an object array (e.g. a pandas column with missing values): NaN is
        # not equal to itself, so each would be a class of its own and np.unique would not sort.
        for row, v in enumerate(a.tolist()):
            if isinstance(v, (float, np.floating)) and not np.isfinite(v):
                raise ValueError(f"labels must not contain NaN or infinity, got one in row {row}")
    if a.dtype.kind not in "iufbUSO":
        raise TypeError(f"labels must be integers, floats, booleans or strings, got dtype {a.dtype}")
    return a


@dataclass(frozen=True)
class ClassBalance:
    """Per-class counts of a label vector.

    Attributes
    ----------
    classes : array of shape (C,)
        The distinct labels, sorted (``np.unique`` order).
    counts : int64 array of shape (C,)
        Rows per class.
    fractions : float64 array of shape (C,)
        ``counts / counts.sum()``.
    imbalance_ratio : float
        Largest count / smallest count (1.0 when balanced; classes absent from ``labels`` are not
        counted, so list them yourself if they matter).
    majority, minority : label
        The most / least frequent class (ties: the first in sorted order).
    """

    classes: np.ndarray
    counts: np.ndarray
    fractions: np.ndarray
    imbalance_ratio: float
    majority: Any
    minority: Any


def class_balance(labels: Any) -> ClassBalance:
    """Counts per class and the imbalance ratio of a label vector.

    Parameters
    ----------
    labels : array-like of shape (N,), N >= 1
        Integer, float (finite), boolean or string class labels; torch tensors are accepted.

    Returns
    -------
    ClassBalance

    Notes
    -----
    Time O(N log N) (a sort), memory O(N).
    """
    a = _labels(labels)
    if a.size == 0:
        raise ValueError("labels must have at least one element, got shape (0,)")
    classes, counts = _array.unique_labels(a, "labels", return_counts=True)
    counts = counts.astype(np.int64)
    return ClassBalance(
        classes=classes,
        counts=counts,
        fractions=counts / counts.sum(),
        imbalance_ratio=float(counts.max() / counts.min()),
        majority=_scalar(classes[int(np.argmax(counts))]),
        minority=_scalar(classes[int(np.argmin(counts))]),
    )


def _scalar(v: Any) -> Any:
    """A Python scalar: numpy scalars via ``.item()``; elements of object arrays already are."""
    return v.item() if isinstance(v, np.generic) else v


def slice_indices(labels: Any, classes: Any) -> Any:
    """Rows whose label is one of ``classes``.

    Parameters
    ----------
    labels : array-like of shape (N,)
    classes : label or sequence of labels
        A single label or a list (tuple, array, set, iterator) of them; labels absent from
        ``labels`` simply match nothing.

    Returns
    -------
    indices : int64 array of shape (M,)
        Ascending row indices (each row once), same array kind as ``labels``. Call once per class
        for per-class slices.

    Notes
    -----
    Time O((N + C) log C) with C = len(classes), memory O(N).
    """
    a = _labels(labels)
    if isinstance(classes, (AbstractSet, Mapping, MappingView, Iterator)):
        # np.asarray would wrap these in a 0-d object array: one "label" that matches nothing.
        classes = list(classes)
    try:
        host = classes if _array.kind_of(classes) == "numpy" else _array._to_numpy_view(classes, "classes")
        wanted = np.asarray(host)
    except ValueError as e:  # ragged nesting
        raise ValueError(f"classes must be a label or a 1-D sequence of labels: {e}") from None
    if wanted.ndim > 1:
        raise ValueError(f"classes must be a label or a 1-D sequence of labels, got shape {wanted.shape}")
    wanted = wanted.reshape(-1)
    if a.size == 0 or wanted.size == 0:
        out = np.zeros(0, dtype=np.int64)
    else:
        try:
            mask = np.isin(a, wanted)
        except TypeError as e:  # pragma: no cover - numpy raises for incomparable kinds
            raise TypeError(f"classes must be comparable with labels ({a.dtype}), got {wanted.dtype}") from e
        out = np.flatnonzero(mask).astype(np.int64)
    return _array.like(out, labels)
