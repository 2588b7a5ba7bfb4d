"""The Failing Loudly experiment (benchmarks/drift_paper.py) at a tiny size, so it cannot rot.

The full run (docs/drift_paper.md) takes minutes; here a few draws per cell check that the
pipeline runs end to end, that the no-shift control is not flagged more than a level-0.05 test
plausibly would be, and that a large shift is flagged far more often than the control.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import drift_paper as dp  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    return dp.make_setup()


def test_setup_is_a_usable_source_model(setup):
    assert setup.pool.shape == (1797 - dp.N_TRAIN, 64)
    assert 0.0 <= setup.pool.min() and setup.pool.max() <= 1.0
    # a working classifier is what makes BBSDs meaningful
    assert setup.pool_accuracy > 0.9
    assert setup.pca.n_components_ == dp.PCA_DIM


def test_apply_shift_touches_the_requested_fraction_and_stays_on_the_grid(setup):
    x = setup.pool[:40]
    rng = np.random.default_rng(0)
    assert np.array_equal(dp.apply_shift(x, dp.Shift("none"), rng), x)
    for kind in dp.SHIFT_KINDS:
        y = dp.apply_shift(x, dp.Shift(kind, "large", 0.5), rng)
        changed = np.any(y != x, axis=1)
        # exactly round(0.5 * 40) rows are drawn; a drawn row may (rarely) come back unchanged
        assert changed.sum() <= 20, kind
        assert changed.sum() >= 15, kind
        assert np.all((y >= 0) & (y <= 1)), kind
        assert np.array_equal(np.round(y * dp.LEVELS), y * dp.LEVELS), kind
    # the identity transform returns the image exactly (pull-back and offsets are consistent)
    img = x[0].reshape(8, 8)
    assert np.allclose(dp._affine(img, np.eye(2), np.zeros(2)), img, atol=1e-12)
    # a translation by one whole pixel moves the image by one pixel
    moved = dp._affine(img, np.eye(2), np.array([0.0, 1.0]))
    assert np.allclose(moved[:, 1:], img[:, :-1], atol=1e-12)
    assert np.all(moved[:, 0] == 0)


def test_grid_runs_end_to_end_at_tiny_size():
    shifts = dp.shift_grid(fractions=(1.0,))
    result = dp.run(repeats=2, sizes=(50,), shifts=shifts)
    assert len(result["cells"]) == len(shifts)
    for cell in result["cells"]:
        assert set(cell["rate"]) == set(dp.DETECTORS)
        for d in dp.DETECTORS:
            assert cell["rate"][d] in (0.0, 0.5, 1.0)
            assert len(cell["pvalues"][d]) == 2
            assert all(0.0 <= p <= 1.0 for p in cell["pvalues"][d])
    table = dp.markdown_tables(result)
    for s in shifts:
        assert f"| {s.label} |" in table
    # the draws depend on the shift's place in the full grid, not on the sub-grid run
    again = dp.run(repeats=2, sizes=(50,), shifts=[shifts[3]])
    assert again["cells"][0]["pvalues"] == result["cells"][3]["pvalues"]


def test_control_is_rarely_flagged_and_large_noise_is_detected(setup):
    repeats = 10
    control = dp.run_cell(setup, dp.Shift("none"), 0, 200, repeats)
    noise = dp.Shift("gaussian_noise", "large", 1.0)
    shifted = dp.run_cell(setup, noise, dp.shift_grid().index(noise), 200, repeats)
    for d in dp.DETECTORS:
        # level 0.05 (C2ST's "auc-normal" is liberal, ~0.1): 4 or more of 10 would be implausible
        assert control["rate"][d] <= 0.3, (d, control["rate"])
        assert shifted["rate"][d] >= 0.9, (d, shifted["rate"])
        assert shifted["rate"][d] >= control["rate"][d] + 0.6


def test_fold_c2st_cannot_reject_with_two_held_out_rows_per_class(setup):
    # 10 + 10 rows in 5 folds: 2 + 2 held out per fold, smallest one-sided p 1/C(4, 2) = 1/6,
    # times 5 folds (Bonferroni) = 5/6 — whatever the shift.
    noise = dp.Shift("gaussian_noise", "large", 1.0)
    cell = dp.run_cell(setup, noise, dp.shift_grid().index(noise), 10, 3, detectors=("C2ST-fold",))
    assert min(cell["pvalues"]["C2ST-fold"]) >= 5 / 6 - 1e-6
