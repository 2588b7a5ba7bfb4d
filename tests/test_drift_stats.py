"""curata.drift: per-column two-sample statistics against scipy.stats and float64 references."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import curata
from curata import _core, drift

stats = pytest.importorskip("scipy.stats")
from scipy import special  # noqa: E402
from scipy.spatial.distance import jensenshannon  # noqa: E402

RTOL = 1e-12


def assert_close(ours, ref, rtol=RTOL, atol=0.0, what=""):
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def columns(rng, n, d, shift=0.0, ties=None, dtype=np.float64):
    x = rng.normal(size=(n, d)) + shift * np.arange(d) / max(d, 1)
    if ties is not None:
        x = np.round(x * ties) / ties
    return x.astype(dtype)


def scipy_columns(fn, ref, cur, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = [fn(ref[:, j].astype(np.float64), cur[:, j].astype(np.float64), **kw) for j in range(ref.shape[1])]
    return out


# ------------------------------------------------------------------------------ KS
KS_SHAPES = [(1, 1), (1, 4), (2, 3), (3, 3), (5, 7), (8, 8), (12, 25), (25, 17), (60, 40), (100, 100), (250, 317)]


@pytest.mark.parametrize("n,m", KS_SHAPES)
@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
@pytest.mark.parametrize("method", ["auto", "exact", "asymp"])
def test_ks_small_matches_scipy(n, m, alternative, method):
    rng = np.random.default_rng(n * 1000 + m)
    for ties in (None, 2.0):
        ref = columns(rng, n, 4, ties=ties)
        cur = columns(rng, m, 4, shift=1.0, ties=ties)
        ours = drift.ks(ref, cur, alternative=alternative, method=method)
        theirs = scipy_columns(stats.ks_2samp, ref, cur, alternative=alternative, method=method)
        assert_close(ours.statistic, [t.statistic for t in theirs], what="statistic")
        # Explicit asymptotic p-values at n m / (n + m) <= 140 use scipy's Pomeranz recursion,
        # which carries ~1e-11 relative error near p = 1e-3 (see test_kstwo_pomeranz_is_accurate).
        rtol = 2e-11 if method == "asymp" and alternative == "two-sided" else RTOL
        assert_close(ours.pvalue, [t.pvalue for t in theirs], rtol=rtol, what="pvalue")
        assert_close(ours.statistic_location, [t.statistic_location for t in theirs], what="location")
        np.testing.assert_array_equal(ours.statistic_sign, [t.statistic_sign for t in theirs])
        assert np.all((ours.statistic >= 0) & (ours.statistic <= 1))


@pytest.mark.parametrize(
    "n,m,method,expect",
    [
        (10000, 10000, "auto", "exact"),  # the boundary: max(n, m) <= 10000 is exact
        (10001, 500, "auto", "asymptotic"),
        (10001, 500, "exact", "exact"),
        (9999, 10000, "auto", "exact"),
        (20000, 20000, "auto", "asymptotic"),
        (20000, 4999, "asymp", "asymptotic"),
    ],
)
def test_ks_large_and_the_exact_boundary(n, m, method, expect):
    rng = np.random.default_rng(n + m)
    ref = columns(rng, n, 2)
    cur = columns(rng, m, 2, shift=0.1)
    ours = drift.ks(ref, cur, method=method)
    theirs = scipy_columns(stats.ks_2samp, ref, cur, method=method)
    assert list(ours.method) == [expect] * 2
    assert_close(ours.statistic, [t.statistic for t in theirs])
    assert_close(ours.pvalue, [t.pvalue for t in theirs])


def test_ks_one_sided_exact_overflow_falls_back_like_scipy(caplog):
    # n != m one-sided exact counts paths in doubles: C(n + m, n) overflows beyond ~1030 values.
    rng = np.random.default_rng(7)
    ref, cur = columns(rng, 700, 2), columns(rng, 650, 2, shift=0.4)
    with caplog.at_level("WARNING", logger="curata.drift"):
        ours = drift.ks(ref, cur, alternative="greater", method="exact")
    theirs = scipy_columns(stats.ks_2samp, ref, cur, alternative="greater", method="exact")
    assert list(ours.method) == ["asymptotic"] * 2
    assert "asymptotic" in caplog.text
    assert_close(ours.statistic, [t.statistic for t in theirs])
    assert_close(ours.pvalue, [t.pvalue for t in theirs])


def test_ks_float32_is_computed_in_float64():
    rng = np.random.default_rng(3)
    ref = columns(rng, 300, 3, dtype=np.float32)
    cur = columns(rng, 280, 3, shift=0.3, dtype=np.float32)
    ours = drift.ks(ref, cur)
    theirs = scipy_columns(stats.ks_2samp, ref.astype(np.float64), cur.astype(np.float64))
    assert ours.statistic.dtype == np.float64
    assert_close(ours.pvalue, [t.pvalue for t in theirs])
    # mixed float32 / float64 promotes to float64
    mixed = drift.ks(ref, cur.astype(np.float64))
    assert_close(mixed.pvalue, ours.pvalue, rtol=0)


def test_kstwo_sf_matches_scipy_in_every_regime():
    rng = np.random.default_rng(11)
    ns, xs = [], []
    for n in (1, 2, 5, 10, 50, 140, 141, 400, 2000, 50000, 100001):
        x = np.concatenate([rng.uniform(0, 1, 12), rng.uniform(0, 4 / math.sqrt(n), 12), [0.5 / n, 0.75 / n, 1 / n]])
        x = x[(x > 0) & (x < 1)]
        ns.append(np.full(x.size, n))
        xs.append(x)
    n, x = np.concatenate(ns).astype(np.int64), np.concatenate(xs)
    ours = _core.drift_kstwo_sf(n, x)
    theirs = stats.kstwo.sf(x, n)
    pomeranz = (n <= 140) & (n * x * x > 0.754693) & (n * x * x <= 4) & (x < 0.5) & (n * x > 1) & (n * x < n - 1)
    assert_close(ours[~pomeranz], theirs[~pomeranz], atol=1e-300)
    assert_close(ours[pomeranz], theirs[pomeranz], rtol=3e-11)


def test_kstwo_pomeranz_is_accurate():
    """Where scipy's double Pomeranz recursion drifts (~1e-11), curata's extended one is exact."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40

    def durbin_sf(n, d):  # Marsaglia-Tsang-Wang matrix, 40 digits
        d = mp.mpf(d)
        k = int(mp.ceil(n * d))
        h = k - n * d
        m = 2 * k - 1
        H = mp.matrix(m, m)
        for i in range(m):
            for j in range(m):
                if i - j + 1 >= 0:
                    H[i, j] = 1 / mp.factorial(i - j + 1)
        for i in range(m):
            H[i, 0] -= h ** (i + 1) / mp.factorial(i + 1)
            H[m - 1, i] -= h ** (m - i) / mp.factorial(m - i)
        if 2 * h - 1 > 0:
            H[m - 1, 0] += (2 * h - 1) ** m / mp.factorial(m)
        return 1 - (H**n)[k - 1, k - 1] * mp.factorial(n) / mp.mpf(n) ** n

    for n, x in [(50, 0.2812009103944966), (30, 0.33)]:
        exact = float(durbin_sf(n, x))
        assert_close(_core.drift_kstwo_sf(np.array([n]), np.array([x])), [exact], rtol=2e-13)


def test_smirnov_sf_matches_scipy():
    rng = np.random.default_rng(12)
    n = np.concatenate([rng.integers(2, 200, 40), rng.integers(200, 20000, 20)]).astype(np.int64)
    x = np.where(rng.random(n.size) < 0.5, rng.uniform(0, 1, n.size), rng.uniform(np.sqrt(2.2 / n), np.sqrt(60 / n)))
    assert_close(_core.drift_smirnov_sf(n, x), special.smirnov(n, x), rtol=2e-13, atol=1e-300)


@pytest.mark.parametrize("n1,n2", [(5, 5), (7, 3), (40, 40), (40, 33), (200, 150)])
def test_ks_exact_pvalue_helper_matches_scipy_private(n1, n2):
    try:  # scipy's private helper (1.17): the exact p-value for a given rounded statistic
        from scipy.stats._stats_py import _attempt_exact_2kssamp
    except ImportError:
        pytest.skip("scipy.stats._stats_py._attempt_exact_2kssamp is not available in this scipy")

    g = math.gcd(n1, n2)
    lcm = n1 // g * n2
    for h in sorted({1, 2, lcm // 7, lcm // 3, lcm // 2, lcm}):
        for alt, code in (("two-sided", 0), ("greater", 2)):
            ok, p = _core.drift_ks_exact_sf(n1, n2, h, code)
            with np.errstate(all="ignore"):
                ok2, _, p2 = _attempt_exact_2kssamp(n1, n2, g, h / lcm, alt)
            assert ok == ok2
            if ok:
                assert_close(p, p2, rtol=1e-12, atol=1e-300, what=f"h={h} {alt}")


# ------------------------------------------------------------------------------ Cramér-von Mises
CVM_SHAPES = [(2, 2), (2, 9), (5, 7), (10, 10), (20, 20), (20, 21), (21, 5), (30, 45), (200, 180), (3000, 2000)]


@pytest.mark.parametrize(
    "n,m,method",
    [(n, m, meth) for n, m in CVM_SHAPES for meth in ("auto", "exact", "asymptotic") if meth != "exact" or max(n, m) <= 21],
)
def test_cramervonmises_matches_scipy(n, m, method):
    rng = np.random.default_rng(n * 31 + m)
    for ties in (None, 2.0):
        ref = columns(rng, n, 3, ties=ties)
        cur = columns(rng, m, 3, shift=0.8, ties=ties)
        ours = drift.cramervonmises(ref, cur, method=method)
        theirs = scipy_columns(stats.cramervonmises_2samp, ref, cur, method=method)
        assert_close(ours.statistic, [t.statistic for t in theirs], what="statistic")
        # The asymptotic p-value is 1 - cdf(T): accurate to ~1e-16 absolute only, so a p-value of
        # 1e-11 moves by 1e-5 relative when T moves by one ulp (ours is the correctly rounded T,
        # scipy's can be an ulp or more away). Hence a few ulps of 1 as absolute tolerance.
        assert_close(ours.pvalue, [t.pvalue for t in theirs], atol=4 * np.finfo(np.float64).eps, what="pvalue")
        expect = "exact" if method == "exact" or (method == "auto" and max(n, m) <= 20) else "asymptotic"
        assert set(ours.method) == {expect}


def test_cramervonmises_exact_helper_covers_the_whole_support():
    rng = np.random.default_rng(4)
    for m, n in [(3, 4), (6, 9)]:
        ref, cur = columns(rng, m, 40, ties=1.0), columns(rng, n, 40, ties=1.0)
        ours = drift.cramervonmises(ref, cur, method="exact")
        theirs = scipy_columns(stats.cramervonmises_2samp, ref, cur, method="exact")
        assert_close(ours.pvalue, [t.pvalue for t in theirs])


def test_cramervonmises_too_large_for_exact_is_a_value_error():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="exact"):
        drift.cramervonmises(columns(rng, 80, 1), columns(rng, 80, 1), method="exact")


def cvm_exact_statistic(x, y) -> Fraction:
    """T of Anderson (1962) as an exact fraction, from doubled midranks (integers) of the pooled values.

    T = U / (n m N) - (4 n m - 1) / (6 N), U = n sum (r_i - i)^2 + m sum (s_j - j)^2 with the
    midranks r (resp. s) of the sorted x (resp. y) in the pooled sample, N = n + m.
    """
    x = np.sort(np.asarray(x, dtype=np.float64))
    y = np.sort(np.asarray(y, dtype=np.float64))
    n, m = x.size, y.size
    pooled = np.sort(np.concatenate([x, y]))

    def doubled_midranks(v):
        below = np.searchsorted(pooled, v, side="left")
        size = np.searchsorted(pooled, v, side="right") - below
        return 2 * below + size + 1  # 2 * (below + (size + 1) / 2)

    def sum_sq(v, count):
        d = doubled_midranks(v) - 2 * np.arange(1, count + 1)
        assert count * int(np.abs(d).max(initial=0)) ** 2 < 2**63  # the int64 sum of squares is exact
        return int(np.sum(d * d))  # 4 sum (r_i - i)^2

    k, total = n * m, n + m
    u4 = n * sum_sq(x, n) + m * sum_sq(y, m)
    return Fraction(6 * u4 - 4 * k * (4 * k - 1), 24 * k * total)


def test_cramervonmises_statistic_is_the_correctly_rounded_exact_value():
    """Large columns with many ties: T equals the exact rational T rounded once, on the host and
    the torch (device) path; scipy's float64 sums leave it within ~1e-11 (1e-8 asserted)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    n = m = 200_000
    ref = np.round(rng.normal(size=(n, 2)) * 100) / 100
    cur = np.round(rng.normal(0.01, 1.02, size=(m, 2)) * 100) / 100
    ours = drift.cramervonmises(ref, cur)
    dev = drift.cramervonmises(torch.from_numpy(ref), torch.from_numpy(cur))
    for j in range(2):
        exact = cvm_exact_statistic(ref[:, j], cur[:, j])
        assert ours.statistic[j] == float(exact)
        assert float(dev.statistic[j]) == float(exact)
        theirs = stats.cramervonmises_2samp(ref[:, j], cur[:, j]).statistic
        assert abs(Fraction(theirs) - exact) <= Fraction(1, 10**8) * exact


def test_cramervonmises_statistic_unequal_sizes_and_float32():
    rng = np.random.default_rng(6)
    for n, m, dtype, ties in [(150_000, 40_000, np.float64, 10.0), (30_000, 70_000, np.float32, None),
                              (3, 90_000, np.float32, 4.0)]:
        ref = columns(rng, n, 2, ties=ties, dtype=dtype)
        cur = columns(rng, m, 2, shift=0.05, ties=ties, dtype=dtype)
        ours = drift.cramervonmises(ref, cur)
        theirs = scipy_columns(stats.cramervonmises_2samp, ref, cur)
        for j in range(2):
            exact = cvm_exact_statistic(ref[:, j], cur[:, j])  # float32 -> float64 is exact
            assert ours.statistic[j] == float(exact), (n, m, dtype, j)
            assert abs(Fraction(theirs[j].statistic) - exact) <= Fraction(1, 10**8) * exact


@given(
    st.lists(st.integers(-4, 4), min_size=2, max_size=40),
    st.lists(st.integers(-4, 4), min_size=2, max_size=40),
)
def test_cramervonmises_statistic_is_exact_on_small_tied_samples(x, y):
    x, y = np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)
    assert drift.cramervonmises(x, y, method="asymptotic").statistic[0] == float(cvm_exact_statistic(x, y))


def test_cramervonmises_from_summaries_uses_the_exact_limbs():
    """The statistic is formed from cvm_u4_hi/lo (4U exact), not from the rounded cvm_u; a dict
    without the limbs is a ValueError naming them."""
    rng = np.random.default_rng(8)
    ref, cur = columns(rng, 300, 3, ties=3.0), columns(rng, 200, 3, ties=3.0)
    s = _core.drift_summaries(ref, cur, 2, 0, 2, "cramervonmises")
    u4 = [(int(h) << 64) + int(lo) for h, lo in zip(s["cvm_u4_hi"], s["cvm_u4_lo"])]
    assert list(s["cvm_u"]) == [float(u) / 4 for u in u4]
    expect = [float(Fraction(6 * u - 4 * 60000 * (4 * 60000 - 1), 24 * 60000 * 500)) for u in u4]
    assert list(_core.drift_cvm_from_summaries(s, 2)["statistic"]) == expect
    assert list(drift.cramervonmises(ref, cur).statistic) == expect
    bumped = dict(s, cvm_u4_lo=s["cvm_u4_lo"] + np.uint64(1), cvm_u=s["cvm_u"] * 0)
    assert list(_core.drift_cvm_from_summaries(bumped, 2)["statistic"]) == [
        float(Fraction(6 * (u + 1) - 4 * 60000 * (4 * 60000 - 1), 24 * 60000 * 500)) for u in u4]
    with pytest.raises(ValueError, match="cvm_u4_hi"):
        _core.drift_cvm_from_summaries({k: v for k, v in s.items() if k != "cvm_u4_hi"}, 2)
    huge = dict(s, n_ref=np.full(3, 2**31, dtype=np.int64), n_cur=np.full(3, 2**29, dtype=np.int64))
    _core.drift_cvm_from_summaries(huge, 2)  # n m = 2^60: at the limit
    huge["n_cur"] = huge["n_cur"] + 1
    with pytest.raises(ValueError, match=r"n_ref \* n_cur <= 2\^60"):
        _core.drift_cvm_from_summaries(huge, 2)


def test_cramervonmises_small_sizes_exhaustively_match_scipy():
    """Every (n, m) with 2 <= n, m <= 9, with and without ties: statistic and exact p-value
    within 1e-12 of scipy, and the statistic equal to the rounded exact value."""
    rng = np.random.default_rng(7)
    for n in range(2, 10):
        for m in range(2, 10):
            for ties in (None, 1.0):
                ref = columns(rng, n, 4, ties=ties)
                cur = columns(rng, m, 4, shift=0.5, ties=ties)
                ours = drift.cramervonmises(ref, cur)
                theirs = scipy_columns(stats.cramervonmises_2samp, ref, cur)
                assert_close(ours.statistic, [t.statistic for t in theirs], what=f"statistic {n} {m}")
                assert_close(ours.pvalue, [t.pvalue for t in theirs], what=f"pvalue {n} {m}")
                assert list(ours.statistic) == [float(cvm_exact_statistic(ref[:, j], cur[:, j])) for j in range(4)]


# ------------------------------------------------------------------------------ Mann-Whitney
MWU_SHAPES = [(1, 1), (1, 6), (3, 5), (8, 8), (8, 30), (9, 9), (5, 1500), (30, 45), (400, 350), (5000, 6000)]


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
@pytest.mark.parametrize(
    "n,m,method",  # scipy's exact distribution costs O((n m)^2): only small products there
    [(n, m, meth) for n, m in MWU_SHAPES for meth in ("auto", "exact", "asymptotic") if meth != "exact" or n * m <= 3000],
)
def test_mannwhitneyu_matches_scipy(n, m, alternative, method):
    rng = np.random.default_rng(n * 17 + m)
    for ties in (None, 1.0):
        ref = columns(rng, n, 3, ties=ties)
        cur = columns(rng, m, 3, shift=0.7, ties=ties)
        for continuity in (True, False):
            ours = drift.mannwhitneyu(ref, cur, alternative=alternative, method=method, use_continuity=continuity)
            theirs = scipy_columns(
                stats.mannwhitneyu, ref, cur, alternative=alternative, method=method, use_continuity=continuity
            )
            assert_close(ours.statistic, [t.statistic for t in theirs], what="statistic")
            assert_close(ours.pvalue, [t.pvalue for t in theirs], what="pvalue")


def test_mannwhitneyu_method_choice_follows_ties():
    ref = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    cur = np.array([[4.0, 3.0], [5.0, 5.0], [6.0, 6.0], [7.0, 7.0]])  # column 1 has a tie
    assert list(drift.mannwhitneyu(ref, cur).method) == ["exact", "asymptotic"]


# ------------------------------------------------------------------------------ distances
def wasserstein_reference(u, v, power):
    """Integral of |F_u - F_v|^power over the pooled sample, in float64, written from the definition."""
    u, v = np.sort(u), np.sort(v)
    pooled = np.sort(np.concatenate([u, v]))
    total = 0.0
    for left, right in zip(pooled[:-1], pooled[1:]):
        gap = np.sum(u <= left) / u.size - np.sum(v <= left) / v.size
        total += abs(gap) ** power * (right - left)
    return total


@pytest.mark.parametrize("n,m", [(1, 1), (1, 7), (5, 3), (40, 41), (300, 200), (20000, 15000)])
def test_wasserstein_and_energy_match_scipy(n, m):
    rng = np.random.default_rng(n + 7 * m)
    for ties in (None, 1.0):
        ref = columns(rng, n, 3, ties=ties)
        cur = columns(rng, m, 3, shift=0.5, ties=ties) * 1.3
        w = drift.wasserstein(ref, cur).statistic
        e = drift.energy(ref, cur).statistic
        assert_close(w, [t for t in scipy_columns(stats.wasserstein_distance, ref, cur)], rtol=1e-13)
        assert_close(e, [t for t in scipy_columns(stats.energy_distance, ref, cur)], rtol=1e-13)
        if n * m <= 2000:
            for j in range(3):
                assert_close(w[j], wasserstein_reference(ref[:, j], cur[:, j], 1), rtol=1e-13)
                assert_close(e[j], math.sqrt(2 * wasserstein_reference(ref[:, j], cur[:, j], 2)), rtol=1e-13)


def test_infinite_values_behave_like_scipy():
    ref = np.array([[-np.inf], [0.0], [1.0], [np.inf], [np.inf]])
    cur = np.array([[0.5], [2.0], [np.inf]])
    for ours, theirs in [
        (drift.ks(ref, cur), stats.ks_2samp(ref[:, 0], cur[:, 0])),
        (drift.mannwhitneyu(ref, cur), stats.mannwhitneyu(ref[:, 0], cur[:, 0])),
        (drift.cramervonmises(ref, cur), stats.cramervonmises_2samp(ref[:, 0], cur[:, 0])),
    ]:
        assert_close(ours.statistic, [theirs.statistic])
        assert_close(ours.pvalue, [theirs.pvalue])
    with np.errstate(invalid="ignore"):
        assert_close(drift.wasserstein(ref, cur).statistic, [stats.wasserstein_distance(ref[:, 0], cur[:, 0])])


def test_constant_and_identical_columns():
    ref = np.ones((20, 3))
    cur = np.ones((15, 3))
    cur[:, 2] = 2.0
    r = drift.ks(ref, cur)
    assert_close(r.statistic, [0.0, 0.0, 1.0])
    assert_close(r.pvalue[:2], [1.0, 1.0])
    for cont in (True, False):
        ours = drift.mannwhitneyu(ref, cur, use_continuity=cont)
        theirs = scipy_columns(stats.mannwhitneyu, ref, cur, use_continuity=cont)
        assert_close(ours.pvalue, [t.pvalue for t in theirs])  # NaN without continuity, as scipy
    assert_close(drift.wasserstein(ref, cur).statistic, [0.0, 0.0, 1.0])
    ours = drift.cramervonmises(ref, cur)
    theirs = scipy_columns(stats.cramervonmises_2samp, ref, cur)
    assert_close(ours.statistic, [t.statistic for t in theirs])
    assert_close(ours.pvalue, [t.pvalue for t in theirs])


# ------------------------------------------------------------------------------ NaN, inputs
def test_nan_policy_raise_and_omit():
    rng = np.random.default_rng(9)
    ref = columns(rng, 50, 3)
    cur = columns(rng, 40, 3, shift=0.5)
    ref[[3, 7], 1] = np.nan
    cur[0, 2] = np.nan
    with pytest.raises(ValueError, match=r"ref contains NaN \(column 1\)"):
        drift.ks(ref, cur)
    with pytest.raises(ValueError, match=r"cur contains NaN \(column 2\)"):
        drift.wasserstein(np.nan_to_num(ref), cur)
    for fn, scipy_fn in [
        (drift.ks, stats.ks_2samp),
        (drift.mannwhitneyu, stats.mannwhitneyu),
        (drift.cramervonmises, stats.cramervonmises_2samp),
        (drift.wasserstein, stats.wasserstein_distance),
    ]:
        r = fn(ref, cur, nan_policy="omit")
        np.testing.assert_array_equal(r.nan_ref, [0, 2, 0])
        np.testing.assert_array_equal(r.nan_cur, [0, 0, 1])
        np.testing.assert_array_equal(r.n_ref, [50, 48, 50])
        for j in range(3):
            x, y = ref[:, j], cur[:, j]
            theirs = scipy_fn(x[~np.isnan(x)], y[~np.isnan(y)])
            assert_close(r.statistic[j], getattr(theirs, "statistic", theirs))
            if hasattr(theirs, "pvalue"):
                assert_close(r.pvalue[j], theirs.pvalue)


def test_omit_leaving_too_few_values_names_the_sample():
    ref = np.array([[1.0, np.nan], [2.0, 3.0], [3.0, np.nan]])
    cur = np.array([[1.5, 1.0], [2.5, 2.0]])
    with pytest.raises(ValueError, match=r"ref column 1 has 1 value after omitting 2 NaN; cramervonmises needs at least 2"):
        drift.cramervonmises(ref, cur, nan_policy="omit")
    with pytest.raises(ValueError, match=r"cur column 0 has 0 values after omitting 2 NaN"):
        drift.ks(cur, np.full((2, 2), np.nan), nan_policy="omit")


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: drift.ks(np.zeros((3, 2)), np.zeros((4, 3))), r"same number of columns D, got 2 and 3"),
        (lambda: drift.ks(np.zeros((0, 2)), np.zeros((4, 2))), r"ref must have at least 1 row"),
        (lambda: drift.ks(np.zeros(3), np.zeros(0)), r"cur must have at least 1 row"),
        (lambda: drift.cramervonmises(np.zeros(1), np.zeros(5)), r"ref must have at least 2 rows"),
        (lambda: drift.ks(np.zeros((2, 2, 2)), np.zeros((2, 2))), r"ref must have shape \(n,\) or \(n, D\)"),
        (lambda: drift.ks(np.zeros(3), np.zeros(3), alternative="two_sided"), r"alternative must be one of"),
        (lambda: drift.ks(np.zeros(3), np.zeros(3), method="asymptotic"), r"method must be one of"),
        (lambda: drift.mannwhitneyu(np.zeros(3), np.zeros(3), method="asymp"), r"method must be one of"),
        (lambda: drift.ks(np.zeros(3), np.zeros(3), nan_policy="propagate"), r"nan_policy must be one of"),
        (lambda: drift.psi(np.zeros(3), np.zeros(3), eps=0), r"eps must be a number in \(0, 1\)"),
        (lambda: drift.psi(np.arange(3.0), np.zeros(3), n_bins=0), r"n_bins must be >= 1"),
        (lambda: drift.tvd(np.array([1.0, np.inf]), np.zeros(3)), r"ref contains inf"),
        (lambda: drift.chi2([1, 2], [1, 2, 3], input="counts"), r"same shape"),
        (lambda: drift.chi2([1, -2], [1, 2], input="counts"), r"ref counts must be finite and >= 0"),
        (lambda: drift.correct([0.1, 1.5]), r"pvalues must lie in \[0, 1\]"),
        (lambda: drift.correct([0.1], method="holm"), r"method must be one of"),
        (lambda: drift.correct([0.1], alpha=1.0), r"alpha must be a number in \(0, 1\)"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_dtypes_are_type_errors():
    with pytest.raises(TypeError, match="ref must have a real floating or integer dtype"):
        drift.ks(np.array([True, False]), np.zeros(2))
    with pytest.raises(TypeError, match="use_continuity must be a bool"):
        drift.mannwhitneyu(np.zeros(3), np.ones(3), use_continuity=1)


def test_one_dimensional_integer_noncontiguous_and_torch_inputs():
    rng = np.random.default_rng(5)
    big = columns(rng, 200, 6)
    ref, cur = big[::2, ::3], big[1::2, 1::3] + 0.2  # strided views
    contiguous = drift.ks(np.ascontiguousarray(ref), np.ascontiguousarray(cur))
    assert_close(drift.ks(ref, cur).pvalue, contiguous.pvalue, rtol=0)
    one = drift.mannwhitneyu(ref[:, 0], cur[:, 0])
    assert one.statistic.shape == (1,)
    assert_close(one.pvalue, [stats.mannwhitneyu(ref[:, 0], cur[:, 0]).pvalue])
    ints = drift.ks(np.arange(10), np.arange(5, 20))
    assert_close(ints.pvalue, [stats.ks_2samp(np.arange(10), np.arange(5, 20)).pvalue])
    torch = pytest.importorskip("torch")
    t = drift.cramervonmises(torch.from_numpy(ref), torch.from_numpy(cur))
    assert isinstance(t.statistic, torch.Tensor) and t.statistic.dtype == torch.float64
    assert_close(t.pvalue.numpy(), drift.cramervonmises(ref, cur).pvalue, rtol=0)


def test_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(6)
    # large enough (~1e6 values) for the sorting phase to use several threads
    ref, cur = columns(rng, 21000, 24), columns(rng, 19000, 24, shift=0.3, ties=4.0)
    before = curata.get_num_threads()
    try:
        out = []
        for threads in (1, 2, 3):
            curata.set_num_threads(threads)
            out.append([drift.ks(ref, cur).pvalue, drift.mannwhitneyu(ref, cur).pvalue, drift.energy(ref, cur).statistic])
    finally:
        curata.set_num_threads(before)
    for other in out[1:]:
        for a, b in zip(out[0], other):
            np.testing.assert_array_equal(a, b)


def test_no_columns_gives_empty_results():
    r = drift.ks(np.zeros((3, 0)), np.zeros((4, 0)))
    assert r.statistic.shape == (0,) and r.pvalue.shape == (0,)


# ------------------------------------------------------------------------------ hypothesis laws
samples = st.integers(1, 30).flatmap(
    lambda n: st.lists(st.floats(-5, 5, allow_nan=False, width=32).map(lambda v: round(v, 1)), min_size=n, max_size=n)
)


@given(samples, samples)
def test_swapping_ref_and_cur(x, y):
    a, b = np.array(x)[:, None], np.array(y)[:, None]
    fwd, back = drift.ks(a, b), drift.ks(b, a)
    assert 0 <= fwd.statistic[0] <= 1
    assert fwd.statistic[0] == back.statistic[0] and fwd.pvalue[0] == back.pvalue[0]
    assert drift.ks(a, b, alternative="less").statistic[0] == drift.ks(b, a, alternative="greater").statistic[0]
    assert drift.wasserstein(a, b).statistic[0] == pytest.approx(drift.wasserstein(b, a).statistic[0], rel=1e-14)
    assert drift.energy(a, b).statistic[0] == pytest.approx(drift.energy(b, a).statistic[0], rel=1e-14)
    u_ab, u_ba = drift.mannwhitneyu(a, b).statistic[0], drift.mannwhitneyu(b, a).statistic[0]
    assert u_ab + u_ba == len(x) * len(y)
    if len(x) > 1 and len(y) > 1:
        assert drift.cramervonmises(a, b).statistic[0] == pytest.approx(drift.cramervonmises(b, a).statistic[0], rel=1e-14)
    for p in (fwd.pvalue[0], drift.mannwhitneyu(a, b).pvalue[0]):
        assert 0 <= p <= 1


@given(st.integers(0, 2**32 - 1), st.integers(2, 9))
def test_column_order_does_not_matter(seed, d):
    rng = np.random.default_rng(seed)
    ref, cur = columns(rng, 23, d, ties=2.0), columns(rng, 19, d, shift=0.5, ties=2.0)
    perm = rng.permutation(d)
    for fn in (drift.ks, drift.cramervonmises, drift.mannwhitneyu, drift.wasserstein, drift.psi):
        whole, permuted = fn(ref, cur), fn(ref[:, perm], cur[:, perm])
        np.testing.assert_array_equal(np.asarray(whole.statistic)[perm], permuted.statistic)


# ------------------------------------------------------------------------------ binned
def quantile_reference(ref, cur, n_bins):
    edges = np.quantile(ref, np.arange(1, n_bins) / n_bins)
    return (
        edges,
        np.bincount(np.searchsorted(edges, ref, side="left"), minlength=n_bins),
        np.bincount(np.searchsorted(edges, cur, side="left"), minlength=n_bins),
    )


def psi_reference(p_counts, q_counts, eps):
    total = 0.0
    for a, b in zip(p_counts / p_counts.sum(), q_counts / q_counts.sum()):
        a, b = max(a, eps), max(b, eps)
        total += (b - a) * math.log(b / a)
    return total


def js_reference(p_counts, q_counts):
    p, q = p_counts / p_counts.sum(), q_counts / q_counts.sum()
    m = (p + q) / 2
    div = sum(a * math.log2(a / c) for a, c in zip(p, m) if a > 0) + sum(b * math.log2(b / c) for b, c in zip(q, m) if b > 0)
    return math.sqrt(div / 2)


def hellinger_reference(p_counts, q_counts):
    p, q = p_counts / p_counts.sum(), q_counts / q_counts.sum()
    return math.sqrt(sum((math.sqrt(a) - math.sqrt(b)) ** 2 for a, b in zip(p, q)) / 2)


def tvd_reference(p_counts, q_counts):
    p, q = p_counts / p_counts.sum(), q_counts / q_counts.sum()
    return sum(abs(a - b) for a, b in zip(p, q)) / 2


@pytest.mark.parametrize("n,m,n_bins", [(1, 1, 10), (7, 5, 10), (100, 80, 10), (1000, 1500, 7), (5000, 5000, 20)])
def test_binned_statistics_against_references(n, m, n_bins):
    rng = np.random.default_rng(n + m + n_bins)
    ref = columns(rng, n, 3, ties=2.0)
    cur = columns(rng, m, 3, shift=0.6, ties=2.0) * 1.2
    ps = drift.psi(ref, cur, n_bins=n_bins)
    js = drift.jensen_shannon(ref, cur, n_bins=n_bins)
    he = drift.hellinger(ref, cur, n_bins=n_bins)
    tv = drift.tvd(ref, cur, n_bins=n_bins)
    c2 = drift.chi2(ref, cur, n_bins=n_bins)
    for j in range(3):
        edges, rc, cc = quantile_reference(ref[:, j], cur[:, j], n_bins)
        assert_close(ps.edges[j], edges, rtol=1e-15)
        np.testing.assert_array_equal(ps.ref_counts[j], rc)
        np.testing.assert_array_equal(ps.cur_counts[j], cc)
        assert_close(ps.statistic[j], psi_reference(rc, cc, 1e-4), rtol=1e-12)
        assert_close(js.statistic[j], js_reference(rc, cc), rtol=1e-12, atol=1e-15)
        assert_close(js.statistic[j], jensenshannon(rc, cc, base=2), rtol=1e-12, atol=1e-15)
        assert_close(he.statistic[j], hellinger_reference(rc, cc), rtol=1e-12, atol=1e-15)
        assert_close(tv.statistic[j], tvd_reference(rc, cc), rtol=1e-12, atol=1e-15)
        table = np.array([rc, cc])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] > 1:
            expected = stats.chi2_contingency(table)
            assert_close(c2.statistic[j], expected.statistic, rtol=1e-12)
            assert_close(c2.pvalue[j], expected.pvalue, rtol=1e-12)
            assert c2.dof[j] == expected.dof
        else:
            assert c2.statistic[j] == 0 and c2.pvalue[j] == 1 and c2.dof[j] == 0


def test_chi2_yates_correction_and_labels():
    ref = np.array(["a"] * 30 + ["b"] * 20)
    cur = np.array(["a"] * 10 + ["b"] * 25)
    for correction in (True, False):
        ours = drift.chi2(ref, cur, correction=correction)
        theirs = stats.chi2_contingency([[30, 20], [10, 25]], correction=correction)
        assert_close(ours.statistic, [theirs.statistic])
        assert_close(ours.pvalue, [theirs.pvalue])
    assert list(ours.categories[0]) == ["a", "b"]
    # integer labels, one column with a category only the current sample has
    ref = np.array([[0, 1], [1, 1], [2, 1], [0, 1]])
    cur = np.array([[0, 5], [0, 1], [2, 1]])
    r = drift.chi2(ref, cur)
    assert r.ref_counts.tolist() == [[2, 1, 1], [4, 0, 0]]
    assert r.cur_counts.tolist() == [[2, 0, 1], [2, 1, 0]]
    assert_close(r.statistic[0], stats.chi2_contingency([[2, 1, 1], [2, 0, 1]]).statistic)
    assert_close(r.statistic[1], stats.chi2_contingency([[4, 0], [2, 1]]).statistic)
    # object labels that cannot be ordered together: a TypeError naming the problem, not numpy's
    # "'<' not supported between instances of 'str' and 'int'" from inside np.unique
    for fn in (drift.chi2, drift.psi, drift.tvd):
        with pytest.raises(TypeError, match=r"^ref and cur labels of column 0 must be mutually orderable.*\['int', 'str'\]"):
            fn(np.array(["a", 1, "b"], dtype=object), np.array(["a"], dtype=object))
        with pytest.raises(TypeError, match=r"mutually orderable.*NoneType"):
            fn(np.array(["a", None], dtype=object), np.array(["a", "b"], dtype=object))
    ok = drift.chi2(np.array(["a", "b", "a"], dtype=object), np.array(["b", "b"], dtype=object))
    assert ok.ref_counts.tolist() == [[2, 1]] and ok.cur_counts.tolist() == [[0, 2]]
    # numeric labels against string labels: np.concatenate turned the numbers into strings, so 1
    # and "1" became one category while 1.0 and "1" stayed two; and datetime against float labels
    # raised numpy's DTypePromotionError. Both are refused as the object mix above is.
    for r_, c_ in ((np.array([1, 2, 3]), np.array(["1", "2"])), (np.array(["a", "b"]), np.array([1.0, 2.0])),
                   (np.array([True, False]), np.array([b"a"])), (np.arange(3).astype("datetime64[s]"), np.array([1, 2]))):
        for fn in (drift.chi2, drift.psi, drift.jensen_shannon):
            with pytest.raises(TypeError, match=r"^ref and cur labels must be of the same kind"):
                fn(r_, c_, input="labels")
    same = drift.chi2(np.array([True, False, True]), np.array([1, 0, 0]), input="labels")  # bool and int: numbers
    assert same.ref_counts.tolist() == [[1, 2]] and same.cur_counts.tolist() == [[2, 1]]
    mixed = drift.chi2(np.array(["a", "b"], dtype=object), np.array(["b", "b"]), input="labels")  # object + str
    assert mixed.ref_counts.tolist() == [[1, 1]] and mixed.cur_counts.tolist() == [[0, 2]]


def test_counts_input_and_psi_epsilon():
    ref_counts = np.array([[50, 10], [30, 0], [20, 90]])  # (K=3, D=2)
    cur_counts = np.array([[25, 10], [0, 0], [75, 30]])
    r = drift.psi(ref_counts, cur_counts, input="counts", eps=1e-3)
    for j in range(2):
        assert_close(r.statistic[j], psi_reference(ref_counts[:, j], cur_counts[:, j], 1e-3))
    assert r.ref_counts.shape == (2, 3)
    # identical histograms: every distance is 0
    for fn in (drift.psi, drift.jensen_shannon, drift.hellinger, drift.tvd):
        assert_close(fn(ref_counts, ref_counts * 3, input="counts").statistic, [0.0, 0.0], atol=1e-15)
    # disjoint histograms: tvd, hellinger and JS (base 2) reach 1
    for fn in (drift.jensen_shannon, drift.hellinger, drift.tvd):
        assert_close(fn([1, 0], [0, 4], input="counts").statistic, [1.0], rtol=1e-15)


def test_correct_names_what_it_got_instead_of_pvalues():
    # A DistanceResult or the dict of column_tests became a 0-d object array: "pvalues must have
    # shape (D,), got ()", which hides what was passed.
    x = np.random.default_rng(4).normal(size=(30, 3))
    for bad, kind in ((drift.wasserstein(x, x), "DistanceResult"), (drift.column_tests(x, x), "dict"), (object(), "object")):
        with pytest.raises(TypeError, match=rf"^pvalues must be an array \(D,\) of p-values or a result with a pvalue attribute, got {kind}$"):
            drift.correct(bad)
    with pytest.raises(ValueError, match=r"pvalues must have shape \(D,\), got \(\)"):
        drift.correct(np.float64(0.5))
    assert drift.correct(drift.column_tests(x, x)["ks"]).n_tests == 3


def test_masked_arrays_with_masked_values_are_refused():
    # np.ma arrays went through np.asarray, which drops the mask: the values under it (often a
    # fill value such as 1e20) were tested as data (ks 0.25 where scipy, which omits masked
    # values, gives 0.333). Now a TypeError naming the argument; an all-visible mask is fine.
    from curata import DriftMonitor

    x = np.ma.masked_array([1.0, 2.0, 1e20, 3.0], mask=[0, 0, 1, 0])
    y = np.array([1.5, 2.5, 3.5])
    calls = {
        "ref": [lambda: drift.ks(x, y), lambda: drift.cramervonmises(x, np.r_[y, 4.0]),
                lambda: drift.column_tests(x, y), lambda: drift.chi2(x, y), lambda: drift.mmd(x, y),
                lambda: drift.chi2(x, np.ones(4), input="counts")],
        "cur": [lambda: drift.mannwhitneyu(y, x), lambda: drift.wasserstein(y, x), lambda: drift.psi(y, x)],
        "batch": [lambda: drift.Moments().update(x), lambda: drift.Histogram([0.0, 1.0]).update(x),
                  lambda: drift.QuantileSketch().update(x)],
        "pvalues": [lambda: drift.correct(np.ma.masked_array([0.1, 0.2], mask=[1, 0]))],
        "reference": [lambda: DriftMonitor(x, n_clusters=None)],
        "predictions": [lambda: DriftMonitor(y, n_clusters=None, predictions=np.ma.masked_array([0, 1, 2], mask=[0, 0, 1]))],
    }
    for name, fns in calls.items():
        for fn in fns:
            with pytest.raises(TypeError, match=rf"^{name} is a masked array with 1 masked value"):
                fn()
    assert drift.ks(x.compressed(), y).statistic[0] == pytest.approx(stats.ks_2samp(x, y).statistic)
    visible = np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 0, 0])
    assert drift.ks(visible, y).statistic[0] == drift.ks(visible.data, y).statistic[0]


def test_binned_options_accept_numpy_scalars():
    # eps and base were checked with isinstance(v, (int, float)): numpy float32 / int64 scalars
    # (a config read with numpy) were refused as "must be a number".
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=80), rng.normal(size=60) + 0.5
    assert drift.psi(x, y, eps=np.float32(1e-3)).statistic[0] == drift.psi(x, y, eps=float(np.float32(1e-3))).statistic[0]
    assert drift.jensen_shannon(x, y, base=np.int64(2)).statistic[0] == drift.jensen_shannon(x, y, base=2).statistic[0]
    assert drift.jensen_shannon(x, y, base=np.float32(np.e)).statistic[0] == drift.jensen_shannon(x, y, base=float(np.float32(np.e))).statistic[0]
    for bad in (True, np.bool_(True), "0.1", 0, 1.5, np.float64(np.nan)):
        with pytest.raises(ValueError, match="eps must be a number in"):
            drift.psi(x, y, eps=bad)
    for bad in (True, 1, np.float32(1.0), -2.0, None):
        with pytest.raises(ValueError, match="base must be a positive number"):
            drift.jensen_shannon(x, y, base=bad)


def test_binned_nan_policy():
    ref = np.array([1.0, 2.0, np.nan, 4.0])
    cur = np.array([1.0, 3.0])
    with pytest.raises(ValueError, match="ref contains NaN"):
        drift.psi(ref, cur)
    r = drift.psi(ref, cur, nan_policy="omit", n_bins=3)
    assert r.nan_ref.tolist() == [1] and r.n_ref.tolist() == [3]
    assert_close(r.edges[0], np.quantile([1.0, 2.0, 4.0], [1 / 3, 2 / 3]))


# ------------------------------------------------------------------------------ correction
def bh_reference(p):
    m = len(p)
    out = [1.0] * m
    for i in range(m):  # adjusted_i = min over j with p_j >= p_i of m p_j / rank_j
        ranks = sorted(range(m), key=lambda k: (p[k], k))
        best = 1.0
        for pos in range(m):
            k = ranks[pos]
            if p[k] >= p[i]:
                best = min(best, m * p[k] / (pos + 1))
        out[i] = min(best, 1.0)
    return out


def test_correct_bonferroni_and_fdr():
    p = np.array([0.001, 0.04, 0.03, 0.2, 0.012, 0.5, np.nan])
    bonf = drift.correct(p, method="bonferroni", alpha=0.05)
    assert_close(bonf.adjusted[:6], np.minimum(1, p[:6] * 7))
    assert np.isnan(bonf.adjusted[6])
    assert bonf.reject.tolist() == [True, False, False, False, False, False, False]
    assert bonf.drift and bonf.n_tests == 7
    fdr = drift.correct(p, method="fdr", alpha=0.05)
    assert_close(fdr.adjusted[:6], bh_reference(list(np.where(np.isnan(p), 1.0, p)))[:6], rtol=1e-15)
    assert fdr.reject.tolist() == [True, False, False, False, True, False, False]
    none = drift.correct(np.array([0.5, 0.9]), method="fdr")
    assert not none.drift and not none.reject.any()
    # a result object is accepted directly
    rng = np.random.default_rng(1)
    res = drift.ks(columns(rng, 40, 4), columns(rng, 40, 4, shift=4.0))
    assert_close(drift.correct(res).adjusted, drift.correct(res.pvalue).adjusted, rtol=0)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=40), st.floats(0.001, 0.5))
def test_fdr_rejects_at_least_what_bonferroni_rejects(p, alpha):
    p = np.array(p)
    bonf, fdr = drift.correct(p, "bonferroni", alpha), drift.correct(p, "fdr", alpha)
    assert np.all(fdr.reject[bonf.reject])
    assert np.all(fdr.adjusted <= bonf.adjusted + 1e-15)
    assert fdr.drift == (np.min(np.sort(p) * len(p) / np.arange(1, len(p) + 1)) <= alpha)  # Simes
