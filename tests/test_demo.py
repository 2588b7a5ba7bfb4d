"""`make demo` runs curata.demo: keep it working and its numbers plausible."""

import numpy as np

from curata import boxes, demo


def test_demo_runs_and_reports(capsys):
    demo.main(["--batch", "2", "--anchors", "840", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "postprocess" in out and "batched_nms" in out and "uncertainty" in out


def test_synthetic_batch_yields_detections_in_every_image():
    pred = demo.synthetic_yolo_batch(3, 80, 840, seed=1)
    assert pred.shape == (3, 84, 840) and pred.dtype == np.float32
    dets = boxes.postprocess(pred)
    assert all(len(d) > 0 for d in dets)
    assert all(np.all(np.diff(d[:, 4]) <= 0) for d in dets)
