"""Suite ``boxes``: NMS, class-wise NMS, pairwise IoU and YOLO post-processing against their peers.

Every case builds one seeded data set and hands the very same memory to each contender
(torch tensors made with ``torch.from_numpy``, numpy views of them for the numpy peer), checks
that the results agree, and only then times them. All data is float32.

Cases (CPU; ``--device cuda`` runs the same on CUDA tensors against torchvision CUDA, minus the
numpy peer, with NMS sizes up to 200k boxes):

- ``nms``: curata.boxes.nms vs torchvision.ops.nms vs a plain numpy greedy NMS, clustered boxes.
- ``batched_nms``: 80 classes, curata.boxes.batched_nms vs torchvision.ops.batched_nms.
- ``iou``: curata.boxes.iou vs torchvision.ops.box_iou.
- ``postprocess``: curata.boxes.postprocess vs Ultralytics' own ``non_max_suppression``
  (ultralytics 8.4.190, when installed: it is in the benchmark venv) and an Ultralytics-v8-style
  pipeline written below (torch + torchvision.ops.nms, no time limit) on (B, 84, 8400) YOLO heads.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

import curata

from ._harness import Case, Check, Contender, contender, importable

N_CLASSES = 80
IOU_THRESHOLD = 0.5
CONF_THRESHOLD, POST_IOU_THRESHOLD, MAX_DET, MAX_NMS, MAX_WH = 0.25, 0.45, 300, 30000, 7680.0


# ------------------------------------------------------------------------------------------ data
def clustered_boxes(n: int, seed: int, n_classes: int = N_CLASSES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` detector-like boxes: jittered copies around ``n // 20`` objects.

    The canvas grows with ``n`` (640 px square at 1k boxes, side ∝ √n) so the object density is
    that of a busy image at every size. Object sizes are log-uniform in [16, 256] px with a
    log-normal aspect ratio; each box moves its centre by N(0, 0.1·size) and scales each side by
    exp(N(0, 0.15)). Each object has one class; 10 % of its boxes get a random other class (the
    detector's confusions). Scores are distinct — ``(permutation + 0.5) / n`` — so the greedy order
    is unique and every NMS must return the same set (torchvision's CPU sort is not stable).

    Returns boxes (n, 4) xyxy float32, scores (n,) float32, classes (n,) int64.
    """
    rng = np.random.default_rng(seed)
    n_objects = max(1, n // 20)
    side = 640.0 * math.sqrt(max(n, 1) / 1000.0)
    size = np.exp(rng.uniform(math.log(16.0), math.log(256.0), n_objects))
    aspect = np.exp(rng.normal(0.0, 0.4, n_objects))
    obj_w, obj_h = size * np.sqrt(aspect), size / np.sqrt(aspect)
    obj_cx, obj_cy = rng.uniform(0, side, n_objects), rng.uniform(0, side, n_objects)
    obj_class = rng.integers(0, n_classes, n_objects)

    which = rng.integers(0, n_objects, n)
    w = obj_w[which] * np.exp(rng.normal(0.0, 0.15, n))
    h = obj_h[which] * np.exp(rng.normal(0.0, 0.15, n))
    cx = obj_cx[which] + rng.normal(0.0, 0.1, n) * obj_w[which]
    cy = obj_cy[which] + rng.normal(0.0, 0.1, n) * obj_h[which]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    boxes = np.clip(boxes, 0.0, side).astype(np.float32)
    scores = ((rng.permutation(n) + 0.5) / n).astype(np.float32)
    classes = obj_class[which].astype(np.int64)
    confused = rng.random(n) < 0.1
    classes[confused] = rng.integers(0, n_classes, int(confused.sum()))
    return boxes, scores, classes


def yolo_predictions(batch: int, seed: int, n_classes: int = N_CLASSES, n_anchors: int = 8400) -> np.ndarray:
    """A (batch, 4 + n_classes, n_anchors) float32 YOLOv8-style head output, scores after sigmoid.

    Background anchors: boxes anywhere in a 640 px image, every class score ``u**8 · 0.2``
    (u uniform), i.e. mostly near 0 and always below the 0.25 threshold. Objects: 10–30 per image,
    each seen by 8–24 anchors whose boxes jitter around the object's; those anchors score the
    object's class uniformly in (0.25, 0.95) — about 320 candidates per image, as a trained
    model gives on a busy image.
    """
    rng = np.random.default_rng(seed)
    pred = np.empty((batch, 4 + n_classes, n_anchors), dtype=np.float32)
    pred[:, 0] = rng.uniform(0, 640, (batch, n_anchors))
    pred[:, 1] = rng.uniform(0, 640, (batch, n_anchors))
    pred[:, 2] = rng.uniform(8, 200, (batch, n_anchors))
    pred[:, 3] = rng.uniform(8, 200, (batch, n_anchors))
    cls = rng.random((batch, n_classes, n_anchors), dtype=np.float32)
    np.power(cls, 8, out=cls)
    cls *= 0.2
    pred[:, 4:] = cls
    for b in range(batch):
        n_objects = int(rng.integers(10, 31))
        per_object = rng.integers(8, 25, n_objects)
        anchors = rng.choice(n_anchors, int(per_object.sum()), replace=False)
        start = 0
        for k in range(n_objects):
            a = anchors[start : start + per_object[k]]
            start += per_object[k]
            ow, oh = rng.uniform(16, 300, 2)
            ocx, ocy = rng.uniform(ow / 2, 640 - ow / 2), rng.uniform(oh / 2, 640 - oh / 2)
            m = len(a)
            pred[b, 0, a] = ocx + rng.normal(0, 0.08, m) * ow
            pred[b, 1, a] = ocy + rng.normal(0, 0.08, m) * oh
            pred[b, 2, a] = ow * np.exp(rng.normal(0, 0.1, m))
            pred[b, 3, a] = oh * np.exp(rng.normal(0, 0.1, m))
            pred[b, 4 + int(rng.integers(n_classes)), a] = rng.uniform(CONF_THRESHOLD + 1e-3, 0.95, m)
    return pred


# ----------------------------------------------------------------------------- peers written here
def numpy_greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Textbook greedy NMS in numpy: take the best remaining box, drop those overlapping it by
    IoU > threshold, repeat. Vectorised per kept box; O(N·K) work."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.maximum(0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]))
        h = np.maximum(0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]))
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):
            overlap = inter / (area[best] + area[rest] - inter)
        order = rest[~(overlap > iou_threshold)]
    return np.asarray(keep, dtype=np.int64)


def _xywh_to_xyxy(t):
    import torch  # noqa: PLC0415

    cx, cy, w, h = t.unbind(-1)
    hw, hh = w / 2, h / 2
    return torch.stack((cx - hw, cy - hh, cx + hw, cy + hh), -1)


def ultralytics_style_postprocess(pred, conf=CONF_THRESHOLD, iou=POST_IOU_THRESHOLD, max_det=MAX_DET,
                                  max_nms=MAX_NMS, exact_per_class=False):
    """The steps of Ultralytics v8 ``non_max_suppression`` (defaults: one label per anchor, not
    agnostic, no class filter), written with torch + torchvision:

    candidates where the best class score > conf over the whole batch; (B, 4+C, A) -> (B, A, 4+C);
    xywh -> xyxy for every anchor; per image: keep candidates, best class and its score, keep the
    ``max_nms`` best if more, offset boxes by ``class · 7680``, torchvision nms, first ``max_det``.
    Unlike Ultralytics it writes the xyxy boxes to a new tensor instead of into ``pred`` (which
    would corrupt the input for the next call) and has no time limit.
    ``exact_per_class=True`` replaces the offset by one nms per class (the reference for checks).

    Returns a list of (n_i, 6) tensors [x1, y1, x2, y2, score, class].
    """
    import torch  # noqa: PLC0415
    import torchvision  # noqa: PLC0415

    n_classes = pred.shape[1] - 4
    candidates = pred[:, 4 : 4 + n_classes].amax(1) > conf
    p = pred.transpose(-1, -2)
    boxes_all = _xywh_to_xyxy(p[..., :4])
    out = []
    for i in range(p.shape[0]):
        keep_anchor = candidates[i]
        box = boxes_all[i][keep_anchor]
        score, cls = p[i, :, 4:][keep_anchor].max(1, keepdim=True)
        x = torch.cat((box, score, cls.float()), 1)[score.view(-1) > conf]
        if x.shape[0] == 0:
            out.append(x)
            continue
        if x.shape[0] > max_nms:
            x = x[x[:, 4].argsort(descending=True)[:max_nms]]
        if exact_per_class:
            keep = _per_class_nms(x[:, :4], x[:, 4], x[:, 5].long(), iou)
        else:
            keep = torchvision.ops.nms(x[:, :4] + x[:, 5:6] * MAX_WH, x[:, 4], iou)
        out.append(x[keep[:max_det]])
    return out


def _make_ultralytics(pred):
    """The real Ultralytics ``non_max_suppression`` (same defaults as the case), when installed."""

    def make():
        import os  # noqa: PLC0415

        os.environ.setdefault("YOLO_OFFLINE", "1")  # no settings sync or update checks
        try:
            from ultralytics.utils.nms import non_max_suppression  # noqa: PLC0415
        except ImportError:
            from ultralytics.utils.ops import non_max_suppression  # noqa: PLC0415 (older releases)
        return lambda: non_max_suppression(pred, CONF_THRESHOLD, POST_IOU_THRESHOLD, max_det=MAX_DET, max_nms=MAX_NMS)

    return make


def _per_class_nms(boxes, scores, classes, iou_threshold):
    """Exact class-wise NMS: torchvision nms on each class alone, merged by descending score."""
    import torch  # noqa: PLC0415
    import torchvision  # noqa: PLC0415

    kept = []
    for c in torch.unique(classes):
        idx = torch.nonzero(classes == c).view(-1)
        kept.append(idx[torchvision.ops.nms(boxes[idx], scores[idx], iou_threshold)])
    if not kept:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    k = torch.cat(kept)
    return k[torch.argsort(scores[k], descending=True, stable=True)]


# --------------------------------------------------------------------------------------- checks
def _as_np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _set_diff(name: str, got, want) -> str:
    g, w = set(_as_np(got).tolist()), set(_as_np(want).tolist())
    if g == w:
        return ""
    return f"{name}: {len(g)} kept vs {len(w)} ({len(g - w)} only in {name}, {len(w - g)} missing)"


def _check_sets(results: dict[str, Callable[[], Any]], reference: str) -> Check:
    """All contenders keep the same index set as ``reference``; curata failing -> unchecked."""
    got: dict[str, Any] = {}
    for name, fn in results.items():
        try:
            got[name] = fn()
        except Exception as exc:  # noqa: BLE001
            if name == "curata":
                return Check("unchecked", f"curata failed, peers timed alone: {type(exc).__name__}: {exc}")
            raise
    if reference not in got:
        return Check("unchecked", f"no {reference} to compare with")
    problems = [d for n, r in got.items() if n != reference and (d := _set_diff(n, r, got[reference]))]
    if problems:
        return Check("mismatch", f"vs {reference}: " + "; ".join(problems))
    n_kept = len(_as_np(got[reference]))
    same_order = all(np.array_equal(_as_np(r), _as_np(got[reference])) for r in got.values())
    return Check("ok", f"{len(got)} implementations keep the same {n_kept} boxes" + ("" if same_order else " (order differs)"))


def _rows(dets) -> np.ndarray:
    a = _as_np(dets).astype(np.float64).reshape(-1, 6)
    return a[np.lexsort((a[:, 0], a[:, 5], -a[:, 4]))]


def _same_detections(a: list, b: list) -> tuple[int, int]:
    """(images that differ, detections that differ) between two per-image detection lists."""
    images = dets = 0
    for x, y in zip(a, b):
        rx, ry = _rows(x), _rows(y)
        if rx.shape != ry.shape or not np.allclose(rx, ry, rtol=1e-6, atol=1e-4):
            images += 1
            sx = {tuple(np.round(r, 3)) for r in rx}
            sy = {tuple(np.round(r, 3)) for r in ry}
            dets += len(sx ^ sy)
    return images, dets


# ---------------------------------------------------------------------------------------- cases
def _sizes(device: str, quick: bool) -> dict[str, list]:
    if device == "cuda":
        nms_sizes = [1_000, 20_000, 200_000] if quick else [1_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000]
        return {"nms": nms_sizes, "batched_nms": nms_sizes, "iou": [1_000] if quick else [1_000, 4_000],
                "postprocess": [1, 32]}
    if quick:
        return {"nms": [1_000, 10_000], "batched_nms": [1_000, 10_000], "iou": [1_000], "postprocess": [1, 8]}
    return {"nms": [1_000, 5_000, 10_000, 20_000], "batched_nms": [1_000, 5_000, 10_000, 20_000],
            "iou": [1_000, 4_000], "postprocess": [1, 32]}


def _torch_reason() -> str | None:
    return importable("torch")


def _tensor(a: np.ndarray, device: str):
    import torch  # noqa: PLC0415

    t = torch.from_numpy(a)
    return t.to(device) if device == "cuda" else t


def _curata_device(device: str) -> str:
    # Explicit, so a build without the CUDA engine fails loudly instead of timing a host round trip.
    return "cuda" if device == "cuda" else "cpu"


def _nms_case(n: int, device: str) -> Case:
    boxes, scores, _ = clustered_boxes(n, seed=n)
    params = {"n_boxes": n, "iou_threshold": IOU_THRESHOLD, "dtype": "float32", "data": "clustered, n/20 objects"}
    torch_missing = _torch_reason()
    if torch_missing and device == "cuda":
        raise RuntimeError(torch_missing)
    if torch_missing:
        b, s = boxes, scores
        params["input"] = "numpy (torch not importable)"
    else:
        b, s = _tensor(boxes, device), _tensor(scores, device)
        params["input"] = f"torch {device} tensors (the same tensors for every contender)"
    dev = _curata_device(device)

    def curata_fn():
        return curata.boxes.nms(b, s, IOU_THRESHOLD, device=dev)

    def make_tv():
        import torchvision  # noqa: PLC0415

        return lambda: torchvision.ops.nms(b, s, IOU_THRESHOLD)

    contenders = [Contender("curata", curata_fn), contender("torchvision", make_tv)]
    if device == "cpu":
        nb, ns = _as_np(b), _as_np(s)  # views of the tensors' memory
        contenders.append(Contender("numpy-greedy", lambda: numpy_greedy_nms(nb, ns, IOU_THRESHOLD),
                                    note="plain numpy greedy NMS written in the benchmark"))
    runnable = {c.name: c.fn for c in contenders if c.fn is not None}
    ref = "torchvision" if "torchvision" in runnable else "numpy-greedy"
    return Case(f"nms n={n:,}", "nms", params, contenders, check=lambda: _check_sets(runnable, ref))


def _batched_case(n: int, device: str) -> Case:
    boxes, scores, classes = clustered_boxes(n, seed=10_000 + n)
    params = {"n_boxes": n, "n_classes": N_CLASSES, "iou_threshold": IOU_THRESHOLD, "dtype": "float32",
              "data": "clustered, n/20 objects, one class per object, 10% confusions"}
    reason = _torch_reason()
    if reason:
        raise RuntimeError(reason)
    b, s, c = _tensor(boxes, device), _tensor(scores, device), _tensor(classes, device)
    params["input"] = f"torch {device} tensors"
    tv_limit = 4000 if device == "cpu" else 100_000
    params["torchvision_strategy"] = "per-class loop" if 4 * n > tv_limit else "coordinate offset"
    dev = _curata_device(device)

    def curata_fn():
        return curata.boxes.batched_nms(b, s, c, IOU_THRESHOLD, device=dev)

    def make_tv():
        import torchvision  # noqa: PLC0415

        return lambda: torchvision.ops.batched_nms(b, s, c, IOU_THRESHOLD)

    contenders = [Contender("curata", curata_fn), contender("torchvision", make_tv)]

    def check() -> Check:
        runnable = {x.name: x.fn for x in contenders if x.fn is not None}
        result = _check_sets(runnable, "torchvision")
        if result.status != "mismatch":
            return result
        # torchvision's coordinate-offset trick can flip pairs at the threshold; compare with
        # exact class-wise NMS before calling it a mismatch.
        exact = _per_class_nms(b, s, c, IOU_THRESHOLD)
        if not _set_diff("curata", curata_fn(), exact):
            return Check("note", "curata equals exact per-class NMS; torchvision's coordinate-offset trick differs "
                         f"({result.detail})")
        return result

    return Case(f"batched_nms n={n:,} ({N_CLASSES} classes)", "batched_nms", params, contenders, check=check)


def _iou_case(n: int, device: str) -> Case:
    a, _, _ = clustered_boxes(n, seed=20_000 + n)
    bb, _, _ = clustered_boxes(n, seed=30_000 + n)
    reason = _torch_reason()
    if reason:
        raise RuntimeError(reason)
    ta, tb = _tensor(a, device), _tensor(bb, device)
    params = {"n": n, "m": n, "dtype": "float32", "input": f"torch {device} tensors", "output": f"({n}, {n}) float32"}
    dev = _curata_device(device)

    def curata_fn():
        return curata.boxes.iou(ta, tb, device=dev)

    def make_tv():
        import torchvision  # noqa: PLC0415

        return lambda: torchvision.ops.box_iou(ta, tb)

    contenders = [Contender("curata", curata_fn), contender("torchvision", make_tv)]

    def check() -> Check:
        if contenders[1].fn is None:
            return Check("unchecked", "torchvision missing")
        try:
            got = _as_np(curata_fn())
        except Exception as exc:  # noqa: BLE001
            return Check("unchecked", f"curata failed, peers timed alone: {type(exc).__name__}: {exc}")
        want = _as_np(contenders[1].fn())
        diff = float(np.max(np.abs(got - want))) if got.size else 0.0
        if got.shape != want.shape or diff > 1e-6:
            return Check("mismatch", f"shape {got.shape} vs {want.shape}, max |diff| {diff:.3g}")
        return Check("ok", f"max |curata - torchvision| = {diff:.3g}")

    return Case(f"iou {n:,}x{n:,}", "iou", params, contenders, check=check)


def _postprocess_case(batch: int, device: str) -> Case:
    reason = _torch_reason()
    if reason:
        raise RuntimeError(reason)
    pred = _tensor(yolo_predictions(batch, seed=40_000 + batch), device)
    n_cand = int((pred[:, 4:].amax(1) > CONF_THRESHOLD).sum())
    params = {"shape": list(pred.shape), "dtype": "float32", "conf_threshold": CONF_THRESHOLD,
              "iou_threshold": POST_IOU_THRESHOLD, "max_det": MAX_DET, "max_nms": MAX_NMS,
              "candidates_per_image": round(n_cand / batch, 1), "input": f"torch {device} tensor"}
    dev = _curata_device(device)

    def curata_fn():
        return curata.boxes.postprocess(pred, CONF_THRESHOLD, POST_IOU_THRESHOLD, max_det=MAX_DET,
                                        max_nms=MAX_NMS, device=dev)

    def make_ul():
        import torchvision  # noqa: PLC0415, F401

        return lambda: ultralytics_style_postprocess(pred)

    contenders = [Contender("curata", curata_fn),
                  contender("ultralytics-style", make_ul, note="Ultralytics v8 NMS steps with torch + torchvision.ops.nms"),
                  contender("ultralytics", _make_ultralytics(pred), note="ultralytics.utils.nms.non_max_suppression")]

    def check() -> Check:
        if contenders[1].fn is None:
            return Check("unchecked", "torchvision missing")
        try:
            got = curata_fn()
        except Exception as exc:  # noqa: BLE001
            return Check("unchecked", f"curata failed, peers timed alone: {type(exc).__name__}: {exc}")
        notes, all_same = [], True
        for peer in contenders[1:]:
            if peer.fn is None:
                continue
            want = peer.fn()
            n_dets = sum(len(x) for x in want)
            images, dets = _same_detections(got, want)
            if images == 0:
                notes.append(f"{peer.name}: same {n_dets} detections in {batch} image(s)")
                continue
            exact = ultralytics_style_postprocess(pred, exact_per_class=True)
            if _same_detections(got, exact) != (0, 0):
                return Check("mismatch", f"{peer.name}: {dets} detection(s) differ in {images} of {batch} image(s)")
            all_same = False
            notes.append(f"{peer.name}: {dets} detection(s) in {images} image(s) differ only through its class "
                         "offset (7680·class rounds float32 coordinates); curata equals exact per-class NMS")
        return Check("ok" if all_same else "note", "; ".join(notes))

    return Case(f"postprocess ({batch}, {4 + N_CLASSES}, 8400)", "postprocess", params, contenders, check=check)


def cases(device: str = "cpu", quick: bool = False) -> list[tuple[str, Callable[[], Case]]]:
    """The suite's plan: (case name, builder) pairs. Builders run one at a time, so only the
    current case's data is alive and a filtered run never builds the data it skips."""
    sizes = _sizes(device, quick)
    plan: list[tuple[str, Callable[[], Case]]] = []
    for n in sizes["nms"]:
        plan.append((f"nms n={n:,}", lambda n=n: _nms_case(n, device)))
    for n in sizes["batched_nms"]:
        plan.append((f"batched_nms n={n:,} ({N_CLASSES} classes)", lambda n=n: _batched_case(n, device)))
    for n in sizes["iou"]:
        plan.append((f"iou {n:,}x{n:,}", lambda n=n: _iou_case(n, device)))
    for batch in sizes["postprocess"]:
        plan.append((f"postprocess ({batch}, {4 + N_CLASSES}, 8400)", lambda b=batch: _postprocess_case(b, device)))
    return plan


# ----------------------------------------------------------------------------------------- goals
# Performance goals from the issue that asked for this suite (CPU only).
GOALS = [
    ("nms >= 5x torchvision.ops.nms (CPU), 5k-20k boxes", "nms", (5_000, 20_000), "torchvision", 5.0),
    ("batched_nms >= 5x torchvision.ops.batched_nms (CPU), 5k-20k boxes, 80 classes", "batched_nms",
     (5_000, 20_000), "torchvision", 5.0),
    ("iou >= 3x torchvision.ops.box_iou (CPU) at 1k x 1k", "iou", (1_000, 1_000), "torchvision", 3.0),
]


def goals(results: list[dict[str, Any]], device: str) -> list[dict[str, Any]]:
    """Each goal with the ratios of the cases it covers and whether every one reaches it."""
    if device != "cpu":
        return []
    out = []
    for text, group, (lo, hi), peer, target in GOALS:
        seen = []
        for r in results:
            size = r["params"].get("n_boxes", r["params"].get("n"))
            if r["group"] != group or size is None or not lo <= size <= hi:
                continue
            ratio = r.get("ratios", {}).get(peer, {}).get("ratio")
            seen.append({"case": r["case"], "ratio": ratio})
        ratios = [x["ratio"] for x in seen]
        if not seen or any(x is None for x in ratios):
            status = "not measured"
        else:
            status = "met" if all(x >= target for x in ratios) else "not met"
        out.append({"goal": text, "target": target, "status": status, "cases": seen})
    return out
