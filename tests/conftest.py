"""Shared test configuration.

GPU tests carry ``@pytest.mark.gpu``. Without a usable CUDA device they skip with the reason;
``CURATA_REQUIRE_GPU=1`` turns that skip into a failure so a broken GPU build cannot pass by
skipping.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

import curata
from curata import _backend

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REQUIRE_GPU = os.environ.get("CURATA_REQUIRE_GPU", "") not in ("", "0")


def pytest_collection_modifyitems(config, items):
    if _backend.HAS_CUDA or REQUIRE_GPU:
        return
    reason = f"no usable CUDA device: {_backend.CUDA_REASON}"
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # A failure in setup, before any fixture runs (a usefixtures marker added at collection time
    # would come too late: the fixture closure is already fixed, and the test would pass).
    if REQUIRE_GPU and not _backend.HAS_CUDA and "gpu" in item.keywords:
        pytest.fail(f"CURATA_REQUIRE_GPU=1 but no usable CUDA device: {_backend.CUDA_REASON}", pytrace=False)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_report_header(config):
    info = curata.build_info()
    return (
        f"curata {info['version']}: openmp={info['openmp']} cuda_module={info['cuda_module']} "
        f"cuda={info['cuda']} archs={info['cuda_archs']} threads={curata.get_num_threads()} "
        f"gpu={'yes' if _backend.HAS_CUDA else 'no (' + _backend.CUDA_REASON + ')'}"
    )
