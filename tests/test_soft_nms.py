"""curata.boxes.soft_nms against ensemble-boxes' soft-NMS and a float64 reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curata import boxes as cb

eb_nms = pytest.importorskip("ensemble_boxes.ensemble_boxes_nms")


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def ref_soft_nms(boxes, scores, iou_threshold=0.3, sigma=0.5, method="linear", score_threshold=0.001):
    """Textbook soft-NMS: IoU in float64, each decayed score stored in the score dtype."""
    b = np.asarray(boxes, dtype=np.float64).tolist()
    s = np.array(scores, copy=True)
    cast = s.dtype.type
    threshold = cast(score_threshold)
    alive = list(range(len(s)))
    keep, kept = [], []
    while alive:
        best = max(alive, key=lambda i: (s[i], -i))
        alive.remove(best)
        if s[best] > threshold:
            keep.append(best)
            kept.append(s[best])
        for j in alive:
            v = _iou(b[best], b[j])
            if method == "linear":
                w = 1.0 - v if v > iou_threshold else 1.0
            else:
                w = math.exp(-(v * v) / sigma)
            s[j] = cast(w * float(s[j]))
    return np.array(keep, dtype=np.int64), np.array(kept, dtype=s.dtype)


def peer_soft_nms(boxes, scores, iou_threshold, sigma, method, score_threshold):
    """ensemble-boxes' kernel; it leaves the decayed scores, in selection order, in its score array."""
    sc = np.array(scores, copy=True)
    keep = eb_nms.cpu_soft_nms_float(np.array(boxes, dtype=np.float64), sc, Nt=iou_threshold, sigma=sigma,
                                     thresh=score_threshold, method=1 if method == "linear" else 2)
    return keep, sc[sc > score_threshold]


def make_boxes(rng, n, clustered, dtype=np.float64):
    if clustered:  # proposals around a few objects: heavy overlap
        k = max(1, n // 20)
        centers = rng.random((k, 2)) * 0.8 + 0.1
        sizes = rng.random((k, 2)) * 0.2 + 0.05
        pick = rng.integers(0, k, n)
        c = centers[pick] + rng.normal(0, 0.02, (n, 2))
        s = sizes[pick] * (1 + rng.normal(0, 0.1, (n, 2)))
    else:
        c = rng.random((n, 2))
        s = rng.random((n, 2)) * 0.1 + 0.005
    b = np.clip(np.concatenate([c - np.abs(s) / 2, c + np.abs(s) / 2], axis=1), 0, 1)
    scores = rng.uniform(0.0, 1.0, n)
    assert len(np.unique(scores)) == n
    return b.astype(dtype), scores.astype(dtype)


def check(boxes, scores, **kw):
    idx, dec = cb.soft_nms(boxes, scores, **kw)
    opts = dict(iou_threshold=0.3, sigma=0.5, method="linear", score_threshold=0.001) | kw
    want_idx, want_dec = ref_soft_nms(boxes, scores, **opts)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(dec, want_dec, rtol=0, atol=1e-6)
    assert dec.dtype == scores.dtype
    if np.all((boxes >= 0) & (boxes <= 1)) and np.all(boxes[:, 2:] > boxes[:, :2]):
        peer_idx, peer_dec = peer_soft_nms(boxes, scores, **opts)
        np.testing.assert_array_equal(idx, peer_idx)
        np.testing.assert_allclose(dec, peer_dec, rtol=0, atol=1e-6)
    return idx, dec


@pytest.mark.parametrize("method", ["linear", "gaussian"])
@pytest.mark.parametrize("clustered", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_ensemble_boxes_and_reference(method, clustered, dtype):
    rng = np.random.default_rng(hash((method, clustered)) % 2**32)
    for n in (1, 7, 60, 250):  # 250 takes the grid + heap path
        boxes, scores = make_boxes(rng, n, clustered, dtype)
        check(boxes, scores, method=method, iou_threshold=float(rng.choice([0.1, 0.3, 0.6])),
              sigma=float(rng.choice([0.1, 0.5, 2.0])), score_threshold=float(rng.choice([0.001, 0.1, 0.5])))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 220), clustered=st.booleans(),
       method=st.sampled_from(["linear", "gaussian"]), thr=st.sampled_from([0.0, 0.3, 0.7]),
       score_threshold=st.sampled_from([0.0, 0.001, 0.2]))
def test_fuzz(seed, n, clustered, method, thr, score_threshold):
    rng = np.random.default_rng(seed)
    boxes, scores = make_boxes(rng, n, clustered)
    idx, dec = check(boxes, scores, method=method, iou_threshold=thr, score_threshold=score_threshold)
    # Laws: a subset, by non-increasing score, decayed scores never above the originals.
    assert len(set(idx.tolist())) == len(idx)
    assert np.all(np.diff(dec) <= 0)
    assert np.all(dec <= scores[idx])
    assert np.all(dec > score_threshold)


def test_returns_ensemble_boxes_kept_boxes_per_label():
    """The public ensemble_boxes.soft_nms keeps the same boxes (it returns their undecayed scores)."""
    rng = np.random.default_rng(4)
    boxes, scores = make_boxes(rng, 120, True)
    labels = rng.integers(0, 3, 120)
    for method, code in (("linear", 1), ("gaussian", 2)):
        pb, ps, pl = eb_nms.soft_nms([boxes], [scores], [labels], method=code, iou_thr=0.3, sigma=0.5, thresh=0.01)
        idx, dec = cb.soft_nms(boxes, scores, 0.3, 0.5, method, 0.01, classes=labels)
        assert np.all(np.diff(dec) <= 0)
        order = np.concatenate([idx[labels[idx] == lab] for lab in np.unique(labels)])
        np.testing.assert_array_equal(boxes[order], pb)
        np.testing.assert_array_equal(scores[order], ps)
        np.testing.assert_array_equal(labels[order], pl)


def test_linear_decay_and_thresholds():
    a = [0.0, 0.0, 0.5, 0.5]
    b = [0.0, 0.0, 0.5, 0.25]  # IoU(a, b) = 0.5 exactly
    c = [0.0, 0.0, 0.5, 0.375]  # IoU(a, c) = 0.75, IoU(b, c) = 2/3
    boxes = np.array([a, b, c])
    scores = np.array([0.9, 0.8, 0.7])
    idx, dec = cb.soft_nms(boxes, scores, iou_threshold=0.5, method="linear", score_threshold=0.0)
    # a selected; b (IoU == threshold) untouched; c decays to 0.7 * 0.25 = 0.175; then b decays c
    # again by 1 - 2/3.
    np.testing.assert_array_equal(idx, [0, 1, 2])
    np.testing.assert_allclose(dec, [0.9, 0.8, 0.7 * 0.25 * (1 - 2 / 3)])
    # A score equal to the threshold is dropped.
    idx, dec = cb.soft_nms(boxes, scores, iou_threshold=0.5, score_threshold=0.8)
    np.testing.assert_array_equal(idx, [0])


def test_gaussian_keeps_disjoint_scores_bit_for_bit():
    boxes = np.array([[0.0, 0.0, 0.1, 0.1], [0.5, 0.5, 0.6, 0.6], [0.05, 0.05, 0.15, 0.15]])
    scores = np.array([0.3, 0.9, 0.6], dtype=np.float32)
    idx, dec = cb.soft_nms(boxes, scores, method="gaussian", sigma=0.5)
    np.testing.assert_array_equal(idx, [1, 2, 0])
    assert dec[0] == scores[1] and dec[1] == scores[2]
    v = (0.05 * 0.05) / (0.02 - 0.05 * 0.05)
    assert dec[2] == pytest.approx(0.3 * math.exp(-v * v / 0.5), rel=1e-6)
    assert dec.dtype == np.float32


def test_equal_scores_take_the_lower_index_first():
    boxes = np.array([[0.0, 0.0, 1.0, 1.0]] * 3)
    idx, dec = cb.soft_nms(boxes, np.array([0.5, 0.5, 0.5]), method="gaussian", score_threshold=0.0)
    np.testing.assert_array_equal(idx, [0, 1, 2])
    # curata's exp is within 1 ulp of libm's
    np.testing.assert_allclose(dec, [0.5, 0.5 * math.exp(-2), 0.5 * math.exp(-4)], rtol=1e-15)


def test_empty_single_zero_area_and_negative_threshold():
    idx, dec = cb.soft_nms(np.zeros((0, 4)), np.zeros(0))
    assert idx.shape == (0,) and idx.dtype == np.int64 and dec.shape == (0,)
    idx, dec = cb.soft_nms(np.array([[0.1, 0.1, 0.2, 0.2]]), np.array([0.5]))
    np.testing.assert_array_equal(idx, [0])
    # Zero-area boxes overlap nothing and are kept (ensemble-boxes drops them beforehand).
    idx, dec = cb.soft_nms(np.array([[0.1, 0.1, 0.1, 0.3], [0.0, 0.0, 0.5, 0.5]]), np.array([0.4, 0.9]))
    np.testing.assert_array_equal(idx, [1, 0])
    np.testing.assert_array_equal(dec, [0.9, 0.4])
    # Pixel coordinates are fine (no clipping); a negative threshold keeps negative scores.
    rng = np.random.default_rng(2)
    boxes, scores = make_boxes(rng, 150, True)
    check(boxes * 640, scores - 0.5, score_threshold=-0.3, method="gaussian")
    check(boxes, scores, score_threshold=-0.1, method="linear")  # no pruning, heap path


def test_results_are_in_selection_order_which_negative_scores_make_non_descending():
    # Decay raises a negative score toward 0: b (-0.5) overlaps a (-0.1) with IoU 0.99 and becomes
    # -0.005 after a is selected, above a. The result is the selection order (ensemble-boxes' and
    # the reference's), not a re-sort by decayed score.
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.99], [0.5, 0.5, 0.6, 0.6]])
    scores = np.array([-0.1, -0.5, -0.2])
    idx, dec = check(boxes, scores, score_threshold=-1.0)
    np.testing.assert_array_equal(idx, [0, 1, 2])
    np.testing.assert_allclose(dec, [-0.1, -0.5 * (1 - 0.99), -0.2], rtol=1e-12)
    assert dec[1] > dec[0]


def test_groups_equal_separate_calls():
    rng = np.random.default_rng(9)
    boxes, scores = make_boxes(rng, 300, True)
    classes = rng.integers(0, 3, 300)
    images = rng.integers(10, 14, 300)
    idx, dec = cb.soft_nms(boxes, scores, classes=classes, image_ids=images)
    assert np.all(np.diff(images[idx]) >= 0)
    for im in np.unique(images):
        sel = idx[images[idx] == im]
        parts = []
        for c in np.unique(classes):
            where = np.flatnonzero((images == im) & (classes == c))
            i, d = cb.soft_nms(boxes[where], scores[where])
            parts += list(zip(-d, where[i]))
        np.testing.assert_array_equal(sel, [i for _, i in sorted(parts)])


def test_inputs_not_mutated_torch_and_non_contiguous():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    boxes, scores = make_boxes(rng, 120, True, np.float32)
    b0, s0 = boxes.copy(), scores.copy()
    want = cb.soft_nms(boxes, scores)
    np.testing.assert_array_equal(boxes, b0)
    np.testing.assert_array_equal(scores, s0)
    tb, ts = torch.from_numpy(boxes), torch.from_numpy(scores)
    got = cb.soft_nms(tb, ts)
    assert isinstance(got[0], torch.Tensor) and got[1].dtype == torch.float32
    np.testing.assert_array_equal(got[0].numpy(), want[0])
    wide = np.repeat(boxes, 2, axis=1)[:, ::2]
    assert not wide.flags.c_contiguous
    np.testing.assert_array_equal(cb.soft_nms(wide, scores)[0], want[0])
    half = cb.soft_nms(boxes.astype(np.float16), scores.astype(np.float16))
    assert half[1].dtype == np.float32
    # Scores keep their dtype whatever the boxes' dtype (ensemble-boxes decays in its score array).
    mixed = cb.soft_nms(boxes.astype(np.float64), scores)
    assert mixed[1].dtype == np.float32
    np.testing.assert_array_equal(mixed[1], peer_soft_nms(boxes.astype(np.float64), scores, 0.3, 0.5, "linear",
                                                          0.001)[1])


def test_bad_input():
    b = np.array([[0.1, 0.1, 0.2, 0.2]])
    s = np.array([0.5])
    with pytest.raises(ValueError, match="sigma must be > 0"):
        cb.soft_nms(b, s, sigma=0)
    with pytest.raises(ValueError, match="sigma must be finite"):
        cb.soft_nms(b, s, sigma=float("nan"))
    with pytest.raises(ValueError, match="method must be one of"):
        cb.soft_nms(b, s, method="hard")
    with pytest.raises(ValueError, match="iou_threshold must be in"):
        cb.soft_nms(b, s, iou_threshold=-0.1)
    with pytest.raises(ValueError, match="scores must be finite"):
        cb.soft_nms(b, np.array([np.nan]))
    with pytest.raises(ValueError, match="scores must be finite"):
        cb.soft_nms(b, np.array([np.inf]))
    with pytest.raises(ValueError, match=r"scores must have shape \(1,\)"):
        cb.soft_nms(b, np.array([0.5, 0.4]))
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\)"):
        cb.soft_nms(np.zeros((1, 3)), s)
    with pytest.raises(ValueError, match="boxes must satisfy x1 <= x2"):
        cb.soft_nms(np.array([[0.3, 0.1, 0.2, 0.2]]), s)
    with pytest.raises(ValueError, match="classes must have length 1"):
        cb.soft_nms(b, s, classes=[0, 1])
    with pytest.raises(TypeError, match="score_threshold must be a number"):
        cb.soft_nms(b, s, score_threshold="0.1")


def test_thread_count_does_not_change_results():
    import curata

    rng = np.random.default_rng(23)
    boxes, scores = make_boxes(rng, 6000, False)  # > 4096 boxes in many groups: two threads
    classes = rng.integers(0, 4, 6000)
    images = rng.integers(0, 8, 6000)
    results = []
    try:
        for threads in (1, 2):
            curata.set_num_threads(threads)
            results.append(cb.soft_nms(boxes, scores, method="gaussian", classes=classes, image_ids=images))
    finally:
        curata.set_num_threads(0)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["linear", "gaussian"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_portable_loops_equal_avx512_loops(method, dtype):
    # On an AVX-512 machine the argmax and the candidate gather run hand-written AVX-512 code;
    # their portable twins (what other CPUs run) must give the same boxes and bits. Scores are
    # rounded so equal maxima (the tie rule) occur, and groups span the small and large paths.
    from curata import _core

    rng = np.random.default_rng(31)
    cases = []
    for n, clustered in ((40, True), (700, True), (700, False), (2500, False)):
        boxes, scores = make_boxes(rng, n, clustered, dtype)
        cases.append((boxes, np.round(scores, 2).astype(dtype)))
    results = []
    previous = _core._set_hand_kernels(False)
    try:
        for enabled in (False, True):
            _core._set_hand_kernels(enabled)
            results.append([cb.soft_nms(b, s, method=method, score_threshold=0.01) for b, s in cases])
    finally:
        _core._set_hand_kernels(previous)
    for (idx_a, dec_a), (idx_b, dec_b) in zip(*results):
        np.testing.assert_array_equal(idx_a, idx_b)
        np.testing.assert_array_equal(dec_a, dec_b)
    for (boxes, scores), (idx, dec) in zip(cases[:2], results[0]):  # the reference is O(n^2) Python
        ref_idx, ref_dec = ref_soft_nms(boxes, scores, method=method, score_threshold=0.01)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_allclose(dec, ref_dec, rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("method", ["linear", "gaussian"])
def test_group_extent_beyond_float64_range_does_not_crash(method):
    # Finite boxes near ±1.7e308 make the grid's extent max_x - min_x overflow to inf: its scale
    # became 0, (x - min_x) * 0 was NaN for the far box, and static_cast<int>(NaN) indexed the
    # grid out of bounds (a segfault). The grid must fall back to one cell there.
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 1000, (150, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (150, 2))], axis=1)
    boxes[0] = [-1.7e308, 0.0, -1.6e308, 1.0]
    boxes[1] = [1.6e308, 0.0, 1.7e308, 1.0]
    scores = rng.random(150)
    idx, dec = cb.soft_nms(boxes, scores, method=method)
    ref_idx, ref_dec = ref_soft_nms(boxes, scores, method=method)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dec, ref_dec, rtol=1e-12)


def test_group_extent_of_subnormal_size_does_not_crash():
    # The other way to a non-finite grid scale: cells / extent overflows to inf for an extent of
    # ~1e-310, and (x - min_x) * inf is NaN at x == min_x (same out-of-bounds cast before the fix).
    rng = np.random.default_rng(4)
    xy = rng.uniform(0, 1, (150, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0.01, 0.1, (150, 2))], axis=1) * 1e-310
    scores = rng.random(150)
    idx, dec = cb.soft_nms(boxes, scores, method="gaussian")
    ref_idx, ref_dec = ref_soft_nms(boxes, scores, method="gaussian")
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dec, ref_dec, rtol=1e-12)
