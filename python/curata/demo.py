"""``python -m curata.demo``: the post-processing loop on generated detector outputs.

Generates a batch of YOLO-style head outputs (B, 4 + C, A) with a few objects per image, turns
them into detections, runs class-aware NMS on a large flat set of boxes, scores per-image
uncertainty, and prints what it measured. Everything is synthetic and seeded.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import curata
from curata import boxes


def synthetic_yolo_batch(batch: int, n_classes: int, n_anchors: int, seed: int = 0) -> np.ndarray:
    """(batch, 4 + n_classes, n_anchors) float32 predictions: background anchors score low, anchors
    near a handful of objects per image score high for the object's class."""
    rng = np.random.default_rng(seed)
    pred = np.empty((batch, 4 + n_classes, n_anchors), dtype=np.float32)
    pred[:, 4:, :] = rng.beta(0.5, 30.0, size=(batch, n_classes, n_anchors))
    for b in range(batch):
        n_objects = int(rng.integers(3, 12))
        centres = rng.uniform(50, 590, size=(n_objects, 2))
        sizes = rng.uniform(20, 200, size=(n_objects, 2))
        owner = rng.integers(0, n_objects, n_anchors)
        jitter = rng.normal(0, 6, size=(n_anchors, 2))
        pred[b, 0:2, :] = (centres[owner] + jitter).T
        pred[b, 2:4, :] = (sizes[owner] * rng.uniform(0.8, 1.2, size=(n_anchors, 2))).T
        near = rng.random(n_anchors) < 0.04
        cls = rng.integers(0, n_classes, n_objects)[owner]
        pred[b, 4 + cls[near], np.nonzero(near)[0]] = rng.uniform(0.3, 0.95, near.sum())
    return pred


def _time(fn, repeats: int) -> tuple[float, object]:
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--anchors", type=int, default=8400)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    info = curata.build_info()
    print(f"curata {info['version']}  openmp={info['openmp']}  threads={curata.get_num_threads()}  "
          f"cuda module={info['cuda_module']}  devices={[d['name'] for d in curata.devices()]}")
    if not any(d["type"] == "cuda" for d in curata.devices()):
        print(f"  (no GPU: {curata.cuda_unavailable_reason()})")

    pred = synthetic_yolo_batch(args.batch, args.classes, args.anchors)
    seconds, dets = _time(lambda: boxes.postprocess(pred, conf_threshold=0.25, iou_threshold=0.45), args.repeats)
    n_dets = sum(len(d) for d in dets)
    print(f"postprocess  {args.batch} x {4 + args.classes} x {args.anchors}: {n_dets} detections "
          f"({n_dets / args.batch:.1f}/image) in {seconds * 1e3:.2f} ms")

    flat = np.concatenate(dets)
    rng = np.random.default_rng(1)
    jittered = np.repeat(flat[:, :4], 40, axis=0) + rng.normal(0, 4, size=(len(flat) * 40, 4)).astype(np.float32)
    jittered[:, 2:] = np.maximum(jittered[:, 2:], jittered[:, :2])
    scores = rng.random(len(jittered)).astype(np.float32)
    classes = np.repeat(flat[:, 5].astype(np.int64), 40)
    seconds, keep = _time(lambda: boxes.batched_nms(jittered, scores, classes, iou_threshold=0.5), args.repeats)
    print(f"batched_nms  {len(jittered)} boxes, {len(np.unique(classes))} classes: kept {len(keep)} "
          f"in {seconds * 1e3:.2f} ms")

    probs = rng.dirichlet(np.ones(args.classes) * 0.3, size=len(flat))
    image_of = np.repeat(np.arange(args.batch), [len(d) for d in dets])
    per_box = curata.scores.entropy(probs)
    ids, per_image = curata.scores.aggregate(per_box, image_of, how="max")
    worst = ids[np.argsort(-per_image, kind="stable")[:3]]
    print(f"uncertainty  entropy of {len(flat)} boxes -> most uncertain images {worst.tolist()}")


if __name__ == "__main__":
    main()
