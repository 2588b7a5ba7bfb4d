"""Runs the torch-path GPU tests (tests/gpu: search, index, k-means, k-center, drift, ensemble)
without a GPU: torch CPU tensors pose as CUDA tensors (``is_cuda`` is True, ``.cuda()`` and
``.to("cuda")`` stay on the CPU), so the public API routes them to the device code, which then
runs on CPU tensors. This checks the tests' own logic (expectations, tolerances, argument
plumbing) before a GPU session spends time on them; it cannot show anything CUDA-specific
(cuBLAS/TF32 rounding, 16-bit GEMMs: the device code takes its CPU branches, so tests asserting
the CUDA GEMM mode, peak CUDA memory or CuPy are deselected). The drift tests compare result
devices with ``torch.device("cuda", ...)``: they run from a copy whose ``cuda`` fixture returns
the CPU device.

Usage: .venv/bin/python tools/cuda_sim/run_torch_gpu_tests.py [pytest args]
"""

import pathlib
import sys
import tempfile

import pytest
import torch

from curata import _backend, _index_device

ROOT = pathlib.Path(__file__).resolve().parents[2]

_backend.HAS_CUDA = True
torch.cuda.is_available = lambda: True
torch.cuda.current_device = lambda: 0
torch.cuda.synchronize = lambda *a, **k: None
torch.Tensor.cuda = lambda self, *a, **k: self
torch.Tensor.is_cuda = property(lambda self: self.device.type == "cpu")
_to = torch.Tensor.to


def _cpu(x):
    is_cuda = (isinstance(x, str) and x.startswith("cuda")) or (isinstance(x, torch.device) and x.type == "cuda")
    return "cpu" if is_cuda else x


torch.Tensor.to = lambda self, *a, **k: _to(self, *(_cpu(x) for x in a), **{n: _cpu(v) for n, v in k.items()})
_index_device.torch_device_for = lambda name: torch.device("cpu")

with tempfile.TemporaryDirectory() as tmp:
    drift = (ROOT / "tests/gpu/test_drift_gpu.py").read_text()
    fixture = 'return torch.device("cuda", torch.cuda.current_device())'
    assert fixture in drift, "tests/gpu/test_drift_gpu.py changed its cuda fixture: update this script"
    (pathlib.Path(tmp) / "test_drift_gpu_on_cpu.py").write_text(drift.replace(fixture, 'return torch.device("cpu")'))
    files = [str(ROOT / "tests/gpu" / f) for f in ("test_search_gpu.py", "test_index_gpu.py", "test_kmeans_gpu.py",
                                                    "test_kcenter_gpu.py", "test_ensemble_gpu.py")]
    deselect = "not cupy and not peak_memory and not 16bit_base"
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestUnknownMarkWarning",
                          "-k", deselect, *files, str(pathlib.Path(tmp) / "test_drift_gpu_on_cpu.py"), *sys.argv[1:]]))
