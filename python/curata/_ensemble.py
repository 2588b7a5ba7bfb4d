"""Ensembling and evaluation ops, re-exported by :mod:`curata.boxes`: weighted boxes fusion,
soft-NMS and greedy COCO-style matching. The arithmetic lives in the C++ core
(``cpp/src/wbf.cpp``, ``soft_nms.cpp``, ``match.cpp``); this module checks arguments and converts
arrays.

These ops run on the CPU. CUDA tensors and CuPy arrays are accepted: they are copied to the host
and the results are returned on their device.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from . import _array, _core

__all__ = ["wbf", "soft_nms", "match", "MatchResult", "WBF_CONF_TYPES", "SOFT_NMS_METHODS"]

log = logging.getLogger("curata")

WBF_CONF_TYPES = {"avg": 0, "max": 1, "box_and_model_avg": 2, "absent_model_aware_avg": 3}
SOFT_NMS_METHODS = {"linear": 0, "gaussian": 1}


def _choice(value: Any, name: str, choices: dict[str, int]) -> int:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return choices[value]


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value}")
    return v


def _per_model(x: Any, name: str) -> list[Any]:
    """The entries of a per-model list (a list/tuple, or an array whose first axis is the model)."""
    if isinstance(x, (list, tuple)):
        return list(x)
    ndim = getattr(x, "ndim", None)
    if ndim is not None and ndim >= 2:
        return [x[i] for i in range(x.shape[0])]
    raise TypeError(f"{name} must be a list with one array per model, got {type(x).__name__}")


def _model_boxes(b: Any, name: str) -> np.ndarray:
    if type(b) is np.ndarray and b.dtype in _array.FLOAT_DTYPES and b.ndim == 2 and b.shape[1] == 4:
        return b  # fast path: the per-call overhead matters for a few hundred boxes
    a = _array.float_array(b, name)
    if a.ndim == 1 and a.shape[0] == 0:  # [] is a model with no boxes
        return a.reshape(0, 4)
    _array.check_shape(a, name, (None, 4))
    return a


def _model_scores(x: Any, name: str, n: int, dtype: np.dtype) -> tuple[np.ndarray, np.dtype]:
    """The scores as float32/float64, and the dtype ensemble-boxes compares them with the skip
    threshold in: their own float dtype (float16 included), float64 for integers and numbers."""
    if type(x) is np.ndarray and x.dtype in _array.FLOAT_DTYPES and x.shape == (n,):
        return x, x.dtype
    v = _array._to_numpy_view(x, name)
    own = v.dtype.newbyteorder("=") if v.dtype.kind == "f" else np.dtype(np.float64)
    a = _array.float_array(v, name)
    if a.ndim == 1 and a.shape[0] == 0 and n == 0:
        return a.astype(dtype), own
    _array.check_shape(a, name, (n,))
    return a, own


def _round_to(value: float, dtype: np.dtype) -> float:
    """``value`` rounded to ``dtype`` (float16/32/64). Beyond the dtype's range it rounds to inf
    (every score is then below it, as in ensemble-boxes); np.errstate costs about 1 us per call,
    so it is entered only where an overflow is possible."""
    if value < 65504.0:  # float16's largest value: no float dtype overflows below it
        return float(dtype.type(value))
    with np.errstate(over="ignore"):
        return float(dtype.type(value))


def _labels(x: Any, name: str, n: int) -> np.ndarray:
    if type(x) is np.ndarray and x.dtype == np.int64 and x.shape == (n,):
        return x
    a = _array._to_numpy_view(x, name)
    if a.ndim == 1 and a.shape[0] == 0 and n == 0:
        return np.zeros(0, dtype=np.int64)
    return _array.int_array(a, name, length=n)


def wbf(
    boxes_list: Sequence[Any],
    scores_list: Sequence[Any],
    labels_list: Sequence[Any],
    weights: Sequence[float] | None = None,
    iou_threshold: float = 0.55,
    skip_box_threshold: float = 0.0,
    conf_type: str = "avg",
    *,
    allows_overflow: bool = False,
    image_ids: Sequence[Any] | None = None,
) -> tuple[Any, ...]:
    """Weighted boxes fusion of the predictions of several models (Solovyev et al., 2021).

    The same fused boxes as ensemble-boxes' ``weighted_boxes_fusion`` (same clusters; coordinates
    and scores equal to float rounding) for the same arguments.

    Parameters
    ----------
    boxes_list : list of M arrays (N_m, 4)
        Boxes of each model, xyxy normalised to [0, 1]. An empty list ``[]`` is a model with no
        boxes. Coordinates outside [0, 1] are clipped and ``x2 < x1`` / ``y2 < y1`` swapped (one
        ``logging`` warning per call with the counts); boxes of zero area after clipping are
        dropped. NaN coordinates raise ``ValueError``.
    scores_list : list of M arrays (N_m,)
        Finite scores; non-finite raise ``ValueError``.
    labels_list : list of M int arrays (N_m,)
        Boxes are fused only with boxes of the same label.
    weights : sequence of M floats > 0, optional
        Model weights (default 1 each). A box's score is multiplied by its model's weight.
    iou_threshold : float in [0, 1]
        A box joins the fused box with which its IoU is highest when that IoU is ``>`` this.
    skip_box_threshold : float >= 0
        Boxes with score ``<`` this (before weighting) are ignored. As in ensemble-boxes, each
        model's scores are compared in their own dtype (the threshold is rounded to float16 /
        float32 for such scores).
    conf_type : {"avg", "max", "box_and_model_avg", "absent_model_aware_avg"}
        How the fused score is computed (see Notes).
    allows_overflow : bool
        ``conf_type="avg"`` only: scale by the cluster size even when it exceeds the number of
        models, so the score may exceed 1.
    image_ids : list of M int arrays (N_m,), optional
        Batched form: the image of every box. Each image is fused independently, as if ``wbf`` ran
        once per image with the same models and weights; images run in parallel.

    Returns
    -------
    boxes : array (K, 4)
        Fused xyxy boxes in [0, 1].
    scores : array (K,)
        Fused scores. ``boxes`` and ``scores`` have the common dtype of the inputs (float32 when
        every input is float16/32, else float64; a Python list, ``[]`` included, counts as
        float64: give a model without boxes as ``np.empty((0, 4), np.float32)`` to keep float32)
        and the array kind of the first entry of ``boxes_list`` that is an array (not a list
        such as ``[]``).
    labels : int64 array (K,)
    image_ids : int64 array (K,)
        Only with ``image_ids``: the image of each fused box.

    Ordered by descending score (with ``image_ids``: grouped by ascending image id first); equal
    scores by ascending label, then by cluster creation.

    Notes
    -----
    Per (image, label), boxes are visited in descending weighted score; equal scores in input
    order (model, then row) — ensemble-boxes' order among equal scores is unspecified. Each box
    joins the fused box of highest IoU (the earliest on ties) if that IoU is ``> iou_threshold``,
    else it starts a new cluster; the IoU is taken against the fused box as it stands at that
    moment. A cluster's box is the score-weighted mean of its members. As in ensemble-boxes, a
    cluster of two or more boxes accumulates that mean in float32 (coordinates and the
    intermediate score carry float32 precision, ~6e-8), while a cluster of one keeps its box and
    score exactly; curata replicates this rounding because the fused box decides which later boxes
    join, and keeping those decisions identical is what makes the results comparable. If every
    member of a cluster has score 0, the box is the unweighted mean (ensemble-boxes gives NaN).

    With ``s`` the mean weighted score of the cluster (``max``: the highest), ``n`` its size,
    ``W`` the sum of its members' model weights and ``M`` the number of models:

    - ``avg``: ``s * min(M, n) / sum(weights)`` (``allows_overflow``: ``s * n / sum(weights)``)
    - ``max``: ``s / max(weights)``
    - ``box_and_model_avg``: ``s * n / W * sum(weights of models in the cluster) / sum(weights)``
    - ``absent_model_aware_avg``: ``s * n / (W + sum(weights of models absent from the cluster))``

    Differences from ensemble-boxes, all raising where it prints, exits or silently continues:
    mismatched lengths, unknown ``conf_type``, wrong number of ``weights`` (it resets them to 1),
    weights <= 0, NaN boxes, non-finite scores, non-integral labels (it truncates 1.7 to 1), and
    finite scores x weights so large that a cluster's float32 sums overflow (it returns NaN/inf
    boxes). Labels are returned as int64, not float.

    Work is O(N log N + Σ n_g·c_g) over (image, label) groups with n_g boxes and c_g clusters;
    memory O(N) for N boxes in all. Each thread that ran a group keeps its scratch buffers between
    calls (a few MB at most; buffers grown by a group of more than 4096 boxes are released).
    """
    boxes_seq = _per_model(boxes_list, "boxes_list")
    scores_seq = _per_model(scores_list, "scores_list")
    labels_seq = _per_model(labels_list, "labels_list")
    n_models = len(boxes_seq)
    for seq, name in ((scores_seq, "scores_list"), (labels_seq, "labels_list")):
        if len(seq) != n_models:
            raise ValueError(f"{name} must have one entry per model ({n_models}), got {len(seq)}")
    images_seq = None
    if image_ids is not None:
        images_seq = _per_model(image_ids, "image_ids")
        if len(images_seq) != n_models:
            raise ValueError(f"image_ids must have one entry per model ({n_models}), got {len(images_seq)}")
    if weights is None:
        w = np.array([1.0] * n_models, dtype=np.float64)
    else:
        w = _array.float_array(weights, "weights", dtype=np.dtype(np.float64))
        if w.ndim != 1 or w.shape[0] != n_models:
            raise ValueError(f"weights must have one entry per model ({n_models}), got shape {tuple(w.shape)}")
        if not (np.all(np.isfinite(w)) and np.all(w > 0)):
            raise ValueError(f"weights must be finite and > 0, got {w.tolist()}")
    code = _choice(conf_type, "conf_type", WBF_CONF_TYPES)
    iou_threshold = _array.check_probability(iou_threshold, "iou_threshold")
    skip = _number(skip_box_threshold, "skip_box_threshold")
    if skip < 0:
        raise ValueError(f"skip_box_threshold must be >= 0, got {skip_box_threshold}")
    if not isinstance(allows_overflow, (bool, np.bool_)):
        raise TypeError(f"allows_overflow must be a bool, got {type(allows_overflow).__name__}")

    boxes, scores, labels, images, score_dtypes = [], [], [], [], []
    offsets = [0]
    for m in range(n_models):
        b = _model_boxes(boxes_seq[m], f"boxes_list[{m}]")
        n = b.shape[0]
        s, own = _model_scores(scores_seq[m], f"scores_list[{m}]", n, b.dtype)
        boxes.append(b)
        scores.append(s)
        score_dtypes.append(own)
        labels.append(_labels(labels_seq[m], f"labels_list[{m}]", n))
        if images_seq is not None:
            images.append(_labels(images_seq[m], f"image_ids[{m}]", n))
        offsets.append(offsets[-1] + n)
    # Inputs are float32/float64 by now: the common dtype is float64 unless all are float32. The
    # per-call cost of numpy's dtype machinery shows at a few hundred boxes, hence plain Python.
    f64 = np.dtype(np.float64)
    dtype = f64 if not n_models or any(a.dtype == f64 for a in boxes) or any(a.dtype == f64 for a in scores) \
        else np.dtype(np.float32)
    skip_per_model = None
    if any(d != f64 for d in score_dtypes):
        # ensemble-boxes compares each score with the threshold in the score's own dtype (numpy 2
        # casts the Python float to float16/float32 for such a score): round the threshold the
        # same way, per model, since models may differ (the common dtype would be wrong for some).
        rounded = _round_to(skip, score_dtypes[0])
        if all(d == score_dtypes[0] for d in score_dtypes) and math.isfinite(rounded):
            skip = rounded  # one dtype (the usual case): one threshold, no per-model array
        else:
            skip_per_model = np.array([_round_to(skip, d) for d in score_dtypes], dtype=np.float64)
    if n_models:
        flat_boxes = np.concatenate(boxes, dtype=dtype) if n_models > 1 else boxes[0].astype(dtype, copy=False)
        flat_scores = np.concatenate(scores, dtype=dtype) if n_models > 1 else scores[0].astype(dtype, copy=False)
        flat_labels = np.concatenate(labels) if n_models > 1 else labels[0]
        flat_images = (np.concatenate(images) if n_models > 1 else images[0]) if images_seq is not None else None
    else:
        flat_boxes, flat_scores, flat_labels = np.zeros((0, 4), dtype), np.zeros(0, dtype), np.zeros(0, np.int64)
        flat_images = np.zeros(0, np.int64) if images_seq is not None else None

    out_boxes, out_scores, out_labels, out_images, n_clipped, n_swapped, n_zero = _core.wbf(
        np.ascontiguousarray(flat_boxes), np.ascontiguousarray(flat_scores), np.ascontiguousarray(flat_labels),
        None if flat_images is None else np.ascontiguousarray(flat_images), np.array(offsets, dtype=np.int64), w,
        iou_threshold, skip, code, bool(allows_overflow), skip_per_model,
    )
    if not (np.isfinite(out_boxes).all() and np.isfinite(out_scores).all()):
        # Finite inputs whose weighted sums overflow (inf / inf = NaN boxes); ensemble-boxes
        # returns such NaN/inf silently.
        raise ValueError(
            "wbf: the fused boxes or scores overflowed (not finite): score x model weight summed over "
            "a cluster must stay well below 3.4e38 (clusters accumulate in float32, as ensemble-boxes); "
            "scale the scores or the weights down"
        )
    if n_clipped or n_swapped or n_zero:
        parts = [
            f"{count} {what}"
            for count, what in (
                (n_clipped, "clipped to [0, 1]"),
                (n_swapped, "swapped (x2 < x1 or y2 < y1)"),
                (n_zero, "dropped (zero area after clipping)"),
            )
            if count
        ]
        log.warning("curata.boxes.wbf: boxes are expected normalised xyxy; boxes %s", ", ".join(parts))
    # The first model given as an array decides the output kind: [] (a model without boxes, as
    # documented) carries no kind, so it must not turn torch/CuPy input into numpy output.
    ref = next((b for b in boxes_seq if not isinstance(b, (list, tuple))), boxes_seq[0] if n_models else out_boxes)
    result = (
        _array.like(out_boxes.astype(dtype, copy=False), ref),
        _array.like(out_scores.astype(dtype, copy=False), ref),
        _array.like(out_labels, ref),
    )
    if images_seq is not None:
        result = result + (_array.like(out_images, ref),)
    return result


def soft_nms(
    boxes: Any,
    scores: Any,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    method: str = "linear",
    score_threshold: float = 0.001,
    *,
    classes: Any = None,
    image_ids: Any = None,
) -> tuple[Any, Any]:
    """Soft-NMS (Bodla et al., 2017): decay the scores of overlapping boxes instead of removing them.

    The same boxes, order and scores as ensemble-boxes' soft-NMS (``cpu_soft_nms_float``) for
    boxes in [0, 1] of positive area and distinct scores (on equal scores ensemble-boxes picks by
    position in an array its own swaps reorder, so order and kept set may differ there).
    Repeatedly the remaining box of highest current score is selected (equal scores: lower index)
    and every other remaining box of its group is decayed by its IoU with it:

    - ``"linear"``: ``score *= 1 - iou`` when ``iou > iou_threshold``, else unchanged;
    - ``"gaussian"``: ``score *= exp(-iou² / sigma)`` (``iou_threshold`` is not used).

    Selected boxes whose score is ``> score_threshold`` are kept.

    Parameters
    ----------
    boxes : array (N, 4), xyxy
        Any coordinates (not clipped); finite with ``x1 <= x2`` and ``y1 <= y2`` else
        ``ValueError``. Zero-area boxes are kept (they overlap nothing).
    scores : array (N,)
        Finite, else ``ValueError``. Decays are stored in the scores' dtype (float16: float32).
    iou_threshold : float in [0, 1]
    sigma : float > 0
    method : {"linear", "gaussian"}
    score_threshold : float
        Compared in the score dtype, like ensemble-boxes under numpy 2.
    classes : int array (N,), optional
        Run independently per class (ensemble-boxes runs per label).
    image_ids : int array (N,), optional
        Run independently per image, all images in one parallel call.

    Returns
    -------
    indices : int64 array (K,)
        Indices into the input, by descending decayed score, equal scores by lower index; with
        ``image_ids`` grouped by ascending image id first. Precisely: one (image, class) group
        is in selection order and the groups of an image are merged by descending decayed score,
        which is the same while scores are >= 0; a decayed negative score rises toward 0, so with
        a negative ``score_threshold`` a later selection may score higher than an earlier one.
    scores : array (K,)
        The decayed scores of those boxes, in the scores' dtype. The inputs are not modified.

    Notes
    -----
    IoU in double; each decay ``weight * score`` is evaluated in double and stored in the score
    dtype, as ensemble-boxes stores it in its score array (float32 scores round after each decay
    there too). ``exp`` is curata's own, within 1 ulp of libm's and the same on every machine. ensemble-boxes returns the *undecayed* input scores of the kept boxes and clips
    boxes to [0, 1] and drops zero-area ones first; curata returns the decayed scores and does
    neither. Boxes whose score falls to ``<= score_threshold`` (>= 0) leave the loop at once, which
    changes no result. Work O(Σ_g n_g·k_g) for k_g selections in a group of n_g boxes (a
    vectorised pass per selection; large groups with sparse overlap visit only overlapping boxes
    through a grid), memory O(N); groups run in parallel.
    """
    b = _array.float_array(boxes, "boxes", shape=(None, 4))
    n = b.shape[0]
    s = _array.float_array(scores, "scores")
    _array.check_shape(s, "scores", (n,))
    c = None if classes is None else _array.int_array(classes, "classes", length=n)
    im = None if image_ids is None else _array.int_array(image_ids, "image_ids", length=n)
    iou_threshold = _array.check_probability(iou_threshold, "iou_threshold")
    sigma = _number(sigma, "sigma")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    code = _choice(method, "method", SOFT_NMS_METHODS)
    score_threshold = _number(score_threshold, "score_threshold")
    keep, kept_scores, _, _ = _core.soft_nms(b, s, c, im, iou_threshold, sigma, code, score_threshold)
    return _array.like(keep, boxes), _array.like(kept_scores, boxes)


@dataclass
class MatchResult:
    """Result of :func:`match`. Every field is a 1-D array of the input's kind.

    Attributes
    ----------
    pred_index, gt_index : int64 (K,)
        Matched pairs (true positives), in the order they were matched: by descending prediction
        score, equal scores by lower index.
    iou : float64 (K,)
        IoU of each pair.
    unmatched_pred : int64
        False positives: predictions matched to nothing, ascending.
    unmatched_gt : int64
        False negatives: non-crowd GT left unmatched, ascending. Crowd GT are never listed.
    ignored_pred, ignored_gt : int64
        Predictions that matched only a crowd GT (neither TP nor FP, as COCO ignores them), with
        that crowd GT, in matching order.
    ignored_ioa : float64
        Intersection over prediction area of each ignored prediction with its crowd GT.
    """

    pred_index: Any
    gt_index: Any
    iou: Any
    unmatched_pred: Any
    unmatched_gt: Any
    ignored_pred: Any
    ignored_gt: Any
    ignored_ioa: Any


def match(
    pred_boxes: Any,
    pred_scores: Any,
    pred_classes: Any,
    gt_boxes: Any,
    gt_classes: Any,
    iou_threshold: float = 0.5,
    gt_crowd: Any = None,
    *,
    pred_image_ids: Any = None,
    gt_image_ids: Any = None,
) -> MatchResult:
    """Greedy matching of predictions to ground truth with COCO's rules (pycocotools' evaluateImg).

    Predictions are taken in descending score order (equal scores: lower index first). Each takes,
    among the still unmatched non-crowd GT of its class, the one with the highest IoU that is
    ``>= min(iou_threshold, 1 - 1e-10)``; among equal IoUs the later GT wins, as in pycocotools.
    Only when no non-crowd GT qualifies, it may match a crowd GT, whose overlap is intersection /
    prediction area; crowd GT can be matched any number of times and such a prediction is ignored
    (not a false positive).

    Parameters
    ----------
    pred_boxes : array (P, 4), xyxy
    pred_scores : array (P,); NaN raises ``ValueError``
    pred_classes : int array (P,) or None
    gt_boxes : array (G, 4), xyxy
    gt_classes : int array (G,) or None
        Predictions match only GT of the same class; both None = class-agnostic.
    iou_threshold : float in [0, 1]
    gt_crowd : bool array (G,), optional
        COCO ``iscrowd`` flags.
    pred_image_ids, gt_image_ids : int arrays (P,) and (G,), optional
        Batched form: match many images in one call (predictions only match GT of their image).
        Both or neither.

    Returns
    -------
    MatchResult
        Matched pairs with their IoU, false positives, false negatives and ignored predictions;
        indices refer to the inputs.

    Notes
    -----
    Boxes must be finite with ``x1 <= x2`` and ``y1 <= y2``. Overlaps in double (IoU
    ``inter / (area_pred + area_gt - inter)``). pycocotools additionally caps detections per image
    (``maxDets``) and ignores GT outside an area range; apply those before calling. Work
    O(P log P + Σ p_g·g_g) over (image, class) groups, memory O(P + G); groups run in parallel.
    """
    pb = _array.float_array(pred_boxes, "pred_boxes", shape=(None, 4))
    gb = _array.float_array(gt_boxes, "gt_boxes", shape=(None, 4))
    n_pred, n_gt = pb.shape[0], gb.shape[0]
    ps = _array.float_array(pred_scores, "pred_scores")
    _array.check_shape(ps, "pred_scores", (n_pred,))
    dtype = np.result_type(pb.dtype, gb.dtype, ps.dtype)
    pb, gb, ps = (a.astype(dtype, copy=False) for a in (pb, gb, ps))
    if (pred_classes is None) != (gt_classes is None):
        raise ValueError("pred_classes and gt_classes must both be given or both be None (class-agnostic)")
    pc = None if pred_classes is None else _array.int_array(pred_classes, "pred_classes", length=n_pred)
    gc = None if gt_classes is None else _array.int_array(gt_classes, "gt_classes", length=n_gt)
    if (pred_image_ids is None) != (gt_image_ids is None):
        raise ValueError("pred_image_ids and gt_image_ids must both be given or both be None")
    pi = None if pred_image_ids is None else _array.int_array(pred_image_ids, "pred_image_ids", length=n_pred)
    gi = None if gt_image_ids is None else _array.int_array(gt_image_ids, "gt_image_ids", length=n_gt)
    crowd = None
    if gt_crowd is not None:
        cr = _array._to_numpy_view(gt_crowd, "gt_crowd")
        _array.check_shape(cr, "gt_crowd", (n_gt,))
        if cr.dtype != np.bool_ and cr.size:  # [] has dtype float64: still no flags
            if cr.dtype.kind not in "iu":
                raise TypeError(f"gt_crowd must be a bool array (or 0/1 integers), got {cr.dtype}")
            if not np.all((cr == 0) | (cr == 1)):
                raise ValueError("gt_crowd must hold only 0 and 1, got other integers")
        crowd = np.ascontiguousarray(cr, dtype=np.bool_).view(np.uint8)
    iou_threshold = _array.check_probability(iou_threshold, "iou_threshold")
    r = _core.match(pb, ps, pc, gb, gc, crowd, pi, gi, iou_threshold)
    return MatchResult(**{k: _array.like(v, pred_boxes) for k, v in r.items()})


for _f in (wbf, soft_nms, match, MatchResult):
    _f.__module__ = "curata.boxes"
