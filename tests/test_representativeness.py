"""curata.curate.representativeness against a float64 numpy reference of the documented formula."""

from __future__ import annotations

import numpy as np
import pytest

from curata import curate


def ref_representativeness(x, labels, k, metric):
    """score_i = (n_c / max n) / (1 + d_i^2 / s_c^2), d_i = |x_i - mean_c|, s_c^2 = mean d^2 in c."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.asarray(labels)
    out = np.empty(x.shape[0])
    sizes = np.array([(labels == c).sum() for c in range(k)])
    for c in range(k):
        members = np.flatnonzero(labels == c)
        if members.size == 0:
            continue
        mu = x[members].mean(axis=0)
        d2 = ((x[members] - mu) ** 2).sum(axis=1)
        s2 = d2.mean()
        t = np.ones_like(d2) if s2 == 0 else 1.0 / (1.0 + d2 / s2)
        out[members] = sizes[c] / sizes.max() * t
    return out


def blobs(n_per=(60, 40, 20), dim=8, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(n_per), dim)) * 5.0 + 10.0
    x = np.concatenate([c + spread * rng.normal(size=(n, dim)) for c, n in zip(centres, n_per)])
    truth = np.repeat(np.arange(len(n_per)), n_per)
    return x, truth, centres


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_reference(metric, dtype):
    x, _, _ = blobs()
    x = x.astype(dtype)
    xin = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    res = curate.kmeans(xin, 3, seed=1)
    got = curate.representativeness(x, 3, metric=metric, result=res)
    assert got.dtype == np.float64 and got.shape == (x.shape[0],)
    want = ref_representativeness(x, res.labels, 3, metric)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert np.all(got > 0) and np.all(got <= 1)
    # without result: same kmeans call internally -> same scores
    again = curate.representativeness(x, 3, metric=metric, seed=1)
    np.testing.assert_allclose(again, want, rtol=1e-9, atol=1e-12)


def test_central_rows_beat_far_rows():
    x, truth, centres = blobs(n_per=(50, 50, 50), spread=0.5, seed=3)
    rng = np.random.default_rng(4)
    far = centres + 4.0 * rng.normal(size=centres.shape)  # one far-out row per blob, still nearest it
    x = np.concatenate([x, far])
    s = curate.representativeness(x, 3, metric="l2", seed=0)
    n = 150
    for c in range(3):
        members = np.flatnonzero(truth == c)
        nearest = members[np.argmin(((x[members] - centres[c]) ** 2).sum(axis=1))]
        assert s[nearest] > s[n + c]
        assert s[nearest] > np.median(s[members])


def test_small_cluster_and_singletons():
    x, _, _ = blobs(n_per=(60, 6), spread=0.2, seed=5)
    res = curate.kmeans(x, 2, seed=0)
    s = curate.representativeness(x, 2, metric="l2", result=res)
    lab = np.asarray(res.labels)
    big = np.argmax(np.bincount(lab))
    # the best row of the large cluster beats the best row of the small one
    assert s[lab == big].max() > s[lab != big].max()
    # identical rows: spread 0 -> typicality 1, score = size share
    same = np.ones((5, 3))
    np.testing.assert_allclose(curate.representativeness(same, 1, metric="l2"), np.ones(5))


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_permutation_invariance_with_result(metric):
    x, _, _ = blobs(seed=7)
    xin = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    res = curate.kmeans(xin, 4, seed=2)
    s = curate.representativeness(x, 4, metric=metric, result=res)
    perm = np.random.default_rng(0).permutation(x.shape[0])
    res_p = curate.KMeansResult(
        centroids=res.centroids, labels=np.asarray(res.labels)[perm], inertia=res.inertia, n_iter=res.n_iter
    )
    s_p = curate.representativeness(x[perm], 4, metric=metric, result=res_p)
    np.testing.assert_allclose(s_p, s[perm], rtol=1e-12, atol=1e-14)


def test_torch_and_noncontiguous():
    torch = pytest.importorskip("torch")
    x, _, _ = blobs(seed=9)
    xf = np.asfortranarray(x)
    a = curate.representativeness(xf, 3, metric="l2")
    b = curate.representativeness(torch.from_numpy(x), 3, metric="l2")
    assert isinstance(b, torch.Tensor) and b.dtype == torch.float64
    np.testing.assert_allclose(b.numpy(), a, rtol=1e-12)


def test_bad_input():
    x, _, _ = blobs()
    with pytest.raises(ValueError, match="x must be finite"):
        bad = x.copy()
        bad[3, 1] = np.nan
        curate.representativeness(bad, 3)
    with pytest.raises(ValueError, match="n_clusters"):
        curate.representativeness(x, 0)
    with pytest.raises(ValueError, match="n_clusters"):
        curate.representativeness(x, x.shape[0] + 1)
    with pytest.raises(TypeError, match="n_clusters"):
        curate.representativeness(x, 2.0)
    with pytest.raises(ValueError, match="metric"):
        curate.representativeness(x, 3, metric="ip")
    zero = x.copy()
    zero[5] = 0
    with pytest.raises(ValueError, match="non-zero rows"):
        curate.representativeness(zero, 3, metric="cosine")
    curate.representativeness(zero, 3, metric="l2")  # fine for l2
    res = curate.kmeans(x, 3)
    with pytest.raises(ValueError, match="result centroids"):
        curate.representativeness(x, 4, metric="l2", result=res)
    with pytest.raises(ValueError, match="result labels"):
        curate.representativeness(x[:-1], 3, metric="l2", result=res)
    bad_lab = curate.KMeansResult(
        centroids=res.centroids, labels=np.full(x.shape[0], 7), inertia=0.0, n_iter=0
    )
    with pytest.raises(ValueError, match="result labels"):
        curate.representativeness(x, 3, metric="l2", result=bad_lab)
    with pytest.raises(TypeError, match="result"):
        curate.representativeness(x, 3, result=(res.centroids, res.labels))


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_input_not_modified_and_score_floor(metric):
    x, _, _ = blobs(n_per=(30, 10), seed=11)
    x[0] = 40.0  # one far-out row
    before = x.copy()
    res = curate.kmeans(x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x, 2)
    s = curate.representativeness(x, 2, metric=metric, result=res)
    np.testing.assert_array_equal(x, before)
    counts = np.bincount(np.asarray(res.labels), minlength=2)
    lab = np.asarray(res.labels)
    assert np.all(s >= counts[lab] / counts.max() / (1 + counts[lab]) * (1 - 1e-12))


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("exponent", [600, -600, 300, -300])
def test_huge_and_tiny_values_scale_free(metric, exponent):
    # The score is scale-free (d^2 / s^2 and cluster sizes), and k-means already rescales such
    # data. Before the fix the float64 squares overflowed (l2: NaN scores; cosine: infinite norms
    # turned every row into 0 and every score into 1) or underflowed (l2: every score 1; cosine:
    # "all-zero row" raised for rows that are not zero).
    x, _, _ = blobs()
    want = curate.representativeness(x, 3, metric=metric, seed=1)
    scaled = np.ldexp(x, exponent)
    got = curate.representativeness(scaled, 3, metric=metric, seed=1)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    if metric == "cosine":  # rows of very different scales in one array: each row on its own
        mixed = x.copy()
        mixed[::2] = np.ldexp(mixed[::2], exponent)
        got = curate.representativeness(mixed, 3, metric=metric, seed=1)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
