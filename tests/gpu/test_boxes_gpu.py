"""The CUDA path of curata.boxes against the CPU path, on the same freshly generated inputs.

Every test needs a CUDA device (``@pytest.mark.gpu``: skipped without one, a failure with
``CURATA_REQUIRE_GPU=1``) and runs once with torch CUDA tensors and once with CuPy arrays, each
skipped when that framework (with CUDA) is not installed. The contract checked:

* IoU / GIoU matrices are bit-identical to the CPU's (same formulas, --fmad=false);
* NMS keeps exactly the same indices in the same order (threshold compared in the box dtype,
  ties by index), for flat input with classes / image ids and for padded (B, N, 4) batches;
* post-processing returns bit-identical rows for every option, in the list form and in the
  padded ``(dets, counts)`` form (zeros padding, int32 counts, -1 for invalid images); the padded
  call makes no host sync (torch's sync debug mode and curata's own counter), the list form one;
* results are the input's kind on the input's device; bad input raises the CPU's errors.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from curata import boxes as B

SEEDS = [0, 1, 2, 3]
FLOATS = [np.float32, np.float64]


# --------------------------------------------------------------------------------- frameworks
class _TorchFw:
    name = "torch"

    def __init__(self):
        self.torch = pytest.importorskip("torch")
        if not self.torch.cuda.is_available():
            pytest.skip("torch is installed without a usable CUDA device")
        self.device = self.torch.device("cuda", self.torch.cuda.current_device())

    def to(self, a):
        return self.torch.from_numpy(np.array(a, copy=True)).to(self.device)

    def host(self, x):
        assert isinstance(x, self.torch.Tensor), f"expected a torch tensor, got {type(x).__name__}"
        assert x.device == self.device, f"result on {x.device}, input on {self.device}"
        return x.cpu().numpy()


class _CupyFw:
    name = "cupy"

    def __init__(self):
        self.cupy = pytest.importorskip("cupy")
        try:
            self.device = self.cupy.cuda.runtime.getDevice()
        except Exception as exc:  # pragma: no cover - CuPy without a working driver
            pytest.skip(f"CuPy cannot use a device: {exc}")

    def to(self, a):
        return self.cupy.asarray(np.array(a, copy=True))

    def host(self, x):
        assert isinstance(x, self.cupy.ndarray), f"expected a CuPy array, got {type(x).__name__}"
        assert x.device.id == self.device
        return x.get()


@pytest.fixture(params=["torch", "cupy"])
def fw(request):
    return _TorchFw() if request.param == "torch" else _CupyFw()


def _optional(module):
    try:
        return __import__(module)
    except ImportError:
        return None


@pytest.mark.gpu
def test_a_device_array_framework_is_installed():
    """Each test above skips when its framework is missing; with none at all every test would."""
    torch, cupy = _optional("torch"), _optional("cupy")
    if (torch is not None and torch.cuda.is_available()) or cupy is not None:
        return
    message = "the GPU tests need torch with CUDA or CuPy to make device arrays; neither is usable"
    if os.environ.get("CURATA_REQUIRE_GPU", "") not in ("", "0"):
        pytest.fail(message)
    pytest.skip(message)


# --------------------------------------------------------------------------------- inputs
def _boxes(rng, n, *, span=100.0, size=30.0, snap=False, dtype=np.float32):
    """xyxy boxes; `snap` puts them on an integer grid (exact ties, shared edges, empty boxes)."""
    xy = rng.random((n, 2)) * span
    wh = rng.random((n, 2)) * size
    if snap:
        xy, wh = np.floor(xy), np.floor(wh)
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


def _scores(rng, n, *, ties, dtype):
    s = rng.integers(0, 16, n) / 16.0 if ties else rng.random(n)
    return s.astype(dtype)


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint8).reshape(-1)


def _assert_bit_equal(gpu, cpu):
    assert gpu.dtype == cpu.dtype, (gpu.dtype, cpu.dtype)
    assert gpu.shape == cpu.shape, (gpu.shape, cpu.shape)
    if not np.array_equal(_bits(gpu), _bits(cpu)):
        diff = np.flatnonzero(_bits(gpu) != _bits(cpu))
        raise AssertionError(f"{diff.size} differing bytes, first at byte {diff[0]}")


def _iou_reference(a, b, generalized):
    """Independent float64 reference (loops over numpy broadcasting, no curata code)."""
    a, b = a.astype(np.float64)[:, None, :], b.astype(np.float64)[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    union = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
        if not generalized:
            return iou
        hull = (np.maximum(a[..., 2], b[..., 2]) - np.minimum(a[..., 0], b[..., 0])) * (
            np.maximum(a[..., 3], b[..., 3]) - np.minimum(a[..., 1], b[..., 1])
        )
        return np.where(hull > 0, iou - (hull - union) / hull, iou)


# ---------------------------------------------------------------------------------------- IoU
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("generalized", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_iou_bit_identical_to_cpu(fw, dtype, generalized, seed):
    rng = np.random.default_rng(seed)
    sizes = [(0, 0), (1, 1), (33, 65), (257, 130), (1000, 777)][seed:seed + 2]
    for n, m in sizes:
        a = _boxes(rng, n, snap=seed % 2 == 0, dtype=dtype)
        b = _boxes(rng, m, snap=seed % 2 == 0, dtype=dtype)
        if n > 2 and m > 2:
            b[0] = a[0]  # identical boxes
            a[1, 2:] = a[1, :2]  # an empty box
        op = B.giou if generalized else B.iou
        gpu = fw.host(op(fw.to(a), fw.to(b)))
        cpu = op(a, b)
        _assert_bit_equal(gpu, cpu)
        tol = 2e-6 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(gpu, _iou_reference(a, b, generalized), rtol=tol, atol=tol)


@pytest.mark.gpu
def test_iou_mixed_and_half_dtypes(fw):
    rng = np.random.default_rng(7)
    a16 = _boxes(rng, 70, snap=True, dtype=np.float16)
    b64 = _boxes(rng, 90, dtype=np.float64)
    a32 = _boxes(rng, 70, dtype=np.float32)
    # float16 is computed in float32, mixed float32/float64 in float64, as on the CPU
    for a, b in [(a16, a16), (a16, b64), (a32, b64)]:
        _assert_bit_equal(fw.host(B.iou(fw.to(a), fw.to(b))), B.iou(a, b))
        _assert_bit_equal(fw.host(B.giou(fw.to(a), fw.to(b))), B.giou(a, b))


@pytest.mark.gpu
def test_iou_empty_inputs(fw):
    a = np.zeros((0, 4), np.float32)
    b = _boxes(np.random.default_rng(1), 5)
    assert fw.host(B.iou(fw.to(a), fw.to(b))).shape == (0, 5)
    assert fw.host(B.iou(fw.to(b), fw.to(a))).shape == (5, 0)
    assert fw.host(B.giou(fw.to(a), fw.to(a))).shape == (0, 0)


@pytest.mark.gpu
@pytest.mark.parametrize("which", ["a", "b"])
@pytest.mark.parametrize("bad", ["nan", "inf", "reversed"])
def test_iou_invalid_boxes_raise_like_cpu(fw, which, bad):
    rng = np.random.default_rng(3)
    a, b = _boxes(rng, 40), _boxes(rng, 50)
    target = a if which == "a" else b
    if bad == "nan":
        target[17, 1] = np.nan
    elif bad == "inf":
        target[17, 2] = np.inf
    else:
        target[17] = [5, 5, 4, 6]
    target[30] = [9, 9, 8, 8]  # a later offender: the first one is reported
    with pytest.raises(ValueError) as cpu_error:
        B.iou(a, b)
    with pytest.raises(ValueError) as gpu_error:
        B.iou(fw.to(a), fw.to(b))
    assert str(gpu_error.value) == str(cpu_error.value)
    assert f"{which}[17]" in str(gpu_error.value)


# ---------------------------------------------------------------------------------------- NMS
def _nms_case(rng, dtype, grouping):
    n = int(rng.integers(0, 700))
    snap = bool(rng.integers(0, 2))
    boxes = _boxes(rng, n, span=60.0 if snap else 120.0, size=25.0, snap=snap, dtype=dtype)
    scores = _scores(rng, n, ties=bool(rng.integers(0, 2)), dtype=dtype)
    kwargs = {}
    classes = None
    if grouping in ("classes", "both"):
        classes = rng.integers(-2, 4, n) * (10**12 if rng.integers(0, 3) == 0 else 1)
    if grouping in ("image_ids", "both"):
        kwargs["image_ids"] = rng.integers(0, 5, n) - 2
    iou_threshold = float(rng.choice([0.0, 0.3, 0.5, 0.7, 1.0]))
    score_threshold = float(rng.choice([0.2, 0.5])) if rng.integers(0, 3) == 0 else None
    max_det = int(rng.choice([0, 1, 5])) if rng.integers(0, 3) == 0 else None
    return boxes, scores, classes, iou_threshold, score_threshold, max_det, kwargs


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("grouping", ["agnostic", "classes", "image_ids", "both"])
@pytest.mark.parametrize("seed", SEEDS)
def test_batched_nms_matches_cpu(fw, dtype, grouping, seed):
    rng = np.random.default_rng(1000 * seed + 17)
    for _ in range(3):
        boxes, scores, classes, iou_t, score_t, max_det, kwargs = _nms_case(rng, dtype, grouping)
        cpu = B.batched_nms(boxes, scores, classes, iou_t, score_t, max_det, **kwargs)
        dev_kwargs = {k: fw.to(v) for k, v in kwargs.items()}
        gpu = fw.host(
            B.batched_nms(
                fw.to(boxes), fw.to(scores), None if classes is None else fw.to(classes), iou_t, score_t, max_det,
                **dev_kwargs,
            )
        )
        assert gpu.dtype == np.int64
        np.testing.assert_array_equal(gpu, cpu)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", FLOATS)
def test_nms_one_large_group(fw, dtype):
    """5000 overlapping boxes in one class: 79 row blocks, 3160 mask tiles, long suppression chains."""
    rng = np.random.default_rng(11)
    boxes = _boxes(rng, 5000, span=200.0, size=40.0, dtype=dtype)
    scores = _scores(rng, 5000, ties=True, dtype=dtype)
    for iou_t in (0.3, 0.6):
        cpu = B.nms(boxes, scores, iou_t)
        np.testing.assert_array_equal(fw.host(B.nms(fw.to(boxes), fw.to(scores), iou_t)), cpu)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_nms_iou_exactly_at_threshold(fw, dtype):
    # Boxes [i, 0, i + 3, 1]: neighbours have IoU 2/4 = 0.5 exactly, next-but-one 1/5. With scores
    # descending in i, threshold 0.5 suppresses nothing (the rule is IoU > threshold), anything just
    # below 0.5 keeps every other box. 1/5 rounds up in float32 (0.20000000298) but is the double
    # 0.2 itself in float64, so threshold 0.2 keeps every third box in float16/32 and every other
    # box in float64. 200 boxes span 4 row blocks of the suppression mask.
    n = 200
    x = np.arange(n, dtype=np.float64)
    boxes = np.stack([x, np.zeros(n), x + 3, np.ones(n)], axis=1).astype(dtype)
    scores = np.linspace(1.0, 0.01, n).astype(dtype)
    at_fifth = np.arange(0, n, 2) if dtype == np.float64 else np.arange(0, n, 3)
    cases = [(0.5, np.arange(n)), (float(np.nextafter(0.5, 0)), np.arange(0, n, 2)), (0.2, at_fifth)]
    for iou_t, expected in cases:
        np.testing.assert_array_equal(B.nms(boxes, scores, iou_t), expected)
        np.testing.assert_array_equal(fw.host(B.nms(fw.to(boxes), fw.to(scores), iou_t)), expected)


@pytest.mark.gpu
def test_nms_threshold_compared_in_box_dtype(fw):
    # IoU 1/3 is 0.33333334 in float32, above the double 1/3: suppressed in float32, not in float64
    # (torchvision's comparison). The GPU must make the same call as the CPU for both dtypes.
    boxes = np.array([[0, 0, 2, 1], [1, 0, 3, 1]])
    scores = np.array([0.9, 0.8])
    for dtype, expected in [(np.float32, [0]), (np.float64, [0, 1])]:
        b, s = boxes.astype(dtype), scores.astype(dtype)
        np.testing.assert_array_equal(B.nms(b, s, 1 / 3), expected)
        np.testing.assert_array_equal(fw.host(B.nms(fw.to(b), fw.to(s), 1 / 3)), expected)


@pytest.mark.gpu
def test_nms_ties_resolve_to_lower_index(fw):
    boxes = np.array([[0, 0, 10, 10], [100, 100, 110, 110], [0, 0, 10, 10], [100, 100, 110, 110]], np.float32)
    scores = np.array([0.5, 0.5, 0.5, -0.0], np.float32)
    for s in (scores, np.zeros(4, np.float32)):
        cpu = B.nms(boxes, s, 0.5)
        np.testing.assert_array_equal(fw.host(B.nms(fw.to(boxes), fw.to(s), 0.5)), cpu)
    np.testing.assert_array_equal(fw.host(B.nms(fw.to(boxes), fw.to(np.zeros(4, np.float32)), 0.5)), [0, 1])
    # -0.0 and +0.0 are the same score: disjoint boxes come back in index order.
    disjoint = np.array([[10 * i, 0, 10 * i + 5, 5] for i in range(4)], np.float32)
    signed_zeros = np.array([-0.0, 0.0, -0.0, 0.0], np.float32)
    for dtype in FLOATS:
        keep = fw.host(B.nms(fw.to(disjoint.astype(dtype)), fw.to(signed_zeros.astype(dtype)), 0.5))
        np.testing.assert_array_equal(keep, [0, 1, 2, 3])


@pytest.mark.gpu
def test_nms_large_coordinates_per_class_exact(fw):
    # At coordinates ~1e6 an offset trick would merge classes; the exact per-class NMS must not.
    rng = np.random.default_rng(5)
    boxes = (_boxes(rng, 400, span=50.0, size=20.0, dtype=np.float64) + 1e6).astype(np.float32)
    scores = rng.random(400).astype(np.float32)
    classes = rng.integers(0, 7, 400)
    cpu = B.batched_nms(boxes, scores, classes, 0.5)
    np.testing.assert_array_equal(fw.host(B.batched_nms(fw.to(boxes), fw.to(scores), fw.to(classes), 0.5)), cpu)


@pytest.mark.gpu
def test_nms_empty_results(fw):
    empty = np.zeros((0, 4), np.float32)
    out = fw.host(B.nms(fw.to(empty), fw.to(np.zeros(0, np.float32)), 0.5))
    assert out.dtype == np.int64 and out.shape == (0,)
    boxes = _boxes(np.random.default_rng(2), 30)
    scores = np.full(30, 0.25, np.float32)  # exactly representable: score > threshold is false
    assert fw.host(B.nms(fw.to(boxes), fw.to(scores), 0.5, score_threshold=0.25)).shape == (0,)
    assert fw.host(B.nms(fw.to(boxes), fw.to(scores), 0.5, max_det=0)).shape == (0,)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("seed", SEEDS)
def test_batched_3d_with_valid_mask_matches_cpu(fw, dtype, seed):
    rng = np.random.default_rng(seed + 50)
    n_images, per_image = int(rng.integers(1, 6)), int(rng.integers(1, 300))
    boxes = _boxes(rng, n_images * per_image, snap=seed % 2 == 1, dtype=dtype).reshape(n_images, per_image, 4)
    scores = _scores(rng, n_images * per_image, ties=True, dtype=dtype).reshape(n_images, per_image)
    classes = rng.integers(0, 4, (n_images, per_image))
    valid = rng.random((n_images, per_image)) < 0.7
    valid[0] = False  # one image with nothing valid
    boxes[~valid] = np.nan  # padding is neither validated nor used
    scores[~valid] = np.nan
    max_det = [None, 3][seed % 2]
    float_classes = classes.astype(np.float64)
    float_classes[~valid] = np.nan  # padding may hold NaN classes too
    for cls in (None, classes, float_classes):
        cpu = B.batched_nms(boxes, scores, cls, 0.45, None, max_det, valid=valid)
        gpu = B.batched_nms(
            fw.to(boxes), fw.to(scores), None if cls is None else fw.to(cls), 0.45, None, max_det, valid=fw.to(valid)
        )
        assert isinstance(gpu, list) and len(gpu) == n_images == len(cpu)
        for g, c in zip(gpu, cpu):
            np.testing.assert_array_equal(fw.host(g), c)
        assert fw.host(gpu[0]).shape == (0,)


@pytest.mark.gpu
def test_batched_3d_degenerate_shapes(fw):
    assert B.batched_nms(fw.to(np.zeros((0, 5, 4), np.float32)), fw.to(np.zeros((0, 5), np.float32)), None) == []
    parts = B.batched_nms(fw.to(np.zeros((3, 0, 4), np.float32)), fw.to(np.zeros((3, 0), np.float32)), None)
    assert len(parts) == 3 and all(fw.host(p).shape == (0,) for p in parts)


@pytest.mark.gpu
def test_nms_bad_input_raises_like_cpu(fw):
    rng = np.random.default_rng(9)
    boxes, scores = _boxes(rng, 20), rng.random(20).astype(np.float32)

    def same_error(exc_type, b, s, **kwargs):
        with pytest.raises(exc_type) as cpu_error:
            B.batched_nms(b, s, None, **kwargs)
        dev = {k: fw.to(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
        with pytest.raises(exc_type) as gpu_error:
            B.batched_nms(fw.to(b), fw.to(s), None, **dev)
        assert str(gpu_error.value) == str(cpu_error.value)

    bad = boxes.copy()
    bad[4, 0] = np.nan
    same_error(ValueError, bad, scores)
    bad = boxes.copy()
    bad[6] = [3, 3, 2, 4]
    same_error(ValueError, bad, scores)
    nan_scores = scores.copy()
    nan_scores[8] = np.nan
    same_error(ValueError, boxes, nan_scores)
    same_error(ValueError, boxes, scores[:5])
    same_error(ValueError, boxes, scores, iou_threshold=1.5)
    same_error(ValueError, boxes, scores, image_ids=np.arange(3))
    same_error(ValueError, boxes, scores, valid=np.ones(20, bool))
    same_error(ValueError, boxes[:, :3], scores)
    with pytest.raises(ValueError, match="classes must hold integers"):
        B.batched_nms(fw.to(boxes), fw.to(scores), fw.to(np.full(20, 0.5)))
    with pytest.raises(TypeError, match="valid must be a bool array"):
        B.batched_nms(fw.to(boxes[None]), fw.to(scores[None]), None, valid=fw.to(np.ones((1, 20), np.uint8)))


@pytest.mark.gpu
def test_non_contiguous_and_half_inputs(fw):
    rng = np.random.default_rng(21)
    base = _boxes(rng, 300, snap=True, dtype=np.float32)
    scores = _scores(rng, 300, ties=True, dtype=np.float32)
    wide = np.concatenate([base, base], axis=1)  # columns 4..7 repeat the boxes
    dev = fw.to(wide)[:, 4:]  # a strided device view
    np.testing.assert_array_equal(fw.host(B.nms(dev, fw.to(scores), 0.5)), B.nms(base, scores, 0.5))
    half, half_scores = base.astype(np.float16), scores.astype(np.float16)
    np.testing.assert_array_equal(
        fw.host(B.nms(fw.to(half), fw.to(half_scores), 0.5)), B.nms(half, half_scores, 0.5)
    )
    _assert_bit_equal(fw.host(B.iou(dev, dev)), B.iou(base, base))


@pytest.mark.gpu
def test_secondary_arguments_may_live_on_the_host(fw):
    rng = np.random.default_rng(4)
    boxes, scores = _boxes(rng, 200), rng.random(200).astype(np.float32)
    classes = rng.integers(0, 3, 200)
    cpu = B.batched_nms(boxes, scores, classes, 0.5)
    np.testing.assert_array_equal(fw.host(B.batched_nms(fw.to(boxes), scores, list(classes), 0.5)), cpu)


@pytest.mark.gpu
def test_device_cuda_with_host_input_returns_host_arrays():
    torch, cupy = _optional("torch"), _optional("cupy")
    if not ((torch is not None and torch.cuda.is_available()) or cupy is not None):
        pytest.skip("device='cuda' on host input needs torch with CUDA or CuPy")
    rng = np.random.default_rng(8)
    boxes, scores = _boxes(rng, 300), rng.random(300).astype(np.float32)
    keep = B.nms(boxes, scores, 0.5, device="cuda")
    assert isinstance(keep, np.ndarray)
    np.testing.assert_array_equal(keep, B.nms(boxes, scores, 0.5))
    _assert_bit_equal(B.iou(boxes, boxes, device="cuda"), B.iou(boxes, boxes))
    pred = _pred(rng, 2, 3, 400, dtype=np.float32)
    parts = B.postprocess(pred, device="cuda")
    assert len(parts) == 2
    for g, c in zip(parts, B.postprocess(pred)):
        assert isinstance(g, np.ndarray)
        _assert_bit_equal(g, c)


@pytest.mark.gpu
def test_runs_on_the_callers_torch_stream():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    rng = np.random.default_rng(12)
    boxes, scores = _boxes(rng, 3000, dtype=np.float32), rng.random(3000).astype(np.float32)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        b = torch.from_numpy(boxes).cuda()
        s = torch.from_numpy(scores).cuda()
        keep = B.nms(b, s, 0.5)
        iou = B.iou(b, b[:100])
    stream.synchronize()
    np.testing.assert_array_equal(keep.cpu().numpy(), B.nms(boxes, scores, 0.5))
    _assert_bit_equal(iou.cpu().numpy(), B.iou(boxes, boxes[:100]))


# -------------------------------------------------------------------------------- postprocess
def _pred(rng, n_images, n_classes, n_anchors, *, dtype, ties=False):
    pred = np.empty((n_images, 4 + n_classes, n_anchors))
    pred[:, 0:2] = rng.random((n_images, 2, n_anchors)) * 640
    pred[:, 2:4] = 1 + rng.random((n_images, 2, n_anchors)) * 120
    scores = rng.random((n_images, n_classes, n_anchors)) ** 3
    if ties:
        scores = np.floor(scores * 8) / 8
    pred[:, 4:] = scores
    return pred.astype(dtype)


POSTPROCESS_OPTIONS = [
    {},
    {"agnostic": True},
    {"multi_label": True},
    {"multi_label": True, "agnostic": True, "conf_threshold": 0.05},
    {"classes": [0, 3, 7, 99]},
    {"max_det": 5},
    {"max_nms": 40},
    {"max_nms": 40, "multi_label": True, "max_det": 7},
    {"conf_threshold": 0.0, "iou_threshold": 0.7},
    {"iou_threshold": 0.0, "max_det": 0},
]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("options", POSTPROCESS_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("seed", [0, 1])
def test_postprocess_matches_cpu(fw, dtype, options, seed):
    rng = np.random.default_rng(seed + 300)
    n_images, n_classes, n_anchors = int(rng.integers(1, 5)), int(rng.integers(1, 12)), int(rng.integers(1, 2500))
    pred = _pred(rng, n_images, n_classes, n_anchors, dtype=dtype, ties=seed == 1)
    cpu = B.postprocess(pred, **options)
    gpu = B.postprocess(fw.to(pred), **options)
    assert isinstance(gpu, list) and len(gpu) == len(cpu) == n_images
    for g, c in zip(gpu, cpu):
        _assert_bit_equal(fw.host(g), c)


@pytest.mark.gpu
def test_postprocess_edge_cases(fw):
    rng = np.random.default_rng(31)
    assert B.postprocess(fw.to(np.zeros((0, 6, 10), np.float32))) == []
    parts = B.postprocess(fw.to(np.zeros((2, 6, 0), np.float32)))
    assert len(parts) == 2 and all(fw.host(p).shape == (0, 6) for p in parts)
    pred = _pred(rng, 3, 3, 500, dtype=np.float32)
    half = pred.astype(np.float16)  # computed in float32, rows cast back to float16 as on the CPU
    gpu_half = B.postprocess(fw.to(half))
    assert gpu_half[0].dtype == fw.to(half).dtype
    for g, c in zip(gpu_half, B.postprocess(half)):
        _assert_bit_equal(fw.host(g), c)
    pred[2, 6, 40] = np.nan  # NaN class scores raise; the first one (image, class, anchor) is named
    pred[1, 5, 300] = np.nan
    pred[1, 6, 7] = np.nan
    with pytest.raises(ValueError) as cpu_error:
        B.postprocess(pred)
    with pytest.raises(ValueError) as gpu_error:
        B.postprocess(fw.to(pred))
    assert str(gpu_error.value) == str(cpu_error.value) == "pred class scores must not be NaN, got NaN at pred[1, 5, 300]"


@pytest.mark.gpu
def test_postprocess_bad_input(fw):
    rng = np.random.default_rng(32)
    with pytest.raises(ValueError, match="n_classes >= 1"):
        B.postprocess(fw.to(np.zeros((1, 4, 10), np.float32)))
    with pytest.raises(ValueError, match=r"pred must have shape"):
        B.postprocess(fw.to(np.zeros((4, 10), np.float32)))
    pred = _pred(rng, 1, 2, 60, dtype=np.float32)
    pred[0, 4, 10] = 0.99  # a sure candidate ...
    pred[0, 2, 10] = -5.0  # ... whose decoded box has x2 < x1
    with pytest.raises(ValueError, match=r"pred \(decoded candidate boxes\)"):
        B.postprocess(pred)
    with pytest.raises(ValueError, match=r"pred \(decoded candidate boxes\)"):
        B.postprocess(fw.to(pred))
    pred[0, 4:, :] = 0.0
    pred[0, 4, 10] = 0.3  # still a candidate, but the 41st best of its image:
    pred[0, 5, 20:60] = 0.9  # outside the top max_nms = 40, so not checked, as on the CPU
    cpu = B.postprocess(pred, max_nms=40)
    assert len(cpu[0]) > 0
    for g, c in zip(B.postprocess(fw.to(pred), max_nms=40), cpu):
        _assert_bit_equal(fw.host(g), c)


# ------------------------------------------------------------------- postprocess, padded form
def _assert_padded_equal(fw, got, cpu):
    dets, counts = got
    want_dets, want_counts = cpu
    _assert_bit_equal(fw.host(dets), want_dets)
    host_counts = fw.host(counts)
    assert host_counts.dtype == np.int32
    np.testing.assert_array_equal(host_counts, want_counts)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("options", POSTPROCESS_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_postprocess_padded_matches_cpu(fw, dtype, options):
    rng = np.random.default_rng(400)
    n_images, n_classes, n_anchors = int(rng.integers(1, 5)), int(rng.integers(1, 12)), int(rng.integers(1, 2500))
    pred = _pred(rng, n_images, n_classes, n_anchors, dtype=dtype, ties=True)
    _assert_padded_equal(fw, B.postprocess(fw.to(pred), padded=True, **options), B.postprocess(pred, padded=True, **options))


@pytest.mark.gpu
def test_postprocess_padded_caps_empty_suppressed_and_invalid_images(fw):
    rng = np.random.default_rng(401)
    pred = _pred(rng, 6, 5, 3000, dtype=np.float32, ties=True)
    pred[1, 4:] = 0.0  # empty
    pred[2, :4] = 50.0  # every box identical: one detection per class
    pred[3, 6, 123] = np.nan  # invalid: count -1, zero rows (the list form raises)
    pred[4, 3, :] = -2.0  # every candidate box invalid
    for options in ({}, {"max_nms": 50}, {"max_nms": 50, "multi_label": True}, {"max_nms": 1, "max_det": 3}):
        cpu = B.postprocess(pred, padded=True, **options)
        np.testing.assert_array_equal(cpu[1][[1, 3, 4]], [0, -1, -1])
        _assert_padded_equal(fw, B.postprocess(fw.to(pred), padded=True, **options), cpu)


@pytest.mark.gpu
def test_postprocess_padded_makes_no_host_sync_and_list_form_one():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch is installed without a usable CUDA device")
    from curata import _backend

    rng = np.random.default_rng(402)
    pred = torch.from_numpy(_pred(rng, 4, 80, 8400, dtype=np.float32)).cuda()
    B.postprocess(pred, padded=True)  # warm the caching allocator
    torch.cuda.synchronize()
    before = _backend._cuda.host_sync_count()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")  # any torch-side sync raises
    try:
        dets, counts = B.postprocess(pred, padded=True, max_nms=1000)
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert _backend._cuda.host_sync_count() == before  # and no wait inside curata's launchers
    parts = B.postprocess(pred, max_nms=1000)
    assert _backend._cuda.host_sync_count() == before + 1
    host_counts = counts.cpu().numpy()
    for b, rows in enumerate(parts):
        assert rows.shape[0] == host_counts[b]
        _assert_bit_equal(rows.cpu().numpy(), dets[b, : host_counts[b]].cpu().numpy())
