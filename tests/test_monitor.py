"""curata.monitor: DriftMonitor checks, reports, history, alerts, HTML, Arrow schema drift, skew.

Statistics are checked against scipy (ks_2samp, chi2_contingency) and a float64 numpy
Benjamini-Hochberg / nearest-centroid reference written here.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import curata
from curata import monitor
from curata.curate import kmeans
from curata.monitor import DriftMonitor, DriftReport, skew

stats = pytest.importorskip("scipy.stats")
pa = pytest.importorskip("pyarrow")

UTC = dt.timezone.utc


def bh_adjust(p):
    """Benjamini-Hochberg adjusted p-values, float64 reference."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adj = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        adj[i] = running
    return adj


def nearest(x, c):
    d = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(d, axis=1)


def blobs(rng, n, centers, weights):
    lab = rng.choice(len(centers), size=n, p=weights)
    return centers[lab] + rng.normal(scale=0.3, size=(n, centers.shape[1])), lab


# ------------------------------------------------------------------------------ decisions
@pytest.mark.parametrize("correction", ["fdr", "bonferroni"])
def test_null_false_positive_rate_near_alpha(correction):
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(1000, 8))
    mon = DriftMonitor(ref, tests=("ks",), alpha=0.05, correction=correction, n_clusters=4)
    runs = 800
    hits = sum(mon.check(rng.normal(size=(150, 8))).drift for _ in range(runs))
    rate = hits / runs
    # 9 p-values per check (8 columns, cluster chi2): Bonferroni has level <= alpha, Simes' global
    # test (fdr) level alpha under independence; both sit just below alpha here (about 0.04)
    sd = math.sqrt(0.05 * 0.95 / runs)
    assert 0.05 - 4 * sd <= rate <= 0.05 + 3 * sd, rate
    assert len(mon.history_rows) == runs


def test_mean_shift_detected_and_ranked_against_scipy_and_bh():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(800, 20))
    win = rng.normal(size=(400, 20))
    shifts = {2: 1.0, 11: 0.7, 5: 0.45}
    for j, s in shifts.items():
        win[:, j] += s
    mon = DriftMonitor(ref, tests=("ks", "wasserstein"), n_clusters=None, alpha=0.01)
    rep = mon.check(win)
    assert isinstance(rep, DriftReport)
    assert rep.drift and rep.feature_drift and not rep.cluster_drift
    assert rep.top_columns[:3] == ["2", "11", "5"]
    assert set(rep.drifting_columns) == {"2", "11", "5"}
    # independent reference: scipy per column + BH over the 20 ks p-values
    p = np.array([stats.ks_2samp(ref[:, j], win[:, j]).pvalue for j in range(20)])
    d = np.array([stats.ks_2samp(ref[:, j], win[:, j]).statistic for j in range(20)])
    ours = [rep.result(j, "ks") for j in range(20)]
    np.testing.assert_allclose([r.pvalue for r in ours], p, rtol=1e-10)
    np.testing.assert_allclose([r.statistic for r in ours], d, rtol=1e-12)
    np.testing.assert_allclose([r.adjusted_pvalue for r in ours], bh_adjust(p), rtol=1e-10)
    assert [r.drift for r in ours] == list(bh_adjust(p) <= 0.01)
    w = rep.result(2, "wasserstein")
    assert w.statistic == pytest.approx(stats.wasserstein_distance(ref[:, 2], win[:, 2]), rel=1e-12)
    assert math.isnan(w.pvalue) and not w.drift and w.threshold is None
    assert rep.n_tests == 20
    assert rep.min_adjusted_pvalue == pytest.approx(bh_adjust(p).min(), rel=1e-10)


def test_bonferroni_and_thresholds():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(500, 4))
    win = rng.normal(size=(300, 4))
    win[:, 1] *= 3.0
    mon = DriftMonitor(ref, tests=("ks", "psi"), correction="bonferroni", thresholds={"psi": 0.25}, n_clusters=None)
    rep = mon.check(win)
    p = np.array([stats.ks_2samp(ref[:, j], win[:, j]).pvalue for j in range(4)])
    np.testing.assert_allclose([rep.result(j, "ks").adjusted_pvalue for j in range(4)], np.minimum(1, 4 * p), rtol=1e-10)
    psi = [rep.result(j, "psi") for j in range(4)]
    assert psi[1].drift and psi[1].statistic > 0.25 and psi[1].threshold == 0.25
    assert [r.drift for r in psi] == [r.statistic > 0.25 for r in psi]
    with pytest.raises(ValueError, match="thresholds keys must be distances"):
        DriftMonitor(ref, thresholds={"ks": 0.1})
    # A threshold no configured test uses was silently ignored (it could never decide).
    with pytest.raises(ValueError, match=r"^thresholds\['wasserstein'\] is set but 'wasserstein' is in neither tests"):
        DriftMonitor(ref, tests=("ks",), thresholds={"wasserstein": 0.1}, n_clusters=None)
    # cluster_fit_rows below n_clusters: named as such (was kmeans' "rows of x" message)
    with pytest.raises(ValueError, match=r"^n_clusters must be <= cluster_fit_rows \(3\), got 4$"):
        DriftMonitor(ref, n_clusters=4, cluster_fit_rows=3)


def test_cluster_share_shift_detected():
    rng = np.random.default_rng(4)
    centers = np.eye(6)[:4] * 6.0
    ref, _ = blobs(rng, 2000, centers, [0.25] * 4)
    win, lab = blobs(rng, 400, centers, [0.7, 0.1, 0.1, 0.1])
    mon = DriftMonitor(ref, embeddings=list(range(6)), n_clusters=4, tests=("ks",), seed=0)
    rep = mon.check(win)
    c = rep.clusters
    assert c is not None and c.drift and rep.cluster_drift and rep.drift
    # independent: same k-means on the raw embeddings, float64 nearest centroid
    km = kmeans(ref, 4, seed=0)
    cent = np.asarray(km.centroids, dtype=np.float64)
    ref_counts = np.bincount(nearest(ref, cent), minlength=4)
    np.testing.assert_array_equal(ref_counts, np.bincount(np.asarray(km.labels), minlength=4))
    cur_counts = np.bincount(nearest(win, cent), minlength=4)
    np.testing.assert_array_equal(c.ref_counts, ref_counts)
    np.testing.assert_array_equal(c.cur_counts, cur_counts)
    np.testing.assert_allclose(c.share_diff, cur_counts / 400 - ref_counts / 2000, atol=1e-15)
    chi = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]))
    assert c.statistic == pytest.approx(chi.statistic, rel=1e-10)
    assert c.pvalue == pytest.approx(chi.pvalue, rel=1e-8)
    blob0 = int(np.bincount(nearest(win[lab == 0], cent)).argmax())
    assert int(np.argmax(c.share_diff)) == blob0
    # same shares -> no cluster drift
    same, _ = blobs(rng, 400, centers, [0.25] * 4)
    assert not mon.check(same).clusters.drift
    # k-means fitted on a documented subsample; shares still counted over every reference row
    sub = DriftMonitor(ref, embeddings=list(range(6)), n_clusters=4, cluster_fit_rows=500, seed=3)
    pick = np.sort(np.random.default_rng([3, 2]).choice(2000, 500, replace=False))
    cent = np.asarray(kmeans(ref[pick], 4, seed=3).centroids, dtype=np.float64)
    rep = sub.check(win)
    np.testing.assert_array_equal(rep.clusters.ref_counts, np.bincount(nearest(ref, cent), minlength=4))
    np.testing.assert_array_equal(rep.clusters.cur_counts, np.bincount(nearest(win, cent), minlength=4))
    assert rep.clusters.ref_counts.sum() == 2000 and rep.cluster_drift


def test_class_shift_labels_and_probabilities():
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(600, 3))
    ref_pred = rng.choice(["cat", "dog", "fox"], size=600)
    mon = DriftMonitor(ref, predictions=ref_pred, n_clusters=None)
    win_pred = rng.choice(["cat", "dog", "fox"], p=[0.6, 0.2, 0.2], size=300)
    rep = mon.check(rng.normal(size=(300, 3)), predictions=win_pred)
    cls = rep.classes
    assert list(cls.classes) == ["cat", "dog", "fox"]
    rc = np.array([(ref_pred == k).sum() for k in cls.classes])
    cc = np.array([(win_pred == k).sum() for k in cls.classes])
    np.testing.assert_array_equal(cls.ref_counts, rc)
    np.testing.assert_array_equal(cls.cur_counts, cc)
    np.testing.assert_allclose(cls.share_diff, cc / 300 - rc / 600)
    assert cls.pvalue == pytest.approx(stats.chi2_contingency(np.vstack([rc, cc])).pvalue, rel=1e-8)
    assert cls.drift and rep.class_drift and rep.drift and cls.bbsd is None
    with pytest.raises(TypeError, match="labels of the reference predictions' type"):
        mon.check(rng.normal(size=(10, 3)), predictions=np.zeros(10, dtype=np.int64))
    # no prediction shift
    rep2 = mon.check(rng.normal(size=(300, 3)), predictions=rng.choice(["cat", "dog", "fox"], size=300))
    assert not rep2.class_drift
    # predictions omitted -> no class section
    assert mon.check(rng.normal(size=(50, 3))).classes is None

    # probabilities: class frequencies + KS per class column (BBSD)
    ref_p = rng.dirichlet([1, 1, 1], size=800)
    mon = DriftMonitor(ref, predictions=ref_p, n_clusters=None)
    win_p = rng.dirichlet([4, 1, 1], size=300)
    rep = mon.check(rng.normal(size=(300, 3)), predictions=win_p)
    cls = rep.classes
    np.testing.assert_array_equal(cls.ref_counts, np.bincount(ref_p.argmax(1), minlength=3))
    np.testing.assert_array_equal(cls.cur_counts, np.bincount(win_p.argmax(1), minlength=3))
    assert [b.column for b in cls.bbsd] == ["class 0", "class 1", "class 2"]
    for c, b in enumerate(cls.bbsd):
        assert b.pvalue == pytest.approx(stats.ks_2samp(ref_p[:, c], win_p[:, c]).pvalue, rel=1e-10)
    assert cls.drift and cls.bbsd[0].drift
    assert rep.n_tests == 3 + 1 + 3  # columns, class chi2, BBSD
    with pytest.raises(ValueError, match=r"predictions must have shape \(M, 3\)"):
        mon.check(rng.normal(size=(10, 3)), predictions=rng.dirichlet([1, 1], size=10))
    with pytest.raises(ValueError, match="no reference predictions"):
        DriftMonitor(ref, n_clusters=None).check(ref, predictions=ref_pred)


# ------------------------------------------------------------------------------ history, alerts
def test_history_grows_with_report_values():
    rng = np.random.default_rng(6)
    ref = rng.normal(size=(500, 5))
    mon = DriftMonitor(ref, n_clusters=3)
    t0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
    reps = []
    for i, shift in enumerate((0.0, 0.8, 0.0)):
        w = rng.normal(size=(200, 5))
        w[:, 0] += shift
        reps.append(mon.check(w, timestamp=t0 + dt.timedelta(hours=i)))
    reps.append(mon.check(np.zeros((0, 5)), timestamp=t0.timestamp() + 3 * 3600))
    h = mon.history
    assert isinstance(h, pa.Table) and h.num_rows == 4
    assert h.column("timestamp").to_pylist() == [t0 + dt.timedelta(hours=i) for i in range(4)]
    assert h.column("n_rows").to_pylist() == [200, 200, 200, 0]
    assert h.column("drift").to_pylist() == [r.drift for r in reps]
    assert reps[1].drift and h.column("top_columns").to_pylist()[1][0] == "0"
    assert h.column("status").to_pylist()[3] == "insufficient data"
    assert h.column("min_adjusted_pvalue").to_pylist()[:3] == [r.min_adjusted_pvalue for r in reps[:3]]
    assert h.column("min_adjusted_pvalue").to_pylist()[3] is None
    assert h.column("cluster_pvalue").to_pylist()[:3] == [r.clusters.adjusted_pvalue for r in reps[:3]]
    assert h.column("n_drifting_columns").to_pylist()[1] == len(reps[1].drifting_columns)
    assert h.column("class_pvalue").null_count == 4


def test_alert_callbacks_and_raising_callback(caplog):
    rng = np.random.default_rng(7)
    ref = rng.normal(size=(400, 3))
    mon = DriftMonitor(ref, n_clusters=None)
    seen = []

    @mon.on_alert
    def boom(report):
        raise RuntimeError("pager down")

    mon.on_alert(seen.append)
    mon.check(rng.normal(size=(200, 3)))
    assert seen == []
    with caplog.at_level(logging.ERROR, logger="curata.monitor"):
        rep = mon.check(rng.normal(size=(200, 3)) + 2.0)
    assert rep.drift and seen == [rep]
    assert "pager down" in caplog.text
    assert mon.last_report is rep and len(mon.history_rows) == 2
    with pytest.raises(TypeError, match="callback must be callable"):
        mon.on_alert(3)


# ------------------------------------------------------------------------------ html
class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []
        self.text = []
        self.attrs = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(v or "" for _, v in attrs)

    def handle_data(self, data):
        self.text.append(data)


def test_html_report(tmp_path):
    rng = np.random.default_rng(8)
    ref = pa.table({"x": rng.normal(size=500), "<b>evil</b>": rng.normal(size=500), "tag": rng.choice(["a", "b"], 500)})
    mon = DriftMonitor(ref, n_clusters=3)
    for shift in (0.0, 1.0):
        mon.check(pa.table({"x": rng.normal(size=200) + shift, "<b>evil</b>": rng.normal(size=200), "tag": rng.choice(["a", "b"], 200)}))
    path = tmp_path / "report.html"
    path.write_text("old")
    assert mon.to_html(path) == str(path)
    doc = path.read_text(encoding="utf-8")
    p = _Collector()
    p.feed(doc)
    p.close()
    # p-values over time, ks bars (numeric columns), chi2 bars (categorical), cluster shares
    assert p.tags.count("svg") == 4
    assert p.tags.count("circle") == 2 and "line" in p.tags and "rect" in p.tags
    text = "".join(p.text)
    assert "<b>evil</b>" in text and "<b>evil</b>" not in doc  # escaped
    last = mon.last_report
    assert f"{last.result('x').statistic:.4g}" in text
    assert f"{last.result('x').adjusted_pvalue:.4g}" in text
    assert "http://" not in doc and "https://" not in doc and "<script" not in doc.lower()
    assert "src=" not in doc and not any(a.startswith(("http", "//")) for a in p.attrs)
    assert sorted(os.listdir(tmp_path)) == ["report.html"]  # temp file replaced, none left
    path.chmod(0o640)
    mon.to_html(path)
    assert os.stat(path).st_mode & 0o777 == 0o640  # permissions of the replaced file kept
    # an empty latest window: details come from the latest tested window
    mon.check(ref.slice(0, 0))
    mon.to_html(path)
    doc2 = path.read_text(encoding="utf-8")
    assert "insufficient data" in doc2 and doc2.count("<svg") == 4 and "latest tested window" in doc2
    fresh = tmp_path / "fresh.html"
    mon.to_html(fresh)
    assert os.stat(fresh).st_mode & 0o777 == 0o644
    empty = tmp_path / "empty.html"
    DriftMonitor(rng.normal(size=(10, 2)), n_clusters=None).to_html(empty)
    assert "No check yet" in empty.read_text()


def test_html_plot_orders_checks_by_timestamp(tmp_path):
    # A backfilled window (checked after a later one) used to be drawn after it on the axis
    # labelled "check (oldest to latest)".
    rng = np.random.default_rng(33)
    ref = rng.normal(size=(300, 2))
    mon = DriftMonitor(ref, n_clusters=None)
    mon.check(rng.normal(size=(200, 2)) + 2.0, timestamp="2024-01-03T00:00:00+00:00")  # drift
    mon.check(rng.normal(size=(200, 2)), timestamp="2024-01-01T00:00:00+00:00")  # backfill
    mon.check(rng.normal(size=(200, 2)), timestamp="2024-01-02T00:00:00+00:00")
    mon.check(rng.normal(size=(200, 2)) + 2.0, timestamp="2024-01-02T00:00:00+00:00")  # same time
    path = tmp_path / "r.html"
    mon.to_html(path)
    doc = path.read_text(encoding="utf-8")
    circles = re.findall(r'<circle class="check" cx="([0-9.]+)"[^>]*><title>([^<]*)</title>', doc)
    assert len(circles) == 4
    xs = [float(x) for x, _ in circles]
    assert xs == sorted(xs)
    days = [tip[:10] for _, tip in sorted(circles, key=lambda c: float(c[0]))]
    assert days == ["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-03"]
    order = [tip for _, tip in sorted(circles, key=lambda c: float(c[0]))]
    rows = mon.history_rows
    assert f"{rows[2]['min_adjusted_pvalue']:.3g}" in order[1] and f"{rows[3]['min_adjusted_pvalue']:.3g}" in order[2]
    assert [r["timestamp"].day for r in rows] == [3, 1, 2, 2]  # the history keeps check order


# ------------------------------------------------------------------------------ arrow
def test_arrow_schema_drift_and_categorical_tests():
    rng = np.random.default_rng(9)
    n, m = 1000, 400
    ref = pa.table({
        "num": rng.normal(size=n),
        "count": pa.array(rng.integers(0, 10, n), type=pa.int64()),
        "color": pa.array(rng.choice(["red", "green", "blue"], n)).dictionary_encode(),
        "flag": rng.random(n) < 0.3,
        "gone": rng.normal(size=n),
        "sparse": pa.array([None if i % 20 == 0 else v for i, v in enumerate(rng.normal(size=n))]),
        "other": pa.array([[1]] * n),  # list<int64>: not monitored
    })
    mon = DriftMonitor(ref, n_clusters=None)
    assert mon.numeric_columns == ["num", "count", "gone", "sparse"]
    assert mon.categorical_columns == ["color", "flag"]
    colors = rng.choice(["red", "green", "blue"], m, p=[0.6, 0.2, 0.2])
    win = pa.table({
        "num": rng.normal(size=m),
        "count": pa.array(rng.integers(0, 10, m).astype(np.float64)),  # int64 -> double
        "color": pa.array(colors),  # dictionary -> plain string: same logical type
        "flag": rng.random(m) < 0.3,
        "sparse": pa.array([None if i % 2 == 0 else v for i, v in enumerate(rng.normal(size=m))]),
        "new": rng.normal(size=m),
    })
    rep = mon.check(win)
    s = rep.schema
    assert s.added == ["new"] and s.removed == ["gone"]
    assert s.type_changed == {"count": ("int64", "double")}
    assert list(s.null_rate) == ["sparse"] and s.null_rate["sparse"] == (pytest.approx(0.05), pytest.approx(0.5))
    assert s.changed and rep.schema_drift and rep.drift
    assert rep.result("gone").status == "missing" and not rep.result("gone").drift
    cnt = rep.result("count")  # still tested after int64 -> double
    assert cnt.status == "ok" and cnt.pvalue == pytest.approx(
        stats.ks_2samp(ref.column("count").to_numpy().astype(float), win.column("count").to_numpy()).pvalue, rel=1e-10)
    sp = rep.result("sparse")  # nulls dropped, not counted as NaN
    assert sp.n_ref == n - 50 and sp.n_cur == m // 2 and sp.nan_cur == 0
    # categorical chi2 against scipy on the category table
    ref_colors = np.asarray(ref.column("color").combine_chunks().dictionary_decode().to_pylist())
    table = np.array([[(ref_colors == k).sum() for k in ("blue", "green", "red")],
                      [(colors == k).sum() for k in ("blue", "green", "red")]])
    chi = rep.result("color", "chi2")
    assert chi.kind == "categorical" and chi.pvalue == pytest.approx(stats.chi2_contingency(table).pvalue, rel=1e-8)
    assert chi.drift and rep.top_columns[0] == "color"
    psi = rep.result("color", "psi")
    p_ref, p_cur = table[0] / n, table[1] / m
    assert psi.statistic == pytest.approx(np.sum((p_cur - p_ref) * np.log(p_cur / p_ref)), rel=1e-12)
    assert not rep.result("flag", "chi2").drift
    # an identical table has no schema drift
    same = mon.check(ref)
    assert not same.schema.changed and not same.drift
    # numeric -> string is a kind change: not tested
    rep = mon.check(win.set_column(0, "num", pa.array(["1"] * m)))
    assert rep.schema.type_changed["num"] == ("double", "string") and rep.result("num").status == "missing"
    with pytest.raises(TypeError, match="pyarrow Table like the reference"):
        mon.check(np.zeros((3, 6)))


def test_arrow_embedding_column_clusters():
    rng = np.random.default_rng(10)
    centers = np.eye(4) * 5.0
    emb, _ = blobs(rng, 800, centers, [0.25] * 4)
    ref = pa.table({"emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 4), "x": rng.normal(size=800)})
    mon = DriftMonitor(ref, embeddings="emb", n_clusters=4)
    assert mon.numeric_columns == ["x"]
    wemb, _ = blobs(rng, 300, centers, [0.85, 0.05, 0.05, 0.05])
    rep = mon.check(pa.table({"emb": pa.FixedSizeListArray.from_arrays(pa.array(wemb.ravel()), 4), "x": rng.normal(size=300)}))
    km = kmeans(emb, 4, seed=0)
    np.testing.assert_array_equal(rep.clusters.cur_counts, np.bincount(nearest(wemb, np.asarray(km.centroids, float)), minlength=4))
    assert rep.cluster_drift and not rep.feature_drift
    # A window whose embedding lists have another size: a numpy matmul shape error leaked from
    # the cluster assignment. Now it is a reported type change and no cluster test (as a
    # missing column), the other columns are still tested, and the check is recorded.
    n_hist = len(mon.history_rows)
    x3 = rng.normal(size=300)
    bad = mon.check(pa.table({"emb": pa.FixedSizeListArray.from_arrays(pa.array(wemb[:, :3].ravel()), 3), "x": x3}))
    assert bad.schema.type_changed == {"emb": ("fixed_size_list<item: double>[4]", "fixed_size_list<item: double>[3]")}
    assert bad.clusters.n_skipped == 300 and math.isnan(bad.clusters.pvalue) and not bad.cluster_drift
    assert bad.schema_drift and bad.drift
    assert bad.result("x").pvalue == pytest.approx(curata.drift.ks(ref.column("x").to_numpy(), x3).pvalue[0])
    assert len(mon.history_rows) == n_hist + 1


def test_reference_predictions_are_copied():
    # The reference is copied at construction; the reference predictions were kept as a view of
    # the caller's array (labels, float64 probabilities), so reusing that buffer changed the
    # class test of every later check.
    rng = np.random.default_rng(37)
    ref = rng.normal(size=(100, 2))
    labels, probs = rng.integers(0, 3, 100), rng.dirichlet([1, 1, 1], 100)
    w, wl, wp = rng.normal(size=(50, 2)), rng.integers(0, 3, 50), rng.dirichlet([1, 1, 1], 50)
    for given, window_pred in ((labels, wl), (probs, wp)):
        mon = DriftMonitor(ref, n_clusters=None, predictions=given)
        before = mon.check(w, predictions=window_pred).classes
        given[:] = 0  # the caller reuses its buffer
        after = mon.check(w, predictions=window_pred).classes
        assert after.pvalue == before.pvalue and np.array_equal(after.ref_counts, before.ref_counts)


def test_reference_without_columns_is_refused():
    # A Table without a monitored column raises; an (N, 0) array built a monitor of nothing that
    # answered "no drift" (0 tests) for every window.
    with pytest.raises(ValueError, match=r"reference must have at least 1 column to monitor, got shape \(10, 0\)"):
        DriftMonitor(np.zeros((10, 0)))
    with pytest.raises(ValueError, match="no numeric or categorical column"):
        DriftMonitor(pa.table({"e": pa.array([[1.0]] * 3, pa.list_(pa.float64(), 1))}))


def test_history_rows_are_copies():
    # history_rows copied each dict but not the top_columns list inside it: appending to a
    # returned list rewrote the monitor's history (and the Arrow history and the HTML report).
    rng = np.random.default_rng(36)
    mon = DriftMonitor(rng.normal(size=(100, 2)), n_clusters=None)
    mon.check(rng.normal(size=(50, 2)) + 1.0)
    before = mon.history.to_pylist()
    rows = mon.history_rows
    rows[0]["top_columns"].append("bogus")
    rows[0]["top_columns"][0] = "x"
    rows[0]["drift"] = False
    assert mon.history.to_pylist() == before and mon.history_rows[0]["top_columns"] == before[0]["top_columns"]


def test_numpy_integer_thresholds_and_tolerances():
    # thresholds values and skew's rtol/atol were checked with isinstance(v, (int, float,
    # np.floating)): a numpy integer (np.int64(0)) was refused as "must be a finite number >= 0".
    rng = np.random.default_rng(35)
    ref, win = rng.normal(size=(200, 2)), rng.normal(size=(100, 2)) + 0.3
    a = DriftMonitor(ref, tests=("ks", "psi"), thresholds={"psi": np.int64(0)}, n_clusters=None).check(win)
    b = DriftMonitor(ref, tests=("ks", "psi"), thresholds={"psi": 0.0}, n_clusters=None).check(win)
    assert [(r.threshold, r.drift) for r in a.results] == [(r.threshold, r.drift) for r in b.results]
    assert skew(ref, win, rtol=np.int64(0), atol=np.int64(1)).distribution.n_rows == 100
    for bad in (np.bool_(True), -1, np.float64(np.inf)):
        with pytest.raises(ValueError, match=r"thresholds\['psi'\] must be a finite number >= 0"):
            DriftMonitor(ref, tests=("psi",), thresholds={"psi": bad}, n_clusters=None)
    with pytest.raises(ValueError, match="rtol must be a finite number >= 0"):
        skew(ref, win, rtol=np.bool_(False))


def test_window_below_min_rows_has_no_null_rate_drift():
    # A window below min_rows is "not tested, drift=False unless columns were added, removed or
    # re-typed"; its null rates were still compared, so 2 rows with one null (a 50 % "jump")
    # made an untested window a drift alert.
    rng = np.random.default_rng(34)
    ref = pa.table({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    mon = DriftMonitor(ref, n_clusters=None, min_rows=50)
    alerts = []
    mon.on_alert(alerts.append)
    rep = mon.check(pa.table({"a": pa.array([None, 1.0], pa.float64()), "b": [0.1, 0.2]}))
    assert rep.status == "insufficient data" and not rep.drift and not rep.schema_drift
    assert rep.schema.null_rate == {} and not alerts
    gone = mon.check(pa.table({"a": pa.array([None, 1.0], pa.float64())}))  # a removed column still counts
    assert gone.status == "insufficient data" and gone.drift and gone.schema.removed == ["b"] and gone.schema.null_rate == {}
    a = rng.normal(size=60)
    a[:30] = np.nan
    full = mon.check(pa.table({"a": pa.array(a, from_pandas=True), "b": rng.normal(size=60)}))  # >= min_rows
    assert full.status == "ok" and full.schema.null_rate == {"a": (0.0, 0.5)} and full.drift


def test_named_embedding_column_changing_type_is_not_assigned():
    # Embedding columns named in a list: a window where one became a string column was cast to
    # float64 for the cluster assignment, which parsed "0", "1", ... as numbers (a spurious cluster
    # drift) and raised pyarrow's ArrowInvalid on other strings. It is a type change like a removed
    # column: reported in the schema, the window is not assigned to clusters, the rest is tested.
    rng = np.random.default_rng(31)
    ref = pa.table({"a": rng.normal(size=200), "c": rng.normal(size=200)})
    mon = DriftMonitor(ref, embeddings=["a", "c"], n_clusters=2)
    c = rng.normal(size=50)
    for strings in (np.arange(50).astype(str), np.full(50, "x")):
        rep = mon.check(pa.table({"a": pa.array(strings), "c": c}))
        assert rep.schema.type_changed == {"a": ("double", "string")}
        assert rep.result("a").status == "missing"
        assert rep.clusters.n_skipped == 50 and rep.clusters.cur_counts.sum() == 0
        assert math.isnan(rep.clusters.pvalue) and not rep.cluster_drift
        assert rep.result("c").pvalue == pytest.approx(curata.drift.ks(ref.column("c").to_numpy(), c).pvalue[0])
    rep = mon.check(pa.table({"a": pa.array(rng.random(50) < 0.5), "c": c}))  # bool: categorical now
    assert rep.clusters.n_skipped == 50 and not rep.cluster_drift


def test_arrow_integers_beyond_two_to_the_53():
    # int64/uint64 columns holding values above 2^53 (ids, hashes, nanosecond counts): the safe
    # Arrow cast to float64 raised ArrowInvalid at construction; they are converted as numpy
    # converts an int64 array (nearest float64), like an integer array reference.
    rng = np.random.default_rng(32)
    big = rng.integers(2**60, 2**61, size=300)
    ubig = rng.integers(2**62, 2**63, size=300).astype(np.uint64) * np.uint64(2)
    ref = pa.table({"i": pa.array(big[:200], pa.int64()), "u": pa.array(ubig[:200], pa.uint64())})
    win = pa.table({"i": pa.array(big[200:], pa.int64()), "u": pa.array(ubig[200:], pa.uint64())})
    mon = DriftMonitor(ref, tests=("ks", "wasserstein"), n_clusters=2)
    rep = mon.check(win)
    for c, v in (("i", big), ("u", ubig)):
        expect = curata.drift.ks(v[:200].astype(np.float64), v[200:].astype(np.float64))
        assert rep.result(c, "ks").pvalue == expect.pvalue[0]
        assert rep.result(c, "ks").n_cur == 100
    arr = DriftMonitor(np.column_stack([big[:200], ubig[:200].astype(np.float64)]), tests=("ks",), n_clusters=2)
    arep = arr.check(np.column_stack([big[200:], ubig[200:].astype(np.float64)]))
    assert [r.pvalue for r in arep.results] == [r.pvalue for r in rep.results if r.test == "ks"]
    assert skew(ref, win).distribution.result("i").pvalue == rep.result("i").pvalue


# ------------------------------------------------------------------------------ skew
def test_skew_distribution_and_join():
    rng = np.random.default_rng(11)
    n = 1000
    ids = rng.permutation(n)
    train = pa.table({
        "id": ids,
        "age": rng.normal(40, 10, n),
        "city": rng.choice(["a", "b", "c"], n),
        "score": rng.random(n),
    })
    # serving: rows 100..1099 (900 shared ids + 100 new), age in months for 10 % of shared rows
    serve_ids = np.concatenate([ids[100:], np.arange(n, n + 100)])
    order = {int(k): i for i, k in enumerate(ids)}
    age = np.array([train.column("age")[order[k]].as_py() if k < n else 40.0 for k in serve_ids])
    changed = np.zeros(serve_ids.size, bool)
    changed[:90] = True
    age[changed] *= 12
    city = np.array([train.column("city")[order[k]].as_py() if k < n else "a" for k in serve_ids], dtype=object)
    city[200:227] = "z"
    score = np.array([train.column("score")[order[k]].as_py() if k < n else 0.5 for k in serve_ids])
    score[300:310] += 1e-9  # within rtol: not a mismatch
    serve = pa.table({"id": serve_ids, "age": age, "city": pa.array(list(city)), "score": score})
    rep = skew(train, serve, key="id")
    assert rep.n_joined == 900 and rep.n_training_only == 100 and rep.n_serving_only == 100
    assert rep.mismatch_count == {"age": 90, "score": 0, "city": 27}
    assert rep.mismatch_rate["age"] == pytest.approx(0.1) and rep.mismatch_rate["city"] == pytest.approx(0.03)
    assert rep.distribution.result("age").drift  # 10 % of ages x12 moves the distribution
    assert "age" in rep.skewed_columns and "city" in rep.skewed_columns and "score" not in rep.skewed_columns
    assert rep.skewed and "id" not in [r.column for r in rep.distribution.results]
    assert DriftMonitor.skew(train, serve, key="id").mismatch_count == rep.mismatch_count
    # arrays: distribution only
    a = rng.normal(size=(500, 3))
    b = rng.normal(size=(500, 3))
    b[:, 2] += 1
    r = skew(a, b)
    assert r.skewed_columns == ["2"] and r.n_joined is None
    with pytest.raises(TypeError, match="key needs pyarrow Tables"):
        skew(a, b, key="id")
    dup = train.set_column(0, "id", pa.array(np.zeros(n, dtype=np.int64)))
    with pytest.raises(ValueError, match="must be unique"):
        skew(dup, serve, key="id")
    # A column of a type that is not monitored (an embedding list) is left out with a key as
    # without one; it raised TypeError "not monitored" only when key was given.
    emb = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(3 * n)), 3)
    emb_s = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(3 * serve.num_rows)), 3)
    with_emb = skew(train.append_column("emb", emb), serve.append_column("emb", emb_s), key="id")
    assert with_emb.mismatch_count == rep.mismatch_count and with_emb.skewed_columns == rep.skewed_columns
    assert skew(train.append_column("emb", emb), serve.append_column("emb", emb_s)).distribution.results
    with pytest.raises(ValueError, match="must not include the key"):
        skew(train, serve, key="id", columns="id")


# ------------------------------------------------------------------------------ inputs
def test_torch_tensor_input_matches_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    ref = rng.normal(size=(300, 4)).astype(np.float32)
    win = rng.normal(size=(100, 4)).astype(np.float32)
    win[:, 3] += 1
    a = DriftMonitor(torch.from_numpy(ref), n_clusters=2).check(torch.from_numpy(win), predictions=None)
    b = DriftMonitor(ref, n_clusters=2).check(win)
    assert [r.pvalue for r in a.results] == [r.pvalue for r in b.results]
    assert a.top_columns == b.top_columns == ["3"]
    np.testing.assert_array_equal(a.clusters.cur_counts, b.clusters.cur_counts)
    p = torch.softmax(torch.from_numpy(rng.normal(size=(300, 3))), dim=1)
    mon = DriftMonitor(torch.from_numpy(ref), predictions=p, n_clusters=None)
    assert mon.check(torch.from_numpy(win), predictions=p[:100]).classes.bbsd is not None


def test_nan_policies():
    rng = np.random.default_rng(13)
    ref = rng.normal(size=(300, 3))
    win = rng.normal(size=(200, 3))
    win[[1, 5, 9], 1] = np.nan
    mon = DriftMonitor(ref, n_clusters=2)
    with pytest.raises(ValueError, match=r"window column '1' has 3 NaN value\(s\)"):
        mon.check(win)
    bad = ref.copy()
    bad[0, 2] = np.nan
    with pytest.raises(ValueError, match=r"reference column '2' has 1 NaN"):
        DriftMonitor(bad)
    mon = DriftMonitor(bad, nan_policy="omit", n_clusters=2)
    rep = mon.check(win)
    assert rep.nan_counts == {"1": 3}
    r1 = rep.result(1)
    assert r1.nan_cur == 3 and r1.n_cur == 197 and r1.nan_ref == 0
    assert r1.pvalue == pytest.approx(stats.ks_2samp(ref[:, 1], win[~np.isnan(win[:, 1]), 1]).pvalue, rel=1e-10)
    assert rep.result(2).nan_ref == 1 and rep.result(2).n_ref == 299
    assert rep.clusters.n_skipped == 3 and rep.clusters.cur_counts.sum() == 197
    # a column that is all NaN in the window cannot be tested
    allnan = win.copy()
    allnan[:, 0] = np.nan
    rep = mon.check(allnan)
    assert rep.result(0).status == "insufficient data" and math.isnan(rep.result(0).pvalue)
    assert rep.result(1).status == "ok" and rep.n_tests == 3 + 1
    with pytest.raises(ValueError, match="nan_policy must be one of"):
        DriftMonitor(ref, nan_policy="ignore")


def test_empty_and_small_windows():
    rng = np.random.default_rng(14)
    ref = rng.normal(size=(100, 2))
    mon = DriftMonitor(ref, tests=("ks", "cramervonmises"), n_clusters=2, min_rows=1)
    called = []
    mon.on_alert(called.append)
    rep = mon.check(np.zeros((0, 2)))
    assert rep.status == "insufficient data" and not rep.drift and rep.results == [] and rep.n_tests == 0
    assert math.isnan(rep.min_pvalue)
    rep = mon.check(rng.normal(size=(1, 2)))  # ks runs on 1 row, Cramér-von Mises needs 2
    assert rep.status == "ok"
    assert rep.result(0, "ks").status == "ok"
    assert rep.result(0, "cramervonmises").status == "insufficient data"
    assert rep.n_tests == 4 + 1  # the two NaN p-values count in the family
    mon = DriftMonitor(ref, min_rows=50, n_clusters=None)
    assert mon.check(rng.normal(size=(49, 2))).status == "insufficient data"
    assert mon.check(rng.normal(size=(50, 2))).status == "ok"
    assert called == []


def test_constant_columns():
    rng = np.random.default_rng(15)
    ref = np.column_stack([np.full(200, 3.0), rng.normal(size=200)])
    mon = DriftMonitor(ref, tests=("ks", "mannwhitneyu", "chi2"), n_clusters=2)
    same = np.column_stack([np.full(80, 3.0), rng.normal(size=80)])
    rep = mon.check(same)
    for t, stat in (("ks", 0.0), ("mannwhitneyu", 200 * 80 / 2), ("chi2", 0.0)):
        r = rep.result(0, t)
        assert r.statistic == stat and r.pvalue == 1.0 and not r.drift
    moved = np.column_stack([np.full(80, 4.0), rng.normal(size=80)])
    rep = mon.check(moved)
    assert rep.result(0, "ks").statistic == 1.0 and rep.result(0, "ks").drift and rep.top_columns[0] == "0"


def test_bad_input_errors():
    rng = np.random.default_rng(16)
    ref = rng.normal(size=(100, 3))
    mon = DriftMonitor(ref, n_clusters=None)
    with pytest.raises(ValueError, match=r"window must have 3 columns like the reference, got shape \(10, 4\)"):
        mon.check(np.zeros((10, 4)))
    with pytest.raises(ValueError, match="tests entries must be in"):
        DriftMonitor(ref, tests=("kolmogorov",))
    with pytest.raises(ValueError, match="correction must be one of"):
        DriftMonitor(ref, correction="holm")
    with pytest.raises(ValueError, match="alpha must be a number in"):
        DriftMonitor(ref, alpha=1.5)
    with pytest.raises(ValueError, match="n_clusters must be <= 100"):
        DriftMonitor(ref, n_clusters=101)
    with pytest.raises(ValueError, match=r"columns entries must be in \[0, 2\]"):
        DriftMonitor(ref, columns=[5])
    with pytest.raises(ValueError, match="timestamp must be an ISO 8601"):
        mon.check(ref, timestamp="yesterday")
    with pytest.raises(TypeError, match="timestamp must be"):
        mon.check(ref, timestamp=[2026, 11, 22])
    # NaN/inf/huge POSIX seconds and times without a UTC equivalent: ValueError naming timestamp
    # (was a bare "Invalid value NaN" / OverflowError, and a datetime(1, 1, 1) with a positive
    # offset was accepted and then broke every later read of `history`); nothing is recorded.
    n_before = len(mon.history_rows)
    plus5 = dt.timezone(dt.timedelta(hours=5))
    for bad in (float("nan"), float("inf"), -np.inf, 1e20, np.float64(-1e19),
                dt.datetime(1, 1, 1, tzinfo=plus5), "0001-01-01T00:00+05:00", "9999-12-31T23:00-05:00"):
        with pytest.raises(ValueError, match="^timestamp must be"):
            mon.check(ref, timestamp=bad)
    assert len(mon.history_rows) == n_before
    assert mon.check(ref, timestamp=dt.datetime(1, 1, 1, 6, tzinfo=plus5)).timestamp.year == 1
    assert mon.check(ref, timestamp=-1.5).timestamp.year == 1969
    assert mon.history.num_rows == n_before + 2
    r = mon.check(ref, timestamp="2026-11-22T10:30")
    assert r.timestamp.isoformat() == "2026-11-22T10:30:00+00:00"
    r = mon.check(ref, timestamp="2026-11-22T10:30+02:00")
    assert r.timestamp.utcoffset().total_seconds() == 7200
    with pytest.raises(TypeError, match="array like the reference"):
        mon.check(pa.table({"a": [1.0]}))
    sub = DriftMonitor(ref, columns=[2, 0], n_clusters=None)
    assert sub.numeric_columns == ["2", "0"]
    w = ref.copy()
    w[:, 1] += 5  # not monitored
    assert not sub.check(w).drift


def test_import_stays_light():
    code = "import sys, curata; assert curata.DriftMonitor is curata.monitor.DriftMonitor; print(sorted(m for m in ('pyarrow', 'torch', 'scipy', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_reference_is_copied_and_empty_table_window_schema():
    rng = np.random.default_rng(17)
    ref = rng.normal(size=(200, 2))
    mon = DriftMonitor(ref, n_clusters=None)
    keep = ref.copy()
    ref += 10.0  # the caller reuses its array
    assert not mon.check(keep[:100]).drift
    t = pa.table({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    mon = DriftMonitor(t, n_clusters=2, embeddings=["a"])
    assert mon.numeric_columns == ["a", "b"]  # an embedding column named in a list stays monitored
    rep = mon.check(t.slice(0, 0))
    assert rep.status == "insufficient data" and not rep.drift and not rep.schema.changed
    rep = mon.check(t.select(["a"]).slice(0, 0))
    assert rep.status == "insufficient data" and rep.schema.removed == ["b"] and rep.drift and rep.schema_drift
    mon = DriftMonitor(t, n_clusters=2, embeddings="a")
    assert mon.numeric_columns == ["a", "b"]  # a numeric column as embeddings stays monitored


def test_dtypes_and_non_contiguous_windows():
    rng = np.random.default_rng(18)
    ref = rng.integers(-5, 6, size=(300, 3))
    big = rng.normal(size=(120, 6))
    win32 = big[:, ::2].astype(np.float32)  # float32 ...
    view = big[:, ::2]  # ... and a non-contiguous float64 view
    mon = DriftMonitor(ref, tests=("ks", "mannwhitneyu"), n_clusters=2)
    a, b = mon.check(win32), mon.check(view)
    for j in range(3):
        exp = stats.ks_2samp(ref[:, j].astype(float), view[:, j]).pvalue
        assert b.result(j, "ks").pvalue == pytest.approx(exp, rel=1e-10)
        exp32 = stats.ks_2samp(ref[:, j].astype(float), win32[:, j].astype(float)).pvalue
        assert a.result(j, "ks").pvalue == pytest.approx(exp32, rel=1e-10)
    h = DriftMonitor(ref.astype(np.float16), n_clusters=None).check(view.astype(np.float16))
    assert h.status == "ok" and len(h.results) == 3


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(5, 60),
    m=st.integers(1, 60),
    d=st.integers(1, 5),
    shift=st.floats(0, 3),
    correction=st.sampled_from(["fdr", "bonferroni"]),
)
def test_report_laws(seed, n, m, d, shift, correction):
    """Per-column results equal curata.drift.ks + drift.correct; the decision is their any();
    top_columns are the drifting columns ordered by adjusted p-value; row order never matters."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, d))
    win = rng.normal(size=(m, d)) + shift * (np.arange(d) % 2)
    mon = DriftMonitor(ref, correction=correction, n_clusters=None, top_k=d)
    rep = mon.check(win)
    direct = curata.drift.ks(ref, win)
    corr = curata.drift.correct(direct.pvalue, correction, 0.05)
    np.testing.assert_array_equal([r.pvalue for r in rep.results], direct.pvalue)
    np.testing.assert_array_equal([r.adjusted_pvalue for r in rep.results], corr.adjusted)
    assert rep.drift == corr.drift == rep.feature_drift
    assert sorted(rep.top_columns) == sorted(rep.drifting_columns) == sorted(str(j) for j in np.flatnonzero(corr.reject))
    adj = [rep.result(c).adjusted_pvalue for c in rep.top_columns]
    assert adj == sorted(adj)
    again = mon.check(win[rng.permutation(m)])
    assert [r.pvalue for r in again.results] == [r.pvalue for r in rep.results]


# ------------------------------------------------------------------------------ one sort per column
_ALL_NUMERIC = ("ks", "cramervonmises", "mannwhitneyu", "wasserstein", "energy", "psi")


def _per_test(ref, win, tests, n_bins=10):
    """What each test's own function gives on the columns it can run on (NaN omitted):
    test -> (column indices, statistics, p-values or None, n_ref, n_cur)."""
    need = {"cramervonmises": 2}
    out = {}
    n_ref = (~np.isnan(ref)).sum(axis=0)
    n_cur = (~np.isnan(win)).sum(axis=0)
    for t in tests:
        ok = (n_ref >= need.get(t, 1)) & (n_cur >= need.get(t, 1))
        if t == "psi":
            ok &= np.isfinite(np.where(np.isnan(ref), 0, ref)).all(axis=0) & np.isfinite(np.where(np.isnan(win), 0, win)).all(axis=0)
        idx = np.flatnonzero(ok)
        kw = {"input": "values", "n_bins": n_bins} if t == "psi" else {}
        r = getattr(curata.drift, t)(ref[:, idx], win[:, idx], nan_policy="omit", **kw)
        p = np.asarray(r.pvalue) if t in ("ks", "cramervonmises", "mannwhitneyu") else None
        out[t] = (idx, np.asarray(r.statistic), p, np.asarray(r.n_ref), np.asarray(r.n_cur))
    return out


def _assert_report_matches_per_test(rep, ref, win, tests):
    expected = _per_test(ref, win, tests)
    d = ref.shape[1]
    for t in tests:
        idx, stat, p, nr, nc = expected[t]
        got = [rep.result(j, t) for j in range(d)]
        assert [r.status == "ok" for r in got] == [j in idx for j in range(d)], t
        ok = [r for r in got if r.status == "ok"]
        # bit for bit: the grouped call runs the same summaries and p-value code
        np.testing.assert_array_equal([r.statistic for r in ok], stat, err_msg=t)
        np.testing.assert_array_equal([r.n_ref for r in ok], nr, err_msg=t)
        np.testing.assert_array_equal([r.n_cur for r in ok], nc, err_msg=t)
        if p is None:
            assert all(math.isnan(r.pvalue) for r in got), t
        else:
            np.testing.assert_array_equal([r.pvalue for r in ok], p, err_msg=t)
        assert all(math.isnan(r.statistic) and math.isnan(r.pvalue) for r in got if r.status != "ok"), t
    # the family: every p-value test entry (NaN ones included), in report order
    fam = [r.pvalue for r in rep.results if r.test in ("ks", "cramervonmises", "mannwhitneyu")]
    corr = curata.drift.correct(np.asarray(fam), rep.correction, rep.alpha)
    np.testing.assert_array_equal(
        [r.adjusted_pvalue for r in rep.results if r.test in ("ks", "cramervonmises", "mannwhitneyu")], corr.adjusted
    )


def test_all_numeric_tests_share_one_sort_and_match_per_test_calls():
    rng = np.random.default_rng(21)
    n, m, d = 400, 150, 6
    ref = rng.normal(size=(n, d))
    win = rng.normal(size=(m, d)) + np.array([0.0, 0.6, 0.0, 0.3, 0.0, 0.0])
    ref[:, 2] = np.round(ref[:, 2] * 2)  # ties in both samples (MWU tie correction, CvM midranks)
    win[:, 2] = np.round(win[:, 2] * 2)
    ref[[3, 7, 11], 1] = np.nan  # NaN omitted in both samples
    win[[0, 4], 1] = np.nan
    win[:, 4] = np.nan
    win[17, 4] = 0.25  # one window value: ks/mwu/distances run, cramervonmises does not
    ref[5, 5] = np.inf  # sort-based tests run on infinities, the binned one does not
    mon = DriftMonitor(ref, tests=_ALL_NUMERIC, nan_policy="omit", n_clusters=None, top_k=d)
    rep = mon.check(win)
    assert rep.result(4, "cramervonmises").status == "insufficient data"
    assert rep.result(4, "ks").status == "ok" and rep.result(4, "ks").n_cur == 1
    assert rep.result(5, "psi").status == "insufficient data" and rep.result(5, "wasserstein").status == "ok"
    assert rep.result(1, "ks").nan_cur == 2 and rep.result(1, "ks").nan_ref == 3
    assert rep.n_tests == 3 * d
    _assert_report_matches_per_test(rep, ref, win, _ALL_NUMERIC)
    assert rep.result(1, "ks").drift and not rep.result(0, "ks").drift
    # order of the configured tests does not change any number
    rev = DriftMonitor(ref, tests=_ALL_NUMERIC[::-1], nan_policy="omit", n_clusters=None).check(win)
    for t in _ALL_NUMERIC:
        for j in range(d):
            a, b = rep.result(j, t), rev.result(j, t)
            assert (a.statistic == b.statistic or (math.isnan(a.statistic) and math.isnan(b.statistic))), (t, j)
            assert (a.pvalue == b.pvalue or (math.isnan(a.pvalue) and math.isnan(b.pvalue))), (t, j)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 40),
    m=st.integers(1, 40),
    d=st.integers(1, 4),
    nan_rate=st.sampled_from([0.0, 0.3, 0.9]),
    tests=st.lists(st.sampled_from(_ALL_NUMERIC), min_size=1, max_size=6, unique=True),
)
def test_grouped_numeric_tests_equal_per_test_calls(seed, n, m, d, nan_rate, tests):
    rng = np.random.default_rng(seed)
    ref = np.round(rng.normal(size=(n, d)), 1)
    win = np.round(rng.normal(size=(m, d)), 1)
    ref[rng.random(ref.shape) < nan_rate] = np.nan
    win[rng.random(win.shape) < nan_rate] = np.nan
    ref[0] = 0.0  # every column has a reference value
    mon = DriftMonitor(ref, tests=tests, nan_policy="omit", n_clusters=None)
    rep = mon.check(win)
    if rep.status == "ok":
        _assert_report_matches_per_test(rep, ref, win, tests)


def _run_without_scipy(code: str) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter where ``import scipy`` fails, as on an install of
    curata without its optional dependencies."""
    prelude = "import sys\nsys.modules['scipy'] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120)


def test_monitor_needing_scipy_fails_at_construction_without_it():
    # The default monitor clusters the reference, and its cluster share test is a chi-square.
    base = "import numpy as np, curata\nx = np.random.default_rng(0).normal(size=(200, 3))\n"
    r = _run_without_scipy(base + "curata.DriftMonitor(x)\n")
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "cluster share test" in r.stderr and "curata[drift]" in r.stderr
    r = _run_without_scipy(base + "curata.DriftMonitor(x, tests=('ks', 'cramervonmises'), n_clusters=None)\n")
    assert r.returncode != 0 and "cramervonmises" in r.stderr
    # KS alone with no clustering needs nothing beyond numpy, construction and checks included.
    r = _run_without_scipy(base + "m = curata.DriftMonitor(x, n_clusters=None)\nprint(m.check(x + 1.0).drift)\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"
