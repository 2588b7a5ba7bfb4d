"""End-to-end run of tests/gpu/test_boxes_gpu.py without a GPU: torch CPU tensors pose as CUDA
tensors and curata._cuda is replaced by the host-simulated kernels (PYMODULE=1 build.sh), so the
real python/curata/_cuda_ops.py, bindings and kernel code run. Only the device/stream plumbing of
_array.py and the frameworks is stubbed. Usage: run_gpu_tests.py [NAME_FILTER ...]"""
import contextlib, glob, importlib.util, inspect, itertools, pathlib, sys, time
import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("_cuda", glob.glob(str(ROOT / "build/cuda_sim/py/_cuda*.so"))[0])
sim = importlib.util.module_from_spec(spec); spec.loader.exec_module(sim)

import curata
from curata import _array, _backend, _cuda_ops
_backend._cuda = sim
_backend.HAS_CUDA = True
_backend.CUDA_DEVICE_COUNT = 1
_array.on_cuda = lambda x: _array.kind_of(x) in ("torch", "cupy")
_cuda_ops._device_index = lambda x: 0
_cuda_ops._Frame.active = lambda self: contextlib.nullcontext()
_cuda_ops._Frame.upload = lambda self, a: torch.from_numpy(np.require(a, requirements=["C", "W"]))
def finish(self, obj, reference):
    if not self.host_input: return obj
    return _array.like(obj.numpy(), reference)
_cuda_ops._Frame.finish = finish
def of(cls, x):
    if _array.on_cuda(x): return cls("torch", 0, False)
    return cls("torch", 0, True)
_cuda_ops._Frame.of = classmethod(of)

def device_array(x, name, *, dtypes=_array.FLOAT_DTYPES):
    t = x.detach()
    if not t.is_contiguous(): t = t.contiguous()
    dtype = np.dtype(str(t.dtype).removeprefix("torch."))
    if dtype not in dtypes:
        raise TypeError(f"{name} must have dtype in {[str(d) for d in dtypes]}, got {t.dtype}")
    return _array.DeviceArray(t, "torch", t.data_ptr(), tuple(t.shape), dtype, 0, 0)
def device_empty(ref, shape, dtype):
    dtype = np.dtype(dtype)
    t = torch.full(tuple(shape), 77, dtype=getattr(torch, dtype.name))  # garbage, not zeros
    return _array.DeviceArray(t, "torch", t.data_ptr(), tuple(shape), dtype, 0, 0)
_array.device_array = device_array
_array.device_empty = device_empty

sys.path.insert(0, str(ROOT / "tests/gpu"))
import test_boxes_gpu as T

class FakeTorchFw:
    name = "torch-sim"
    def to(self, a): return torch.from_numpy(np.array(a, copy=True))
    def host(self, x):
        assert isinstance(x, torch.Tensor), type(x)
        return x.numpy()

only = sys.argv[1:]
ran = failed = 0
for name, fn in inspect.getmembers(T, inspect.isfunction):
    if not name.startswith("test_") or (only and not any(o in name for o in only)): continue
    if name in ("test_runs_on_the_callers_torch_stream", "test_a_device_array_framework_is_installed"): continue
    grid = {}
    for m in getattr(fn, "pytestmark", []):
        if m.name == "parametrize":
            grid[[a.strip() for a in m.args[0].split(",")][0]] = list(m.args[1])
    sig = inspect.signature(fn).parameters
    keys = [k for k in sig if k in grid]
    for combo in itertools.product(*[grid[k] for k in keys]):
        kwargs = dict(zip(keys, combo))
        if "fw" in sig: kwargs["fw"] = FakeTorchFw()
        ran += 1
        t0 = time.time()
        try:
            fn(**kwargs)
        except BaseException as e:
            if type(e).__name__ == "Skipped":
                print("SKIP", name, e); continue
            failed += 1
            print("FAIL", name, {k: v for k, v in kwargs.items() if k != "fw"}, type(e).__name__, str(e)[:400], flush=True)
        dt = time.time() - t0
        if dt > 20: print(f"slow {name} {kwargs} {dt:.0f}s", flush=True)
print("ran", ran, "failed", failed)
sys.exit(1 if failed else 0)
