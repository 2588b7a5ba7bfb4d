"""Synthetic embeddings with injected curation problems and their ground truth.

Used by the ``curation`` benchmark suite. The data imitate image embeddings of a 10-class
dataset: every class is a mixture of a few sub-modes in a low-dimensional latent space, lifted to
``D`` dimensions by a random orthonormal map, plus isotropic noise in all ``D`` dimensions and a
common offset (real embeddings share a mean direction, so cosine similarities are mostly > 0).

Injected, at random row positions:

* near-duplicates: ``n_dup_sources`` rows get 1 to 3 copies each, with a little noise (cosine
  distance to the source about 1e-4 to 5e-3, like re-encoded or resized images);
* outliers: ``n_outliers`` rows that blend a class-like point with a point of a *novel* latent
  subspace (content no class shows), blend weight uniform in [0.3, 1], with the same noise: graded
  from mildly to clearly unusual;
* label noise: ``label_noise`` of the non-outlier rows get a uniformly chosen *different* label.

``pred_probs`` are out-of-sample: a nearest-class-mean Gaussian classifier (shared isotropic
variance) trained on the *noisy* labels with 5-fold cross-validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CurationData:
    x: np.ndarray  # (N, D) float32 embeddings
    labels: np.ndarray  # (N,) int64 given (noisy) labels
    true_labels: np.ndarray  # (N,) int64
    pred_probs: np.ndarray  # (N, C) float64, out-of-sample
    is_duplicate: np.ndarray  # (N,) bool: member of an injected duplicate set (source or copy)
    duplicate_set: np.ndarray  # (N,) int64: id of the injected set, -1 elsewhere
    is_outlier: np.ndarray  # (N,) bool
    is_label_error: np.ndarray  # (N,) bool: given label != true label (outliers excluded)


def _cv_pred_probs(x: np.ndarray, y: np.ndarray, c: int, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Out-of-fold posteriors of a nearest-class-mean classifier with one shared variance."""
    n, d = x.shape
    fold = rng.permutation(n) % folds
    out = np.empty((n, c), dtype=np.float64)
    x64 = x.astype(np.float64)
    sq = np.einsum("ij,ij->i", x64, x64)
    for f in range(folds):
        tr, te = fold != f, fold == f
        counts = np.bincount(y[tr], minlength=c).astype(np.float64)
        means = np.zeros((c, d))
        np.add.at(means, y[tr], x64[tr])
        means /= np.maximum(counts, 1)[:, None]
        resid = x64[tr] - means[y[tr]]
        var = float(np.einsum("ij,ij->", resid, resid)) / (tr.sum() * d)
        d2 = sq[te, None] - 2.0 * x64[te] @ means.T + np.einsum("ij,ij->i", means, means)[None, :]
        logit = -d2 / (2.0 * var)
        logit -= logit.max(axis=1, keepdims=True)
        p = np.exp(logit)
        out[te] = p / p.sum(axis=1, keepdims=True)
    return out


def make_curation_data(
    n: int = 50_000,
    d: int = 512,
    n_classes: int = 10,
    n_dup_sources: int = 500,
    n_outliers: int = 500,
    label_noise: float = 0.1,
    latent: int = 32,
    modes_per_class: int = 4,
    separation: float = 1.6,
    seed: int = 0,
) -> CurationData:
    """Build the data set described in the module docstring (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    n_copies = rng.integers(1, 4, n_dup_sources)
    n_clean = n - int(n_copies.sum()) - n_outliers
    if n_clean < n_dup_sources:
        raise ValueError(f"n={n} is too small for {n_dup_sources} duplicate sets and {n_outliers} outliers")

    class_means = rng.normal(0.0, separation, (n_classes, latent))
    mode_means = class_means[:, None, :] + rng.normal(0.0, 0.5 * separation, (n_classes, modes_per_class, latent))
    lift = np.linalg.qr(rng.normal(size=(d, latent)))[0].T * np.sqrt(d / latent)  # (latent, d), orthogonal rows
    offset = rng.normal(0.0, 1.0, d) * 0.35
    noise = 0.55

    y = rng.integers(0, n_classes, n_clean)
    mode = rng.integers(0, modes_per_class, n_clean)
    z = mode_means[y, mode] + rng.normal(size=(n_clean, latent))
    x_clean = z @ lift + offset + noise * rng.normal(size=(n_clean, d))

    # Outliers blend a class-like latent point with a point of a *novel* latent subspace (content
    # the classes never show); the blend weight grades them from mildly to clearly unusual.
    lift_new = np.linalg.qr(rng.normal(size=(d, latent)))[0].T * np.sqrt(d / latent)
    like = mode_means[rng.integers(0, n_classes, n_outliers), rng.integers(0, modes_per_class, n_outliers)]
    like = (like + rng.normal(size=(n_outliers, latent))) @ lift
    novel = rng.normal(0.0, np.sqrt(1.0 + separation**2 * 1.25), (n_outliers, latent)) @ lift_new
    w = rng.uniform(0.3, 1.0, n_outliers)[:, None]
    x_out = (1.0 - w) * like + w * novel + offset + noise * rng.normal(size=(n_outliers, d))
    y_out = rng.integers(0, n_classes, n_outliers)

    src = rng.choice(n_clean, n_dup_sources, replace=False)
    rep = np.repeat(src, n_copies)
    scale = np.exp(rng.uniform(np.log(0.01), np.log(0.3), rep.size))  # relative noise of a copy
    norms = np.linalg.norm(x_clean[rep], axis=1)
    x_dup = x_clean[rep] + (scale * norms / np.sqrt(d))[:, None] * rng.normal(size=(rep.size, d))

    x = np.vstack([x_clean, x_dup, x_out]).astype(np.float32)
    true = np.concatenate([y, y[rep], y_out]).astype(np.int64)
    dup_set = np.full(n, -1, dtype=np.int64)
    dup_set[src] = np.arange(n_dup_sources)
    dup_set[n_clean : n_clean + rep.size] = np.repeat(np.arange(n_dup_sources), n_copies)
    outlier = np.zeros(n, dtype=bool)
    outlier[n_clean + rep.size :] = True

    given = true.copy()
    candidates = np.flatnonzero(~outlier)
    flip = rng.choice(candidates, int(round(label_noise * candidates.size)), replace=False)
    given[flip] = (true[flip] + rng.integers(1, n_classes, flip.size)) % n_classes
    label_error = given != true

    perm = rng.permutation(n)
    x, true, given, dup_set, outlier, label_error = (a[perm] for a in (x, true, given, dup_set, outlier, label_error))
    pred_probs = _cv_pred_probs(x, given, n_classes, 5, rng)
    return CurationData(
        x=np.ascontiguousarray(x),
        labels=given,
        true_labels=true,
        pred_probs=pred_probs,
        is_duplicate=dup_set >= 0,
        duplicate_set=dup_set,
        is_outlier=outlier,
        is_label_error=label_error,
    )


# ------------------------------------------------------------------------------ quality measures
def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    denom = int(pred.sum()) + int(truth.sum())
    return 2.0 * int((pred & truth).sum()) / denom if denom else 1.0


def precision_recall(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    tp = int((pred & truth).sum())
    return tp / max(int(pred.sum()), 1), tp / max(int(truth.sum()), 1)


def auroc(score: np.ndarray, truth: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count 1/2)."""
    score = np.asarray(score, dtype=np.float64)
    truth = np.asarray(truth, dtype=bool)
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(score.size, dtype=np.float64)
    s = score[order]
    # average ranks over ties
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], s.size]
    avg = (starts + ends - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, ends - starts)
    npos, nneg = int(truth.sum()), int((~truth).sum())
    return float((ranks[truth].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def precision_at(score: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Share of true positives among the ``k`` highest scores (ties: lower index first)."""
    top = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")[:k]
    return float(np.asarray(truth, dtype=bool)[top].mean())
