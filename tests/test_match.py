"""curata.boxes.match against pycocotools' evaluateImg and a float64 reference of its rules."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curata import boxes as cb


# ------------------------------------------------------------------------------ reference
def _overlap(d, g, crowd):
    iw = max(0.0, min(d[2], g[2]) - max(d[0], g[0]))
    ih = max(0.0, min(d[3], g[3]) - max(d[1], g[1]))
    inter = iw * ih
    da = (d[2] - d[0]) * (d[3] - d[1])
    if crowd:
        return inter / da if da > 0 else 0.0
    union = da + (g[2] - g[0]) * (g[3] - g[1]) - inter
    return inter / union if union > 0 else 0.0


def ref_match(pred_boxes, pred_scores, pred_classes, gt_boxes, gt_classes, iou_threshold=0.5, gt_crowd=None):
    """evaluateImg's loop for one image and one threshold, per class, written from its rules."""
    n_pred, n_gt = len(pred_scores), len(gt_boxes)
    crowd = np.zeros(n_gt, bool) if gt_crowd is None else np.asarray(gt_crowd, bool)
    order = sorted(range(n_pred), key=lambda i: -pred_scores[i])  # stable
    taken = np.zeros(n_gt, bool)
    pairs, ignored = [], []
    matched_pred = set()
    for d in order:
        gts = [g for g in range(n_gt) if gt_classes[g] == pred_classes[d]]
        gts = [g for g in gts if not crowd[g]] + [g for g in gts if crowd[g]]
        bar, m = min(iou_threshold, 1 - 1e-10), -1
        for g in gts:
            if taken[g] and not crowd[g]:
                continue
            if m > -1 and not crowd[m] and crowd[g]:
                break
            v = _overlap(pred_boxes[d], gt_boxes[g], crowd[g])
            if v < bar:
                continue
            bar, m = v, g
        if m < 0:
            continue
        matched_pred.add(d)
        if crowd[m]:
            ignored.append((d, m, bar))
        else:
            taken[m] = True
            pairs.append((d, m, bar))
    unmatched_pred = [d for d in range(n_pred) if d not in matched_pred]
    unmatched_gt = [g for g in range(n_gt) if not taken[g] and not crowd[g]]
    return pairs, ignored, unmatched_pred, unmatched_gt


def assert_result(r, want):
    pairs, ignored, unmatched_pred, unmatched_gt = want
    np.testing.assert_array_equal(r.pred_index, [p[0] for p in pairs])
    np.testing.assert_array_equal(r.gt_index, [p[1] for p in pairs])
    np.testing.assert_allclose(r.iou, [p[2] for p in pairs], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r.ignored_pred, [p[0] for p in ignored])
    np.testing.assert_array_equal(r.ignored_gt, [p[1] for p in ignored])
    np.testing.assert_allclose(r.ignored_ioa, [p[2] for p in ignored], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(r.unmatched_pred, unmatched_pred)
    np.testing.assert_array_equal(r.unmatched_gt, unmatched_gt)
    for name in ("pred_index", "gt_index", "ignored_pred", "ignored_gt", "unmatched_pred", "unmatched_gt"):
        assert getattr(r, name).dtype == np.int64


def integer_scene(rng, n_pred, n_gt, n_classes, p_crowd=0.2, size=40):
    """Integer boxes on a small canvas: exact in xywh and xyxy, with many equal IoUs."""
    def boxes(n):
        xy = rng.integers(0, size, (n, 2))
        wh = rng.integers(1, size // 2, (n, 2))
        return np.concatenate([xy, xy + wh], axis=1).astype(np.float64)
    gt = boxes(n_gt)
    if n_gt > 1:  # duplicated annotations: equal IoUs, decided by pycocotools' tie rule
        dup = rng.random(n_gt) < 0.3
        gt[dup] = gt[rng.integers(0, n_gt, dup.sum())]
    pred = np.concatenate([gt[rng.integers(0, n_gt, n_pred)] + rng.integers(-3, 4, (n_pred, 4)), boxes(0)]) \
        if n_gt else boxes(n_pred)
    pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1)
    scores = rng.integers(0, 10, n_pred) / 10  # many ties: stable order by index
    return (pred, scores, rng.integers(0, n_classes, n_pred), gt, rng.integers(0, n_classes, n_gt),
            rng.random(n_gt) < p_crowd)


# ------------------------------------------------------------------------------ pycocotools
def coco_eval_img(pred, scores, pred_cls, gt, gt_cls, crowd, thr):
    pycocotools = pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b):
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    cats = sorted(set(pred_cls.tolist()) | set(gt_cls.tolist())) or [0]
    ds = {
        "images": [{"id": 1}],
        "categories": [{"id": int(c) + 1} for c in cats],
        "annotations": [
            {"id": g + 1, "image_id": 1, "category_id": int(gt_cls[g]) + 1, "bbox": xywh(gt[g]),
             "area": float((gt[g][2] - gt[g][0]) * (gt[g][3] - gt[g][1])), "iscrowd": int(crowd[g])}
            for g in range(len(gt))
        ],
    }
    dets = [{"image_id": 1, "category_id": int(pred_cls[d]) + 1, "bbox": xywh(pred[d]), "score": float(scores[d])}
            for d in range(len(pred))]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = ds
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets) if dets else COCO()
        if not dets:
            coco_dt.dataset = {"images": ds["images"], "categories": ds["categories"], "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.iouThrs = np.array([thr])
        ev.params.areaRng = [[0, 1e12]]
        ev.params.areaRngLbl = ["all"]
        ev.params.maxDets = [100000]
        ev.evaluate()
    pairs, ignored, matched = [], [], set()
    for e in ev.evalImgs:
        if e is None:
            continue
        for k, dt_id in enumerate(e["dtIds"]):
            gt_id = int(e["dtMatches"][0, k])
            if gt_id == 0:
                continue
            matched.add(dt_id - 1)
            (ignored if e["dtIgnore"][0, k] else pairs).append((dt_id - 1, gt_id - 1))
    taken = {g for _, g in pairs}
    return (sorted(pairs), sorted(ignored), [d for d in range(len(pred)) if d not in matched],
            [g for g in range(len(gt)) if g not in taken and not crowd[g]])


@pytest.mark.parametrize("thr", [0.3, 0.5, 0.75, 1.0])
def test_matches_pycocotools(thr):
    rng = np.random.default_rng(int(thr * 100))
    for trial in range(12):
        scene = integer_scene(rng, int(rng.integers(0, 30)), int(rng.integers(0, 20)), int(rng.integers(1, 4)))
        r = cb.match(*scene[:5], iou_threshold=thr, gt_crowd=scene[5])
        pairs, ignored, unmatched_pred, unmatched_gt = coco_eval_img(*scene, thr)
        assert sorted(zip(r.pred_index.tolist(), r.gt_index.tolist())) == pairs
        assert sorted(zip(r.ignored_pred.tolist(), r.ignored_gt.tolist())) == ignored
        assert r.unmatched_pred.tolist() == unmatched_pred
        assert r.unmatched_gt.tolist() == unmatched_gt
        assert_result(r, ref_match(*scene[:5], iou_threshold=thr, gt_crowd=scene[5]))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_pred=st.integers(0, 40), n_gt=st.integers(0, 25),
       n_classes=st.integers(1, 3), thr=st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]),
       p_crowd=st.sampled_from([0.0, 0.3, 1.0]))
def test_fuzz_reference(seed, n_pred, n_gt, n_classes, thr, p_crowd):
    rng = np.random.default_rng(seed)
    scene = integer_scene(rng, n_pred, n_gt, n_classes, p_crowd)
    r = cb.match(*scene[:5], iou_threshold=thr, gt_crowd=scene[5])
    assert_result(r, ref_match(*scene[:5], iou_threshold=thr, gt_crowd=scene[5]))
    # Laws: every prediction is in exactly one of TP / ignored / FP; every non-crowd GT is matched
    # at most once or unmatched.
    all_pred = np.concatenate([r.pred_index, r.ignored_pred, r.unmatched_pred])
    assert sorted(all_pred.tolist()) == list(range(n_pred))
    assert len(set(r.gt_index.tolist())) == len(r.gt_index)
    assert not np.any(scene[5][r.gt_index])
    assert sorted(r.gt_index.tolist() + r.unmatched_gt.tolist()) == np.flatnonzero(~scene[5]).tolist()
    assert np.all(r.iou >= min(thr, 1 - 1e-10))


# ------------------------------------------------------------------------------ rules
def test_greedy_by_score_and_threshold_boundary():
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], dtype=float)
    pred = np.array([[0, 0, 10, 5], [0, 0, 10, 10], [20, 0, 30, 4]], dtype=float)  # IoU 0.5, 1.0, 0.4
    r = cb.match(pred, [0.9, 0.8, 0.7], [0, 0, 0], gt, [0, 0], iou_threshold=0.5)
    # The higher-scored prediction takes GT 0 at IoU exactly 0.5; the perfect one comes too late.
    np.testing.assert_array_equal(r.pred_index, [0])
    np.testing.assert_array_equal(r.gt_index, [0])
    np.testing.assert_array_equal(r.iou, [0.5])
    np.testing.assert_array_equal(r.unmatched_pred, [1, 2])
    np.testing.assert_array_equal(r.unmatched_gt, [1])
    r = cb.match(pred, [0.8, 0.9, 0.7], [0, 0, 0], gt, [0, 0], iou_threshold=np.nextafter(0.5, 1))
    np.testing.assert_array_equal(r.pred_index, [1])
    np.testing.assert_array_equal(r.unmatched_pred, [0, 2])


def test_equal_iou_goes_to_the_later_gt_and_threshold_one():
    gt = np.array([[0, 0, 10, 10], [10, 0, 20, 10]], dtype=float)
    pred = np.array([[5, 0, 15, 10]], dtype=float)  # IoU 1/3 with both
    r = cb.match(pred, [1.0], [0], gt, [0, 0], iou_threshold=0.3)
    np.testing.assert_array_equal(r.gt_index, [1])  # pycocotools: later GT wins equal IoU
    # A threshold of 1 still matches identical boxes (pycocotools caps it at 1 - 1e-10).
    r = cb.match(gt[:1], [0.5], [0], gt, [0, 0], iou_threshold=1.0)
    np.testing.assert_array_equal(r.gt_index, [0])


def test_crowd_rules():
    gt = np.array([[0, 0, 100, 100], [0, 0, 10, 10]], dtype=float)
    crowd = np.array([True, False])
    pred = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10], [90, 90, 200, 200]], dtype=float)
    r = cb.match(pred, [0.9, 0.8, 0.7, 0.6], [1, 1, 1, 1], gt, [1, 1], gt_crowd=crowd)
    # 0 takes the regular GT (regular before crowd even though IoA with the crowd is 1); 1 and 2
    # land in the crowd region (ignored, repeatedly); 3 covers it by 10*10/110^2 < 0.5: FP.
    np.testing.assert_array_equal(r.pred_index, [0])
    np.testing.assert_array_equal(r.gt_index, [1])
    np.testing.assert_array_equal(r.ignored_pred, [1, 2])
    np.testing.assert_array_equal(r.ignored_gt, [0, 0])
    np.testing.assert_array_equal(r.ignored_ioa, [1.0, 1.0])
    np.testing.assert_array_equal(r.unmatched_pred, [3])
    np.testing.assert_array_equal(r.unmatched_gt, [])
    # Classes separate everything, including crowd.
    r = cb.match(pred, [0.9, 0.8, 0.7, 0.6], [2, 2, 2, 2], gt, [1, 1], gt_crowd=crowd)
    np.testing.assert_array_equal(r.unmatched_pred, [0, 1, 2, 3])
    np.testing.assert_array_equal(r.unmatched_gt, [1])


def test_empty_and_class_agnostic():
    z = np.zeros((0, 4))
    r = cb.match(z, [], [], z, [])
    assert all(len(getattr(r, f)) == 0 for f in r.__dataclass_fields__)
    gt = np.array([[0, 0, 10, 10]], dtype=float)
    r = cb.match(z, [], [], gt, [3])
    np.testing.assert_array_equal(r.unmatched_gt, [0])
    r = cb.match(gt, [0.5], [3], z, [])
    np.testing.assert_array_equal(r.unmatched_pred, [0])
    r = cb.match(gt, [0.5], None, gt, None)
    np.testing.assert_array_equal(r.gt_index, [0])
    # An image without GT: an empty list is an empty crowd flag array, as it is empty classes.
    r = cb.match(gt, [0.5], [3], z, [], gt_crowd=[])
    np.testing.assert_array_equal(r.unmatched_pred, [0])


def test_batched_images_equal_separate_calls():
    rng = np.random.default_rng(21)
    scenes = [integer_scene(rng, int(rng.integers(0, 15)), int(rng.integers(0, 10)), 2) for _ in range(8)]
    ids = [7, 3, 3 + 2, 11, 0, 4, 9, 8]
    cat = [np.concatenate([s[k] for s in scenes]) for k in range(6)]
    pi = np.concatenate([np.full(len(s[1]), i) for s, i in zip(scenes, ids)])
    gi = np.concatenate([np.full(len(s[3]), i) for s, i in zip(scenes, ids)])
    r = cb.match(*cat[:5], gt_crowd=cat[5], pred_image_ids=pi, gt_image_ids=gi)
    p_off = np.cumsum([0] + [len(s[1]) for s in scenes])
    g_off = np.cumsum([0] + [len(s[3]) for s in scenes])
    pairs, unmatched_pred, unmatched_gt = set(), [], []
    for k, s in enumerate(scenes):
        one = cb.match(*s[:5], gt_crowd=s[5])
        pairs |= {(p + p_off[k], g + g_off[k]) for p, g in zip(one.pred_index, one.gt_index)}
        unmatched_pred += (one.unmatched_pred + p_off[k]).tolist()
        unmatched_gt += (one.unmatched_gt + g_off[k]).tolist()
    assert set(zip(r.pred_index.tolist(), r.gt_index.tolist())) == pairs
    assert r.unmatched_pred.tolist() == sorted(unmatched_pred)
    assert r.unmatched_gt.tolist() == sorted(unmatched_gt)
    # Matched pairs come by descending score across images.
    assert np.all(np.diff(cat[1][r.pred_index]) <= 0)


def test_dtypes_and_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    scene = integer_scene(rng, 20, 10, 2)
    want = cb.match(*scene[:5], gt_crowd=scene[5])
    for dtype in (np.float16, np.float32):
        r = cb.match(scene[0].astype(dtype), scene[1].astype(dtype), scene[2], scene[3].astype(dtype), scene[4],
                     gt_crowd=scene[5])
        np.testing.assert_array_equal(r.pred_index, want.pred_index)  # small integers are exact
    r = cb.match(torch.from_numpy(scene[0]), torch.from_numpy(scene[1]), torch.from_numpy(scene[2]),
                 torch.from_numpy(scene[3]), torch.from_numpy(scene[4]), gt_crowd=torch.from_numpy(scene[5]))
    assert isinstance(r.pred_index, torch.Tensor)
    np.testing.assert_array_equal(r.gt_index.numpy(), want.gt_index)
    wide = np.repeat(scene[0], 2, axis=1)[:, ::2]
    np.testing.assert_array_equal(cb.match(wide, *scene[1:5], gt_crowd=scene[5]).gt_index, want.gt_index)


def test_bad_input():
    b = np.array([[0, 0, 1, 1]], dtype=float)
    with pytest.raises(ValueError, match="pred_scores must not be NaN"):
        cb.match(b, [np.nan], [0], b, [0])
    with pytest.raises(ValueError, match=r"pred_scores must have shape \(1,\)"):
        cb.match(b, [0.5, 0.4], [0], b, [0])
    with pytest.raises(ValueError, match=r"gt_boxes must have shape \(N, 4\)"):
        cb.match(b, [0.5], [0], np.zeros((1, 5)), [0])
    with pytest.raises(ValueError, match="gt_classes must have length 1"):
        cb.match(b, [0.5], [0], b, [0, 1])
    with pytest.raises(ValueError, match="both be given or both be None"):
        cb.match(b, [0.5], [0], b, None)
    with pytest.raises(ValueError, match="both be given or both be None"):
        cb.match(b, [0.5], [0], b, [0], pred_image_ids=[0])
    with pytest.raises(ValueError, match=r"gt_crowd must have shape \(1,\)"):
        cb.match(b, [0.5], [0], b, [0], gt_crowd=[True, False])
    with pytest.raises(ValueError, match="gt_crowd must hold only 0 and 1"):
        cb.match(b, [0.5], [0], b, [0], gt_crowd=[2])
    with pytest.raises(TypeError, match="gt_crowd must be a bool array"):
        cb.match(b, [0.5], [0], b, [0], gt_crowd=[0.5])
    with pytest.raises(ValueError, match="iou_threshold must be in"):
        cb.match(b, [0.5], [0], b, [0], iou_threshold=2)
    with pytest.raises(ValueError, match="pred_boxes must satisfy x1 <= x2"):
        cb.match(np.array([[2.0, 0, 1, 1]]), [0.5], [0], b, [0])
    with pytest.raises(ValueError, match="gt_boxes must be finite"):
        cb.match(b, [0.5], [0], np.array([[0, 0, np.inf, 1]]), [0])


def test_thread_count_does_not_change_results():
    import curata

    rng = np.random.default_rng(29)
    scenes = [integer_scene(rng, 120, 60, 3) for _ in range(60)]  # > 8192 boxes: two threads
    cat = [np.concatenate([s[k] for s in scenes]) for k in range(6)]
    pi = np.concatenate([np.full(len(s[1]), i) for i, s in enumerate(scenes)])
    gi = np.concatenate([np.full(len(s[3]), i) for i, s in enumerate(scenes)])
    results = []
    try:
        for threads in (1, 2):
            curata.set_num_threads(threads)
            results.append(cb.match(*cat[:5], gt_crowd=cat[5], pred_image_ids=pi, gt_image_ids=gi))
    finally:
        curata.set_num_threads(0)
    for name in results[0].__dataclass_fields__:
        np.testing.assert_array_equal(getattr(results[0], name), getattr(results[1], name))
