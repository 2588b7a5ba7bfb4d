"""curata.drift._SortedReference (the reference sorted once, DriftMonitor's fast path) gives what
curata.drift.column_tests gives on the unsorted reference, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curata import drift

ALL = ("ks", "cramervonmises", "mannwhitneyu", "wasserstein", "energy")
FIELDS = ("statistic", "pvalue", "n_ref", "n_cur", "nan_ref", "nan_cur")


def assert_same(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for t in want:
        for f in FIELDS:
            if not hasattr(want[t], f):
                continue
            # assert_array_equal treats NaN as equal to NaN and nothing else: bit-level agreement
            np.testing.assert_array_equal(np.asarray(getattr(got[t], f)), np.asarray(getattr(want[t], f)), err_msg=f"{t}.{f}")
        if hasattr(want[t], "statistic_location"):
            np.testing.assert_array_equal(got[t].statistic_location, want[t].statistic_location)
            np.testing.assert_array_equal(got[t].statistic_sign, want[t].statistic_sign)
            np.testing.assert_array_equal(got[t].method, want[t].method)


def numpy_sorted_reference(ref: np.ndarray) -> list:
    """Independent reference: each column's non-NaN values in ascending order."""
    return [np.sort(ref[~np.isnan(ref[:, j]), j]) for j in range(ref.shape[1])]


def order_keys(v: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Unsigned keys ordered like the values (-0.0 and +0.0 one key): uint64 for float64 values,
    uint32 for float32 ones (the reference keeps keys as wide as its values)."""
    utype, bits = (np.uint64, 64) if dtype == np.float64 else (np.uint32, 32)
    u = (np.asarray(v, dtype=dtype) + dtype(0.0)).view(utype)  # + 0.0 turns -0.0 into +0.0
    neg = (u >> utype(bits - 1)).astype(bool)
    return np.where(neg, ~u, u | utype(1 << (bits - 1)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sorted_reference_equals_column_tests(dtype):
    rng = np.random.default_rng(3)
    n, m, d = 3000, 2100, 11  # 11 columns: a full block of 8 and a partial one
    ref = rng.normal(size=(n, d)).astype(dtype)
    cur = (rng.normal(size=(m, d)) + 0.05 * (np.arange(d) % 3)).astype(dtype)
    ref[:, 1] = np.round(ref[:, 1] * 3)  # heavy ties across the two samples
    cur[:, 1] = np.round(cur[:, 1] * 3)
    ref[::7, 2] = np.nan
    cur[::5, 2] = np.nan
    ref[:10, 3] = -0.0  # -0.0 and +0.0 are one tie group
    cur[:10, 3] = 0.0
    ref[0, 4], cur[1, 4] = np.inf, -np.inf
    ref[:, 5] = 2.5  # constant
    cur[:, 5] = 2.5
    sr = drift._SortedReference(ref)
    for k in range(d):  # the stored keys are the sorted non-NaN values
        want = numpy_sorted_reference(ref.astype(np.float64))[k]
        assert sr.n[k] == want.size and sr.nan[k] == np.isnan(ref[:, k]).sum()
        assert sr.keys.dtype == (np.uint64 if dtype == np.float64 else np.uint32)
        np.testing.assert_array_equal(sr.keys[k, : sr.n[k]], order_keys(want, dtype))
    for tests in (ALL, ("ks",), ("energy", "cramervonmises"), ("mannwhitneyu", "wasserstein")):
        assert_same(sr.column_tests(cur, tests, nan_policy="omit"), drift.column_tests(ref, cur, tests, nan_policy="omit"))
    cols = [6, 1, 2, 10]
    assert_same(sr.column_tests(cur[:, cols], ALL, columns=cols, nan_policy="omit"),
                drift.column_tests(ref[:, cols], cur[:, cols], ALL, nan_policy="omit"))


def test_sorted_reference_small_and_errors():
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(40, 3))
    cur = rng.normal(size=(1, 3))
    sr = drift._SortedReference(ref)
    assert_same(sr.column_tests(cur, ("ks", "wasserstein")), drift.column_tests(ref, cur, ("ks", "wasserstein")))
    with pytest.raises(ValueError, match="cur column 0 has 1 value; cramervonmises needs at least 2"):
        sr.column_tests(cur, ALL)
    bad = rng.normal(size=(10, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"cur contains NaN \(column 1\)"):
        sr.column_tests(bad, ("ks",))
    with pytest.raises(ValueError, match=r"cur must have shape \(m, 3\)"):
        sr.column_tests(bad[:, :2], ("ks",))
    with pytest.raises(ValueError, match="tests must hold names"):
        sr.column_tests(bad, ("psi",))
    nanref = ref.copy()
    nanref[0, 2] = np.nan
    sn = drift._SortedReference(nanref)
    with pytest.raises(ValueError, match=r"ref contains NaN \(column 2\)"):
        sn.column_tests(rng.normal(size=(5, 3)), ("ks",))
    assert_same(sn.column_tests(bad, ALL, nan_policy="omit"), drift.column_tests(nanref, bad, ALL, nan_policy="omit"))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 120),
    m=st.integers(2, 120),
    d=st.integers(1, 10),
    decimals=st.sampled_from([0, 1, 6]),
    tests=st.lists(st.sampled_from(ALL), min_size=1, max_size=5, unique=True),
)
def test_sorted_reference_law(seed, n, m, d, decimals, tests):
    rng = np.random.default_rng(seed)
    ref = np.round(rng.normal(size=(n, d)), decimals)
    cur = np.round(rng.normal(loc=0.3, size=(m, d)), decimals)
    assert_same(drift._SortedReference(ref).column_tests(cur, tests), drift.column_tests(ref, cur, tests))
