"""Suite ``ensemble``: curata.boxes.wbf / soft_nms against ensemble-boxes (CPU only).

Run with ``python -m benchmarks.run ensemble [--quick]``. Every case generates its data from its
own seed, hands the very same arrays to both contenders, compares their results (boxes, scores
and labels to 1e-6 absolute; soft_nms also its decayed scores against the ones ensemble-boxes'
``cpu_soft_nms_float`` computes, which its ``soft_nms`` does not return) and only then times them.

Cases:

- ``wbf 3 models x N boxes, L labels`` (N = 100, 300, 1000; quick: 100, 1000; L = 1, 20): one
  image, ``curata.boxes.wbf`` vs ``ensemble_boxes.weighted_boxes_fusion``.
- ``wbf I images x 3 models x 300 boxes, 20 labels`` (I = 32; quick: 8): curata fuses every image
  in one call (``image_ids``, parallel over images) against a Python loop of
  ``weighted_boxes_fusion`` over the images.
- ``soft_nms METHOD, 1000 KIND boxes`` (linear / gaussian; clustered / scattered proposals):
  ``curata.boxes.soft_nms`` vs ``ensemble_boxes.soft_nms``, iou 0.3, sigma 0.5, threshold 0.001.

Data: every model detects the same objects with jitter (plus misses), so clusters really form;
boxes are normalised to [0, 1] and scores are distinct.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from ._harness import Case, Check, Contender, contender

PEER_DISTRIBUTIONS = ("ensemble-boxes",)
PEER = "ensemble-boxes"
SOFT_NMS = {"iou": 0.3, "sigma": 0.5, "threshold": 0.001}


# ------------------------------------------------------------------------------------------ data
def make_models(rng, n_models, n_boxes, n_labels):
    """n_models x n_boxes detections of about 0.8 * n_boxes objects, boxes normalised to [0, 1]."""
    n_objects = max(1, int(n_boxes / 0.9))
    centers = rng.random((n_objects, 2)) * 0.9 + 0.05
    sizes = rng.lognormal(np.log(0.06), 0.6, (n_objects, 2)).clip(0.005, 0.5)
    labels = rng.integers(0, n_labels, n_objects)
    boxes_list, scores_list, labels_list = [], [], []
    for _ in range(n_models):
        pick = rng.choice(n_objects, n_boxes, replace=False)
        c = centers[pick] + rng.normal(0, 0.1, (n_boxes, 2)) * sizes[pick]
        s = sizes[pick] * rng.lognormal(0, 0.1, (n_boxes, 2))
        b = np.concatenate([c - s / 2, c + s / 2], axis=1).clip(0, 1)
        boxes_list.append(b)
        scores_list.append(rng.random(n_boxes))
        labels_list.append(labels[pick])
    return boxes_list, scores_list, labels_list


def proposals(rng, n, clustered):
    """``n`` proposals in [0, 1]: around ``n // 25`` objects (heavy overlap) or scattered."""
    if clustered:
        k = max(1, n // 25)
        centers = rng.random((k, 2)) * 0.8 + 0.1
        sizes = rng.random((k, 2)) * 0.2 + 0.05
        pick = rng.integers(0, k, n)
        c = centers[pick] + rng.normal(0, 0.03, (n, 2))
        s = sizes[pick] * rng.lognormal(0, 0.15, (n, 2))
    else:
        c = rng.random((n, 2))
        s = rng.random((n, 2)) * 0.1 + 0.005
    return np.concatenate([c - s / 2, c + s / 2], axis=1).clip(0, 1), rng.random(n)


# --------------------------------------------------------------------------------------- checks
def _compare(ours: list, peer: list, what: tuple[str, ...], atol: float = 1e-6) -> Check:
    """Same shapes and values (absolute ``atol``) for each pair of arrays named in ``what``."""
    problems, worst = [], 0.0
    for name, x, y in zip(what, ours, peer):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape:
            problems.append(f"{name} shape {x.shape} vs {y.shape}")
            continue
        diff = float(np.max(np.abs(x - y), initial=0.0))
        worst = max(worst, diff)
        if not diff <= atol:
            problems.append(f"{name} differ by up to {diff:.3g}")
    if problems:
        return Check("mismatch", f"curata vs {PEER}: " + "; ".join(problems))
    return Check("ok", f"same {len(np.asarray(ours[0]))} {what[0]}, max |diff| {worst:.3g}")


def _checked(contenders: list[Contender], convert: Callable[[Any], list], what: tuple[str, ...]) -> Callable[[], Check]:
    """Check comparing curata's result with the peer's after ``convert`` (peer -> arrays)."""

    def check() -> Check:
        if contenders[1].fn is None:
            return Check("unchecked", f"{PEER} missing: {contenders[1].skip_reason}")
        try:
            ours = contenders[0].fn()
        except Exception as exc:  # noqa: BLE001
            return Check("unchecked", f"curata failed, peer timed alone: {type(exc).__name__}: {exc}")
        return _compare(list(ours)[: len(what)], convert(contenders[1].fn()), what)

    return check


def _quiet_peer() -> None:
    # ensemble-boxes warns once per clipped or swapped box; printing them would be timed.
    warnings.filterwarnings("ignore", module=r"ensemble_boxes")


# ---------------------------------------------------------------------------------------- cases
def _wbf_case(n: int, n_labels: int, seed: int) -> Case:
    import curata.boxes as cb  # noqa: PLC0415

    bl, sl, ll = make_models(np.random.default_rng(seed), 3, n, n_labels)
    params = {"models": 3, "boxes_per_model": n, "labels": n_labels, "iou_thr": 0.55, "skip_box_thr": 0.0,
              "dtype": "float64", "seed": seed, "input": "lists of numpy arrays, one per model"}

    def make_peer():
        import ensemble_boxes  # noqa: PLC0415

        _quiet_peer()
        return lambda: ensemble_boxes.weighted_boxes_fusion(bl, sl, ll)

    contenders = [Contender("curata", lambda: cb.wbf(bl, sl, ll)), contender(PEER, make_peer)]
    name = f"wbf 3 models x {n} boxes, {n_labels} label{'s' if n_labels > 1 else ''}"
    return Case(name, "wbf", params, contenders,
                check=_checked(contenders, lambda r: list(r), ("boxes", "scores", "labels")))


def _wbf_batch_case(n_images: int, seed: int) -> Case:
    import curata.boxes as cb  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    images = [make_models(rng, 3, 300, 20) for _ in range(n_images)]
    flat = [[np.concatenate([im[k][m] for im in images]) for m in range(3)] for k in range(3)]
    ids = [np.concatenate([np.full(len(im[0][m]), i) for i, im in enumerate(images)]) for m in range(3)]
    params = {"images": n_images, "models": 3, "boxes_per_model": 300, "labels": 20, "dtype": "float64",
              "seed": seed, "input": "curata: one call with image_ids; ensemble-boxes: a loop over images"}

    def make_peer():
        import ensemble_boxes  # noqa: PLC0415

        _quiet_peer()
        return lambda: [ensemble_boxes.weighted_boxes_fusion(*im) for im in images]

    contenders = [Contender("curata", lambda: cb.wbf(*flat, image_ids=ids)),
                  contender(PEER, make_peer, note="Python loop over the images")]

    def convert(per_image: list) -> list:
        return [np.concatenate([x[k] for x in per_image]) for k in range(3)]

    return Case(f"wbf {n_images} images x 3 models x 300 boxes, 20 labels", "wbf_batch", params, contenders,
                check=_checked(contenders, convert, ("boxes", "scores", "labels")))


def _soft_nms_case(method: str, clustered: bool, seed: int) -> Case:
    import curata.boxes as cb  # noqa: PLC0415

    boxes, scores = proposals(np.random.default_rng(seed), 1000, clustered)
    labels = np.zeros(1000, dtype=np.int64)
    code = {"linear": 1, "gaussian": 2}[method]
    kind = "clustered" if clustered else "scattered"
    params = {"n_boxes": 1000, "method": method, "data": kind, "dtype": "float64", "seed": seed, **SOFT_NMS}

    def ours():
        idx, _ = cb.soft_nms(boxes, scores, SOFT_NMS["iou"], SOFT_NMS["sigma"], method, SOFT_NMS["threshold"])
        return boxes[idx], scores[idx]

    def make_peer():
        import ensemble_boxes  # noqa: PLC0415

        _quiet_peer()

        def peer():
            b, s, _ = ensemble_boxes.soft_nms([boxes], [scores], [labels], method=code, iou_thr=SOFT_NMS["iou"],
                                              sigma=SOFT_NMS["sigma"], thresh=SOFT_NMS["threshold"])
            return b, s  # ensemble-boxes returns the undecayed scores of the kept boxes

        return peer

    contenders = [Contender("curata", ours), contender(PEER, make_peer)]
    kept = _checked(contenders, lambda r: list(r), ("boxes", "scores"))

    def check() -> Check:
        # The timed peer returns the kept boxes with their input scores; the decayed scores,
        # curata's main output, are compared with the ones ensemble-boxes computes internally.
        result = kept()
        if result.status != "ok":
            return result
        from ensemble_boxes.ensemble_boxes_nms import cpu_soft_nms_float  # noqa: PLC0415

        idx, decayed = cb.soft_nms(boxes, scores, SOFT_NMS["iou"], SOFT_NMS["sigma"], method, SOFT_NMS["threshold"])
        working = scores.astype(np.float64).copy()  # decayed in place, in ensemble-boxes' working order
        keep = cpu_soft_nms_float(boxes.astype(np.float64).copy(), working, Nt=SOFT_NMS["iou"],
                                  sigma=SOFT_NMS["sigma"], thresh=SOFT_NMS["threshold"], method=code)
        theirs = working[working > SOFT_NMS["threshold"]]
        if not np.array_equal(np.asarray(idx), keep):
            return Check("mismatch", f"kept indices differ from ensemble-boxes' cpu_soft_nms_float ({len(idx)} vs {len(keep)})")
        diff = float(np.max(np.abs(np.asarray(decayed, dtype=np.float64) - theirs), initial=0.0))
        if not diff <= 1e-6:
            return Check("mismatch", f"decayed scores differ from ensemble-boxes' by up to {diff:.3g}")
        return Check("ok", f"{result.detail}; decayed scores equal ensemble-boxes' (max |diff| {diff:.3g})")

    return Case(f"soft_nms {method}, 1000 {kind} boxes", "soft_nms", params, contenders, check=check)


def cases(device: str = "cpu", quick: bool = False) -> list[tuple[str, Callable[[], Case]]]:
    """The suite's plan: (case name, builder) pairs; each builder makes its own seeded data."""
    if device != "cpu":
        raise SystemExit("suite ensemble runs on the CPU only (curata's wbf and soft_nms have no CUDA path)")
    plan: list[tuple[str, Callable[[], Case]]] = []
    sizes = (100, 1000) if quick else (100, 300, 1000)
    for n_labels in (1, 20):
        for n in sizes:
            name = f"wbf 3 models x {n} boxes, {n_labels} label{'s' if n_labels > 1 else ''}"
            plan.append((name, lambda n=n, L=n_labels: _wbf_case(n, L, seed=1000 * L + n)))
    n_images = 8 if quick else 32
    plan.append((f"wbf {n_images} images x 3 models x 300 boxes, 20 labels",
                 lambda: _wbf_batch_case(n_images, seed=50_000 + n_images)))
    for clustered in (True, False):
        for method in ("linear", "gaussian"):
            kind = "clustered" if clustered else "scattered"
            plan.append((f"soft_nms {method}, 1000 {kind} boxes",
                         lambda m=method, c=clustered: _soft_nms_case(m, c, seed=60_000 + 10 * c + (m == "gaussian"))))
    return plan
