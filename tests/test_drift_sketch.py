"""Mergeable drift state: Moments, Histogram, QuantileSketch, ks_from_sketches.

Laws (hypothesis): merging the states of any split of the rows equals the state of the union —
Moments within 1e-12 relative, Histogram exactly, QuantileSketch within its certified bound.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from curata import drift

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def split_points(draw_sizes, n):
    cuts = sorted({min(max(c, 0), n) for c in draw_sizes})
    return [0, *cuts, n]


def chunks(x, cuts):
    return [x[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


# ------------------------------------------------------------------ Moments
def reference_moments(x):
    x = np.asarray(x, dtype=np.float64)
    mean = x.sum(axis=0) / len(x)
    return len(x), mean, ((x - mean) ** 2).sum(axis=0), x.min(axis=0), x.max(axis=0)


def assert_moments(state, x):
    n, mean, m2, lo, hi = reference_moments(x)
    scale = np.max(np.abs(x), axis=0) if len(x) else np.zeros(x.shape[1])
    assert state.count == n
    np.testing.assert_allclose(state.mean, mean, rtol=1e-12, atol=1e-12 * scale.max(initial=0))
    np.testing.assert_allclose(state.m2, m2, rtol=1e-12, atol=1e-12 * n * scale.max(initial=0) ** 2)
    assert np.array_equal(state.min, lo) and np.array_equal(state.max, hi)


@given(
    x=hnp.arrays(np.float64, st.tuples(st.integers(1, 60), st.integers(1, 4)), elements=finite),
    cuts=st.lists(st.integers(0, 60), max_size=5),
)
def test_moments_merge_of_parts_equals_union(x, cuts):
    parts = [drift.Moments().update(c) for c in chunks(x, split_points(cuts, len(x)))]
    merged = parts[0]
    for p in parts[1:]:
        merged = merged.merge(p)
    assert_moments(merged, x)
    # Streaming update of the same chunks gives the same law.
    s = drift.Moments()
    for c in chunks(x, split_points(cuts, len(x))):
        s.update(c)
    assert_moments(s, x)


def test_moments_values_and_errors():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=1e4, size=(1000, 3))
    s = drift.Moments().update(x[:10]).update(x[10:])
    np.testing.assert_allclose(s.variance(ddof=1), x.var(axis=0, ddof=1), rtol=1e-12)
    a = drift.Moments().update(x[:5])
    b = drift.Moments().update(x[5:])
    a_before = a.mean.copy()
    a.merge(b)
    assert np.array_equal(a.mean, a_before), "merge must not change its inputs"
    assert drift.Moments().merge(b).count == b.count and b.merge(drift.Moments()).count == b.count
    with pytest.raises(ValueError, match="NaN"):
        drift.Moments().update(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="3 columns"):
        s.update(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="other must have 3 columns"):
        s.merge(drift.Moments().update(np.zeros((2, 2))))
    with pytest.raises(TypeError, match="Moments"):
        s.merge(3)
    with pytest.raises(ValueError, match="empty"):
        drift.Moments().variance()


@pytest.mark.parametrize("offset", [0.0, 1e6, 1.7e9])
def test_moments_merge_far_from_the_origin(offset):
    # 1000 merged batches of unit-spread data at an offset (1.7e9: POSIX seconds): Chan's
    # delta = mean_b - mean_a carried the means' rounding (eps |mean|) into M2, 1.9e-9 relative
    # at 1e9 and 6e-12 at 1e6, against the documented ~1e-15. Reference: exact rational arithmetic.
    from fractions import Fraction

    rng = np.random.default_rng(40)
    x = rng.normal(size=3000) + offset
    exact_mean = sum(Fraction(float(v)) for v in x) / len(x)
    exact_m2 = sum((Fraction(float(v)) - exact_mean) ** 2 for v in x)
    merged = drift.Moments()
    for part in np.array_split(x, 1000):
        merged = merged.merge(drift.Moments().update(part))
    streamed = drift.Moments()
    for part in np.array_split(x, 300):
        streamed.update(part)
    for s in (merged, streamed, drift.Moments().update(x)):
        assert abs(Fraction(float(s.m2[0])) - exact_m2) <= Fraction(1e-13) * exact_m2  # summation: ~1e-14
        assert abs(Fraction(float(s.mean[0])) - exact_mean) <= Fraction(2.0**-52) * abs(exact_mean) + Fraction(1e-15)


def test_moments_mean_is_rounded_once():
    # A single update kept numpy's pairwise mean (3-6 ulps off at 1e8 to 1e15) although the
    # residual mean it computes next is the correction: the mean is now renormalised with it.
    from fractions import Fraction

    rng = np.random.default_rng(41)
    for offset, sd in ((1e3, 1.0), (1e8, 1e-3), (1e15, 1e4), (-1e12, 1.0)):
        x = np.round(rng.normal(size=(150, 1)) * sd + offset, 3)
        exact = sum(Fraction(float(v)) for v in x[:, 0]) / len(x)
        got = Fraction(float(drift.Moments().update(x).mean[0]))
        assert abs(got - exact) <= abs(Fraction(np.spacing(float(exact)))) / 2 * Fraction(1.01)


# ------------------------------------------------------------------ Histogram
EDGES = np.array([-3.0, -1.0, -0.25, 0.0, 0.5, 2.0])


@given(
    x=hnp.arrays(np.float64, st.tuples(st.integers(1, 80), st.integers(1, 3)),
                 elements=st.one_of(st.floats(-4, 4), st.sampled_from(list(EDGES)))),
    cuts=st.lists(st.integers(0, 80), max_size=5),
)
def test_histogram_merge_is_exact(x, cuts):
    parts = [drift.Histogram(EDGES).update(c) for c in chunks(x, split_points(cuts, len(x)))]
    merged = parts[0]
    for p in parts[1:]:
        merged = merged.merge(p)
    whole = drift.Histogram(EDGES).update(x)
    assert np.array_equal(merged.counts, whole.counts)
    assert np.array_equal(merged.under, whole.under) and np.array_equal(merged.over, whole.over)
    assert merged.count == whole.count == len(x)
    for j in range(x.shape[1]):  # independent reference: numpy's histogram convention
        ref, _ = np.histogram(x[:, j], bins=EDGES)
        assert np.array_equal(whole.counts[j], ref)
        assert whole.under[j] == np.sum(x[:, j] < EDGES[0]) and whole.over[j] == np.sum(x[:, j] > EDGES[-1])


def test_histogram_errors():
    h = drift.Histogram(EDGES).update(np.zeros(3))
    with pytest.raises(ValueError, match="different edges"):
        h.merge(drift.Histogram(EDGES + 1e-9).update(np.zeros(3)))
    with pytest.raises(ValueError, match="different edges"):
        h.merge(drift.Histogram(EDGES[:-1]))
    with pytest.raises(ValueError, match="strictly increasing"):
        drift.Histogram([0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        drift.Histogram([1.0])
    with pytest.raises(ValueError, match="NaN"):
        h.update(np.array([np.nan]))
    with pytest.raises(ValueError, match="1 columns"):
        h.update(np.zeros((2, 2)))
    torch = pytest.importorskip("torch")
    h.update(torch.tensor([0.1, 5.0]))
    assert h.count == 5 and h.over[0] == 1


# ------------------------------------------------------------------ QuantileSketch
def max_rank_error(sketch, values):
    v = np.sort(np.asarray(values, dtype=np.float64))
    grid = np.union1d(v, sketch._weighted()[0])
    grid = np.concatenate([grid, [grid[0] - 1.0]])
    true = np.searchsorted(v, grid, side="right")
    return int(np.max(np.abs(sketch.rank(grid) - true)))


@given(
    x=hnp.arrays(np.float64, st.integers(1, 400), elements=st.one_of(finite, st.integers(-3, 3).map(float))),
    cuts=st.lists(st.integers(0, 400), max_size=6),
    seed=st.integers(0, 3),
)
def test_sketch_merge_within_bound(x, cuts, seed):
    parts = [drift.QuantileSketch(k=8, seed=seed + i).update(c) for i, c in enumerate(chunks(x, split_points(cuts, len(x))))]
    merged = parts[0]
    for p in parts[1:]:
        merged = merged.merge(p)
    assert merged.count == len(x) and merged.min == x.min() and merged.max == x.max()
    assert max_rank_error(merged, x) <= merged.rank_error_bound
    whole = drift.QuantileSketch(k=8, seed=seed).update(x)
    assert max_rank_error(whole, x) <= whole.rank_error_bound
    # The merged and the one-shot sketch both approximate the union: within the sum of bounds.
    grid = np.unique(x)
    assert np.max(np.abs(merged.rank(grid) - whole.rank(grid))) <= merged.rank_error_bound + whole.rank_error_bound


def test_sketch_exact_below_capacity_and_deterministic():
    rng = np.random.default_rng(1)
    x = rng.normal(size=500)
    s = drift.QuantileSketch(k=1024).update(x)
    assert s.rank_error_bound == 0
    assert np.array_equal(s.rank(x), np.searchsorted(np.sort(x), x, side="right"))
    np.testing.assert_array_equal(s.quantile([0.0, 0.5, 1.0]), [x.min(), np.sort(x)[249], x.max()])
    big = rng.normal(size=200_000)
    a = drift.QuantileSketch(k=256, seed=7)
    b = drift.QuantileSketch(k=256, seed=7)
    for c in np.array_split(big, 37):
        a.update(c)
        b.update(c)
    assert np.array_equal(a.rank(big[:100]), b.rank(big[:100]))
    assert a.retained < 256 * 14
    assert max_rank_error(a, big) <= a.rank_error_bound
    # Stated size of the bound: about n log2(n / k) / k.
    assert a.normalized_rank_error <= np.log2(len(big) / 256) / 256 * 1.5
    qs = a.quantile([0.1, 0.5, 0.9])
    true_ranks = np.searchsorted(np.sort(big), qs, side="right") / len(big)
    assert np.all(np.abs(true_ranks - [0.1, 0.5, 0.9]) <= a.normalized_rank_error + 1 / len(big))


def test_sketch_errors():
    with pytest.raises(ValueError, match="k must be an even int >= 8"):
        drift.QuantileSketch(k=7)
    with pytest.raises(ValueError, match="different k"):
        drift.QuantileSketch(k=8).merge(drift.QuantileSketch(k=16))
    with pytest.raises(ValueError, match="NaN"):
        drift.QuantileSketch().update([1.0, np.nan])
    with pytest.raises(ValueError, match="shape"):
        drift.QuantileSketch().update(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="empty"):
        drift.QuantileSketch().quantile(0.5)
    with pytest.raises(ValueError, match="q must be in"):
        drift.QuantileSketch().update([1.0]).quantile(1.5)
    # rank/cdf of NaN: was count (searchsorted puts NaN last), i.e. "every value is <= NaN"
    s = drift.QuantileSketch().update([1.0, 2.0, 3.0])
    for fn in (s.rank, s.cdf):
        with pytest.raises(ValueError, match="^x must not contain NaN$"):
            fn([2.0, np.nan])
    assert s.rank(np.inf) == 3 and s.rank(-np.inf) == 0 and s.cdf(2.0) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="a is empty"):
        drift.ks_from_sketches(drift.QuantileSketch(), drift.QuantileSketch().update([1.0]))
    with pytest.raises(TypeError, match="b must be a QuantileSketch"):
        drift.ks_from_sketches(drift.QuantileSketch().update([1.0]), [1.0])


# ------------------------------------------------------------------ ks_from_sketches
def exact_ks(a, b):
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return np.max(np.abs(np.searchsorted(a, grid, side="right") / len(a) - np.searchsorted(b, grid, side="right") / len(b)))


def test_ks_from_sketches_exact_when_small():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=300), rng.normal(0.3, size=200)
    r = drift.ks_from_sketches(drift.QuantileSketch().update(a), drift.QuantileSketch().update(b))
    assert r.error_bound == 0
    assert abs(r.statistic - stats.ks_2samp(a, b).statistic) < 1e-15


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.5])
def test_ks_from_sketches_within_bound(shift):
    rng = np.random.default_rng(3)
    a = rng.normal(size=120_000)
    b = rng.normal(shift, size=90_000)
    sa = drift.QuantileSketch(k=512, seed=1)
    for c in np.array_split(a, 11):
        sa = sa.merge(drift.QuantileSketch(k=512, seed=2).update(c))
    sb = drift.QuantileSketch(k=512, seed=3).update(b)
    r = drift.ks_from_sketches(sa, sb)
    d = exact_ks(a, b)
    assert abs(r.statistic - d) <= r.error_bound
    assert r.error_bound < 0.05 and (r.n_ref, r.n_cur) == (len(a), len(b))


def test_sketch_k_of_the_wrong_type_is_a_type_error():
    # api.md: bad input raises ValueError for a wrong value, TypeError for a wrong type. A float,
    # bool or string k was a ValueError ("k must be an even int >= 8, got 8.0").
    for bad in (8.0, True, "8", None):
        with pytest.raises(TypeError, match=r"^k must be an int, got "):
            drift.QuantileSketch(k=bad)
    assert drift.QuantileSketch(k=np.int64(8)).k == 8
    for bad in (7, 6 - 8, 0, 9):
        with pytest.raises(ValueError, match=r"^k must be an even int >= 8, got "):
            drift.QuantileSketch(k=bad)
