"""Independent float64 kNN reference for the search tests (CPU and GPU).

Scores are computed directly in float64 (no |q|^2 - 2 q.b + |b|^2 expansion), rounded to float32,
and ranked by (float32 score, lower index), which is the documented contract of the torch path.
"""

from __future__ import annotations

import numpy as np


def scores64(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """(M, N) float64 scores: similarity for ip/cosine, squared distance for l2."""
    b = np.asarray(base, dtype=np.float64)
    q = np.asarray(queries, dtype=np.float64)
    if metric == "l2":
        out = np.empty((q.shape[0], b.shape[0]))
        for r in range(q.shape[0]):
            diff = b - q[r]
            out[r] = np.einsum("ij,ij->i", diff, diff)
        return out
    dot = q @ b.T
    if metric == "ip":
        return dot
    den = np.sqrt(np.einsum("ij,ij->i", q, q))[:, None] * np.sqrt(np.einsum("ij,ij->i", b, b))[None, :]
    return np.where(den > 0, dot / np.where(den > 0, den, 1.0), 0.0)


def knn_reference(base, queries, k: int, metric: str, exclude_self: bool = False):
    with np.errstate(over="ignore"):  # scores beyond float32 become +-inf, as documented
        s32 = scores64(base, queries, metric).astype(np.float32)
    key = s32 if metric != "l2" else -s32
    key = key.astype(np.float64)
    if exclude_self:
        np.fill_diagonal(key, -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")[:, :k]  # stable: equal keys keep index order
    return np.take_along_axis(s32, order, axis=1), order.astype(np.int64)


def assert_same_knn(d, i, base, queries, k, metric, exclude_self=False, maxulp=1):
    """Results equal the reference except where two float32 scores are within ``maxulp``.

    Every returned index is scored by the reference: its float32 score must be within ``maxulp``
    of the reference score at the same rank (so a missed true neighbour fails), indices are
    unique per row and never the row itself under ``exclude_self``.
    """
    d = np.asarray(d)
    i = np.asarray(i)
    rd, ri = knn_reference(base, queries, k, metric, exclude_self)
    assert d.dtype == np.float32 and i.dtype == np.int64
    assert d.shape == rd.shape and i.shape == ri.shape
    for row in range(i.shape[0]):
        assert len(set(i[row].tolist())) == k, f"duplicate neighbours in row {row}"
    if exclude_self:
        assert not (i == np.arange(i.shape[0])[:, None]).any(), "a row is its own neighbour"
    np.testing.assert_array_max_ulp(d, rd, maxulp=maxulp)
    with np.errstate(over="ignore"):
        got = scores64(base, queries, metric).astype(np.float32)
    got = np.take_along_axis(got, i, axis=1)
    np.testing.assert_array_max_ulp(got, rd, maxulp=maxulp)
    return rd, ri
