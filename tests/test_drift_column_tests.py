"""drift.column_tests: several per-column tests from one gather/sort/walk per column must equal
the single-test functions value for value (same arithmetic), on ties, NaN, float32, torch input,
small (exact p-value) and large (asymptotic) samples."""

from __future__ import annotations

import numpy as np
import pytest

from curata import drift

ALL = ("ks", "cramervonmises", "mannwhitneyu", "wasserstein", "energy")
SINGLE = {
    "ks": drift.ks,
    "cramervonmises": drift.cramervonmises,
    "mannwhitneyu": drift.mannwhitneyu,
    "wasserstein": drift.wasserstein,
    "energy": drift.energy,
}
FIELDS = ("statistic", "pvalue", "method", "n_ref", "n_cur", "nan_ref", "nan_cur", "statistic_location", "statistic_sign")


def _same(a, b, name):
    for f in FIELDS:
        x, y = getattr(a, f, None), getattr(b, f, None)
        if x is None and y is None:
            continue
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape, (name, f)
        if x.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), (name, f, x, y)
        else:
            assert np.array_equal(x, y), (name, f)
    assert a.test == b.test == name


def _data(rng, n, m, d, dtype=np.float64, ties=False):
    ref = rng.normal(size=(n, d))
    cur = rng.normal(size=(m, d)) + np.linspace(0, 0.5, d)
    if ties:
        ref, cur = np.round(ref, 1), np.round(cur, 1)
    return ref.astype(dtype), cur.astype(dtype)


@pytest.mark.parametrize("n,m,d,ties", [(7, 9, 3, False), (15, 12, 5, True), (300, 250, 17, True), (2_000, 3_000, 9, False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equals_single_tests(rng, n, m, d, ties, dtype):
    ref, cur = _data(rng, n, m, d, dtype, ties)
    got = drift.column_tests(ref, cur)
    assert list(got) == list(ALL)
    for name, fn in SINGLE.items():
        _same(got[name], fn(ref, cur), name)


def test_subset_order_and_one_column(rng):
    ref, cur = _data(rng, 40, 50, 1)
    got = drift.column_tests(ref[:, 0], cur[:, 0], tests=("energy", "ks", "energy"))
    assert list(got) == ["energy", "ks"]
    _same(got["ks"], drift.ks(ref[:, 0], cur[:, 0]), "ks")
    _same(got["energy"], drift.energy(ref[:, 0], cur[:, 0]), "energy")
    assert list(drift.column_tests(ref, cur, tests="mannwhitneyu")) == ["mannwhitneyu"]


def test_nan_policy(rng):
    ref, cur = _data(rng, 60, 70, 4)
    ref[3, 1] = np.nan
    cur[[0, 5], 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        drift.column_tests(ref, cur)
    got = drift.column_tests(ref, cur, nan_policy="omit")
    for name, fn in SINGLE.items():
        _same(got[name], fn(ref, cur, nan_policy="omit"), name)
    assert got["ks"].nan_ref.tolist() == [0, 1, 0, 0]
    assert got["energy"].nan_cur.tolist() == [0, 0, 2, 0]


def test_torch_input_keeps_kind(rng):
    torch = pytest.importorskip("torch")
    ref, cur = _data(rng, 30, 20, 3)
    got = drift.column_tests(torch.from_numpy(ref), torch.from_numpy(cur))
    assert isinstance(got["ks"].pvalue, torch.Tensor)
    assert np.array_equal(got["cramervonmises"].statistic.numpy(), drift.cramervonmises(ref, cur).statistic)


def test_bad_arguments(rng):
    ref, cur = _data(rng, 10, 10, 2)
    with pytest.raises(ValueError, match="tests must be names"):
        drift.column_tests(ref, cur, tests=("ks", "kolmogorov"))
    with pytest.raises(ValueError, match="at least one test"):
        drift.column_tests(ref, cur, tests=())
    with pytest.raises(ValueError, match="nan_policy"):
        drift.column_tests(ref, cur, nan_policy="drop")
    # cramervonmises needs 2 rows per sample; the others 1
    with pytest.raises(ValueError, match="ref must have at least 2 rows"):
        drift.column_tests(ref[:1], cur)
    assert set(drift.column_tests(ref[:1], cur, tests=("ks", "wasserstein"))) == {"ks", "wasserstein"}
    with pytest.raises(ValueError, match="same number of columns"):
        drift.column_tests(ref, cur[:, :1])
