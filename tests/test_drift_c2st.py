"""curata.drift.c2st: AUC against sklearn and a brute-force pairwise reference, p-values
against scipy, null / alternative behaviour, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from curata import drift

sklearn = pytest.importorskip("sklearn")
stats = pytest.importorskip("scipy.stats")
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402
from sklearn.svm import LinearSVC  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402


def pairwise_auc(scores, labels):
    """P(score_1 > score_0) + 0.5 P(equal), by comparing every pair (float64, O(n0 n1))."""
    s1 = scores[labels == 1][:, None]
    s0 = scores[labels == 0][None, :]
    return float(((s1 > s0).sum() + 0.5 * (s1 == s0).sum()) / (s1.size * s0.size))


def samples(seed, n=150, m=120, d=4, shift=0.0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, d))
    cur = rng.normal(size=(m, d))
    cur[:, 0] += shift
    return ref, cur


def test_auc_and_pvalue_match_sklearn_and_scipy():
    ref, cur = samples(1, shift=0.8)
    r = drift.c2st(ref, cur, pvalue="auc-normal")
    n = len(ref)
    assert r.n_ref == n and r.n_cur == len(cur) and r.method == "auc-normal"
    assert r.scores.shape == (n + len(cur),) and r.labels.shape == r.scores.shape
    np.testing.assert_array_equal(r.labels, np.r_[np.zeros(n), np.ones(len(cur))])
    assert r.auc == pytest.approx(roc_auc_score(r.labels, r.scores), abs=1e-12)
    assert r.auc == pytest.approx(pairwise_auc(r.scores, r.labels), abs=1e-12)
    p = stats.mannwhitneyu(r.scores[n:], r.scores[:n], alternative="greater").pvalue
    assert abs(r.pvalue - p) <= 1e-12
    assert r.auc > 0.5 and r.pvalue < 0.05


def test_fold_aucs_are_the_held_out_aucs_of_the_documented_split():
    ref, cur = samples(2, shift=0.3)
    r = drift.c2st(ref, cur, n_folds=4, seed=7, pvalue="auc-normal")
    skf = StratifiedKFold(n_splits=4, shuffle=True, random_state=7)
    expected = [
        roc_auc_score(r.labels[te], r.scores[te])
        for _, te in skf.split(np.vstack([ref, cur]), r.labels)
    ]
    assert r.fold_aucs.shape == (4,)
    np.testing.assert_allclose(r.fold_aucs, expected, rtol=0, atol=1e-12)


def test_ties_in_scores_count_half():
    # a depth-1 tree gives only two distinct probabilities: almost every score is tied
    ref, cur = samples(3, shift=0.5)
    r = drift.c2st(ref, cur, model=DecisionTreeClassifier(max_depth=1, random_state=0), pvalue="auc-normal")
    assert np.unique(r.scores).size < r.scores.size // 4
    assert r.auc == pytest.approx(roc_auc_score(r.labels, r.scores), abs=1e-12)
    assert r.auc == pytest.approx(pairwise_auc(r.scores, r.labels), abs=1e-12)
    n = r.n_ref
    p = stats.mannwhitneyu(r.scores[n:], r.scores[:n], alternative="greater").pvalue
    assert abs(r.pvalue - p) <= 1e-12


def test_decision_function_model():
    ref, cur = samples(4, shift=1.0)
    r = drift.c2st(ref, cur, model=LinearSVC(), pvalue="auc-normal")
    assert r.auc == pytest.approx(roc_auc_score(r.labels, r.scores), abs=1e-12)
    assert r.auc > 0.7 and r.pvalue < 1e-6


def test_model_returning_nan_scores_is_a_value_error():
    # NaN scores have no rank: the permutation path ranked them above every score and returned an
    # AUC and a p-value, the auc-normal path failed with "ref contains NaN (column 0); pass
    # nan_policy='omit'" about an argument the caller never passed.
    from sklearn.base import BaseEstimator, ClassifierMixin

    class NaNScores(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.array([0, 1])
            return self

        def decision_function(self, X):
            d = X[:, 0].copy()
            d[::3] = np.nan
            return d

    ref, cur = samples(9, n=60, m=60, shift=1.0)
    for pvalue in ("permutation", "auc-normal"):
        with pytest.raises(ValueError, match="model scores must not be NaN"):
            drift.c2st(ref, cur, model=NaNScores(), pvalue=pvalue, n_permutations=5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_same_distribution_pvalue_not_tiny(seed):
    ref, cur = samples(100 + seed)
    r = drift.c2st(ref, cur, seed=seed, pvalue="auc-normal")
    assert r.pvalue > 1e-3
    assert 0.3 < r.auc < 0.7


def test_clear_shift_gives_tiny_pvalue():
    ref, cur = samples(5, shift=1.5)
    r = drift.c2st(ref, cur, pvalue="auc-normal")
    assert r.auc > 0.8
    assert r.pvalue < 1e-10


def test_deterministic_with_seed():
    ref, cur = samples(6, shift=0.2)
    r1 = drift.c2st(ref, cur, seed=3, pvalue="auc-normal")
    r2 = drift.c2st(ref, cur, seed=3, pvalue="auc-normal")
    np.testing.assert_array_equal(r1.scores, r2.scores)
    np.testing.assert_array_equal(r1.fold_aucs, r2.fold_aucs)
    assert r1.auc == r2.auc and r1.pvalue == r2.pvalue
    r3 = drift.c2st(ref, cur, seed=4, pvalue="auc-normal")
    assert not np.array_equal(r1.scores, r3.scores)


def test_permutation_pvalue():
    ref, cur = samples(7, n=60, m=50, d=2, shift=0.0)
    B = 19
    r = drift.c2st(ref, cur, pvalue="permutation", n_permutations=B, n_folds=3, seed=1)
    assert r.method == "permutation" and r.null_aucs.shape == (B,)
    assert r.pvalue == (1 + np.count_nonzero(r.null_aucs >= r.auc - 1e-12)) / (1 + B)
    assert r.pvalue > 0.05
    again = drift.c2st(ref, cur, pvalue="permutation", n_permutations=B, n_folds=3, seed=1)
    np.testing.assert_array_equal(r.null_aucs, again.null_aucs)
    ref, cur = samples(8, n=60, m=50, d=2, shift=2.0)
    r = drift.c2st(ref, cur, pvalue="permutation", n_permutations=B, n_folds=3)
    assert r.pvalue == pytest.approx(1 / (1 + B))


def test_input_kinds_one_column_float32_torch():
    ref, cur = samples(9, d=1, shift=0.8)
    r64 = drift.c2st(ref[:, 0], cur[:, 0], pvalue="auc-normal")
    r2d = drift.c2st(ref, cur, pvalue="auc-normal")
    np.testing.assert_array_equal(r64.scores, r2d.scores)
    r32 = drift.c2st(ref.astype(np.float32), cur.astype(np.float32), pvalue="auc-normal")
    assert r32.auc == pytest.approx(r64.auc, abs=0.02)
    # non-contiguous view
    wide_ref = np.repeat(ref, 2, axis=1)[:, ::2]
    wide_cur = np.repeat(cur, 2, axis=1)[:, ::2]
    np.testing.assert_array_equal(drift.c2st(wide_ref, wide_cur, pvalue="auc-normal").scores, r2d.scores)
    torch = pytest.importorskip("torch")
    rt = drift.c2st(torch.from_numpy(ref), torch.from_numpy(cur), pvalue="auc-normal")
    np.testing.assert_array_equal(rt.scores, r2d.scores)


def test_bad_input():
    ref, cur = samples(10, n=20, m=20, d=3)
    bad = ref.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="ref must be finite"):
        drift.c2st(bad, cur, pvalue="auc-normal")
    with pytest.raises(ValueError, match="cur must be finite"):
        drift.c2st(ref, bad, pvalue="auc-normal")
    with pytest.raises(ValueError, match="same number of columns"):
        drift.c2st(ref, cur[:, :2], pvalue="auc-normal")
    with pytest.raises(ValueError, match="cur must have at least 5 rows"):
        drift.c2st(ref, cur[:4], pvalue="auc-normal")
    with pytest.raises(ValueError, match="ref must have at least 8 rows"):
        drift.c2st(ref[:7], cur, n_folds=8, pvalue="auc-normal")
    with pytest.raises(ValueError, match="n_folds must be >= 2, got 1"):
        drift.c2st(ref, cur, n_folds=1, pvalue="auc-normal")
    with pytest.raises(TypeError, match="n_folds must be an int"):
        drift.c2st(ref, cur, n_folds=2.5, pvalue="auc-normal")
    with pytest.raises(ValueError, match="pvalue must be one of"):
        drift.c2st(ref, cur, pvalue="exact")
    with pytest.raises(ValueError, match="n_permutations must be >= 1"):
        drift.c2st(ref, cur, pvalue="permutation", n_permutations=0)
    with pytest.raises(ValueError, match=r"ref must have shape \(n,\) or \(n, D\)"):
        drift.c2st(ref[None], cur, pvalue="auc-normal")
    with pytest.raises(TypeError, match="model must provide predict_proba or decision_function"):
        drift.c2st(ref, cur, model=object(), pvalue="auc-normal")


def test_missing_sklearn_gives_clear_import_error(monkeypatch):
    import sys

    ref, cur = samples(11, n=20, m=20, d=2)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match="c2st requires scikit-learn"):
        drift.c2st(ref, cur, pvalue="auc-normal")


def test_default_pvalue_is_the_valid_permutation_test():
    # The normal approximation ignores the dependence between out-of-fold scores and is liberal
    # (about 10 % rejections at alpha 0.05 under the null), so the default is the permutation test.
    ref, cur = samples(7, shift=0.0)
    r = drift.c2st(ref[:60], cur[:60], n_folds=3, n_permutations=9)
    assert r.method == "permutation" and r.null_aucs.shape == (9,)
    assert r.pvalue >= 0.1
