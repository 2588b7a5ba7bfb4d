"""Suite ``drift_paper``: the core experiment of "Failing Loudly" on scikit-learn's digits.

Rabanser, Günnemann and Lipton, "Failing Loudly: An Empirical Study of Methods for Detecting
Dataset Shift" (NeurIPS 2019) compare shift detectors by their detection rate (the fraction of
random draws in which a shift is flagged at significance 0.05) as the sample size, the shift
type and its intensity vary. This suite repeats the experiment on the 8 x 8 digits with curata's
detectors:

* **BBSDs**: ``curata.drift.ks`` on the 10 softmax outputs of a classifier trained on source
  data (black-box shift detection), one dataset decision by ``curata.drift.correct`` with
  Bonferroni over the 10 columns;
* **MMD**: ``curata.drift.mmd`` (RBF kernel, median-heuristic bandwidth, 100 permutations) on a
  32-dimensional PCA of the pixels (PCA fitted on the source training images);
* **C2ST**: ``curata.drift.c2st`` (5-fold logistic regression on the 64 pixels) with its
  ``"auc-normal"`` p-value; see ``C2ST_PVALUE`` below for why, and ``docs/drift_paper.md`` for
  what that does to its false-positive rate;
* **C2ST-fold**: a p-value with a guaranteed level from the same ``c2st`` call (per-fold
  Mann-Whitney tests of the held-out scores, Bonferroni over the folds; :func:`fold_pvalue`).

Protocol (documented again in docs/drift_paper.md):

* images scaled to [0, 1] (pixel / 16); shifted images are rounded back to multiples of 1/16
  (see :func:`apply_shift`); ``N_TRAIN`` = 600 seeded training images for the
  classifier and the PCA; the other 1197 images form the pool the two samples are drawn from;
* per draw: a fresh random permutation of the pool; the reference sample is its first n
  images, the target sample the next n (disjoint, so n <= 598: digits has 1797 images, which
  rules out the paper's n = 1000 and 10000);
* the shift is applied to ``round(fraction * n)`` random target images, with fresh random
  parameters per image; the no-shift control leaves the target alone (its detection rate is
  the false-positive rate);
* each (shift, intensity, fraction, n) is repeated ``R`` times with seeds derived from
  ``(SEED, shift index, n, draw)`` only, so results do not depend on ``--jobs``.

Shifts (ranges as in the paper's code, where intensities are Keras ``ImageDataGenerator``
ranges and noise standard deviations on the 0-255 scale):

* ``gaussian_noise``: add N(0, sd^2) with sd = 1/255, 10/255, 100/255, then clip to [0, 1];
* ``rotation``: angle uniform in +-10, +-40, +-90 degrees;
* ``translation``: offsets uniform in +-0.05, +-0.2, +-0.4 of the image width, per axis;
* ``zoom``: isotropic scale uniform in [1 - z, 1 + z], z = 0.1, 0.2, 0.4;
* ``image``: the paper's combined image shift: rotation, translation (per axis), shear and zoom
  (per axis) together — (10 deg, 0.05, shear 0.1, zoom 0.1), (40, 0.2, 0.2, 0.2, random
  horizontal flip), (90, 0.4, 0.3, 0.4, random horizontal and vertical flips).

Transforms use ``scipy.ndimage.affine_transform`` about the image centre, bilinear
interpolation, background 0 (the digits' background) outside the image.

Run: ``python -m benchmarks.run drift_paper [--quick] [--repeats R] [--jobs J] [--no-write]``.
Writes ``benchmarks/results/drift_paper-<machine>.json`` (``-partial`` for ``--quick`` or
non-default grids) and, for a full run, the generated tables in ``docs/drift_paper.md``
between the ``<!-- drift_paper:begin -->`` / ``<!-- drift_paper:end -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SEED = 20191208  # NeurIPS 2019 opened on 8 December
ALPHA = 0.05
N_TRAIN = 600
PCA_DIM = 32
MMD_PERMUTATIONS = 100
C2ST_FOLDS = 5
# The permutation p-value of c2st re-runs the 5-fold cross-validation per permutation: with
# B = 19 (the fewest that can reach p <= 0.05) it costs 20x the "auc-normal" one, ~2-4 s per call
# on 2 shared cores at n >= 50, i.e. hours for the full grid. "auc-normal" is a single
# cross-validation; it is liberal (the pooled out-of-fold scores are not independent), which the
# no-shift rows measure and docs/drift_paper.md reports.
C2ST_PVALUE = "auc-normal"
DETECTORS = ("BBSDs", "MMD", "C2ST", "C2ST-fold")
SIZES = (10, 20, 50, 100, 200, 500)
QUICK_SIZES = (10, 100, 500)
FRACTIONS = (0.1, 0.5, 1.0)
QUICK_FRACTIONS = (1.0,)
REPEATS = 20
QUICK_REPEATS = 5
INTENSITIES = ("small", "medium", "large")
SHIFT_KINDS = ("gaussian_noise", "rotation", "translation", "zoom", "image")

LEVELS = 16  # digits pixels are integers 0..16: stored values are multiples of 1/16 after scaling
NOISE_SD = {"small": 1.0 / 255.0, "medium": 10.0 / 255.0, "large": 100.0 / 255.0}
ROTATION_DEG = {"small": 10.0, "medium": 40.0, "large": 90.0}
TRANSLATION = {"small": 0.05, "medium": 0.2, "large": 0.4}
ZOOM = {"small": 0.1, "medium": 0.2, "large": 0.4}
# (rotation deg, translation, shear, zoom, horizontal flip, vertical flip): the paper's image shift
IMAGE = {
    "small": (10.0, 0.05, 0.1, 0.1, False, False),
    "medium": (40.0, 0.2, 0.2, 0.2, True, False),
    "large": (90.0, 0.4, 0.3, 0.4, True, True),
}

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "drift_paper.md"
BEGIN, END = "<!-- drift_paper:begin -->", "<!-- drift_paper:end -->"


# ------------------------------------------------------------------------------------ shifts
@dataclass(frozen=True)
class Shift:
    kind: str  # "none" or one of SHIFT_KINDS
    intensity: str = ""
    fraction: float = 0.0

    @property
    def label(self) -> str:
        if self.kind == "none":
            return "no shift"
        return f"{self.kind} {self.intensity}, {round(self.fraction * 100)}%"


def shift_grid(kinds=SHIFT_KINDS, intensities=INTENSITIES, fractions=FRACTIONS) -> list[Shift]:
    """The no-shift control first, then kind x intensity x fraction."""
    return [Shift("none")] + [Shift(k, i, f) for k in kinds for i in intensities for f in fractions]


def _affine(image: np.ndarray, forward: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``image`` (8, 8) mapped by ``x -> forward @ (x - c) + c + offset`` about the centre c."""
    from scipy import ndimage  # noqa: PLC0415

    c = (np.asarray(image.shape, dtype=np.float64) - 1.0) / 2.0
    inv = np.linalg.inv(forward)
    # affine_transform pulls: output[o] = input[inv @ o + shift]
    shift = c - inv @ (c + offset)
    return ndimage.affine_transform(image, inv, offset=shift, order=1, mode="constant", cval=0.0)


def _rotation(deg: float) -> np.ndarray:
    t = math.radians(deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def _transform_one(img: np.ndarray, kind: str, intensity: str, rng: np.random.Generator) -> np.ndarray:
    side = img.shape[0]
    forward = np.eye(2)
    offset = np.zeros(2)
    if kind == "rotation":
        r = ROTATION_DEG[intensity]
        forward = _rotation(rng.uniform(-r, r))
    elif kind == "translation":
        t = TRANSLATION[intensity]
        offset = rng.uniform(-t, t, size=2) * side
    elif kind == "zoom":
        z = ZOOM[intensity]
        forward = np.eye(2) * rng.uniform(1.0 - z, 1.0 + z)
    elif kind == "image":
        r, t, shear, z, hflip, vflip = IMAGE[intensity]
        rot = _rotation(rng.uniform(-r, r))
        sh = np.array([[1.0, 0.0], [rng.uniform(-shear, shear), 1.0]])
        zm = np.diag(rng.uniform(1.0 - z, 1.0 + z, size=2))
        flip = np.diag([
            -1.0 if (vflip and rng.random() < 0.5) else 1.0,  # axis 0 = rows: vertical flip
            -1.0 if (hflip and rng.random() < 0.5) else 1.0,
        ])
        forward = rot @ sh @ zm @ flip
        offset = rng.uniform(-t, t, size=2) * side
    else:  # pragma: no cover - guarded by apply_shift
        raise ValueError(f"unknown image shift {kind!r}")
    return _affine(img, forward, offset)


def apply_shift(x: np.ndarray, shift: Shift, rng: np.random.Generator, quantize: bool = True) -> np.ndarray:
    """A copy of the target sample ``x`` (n, 64) in [0, 1] with ``shift`` applied to
    ``round(fraction * n)`` randomly chosen rows, each with its own random parameters.

    ``quantize``: round the shifted rows back to the dataset's grid (multiples of 1/16), as an
    image from the same sensor would be stored. Without it, any off-grid value (noise of 1/255,
    bilinear interpolation) separates shifted from clean images for a classifier that can see
    single pixels, whatever the size of the shift (measured: C2ST flags "small" noise at n = 10)."""
    if shift.kind == "none":
        return x.copy()
    if shift.kind not in SHIFT_KINDS or shift.intensity not in INTENSITIES:
        raise ValueError(f"unknown shift {shift}")
    out = x.copy()
    n = x.shape[0]
    k = int(round(shift.fraction * n))
    rows = rng.choice(n, size=k, replace=False)
    if shift.kind == "gaussian_noise":
        noisy = out[rows] + rng.normal(0.0, NOISE_SD[shift.intensity], size=(k, x.shape[1]))
        out[rows] = np.clip(noisy, 0.0, 1.0)
    else:
        for i in rows:
            out[i] = _transform_one(out[i].reshape(8, 8), shift.kind, shift.intensity, rng).reshape(-1)
    if quantize:
        out[rows] = np.round(out[rows] * LEVELS) / LEVELS
    return out


# ------------------------------------------------------------------------------------- setup
@dataclass
class Setup:
    pool: np.ndarray  # (N_pool, 64) float64 in [0, 1]: images not used for training
    classifier: Any  # fitted sklearn classifier (predict_proba)
    pca: Any  # fitted sklearn PCA (PCA_DIM components)
    train_accuracy: float
    pool_accuracy: float


def make_setup(seed: int = SEED, n_train: int = N_TRAIN) -> Setup:
    """Load digits, split off ``n_train`` seeded training images, fit the classifier and PCA."""
    from sklearn.datasets import load_digits  # noqa: PLC0415
    from sklearn.decomposition import PCA  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    digits = load_digits()
    x = digits.data.astype(np.float64) / 16.0
    y = digits.target
    order = np.random.default_rng([seed, 0]).permutation(x.shape[0])
    train, pool = order[:n_train], order[n_train:]
    clf = LogisticRegression(C=1.0, max_iter=5000)
    clf.fit(x[train], y[train])
    pca = PCA(n_components=PCA_DIM, random_state=seed).fit(x[train])
    return Setup(
        pool=x[pool],
        classifier=clf,
        pca=pca,
        train_accuracy=float(clf.score(x[train], y[train])),
        pool_accuracy=float(clf.score(x[pool], y[pool])),
    )


# ---------------------------------------------------------------------------------- detectors
def detect(setup: Setup, ref: np.ndarray, cur: np.ndarray, seed: int, detectors=DETECTORS) -> dict[str, float]:
    """p-value of each detector on one (ref, cur) pair. BBSDs' is the Bonferroni-adjusted
    minimum (``correct(...).adjusted.min()``): it rejects exactly when ``correct(...).drift``."""
    from curata import drift  # noqa: PLC0415

    out: dict[str, float] = {}
    if "BBSDs" in detectors:
        pr = setup.classifier.predict_proba(ref)
        pc = setup.classifier.predict_proba(cur)
        decision = drift.correct(drift.ks(pr, pc), method="bonferroni", alpha=ALPHA)
        out["BBSDs"] = float(np.nanmin(decision.adjusted))
    if "MMD" in detectors:
        r = drift.mmd(setup.pca.transform(ref), setup.pca.transform(cur), n_permutations=MMD_PERMUTATIONS, seed=seed)
        out["MMD"] = float(r.pvalue)
    if "C2ST" in detectors or "C2ST-fold" in detectors:
        r = drift.c2st(ref, cur, n_folds=C2ST_FOLDS, seed=seed, pvalue=C2ST_PVALUE)
        if "C2ST" in detectors:
            out["C2ST"] = float(r.pvalue)
        if "C2ST-fold" in detectors:
            out["C2ST-fold"] = fold_pvalue(r, ref, cur, seed)
    return out


def fold_pvalue(r: Any, ref: np.ndarray, cur: np.ndarray, seed: int) -> float:
    """A valid p-value from one ``c2st`` run: per fold, the exact/asymptotic one-sided
    Mann-Whitney test of the held-out cur scores against the held-out ref scores (valid given
    the model, which never saw those rows), then Bonferroni over the folds (valid under any
    dependence between folds). The folds are rebuilt with the split ``c2st`` documents
    (``StratifiedKFold(n_folds, shuffle=True, random_state=seed)``) and checked against its
    ``fold_aucs``. With tiny samples it has no power: 2 + 2 held-out rows give a smallest
    one-sided p of 1/6, times 5 folds."""
    from sklearn.model_selection import StratifiedKFold  # noqa: PLC0415

    from curata import drift  # noqa: PLC0415

    y = r.labels
    skf = StratifiedKFold(n_splits=C2ST_FOLDS, shuffle=True, random_state=seed)
    ps = []
    for k, (_, test) in enumerate(skf.split(np.zeros((y.size, 1)), y)):
        s, lab = r.scores[test], y[test]
        mw = drift.mannwhitneyu(s[lab == 1], s[lab == 0], alternative="greater")
        # U of the cur scores / (n0 n1) is the fold's AUC: the folds are the ones c2st used
        u = float(np.asarray(mw.statistic).reshape(-1)[0])
        auc = u / (np.count_nonzero(lab == 1) * np.count_nonzero(lab == 0))
        if abs(auc - r.fold_aucs[k]) > 1e-12:
            raise RuntimeError(f"fold {k}: rebuilt AUC {auc} != c2st's {r.fold_aucs[k]}; the fold split changed")
        ps.append(float(np.asarray(mw.pvalue).reshape(-1)[0]))
    return min(1.0, len(ps) * min(ps))


def _draw_seed(shift_index: int, n: int, draw: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([SEED, shift_index, n, draw])


def run_cell(setup: Setup, shift: Shift, shift_index: int, n: int, repeats: int, detectors=DETECTORS) -> dict[str, Any]:
    """R draws of one (shift, n): detection counts and the p-values per detector."""
    if 2 * n > setup.pool.shape[0]:
        raise ValueError(f"n must be <= {setup.pool.shape[0] // 2} (two disjoint samples from the pool), got {n}")
    pvalues: dict[str, list[float]] = {d: [] for d in detectors}
    for draw in range(repeats):
        ss = _draw_seed(shift_index, n, draw)
        rng = np.random.default_rng(ss)
        order = rng.permutation(setup.pool.shape[0])
        ref = setup.pool[order[:n]]
        cur = apply_shift(setup.pool[order[n : 2 * n]], shift, rng)
        test_seed = int(ss.generate_state(1)[0])
        for d, p in detect(setup, ref, cur, test_seed, detectors).items():
            pvalues[d].append(p)
    return {
        "shift": shift.kind,
        "intensity": shift.intensity,
        "fraction": shift.fraction,
        "label": shift.label,
        "n": n,
        "repeats": repeats,
        "detected": {d: int(sum(p <= ALPHA for p in ps)) for d, ps in pvalues.items()},
        "rate": {d: float(np.mean([p <= ALPHA for p in ps])) for d, ps in pvalues.items()},
        "pvalues": {d: [round(p, 6) for p in ps] for d, ps in pvalues.items()},
    }


_WORKER_SETUP: Setup | None = None


def _single_threaded():
    """One thread for curata and for the BLAS under scikit-learn: every call here is small, and
    on a busy 2-core machine a 2-thread OpenBLAS inside the logistic regression of c2st spins
    (measured: 1 s instead of 0.03 s per c2st at n = 10). Parallelism comes from --jobs.
    Returns the threadpoolctl limiter (keep it alive), or None."""
    import curata  # noqa: PLC0415

    curata.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415
    except ImportError:  # pragma: no cover - comes with scikit-learn
        return None
    return threadpool_limits(1)


def _worker_init(seed: int) -> None:
    global _WORKER_SETUP  # noqa: PLW0603 - one setup per worker process
    _single_threaded()
    _WORKER_SETUP = make_setup(seed)


def _worker_cell(args):
    shift, index, n, repeats, detectors = args
    return run_cell(_WORKER_SETUP, shift, index, n, repeats, detectors)


def run(
    repeats: int = REPEATS,
    sizes=SIZES,
    shifts: list[Shift] | None = None,
    detectors=DETECTORS,
    jobs: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """The whole grid. Returns ``{"cells": [...], "setup": {...}, ...}`` (JSON-ready)."""
    shifts = shift_grid() if shifts is None else shifts
    tasks = [(s, i, n, repeats, tuple(detectors)) for i, s in enumerate(shifts) for n in sizes]
    # Shift indices are positions in the default grid, so a sub-grid reuses the same draws.
    full = shift_grid()
    tasks = [(s, full.index(s) if s in full else 1000 + i, n, r, d) for (s, i, n, r, d) in tasks]
    t0 = time.perf_counter()
    setup = make_setup(SEED)
    cells: list[dict[str, Any]] = []
    if jobs > 1:
        import multiprocessing as mp  # noqa: PLC0415

        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        # Largest cells first so the pool ends evenly.
        order = sorted(range(len(tasks)), key=lambda k: -tasks[k][2])
        with ctx.Pool(jobs, initializer=_worker_init, initargs=(SEED,)) as pool:
            done = pool.imap_unordered(_worker_cell, [tasks[k] for k in order])
            for k, cell in enumerate(done, 1):
                cells.append(cell)
                if progress:
                    print(f"  {k}/{len(tasks)} {cell['label']} n={cell['n']}: {cell['rate']}", file=sys.stderr)
    else:
        import curata  # noqa: PLC0415

        threads = curata.get_num_threads()
        limiter = _single_threaded()
        try:
            for k, t in enumerate(tasks, 1):
                cell = run_cell(setup, *t)
                cells.append(cell)
                if progress:
                    print(f"  {k}/{len(tasks)} {cell['label']} n={cell['n']}: {cell['rate']}", file=sys.stderr)
        finally:
            curata.set_num_threads(threads)
            if limiter is not None:
                limiter.restore_original_limits()
    key = {(s.kind, s.intensity, s.fraction): i for i, s in enumerate(shifts)}
    cells.sort(key=lambda c: (key[(c["shift"], c["intensity"], c["fraction"])], c["n"]))
    return {
        "repeats": repeats,
        "sizes": list(sizes),
        "detectors": list(detectors),
        "alpha": ALPHA,
        "seed": SEED,
        "jobs": jobs,
        "wall_s": round(time.perf_counter() - t0, 1),
        "setup": {
            "n_train": N_TRAIN,
            "pool": int(setup.pool.shape[0]),
            "classifier": "sklearn LogisticRegression(C=1.0, max_iter=5000) on pixels / 16",
            "train_accuracy": round(setup.train_accuracy, 4),
            "pool_accuracy": round(setup.pool_accuracy, 4),
            "pca_dim": PCA_DIM,
            "mmd_permutations": MMD_PERMUTATIONS,
            "c2st": f"curata.drift.c2st(n_folds={C2ST_FOLDS}, pvalue={C2ST_PVALUE!r}), default model",
        },
        "cells": cells,
    }


# ----------------------------------------------------------------------------------- output
def _rate(x: float) -> str:
    return f"{x:.2f}".replace("0.", ".") if x < 1 else "1"


def markdown_tables(result: dict[str, Any]) -> str:
    """Aggregate table (mean detection rate over the shifted rows, per detector and n), then
    the full table: one row per shift, one column per n, cells ``BBSDs / MMD / C2ST``."""
    sizes = result["sizes"]
    dets = result["detectors"]
    cells = result["cells"]
    lines = []
    by = {}
    for c in cells:
        by.setdefault(c["label"], {})[c["n"]] = c
    control = by.get("no shift")
    shifted = [c for c in cells if c["shift"] != "none"]

    lines.append("Mean detection rate over all shifted rows (shift kinds x intensities x affected fractions), "
                 f"and the false-positive rate of the no-shift control (R = {result['repeats']} draws per cell):")
    lines.append("")
    lines.append("| detector | " + " | ".join(f"n={n}" for n in sizes) + " |")
    lines.append("|---|" + "---|" * len(sizes))
    for d in dets:
        row = []
        for n in sizes:
            rates = [c["rate"][d] for c in shifted if c["n"] == n]
            row.append(f"{np.mean(rates):.2f}" if rates else "—")
        lines.append(f"| {d} (shifted) | " + " | ".join(row) + " |")
    if control:
        for d in dets:
            lines.append(f"| {d} (no shift: false positives) | "
                         + " | ".join(f"{control[n]['rate'][d]:.2f}" if n in control else "—" for n in sizes) + " |")
    lines.append("")

    lines.append(f"Full grid: cells are detection rates {' / '.join(dets)} (fraction of {result['repeats']} draws with "
                 f"p <= {result['alpha']}).")
    lines.append("")
    lines.append("| shift | " + " | ".join(f"n={n}" for n in sizes) + " |")
    lines.append("|---|" + "---|" * len(sizes))
    for label, row in by.items():
        vals = []
        for n in sizes:
            c = row.get(n)
            vals.append(" / ".join(_rate(c["rate"][d]) for d in dets) if c else "—")
        lines.append(f"| {label} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def write_doc_tables(result: dict[str, Any], facts_line: str, command: str, doc: Path = DOC) -> None:
    """Replace the generated block of docs/drift_paper.md (between the markers)."""
    block = "\n".join([
        BEGIN,
        f"Generated by `{command}` on {result['created']} (commit {result.get('git')}); "
        f"{result['wall_s']} s wall with {result['jobs']} worker process(es).",
        "",
        f"Machine: {facts_line}.",
        "",
        f"Setup: classifier {result['setup']['classifier']}, accuracy {result['setup']['train_accuracy']:.3f} on its "
        f"{result['setup']['n_train']} training images and {result['setup']['pool_accuracy']:.3f} on the "
        f"{result['setup']['pool']}-image pool; MMD on PCA-{result['setup']['pca_dim']} with "
        f"{result['setup']['mmd_permutations']} permutations; C2ST = {result['setup']['c2st']}; "
        f"seed {result['seed']}, alpha {result['alpha']}.",
        "",
        markdown_tables(result),
        END,
    ])
    text = doc.read_text(encoding="utf-8") if doc.exists() else f"# Failing Loudly on digits\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(head + block + tail, encoding="utf-8")


def dumps(result: dict[str, Any]) -> str:
    """JSON with one line per cell (the p-value lists would otherwise take one line per value)."""
    head = {k: v for k, v in result.items() if k != "cells"}
    text = json.dumps(head, indent=1, default=str)
    cells = ",\n  ".join(json.dumps(c, default=str) for c in result["cells"])
    return text[:-2] + ',\n "cells": [\n  ' + cells + "\n ]\n}\n"


# ------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    from . import _harness as h  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m benchmarks.run drift_paper", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=f"R={QUICK_REPEATS}, n in {QUICK_SIZES}, 100%% affected only")
    p.add_argument("--repeats", type=int, default=None, help=f"draws per cell (default {REPEATS}, quick {QUICK_REPEATS})")
    p.add_argument("--sizes", default=None, help="comma-separated sample sizes (default: " + ",".join(map(str, SIZES)) + ")")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes (default 2)")
    p.add_argument("--machine", default=None)
    p.add_argument("--no-write", action="store_true", help="print the tables only")
    args = p.parse_args(argv)

    repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)
    if repeats < 1:
        p.error(f"--repeats must be >= 1, got {repeats}")
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else (QUICK_SIZES if args.quick else SIZES)
    shifts = shift_grid(fractions=QUICK_FRACTIONS) if args.quick else shift_grid()
    default_grid = not args.quick and repeats == REPEATS and sizes == SIZES

    facts = h.machine_facts("cpu", ("scikit-learn", "scipy"))
    machine = args.machine or h.machine_tag(facts, "cpu")
    print(f"suite drift_paper on {machine}: {h.machine_line(facts)}", file=sys.stderr)
    created = h.now_utc()
    result = run(repeats=repeats, sizes=sizes, shifts=shifts, jobs=max(1, args.jobs), progress=True)
    facts["loadavg_end"] = h.loadavg()
    result.update({"suite": "drift_paper", "machine": machine, "created": created, "git": facts.get("git"),
                   "quick": args.quick, "facts": facts})
    print(markdown_tables(result))
    print(f"\n{result['wall_s']} s wall", file=sys.stderr)
    if args.no_write:
        return 0
    h.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = f"drift_paper-{machine}" + ("" if default_grid else "-partial")
    path = h.RESULTS_DIR / f"{stem}.json"
    path.write_text(dumps(result), encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
    if default_grid:
        command = "python -m benchmarks.run drift_paper" + (f" --jobs {args.jobs}" if args.jobs != 2 else "")
        write_doc_tables(result, h.machine_line(facts), command)
        print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
