"""Suite ``curation``: near-duplicates + outliers + label issues together, curata vs cleanlab Datalab.

    python -m benchmarks.run curation [--quick]

Data (``benchmarks/curation_data.py``): 50k x 512 float32 embeddings (10k with ``--quick``) of a
10-class Gaussian mixture with sub-modes, 1 % of the rows as sources of 1-3 injected near-duplicate
copies each, 1 % injected outliers, 10 % label noise on the other rows, and out-of-sample
``pred_probs`` (5-fold nearest-class-mean classifier trained on the noisy labels). Both libraries
get the same float32 features, labels and pred_probs; neither timing includes data generation.

* curata: ``knn_graph(x, 10, "cosine")`` once, then ``near_duplicates``, ``outlier_scores`` and
  ``label_issues(labels, pred_probs, graph)`` on that graph. The near-duplicate threshold uses
  cleanlab's rule on the same graph (cosine distance below 0.13 x the median distance to the
  nearest neighbour), so both libraries make the same decision and the comparison is one of
  speed; it is computed inside the timed call.
* cleanlab 2.9.0: ``Datalab(...).find_issues(features=x, pred_probs=..., issue_types=
  {"near_duplicate", "outlier", "label"})`` with its defaults (k = 10, cosine above 3 dims). Its
  label check uses the pred_probs; curata's uses the mean of pred_probs and a kNN vote.

Before timing, the check runs each side once and scores it against the injected ground truth:
row-level F1 for near-duplicates (a row is positive when it belongs to an injected set), AUROC
and precision at the number of outliers for the outlier scores, F1 of the label-issue flags over
the non-outlier rows. It also times curata's steps separately. It is a mismatch (not timed) when
curata's near-duplicate flags differ from cleanlab's on more than 0.1 % of the rows (same rule,
same graph), its outlier AUROC is more than 0.005 from cleanlab's, or its label F1 is more than
0.05 below cleanlab's; without cleanlab the case is "unchecked". cleanlab takes minutes per call
here, so the case is not calibrated: one call per sample, two interleaved rounds.
"""

from __future__ import annotations

import resource
import time
from typing import Any, Callable

import numpy as np

import curata
from curata import curate
from curata.search import knn_graph

from ._harness import Case, Check, Contender, contender
from .curation_data import CurationData, auroc, f1, make_curation_data, precision_at, precision_recall

PEER_DISTRIBUTIONS = ("cleanlab", "scikit-learn")
DIM, K = 512, 10
# The goal of issue #4 (2-core machine): all three checks on 50k x 512 within this many seconds.
GOAL_SECONDS = 35.0
# cleanlab's near-duplicate rule: distance to a neighbour below this times the median distance
# to the nearest neighbour.
DUP_RELATIVE = 0.13

_cache: dict[int, CurationData] = {}


def _data(n: int) -> CurationData:
    if n not in _cache:
        _cache.clear()
        _cache[n] = make_curation_data(n=n, d=DIM, n_dup_sources=n // 100, n_outliers=n // 100, separation=0.7)
    return _cache[n]


def run_curata(data: CurationData, steps: dict[str, float] | None = None) -> dict[str, Any]:
    """The whole curata pipeline; ``steps`` (if given) receives the seconds of each step."""
    t0 = time.perf_counter()
    sims, idx = knn_graph(data.x, K, "cosine")
    t1 = time.perf_counter()
    graph = (sims, idx)
    threshold = DUP_RELATIVE * float(np.median(1.0 - sims[:, 0]))
    groups = curate.near_duplicates(None, threshold, "cosine", k=K, graph=graph)
    t2 = time.perf_counter()
    outlier = curate.outlier_scores(None, k=K, metric="cosine", graph=graph)
    t3 = time.perf_counter()
    labels = curate.label_issues(data.labels, pred_probs=data.pred_probs, k=K, metric="cosine", graph=graph)
    t4 = time.perf_counter()
    if steps is not None:
        steps.update(knn_graph=t1 - t0, near_duplicates=t2 - t1, outlier_scores=t3 - t2, label_issues=t4 - t3)
    return {"graph": graph, "threshold": threshold, "groups": groups, "outlier": outlier, "labels": labels}


def _make_cleanlab(data: CurationData) -> Callable[[], Any]:
    from cleanlab import Datalab  # noqa: PLC0415

    def run():
        lab = Datalab(data={"label": data.labels}, label_name="label", verbosity=0)
        lab.find_issues(
            features=data.x,
            pred_probs=data.pred_probs,
            issue_types={"near_duplicate": {}, "outlier": {}, "label": {}},
        )
        return lab

    return run


def quality(data: CurationData, dup_flag, outlier_score, label_flag) -> dict[str, float]:
    """Quality against the injected ground truth (outlier_score: higher = more unusual)."""
    dup_flag, label_flag = np.asarray(dup_flag, dtype=bool), np.asarray(label_flag, dtype=bool)
    keep = ~data.is_outlier
    dp, dr = precision_recall(dup_flag, data.is_duplicate)
    lp, lr = precision_recall(label_flag[keep], data.is_label_error[keep])
    return {
        "duplicates_f1": f1(dup_flag, data.is_duplicate),
        "duplicates_precision": dp,
        "duplicates_recall": dr,
        "outliers_auroc": auroc(outlier_score, data.is_outlier),
        "outliers_precision_at_n": precision_at(outlier_score, data.is_outlier, int(data.is_outlier.sum())),
        "label_f1": f1(label_flag[keep], data.is_label_error[keep]),
        "label_precision": lp,
        "label_recall": lr,
    }


def curata_flags(out: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(near-duplicate flag, outlier score (higher = more unusual), label-issue flag) per row."""
    groups = np.asarray(out["groups"])
    dup = np.bincount(groups, minlength=groups.size)[groups] > 1
    return dup, np.asarray(out["outlier"]), np.asarray(out["labels"].is_issue)


def cleanlab_flags(lab: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nd, out, lb = (lab.get_issues(t) for t in ("near_duplicate", "outlier", "label"))
    return (nd["is_near_duplicate_issue"].to_numpy(),
            -out["outlier_score"].to_numpy(),  # cleanlab: lower score = more of an issue
            lb["is_label_issue"].to_numpy())


def curata_quality(data: CurationData, out: dict[str, Any]) -> dict[str, float]:
    return quality(data, *curata_flags(out))


def cleanlab_quality(data: CurationData, lab: Any) -> dict[str, float]:
    return quality(data, *cleanlab_flags(lab))


# How far curata may be from cleanlab before the check calls it a mismatch. Near-duplicates: the
# same rule on the same k = 10 cosine graph, so the flags may differ only where float32 rounding
# moves a distance across the threshold. Outliers: both score the mean distance to the k
# neighbours (measured: equal AUROC and precision at n). Labels: different methods (curata adds a
# kNN vote to the pred_probs), so curata's F1 against the injected errors must merely not be
# clearly worse.
DUP_FLAG_DISAGREEMENT = 1e-3
OUTLIER_AUROC_ATOL = 5e-3
LABEL_F1_SLACK = 0.05


def compare_with_cleanlab(n: int, ours: dict[str, float], theirs: dict[str, float], ours_dup: np.ndarray,
                          theirs_dup: np.ndarray) -> list[str]:
    """The ways curata's results are further from cleanlab's than the limits above allow."""
    problems = []
    disagree = int(np.count_nonzero(np.asarray(ours_dup, bool) != np.asarray(theirs_dup, bool)))
    if disagree > max(1, DUP_FLAG_DISAGREEMENT * n):
        problems.append(f"near-duplicate flags differ from cleanlab's on {disagree} of {n} rows")
    gap = abs(ours["outliers_auroc"] - theirs["outliers_auroc"])
    if not gap <= OUTLIER_AUROC_ATOL:
        problems.append(f"outlier AUROC {ours['outliers_auroc']:.4f} vs cleanlab's {theirs['outliers_auroc']:.4f}")
    if not ours["label_f1"] >= theirs["label_f1"] - LABEL_F1_SLACK:
        problems.append(f"label F1 {ours['label_f1']:.3f} vs cleanlab's {theirs['label_f1']:.3f}")
    return problems


def _fmt(q: dict[str, float]) -> str:
    return (f"dup F1 {q['duplicates_f1']:.3f}, outlier AUROC {q['outliers_auroc']:.4f} "
            f"P@n {q['outliers_precision_at_n']:.3f}, label F1 {q['label_f1']:.3f}")


def _cpu_s() -> float:
    """CPU seconds of this process so far (all threads, user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _check(data: CurationData, cleanlab_fn: Callable[[], Any] | None) -> Check:
    # CPU seconds are recorded beside wall seconds: on a shared machine the wall time of a call
    # depends on what else runs, its CPU time much less.
    steps: dict[str, float] = {}
    c0, t0 = _cpu_s(), time.perf_counter()
    out = run_curata(data, steps)
    curata_s, curata_cpu = time.perf_counter() - t0, _cpu_s() - c0
    ours = curata_quality(data, out)
    # The same label check on pred_probs alone (what cleanlab's label check sees).
    alone = curate.label_issues(data.labels, pred_probs=data.pred_probs)
    keep = ~data.is_outlier
    ours_pp = f1(np.asarray(alone.is_issue)[keep], data.is_label_error[keep])
    metrics: dict[str, Any] = {
        "curata": ours, "curata_label_f1_pred_probs_only": ours_pp, "curata_steps_s": steps,
        "curata_check_run_s": curata_s, "curata_check_cpu_s": curata_cpu,
        "near_duplicate_threshold": out["threshold"],
    }
    detail = (f"curata: {_fmt(ours)} (label F1 on pred_probs alone {ours_pp:.3f}), "
              f"check run {curata_s:.1f} s wall / {curata_cpu:.1f} s CPU")
    if cleanlab_fn is None:
        return Check("unchecked", detail + "; cleanlab missing: not compared", metrics)
    c0, t0 = _cpu_s(), time.perf_counter()
    lab = cleanlab_fn()
    metrics["cleanlab_check_run_s"] = time.perf_counter() - t0
    metrics["cleanlab_check_cpu_s"] = _cpu_s() - c0
    theirs_flags = cleanlab_flags(lab)
    theirs = quality(data, *theirs_flags)
    metrics["cleanlab"] = theirs
    detail += (f"; cleanlab: {_fmt(theirs)}, check run {metrics['cleanlab_check_run_s']:.1f} s wall / "
               f"{metrics['cleanlab_check_cpu_s']:.1f} s CPU")
    problems = compare_with_cleanlab(len(data.labels), ours, theirs, curata_flags(out)[0], theirs_flags[0])
    if problems:
        return Check("mismatch", "; ".join(problems) + "; " + detail, metrics)
    return Check("note", detail, metrics)


def _name(n: int) -> str:
    return f"near-dups + outliers + label issues {n // 1000}k x {DIM}, k={K}"


def _case(n: int) -> Case:
    data = _data(n)
    params = {"n": n, "dim": DIM, "k": K, "metric": "cosine", "classes": 10, "dtype": "float32",
              "duplicates": int(data.is_duplicate.sum()), "outliers": int(data.is_outlier.sum()),
              "label_errors": int(data.is_label_error.sum()), "threads": curata.get_num_threads()}
    contenders = [
        Contender("curata", lambda: run_curata(data), note="knn_graph once + 3 checks"),
        contender("cleanlab", lambda: _make_cleanlab(data), note="Datalab.find_issues, 3 issue types"),
    ]
    cleanlab_fn = contenders[1].fn
    return Case(_name(n), "curation", params, contenders, check=lambda: _check(data, cleanlab_fn),
                calibrate=False, max_repeats=2)


def cases(device: str = "cpu", quick: bool = False) -> list[tuple[str, Callable[[], Case]]]:
    """One case, CPU only (curata's kNN graph has no GPU path yet)."""
    if device != "cpu":
        return []
    n = 10_000 if quick else 50_000
    return [(_name(n), lambda: _case(n))]


def goals(results: list[dict[str, Any]], device: str) -> list[dict[str, Any]]:
    """Issue #4: the three checks on 50k x 512 within 35 s on 2 cores.

    Judged on the median wall time. Where other processes kept the machine busy while the case
    was timed (> 0.2 cores), the status also gives the CPU seconds per call divided by curata's
    threads: the wall time the call would take with its cores to itself.
    """
    if device != "cpu":
        return []
    seen, parts, status = [], [], "not measured"
    met = []
    for r in results:
        if r["group"] != "curation" or r["params"].get("n") != 50_000:
            continue
        t = r.get("timings", {}).get("curata", {})
        seen.append({"case": r["case"], "ratio": r.get("ratios", {}).get("cleanlab", {}).get("ratio")})
        if "median_s" not in t:
            met.append(None)
            continue
        wall = t["median_s"]
        part = f"curata {wall:.1f} s wall"
        ok = wall <= GOAL_SECONDS
        cpu, threads = t.get("cpu_median_s"), r["params"].get("threads") or 1
        if not ok and cpu is not None and (r.get("other_processes_cores") or 0.0) > 0.2:
            part += (f"; busy machine ({r['other_processes_cores']:.2f} other cores): {cpu:.1f} CPU-s on "
                     f"{threads} threads = {cpu / threads:.1f} s with the cores free")
            ok = "cpu" if cpu / threads <= GOAL_SECONDS else False
        parts.append(part)
        met.append(ok)
    if met and None not in met:
        if all(m is True for m in met):
            status = "met"
        elif all(m for m in met):
            status = "met on CPU time, not measured on a quiet machine"
        else:
            status = "not met"
        status += f" ({'; '.join(parts)})"
    return [{"goal": f"near-dups + outliers + label issues on 50k x 512 in <= {GOAL_SECONDS:.0f} s "
                     "(ratio: cleanlab / curata)", "target": GOAL_SECONDS, "status": status, "cases": seen}]
