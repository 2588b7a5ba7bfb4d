"""The benchmark harness and checks: a check must be able to fail, a case without one must say so,
and contenders must do equal work (same threads). Tiny shapes; peers skip when not importable."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import curata

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import _harness as h  # noqa: E402


def _record(status: str, detail: str = "") -> dict:
    return {"case": "c", "group": "g", "params": {}, "contenders": ["curata", "peer"], "skipped": {}, "errors": {},
            "check": {"status": status, "detail": detail},
            "timings": {"curata": {"median_s": 1e-3, "iqr_s": 1e-4}, "peer": {"median_s": 2e-3, "iqr_s": 1e-4}},
            "ratios": {"peer": {"ratio": 2.0, "paired_q1": 1.9, "paired_q3": 2.1}}}


@pytest.mark.parametrize("status", ["none", "unchecked", "note"])
def test_markdown_marks_every_case_whose_results_were_not_compared(status):
    # A case without a check (status "none": index add/save/load, mmd 10k) was printed like a
    # checked one: no dagger and no footnote.
    table = h.markdown_table([_record(status, "why")])
    assert "| c † |" in table and "† c: why" in table


def test_markdown_checked_case_has_no_mark():
    table = h.markdown_table([_record("ok", "fine")])
    assert "†" not in table and "**2.00×** (1.90–2.10)" in table


@pytest.fixture
def search_bench(monkeypatch):
    pytest.importorskip("faiss")
    bench = pytest.importorskip("benchmarks.search")
    monkeypatch.setattr(bench, "_cache", {})
    return bench


def _patch_index_method(monkeypatch, name, how):
    orig = getattr(curata.search.Index, name)
    monkeypatch.setattr(curata.search.Index, name, lambda self, *a, **k: how(orig(self, *a, **k)))


def test_range_search_check_can_fail(search_bench, monkeypatch):
    # It answered "note: id sets differ only at the radius?" for any difference, so wrong ids or
    # no hits at all were timed as if correct.
    case = search_bench._index_case(4000, "range_search")
    assert case.check().status == "ok"
    _patch_index_method(monkeypatch, "range_search", lambda r: (r[0], r[1], r[2] + 1))
    assert case.check().status == "mismatch"
    monkeypatch.undo()
    case = search_bench._index_case(4000, "range_search")
    _patch_index_method(monkeypatch, "range_search", lambda r: (np.zeros_like(r[0]), r[1][:0], r[2][:0]))
    assert case.check().status == "mismatch"


def test_range_search_check_accepts_differences_at_the_radius(search_bench, monkeypatch):
    # A hit whose inner product is within float32 rounding of the radius may fall on either side.
    case = search_bench._index_case(4000, "range_search")
    base, queries, _ = search_bench._prepared(4000)
    ids = search_bench._index_ids(4000)
    ip = queries[: search_bench.INDEX_QUERIES].astype(np.float64) @ base.astype(np.float64).T
    j, row = np.unravel_index(np.argmax(ip), ip.shape)
    monkeypatch.setattr(search_bench, "INDEX_RADIUS", float(ip[j, row]) - 1e-3)
    case = search_bench._index_case(4000, "range_search")
    assert case.check().status in ("ok", "note")

    def drop_boundary_hit(r):
        lims, d, i = r
        keep = i != ids[row]
        counts = np.diff(lims)
        counts[j] -= int((~keep[lims[j] : lims[j + 1]]).sum())
        return np.concatenate([[0], np.cumsum(counts)]).astype(lims.dtype), d[keep], i[keep]

    _patch_index_method(monkeypatch, "range_search", drop_boundary_hit)
    assert case.check().status == "note"


def test_faiss_runs_on_curatas_threads_in_every_case(search_bench, restore_threads):
    # Only the cases that built a shared faiss index set faiss's threads; `--only "index.*add"`
    # timed faiss on all cores against curata on CURATA_NUM_THREADS.
    import faiss  # noqa: PLC0415

    curata.set_num_threads(1)
    for op in ("add", "save", "load"):
        faiss.omp_set_num_threads(2)
        search_bench._cache.clear()
        search_bench._index_case(2000, op)
        assert faiss.omp_get_max_threads() == 1, op


@pytest.fixture
def restore_threads():
    before = curata.get_num_threads()
    yield
    curata.set_num_threads(before)


def test_curation_check_can_fail(monkeypatch):
    # The check always answered "note" (quality numbers of both sides, never compared), so curata
    # results of any quality were timed.
    pytest.importorskip("cleanlab")
    bench = pytest.importorskip("benchmarks.curation")
    from benchmarks.curation_data import make_curation_data  # noqa: PLC0415

    data = make_curation_data(n=1500, d=32, n_dup_sources=15, n_outliers=15, separation=0.7)
    lab = bench._make_cleanlab(data)
    assert bench._check(data, lab).status == "note"
    honest = bench.run_curata

    def shuffled_outliers(d, steps=None):
        out = honest(d, steps)
        out["outlier"] = np.random.default_rng(0).permutation(np.asarray(out["outlier"]))
        return out

    monkeypatch.setattr(bench, "run_curata", shuffled_outliers)
    check = bench._check(data, lab)
    assert check.status == "mismatch" and "outlier AUROC" in check.detail

    def no_duplicates(d, steps=None):
        out = honest(d, steps)
        out["groups"] = np.arange(len(d.labels))
        return out

    monkeypatch.setattr(bench, "run_curata", no_duplicates)
    check = bench._check(data, lab)
    assert check.status == "mismatch" and "near-duplicate flags" in check.detail
    assert bench._check(data, None).status == "unchecked"


def test_run_gives_torch_curatas_threads(restore_threads, capsys):
    # torch defaults to the physical cores and curata to every logical CPU: on an SMT machine
    # torchvision and the torch baselines ran on half of curata's threads.
    torch = pytest.importorskip("torch")
    from benchmarks import run  # noqa: PLC0415

    before = torch.get_num_threads()
    try:
        curata.set_num_threads(1)
        torch.set_num_threads(2)
        assert run.main(["ensemble", "--quick", "--no-write", "--only", "^no case matches this$"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("op,n", [("add", 3000), ("save", 3000), ("load", 3000), ("remove+add", 20000)])
def test_index_checks_compare_contents(search_bench, monkeypatch, op, n):
    # add, save and load had no check, and remove+add compared only the two removal counts.
    case = search_bench._index_case(n, op)
    assert case.check().status in ("ok", "note")
    case = search_bench._index_case(n, op)
    _patch_index_method(monkeypatch, "search", lambda r: (r[0], r[1] + 1))
    assert case.check().status == "mismatch"


@pytest.mark.parametrize("method", ["linear", "gaussian"])
def test_soft_nms_check_compares_the_decayed_scores(monkeypatch, method):
    # The check compared the kept boxes and their *input* scores only (what ensemble-boxes returns),
    # so wrong decayed scores, curata's main output, were timed as correct.
    pytest.importorskip("ensemble_boxes")
    bench = pytest.importorskip("benchmarks.ensemble")
    case = bench._soft_nms_case(method, True, 7)
    assert case.check().status == "ok"
    honest = curata.boxes.soft_nms
    monkeypatch.setattr(curata.boxes, "soft_nms", lambda *a, **k: (lambda r: (r[0], r[1] * 0.99))(honest(*a, **k)))
    assert case.check().status == "mismatch"
