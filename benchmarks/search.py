"""Suite ``search``: exact kNN, curata.search.knn vs faiss-cpu IndexFlatIP / IndexFlatL2.

    python -m benchmarks.run search [--quick] [--only REGEX]

Data: standard normal float32 vectors, D = 512, k = 10, one seeded base of 200k rows (50k with
``--quick``) and the first M rows of one seeded query set. Cases: M = 2000 (throughput: both
libraries multiply blocks of queries against the base), and M = 64, 16, 1 (latency: curata splits
the base across threads below 20 queries). faiss runs on curata's thread count
(``faiss.omp_set_num_threads``); both get the same numpy arrays (faiss's index holds its own copy
of the base, added before timing).

Check before timing: the neighbour sets agree with faiss on at least 99.9 % of the entries (exact
search in float32 on both sides; they can differ only where two distances tie to float32 rounding)
and the distances to 1e-3 relative.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import curata

from ._harness import Case, Check, Contender, contender

DIM, K = 512, 10


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, DIM), dtype=np.float32)
    queries = rng.standard_normal((2000, DIM), dtype=np.float32)
    return base, queries


_cache: dict[int, tuple[np.ndarray, np.ndarray, dict[str, Any]]] = {}


def _prepared(n: int):
    # One base and one pair of faiss indexes per size, shared by that size's cases.
    if n not in _cache:
        _cache.clear()
        base, queries = _data(n)
        _cache[n] = (base, queries, {})
    return _cache[n]


def _faiss_index(n: int, metric: str):
    import faiss  # noqa: PLC0415

    base, _, indexes = _prepared(n)
    if metric not in indexes:
        faiss.omp_set_num_threads(curata.get_num_threads())
        index = faiss.IndexFlatIP(DIM) if metric == "ip" else faiss.IndexFlatL2(DIM)
        index.add(base)
        indexes[metric] = index
    return indexes[metric]


def _check(run_curata: Callable[[], Any], run_faiss: Callable[[], Any] | None) -> Check:
    if run_faiss is None:
        return Check("unchecked", "faiss-cpu missing")
    d, i = run_curata()
    fd, fi = run_faiss()
    agree = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(i.tolist(), fi.tolist())]))
    close = bool(np.allclose(d, fd, rtol=1e-3, atol=1e-3))
    if agree < 0.999 or not close:
        return Check("mismatch", f"neighbour agreement {agree:.5f}, distances close: {close}")
    if agree < 1.0:
        return Check("note", f"neighbour agreement {agree:.5f} (float32 near-ties)")
    return Check("ok", "same neighbours and distances (1e-3)")


def _case(n: int, m: int, metric: str) -> Case:
    base, queries, _ = _prepared(n)
    q = queries[:m]
    params = {"base": n, "queries": m, "dim": DIM, "k": K, "metric": metric, "dtype": "float32",
              "threads": curata.get_num_threads()}

    def curata_fn():
        return curata.search.knn(base, q, K, metric)

    def make_faiss():
        index = _faiss_index(n, metric)
        return lambda: index.search(q, K)

    contenders = [Contender("curata", curata_fn), contender("faiss-cpu", make_faiss, note="IndexFlat, same threads")]
    faiss_fn = contenders[1].fn
    return Case(_name(n, m, metric), f"knn {metric}", params, contenders, check=lambda: _check(curata_fn, faiss_fn))


def _name(n: int, m: int, metric: str) -> str:
    return f"knn {metric} {n // 1000}k x {DIM}, {m} quer{'y' if m == 1 else 'ies'}, k={K}"


def cases(device: str = "cpu", quick: bool = False) -> list[tuple[str, Callable[[], Case]]]:
    """The suite's plan: (case name, builder) pairs, CPU only (no GPU kNN yet)."""
    if device != "cpu":
        return []
    n = 50_000 if quick else 200_000
    plan = [(2000, "ip"), (2000, "l2"), (64, "ip"), (16, "ip"), (1, "ip")]
    return [(_name(n, m, metric), lambda m=m, metric=metric: _case(n, m, metric)) for m, metric in plan]
