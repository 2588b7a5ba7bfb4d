"""Fixtures shared by the GPU tests (the gpu marker's skip rule lives in tests/conftest.py)."""

import os

import pytest

REQUIRE_GPU = os.environ.get("CURATA_REQUIRE_GPU", "") not in ("", "0")


@pytest.fixture
def torch_cuda():
    """The torch module, when it is installed with a usable CUDA device; else the test skips
    (fails under ``CURATA_REQUIRE_GPU=1``: a GPU run must not pass by skipping the torch paths)."""
    try:
        import torch
    except ImportError:
        if REQUIRE_GPU:
            pytest.fail("CURATA_REQUIRE_GPU=1 but torch cannot be imported", pytrace=False)
        pytest.skip("torch is not installed")
    if not torch.cuda.is_available():
        if REQUIRE_GPU:
            pytest.fail("CURATA_REQUIRE_GPU=1 but torch.cuda.is_available() is False", pytrace=False)
        pytest.skip("torch is installed without a usable CUDA device")
    return torch
