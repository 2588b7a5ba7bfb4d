"""Ensembling benchmark: curata.boxes.wbf / soft_nms against ensemble-boxes, CPU.

Self-contained (no shared harness yet): for each case the results are compared first (a case
whose results differ is reported, not timed), then curata and ensemble-boxes are timed in
interleaved rounds (the order rotates every round), each sample repeating the call enough times
to last >= 20 ms; the table shows the median per-call time over the rounds and the ratio
ensemble-boxes / curata (> 1: curata is faster).

    python -m benchmarks.ensemble [--quick] [--rounds N] [--threads N]

Data: every model detects the same objects with jitter (plus misses and false positives), so
clusters really form; scores are distinct. Soft-NMS runs on proposals clustered around objects
(heavy overlap) and on scattered boxes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np


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


def same(a, b, atol=1e-6):
    return all(np.shape(x) == np.shape(y) and np.allclose(x, y, rtol=0, atol=atol) for x, y in zip(a, b))


def cases(quick):
    import ensemble_boxes

    import curata.boxes as cb

    rng = np.random.default_rng(2024)
    sizes = (100, 1000) if quick else (100, 300, 1000)
    for n_labels in (1, 20):
        for n in sizes:
            bl, sl, ll = make_models(rng, 3, n, n_labels)

            def ours(bl=bl, sl=sl, ll=ll):
                return cb.wbf(bl, sl, ll)

            def peer(bl=bl, sl=sl, ll=ll):
                return ensemble_boxes.weighted_boxes_fusion(bl, sl, ll)

            yield f"wbf 3 models x {n} boxes, {n_labels} label{'s' if n_labels > 1 else ''}", ours, peer, same

    # Many images in one call (parallel over images) against a loop over images.
    n_images = 8 if quick else 32
    images = [make_models(rng, 3, 300, 20) for _ in range(n_images)]
    flat = [[np.concatenate([im[k][m] for im in images]) for m in range(3)] for k in range(3)]
    ids = [np.concatenate([np.full(len(im[0][m]), i) for i, im in enumerate(images)]) for m in range(3)]

    def ours_batch():
        return cb.wbf(*flat, image_ids=ids)

    def peer_batch():
        return [ensemble_boxes.weighted_boxes_fusion(*im) for im in images]

    def check_batch(a, b):
        return same(a[:3], [np.concatenate([x[k] for x in b]) for k in range(3)])

    yield f"wbf {n_images} images x 3 models x 300 boxes, 20 labels", ours_batch, peer_batch, check_batch

    for clustered in (True, False):
        boxes, scores = proposals(rng, 1000, clustered)
        labels = np.zeros(1000, dtype=np.int64)
        for method, code in (("linear", 1), ("gaussian", 2)):
            def ours_snms(boxes=boxes, scores=scores, method=method):
                idx, _ = cb.soft_nms(boxes, scores, 0.3, 0.5, method, 0.001)
                return boxes[idx], scores[idx]

            def peer_snms(boxes=boxes, scores=scores, code=code):
                b, s, _ = ensemble_boxes.soft_nms([boxes], [scores], [labels], method=code, iou_thr=0.3,
                                                  sigma=0.5, thresh=0.001)
                return b, s  # ensemble-boxes returns the undecayed scores of the kept boxes

            kind = "clustered" if clustered else "scattered"
            yield f"soft_nms {method}, 1000 {kind} boxes", ours_snms, peer_snms, same


def per_call(fn, number):
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def calibrate(fn, min_sample_s):
    number = 1
    while True:
        t = per_call(fn, number) * number
        if t >= min_sample_s:
            return number
        number = max(number * 2, int(number * min_sample_s / max(t, 1e-9)) + 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0, help="curata threads (0: default)")
    args = parser.parse_args(argv)
    import ensemble_boxes

    import curata

    if args.threads:
        curata.set_num_threads(args.threads)
    rounds = args.rounds or (3 if args.quick else 9)
    min_sample_s = 0.01 if args.quick else 0.02
    warnings.simplefilter("ignore")  # ensemble-boxes warns per clipped box

    rows, failed = [], False
    for name, ours, peer, check in cases(args.quick):
        if not check(ours(), peer()):
            rows.append((name, None, None))
            failed = True
            print(f"{name}: results differ, not timed", file=sys.stderr)
            continue
        fns = [ours, peer]
        numbers = [calibrate(f, min_sample_s) for f in fns]
        samples = [[], []]
        for r in range(rounds):
            for k in ((0, 1) if r % 2 == 0 else (1, 0)):
                samples[k].append(per_call(fns[k], numbers[k]))
        med = [statistics.median(s) for s in samples]
        rows.append((name, med[0], med[1]))
        print(f"{name}: curata {med[0] * 1e3:.3f} ms, ensemble-boxes {med[1] * 1e3:.2f} ms, "
              f"x{med[1] / med[0]:.0f}", file=sys.stderr)

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"Machine: {cpu}, {os.cpu_count()} cores; curata {curata.__version__} with "
          f"{curata.get_num_threads()} threads; ensemble-boxes {getattr(ensemble_boxes, '__version__', '1.0.9')}, "
          f"numpy {np.__version__}, Python {platform.python_version()}. Median of {rounds} interleaved rounds.\n")
    print("| case | curata | ensemble-boxes | ratio |")
    print("|---|---:|---:|---:|")
    for name, ours, peer in rows:
        if ours is None:
            print(f"| {name} | not timed: results differ | | |")
        else:
            print(f"| {name} | {ours * 1e3:.3f} ms | {peer * 1e3:.2f} ms | {peer / ours:.0f}x |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
