"""float32 columns are sorted on 32-bit keys, float64 columns on 64-bit keys. float32 -> float64 is
exact and order-preserving, so every per-column result for float32 input must equal, bit for bit,
the result for the same values passed as float64 (which is checked against scipy elsewhere).

Sizes cover the three sort paths (std::sort below 64 values, 8-bit radix digits below 4096,
11-bit digits above) in both samples, alone and mixed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curata import drift

ALL = ("ks", "cramervonmises", "mannwhitneyu", "wasserstein", "energy")
F32_MAX = np.finfo(np.float32).max
F32_TINY = np.finfo(np.float32).smallest_subnormal


def bits(x) -> np.ndarray:
    """float64 bit patterns: equality tells -0.0 from +0.0 and compares NaN payloads."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float64)).view(np.uint64)


def assert_same_result(got, want, what: str) -> None:
    for field in ("statistic", "pvalue", "statistic_location", "statistic_sign", "edges"):
        g, w = getattr(got, field, None), getattr(want, field, None)
        if w is None:
            assert g is None, f"{what}.{field}"
            continue
        np.testing.assert_array_equal(bits(g), bits(w), err_msg=f"{what}.{field}")
    for field in ("method", "n_ref", "n_cur", "nan_ref", "nan_cur", "ref_counts", "cur_counts"):
        if hasattr(want, field):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=f"{what}.{field}")


def edge_columns(n: int, rng: np.random.Generator, shift: float) -> np.ndarray:
    """(n, 10) float32 with one kind of hard case per column."""
    cols = [
        rng.normal(shift, 1, n),                                      # 0 plain
        np.round(rng.normal(shift, 1, n) * 2),                        # 1 heavy ties, both signs
        rng.normal(shift, 1, n),                                      # 2 NaN added below
        rng.choice([-1.5, -0.0, 0.0, 2.0], n),                        # 3 -0.0 and +0.0 one tie group
        rng.choice([-np.inf, -3.0, 0.5, np.inf], n),                  # 4 repeated infinities
        np.full(n, 2.5),                                              # 5 constant
        rng.integers(-40, 41, n) * float(F32_TINY),                   # 6 subnormal float32, both signs
        rng.choice([-1, 1], n) * F32_MAX * rng.uniform(0.5, 1, n),    # 7 huge, both signs
        -np.abs(rng.normal(shift, 1, n)) - 1e-3,                      # 8 negative only
        rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32),  # 9 any bits
    ]
    x = np.stack([np.asarray(c, dtype=np.float32) for c in cols], axis=1)
    x[:, 9][np.isnan(x[:, 9])] = 1.0  # random bits hold NaN payloads; NaN has its own column
    x[:: max(n // 7, 2), 2] = np.nan
    return x


def samples(n_ref: int, n_cur: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return edge_columns(n_ref, rng, 0.0), edge_columns(n_cur, rng, 0.3)


def single_calls(ref, cur, nan_policy: str) -> dict:
    out = {}
    for alt in ("two-sided", "less", "greater"):
        out[f"ks {alt}"] = drift.ks(ref, cur, alternative=alt, nan_policy=nan_policy)
        out[f"mwu {alt}"] = drift.mannwhitneyu(ref, cur, alternative=alt, nan_policy=nan_policy)
    out["ks asymp"] = drift.ks(ref, cur, method="asymp", nan_policy=nan_policy)
    if ref.shape[0] * cur.shape[0] <= 250_000:  # the exact null distribution costs O(n^2 m^2)
        out["mwu exact"] = drift.mannwhitneyu(ref, cur, method="exact", nan_policy=nan_policy)
    out["mwu no continuity"] = drift.mannwhitneyu(ref, cur, use_continuity=False, nan_policy=nan_policy)
    out["cvm"] = drift.cramervonmises(ref, cur, nan_policy=nan_policy)
    out["cvm asymptotic"] = drift.cramervonmises(ref, cur, method="asymptotic", nan_policy=nan_policy)
    out["wasserstein"] = drift.wasserstein(ref, cur, nan_policy=nan_policy)
    out["energy"] = drift.energy(ref, cur, nan_policy=nan_policy)
    for name, r in drift.column_tests(ref, cur, ALL, nan_policy=nan_policy).items():
        out[f"column_tests {name}"] = r
    for name, r in drift._SortedReference(ref).column_tests(cur, ALL, nan_policy=nan_policy).items():
        out[f"sorted reference {name}"] = r
    return out


def assert_float32_matches_float64(ref32: np.ndarray, cur32: np.ndarray, nan_policy: str) -> None:
    got = single_calls(ref32, cur32, nan_policy)
    want = single_calls(ref32.astype(np.float64), cur32.astype(np.float64), nan_policy)
    assert list(got) == list(want)
    for what in want:
        assert_same_result(got[what], want[what], what)


SIZES = [
    (5, 7),        # std::sort in both
    (63, 40),      # std::sort, last size below the radix sort
    (64, 300),     # 8-bit digits in both
    (4095, 50),    # 8-bit digits against std::sort
    (4096, 4100),  # 11-bit digits in both
    (9000, 700),   # 11-bit digits against 8-bit digits
]


@pytest.mark.parametrize("n_ref,n_cur", SIZES)
def test_float32_equals_float64_bit_for_bit(n_ref, n_cur):
    ref, cur = samples(n_ref, n_cur, seed=n_ref + 7 * n_cur)
    assert_float32_matches_float64(ref, cur, "omit")
    finite = [c for c in range(ref.shape[1]) if c != 2]  # nan_policy="raise" needs NaN-free columns
    assert_float32_matches_float64(ref[:, finite], cur[:, finite], "raise")


def test_columns_empty_after_nan_and_nan_raise_fail_alike():
    ref, cur = samples(100, 80, seed=5)
    cur[:, 4] = np.nan  # column 4 of cur is empty once NaN is omitted
    for call in (
        lambda a, b: drift.ks(a, b, nan_policy="omit"),
        lambda a, b: drift.column_tests(a, b, ALL, nan_policy="omit"),
        lambda a, b: drift._SortedReference(a).column_tests(b, ALL, nan_policy="omit"),
        lambda a, b: drift.ks(a, b),  # nan_policy="raise" and NaN in column 2
        lambda a, b: drift.psi(a[:, [0, 4]], b[:, [0, 4]], nan_policy="omit"),
    ):
        messages = []
        for dtype in (np.float32, np.float64):
            with pytest.raises(ValueError) as err:
                call(ref.astype(dtype), cur.astype(dtype))
            messages.append(str(err.value))
        assert messages[0] == messages[1]


@pytest.mark.parametrize("n_ref,n_cur", [(30, 50), (1000, 3000), (5000, 4500)])
def test_binned_float32_equals_float64(n_ref, n_cur):
    # reference-quantile edges are interpolated from the decoded keys: the same doubles either way
    ref, cur = samples(n_ref, n_cur, seed=11)
    keep = [0, 1, 2, 3, 5, 6, 8]  # binned statistics reject infinities (columns 4, 7 and 9 may hold them)
    ref, cur = ref[:, keep], cur[:, keep]
    for fn in (drift.psi, drift.jensen_shannon, drift.hellinger, drift.tvd):
        got = fn(ref, cur, n_bins=7, nan_policy="omit")
        want = fn(ref.astype(np.float64), cur.astype(np.float64), n_bins=7, nan_policy="omit")
        assert_same_result(got, want, fn.__name__)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.sampled_from([1, 2, 17, 63, 64, 65, 500, 4095, 4096, 6000]),
    m=st.sampled_from([2, 40, 64, 1000, 5000]),
    d=st.integers(1, 9),
    pool=st.sampled_from([3, 50, 2**32]),
)
def test_float32_equals_float64_law(seed, n, m, d, pool):
    # arbitrary float32 bit patterns (every exponent, both signs, subnormals, infinities, NaN
    # payloads), drawn from a pool of `pool` patterns so that small pools give heavy ties
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 2**32, min(pool, 2**32), dtype=np.uint64, endpoint=False) if pool < 2**32 else None

    def draw(rows):
        u = rng.integers(0, 2**32, (rows, d), dtype=np.uint64) if patterns is None else rng.choice(patterns, (rows, d))
        return u.astype(np.uint32).view(np.float32)

    ref, cur = draw(n), draw(m)
    ref[0] = 0.0
    cur[-1] = -0.0
    tests = ("ks", "mannwhitneyu", "wasserstein", "energy") if min(n, m) < 2 else ALL

    def run(dtype):
        with np.errstate(invalid="ignore"):  # signalling NaN patterns become quiet NaN in float64
            a, b = ref.astype(dtype), cur.astype(dtype)
        try:
            return drift.column_tests(a, b, tests, nan_policy="omit"), drift._SortedReference(a).column_tests(
                b, tests, nan_policy="omit"
            )
        except ValueError as err:  # a column left empty by NaN: the same error either way
            return str(err)

    got, want = run(np.float32), run(np.float64)
    if isinstance(want, str):
        assert got == want
        return
    for g, w in zip(got, want):
        for name in tests:
            assert_same_result(g[name], w[name], name)
