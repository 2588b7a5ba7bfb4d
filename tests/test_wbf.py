"""curata.boxes.wbf against ensemble-boxes' weighted_boxes_fusion and a float64 reference."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curata import boxes as cb

ensemble_boxes = pytest.importorskip("ensemble_boxes")

CONF_TYPES = ["avg", "max", "box_and_model_avg", "absent_model_aware_avg"]


# ------------------------------------------------------------------------------ reference
def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def ref_wbf(boxes_list, scores_list, labels_list, weights=None, iou_thr=0.55, skip=0.0, conf_type="avg",
            allows_overflow=False):
    """Plain float64 WBF from the written semantics (no float32 rounding anywhere)."""
    n_models = len(boxes_list)
    w = np.ones(n_models) if weights is None else np.asarray(weights, dtype=np.float64)
    entries = []  # (label, weighted score, model, box)
    for m in range(n_models):
        for b, s, lab in zip(np.asarray(boxes_list[m], dtype=np.float64).reshape(-1, 4), scores_list[m],
                             labels_list[m]):
            if s < skip:
                continue
            x1, x2 = sorted((b[0], b[2]))
            y1, y2 = sorted((b[1], b[3]))
            box = [min(max(v, 0.0), 1.0) for v in (x1, y1, x2, y2)]
            if (box[2] - box[0]) * (box[3] - box[1]) == 0:
                continue
            entries.append((int(lab), float(s) * w[m], m, box))
    out = []  # (score, label, box)
    for label in sorted({e[0] for e in entries}):
        items = sorted((e for e in entries if e[0] == label), key=lambda e: -e[1])  # stable
        members, fused = [], []
        for e in items:
            best, best_iou = -1, iou_thr
            for c, fb in enumerate(fused):
                v = _iou(fb, e[3])
                if v > best_iou:
                    best, best_iou = c, v
            if best < 0:
                members.append([e])
                fused.append(list(e[3]))
                continue
            members[best].append(e)
            s = np.array([x[1] for x in members[best]])
            bs = np.array([x[3] for x in members[best]])
            fused[best] = list((s[:, None] * bs).sum(0) / s.sum() if s.sum() > 0 else bs.mean(0))
        for c, ms in enumerate(members):
            s = np.array([x[1] for x in ms])
            n = len(ms)
            models = {x[2] for x in ms}
            mean = s.max() if conf_type == "max" else s.mean()
            cluster_weight = sum(w[x[2]] for x in ms)
            if conf_type == "avg":
                score = mean * (n if allows_overflow else min(n_models, n)) / w.sum()
            elif conf_type == "max":
                score = mean / w.max()
            elif conf_type == "box_and_model_avg":
                score = mean * n / cluster_weight * sum(w[k] for k in models) / w.sum()
            else:
                absent = sum(w[k] for k in range(n_models) if k not in models)
                score = mean * n / (cluster_weight + absent)
            out.append((score, label, fused[c]))
    out.sort(key=lambda t: -t[0])  # stable: ties by label, then creation
    boxes = np.array([t[2] for t in out]).reshape(-1, 4)
    return boxes, np.array([t[0] for t in out]), np.array([t[1] for t in out], dtype=np.int64)


def peer_wbf(boxes_list, scores_list, labels_list, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ensemble_boxes.weighted_boxes_fusion(boxes_list, scores_list, labels_list, **kw)


def assert_same(got, want, atol=1e-6):
    gb, gs, gl = got[:3]
    wb, ws, wl = want
    assert gb.shape == (len(wb), 4) and gs.shape == (len(ws),) and gl.shape == (len(wl),)
    np.testing.assert_array_equal(gl, np.asarray(wl).astype(np.int64))
    np.testing.assert_allclose(gb, wb, rtol=0, atol=atol)
    np.testing.assert_allclose(gs, ws, rtol=0, atol=atol)


def by_score_label_box(result):
    """(boxes, scores, labels) reordered by descending score, then label, then coordinates."""
    b, sc, lab = (np.asarray(x) for x in result[:3])
    order = np.lexsort((b[:, 3], b[:, 2], b[:, 1], b[:, 0], lab, -sc))
    return b[order], sc[order], lab[order]


# ------------------------------------------------------------------------------ data
def make_models(rng, n_models, n_objects, n_labels, jitter=0.02, p_detect=0.8, max_size=0.3):
    """Models detecting the same objects with jitter; every score distinct across models."""
    centers = rng.random((n_objects, 2))
    sizes = rng.random((n_objects, 2)) * max_size + 0.01
    labels = rng.integers(0, n_labels, n_objects)
    all_scores = rng.uniform(0.01, 0.99, n_models * n_objects)  # distinct (and so are their means)
    assert len(np.unique(all_scores)) == len(all_scores)
    boxes_list, scores_list, labels_list = [], [], []
    for m in range(n_models):
        keep = rng.random(n_objects) < p_detect
        c = centers[keep] + rng.normal(0, jitter, (keep.sum(), 2))
        s = sizes[keep] * (1 + rng.normal(0, 0.1, (keep.sum(), 2)))
        b = np.concatenate([c - s / 2, c + s / 2], axis=1)
        boxes_list.append(np.clip(b, 0, 1))  # in range: ensemble-boxes would warn per box
        scores_list.append(all_scores[m * n_objects: m * n_objects + keep.sum()])
        labels_list.append(labels[keep])
    return boxes_list, scores_list, labels_list


# ------------------------------------------------------------------------------ vs peers
@pytest.mark.parametrize("conf_type", CONF_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_ensemble_boxes_and_reference(conf_type, weighted):
    rng = np.random.default_rng(hash((conf_type, weighted)) % 2**32)
    for trial in range(6):
        n_models = int(rng.integers(1, 5))
        data = make_models(rng, n_models, int(rng.integers(1, 40)), int(rng.integers(1, 4)))
        weights = list(rng.random(n_models) * 2 + 0.2) if weighted else None
        thr = float(rng.choice([0.2, 0.55, 0.8]))
        kw = dict(weights=weights, conf_type=conf_type)
        got = cb.wbf(*data, iou_threshold=thr, **kw)
        assert_same(got, peer_wbf(*data, iou_thr=thr, **kw))
        assert_same(got, ref_wbf(*data, weights=weights, iou_thr=thr, conf_type=conf_type))


@pytest.mark.parametrize("allows_overflow", [False, True])
def test_skip_threshold_and_overflow(allows_overflow):
    rng = np.random.default_rng(7)
    data = make_models(rng, 4, 30, 2, jitter=0.005)
    got = cb.wbf(*data, skip_box_threshold=0.3, allows_overflow=allows_overflow)
    assert_same(got, peer_wbf(*data, skip_box_thr=0.3, allows_overflow=allows_overflow))
    assert_same(got, ref_wbf(*data, skip=0.3, allows_overflow=allows_overflow))
    if allows_overflow:
        assert got[1].max() > 0  # scores can exceed 1 only when clusters outnumber models


def test_large_groups_use_the_same_rule():
    """Groups of >= 512 boxes take the grid path; results must not change."""
    rng = np.random.default_rng(3)
    for n_labels, size in ((1, 0.05), (2, 0.3), (1, 0.9)):
        data = make_models(rng, 3, 300 * n_labels, n_labels, jitter=0.01, max_size=size)
        assert min(np.bincount(np.concatenate(data[2]))) >= 512
        got = cb.wbf(*data)
        assert_same(got, peer_wbf(*data))


@pytest.mark.parametrize("thr", [0.0, 0.1, 0.3, 0.5, 0.55, 0.8, 0.95])
def test_large_groups_every_threshold(thr):
    """The grid path visits only the cells under a box's core (shrunk by min(thr, 1/2)): every
    threshold must still find every cluster with IoU > thr."""
    rng = np.random.default_rng(int(thr * 100))
    data = make_models(rng, 3, 300, 1, jitter=0.05, max_size=0.2)
    assert len(np.concatenate(data[2])) >= 512
    assert_same(cb.wbf(*data, iou_threshold=thr), peer_wbf(*data, iou_thr=thr))


def test_large_group_on_a_coarse_grid():
    """>= 512 boxes with coordinates on a 16-grid: exact IoU ties and IoU exactly at the threshold
    (0.5 = 1/2, 0.25 = 1/4 are reachable) on the grid path."""
    rng = np.random.default_rng(7)
    n = 600
    x, y = rng.integers(0, 14, n), rng.integers(0, 14, n)
    w, h = rng.integers(1, 4, n), rng.integers(1, 4, n)
    boxes = np.stack([x, y, np.minimum(x + w, 16), np.minimum(y + h, 16)], axis=1) / 16
    scores = rng.uniform(0.01, 0.99, n)  # random, so no two fused scores tie (their order would be unspecified)
    model = rng.integers(0, 3, n)
    data = [[boxes[model == m] for m in range(3)], [scores[model == m] for m in range(3)],
            [np.zeros(int((model == m).sum()), dtype=np.int64) for m in range(3)]]
    for thr in (0.25, 0.5):
        assert_same(cb.wbf(*data, iou_threshold=thr), peer_wbf(*data, iou_thr=thr))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_models=st.integers(1, 4),
    n_objects=st.integers(0, 60),
    n_labels=st.integers(1, 3),
    thr=st.sampled_from([0.0, 0.3, 0.55, 0.9]),
    conf_type=st.sampled_from(CONF_TYPES),
    jitter=st.sampled_from([0.0, 0.01, 0.05]),
)
def test_fuzz_identical_to_ensemble_boxes(seed, n_models, n_objects, n_labels, thr, conf_type, jitter):
    rng = np.random.default_rng(seed)
    data = make_models(rng, n_models, n_objects, n_labels, jitter=jitter)
    weights = list(rng.random(n_models) + 0.5)
    got = cb.wbf(*data, weights=weights, iou_threshold=thr, conf_type=conf_type)
    assert_same(got, peer_wbf(*data, weights=weights, iou_thr=thr, conf_type=conf_type))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 8), st.integers(0, 8), st.integers(1, 4),
                          st.integers(1, 4), st.integers(0, 1)), max_size=25))
def test_fuzz_grid_coordinates_reference(rows):
    """Boxes on a coarse grid (many exact IoU ties and boundary cases), distinct scores."""
    boxes_list, scores_list, labels_list = [[], [], []], [[], [], []], [[], [], []]
    for k, (m, x, y, w, h, lab) in enumerate(rows):
        boxes_list[m].append([x / 8, y / 8, min(x + w, 8) / 8, min(y + h, 8) / 8])
        scores_list[m].append(1 - (k + 1) / 64)
        labels_list[m].append(lab)
    data = [[np.array(b, dtype=np.float64).reshape(-1, 4) for b in boxes_list],
            [np.array(s) for s in scores_list], [np.array(v, dtype=np.int64) for v in labels_list]]
    got = cb.wbf(*data, iou_threshold=0.5)
    # Distinct scores can still give equal fused scores ((61 + 58) / 2 == (60 + 59) / 2), which
    # ensemble-boxes' unstable argsort outputs in any order: compare with it up to that order.
    assert_same(by_score_label_box(got), by_score_label_box(peer_wbf(*data, iou_thr=0.5)))
    assert_same(got, ref_wbf(*data, iou_thr=0.5))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    score_dtypes=st.lists(st.sampled_from([np.float16, np.float32, np.float64]), min_size=1, max_size=4),
    box_dtype=st.sampled_from([np.float32, np.float64]),
    thr=st.sampled_from([0.0, 0.3, 0.55, 1.0]),
    skip=st.sampled_from([0.0, 0.1, 0.3, 0.7]),
    conf_type=st.sampled_from(CONF_TYPES),
    weighted=st.booleans(),
)
def test_fuzz_messy_input_identical_to_ensemble_boxes(seed, score_dtypes, box_dtype, thr, skip, conf_type, weighted):
    """Boxes outside [0, 1], swapped corners, duplicates, empty models, distinct scores of mixed
    dtypes that often equal a skip threshold, model weights: the same fused boxes as ensemble-boxes
    (compared as sets: equal fused scores may come out in another order there)."""
    rng = np.random.default_rng(seed)
    boxes_list, scores_list, labels_list = [], [], []
    used = np.zeros(0, dtype=np.int64)
    for dtype in score_dtypes:
        n = int(rng.integers(0, 25))
        c = rng.random((n, 2)) * 1.4 - 0.2
        s = rng.random((n, 2)) * 0.3 + 0.01
        b = np.concatenate([c - s / 2, c + s / 2], axis=1)
        swap = rng.random(n) < 0.2
        b[swap] = b[swap][:, [2, 1, 0, 3]]
        if n > 1:
            b[rng.integers(0, n)] = b[rng.integers(0, n)]  # a duplicate box
        # Distinct thousandths (distinct in float16 too), often exactly a skip threshold: ties in
        # the visiting order would make the clusters depend on ensemble-boxes' unstable sort.
        scores = rng.choice(np.setdiff1d(np.arange(1, 1000), used), n, replace=False)
        used = np.concatenate([used, scores])
        scores = scores / 1000
        boxes_list.append(b.astype(box_dtype))
        scores_list.append(scores.astype(dtype))
        labels_list.append(rng.integers(0, 2, n))
    weights = list(rng.uniform(0.5, 2.0, len(score_dtypes))) if weighted else None
    kw = dict(weights=weights, conf_type=conf_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            got = cb.wbf(boxes_list, scores_list, labels_list, iou_threshold=thr, skip_box_threshold=skip, **kw)
        finally:
            logging.disable(logging.NOTSET)
    want = peer_wbf(boxes_list, scores_list, labels_list, iou_thr=thr, skip_box_thr=skip, **kw)

    def rows(result):
        b, s, lab = (np.asarray(x, dtype=np.float64) for x in result[:3])
        return sorted(zip(lab.tolist(), np.round(s, 6).tolist(), np.round(b, 6).tolist()))

    assert len(got[1]) == len(want[1])
    for g, w in zip(rows(got), rows(want)):
        assert g[0] == w[0] and abs(g[1] - w[1]) <= 2e-6
        np.testing.assert_allclose(g[2], w[2], rtol=0, atol=2e-6)


# ------------------------------------------------------------------------------ semantics
def test_single_box_and_empty_models():
    b = np.array([[0.1, 0.2, 0.3, 0.4]])
    boxes, scores, labels = cb.wbf([b, np.zeros((0, 4)), []], [[0.8], [], []], [[5], [], []])
    np.testing.assert_array_equal(boxes, b)
    np.testing.assert_allclose(scores, [0.8 * 1 / 3])  # avg: min(3 models, 1 box) / sum(weights) = 1/3
    np.testing.assert_array_equal(labels, [5])
    for empty in ([], [[]], [np.zeros((0, 4))] * 3):
        n = len(empty)
        boxes, scores, labels = cb.wbf(empty, [[]] * n, [[]] * n)
        assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)
        assert labels.dtype == np.int64


def test_two_models_fuse_to_weighted_mean():
    a = np.array([[0.10, 0.10, 0.50, 0.50]])
    b = np.array([[0.12, 0.10, 0.52, 0.50]])
    boxes, scores, labels = cb.wbf([a, b], [[0.9], [0.6]], [[1], [1]], weights=[1, 2])
    s = np.array([0.9 * 1, 0.6 * 2])
    np.testing.assert_allclose(boxes[0], (s[:, None] * np.concatenate([a, b])).sum(0) / s.sum(), atol=1e-6)
    np.testing.assert_allclose(scores, [s.mean() * 2 / 3], atol=1e-6)


def test_labels_never_fuse():
    b = np.array([[0.1, 0.1, 0.5, 0.5]])
    boxes, scores, labels = cb.wbf([b, b], [[0.9], [0.8]], [[0], [1]])
    assert len(boxes) == 2 and sorted(labels.tolist()) == [0, 1]


def test_iou_exactly_at_threshold_does_not_join():
    a = np.array([[0.0, 0.0, 0.5, 0.5]])
    b = np.array([[0.0, 0.0, 0.5, 0.25]])  # IoU exactly 0.5
    assert len(cb.wbf([a, b], [[0.9], [0.8]], [[0], [0]], iou_threshold=0.5)[0]) == 2
    assert len(cb.wbf([a, b], [[0.9], [0.8]], [[0], [0]], iou_threshold=np.nextafter(0.5, 0))[0]) == 1


def test_joins_the_best_cluster_not_the_first():
    # Two clusters both above the threshold with the third box: it joins the one of higher IoU.
    c1 = [0.0, 0.0, 0.4, 0.4]
    c2 = [0.1, 0.0, 0.5, 0.4]
    x = [0.09, 0.0, 0.49, 0.4]
    # IoU(c1, c2) = 0.6, IoU(x, c1) = 0.633, IoU(x, c2) = 0.951
    boxes, scores, _ = cb.wbf([np.array([c1, c2]), np.array([x])], [[0.9, 0.8], [0.7]], [[0, 0], [0]],
                              iou_threshold=0.62)
    assert len(boxes) == 2
    np.testing.assert_allclose(scores, [(0.8 + 0.7) / 2, 0.9 / 2])
    assert boxes[0][0] == pytest.approx((0.8 * 0.1 + 0.7 * 0.09) / 1.5, abs=1e-6)
    np.testing.assert_array_equal(boxes[1], c1)


def test_clipping_swapping_and_zero_area_are_counted(caplog):
    boxes = np.array([
        [-0.2, 0.1, 0.5, 0.6],   # clipped
        [0.9, 0.8, 0.1, 0.2],    # swapped
        [0.3, 0.3, 0.3, 0.9],    # zero area: dropped
        [1.2, 0.1, 1.5, 0.4],    # clipped to x1 = x2 = 1: dropped
        [0.2, -np.inf, 0.4, np.inf],  # infinite: clipped to [0, 1]
    ])
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    labels = [0, 1, 2, 3, 4]
    with caplog.at_level(logging.WARNING, logger="curata"):
        got = cb.wbf([boxes], [scores], [labels])
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "3 clipped" in msg and "1 swapped" in msg and "2 dropped" in msg
    assert_same(got, peer_wbf([boxes], [scores], [labels]))
    np.testing.assert_array_equal(got[2], [0, 1, 4])
    np.testing.assert_allclose(got[0][2], [0.2, 0.0, 0.4, 1.0])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="curata"):
        cb.wbf([np.array([[0.1, 0.1, 0.2, 0.2]])], [[0.5]], [[0]])
    assert not caplog.records


def test_skip_threshold_boundary_and_zero_scores():
    b = np.array([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.52], [0.6, 0.6, 0.9, 0.9]])
    got = cb.wbf([b], [[0.5, 0.49999, 0.7]], [[0, 0, 0]], skip_box_threshold=0.5)
    np.testing.assert_allclose(got[1], [0.7, 0.5])  # score == threshold is kept
    # Every member scored 0: the fused box is the plain mean (ensemble-boxes divides 0 by 0).
    boxes, scores, _ = cb.wbf([b[:1], b[1:2]], [[0.0], [0.0]], [[0], [0]])
    np.testing.assert_allclose(boxes, [[0.1, 0.1, 0.5, 0.51]])
    np.testing.assert_array_equal(scores, [0.0])


def test_equal_scores_are_visited_in_input_order():
    a = [0.0, 0.0, 0.2, 0.2]
    b = [0.5, 0.5, 0.7, 0.7]
    # Equal fused scores: output by label, then creation order (model 0 before model 1).
    boxes, _, _ = cb.wbf([np.array([a]), np.array([b])], [[0.5], [0.5]], [[0], [0]])
    np.testing.assert_array_equal(boxes, [a, b])
    boxes, _, _ = cb.wbf([np.array([b]), np.array([a])], [[0.5], [0.5]], [[0], [0]])
    np.testing.assert_array_equal(boxes, [b, a])
    # A third box overlapping both equal-score boxes equally joins the one visited first.
    # (exact binary fractions: IoU(mid, left) == IoU(mid, right) == 0.6, IoU(left, right) = 1/3)
    left, right, mid = [0.0, 0.0, 0.5, 0.5], [0.25, 0.0, 0.75, 0.5], [0.125, 0.0, 0.625, 0.5]
    boxes, _, _ = cb.wbf([np.array([right, left]), np.array([mid])], [[0.6, 0.6], [0.5]], [[0, 0], [0]],
                         iou_threshold=0.5)
    assert boxes[0][0] == pytest.approx((0.6 * 0.25 + 0.5 * 0.125) / 1.1)
    np.testing.assert_array_equal(boxes[1], left)


def test_batched_equals_per_image():
    rng = np.random.default_rng(11)
    per_image = [make_models(rng, 3, int(rng.integers(0, 25)), 2) for _ in range(6)]
    image_of = [3, 1, 4, 1 + 7, 5, 9]  # arbitrary ids, not sorted
    boxes_list = [np.concatenate([img[0][m] for img in per_image]) for m in range(3)]
    scores_list = [np.concatenate([img[1][m] for img in per_image]) for m in range(3)]
    labels_list = [np.concatenate([img[2][m] for img in per_image]) for m in range(3)]
    ids_list = [np.concatenate([np.full(len(img[1][m]), image_of[k]) for k, img in enumerate(per_image)])
                for m in range(3)]
    boxes, scores, labels, ids = cb.wbf(boxes_list, scores_list, labels_list, weights=[1, 2, 3],
                                        conf_type="absent_model_aware_avg", image_ids=ids_list)
    assert np.all(np.diff(ids) >= 0)
    for k, img in enumerate(per_image):
        want = cb.wbf(*img, weights=[1, 2, 3], conf_type="absent_model_aware_avg")
        sel = ids == image_of[k]
        np.testing.assert_array_equal(boxes[sel], want[0])
        np.testing.assert_array_equal(scores[sel], want[1])
        np.testing.assert_array_equal(labels[sel], want[2])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtypes(dtype):
    rng = np.random.default_rng(5)
    data = make_models(rng, 3, 20, 2)
    cast = [[b.astype(dtype) for b in data[0]], [s.astype(dtype) for s in data[1]], data[2]]
    boxes, scores, labels = cb.wbf(*cast)
    assert boxes.dtype == (np.float64 if dtype == np.float64 else np.float32)
    assert scores.dtype == boxes.dtype
    # The peer reads the same (rounded) values; results agree to the output precision.
    want = peer_wbf([b.astype(np.float64) for b in cast[0]], [s.astype(np.float64) for s in cast[1]], data[2])
    tol = 1e-6 if dtype == np.float64 else 1e-6 + 6e-8
    assert_same((boxes.astype(np.float64), scores.astype(np.float64), labels), want, atol=tol)


def test_torch_and_non_contiguous_inputs_are_not_mutated():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    data = make_models(rng, 2, 15, 2)
    wide = [np.repeat(b, 2, axis=1)[:, ::2] for b in data[0]]  # non-contiguous views
    assert not wide[0].flags.c_contiguous
    keep = [w.copy() for w in wide]
    got = cb.wbf(wide, *data[1:])
    assert_same(got, peer_wbf(data[0], *data[1:]))
    for w, k in zip(wide, keep):
        np.testing.assert_array_equal(w, k)
    t = cb.wbf([torch.from_numpy(b) for b in data[0]], [torch.from_numpy(s) for s in data[1]],
               [torch.from_numpy(v) for v in data[2]])
    assert all(isinstance(x, torch.Tensor) for x in t)
    np.testing.assert_array_equal(t[0].numpy(), got[0])
    # A model without boxes given as [] does not turn torch input into numpy output.
    t = cb.wbf([[]] + [torch.from_numpy(b) for b in data[0]], [[]] + [torch.from_numpy(s) for s in data[1]],
               [[]] + [torch.from_numpy(v) for v in data[2]])
    assert all(isinstance(x, torch.Tensor) for x in t)
    stacked = cb.wbf(np.stack([data[0][0][:5], data[0][1][:5]]), np.stack([data[1][0][:5], data[1][1][:5]]),
                     np.stack([data[2][0][:5], data[2][1][:5]]))
    assert_same(stacked, peer_wbf([data[0][0][:5], data[0][1][:5]], [data[1][0][:5], data[1][1][:5]],
                                  [data[2][0][:5], data[2][1][:5]]))


# ------------------------------------------------------------------------------ bad input
def test_bad_input():
    b = [np.array([[0.1, 0.1, 0.2, 0.2]])]
    s = [np.array([0.5])]
    lab = [np.array([0])]
    with pytest.raises(ValueError, match="scores_list must have one entry per model"):
        cb.wbf(b, s + s, lab)
    with pytest.raises(ValueError, match="labels_list must have one entry per model"):
        cb.wbf(b, s, [])
    with pytest.raises(ValueError, match=r"boxes_list\[0\] must have shape \(N, 4\)"):
        cb.wbf([np.zeros((2, 5))], s, lab)
    with pytest.raises(ValueError, match=r"scores_list\[0\] must have shape \(1,\)"):
        cb.wbf(b, [np.array([0.5, 0.6])], lab)
    with pytest.raises(ValueError, match=r"labels_list\[0\] must have length 1"):
        cb.wbf(b, s, [np.array([0, 1])])
    with pytest.raises(ValueError, match=r"scores_list\[0\]\[0\] must be finite"):
        cb.wbf(b, [np.array([np.nan])], lab)
    with pytest.raises(ValueError, match=r"boxes_list\[0\]\[0\] must not be NaN"):
        cb.wbf([np.array([[0.1, np.nan, 0.2, 0.2]])], s, lab)
    with pytest.raises(ValueError, match="conf_type must be one of"):
        cb.wbf(b, s, lab, conf_type="mean")
    with pytest.raises(ValueError, match="weights must have one entry per model"):
        cb.wbf(b, s, lab, weights=[1, 2])
    with pytest.raises(ValueError, match="weights must be finite and > 0"):
        cb.wbf(b, s, lab, weights=[0])
    with pytest.raises(ValueError, match="iou_threshold must be in"):
        cb.wbf(b, s, lab, iou_threshold=1.5)
    with pytest.raises(ValueError, match="skip_box_threshold must be >= 0"):
        cb.wbf(b, s, lab, skip_box_threshold=-0.1)
    with pytest.raises(TypeError, match="boxes_list must be a list"):
        cb.wbf(np.zeros(4), s, lab)
    with pytest.raises(ValueError, match="labels_list.* must hold integers"):
        cb.wbf(b, s, [np.array([0.5])])
    with pytest.raises(ValueError, match="image_ids must have one entry per model"):
        cb.wbf(b, s, lab, image_ids=[])
    with pytest.raises(TypeError, match="allows_overflow must be a bool"):
        cb.wbf(b, s, lab, allows_overflow=1)


def test_skip_threshold_is_compared_in_the_score_dtype():
    thr = 0.1  # float32(0.1) > 0.1, and the next float32 below it is < 0.1
    lo = np.nextafter(np.float32(thr), np.float32(0))
    b = [np.array([[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.6, 0.6]], dtype=np.float64)]
    for s in (np.array([np.float32(thr), lo], dtype=np.float32), np.array([thr, 0.1 - 1e-12])):
        got = cb.wbf(b, [s], [[0, 0]], skip_box_threshold=thr)
        assert_same(got, peer_wbf(b, [s], [[0, 0]], skip_box_thr=thr))
        assert len(got[0]) == 1
    thr = 0.7  # float32(0.7) < 0.7: a float32 score equal to it passes, as in ensemble-boxes
    assert float(np.float32(thr)) < thr
    s = np.array([np.float32(thr), 0.9], dtype=np.float32)
    got = cb.wbf(b, [s], [[0, 0]], skip_box_threshold=thr)
    assert len(got[0]) == 2
    assert_same(got, peer_wbf(b, [s], [[0, 0]], skip_box_thr=thr))


@pytest.mark.parametrize("thr", [0.1, 0.7, 0.3])
def test_skip_threshold_is_compared_in_each_models_own_score_dtype(thr):
    """ensemble-boxes compares each score in its own dtype: float16 scores in float16, and with
    models of different score dtypes each model in its own (not in the common compute dtype)."""
    b = np.array([[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.6, 0.6]])
    for dtype in (np.float16, np.float32, np.float64):
        at = dtype(thr)
        below = np.nextafter(at, dtype(0))
        s = np.array([at, below], dtype=dtype)
        for others in ([], [np.array([0.9])], [np.array([0.9], dtype=np.float32)]):
            boxes = [b] + [np.array([[0.7, 0.7, 0.8, 0.8]])] * len(others)
            scores = [s] + others
            labels = [[0, 0]] + [[0]] * len(others)
            got = cb.wbf(boxes, scores, labels, skip_box_threshold=thr)
            want = peer_wbf(boxes, scores, labels, skip_box_thr=thr)
            assert_same(got, want)
            assert len(got[1]) == 1 + len(others)  # the score equal to the rounded threshold passes


def test_thread_count_does_not_change_results():
    import curata

    rng = np.random.default_rng(17)
    per_image = [make_models(rng, 3, 150, 5) for _ in range(48)]  # > 16k boxes: two threads
    boxes_list = [np.concatenate([img[0][m] for img in per_image]) for m in range(3)]
    scores_list = [np.concatenate([img[1][m] for img in per_image]) for m in range(3)]
    labels_list = [np.concatenate([img[2][m] for img in per_image]) for m in range(3)]
    ids_list = [np.concatenate([np.full(len(img[1][m]), k) for k, img in enumerate(per_image)]) for m in range(3)]
    assert sum(len(s) for s in scores_list) >= 16384
    results = []
    try:
        for threads in (1, 2):
            curata.set_num_threads(threads)
            results.append(cb.wbf(boxes_list, scores_list, labels_list, image_ids=ids_list))
    finally:
        curata.set_num_threads(0)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n_per_model", [100, 300])  # 900 boxes in one group take the grid path
def test_overflowing_weighted_scores_raise_instead_of_crashing(n_per_model):
    # Finite but huge weights or scores overflow the weighted sums (inf / inf = NaN fused boxes).
    # The grid then cast NaN cell coordinates to int and indexed out of bounds (segfault); on the
    # small-group path the NaN/inf boxes and scores were returned silently.
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 0.8, (n_per_model, 2))
    base = np.concatenate([xy, xy + 0.05], axis=1)
    boxes = [base, base + 0.001, base + 0.002]
    scores = [np.full(n_per_model, 0.9)] * 3
    labels = [np.zeros(n_per_model, np.int64)] * 3
    with pytest.raises(ValueError, match=r"^wbf: the fused boxes or scores overflowed"):
        cb.wbf(boxes, scores, labels, weights=[1e308, 1e308, 1e308])
    with pytest.raises(ValueError, match=r"^wbf: the fused boxes or scores overflowed"):
        cb.wbf(boxes, [s * 1e300 for s in scores], labels)
    # Scaling the weights by a large but safe factor changes nothing but rounding.
    fused, fused_scores, _ = cb.wbf(boxes, scores, labels, weights=[1e30, 1e30, 1e30])
    plain, plain_scores, _ = cb.wbf(boxes, scores, labels)
    np.testing.assert_allclose(fused, plain, rtol=1e-6)
    np.testing.assert_allclose(fused_scores, plain_scores, rtol=1e-6)
