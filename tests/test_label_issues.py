"""curata.curate.label_issues against float64 loop references written here, and on noisy digits."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curata import curate
from curata._label_issues import calibrated_joint, confident_joint, confident_thresholds
from curata.search import knn_graph

# --------------------------------------------------------------------------- references (loops, float64)


def ref_thresholds(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    c = p.shape[1]
    t = np.full(c, np.inf)
    for j in range(c):
        vals = [p[r, j] for r in range(len(y)) if y[r] == j]
        if vals:
            t[j] = sum(vals) / len(vals)
    return t


def ref_confident_joint(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    c = p.shape[1]
    t = ref_thresholds(y, p)
    cj = np.zeros((c, c), dtype=np.int64)
    for r in range(len(y)):
        best, best_j = -1.0, -1
        for j in range(c):
            if p[r, j] >= t[j] and p[r, j] > best:
                best, best_j = p[r, j], j
        if best_j >= 0:
            cj[y[r], best_j] += 1
    return cj


def ref_label_issues(y: np.ndarray, p: np.ndarray):
    n, c = p.shape
    cj = ref_confident_joint(y, p).astype(np.float64)
    flagged = np.zeros(n, dtype=bool)
    for i in range(c):
        rows = [r for r in range(n) if y[r] == i]
        total = cj[i].sum()
        if total == 0:
            continue
        m = 0
        for j in range(c):
            if j != i:
                m += int(np.rint(cj[i, j] / total * len(rows)))
        rows.sort(key=lambda r: (p[r, i], r))
        for r in rows[:m]:
            flagged[r] = True
    suggested = np.array([int(np.argmax(p[r])) for r in range(n)], dtype=np.int64)
    flagged &= suggested != y
    score = np.array([1.0 - p[r, y[r]] for r in range(n)])
    ranked = sorted(np.flatnonzero(flagged), key=lambda r: (-score[r], r))
    return flagged, score, suggested, np.array(ranked, dtype=np.int64)


def ref_knn_vote(x: np.ndarray, y: np.ndarray, k: int, c: int, metric: str) -> np.ndarray:
    """Weights 1 / (d + eps), eps = 1e-3 * mean distance over all (row, neighbour) pairs."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1.0 - u @ u.T
    else:
        d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    nbrs = [np.argsort(d[r], kind="stable")[:k] for r in range(len(y))]
    eps = 1e-3 * np.mean([d[r, j] for r in range(len(y)) for j in nbrs[r]])
    out = np.zeros((len(y), c))
    for r in range(len(y)):
        for j in nbrs[r]:
            out[r, y[j]] += 1.0 / (d[r, j] + eps)
        out[r] /= out[r].sum()
    return out


def noisy_labels(y: np.ndarray, rate: float, seed: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Flip round(rate * N) uniformly chosen labels to a uniformly chosen *different* class."""
    rng = np.random.default_rng(seed)
    flip = rng.choice(y.size, int(round(rate * y.size)), replace=False)
    yn = y.copy()
    yn[flip] = (y[flip] + rng.integers(1, c, flip.size)) % c
    truth = np.zeros(y.size, dtype=bool)
    truth[flip] = True
    return yn, truth


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = int((pred & truth).sum())
    return 2.0 * tp / (int(pred.sum()) + int(truth.sum()))


# --------------------------------------------------------------------------- hand-made cases

# 7 rows, 3 classes. Thresholds by hand: class 0 rows {0, 1, 2}: (0.9 + 0.8 + 0.1) / 3 = 0.6;
# class 1 rows {3, 4, 5}: (0.7 + 0.6 + 0.2) / 3 = 0.5; class 2 row {6}: 0.9.
HAND_P = np.array(
    [
        [0.9, 0.05, 0.05],
        [0.8, 0.1, 0.1],
        [0.1, 0.8, 0.1],  # labelled 0, looks like 1
        [0.2, 0.7, 0.1],
        [0.3, 0.6, 0.1],
        [0.7, 0.2, 0.1],  # labelled 1, looks like 0
        [0.05, 0.05, 0.9],
    ]
)
HAND_Y = np.array([0, 0, 0, 1, 1, 1, 2])


def test_hand_thresholds_and_joint():
    t = confident_thresholds(HAND_Y, HAND_P)
    np.testing.assert_allclose(t, [0.6, 0.5, 0.9], rtol=0, atol=1e-15)
    # confident classes: rows 0,1 -> 0; row 2 -> 1; rows 3,4 -> 1; row 5 -> 0; row 6 -> 2
    expected = np.array([[2, 1, 0], [1, 2, 0], [0, 0, 1]])
    np.testing.assert_array_equal(confident_joint(HAND_Y, HAND_P), expected)
    np.testing.assert_array_equal(ref_confident_joint(HAND_Y, HAND_P), expected)
    # calibrated: every row of the joint already sums to its class count
    np.testing.assert_allclose(calibrated_joint(HAND_Y, HAND_P), expected.astype(float))
    r = curate.label_issues(HAND_Y, pred_probs=HAND_P)
    np.testing.assert_array_equal(r.is_issue, [False, False, True, False, False, True, False])
    np.testing.assert_array_equal(r.suggested_label, [0, 0, 1, 1, 1, 0, 2])
    np.testing.assert_allclose(r.score, 1.0 - HAND_P[np.arange(7), HAND_Y])
    np.testing.assert_array_equal(r.ranked, [2, 5])  # scores 0.9 then 0.8
    assert r.is_issue.dtype == bool and r.score.dtype == np.float64
    assert r.suggested_label.dtype == np.int64 and r.ranked.dtype == np.int64


def test_row_below_every_threshold_and_absent_class():
    # class 2 never labelled -> t_2 = inf; row 2 (labelled 0) is above no threshold: not counted.
    p = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.4, 0.2, 0.4], [0.2, 0.8, 0.0]])
    y = np.array([0, 1, 0, 1])
    t = confident_thresholds(y, p)
    assert t[2] == np.inf
    np.testing.assert_allclose(t[:2], [0.65, 0.85])
    np.testing.assert_array_equal(confident_joint(y, p), [[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    r = curate.label_issues(y, pred_probs=p)
    assert not r.is_issue.any() and r.ranked.size == 0
    assert r.suggested_label[2] == 0  # tie 0.4 / 0.4: lowest class


def test_argmax_guard_keeps_row_whose_label_wins():
    # t = (0.71, 0.45). Row 1 is confidently class 1 (0.48 >= 0.45, 0.52 < 0.71), so pruning
    # picks it (Q[0, 1] = 1, lowest self-confidence of class 0), but its own class 0 is the
    # argmax: not flagged.
    p = np.array([[0.9, 0.1], [0.52, 0.48], [0.55, 0.45], [0.55, 0.45]])
    y = np.array([0, 0, 1, 1])
    np.testing.assert_array_equal(confident_joint(y, p), [[1, 1], [0, 2]])
    r = curate.label_issues(y, pred_probs=p)
    assert not r.is_issue[1]
    ref = ref_label_issues(y, p)
    np.testing.assert_array_equal(r.is_issue, ref[0])


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 40),
    c=st.integers(2, 5),
    seed=st.integers(0, 2**31 - 1),
    coarse=st.booleans(),
)
def test_random_against_reference(n, c, seed, coarse):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(c, 0.7), size=n)
    if coarse:  # many exact ties, like a kNN vote
        p = np.round(p * 4) + 1e-9
        p /= p.sum(axis=1, keepdims=True)
    y = rng.integers(0, c, n)
    r = curate.label_issues(y, pred_probs=p)
    np.testing.assert_allclose(confident_thresholds(y, p), ref_thresholds(y, p), rtol=1e-12)
    np.testing.assert_array_equal(confident_joint(y, p), ref_confident_joint(y, p))
    flagged, score, suggested, ranked = ref_label_issues(y, p)
    np.testing.assert_array_equal(r.is_issue, flagged)
    np.testing.assert_allclose(r.score, score, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(r.suggested_label, suggested)
    np.testing.assert_array_equal(r.ranked, ranked)


# --------------------------------------------------------------------------- kNN vote


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_knn_vote_matches_reference(metric):
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(3, 8)) * 4
    y = rng.integers(0, 3, 60)
    x = centers[y] + rng.normal(size=(60, 8))
    y_noisy = y.copy()
    y_noisy[[5, 17, 40]] = (y[[5, 17, 40]] + 1) % 3
    r = curate.label_issues(y_noisy, features=x, k=5, metric=metric)
    p = ref_knn_vote(x, y_noisy, 5, 3, metric)
    np.testing.assert_allclose(r.probs, p, atol=1e-4)  # the graph is float32
    ref = ref_label_issues(y_noisy, np.asarray(r.probs))
    np.testing.assert_array_equal(r.is_issue, ref[0])
    np.testing.assert_array_equal(r.ranked, ref[3])
    assert set(np.flatnonzero(r.is_issue)) >= {5, 17, 40}
    np.testing.assert_array_equal(r.suggested_label[[5, 17, 40]], y[[5, 17, 40]])
    # a precomputed graph gives the same result, with or without features
    g = knn_graph(x, 5, metric)
    for feats in (x, None):
        r2 = curate.label_issues(y_noisy, features=feats, k=5, metric=metric, graph=g)
        np.testing.assert_array_equal(r2.is_issue, r.is_issue)
        np.testing.assert_array_equal(r2.probs, r.probs)


def test_both_inputs_average():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 30)
    x = np.eye(3)[y] * 5 + rng.normal(size=(30, 3))
    pp = rng.dirichlet(np.ones(3), size=30)
    r = curate.label_issues(y, pred_probs=pp, features=x, k=4)
    p = 0.5 * (pp + ref_knn_vote(x, y, 4, 3, "cosine"))
    np.testing.assert_allclose(r.probs, p, atol=1e-4)  # the graph is float32
    np.testing.assert_array_equal(r.is_issue, ref_label_issues(y, np.asarray(r.probs))[0])


def test_torch_labels_give_torch_results():
    torch = pytest.importorskip("torch")
    r = curate.label_issues(torch.tensor(HAND_Y), pred_probs=torch.tensor(HAND_P, dtype=torch.float32))
    assert isinstance(r.is_issue, torch.Tensor) and isinstance(r.ranked, torch.Tensor)
    assert r.ranked.tolist() == [2, 5]


def test_float16_and_noncontiguous_probs():
    p16 = HAND_P.astype(np.float16)
    r = curate.label_issues(HAND_Y, pred_probs=p16)
    np.testing.assert_array_equal(r.ranked, [2, 5])
    wide = np.zeros((7, 6))
    wide[:, ::2] = HAND_P
    r = curate.label_issues(HAND_Y, pred_probs=wide[:, ::2])
    np.testing.assert_array_equal(r.ranked, [2, 5])


# --------------------------------------------------------------------------- digits quality goal


@pytest.fixture(scope="module")
def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_digits(return_X_y=True)  # raw 0..16 pixels, not standardised
    return x.astype(np.float32), y.astype(np.int64)


@pytest.mark.parametrize("rate", [0.1, 0.2])
def test_digits_f1(digits, rate):
    x, y = digits
    yn, truth = noisy_labels(y, rate, seed=0, c=10)
    t0 = time.perf_counter()
    r = curate.label_issues(yn, features=x, k=10, metric="cosine")
    elapsed = time.perf_counter() - t0
    score = f1(np.asarray(r.is_issue), truth)
    print(f"digits noise={rate:.0%}: F1={score:.4f} flagged={int(r.is_issue.sum())} time={elapsed * 1e3:.1f} ms")
    assert score >= 0.90
    # the suggested label recovers the true class for most flagged flips
    hit = np.asarray(r.is_issue) & truth
    assert (np.asarray(r.suggested_label)[hit] == y[hit]).mean() >= 0.9
    # the ranking is by descending score
    s = np.asarray(r.score)[np.asarray(r.ranked)]
    assert np.all(np.diff(s) <= 0)


def test_digits_against_cleanlab(digits):
    import cleanlab.filter as cleanlab_filter  # a test dependency: a missing install fails, never skips
    x, y = digits
    yn, truth = noisy_labels(y, 0.1, seed=0, c=10)
    r = curate.label_issues(yn, features=x, k=10)
    theirs = cleanlab_filter.find_label_issues(yn, np.asarray(r.probs), filter_by="prune_by_class")
    ours = f1(np.asarray(r.is_issue), truth)
    print(f"digits 10%: curata F1={ours:.4f}, cleanlab prune_by_class on the same probs F1={f1(theirs, truth):.4f}")
    assert ours >= f1(theirs, truth) - 0.02


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(labels=HAND_Y.astype(float), pred_probs=HAND_P), TypeError, "labels must have an integer dtype"),
        (dict(labels=np.array([0, 0, 0, 1, 1, 1, 3]), pred_probs=HAND_P), ValueError, "labels must be in [0, 2]"),
        (dict(labels=np.array([0, 0, 0, 1, 1, 1, -1]), pred_probs=HAND_P), ValueError, "labels must be in"),
        (dict(labels=HAND_Y[:6], pred_probs=HAND_P), ValueError, "pred_probs must have 6 rows"),
        (dict(labels=HAND_Y, pred_probs=HAND_P * 0.9), ValueError, "pred_probs rows must sum to 1"),
        (dict(labels=HAND_Y, pred_probs=np.where(HAND_P == 0.9, np.nan, HAND_P)), ValueError, "pred_probs must be finite"),
        (dict(labels=HAND_Y, pred_probs=HAND_P[:, :1]), ValueError, "pred_probs must have at least 2 columns"),
        (dict(labels=HAND_Y, pred_probs=HAND_P[0]), ValueError, "pred_probs must have shape (N, C)"),
        (dict(labels=HAND_Y.reshape(7, 1), pred_probs=HAND_P), ValueError, "labels must have shape (N,)"),
        (dict(labels=HAND_Y), ValueError, "needs pred_probs or features"),
        (dict(labels=HAND_Y, features=np.ones((6, 2))), ValueError, "features must have shape (7, D)"),
        (dict(labels=HAND_Y, features=np.full((7, 2), np.nan)), ValueError, "features must be finite"),
        (dict(labels=np.array([0, -1, 1]), features=np.eye(3), k=1), ValueError, "labels must be in"),
        (dict(labels=HAND_Y, features=HAND_P, k=0), ValueError, "k must be >= 1"),
        (dict(labels=HAND_Y, features=HAND_P, k=7), ValueError, "k must be in [1, 6]"),
        (dict(labels=HAND_Y, features=HAND_P, k=2.0), TypeError, "k must be an int"),
        (dict(labels=HAND_Y, features=HAND_P, metric="ip"), ValueError, "metric must be one of"),
    ],
)
def test_bad_input(kwargs, exc, words):
    with pytest.raises(exc) as info:
        curate.label_issues(**kwargs)
    assert words in str(info.value)


def test_bad_graph():
    x = np.random.default_rng(0).normal(size=(7, 3))
    g = knn_graph(x, 3, "cosine")
    with pytest.raises(ValueError, match="graph has 3 neighbours per row but k=2"):
        curate.label_issues(HAND_Y, features=x, k=2, graph=g)
    g8 = knn_graph(np.vstack([x, x[:1] + 1]), 3, "cosine")
    with pytest.raises(ValueError, match="graph must have 7 rows like labels"):
        curate.label_issues(HAND_Y, k=3, graph=g8)


def test_sparse_label_ids_without_pred_probs_are_refused_clearly():
    # Without pred_probs, C = labels.max() + 1: sparse ids (hashes, database keys) asked for an
    # (N, C) float64 matrix: [0, 10**12] raised MemoryError for 14.6 TiB (and ids near 10**8 on a
    # few thousand rows would really try to allocate gigabytes). Now a ValueError says what to do.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3))
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, C\).*np.unique"):
        curate.label_issues(np.array([0, 10**12, 0, 1]), features=x, k=2)
    # sparse but small is still fine: 4 rows, ids up to 999 (32 KB of probabilities)
    res = curate.label_issues(np.array([0, 999, 0, 999]), features=x, k=2)
    assert res.probs.shape == (4, 1000)


def test_pred_probs_sum_message_shows_the_plain_number():
    # The message printed numpy's repr of the row sum ("got np.float64(1.1) in row 0").
    p = np.array([[0.55, 0.55], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"^pred_probs rows must sum to 1 \(within 0\.001\), got 1\.1 in row 0$"):
        curate.label_issues(np.array([0, 1]), pred_probs=p)
