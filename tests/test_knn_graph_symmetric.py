"""curata.search.knn_graph's symmetric self-join against the general query x base path.

The join computes each pair's dot product once and feeds it to both rows' heaps; its results must
be those of ``_core.knn(x, x, k, metric, exclude_self=True)`` bit for bit (distances, indices, the
tie rule, the non-finite status), whatever the block size, thread count and kernel width. The
float64 numpy reference of search_reference.py checks both against independent arithmetic.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import curata
from curata import _core, search
from search_reference import scores64

METRICS = {"ip": 0, "l2": 1, "cosine": 2}
GENERAL, SYMMETRIC = 1, 2


def graph(x, k, metric, path, block_rows=0):
    d, i, bad = _core.knn_graph(x, k, METRICS[metric], path, block_rows)
    return d, i, bad


def general(x, k, metric):
    d, i, bad, _ = _core.knn(x, x, k, METRICS[metric], True)
    return d, i, bad


def assert_bits_equal(a, b):
    """Same float32 bit patterns (so -0.0 != 0.0 and NaN == NaN at the same places) and indices."""
    da, ia, ba = a
    db, ib, bb = b
    assert da.dtype == db.dtype == np.float32
    np.testing.assert_array_equal(da.view(np.uint32), db.view(np.uint32))
    np.testing.assert_array_equal(ia, ib)
    assert ba == bb


def make(rng, kind, n, dim):
    if kind == "normal":
        return rng.standard_normal((n, dim)).astype(np.float32)
    if kind == "ties":  # tiny integer range: many equal distances, ordered by index
        return rng.integers(-1, 2, (n, dim)).astype(np.float32)
    if kind == "duplicates":  # every row appears 3 times at distant indices, plus a zero row
        base = rng.integers(-3, 4, ((n + 2) // 3, dim)).astype(np.float32)
        x = np.concatenate([base, base[::-1], base])[:n].copy()
        x[n // 2] = 0
        return x
    if kind == "offset":  # far from the origin: the L2 shift mu is active
        return (rng.standard_normal((n, dim)) * 3 + 1000).astype(np.float32)
    raise AssertionError(kind)


@pytest.mark.parametrize("metric", list(METRICS))
@pytest.mark.parametrize("kind", ["normal", "ties", "duplicates", "offset"])
@pytest.mark.parametrize(
    ("n", "dim", "k", "block_rows"),
    [
        (301, 37, 10, 24),  # N not a multiple of the block, d not a multiple of 8 or 16
        (250, 16, 249, 48),  # k = N - 1: every other row is kept
        (97, 5, 1, 12),
        (130, 1, 7, 5),  # d = 1, blocks smaller than a register block
        (200, 512, 6, 0),  # default blocks (96): a partial third block
        (260, 20, 20, 96),
    ],
)
def test_symmetric_bit_identical_to_general(rng, metric, kind, n, dim, k, block_rows):
    x = make(rng, kind, n, dim)
    assert_bits_equal(graph(x, k, metric, SYMMETRIC, block_rows), general(x, k, metric))


@pytest.mark.parametrize("metric", list(METRICS))
def test_symmetric_matches_float64_reference(rng, metric):
    x = rng.standard_normal((400, 29)).astype(np.float32)
    x[7] = x[300]  # an exact duplicate across blocks
    x[11] = 0
    d, i, bad = graph(x, 9, metric, SYMMETRIC, 36)
    assert bad == -1
    # float64 scores (larger is better), the row itself excluded; the float32 results may order
    # neighbours closer than float32 rounding differently, so compare within a tolerance.
    s = scores64(x, x, metric)
    s = -s if metric == "l2" else s
    np.fill_diagonal(s, -np.inf)
    tol = 1e-5 * (1.0 if metric == "cosine" else 4 * float((x.astype(np.float64) ** 2).sum(1).max()))
    kth = -np.sort(-s, axis=1)[:, 8]
    got = np.take_along_axis(s, i, axis=1)
    assert np.all(got >= kth[:, None] - tol)
    np.testing.assert_allclose(-d if metric == "l2" else d, got, atol=tol, rtol=0)
    assert all(len(set(row)) == 9 for row in i.tolist())
    assert not (i == np.arange(400)[:, None]).any()
    if metric == "l2":
        assert i[7, 0] == 300 and i[300, 0] == 7 and d[7, 0] == d[300, 0] == 0.0


def test_integer_ties_by_lower_index(rng):
    # All rows equal: every distance ties, so each row's neighbours are the lowest other indices.
    x = np.ones((150, 3), np.float32)
    for metric in METRICS:
        d, i, _ = graph(x, 4, metric, SYMMETRIC, 12)
        want = np.array([[j for j in range(6) if j != r][:4] for r in range(150)])
        np.testing.assert_array_equal(i, want)
        assert_bits_equal((d, i, -1), general(x, 4, metric))


def test_independent_of_threads_and_blocks(rng):
    # 1000 x 64 is enough work for several threads; small blocks give a long pipeline of row blocks.
    x = make(rng, "ties", 1000, 64)
    x[900:] = x[:100]
    before = curata.get_num_threads()
    for metric in METRICS:
        want = general(x, 12, metric)
        for block_rows in (12, 24, 100):
            for threads in (1, 2, 3):
                try:
                    curata.set_num_threads(threads)
                    got = graph(x, 12, metric, SYMMETRIC, block_rows)
                finally:
                    curata.set_num_threads(before)
                assert_bits_equal(got, want)


@pytest.mark.parametrize("k", [5, 150])  # 150: the general path keeps candidates in a buffer, not a heap
def test_overflow_nan_scores_same_bits(rng, k):
    # Finite rows whose dot products overflow: inf - inf partial sums give NaN scores, which the
    # heap's early-out skips; the join feeds every heap in increasing index, so even these match.
    x = rng.standard_normal((260, 32)).astype(np.float32)
    x[5, :16] = 3e38
    x[5, 16:] = -3e38
    x[77] = 1e30
    x[200] = -1e30
    for metric in METRICS:
        with np.errstate(all="ignore"):
            assert_bits_equal(graph(x, k, metric, SYMMETRIC, 24), general(x, k, metric))


def test_nonfinite_row_reported(rng):
    x = rng.standard_normal((300, 10)).astype(np.float32)
    x[123, 4] = np.nan
    for metric in METRICS:
        d, i, bad = graph(x, 3, metric, SYMMETRIC, 24)
        assert bad == 123
    big = rng.standard_normal((2000, 8)).astype(np.float32)  # large enough for the automatic join
    big[1500, 0] = np.inf
    with pytest.raises(ValueError, match="row 1500"):
        search.knn_graph(big, 3, "l2")


@pytest.mark.parametrize("metric", list(METRICS))
def test_public_knn_graph_equals_general_path(rng, metric):
    # Large enough that the automatic choice takes the join on any thread count up to 5.
    x = make(rng, "ties", 2000, 12)
    want = general(x, 8, metric)
    d, i = search.knn_graph(x, 8, metric)
    assert_bits_equal((d, i, -1), want)
    # float16, float64 and non-contiguous input are converted to float32 first, as before.
    x16 = rng.standard_normal((2000, 12)).astype(np.float16)
    d, i = search.knn_graph(x16, 5, metric)
    assert_bits_equal((d, i, -1), general(x16.astype(np.float32), 5, metric))
    x64 = rng.standard_normal((24, 2000)).T
    d, i = search.knn_graph(x64, 5, metric)
    assert_bits_equal((d, i, -1), general(np.ascontiguousarray(x64, np.float32), 5, metric))


def test_torch_cpu_tensor(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((1500, 24)).astype(np.float32)
    d, i = search.knn_graph(torch.from_numpy(x), 6, "cosine")
    assert isinstance(d, torch.Tensor) and isinstance(i, torch.Tensor)
    assert_bits_equal((d.numpy(), i.numpy(), -1), general(x, 6, "cosine"))


def test_bad_internal_arguments(rng):
    x = rng.standard_normal((50, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="block_rows"):
        _core.knn_graph(x, 3, 0, SYMMETRIC, -1)
    with pytest.raises(ValueError, match="block_rows"):
        _core.knn_graph(x, 3, 0, SYMMETRIC, 100000)
    with pytest.raises(ValueError, match="path"):
        _core.knn_graph(x, 3, 0, 7, 0)
    with pytest.raises(ValueError, match="k must be"):
        _core.knn_graph(x, 50, 0, SYMMETRIC, 12)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 90),
    dim=st.integers(1, 40),
    block_rows=st.integers(1, 40),
    metric=st.sampled_from(list(METRICS)),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_fuzz_small_integers(n, dim, block_rows, metric, seed, data):
    k = data.draw(st.integers(1, n - 1))
    r = np.random.default_rng(seed)
    x = r.integers(-2, 3, (n, dim)).astype(np.float32)
    if n > 3:
        x[r.integers(0, n, n // 3)] = x[r.integers(0, n, n // 3)]  # duplicates
    assert_bits_equal(graph(x, k, metric, SYMMETRIC, block_rows), general(x, k, metric))


def test_eight_lane_kernel_in_subprocess(tmp_path):
    # AVX-512 machines use the 16-lane kernel; CURATA_KNN_NO_AVX512=1 forces the 8-lane one (3 x 4
    # register blocks), whose dots must be just as symmetric.
    script = tmp_path / "run.py"
    script.write_text(
        "import numpy as np\n"
        "from curata import _core\n"
        "r = np.random.default_rng(3)\n"
        "bad = 0\n"
        "for n, dim, k, rows in ((301, 45, 7, 24), (200, 9, 199, 12)):\n"
        "    for x in (r.standard_normal((n, dim)).astype(np.float32),\n"
        "              r.integers(-2, 3, (n, dim)).astype(np.float32) + 500):\n"
        "        for code in (0, 1, 2):\n"
        "            d1, i1, _, _ = _core.knn(x, x, k, code, True)\n"
        "            d2, i2, _ = _core.knn_graph(x, k, code, 2, rows)\n"
        "            bad += not (np.array_equal(d1.view(np.uint32), d2.view(np.uint32)) and np.array_equal(i1, i2))\n"
        "print('mismatches', bad)\n"
    )
    env = dict(os.environ, CURATA_KNN_NO_AVX512="1")
    out = subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=120, capture_output=True, text=True)
    assert out.stdout.strip() == "mismatches 0"
