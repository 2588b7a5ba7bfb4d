"""The array boundary: numpy, torch and CuPy in, the same kind out.

Every public op goes through these helpers, so the rules live in one place:

* numpy arrays, and anything ``np.asarray`` accepts, run on the CPU path. Non-contiguous or
  wrongly typed input is converted once; float16 is computed in float32.
* torch CPU tensors are viewed as numpy without a copy (``Tensor.numpy()``), results come back as
  torch tensors sharing the result's memory.
* torch CUDA tensors and CuPy arrays go to the CUDA path as raw device pointers on the caller's
  current stream (zero copy), and results are allocated by the same framework on the same device.

torch and CuPy are imported lazily: ``import curata`` never imports them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _torch():
    return sys.modules.get("torch")


def _cupy():
    return sys.modules.get("cupy")


def kind_of(x: Any) -> str:
    """'torch', 'cupy' or 'numpy' (anything else is treated as array-like for numpy)."""
    torch = _torch()
    if torch is not None and isinstance(x, torch.Tensor):
        return "torch"
    cupy = _cupy()
    if cupy is not None and isinstance(x, cupy.ndarray):
        return "cupy"
    return "numpy"


def on_cuda(x: Any) -> bool:
    """True for torch CUDA tensors and CuPy arrays."""
    kind = kind_of(x)
    if kind == "torch":
        return bool(x.is_cuda)
    return kind == "cupy"


def check_dense(x: Any, name: str) -> None:
    """TypeError naming ``name`` for a nested or sparse torch tensor (no-op for anything else).

    torch's own errors for these name neither the argument nor the rule; a nested tensor even
    fails on ``.shape`` with RuntimeError("Internal error ...")."""
    if kind_of(x) != "torch":
        return
    if x.is_nested:
        raise TypeError(f"{name} must be a dense tensor, got a nested tensor")
    if x.layout != _torch().strided:
        raise TypeError(f"{name} must be a dense tensor, got layout {x.layout}")


def _to_numpy_view(x: Any, name: str) -> np.ndarray:
    kind = kind_of(x)
    if kind == "torch":
        if x.is_cuda:
            return x.detach().cpu().numpy()
        if x.device.type != "cpu":
            # meta, mps, xpu...: torch's own error names neither the argument nor the fix.
            raise TypeError(f"{name} must be a CPU or CUDA tensor, got device {x.device.type}")
        if x.dtype.is_complex:
            raise TypeError(f"{name} must be a real array, got torch dtype {x.dtype}")
        torch = _torch()
        check_dense(x, name)
        if x.dtype == torch.bfloat16:
            x = x.float()  # numpy has no bfloat16
        try:
            return x.detach().resolve_conj().resolve_neg().numpy()
        except TypeError as exc:  # float8, quantized, ...
            raise TypeError(f"{name} has torch dtype {x.dtype}, which numpy cannot hold: {exc}") from None
    if kind == "cupy":
        return x.get()
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be array-like, got {type(x).__name__}: {exc}") from None


def float_array(
    x: Any,
    name: str,
    *,
    shape: Sequence[int | None] | None = None,
    dtype: np.dtype | None = None,
    finite_cast: bool = False,
) -> np.ndarray:
    """A C-contiguous float32/float64 host array for the core library, converted at most once.

    Parameters
    ----------
    x : array-like, torch tensor or CuPy array
    name : str
        Argument name used in error messages.
    shape : sequence of int or None, optional
        Expected shape; ``None`` entries match any length.
    dtype : numpy dtype, optional
        Force this compute dtype (float32 or float64). By default float64 stays float64, float32
        stays float32, float16/bfloat16 and integer input become float32 / float64 respectively.
    finite_cast : bool
        With a forced float32 ``dtype``: finite values beyond the float32 range (float64 input
        above ~3.4e38) raise ``ValueError`` naming ``name`` instead of becoming infinity (which
        the caller's finiteness check would then report as "NaN or infinity" the user never had).
        Free: numpy flags the overflow during the one conversion.
    """
    a = _to_numpy_view(x, name)
    if a.dtype == np.bool_ or a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must have a real floating or integer dtype, got {a.dtype}")
    if shape is not None:
        check_shape(a, name, shape)
    if dtype is None:
        native = a.dtype.newbyteorder("=")  # a big-endian float32 is still float32
        if native in FLOAT_DTYPES:
            dtype = native
        elif a.dtype.kind == "f" and a.dtype.itemsize < 4:
            dtype = np.dtype(np.float32)
        else:
            dtype = np.dtype(np.float64)
    # np.ascontiguousarray returns at least 1-D: keep a 0-d input 0-d, so that a later shape check
    # reports what the caller passed and a scalar is never taken for a length-1 vector.
    if finite_cast:
        with np.errstate(over="raise"):
            try:
                return np.ascontiguousarray(a, dtype=dtype).reshape(a.shape)
            except FloatingPointError:
                raise ValueError(
                    f"{name} holds finite values beyond the {np.dtype(dtype).name} range "
                    f"(|v| > {float(np.finfo(dtype).max):.4g}), got {a.dtype} input; the computation is in {np.dtype(dtype).name}"
                ) from None
    return np.ascontiguousarray(a, dtype=dtype).reshape(a.shape)


def torch_device_path(*arrays: Any) -> bool:
    """True when an argument lives on a GPU (torch CUDA tensor or CuPy array) and torch can be
    imported: the torch device paths (search, k-center, k-means, drift) take such input; without
    torch, CuPy input is copied to the host for the CPU path."""
    if not any(on_cuda(a) for a in arrays):
        return False
    try:
        import torch  # noqa: F401,PLC0415  (GPU input only; never at import time)
    except ImportError:
        return False
    return True


def torch_tensor(x: Any, name: str, *, host_dtype: np.dtype | None = None, device: Any = None) -> Any:
    """A torch tensor for the device paths (torch must be importable): torch tensors are detached
    (no copy), CuPy arrays viewed through DLPack (zero copy), anything else converted on the host
    (``host_dtype`` forces float32/float64 via :func:`float_array`; ``None`` keeps the real numeric
    dtype); moved to ``device`` if given. bool and complex input raise ``TypeError``."""
    import torch  # noqa: PLC0415  (device paths only)

    kind = kind_of(x)
    if kind == "torch":
        t = x.detach()
    elif kind == "cupy":
        t = torch.from_dlpack(x)
    elif host_dtype is not None:
        t = torch.from_numpy(float_array(x, name, dtype=host_dtype))
    else:
        a = _to_numpy_view(x, name)
        if a.dtype == np.bool_ or a.dtype.kind not in "fiu":
            raise TypeError(f"{name} must have a real floating or integer dtype, got {a.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("=")))
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must have a real floating or integer dtype, got {t.dtype}")
    if device is not None and t.device != device:
        t = t.to(device)
    return t


def torch_matrix(x: Any, name: str, *, host_dtype: np.dtype | None = None) -> Any:
    """:func:`torch_tensor` of shape (N, D) with D >= 1, else ``ValueError`` naming ``name``."""
    t = torch_tensor(x, name, host_dtype=host_dtype)
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(t.shape)}")
    if t.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column, got shape {tuple(t.shape)}")
    return t


def like_torch(t: Any, reference: Any) -> Any:
    """A torch result as the array kind and device of ``reference`` (CuPy through DLPack, torch on
    the reference's device, numpy on the host)."""
    kind = kind_of(reference)
    if kind == "cupy":
        return sys.modules["cupy"].from_dlpack(t)
    if kind == "torch":
        return t if t.device == reference.device else t.to(reference.device)
    return t.cpu().numpy()


def int_array(x: Any, name: str, *, length: int | None = None) -> np.ndarray:
    """A C-contiguous int64 vector; floats are accepted only if they hold integers."""
    a = _to_numpy_view(x, name)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(a.shape)}")
    if length is not None and a.shape[0] != length:
        raise ValueError(f"{name} must have length {length}, got {a.shape[0]}")
    if a.dtype.kind in "iu":
        big_unsigned = a.dtype.kind == "u" and a.dtype.itemsize == 8  # uint64 in either byte order
        if big_unsigned and a.size and a.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} has values above the int64 range")
        return np.ascontiguousarray(a, dtype=np.int64)
    if a.dtype.kind == "f":
        if a.size and not (np.all(np.isfinite(a)) and np.all(a == np.round(a))):
            raise ValueError(f"{name} must hold integers, got non-integral or non-finite values")
        # [-2**63, 2**63) exactly: numpy's cast of anything outside is undefined (INT64_MIN on x86).
        if a.size and not (np.all(a >= -(2.0**63)) and np.all(a < 2.0**63)):
            raise ValueError(
                f"{name} must hold integers in the int64 range, got values from {a.min()} to {a.max()}"
            )
        return np.ascontiguousarray(a, dtype=np.int64)
    if a.dtype == np.bool_ and a.size == 0:
        return np.zeros(0, dtype=np.int64)
    raise TypeError(f"{name} must have an integer dtype, got {a.dtype}")


def check_shape(a: Any, name: str, shape: Sequence[int | None]) -> None:
    got = tuple(a.shape)
    ok = len(got) == len(shape) and all(s is None or s == g for s, g in zip(shape, got))
    if not ok:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {want}, got {got}")


def check_probability(value: Any, name: str, *, allow_none: bool = False) -> float | None:
    """A threshold in [0, 1] as a Python float."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1], got {type(value).__name__}")
    v = float(value)
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return v


def real_number(value: Any, name: str, what: str = "a real number") -> float:
    """``value`` as a float: ``TypeError`` unless it is a real number (bools refused); a Python int
    beyond the float range becomes +-inf instead of raising OverflowError. NaN passes through."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def check_count(value: Any, name: str, *, allow_none: bool = True, minimum: int = 0) -> int | None:
    """A non-negative integer option such as max_det (None = no limit)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > _INT64_MAX:  # the core takes int64; pybind11's own error would be a signature dump
        raise ValueError(f"{name} must be <= {_INT64_MAX}, got {value}")
    return int(value)


_INT64_MAX = int(np.iinfo(np.int64).max)


def unique_labels(a: np.ndarray, what: str, **kwargs: Any) -> Any:
    """``np.unique(a, **kwargs)`` for label arrays: object labels that cannot be sorted together
    (str mixed with int, None) raise a ``TypeError`` naming ``what`` and the types found, instead
    of numpy's "'<' not supported between instances of 'str' and 'int'"."""
    try:
        return np.unique(a, **kwargs)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in a.tolist()})
        raise TypeError(
            f"{what} must be mutually orderable (all numbers or all strings, no None), got a mix of {kinds}"
        ) from None


def check_seed(value: Any, name: str = "seed", *, maximum: int | None = None) -> int:
    """A random seed as a Python int >= 0 (``numpy.random.default_rng`` rejects negative seeds
    with a message that does not name the argument, and ``None`` would silently mean "random",
    breaking the same-seed-same-result promise). ``maximum``: inclusive upper bound, for seeds
    handed to APIs that need one (scikit-learn's ``random_state`` < 2**32)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    v = int(value)
    if v < 0 or (maximum is not None and v > maximum):
        bound = f"in [0, {maximum}]" if maximum is not None else ">= 0"
        raise ValueError(f"{name} must be {bound}, got {v}")
    return v


def check_finite_rows(a: np.ndarray, name: str) -> None:
    """ValueError naming the first row of a 2-D array that holds NaN or infinity."""
    bits = _FLOAT_BITS.get(a.dtype)
    if bits is not None and a.ndim == 2 and a.flags.c_contiguous:
        # One pass over the bit patterns in the C++ core (AVX2), no (N, D) bool temporary.
        from . import _core  # noqa: PLC0415  (_core imports nothing from here; kept lazy anyway)

        row = _core.first_nonfinite_row(a.view(bits))
    else:
        bad = ~np.isfinite(a).all(axis=1)
        row = int(np.argmax(bad)) if bad.any() else -1
    if row >= 0:
        raise ValueError(f"{name} must be finite, got NaN or infinity in row {row}")


def cosine_safe_rows(a: np.ndarray) -> np.ndarray:
    """Float32 (N, D) rows rescaled so float32 cosine arithmetic neither overflows nor underflows.

    The squared norm of a float32 row overflows to infinity once its values pass about 1e19 and
    underflows to 0 below about 1e-19, which turned such rows into "similarity -inf" or "zero
    vector" rows. Cosine does not depend on a row's scale, so rows whose largest ``|value|`` lies
    outside ``[2**-50, 2**50]`` are multiplied by a power of two that brings it into [0.5, 1): exact
    for every value down to 2**-126 times the row's largest (smaller ones land on the subnormal grid
    and may round), and every float32 product, sum, norm and quotient of the cosine scales by the
    same power of two, so the cosines are bit for bit those of the unscaled rows wherever those
    neither overflowed nor fell into the subnormal range (below about 1e-38: there, for example,
    ``[2**60, 3 * 2**-91]`` against ``[0, 1]`` gives 0 rescaled where float32 gives 1e-45).
    ``a`` itself is never modified (the rows are rescaled in a copy, made only when a row needs
    it). NaN/inf rows are left as they are for the caller's finiteness check. The rule and the
    rescaling are the C++ core's (``curata::search::cosine_row_needs_scale``), which
    ``search.knn`` also applies to its base while computing the norms. Cost: one vectorised pass
    over the bit patterns and 4 N bytes.
    """
    if a.size == 0 or a.dtype != np.float32 or not a.flags.c_contiguous or a.ndim != 2:
        return a
    from . import _core  # noqa: PLC0415  (lazy, as in check_finite_rows)

    scaled = _core.cosine_safe_rows(a)
    return a if scaled is None else scaled


def power_of_two_scale(a: Any) -> float:
    """1.0 when float32 squares and dot products of the values of ``a`` (a numpy array or torch
    tensor) neither overflow nor underflow (largest magnitude in ``[2^-40, 2^40]``, zero, non-finite
    or ``a`` empty), else the power of two that maps the largest magnitude into [0.5, 1). For
    scale-invariant computations (farthest-first, k-means): multiplying by it is exact. Two
    reductions over ``a`` (max and min, no temporary)."""
    count = a.size if isinstance(a, np.ndarray) else a.numel()
    if count == 0:
        return 1.0
    largest = max(float(a.max()), -float(a.min()))
    if not np.isfinite(largest) or largest == 0.0 or 2.0**-40 <= largest <= 2.0**40:
        return 1.0
    return float(np.ldexp(1.0, -int(np.frexp(largest)[1])))


# Native float32 / float16 and the unsigned integers of their bit patterns.
_FLOAT_BITS = {np.dtype(np.float32): np.uint32, np.dtype(np.float16): np.uint16}


def like(result: np.ndarray, reference: Any) -> Any:
    """Return a host result as the array kind (and device) of ``reference``."""
    kind = kind_of(reference)
    if kind == "torch":
        torch = _torch()
        t = torch.from_numpy(np.ascontiguousarray(result))
        return t.to(reference.device) if reference.is_cuda else t
    if kind == "cupy":
        return _cupy().asarray(result)
    return result


def like_float(result: np.ndarray, reference: Any) -> Any:
    """:func:`like`, and a float16/bfloat16 ``reference`` gets its dtype back (results computed in
    float32 are cast down), so float outputs keep the input's float dtype."""
    out = like(result, reference)
    kind = kind_of(reference)
    if kind == "torch":
        torch = _torch()
        if reference.dtype in (torch.float16, torch.bfloat16) and out.dtype != reference.dtype:
            return out.to(reference.dtype)
        return out
    dtype = getattr(reference, "dtype", None)
    if dtype is not None and np.dtype(dtype).newbyteorder("=") == np.float16 and out.dtype != np.float16:
        return out.astype(np.float16)
    return out


# ---------------------------------------------------------------------------------- GPU views
@dataclass
class DeviceArray:
    """A zero-copy view of a CUDA array: raw pointer, shape, dtype, device and stream."""

    obj: Any
    kind: str
    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype
    device: int
    stream: int


def device_array(x: Any, name: str, *, dtypes: Sequence[np.dtype] = FLOAT_DTYPES) -> DeviceArray:
    """View a torch CUDA tensor or CuPy array; made contiguous (once, on the device) if needed."""
    kind = kind_of(x)
    if kind == "torch":
        torch = _torch()
        t = x.detach()
        if not t.is_contiguous():
            t = t.contiguous()
        dtype = np.dtype(str(t.dtype).removeprefix("torch."))  # float32, int64, ...
        if dtype not in dtypes:
            target = dtypes[0] if t.dtype in (torch.float16, torch.bfloat16) else None
            if target is None:
                raise TypeError(f"{name} must have dtype in {[str(d) for d in dtypes]}, got {t.dtype}")
            t = t.to(getattr(torch, str(target)))
            dtype = target
        stream = torch.cuda.current_stream(t.device).cuda_stream
        return DeviceArray(t, "torch", t.data_ptr(), tuple(t.shape), dtype, t.device.index, stream)
    if kind == "cupy":
        cupy = _cupy()
        a = cupy.ascontiguousarray(x)
        if a.dtype not in dtypes:
            if a.dtype == np.float16:
                a = a.astype(dtypes[0])
            else:
                raise TypeError(f"{name} must have dtype in {[str(d) for d in dtypes]}, got {a.dtype}")
        stream = cupy.cuda.get_current_stream().ptr
        return DeviceArray(a, "cupy", a.data.ptr, tuple(a.shape), np.dtype(a.dtype), a.device.id, stream)
    raise TypeError(f"{name} is not a CUDA array (torch CUDA tensor or CuPy array)")


def device_empty(ref: DeviceArray, shape: Sequence[int], dtype: Any) -> DeviceArray:
    """Allocate with the framework of ``ref`` on its device."""
    dtype = np.dtype(dtype)
    if ref.kind == "torch":
        torch = _torch()
        t = torch.empty(tuple(shape), dtype=getattr(torch, dtype.name), device=ref.obj.device)
        return DeviceArray(t, "torch", t.data_ptr(), tuple(shape), dtype, ref.device, ref.stream)
    cupy = _cupy()
    with cupy.cuda.Device(ref.device):
        a = cupy.empty(tuple(shape), dtype=dtype)
    return DeviceArray(a, "cupy", a.data.ptr, tuple(shape), dtype, ref.device, ref.stream)
