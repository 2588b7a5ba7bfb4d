"""`make demo` runs curata.demo: keep it working, and its stages finding what they plant."""

import numpy as np

from curata import boxes, demo


def test_demo_runs_every_stage(capsys):
    demo.main(["--batch", "2", "--anchors", "840", "--repeats", "1", "--rows", "3000", "--dim", "32",
               "--window", "2000"])
    out = capsys.readouterr().out
    for line in ("postprocess", "batched_nms", "uncertainty", "knn_graph", "near-dups", "outliers", "label issues",
                 "monitor", "drift check", "next batch"):
        assert line in out, line


def test_synthetic_batch_yields_detections_in_every_image():
    pred = demo.synthetic_yolo_batch(3, 80, 840, seed=1)
    assert pred.shape == (3, 84, 840) and pred.dtype == np.float32
    dets = boxes.postprocess(pred)
    assert all(len(d) > 0 for d in dets)
    assert all(np.all(np.diff(d[:, 4]) <= 0) for d in dets)


def test_curation_stage_finds_what_it_planted():
    clean, found = demo.curation_stage(4000, 32, demo.EMBEDDING_CLASSES)
    assert found["near_duplicates_f1"] == 1.0
    assert found["outlier_recall"] == 1.0
    assert found["label_issues_f1"] > 0.8
    # 1 % duplicates, 0.5 % outliers and 5 % flipped labels removed
    assert clean.shape == (4000 - 40 - 20 - 200, 32)
    np.testing.assert_allclose(np.linalg.norm(clean, axis=1), 1.0, rtol=1e-5)


def test_drift_stage_flags_only_the_shifted_window():
    reference, _ = demo.synthetic_embeddings(5000, 32, demo.EMBEDDING_CLASSES, seed=1)
    same, shifted = demo.drift_stage(reference, 3000, demo.EMBEDDING_CLASSES)
    assert not same.drift
    assert shifted.drift and shifted.feature_drift
    planted = {"0", "1", "2", "3", "4"}  # the covariate shift; the prior shift moves other columns too
    assert len(planted & set(shifted.drifting_columns)) >= 4
    assert shifted.top_columns[0] in planted
    assert shifted.cluster_drift


def test_labeling_stage_covers_more_of_the_uncertain_region_than_top_k():
    pool, _ = demo.synthetic_embeddings(5000, 32, demo.EMBEDDING_CLASSES, seed=5)
    diverse, greedy = demo.labeling_stage(pool, demo.EMBEDDING_CLASSES, 32)
    assert diverse > greedy
