"""curata.metrics.coco_eval against pycocotools' COCOeval (the reference) and faster-coco-eval.

Every comparison asserts the 12 stats, the precision/recall/scores arrays (shapes and values,
to 1e-12; in practice bit-identical) and the printed summary text.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import curata
from curata.metrics import ClassAP, CocoEvalResult, coco_eval

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

TOL = 1e-12


# ------------------------------------------------------------------------------ references
def run_pycocotools(gt, dt, **params):
    """pycocotools on deep copies (it mutates its inputs); returns (COCOeval, summary text)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dt) if isinstance(dt, list) else dt)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        for key, value in params.items():
            setattr(ev.params, key, value)
        ev.evaluate()
        ev.accumulate()
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        ev.summarize()
    return ev, text.getvalue()


def run_faster(gt, dt):
    faster = pytest.importorskip("faster_coco_eval")
    coco_gt = faster.COCO(copy.deepcopy(gt))
    coco_dt = coco_gt.loadRes(copy.deepcopy(dt))
    ev = faster.COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=lambda *a, **k: None)
    ev.evaluate()
    ev.accumulate()
    with contextlib.redirect_stdout(io.StringIO()):
        ev.summarize()
    return ev


def assert_same(result: CocoEvalResult, ev, text: str | None = None) -> None:
    expected = {
        "stats": np.asarray(ev.stats, dtype=np.float64),
        "precision": ev.eval["precision"],
        "recall": ev.eval["recall"],
        "scores": ev.eval["scores"],
    }
    for name, want in expected.items():
        got = getattr(result, name)
        assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
        differ = got != want  # exact first: scores may hold +-inf
        if differ.any():
            diff = np.where(differ, np.abs(got - want), 0.0)
            at = np.unravel_index(np.argmax(np.nan_to_num(diff, nan=np.inf)), diff.shape)
            assert np.all(diff <= TOL), f"{name}: |diff| {diff[at]} at {at}: {got[at]} vs {want[at]}"
    if text is not None:
        assert result.summary() + "\n" == text
        assert str(result) == result.summary()


def check(gt, dt, **kwargs):
    """coco_eval(gt, dt, **kwargs) == pycocotools with the same parameters."""
    params = {}
    if "iou_thresholds" in kwargs:
        params["iouThrs"] = np.asarray(kwargs["iou_thresholds"], dtype=np.float64)
    if "max_dets" in kwargs:
        params["maxDets"] = list(kwargs["max_dets"])
    if "area_ranges" in kwargs:
        params["areaRng"] = [list(v) for v in kwargs["area_ranges"].values()]
        params["areaRngLbl"] = list(kwargs["area_ranges"])
    result = coco_eval(gt, dt, **kwargs)
    ev, text = run_pycocotools(gt, dt, **params)
    assert_same(result, ev, text)
    return result, ev


# ------------------------------------------------------------------------------ data
def random_dataset(
    seed,
    n_images=12,
    n_categories=4,
    gt_per_image=6,
    dt_per_image=25,
    crowd=0.15,
    score_decimals=2,
    first_ann_id=1,
    extra_categories=0,
    extra_images=0,
):
    """Small COCO dataset + detector-like output: noisy copies of the ground truth (sometimes with
    the wrong class) and random boxes, sizes spread over the small/medium/large ranges, rounded
    scores (ties), shuffled ids (evaluation order is by id, not file order)."""
    rng = np.random.default_rng(seed)
    image_ids = [int(i) for i in rng.permutation(np.arange(5, 5 + 4 * (n_images + extra_images), 4))]
    cat_ids = [int(c) for c in rng.permutation(np.arange(1, 3 * (n_categories + extra_categories) + 1, 3))]
    used_cats = cat_ids[:n_categories]
    anns = []
    next_id = first_ann_id
    for img in image_ids[:n_images]:
        for _ in range(int(rng.integers(0, gt_per_image + 1))):
            w, h = np.exp(rng.uniform(np.log(3), np.log(250), 2))
            x, y = rng.uniform(0, 300, 2)
            box = [float(v) for v in np.round([x, y, w, h], 1)]
            anns.append({
                "id": next_id, "image_id": img, "category_id": used_cats[int(rng.integers(n_categories))],
                "bbox": box, "area": float(round(box[2] * box[3] * rng.uniform(0.5, 1.0), 2)),
                "iscrowd": int(rng.random() < crowd),
            })
            next_id += 1
    rng.shuffle(anns)
    dts = []
    for img in image_ids[:n_images]:
        own = [a for a in anns if a["image_id"] == img]
        for _ in range(int(rng.integers(0, dt_per_image + 1))):
            if own and rng.random() < 0.75:
                g = own[int(rng.integers(len(own)))]
                b = np.array(g["bbox"]) + rng.normal(0, 0.1, 4) * np.array(g["bbox"])[[2, 3, 2, 3]]
                b[2:] = np.abs(b[2:])
                cat = g["category_id"] if rng.random() < 0.8 else used_cats[int(rng.integers(n_categories))]
            else:
                b = np.concatenate([rng.uniform(0, 300, 2), np.exp(rng.uniform(np.log(3), np.log(250), 2))])
                cat = used_cats[int(rng.integers(n_categories))]
            dts.append({
                "image_id": img, "category_id": cat, "bbox": [float(v) for v in np.round(b, 2)],
                "score": float(round(rng.random(), score_decimals)),
            })
    gt = {
        "images": [{"id": i, "width": 640, "height": 480} for i in image_ids],
        "annotations": anns,
        "categories": [{"id": c, "name": f"c{c}"} for c in cat_ids],
    }
    return gt, dts


def tiny_gt(boxes, areas=None, crowd=None, ids=None, category_id=1, image_id=1):
    anns = []
    for j, b in enumerate(boxes):
        anns.append({
            "id": (ids[j] if ids is not None else j + 1), "image_id": image_id, "category_id": category_id,
            "bbox": list(map(float, b)), "area": float(areas[j] if areas is not None else b[2] * b[3]),
            "iscrowd": int(crowd[j]) if crowd is not None else 0,
        })
    return {"images": [{"id": image_id}], "annotations": anns, "categories": [{"id": category_id}]}


def det(box, score, image_id=1, category_id=1):
    return {"image_id": image_id, "category_id": category_id, "bbox": list(map(float, box)), "score": score}


# ------------------------------------------------------------------------------ hand-computed cases
def test_hand_computed_precision_envelope():
    # Two ground-truth boxes; detections TP (0.9), FP (0.8), TP (0.7) at every IoU threshold.
    gt = tiny_gt([[0, 0, 10, 10], [50, 50, 10, 10]])
    dt = [det([0, 0, 10, 10], 0.9), det([200, 200, 10, 10], 0.8), det([50, 50, 10, 10], 0.7)]
    r = coco_eval(gt, dt)
    # precision = tp / (tp + fp + eps): 1/(1+eps), 1/(2+eps), 2/(3+eps); the envelope lifts the
    # middle one to 2/3. Recall 0.5 after the first detection, 1 after the third; each recall
    # threshold reads the first detection whose recall reaches it.
    eps = np.spacing(1)
    p1, p23 = 1.0 / (1.0 + eps), 2.0 / (3.0 + eps)
    expected = np.where(np.linspace(0, 1, 101) <= 0.5, p1, p23)
    assert np.array_equal(r.precision[0, :, 0, 0, 2], expected)
    assert r.recall[0, 0, 0, 2] == 1.0
    # AP50 over 101 points: 51 read the first detection (recall 0..0.5), 50 the third.
    assert r.stats[1] == pytest.approx((51 * p1 + 50 * p23) / 101, abs=1e-15)
    # maxDets=1 keeps only the 0.9 detection: recall 1/2.
    assert r.recall[0, 0, 0, 0] == 0.5
    assert r.scores[0, 0, 0, 0, 2] == 0.9 and r.scores[0, 100, 0, 0, 2] == 0.7
    check(gt, dt)


def test_hand_computed_iou_xywh_formula():
    # GT 10x10 at origin; detection 10x5 -> IoU 50/100 = 0.5 exactly (matches at 0.5 only);
    # 10x7.5 -> 0.75 exactly (matches at 0.5..0.75).
    gt = tiny_gt([[0, 0, 10, 10]])
    for h, n_match in [(5.0, 1), (7.5, 6), (10.0, 10), (4.999, 0)]:
        r = coco_eval(gt, [det([0, 0, 10, h], 0.5)])
        recall = r.recall[:, 0, 0, 2]
        assert int((recall == 1.0).sum()) == n_match, h
        check(gt, [det([0, 0, 10, h], 0.5)])


def test_crowd_iou_is_intersection_over_detection_area():
    # A crowd region covering a small detection: IoU = inter / det area = 1, though the
    # ordinary IoU is tiny. The detection is ignored (matched to a crowd), not a false positive.
    gt = tiny_gt([[0, 0, 100, 100], [300, 300, 10, 10]], crowd=[1, 0])
    dt = [det([10, 10, 5, 5], 0.9), det([20, 20, 5, 5], 0.8), det([300, 300, 10, 10], 0.7)]
    r, _ = check(gt, dt)
    # both crowd hits are ignored, the true positive alone counts: precision 1 / (1 + eps)
    assert np.all(r.precision[:, :, 0, 0, 2] == 1.0 / (1.0 + np.spacing(1)))


def test_exact_iou_one_with_threshold_one():
    gt = tiny_gt([[3, 4, 10, 20]])
    dt = [det([3, 4, 10, 20], 0.9)]
    r, _ = check(gt, dt, iou_thresholds=[0.5, 1.0])
    assert np.all(r.recall[:, 0, 0, 2] == 1.0)  # 1 >= min(1.0, 1 - 1e-10)


# ------------------------------------------------------------------------------ vs pycocotools
@pytest.mark.parametrize("seed", range(8))
def test_random_datasets_match_pycocotools(seed):
    gt, dt = random_dataset(seed)
    result, ev = check(gt, dt)
    assert result.category_ids.tolist() == sorted(c["id"] for c in gt["categories"])


def test_large_sparse_and_negative_ids():
    # ids far apart take the binary-search path of the id lookup, small ones the table path
    gt, dt = random_dataset(10)
    remap = {img["id"]: (img["id"] * 7919 - 40) * 10**12 for img in gt["images"]}
    remap[gt["images"][0]["id"]] = -(2**62)
    for img in gt["images"]:
        img["id"] = remap[img["id"]]
    for a in gt["annotations"] + dt:
        a["image_id"] = remap[a["image_id"]]
    for a in gt["annotations"]:
        a["id"] = a["id"] * 10**15 - 2**61
    check(gt, dt)
    dt[0]["image_id"] = 2**62
    with pytest.raises(ValueError, match=r"dt\[0\]\['image_id'\] is 4611686018427387904, not an id"):
        coco_eval(gt, dt)


def test_categories_without_ground_truth_and_images_without_detections():
    gt, dt = random_dataset(11, extra_categories=3, extra_images=4)
    extra_cats = sorted(c["id"] for c in gt["categories"])
    used = {a["category_id"] for a in gt["annotations"]}
    # detections on a category that has no ground truth, and on an image without ground truth
    empty_cat = next(c for c in extra_cats if c not in used)
    empty_img = gt["images"][-1]["id"]
    dt += [det([10, 10, 20, 20], 0.95, image_id=gt["images"][0]["id"], category_id=empty_cat),
           det([10, 10, 20, 20], 0.55, image_id=empty_img, category_id=dt[0]["category_id"])]
    r, _ = check(gt, dt)
    k = int(np.searchsorted(r.category_ids, empty_cat))
    assert np.all(r.precision[:, :, k] == -1) and np.all(r.recall[:, k] == -1)
    assert r.per_class[empty_cat] == ClassAP(-1.0, -1.0)


def test_max_det_truncation_many_detections_per_image():
    gt, dt = random_dataset(3, n_images=3, n_categories=2, gt_per_image=30, dt_per_image=400, score_decimals=1)
    check(gt, dt)
    check(gt, dt, max_dets=(1, 5, 20))
    check(gt, dt, max_dets=(3, 10, 50, 1000))


def test_score_ties_keep_input_order():
    # Every score equal: the order of the input decides which detection takes a ground truth.
    gt, dt = random_dataset(5, score_decimals=0)
    check(gt, dt)
    check(gt, dt[::-1])


def test_area_range_boundaries_are_inclusive():
    # GT areas and detection w*h exactly at 32^2 and 96^2 belong to both neighbouring ranges.
    boxes = [[0, 0, 32, 32], [100, 0, 96, 96], [300, 0, 16, 64], [0, 300, 48, 192]]
    gt = tiny_gt(boxes, areas=[1024, 9216, 1024, 9216])
    dt = [det(b, 0.9 - 0.1 * i) for i, b in enumerate(boxes)] + [det([500, 500, 32, 32], 0.95), det([500, 0, 96, 96], 0.2)]
    check(gt, dt)


def test_gt_area_field_decides_range_not_box():
    # area field disagrees with w*h: pycocotools uses the field for ground truth.
    gt = tiny_gt([[0, 0, 100, 100], [200, 200, 10, 10]], areas=[500.0, 20000.0])
    dt = [det([0, 0, 100, 100], 0.9), det([200, 200, 10, 10], 0.8)]
    check(gt, dt)


def test_ignore_field_is_not_read_only_iscrowd_counts():
    gt, dt = random_dataset(7)
    for j, a in enumerate(gt["annotations"]):
        a["ignore"] = int(j % 3 == 0)
    r1, _ = check(gt, dt)
    for a in gt["annotations"]:
        del a["ignore"]
    assert np.array_equal(coco_eval(gt, dt).precision, r1.precision)


def test_missing_iscrowd_defaults_to_zero():
    gt, dt = random_dataset(8, crowd=0.0)
    for a in gt["annotations"]:
        del a["iscrowd"]
    result = coco_eval(gt, dt)
    for a in gt["annotations"]:
        a["iscrowd"] = 0
    ev, text = run_pycocotools(gt, dt)  # pycocotools needs the key
    assert_same(result, ev, text)


def test_integral_float_ids_and_flags_are_read_as_integers():
    # JSON written by tools that store every number as a float: pycocotools evaluates it (its ids
    # are dict keys, 1.0 == 1) and the table form of dt accepts such floats; the dict form did not.
    gt, dt = random_dataset(15, first_ann_id=0)
    gt_f, dt_f = copy.deepcopy(gt), copy.deepcopy(dt)
    for im in gt_f["images"]:
        im["id"] = float(im["id"])
    for c in gt_f["categories"]:
        c["id"] = np.float32(c["id"])
    for a in gt_f["annotations"]:
        a["id"], a["image_id"], a["category_id"] = float(a["id"]), float(a["image_id"]), np.float64(a["category_id"])
        a["iscrowd"] = float(a["iscrowd"])
    for d in dt_f:
        d["image_id"], d["category_id"] = float(d["image_id"]), float(d["category_id"])
    r, _ = check(gt_f, dt_f)
    want = coco_eval(gt, dt)
    for name in ("stats", "precision", "recall", "scores"):
        np.testing.assert_array_equal(getattr(r, name), getattr(want, name))
    assert r.per_class == want.per_class
    bad = copy.deepcopy(gt)
    bad["annotations"][0]["image_id"] = 2.5
    with pytest.raises(TypeError, match=r"gt\['annotations'\]\[0\]\['image_id'\] must be an integer, got float 2.5"):
        coco_eval(bad, dt)
    bad["annotations"][0]["image_id"] = 2.0**64
    with pytest.raises(ValueError, match=r"\['image_id'\] must fit in a 64-bit integer"):
        coco_eval(bad, dt)
    bad = copy.deepcopy(gt)
    bad["annotations"][0]["iscrowd"] = 2.0
    with pytest.raises(TypeError, match=r"\['iscrowd'\] must be 0 or 1, got float 2.0"):
        coco_eval(bad, dt)


def test_iscrowd_as_numpy_bool_is_the_same_as_int():
    # Annotations built from numpy/pandas columns carry np.bool_ flags; they used to be rejected
    # ("must be 0 or 1, got numpy.bool") although Python bools and numpy ints were accepted.
    gt, dt = random_dataset(11, crowd=0.3)
    assert any(a["iscrowd"] for a in gt["annotations"])
    expected = coco_eval(gt, dt)
    for a in gt["annotations"]:
        a["iscrowd"] = np.bool_(a["iscrowd"])
    got = coco_eval(gt, dt)
    np.testing.assert_array_equal(got.precision, expected.precision)
    np.testing.assert_array_equal(got.stats, expected.stats)


def test_annotation_id_zero_quirk_is_reproduced():
    # pycocotools records a match as the ground truth's id; id 0 reads as "no match".
    gt, dt = random_dataset(9, first_ann_id=0)
    assert any(a["id"] == 0 for a in gt["annotations"])
    check(gt, dt)
    gt0 = tiny_gt([[0, 0, 10, 10]], ids=[0])
    r, _ = check(gt0, [det([0, 0, 10, 10], 0.9)])
    assert np.all(r.recall[:, 0, 0, 2] == 0.0)


def test_custom_iou_thresholds_area_ranges_and_max_dets():
    gt, dt = random_dataset(12)
    check(gt, dt, iou_thresholds=[0.3, 0.5, 0.7])
    check(gt, dt, iou_thresholds=[0.75, 0.5, 0.5, 0.0])  # unsorted, repeated, zero
    r, _ = check(gt, dt, iou_thresholds=[0.6, 0.8])  # no 0.5 / 0.75: those stats are -1
    assert r.stats[1] == -1 and r.stats[2] == -1
    r, _ = check(gt, dt, max_dets=(1, 10, 300))  # first AP reads maxDets=100: absent -> -1
    assert r.stats[0] == -1
    ranges = {"all": (0, 1e10), "tiny": (0, 100), "small": (100, 1024.5), "large": (1024.5, float("inf"))}
    r, _ = check(gt, dt, area_ranges=ranges)
    assert r.stats[4] == -1  # no "medium" label


def test_absent_area_label_with_repeated_max_det_reads_minus_one():
    # max_dets (10, 100, 100) selects two max_det columns and an absent label none: numpy cannot
    # pair 0 area indices with 2 max_det indices (pycocotools' summarize raises IndexError there).
    # The documented -1 for an absent label holds; the other stats are those of the full run.
    gt, dt = random_dataset(14)
    r = coco_eval(gt, dt, max_dets=(10, 100, 100), area_ranges={"all": (0.0, 1e10), "small": (0.0, 1024.0)})
    full, _ = check(gt, dt, max_dets=(10, 100, 100))
    assert r.stats[4] == -1 and r.stats[5] == -1 and r.stats[10] == -1 and r.stats[11] == -1
    keep = [0, 1, 2, 3, 6, 7, 8, 9]
    np.testing.assert_array_equal(r.stats[keep], full.stats[keep])
    assert "area=medium | maxDets=100 ] = -1.000" in r.summary()


def test_repeated_image_and_category_entries_count_once():
    gt, dt = random_dataset(19)
    gt["images"] = gt["images"] + gt["images"][:3]
    gt["categories"] = gt["categories"][:1] + gt["categories"]
    r, _ = check(gt, dt)
    assert r.precision.shape[2] == len({c["id"] for c in gt["categories"]})


def test_per_class_ap_matches_pycocotools_precision():
    gt, dt = random_dataset(13, n_categories=6)
    r, ev = check(gt, dt)
    p = ev.eval["precision"]
    for k, cat_id in enumerate(ev.params.catIds):
        s = p[:, :, k, 0, -1]
        s50 = p[0, :, k, 0, -1]
        ap = float(np.mean(s[s > -1])) if (s > -1).any() else -1.0
        ap50 = float(np.mean(s50[s50 > -1])) if (s50 > -1).any() else -1.0
        assert r.per_class[cat_id] == ClassAP(ap, ap50)
    assert set(r.as_dict()) == {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}
    assert r.as_dict()["AP"] == r.stats[0]


def test_thread_count_does_not_change_results():
    # large enough (> 8192 annotations) for both parallel phases to use 2 threads
    gt, dt = random_dataset(14, n_images=500, dt_per_image=40)
    assert len(dt) + len(gt["annotations"]) > 2 * 4096
    before = curata.get_num_threads()
    try:
        curata.set_num_threads(1)
        one = coco_eval(gt, dt)
        curata.set_num_threads(2)
        two = coco_eval(gt, dt)
    finally:
        curata.set_num_threads(before)
    for name in ("stats", "precision", "recall", "scores"):
        assert np.array_equal(getattr(one, name), getattr(two, name))
    assert_same(two, run_pycocotools(gt, dt)[0])


def test_no_detections_gives_zero_where_ground_truth_exists():
    gt, dt = random_dataset(15)
    r = coco_eval(gt, [])
    # pycocotools cannot load an empty result list. Where precision/recall are defined (-1 or
    # not) depends on the ground truth alone, so compare that pattern with a run on `dt`.
    ev, _ = run_pycocotools(gt, dt)
    defined = ev.eval["recall"] > -1
    assert np.array_equal(r.recall > -1, defined)
    assert np.all(r.recall[defined] == 0) and np.all(r.precision[r.precision > -1] == 0)
    assert np.all(np.isin(r.stats, [0.0, -1.0]))


def test_empty_ground_truth_everything_undefined():
    gt = {"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1}, {"id": 2}]}
    r = coco_eval(gt, [det([0, 0, 5, 5], 0.3)])
    assert np.all(r.precision == -1) and np.all(r.stats == -1)
    ev, text = run_pycocotools(gt, [det([0, 0, 5, 5], 0.3)])
    assert_same(r, ev, text)


def test_numpy_scalars_and_tuples_in_dicts():
    gt, dt = random_dataset(16)
    dt_np = [{"image_id": np.int64(d["image_id"]), "category_id": np.int32(d["category_id"]),
              "bbox": tuple(np.float64(v) for v in d["bbox"]), "score": np.float64(d["score"])} for d in dt]
    assert_same(coco_eval(gt, dt_np), run_pycocotools(gt, dt)[0])


# ------------------------------------------------------------------------------ input forms
def test_table_forms_and_paths_equal_the_list_form(tmp_path):
    gt, dt = random_dataset(17)
    ref = coco_eval(gt, dt)
    table = {
        "image_id": np.array([d["image_id"] for d in dt]),
        "category_id": np.array([d["category_id"] for d in dt]),
        "bbox": np.array([d["bbox"] for d in dt]),
        "score": np.array([d["score"] for d in dt]),
    }
    rows = np.column_stack([table["image_id"], table["bbox"], table["score"], table["category_id"]]).astype(np.float64)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dt))
    structured = np.zeros(len(dt), dtype=[("image_id", "i8"), ("category_id", "i4"), ("bbox", "f8", (4,)), ("score", "f4")])
    for key in ("image_id", "category_id", "bbox"):
        structured[key] = table[key]
    structured["score"] = table["score"]
    ref32 = coco_eval(gt, dict(table, score=table["score"].astype(np.float32)))  # float32 scores, as stored
    r = coco_eval(gt, structured)
    assert np.array_equal(r.precision, ref32.precision) and np.array_equal(r.scores, ref32.scores)
    forms = [
        (gt, table),
        (gt, rows),
        (str(gt_path), str(dt_path)),
        (gt_path, dt),
    ]
    torch = pytest.importorskip("torch")
    forms.append((gt, {k: torch.as_tensor(v) for k, v in table.items()}))
    coco_obj = COCO()
    coco_obj.dataset = gt
    coco_obj.createIndex()
    forms.append((coco_obj, dt))
    for g, d in forms:
        r = coco_eval(g, d)
        for name in ("stats", "precision", "recall", "scores"):
            assert np.array_equal(getattr(r, name), getattr(ref, name)), (type(g), type(d), name)
    # pycocotools' own (N, 7) input gives the same numbers as well
    assert_same(coco_eval(gt, rows), run_pycocotools(gt, rows)[0])


def test_inputs_are_not_modified():
    gt, dt = random_dataset(18)
    gt_copy, dt_copy = copy.deepcopy(gt), copy.deepcopy(dt)
    coco_eval(gt, dt)
    assert gt == gt_copy and dt == dt_copy


# ------------------------------------------------------------------------------ faster-coco-eval
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_faster_coco_eval(seed):
    gt, dt = random_dataset(100 + seed, n_images=20)
    assert_same(coco_eval(gt, dt), run_faster(gt, dt))


# ------------------------------------------------------------------------------ bad input
def test_iou_type_segm_and_keypoints_not_implemented():
    gt, dt = random_dataset(0, n_images=2)
    for kind in ("segm", "keypoints"):
        with pytest.raises(NotImplementedError, match="bbox"):
            coco_eval(gt, dt, iou_type=kind)
    with pytest.raises(ValueError, match="iou_type"):
        coco_eval(gt, dt, iou_type="boxes")


def _base():
    gt = tiny_gt([[0, 0, 10, 10], [20, 20, 5, 5]])
    gt["images"].append({"id": 2})
    dt = [det([0, 0, 10, 10], 0.9), det([1, 1, 5, 5], 0.4, image_id=2)]
    return gt, dt


def _mutate(target, path, value):
    obj = target
    for key in path[:-1]:
        obj = obj[key]
    if value is _DELETE:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


_DELETE = object()

BAD_DT = [
    (("1", "bbox"), [0, 0, 1], ValueError, r"dt\[1\]\['bbox'\] must be 4 numbers \[x, y, w, h\], got 3"),
    (("1", "bbox"), "0 0 1 1", TypeError, r"dt\[1\]\['bbox'\] must be a list of 4 numbers"),
    (("1", "bbox"), [0, 0, "1", 1], TypeError, r"dt\[1\]\['bbox'\]\[2\] must be a number, got str"),
    (("1", "bbox"), [0, 0, -1, 1], ValueError, r"dt\[1\]\['bbox'\] must have width and height >= 0"),
    (("1", "bbox"), [0, math.nan, 1, 1], ValueError, r"dt\[1\]\['bbox'\] must be finite"),
    (("1", "bbox"), [0, 0, math.inf, 1], ValueError, r"dt\[1\]\['bbox'\] must be finite"),
    (("1", "score"), math.nan, ValueError, r"dt\[1\]\['score'\] must not be NaN"),
    (("1", "score"), "high", TypeError, r"dt\[1\]\['score'\] must be a number, got str"),
    (("1", "score"), None, TypeError, r"dt\[1\]\['score'\] must be a number, got NoneType"),
    # bool is no number here, as in the table form (pycocotools crashes when every score is one)
    (("1", "score"), True, TypeError, r"dt\[1\]\['score'\] must be a number, got bool"),
    (("1", "score"), np.True_, TypeError, r"dt\[1\]\['score'\] must be a number, got numpy.bool"),
    (("1", "bbox"), [0, 0, True, 1], TypeError, r"dt\[1\]\['bbox'\]\[2\] must be a number, got bool"),
    (("1", "image_id"), 7, ValueError, r"dt\[1\]\['image_id'\] is 7, not an id in gt\['images'\]"),
    (("1", "image_id"), 1.5, TypeError, r"dt\[1\]\['image_id'\] must be an integer, got float"),
    (("1", "category_id"), 9, ValueError, r"dt\[1\]\['category_id'\] is 9, not an id in gt\['categories'\]"),
    (("1", "category_id"), 2**70, ValueError, r"dt\[1\]\['category_id'\] must fit in a 64-bit integer"),
    (("1", "score"), _DELETE, ValueError, r"dt\[1\] has no 'score'"),
    (("1",), "not a dict", TypeError, r"dt\[1\] must be a dict, got str"),
]

BAD_GT = [
    (("annotations", "1", "bbox"), [1, 2, 3, 4, 5], ValueError, r"gt\['annotations'\]\[1\]\['bbox'\] must be 4 numbers"),
    (("annotations", "1", "bbox"), [1, 2, 3, -4], ValueError, r"width and height >= 0"),
    (("annotations", "1", "area"), -3.0, ValueError, r"gt\['annotations'\]\[1\]\['area'\] must be a finite number >= 0"),
    (("annotations", "1", "area"), math.nan, ValueError, r"\['area'\] must be a finite number"),
    (("annotations", "1", "area"), _DELETE, ValueError, r"gt\['annotations'\]\[1\] has no 'area'"),
    (("annotations", "1", "area"), False, TypeError, r"gt\['annotations'\]\[1\]\['area'\] must be a number, got bool"),
    (("annotations", "1", "iscrowd"), 2, ValueError, r"\['iscrowd'\] must be 0 or 1, got 2"),
    (("annotations", "1", "iscrowd"), 0.5, TypeError, r"\['iscrowd'\] must be 0 or 1, got float"),
    (("annotations", "1", "id"), 1, ValueError, r"ids must be unique: id 1 is used by \[0\] and \[1\]"),
    (("annotations", "1", "image_id"), 99, ValueError, r"\['image_id'\] is 99, not an id in gt\['images'\]"),
    (("annotations", "1", "category_id"), 99, ValueError, r"\['category_id'\] is 99, not an id in gt\['categories'\]"),
    (("annotations", "1", "category_id"), "cat", TypeError, r"\['category_id'\] must be an integer, got str"),
    (("images", "0", "id"), _DELETE, ValueError, r"gt\['images'\]\[0\] has no 'id'"),
    (("categories", "0"), 3, TypeError, r"gt\['categories'\]\[0\] must be a dict, got int"),
    (("annotations",), {"a": 1}, TypeError, r"gt\['annotations'\] must be a list of dicts, got dict"),
    (("images",), _DELETE, ValueError, r"gt has no 'images'"),
]


def _key(k):
    return int(k) if isinstance(k, str) and k.isdigit() else k


@pytest.mark.parametrize("path,value,exc,message", BAD_DT)
def test_malformed_detections_raise_naming_the_field(path, value, exc, message):
    gt, dt = _base()
    _mutate(dt, [_key(k) for k in path], value)
    with pytest.raises(exc, match=message):
        coco_eval(gt, dt)


@pytest.mark.parametrize("path,value,exc,message", BAD_GT)
def test_malformed_ground_truth_raises_naming_the_field(path, value, exc, message):
    gt, dt = _base()
    _mutate(gt, [_key(k) for k in path], value)
    with pytest.raises(exc, match=message):
        coco_eval(gt, dt)


def test_bad_table_and_options():
    gt, dt = _base()
    table = {"image_id": np.array([1, 2]), "category_id": np.array([1, 1]),
             "bbox": np.zeros((2, 3)), "score": np.array([0.5, 0.4])}
    with pytest.raises(ValueError, match=r"dt\['bbox'\] must have shape \(N, 4\), got \(2, 3\)"):
        coco_eval(gt, table)
    table["bbox"] = np.array([[0, 0, 1, 1], [0, 0, -1, 1]], dtype=float)
    with pytest.raises(ValueError, match=r"dt\['bbox'\]\[1\] must have width and height >= 0"):
        coco_eval(gt, table)
    with pytest.raises(ValueError, match="missing"):
        coco_eval(gt, {"image_id": np.array([1])})
    with pytest.raises(ValueError, match=r"dt must have shape \(N, 7\)"):
        coco_eval(gt, np.zeros((3, 6)))
    with pytest.raises(TypeError, match="dt must be a list of detection dicts"):
        coco_eval(gt, 42)
    with pytest.raises(TypeError, match="gt must be a COCO dict"):
        coco_eval([1, 2], dt)
    with pytest.raises(ValueError, match="iou_thresholds must lie in"):
        coco_eval(gt, dt, iou_thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match="max_dets must hold at least 3"):
        coco_eval(gt, dt, max_dets=(10, 100))
    with pytest.raises(TypeError, match="max_dets must be a sequence of ints"):
        coco_eval(gt, dt, max_dets=(1, 10.5, 100))
    # Beyond int64 this used to escape as OverflowError from numpy.
    with pytest.raises(ValueError, match=r"^max_dets must be <= 9223372036854775807, got \[1, 10, 1180591620717411303424\]"):
        coco_eval(gt, dt, max_dets=(1, 10, 2**70))
    with pytest.raises(TypeError, match="area_ranges must be a non-empty dict"):
        coco_eval(gt, dt, area_ranges=[(0, 10)])
    with pytest.raises(ValueError, match=r"area_ranges\['all'\] must be two numbers"):
        coco_eval(gt, dt, area_ranges={"all": (0, 1, 2)})


def test_invalid_json_file(tmp_path):
    p = tmp_path / "gt.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        coco_eval(p, [])


# ------------------------------------------------------------------------------ fuzzing
coords = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 8.0, 10.0, 16.0, 32.0, 40.0])
sizes = st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 8.0, 10.0, 32.0, 96.0, 100.0])
box_st = st.tuples(coords, coords, sizes, sizes).map(list)


@st.composite
def small_dataset(draw):
    n_images = draw(st.integers(1, 3))
    n_cats = draw(st.integers(1, 3))
    image_ids = draw(st.lists(st.integers(-5, 50), min_size=n_images, max_size=n_images, unique=True))
    cat_ids = draw(st.lists(st.integers(0, 20), min_size=n_cats, max_size=n_cats, unique=True))
    n_gt = draw(st.integers(0, 8))
    ann_ids = draw(st.lists(st.integers(0, 1000), min_size=n_gt, max_size=n_gt, unique=True))
    anns = []
    for j in range(n_gt):
        b = draw(box_st)
        anns.append({
            "id": ann_ids[j], "image_id": draw(st.sampled_from(image_ids)), "category_id": draw(st.sampled_from(cat_ids)),
            "bbox": b, "area": draw(st.sampled_from([b[2] * b[3], 0.0, 1024.0, 9216.0, 50.0, 5000.0])),
            "iscrowd": draw(st.sampled_from([0, 0, 0, 1])),
        })
    n_dt = draw(st.integers(1, 14))
    dts = [{
        "image_id": draw(st.sampled_from(image_ids)), "category_id": draw(st.sampled_from(cat_ids)),
        "bbox": draw(box_st), "score": draw(st.sampled_from([0.1, 0.5, 0.5, 0.9, 1.0, 0.0])),
    } for _ in range(n_dt)]
    gt = {"images": [{"id": i} for i in image_ids], "annotations": anns, "categories": [{"id": c} for c in cat_ids]}
    max_dets = draw(st.sampled_from([(1, 10, 100), (1, 2, 3), (2, 4, 100)]))
    return gt, dts, max_dets


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_dataset())
def test_fuzz_small_datasets_match_pycocotools(data):
    gt, dt, max_dets = data
    result = coco_eval(gt, dt, max_dets=max_dets)
    ev, text = run_pycocotools(gt, dt, maxDets=list(max_dets))
    assert_same(result, ev, text)


JUNK = [None, "x", -1, 1.5, math.nan, math.inf, [], [1, 2], [1, 2, 3, 4], {"a": 1}, 2**65, True, b"\x00", (0.0,) * 4]


@st.composite
def malformed(draw):
    gt, dt, _ = draw(small_dataset())
    side = draw(st.sampled_from(["gt", "dt"]))
    if side == "dt":
        i = draw(st.integers(0, len(dt) - 1))
        key = draw(st.sampled_from(["image_id", "category_id", "bbox", "score", None]))
        if key is None:
            dt[i] = draw(st.sampled_from(JUNK))
        elif draw(st.booleans()):
            del dt[i][key]
        else:
            dt[i][key] = draw(st.sampled_from(JUNK))
    else:
        section = draw(st.sampled_from(["images", "categories", "annotations"]))
        items = gt[section]
        if not items or draw(st.integers(0, 5)) == 0:
            gt[section] = draw(st.sampled_from(JUNK))
        else:
            i = draw(st.integers(0, len(items) - 1))
            keys = ["id"] if section != "annotations" else ["id", "image_id", "category_id", "bbox", "area", "iscrowd"]
            key = draw(st.sampled_from(keys))
            if draw(st.booleans()):
                items[i].pop(key, None)
            else:
                items[i][key] = draw(st.sampled_from(JUNK))
    return gt, dt


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed())
def test_fuzz_malformed_input_raises_cleanly_or_matches(data):
    gt, dt = data
    try:
        result = coco_eval(gt, dt)
    except (ValueError, TypeError) as exc:
        assert str(exc)
        return
    # Some mutations stay valid (a junk value that happens to be acceptable, a deleted optional
    # iscrowd, an orphaned image): then the numbers must still be pycocotools'.
    assert isinstance(result, CocoEvalResult)
    for a in gt["annotations"]:
        a.setdefault("iscrowd", 0)
    for d in dt:
        d["bbox"] = list(d["bbox"])  # pycocotools only takes lists as boxes; curata any sequence
    ev, text = run_pycocotools(gt, dt)
    assert_same(result, ev, text)
