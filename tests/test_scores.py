"""curata.scores against float64 numpy references written here, scipy as a peer, and laws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import curata
from curata import _scores_device, scores

TIGHT = dict(rtol=1e-12, atol=0)


# ------------------------------------------------------------------ float64 references (plain)
def ref_softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def ref_entropy(p, axis=-1):
    p = np.asarray(p, dtype=np.float64)
    safe = np.where(p > 0, p, 1.0)
    return -np.sum(np.where(p > 0, p * np.log(safe), 0.0), axis=axis)


def ref_least_confidence(p):
    return 1.0 - np.asarray(p, dtype=np.float64).max(axis=-1)


def ref_margin(p):
    s = np.sort(np.asarray(p, dtype=np.float64), axis=-1)
    second = s[..., -2] if s.shape[-1] > 1 else 0.0
    return 1.0 - (s[..., -1] - second)


def ref_bald(mc):
    mc = np.asarray(mc, dtype=np.float64)
    return ref_entropy(mc.mean(axis=0)) - ref_entropy(mc).mean(axis=0)


def random_probs(rng, n, c, scale=3.0, dtype=np.float64):
    return ref_softmax(rng.standard_normal((n, c)) * scale).astype(dtype)


SCORES = [
    (scores.entropy, ref_entropy),
    (scores.least_confidence, ref_least_confidence),
    (scores.margin, ref_margin),
]


# ---------------------------------------------------------------------------------- softmax
def test_softmax_float64_matches_reference_and_scipy(rng):
    x = rng.standard_normal((200, 13)) * 30
    out = scores.softmax(x)
    assert out.dtype == np.float64 and out.shape == x.shape
    np.testing.assert_allclose(out, ref_softmax(x), **TIGHT)
    np.testing.assert_allclose(out, scipy.special.softmax(x, axis=-1), **TIGHT)


@pytest.mark.parametrize("c", [1, 2, 7, 16, 17, 80, 1000])
def test_softmax_row_lengths(rng, c):
    # Lengths below, at and above the 16-lane blocks of the kernel, and the tail.
    x = rng.standard_normal((9, c)) * 5
    np.testing.assert_allclose(scores.softmax(x), ref_softmax(x), **TIGHT)


def test_softmax_huge_logits():
    x = np.array([[1e4, -1e4, 0.0, 1e4], [-1e4, -1e4, -1e4, -1e4], [3e38, -3e38, 0, 1]])
    out = scores.softmax(x)
    np.testing.assert_array_equal(out[0], [0.5, 0.0, 0.0, 0.5])
    np.testing.assert_array_equal(out[1], [0.25] * 4)
    np.testing.assert_array_equal(out[2], [1.0, 0.0, 0.0, 0.0])
    out32 = scores.softmax(x[:2].astype(np.float32))
    assert out32.dtype == np.float32
    np.testing.assert_array_equal(out32, out[:2].astype(np.float32))


def test_softmax_infinities():
    inf = np.inf
    x = np.array([[inf, 1.0, inf, -inf], [-inf, 0.0, 0.0, -inf], [inf, -inf, -inf, -inf]])
    out = scores.softmax(x)
    np.testing.assert_array_equal(out, [[0.5, 0, 0.5, 0], [0, 0.5, 0.5, 0], [1, 0, 0, 0]])
    with pytest.raises(ValueError, match=r"logits row 1 is all -inf"):
        scores.softmax(np.array([[0.0, 1.0], [-inf, -inf]]))


def test_softmax_nan_names_argument_and_place():
    x = np.zeros((3, 4))
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"logits must not contain NaN, got nan at row 2, column 1"):
        scores.softmax(x)


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_softmax_axis_and_noncontiguous(rng, axis):
    base = rng.standard_normal((6, 10, 5)) * 4
    x = base[:, ::2, :]  # non-contiguous view
    assert not x.flags.c_contiguous
    np.testing.assert_allclose(scores.softmax(x, axis=axis), ref_softmax(x, axis=axis), **TIGHT)
    np.testing.assert_allclose(scores.softmax(np.asfortranarray(x), axis=axis), ref_softmax(x, axis=axis), **TIGHT)


@pytest.mark.parametrize(
    ("dtype", "out_dtype", "rtol"),
    [(np.float16, np.float32, 1e-6), (np.float32, np.float32, 1e-6), (np.float64, np.float64, 1e-12),
     (np.int32, np.float64, 1e-12)],
)
def test_softmax_dtypes(rng, dtype, out_dtype, rtol):
    x = (rng.standard_normal((50, 9)) * 4).astype(dtype)
    out = scores.softmax(x)
    assert out.dtype == out_dtype
    # The reference sees the same (rounded) inputs, so only the computation's error remains.
    np.testing.assert_allclose(out, ref_softmax(x.astype(np.float64)), rtol=rtol, atol=1e-30)


def test_softmax_empty_and_bad_shapes():
    assert scores.softmax(np.zeros((0, 4))).shape == (0, 4)
    with pytest.raises(ValueError, match=r"logits must have at least one class along axis -1, got shape \(3, 0\)"):
        scores.softmax(np.zeros((3, 0)))
    with pytest.raises(ValueError, match=r"logits must have at least 1 dimension"):
        scores.softmax(np.float64(1.0))
    with pytest.raises(ValueError, match=r"axis 2 is out of bounds for logits with 2 dimensions"):
        scores.softmax(np.zeros((3, 2)), axis=2)
    with pytest.raises(TypeError, match=r"axis must be an int"):
        scores.softmax(np.zeros((3, 2)), axis=1.0)
    with pytest.raises(TypeError, match=r"logits must have a real floating or integer dtype, got bool"):
        scores.softmax(np.zeros((3, 2), dtype=bool))
    with pytest.raises(TypeError, match=r"complex"):
        scores.softmax(np.zeros((3, 2), dtype=np.complex128))


# ---------------------------------------------------------------------------------- sigmoid
def test_sigmoid_matches_reference_and_scipy(rng):
    x = rng.standard_normal((40, 3, 5)) * 20
    out = scores.sigmoid(x)
    assert out.shape == x.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, 1.0 / (1.0 + np.exp(-x)), **TIGHT)
    np.testing.assert_allclose(out, scipy.special.expit(x), **TIGHT)


def test_sigmoid_extremes():
    x = np.array([-np.inf, -1e4, -800.0, -700.0, -0.0, 0.0, 700.0, 1e4, np.inf])
    out = scores.sigmoid(x)
    np.testing.assert_allclose(out, scipy.special.expit(x), rtol=1e-12, atol=1e-320)
    assert out[0] == 0.0 and out[1] == 0.0 and out[-1] == 1.0 and out[-2] == 1.0 and out[4] == 0.5
    out32 = scores.sigmoid(x.astype(np.float32))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, scipy.special.expit(x.astype(np.float32).astype(np.float64)),
                               rtol=2e-7, atol=1e-44)
    assert scores.sigmoid(np.float16(2.0)).dtype == np.float32  # 0-d stays 0-d
    assert scores.sigmoid(np.float16(2.0)).shape == ()


def test_sigmoid_nan_and_types():
    with pytest.raises(ValueError, match=r"x must not contain NaN, got nan at flat index 3"):
        scores.sigmoid(np.array([[0.0, 1.0], [2.0, np.nan]]))
    with pytest.raises(TypeError):
        scores.sigmoid(np.array([True, False]))
    assert scores.sigmoid(np.zeros((0, 3))).shape == (0, 3)


# ----------------------------------------------------------------- entropy, margin, least conf
@pytest.mark.parametrize(("fn", "ref"), SCORES)
@pytest.mark.parametrize("c", [1, 2, 3, 16, 31, 80])
def test_scores_float64_match_reference(rng, fn, ref, c):
    p = random_probs(rng, 300, c, scale=4.0)
    if c > 1:
        p[::7, 0] = 0.0  # exact zeros: 0 log 0 = 0
        p /= p.sum(axis=1, keepdims=True)
    out = fn(p)
    assert out.dtype == np.float64 and out.shape == (300,)
    np.testing.assert_allclose(out, ref(p), rtol=1e-12, atol=1e-15)


def test_entropy_matches_scipy(rng):
    p = random_probs(rng, 100, 12)
    np.testing.assert_allclose(scores.entropy(p), scipy.stats.entropy(p, axis=1), rtol=1e-12)
    np.testing.assert_allclose(scores.entropy(p.T, axis=0), scipy.stats.entropy(p.T, axis=0), rtol=1e-12)


def test_entropy_exact_values():
    one_hot = np.eye(5)
    h = scores.entropy(one_hot)
    np.testing.assert_array_equal(h, np.zeros(5))
    assert not np.signbit(h).any()  # +0.0, not -0.0
    for c in (1, 2, 7, 80):
        np.testing.assert_allclose(scores.entropy(np.full((1, c), 1.0 / c)), [math.log(c)], rtol=1e-14)


def test_margin_and_least_confidence_ties_and_single_class():
    p = np.array([[0.4, 0.4, 0.2], [0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_array_equal(scores.margin(p), [1.0, 1.0 - 0.25, 1.0])
    np.testing.assert_array_equal(scores.least_confidence(p), [0.6, 0.5, 1 - 1 / 3])
    single = np.ones((4, 1))
    np.testing.assert_array_equal(scores.margin(single), np.zeros(4))
    np.testing.assert_array_equal(scores.least_confidence(single), np.zeros(4))
    np.testing.assert_array_equal(scores.entropy(single), np.zeros(4))
    # check=False with a one-class score below 1: margin = 1 - p (p2 defined as 0)
    np.testing.assert_allclose(scores.margin(np.array([[0.3]]), check=False), [0.7], **TIGHT)


@pytest.mark.parametrize(("fn", "ref"), SCORES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_scores_dtypes(rng, fn, ref, dtype):
    p = random_probs(rng, 64, 10, dtype=dtype)
    out = fn(p)
    assert out.dtype == (np.float64 if dtype == np.float64 else np.float32)
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(out, ref(p.astype(np.float64)), rtol=rtol, atol=rtol)


@pytest.mark.parametrize(("fn", "ref"), SCORES)
def test_scores_integer_and_noncontiguous(rng, fn, ref):
    one_hot = np.eye(4, dtype=np.int64)[[0, 3, 1]]
    out = fn(one_hot)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref(one_hot), **TIGHT)
    p = random_probs(rng, 30, 8)
    wide = np.zeros((60, 8))
    wide[::2] = p
    view = wide[::2]
    assert not view.flags.c_contiguous
    np.testing.assert_allclose(fn(view), ref(p), **TIGHT)
    np.testing.assert_allclose(fn(np.asfortranarray(p)), ref(p), **TIGHT)


@pytest.mark.parametrize(("fn", "ref"), SCORES)
def test_scores_nd_with_class_axis(rng, fn, ref):
    # Segmentation layout (B, C, H, W) with classes on axis 1.
    p = np.moveaxis(random_probs(rng, 2 * 3 * 5, 6).reshape(2, 3, 5, 6), -1, 1)
    out = fn(p, axis=1)
    assert out.shape == (2, 3, 5)
    np.testing.assert_allclose(out, ref(np.moveaxis(p, 1, -1)), **TIGHT)
    single = fn(p[0, :, 0, 0], axis=0)  # one distribution -> 0-d
    assert single.shape == ()
    np.testing.assert_allclose(single, ref(p[0, :, 0, 0]), **TIGHT)


@pytest.mark.parametrize("fn", [scores.entropy, scores.least_confidence, scores.margin])
def test_scores_validation(fn):
    good = np.full((3, 4), 0.25)
    assert fn(np.zeros((0, 4))).shape == (0,)
    bad = good.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"probs must not contain NaN, got nan at row 1, column 2"):
        fn(bad)
    with pytest.raises(ValueError, match=r"must not contain NaN"):
        fn(bad, check=False)  # NaN is rejected whatever check says
    bad[1, 2] = np.inf
    with pytest.raises(ValueError, match=r"probs must be finite probabilities, got inf at row 1, column 2"):
        fn(bad, check=False)
    neg = good.copy()
    neg[2] = [0.75, -0.25, 0.25, 0.25]
    with pytest.raises(ValueError, match=r"probs must be non-negative probabilities, got -0.25 at row 2, column 1"):
        fn(neg)
    fn(neg, check=False)  # formula applied as given
    with pytest.raises(ValueError, match=r"probs rows must sum to 1 within 0.001, got 2 at row 0 .*logits"):
        fn(good * 2)
    with pytest.raises(ValueError, match=r"at least one class along axis -1, got shape \(3, 0\)"):
        fn(np.zeros((3, 0)))
    with pytest.raises(ValueError, match=r"at least 1 dimension"):
        fn(np.float64(1.0))
    with pytest.raises(TypeError, match=r"check must be a bool"):
        fn(good, check=1)
    with pytest.raises(TypeError, match=r"bool"):
        fn(good > 0)
    with pytest.raises(ValueError, match=r"axis 3 is out of bounds"):
        fn(good, axis=3)


def test_sum_tolerance_rule():
    off = np.array([[0.5, 0.5005]])  # sums to 1.0005: inside 1e-3
    scores.entropy(off)
    with pytest.raises(ValueError, match=r"sum to 1 within 0.001"):
        scores.entropy(np.array([[0.5, 0.502]]))
    # float16 inputs get 4 eps(float16) = 3.9e-3 (rounding each entry to float16 moves the sum)
    half = np.array([[0.5, 0.502]], dtype=np.float16)
    np.testing.assert_allclose(scores.entropy(half), ref_entropy(half.astype(np.float64)), rtol=1e-6)
    with pytest.raises(ValueError, match=r"within 0.0039"):
        scores.entropy(np.array([[0.5, 0.51]], dtype=np.float16))
    # check=False: no sum rule, formula as given
    np.testing.assert_allclose(scores.entropy(np.array([[0.9, 0.9]]), check=False), [-1.8 * math.log(0.9)], **TIGHT)


# ------------------------------------------------------------------------------------- bald
def test_bald_matches_reference(rng):
    mc = np.stack([random_probs(rng, 50, 7, scale=3.0) for _ in range(6)])
    out = scores.bald(mc)
    assert out.shape == (50,) and out.dtype == np.float64
    np.testing.assert_allclose(out, ref_bald(mc), rtol=1e-12, atol=1e-15)
    mc32 = mc.astype(np.float32)
    np.testing.assert_allclose(scores.bald(mc32), ref_bald(mc32), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores.bald(mc.astype(np.float16)), ref_bald(mc.astype(np.float16)), atol=2e-3)


def test_bald_exact_cases(rng):
    disagree = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # confident samples that disagree
    np.testing.assert_allclose(scores.bald(disagree), [math.log(2)], rtol=1e-15)
    p = random_probs(rng, 40, 9)
    same = np.stack([p] * 5)
    out = scores.bald(same)
    assert np.all(out >= 0) and np.all(out <= 1e-14)
    np.testing.assert_array_equal(scores.bald(p[None]), np.zeros(40))  # S = 1: mean is the sample itself


def test_bald_layouts_and_validation(rng):
    mc = np.stack([random_probs(rng, 12, 5) for _ in range(3)])  # (S, N, C)
    seg = np.moveaxis(mc.reshape(3, 2, 6, 5), -1, 2)  # (S, B, C, P)
    np.testing.assert_allclose(scores.bald(seg, axis=2), ref_bald(mc).reshape(2, 6), **TIGHT)
    assert scores.bald(mc[:, 0]).shape == ()  # (S, C): one item
    assert scores.bald(np.zeros((4, 0, 3))).shape == (0,)
    with pytest.raises(ValueError, match=r"mc_probs must have at least 2 dimension"):
        scores.bald(np.full(3, 1 / 3))
    with pytest.raises(ValueError, match=r"axis must not be 0"):
        scores.bald(mc, axis=0)
    with pytest.raises(ValueError, match=r"at least one sample"):
        scores.bald(np.zeros((0, 3, 4)))
    bad = mc.copy()
    bad[2, 5] = 0.5
    with pytest.raises(ValueError, match=r"mc_probs rows must sum to 1 .* at row 5 of sample 2"):
        scores.bald(bad)
    bad[2, 5, 1] = np.nan
    with pytest.raises(ValueError, match=r"mc_probs must not contain NaN, got nan at row 5 of sample 2, column 1"):
        scores.bald(bad, check=False)


# -------------------------------------------------------------------------------- torch CPU
@pytest.mark.parametrize("fn", [scores.entropy, scores.least_confidence, scores.margin, scores.softmax])
def test_torch_cpu_in_torch_out(rng, fn):
    p = random_probs(rng, 20, 6)
    t = torch.tensor(p, requires_grad=True)
    out = fn(t)
    assert isinstance(out, torch.Tensor) and out.device.type == "cpu" and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), fn(p), **TIGHT)
    half = fn(torch.tensor(p, dtype=torch.float16))
    assert half.dtype == torch.float32
    bf = fn(torch.tensor(p, dtype=torch.bfloat16))
    assert bf.dtype == torch.float32  # bfloat16's tolerance is 4 eps = 3.1e-2
    single = fn(torch.tensor(p[0]))
    assert isinstance(single, torch.Tensor) and tuple(single.shape) == (() if fn is not scores.softmax else (6,))


def test_torch_cpu_bald_sigmoid_aggregate(rng):
    mc = np.stack([random_probs(rng, 10, 4) for _ in range(3)])
    out = scores.bald(torch.from_numpy(mc))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), ref_bald(mc), rtol=1e-12, atol=1e-15)
    s = scores.sigmoid(torch.tensor([[-1.0, 0.0, 1.0]]))
    assert isinstance(s, torch.Tensor) and s.shape == (1, 3) and s.dtype == torch.float32
    ids, vals = scores.aggregate(torch.tensor([1.0, 5.0, 2.0]), torch.tensor([3, 1, 3]))
    assert isinstance(ids, torch.Tensor) and isinstance(vals, torch.Tensor)
    assert ids.tolist() == [1, 3] and vals.tolist() == [5.0, 2.0]


# -------------------------------------------------------------------------------- aggregate
def ref_aggregate_dense(values, groups, how, n):
    values = np.asarray(values, dtype=np.float64)
    out = np.full(n, {"max": -np.inf, "mean": np.nan, "sum": 0.0}[how])
    for g in range(n):
        members = values[groups == g]
        if members.size:
            out[g] = {"max": np.max, "mean": np.mean, "sum": np.sum}[how](members)
    return out


@pytest.mark.parametrize("how", ["max", "mean", "sum"])
def test_aggregate_dense_and_sparse(rng, how):
    values = rng.random(500)
    groups = rng.integers(0, 40, 500)
    groups[groups == 7] = 8  # group 7 is empty
    dense = scores.aggregate(values, groups, how, n_groups=45)
    np.testing.assert_allclose(dense, ref_aggregate_dense(values, groups, how, 45), rtol=1e-12)
    ids, vals = scores.aggregate(values, groups, how)
    np.testing.assert_array_equal(ids, np.unique(groups))
    np.testing.assert_allclose(vals, dense[ids], rtol=1e-15)
    assert ids.dtype == np.int64 and vals.dtype == np.float64


def test_aggregate_fill_values_and_dtypes():
    v = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    g = np.array([0, 0, 2])
    np.testing.assert_array_equal(scores.aggregate(v, g, "max", n_groups=4), [2, -np.inf, 4, -np.inf])
    np.testing.assert_array_equal(scores.aggregate(v, g, "sum", n_groups=4), [3, 0, 4, 0])
    np.testing.assert_array_equal(scores.aggregate(v, g, "mean", n_groups=4), [1.5, np.nan, 4, np.nan])
    np.testing.assert_array_equal(scores.aggregate(v, g, "mean", n_groups=4, fill_value=0), [1.5, 0, 4, 0])
    assert scores.aggregate(v, g, n_groups=4).dtype == np.float32
    assert scores.aggregate(v.astype(np.float16), g, n_groups=4).dtype == np.float32
    assert scores.aggregate(np.array([1, 2, 3]), g, n_groups=4).dtype == np.float64
    # float32 sums accumulate in float64: 1e8 + 1 + ... would otherwise lose the small terms
    big = np.array([1e8] + [1.0] * 64, dtype=np.float32)
    assert scores.aggregate(big, np.zeros(65, dtype=np.int64), "sum", n_groups=1)[0] == np.float32(1e8 + 64)


def test_aggregate_sparse_paths_agree(rng):
    values = rng.random(300)
    small = rng.integers(-50, 50, 300)  # dense-counting path (span <= 2N + 1024)
    spread = small * 10**15  # sort path
    ids_a, vals_a = scores.aggregate(values, small, "sum")
    ids_b, vals_b = scores.aggregate(values, spread, "sum")
    np.testing.assert_array_equal(ids_b, ids_a * 10**15)
    np.testing.assert_array_equal(vals_a, vals_b)
    extreme = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0])
    ids, vals = scores.aggregate(np.array([1.0, 2.0, 3.0]), extreme)
    np.testing.assert_array_equal(ids, np.sort(extreme))
    np.testing.assert_array_equal(vals, [1.0, 3.0, 2.0])


def test_aggregate_empty_and_validation():
    ids, vals = scores.aggregate(np.zeros(0), np.zeros(0, dtype=np.int64))
    assert ids.shape == (0,) and vals.shape == (0,)
    np.testing.assert_array_equal(scores.aggregate(np.zeros(0), np.zeros(0, dtype=np.int64), "sum", n_groups=2), [0, 0])
    assert scores.aggregate(np.zeros(0), [], n_groups=0).shape == (0,)
    v, g = np.array([1.0, 2.0]), np.array([0, 1])
    with pytest.raises(ValueError, match=r"groups must be in \[0, n_groups\) = \[0, 1\), got 1 at index 1"):
        scores.aggregate(v, g, n_groups=1)
    with pytest.raises(ValueError, match=r"groups must be in .* got -1 at index 0"):
        scores.aggregate(v, [-1, 0], n_groups=3)
    with pytest.raises(ValueError, match=r"values must not contain NaN, got nan at index 1"):
        scores.aggregate(np.array([1.0, np.nan]), g)
    with pytest.raises(ValueError, match=r"how must be one of \['max', 'mean', 'sum'\], got 'median'"):
        scores.aggregate(v, g, "median")
    with pytest.raises(ValueError, match=r"n_groups must be >= 0"):
        scores.aggregate(v, g, n_groups=-1)
    with pytest.raises(TypeError, match=r"n_groups must be an int"):
        scores.aggregate(v, g, n_groups=2.0)
    with pytest.raises(ValueError, match=r"groups must have length 2, got 3"):
        scores.aggregate(v, [0, 1, 2])
    with pytest.raises(ValueError, match=r"values must have shape \(N,\), got \(2, 1\)"):
        scores.aggregate(v[:, None], g)
    with pytest.raises(TypeError, match=r"groups must have an integer dtype"):
        scores.aggregate(v, np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"groups must hold integers"):
        scores.aggregate(v, [0.5, 1.0])
    with pytest.raises(TypeError, match=r"fill_value must be a number"):
        scores.aggregate(v, g, n_groups=2, fill_value="0")
    with pytest.raises(TypeError):
        scores.aggregate(np.array([True, False]), g)
    np.testing.assert_array_equal(scores.aggregate(v, [0.0, 1.0], "sum", n_groups=2), [1.0, 2.0])


# ------------------------------------------------------------------------- determinism, threads
def test_results_do_not_depend_on_thread_count(rng):
    p = random_probs(rng, 20000, 37, dtype=np.float32)
    mc = np.stack([p[:4000], p[4000:8000], p[8000:12000]])
    logits = rng.standard_normal((20000, 37)).astype(np.float32)
    before = curata.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            curata.set_num_threads(n)
            results.append([scores.entropy(p), scores.margin(p), scores.least_confidence(p), scores.bald(mc),
                            scores.softmax(logits), scores.sigmoid(logits)])
    finally:
        curata.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


# --------------------------------------------- framework path (GPU code, run on CPU frameworks)
FRAMEWORKS = {
    "numpy-as-cupy": (lambda a: a, lambda a: a),
    "torch-cpu": (torch.from_numpy, lambda t: t.numpy()),
}


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_device_path_matches_core(rng, framework):
    to, back = FRAMEWORKS[framework]
    p = random_probs(rng, 64, 9)
    p[::5, 3] = 0.0
    p /= p.sum(axis=1, keepdims=True)
    tol = 1e-3
    for name in ("entropy", "least_confidence", "margin"):
        got = back(getattr(_scores_device, name)(to(p), 1, True, tol, "probs"))
        np.testing.assert_allclose(got, getattr(scores, name)(p), rtol=1e-12, atol=1e-15)
    single = back(_scores_device.margin(to(np.ones((3, 1))), 1, True, tol, "probs"))
    np.testing.assert_array_equal(single, np.zeros(3))
    mc = np.stack([random_probs(rng, 30, 5) for _ in range(4)])
    np.testing.assert_allclose(back(_scores_device.bald(to(mc), 2, True, tol, "mc_probs")), scores.bald(mc),
                               rtol=1e-12, atol=1e-15)
    x = np.array([[1e4, -1e4, 0.0, 1e4], [np.inf, 1.0, np.inf, -np.inf], [-np.inf, 0.0, 1.0, 2.0]])
    np.testing.assert_allclose(back(_scores_device.softmax(to(x), 1, "logits")), scores.softmax(x), **TIGHT)
    logits = rng.standard_normal((7, 5)) * 10
    np.testing.assert_allclose(back(_scores_device.softmax(to(logits), 0, "logits")), scores.softmax(logits, axis=0),
                               **TIGHT)
    s = np.array([-np.inf, -30.0, 0.0, 30.0, np.inf])
    np.testing.assert_allclose(back(_scores_device.sigmoid(to(s), "x")), scores.sigmoid(s), rtol=1e-15)
    values = rng.random(100)
    groups = rng.integers(0, 12, 100)
    for how, fill in (("max", -np.inf), ("mean", np.nan), ("sum", 0.0)):
        dense = back(_scores_device.aggregate(to(values), to(groups), how, 15, fill))
        np.testing.assert_allclose(dense, scores.aggregate(values, groups, how, n_groups=15), rtol=1e-15)
        ids, vals = _scores_device.aggregate(to(values), to(groups), how, None, fill)
        ref_ids, ref_vals = scores.aggregate(values, groups, how)
        np.testing.assert_array_equal(back(ids), ref_ids)
        np.testing.assert_allclose(back(vals), ref_vals, rtol=1e-15)


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_device_path_errors(framework):
    to, _ = FRAMEWORKS[framework]
    good = np.full((3, 4), 0.25)
    bad = good.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"probs must not contain NaN, got nan at row 1, column 2"):
        _scores_device.entropy(to(bad), 1, False, 1e-3, "probs")
    neg = good.copy()
    neg[2] = [0.75, -0.25, 0.25, 0.25]
    with pytest.raises(ValueError, match=r"non-negative probabilities, got -0.25 at row 2, column 1"):
        _scores_device.margin(to(neg), 1, True, 1e-3, "probs")
    with pytest.raises(ValueError, match=r"rows must sum to 1 within 0.001, got 2.0 at row 0"):
        _scores_device.least_confidence(to(good * 2), 1, True, 1e-3, "probs")
    with pytest.raises(ValueError, match=r"logits row 1 is all -inf"):
        _scores_device.softmax(to(np.array([[0.0, 1.0], [-np.inf, -np.inf]])), 1, "logits")
    with pytest.raises(ValueError, match=r"groups must be in \[0, n_groups\) = \[0, 2\), got 5 at index 1"):
        _scores_device.aggregate(to(np.array([1.0, 2.0])), to(np.array([0, 5])), "max", 2, 0.0)
    with pytest.raises(ValueError, match=r"values must not contain NaN"):
        _scores_device.aggregate(to(np.array([1.0, np.nan])), to(np.array([0, 1])), "max", None, 0.0)
    # Float ids beyond int64 used to be cast to int64 anyway (undefined: wrapped ids, merged groups).
    with pytest.raises(ValueError, match=r"^groups must hold integers in the int64 range"):
        _scores_device.aggregate(to(np.array([1.0, 2.0])), to(np.array([0.0, 1e19])), "max", None, 0.0)
    # uint64 ids past the int64 range: a host array (any framework), or a torch uint64 tensor on the
    # torch path (torch's cast to int64 used to wrap them to negative ids without a word).
    big = [np.array([0, 2**63], np.uint64)]
    if framework == "torch-cpu":
        big.append(torch.tensor([0, 2**63], dtype=torch.uint64))
    for groups in big:
        with pytest.raises(ValueError, match=r"^groups has values above the int64 range"):
            _scores_device.aggregate(to(np.array([1.0, 2.0])), groups, "max", None, 0.0)
    small = torch.tensor([7, 3], dtype=torch.uint64) if framework == "torch-cpu" else np.array([7, 3], np.uint64)
    ids, vals = _scores_device.aggregate(to(np.array([1.0, 2.0])), small, "max", None, 0.0)
    np.testing.assert_array_equal(np.asarray(ids), [3, 7])
    np.testing.assert_array_equal(np.asarray(vals), [2.0, 1.0])


# ------------------------------------------------------------------------------------ GPU
def _cuda_cases(rng):
    p = random_probs(rng, 500, 11)
    mc = np.stack([random_probs(rng, 100, 6) for _ in range(5)])
    logits = rng.standard_normal((300, 17)) * 20
    return p, mc, logits


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_torch_cuda_stays_on_device_and_matches_cpu(rng, dtype):
    p, mc, logits = _cuda_cases(rng)
    rtol = 1e-12 if dtype == torch.float64 else 2e-5
    atol = 1e-14 if dtype == torch.float64 else 2e-5
    for fn in (scores.entropy, scores.least_confidence, scores.margin):
        t = torch.tensor(p, dtype=dtype, device="cuda")
        out = fn(t)
        assert out.is_cuda and out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        np.testing.assert_allclose(out.cpu().numpy(), fn(t.cpu()).numpy(), rtol=rtol, atol=atol)
    out = scores.bald(torch.tensor(mc, dtype=dtype, device="cuda"))
    assert out.is_cuda
    np.testing.assert_allclose(out.cpu().numpy(), scores.bald(torch.tensor(mc, dtype=dtype)).numpy(), rtol=rtol,
                               atol=atol)
    for fn in (scores.softmax, scores.sigmoid):
        t = torch.tensor(logits, dtype=dtype, device="cuda")
        out = fn(t)
        assert out.is_cuda
        np.testing.assert_allclose(out.cpu().numpy(), fn(t.cpu()).numpy(), rtol=rtol, atol=atol)
    values = torch.tensor(rng.random(1000), dtype=dtype, device="cuda")
    groups = torch.tensor(rng.integers(0, 50, 1000), device="cuda")
    dense = scores.aggregate(values, groups, "mean", n_groups=60)
    assert dense.is_cuda
    np.testing.assert_allclose(dense.cpu().numpy(), scores.aggregate(values.cpu(), groups.cpu(), "mean",
                                                                    n_groups=60).numpy(), rtol=rtol, atol=atol)


@pytest.mark.gpu
def test_torch_cuda_errors():
    bad = torch.full((3, 4), 0.25, device="cuda")
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"probs must not contain NaN, got nan at row 1, column 2"):
        scores.entropy(bad)
    with pytest.raises(ValueError, match=r"rows must sum to 1"):
        scores.margin(torch.full((3, 4), 0.5, device="cuda"))


@pytest.mark.gpu
def test_cupy_stays_on_device(rng):
    cupy = pytest.importorskip("cupy")
    p, mc, logits = _cuda_cases(rng)
    for fn in (scores.entropy, scores.least_confidence, scores.margin):
        out = fn(cupy.asarray(p))
        assert isinstance(out, cupy.ndarray)
        np.testing.assert_allclose(out.get(), fn(p), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(scores.bald(cupy.asarray(mc)).get(), scores.bald(mc), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(scores.softmax(cupy.asarray(logits)).get(), scores.softmax(logits), rtol=1e-12)


# -------------------------------------------------------------------------------- hypothesis
def _prob_rows(max_c=40):
    shapes = st.tuples(st.integers(1, 30), st.integers(1, max_c))
    weights = st.floats(0.0, 1e6, allow_nan=False, allow_infinity=False)
    return shapes.flatmap(lambda s: hnp.arrays(np.float64, s, elements=weights)).filter(
        lambda a: np.all(a.sum(axis=1) > 0)
    ).map(lambda a: a / a.sum(axis=1, keepdims=True))


@given(_prob_rows())
def test_entropy_is_between_zero_and_log_c(p):
    h = scores.entropy(p)
    c = p.shape[1]
    assert np.all(h >= 0)
    assert np.all(h <= math.log(c) * (1 + 1e-12) + 1e-15)
    np.testing.assert_allclose(h, ref_entropy(p), rtol=1e-12, atol=1e-14)


@given(_prob_rows(12), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_bald_is_nonnegative_and_bounded_by_entropy_of_mean(p, samples, seed):
    rng = np.random.default_rng(seed)
    mc = np.stack([p[rng.permutation(p.shape[0])] for _ in range(samples)])
    b = scores.bald(mc)
    assert np.all(b >= 0)
    assert np.all(b <= ref_entropy(mc.mean(axis=0)) + 1e-12)
    np.testing.assert_allclose(b, np.maximum(ref_bald(mc), 0), rtol=1e-9, atol=1e-12)


@given(
    st.tuples(st.integers(1, 20), st.integers(1, 40)).flatmap(
        lambda s: hnp.arrays(np.float64, s, elements=st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False))
    ),
    st.sampled_from([np.float32, np.float64]),
)
def test_softmax_rows_sum_to_one_at_any_magnitude(x, dtype):
    with np.errstate(over="ignore"):
        x = x.astype(dtype)  # float32: values beyond its range become +-inf, which softmax defines
    if np.any(np.all(x == -np.inf, axis=1)):
        return
    p = scores.softmax(x)
    assert np.all(p >= 0) and np.all(p <= 1)
    np.testing.assert_allclose(p.astype(np.float64).sum(axis=1), 1.0, rtol=0, atol=1e-6 if dtype == np.float32 else 1e-13)
    # the largest logit gets the largest probability (up to the rounding of exp)
    eps = np.finfo(dtype).eps
    top = p[np.arange(len(p)), np.argmax(x, axis=1)]
    assert np.all(top >= p.max(axis=1) * (1 - 4 * eps))


_agg_inputs = st.integers(0, 60).flatmap(
    lambda n: st.tuples(
        hnp.arrays(np.float64, n, elements=st.floats(-1e6, 1e6, allow_nan=False)),
        hnp.arrays(np.int64, n, elements=st.integers(0, 9)),
    )
)


@given(_agg_inputs)
def test_aggregate_sum_equals_add_at(data):
    values, groups = data
    expected = np.zeros(10)
    np.add.at(expected, groups, values)  # float64, index order: the same additions as the core
    np.testing.assert_array_equal(scores.aggregate(values, groups, "sum", n_groups=10), expected)


@given(_agg_inputs, st.integers(0, 2**32 - 1))
def test_aggregate_max_and_mean_are_permutation_invariant(data, seed):
    values, groups = data
    perm = np.random.default_rng(seed).permutation(values.size)
    for how in ("max", "mean"):
        a_ids, a = scores.aggregate(values, groups, how)
        b_ids, b = scores.aggregate(values[perm], groups[perm], how)
        np.testing.assert_array_equal(a_ids, b_ids)
        if how == "max":
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-6)
    counts = np.bincount(groups, minlength=10)
    sums = scores.aggregate(values, groups, "sum", n_groups=10)
    means = scores.aggregate(values, groups, "mean", n_groups=10)
    present = counts > 0
    np.testing.assert_allclose(means[present], sums[present] / counts[present], rtol=1e-15)


def test_aggregate_rejects_0d_values_and_out_of_range_float_groups():
    # The docstring promises ValueError for values that are not 1-D; a 0-d value used to be
    # promoted to shape (1,) and aggregated.
    with pytest.raises(ValueError, match=r"^values must have shape \(N,\), got \(\)"):
        scores.aggregate(np.float32(1.0), [0])
    # Float group ids beyond int64 used to wrap to INT64_MIN (with a RuntimeWarning), merging groups.
    with pytest.raises(ValueError, match=r"^groups must hold integers in the int64 range"):
        scores.aggregate(np.array([0.1, 0.5, 0.3]), np.array([0.0, 1e19, 2.0**63]))
    ids, values = scores.aggregate(np.array([0.1, 0.5, 0.3]), np.array([0.0, -(2.0**63), 0.0]))
    np.testing.assert_array_equal(ids, [np.iinfo(np.int64).min, 0])
    np.testing.assert_array_equal(values, [0.5, 0.3])


def test_tensor_on_meta_device_names_the_argument():
    t = torch.zeros(2, 3, device="meta")
    with pytest.raises(TypeError, match=r"^probs must be a CPU or CUDA tensor, got device meta"):
        scores.entropy(t)
    with pytest.raises(TypeError, match=r"^logits must be a CPU or CUDA tensor, got device meta"):
        scores.softmax(t)


def test_big_endian_uint64_groups_above_int64_are_rejected():
    # The uint64 range check compared the dtype with native uint64, so big-endian '>u8' ids
    # above int64 skipped it and wrapped to negative ids.
    for order in ("<u8", ">u8"):
        with pytest.raises(ValueError, match=r"^groups has values above the int64 range"):
            scores.aggregate(np.array([1.0, 2.0]), np.array([0, 2**63 + 5], order))
    ids, values = scores.aggregate(np.array([1.0, 2.0, 3.0]), np.array([7, 2**63 - 1, 7], ">u8"))
    np.testing.assert_array_equal(ids, [7, 2**63 - 1])
    np.testing.assert_array_equal(values, [3.0, 2.0])


@pytest.mark.parametrize("fn", ["softmax", "sigmoid", "entropy", "bald"])
def test_nested_and_sparse_tensors_name_the_argument(fn):
    # The shape lookup used to hit RuntimeError("Internal error: NestedTensorImpl doesn't support
    # sizes") before any argument check.
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "nested tensors are in prototype stage"
        nested = torch.nested.nested_tensor([torch.full((2, 3), 1 / 3), torch.full((1, 3), 1 / 3)])
    name = {"softmax": "logits", "sigmoid": "x", "entropy": "probs", "bald": "mc_probs"}[fn]
    with pytest.raises(TypeError, match=rf"^{name} must be a dense tensor, got a nested tensor"):
        getattr(scores, fn)(nested)
    with pytest.raises(TypeError, match=rf"^{name} must be a dense tensor, got layout torch.sparse_coo"):
        getattr(scores, fn)(torch.full((2, 2, 3), 1 / 3).to_sparse())
