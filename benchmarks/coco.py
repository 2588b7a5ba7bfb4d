"""COCO bbox evaluation: curata.metrics.coco_eval vs pycocotools vs faster-coco-eval.

    python -m benchmarks.coco [--quick] [--repeats N] [--peer-repeats N] [--only REGEX]

Every contender starts from the same in-memory objects (a COCO ground-truth dict and a list of
detection dicts, as a training loop holds them) and does the whole evaluation: index the data,
match, accumulate, summarize. pycocotools and faster-coco-eval mutate the detection dicts they are
given (they add ids and areas), so each gets its own copy, made once before timing; the mutation
is idempotent, so later rounds see the same data. Results are compared before anything is timed
(12 stats and the precision/recall arrays, to 1e-12).

Rounds are interleaved (round r runs the contenders in an order rotated by r) and the table
reports the median per contender and the ratio peer / curata (> 1: curata is faster). pycocotools
takes about a minute per call at COCO-val scale, so it runs fewer rounds (``--peer-repeats``).
Self-contained: prints a markdown table (the shared harness was not on main when written).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import io
import os
import platform
import re
import statistics
import sys
import time

import numpy as np

from benchmarks.coco_data import synthetic_coco

CASES = {
    # name: (images, ground-truth boxes, detections per image)
    "500 images, 50k detections": (500, 3650, 100),
    "COCO-val size: 5k images, 36k GT, 500k detections": (5000, 36000, 100),
}


def _pycocotools(gt, dt):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def run():
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            ev = COCOeval(coco_gt, coco_gt.loadRes(dt), "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return ev

    return run


def _faster(gt, dt):
    from faster_coco_eval import COCO, COCOeval_faster

    def run():
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO(gt)
            ev = COCOeval_faster(coco_gt, coco_gt.loadRes(dt), "bbox", print_function=lambda *a, **k: None)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return ev

    return run


def _curata(gt, dt):
    from curata.metrics import coco_eval

    return lambda: coco_eval(gt, dt)


def _curata_table(gt, dt):
    """curata given the detections as a table of arrays (built once, outside the timing)."""
    from curata.metrics import coco_eval

    table = {
        "image_id": np.array([d["image_id"] for d in dt], dtype=np.int64),
        "category_id": np.array([d["category_id"] for d in dt], dtype=np.int64),
        "bbox": np.array([d["bbox"] for d in dt], dtype=np.float64),
        "score": np.array([d["score"] for d in dt], dtype=np.float64),
    }
    return lambda: coco_eval(gt, table)


def _arrays(result) -> dict[str, np.ndarray]:
    if hasattr(result, "precision"):  # curata
        return {"stats": result.stats, "precision": result.precision, "recall": result.recall}
    return {"stats": np.asarray(result.stats), "precision": result.eval["precision"], "recall": result.eval["recall"]}


def _max_diff(a, b) -> float:
    worst = 0.0
    for key in a:
        if a[key].shape != b[key].shape:
            return float("inf")
        worst = max(worst, float(np.max(np.abs(a[key] - b[key]), initial=0.0)))
    return worst


def machine_line() -> str:
    import curata

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = [f"curata {curata.__version__} ({curata.get_num_threads()} threads)"]
    for mod in ("pycocotools", "faster_coco_eval"):
        try:
            from importlib.metadata import version

            versions.append(f"{mod} {version(mod.replace('_', '-'))}")
        except Exception:  # noqa: BLE001
            versions.append(f"{mod} missing")
    n_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu}, {n_cpus} CPUs available, Python {platform.python_version()}, numpy {np.__version__}; "
            + ", ".join(versions) + f"; load average {os.getloadavg()[0]:.2f}")


def run_case(name, n_images, n_gt, per_image, repeats, peer_repeats, seed=0):
    t0 = time.perf_counter()
    gt, dt = synthetic_coco(n_images, n_gt, per_image, seed=seed)
    print(f"# {name}: generated {len(gt['annotations'])} GT, {len(dt)} detections in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    contenders = {"curata": _curata(gt, dt), "curata (dt as arrays)": _curata_table(gt, dt)}
    skipped = {}
    for label, make in (("faster-coco-eval", _faster), ("pycocotools", _pycocotools)):
        try:
            contenders[label] = make(copy.deepcopy(gt), copy.deepcopy(dt))
        except ImportError as exc:
            skipped[label] = str(exc)
    times: dict[str, list[float]] = {k: [] for k in contenders}
    # Check (and warm up): every contender once, results compared with curata's.
    reference = None
    for label, fn in contenders.items():
        t = time.perf_counter()
        result = fn()
        times[label].append(time.perf_counter() - t)
        arrays = _arrays(result)
        if reference is None:
            reference = arrays
        else:
            diff = _max_diff(reference, arrays)
            if diff > 1e-12:
                raise SystemExit(f"{name}: {label} differs from curata by {diff}")
        print(f"#   {label}: {times[label][-1]:.3f} s (check run), AP {arrays['stats'][0]:.4f}", file=sys.stderr)
    labels = list(contenders)
    for r in range(max(repeats, peer_repeats) - 1):
        order = labels[r % len(labels):] + labels[: r % len(labels)]
        for label in order:
            wanted = peer_repeats if label == "pycocotools" else repeats
            if len(times[label]) >= wanted:
                continue
            gc.collect()
            gc.disable()
            t = time.perf_counter()
            contenders[label]()
            times[label].append(time.perf_counter() - t)
            gc.enable()
    rows = []
    base = statistics.median(times["curata"])
    for label in labels:
        med = statistics.median(times[label])
        rows.append((name, label, med, len(times[label]), med / base))
    for label, why in skipped.items():
        rows.append((name, label, float("nan"), 0, float("nan")))
        print(f"#   {label} skipped: {why}", file=sys.stderr)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.coco", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="only the 500-image case, 3 rounds")
    p.add_argument("--repeats", type=int, default=5, help="rounds for curata and faster-coco-eval (default 5)")
    p.add_argument("--peer-repeats", type=int, default=None,
                   help="rounds for pycocotools (default: 3 for the small case, 1 at COCO-val size)")
    p.add_argument("--only", default=None, help="regular expression on case names")
    p.add_argument("--write", action="store_true", help="also write benchmarks/results/coco-cpu-<N>c.md")
    args = p.parse_args(argv)
    cases = dict(CASES)
    if args.quick:
        cases = dict(list(CASES.items())[:1])
        args.repeats = min(args.repeats, 3)
    if args.only:
        cases = {k: v for k, v in cases.items() if re.search(args.only, k)}
    lines = [f"machine at start: {machine_line()}", ""]
    all_rows = []
    for name, (n_images, n_gt, per_image) in cases.items():
        peer = args.peer_repeats if args.peer_repeats is not None else (3 if n_images <= 1000 else 1)
        all_rows += run_case(name, n_images, n_gt, per_image, args.repeats, peer)
    lines += ["| case | contender | median s | rounds | time / curata |", "|---|---|---:|---:|---:|"]
    for name, label, med, n, ratio in all_rows:
        lines.append(f"| {name} | {label} | {med:.3f} | {n} | {ratio:.2f}× |")
    lines += ["", f"load average at end: {os.getloadavg()[0]:.2f}"]
    text = "\n".join(lines)
    print(text)
    if args.write and not args.quick and not args.only:
        n_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"coco-cpu-{n_cpus}c.md")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            f.write("# coco_eval benchmark (python -m benchmarks.coco --write)\n\n" + text + "\n")
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
