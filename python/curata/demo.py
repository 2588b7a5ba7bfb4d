"""``python -m curata.demo``: curata's data loop end to end on generated, seeded data.

1. Post-processing: a batch of YOLO-style head outputs (B, 4 + C, A) becomes detections, a large
   flat set of boxes goes through class-aware NMS, and per-image uncertainty ranks the images.
2. Curation: over L2-normalised embeddings of a few dozen classes with planted near-duplicates,
   outliers and flipped labels, one kNN graph feeds near-duplicate groups, outlier scores and
   label issues; each is scored against what was planted.
3. Drift: a monitor built on reference embeddings checks a window from the same distribution and
   one with a covariate shift in a few dimensions plus a class-prior shift.
4. Next batch to label: the most uncertain samples of a pool, made diverse by k-center greedy.

Every stage prints what it found and how long it took (medians of ``--repeats`` runs for the
post-processing ops, one run for the others).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import curata
from curata import boxes, curate, search


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
    """(median seconds of ``repeats`` runs after one warm-up, the last result)."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


EMBEDDING_CLASSES = 40


def class_centres(n_classes: int, dim: int) -> np.ndarray:
    """(n_classes, dim) float64 unit class centres, the same on every call."""
    centres = np.random.default_rng(12345).normal(size=(n_classes, dim))
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def synthetic_embeddings(n: int, dim: int, n_classes: int, seed: int = 0, *,
                         shift: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 unit-norm embeddings and their (n,) int64 true classes: class centres drawn
    on the sphere (the same for every call), rows scattered around their class centre. With
    ``shift``, classes 0-3 are four times as frequent and dimensions 0-4 move by 0.04 (about 0.4 of a
    column's standard deviation at dim = 128) before normalisation."""
    centres = class_centres(n_classes, dim)
    rng = np.random.default_rng(seed)
    prior = np.ones(n_classes)
    if shift:
        prior[:4] = 4.0
    y = rng.choice(n_classes, size=n, p=prior / prior.sum())
    x = centres[y] + rng.normal(0, 0.6 / np.sqrt(dim), size=(n, dim))
    if shift:
        x[:, :5] += 0.04
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), y.astype(np.int64)


def _f1(found: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """(precision, recall, F1) of the boolean ``found`` against the boolean ``truth``."""
    tp = int(np.count_nonzero(found & truth))
    precision = tp / max(1, int(found.sum()))
    recall = tp / max(1, int(truth.sum()))
    return precision, recall, 2 * precision * recall / max(1e-12, precision + recall)


def _once(fn):
    """(seconds of one run, its result)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def postprocessing_stage(batch: int, n_classes: int, n_anchors: int, repeats: int) -> None:
    pred = synthetic_yolo_batch(batch, n_classes, n_anchors)
    seconds, dets = _time(lambda: boxes.postprocess(pred, conf_threshold=0.25, iou_threshold=0.45), repeats)
    n_dets = sum(len(d) for d in dets)
    print(f"postprocess   {batch} x {4 + n_classes} x {n_anchors}: {n_dets} detections "
          f"({n_dets / batch:.1f}/image) in {seconds * 1e3:.2f} ms")

    flat = np.concatenate(dets)
    rng = np.random.default_rng(1)
    jittered = np.repeat(flat[:, :4], 40, axis=0) + rng.normal(0, 4, size=(len(flat) * 40, 4)).astype(np.float32)
    jittered[:, 2:] = np.maximum(jittered[:, 2:], jittered[:, :2])
    scores = rng.random(len(jittered)).astype(np.float32)
    classes = np.repeat(flat[:, 5].astype(np.int64), 40)
    seconds, keep = _time(lambda: boxes.batched_nms(jittered, scores, classes, iou_threshold=0.5), repeats)
    print(f"batched_nms   {len(jittered)} boxes, {len(np.unique(classes))} classes: kept {len(keep)} "
          f"in {seconds * 1e3:.2f} ms")

    probs = rng.dirichlet(np.ones(n_classes) * 0.3, size=len(flat))
    image_of = np.repeat(np.arange(batch), [len(d) for d in dets])
    per_box = curata.scores.entropy(probs)
    ids, per_image = curata.scores.aggregate(per_box, image_of, how="max")
    worst = ids[np.argsort(-per_image, kind="stable")[:3]]
    print(f"uncertainty   entropy of {len(flat)} boxes -> most uncertain images {worst.tolist()}")


def curation_stage(n: int, dim: int, n_classes: int) -> tuple[np.ndarray, dict]:
    """Plants 1 % near-duplicates, 0.5 % outliers and 5 % flipped labels. Returns the clean rows
    and the scores against what was planted: near-duplicate and label-issue F1, and the share of
    planted outliers among the top outlier scores."""
    x, y = synthetic_embeddings(n, dim, n_classes, seed=1)
    rng = np.random.default_rng(2)
    n_dup, n_out, n_flip = n // 100, n // 200, n // 20
    src, dst, out = np.split(rng.permutation(n)[: 2 * n_dup + n_out], [n_dup, 2 * n_dup])
    x[dst] = x[src] + rng.normal(0, 1e-3 / np.sqrt(dim), size=(n_dup, dim)).astype(np.float32)
    y[dst] = y[src]
    x[out] = rng.normal(size=(n_out, dim)).astype(np.float32)
    x[dst] /= np.linalg.norm(x[dst], axis=1, keepdims=True)
    x[out] /= np.linalg.norm(x[out], axis=1, keepdims=True)
    labels = y.copy()
    flip = rng.choice(np.setdiff1d(np.arange(n), np.concatenate([dst, out])), n_flip, replace=False)
    labels[flip] = (y[flip] + rng.integers(1, n_classes, n_flip)) % n_classes

    seconds, graph = _once(lambda: search.knn_graph(x, 10, metric="cosine"))
    gflop = float(n) * n * dim / 1e9  # the symmetric self-join computes each pair once: n^2/2 dots of D FMAs
    print(f"knn_graph     {n} x {dim}, k=10, cosine (exact): {seconds:.2f} s ({gflop / seconds:.0f} GFLOP/s)")

    t_dup, groups = _once(lambda: curate.near_duplicates(None, 0.005, graph=graph))
    sizes = np.bincount(groups)
    in_group = sizes[groups] > 1
    planted = np.zeros(n, dtype=bool)
    planted[src] = planted[dst] = True
    p, r, f = _f1(in_group, planted)
    print(f"near-dups     {int((sizes > 1).sum())} groups over {int(in_group.sum())} rows; planted pairs: "
          f"precision {p:.3f} recall {r:.3f} F1 {f:.3f} ({t_dup * 1e3:.0f} ms)")
    found = {"near_duplicates_f1": f}

    t_out, score = _once(lambda: curate.outlier_scores(None, graph=graph))
    top = np.zeros(n, dtype=bool)
    top[np.argsort(-score, kind="stable")[:n_out]] = True
    is_out = np.zeros(n, dtype=bool)
    is_out[out] = True
    print(f"outliers      top {n_out} scores hold {int((top & is_out).sum())} of the {n_out} planted "
          f"({t_out * 1e3:.0f} ms)")
    found["outlier_recall"] = int((top & is_out).sum()) / n_out

    t_lab, issues = _once(lambda: curate.label_issues(labels, graph=graph))
    flipped = np.zeros(n, dtype=bool)
    flipped[flip] = True
    flagged = np.asarray(issues.is_issue)
    # An outlier's label is arbitrary (its neighbours are strangers): scored on the other rows.
    p, r, f = _f1(flagged[~is_out], flipped[~is_out])
    print(f"label issues  {int(flagged[~is_out].sum())} flagged of {n_flip} flipped labels (outliers aside): "
          f"precision {p:.3f} recall {r:.3f} F1 {f:.3f} (kNN vote + confident learning, {t_lab * 1e3:.0f} ms)")
    found["label_issues_f1"] = f
    clean = np.ones(n, dtype=bool)
    clean[dst] = clean[out] = clean[flip] = False
    return x[clean], found


def drift_stage(reference: np.ndarray, window_rows: int, n_classes: int) -> list:
    """Checks a same-source and a shifted window; returns their two DriftReports."""
    dim = reference.shape[1]
    reports = []
    seconds, monitor = _once(lambda: curata.DriftMonitor(reference, tests=("ks",), correction="fdr", n_clusters=8))
    print(f"monitor       reference {reference.shape[0]} x {dim}, KS per column + 8 k-means clusters: "
          f"built in {seconds:.2f} s")
    for name, shift, seed in (("same source", False, 3), ("shifted", True, 4)):
        window, _ = synthetic_embeddings(window_rows, dim, n_classes, seed=seed, shift=shift)
        seconds, report = _once(lambda w=window: monitor.check(w))
        reports.append(report)
        where = ""
        if report.drift:
            cols = ", ".join(report.top_columns[:5])
            moved = int(np.argmax(np.abs(report.clusters.share_diff))) if report.clusters else -1
            where = f"; top columns [{cols}]"
            if report.cluster_drift:
                where += f"; cluster {moved} share {report.clusters.ref_share[moved]:.3f} -> " \
                         f"{report.clusters.cur_share[moved]:.3f}"
        print(f"drift check   {name} window of {window_rows}: drift={report.drift} (min adjusted p "
              f"{report.min_adjusted_pvalue:.2g}{where}) in {seconds * 1e3:.0f} ms")
    return reports


def labeling_stage(pool: np.ndarray, n_classes: int, batch: int) -> tuple[int, int]:
    """Margin uncertainty of a nearest-centre classifier on the pool, then k-center greedy among the
    most uncertain tenth, so that the batch spreads over the uncertain region instead of piling
    up in one corner of it. Coverage: distinct (top-1, top-2) class pairs among the picks."""
    logits = 20.0 * pool @ class_centres(n_classes, pool.shape[1]).T
    probs = curata.scores.softmax(logits)
    seconds, picks = _once(lambda: _next_batch(pool, probs, batch))
    uncertainty = curata.scores.margin(probs)
    greedy = np.argsort(-uncertainty, kind="stable")[:batch]
    top2 = np.argsort(-probs, axis=1, kind="stable")[:, :2]
    pairs = np.sort(top2, axis=1)

    def coverage(rows: np.ndarray) -> int:
        return len({tuple(p) for p in pairs[rows]})

    print(f"next batch    {batch} of {len(pool)} by margin + k-center greedy: {coverage(picks)} distinct class "
          f"pairs (top-{batch} by margin alone: {coverage(greedy)}) in {seconds * 1e3:.0f} ms")
    return coverage(picks), coverage(greedy)


def _next_batch(pool: np.ndarray, probs: np.ndarray, batch: int) -> np.ndarray:
    uncertainty = curata.scores.margin(probs)
    candidates = np.argsort(-uncertainty, kind="stable")[: max(batch, len(pool) // 10)]
    return candidates[curate.k_center_greedy(pool[candidates], batch, metric="cosine")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32, help="images in the post-processing batch")
    parser.add_argument("--classes", type=int, default=80, help="detector classes")
    parser.add_argument("--anchors", type=int, default=8400, help="anchors per image")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each post-processing op")
    parser.add_argument("--rows", type=int, default=40_000, help="embeddings in the curation stage")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension")
    parser.add_argument("--window", type=int, default=10_000, help="rows per drift window")
    args = parser.parse_args(argv)

    info = curata.build_info()
    print(f"curata {info['version']}  openmp={info['openmp']}  threads={curata.get_num_threads()}  "
          f"cuda module={info['cuda_module']}  devices={[d['name'] for d in curata.devices()]}")
    if not any(d["type"] == "cuda" for d in curata.devices()):
        print(f"  (no GPU: {curata.cuda_unavailable_reason()})")
    print("1. post-processing")
    postprocessing_stage(args.batch, args.classes, args.anchors, args.repeats)
    print("2. curation")
    clean, _ = curation_stage(args.rows, args.dim, EMBEDDING_CLASSES)
    print("3. drift")
    drift_stage(clean, args.window, EMBEDDING_CLASSES)
    print("4. what to label next")
    labeling_stage(clean, EMBEDDING_CLASSES, 32)


if __name__ == "__main__":
    main()
