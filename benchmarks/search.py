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

``index`` cases: ``curata.search.Index`` against faiss ``IndexIDMap(IndexFlatIP)`` (float32) and
``IndexIDMap(IndexScalarQuantizer(QT_fp16))`` (float16 storage) on the same base with the same
int64 ids (a seeded permutation, so neither side can use an identity map): add all rows to a new
index, search 64 queries, range search 64 queries (inner product >= 70, about 200 hits a query),
remove 10k ids and add them back (each call takes the next 10k of a fixed random order of the ids,
and the 10k rows are gathered from the base inside the timed call for both; repeated calls reach
curata's amortised compaction: it flags rows and squeezes them out once 1/8 are flagged or when an
add finds the table full, and the first such squeeze of the exactly-sized table grows it to 9/8 of
its rows, so later squeezes come every few calls; faiss compacts on every call), save to and load
from a file in the system temp directory (curata fsyncs the file and the directory, faiss does not;
the save case also times faiss followed by an fsync of its file, the closest like-for-like; the
load is read from the page cache after the first round). Checked before timing: search results
of the indexes each op produces (new, saved and reloaded, loaded, after remove + add: the re-added
rows as queries) agree with faiss's as for knn; range_search hits found by one side only must lie
within 1e-4 (1 + |radius|) of the radius in float64, and curata's inner products must equal the
float64 ones to that tolerance.

One more CPU case times the torch device path (``curata._search_device.knn_torch``) on CPU
tensors against the C++ core, as a sanity check of the code that runs on GPUs (not a goal: on a
CPU the core is the path curata uses).

``--device cuda``: curata.search.knn on CUDA tensors (torch path: cuBLAS GEMM tiles + top-k,
float64 re-rank) against faiss-gpu ``GpuIndexFlatIP`` / ``GpuIndexFlatL2`` when faiss has GPU
support (skipped otherwise). Shapes from the issue: 10M x 128 and 1M x 512 bases (float32, and
float16 against faiss's float16 flat index), 10,000 queries, k = 10, 100, 1024, and k = 8192
(faiss GPU caps k at 2048). A plain torch baseline runs in every GPU case (``mm`` in the base's
dtype + ``topk``, chunked; inexact for float16 bases): it is the check's reference where faiss-gpu
is missing or k > 2048. ``--quick`` uses 1M x 128 and 200k x 512. The check
compares neighbour sets with faiss on the first 200 queries (>= 99.9 % agreement: faiss is exact
up to float32 rounding, float16 GEMM rounding for its float16 index).
``gpu index`` cases (curata only): ``curata.search.Index(device="cuda")`` on 1M x 128 unit rows
(200k with ``--quick``), ids a seeded permutation: add from host numpy, search 10,000 CUDA
queries with k = 10 (float32 and float16 storage), range search 1,000 queries (ip >= 0.25),
remove 10k ids and add them back.
``kmeans cpu`` cases: curata's Lloyd iterations (``curate.kmeans`` after its seeding) against
scikit-learn ``KMeans(algorithm="lloyd")`` and ``faiss.Kmeans`` on the CPU from the same k-means++
initial centroids, 25 iterations, 100k x 128 with k = 100 and 200k x 128 with k = 256 (50k x 128,
k = 100 with ``--quick``); see ``_kmeans_cpu_case``.

Also on the GPU: ``curate.k_center_greedy`` (curata only) and ``curate.kmeans`` 1M x 512,
k = 1000, 20 iterations (100k x 512, k = 100 with ``--quick``) against ``faiss.Kmeans(gpu=True)`` (different seeding, so
the check compares objectives as a note and verifies curata's labels are the nearest centroids).
"""

from __future__ import annotations

import atexit
import os
import shutil
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
    faiss = _faiss()
    base, _, indexes = _prepared(n)
    if metric not in indexes:
        index = faiss.IndexFlatIP(DIM) if metric == "ip" else faiss.IndexFlatL2(DIM)
        index.add(base)
        indexes[metric] = index
    return indexes[metric]


def _check(run_curata: Callable[[], Any], run_faiss: Callable[[], Any] | None) -> Check:
    if run_faiss is None:
        return Check("unchecked", "faiss-cpu missing")
    d, i = run_curata()
    fd, fi = run_faiss()
    k = i.shape[1]
    agree = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(i.tolist(), fi.tolist())]))
    close = bool(np.allclose(d, fd, rtol=1e-3, atol=1e-3))
    if agree < 0.999 or not close:
        return Check("mismatch", f"neighbour agreement {agree:.5f}, distances close: {close}")
    if agree < 1.0:
        return Check("note", f"neighbour agreement {agree:.5f} (float32 near-ties)")
    return Check("ok", "same neighbours and distances (1e-3)")


def _case(n: int, m: int, metric: str, k: int = K) -> Case:
    base, queries, _ = _prepared(n)
    q = queries[:m]
    params = {"base": n, "queries": m, "dim": DIM, "k": k, "metric": metric, "dtype": "float32",
              "threads": curata.get_num_threads()}

    def curata_fn():
        return curata.search.knn(base, q, k, metric)

    def make_faiss():
        index = _faiss_index(n, metric)
        return lambda: index.search(q, k)

    contenders = [Contender("curata", curata_fn), contender("faiss-cpu", make_faiss, note="IndexFlat, same threads")]
    faiss_fn = contenders[1].fn
    return Case(_name(n, m, metric, k), f"knn {metric}", params, contenders, check=lambda: _check(curata_fn, faiss_fn))


def _name(n: int, m: int, metric: str, k: int = K) -> str:
    return f"knn {metric} {n // 1000}k x {DIM}, {m} quer{'y' if m == 1 else 'ies'}, k={k}"


# ------------------------------------------------------------------------------------ index
INDEX_QUERIES, INDEX_RADIUS, INDEX_REMOVED = 64, 70.0, 10_000


def _index_ids(n: int) -> np.ndarray:
    return np.random.default_rng(1).permutation(10 * n)[:n].astype(np.int64)


def _curata_index(n: int, dtype: str):
    base, _, cache = _prepared(n)
    key = ("curata", dtype)
    if key not in cache:
        index = curata.search.Index(DIM, "ip", dtype)
        index.add(base, ids=_index_ids(n))
        cache[key] = index
    return cache[key]


def _faiss_idmap(n: int, dtype: str):
    faiss = _faiss()
    base, _, cache = _prepared(n)
    key = ("faiss", dtype)
    if key not in cache:
        if dtype == "float32":
            inner = faiss.IndexFlatIP(DIM)
        else:
            inner = faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        index = faiss.IndexIDMap(inner)
        index.add_with_ids(base, _index_ids(n))
        cache[key] = index
    return cache[key]


def _index_search_check(run_curata, run_faiss, what: str = "") -> Check:
    if run_faiss is None:
        return Check("unchecked", "faiss-cpu missing")
    d, i = run_curata()
    fd, fi = run_faiss()
    agree = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(i.tolist(), fi.tolist())]))
    close = bool(np.shape(d) == np.shape(fd) and np.allclose(d, fd, rtol=1e-3, atol=1e-3))
    if agree < 0.999 or not close:
        return Check("mismatch", f"{what}id agreement {agree:.5f}, distances close: {close}")
    return Check("ok" if agree == 1.0 else "note", f"{what}same ids ({agree:.5f}) and distances (1e-3)")


# A hit whose float64 inner product lies within this of the radius may fall on either side of it
# in float32 (relative to 1 + |radius|: 7e-3 at radius 70, where a random wrong id is off by ~20).
RANGE_TOL = 1e-4


def _range_search_check(ours, theirs, base: np.ndarray, ids: np.ndarray, q: np.ndarray, radius: float) -> Check:
    """curata's and faiss's range-search hits against float64 inner products: every hit of either
    side that the other lacks must lie within RANGE_TOL of the radius, and curata's reported inner
    products must equal the float64 ones to RANGE_TOL. Anything else is a mismatch."""
    lims, dist, got = ours
    flims, _, fgot = theirs
    order = np.argsort(ids)
    tol = RANGE_TOL * (1.0 + abs(radius))
    differ, problems = 0, []
    for j in range(len(q)):
        a = got[lims[j] : lims[j + 1]].astype(np.int64)
        b = fgot[flims[j] : flims[j + 1]].astype(np.int64)
        union = np.union1d(a, b)
        pos = np.minimum(np.searchsorted(ids, union, sorter=order), ids.size - 1)
        known = ids[order[pos]] == union
        if not known.all():
            problems.append(f"query {j}: ids not in the index {union[~known][:3].tolist()}")
            continue
        ip = base[order[pos]].astype(np.float64) @ q[j].astype(np.float64)
        in_a, in_b = np.isin(union, a), np.isin(union, b)
        only_one = in_a != in_b
        far = only_one & (np.abs(ip - radius) > tol)
        if far.any():
            problems.append(f"query {j}: {int(far.sum())} id(s) found by one side only, inner products "
                            f"{ip[far][:3].round(3).tolist()} not at the radius {radius}")
        differ += int(only_one.sum())
        ours_ip = ip[np.searchsorted(union, a)]
        wrong = np.abs(dist[lims[j] : lims[j + 1]].astype(np.float64) - ours_ip) > tol
        if wrong.any():
            problems.append(f"query {j}: {int(wrong.sum())} reported inner product(s) differ from float64 by > {tol:.3g}")
    hits, fhits = int(lims[-1]), int(flims[-1])
    if problems:
        return Check("mismatch", "; ".join(problems[:3]) + (f" (+{len(problems) - 3} queries)" if len(problems) > 3 else ""))
    if differ:
        return Check("note", f"{hits} vs {fhits} hits: {differ} id(s) found by one side only, each within {tol:.3g} "
                             "of the radius (float32 rounding; faiss's bound is strict)")
    return Check("ok", f"same id sets ({hits} hits), inner products equal float64 to {tol:.3g}")


def _faiss():
    """faiss on curata's thread count: set in every faiss contender, so a case run alone
    (``--only``) does not time faiss on all cores against curata on CURATA_NUM_THREADS."""
    import faiss  # noqa: PLC0415

    faiss.omp_set_num_threads(curata.get_num_threads())
    return faiss


def _index_case(n: int, op: str, dtype: str = "float32") -> Case:
    import tempfile  # noqa: PLC0415

    base, queries, _ = _prepared(n)
    q = queries[:INDEX_QUERIES]
    ids = _index_ids(n)
    params = {"base": n, "dim": DIM, "metric": "ip", "dtype": dtype, "op": op, "threads": curata.get_num_threads()}
    check = None
    note = "IndexIDMap(IndexFlatIP)" if dtype == "float32" else "IndexIDMap(IndexScalarQuantizer fp16)"
    if op == "add":
        def curata_fn():
            index = curata.search.Index(DIM, "ip", dtype)
            index.add(base, ids=ids)
            return index

        def make_faiss():
            faiss = _faiss()

            def run():
                inner = (faiss.IndexFlatIP(DIM) if dtype == "float32" else
                         faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT))
                index = faiss.IndexIDMap(inner)
                index.add_with_ids(base, ids)
                return index
            return run
    elif op == "search":
        params.update(queries=INDEX_QUERIES, k=K)
        index = _curata_index(n, dtype)

        def curata_fn():
            return index.search(q, K)

        def make_faiss():
            f = _faiss_idmap(n, dtype)
            return lambda: f.search(q, K)
    elif op == "range_search":
        params.update(queries=INDEX_QUERIES, radius=INDEX_RADIUS)
        index = _curata_index(n, dtype)

        def curata_fn():
            return index.range_search(q, INDEX_RADIUS)

        def make_faiss():
            f = _faiss_idmap(n, dtype)
            return lambda: f.range_search(q, INDEX_RADIUS)
    elif op == "remove+add":
        params.update(removed=INDEX_REMOVED)
        index = _curata_index(n, dtype)
        # Each call removes the next 10k ids of a fixed random order and adds them back, so the
        # removed rows are spread over the table (removing the same ids every call would only
        # ever touch the rows re-added at the end by the previous call).
        order = np.random.default_rng(2).permutation(n)
        blocks = [order[i : i + INDEX_REMOVED] for i in range(0, n - INDEX_REMOVED + 1, INDEX_REMOVED)]

        def cycling(remove, add):
            state = {"call": 0}

            def run():
                chosen = blocks[state["call"] % len(blocks)]
                state["call"] += 1
                removed = remove(ids[chosen])
                add(base[chosen], ids[chosen])
                return removed
            return run

        curata_fn = cycling(index.remove, lambda x, i: index.add(x, ids=i))

        def make_faiss():
            f = _faiss_idmap(n, dtype)
            return cycling(f.remove_ids, f.add_with_ids)
    elif op in ("save", "load"):
        index = _curata_index(n, dtype)
        folder = tempfile.mkdtemp(prefix="curata-bench-")
        # Two files of the index's size (~0.8 GB at 200k x 512 float32): removed when the run ends.
        atexit.register(shutil.rmtree, folder, True)
        ours, theirs = f"{folder}/index.curata", f"{folder}/index.faiss"
        ours_path, theirs_path = ours, theirs
        index.save(ours)

        if op == "save":
            def curata_fn():
                index.save(ours)
        else:
            def curata_fn():
                return curata.search.Index.load(ours)

        def make_faiss():
            faiss = _faiss()
            f = _faiss_idmap(n, dtype)
            faiss.write_index(f, theirs)
            if op == "save":
                return lambda: faiss.write_index(f, theirs)
            return lambda: faiss.read_index(theirs)

        def make_faiss_fsync():
            # faiss writes in place and never fsyncs; curata's save fsyncs (that is what makes it
            # crash-safe), which on most disks is most of its time. This contender adds the one
            # fsync that puts faiss's data on disk (still not atomic: no temporary file + rename).
            faiss = _faiss()
            f = _faiss_idmap(n, dtype)

            def run():
                faiss.write_index(f, theirs)
                fd = os.open(theirs, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            return run
    else:
        raise ValueError(op)
    contenders = [Contender("curata", curata_fn), contender("faiss-cpu", make_faiss, note=note)]
    if op == "save":
        contenders.append(contender("faiss-cpu + fsync", make_faiss_fsync, note=note + ", then fsync of the file"))
    if op == "search":
        check = lambda: _index_search_check(curata_fn, contenders[1].fn)  # noqa: E731
    elif op == "range_search":
        def check():
            if contenders[1].fn is None:
                return Check("unchecked", "faiss-cpu missing")
            return _range_search_check(curata_fn(), contenders[1].fn(), base, ids, q, INDEX_RADIUS)
    elif op == "remove+add":
        def check():
            if contenders[1].fn is None:
                return Check("unchecked", "faiss-cpu missing")
            # One call each: both take the first block (the check runs before any timed call).
            a, b = curata_fn(), contenders[1].fn()
            if not a == b == INDEX_REMOVED:
                return Check("mismatch", f"removed {a} and {b}, expected {INDEX_REMOVED}")
            f = _faiss_idmap(n, dtype)
            if len(index) != f.ntotal:
                return Check("mismatch", f"{len(index)} rows after remove + add vs faiss's {f.ntotal}")
            back = base[blocks[0][:INDEX_QUERIES]]  # rows just removed and added back
            return _index_search_check(lambda: index.search(back, K), lambda: f.search(back, K),
                                       what=f"removed {a}; searching re-added rows: ")
    elif op == "add":
        def check():
            if contenders[1].fn is None:
                return Check("unchecked", "faiss-cpu missing")
            ours, theirs = curata_fn(), contenders[1].fn()
            return _index_search_check(lambda: ours.search(q, K), lambda: theirs.search(q, K),
                                       what="searching the new indexes: ")
    elif op in ("save", "load"):
        def check():
            if contenders[1].fn is None:
                return Check("unchecked", "faiss-cpu missing")
            if op == "save":
                curata_fn()
                contenders[1].fn()
                ours, theirs = curata.search.Index.load(ours_path), _faiss().read_index(theirs_path)
            else:
                ours, theirs = curata_fn(), contenders[1].fn()
            return _index_search_check(lambda: ours.search(q, K), lambda: theirs.search(q, K),
                                       what=f"searching the {'saved' if op == 'save' else 'loaded'} indexes: ")
    return Case(_index_name(n, op, dtype), "index", params, contenders, check=check)


def _index_name(n: int, op: str, dtype: str) -> str:
    what = {"add": f"add {n // 1000}k", "search": f"search {INDEX_QUERIES} queries k={K}",
            "range_search": f"range_search {INDEX_QUERIES} queries", "remove+add": f"remove {INDEX_REMOVED // 1000}k + add back",
            "save": "save", "load": "load"}[op]
    return f"index {dtype} {n // 1000}k x {DIM}: {what}"

def _torch_cpu_case(n: int, m: int) -> Case:
    """The device path's code on CPU tensors vs the C++ core (sanity check, not a goal)."""
    base, queries, _ = _prepared(n)
    q = queries[:m]
    params = {"base": n, "queries": m, "dim": DIM, "k": K, "metric": "ip", "dtype": "float32",
              "threads": curata.get_num_threads()}

    def curata_fn():
        return curata.search.knn(base, q, K, "ip")

    def make_torch():
        import torch  # noqa: PLC0415

        from curata import _search_device  # noqa: PLC0415

        tb, tq = torch.from_numpy(base), torch.from_numpy(q)
        return lambda: _search_device.knn_torch(tb, tq, K, "ip")

    peer = contender("curata-torch-cpu", make_torch, note="device path on CPU tensors (torch.mm tiles)")

    def check() -> Check:
        if peer.fn is None:
            return Check("unchecked", peer.skip_reason or "torch missing")
        d, i = curata_fn()
        td, ti = peer.fn()
        agree = float(np.mean(ti.numpy() == i))
        if agree < 0.999:
            return Check("mismatch", f"index agreement {agree:.5f}")
        return Check("ok" if agree == 1.0 else "note", f"index agreement {agree:.5f}")

    name = f"knn ip {n // 1000}k x {DIM}, {m} queries, k={K}: torch path on CPU"
    return Case(name, "knn device path (CPU sanity)", params, [Contender("curata", curata_fn), peer], check=check)


# ------------------------------------------------------------------------------- k-means (CPU)
KMEANS_CPU_ITERS = 25


def _kmeans_cpu_case(n: int, d: int, k: int) -> Case:
    """curata's Lloyd iterations vs scikit-learn ``KMeans(algorithm="lloyd")`` and ``faiss.Kmeans``
    (CPU), all from the same k-means++ initial centroids, 25 iterations.

    Data: float32, 4 k Gaussian blobs (centres N(0, 1), noise N(0, 0.7^2)) so no contender
    converges before the last iteration. The initial centroids are
    ``curate.kmeans_plus_plus_init(x, k, seed=0)`` computed once (not timed). curata's call is
    ``_cluster._lloyd`` (the loop of ``curate.kmeans`` after its seeding) plus the squared norms
    it needs; scikit-learn gets ``init=`` that array, ``n_init=1``, ``tol=0`` (stops only when no
    label changes, curata's rule), ``max_iter=25``; faiss gets ``init_centroids=`` it, all rows
    (``max_points_per_centroid``) and always runs 25 iterations. Threads: curata's count for all
    three (``threadpoolctl`` for scikit-learn's OpenMP, ``faiss.omp_set_num_threads``).
    Check: iterations run, inertia of curata vs scikit-learn (same trajectory up to labels of
    points within rounding of two centroids: relative difference < 1e-4) and vs faiss (whose
    last objective is that of the assignment before its final update: a note).
    """
    from curata import _cluster  # noqa: PLC0415

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4 * k, d)).astype(np.float32)
    x = centres[rng.integers(0, 4 * k, n)] + np.float32(0.7) * rng.standard_normal((n, d), dtype=np.float32)
    del centres
    init = x[np.asarray(curata.curate.kmeans_plus_plus_init(x, k, seed=0))].copy()
    threads = curata.get_num_threads()
    params = {"rows": n, "dim": d, "k": k, "n_iter": KMEANS_CPU_ITERS, "dtype": "float32", "threads": threads,
              "init": "curata k-means++ (shared)"}
    got: dict[str, Any] = {}

    def curata_fn():
        sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
        got["curata"] = r = _cluster._lloyd(x, sq, init.copy(), KMEANS_CPU_ITERS)
        return r

    def make_sklearn():
        from sklearn.cluster import KMeans  # noqa: PLC0415
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        def run():
            with threadpool_limits(limits=threads):
                km = KMeans(k, init=init, n_init=1, max_iter=KMEANS_CPU_ITERS, tol=0.0, algorithm="lloyd",
                            random_state=0).fit(x)
            got["sklearn"] = km
            return km

        return run

    def make_faiss():
        import faiss  # noqa: PLC0415

        def run():
            faiss.omp_set_num_threads(threads)
            km = faiss.Kmeans(d, k, niter=KMEANS_CPU_ITERS, seed=1, max_points_per_centroid=n)
            km.train(x, init_centroids=init)
            got["faiss"] = km
            return km

        return run

    sk = contender("scikit-learn", make_sklearn, note='KMeans(algorithm="lloyd", init=array, n_init=1, tol=0)')
    fa = contender("faiss-cpu", make_faiss, note="faiss.Kmeans(init_centroids=array), all rows")

    def check() -> Check:
        c, labels, dist, run = curata_fn()
        inertia = float(dist.sum())
        detail = f"curata inertia {inertia:.7g} after {run} iterations"
        metrics: dict[str, Any] = {"curata_inertia": inertia, "curata_iterations": run}
        status = "ok"
        if sk.fn is not None:
            km = sk.fn()
            rel = abs(km.inertia_ - inertia) / inertia
            agree = float(np.mean(km.labels_ == labels))
            detail += f"; scikit-learn {km.inertia_:.7g} after {km.n_iter_} (rel diff {rel:.1e}, labels agree {agree:.5f})"
            metrics.update(sklearn_inertia=float(km.inertia_), sklearn_iterations=int(km.n_iter_), label_agreement=agree)
            # scikit-learn counts the assignment that finds no label changed as an iteration,
            # curata counts centroid updates: converging runs differ by one.
            if rel > 1e-4 or km.n_iter_ not in (run, run + 1):
                status = "mismatch"
            elif agree < 1.0:
                status = "note"
        if fa.fn is not None:
            km = fa.fn()
            detail += f"; faiss last objective {float(km.obj[-1]):.7g} (before its last update)"
            metrics["faiss_objective"] = float(km.obj[-1])
        return Check(status, detail, metrics)

    name = f"kmeans cpu {n // 1000}k x {d}, k={k}, {KMEANS_CPU_ITERS} iterations"
    return Case(name, "kmeans", params, [Contender("curata", curata_fn), sk, fa], check=check, max_repeats=7, warmup=1)


# ------------------------------------------------------------------------------------ CUDA
GPU_QUERIES = 10_000
GPU_SHAPES = {"full": [(10_000_000, 128), (1_000_000, 512)], "quick": [(1_000_000, 128), (200_000, 512)]}
GPU_KS = (10, 100, 1024)
GPU_BIG_K = 8192
# "cuda" in the suite; a smoke test of the GPU cases' code may set "cpu" (tiny shapes).
GPU_DEVICE = "cuda"
_gpu_cache: dict[tuple, Any] = {}


def _gpu_data(n: int, d: int, half: bool):
    import torch  # noqa: PLC0415

    key = (n, d, half)
    if key not in _gpu_cache:
        _gpu_cache.clear()
        if GPU_DEVICE == "cuda":
            torch.cuda.empty_cache()
        g = torch.Generator(device=GPU_DEVICE).manual_seed(0)
        base = torch.randn((n, d), device=GPU_DEVICE, generator=g)
        base = torch.nn.functional.normalize(base, dim=1)  # embedding-like: unit rows
        queries = torch.nn.functional.normalize(torch.randn((GPU_QUERIES, d), device=GPU_DEVICE, generator=g), dim=1)
        if half:
            base = base.half()
        _gpu_cache[key] = (base, queries, {})
    return _gpu_cache[key]


def _faiss_gpu_index(n: int, d: int, half: bool, metric: str):
    import faiss  # noqa: PLC0415

    if not hasattr(faiss, "StandardGpuResources"):
        raise ImportError("faiss is installed without GPU support")
    import faiss.contrib.torch_utils  # noqa: F401,PLC0415  (torch tensors in and out)

    base, _, indexes = _gpu_data(n, d, half)
    if metric not in indexes:
        res = faiss.StandardGpuResources()
        cfg = faiss.GpuIndexFlatConfig()
        cfg.useFloat16 = half
        cls = faiss.GpuIndexFlatIP if metric == "ip" else faiss.GpuIndexFlatL2
        index = cls(res, d, cfg)
        index.add(base.float() if half else base)
        indexes[metric] = (res, index)
    return indexes[metric][1]


def _torch_knn(base, queries, k: int, metric: str):
    """The kNN a torch user writes: score matrix by ``mm`` in the base's dtype, then ``topk``,
    query chunks sized to keep the score block near 2 GiB. Not exact for a float16 base (scores
    rounded to float16); a baseline for the GPU cases, above all where faiss-gpu cannot be
    installed."""
    import torch  # noqa: PLC0415

    n = base.shape[0]
    chunk = max(1, (1 << 29) // n)
    q_all = queries.to(base.dtype)
    base_sq = (base.float() ** 2).sum(1) if metric == "l2" else None
    dists, idxs = [], []
    for start in range(0, q_all.shape[0], chunk):
        q = q_all[start:start + chunk]
        scores = q @ base.T
        if metric == "l2":
            scores = (q.float() ** 2).sum(1, keepdim=True) + base_sq - 2 * scores.float()
        dist, idx = torch.topk(scores, k, dim=1, largest=metric != "l2")
        dists.append(dist)
        idxs.append(idx)
    return torch.cat(dists), torch.cat(idxs)


def _gpu_case(n: int, d: int, k: int, metric: str, half: bool) -> Case:
    base, queries, _ = _gpu_data(n, d, half)
    params = {"base": n, "queries": GPU_QUERIES, "dim": d, "k": k, "metric": metric,
              "dtype": "float16" if half else "float32"}

    def curata_fn():
        return curata.search.knn(base, queries, k, metric)

    baseline = Contender("torch mm+topk", lambda: _torch_knn(base, queries, k, metric),
                         note="score blocks of ~2 GiB" + (", float16 scores (inexact)" if half else ""))
    contenders = [Contender("curata", curata_fn), baseline]
    faiss_fn = None
    if k <= 2048:
        def make_faiss():
            index = _faiss_gpu_index(n, d, half, metric)
            return lambda: index.search(queries, k)

        peer = contender("faiss-gpu", make_faiss, note="GpuIndexFlat" + (" float16" if half else ""))
        contenders.append(peer)
        faiss_fn = peer.fn

    def check() -> Check:
        sub = queries[:200]
        _, i = curata.search.knn(base, sub, k, metric)
        if faiss_fn is None:  # faiss-gpu missing or k > 2048 (its GPU cap): the torch baseline
            _, fi = _torch_knn(base, sub, k, metric)
        else:
            _, fi = _faiss_gpu_index(n, d, half, metric).search(sub, k)
        i, fi = i.cpu().numpy(), np.asarray(fi.cpu() if hasattr(fi, "cpu") else fi)
        agree = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(i.tolist(), fi.tolist())]))
        if agree < 0.999:
            return Check("mismatch" if not half else "note", f"neighbour agreement {agree:.5f}")
        return Check("ok" if agree == 1.0 else "note", f"neighbour agreement {agree:.5f}")

    name = f"gpu knn {metric} {n // 1000}k x {d} {params['dtype']}, {GPU_QUERIES} queries, k={k}"
    return Case(name, f"gpu knn {metric}", params, contenders, check=check, max_repeats=5, warmup=1)


def _gpu_plan(quick: bool) -> list[tuple[str, Callable[[], Case]]]:
    plan = []
    for n, d in GPU_SHAPES["quick" if quick else "full"]:
        for half in (False, True):
            for metric in ("ip", "l2"):
                for k in GPU_KS + (GPU_BIG_K,):
                    if metric == "l2" and k not in (10, GPU_BIG_K):
                        continue  # l2 differs from ip only by a rank-1 update: two k's are enough
                    dt = "float16" if half else "float32"
                    name = f"gpu knn {metric} {n // 1000}k x {d} {dt}, {GPU_QUERIES} queries, k={k}"
                    plan.append((name, lambda n=n, d=d, k=k, metric=metric, half=half: _gpu_case(n, d, k, metric, half)))
    return plan


def _kcenter_gpu_case(n: int, d: int, picks: int) -> Case:
    """curate.k_center_greedy on a CUDA tensor (curata only; goal: 1M x 512, 1000 picks < 10 s
    on an H100)."""
    import torch  # noqa: PLC0415

    g = torch.Generator(device=GPU_DEVICE).manual_seed(0)
    x = torch.randn((n, d), device=GPU_DEVICE, generator=g)
    params = {"rows": n, "dim": d, "picks": picks, "metric": "l2", "dtype": "float32"}

    def curata_fn():
        return curata.curate.k_center_greedy(x, picks)

    name = f"gpu k_center_greedy {n // 1000}k x {d}, {picks} picks"
    return Case(name, "gpu k_center_greedy", params, [Contender("curata", curata_fn)], max_repeats=3, warmup=0)


KMEANS_ITERS = 20


def _kmeans_gpu_case(n: int, d: int, k: int, blobs: int) -> Case:
    """curate.kmeans on a CUDA tensor vs faiss.Kmeans(gpu=True), same data, 20 Lloyd iterations.

    Data: ``blobs`` unit-norm centres plus noise (embedding-like clusters, more blobs than k so
    the clusters do not fall out of the init). faiss seeds at random (no k-means++), runs every
    iteration and by default trains on a sample of 256 points per centroid: the sample limit is
    lifted (``max_points_per_centroid``) so both fit all n rows. curata may stop early (labels
    unchanged); its time includes the k-means++ seeding (one GEMM pass per pick). faiss gets a
    host numpy copy (its Python ``Kmeans`` trains from host memory), curata the CUDA tensor.
    """
    import torch  # noqa: PLC0415

    g = torch.Generator(device=GPU_DEVICE).manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn((blobs, d), device=GPU_DEVICE, generator=g), dim=1)
    pick = torch.randint(0, blobs, (n,), device=GPU_DEVICE, generator=g)
    x = centres[pick] + 0.05 * torch.randn((n, d), device=GPU_DEVICE, generator=g)
    del pick
    params = {"rows": n, "dim": d, "k": k, "n_iter": KMEANS_ITERS, "dtype": "float32", "data": f"{blobs} blobs"}
    got: dict[str, Any] = {}

    def curata_fn():
        got["curata"] = r = curata.curate.kmeans(x, k, n_iter=KMEANS_ITERS, seed=0)
        return r

    def make_faiss():
        import faiss  # noqa: PLC0415

        if not hasattr(faiss, "StandardGpuResources"):
            raise ImportError("faiss is installed without GPU support")
        host = x.cpu().numpy()

        def run():
            km = faiss.Kmeans(d, k, niter=KMEANS_ITERS, seed=1, gpu=True, max_points_per_centroid=n)
            km.train(host)
            got["faiss"] = km
            return km

        return run

    peer = contender("faiss-gpu", make_faiss, note="faiss.Kmeans(gpu=True), random init, all rows")

    def check() -> Check:
        r = curata_fn()
        labels = r.labels
        # Labels are the nearest centroids (float64 judge on a sample of rows).
        rows = torch.arange(0, n, max(1, n // 2000), device=x.device)
        xs, c = x[rows].double(), r.centroids.double()
        ref = torch.cdist(xs, c).argmin(dim=1)
        ok = float((ref == labels[rows]).double().mean())
        detail = f"curata inertia {r.inertia:.6g} after {r.n_iter} iterations, sampled labels nearest {ok:.4f}"
        if ok < 0.999:
            return Check("mismatch", detail)
        if peer.fn is None:
            return Check("unchecked", detail + "; faiss-gpu missing")
        km = peer.fn()
        faiss_inertia = float(km.obj[-1]) if len(km.obj) else float("nan")
        return Check("note", detail + f"; faiss objective {faiss_inertia:.6g} (different init)")

    name = f"gpu kmeans {n // 1000}k x {d}, k={k}, {KMEANS_ITERS} iterations"
    return Case(name, "gpu kmeans", params, [Contender("curata", curata_fn), peer], check=check,
                max_repeats=3, warmup=1)
GPU_INDEX_QUERIES = 10_000
GPU_INDEX_RANGE_QUERIES = 1000


def _gpu_index(n: int, d: int, dtype: str, filled: bool = True):
    """An Index on the GPU (GPU_DEVICE "cpu": the same code on CPU torch tensors, for a smoke
    test) and the host data: unit rows, seeded, ids a seeded permutation."""
    key = ("index", n, d, dtype)
    if key not in _gpu_cache:
        _gpu_cache.clear()
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        q = rng.standard_normal((GPU_INDEX_QUERIES, d), dtype=np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        ids = rng.permutation(n).astype(np.int64)
        _gpu_cache[key] = (x, q, ids)
    x, q, ids = _gpu_cache[key]
    index = _new_gpu_index(d, dtype)
    if filled:
        index.add(x, ids)
    return index, x, q, ids


def _new_gpu_index(d: int, dtype: str):
    if GPU_DEVICE == "cuda":
        return curata.search.Index(d, "ip", dtype, device="cuda")
    return curata.search.Index(d, "ip", dtype, _torch_device="cpu")


def _gpu_index_case(n: int, d: int, op: str, dtype: str) -> Case:
    """curata.search.Index(device="cuda"): add from host, search (CUDA queries, k = 10), range
    search (inner product >= 0.25 on unit vectors), remove 10k ids + add them back."""
    index, x, q, ids = _gpu_index(n, d, dtype, filled=op != "add")
    params = {"base": n, "dim": d, "dtype": dtype, "op": op, "metric": "ip"}
    torch = __import__("torch")
    qd = torch.from_numpy(q).to(GPU_DEVICE)
    state = {"round": 0}
    order = np.random.default_rng(1).permutation(n)
    if op == "add":
        def fn():
            fresh = _new_gpu_index(d, dtype)
            fresh.add(x, ids)
            return fresh
        params["rows"] = n
    elif op == "search":
        def fn():
            return index.search(qd, K)
        params.update(queries=GPU_INDEX_QUERIES, k=K)
    elif op == "range_search":
        def fn():
            return index.range_search(qd[:GPU_INDEX_RANGE_QUERIES], 0.25)
        params.update(queries=GPU_INDEX_RANGE_QUERIES, radius=0.25)
    else:
        step = min(10_000, n // 4)

        def fn():
            r = state["round"] % max(1, n // step)
            state["round"] += 1
            sel = order[r * step : (r + 1) * step]
            index.remove(ids[sel])
            index.add(x[sel], ids[sel])
        params["rows"] = step
    if op in ("search", "range_search"):
        def sync_fn(inner=fn):
            out = inner()
            if GPU_DEVICE == "cuda":
                torch.cuda.synchronize()
            return out
    else:
        sync_fn = fn
    name = f"gpu index {op} ip {n // 1000}k x {d} {dtype}"
    return Case(name, f"gpu index {op}", params, [Contender("curata", sync_fn)], max_repeats=5, warmup=1)


def _gpu_index_plan(quick: bool) -> list[tuple[str, Callable[[], Case]]]:
    n, d = (200_000, 128) if quick else (1_000_000, 128)
    plan = []
    for op, dtype in (("add", "float32"), ("search", "float32"), ("search", "float16"), ("range_search", "float32"),
                      ("remove+add", "float32")):
        name = f"gpu index {op} ip {n // 1000}k x {d} {dtype}"
        plan.append((name, lambda op=op, dtype=dtype: _gpu_index_case(n, d, op, dtype)))
    return plan


def cases(device: str = "cpu", quick: bool = False) -> list[tuple[str, Callable[[], Case]]]:
    """The suite's plan: (case name, builder) pairs; ``device="cuda"``: the GPU cases."""
    if device == "cuda":
        n, picks = (100_000, 200) if quick else (1_000_000, 1000)
        kn, kk, kb = (100_000, 100, 200) if quick else (1_000_000, 1000, 2000)
        return _gpu_plan(quick) + [(f"gpu k_center_greedy {n // 1000}k x 512, {picks} picks",
                                    lambda: _kcenter_gpu_case(n, 512, picks)),
                                   (f"gpu kmeans {kn // 1000}k x 512, k={kk}, {KMEANS_ITERS} iterations",
                                    lambda: _kmeans_gpu_case(kn, 512, kk, kb))] + _gpu_index_plan(quick)
    n = 50_000 if quick else 200_000
    plan = [(2000, "ip", K), (2000, "l2", K), (64, "ip", K), (16, "ip", K), (1, "ip", K), (200, "ip", 1024)]
    out = [(_name(n, m, metric, k), lambda m=m, metric=metric, k=k: _case(n, m, metric, k)) for m, metric, k in plan]
    m_torch = 500 if quick else 2000
    out.append((f"knn ip {n // 1000}k x {DIM}, {m_torch} queries, k={K}: torch path on CPU",
                lambda: _torch_cpu_case(n, m_torch)))
    # No float16 range_search case: faiss's IndexScalarQuantizer range search takes ~30 s per call
    # at 200k (8.1 s at 50k vs curata's 0.12 s), which would dominate the suite's run time.
    index_plan = [("add", "float32"), ("search", "float32"), ("search", "float16"), ("range_search", "float32"),
                  ("remove+add", "float32"), ("save", "float32"), ("load", "float32"),
                  ("add", "float16"), ("save", "float16"), ("load", "float16")]
    out += [(_index_name(n, op, dt), lambda op=op, dt=dt: _index_case(n, op, dt)) for op, dt in index_plan]
    km_plan = [(50_000, 128, 100)] if quick else [(100_000, 128, 100), (200_000, 128, 256)]
    out += [(f"kmeans cpu {kn // 1000}k x {kd}, k={kk}, {KMEANS_CPU_ITERS} iterations",
             lambda kn=kn, kd=kd, kk=kk: _kmeans_cpu_case(kn, kd, kk)) for kn, kd, kk in km_plan]
    return out
