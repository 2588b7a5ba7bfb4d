"""The CUDA extension on any machine: it imports when built, reports devices (0 with a reason on a
machine without a GPU or driver) and fails cleanly instead of crashing; build_info says what it
was compiled for. GPU behaviour itself is tested in tests/gpu/."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

import curata
from curata import _backend
from curata import boxes as B


def _built_with_cuda() -> bool:
    return bool(curata.build_info()["cuda_built"])


def test_build_info_reports_cuda_toolkit_and_archs():
    info = curata.build_info()
    if not info["cuda_built"]:
        assert info["cuda_module"] is False and info["cuda"] is None and info["cuda_archs"] is None
        pytest.skip("curata was built without CUDA (CURATA_CUDA=OFF or no nvcc)")
    assert info["cuda_module"] is True, f"_cuda was built but does not import: {_backend.CUDA_REASON}"
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", info["cuda"]), info["cuda"]
    arch = r"\d+(-real|-virtual)?"
    assert re.fullmatch(rf"{arch}([,;]{arch})*", info["cuda_archs"]), info["cuda_archs"]


def test_cuda_module_reports_devices_with_a_reason():
    if not _built_with_cuda():
        pytest.skip("curata was built without CUDA")
    from curata import _cuda

    count, reason = _cuda.device_report()
    assert count == _cuda.device_count() == _backend.CUDA_DEVICE_COUNT
    assert _cuda.runtime_version() > 0  # static cudart answers without a driver
    if count == 0:
        assert reason, "zero devices must come with a reason"
        assert curata.cuda_unavailable_reason() == reason == _backend.CUDA_REASON
        assert [d["type"] for d in curata.devices()] == ["cpu"]
    else:
        assert reason == "" and curata.cuda_unavailable_reason() == ""
        assert [d["type"] for d in curata.devices()].count("cuda") == count


def test_launchers_validate_arguments_before_touching_a_device():
    if not _built_with_cuda():
        pytest.skip("curata was built without CUDA")
    from curata import _cuda

    syncs_before = _cuda.host_sync_count()
    with pytest.raises(ValueError, match="n must be >= 0"):
        _cuda.batched_nms(0, 0, -1, 0, 0, 0, 0, 0.5, None, -1, False, 0, False, 0, 0)
    with pytest.raises(ValueError, match=r"iou_threshold must be in \[0, 1\]"):
        _cuda.batched_nms(0, 0, 0, 0, 0, 0, 0, 1.5, None, -1, False, 0, False, 0, 0)
    with pytest.raises(ValueError, match="n_classes >= 1"):
        _cuda.postprocess_padded(0, 1, 4, 10, 0.25, 0.45, None, False, False, 300, 30000, 0, 0, 0, 0, 0, False, 0, 0)
    with pytest.raises(ValueError, match="n_classes >= 1"):
        _cuda.postprocess_workspace_bytes(1, 4, 10, 0.25, 0.45, None, False, False, 300, 30000, False, 0)
    with pytest.raises(ValueError, match="max_det and max_nms must be >= 0"):
        _cuda.postprocess_workspace_bytes(1, 6, 10, 0.25, 0.45, None, False, False, -1, 30000, False, 0)
    with pytest.raises(ValueError, match="lower max_nms"):  # B * K slots must fit a 32-bit index
        _cuda.postprocess_workspace_bytes(100000, 204, 1000, 0.25, 0.45, None, False, True, 300, 30000, False, 0)
    # argument errors never wait for the device (the counter of host waits answers without one)
    assert _cuda.host_sync_count() == syncs_before
    with pytest.raises(ValueError, match="negative box count"):
        _cuda.pairwise_iou(0, -1, 0, 0, 0, False, False, 0, 0)


def test_launchers_raise_runtime_error_without_a_device():
    if not _built_with_cuda():
        pytest.skip("curata was built without CUDA")
    if _backend.HAS_CUDA:
        pytest.skip("a CUDA device is usable here")
    from curata import _cuda

    # Empty work, but the launcher still has to select the device: a clean error, not a crash.
    with pytest.raises(RuntimeError, match="CUDA error"):
        _cuda.pairwise_iou(0, 0, 0, 0, 0, False, False, 0, 0)
    with pytest.raises(RuntimeError, match="CUDA error"):
        _cuda.batched_nms(0, 0, 0, 0, 0, 0, 0, 0.5, None, -1, False, 0, False, 0, 0)
    with pytest.raises(RuntimeError, match="CUDA error"):
        _cuda.postprocess_workspace_bytes(2, 6, 10, 0.25, 0.45, None, False, False, 300, 30000, False, 0)
    # an empty batch needs no device work, but the padded launcher still selects the device
    with pytest.raises(RuntimeError, match="CUDA error"):
        _cuda.postprocess_padded(0, 0, 6, 10, 0.25, 0.45, None, False, False, 300, 30000, 0, 0, 0, 0, 0, False, 0, 0)


def test_device_cuda_without_a_gpu_says_why():
    if _backend.HAS_CUDA:
        pytest.skip("a CUDA device is usable here")
    boxes = np.array([[0, 0, 1, 1]], np.float32)
    with pytest.raises(RuntimeError, match="needs a CUDA device") as error:
        B.iou(boxes, boxes, device="cuda")
    assert _backend.CUDA_REASON in str(error.value)
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        B.nms(boxes, np.ones(1, np.float32), device="cuda")


def test_cuda_ops_import_leaves_torch_and_cupy_alone():
    code = (
        "import sys, curata, curata._cuda_ops; "
        "assert 'torch' not in sys.modules and 'cupy' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_batched_nms_retries_once_after_freeing_the_frameworks_cache(monkeypatch):
    """batched_nms's workspace comes from CUDA's stream-ordered pool, which cannot use memory that
    torch's caching allocator keeps reserved: an allocation failure frees that cache and launches
    once more (only for allocation failures, only once). Runs the real _cuda_ops plumbing with
    torch CPU tensors posing as device arrays and a stand-in for the launcher."""
    torch = pytest.importorskip("torch")
    from curata import _array, _cuda_ops

    def device_array(x, name, *, dtypes=_array.FLOAT_DTYPES):
        t = x.contiguous()
        return _array.DeviceArray(t, "torch", t.data_ptr(), tuple(t.shape), np.dtype(str(t.dtype)[6:]), 0, 0)

    def device_empty(ref, shape, dtype):
        t = torch.full(tuple(shape), -7, dtype=getattr(torch, np.dtype(dtype).name))
        return _array.DeviceArray(t, "torch", t.data_ptr(), tuple(shape), np.dtype(dtype), 0, 0)

    class Launcher:
        def __init__(self, failures, message):
            self.failures, self.message, self.calls = failures, message, 0

        def batched_nms(self, boxes, scores, n, *args):
            self.calls += 1
            if self.calls <= self.failures:
                raise RuntimeError(self.message)
            written[0][:2] = torch.tensor([1, 0])  # the output buffer of this call
            return 2, [0], [2]

    emptied = []
    monkeypatch.setattr(_array, "device_array", device_array)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0]])
    scores = torch.tensor([0.5, 0.9])
    frame = _cuda_ops._Frame("torch", 0, False)
    oom = "curata: could not allocate 2500000000 bytes of GPU memory for the NMS suppression mask: out of memory"
    written = [None]

    def empty_and_remember(ref, shape, dtype):
        d = device_empty(ref, shape, dtype)
        written[0] = d.obj
        return d

    monkeypatch.setattr(_array, "device_empty", empty_and_remember)
    launcher = Launcher(1, oom)
    monkeypatch.setattr(_backend, "_cuda", launcher)
    keep, n_keep, ids, counts = _cuda_ops._run_nms(frame, boxes, scores, None, None, None, 0, (0.5, None, None), False)
    assert launcher.calls == 2 and emptied == [1] and n_keep == 2
    assert keep[:2].tolist() == [1, 0]
    # a second allocation failure is the caller's error
    launcher = Launcher(2, oom)
    monkeypatch.setattr(_backend, "_cuda", launcher)
    with pytest.raises(RuntimeError, match="could not allocate"):
        _cuda_ops._run_nms(frame, boxes, scores, None, None, None, 0, (0.5, None, None), False)
    assert launcher.calls == 2
    # any other failure is not retried
    launcher = Launcher(1, "CUDA error cudaErrorIllegalAddress: an illegal memory access was encountered")
    monkeypatch.setattr(_backend, "_cuda", launcher)
    with pytest.raises(RuntimeError, match="illegal"):
        _cuda_ops._run_nms(frame, boxes, scores, None, None, None, 0, (0.5, None, None), False)
    assert launcher.calls == 1
