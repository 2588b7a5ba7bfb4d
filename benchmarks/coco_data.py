"""Synthetic COCO-like ground truth and detections for the coco_eval benchmark and tests."""

from __future__ import annotations

import numpy as np


def synthetic_coco(
    n_images: int, n_gt: int, dets_per_image: int, n_categories: int = 80, seed: int = 0, crowd_fraction: float = 0.01
) -> tuple[dict, list[dict]]:
    """A COCO dataset dict and a detection list shaped like a detector's output on it.

    Ground-truth boxes have COCO-like log-uniform sizes (small, medium and large objects), a few
    crowd regions and an ``area`` slightly below w*h (as a polygon's). Each image gets
    ``dets_per_image`` detections: noisy copies of its ground truth (sometimes with the wrong
    class) plus random boxes, with random scores rounded to 3 decimals so ties happen.
    """
    rng = np.random.default_rng(seed)
    image_ids = np.arange(1, n_images + 1) * 3
    cat_ids = np.arange(1, n_categories + 1) * 2
    gt_img = np.sort(rng.integers(0, n_images, n_gt))
    size = np.exp(rng.uniform(np.log(4), np.log(400), (n_gt, 2)))
    xy = rng.uniform(0, 640, (n_gt, 2))
    gt_box = np.concatenate([xy, size], axis=1).round(2)
    gt_cat = rng.integers(0, n_categories, n_gt)
    area = (gt_box[:, 2] * gt_box[:, 3] * rng.uniform(0.6, 1.0, n_gt)).round(2)
    crowd = rng.random(n_gt) < crowd_fraction
    images = [{"id": int(i), "width": 1280, "height": 1280} for i in image_ids]
    categories = [{"id": int(c), "name": f"class{c}"} for c in cat_ids]
    annotations = [
        {"id": j + 1, "image_id": int(image_ids[gt_img[j]]), "category_id": int(cat_ids[gt_cat[j]]),
         "bbox": gt_box[j].tolist(), "area": float(area[j]), "iscrowd": int(crowd[j])}
        for j in range(n_gt)
    ]
    # Detections: per image, up to 3 noisy copies of each ground truth, then random boxes.
    starts = np.searchsorted(gt_img, np.arange(n_images + 1))
    det_img, det_box, det_cat = [], [], []
    for i in range(n_images):
        g = np.arange(starts[i], starts[i + 1])
        copies = np.repeat(g, rng.integers(1, 4, g.size))[:dets_per_image]
        jitter = rng.normal(0, 0.12, (copies.size, 4)) * np.repeat(gt_box[copies, 2:], 2, axis=1)
        boxes = gt_box[copies] + jitter
        boxes[:, 2:] = np.abs(boxes[:, 2:])
        cats = np.where(rng.random(copies.size) < 0.85, gt_cat[copies], rng.integers(0, n_categories, copies.size))
        n_rand = dets_per_image - copies.size
        rand = np.concatenate([rng.uniform(0, 640, (n_rand, 2)), np.exp(rng.uniform(np.log(4), np.log(400), (n_rand, 2)))], 1)
        det_img.append(np.full(dets_per_image, i))
        det_box.append(np.concatenate([boxes, rand]))
        det_cat.append(np.concatenate([cats, rng.integers(0, n_categories, n_rand)]))
    det_img = np.concatenate(det_img)
    det_box = np.concatenate(det_box).round(2)
    det_cat = np.concatenate(det_cat)
    score = rng.random(det_img.size).round(3)
    detections = [
        {"image_id": int(image_ids[det_img[j]]), "category_id": int(cat_ids[det_cat[j]]),
         "bbox": det_box[j].tolist(), "score": float(score[j])}
        for j in range(det_img.size)
    ]
    return {"images": images, "annotations": annotations, "categories": categories}, detections
