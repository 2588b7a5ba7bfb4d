"""curata.boxes.convert / iou / giou against references written from the specification."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import curata
from curata import boxes as cb
from box_reference import convert_ref, giou_ref, iou_ref, torch_box_iou

FORMATS = ("xyxy", "xywh", "cxcywh")
FLOATS = (np.float32, np.float64)


def random_xyxy(rng, n, dtype=np.float64, scale=100.0, grid=None):
    """Valid xyxy boxes; with ``grid`` the coordinates are multiples of it (dyadic, exact)."""
    xy = rng.uniform(0, scale, size=(n, 2))
    wh = rng.uniform(0, scale / 2, size=(n, 2))
    if grid is not None:
        xy, wh = np.round(xy / grid) * grid, np.round(wh / grid) * grid
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


# ----------------------------------------------------------------------------------- convert
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("src", "dst"), list(itertools.product(FORMATS, FORMATS)))
def test_convert_matches_reference_exactly_on_dyadic_values(rng, src, dst, dtype):
    # Multiples of 1/8 below 256: every sum, difference and halving is exact in float32 and float64.
    boxes = random_xyxy(rng, 200, np.float64, scale=128.0, grid=0.125)
    given_ = convert_ref(boxes, "xyxy", src).astype(dtype)
    out = cb.convert(given_, src, dst)
    assert isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == (200, 4)
    np.testing.assert_array_equal(out, convert_ref(given_, src, dst).astype(dtype))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("src", "dst"), list(itertools.product(FORMATS, FORMATS)))
def test_convert_random_values_and_round_trip(rng, src, dst, dtype):
    boxes = convert_ref(random_xyxy(rng, 300, np.float64), "xyxy", src).astype(dtype)
    out = cb.convert(boxes, src, dst)
    # Same arithmetic in the same precision: exact, up to the reference's float64 intermediate steps.
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out, convert_ref(boxes, src, dst), rtol=rtol, atol=rtol * 200)
    back = cb.convert(out, dst, src)
    np.testing.assert_allclose(back, boxes, rtol=rtol, atol=rtol * 400)


def test_convert_hand_worked_example():
    xyxy = np.array([[10.0, 20.0, 30.0, 60.0]])
    np.testing.assert_array_equal(cb.convert(xyxy, "xyxy", "xywh"), [[10, 20, 20, 40]])
    np.testing.assert_array_equal(cb.convert(xyxy, "xyxy", "cxcywh"), [[20, 40, 20, 40]])
    np.testing.assert_array_equal(cb.convert([[20.0, 40.0, 20.0, 40.0]], "cxcywh", "xyxy"), xyxy)
    np.testing.assert_array_equal(cb.convert([[10.0, 20.0, 20.0, 40.0]], "xywh", "xyxy"), xyxy)


def test_convert_cxcywh_to_xyxy_uses_c_minus_half_w():
    # (cx - w/2) differs from (cx - w)/... formulations in the last bit for some values; the spec
    # (Ultralytics' xywh2xyxy) is cx - w/2 and cx + w/2 in the input precision.
    rng = np.random.default_rng(7)
    c = rng.uniform(0, 640, size=(500, 4)).astype(np.float32)
    out = cb.convert(c, "cxcywh", "xyxy")
    half_w, half_h = c[:, 2] / np.float32(2), c[:, 3] / np.float32(2)
    expected = np.stack([c[:, 0] - half_w, c[:, 1] - half_h, c[:, 0] + half_w, c[:, 1] + half_h], axis=1)
    np.testing.assert_array_equal(out, expected)


def test_convert_empty_and_no_validation():
    for dtype in FLOATS:
        out = cb.convert(np.zeros((0, 4), dtype), "xyxy", "cxcywh")
        assert out.shape == (0, 4) and out.dtype == dtype
    # Documented: convert does no coordinate validation; NaN/Inf propagate arithmetically.
    out = cb.convert(np.array([[np.nan, 0.0, 1.0, np.inf]]), "xyxy", "xywh")
    assert np.isnan(out[0, 0]) and out[0, 1] == 0 and np.isnan(out[0, 2]) and out[0, 3] == np.inf


def test_convert_float16_computed_in_float32_and_cast_back(rng):
    boxes = random_xyxy(rng, 50, np.float16, scale=50.0)
    out = cb.convert(boxes, "xyxy", "cxcywh")
    assert out.dtype == np.float16
    expected = convert_ref(boxes.astype(np.float32), "xyxy", "cxcywh").astype(np.float32).astype(np.float16)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("bad", ["xyz", "XYXY", "", None, 0, b"xyxy"])
def test_convert_bad_format_names_the_argument(bad):
    with pytest.raises(ValueError, match="src"):
        cb.convert(np.zeros((1, 4)), bad, "xyxy")
    with pytest.raises(ValueError, match="dst"):
        cb.convert(np.zeros((1, 4)), "xyxy", bad)


@pytest.mark.parametrize("shape", [(), (4,), (3, 5), (2, 3), (1, 2, 4)])
def test_convert_bad_shape(shape):
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\)"):
        cb.convert(np.zeros(shape), "xyxy", "xywh")


@pytest.mark.parametrize("dtype", [np.bool_, np.complex64, np.str_, object])
def test_convert_bad_dtype(dtype):
    with pytest.raises(TypeError, match="boxes"):
        cb.convert(np.zeros((2, 4)).astype(dtype), "xyxy", "xywh")


# --------------------------------------------------------------------------------------- IoU
@pytest.mark.parametrize("dtype", FLOATS)
def test_iou_bit_identical_to_input_precision_formula(rng, dtype):
    a = random_xyxy(rng, 157, dtype)
    b = random_xyxy(rng, 93, dtype)
    b[:10] = a[:10]  # identical pairs
    b[10:20, 2] = b[10:20, 0]  # zero-width boxes
    out = cb.iou(a, b)
    assert out.dtype == dtype and out.shape == (157, 93)
    np.testing.assert_array_equal(out, iou_ref(a, b, dtype))


def test_iou_float32_is_not_the_float64_value():
    # The float32 formula must really run in float32: compare with a pair where float32 and
    # float64 arithmetic round differently.
    rng = np.random.default_rng(3)
    a = random_xyxy(rng, 64, np.float32)
    b = random_xyxy(rng, 64, np.float32)
    out = cb.iou(a, b)
    f64 = iou_ref(a, b, np.float64).astype(np.float32)
    f32 = iou_ref(a, b, np.float32)
    assert np.any(f32 != f64), "test data should separate float32 from float64 arithmetic"
    np.testing.assert_array_equal(out, f32)


def test_iou_matches_torch_box_iou_formula(rng):
    a = random_xyxy(rng, 80, np.float32)
    b = random_xyxy(rng, 70, np.float32)
    expected = torch_box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_array_equal(cb.iou(a, b), expected)


def test_iou_special_pairs():
    a = np.array(
        [
            [0, 0, 1, 1],  # unit box
            [0, 0, 1, 1],
            [0, 0, 1, 1],
            [0, 0, 0, 0],  # empty (point)
            [2, 2, 2, 2],  # empty
            [0, 0, 0, 5],  # zero width
            [0, 0, 2, 2],
        ],
        dtype=np.float64,
    )
    b = np.array(
        [
            [0, 0, 1, 1],  # identical -> 1
            [1, 0, 2, 1],  # touching edge -> 0
            [0, 0, 1, 2],  # half -> exactly 0.5
            [0, 0, 0, 0],  # two identical empty boxes -> 0 (not NaN)
            [0, 0, 1, 1],  # empty vs box -> 0
            [0, 0, 0, 5],  # two identical zero-width boxes -> 0
            [1, 1, 3, 3],  # 1 / 7
        ],
        dtype=np.float64,
    )
    for dtype in FLOATS:
        diag = np.diag(cb.iou(a.astype(dtype), b.astype(dtype)))
        np.testing.assert_array_equal(diag, np.array([1, 0, 0.5, 0, 0, 0, dtype(1) / dtype(7)], dtype=dtype))
        assert not np.isnan(cb.iou(a.astype(dtype), b.astype(dtype))).any()


@pytest.mark.parametrize(("n", "m"), [(0, 0), (0, 3), (3, 0)])
@pytest.mark.parametrize("dtype", FLOATS)
def test_iou_empty_shapes(n, m, dtype):
    for fn in (cb.iou, cb.giou):
        out = fn(np.zeros((n, 4), dtype), np.zeros((m, 4), dtype))
        assert out.shape == (n, m) and out.dtype == dtype


def test_iou_mixed_and_integer_dtypes(rng):
    a32 = random_xyxy(rng, 10, np.float32)
    b64 = random_xyxy(rng, 12, np.float64)
    out = cb.iou(a32, b64)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, iou_ref(a32.astype(np.float64), b64, np.float64))
    ai = random_xyxy(rng, 9, np.float64, grid=1.0).astype(np.int32)
    out = cb.iou(ai, ai)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, iou_ref(ai, ai, np.float64))
    a16 = random_xyxy(rng, 11, np.float16, scale=20.0)
    out = cb.iou(a16, a16)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, iou_ref(a16.astype(np.float32), a16.astype(np.float32), np.float32))


def test_iou_huge_and_tiny_coordinates():
    huge = np.array([[0.0, 0.0, 1e150, 1e150], [5e149, 0.0, 1.5e150, 1e150]])
    np.testing.assert_array_equal(cb.iou(huge, huge), iou_ref(huge, huge, np.float64))
    np.testing.assert_allclose(cb.iou(huge, huge)[0, 1], 1 / 3)
    tiny = np.array([[0.0, 0.0, 1e-150, 1e-150], [5e-151, 0.0, 1.5e-150, 1e-150]])
    np.testing.assert_array_equal(cb.iou(tiny, tiny), iou_ref(tiny, tiny, np.float64))
    big32 = np.array([[1e6, 1e6, 1e6 + 3, 1e6 + 1], [1e6 + 1, 1e6, 1e6 + 4, 1e6 + 1]], np.float32)
    np.testing.assert_array_equal(cb.iou(big32, big32), iou_ref(big32, big32, np.float32))


def test_iou_when_float32_areas_overflow_is_documented():
    # Sides beyond ~1.8e19 make float32 areas infinite: the union is then inf or NaN and the IoU is
    # defined as 0 (documented), so NMS in float32 does not suppress such duplicates; GIoU's hull
    # overflows too (NaN). float64 computes them exactly.
    big = np.array([[0.0, 0.0, 1e20, 1e20], [0.0, 0.0, 1e20, 2e20]])
    np.testing.assert_array_equal(cb.iou(big.astype(np.float32), big.astype(np.float32)), np.zeros((2, 2)))
    np.testing.assert_array_equal(cb.nms(big.astype(np.float32), np.array([0.9, 0.8], np.float32), 0.3), [0, 1])
    assert np.isnan(cb.giou(big.astype(np.float32), big.astype(np.float32))).all()
    np.testing.assert_allclose(cb.iou(big, big), iou_ref(big, big, np.float64), rtol=1e-15)
    np.testing.assert_allclose(cb.iou(big, big), [[1.0, 0.5], [0.5, 1.0]])
    np.testing.assert_array_equal(cb.nms(big, np.array([0.9, 0.8]), 0.3), [0])


# -------------------------------------------------------------------------------------- GIoU
@pytest.mark.parametrize("dtype", FLOATS)
def test_giou_matches_reference(rng, dtype):
    a = random_xyxy(rng, 60, dtype)
    b = random_xyxy(rng, 45, dtype)
    b[:5] = a[:5]
    out = cb.giou(a, b)
    assert out.dtype == dtype and out.shape == (60, 45)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out, giou_ref(a, b), rtol=tol, atol=tol)
    assert np.all(out <= cb.iou(a, b) + tol)
    assert np.all((out >= -1 - tol) & (out <= 1 + tol))


def test_giou_special_pairs():
    a = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 1, 1], [3, 3, 3, 3]], dtype=np.float64)
    b = np.array([[0, 0, 1, 1], [2, 0, 3, 1], [0, 0, 0, 0], [0, 0, 1, 2], [3, 3, 3, 3]], dtype=np.float64)
    diag = np.diag(cb.giou(a, b))
    # identical -> 1; disjoint unit boxes 1 apart: 0 - (3 - 2) / 3; identical points -> 0; nested -> 0.5
    np.testing.assert_allclose(diag, [1.0, -1 / 3, 0.0, 0.5, 0.0], rtol=0, atol=1e-15)
    far = cb.giou(np.array([[0.0, 0, 1, 1]]), np.array([[1e6, 1e6, 1e6 + 1, 1e6 + 1]]))
    assert -1 <= far[0, 0] < -0.999999


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("fn", [cb.iou, cb.giou])
def test_iou_bad_input_names_argument(fn):
    good = np.zeros((2, 4))
    for bad_shape in [(), (4,), (2, 5), (1, 2, 4)]:
        with pytest.raises(ValueError, match=r"^a must have shape \(N, 4\)"):
            fn(np.zeros(bad_shape), good)
        with pytest.raises(ValueError, match=r"^b must have shape \(N, 4\)"):
            fn(good, np.zeros(bad_shape))
    for value in (np.nan, np.inf, -np.inf):
        bad = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, value, 1.0, 1.0]])
        with pytest.raises(ValueError, match=r"^a must be finite.*a\[1\]"):
            fn(bad, good)
        with pytest.raises(ValueError, match=r"^b must be finite.*b\[1\]"):
            fn(good, bad.astype(np.float32))
    with pytest.raises(ValueError, match=r"^a must satisfy x1 <= x2 and y1 <= y2"):
        fn(np.array([[1.0, 0.0, 0.0, 1.0]]), good)
    with pytest.raises(ValueError, match=r"^b must satisfy x1 <= x2 and y1 <= y2"):
        fn(good, np.array([[0.0, 1.0, 1.0, 0.5]]))
    for dtype in (np.bool_, np.complex128, np.str_):
        with pytest.raises(TypeError, match="^a must have a real"):
            fn(np.zeros((2, 4)).astype(dtype), good)
        with pytest.raises(TypeError, match="^b must have a real"):
            fn(good, np.zeros((2, 4)).astype(dtype))
    with pytest.raises(ValueError, match="device"):
        fn(good, good, device="tpu")


# ------------------------------------------------------------------------------- hypothesis
coord = st.integers(min_value=-8, max_value=8).map(lambda v: v / 2)


@st.composite
def box_arrays(draw, max_n=12, dtype=np.float64):
    n = draw(st.integers(0, max_n))
    raw = draw(hnp.arrays(np.float64, (n, 4), elements=coord))
    x1, x2 = np.minimum(raw[:, 0], raw[:, 2]), np.maximum(raw[:, 0], raw[:, 2])
    y1, y2 = np.minimum(raw[:, 1], raw[:, 3]), np.maximum(raw[:, 1], raw[:, 3])
    return np.stack([x1, y1, x2, y2], axis=1).astype(dtype)


@given(box_arrays(), box_arrays(), st.sampled_from(FLOATS))
def test_iou_laws(a, b, dtype):
    a, b = a.astype(dtype), b.astype(dtype)
    out = cb.iou(a, b)
    np.testing.assert_array_equal(out, iou_ref(a, b, dtype))
    np.testing.assert_array_equal(out, cb.iou(b, a).T)  # symmetric, bit for bit
    assert np.all((out >= 0) & (out <= 1))
    self_iou = np.diag(cb.iou(a, a))
    positive = (a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])
    np.testing.assert_array_equal(self_iou, np.where(positive, 1.0, 0.0))
    g = cb.giou(a, b)
    np.testing.assert_allclose(g, giou_ref(a, b), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(g, cb.giou(b, a).T)
    assert np.all(g <= out + 1e-6) and np.all(g >= -1 - 1e-6)


@given(box_arrays(max_n=20), st.sampled_from(FORMATS), st.sampled_from(FORMATS), st.sampled_from(FLOATS))
def test_convert_round_trip_exact_on_half_integers(boxes, src, dst, dtype):
    given_ = convert_ref(boxes, "xyxy", src).astype(dtype)
    out = cb.convert(given_, src, dst)
    np.testing.assert_array_equal(out, convert_ref(given_, src, dst))
    np.testing.assert_array_equal(cb.convert(out, dst, src), given_)


def test_iou_thread_count_does_not_change_results(rng):
    a = random_xyxy(rng, 400, np.float32)
    b = random_xyxy(rng, 300, np.float32)
    before = curata.get_num_threads()
    try:
        curata.set_num_threads(1)
        one = (cb.iou(a, b), cb.giou(a, b), cb.convert(np.tile(a, (400, 1)), "xyxy", "cxcywh"))
        curata.set_num_threads(2)
        two = (cb.iou(a, b), cb.giou(a, b), cb.convert(np.tile(a, (400, 1)), "xyxy", "cxcywh"))
    finally:
        curata.set_num_threads(before)
    for x, y in zip(one, two):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(one[0], iou_ref(a, b, np.float32))
