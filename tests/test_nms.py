"""curata.boxes.nms / batched_nms against a plain greedy numpy reference and torchvision's
algorithm written in torch (see box_reference.py), plus boundaries, ties, bad input and fuzzing."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import curata
from curata import boxes as cb
from box_reference import (
    ULTRALYTICS_MAX_WH,
    batched_nms_ref,
    iou_pairs_ref,
    iou_ref,
    nms_ref,
    torch_batched_nms_offset,
    torch_nms,
)

FLOATS = (np.float32, np.float64)


def random_boxes(rng, n, dtype=np.float32, scale=100.0, size=30.0):
    xy = rng.uniform(0, scale, size=(n, 2))
    wh = rng.uniform(0, size, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


def assert_keep_equal(got, expected):
    got = np.asarray(got)
    assert got.dtype == np.int64, got.dtype
    np.testing.assert_array_equal(got, np.asarray(expected, dtype=np.int64))


# ------------------------------------------------------------------------ IoU at threshold
def pairs_near(value: float, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Box pairs (first, second) whose IoU in ``dtype`` lands on and around ``value``."""
    v = dtype(value)
    k = np.arange(-300, 300).astype(dtype)
    firsts, seconds = [], []
    for base in (1, 3, 5, 7):
        b = dtype(base)
        # [0, 0, b, 1] inside [0, 0, b, h]: IoU = b / (b * h)
        h0 = dtype(1) / v
        hs = h0 + k * np.spacing(h0)
        tall = np.zeros((len(hs), 4), dtype)
        tall[:, 2], tall[:, 3] = b, hs
        # [0, 0, b, 1] and the same box shifted by x: IoU = (b - x) / (b + x)
        x0 = b * (dtype(1) - v) / (dtype(1) + v)
        xs = x0 + k * np.spacing(x0)
        shifted = np.zeros((len(xs), 4), dtype)
        shifted[:, 0], shifted[:, 2], shifted[:, 3] = xs, xs + b, 1
        first = np.zeros((2 * len(k), 4), dtype)
        first[:, 2], first[:, 3] = b, 1
        firsts.append(first)
        seconds.append(np.concatenate([tall, shifted]))
    return np.concatenate(firsts), np.concatenate(seconds)


def test_iou_exactly_at_threshold_is_not_suppressed():
    for dtype in FLOATS:
        boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 2]], dtype=dtype)
        assert cb.iou(boxes[:1], boxes[1:])[0, 0] == 0.5
        scores = np.array([0.9, 0.8], dtype=dtype)
        assert_keep_equal(cb.nms(boxes, scores, 0.5), [0, 1])
        assert_keep_equal(cb.nms(boxes, scores, np.nextafter(0.5, 0.0)), [0])
        assert_keep_equal(cb.nms(boxes, scores, np.nextafter(0.5, 1.0)), [0, 1])
        assert_keep_equal(cb.batched_nms(boxes, scores, [3, 3], 0.5), [0, 1])
        assert_keep_equal(cb.batched_nms(boxes, scores, [3, 3], np.nextafter(0.5, 0.0)), [0])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.45, 0.5, 0.7, 1 / 3, 0.9, 0.05, 0.95, 0.25])
def test_threshold_decided_in_float64_on_the_computed_iou(threshold, dtype):
    """The IoU is computed in the box dtype and compared with the Python float threshold in
    float64: for float32 and a threshold like 0.1 (float32(0.1) > 0.1) a pair whose float32 IoU is
    float32(0.1) must be suppressed, for 0.7 (float32(0.7) < 0.7) it must not."""
    firsts, seconds = pairs_near(threshold, dtype)
    ious = iou_pairs_ref(firsts, seconds, dtype)
    v = dtype(threshold)
    targets = [np.nextafter(v, dtype(0)), v, np.nextafter(v, dtype(1))]
    hit = [np.flatnonzero(ious == t) for t in targets]
    assert sum(len(h) > 0 for h in hit) >= 2, "the search should land around the threshold"
    decisions = set()
    for indices in hit:
        for i in indices[:3]:
            boxes = np.stack([firsts[i], seconds[i]])
            scores = np.array([0.9, 0.8], dtype)
            suppressed = float(ious[i]) > threshold
            decisions.add(suppressed)
            expected = [0] if suppressed else [0, 1]
            assert_keep_equal(cb.nms(boxes, scores, threshold), expected)
            assert_keep_equal(cb.nms(boxes[::-1].copy(), scores, threshold), expected)
            assert_keep_equal(cb.batched_nms(boxes, scores, [1, 1], threshold), expected)
            assert_keep_equal(nms_ref(boxes, scores, threshold), expected)
            got_torch = torch_nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy()
            assert_keep_equal(got_torch, expected)
    assert decisions == {True, False}


def test_threshold_zero_and_one():
    boxes = np.array([[0, 0, 1, 1], [1, 0, 2, 1], [0.5, 0, 1.5, 1], [0, 0, 1, 1]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    # 0: any positive overlap suppresses; touching boxes (IoU 0) do not.
    assert_keep_equal(cb.nms(boxes, scores, 0.0), [0, 1])
    # 1: nothing can exceed 1, even an identical box.
    assert_keep_equal(cb.nms(boxes, scores, 1.0), [0, 1, 2, 3])
    assert_keep_equal(cb.nms(boxes, scores, 1), [0, 1, 2, 3])  # int threshold accepted


# ------------------------------------------------------------------ scores, ties, max_det
def test_score_threshold_drops_scores_at_or_below():
    boxes = np.array([[10 * i, 0, 10 * i + 5, 5] for i in range(6)], dtype=np.float64)
    scores = np.array([0.5, 0.25, 0.2500001, 0.1, 0.9, 0.25])
    assert_keep_equal(cb.nms(boxes, scores, 0.5, score_threshold=0.25), [4, 0, 2])
    assert_keep_equal(cb.nms(boxes, scores, 0.5, score_threshold=-np.inf), [4, 0, 2, 1, 5, 3])
    assert_keep_equal(cb.nms(boxes, scores, 0.5, score_threshold=np.inf), [])
    assert_keep_equal(cb.nms(boxes, scores, 0.5, score_threshold=1), [])
    assert_keep_equal(cb.nms(boxes, scores, 0.5, score_threshold=np.float32(0.25)), [4, 0, 2])


def test_score_threshold_compared_in_float64_with_float32_scores():
    boxes = np.array([[0, 0, 1, 1], [2, 0, 3, 1], [4, 0, 5, 1]], np.float32)
    scores = np.array([0.1, 0.7, 0.5], np.float32)  # float32(0.1) > 0.1, float32(0.7) < 0.7
    assert_keep_equal(cb.nms(boxes, scores, 0.5, score_threshold=0.1), [1, 2, 0])
    assert_keep_equal(cb.nms(boxes, scores, 0.5, score_threshold=0.7), [])
    assert_keep_equal(cb.nms(boxes, scores, 0.5, score_threshold=float(np.float32(0.7))), [])
    assert_keep_equal(cb.nms(boxes, scores, 0.5, score_threshold=np.nextafter(float(np.float32(0.7)), 0)), [1])


def test_ties_go_to_lower_index_and_signed_zero_ties():
    boxes = np.array([[0, 0, 10, 10]] * 4 + [[100, 100, 110, 110]] * 3, np.float32)
    scores = np.array([0.5, 0.5, 0.7, 0.7, 0.0, -0.0, 0.0], np.float32)
    # duplicates: among equal scores the lowest index survives; -0.0 ties with 0.0.
    assert_keep_equal(cb.nms(boxes, scores, 0.5), [2, 4])
    assert_keep_equal(cb.nms(boxes, scores, 1.0), [2, 3, 0, 1, 4, 5, 6])
    scores = np.array([0.5, 0.5, 0.7, 0.7, -0.0, 0.0, 0.0], np.float32)
    assert_keep_equal(cb.nms(boxes, scores, 0.5), [2, 4])


def test_infinite_scores_are_ranked():
    boxes = np.array([[10 * i, 0, 10 * i + 5, 5] for i in range(5)], np.float64)
    scores = np.array([0.0, np.inf, -np.inf, 1.0, np.inf])
    assert_keep_equal(cb.nms(boxes, scores), [1, 4, 3, 0, 2])
    assert_keep_equal(cb.nms(boxes, scores, score_threshold=0.5), [1, 4, 3])


def test_max_det(rng):
    boxes = random_boxes(rng, 60, np.float32)
    scores = rng.random(60).astype(np.float32)
    full = cb.nms(boxes, scores, 0.3)
    assert len(full) > 5
    assert_keep_equal(full, nms_ref(boxes, scores, 0.3))
    for k in (0, 1, 5, len(full), len(full) + 10):
        assert_keep_equal(cb.nms(boxes, scores, 0.3, max_det=k), full[:k])
    assert_keep_equal(cb.nms(boxes, scores, 0.3, max_det=np.int64(3)), full[:3])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [40, 300, 1500])
def test_matches_references_on_random_inputs_with_ties(rng, n, dtype):
    # n >= 256 runs the radix-sort path; a small score set gives many ties; a few duplicates.
    boxes = random_boxes(rng, n, dtype)
    boxes[n // 2 : n // 2 + 10] = boxes[:10]
    scores = rng.choice(np.linspace(0, 1, 23), size=n).astype(dtype)
    scores[::7] *= -1  # negative scores and a -0.0 among them
    for thr in (0.0, 0.3, 0.5, 0.7):
        got = cb.nms(boxes, scores, thr)
        assert_keep_equal(got, nms_ref(boxes, scores, thr))
        assert_keep_equal(got, torch_nms(torch.from_numpy(boxes), torch.from_numpy(scores), thr).numpy())


def test_large_input_against_torchvision_algorithm(rng):
    n = 4000
    boxes = random_boxes(rng, n, np.float32, scale=600, size=80)
    scores = rng.random(n).astype(np.float32)
    got = cb.nms(boxes, scores, 0.45)
    assert_keep_equal(got, torch_nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.45).numpy())


def test_empty_inputs():
    for dtype in FLOATS:
        out = cb.nms(np.zeros((0, 4), dtype), np.zeros(0, dtype))
        assert out.shape == (0,) and out.dtype == np.int64
        out = cb.batched_nms(np.zeros((0, 4), dtype), np.zeros(0, dtype), np.zeros(0, np.int64))
        assert out.shape == (0,) and out.dtype == np.int64
        out = cb.nms(np.zeros((0, 4), dtype), np.zeros(0, dtype), image_ids=np.zeros(0, np.int64))
        assert out.shape == (0,) and out.dtype == np.int64
        assert cb.batched_nms(np.zeros((0, 5, 4), dtype), np.zeros((0, 5), dtype), None) == []
        parts = cb.batched_nms(np.zeros((3, 0, 4), dtype), np.zeros((3, 0), dtype), np.zeros((3, 0), np.int64))
        assert len(parts) == 3 and all(p.shape == (0,) and p.dtype == np.int64 for p in parts)
    # everything below the score threshold
    out = cb.nms(np.array([[0, 0, 1, 1]], np.float32), np.array([0.1], np.float32), score_threshold=0.5)
    assert out.shape == (0,) and out.dtype == np.int64
    empty = cb.nms(torch.zeros(0, 4), torch.zeros(0))
    assert isinstance(empty, torch.Tensor) and empty.dtype == torch.int64 and empty.shape == (0,)


def test_degenerate_boxes_never_suppress_and_are_kept():
    boxes = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 5], [0, 0, 2, 2]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    # IoU of empty boxes is 0 (union 0 or inter 0): nothing suppresses anything, even at 0.0.
    assert_keep_equal(cb.nms(boxes, scores, 0.0), [0, 1, 2, 3])


# ------------------------------------------------------------------------------ image_ids
def test_image_ids_grouped_ascending_and_max_det_per_image(rng):
    n = 120
    boxes = random_boxes(rng, n, np.float32, scale=60)
    scores = rng.choice(np.linspace(0, 1, 11), size=n).astype(np.float32)
    image_ids = rng.choice([7, -3, 1000, 2], size=n)
    for max_det in (None, 0, 2, 5):
        got = cb.nms(boxes, scores, 0.4, max_det=max_det, image_ids=image_ids)
        expected = batched_nms_ref(boxes, scores, None, 0.4, None, max_det, image_ids)
        assert_keep_equal(got, expected)
        # ascending image id groups, descending scores inside
        imgs = image_ids[got]
        assert np.all(np.diff(imgs) >= 0)
        for image in np.unique(imgs):
            s = scores[got[imgs == image]]
            assert np.all(np.diff(s) <= 0)
            if max_det is not None:
                assert (imgs == image).sum() <= max_det


def test_image_ids_accept_integer_valued_floats_and_other_int_dtypes(rng):
    boxes = random_boxes(rng, 30, np.float64)
    scores = rng.random(30)
    ids = rng.integers(0, 3, size=30)
    expected = cb.nms(boxes, scores, 0.3, image_ids=ids)
    variants = (ids.astype(np.float64), ids.astype(np.uint8), ids.astype(np.int32), ids.tolist(), torch.tensor(ids))
    for variant in variants:
        assert_keep_equal(cb.nms(boxes, scores, 0.3, image_ids=variant), expected)


def test_extreme_ids_are_grouped_correctly(rng):
    n = 50
    boxes = np.tile(np.array([[0, 0, 10, 10]], np.float64), (n, 1))  # all identical
    scores = rng.random(n)
    ids = rng.choice([np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max], size=n)
    got = cb.batched_nms(boxes, scores, ids, 0.5)
    assert_keep_equal(got, batched_nms_ref(boxes, scores, ids, 0.5))
    assert len(got) == len(np.unique(ids))
    got = cb.nms(boxes, scores, 0.5, image_ids=ids)
    assert_keep_equal(got, batched_nms_ref(boxes, scores, None, 0.5, None, None, ids))


# ---------------------------------------------------------------------------- batched_nms
def per_class_loop(boxes, scores, classes, thr, score_threshold=None, max_det=None):
    """batched_nms as documented: nms (curata's own) per class, merged by score desc, index asc."""
    kept = []
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        kept.extend(members[cb.nms(boxes[members], scores[members], thr, score_threshold)].tolist())
    kept.sort(key=lambda i: (-float(scores[i]), i))
    return np.asarray(kept if max_det is None else kept[:max_det], dtype=np.int64)


@pytest.mark.parametrize("dtype", FLOATS)
def test_batched_nms_equals_per_class_loop_and_reference(rng, dtype):
    n = 400
    boxes = random_boxes(rng, n, dtype, scale=80)
    scores = rng.choice(np.linspace(0, 1, 17), size=n).astype(dtype)
    classes = rng.integers(0, 6, size=n)
    for thr, st_, md in [(0.5, None, None), (0.3, 0.2, None), (0.6, None, 7), (0.0, 0.5, 3)]:
        got = cb.batched_nms(boxes, scores, classes, thr, st_, md)
        assert_keep_equal(got, per_class_loop(boxes, scores, classes, thr, st_, md))
        assert_keep_equal(got, batched_nms_ref(boxes, scores, classes, thr, st_, md))
    assert_keep_equal(cb.batched_nms(boxes, scores, None, 0.5), cb.nms(boxes, scores, 0.5))


def test_batched_nms_agrees_with_offset_trick_on_exact_small_coordinates(rng):
    # Coordinates on a 1/16 grid below 640 and offsets k * 7680 stay exact in float32, so the
    # coordinate-offset trick (torchvision / Ultralytics) decides exactly like per-class NMS.
    n = 500
    boxes = np.round(random_boxes(rng, n, np.float64, scale=500, size=120) * 16) / 16
    boxes = boxes.astype(np.float32)
    scores = rng.random(n).astype(np.float32)
    classes = rng.integers(0, 80, size=n)
    expected = torch_batched_nms_offset(
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), 0.45, ULTRALYTICS_MAX_WH
    ).numpy()
    assert_keep_equal(cb.batched_nms(boxes, scores, classes, 0.45), expected)


def test_batched_nms_stays_exact_where_offset_trick_fails():
    # Class 1's box shifted by 7680 lands on class 0's box: the offset trick suppresses it.
    boxes = np.array([[7700, 7700, 7800, 7800], [20, 20, 120, 120]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    classes = np.array([0, 1])
    offset = torch_batched_nms_offset(
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), 0.5, ULTRALYTICS_MAX_WH
    ).numpy()
    assert_keep_equal(offset, [0])
    assert_keep_equal(cb.batched_nms(boxes, scores, classes, 0.5), [0, 1])
    assert_keep_equal(batched_nms_ref(boxes, scores, classes, 0.5), [0, 1])
    # float32 rounding at large offsets: a same-class pair at IoU 0.50003 with class id 1000 is
    # shifted by 7.68e6, where float32 spacing is 0.5; the shifted pair no longer overlaps enough
    # and the offset trick keeps both. Per-class NMS does not depend on the class id.
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 1.9999]], np.float32)
    for cls in (0, 1000, 3000, -5, 2**40):
        assert_keep_equal(cb.batched_nms(boxes, scores, np.array([cls, cls]), 0.5), [0])
    offset = torch_batched_nms_offset(
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.tensor([1000, 1000]), 0.5, ULTRALYTICS_MAX_WH
    ).numpy()
    assert_keep_equal(offset, [0, 1])


def test_batched_nms_class_dtypes_and_large_ranges(rng):
    n = 300
    boxes = random_boxes(rng, n, np.float64, scale=50)
    scores = rng.random(n)
    classes = rng.integers(0, 4, size=n)
    expected = cb.batched_nms(boxes, scores, classes, 0.5)
    assert_keep_equal(expected, batched_nms_ref(boxes, scores, classes, 0.5))
    for variant in (classes.astype(np.uint8), classes.astype(np.int32), classes.astype(np.float32), classes.tolist()):
        assert_keep_equal(cb.batched_nms(boxes, scores, variant, 0.5), expected)
    # Remapping classes to a huge, negative or sparse range must not change anything
    # (exercises the comparison-sort grouping path).
    for mapping in ([-(2**62), 5, 2**62, 17], [10**12, 0, -1, 10**6]):
        remapped = np.asarray(mapping, dtype=np.int64)[classes]
        assert_keep_equal(cb.batched_nms(boxes, scores, remapped, 0.5), expected)


def test_batched_nms_with_image_ids_is_per_image_and_class(rng):
    n = 300
    boxes = random_boxes(rng, n, np.float32, scale=50)
    scores = rng.choice(np.linspace(0, 1, 9), size=n).astype(np.float32)
    classes = rng.integers(0, 5, size=n)
    image_ids = rng.integers(0, 4, size=n) * 3
    for md in (None, 4):
        got = cb.batched_nms(boxes, scores, classes, 0.4, max_det=md, image_ids=image_ids)
        assert_keep_equal(got, batched_nms_ref(boxes, scores, classes, 0.4, None, md, image_ids))


# ------------------------------------------------------------------------------- 3-D input
def test_batched_3d_with_valid_mask_ignores_garbage_padding(rng):
    b, n = 5, 40
    boxes = random_boxes(rng, b * n, np.float32, scale=60).reshape(b, n, 4)
    scores = rng.choice(np.linspace(0, 1, 13), size=(b, n)).astype(np.float32)
    classes = rng.integers(0, 3, size=(b, n))
    valid = rng.random((b, n)) < 0.7
    valid[2] = False  # an image with nothing valid
    boxes[~valid] = np.array([np.nan, np.inf, -5, -np.inf], np.float32)  # garbage padding
    scores[~valid] = np.nan
    for cls, md in [(None, None), (classes, None), (classes, 3)]:
        got = cb.batched_nms(boxes, scores, cls, 0.5, max_det=md, valid=valid)
        assert isinstance(got, list) and len(got) == b
        for i in range(b):
            members = np.flatnonzero(valid[i])
            c = None if cls is None else cls[i][members]
            expected = members[batched_nms_ref(boxes[i][members], scores[i][members], c, 0.5, None, md)]
            assert_keep_equal(got[i], expected)
        assert got[2].shape == (0,)


def test_batched_3d_padding_classes_may_be_garbage():
    boxes = np.zeros((2, 3, 4))
    boxes[:, :, 2:] = 1
    boxes[0, 2] = np.nan
    scores = np.array([[0.9, 0.8, np.nan], [0.7, 0.6, 0.5]])
    valid = np.array([[True, True, False], [True, True, True]])
    classes = np.array([[0.0, 1.0, np.nan], [2.0, 2.0, 3.0]])
    got = cb.batched_nms(boxes, scores, classes, 0.5, valid=valid)
    assert_keep_equal(got[0], [0, 1])
    assert_keep_equal(got[1], [0, 2])
    with pytest.raises(ValueError, match=r"^classes must hold integers"):
        cb.batched_nms(boxes, scores, classes, 0.5, valid=np.ones((2, 3), bool))


def test_batched_3d_equals_flat_with_image_ids(rng):
    b, n = 4, 50
    boxes = random_boxes(rng, b * n, np.float64, scale=60)
    scores = rng.random(b * n)
    classes = rng.integers(0, 4, size=b * n)
    image_ids = np.repeat(np.arange(b), n)
    flat = cb.batched_nms(boxes, scores, classes, 0.5, 0.1, 6, image_ids=image_ids)
    parts = cb.batched_nms(boxes.reshape(b, n, 4), scores.reshape(b, n), classes.reshape(b, n), 0.5, 0.1, 6)
    assert_keep_equal(np.concatenate([p + i * n for i, p in enumerate(parts)]), flat)
    parts_valid = cb.batched_nms(
        boxes.reshape(b, n, 4), scores.reshape(b, n), classes.reshape(b, n), 0.5, 0.1, 6, valid=np.ones((b, n), bool)
    )
    for p, q in zip(parts, parts_valid):
        assert_keep_equal(p, q)


def test_batched_3d_torch_in_torch_out(rng):
    boxes = torch.from_numpy(random_boxes(rng, 2 * 10, np.float32).reshape(2, 10, 4))
    scores = torch.rand(2, 10, generator=torch.Generator().manual_seed(0))
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[1, 3:] = False
    parts = cb.batched_nms(boxes, scores, None, 0.5, valid=valid)
    assert all(isinstance(p, torch.Tensor) and p.dtype == torch.int64 for p in parts)
    for i in range(2):
        members = np.flatnonzero(valid[i].numpy())
        expected = members[nms_ref(boxes[i].numpy()[members], scores[i].numpy()[members], 0.5)]
        assert_keep_equal(parts[i].numpy(), expected)


# ------------------------------------------------------------------------------ bad input
GOOD_B = np.array([[0, 0, 1, 1], [0, 0, 2, 2]], np.float32)
GOOD_S = np.array([0.9, 0.8], np.float32)


@pytest.mark.parametrize("fn", ["nms", "batched_nms"])
def test_bad_shapes_and_lengths(fn):
    call = (lambda b, s, **k: cb.nms(b, s, **k)) if fn == "nms" else (lambda b, s, **k: cb.batched_nms(b, s, None, **k))
    for shape in [(), (4,), (2, 5), (2, 3), (2, 2, 5), (1, 1, 1, 4)]:
        with pytest.raises(ValueError, match=r"^boxes must have shape"):
            call(np.zeros(shape, np.float32), GOOD_S)
    with pytest.raises(ValueError, match=r"^scores must have shape \(2,\), got \(3,\)"):
        call(GOOD_B, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"^scores must have shape \(2,\), got \(2, 1\)"):
        call(GOOD_B, GOOD_S[:, None])
    with pytest.raises(ValueError, match=r"^scores must have shape"):
        call(GOOD_B, np.float32(1))
    with pytest.raises(ValueError, match=r"^image_ids must have length 2, got 3"):
        call(GOOD_B, GOOD_S, image_ids=[0, 1, 2])
    with pytest.raises(ValueError, match=r"^image_ids must be 1-D"):
        call(GOOD_B, GOOD_S, image_ids=[[0, 1]])


def test_bad_classes():
    with pytest.raises(ValueError, match=r"^classes must have length 2, got 1"):
        cb.batched_nms(GOOD_B, GOOD_S, [0])
    with pytest.raises(ValueError, match=r"^classes must hold integers"):
        cb.batched_nms(GOOD_B, GOOD_S, [0.5, 1.0])
    with pytest.raises(ValueError, match=r"^classes must hold integers"):
        cb.batched_nms(GOOD_B, GOOD_S, [np.nan, 1.0])
    with pytest.raises(TypeError, match=r"^classes must have an integer dtype"):
        cb.batched_nms(GOOD_B, GOOD_S, ["a", "b"])
    with pytest.raises(TypeError, match=r"^classes must have an integer dtype"):
        cb.batched_nms(GOOD_B, GOOD_S, np.array([1 + 1j, 2]))
    with pytest.raises(ValueError, match=r"^classes must be 1-D"):
        cb.batched_nms(GOOD_B, GOOD_S, [[0], [1]])
    with pytest.raises(ValueError, match=r"^classes must have values|^classes has values above"):
        cb.batched_nms(GOOD_B, GOOD_S, np.array([2**63, 0], dtype=np.uint64))
    with pytest.raises(ValueError, match=r"^image_ids must hold integers"):
        cb.nms(GOOD_B, GOOD_S, image_ids=[0.5, 0.0])


@pytest.mark.parametrize("fn", ["nms", "batched_nms"])
def test_bad_thresholds_and_max_det(fn):
    call = (lambda *a, **k: cb.nms(GOOD_B, GOOD_S, *a, **k)) if fn == "nms" else (
        lambda *a, **k: cb.batched_nms(GOOD_B, GOOD_S, [0, 0], *a, **k))
    for bad in (-0.1, 1.0000001, np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match=r"^iou_threshold must be in \[0, 1\]"):
            call(bad)
    for bad in ("0.5", None, True, [0.5], 0.5 + 0j):
        with pytest.raises(TypeError, match=r"^iou_threshold must be a number"):
            call(bad)
    with pytest.raises(ValueError, match=r"^score_threshold must not be NaN"):
        call(0.5, np.nan)
    for bad in ("0.1", True, [0.1]):
        with pytest.raises(TypeError, match=r"^score_threshold must be a number"):
            call(0.5, bad)
    with pytest.raises(ValueError, match=r"^max_det must be >= 0, got -1"):
        call(0.5, None, -1)
    for bad in (1.0, "3", True):
        with pytest.raises(TypeError, match=r"^max_det must be an int"):
            call(0.5, None, bad)


@pytest.mark.parametrize("dtype", FLOATS)
def test_bad_box_values_and_nan_scores(dtype):
    for value in (np.nan, np.inf, -np.inf):
        boxes = GOOD_B.astype(dtype).copy()
        boxes[1, 2] = value
        with pytest.raises(ValueError, match=r"^boxes must be finite.*boxes\[1\]"):
            cb.nms(boxes, GOOD_S)
        with pytest.raises(ValueError, match=r"^boxes must be finite"):
            cb.batched_nms(boxes[None], GOOD_S[None], None)
    for col in (0, 1):
        boxes = GOOD_B.astype(dtype).copy()
        boxes[1, col] = 3.0  # x1 > x2 or y1 > y2
        with pytest.raises(ValueError, match=r"^boxes must satisfy x1 <= x2 and y1 <= y2.*boxes\[1\]"):
            cb.nms(boxes, GOOD_S)
    with pytest.raises(ValueError, match=r"^scores must not be NaN.*scores\[1\]"):
        cb.nms(GOOD_B.astype(dtype), np.array([0.5, np.nan], dtype))
    with pytest.raises(ValueError, match=r"^scores must not be NaN"):
        cb.batched_nms(GOOD_B.astype(dtype), np.array([np.nan, 0.5], dtype), [0, 1])
    # NaN scores are rejected even when a score_threshold would drop them.
    with pytest.raises(ValueError, match=r"^scores must not be NaN"):
        cb.nms(GOOD_B.astype(dtype), np.array([0.5, np.nan], dtype), score_threshold=0.9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_invalid_box_message_shows_the_values_that_make_it_invalid(dtype):
    # Six fixed decimals printed 0.1234567 > 0.1234566 as "0.123457, ..., 0.123457" (a valid-looking
    # box) and 2e-9 > 1e-9 as zeros; the shortest round-trip form of each value shows the inversion.
    for x1, x2 in ((0.1234567, 0.1234566), (2e-9, 1e-9), (1e20, 9.9e19)):
        boxes = np.array([[0.0, 0.0, 1.0, 1.0], [x1, 0.25, x2, 0.5]], dtype)
        want = ", ".join(repr(v) for v in boxes[1].tolist()) if dtype == np.float64 else None
        for fn in (lambda: cb.nms(boxes, np.ones(2, dtype)), lambda: cb.iou(boxes, boxes)):
            with pytest.raises(ValueError, match=r"x1 <= x2") as info:
                fn()
            shown = re.search(r"\[1\] = \[(.*)\]$", str(info.value)).group(1).split(", ")
            np.testing.assert_array_equal(np.array([float(v) for v in shown], dtype), boxes[1])
            if want is not None:
                assert ", ".join(shown) == want


@pytest.mark.parametrize("dtype", [np.bool_, np.complex64, np.str_, object])
def test_bad_dtypes(dtype):
    with pytest.raises(TypeError, match=r"^boxes must have a real"):
        cb.nms(GOOD_B.astype(dtype), GOOD_S)
    with pytest.raises(TypeError, match=r"^scores must have a real"):
        cb.nms(GOOD_B, GOOD_S.astype(dtype))


def test_bad_batched_3d_arguments():
    boxes, scores = GOOD_B[None], GOOD_S[None]
    with pytest.raises(ValueError, match=r"^scores must have shape \(1, 2\)"):
        cb.batched_nms(boxes, GOOD_S, None)
    with pytest.raises(ValueError, match=r"^classes must have shape \(1, 2\)"):
        cb.batched_nms(boxes, scores, [0, 1])
    with pytest.raises(ValueError, match=r"^valid must have shape \(1, 2\)"):
        cb.batched_nms(boxes, scores, None, valid=np.ones((1, 3), bool))
    with pytest.raises(TypeError, match=r"^valid must be a bool array"):
        cb.batched_nms(boxes, scores, None, valid=np.ones((1, 2), np.int64))
    with pytest.raises(ValueError, match=r"^valid is only accepted with batched"):
        cb.batched_nms(GOOD_B, GOOD_S, None, valid=np.ones(2, bool))
    with pytest.raises(ValueError, match=r"^image_ids"):
        cb.batched_nms(boxes, scores, None, image_ids=[0, 0])
    with pytest.raises(ValueError, match=r"^classes must hold integers"):
        cb.batched_nms(boxes, scores, np.array([[0.5, 1.0]]))
    # NaN in a valid entry is still an error
    bad = boxes.copy()
    bad[0, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"^boxes must be finite"):
        cb.batched_nms(bad, scores, None, valid=np.ones((1, 2), bool))
    with pytest.raises(ValueError, match=r"^scores must not be NaN"):
        cb.batched_nms(boxes, np.array([[np.nan, 0.1]], np.float32), None, valid=np.ones((1, 2), bool))


# ------------------------------------------------------------------------------- hypothesis
half = st.integers(min_value=0, max_value=12).map(lambda v: v / 2)
score_values = st.sampled_from([0.0, -0.0, 0.1, 0.25, 0.5, 0.5, 0.7, 0.9, 1.0, -0.3])


@st.composite
def nms_inputs(draw, max_n=24):
    n = draw(st.integers(0, max_n))
    dtype = draw(st.sampled_from(FLOATS))
    raw = draw(hnp.arrays(np.float64, (n, 4), elements=half))
    boxes = np.stack(
        [np.minimum(raw[:, 0], raw[:, 2]), np.minimum(raw[:, 1], raw[:, 3]),
         np.maximum(raw[:, 0], raw[:, 2]), np.maximum(raw[:, 1], raw[:, 3])], axis=1)
    if n and draw(st.booleans()):  # duplicated boxes
        src = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n))
        dst = draw(st.lists(st.integers(0, n - 1), min_size=len(src), max_size=len(src)))
        boxes[dst] = boxes[src]
    scores = np.asarray(draw(st.lists(score_values, min_size=n, max_size=n)), dtype=np.float64)
    if draw(st.booleans()):
        scores = scores + draw(hnp.arrays(np.float64, (n,), elements=st.floats(0, 1e-3)))
    classes = np.asarray(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), dtype=np.int64)
    image_ids = np.asarray(draw(st.lists(st.integers(-1, 2), min_size=n, max_size=n)), dtype=np.int64)
    threshold = draw(st.sampled_from([0.0, 0.1, 0.2, 1 / 3, 0.5, 0.7, 1.0]))
    score_threshold = draw(st.sampled_from([None, None, 0.0, 0.3]))
    max_det = draw(st.sampled_from([None, None, 0, 1, 3]))
    return boxes.astype(dtype), scores.astype(dtype), classes, image_ids, threshold, score_threshold, max_det


def check_nms_laws(boxes, scores, keep, threshold, score_threshold, group):
    """Subset, sorted by score, no kept pair above the threshold, every dropped candidate is
    suppressed by a higher-ranked kept box of its group (when max_det did not stop early)."""
    dtype = boxes.dtype
    keep = np.asarray(keep)
    assert len(np.unique(keep)) == len(keep)
    assert np.all((keep >= 0) & (keep < len(boxes)))
    ious = iou_ref(boxes, boxes, dtype)
    for g in np.unique(group[keep]) if len(keep) else []:
        k = keep[group[keep] == g]
        assert np.all(np.diff(scores[k].astype(np.float64)) <= 0)
        sub = ious[np.ix_(k, k)].astype(np.float64)
        np.fill_diagonal(sub, 0)
        assert not np.any(sub > threshold)
    kept = set(keep.tolist())
    for i in range(len(boxes)):
        if i in kept or (score_threshold is not None and float(scores[i]) <= score_threshold):
            continue
        rivals = [k for k in kept if group[k] == group[i] and (-float(scores[k]), k) < (-float(scores[i]), i)]
        assert any(float(ious[i, k]) > threshold for k in rivals), f"box {i} dropped without a reason"


@given(nms_inputs())
def test_fuzz_nms(args):
    boxes, scores, classes, image_ids, thr, st_, md = args
    keep = cb.nms(boxes, scores, thr, st_, md)
    assert_keep_equal(keep, nms_ref(boxes, scores, thr, st_, md))
    if md is None:
        check_nms_laws(boxes, scores, keep, thr, st_, np.zeros(len(boxes), np.int64))
        assert_keep_equal(keep, torch_nms_filtered(boxes, scores, thr, st_))
    keep_img = cb.nms(boxes, scores, thr, st_, md, image_ids=image_ids)
    assert_keep_equal(keep_img, batched_nms_ref(boxes, scores, None, thr, st_, md, image_ids))
    if md is None:
        check_nms_laws(boxes, scores, keep_img, thr, st_, image_ids)


def torch_nms_filtered(boxes, scores, thr, score_threshold):
    idx = np.arange(len(scores))
    if score_threshold is not None:
        idx = idx[scores.astype(np.float64) > score_threshold]
    kept = torch_nms(torch.from_numpy(boxes[idx]), torch.from_numpy(scores[idx]), thr).numpy()
    return idx[kept]


@given(nms_inputs())
def test_fuzz_batched_nms(args):
    boxes, scores, classes, image_ids, thr, st_, md = args
    keep = cb.batched_nms(boxes, scores, classes, thr, st_, md)
    assert_keep_equal(keep, batched_nms_ref(boxes, scores, classes, thr, st_, md))
    assert_keep_equal(keep, per_class_loop(boxes, scores, classes, thr, st_, md))
    keep_img = cb.batched_nms(boxes, scores, classes, thr, st_, md, image_ids=image_ids)
    assert_keep_equal(keep_img, batched_nms_ref(boxes, scores, classes, thr, st_, md, image_ids))
    if md is None:
        check_nms_laws(boxes, scores, keep, thr, st_, classes)
        check_nms_laws(boxes, scores, keep_img, thr, st_, classes * 10 + image_ids)


@given(nms_inputs(max_n=30), st.integers(1, 4), st.booleans())
def test_fuzz_batched_3d_equals_flat(args, n_images, with_valid):
    boxes, scores, classes, _, thr, st_, md = args
    per = len(boxes) // n_images
    total = per * n_images
    b3, s3, c3 = boxes[:total].reshape(n_images, per, 4), scores[:total].reshape(n_images, per), classes[:total]
    valid = (np.arange(total) % 3 != 1).reshape(n_images, per) if with_valid else None
    parts = cb.batched_nms(b3, s3, c3.reshape(n_images, per), thr, st_, md, valid=valid)
    assert len(parts) == n_images
    members = np.arange(total) if valid is None else np.flatnonzero(valid.reshape(-1))
    flat = cb.batched_nms(
        boxes[members], scores[members], c3[members], thr, st_, md, image_ids=members // max(per, 1)
    )
    stitched = np.concatenate([p + i * per for i, p in enumerate(parts)]) if parts else np.zeros(0, np.int64)
    assert_keep_equal(stitched, members[flat])


# --------------------------------------------------------------------------------- threads
def test_thread_count_does_not_change_results():
    rng = np.random.default_rng(99)
    n = 20000
    boxes = random_boxes(rng, n, np.float32, scale=400, size=60)
    scores = rng.choice(np.linspace(0, 1, 101), size=n).astype(np.float32)
    classes = rng.integers(0, 30, size=n)
    image_ids = rng.integers(0, 4, size=n)
    before = curata.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 1):
            curata.set_num_threads(threads)
            assert curata.get_num_threads() == threads
            results.append((
                cb.nms(boxes, scores, 0.5),
                cb.batched_nms(boxes, scores, classes, 0.5),
                cb.batched_nms(boxes, scores, classes, 0.5, max_det=50, image_ids=image_ids),
                cb.batched_nms(boxes.reshape(4, -1, 4), scores.reshape(4, -1), classes.reshape(4, -1), 0.5),
            ))
    finally:
        curata.set_num_threads(before)
    for other in results[1:]:
        for x, y in zip(results[0][:3], other[:3]):
            assert_keep_equal(x, y)
        for x, y in zip(results[0][3], other[3]):
            assert_keep_equal(x, y)
    # and one of them against the torchvision-algorithm reference, per class
    flat = results[0][1]
    expected = []
    for c in range(30):
        members = np.flatnonzero(classes == c)
        expected.extend(members[torch_nms(torch.from_numpy(boxes[members]), torch.from_numpy(scores[members]), 0.5)])
    expected.sort(key=lambda i: (-float(scores[i]), i))
    assert_keep_equal(flat, expected)


# ------------------------------------------------------------- the peer itself, if installed
def test_against_torchvision_when_installed(rng):
    tv_ops = pytest.importorskip("torchvision.ops")
    n = 800
    # 1/16 grid: torchvision's batched_nms offsets classes by (max coordinate + 1) below 4000
    # numel, which stays exact on the grid and so decides like per-class NMS.
    boxes = (np.round(random_boxes(rng, n, np.float64, scale=300, size=60) * 16) / 16).astype(np.float32)
    scores = rng.permutation(n).astype(np.float32) / n  # distinct: torchvision's CPU sort is not stable
    classes = rng.integers(0, 7, size=n)
    tb, ts, tc = torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes)
    for thr in (0.0, 0.3, 0.5, 0.8):
        assert_keep_equal(cb.nms(boxes, scores, thr), tv_ops.nms(tb, ts, thr).numpy())
        assert_keep_equal(cb.batched_nms(boxes, scores, classes, thr), tv_ops.batched_nms(tb, ts, tc, thr).numpy())
        np.testing.assert_array_equal(cb.iou(boxes, boxes[:50]), tv_ops.box_iou(tb, tb[:50]).numpy())


def test_integer_floats_outside_int64_are_rejected_not_wrapped():
    # float64 ids that hold integers but exceed int64 used to be cast with numpy's undefined
    # float->int conversion (a RuntimeWarning and INT64_MIN), silently merging distinct classes.
    for bad in ([1e20, 0.0], [2.0**63, 0.0], [-1e19, 0.0]):
        with pytest.raises(ValueError, match=r"^classes must hold integers in the int64 range"):
            cb.batched_nms(GOOD_B, GOOD_S, np.array(bad))
    with pytest.raises(ValueError, match=r"^image_ids must hold integers in the int64 range"):
        cb.nms(GOOD_B, GOOD_S, image_ids=np.array([1e19, 0.0]))
    # The extreme representable value is fine and keeps both boxes in separate classes.
    both = cb.batched_nms(GOOD_B, GOOD_S, np.array([-(2.0**63), 0.0]), 0.0)
    np.testing.assert_array_equal(np.sort(both), [0, 1])


@pytest.mark.parametrize("big", [2**63, 2**64, np.uint64(2**63)])
def test_max_det_beyond_int64_is_a_clear_error(big):
    # Used to reach pybind11 and fail with "incompatible function arguments" and a signature dump.
    with pytest.raises(ValueError, match=r"^max_det must be <= 9223372036854775807"):
        cb.nms(GOOD_B, GOOD_S, 0.5, None, big)
    assert cb.nms(GOOD_B, GOOD_S, 0.0, None, 2**63 - 1).shape == (1,)


def test_scalar_scores_are_not_taken_for_one_box():
    # A 0-d score used to be promoted to shape (1,) before the shape check: accepted for a single
    # box, and reported as "got (1,)" otherwise.
    with pytest.raises(ValueError, match=r"^scores must have shape \(1,\), got \(\)"):
        cb.nms(GOOD_B[:1], np.float32(0.5))
    with pytest.raises(ValueError, match=r"^scores must have shape \(2,\), got \(\)"):
        cb.nms(GOOD_B, 0.5)


@pytest.mark.parametrize("fn", ["nms", "batched_nms"])
def test_ragged_box_lists_name_the_argument(fn):
    # np.ndim() on a ragged list used to raise numpy's bare ValueError ("setting an array element
    # with a sequence") before any argument check.
    ragged = [[0, 0, 1, 1], [0, 0, 1]]
    call = cb.nms if fn == "nms" else (lambda b, s: cb.batched_nms(b, s, None))
    with pytest.raises(TypeError, match=r"^boxes must be array-like, got list"):
        call(ragged, [0.5, 0.4])
    np.testing.assert_array_equal(call([[0, 0, 1, 1], [0, 0, 1, 1]], [0.4, 0.5]), [1])


def test_batched_3d_errors_name_the_image_and_box():
    # api.md: invalid boxes raise ValueError naming the argument and the first bad row. For a
    # padded (B, N, 4) batch the message named the flattened row ("boxes[5]" for image 1, box 2
    # of N = 3), an index the caller's array does not have.
    boxes = np.zeros((2, 3, 4))
    boxes[..., 2:] = 1.0
    scores = np.ones((2, 3))
    bad = boxes.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"^boxes must be finite, got boxes\[1, 2\] = \[nan, 0, 1, 1\]$"):
        cb.batched_nms(bad, scores, None)
    bad = boxes.copy()
    bad[1, 2, 0] = 2.0
    with pytest.raises(ValueError, match=r"^boxes must satisfy x1 <= x2 and y1 <= y2 \(xyxy\), got boxes\[1, 2\] = "):
        cb.batched_nms(bad, scores, np.zeros((2, 3), np.int64))
    bad_scores = scores.copy()
    bad_scores[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"^scores must not be NaN, got scores\[1, 1\] = nan$"):
        cb.batched_nms(boxes, bad_scores, None)
    # flat input keeps its flat index
    with pytest.raises(ValueError, match=r"got boxes\[5\] = "):
        cb.batched_nms(bad.reshape(-1, 4), scores.reshape(-1), None)
