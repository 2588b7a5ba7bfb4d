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
