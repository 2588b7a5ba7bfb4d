"""Independent references for the curata.boxes tests, written from the specification only.

* numpy: IoU / GIoU in the input float precision, greedy NMS that checks each candidate against
  the boxes already kept, grouped (class / image) NMS, and a re-implementation of Ultralytics v8
  ``non_max_suppression`` semantics on top of it.
* torch: torchvision's algorithm (sort, then "each kept box suppresses every later box whose IoU
  is > threshold") written with torch ops, since torchvision itself is not a test dependency.

Nothing here calls curata.
"""

from __future__ import annotations

import numpy as np
import torch

ULTRALYTICS_MAX_WH = 7680.0


# ------------------------------------------------------------------------------------- boxes
def compute_dtype(dtype) -> np.dtype:
    """The precision curata computes in: float32/64 as is, float16 -> float32, ints -> float64."""
    dtype = np.dtype(dtype)
    if dtype == np.float64 or dtype == np.float32:
        return dtype
    if dtype.kind == "f":
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def convert_ref(boxes, src: str, dst: str) -> np.ndarray:
    """Format conversion in float64 (exact for the small dyadic values the tests use)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    a0, a1, a2, a3 = b.T
    if src == "xyxy":
        x1, y1, x2, y2 = a0, a1, a2, a3
    elif src == "xywh":
        x1, y1, x2, y2 = a0, a1, a0 + a2, a1 + a3
    else:  # cxcywh
        x1, y1, x2, y2 = a0 - a2 / 2, a1 - a3 / 2, a0 + a2 / 2, a1 + a3 / 2
    if dst == "xyxy":
        out = (x1, y1, x2, y2)
    elif dst == "xywh":
        out = (x1, y1, x2 - x1, y2 - y1)
    else:
        out = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    return np.stack(out, axis=1)


def _parts(a: np.ndarray, b: np.ndarray):
    """Intersection and union of boxes a[..., :] and b[..., :] (broadcast), in their dtype."""
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    zero = a.dtype.type(0)
    w = np.maximum(zero, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]))
    h = np.maximum(zero, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]))
    inter = w * h
    union = (area_a + area_b) - inter
    return inter, union


def _iou_from_parts(inter, union, dtype):
    with np.errstate(divide="ignore", invalid="ignore"):
        out = inter / union
    return np.where(union > 0, out, dtype.type(0)).astype(dtype)


def iou_ref(a, b, dtype=None) -> np.ndarray:
    """(N, M) matrix of inter / ((area_a + area_b) - inter), every step in ``dtype``; empty union -> 0."""
    dtype = compute_dtype(np.asarray(a).dtype) if dtype is None else np.dtype(dtype)
    a = np.asarray(a, dtype=dtype).reshape(-1, 4)
    b = np.asarray(b, dtype=dtype).reshape(-1, 4)
    return _iou_from_parts(*_parts(a[:, None, :], b[None, :, :]), dtype)


def iou_pairs_ref(a, b, dtype) -> np.ndarray:
    """IoU of a[i] with b[i] (same formula as iou_ref)."""
    dtype = np.dtype(dtype)
    a = np.asarray(a, dtype=dtype).reshape(-1, 4)
    b = np.asarray(b, dtype=dtype).reshape(-1, 4)
    return _iou_from_parts(*_parts(a, b), dtype)


def giou_ref(a, b, dtype=None) -> np.ndarray:
    """iou - (hull - union) / hull in float64 (compared with a tolerance)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)[None, :, :]
    inter, union = _parts(a, b)
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    hull = (np.maximum(a[..., 2], b[..., 2]) - np.minimum(a[..., 0], b[..., 0])) * (
        np.maximum(a[..., 3], b[..., 3]) - np.minimum(a[..., 1], b[..., 1])
    )
    safe = np.where(hull > 0, hull, 1)
    return np.where(hull > 0, iou - (hull - union) / safe, iou)


# --------------------------------------------------------------------------------------- NMS
def score_order(scores, candidates) -> list[int]:
    """Candidates by descending score, ties (including -0.0 == 0.0) by lower index."""
    return sorted(candidates, key=lambda i: (-float(scores[i]), i))


def nms_ref(boxes, scores, iou_threshold=0.5, score_threshold=None, max_det=None, dtype=None) -> np.ndarray:
    """Plain greedy NMS: keep a candidate unless its IoU with a kept box is > iou_threshold.

    The IoU is computed in ``dtype`` (the box precision) and compared in float64 with the Python
    float threshold, as torchvision does.
    """
    b = np.asarray(boxes)
    dtype = compute_dtype(b.dtype) if dtype is None else np.dtype(dtype)
    b = np.asarray(b, dtype=dtype).reshape(-1, 4)
    s = np.asarray(scores, dtype=dtype).reshape(-1)
    candidates = [i for i in range(len(s)) if score_threshold is None or float(s[i]) > score_threshold]
    order = score_order(s, candidates)
    ious = iou_ref(b, b, dtype) if len(b) else np.zeros((0, 0), dtype)
    keep: list[int] = []
    for i in order:
        if max_det is not None and len(keep) >= max_det:
            break
        if all(not (float(ious[i, k]) > iou_threshold) for k in keep):
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def batched_nms_ref(
    boxes, scores, classes=None, iou_threshold=0.5, score_threshold=None, max_det=None, image_ids=None, dtype=None
) -> np.ndarray:
    """nms_ref per (image, class), merged per image by (score desc, index asc), then max_det per
    image; images in ascending id order."""
    b = np.asarray(boxes)
    dtype = compute_dtype(b.dtype) if dtype is None else np.dtype(dtype)
    b = np.asarray(b, dtype=dtype).reshape(-1, 4)
    s = np.asarray(scores, dtype=dtype).reshape(-1)
    n = len(s)
    cls = np.zeros(n, np.int64) if classes is None else np.asarray(classes).astype(np.int64)
    img = np.zeros(n, np.int64) if image_ids is None else np.asarray(image_ids).astype(np.int64)
    out: list[int] = []
    for image in sorted(set(img.tolist())):
        kept: list[int] = []
        for c in sorted(set(cls[img == image].tolist())):
            members = np.flatnonzero((img == image) & (cls == c))
            local = nms_ref(b[members], s[members], iou_threshold, score_threshold, None, dtype)
            kept.extend(members[local].tolist())
        kept = score_order(s, kept)
        out.extend(kept if max_det is None else kept[:max_det])
    return np.asarray(out, dtype=np.int64)


def torch_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """torchvision's box_iou formula written with torch ops, in the tensors' dtype."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / union  # 0/0 = NaN for two empty boxes, which never suppresses


def torch_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """torchvision.ops.nms semantics: sort by score, each kept box suppresses every later box with
    IoU > threshold. The sort is stable so that ties go to the lower index (torchvision's CPU sort
    is not stable; curata documents the lower-index rule)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order]
    n = b.shape[0]
    suppressed = torch.zeros(n, dtype=torch.bool)
    keep = []
    for p in range(n):
        if suppressed[p]:
            continue
        keep.append(p)
        if p + 1 < n:
            row = torch_box_iou(b[p : p + 1], b[p + 1 :])[0]
            suppressed[p + 1 :] |= row.double() > iou_threshold
    return order[torch.tensor(keep, dtype=torch.int64)] if keep else torch.zeros(0, dtype=torch.int64)


def torch_batched_nms_offset(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_threshold: float,
                             max_wh: float) -> torch.Tensor:
    """The coordinate-offset trick (torchvision's batched_nms for small inputs, Ultralytics)."""
    shifted = boxes + classes.to(boxes.dtype)[:, None] * max_wh
    return torch_nms(shifted, scores, iou_threshold)


# ------------------------------------------------------------------------------- postprocess
def postprocess_ref(pred, conf_threshold=0.25, iou_threshold=0.45, classes=None, agnostic=False, multi_label=False,
                    max_det=300, max_nms=30000, class_offset=None) -> list[np.ndarray]:
    """Ultralytics v8 ``non_max_suppression`` semantics, in torch on the CPU.

    ``class_offset=None`` runs NMS exactly per class (curata's documented behaviour); a number
    reproduces Ultralytics' offset trick (it uses 7680).
    """
    p = torch.as_tensor(np.asarray(pred))
    if p.dtype == torch.float16:
        p = p.float()
    bs, channels, _ = p.shape
    nc = channels - 4
    xc = p[:, 4:].amax(1) > conf_threshold
    multi_label = multi_label and nc > 1
    p = p.transpose(-1, -2).clone()
    xy, half = p[..., :2].clone(), p[..., 2:4] / 2
    p[..., :2] = xy - half
    p[..., 2:4] = xy + half
    out = []
    for xi in range(bs):
        x = p[xi][xc[xi]]
        if x.shape[0] == 0:
            out.append(np.zeros((0, 6), dtype=p.numpy().dtype))
            continue
        box, cls = x[:, :4], x[:, 4:]
        if multi_label:
            i, j = torch.where(cls > conf_threshold)  # row-major: (anchor, class)
            x = torch.cat((box[i], x[i, 4 + j, None], j[:, None].to(x.dtype)), 1)
        else:
            conf, j = cls.max(1, keepdim=True)  # first maximum on ties
            x = torch.cat((box, conf, j.to(x.dtype)), 1)[conf.view(-1) > conf_threshold]
        if classes is not None:
            x = x[(x[:, 5:6] == torch.tensor(classes, dtype=x.dtype)).any(1)]
        if x.shape[0] > max_nms:
            x = x[torch.sort(x[:, 4], descending=True, stable=True).indices[:max_nms]]
        if x.shape[0] == 0:
            out.append(np.zeros((0, 6), dtype=x.numpy().dtype))
            continue
        if agnostic:
            keep = torch_nms(x[:, :4], x[:, 4], iou_threshold)
        elif class_offset is not None:
            keep = torch_batched_nms_offset(x[:, :4], x[:, 4], x[:, 5], iou_threshold, class_offset)
        else:
            keep = torch.as_tensor(
                batched_nms_ref(x[:, :4].numpy(), x[:, 4].numpy(), x[:, 5].numpy().astype(np.int64), iou_threshold)
            )
        out.append(x[keep[:max_det]].numpy())
    return out
