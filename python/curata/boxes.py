"""Boxes: format conversion, IoU, NMS for one image or a whole batch, YOLO post-processing.

All functions take numpy arrays, torch tensors or CuPy arrays and return the same kind on the
same device. Boxes are ``(N, 4)``; float32 and float64 are computed in their own precision,
float16/bfloat16 in float32 and integers in float64. Coordinates must be finite with
``x1 <= x2`` and ``y1 <= y2`` (after conversion to xyxy); anything else raises ``ValueError``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from . import _array, _core
from ._dispatch import use_cuda
from ._ensemble import MatchResult, match, soft_nms, wbf

__all__ = ["convert", "iou", "giou", "nms", "batched_nms", "postprocess", "FORMATS"]
__all__ += ["wbf", "soft_nms", "match", "MatchResult"]

FORMATS = {"xyxy": 0, "xywh": 1, "cxcywh": 2}


def _format_code(value: Any, name: str) -> int:
    if not isinstance(value, str) or value not in FORMATS:
        raise ValueError(f"{name} must be one of {sorted(FORMATS)}, got {value!r}")
    return FORMATS[value]


def _cuda_ops():
    from . import _cuda_ops  # noqa: PLC0415  (imported only on the GPU path)

    return _cuda_ops


def convert(boxes: Any, src: str, dst: str) -> Any:
    """Convert boxes between ``"xyxy"``, ``"xywh"`` (corner + size) and ``"cxcywh"`` (centre + size).

    Parameters
    ----------
    boxes : array (N, 4), float16/32/64
    src, dst : {"xyxy", "xywh", "cxcywh"}

    Returns
    -------
    array (N, 4) of the input dtype (float16 and bfloat16 are computed in float32 and cast
    back; integer input gives float64).

    Notes
    -----
    O(N) time, one output array of memory (plus a converted copy of non-float32/float64 or
    non-contiguous input). No validation of coordinates: any finite or non-finite values are
    converted arithmetically. There is no GPU kernel: CUDA tensors and CuPy arrays are copied
    to the host and the result back to their device.
    """
    src_code, dst_code = _format_code(src, "src"), _format_code(dst, "dst")
    a = _array.float_array(boxes, "boxes", shape=(None, 4))
    out = _core.convert_boxes(a, src_code, dst_code)
    return _array.like_float(out, boxes)


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x = _array.float_array(a, "a", shape=(None, 4))
    y = _array.float_array(b, "b", shape=(None, 4))
    if x.dtype != y.dtype:
        common = np.result_type(x.dtype, y.dtype)
        x, y = x.astype(common, copy=False), y.astype(common, copy=False)
    return x, y


def iou(a: Any, b: Any, *, device: str | None = None) -> Any:
    """Pairwise intersection over union of xyxy boxes.

    Parameters
    ----------
    a : array (N, 4)
        xyxy boxes, finite with ``x1 <= x2`` and ``y1 <= y2`` (else ``ValueError`` naming the
        first bad row); any real dtype.
    b : array (M, 4)
        As ``a``. Mixed dtypes are computed in the wider one.
    device : {None, "auto", "cpu", "cuda"}
        None follows the data.

    Returns
    -------
    array (N, M)
        float32 for float16/bfloat16/float32 input, float64 for float64 or integer input; the
        array kind and device of ``a``. Two empty boxes have IoU 0.

    Notes
    -----
    O(N·M) time; peak memory is the output (N·M values, the only N×M allocation) plus a
    converted copy of an input that is not float32/float64 or not contiguous. Computed as
    ``inter / (area_a + area_b - inter)`` in the input precision, as torchvision's ``box_iou``.
    On the GPU (CUDA input or ``device="cuda"``) the matrix is bit-identical to the CPU's; the
    call waits once for the device to check the boxes.
    """
    if use_cuda(a, device, "curata.boxes.iou"):
        return _cuda_ops().pairwise_iou(a, b, generalized=False)
    x, y = _pair(a, b)
    return _array.like(_core.pairwise_iou(x, y, False), a)


def giou(a: Any, b: Any, *, device: str | None = None) -> Any:
    """Pairwise generalised IoU (Rezatofighi et al., 2019) of xyxy boxes, in [-1, 1].

    ``giou = iou - (hull - union) / hull`` where ``hull`` is the area of the smallest box
    enclosing both; a zero-area hull (e.g. two identical points) gives 0.

    Parameters
    ----------
    a : array (N, 4)
        xyxy boxes, finite with ``x1 <= x2`` and ``y1 <= y2``; any real dtype.
    b : array (M, 4)
        As ``a``.
    device : {None, "auto", "cpu", "cuda"}
        None follows the data.

    Returns
    -------
    array (N, M)
        float32 for float16/bfloat16/float32 input, float64 for float64 or integer input; the
        array kind and device of ``a``.

    Notes
    -----
    O(N·M) time; peak memory as :func:`iou` (the N×M output plus converted copies of the
    inputs). Also runs on the GPU for CUDA input, bit-identical to the CPU.
    """
    if use_cuda(a, device, "curata.boxes.giou"):
        return _cuda_ops().pairwise_iou(a, b, generalized=True)
    x, y = _pair(a, b)
    return _array.like(_core.pairwise_iou(x, y, True), a)


def _nms_options(iou_threshold, score_threshold, max_det):
    """Checked (iou_threshold, score_threshold or None, max_det or None); shared with the CUDA path."""
    iou_threshold = _array.check_probability(iou_threshold, "iou_threshold")
    if score_threshold is not None:
        if isinstance(score_threshold, bool) or not isinstance(score_threshold, (int, float, np.number)):
            raise TypeError(f"score_threshold must be a number or None, got {type(score_threshold).__name__}")
        if np.isnan(score_threshold):
            raise ValueError("score_threshold must not be NaN")
        score_threshold = float(score_threshold)
    max_det = _array.check_count(max_det, "max_det")
    return iou_threshold, score_threshold, max_det


def _nms_call(boxes, scores, classes, image_ids, valid, per_image, iou_threshold, score_threshold, max_det):
    """Validated call into the core: returns (keep, image_ids, image_counts) as numpy arrays."""
    iou_threshold, score_threshold, max_det = _nms_options(iou_threshold, score_threshold, max_det)
    return _core.nms(
        boxes, scores, classes, image_ids, per_image, valid, iou_threshold, score_threshold,
        -1 if max_det is None else max_det,
    )


def _flat_inputs(boxes, scores, classes, image_ids):
    b = _array.float_array(boxes, "boxes", shape=(None, 4))
    n = b.shape[0]
    s = _array.float_array(scores, "scores", dtype=b.dtype)
    _array.check_shape(s, "scores", (n,))
    c = None if classes is None else _array.int_array(classes, "classes", length=n)
    im = None if image_ids is None else _array.int_array(image_ids, "image_ids", length=n)
    return b, s, c, im


def nms(
    boxes: Any,
    scores: Any,
    iou_threshold: float = 0.5,
    score_threshold: float | None = None,
    max_det: int | None = None,
    *,
    image_ids: Any = None,
    device: str | None = None,
) -> Any:
    """Greedy non-maximum suppression (class-agnostic).

    A box is suppressed when its IoU with an already kept, higher-ranked box is
    ``> iou_threshold`` (torchvision's rule). Boxes are ranked by descending score, ties by lower
    index, so the result is deterministic.

    Parameters
    ----------
    boxes : array (N, 4), xyxy
    scores : array (N,); cast to the box dtype. NaN raises ValueError.
    iou_threshold : float in [0, 1]
    score_threshold : float, optional
        Boxes with ``score <= score_threshold`` are dropped before NMS.
    max_det : int, optional
        Keep at most this many boxes (per image when ``image_ids`` is given).
    image_ids : int array (N,), optional
        Run NMS independently per image in one call (parallel over images).
    device : {None, "auto", "cpu", "cuda"}

    Returns
    -------
    keep : int64 array (K,)
        Indices into the input of the kept boxes, by descending score; with ``image_ids``, grouped
        by ascending image id, each group by descending score.

    Notes
    -----
    Work is O(N log N + N·K) for K kept boxes, memory O(N). See :func:`batched_nms` for classes.
    """
    return batched_nms(
        boxes, scores, None, iou_threshold, score_threshold, max_det, image_ids=image_ids, device=device
    )


def batched_nms(
    boxes: Any,
    scores: Any,
    classes: Any,
    iou_threshold: float = 0.5,
    score_threshold: float | None = None,
    max_det: int | None = None,
    *,
    image_ids: Any = None,
    valid: Any = None,
    device: str | None = None,
) -> Any:
    """NMS run independently per class (and per image), merged by score.

    Exactly as if :func:`nms` ran on each class separately and the kept boxes were merged by
    descending score — not torchvision's coordinate-offset trick, which loses suppressions in
    float16 and at large coordinates.

    Parameters
    ----------
    boxes : array (N, 4) xyxy, or (B, N, 4) for a padded batch of B images
    scores : array (N,) or (B, N)
    classes : int array (N,) or (B, N), or None for class-agnostic NMS
    iou_threshold, score_threshold, max_det : as in :func:`nms`; ``max_det`` is per image
    image_ids : int array (N,), optional
        Flat input only: the image of each box.
    valid : bool array (B, N), optional
        Batched input only: which entries are real boxes (padding boxes, scores and classes are
        ignored and not validated).
    device : {None, "auto", "cpu", "cuda"}

    Returns
    -------
    keep : int64 array (K,)
        Flat input: indices of kept boxes by descending score (grouped by ascending image id when
        ``image_ids`` is given).
    list of B int64 arrays
        Batched (B, N, 4) input: for each image, indices into its N boxes by descending score.

    Notes
    -----
    One stable sort, then the (image, class) groups run in parallel on the CPU. Work is
    O(N log N + Σ_groups n_g·k_g), memory O(N).

    On the GPU the kept indices are identical to the CPU's. Radix sorts group the boxes, each
    group of n_g boxes fills an n_g × n_g bit mask (upper triangle) that is resolved greedily on
    the device: work O(N + Σ n_g²), temporary device memory about 60·N bytes plus Σ n_g²/16 bytes
    (56 MB for one class of 30 000 boxes). The call waits twice for the device: once to size the
    mask (and to raise on invalid input), once for the result count.
    """
    if not hasattr(boxes, "ndim"):  # a Python sequence: converted once here, with the argument's name
        boxes = _array._to_numpy_view(boxes, "boxes")
    batched = boxes.ndim == 3
    if batched and image_ids is not None:
        raise ValueError(
            "image_ids is only accepted with flat (N, 4) boxes; batched (B, N, 4) input is per image already"
        )
    if use_cuda(boxes, device, "curata.boxes.batched_nms"):
        return _cuda_ops().batched_nms(
            boxes, scores, classes, iou_threshold, score_threshold, max_det, image_ids=image_ids, valid=valid
        )
    if batched:
        return _batched_3d(boxes, scores, classes, valid, iou_threshold, score_threshold, max_det)
    if valid is not None:
        raise ValueError("valid is only accepted with batched (B, N, 4) boxes; use image_ids for flat input")
    b, s, c, im = _flat_inputs(boxes, scores, classes, image_ids)
    keep, _, _ = _nms_call(b, s, c, im, None, 0, iou_threshold, score_threshold, max_det)
    return _array.like(keep, boxes)


_FLAT_ROW = re.compile(r"\b(boxes|scores)\[(\d+)\]")


def _batched_error(exc: ValueError, per_image: int) -> ValueError:
    """The core's message for a flattened (B * N) row, with the caller's (image, box) index:
    ``boxes[5]`` of a (2, 3, 4) batch is ``boxes[1, 2]``; ``exc`` itself when it names no row."""
    if per_image == 0 or not _FLAT_ROW.search(str(exc)):
        return exc
    text = _FLAT_ROW.sub(lambda m: f"{m.group(1)}[{int(m.group(2)) // per_image}, {int(m.group(2)) % per_image}]", str(exc))
    return ValueError(text)


def _batched_3d(boxes, scores, classes, valid, iou_threshold, score_threshold, max_det):
    b = _array.float_array(boxes, "boxes", shape=(None, None, 4))
    n_images, per_image = b.shape[0], b.shape[1]
    s = _array.float_array(scores, "scores", dtype=b.dtype)
    _array.check_shape(s, "scores", (n_images, per_image))
    v = v2 = None
    if valid is not None:
        v2 = _array._to_numpy_view(valid, "valid")
        _array.check_shape(v2, "valid", (n_images, per_image))
        if v2.dtype != np.bool_:
            raise TypeError(f"valid must be a bool array, got {v2.dtype}")
        v = np.ascontiguousarray(v2.reshape(-1)).view(np.uint8)
    c = None
    if classes is not None:
        c2 = _array._to_numpy_view(classes, "classes")
        _array.check_shape(c2, "classes", (n_images, per_image))
        if v2 is not None and c2.dtype.kind == "f":
            c2 = np.where(v2, c2, 0)  # padding may hold NaN like its boxes and scores
        c = _array.int_array(c2.reshape(-1), "classes")
    try:
        keep, _, counts = _nms_call(
            b.reshape(-1, 4), s.reshape(-1), c, None, v, max(per_image, 1), iou_threshold, score_threshold, max_det
        )
    except ValueError as exc:  # the core names the flattened row: name (image, box)
        raise _batched_error(exc, per_image) from None
    if per_image == 0:
        counts = np.zeros(n_images, dtype=np.int64)
    local = keep - np.repeat(np.arange(n_images, dtype=np.int64) * per_image, counts)
    parts = np.split(local, np.cumsum(counts)[:-1]) if n_images else []
    return [_array.like(p, boxes) for p in parts]


def postprocess(
    pred: Any,
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    classes: Any = None,
    agnostic: bool = False,
    multi_label: bool = False,
    max_det: int = 300,
    max_nms: int = 30000,
    *,
    padded: bool = False,
    device: str | None = None,
) -> list[Any] | tuple[Any, Any]:
    """Detections from a YOLO-style head for a whole batch (Ultralytics' ``non_max_suppression``).

    Parameters
    ----------
    pred : array (B, 4 + C, A)
        Per anchor: cx, cy, w, h, then C class scores (already sigmoid-activated).
    conf_threshold : float in [0, 1]
        Candidates have class score ``> conf_threshold``, compared in the dtype of ``pred`` (the
        threshold rounded to float16, bfloat16 or float32 for such ``pred``), as torch compares a
        tensor with a Python float in Ultralytics. NaN class scores raise ValueError (``padded=True``:
        the image's count is -1).
    iou_threshold : float in [0, 1]
    classes : int sequence, optional
        Keep only these classes.
    agnostic : bool
        One NMS over all classes instead of one per class.
    multi_label : bool
        Every (anchor, class) over the threshold is a candidate (else only the best class).
    max_det : int
        Detections kept per image, by descending score.
    max_nms : int
        Candidates per image entering NMS: when an image has more, the ``max_nms`` best by
        descending score are kept (ties to the lower anchor, then class), the others dropped.
        Ultralytics' default 30000. It also bounds the GPU workspace (see Notes).
    padded : bool
        Return one fixed-size ``(dets, counts)`` pair instead of a list (see Returns). On the GPU
        this form never waits for the device: it is queued on the current stream and can be
        consumed by more device work; nothing reaches the host until you read it.
    device : {None, "auto", "cpu", "cuda"}

    Returns
    -------
    list of B arrays (n_i, 6)
        Default. ``[x1, y1, x2, y2, score, class]`` in the dtype of ``pred`` (float16/bfloat16
        are computed in float32 and cast back; integer input gives float64), by descending score.
        On the GPU each entry is a (contiguous) view into one padded device buffer.
    dets : array (B, max_det, 6), with ``padded=True``
        Same dtype and rows: image ``b``'s detections are ``dets[b, :counts[b]]``; every row after
        them is zeros (padding value 0 in all six columns).
    counts : int32 array (B,), with ``padded=True``
        Detections per image, or **-1** for an image whose input is invalid (a NaN class score, or
        a selected candidate decoding to a non-finite box or one with x2 < x1; its rows are all
        zeros). The list form raises ``ValueError`` for such input instead; the padded form
        cannot raise on the GPU without waiting, so both devices flag the image instead. Check
        ``(counts < 0).any()`` when you read the result.

    Notes
    -----
    The same detections as Ultralytics for the same options, except: NMS is exactly per class
    (Ultralytics offsets boxes by ``class * 7680``, which differs for coordinates beyond that),
    no image is ever dropped on a time limit, and equal scores are ordered by anchor. Parallel
    over images; memory O(B·A) for the candidates. ``padded=True`` on the CPU adds the
    zero-filled (B, max_det, 6) output; on invalid input it re-runs the batch image by image to
    find the invalid images (that error path only).

    On the GPU the rows are bit-identical to the CPU's, in a fixed number of launches with a
    workspace sized from the shapes alone, so nothing waits for a count: per-image candidates
    capped at ``K = min(max_nms, A * classes per anchor)`` by a radix selection of the K-th best
    (only for images over the cap), compaction, a stable segmented sort by score then by class,
    greedy NMS per (image, class) in blocks of 64 boxes (no N×N mask), and the padded output.
    ``padded=True`` makes no host sync at all; the list form makes exactly one (the counts, to
    split the rows). Device memory: the (B, max_det, 6) output plus a workspace of about
    ``80·B·K + 12·B·A + 1 KB·B`` bytes (``110·B·K`` for float64), taken in one piece from the
    caller's framework (torch's caching allocator or CuPy's memory pool, on the current stream),
    so repeated calls do no ``cudaMalloc``.
    """
    if not isinstance(agnostic, (bool, np.bool_)):
        raise TypeError(f"agnostic must be a bool, got {type(agnostic).__name__}")
    if not isinstance(multi_label, (bool, np.bool_)):
        raise TypeError(f"multi_label must be a bool, got {type(multi_label).__name__}")
    conf_threshold = _conf_in_pred_dtype(_array.check_probability(conf_threshold, "conf_threshold"), pred)
    iou_threshold = _array.check_probability(iou_threshold, "iou_threshold")
    max_det = _array.check_count(max_det, "max_det", allow_none=False)
    max_nms = _array.check_count(max_nms, "max_nms", allow_none=False)
    allowed = None if classes is None else _array.int_array(np.atleast_1d(_array._to_numpy_view(classes, "classes")), "classes")
    if not isinstance(padded, (bool, np.bool_)):
        raise TypeError(f"padded must be a bool, got {type(padded).__name__}")
    if use_cuda(pred, device, "curata.boxes.postprocess"):
        return _cuda_ops().postprocess(
            pred, conf_threshold, iou_threshold, allowed, bool(agnostic), bool(multi_label), max_det, max_nms,
            padded=bool(padded),
        )
    p = _array.float_array(pred, "pred")
    if p.ndim != 3 or p.shape[1] < 5:
        raise ValueError(f"pred must have shape (B, 4 + n_classes, A) with n_classes >= 1, got {tuple(p.shape)}")
    options = (conf_threshold, iou_threshold, allowed, bool(agnostic), bool(multi_label), max_det, max_nms)
    if padded:
        dets, counts = _postprocess_padded_cpu(p, options, max_det)
        return _array.like_float(dets, pred), _array.like(counts, pred)
    rows, counts, _ = _core.postprocess(p, *options)
    parts = np.split(rows, np.cumsum(counts)[:-1]) if len(counts) else []
    return [_array.like_float(r, pred) for r in parts]


def _conf_in_pred_dtype(conf: float, pred: Any) -> float:
    """``conf`` rounded to float16/bfloat16 for such ``pred``, else unchanged.

    Ultralytics compares ``score > conf`` with torch, which rounds the Python float to the
    tensor's dtype; the scores are computed in float32 here, where the half-precision threshold is
    exact, so every score is decided as in half precision. (float32 rounding is the core's.)"""
    dtype = getattr(pred, "dtype", None)
    if dtype is None:
        return conf
    if _array.kind_of(pred) == "torch":
        torch = _array._torch()
        if dtype in (torch.float16, torch.bfloat16):
            return float(torch.tensor(conf, dtype=dtype))
        return conf
    try:
        half = np.dtype(dtype).newbyteorder("=") == np.float16
    except TypeError:
        return conf
    return float(np.float16(conf)) if half else conf


def _postprocess_padded_cpu(p: np.ndarray, options: tuple, max_det: int) -> tuple[np.ndarray, np.ndarray]:
    """The padded form on the CPU: the list form's rows in a zero-filled (B, max_det, 6) array.

    Images are independent (candidates, cap, NMS and max_det are all per image), so when the batch
    holds invalid input the images are re-run one by one and only the invalid ones get count -1:
    the same result the GPU computes in one pass, at extra cost only on that error path.
    """
    n_images = p.shape[0]
    dets = np.zeros((n_images, max_det, 6), dtype=p.dtype)
    counts = np.zeros(n_images, dtype=np.int32)
    try:
        runs = [(0, _core.postprocess(p, *options))]
    except ValueError:
        runs = []
        for b in range(n_images):
            try:
                runs.append((b, _core.postprocess(p[b : b + 1], *options)))
            except ValueError:
                counts[b] = -1
    for first, (rows, image_counts, _) in runs:
        image_counts = np.asarray(image_counts, dtype=np.int64)
        starts = np.cumsum(image_counts) - image_counts
        image = np.repeat(np.arange(len(image_counts)), image_counts)
        position = np.arange(len(rows)) - np.repeat(starts, image_counts)
        dets[first + image, position] = rows
        counts[first : first + len(image_counts)] = image_counts
    return dets, counts
