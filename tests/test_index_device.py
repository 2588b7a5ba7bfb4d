"""The device Index (torch tables, knn_torch / range_torch) run on CPU torch tensors.

``Index(..., _torch_device="cpu")`` is the code path of ``device="cuda"`` on the CPU. It is
checked against the CPU Index (the C++ core) and against an independent float64 reference:

- small integer vectors make every float32 product and sum exact on both paths, so results must
  agree bit for bit (distances, ids, tie order by insertion, range hits);
- random float vectors: results equal the float64 reference of the stored vectors rounded to
  float32 (the device contract), and agree with the CPU Index within float32 rounding.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from search_reference import knn_reference, scores64  # noqa: E402

from curata import _search_device  # noqa: E402
from curata.search import Index  # noqa: E402

METRICS = ("ip", "l2", "cosine")


def pair(dim, metric, dtype="float32", compact=True):
    cpu = Index(dim, metric, dtype, device="cpu")
    dev = Index(dim, metric, dtype, _torch_device="cpu")
    if not compact:  # keep every removed row flagged: exercises the device mask
        cpu._compact_divisor = dev._compact_divisor = 0
    return cpu, dev


def ints(rng, n, d, lo=-4, hi=5):
    return rng.integers(lo, hi, size=(n, d)).astype(np.float32)


def assert_same(a, b):
    for x, y in zip(a, b):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def live_table(index):
    ids = index.ids
    return ids, (index.reconstruct(ids) if ids.size else np.empty((0, index.dim), np.float32))


def ref_range(base, queries, radius, metric):
    """float64 scores rounded to float32, inclusive radius test; hits in row order."""
    with np.errstate(over="ignore"):
        s32 = scores64(base, queries, metric).astype(np.float32)
    r = np.float32(radius)
    hit = s32 <= r if metric == "l2" else s32 >= r
    lims = np.concatenate([[0], np.cumsum(hit.sum(axis=1))]).astype(np.int64)
    rows = [np.flatnonzero(h) for h in hit]
    cols = np.concatenate(rows) if rows else np.empty(0, np.int64)
    dist = np.concatenate([s32[i, r_] for i, r_ in enumerate(rows)]) if rows else np.empty(0, np.float32)
    return lims, dist.astype(np.float32), cols.astype(np.int64)


# ------------------------------------------------------------------------------ exact agreement
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_integer_data_bitwise_equal_to_cpu_index(rng, metric, dtype):
    cpu, dev = pair(6, metric, dtype, compact=False)
    x = ints(rng, 400, 6)
    ids = rng.permutation(10_000)[:400] - 5000  # unsorted, negative ids: the host id map
    for idx in (cpu, dev):
        idx.add(x, ids)
    gone = ids[rng.choice(400, 40, replace=False)]
    assert cpu.remove(gone) == dev.remove(gone) == 40
    q = ints(rng, 25, 6)
    for k in (1, 7, 360):
        assert_same(cpu.search(q, k), dev.search(q, k))
    for radius in (-3.0, 0.0, 4.0, 20.0, np.inf, -np.inf):
        assert_same(cpu.range_search(q, radius), dev.range_search(q, radius))
    assert_same([cpu.ids], [dev.ids])


def test_ties_by_insertion_and_zero_query_with_removed_rows():
    cpu, dev = pair(3, "ip", compact=False)
    x = np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (50, 1))
    for idx in (cpu, dev):
        idx.add(x)
        idx.remove([0, 2, 3, 10])
    q = np.array([[1, 0, 0], [0, 0, 0], [0, 2, 0]], np.float32)
    d, i = dev.search(q, 20)
    assert_same(cpu.search(q, 20), (d, i))
    # the zero query scores 0 everywhere: the first 20 live ids
    live = [j for j in range(100) if j not in (0, 2, 3, 10)]
    assert i[1].tolist() == live[:20]
    assert i[0].tolist() == [j for j in live if j % 2 == 0][:20]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_random_data_against_float64_reference(rng, metric, dtype):
    cpu, dev = pair(24, metric, dtype, compact=False)
    x = rng.standard_normal((700, 24)).astype(np.float32)
    for idx in (cpu, dev):
        idx.add(x)
        idx.remove(np.arange(0, 700, 3))  # a third flagged, never compacted
    q = rng.standard_normal((30, 24)).astype(np.float32)
    ids, table = live_table(dev)
    k = 15
    d, i = dev.search(q, k)
    rd, ri = knn_reference(table, q, k, metric)
    np.testing.assert_array_max_ulp(d, rd, maxulp=1)
    # ids may differ only where the float32 scores are within one step of each other
    got = np.take_along_axis(scores64(table, q, metric).astype(np.float32),
                             np.searchsorted(ids, i), axis=1)
    np.testing.assert_array_max_ulp(got, rd, maxulp=1)
    assert (i == ids[ri]).mean() > 0.98
    # vs the CPU Index: the same neighbours up to float32 rounding of its formula
    cd, ci = cpu.search(q, k)
    tol = 1e-5 * (1 + np.abs(rd))
    assert np.all(np.abs(cd - d) <= tol)
    assert (ci == i).mean() > 0.98


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_range_search_against_float64_reference(rng, metric, dtype):
    cpu, dev = pair(16, metric, dtype, compact=False)
    x = rng.standard_normal((900, 16)).astype(np.float32)
    for idx in (cpu, dev):
        idx.add(x)
        idx.remove(np.arange(5, 900, 7))
    q = rng.standard_normal((40, 16)).astype(np.float32)
    ids, table = live_table(dev)
    s = scores64(table, q, metric).astype(np.float32)
    # radii at a reported value (a hit exactly at the radius), and a generic one
    for radius in (float(s[3, 17]), float(np.median(s)), float(np.quantile(s, 0.9 if metric != "l2" else 0.1))):
        lims, dist, got_ids = dev.range_search(q, radius)
        rl, rdist, rcols = ref_range(table, q, radius, metric)
        np.testing.assert_array_equal(lims, rl)
        np.testing.assert_array_equal(got_ids, ids[rcols])
        np.testing.assert_array_max_ulp(dist, rdist, maxulp=1)
        # CPU Index: same hits except rows within float32 rounding of the radius
        cl, cd, cids = cpu.range_search(q, radius)
        near = np.abs(s.astype(np.float64) - radius) <= 1e-5 * (1 + abs(radius))
        for r in range(q.shape[0]):
            a = set(cids[cl[r] : cl[r + 1]].tolist())
            b = set(got_ids[lims[r] : lims[r + 1]].tolist())
            assert (a ^ b) <= set(ids[near[r]].tolist())


def test_range_boundary_decided_by_exact_recheck():
    # Rows whose float32 GEMM score lands within its error bound of the radius: the float64
    # re-check decides. 0.1 and 0.2 are inexact in float32; the radius is the reported score.
    torch_ = torch
    base = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.30000001], [0.3, 0.2, 0.1], [1, 1, 1]], np.float32)
    q = np.array([[0.7, 0.1, 0.3]], np.float32)
    s32 = scores64(base, q, "ip").astype(np.float32)[0]
    for r in s32:
        trace = {}
        lims, dist, idx = _search_device.range_torch(torch_.from_numpy(base), torch_.from_numpy(q), float(r), "ip",
                                                     _trace=trace)
        want = np.flatnonzero(s32 >= r)
        assert idx.tolist() == want.tolist()
        assert dist.numpy().tolist() == s32[want].tolist()
        assert trace["candidates"] >= trace["hits"] == want.size
        # just above the reported value (one float32 step): that row drops out
        up = float(np.nextafter(r, np.float32(np.inf)))
        _, _, idx2 = _search_device.range_torch(torch_.from_numpy(base), torch_.from_numpy(q), up, "ip")
        assert idx2.tolist() == np.flatnonzero(s32 >= np.float32(up)).tolist()


def test_range_torch_small_workspace_and_16bit(rng):
    base = rng.standard_normal((3000, 32)).astype(np.float32)
    q = rng.standard_normal((70, 32)).astype(np.float32)
    for metric in METRICS:
        s = scores64(base, q, metric).astype(np.float32)
        radius = float(np.quantile(s, 0.05 if metric == "l2" else 0.95))
        rl, rdist, rcols = ref_range(base, q, radius, metric)
        trace = {}
        lims, dist, idx = _search_device.range_torch(torch.from_numpy(base), torch.from_numpy(q), radius, metric,
                                                     workspace_bytes=1 << 16, _trace=trace)
        assert trace["plan"].base_rows < 3000 and trace["plan"].query_rows < 70  # really tiled
        np.testing.assert_array_equal(lims.numpy(), rl)
        np.testing.assert_array_equal(idx.numpy(), rcols)
        np.testing.assert_array_max_ulp(dist.numpy(), rdist, maxulp=1)
        b16 = torch.from_numpy(base).half()
        rl16, _, rcols16 = ref_range(b16.float().numpy(), q, radius, metric)
        lims16, _, idx16 = _search_device.range_torch(b16, torch.from_numpy(q), radius, metric)
        np.testing.assert_array_equal(lims16.numpy(), rl16)
        np.testing.assert_array_equal(idx16.numpy(), rcols16)


def test_knn_torch_removed_mask_matches_subset(rng):
    base = rng.standard_normal((500, 12)).astype(np.float32)
    q = rng.standard_normal((20, 12)).astype(np.float32)
    removed = np.zeros(500, bool)
    removed[rng.choice(500, 480, replace=False)] = True  # 20 live rows < k + margin: exhaustive
    keep = np.flatnonzero(~removed)
    for metric in METRICS:
        for k in (1, 5, 20):
            d, i = _search_device.knn_torch(torch.from_numpy(base), torch.from_numpy(q), k, metric,
                                            removed=torch.from_numpy(removed))
            rd, ri = knn_reference(base[keep], q, k, metric)
            np.testing.assert_array_equal(i.numpy(), keep[ri])
            np.testing.assert_array_max_ulp(d.numpy(), rd, maxulp=1)
    with pytest.raises(ValueError, match="k must be in"):
        _search_device.knn_torch(torch.from_numpy(base), torch.from_numpy(q), 21, "ip", removed=removed)
    with pytest.raises(ValueError, match=r"removed must have shape \(500,\)"):
        _search_device.knn_torch(torch.from_numpy(base), torch.from_numpy(q), 2, "ip", removed=removed[:3])


# ------------------------------------------------------------------------------ persistence
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_save_load_same_file_and_across_devices(tmp_path, rng, dtype):
    cpu, dev = pair(5, "l2", dtype)
    x = ints(rng, 300, 5)
    ids = rng.permutation(300) * 3
    for idx in (cpu, dev):
        idx.add(x, ids)
        idx.remove(ids[:50])
    cpu.save(tmp_path / "cpu.idx")
    dev.save(tmp_path / "dev.idx")
    assert (tmp_path / "cpu.idx").read_bytes() == (tmp_path / "dev.idx").read_bytes()
    back = Index.load(tmp_path / "cpu.idx", _torch_device="cpu")
    assert back.device == "torch-cpu" and back._table is not None and len(back) == 250
    q = ints(rng, 10, 5)
    assert_same(cpu.search(q, 9), back.search(q, 9))
    assert_same(cpu.range_search(q, 12.0), back.range_search(q, 12.0))
    back.add(x[:3])  # grows on the device after a load (capacity == count)
    cpu.add(x[:3])
    assert_same(cpu.search(q, 9), back.search(q, 9))
    assert np.array_equal(back.reconstruct(back.ids), cpu.reconstruct(cpu.ids))


# ------------------------------------------------------------------------------ API surface
def test_errors_and_array_kinds(rng):
    dev = Index(4, "cosine", _torch_device="cpu")
    with pytest.raises(ValueError, match="cannot search an empty Index"):
        dev.search(np.ones((1, 4), np.float32), 1)
    lims, d, i = dev.range_search(np.ones((2, 4), np.float32), 0.5)
    assert lims.tolist() == [0, 0, 0] and d.size == 0 and i.size == 0
    dev.add(rng.standard_normal((10, 4)))
    with pytest.raises(ValueError, match=r"k must be in \[1, 10\]"):
        dev.search(np.ones((1, 4), np.float32), 11)
    with pytest.raises(ValueError, match=r"queries must have shape \(M, 4\), got \(2, 3\)"):
        dev.search(np.ones((2, 3), np.float32), 1)
    with pytest.raises(ValueError, match="queries must be finite, got NaN or infinity in row 1"):
        dev.search(np.array([[1, 0, 0, 0], [np.nan, 0, 0, 0]], np.float32), 1)
    with pytest.raises(ValueError, match="queries must be finite"):
        dev.range_search(np.array([[np.inf, 0, 0, 0]], np.float32), 0.1)
    with pytest.raises(ValueError, match="radius must not be NaN"):
        dev.range_search(np.ones((1, 4)), float("nan"))
    with pytest.raises(ValueError, match="zero vector"):
        dev.add(np.zeros((1, 4)))
    assert len(dev) == 10
    with pytest.raises(ValueError, match="_torch_device must be 'cpu'"):
        Index(4, _torch_device="cuda")
    q = torch.from_numpy(rng.standard_normal((3, 4)).astype(np.float32))
    d, i = dev.search(q, 2)
    assert isinstance(d, torch.Tensor) and isinstance(i, torch.Tensor) and i.dtype == torch.int64
    d2, i2 = dev.search(q.numpy(), 2)
    assert isinstance(d2, np.ndarray) and np.array_equal(d2, d.numpy()) and np.array_equal(i2, i.numpy())
    lims, dist, ids = dev.range_search(q[:, ::1].T.contiguous().T, -1.0)  # non-contiguous layout
    assert isinstance(lims, torch.Tensor) and lims.tolist() == [0, 10, 20, 30]
    assert "torch-cpu" in repr(dev)


def test_growth_doubles_on_the_device(rng):
    dev = Index(3, "ip", _torch_device="cpu")
    caps = []
    for _ in range(40):
        dev.add(rng.standard_normal((7, 3)))
        caps.append(dev._table.capacity)
    assert caps[-1] < 2 * len(dev) and len(set(caps)) <= 6
    assert all(b in (a, 2 * a) or a == 0 for a, b in zip(caps, caps[1:]))


def test_full_table_headroom_on_the_device(rng):
    # A squeeze forced by a full table grows the device table to 9/8 of the rows, as on the CPU,
    # and churn then leaves both with the same rows, capacity and answers.
    cpu, dev = pair(5, "l2")
    x = ints(rng, 200, 5)
    ids = rng.permutation(1000)[:200]
    for idx in (cpu, dev):
        idx.add(x, ids=ids)
    row_of = {int(i): k for k, i in enumerate(ids)}
    for step in range(12):
        chosen = ids[(np.arange(10) * 17 + step * 5) % 200]
        rows = x[[row_of[int(c)] for c in chosen]]
        for idx in (cpu, dev):
            assert idx.remove(chosen) == 10
            idx.add(rows, ids=chosen)
    assert cpu._data.shape[0] == dev._table.capacity > 200
    np.testing.assert_array_equal(cpu.ids, dev.ids)
    q = ints(rng, 9, 5)
    assert_same(cpu.search(q, 6), dev.search(q, 6))


# ------------------------------------------------------------------------------ fuzz
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 40), st.booleans()),
        st.tuples(st.just("remove"), st.integers(0, 30), st.booleans()),
        st.tuples(st.just("search"), st.integers(1, 60), st.booleans()),
        st.tuples(st.just("range"), st.integers(-12, 30), st.booleans()),
        st.tuples(st.just("save"), st.integers(0, 0), st.booleans()),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=40, deadline=None)
@given(ops=OPS, metric=st.sampled_from(["ip", "l2"]), dtype=st.sampled_from(["float32", "float16"]),
       divisor=st.sampled_from([0, 8]), seed=st.integers(0, 2**16))
def test_fuzz_operation_sequences_equal_cpu_index(tmp_path_factory, ops, metric, dtype, divisor, seed):
    rng = np.random.default_rng(seed)
    cpu, dev = pair(4, metric, dtype)
    cpu._compact_divisor = dev._compact_divisor = divisor
    for op, arg, flag in ops:
        if op == "add":
            x = ints(rng, arg, 4, -3, 4)
            ids = None
            if flag and arg:  # user ids, possibly re-using removed ones
                ids = rng.choice(200, arg, replace=False) + cpu.next_id * 0
                ids = np.array([i for i in ids if i not in cpu][:arg], np.int64)
                x = x[: ids.size]
            assert_same([cpu.add(x, ids)], [dev.add(x, ids)])
        elif op == "remove":
            pool = cpu.ids
            victims = rng.choice(pool, min(arg, pool.size), replace=False) if pool.size and arg else []
            victims = list(victims) + ([10**9] if flag else [])
            assert cpu.remove(victims) == dev.remove(victims)
        elif op == "search":
            q = ints(rng, 1 + arg % 5, 4, -3, 4)
            if len(cpu) == 0:
                with pytest.raises(ValueError, match="empty Index"):
                    dev.search(q, 1)
                continue
            k = 1 + arg % len(cpu)
            assert_same(cpu.search(q, k), dev.search(q, k))
        elif op == "range":
            q = ints(rng, 3, 4, -3, 4)
            assert_same(cpu.range_search(q, float(arg)), dev.range_search(q, float(arg)))
        else:
            path = tmp_path_factory.mktemp("fuzz") / "i.idx"
            dev.save(path)
            dev = Index.load(path, _torch_device="cpu")
            dev._compact_divisor = divisor
            cpu._compact()
        assert len(cpu) == len(dev) and np.array_equal(cpu.ids, dev.ids) and cpu.next_id == dev.next_id


def test_gpu_index_benchmark_cases_smoke(monkeypatch):
    # The `--device cuda` Index cases' code, on CPU torch tensors with tiny shapes.
    bench = pytest.importorskip("benchmarks.search")
    monkeypatch.setattr(bench, "GPU_DEVICE", "cpu")
    monkeypatch.setattr(bench, "GPU_INDEX_QUERIES", 20)
    monkeypatch.setattr(bench, "GPU_INDEX_RANGE_QUERIES", 5)
    names = [name for name, _ in bench.cases("cuda", quick=True) if name.startswith("gpu index")]
    assert len(names) == 5
    for op, dtype in (("add", "float32"), ("search", "float16"), ("range_search", "float32"), ("remove+add", "float32")):
        case = bench._gpu_index_case(400, 8, op, dtype)
        out = case.contenders[0].fn()
        if op == "search":
            d, i = out
            assert tuple(d.shape) == (20, 10)
        if op == "range_search":
            assert tuple(out[0].shape) == (6,)


@pytest.mark.parametrize("metric", METRICS)
def test_range_torch_score_order(rng, metric):
    base = rng.integers(-2, 3, size=(600, 5)).astype(np.float32)  # many exact ties
    q = rng.integers(-2, 3, size=(30, 5)).astype(np.float32)
    s32 = scores64(base, q, metric).astype(np.float32)
    radius = float(np.quantile(s32, 0.3 if metric == "l2" else 0.7))
    lims, dist, idx = _search_device.range_torch(torch.from_numpy(base), torch.from_numpy(q), radius, metric,
                                                 order="score", workspace_bytes=1 << 15)
    rl, _, _ = ref_range(base, q, radius, metric)
    np.testing.assert_array_equal(lims.numpy(), rl)
    for r in range(q.shape[0]):
        rows = idx[lims[r] : lims[r + 1]].numpy()
        key = s32[r, rows].astype(np.float64) * (1 if metric == "l2" else -1)
        want = np.lexsort((rows, key))  # score first, then lower row
        assert np.array_equal(want, np.arange(rows.size))
        assert set(rows.tolist()) == set(np.flatnonzero(s32[r] <= np.float32(radius) if metric == "l2"
                                                        else s32[r] >= np.float32(radius)).tolist())
    with pytest.raises(ValueError, match="order must be 'index' or 'score'"):
        _search_device.range_torch(torch.from_numpy(base), torch.from_numpy(q), radius, metric, order="dist")


@pytest.mark.parametrize("metric", METRICS)
def test_range_overflow_and_infinite_radius(metric):
    # float32 products beyond the range: the GEMM cannot bound them, every row is re-scored.
    base = np.array([[3e19, 3e19], [-3e19, 3e19], [1.0, 2.0], [3e19, -3e19]], np.float32)
    q = np.array([[3e19, 3e19], [1.0, -1.0]], np.float32)
    with np.errstate(over="ignore"):
        s32 = scores64(base, q, metric).astype(np.float32)
    for radius in (np.inf, -np.inf, 0.0, 1e38, float(s32[1, 2])):
        lims, dist, idx = _search_device.range_torch(torch.from_numpy(base), torch.from_numpy(q), radius, metric)
        rl, rdist, rcols = ref_range(base, q, radius, metric)
        np.testing.assert_array_equal(lims.numpy(), rl)
        np.testing.assert_array_equal(idx.numpy(), rcols)
        np.testing.assert_array_equal(dist.numpy(), rdist)
    if metric == "ip":
        assert np.isinf(s32[0, 0])  # the case really overflows


def test_auto_rule(monkeypatch):
    from curata import _backend, _index

    calls = []

    def usable():
        calls.append(1)
        return True, ""

    monkeypatch.setattr(_index, "_torch_cuda_usable", usable)
    monkeypatch.setattr(_backend, "HAS_CUDA", False)
    assert _index._resolve_device("auto") == "cpu" and not calls  # torch not even asked
    monkeypatch.setattr(_backend, "HAS_CUDA", True)
    assert _index._resolve_device("auto") == "cuda" and _index._resolve_device("cuda") == "cuda"
    monkeypatch.setattr(_index, "_torch_cuda_usable", lambda: (False, "torch sees no CUDA device"))
    assert _index._resolve_device("auto") == "cpu"
    with pytest.raises(RuntimeError, match="needs a CUDA device through torch: torch sees no CUDA device"):
        _index._resolve_device("cuda")
    assert _index._resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu' or 'cuda', got 'gpu'"):
        _index._resolve_device("gpu")


@pytest.mark.parametrize("metric", METRICS)
def test_empty_queries_and_reconstruct_match_cpu(metric):
    cpu, dev = pair(3, metric)
    for idx in (cpu, dev):
        idx.add(np.eye(3) + 1)
    q = np.empty((0, 3), np.float32)
    assert_same(cpu.search(q, 2), dev.search(q, 2))
    assert_same(cpu.range_search(q, 1.0), dev.range_search(q, 1.0))
    assert_same([cpu.reconstruct([]), cpu.reconstruct([2, 0])], [dev.reconstruct([]), dev.reconstruct([2, 0])])
    with pytest.raises(KeyError, match="id 7 is not in the index"):
        dev.reconstruct([7])
