"""Exact k-nearest-neighbour search over embedding vectors.

:func:`knn` finds, for every query row, the ``k`` best rows of a base set under inner product,
squared Euclidean distance or cosine similarity; :func:`knn_graph` is the self-join of one set
(each point's neighbours, excluding itself); :class:`Index` keeps a growing set of vectors with
int64 ids (add, remove, search, range search, save/load; float32 or float16 storage). Both are exact brute force (recall 1.0), computed in
float32 by the C++ core: blocks of queries are multiplied against blocks of base rows by
hand-vectorised kernels (AVX-512/AVX2/baseline variants picked at run time, no BLAS; every dot
product evaluated in one fixed order, so a query's results do not depend on its batch), and each
query keeps a bounded heap of its best candidates. Fewer than 20 queries split the base
across threads instead of the queries (a latency path for single lookups).

Input rules shared by both functions:

* numpy arrays, array-likes and torch tensors of shape ``(N, D)``; float32 is used as is,
  float64/float16/integers are converted to float32 once (one temporary copy of that argument),
  as is a non-contiguous array.
* torch CUDA tensors and CuPy arrays (CuPy through DLPack, when torch is installed) are searched
  on their GPU by :mod:`curata._search_device` (tiled cuBLAS GEMM + top-k, candidates re-ranked
  in float64 and verified against a rounding bound, so results stay exact; float16/bfloat16
  tensors are searched in 16-bit without losing exactness). Results are the kind and device of
  ``queries``. Without torch, CuPy input is copied to the host (a one-time warning says so).
* NaN or infinite values raise ``ValueError`` naming the argument and the first bad row.
* Results are ``(distances, indices)``: float32 and int64 arrays of shape ``(M, k)``, best first,
  of the same kind as ``queries`` (``x`` for :func:`knn_graph`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from . import _array, _core
from ._index import Index

__all__ = ["knn", "knn_graph", "Index", "METRICS"]

log = logging.getLogger("curata.search")

METRICS = {"ip": 0, "l2": 1, "cosine": 2}
_warned_cuda = False


def _device_module(*arrays: Any) -> Any:
    """curata._search_device when an argument lives on a GPU and torch can be imported."""
    global _warned_cuda
    if not any(_array.on_cuda(a) for a in arrays):
        return None
    if not _array.torch_device_path(*arrays):
        if not _warned_cuda:
            _warned_cuda = True
            log.warning("curata.search needs torch for its GPU path; CuPy input is copied to the host")
        return None
    from . import _search_device  # noqa: PLC0415

    return _search_device


def _vectors(x: Any, name: str) -> np.ndarray:
    a = _array.float_array(x, name, dtype=np.dtype(np.float32), finite_cast=True)
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(a.shape)}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column, got shape {tuple(a.shape)}")
    return a


def _raise_nonfinite(row: int, name: str) -> None:
    # The core finds non-finite rows while searching (every dot product with one is non-finite),
    # so valid input pays no extra pass over the data.
    if row >= 0:
        raise ValueError(f"{name} must be finite, got NaN or infinity in row {row}")


def _metric_code(metric: Any) -> int:
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    return METRICS[metric]


def _k(k: Any, limit: int, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 1 <= k <= limit:
        raise ValueError(f"k must be in [1, {limit}] ({what}), got {k}")
    return int(k)


def _out(distances: np.ndarray, indices: np.ndarray, reference: Any) -> tuple[Any, Any]:
    return _array.like(distances, reference), _array.like(indices, reference)


def knn(base: Any, queries: Any, k: int, metric: str = "ip") -> tuple[Any, Any]:
    """The ``k`` nearest base rows of every query row, exactly.

    Parameters
    ----------
    base : array of shape (N, D)
        The vectors searched; N >= 1, D >= 1, finite.
    queries : array of shape (M, D)
        The query vectors (M may be 0); finite.
    k : int
        Neighbours per query, 1 <= k <= N.
    metric : {"ip", "l2", "cosine"}
        ``"ip"``: inner product ``<q, b>``, largest first. ``"l2"``: squared Euclidean distance
        ``|q - b|^2`` (as faiss reports it; take the square root yourself), smallest first,
        computed as ``|q'|^2 + |b'|^2 - 2<q', b'>`` on rows shifted by a centre ``mu`` of the
        base (``q' = q - mu``, ``b' = b - mu``; ``mu = 0`` for data near the origin) and clamped
        at 0, so very close pairs carry an absolute error of about
        ``1e-7 * (|q - mu|^2 + |b - mu|^2)``, also for data far from the origin; identical rows
        give exactly 0.
        ``"cosine"``: ``<q, b> / (|q| |b|)``, largest first; a zero vector has similarity 0 with
        everything (it is not an error). Scale-free for any finite row: rows whose largest
        ``|value|`` is outside ``[2^-50, 2^50]`` (float32 squared norms would overflow or
        underflow) are multiplied by a power of two first, in a copy (exact: the same cosines).

    Returns
    -------
    distances : float32 array of shape (M, k)
        Best first: similarities for ``"ip"``/``"cosine"``, squared distances for ``"l2"``.
    indices : int64 array of shape (M, k)
        Base row of each neighbour. Equal distances are ordered by lower index, and a tie at the
        k-th place keeps the lowest indices. Exact for float32 arithmetic: a float64 reference
        can order two neighbours whose distances differ by less than float32 rounding the other
        way.

    Raises
    ------
    ValueError
        Wrong shape, different D, empty base, k out of range, NaN/inf rows, unknown metric.
    TypeError
        Non-numeric arrays, non-integer k.

    Notes
    -----
    Time O(M N D) multiply-adds on ``curata.get_num_threads()`` threads. Peak memory beyond
    inputs and outputs: the float32 copies of converted inputs, N floats of base norms
    (``"l2"``/``"cosine"``), and per thread a fixed 96 x 512 float tile and the block's queries
    packed for the kernel (96 x D floats, D rounded up to 16); with fewer than 20 queries and
    k < 128, additionally threads x M x k candidates (12 bytes each). From k = 128 on, the
    candidates of a query are kept in a buffer of up to 2k (16 bytes each) that is cut back to the
    best k when full (O(1) amortised per candidate instead of a heap's O(log k)): per thread 96
    buffers of min(2k, N); with fewer than 20 queries, which split the base across threads, per
    thread M buffers of min(2k, N / threads) plus M of min(2k, N) for the merge (at most
    2 x M x N candidates in all). Never an N x M matrix.
    Results do not depend on the thread count or on how queries are batched.

    GPU input (torch CUDA tensors, CuPy arrays; either argument) runs on that GPU through
    :func:`curata._search_device.knn_torch`: tiled cuBLAS GEMMs + ``topk`` of ``k + margin``
    candidates, re-scored in float64 and verified against a bound on the GEMM's rounding error
    (queries that fail are searched again with a wider margin). Results are the exact top k of
    the float64 scores rounded to float32, ties (in float32) by lower index, any k <= N; a
    float16/bfloat16 base is searched in 16-bit and is exact for its stored values. Distances
    can differ from this CPU path by float32 rounding (the CPU computes "l2" through norms), so
    neighbours closer than that may swap. Peak GPU memory: inputs, outputs, 4 N bytes and a
    1 GiB workspace (``knn_torch(workspace_bytes=...)``). Not yet run on a GPU (tested with the
    same code on CPU tensors).
    """
    device = _device_module(base, queries)
    if device is not None:
        return device.knn(base, queries, k, metric)
    code = _metric_code(metric)
    b = _vectors(base, "base")
    q = _vectors(queries, "queries")
    if b.shape[0] == 0:
        raise ValueError("base must have at least one row, got shape (0, D)")
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"queries must have {b.shape[1]} columns like base, got shape {tuple(q.shape)}")
    # (cosine: the core rescales rows at the edge of float32's range itself, see _array.cosine_safe_rows)
    kk = _k(k, b.shape[0], "number of base rows")
    distances, indices, bad_base, bad_query = _core.knn(b, q, kk, code, False)
    _raise_nonfinite(bad_base, "base")
    _raise_nonfinite(bad_query, "queries")
    return _out(distances, indices, queries)


def knn_graph(x: Any, k: int, metric: str = "ip") -> tuple[Any, Any]:
    """The ``k`` nearest other rows of every row of ``x`` (a kNN graph, self-join).

    Row ``i`` never appears among its own neighbours; exact duplicates of row ``i`` at other
    indices do (at distance 0 for ``"l2"``), ordered by index among equal distances. Under
    ``"ip"`` a row is not necessarily its own best match, and the exclusion is still by index.

    Parameters
    ----------
    x : array of shape (N, D)
        N >= 2 finite vectors.
    k : int
        Neighbours per row, 1 <= k <= N - 1.
    metric : {"ip", "l2", "cosine"}
        As in :func:`knn`.

    Returns
    -------
    distances : float32 array of shape (N, k)
    indices : int64 array of shape (N, k)
        Best first, as in :func:`knn`.

    Notes
    -----
    Time about N^2 D / 2 multiply-adds: a symmetric self-join computes each pair's dot product
    once, in tiles of 96 x 96 rows on and above the diagonal, and feeds it to both rows' heaps.
    Results are bit for bit those of ``knn(x, x, k, metric)`` with row i excluded from row i's
    list (same distances, indices and tie order), whatever the thread count. Below
    4 x ``curata.get_num_threads()`` blocks of 96 rows (N < 384 per thread) the threads would
    wait on each other, and the query x base path of :func:`knn` (N^2 D multiply-adds) is used.
    Peak memory beyond inputs and outputs: the float32 copy of a converted ``x``, N floats of
    norms (``"l2"``/``"cosine"``), 32 bytes of heap state per row, and per thread a ring of 8
    pairs of 96 x 96 float tiles (576 KiB; a row computes up to 8 tiles ahead of the row before
    it) and one packed 96 x D block, plus, for ``"l2"`` on data far from the origin, two shifted
    96 x D blocks. No second copy
    of ``x``, never an N x N matrix. GPU input runs on the GPU as in :func:`knn`
    (:func:`curata._search_device.knn_graph_torch`), with the same exclusion rule.
    """
    device = _device_module(x)
    if device is not None:
        return device.knn_graph(x, k, metric)
    code = _metric_code(metric)
    a = _vectors(x, "x")
    if a.shape[0] < 2:
        raise ValueError(f"x must have at least 2 rows for a kNN graph, got shape {tuple(a.shape)}")
    kk = _k(k, a.shape[0] - 1, "number of rows of x minus 1")
    # (cosine: the core rescales rows at the edge of float32's range itself, see _array.cosine_safe_rows)
    distances, indices, bad = _core.knn_graph(a, kk, code)
    _raise_nonfinite(bad, "x")
    return _out(distances, indices, x)
