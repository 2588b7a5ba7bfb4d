"""Classifier two-sample test: :func:`c2st`.

Re-exported by :mod:`curata.drift`; see ``docs/_fragments/c2st.md``. scikit-learn is imported
only when :func:`c2st` runs.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _array
from ._drift_input import sample_pair

_PVALUE_METHODS = ("auc-normal", "permutation")


@dataclass(frozen=True)
class C2STResult:
    """Result of :func:`c2st`.

    Attributes
    ----------
    auc : float
        AUC of the out-of-fold scores for "cur" (label 1) against "ref" (label 0): the
        Mann-Whitney U of the cur scores divided by ``n_ref * n_cur`` (ties count 1/2).
    pvalue : float
        One-sided p-value for ``AUC > 0.5``.
    n_ref, n_cur : int
        Rows of each sample.
    method : str
        ``"auc-normal"`` or ``"permutation"``.
    fold_aucs : numpy array (n_folds,) float64
        AUC of each fold's held-out scores (same tie rule), in fold order.
    scores : numpy array (n_ref + n_cur,) float64
        Out-of-fold score of every row: ref rows first, then cur rows, in input order.
    labels : numpy array (n_ref + n_cur,) int64
        0 for ref rows, 1 for cur rows (aligned with ``scores``).
    null_aucs : numpy array (B,) float64 or None
        ``"permutation"``: AUC under each label permutation, in permutation order.
    """

    auc: float
    pvalue: float
    n_ref: int
    n_cur: int
    method: str
    fold_aucs: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    null_aucs: np.ndarray | None = None


def _sklearn():
    try:
        import sklearn  # noqa: F401, PLC0415  (optional dependency)
        from sklearn.base import clone  # noqa: PLC0415
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
        from sklearn.model_selection import StratifiedKFold  # noqa: PLC0415
        from sklearn.pipeline import make_pipeline  # noqa: PLC0415
        from sklearn.preprocessing import StandardScaler  # noqa: PLC0415
    except ImportError as e:
        raise ImportError(
            "curata.drift.c2st requires scikit-learn (pip install scikit-learn), "
            f"which could not be imported: {e}"
        ) from e
    return clone, LogisticRegression, StratifiedKFold, make_pipeline, StandardScaler


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Exact AUC = U(label 1) / (n0 * n1) with midranks for ties; O(n log n)."""
    n1 = int(labels.sum())
    n0 = labels.size - n1
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    ranks = np.empty(s.size, dtype=np.float64)
    # midranks: positions [start, end) of each run of equal scores get (start + end + 1) / 2
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], s.size]
    mid = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(mid, ends - starts)
    u1 = ranks[labels == 1].sum() - n1 * (n1 + 1) / 2.0
    return float(u1 / (n0 * n1))


def _scores_of(est: Any, x: np.ndarray) -> np.ndarray:
    if hasattr(est, "predict_proba"):
        proba = np.asarray(est.predict_proba(x))
        classes = list(getattr(est, "classes_", [0, 1]))
        return proba[:, classes.index(1)].astype(np.float64)
    if hasattr(est, "decision_function"):
        d = np.asarray(est.decision_function(x), dtype=np.float64)
        return d.reshape(-1)
    raise TypeError(
        f"model must provide predict_proba or decision_function, got {type(est).__name__}"
    )


def _cross_val_scores(x, y, make_model, skf, clone):
    scores = np.empty(y.size, dtype=np.float64)
    fold_aucs = []
    for train, test in skf.split(x, y):
        est = clone(make_model)
        est.fit(x[train], y[train])
        s = _scores_of(est, x[test])
        if s.shape != (test.size,):
            raise ValueError(f"model scores must have shape ({test.size},), got {s.shape}")
        if np.isnan(s).any():
            # NaN has no rank: the AUC would silently count it above every score
            raise ValueError(f"model scores must not be NaN, got {int(np.isnan(s).sum())} NaN of {s.size} in a fold")
        scores[test] = s
        fold_aucs.append(_auc(s, y[test]))
    return scores, np.asarray(fold_aucs, dtype=np.float64)


def c2st(
    ref: Any,
    cur: Any,
    *,
    model: Any = None,
    n_folds: int = 5,
    seed: int = 0,
    pvalue: str = "permutation",
    n_permutations: int = 100,
) -> C2STResult:
    """Classifier two-sample test: can a classifier tell ``cur`` rows from ``ref`` rows?

    Rows of ``ref`` are labelled 0 and rows of ``cur`` 1; a stratified K-fold cross-validation
    (``sklearn.model_selection.StratifiedKFold(n_folds, shuffle=True, random_state=seed)``)
    yields one out-of-fold score per row, and the test statistic is the AUC of those scores.
    Under "same distribution" the AUC is near 0.5.

    Parameters
    ----------
    ref : array (n,) or (n, D)
    cur : array (m,) or (m, D)
        numpy arrays or torch CPU/CUDA tensors (copied to host), any real dtype.
    model : scikit-learn classifier or None
        Cloned (``sklearn.base.clone``) for every fit. Scores are ``predict_proba[:, class 1]``
        if it has ``predict_proba``, else ``decision_function``. ``None`` (default):
        ``make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))``, i.e. logistic
        regression on standardised features (scaler fitted on each training fold).
    n_folds : int >= 2
        Folds; each sample needs at least ``n_folds`` rows.
    seed : int
        Seeds the fold split and the label permutations: same inputs and seed -> same result
        (for a deterministic ``model``).
    pvalue : {"auc-normal", "permutation"}
        "auc-normal": one-sided p for AUC > 0.5 from the Mann-Whitney normal approximation
        with tie correction and continuity correction (``curata.drift.mannwhitneyu`` of the cur
        scores against the ref scores, ``alternative="greater"``, ``method="asymptotic"``).
        It treats the out-of-fold scores as independent, which they are not (each fold has its
        own model fitted on overlapping rows), so it is liberal: about 10 % of null runs give
        p < 0.05 in our checks (docs/_fragments/c2st.md); a fast screen, not an exact level.
        "permutation" (default): ``(1 + #{AUC_perm >= AUC}) / (1 + B)`` where
        each of the ``B = n_permutations`` null AUCs comes from permuting the labels and
        re-running the whole cross-validation: exact level, ``B + 1`` times the cost.
    n_permutations : int >= 1
        B, used by ``pvalue="permutation"`` only.

    Returns
    -------
    C2STResult
        Plain Python floats and numpy arrays (host), whatever the input kind.

    Raises
    ------
    ValueError
        NaN/inf in ``ref`` or ``cur``, different D, fewer than ``n_folds`` rows in a sample,
        ``n_folds < 2``, unknown ``pvalue``, ``n_permutations < 1``, a model returning NaN scores.
    TypeError
        ``model`` without ``predict_proba``/``decision_function``; non-integer ``n_folds``.
    ImportError
        scikit-learn is not installed.

    Notes
    -----
    Cost: ``n_folds`` model fits, plus ``B * n_folds`` more with ``pvalue="permutation"``.
    With the default model a fit is O(iterations * N * D) for N = n + m rows; the AUC is
    O(N log N). Peak memory: the float64 (N, D) pooled matrix plus what the model needs
    (the default pipeline keeps a standardised copy of a training fold).
    """
    if not isinstance(n_folds, numbers.Integral) or isinstance(n_folds, bool):
        raise TypeError(f"n_folds must be an int, got {n_folds!r}")
    n_folds = int(n_folds)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    seed = _array.check_seed(seed, maximum=2**32 - 1)  # scikit-learn's random_state range
    if pvalue not in _PVALUE_METHODS:
        raise ValueError(f"pvalue must be one of {_PVALUE_METHODS}, got {pvalue!r}")
    if pvalue == "permutation":
        if not isinstance(n_permutations, numbers.Integral) or isinstance(n_permutations, bool):
            raise TypeError(f"n_permutations must be an int, got {n_permutations!r}")
        if n_permutations < 1:
            raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    a, b = sample_pair(ref, cur, n_folds)
    for arr, name in ((a, "ref"), (b, "cur")):
        if not np.isfinite(arr).all():
            bad = "NaN" if np.isnan(arr).any() else "inf"
            raise ValueError(f"{name} must be finite, got {bad} values")
    clone, LogisticRegression, StratifiedKFold, make_pipeline, StandardScaler = _sklearn()
    if model is None:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    elif not (hasattr(model, "predict_proba") or hasattr(model, "decision_function")):
        raise TypeError(
            f"model must provide predict_proba or decision_function, got {type(model).__name__}"
        )

    n, m = a.shape[0], b.shape[0]
    x = np.concatenate([a, b]).astype(np.float64, copy=False)
    y = np.r_[np.zeros(n, dtype=np.int64), np.ones(m, dtype=np.int64)]
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    scores, fold_aucs = _cross_val_scores(x, y, model, skf, clone)
    auc = _auc(scores, y)

    null = None
    if pvalue == "auc-normal":
        from .drift import mannwhitneyu  # noqa: PLC0415  (drift imports this module)

        r = mannwhitneyu(scores[n:], scores[:n], alternative="greater", method="asymptotic")
        p = float(np.asarray(r.pvalue).reshape(-1)[0])
    else:
        rng = np.random.default_rng(seed)
        null = np.empty(n_permutations, dtype=np.float64)
        for i in range(n_permutations):
            yp = rng.permutation(y)
            s, _ = _cross_val_scores(x, yp, model, skf, clone)
            null[i] = _auc(s, yp)
        # null AUCs within float rounding of the observed one count as ties (>=)
        p = (1 + int(np.count_nonzero(null >= auc - 1e-12))) / (1 + n_permutations)
    if not math.isfinite(p):  # pragma: no cover - defensive
        raise ValueError(f"p-value is not finite: {p}")
    return C2STResult(
        auc=auc,
        pvalue=float(p),
        n_ref=n,
        n_cur=m,
        method=pvalue,
        fold_aucs=fold_aucs,
        scores=scores,
        labels=y,
        null_aucs=null,
    )
