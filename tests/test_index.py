"""curata.search.Index: against knn on the same data, a float64 numpy reference, faiss-cpu, a
python-dict model (hypothesis), and a file format that must refuse every damaged file."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import curata
from curata import _core, _index, search
from curata.search import Index
from checksum_reference import crc32c_reference
from search_reference import scores64


@pytest.fixture(autouse=True)
def _cpu_index(monkeypatch):
    # These tests pin the CPU Index (bit-for-bit against the C++ core). On a GPU machine
    # device="auto" would pick the GPU (tests/test_index_device.py and tests/gpu/ cover that).
    monkeypatch.setattr(_index, "_torch_cuda_usable", lambda: (False, "pinned to the CPU by test_index.py"))

METRICS = ("ip", "l2", "cosine")


# ------------------------------------------------------------------------------ references
def ref_scores(base, queries, metric):
    """float64 (M, N) scores, larger is better (negated squared distance for l2)."""
    s = scores64(base, queries, metric)
    return -s if metric == "l2" else s


def as_score(d, metric):
    d = np.asarray(d, dtype=np.float64)
    return -d if metric == "l2" else d


def ref_range(base, queries, radius, metric):
    """float64 brute-force range search: per query the sorted base rows within radius."""
    s = ref_scores(base, queries, metric)
    if metric == "l2":
        return [np.flatnonzero(-row <= radius) for row in s]
    return [np.flatnonzero(row >= radius) for row in s]


def stored_cosine(x, dtype):
    x64 = np.asarray(x, np.float64)
    return (x64 / np.linalg.norm(x64, axis=1, keepdims=True)).astype(np.float32).astype(dtype)


# ------------------------------------------------------------------------------ half conversion
@pytest.mark.parametrize("hardware", [True, False])
def test_half_to_float_every_bit_pattern(hardware):
    bits = np.arange(65536, dtype=np.uint16)
    ref = bits.view(np.float16).astype(np.float32)
    got = _core.half_to_float(bits, hardware)
    nan = np.isnan(ref)
    assert nan.sum() == 2 * 1023
    np.testing.assert_array_equal(np.isnan(got), nan)
    # bit-exact for every non-NaN (signed zeros, subnormals, infinities included)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), ref[~nan].view(np.uint32))
    # NaNs keep their sign
    np.testing.assert_array_equal(np.signbit(got[nan]), np.signbit(ref[nan]))


@pytest.mark.parametrize("hardware", [True, False])
def test_float_to_half_matches_numpy(hardware):
    rng = np.random.default_rng(7)
    random_bits = rng.integers(0, 2**32, 1_000_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    halves = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
    halves = np.unique(halves[np.isfinite(halves)])
    mid = ((halves[:-1].astype(np.float64) + halves[1:]) / 2).astype(np.float32)  # exact ties
    edges = np.float32([65504, 65519.996, 65520, 65536, 2**-25, 2**-24, 2**-26, 3 * 2**-26, 1e-45, 0.0, -0.0,
                        np.inf, -np.inf])
    values = np.concatenate([random_bits, halves, mid, np.nextafter(mid, np.inf), np.nextafter(mid, -np.inf), edges])
    values = values[~np.isnan(values)]
    values = values[: values.size - values.size % 16].reshape(-1, 16)
    with np.errstate(over="ignore"):
        ref = values.astype(np.float16).view(np.uint16)
    out = np.empty(values.shape, np.uint16)
    bad = _core.float_to_half(values, out, hardware)
    np.testing.assert_array_equal(out, ref)
    first_bad = np.flatnonzero(~np.isfinite(ref.view(np.float16)).all(axis=1))
    assert bad == (first_bad[0] if first_bad.size else -1)
    fine = np.ones((3, 16), np.float32)
    assert _core.float_to_half(fine, np.empty((3, 16), np.uint16), hardware) == -1


# ------------------------------------------------------------------------------ search == knn
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("m", [1, 7, 25, 130])
def test_float32_search_equals_knn(rng, metric, m):
    x = rng.standard_normal((1200, 24)).astype(np.float32)
    q = rng.standard_normal((m, 24)).astype(np.float32)
    ids = rng.permutation(10**6)[:1200].astype(np.int64)
    index = Index(24, metric)
    # several adds: growth must not change anything
    for lo, hi in ((0, 5), (5, 400), (400, 1200)):
        index.add(x[lo:hi], ids=ids[lo:hi])
    d, got = index.search(q, 10)
    kd, ki = search.knn(x, q, 10, metric)
    np.testing.assert_array_equal(d, kd)
    np.testing.assert_array_equal(got, ids[ki])
    assert got.dtype == np.int64 and d.dtype == np.float32


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("m", [3, 40])
def test_l2_offset_data_search_and_range_agree(rng, dtype, m):
    # Far from the origin the core computes l2 on rows shifted by the base's centre (knn and range
    # alike): exact against float64 on the stored vectors, and range hits carry the knn distances.
    x = (rng.standard_normal((900, 48)) + 300.0).astype(np.float32)
    q = (rng.standard_normal((m, 48)) + 300.0).astype(np.float32)
    index = Index(48, "l2", dtype=dtype)
    index.add(x)
    stored = x.astype(dtype).astype(np.float64)
    d, got = index.search(q, 8)
    kd, ki = search.knn(x.astype(dtype), q, 8, "l2")
    np.testing.assert_array_equal(d, kd)
    np.testing.assert_array_equal(got, ki)
    ref = ((q.astype(np.float64)[:, None, :] - stored[None]) ** 2).sum(-1)
    mu = stored.mean(0)
    scale = ((stored - mu) ** 2).sum(1).max() + ((q - mu) ** 2).sum(1).max()
    tol = 2e-5 * scale  # the plain formula errs by ~1e-7 * 2 * 300**2 * 48 = 0.9 here
    kth = np.sort(ref, axis=1)[:, 7]
    assert np.all(np.take_along_axis(ref, got, 1) <= kth[:, None] + tol)
    np.testing.assert_allclose(d, np.take_along_axis(ref, got, 1), atol=tol, rtol=0)
    lims, rd, ri = index.range_search(q, float(kd[:, -1].max()))
    for row in range(m):
        hits = dict(zip(ri[lims[row] : lims[row + 1]].tolist(), rd[lims[row] : lims[row + 1]].tolist()))
        for dist, idx in zip(kd[row].tolist(), ki[row].tolist()):
            assert hits[idx] == dist  # same float32 value as knn
        np.testing.assert_allclose(rd[lims[row] : lims[row + 1]], ref[row, ri[lims[row] : lims[row + 1]]], atol=tol, rtol=0)
    # an exact copy of a stored row is at distance exactly 0
    d0, g0 = index.search(x[:5].astype(dtype).astype(np.float32), 1)
    np.testing.assert_array_equal(d0[:, 0], 0.0)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_cosine_search_equals_knn_on_stored_vectors(rng, dtype):
    x = (rng.standard_normal((700, 33)) * rng.uniform(0.01, 100, (700, 1))).astype(np.float32)
    q = rng.standard_normal((40, 33)).astype(np.float32)
    index = Index(33, "cosine", dtype)
    index.add(x)
    stored = index.reconstruct(np.arange(700))
    np.testing.assert_array_equal(stored, stored_cosine(x, dtype).astype(np.float32))
    d, i = index.search(q, 8)
    kd, ki = search.knn(stored, q, 8, "cosine")
    np.testing.assert_array_equal(d, kd)
    np.testing.assert_array_equal(i, ki)


@pytest.mark.parametrize("metric", METRICS)
def test_against_float64_reference(rng, metric):
    x = rng.standard_normal((900, 20)).astype(np.float32)
    q = rng.standard_normal((30, 20)).astype(np.float32)
    index = Index(20, metric)
    index.add(x)
    d, i = index.search(q, 12)
    s = ref_scores(x, q, metric)
    kth = -np.sort(-s, axis=1)[:, 11]
    got = np.take_along_axis(s, i, axis=1)
    tol = 1e-4 if metric != "cosine" else 1e-6
    assert np.all(got >= kth[:, None] - tol)  # ties / float32 near-ties tolerated
    np.testing.assert_allclose(as_score(d, metric), got, atol=tol, rtol=0)


def test_ties_ordered_by_insertion():
    # four identical vectors with non-monotone ids: equal distances come back in insertion order
    index = Index(3, "l2")
    index.add(np.ones((4, 3), np.float32), ids=[40, 10, 30, 20])
    d, i = index.search(np.ones((1, 3), np.float32), 4)
    assert i.tolist() == [[40, 10, 30, 20]]
    assert d.tolist() == [[0.0] * 4]
    index.remove([10])
    index.add(np.ones((1, 3), np.float32), ids=[10])
    assert index.search(np.ones((1, 3), np.float32), 4)[1].tolist() == [[40, 30, 20, 10]]


# ------------------------------------------------------------------------------ float16 storage
@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("m", [3, 50])
def test_float16_exact_wrt_rounded_vectors(rng, metric, m):
    x = (rng.standard_normal((1500, 40)) * 3).astype(np.float32)
    q = rng.standard_normal((m, 40)).astype(np.float32)
    index = Index(40, metric, "float16")
    index.add(x)
    rounded = x.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(index.reconstruct(np.arange(1500)), rounded)
    d, i = index.search(q, 15)
    kd, ki = search.knn(rounded, q, 15, metric)
    np.testing.assert_array_equal(d, kd)
    np.testing.assert_array_equal(i, ki)
    radius = float(np.median(kd[:, -1]))
    lims, rd, ri = index.range_search(q, radius)
    rl, rrd, rri = _range(rounded, q, radius, metric)
    np.testing.assert_array_equal(lims, rl)
    np.testing.assert_array_equal(rd, rrd)
    np.testing.assert_array_equal(ri, rri)


def _range(base, q, radius, metric):
    index = Index(base.shape[1], metric)
    index.add(base)
    return index.range_search(q, radius)


def test_float16_halves_memory(rng):
    x = rng.standard_normal((1000, 64)).astype(np.float32)
    a, b = Index(64, "ip", "float32"), Index(64, "ip", "float16")
    a.add(x)
    b.add(x)
    assert b._data.nbytes * 2 == a._data.nbytes
    assert b.dtype == np.float16


def test_float16_range_errors():
    index = Index(2, "l2", "float16")
    with pytest.raises(ValueError, match=r"x row 1 has a value beyond the float16 range"):
        index.add(np.array([[1.0, 2.0], [70000.0, 0.0]], np.float32))
    assert len(index) == 0
    index.add(np.array([[65504.0, -65504.0]], np.float32))  # the largest half is fine
    index.add(np.array([[1e-9, 0.0]], np.float32))  # underflows to 0: documented, allowed
    assert index.reconstruct([1]).tolist() == [[0.0, 0.0]]


# ------------------------------------------------------------------------------ ids
def test_ids_default_and_user(rng):
    index = Index(4)
    assert index.add(np.zeros((3, 4))).tolist() == [0, 1, 2]
    assert index.add(np.zeros((2, 4)), ids=[100, 7]).tolist() == [100, 7]
    assert index.next_id == 101
    assert index.add(np.zeros((2, 4))).tolist() == [101, 102]
    assert index.ids.tolist() == [0, 1, 2, 100, 7, 101, 102]
    assert 7 in index and 8 not in index and "x" not in index
    index.add(np.zeros((1, 4)), ids=np.array([-5], np.int64))
    assert -5 in index


def test_duplicate_ids_rejected_and_nothing_added(rng):
    index = Index(2)
    index.add(np.zeros((3, 2)), ids=[5, 9, 1])
    with pytest.raises(ValueError, match="ids must be unique, got id 4 more than once"):
        index.add(np.zeros((3, 2)), ids=[4, 4, 6])
    with pytest.raises(ValueError, match="ids must be new, got id 9 which is already in the index"):
        index.add(np.zeros((2, 2)), ids=[8, 9])
    with pytest.raises(ValueError, match="ids must have length 2"):
        index.add(np.zeros((2, 2)), ids=[8])
    with pytest.raises(ValueError, match="must hold integers"):
        index.add(np.zeros((1, 2)), ids=[1.5])
    assert len(index) == 3 and index.ids.tolist() == [5, 9, 1]
    index.remove([9])
    index.add(np.ones((1, 2)), ids=[9])  # a removed id may come back
    assert index.ids.tolist() == [5, 1, 9]


def test_large_unsorted_ids_map(rng):
    # enough rows to go through tail merges of the sorted id map
    index = Index(2)
    all_ids = rng.permutation(10**7)[:20000].astype(np.int64)
    for lo in range(0, 20000, 1000):
        index.add(np.zeros((1000, 2), np.float32) + lo, ids=all_ids[lo : lo + 1000])
    assert index._map_rows > 0
    pos = index._positions(all_ids)
    np.testing.assert_array_equal(pos, np.arange(20000))
    gone = all_ids[::3]
    assert index.remove(gone) == gone.size
    keep = np.setdiff1d(all_ids, gone)
    assert np.all(index._positions(gone) == -1)
    np.testing.assert_array_equal(np.sort(index.ids), np.sort(keep))
    np.testing.assert_array_equal(index._ids[index._positions(keep)], keep)
    with pytest.raises(ValueError, match="already in the index"):
        index.add(np.zeros((1, 2)), ids=[keep[17]])


# ------------------------------------------------------------------------------ remove
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("increasing", [True, False])
def test_remove_then_search_never_returns_removed(rng, dtype, increasing):
    x = rng.standard_normal((800, 16)).astype(np.float32)
    ids = np.arange(800) * 3 if increasing else rng.permutation(5000)[:800]
    index = Index(16, "l2", dtype)
    index.add(x, ids=ids)
    gone = ids[rng.choice(800, 300, replace=False)]
    assert index.remove(np.concatenate([gone, gone[:10], [10**9]])) == 300
    assert len(index) == 500
    assert index.remove(gone) == 0
    d, got = index.search(x, 20)
    assert not np.isin(got, gone).any()
    keep = ~np.isin(ids, gone)
    stored = x[keep].astype(dtype).astype(np.float32)
    kd, ki = search.knn(stored, x, 20, "l2")
    np.testing.assert_array_equal(d, kd)
    np.testing.assert_array_equal(got, ids[keep][ki])
    lims, _, rids = index.range_search(x[:50], 10.0)
    assert not np.isin(rids, gone).any()


@pytest.mark.parametrize("increasing", [True, False])
def test_flagged_rows_and_readded_ids(rng, increasing):
    x = rng.standard_normal((1000, 8)).astype(np.float32)
    ids = np.arange(1000) if increasing else rng.permutation(10**6)[:1000]
    index = Index(8, "l2")
    index.add(x, ids=ids)
    index._reserve(2000)  # room to add back without growing (growth would compact first)
    gone = ids[10:60]
    assert index.remove(gone) == 50
    assert index._n_removed == 50 and index._n == 1000  # flagged, not compacted (5 % < 1/8)
    assert len(index) == 950 and gone[0] not in index
    d, got = index.search(x[10:60], 1)
    assert not np.isin(got, gone).any()
    # the removed ids come back with new vectors: the id now names the new row
    index.add(x[10:60] + 100, ids=gone)
    assert len(index) == 1000 and index._n == 1050
    np.testing.assert_array_equal(index.reconstruct(gone), x[10:60] + 100)
    d, got = index.search(x[10:60] + 100, 1)
    np.testing.assert_array_equal(got[:, 0], gone)
    assert d.max() == 0
    with pytest.raises(ValueError, match="already in the index"):
        index.add(x[:1], ids=gone[:1])
    assert index.remove(gone) == 50 and len(index) == 950
    np.testing.assert_array_equal(np.sort(index.ids), np.sort(np.setdiff1d(ids, gone)))
    # k counts live rows only; crossing 1/8 removed compacts
    assert index.remove(ids[100:200]) == 100
    assert index._n_removed == 0 and index._n == 850
    with pytest.raises(ValueError, match=r"k must be in \[1, 850\]"):
        index.search(x[:1], 851)
    kd, ki = search.knn(x[np.isin(ids, index.ids)], x[:20], 5, "l2")
    d, got = index.search(x[:20], 5)
    np.testing.assert_array_equal(d, kd)
    np.testing.assert_array_equal(got, ids[np.isin(ids, index.ids)][ki])


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_removed_rows_do_not_move_the_l2_centre(rng, dtype):
    # Far from the origin, "l2" shifts rows by a centre sampled from the base. An Index with
    # removed rows samples it among its live rows, at the live ranks a compacted table would use,
    # so its results are the bits of a search over the live rows alone (before, the removed rows
    # took part in the sample and the last bits could differ).
    # The centre is rounded to a grid of a quarter of the spread (0.5 here): live rows around 500.2
    # (or 50.2) round to 500 (50), while the rows to remove sit 1 higher and would pull the mean of
    # a sample over all rows past 500.25 (50.25). 10 % removed: below the Index's compaction point
    # (1/8), so the search runs with removed flags.
    centre = 500.2 if dtype == "float32" else 50.2
    gone = np.sort(rng.choice(3000, 300, replace=False))
    x = rng.standard_normal((3000, 24)) * 2 + centre
    x[gone] += 1.0
    x = x.astype(dtype).astype(np.float32)
    ids = np.arange(3000, dtype=np.int64) * 7
    index = search.Index(24, metric="l2", dtype=dtype)
    index.add(x, ids=ids)
    index.remove(ids[gone])
    assert index._n_removed == 300  # (not compacted: the flags are what is tested)
    live = np.setdiff1d(np.arange(3000), gone)
    q = (rng.standard_normal((40, 24)) * 2 + centre).astype(np.float32)
    d, got_ids = index.search(q, 8)
    if dtype == "float32":
        want_d, want_i = search.knn(x[live], q, 8, "l2")
    else:
        fresh = search.Index(24, metric="l2", dtype=dtype)
        fresh.add(x[live], ids=ids[live])
        want_d, want_ids = fresh.search(q, 8)
        want_i = np.searchsorted(ids[live], want_ids)
    np.testing.assert_array_equal(got_ids, ids[live][want_i])
    np.testing.assert_array_equal(d.view(np.uint32), want_d.view(np.uint32))


def test_many_removed_copies_of_an_id(rng):
    # without compaction an id can own several removed rows; lookups must find its one live row
    index = Index(2, "l2")
    index._compact_divisor = 0
    index.add(np.zeros((50, 2), np.float32), ids=rng.permutation(1000)[:50])
    index._reserve(200)
    keys = index.ids[:10]
    for cycle in range(1, 6):
        assert index.remove(keys) == 10
        assert not any(k in index for k in keys)
        index.add(np.full((10, 2), cycle, np.float32), ids=keys[::-1])
        np.testing.assert_array_equal(index.reconstruct(keys), np.full((10, 2), cycle, np.float32))
    assert index._n == 100 and len(index) == 50
    d, got = index.search(np.full((1, 2), 5, np.float32), 10)
    assert sorted(got[0].tolist()) == sorted(keys.tolist()) and d.max() == 0
    index._compact()
    assert index._n == 50
    np.testing.assert_array_equal(index.reconstruct(keys), np.full((10, 2), 5, np.float32))


def test_growth_compacts_removed_rows_first(rng):
    index = Index(4, "ip")
    index.add(rng.standard_normal((128, 4)))  # capacity 128
    assert index._data.shape[0] == 128
    index.remove(np.arange(15))  # 15 of 128 flagged: below 1/8, kept
    assert index._n == 128
    index.add(rng.standard_normal((3, 4)))  # fits after compaction with 10 rows to spare: no growth
    assert index._data.shape[0] == 128 and index._n == 116 and len(index) == 116
    assert index.ids.tolist() == list(range(15, 131))


def test_full_table_keeps_headroom_after_compacting(rng, monkeypatch):
    # A compaction forced by a full table that would leave less than 1/16 of it free grows the
    # table to 9/8 of the rows: a table kept full by remove + add churn is then not squeezed by
    # every add (each squeeze is a pass over all rows).
    index = Index(4, "ip")
    x = rng.standard_normal((64, 4)).astype(np.float32)
    index.add(x, ids=rng.permutation(1000)[:64])  # capacity 64, ids not increasing (sorted map)
    first = index.ids
    index.remove(first[:5])
    index.add(x[:3], ids=[2000, 2001, 2002])  # 59 live + 3 = 62 rows: 2 free < 64 / 16 -> 62 + 7
    assert index._data.shape[0] == 69 and index._n == 62
    assert index.ids.tolist() == first[5:].tolist() + [2000, 2001, 2002]
    np.testing.assert_array_equal(index.reconstruct(index.ids), np.concatenate([x[5:], x[:3]]))
    model = dict(zip(index.ids.tolist(), index.reconstruct(index.ids)))
    squeezes = []
    real = _core.remove_rows
    monkeypatch.setattr(_index._core, "remove_rows", lambda *a: squeezes.append(1) or real(*a))
    for step in range(40):  # remove 2 ids, add them back (at the end): churn at a constant size
        order = list(model)
        chosen = [order[(5 * step) % 62], order[(5 * step + 31) % 62]]
        assert index.remove(chosen) == 2
        index.add(np.stack([model[c] for c in chosen]), ids=chosen)
        model = {k: v for k, v in model.items() if k not in chosen} | {c: model[c] for c in chosen}
        assert index.ids.tolist() == list(model)
    assert len(index) == 62 and 62 <= index._data.shape[0] <= 2 * 62
    # Two remove_rows calls (vectors, ids) per squeeze. After a forced squeeze at least 69 // 16
    # = 4 rows are free, so at most one squeeze per 2 steps (here one per 4); without the
    # headroom every add (40) would squeeze.
    assert 0 < len(squeezes) // 2 <= 20
    np.testing.assert_array_equal(index.reconstruct(list(model)), np.stack(list(model.values())))


def test_remove_everything_and_empty_behaviour():
    index = Index(3, "ip")
    index.add(np.eye(3))
    assert index.remove([0, 1, 2]) == 3
    assert len(index) == 0
    with pytest.raises(ValueError, match="cannot search an empty Index"):
        index.search(np.ones((1, 3)), 1)
    lims, d, i = index.range_search(np.ones((2, 3)), 0.0)
    assert lims.tolist() == [0, 0, 0] and d.shape == (0,) and i.shape == (0,)
    assert d.dtype == np.float32 and i.dtype == np.int64
    assert index.remove([]) == 0
    index.add(np.eye(3))
    assert index.ids.tolist() == [3, 4, 5]


def test_remove_rows_core_rejects_bad_positions():
    table = np.arange(10, dtype=np.int64)
    with pytest.raises(ValueError, match="strictly increasing"):
        _core.remove_rows(table, 10, np.array([3, 3], np.int64))
    with pytest.raises(ValueError, match="strictly increasing"):
        _core.remove_rows(table, 10, np.array([10], np.int64))
    assert _core.remove_rows(table, 10, np.array([0, 4, 9], np.int64)) == 7
    assert table[:7].tolist() == [1, 2, 3, 5, 6, 7, 8]


# ------------------------------------------------------------------------------ arguments
def test_argument_errors():
    with pytest.raises(ValueError, match="dim must be >= 1"):
        Index(0)
    with pytest.raises(TypeError, match="dim must be an int"):
        Index(3.0)
    with pytest.raises(ValueError, match="metric must be one of"):
        Index(3, "hamming")
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float16'"):
        Index(3, dtype="float64")
    with pytest.raises(ValueError, match="device must be"):
        Index(3, device="tpu")
    index = Index(3)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3\), got \(2, 4\)"):
        index.add(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="x must be finite, got NaN or infinity in row 1"):
        index.add(np.array([[0, 0, 0], [0, np.nan, 0]]))
    index.add(np.eye(3))
    for bad_k in (0, 4, -1):
        with pytest.raises(ValueError, match=r"k must be in \[1, 3\]"):
            index.search(np.ones((1, 3)), bad_k)
    for bad_k in (1.0, True, "2"):
        with pytest.raises(TypeError, match="k must be an int"):
            index.search(np.ones((1, 3)), bad_k)
    with pytest.raises(ValueError, match=r"queries must have shape \(M, 3\)"):
        index.search(np.ones((1, 2)), 1)
    with pytest.raises(ValueError, match="queries must be finite, got NaN or infinity in row 2"):
        index.search(np.array([[1, 0, 0], [0, 1, 0], [np.inf, 0, 0]]), 1)
    with pytest.raises(ValueError, match="queries must be finite"):
        index.range_search(np.array([[np.nan, 0, 0]]), 1.0)
    with pytest.raises(ValueError, match="radius must not be NaN"):
        index.range_search(np.ones((1, 3)), float("nan"))
    with pytest.raises(TypeError, match="radius must be a real number"):
        index.range_search(np.ones((1, 3)), "1")
    assert index.search(np.zeros((0, 3)), 2)[0].shape == (0, 2)


def test_cosine_zero_vector_names_row():
    index = Index(3, "cosine", "float16")
    with pytest.raises(ValueError, match="x row 2 is a zero vector"):
        index.add(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32))
    assert len(index) == 0
    # a tiny but nonzero vector normalises fine (the norm is taken in float64)
    index.add(np.array([[1e-30, 0, 0]], np.float32))
    assert index.reconstruct([0]).tolist() == [[1.0, 0.0, 0.0]]


def test_device_choice():
    assert Index(3, device="cpu").device == "cpu"
    assert Index(3, device="auto").device == "cpu"
    if not curata._backend.HAS_CUDA:
        with pytest.raises(RuntimeError, match="needs a CUDA device"):
            Index(3, device="cuda")


def test_torch_and_noncontiguous_queries(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((300, 8)).astype(np.float32)
    index = Index(8, "l2")
    index.add(torch.from_numpy(x))
    qbig = rng.standard_normal((20, 16))
    q = qbig[:, ::2]  # float64, non-contiguous
    d, i = index.search(q, 5)
    kd, ki = search.knn(x, np.ascontiguousarray(q, np.float32), 5, "l2")
    np.testing.assert_array_equal(d, kd)
    np.testing.assert_array_equal(i, ki)
    td, ti = index.search(torch.from_numpy(q.astype(np.float32)), 5)
    assert isinstance(td, torch.Tensor) and ti.dtype == torch.int64
    np.testing.assert_array_equal(ti.numpy(), ki)
    lims, rd, ri = index.range_search(torch.from_numpy(np.ascontiguousarray(q, np.float32)), 5.0)
    assert isinstance(lims, torch.Tensor) and lims.shape == (21,)


def test_growth_is_geometric(rng):
    index = Index(4)
    capacities = set()
    for _ in range(3000):
        index.add(np.ones((1, 4), np.float32))
        capacities.add(index._data.shape[0])
        assert len(index) <= index._data.shape[0] <= max(16, 2 * len(index) - 2)
    assert len(capacities) <= 10  # 16, 32, ..., 4096: one copy per doubling
    assert np.all(index.reconstruct(index.ids) == 1)


# ------------------------------------------------------------------------------ range_search
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("m", [1, 5, 19, 20, 64])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_range_search_against_float64(rng, metric, m, dtype):
    x = rng.standard_normal((2500, 12)).astype(np.float32)
    q = rng.standard_normal((m, 12)).astype(np.float32)
    index = Index(12, metric, dtype)
    ids = rng.permutation(100000)[:2500]
    index.add(x, ids=ids)
    stored = index.reconstruct(ids).astype(np.float64)
    radius = {"ip": 4.0, "l2": 9.0, "cosine": 0.6}[metric]
    lims, d, got = index.range_search(q, radius)
    assert lims.shape == (m + 1,) and lims[0] == 0 and np.all(np.diff(lims) >= 0)
    assert d.shape == got.shape == (lims[-1],)
    s = ref_scores(stored, q, metric)
    expect = ref_range(stored, q, radius, metric)
    tol = 1e-4
    for qi in range(m):
        hit = got[lims[qi] : lims[qi + 1]]
        pos = index._positions(hit)
        assert np.all(np.diff(pos) > 0)  # insertion order
        exp_pos = expect[qi]
        # sets agree except for rows within float32 rounding of the radius
        value = -s[qi] if metric == "l2" else s[qi]
        near = np.abs(value - radius) <= tol
        sym = np.setxor1d(pos, exp_pos)
        assert np.all(near[sym]), (qi, sym)
        np.testing.assert_allclose(as_score(d[lims[qi] : lims[qi + 1]], metric), s[qi, pos], atol=tol)


def test_range_search_exactly_at_radius():
    # integer vectors: every distance is exact in float32 and float64 alike
    base = np.array([[0, 0], [3, 4], [6, 8], [-3, -4], [5, 0], [0, 1]], np.float32)
    q = np.array([[0, 0], [3, 4]], np.float32)
    l2 = Index(2, "l2")
    l2.add(base, ids=[10, 11, 12, 13, 14, 15])
    lims, d, i = l2.range_search(q, 25.0)
    assert lims.tolist() == [0, 5, 10]
    assert i[:5].tolist() == [10, 11, 13, 14, 15] and d[:5].tolist() == [0, 25, 25, 25, 1]
    assert i[5:].tolist() == [10, 11, 12, 14, 15] and d[5:].tolist() == [25, 0, 25, 20, 18]
    ip = Index(2, "ip")
    ip.add(base)
    lims, d, i = ip.range_search(np.array([[1, 0]], np.float32), 3.0)
    assert i.tolist() == [1, 2, 4] and d.tolist() == [3.0, 6.0, 5.0]
    # the boundary uses exactly the float32 value search() reports
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 30)).astype(np.float32)
    index = Index(30, "l2")
    index.add(x)
    kd, ki = index.search(x[:1], 7)
    lims, d, i = index.range_search(x[:1], float(kd[0, 6]))
    assert set(ki[0].tolist()) <= set(i.tolist()) and lims[-1] >= 7
    assert np.all(d <= kd[0, 6])
    # an empty result, an inf radius and a negative l2 radius
    assert index.range_search(x[:2], -1.0)[0].tolist() == [0, 0, 0]
    assert index.range_search(x[:2], float("inf"))[0].tolist() == [0, 500, 1000]


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("m", [3, 40])
def test_range_search_against_faiss(rng, metric, m):
    faiss = pytest.importorskip("faiss")
    x = rng.standard_normal((3000, 32)).astype(np.float32)
    q = rng.standard_normal((m, 32)).astype(np.float32)
    radius = 6.0 if metric == "ip" else 50.0
    index = Index(32, metric)
    index.add(x)
    lims, d, i = index.range_search(q, radius)
    f = faiss.IndexFlatIP(32) if metric == "ip" else faiss.IndexFlatL2(32)
    f.add(x)
    flims, fd, fi = f.range_search(q, radius)
    assert lims[-1] > m  # the case is not trivial
    for qi in range(m):
        ours = dict(zip(i[lims[qi] : lims[qi + 1]].tolist(), d[lims[qi] : lims[qi + 1]].tolist()))
        theirs = dict(zip(fi[flims[qi] : flims[qi + 1]].tolist(), fd[flims[qi] : flims[qi + 1]].tolist()))
        # faiss's bounds are strict and its float32 arithmetic differs in the last bits
        for key in set(ours) ^ set(theirs):
            value = ours.get(key, theirs.get(key))
            assert abs(value - radius) <= 1e-4 * max(1.0, abs(radius)), (qi, key, value)
        for key in set(ours) & set(theirs):
            assert abs(ours[key] - theirs[key]) <= 1e-4 * max(1.0, abs(radius))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_thread_and_batch_independence(rng, dtype):
    # big enough (M N D >= 2 x 2^22) that 2 threads split the base (5 queries: base chunks) or
    # the queries (45 queries: query blocks)
    x = rng.standard_normal((40000, 64)).astype(np.float32)
    q = rng.standard_normal((45, 64)).astype(np.float32)
    index = Index(64, "cosine", dtype)
    index.add(x)
    index.remove(np.arange(0, 40000, 13))  # flagged rows in every chunk
    before = curata.get_num_threads()
    runs = {}
    try:
        for threads in (1, 2):
            curata.set_num_threads(threads)
            runs[threads] = [index.range_search(q[:s], 0.3) for s in (5, 45)] + [index.search(q[:s], 7) for s in (5, 45)]
    finally:
        curata.set_num_threads(before)
    for a, b in zip(runs[1], runs[2]):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    one = runs[1]
    assert one[1][0][-1] > 45  # hits exist
    # a query's result does not depend on the batch it came in
    np.testing.assert_array_equal(one[0][2], one[1][2][: one[1][0][5]])
    np.testing.assert_array_equal(one[2][1], one[3][1][:5])
    assert not np.isin(one[1][2], np.arange(0, 40000, 13)).any()
    # and equals knn / a brute force over the live stored rows
    live = index.ids
    stored = index.reconstruct(live)
    kd, ki = search.knn(stored, q, 7, "cosine")
    np.testing.assert_array_equal(one[3][0], kd)
    np.testing.assert_array_equal(one[3][1], live[ki])


# ------------------------------------------------------------------------------ persistence
def _filled(rng, metric="l2", dtype="float32", n=500, dim=9, increasing=False):
    index = Index(dim, metric, dtype)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    ids = np.arange(n) * 2 if increasing else rng.permutation(10 * n)[:n]
    index.add(x, ids=ids)
    index.remove(ids[::7])
    return index, x


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("increasing", [True, False])
def test_save_load_roundtrip(tmp_path, rng, metric, dtype, increasing):
    index, x = _filled(rng, metric, dtype, increasing=increasing)
    path = tmp_path / "a.curidx"
    index.save(path)
    n, dim, item = len(index), index.dim, np.dtype(dtype).itemsize
    assert os.path.getsize(path) == 72 + n * dim * item + n * 8
    loaded = Index.load(str(path))
    assert (loaded.dim, loaded.metric, loaded.dtype, len(loaded), loaded.next_id) == (
        index.dim, index.metric, index.dtype, len(index), index.next_id)
    np.testing.assert_array_equal(loaded.ids, index.ids)
    for a, b in zip(index.search(x[:30], 6), loaded.search(x[:30], 6)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(index.range_search(x[:30], 0.5), loaded.range_search(x[:30], 0.5)):
        np.testing.assert_array_equal(a, b)
    # the loaded index keeps working: add, remove, id checks
    loaded.add(x[:3])
    assert loaded.ids[-3:].tolist() == list(range(index.next_id, index.next_id + 3))
    with pytest.raises(ValueError, match="already in the index"):
        loaded.add(x[:1], ids=[int(index.ids[0])])
    assert loaded.remove(index.ids[:5]) == 5


def test_save_load_empty(tmp_path):
    index = Index(4, "cosine", "float16")
    index.save(tmp_path / "e")
    loaded = Index.load(tmp_path / "e")
    assert len(loaded) == 0 and loaded.metric == "cosine" and loaded.dtype == np.float16
    assert os.path.getsize(tmp_path / "e") == 72


def test_atomic_write_failure_keeps_old_file(tmp_path, rng, monkeypatch):
    old, x = _filled(rng, n=300)
    path = tmp_path / "idx"
    old.save(path)
    before = path.read_bytes()
    new = Index(9, "ip")
    new.add(rng.standard_normal((5000, 9)))
    calls = {"n": 0}
    real = _index._write_all

    def failing(f, view):
        calls["n"] += 1
        if calls["n"] == 2:  # header written, then the disk fails inside the vectors section
            f.write(view[: len(view) // 2])
            raise OSError(28, "No space left on device")
        real(f, view)

    monkeypatch.setattr(_index, "_write_all", failing)
    with pytest.raises(OSError, match="No space left"):
        new.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no temporary file left
    loaded = Index.load(path)
    np.testing.assert_array_equal(loaded.ids, old.ids)

    monkeypatch.setattr(_index, "_write_all", real)

    def failing_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(_index.os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        new.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    new.save(path)  # and a successful save replaces it
    assert len(Index.load(path)) == 5000


def _saved_bytes(rng, tmp_path, dtype="float32"):
    index, _ = _filled(rng, "ip", dtype, n=200, dim=5)
    path = tmp_path / "src"
    index.save(path)
    return path.read_bytes()


def _load_bytes(tmp_path, data, name="bad"):
    path = tmp_path / name
    path.write_bytes(data)
    return Index.load(path)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_corrupt_single_bytes(tmp_path, rng, dtype):
    good = _saved_bytes(rng, tmp_path, dtype)
    offsets = [0, 3, 7, 8, 11, 12, 16, 20, 24, 25, 26, 27, 28, 36, 44, 52, 60, 64, 68, 71, 72, 100,
               len(good) // 2, len(good) - 8 * 100, len(good) - 1]
    for off in offsets:
        for flip in (0x01, 0x80, 0xFF):
            data = bytearray(good)
            data[off] ^= flip
            with pytest.raises(ValueError) as err:
                _load_bytes(tmp_path, bytes(data))
            msg = str(err.value)
            if off < 8:
                assert "not a curata index file" in msg
            elif off >= 72:
                assert "fails its CRC-32C check: the file is corrupt" in msg and "section" in msg
            else:
                assert "corrupt" in msg, (off, msg)


def test_truncated_files(tmp_path, rng):
    good = _saved_bytes(rng, tmp_path)
    for size in (0, 1, 5, 8, 11, 12, 40, 71, 72, 73, 100, len(good) // 2, len(good) - 1):
        with pytest.raises(ValueError) as err:
            _load_bytes(tmp_path, good[:size])
        msg = str(err.value)
        assert ("truncated" in msg) or (size == 0 and "not a curata index" in msg), (size, msg)
    with pytest.raises(ValueError, match="unexpected bytes after the index data"):
        _load_bytes(tmp_path, good + b"\0")


def test_foreign_files(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 200
    with pytest.raises(ValueError, match="not a curata index file"):
        _load_bytes(tmp_path, png)
    with pytest.raises(ValueError, match="not a curata index file"):
        _load_bytes(tmp_path, b"hello, world\n" * 20)
    np.save(tmp_path / "arr.npy", np.zeros((10, 10)))
    with pytest.raises(ValueError, match="not a curata index file"):
        Index.load(tmp_path / "arr.npy")
    with pytest.raises(FileNotFoundError):
        Index.load(tmp_path / "missing")


def _rewrite_header(good: bytes, **changes) -> bytes:
    """``good`` with header fields changed and the header checksum recomputed (CRC-32C for
    format 2, zlib's CRC-32 for format 1: whatever ``version`` ends up as)."""
    fields = list(_index._HEADER.unpack(good[: _index._HEADER.size]))
    names = ["magic", "version", "header_size", "dim", "metric", "dtype", "id_dtype", "reserved", "count",
             "next_id", "vbytes", "ibytes", "vcrc", "icrc"]
    for key, value in changes.items():
        fields[names.index(key)] = value
    body = _index._HEADER.pack(*fields)
    crc = zlib.crc32(body) if fields[1] == 1 else _core.crc32c(body)
    return body + struct.pack("<I", crc) + good[72:]


def test_newer_version_and_inconsistent_headers(tmp_path, rng):
    good = _saved_bytes(rng, tmp_path)
    with pytest.raises(ValueError, match="format version 3 is newer than this curata reads"):
        _load_bytes(tmp_path, _rewrite_header(good, version=3))
    with pytest.raises(ValueError, match="invalid index format version 0"):
        _load_bytes(tmp_path, _rewrite_header(good, version=0))
    for change, text in ((dict(metric=7), "metric code 7"), (dict(dtype=9), "dtype code 9"),
                         (dict(id_dtype=1), "id dtype code 1"), (dict(dim=0), "dim 0"),
                         (dict(count=201), "vectors section of"), (dict(header_size=80), "header size 80")):
        with pytest.raises(ValueError, match=text):
            _load_bytes(tmp_path, _rewrite_header(good, **change))
    # consistent header and checksums, but the content breaks an invariant
    fields = _index._HEADER.unpack(good[: _index._HEADER.size])
    with pytest.raises(ValueError, match="next id 0 is not above the largest id"):
        _load_bytes(tmp_path, _rewrite_header(good, next_id=0))
    count = fields[8]
    ids_off = len(good) - 8 * count
    ids = np.frombuffer(good[ids_off:], "<i8").copy()
    ids[1] = ids[0]
    tampered = good[:ids_off] + ids.tobytes()
    with pytest.raises(ValueError, match="duplicate ids"):
        _load_bytes(tmp_path, _rewrite_header(tampered, icrc=_core.crc32c(ids.tobytes())))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_load_rejects_nonfinite_vectors_with_valid_checksums(tmp_path, rng, dtype, value):
    good = _saved_bytes(rng, tmp_path, dtype)
    count, dim = _index._HEADER.unpack(good[: _index._HEADER.size])[8], 5
    vec_end = 72 + count * dim * np.dtype(dtype).itemsize
    vectors = np.frombuffer(good[72:vec_end], dtype).copy()
    vectors[3 * dim + 2] = value
    tampered = good[:72] + vectors.tobytes() + good[vec_end:]
    with pytest.raises(ValueError, match="stored vector 3 is not finite"):
        _load_bytes(tmp_path, _rewrite_header(tampered, vcrc=_core.crc32c(vectors.tobytes())))


# ------------------------------------------------------------------------------ format versions
def test_format_2_layout_and_checksums(tmp_path, rng):
    # Fields and checksums of a saved file against the layout table and a bitwise CRC-32C.
    good = _saved_bytes(rng, tmp_path)
    fields = _index._HEADER.unpack(good[: _index._HEADER.size])
    magic, version, header_size, dim, metric, dtype, id_dtype, reserved, count, next_id, vb, ib, vcrc, icrc = fields
    assert (magic, version, header_size, dim, metric, dtype, id_dtype, reserved) == (b"CURATAIX", 2, 72, 5, 0, 0, 0, 0)
    assert len(good) == 72 + vb + ib and vb == count * 5 * 4 and ib == count * 8
    assert vcrc == crc32c_reference(good[72 : 72 + vb])
    assert icrc == crc32c_reference(good[72 + vb :])
    assert struct.unpack_from("<I", good, 68)[0] == crc32c_reference(good[:68])


def _v1_expected():
    """What tests/data/index_v1_*.curidx hold (written by the format-1 writer, see that commit)."""
    x = (np.arange(60, dtype=np.float32).reshape(20, 3) % 7) - 3
    ids = (np.arange(20, dtype=np.int64) * 37) % 101 - 50
    keep = np.setdiff1d(np.arange(20), [2, 5])
    return x[keep], ids[keep]


@pytest.mark.parametrize("dtype, metric", [("float32", "l2"), ("float16", "ip")])
def test_loads_format_1_file_written_by_the_old_writer(tmp_path, dtype, metric):
    path = os.path.join(os.path.dirname(__file__), "data", f"index_v1_{dtype}.curidx")
    with open(path, "rb") as f:
        assert struct.unpack_from("<I", f.read(12), 8)[0] == 1
    loaded = Index.load(path)
    x, ids = _v1_expected()
    got = (loaded.dim, loaded.metric, loaded.dtype, len(loaded), loaded.next_id)
    assert got == (3, metric, np.dtype(dtype), 18, 48)
    np.testing.assert_array_equal(loaded.ids, ids)
    np.testing.assert_array_equal(loaded.reconstruct(ids), x)
    if metric == "l2":  # each row finds itself (the first copy of rows that repeat every 7)
        assert loaded.search(x[:4], 1)[1][:, 0].tolist() == ids[:4].tolist()
    assert ids[5] in loaded and 999 not in loaded
    # saved again it becomes a format-2 file with the same content
    loaded.save(tmp_path / "v2")
    assert struct.unpack_from("<I", (tmp_path / "v2").read_bytes(), 8)[0] == 2
    again = Index.load(tmp_path / "v2")
    np.testing.assert_array_equal(again.ids, ids)
    np.testing.assert_array_equal(again.reconstruct(ids), x)
    # and a damaged format-1 file names format 1's checksum
    data = bytearray(open(path, "rb").read())
    data[80] ^= 0x10
    with pytest.raises(ValueError, match="vectors section fails its CRC-32 check: the file is corrupt"):
        _load_bytes(tmp_path, bytes(data))
    data[80] ^= 0x10
    data[30] ^= 0x01
    with pytest.raises(ValueError, match="header fails its CRC-32 check: the file is corrupt"):
        _load_bytes(tmp_path, bytes(data))


def _as_format_1(good: bytes) -> bytes:
    """The format-1 writer's output for the same index: same layout, zlib CRC-32 checksums."""
    fields = _index._HEADER.unpack(good[: _index._HEADER.size])
    vb = fields[10]
    vectors, ids = good[72 : 72 + vb], good[72 + vb :]
    return _rewrite_header(good, version=1, vcrc=zlib.crc32(vectors), icrc=zlib.crc32(ids))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_format_1_and_2_load_the_same(tmp_path, rng, dtype):
    good = _saved_bytes(rng, tmp_path, dtype)
    old = _as_format_1(good)
    assert old[72:] == good[72:] and old[8:12] == struct.pack("<I", 1)
    a, b = _load_bytes(tmp_path, good, "v2"), _load_bytes(tmp_path, old, "v1")
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.reconstruct(a.ids), b.reconstruct(b.ids))
    assert a.next_id == b.next_id
    # a format-2 checksum in a file that says format 1 (or the reverse) is a corrupt file
    with pytest.raises(ValueError, match="fails its CRC-32 check"):
        _load_bytes(tmp_path, _rewrite_header(good, version=1))
    with pytest.raises(ValueError, match="fails its CRC-32C check"):
        _load_bytes(tmp_path, _rewrite_header(old, version=2))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_sections_in_many_pieces(tmp_path, rng, dtype, monkeypatch):
    # Pieces of 1000 bytes (not a multiple of a row) for writing, whole rows for reading: the
    # checksums chain across pieces, and a non-finite row is found in any piece.
    monkeypatch.setattr(_index, "_CHUNK_BYTES", 1000)
    index = Index(7, "l2", dtype)
    x = rng.standard_normal((1000, 7)).astype(np.float32)
    index.add(x, ids=rng.permutation(5000)[:1000])
    path = tmp_path / "pieces"
    index.save(path)
    good = path.read_bytes()
    loaded = Index.load(path)
    np.testing.assert_array_equal(loaded.ids, index.ids)
    np.testing.assert_array_equal(loaded.reconstruct(index.ids), index.reconstruct(index.ids))
    monkeypatch.undo()
    assert Index.load(path).next_id == index.next_id  # and with the default piece size
    monkeypatch.setattr(_index, "_CHUNK_BYTES", 1000)
    item = np.dtype(dtype).itemsize
    vectors = np.frombuffer(good[72 : 72 + 1000 * 7 * item], dtype).copy().reshape(1000, 7)
    for row in (0, 71, 72, 500, 999):  # 1000 // (7 * 4) = 35 rows a piece for float32, 71 for float16
        bad = vectors.copy()
        bad[row, 3] = np.inf
        bad[min(row + 40, 999), 0] = np.nan
        tampered = good[:72] + bad.tobytes() + good[72 + bad.nbytes :]
        with pytest.raises(ValueError, match=f"stored vector {row} is not finite"):
            _load_bytes(tmp_path, _rewrite_header(tampered, vcrc=_core.crc32c(bad.tobytes())))
    for cut in (72 + 35 * 7 * item, 72 + 1000 * 7 * item - 1, len(good) - 3):
        with pytest.raises(ValueError, match="truncated"):
            _load_bytes(tmp_path, good[:cut])


def test_full_disk_before_writing_keeps_old_file(tmp_path, rng, monkeypatch):
    from curata import _io

    old, _ = _filled(rng, n=100)
    path = tmp_path / "idx"
    old.save(path)
    before = path.read_bytes()

    def no_space(fd, size):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_io._core, "preallocate", no_space)
    with pytest.raises(OSError, match="No space left"):
        old.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


# ------------------------------------------------------------------------------ model-based fuzz
@st.composite
def _programs(draw):
    dim = draw(st.integers(1, 4))
    metric = draw(st.sampled_from(["ip", "l2"]))
    dtype = draw(st.sampled_from(["float32", "float16"]))
    lazy = draw(st.booleans())
    ops = []
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["add", "add_ids", "remove", "search", "range", "save"]))
        if kind in ("add", "add_ids"):
            rows = draw(st.integers(0, 6))
            vecs = draw(st.lists(st.lists(st.integers(-3, 3), min_size=dim, max_size=dim), min_size=rows,
                                 max_size=rows))
            ids = None
            if kind == "add_ids":
                ids = draw(st.lists(st.integers(-20, 40), min_size=rows, max_size=rows))
            ops.append((kind, vecs, ids))
        elif kind == "remove":
            ops.append((kind, draw(st.lists(st.integers(-20, 60), max_size=5)), None))
        elif kind in ("search", "range"):
            q = draw(st.lists(st.lists(st.integers(-3, 3), min_size=dim, max_size=dim), min_size=1, max_size=3))
            ops.append((kind, q, draw(st.integers(-2, 8))))
        else:
            ops.append((kind, None, None))
    return dim, metric, dtype, lazy, ops


@settings(max_examples=80, deadline=None)
@given(_programs())
def test_fuzz_against_dict_model(tmp_path_factory, program):
    # Small integer vectors: every score is exact in float16, float32 and float64, so the model's
    # ranking (score, then insertion order) must be reproduced exactly.
    dim, metric, dtype, lazy, ops = program
    index = Index(dim, metric, dtype)
    if lazy:  # removed rows stay flagged (searched past, ids may repeat) until a save
        index._compact_divisor = 0
    model: dict[int, np.ndarray] = {}  # insertion-ordered, like the index's rows
    next_id = 0
    path = tmp_path_factory.mktemp("fuzz") / "idx"
    for kind, payload, extra in ops:
        if kind in ("add", "add_ids"):
            x = np.array(payload, np.float32).reshape(-1, dim)
            ids = extra
            bad = ids is not None and (len(set(ids)) != len(ids) or any(i in model for i in ids))
            if bad:
                with pytest.raises(ValueError):
                    index.add(x, ids=ids)
                continue
            got = index.add(x, ids=ids)
            new = list(range(next_id, next_id + len(x))) if ids is None else list(ids)
            assert got.tolist() == new
            for i, row in zip(new, x):
                model[i] = row
            if new:
                next_id = max(next_id, max(new) + 1)
        elif kind == "remove":
            expect = len(set(payload) & set(model))
            assert index.remove(payload) == expect
            for i in set(payload):
                model.pop(i, None)
        elif kind == "save":
            index.save(path)
            index = Index.load(path)
            if lazy:
                index._compact_divisor = 0
        else:
            q = np.array(payload, np.float32)
            keys = list(model)
            base = np.array([model[i] for i in keys], np.float64).reshape(-1, dim)
            s = ref_scores(base, q, metric) if keys else np.zeros((len(q), 0))
            if kind == "search":
                k = extra
                if not keys:
                    with pytest.raises(ValueError):
                        index.search(q, max(k, 1))
                    continue
                if not 1 <= k <= len(keys):
                    with pytest.raises(ValueError):
                        index.search(q, k)
                    continue
                d, got = index.search(q, k)
                for r in range(len(q)):
                    order = np.lexsort((np.arange(len(keys)), -s[r]))[:k]
                    assert got[r].tolist() == [keys[j] for j in order]
                    np.testing.assert_array_equal(as_score(d[r], metric), s[r, order])
            else:
                radius = float(extra)
                lims, d, got = index.range_search(q, radius)
                for r in range(len(q)):
                    sel = np.flatnonzero((-s[r] <= radius) if metric == "l2" else (s[r] >= radius))
                    assert got[lims[r] : lims[r + 1]].tolist() == [keys[j] for j in sel]
        assert len(index) == len(model)
        assert index.ids.tolist() == list(model)
        assert index.next_id == next_id


@pytest.mark.parametrize("scale", [2.0**70, 2.0**-70])
def test_cosine_queries_whose_float32_norms_overflow_or_underflow(rng, scale):
    # Stored cosine rows are normalised in float64, but a query's float32 norm overflowed (or
    # underflowed to 0, a "zero query"): every similarity came out 0 and ids came back by index.
    x = rng.standard_normal((50, 6)).astype(np.float32)
    q = x[:7].copy()
    index = Index(6, metric="cosine")
    index.add(x * np.float32(scale))  # stored rows too: normalisation must not lose them
    d0, i0 = index.search(q, 4)
    qs = q * np.float32(scale)
    before = qs.copy()
    d, i = index.search(qs, 4)
    np.testing.assert_array_equal(i, i0)
    np.testing.assert_array_equal(d, d0)
    np.testing.assert_array_equal(i[:, 0], np.arange(7))  # each query finds itself first
    np.testing.assert_array_equal(qs, before)
    lims0, rd0, ri0 = index.range_search(q, 0.5)
    lims, rd, ri = index.range_search(qs, 0.5)
    np.testing.assert_array_equal(lims, lims0)
    np.testing.assert_array_equal(ri, ri0)
    np.testing.assert_array_equal(rd, rd0)


def test_save_to_a_directory_or_a_missing_directory_names_the_path(tmp_path, rng):
    # The errors named the hidden temporary file ('.../no/.x.idx.nwfbsbij.tmp', or a temp file
    # written in full next to the directory before the rename failed); nothing is left behind.
    index = Index(4)
    index.add(rng.standard_normal((50, 4)).astype(np.float32))
    target = tmp_path / "folder"
    target.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        index.save(target)
    assert info.value.filename == str(target)
    missing = tmp_path / "no" / "x.idx"
    with pytest.raises(FileNotFoundError) as info:
        index.save(missing)
    assert info.value.filename == str(tmp_path / "no")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"] and not any(target.iterdir())


def test_largest_int64_id_saves_and_loads(tmp_path):
    # next_id is one above the largest id ever added: 2**63 once id 2**63 - 1 is in. The header
    # packed it as int64, so save() died with struct.error("argument out of range") and an index
    # holding a documented-valid id could not be saved at all.
    index = Index(2, "l2")
    index.add(np.ones((2, 2), np.float32), [2**63 - 1, -(2**63)])
    assert index.next_id == 2**63
    path = tmp_path / "max.curidx"
    index.save(path)
    loaded = Index.load(path, device="cpu")
    assert loaded.next_id == 2**63
    assert loaded.ids.tolist() == [2**63 - 1, -(2**63)]
    with pytest.raises(ValueError, match="default ids would exceed the int64 range"):
        loaded.add(np.ones((1, 2), np.float32))
    loaded.remove([2**63 - 1])
    loaded.save(path)  # no id left above 2**62, next_id still 2**63
    assert Index.load(path, device="cpu").next_id == 2**63
    # a next id beyond 2**63 (or a negative int64 one, the same bits) is refused on load
    good = path.read_bytes()
    with pytest.raises(ValueError, match="next id 9223372036854775809 is beyond 2\\^63"):
        _load_bytes(tmp_path, _rewrite_header(good, next_id=2**63 + 1))


def test_save_and_load_accept_bytes_paths(tmp_path):
    # os.PathLike/str/bytes paths: load took bytes, but save died in tempfile.mkstemp with
    # "TypeError: can only concatenate str (not "bytes") to str" (a str prefix + a bytes name).
    index = Index(3, "l2")
    index.add(np.arange(6, dtype=np.float32).reshape(2, 3))
    path = os.fsencode(tmp_path / "bytes.curidx")
    index.save(path)
    loaded = Index.load(path, device="cpu")
    assert loaded.ids.tolist() == [0, 1]
    assert sorted(os.listdir(tmp_path)) == ["bytes.curidx"]


def test_contains_uses_python_equality():
    # `in` converted with np.array([id_], dtype=np.int64): 3.5 was truncated to 3 and the string
    # "3" parsed, so both were "in" an index holding id 3; [3] too.
    index = Index(2)
    index.add(np.ones((5, 2), np.float32))
    assert 3 in index and np.int32(3) in index and 3.0 in index and np.float32(3.0) in index
    assert True in index  # True == 1, as in a set of ints
    for other in (3.5, np.float32(2.7), "3", [3], np.array([3]), None, float("nan"), float("inf"), 2**63, -1, 5):
        assert other not in index, other


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_range_search_radius_beyond_the_float_range(metric):
    # float(10**400) raised OverflowError (neither ValueError nor TypeError); such an int radius
    # is as far as infinity: every vector for l2 (<=) and none for ip (>=), and the reverse below.
    index = Index(2, metric)
    index.add(np.eye(2, dtype=np.float32))
    q = np.zeros((1, 2), np.float32)
    for radius, inf in ((10**400, float("inf")), (-(10**400), float("-inf"))):
        got = index.range_search(q, radius)
        want = index.range_search(q, inf)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    assert index.range_search(q, 10**400)[0][-1] == (2 if metric == "l2" else 0)


@pytest.mark.parametrize("name", ["a" * 251 + ".idx", "é" * 125 + ".idx"])
def test_save_to_a_name_near_the_length_limit(tmp_path, name):
    # 255-byte names are legal, but the temporary file's name added "." + 8 random characters +
    # ".tmp" to it: save() failed with ENAMETOOLONG naming the temporary file.
    index = Index(2)
    index.add(np.ones((3, 2), np.float32))
    path = tmp_path / name
    assert len(os.fsencode(name)) <= 255
    index.save(path)
    assert len(Index.load(path, device="cpu")) == 3
    assert os.listdir(tmp_path) == [name]
