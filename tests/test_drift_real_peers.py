"""The `drift` benchmark's real-peer cases (alibi-detect, Evidently, NannyML) at tiny shapes.

The peers live only in the benchmark venv (and alibi-detect and Evidently cannot be installed next
to numpy 2 / pandas 3 at all, see benchmarks/drift.py), so the per-peer tests skip where a peer is
not importable; what always runs is that a missing or broken peer is a clean skip, never a crash,
and the bound the NannyML check relies on.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import drift as bench  # noqa: E402

PEER_MODULES = ("alibi_detect", "evidently", "nannyml")


def _importable(module):
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - a peer broken by the installed stack counts as missing
        return False
    return True


def _break_peers(monkeypatch, exc_type):
    real = importlib.import_module

    def fake(name, *args, **kwargs):
        if name.split(".")[0] in PEER_MODULES:
            raise exc_type(f"simulated: {name} unavailable")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(bench.importlib, "import_module", fake)


@pytest.mark.parametrize("exc_type", [ImportError, AttributeError])
def test_missing_or_broken_peers_are_clean_skips(monkeypatch, exc_type):
    # AttributeError: a peer that is installed but breaks on import against this numpy/pandas.
    _break_peers(monkeypatch, exc_type)
    case = bench._ks_peers_case("tiny", 300, 200, 3, 1)
    names = [c.name for c in case.contenders]
    assert names[:2] == ["curata", "scipy loop"]
    peers = case.contenders[2:]
    assert len(peers) == 4
    for c in peers:
        assert c.fn is None
        assert "simulated" in c.skip_reason and "BENCH_DEPS" in c.skip_reason, c.skip_reason
    check = case.check()
    assert check.status == "ok", check.detail  # scipy alone, to 1e-12
    assert "scipy loop" in check.detail

    mmd = bench._mmd_peers_case(120, 100, 4, 5)
    assert [c.fn is None for c in mmd.contenders] == [False, True, True, True]
    assert bench._mmd_peers_case(120, 100, 4, 5, with_alibi=False, with_report=False).contenders[1].skip_reason == bench.ALIBI_MMD_TOO_SLOW
    check = mmd.check()
    assert check.status == "unchecked" and "no peer" in check.detail


def test_skip_reason_names_the_version_conflict(monkeypatch):
    _break_peers(monkeypatch, ImportError)
    case = bench._ks_peers_case("tiny", 50, 40, 2, 1)
    reasons = {c.name: c.skip_reason for c in case.contenders if c.fn is None}
    assert "numpy<2" in reasons["alibi-detect KSDrift"]
    assert "pandas 3" in reasons["Evidently DataDriftPreset(ks)"]


def _gap_reference(ref, cur, bins):
    """max over bin edges of |F_ref - F_cur| just below each inner/right edge, as a binned KS does."""
    stats = []
    for j in range(ref.shape[1]):
        edges = np.linspace(ref[:, j].min(), ref[:, j].max(), bins + 1)
        fr = np.searchsorted(np.sort(ref[:, j]), edges[1:], side="left") / ref.shape[0]
        fc = np.searchsorted(np.sort(cur[:, j]), edges[1:], side="left") / cur.shape[0]
        fr[-1], fc[-1] = 1.0, np.mean(cur[:, j] <= edges[-1])
        stats.append(np.max(np.abs(fr - fc)))
    return np.array(stats)


@pytest.mark.parametrize("seed", range(5))
def test_binned_ks_lies_within_the_bin_share_bound(monkeypatch, seed):
    # The NannyML check accepts curata - bound <= NannyML <= curata; the bound must hold for any
    # statistic evaluated at the bin edges. Few bins make the bound bite.
    from scipy import stats

    monkeypatch.setattr(bench, "NANNYML_EXACT_BELOW", 100)
    monkeypatch.setattr(bench, "NANNYML_BINS", 12)
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(400, 6))
    cur = rng.normal(size=(300, 6)) * 1.3 + 0.2
    cur[:, 0] = np.round(cur[:, 0])  # ties
    exact = np.array([stats.ks_2samp(ref[:, j], cur[:, j]).statistic for j in range(6)])
    binned = _gap_reference(ref, cur, 12)
    gap = bench.nannyml_ks_gap(ref, cur)
    assert np.all(binned <= exact + 1e-12)
    assert np.all(exact - binned <= gap + 1e-12)
    assert np.all(gap > 0) and np.all(gap <= 1)
    monkeypatch.setattr(bench, "NANNYML_EXACT_BELOW", 1000)
    assert np.all(bench.nannyml_ks_gap(ref, cur) == 0)  # exact statistic below the threshold


@pytest.mark.parametrize("module", PEER_MODULES)
@pytest.mark.parametrize("n", [300, 10_000])
def test_ks_real_peer_case_tiny(module, n):
    if not _importable(module):
        pytest.skip(f"{module} not importable here (benchmark-only peer)")
    d = 2 if n >= 10_000 else 3  # 10k rows: NannyML's binned statistic path
    case = bench._ks_peers_case("tiny", n, n - 37, d, 1)
    peers = [c for c in case.contenders if c.name.lower().startswith(module.split("_")[0])]
    assert peers and all(c.fn is not None for c in peers)
    check = case.check()
    assert check.status in ("ok", "note"), check.detail
    for c in peers:
        assert c.name in check.detail
        out = c.fn()
        assert out is not None


@pytest.mark.parametrize("module", ("alibi_detect", "evidently"))
def test_mmd_real_peer_case_tiny(module):
    if not _importable(module):
        pytest.skip(f"{module} not importable here (benchmark-only peer)")
    case = bench._mmd_peers_case(150, 120, 8, 10)
    peers = [c for c in case.contenders if c.name.lower().startswith(module.split("_")[0])]
    assert peers and all(c.fn is not None for c in peers)
    check = case.check()
    assert check.status == "note", check.detail
    for c in peers:
        assert c.name.split()[0] in check.detail


def _fake(name, fn):
    return bench.Contender(name, fn)


def test_ks_check_accepts_faithful_peers_and_catches_wrong_ones(monkeypatch):
    # Stand-ins built from curata's own results (no peer needed): what each peer is documented to
    # return passes; a small error in any of them is a mismatch.
    from curata import drift
    _break_peers(monkeypatch, ImportError)
    monkeypatch.setattr(bench, "NANNYML_EXACT_BELOW", 100)
    n, m, d = 400, 300, 4
    case = bench._ks_peers_case("tiny", n, m, d, 1)
    ref, cur = bench.make_data(n, m, d)
    r = drift.ks(ref, cur)
    asymp = drift.ks(ref, cur, method="asymp").pvalue
    # a binned statistic at the edges of NANNYML_BINS bins, evaluated the way NannyML's docs describe
    binned = _gap_reference(ref, cur, bench.NANNYML_BINS)

    def check_with(alibi=None, evidently=None, nannyml=None):
        fakes = [_fake("alibi-detect KSDrift", alibi), _fake("Evidently DataDriftPreset(ks)", evidently),
                 _fake("NannyML KS (calculate)", nannyml)]
        case.contenders[2:] = [f for f in fakes if f.fn is not None]
        return case.check()

    good = dict(alibi=lambda: (r.statistic.astype(np.float32), asymp.astype(np.float32)),
                evidently=lambda: r.pvalue.copy(), nannyml=lambda: binned)
    ok = check_with(**good)
    assert ok.status == "note", ok.detail  # alibi's asymptotic p-values at an exact-p size, NannyML binned
    for c in ("alibi-detect", "Evidently", "NannyML"):
        assert c in ok.detail
    bad = [
        dict(good, alibi=lambda: (r.statistic.astype(np.float32), (asymp * (1 + 1e-5)).astype(np.float32))),
        dict(good, alibi=lambda: (r.statistic.astype(np.float32), r.pvalue.astype(np.float32) * 1.001)),
        dict(good, evidently=lambda: r.pvalue * (1 + 1e-9)),
        dict(good, nannyml=lambda: r.statistic + 1e-6),  # above the exact statistic
        dict(good, nannyml=lambda: r.statistic - bench.nannyml_ks_gap(ref, cur) - 1e-6),  # below the bound
    ]
    for kwargs in bad:
        assert check_with(**kwargs).status == "mismatch"
