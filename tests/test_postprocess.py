"""curata.boxes.postprocess against a re-implementation of Ultralytics v8 ``non_max_suppression``
semantics (box_reference.postprocess_ref), with exact per-class NMS and with the 7680 offset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import curata
from curata import boxes as cb
from box_reference import ULTRALYTICS_MAX_WH, postprocess_ref

FLOATS = (np.float32, np.float64)


def make_pred(rng, batch, n_classes, anchors, dtype=np.float32, score_levels=None, scale=600.0, p_zero=0.7):
    """(B, 4 + C, A) head output. Centres and sizes are multiples of 1/8 below 640, so every decoded
    and class-offset coordinate is exact in float32 (the offset trick then decides as per class)."""
    pred = np.zeros((batch, 4 + n_classes, anchors))
    pred[:, 0:2] = np.round(rng.uniform(0, scale, size=(batch, 2, anchors)) * 8) / 8
    pred[:, 2:4] = np.round(rng.uniform(0, 120, size=(batch, 2, anchors)) * 8) / 8
    if score_levels is None:
        scores = rng.random((batch, n_classes, anchors))
    else:
        scores = rng.choice(score_levels, size=(batch, n_classes, anchors))
    scores[rng.random(scores.shape) < p_zero] = 0.0
    pred[:, 4:] = scores
    return pred.astype(dtype)


def assert_rows_equal(got, expected, dtype=None):
    got = [np.asarray(g) for g in got]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.ndim == 2 and g.shape[1] == 6
        if dtype is not None:
            assert g.dtype == dtype
        np.testing.assert_array_equal(g, np.asarray(e, dtype=g.dtype))


def both_references(pred, **kw):
    exact = postprocess_ref(pred, **kw)
    offset = postprocess_ref(pred, class_offset=ULTRALYTICS_MAX_WH, **kw)
    return exact, offset


# ----------------------------------------------------------------------- reference equality
OPTIONS = [
    {},
    {"conf_threshold": 0.1, "iou_threshold": 0.7},
    {"conf_threshold": 0.5, "iou_threshold": 0.3},
    {"multi_label": True},
    {"multi_label": True, "conf_threshold": 0.05, "iou_threshold": 0.6},
    {"agnostic": True},
    {"agnostic": True, "multi_label": True},
    {"classes": [0, 3, 5]},
    {"classes": [2], "multi_label": True},
    {"max_det": 7},
    {"max_nms": 25},
    {"max_nms": 25, "multi_label": True, "max_det": 10},
    {"iou_threshold": 0.0},
    {"iou_threshold": 1.0, "conf_threshold": 0.0},
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_matches_ultralytics_semantics(rng, options, dtype):
    pred = make_pred(rng, 3, 8, 400, dtype)
    original = pred.copy()
    got = cb.postprocess(pred, **options)
    exact, offset = both_references(pred, **options)
    assert_rows_equal(got, exact, dtype)
    assert_rows_equal(got, offset, dtype)
    np.testing.assert_array_equal(pred, original)  # the input is never modified
    for rows in got:
        assert np.all(np.diff(rows[:, 4].astype(np.float64)) <= 0)
        assert len(rows) <= options.get("max_det", 300)
    assert sum(len(r) for r in got) > 0


@pytest.mark.parametrize("dtype", FLOATS)
def test_many_tied_scores(rng, dtype):
    # Few score levels: ties in the class max (first class wins), in the max_nms cut and in NMS order.
    pred = make_pred(rng, 2, 5, 300, dtype, score_levels=[0.3, 0.5, 0.5, 0.8], p_zero=0.3)
    pred[:, :, 100:110] = pred[:, :, 0:10]  # duplicated anchors
    for options in ({}, {"multi_label": True}, {"max_nms": 40}, {"max_nms": 40, "multi_label": True},
                    {"agnostic": True, "max_det": 5}):
        got = cb.postprocess(pred, **options)
        exact, offset = both_references(pred, **options)
        assert_rows_equal(got, exact, dtype)
        assert_rows_equal(got, offset, dtype)


def test_single_label_takes_first_maximum_on_ties():
    pred = np.zeros((1, 4 + 3, 2), np.float32)
    pred[0, :4, 0] = [10, 10, 4, 4]
    pred[0, :4, 1] = [50, 50, 4, 4]
    pred[0, 4:, 0] = [0.2, 0.6, 0.6]
    pred[0, 4:, 1] = [0.9, 0.9, 0.1]
    out = cb.postprocess(pred)[0]
    np.testing.assert_array_equal(out, np.array([[48, 48, 52, 52, 0.9, 0], [8, 8, 12, 12, 0.6, 1]], np.float32))
    assert_rows_equal([out], postprocess_ref(pred))
    multi = cb.postprocess(pred, multi_label=True)[0]
    assert_rows_equal([multi], postprocess_ref(pred, multi_label=True))
    assert sorted(multi[:, 5].tolist()) == [0, 1, 1, 2]


def test_conf_threshold_is_strict_and_compared_in_pred_dtype():
    # As in Ultralytics, `score > conf` compares a tensor with a Python float in the tensor's
    # dtype: float32(0.1) is not > 0.1 for float32 scores, but float64(0.1) + ulp is for float64.
    pred = np.zeros((1, 5, 4), np.float32)
    pred[0, :4] = np.array([[10, 40, 70, 100], [10, 10, 10, 10], [4, 4, 4, 4], [4, 4, 4, 4]], np.float32)
    pred[0, 4] = [0.25, 0.2500001, 0.1, 0.7]
    for conf in (0.25, 0.1, 0.7, float(np.float32(0.7)), 0.0, np.nextafter(0.1, 0)):
        got = cb.postprocess(pred, conf_threshold=conf)
        assert_rows_equal(got, postprocess_ref(pred, conf_threshold=conf))
    f32 = np.float32
    assert cb.postprocess(pred, conf_threshold=0.25)[0][:, 4].tolist() == [f32(0.7), f32(0.2500001)]
    assert len(cb.postprocess(pred, conf_threshold=0.1)[0]) == 3  # float32(0.1) is not a candidate
    assert len(cb.postprocess(pred, conf_threshold=np.nextafter(0.1, 0))[0]) == 3  # rounds to float32(0.1)
    assert len(cb.postprocess(pred, conf_threshold=np.nextafter(f32(0.1), f32(0)).item())[0]) == 4
    assert len(cb.postprocess(pred, conf_threshold=0.7)[0]) == 0
    pred64 = pred.astype(np.float64)
    pred64[0, 4, 2] = np.nextafter(0.1, 1)
    for conf in (0.1, 0.25, 0.7):
        assert_rows_equal(cb.postprocess(pred64, conf_threshold=conf), postprocess_ref(pred64, conf_threshold=conf))
    assert len(cb.postprocess(pred64, conf_threshold=0.1)[0]) == 4


@pytest.mark.parametrize("small", ["float16", "bfloat16"])
def test_conf_threshold_is_rounded_to_float16_and_bfloat16_pred(small):
    # A half-precision head (Ultralytics' half=True) compares `score > conf` in half precision:
    # torch rounds the Python float to the tensor's dtype. A threshold just below a representable
    # score rounds up to it there, so that score is no candidate; rounding the threshold to float32
    # instead (the compute dtype) kept it.
    dtype = getattr(torch, small)
    levels = torch.tensor([0.0999755859375, 0.25, 0.5, 0.75, 0.90625], dtype=dtype)
    pred = torch.zeros((1, 6, 5), dtype=dtype)
    pred[0, 0] = torch.tensor([10.0, 40.0, 70.0, 100.0, 130.0], dtype=dtype)
    pred[0, 1:4] = 8
    pred[0, 4] = levels
    pred[0, 5] = levels.flip(0) * 0.5
    for level in levels.float().tolist():
        for conf in (np.nextafter(level, 0.0), level - 1e-7, level - 1e-4, level, level + 1e-7, np.nextafter(level, 1.0)):
            conf = float(min(max(conf, 0.0), 1.0))
            for multi_label in (False, True):
                scores = pred[0, 4:]
                # Ultralytics: best score per anchor > conf, or every class score > conf (multi_label),
                # compared by torch in the pred dtype.
                want = int((scores > conf).sum()) if multi_label else int((scores.amax(0) > conf).sum())
                for x in (pred, pred.float().numpy().astype(np.float16) if small == "float16" else pred):
                    got = cb.postprocess(x, conf_threshold=conf, iou_threshold=1.0, multi_label=multi_label)[0]
                    assert len(got) == want, (small, level, conf, multi_label)
                    dets, counts = cb.postprocess(x, conf_threshold=conf, iou_threshold=1.0, multi_label=multi_label,
                                                  padded=True)
                    assert int(counts[0]) == want


@given(
    bits=st.lists(st.integers(0, 0x3C00), min_size=1, max_size=24),  # float16 values in [0, 1]
    near=st.integers(0, 0x3C00),
    offset=st.integers(-3000, 3000),
    multi_label=st.booleans(),
)
def test_fuzz_half_precision_candidates_equal_torch_half_comparison(bits, near, offset, multi_label):
    # Thresholds within a few float16 steps of a float16 value (where the rounding matters).
    bits = bits + [near]
    conf = float(np.clip(float(np.array(near, np.uint16).view(np.float16)) + offset * 2.0**-27, 0.0, 1.0))
    scores = torch.from_numpy(np.array(bits, np.uint16).view(np.float16).reshape(1, 2, -1) if len(bits) % 2 == 0
                              else np.array(bits + [0], np.uint16).view(np.float16).reshape(1, 2, -1))
    pred = torch.zeros((1, 6, scores.shape[2]), dtype=torch.float16)
    pred[0, 0] = torch.arange(scores.shape[2], dtype=torch.float16) * 20
    pred[0, 2:4] = 4
    pred[0, 4:] = scores[0]
    want = int((scores > conf).sum()) if multi_label else int((scores[0].amax(0) > conf).sum())
    got = cb.postprocess(pred, conf_threshold=conf, iou_threshold=1.0, multi_label=multi_label)[0]
    assert len(got) == want


def test_iou_exactly_at_threshold_is_kept():
    # Same class, [0,0,1,1] vs [0,0,1,2] (cxcywh below): IoU exactly 0.5.
    pred = np.zeros((1, 5, 2), np.float32)
    pred[0, :4, 0] = [0.5, 0.5, 1, 1]
    pred[0, :4, 1] = [0.5, 1.0, 1, 2]
    pred[0, 4] = [0.9, 0.8]
    assert len(cb.postprocess(pred, iou_threshold=0.5)[0]) == 2
    assert len(cb.postprocess(pred, iou_threshold=np.nextafter(0.5, 0))[0]) == 1


def test_classes_filter_variants(rng):
    pred = make_pred(rng, 2, 6, 200, np.float32)
    expected = postprocess_ref(pred, classes=[1, 4])
    for classes in ([1, 4], (4, 1), np.array([4, 1]), torch.tensor([1, 4]), [1.0, 4.0], [1, 4, 99, -1]):
        assert_rows_equal(cb.postprocess(pred, classes=classes), expected)
    assert_rows_equal(cb.postprocess(pred, classes=3), postprocess_ref(pred, classes=[3]))
    assert_rows_equal(cb.postprocess(pred, classes=np.int64(3)), postprocess_ref(pred, classes=[3]))
    empty = cb.postprocess(pred, classes=[])
    assert [r.shape for r in empty] == [(0, 6), (0, 6)]
    assert_rows_equal(cb.postprocess(pred, classes=[]), postprocess_ref(pred, classes=[]))


def test_single_class_multi_label_equals_single_label(rng):
    pred = make_pred(rng, 2, 1, 150, np.float64)
    assert_rows_equal(cb.postprocess(pred, multi_label=True), cb.postprocess(pred))
    assert_rows_equal(cb.postprocess(pred), postprocess_ref(pred))


def test_max_nms_keeps_best_scores_with_ties_to_the_earlier_candidate():
    # 6 anchors, all candidates, disjoint boxes; scores with ties; max_nms=3 must keep 0.9 and the
    # two earliest 0.5s, in score order.
    pred = np.zeros((1, 5, 6), np.float32)
    pred[0, 0] = np.arange(6) * 100 + 50
    pred[0, 1] = 50
    pred[0, 2:4] = 10
    pred[0, 4] = [0.5, 0.9, 0.3, 0.5, 0.5, 0.3]
    out = cb.postprocess(pred, max_nms=3)[0]
    np.testing.assert_array_equal(out[:, 0], [145, 45, 345])
    assert_rows_equal([out], postprocess_ref(pred, max_nms=3))
    for max_nms in (0, 1, 6, 100):
        assert_rows_equal(cb.postprocess(pred, max_nms=max_nms), postprocess_ref(pred, max_nms=max_nms))
    assert_rows_equal(cb.postprocess(pred, max_det=0), [np.zeros((0, 6))])


def test_per_class_exact_beyond_7680():
    # Class 0 box at (7750, 7750) and class 1 box at (70, 70): adding 1 * 7680 to class 1 makes
    # them identical, so Ultralytics' offset trick suppresses one; curata keeps both.
    pred = np.zeros((1, 6, 2), np.float32)
    pred[0, :4, 0] = [7750, 7750, 100, 100]
    pred[0, :4, 1] = [70, 70, 100, 100]
    pred[0, 4:, 0] = [0.9, 0.0]
    pred[0, 4:, 1] = [0.0, 0.8]
    got = cb.postprocess(pred)[0]
    offset = postprocess_ref(pred, class_offset=ULTRALYTICS_MAX_WH)[0]
    exact = postprocess_ref(pred)[0]
    assert len(offset) == 1
    assert len(got) == 2
    assert_rows_equal([got], [exact])
    np.testing.assert_array_equal(got[:, 5], [0, 1])
    # and agnostic really does merge them
    assert len(cb.postprocess(pred, agnostic=True)[0]) == 2  # different places: both kept
    pred[0, :2, 1] = 7750
    assert len(cb.postprocess(pred, agnostic=True)[0]) == 1
    assert len(cb.postprocess(pred)[0]) == 2


def test_large_coordinates_random_per_class_exact(rng):
    pred = make_pred(rng, 2, 4, 300, np.float64, scale=20000.0, p_zero=0.5)
    pred[:, 2:4] *= 40
    assert_rows_equal(cb.postprocess(pred, conf_threshold=0.2), postprocess_ref(pred, conf_threshold=0.2))


# ---------------------------------------------------------------------------- empty / dtypes
@pytest.mark.parametrize("dtype", FLOATS)
def test_empty_inputs(dtype):
    assert cb.postprocess(np.zeros((0, 6, 10), dtype)) == []
    for out in (cb.postprocess(np.zeros((2, 6, 0), dtype)), cb.postprocess(np.zeros((2, 6, 10), dtype))):
        assert len(out) == 2
        assert all(r.shape == (0, 6) and r.dtype == dtype for r in out)
    # one image with detections and one without
    pred = np.zeros((2, 5, 1), dtype)
    pred[1, :, 0] = [5, 5, 2, 2, 0.9]
    out = cb.postprocess(pred)
    assert out[0].shape == (0, 6) and out[1].shape == (1, 6)
    np.testing.assert_array_equal(out[1], np.array([[4, 4, 6, 6, 0.9, 0]], dtype))


def test_float16_and_torch_inputs(rng):
    pred = make_pred(rng, 2, 3, 100, np.float32, scale=200.0)
    pred16 = pred.astype(np.float16)
    expected = postprocess_ref(pred16.astype(np.float32))
    out = cb.postprocess(pred16)
    assert_rows_equal(out, [e.astype(np.float16) for e in expected], np.float16)
    t = cb.postprocess(torch.from_numpy(pred))
    assert all(isinstance(r, torch.Tensor) and r.dtype == torch.float32 for r in t)
    assert_rows_equal([r.numpy() for r in t], postprocess_ref(pred))
    t16 = cb.postprocess(torch.from_numpy(pred16))
    assert all(isinstance(r, torch.Tensor) and r.dtype == torch.float16 for r in t16)
    assert_rows_equal([r.numpy() for r in t16], [e.astype(np.float16) for e in expected])
    tbf = cb.postprocess(torch.from_numpy(pred).to(torch.bfloat16))
    assert all(isinstance(r, torch.Tensor) and r.dtype == torch.bfloat16 for r in tbf)
    ref_bf = postprocess_ref(torch.from_numpy(pred).to(torch.bfloat16).float().numpy())
    for r, e in zip(tbf, ref_bf):
        np.testing.assert_array_equal(r.float().numpy(), torch.from_numpy(e).to(torch.bfloat16).float().numpy())
    # non-contiguous: an anchor-major array transposed into (B, 4 + C, A)
    nc = np.ascontiguousarray(pred.transpose(0, 2, 1)).transpose(0, 2, 1)
    assert not nc.flags.c_contiguous
    assert_rows_equal(cb.postprocess(nc), postprocess_ref(pred))
    # integer input is computed in float64
    ints = np.zeros((1, 5, 2), np.int64)
    ints[0, :, 0] = [10, 10, 4, 4, 1]
    out = cb.postprocess(ints, conf_threshold=0.5)
    assert out[0].dtype == np.float64
    np.testing.assert_array_equal(out[0], [[8, 8, 12, 12, 1, 0]])


# ------------------------------------------------------------------------------- bad input
def test_bad_pred_shapes_and_dtypes():
    for shape in [(), (6,), (6, 10), (1, 4, 10), (1, 3, 10), (1, 0, 10), (1, 1, 6, 10)]:
        with pytest.raises(ValueError, match=r"^pred must have shape \(B, 4 \+ n_classes, A\) with n_classes >= 1"):
            cb.postprocess(np.zeros(shape, np.float32))
    for dtype in (np.bool_, np.complex64, np.str_, object):
        with pytest.raises(TypeError, match=r"^pred must have a real"):
            cb.postprocess(np.zeros((1, 6, 3)).astype(dtype))


def test_bad_options():
    pred = np.zeros((1, 6, 3), np.float32)
    for name in ("conf_threshold", "iou_threshold"):
        for bad in (-0.01, 1.5, np.nan, np.inf):
            with pytest.raises(ValueError, match=rf"^{name} must be in \[0, 1\]"):
                cb.postprocess(pred, **{name: bad})
        for bad in ("0.5", None, True):
            with pytest.raises(TypeError, match=rf"^{name} must be a number"):
                cb.postprocess(pred, **{name: bad})
    for name in ("max_det", "max_nms"):
        with pytest.raises(ValueError, match=rf"^{name} must be >= 0, got -1"):
            cb.postprocess(pred, **{name: -1})
        for bad in (None, 2.0, "3", True):
            with pytest.raises(TypeError, match=rf"^{name} must be an int"):
                cb.postprocess(pred, **{name: bad})
    for name in ("agnostic", "multi_label"):
        for bad in (1, None, "yes"):
            with pytest.raises(TypeError, match=rf"^{name} must be a bool"):
                cb.postprocess(pred, **{name: bad})
        cb.postprocess(pred, **{name: np.bool_(True)})
    with pytest.raises(ValueError, match=r"^classes must hold integers"):
        cb.postprocess(pred, classes=[0.5])
    with pytest.raises(ValueError, match=r"^classes must hold integers"):
        cb.postprocess(pred, classes=[np.nan])
    with pytest.raises(ValueError, match=r"^classes must be 1-D"):
        cb.postprocess(pred, classes=[[0, 1]])
    with pytest.raises(TypeError, match=r"^classes must have an integer dtype"):
        cb.postprocess(pred, classes=["person"])
    with pytest.raises(ValueError, match="device"):
        cb.postprocess(pred, device="gpu")


def test_bad_candidate_boxes_are_rejected_and_non_candidates_ignored():
    base = np.zeros((1, 6, 3), np.float32)
    base[0, :4] = 10
    base[0, 4, 0] = 0.9  # anchor 0 is the only candidate
    for channel, value in [(0, np.nan), (1, np.inf), (2, -np.inf), (3, np.nan), (2, -1.0), (3, -0.5)]:
        pred = base.copy()
        pred[0, channel, 0] = value
        with pytest.raises(ValueError, match=r"^pred"):
            cb.postprocess(pred)
        # the same garbage in a non-candidate anchor is ignored (it never becomes a box)
        pred = base.copy()
        pred[0, channel, 2] = value
        assert_rows_equal(cb.postprocess(pred), [np.array([[5, 5, 15, 15, 0.9, 0]])])


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("cls", [0, 1])
def test_nan_class_scores_are_rejected(multi_label, cls):
    pred = np.zeros((1, 6, 3), np.float32)
    pred[0, :4] = 10
    pred[0, 4, 0] = 0.9
    pred[0, 4 + cls, 2] = np.nan
    with pytest.raises(ValueError, match=r"^pred .*NaN"):
        cb.postprocess(pred, multi_label=multi_label)


@pytest.mark.parametrize("n_classes", [1, 2, 3, 4, 5, 6, 8, 9, 80, 81])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_ties_in_every_class_row(n_classes, dtype):
    # The per-anchor max over classes takes four class rows per pass (rows 1-4, 5-8, ...) and the
    # rest one by one: a NaN in any row must still be found (and named), and on ties the first
    # class wins, wherever the tied rows fall relative to the passes.
    rng = np.random.default_rng(n_classes)
    anchors = 37
    for c in range(n_classes):
        pred = np.zeros((1, 4 + n_classes, anchors), dtype)
        pred[0, :4] = np.array([10, 10, 4, 4])[:, None]
        pred[0, 4:] = rng.random((n_classes, anchors)) * 0.5
        a = int(rng.integers(anchors))
        pred[0, 4 + c, a] = np.nan
        with pytest.raises(ValueError, match=rf"NaN at pred\[0, {4 + c}, {a}\]"):
            cb.postprocess(pred)
        pred[0, 4:] = 0.0
        pred[0, 4 + c, a] = 0.9
        for later in sorted({c + 1, c + 3, c + 4, c + 5, n_classes - 1}):
            if later <= c or later >= n_classes:
                continue
            tied = pred.copy()
            tied[0, 4 + later, a] = 0.9
            out = cb.postprocess(tied)[0]
            assert out.shape == (1, 6) and out[0, 5] == c and out[0, 4] == dtype(0.9)
            assert_rows_equal([out], postprocess_ref(tied))


def test_infinite_class_scores_are_ranked():
    pred = np.zeros((1, 6, 3), np.float64)
    pred[0, 0] = [10, 100, 200]
    pred[0, 1] = 10
    pred[0, 2:4] = 4
    pred[0, 4] = [0.5, np.inf, -np.inf]
    pred[0, 5] = [0.1, 0.2, np.inf]
    got = cb.postprocess(pred)
    assert_rows_equal(got, postprocess_ref(pred))
    np.testing.assert_array_equal(got[0][:, 4], [np.inf, np.inf, 0.5])


# ------------------------------------------------------------------------------- hypothesis
@st.composite
def heads(draw):
    batch = draw(st.integers(0, 3))
    n_classes = draw(st.integers(1, 4))
    anchors = draw(st.integers(0, 14))
    dtype = draw(st.sampled_from(FLOATS))
    centre = st.integers(0, 24).map(lambda v: v / 2)
    size = st.integers(0, 12).map(lambda v: v / 2)
    score = st.sampled_from([0.0, 0.1, 0.25, 0.3, 0.3, 0.5, 0.9, 1.0])
    pred = np.zeros((batch, 4 + n_classes, anchors))
    for b in range(batch):
        for a in range(anchors):
            pred[b, :4, a] = [draw(centre), draw(centre), draw(size), draw(size)]
            pred[b, 4:, a] = [draw(score) for _ in range(n_classes)]
    options = {
        "conf_threshold": draw(st.sampled_from([0.0, 0.1, 0.25, 0.3])),
        "iou_threshold": draw(st.sampled_from([0.0, 0.3, 0.45, 0.5, 1.0])),
        "multi_label": draw(st.booleans()),
        "agnostic": draw(st.booleans()),
        "max_det": draw(st.sampled_from([300, 0, 1, 3])),
        "max_nms": draw(st.sampled_from([30000, 0, 2, 5])),
        "classes": draw(st.sampled_from([None, None, [0], [1, 2]])),
    }
    return pred.astype(dtype), options


@given(heads())
def test_fuzz_postprocess(head):
    pred, options = head
    got = cb.postprocess(pred, **options)
    exact, offset = both_references(pred, **options)
    assert_rows_equal(got, exact, pred.dtype)
    assert_rows_equal(got, offset, pred.dtype)
    for rows in got:
        assert np.all(np.diff(rows[:, 4]) <= 0)
        assert np.all(rows[:, 4] > options["conf_threshold"])
        assert len(rows) <= options["max_det"]


# --------------------------------------------------------------------------------- threads
def test_thread_count_does_not_change_results():
    rng = np.random.default_rng(5)
    pred = make_pred(rng, 8, 20, 2000, np.float32, score_levels=np.linspace(0, 1, 41), p_zero=0.8)
    before = curata.get_num_threads()
    try:
        curata.set_num_threads(1)
        one = [cb.postprocess(pred, 0.2), cb.postprocess(pred, 0.2, multi_label=True, max_nms=500)]
        curata.set_num_threads(2)
        two = [cb.postprocess(pred, 0.2), cb.postprocess(pred, 0.2, multi_label=True, max_nms=500)]
    finally:
        curata.set_num_threads(before)
    for x, y in zip(one, two):
        assert_rows_equal(x, y)
    assert_rows_equal(one[0], postprocess_ref(pred, 0.2))


# ------------------------------------------------------------- the peer itself, if installed
def test_against_ultralytics_when_installed(rng):
    pytest.importorskip("ultralytics")
    try:
        from ultralytics.utils.nms import non_max_suppression
    except ImportError:
        from ultralytics.utils.ops import non_max_suppression
    pred = make_pred(rng, 3, 6, 500, np.float32, p_zero=0.6)
    pred[:, 4:] += rng.random(pred[:, 4:].shape).astype(np.float32) * 1e-4  # no ties (unstable sorts)
    for options in ({}, {"multi_label": True}, {"agnostic": True}, {"classes": [1, 2]}, {"max_det": 5}):
        got = cb.postprocess(pred, **options)
        theirs = non_max_suppression(torch.from_numpy(pred.copy()), **options)
        assert_rows_equal(got, [t.numpy() for t in theirs])


# --------------------------------------------------------------------------------- padded form
def padded_from_reference(expected, n_images, max_det, dtype):
    """The padded form built independently from the float64 reference's per-image rows."""
    dets = np.zeros((n_images, max_det, 6), dtype=dtype)
    counts = np.zeros(n_images, dtype=np.int32)
    for b, rows in enumerate(expected):
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        dets[b, : len(rows)] = rows
        counts[b] = len(rows)
    return dets, counts


def assert_padded_matches_list(pred, **options):
    max_det = options.get("max_det", 300)
    dets, counts = cb.postprocess(pred, padded=True, **options)
    listed = cb.postprocess(pred, **options)
    dets, counts = np.asarray(dets), np.asarray(counts)
    assert dets.shape == (pred.shape[0], max_det, 6) and counts.shape == (pred.shape[0],)
    assert counts.dtype == np.int32
    if listed:
        assert dets.dtype == np.asarray(listed[0]).dtype
    for b, rows in enumerate(listed):
        assert counts[b] == len(rows)
        np.testing.assert_array_equal(dets[b, : counts[b]], np.asarray(rows))
        assert not np.any(dets[b, counts[b] :])  # padding: zeros in every column
    return dets, counts


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_padded_equals_list_form_and_reference(rng, options, dtype):
    pred = make_pred(rng, 3, 8, 400, dtype)
    dets, counts = assert_padded_matches_list(pred, **options)
    want_dets, want_counts = padded_from_reference(postprocess_ref(pred, **options), 3, options.get("max_det", 300), dtype)
    np.testing.assert_array_equal(counts, want_counts)
    np.testing.assert_array_equal(dets, want_dets)


def test_padded_cap_hit_ties_empty_and_all_suppressed_images():
    # image 0: 50 candidates with 3 tied score levels over a cap of 10 (ties -> lower anchor)
    # image 1: empty (every score below conf); image 2: 40 identical boxes, two classes -> one
    # detection per class; image 3: max_det cuts the kept boxes
    pred = np.zeros((4, 6, 50), np.float32)
    pred[:, 0] = np.arange(50) * 20.0
    pred[:, 1] = 5
    pred[:, 2:4] = 4
    pred[0, 4] = np.repeat([0.9, 0.6, 0.3], [4, 20, 26])[:50]
    pred[1, 4:] = 0.1
    pred[2, :4] = 8
    pred[2, 4] = np.linspace(0.5, 0.9, 50)
    pred[2, 5, [0, 2]] = 0.95
    pred[3, 4] = np.linspace(0.3, 0.99, 50)
    dets, counts = assert_padded_matches_list(pred, max_nms=10, max_det=7)
    np.testing.assert_array_equal(counts, [7, 0, 2, 7])
    # cap 10 of image 0: the 4 at 0.9 and the first 6 anchors at 0.6; max_det keeps the first 7
    np.testing.assert_array_equal(dets[0, :7, 0] + 2, np.array([0, 1, 2, 3, 4, 5, 6]) * 20.0)
    np.testing.assert_array_equal(dets[2, :2, 5], [1, 0])
    np.testing.assert_array_equal(dets[3, :, 4], np.sort(pred[3, 4])[::-1][:7])
    want_dets, want_counts = padded_from_reference(postprocess_ref(pred, max_nms=10, max_det=7), 4, 7, np.float32)
    np.testing.assert_array_equal(dets, want_dets)
    np.testing.assert_array_equal(counts, want_counts)


@pytest.mark.parametrize("dtype", FLOATS)
def test_padded_empty_shapes(dtype):
    dets, counts = cb.postprocess(np.zeros((0, 6, 10), dtype), padded=True)
    assert dets.shape == (0, 300, 6) and counts.shape == (0,) and counts.dtype == np.int32
    dets, counts = cb.postprocess(np.zeros((2, 6, 0), dtype), padded=True, max_det=5)
    assert dets.shape == (2, 5, 6) and not dets.any()
    np.testing.assert_array_equal(counts, [0, 0])
    dets, counts = cb.postprocess(make_pred(np.random.default_rng(0), 2, 3, 30, dtype), padded=True, max_det=0)
    assert dets.shape == (2, 0, 6)
    np.testing.assert_array_equal(counts, [0, 0])
    dets, counts = cb.postprocess(make_pred(np.random.default_rng(0), 2, 3, 30, dtype), padded=True, max_nms=0)
    assert not dets.any()
    np.testing.assert_array_equal(counts, [0, 0])


def test_padded_flags_invalid_images_with_minus_one():
    rng = np.random.default_rng(5)
    pred = make_pred(rng, 4, 3, 60, np.float32, p_zero=0.3)
    good = pred.copy()
    pred[1, 5, 7] = np.nan  # a NaN class score: the list form raises
    pred[3, 2, :] = -4.0  # negative widths: every candidate box of image 3 is invalid
    with pytest.raises(ValueError, match=r"NaN at pred\[1, 5, 7\]"):
        cb.postprocess(pred)
    dets, counts = cb.postprocess(pred, padded=True)
    assert counts[1] == -1 and counts[3] == -1
    assert not dets[1].any() and not dets[3].any()
    # the valid images are exactly what they are without the invalid ones
    for b in (0, 2):
        want = cb.postprocess(good[b : b + 1])[0]
        assert counts[b] == len(want) > 0
        np.testing.assert_array_equal(dets[b, : counts[b]], want)
    # only a NaN-free batch reports the invalid box, with the CPU's candidate index
    pred[1] = good[1]
    with pytest.raises(ValueError, match=r"^pred \(decoded candidate boxes\) must satisfy x1 <= x2"):
        cb.postprocess(pred)


def test_padded_torch_and_float16_inputs(rng):
    pred = make_pred(rng, 2, 4, 50, np.float32)
    dets, counts = cb.postprocess(torch.from_numpy(pred), padded=True)
    assert isinstance(dets, torch.Tensor) and isinstance(counts, torch.Tensor)
    assert dets.dtype == torch.float32 and counts.dtype == torch.int32
    want_dets, want_counts = cb.postprocess(pred, padded=True)
    np.testing.assert_array_equal(dets.numpy(), want_dets)
    np.testing.assert_array_equal(counts.numpy(), want_counts)
    half = pred.astype(np.float16)
    dets16, counts16 = cb.postprocess(half, padded=True)
    assert dets16.dtype == np.float16
    for b, rows in enumerate(cb.postprocess(half)):
        np.testing.assert_array_equal(dets16[b, : counts16[b]], rows)


def test_padded_must_be_bool():
    with pytest.raises(TypeError, match="padded must be a bool"):
        cb.postprocess(np.zeros((1, 6, 3), np.float32), padded=1)


@given(heads())
def test_fuzz_padded_equals_list_form(head):
    pred, options = head
    assert_padded_matches_list(pred, **options)


def test_counts_beyond_int64_are_clear_errors():
    # Used to fail inside pybind11 with "incompatible function arguments" and a signature dump.
    pred = np.zeros((1, 5, 2), np.float32)
    for name in ("max_det", "max_nms"):
        for big in (2**63, 2**70, np.uint64(2**63)):
            with pytest.raises(ValueError, match=rf"^{name} must be <= 9223372036854775807, got {big}"):
                cb.postprocess(pred, **{name: big})
    assert cb.postprocess(pred, max_nms=2**63 - 1)[0].shape == (0, 6)
