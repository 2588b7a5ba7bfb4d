"""Uncertainty scores for GPU-resident arrays, written with the array's own framework ops.

torch CUDA tensors and CuPy arrays stay on their device: every step is an elementwise op or a
reduction of their framework, run on the caller's current stream. Validation costs one
device-to-host sync (a few flags); error messages cost one more. The formulas and the rules for
infinities, NaN and ties are the CPU ones (``curata/score_math.hpp``); results agree with the CPU
path to rounding (framework ``exp``/``log`` and summation order differ).

The same code runs for any torch tensor and for any NumPy-compatible module (CuPy, or NumPy
itself, which the tests use to exercise this path on machines without a GPU).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from . import _array


def _int64_range_error(name: str, low: float, high: float) -> ValueError:
    """The error of :func:`curata._array.int_array` for float ids outside int64 (same words)."""
    return ValueError(f"{name} must hold integers in the int64 range, got values from {low} to {high}")


class _TorchOps:
    def __init__(self) -> None:
        self.t = sys.modules["torch"]

    def floating(self, x: Any, name: str) -> Any:
        t = self.t
        if x.dtype == t.bool or x.is_complex():
            raise TypeError(f"{name} must have a real floating or integer dtype, got {x.dtype}")
        x = x.detach()
        if x.dtype in (t.float16, t.bfloat16):
            return x.float()
        if not x.is_floating_point():
            return x.double()
        return x

    def int64(self, x: Any, name: str, like: Any) -> Any:
        t = self.t
        g = x if isinstance(x, t.Tensor) else t.as_tensor(_array._to_numpy_view(x, name))
        g = g.detach().to(like.device)
        if g.dtype == t.bool or g.is_complex():
            raise TypeError(f"{name} must have an integer dtype, got {g.dtype}")
        if g.is_floating_point() and g.numel():
            # One transfer for both flags; outside [-2**63, 2**63) the cast to int64 is undefined.
            not_integral, out_of_range = self.any_of(~t.isfinite(g) | (g != t.round(g)), (g < -(2.0**63)) | (g >= 2.0**63))
            if not_integral:
                raise ValueError(f"{name} must hold integers, got non-integral or non-finite values")
            if out_of_range:
                raise _int64_range_error(name, float(g.min()), float(g.max()))
        if g.dtype == getattr(t, "uint64", None) and g.numel():  # torch >= 2.3 has uint64
            # The cast to int64 wraps ids >= 2**63 to negative ones; torch has no uint64
            # comparisons, but the same bits read as int64 are negative exactly for those ids.
            if self.any_of(g.view(t.int64) < 0)[0]:
                raise ValueError(f"{name} has values above the int64 range")
        return g.to(t.int64)

    def moveaxis(self, x, src, dst):
        return self.t.movedim(x, src, dst)

    def amax(self, x, axis, keepdims=False):
        return self.t.amax(x, dim=axis, keepdim=keepdims)

    def sum(self, x, axis, keepdims=False):
        return self.t.sum(x, dim=axis, keepdim=keepdims)

    def mean(self, x, axis):
        return self.t.mean(x, dim=axis)

    def top2(self, x):
        v = self.t.topk(x, 2, dim=-1).values
        return v[..., 0], v[..., 1]

    def exp(self, x):
        return self.t.exp(x)

    def log(self, x):
        return self.t.log(x)

    def where(self, cond, a, b):
        return self.t.where(cond, a, b)

    def isnan(self, x):
        return self.t.isnan(x)

    def isinf(self, x):
        return self.t.isinf(x)

    def abs(self, x):
        return self.t.abs(x)

    def astype(self, x, like):
        return x.to(like.dtype)

    def clamp_min(self, x, v):
        return self.t.clamp_min(x, v)

    def sigmoid(self, x):
        return self.t.sigmoid(x)

    def any_of(self, *masks) -> list[bool]:
        """One device->host transfer for all flags."""
        return [bool(v) for v in self.t.stack([m.any() for m in masks]).tolist()]

    def first_true(self, mask) -> int:
        return int(self.t.nonzero(mask.reshape(-1))[0, 0])

    def item(self, x) -> float:
        return float(x.reshape(-1)[0])

    def full(self, n, value, like):
        return self.t.full((n,), value, dtype=like.dtype, device=like.device)

    def unique_inverse(self, g):
        ids, inverse = self.t.unique(g, sorted=True, return_inverse=True)
        return ids, inverse

    def counts(self, g, n):
        return self.t.bincount(g, minlength=n)

    def scatter_sum(self, g, v, n):
        # float64 accumulators, as on the CPU; atomic adds make the order (and the last bits)
        # vary between runs.
        acc = self.t.zeros(n, dtype=self.t.float64, device=v.device)
        return acc.index_add_(0, g, v.double())

    def scatter_max(self, g, v, n):
        acc = self.t.full((n,), -float("inf"), dtype=v.dtype, device=v.device)
        return acc.scatter_reduce_(0, g, v, reduce="amax", include_self=True)

    def arange_like(self, n, like):
        return self.t.arange(n, device=like.device)


class _ArrayModuleOps:
    """NumPy-compatible modules: CuPy on the GPU (NumPy in tests)."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp

    def floating(self, x: Any, name: str) -> Any:
        dt = np.dtype(x.dtype)
        if dt == np.bool_ or dt.kind not in "fiu":
            raise TypeError(f"{name} must have a real floating or integer dtype, got {dt}")
        if dt in _array.FLOAT_DTYPES:
            return x
        return x.astype(np.float32 if dt.kind == "f" and dt.itemsize < 4 else np.float64)

    def int64(self, x: Any, name: str, like: Any) -> Any:
        xp = self.xp
        if _array.kind_of(x) == "torch" and not x.is_cuda:
            x = x.detach().numpy()
        g = xp.asarray(x)
        dt = np.dtype(g.dtype)
        if dt == np.bool_ or dt.kind not in "fiu":
            raise TypeError(f"{name} must have an integer dtype, got {dt}")
        if dt.kind == "f" and g.size:
            # One transfer for both flags; outside [-2**63, 2**63) the cast to int64 is undefined.
            not_integral, out_of_range = self.any_of(~xp.isfinite(g) | (g != xp.round(g)), (g < -(2.0**63)) | (g >= 2.0**63))
            if not_integral:
                raise ValueError(f"{name} must hold integers, got non-integral or non-finite values")
            if out_of_range:
                raise _int64_range_error(name, float(g.min()), float(g.max()))
        if dt == np.uint64 and g.size and self.any_of(g > np.uint64(np.iinfo(np.int64).max))[0]:
            raise ValueError(f"{name} has values above the int64 range")
        return g.astype(np.int64)

    def moveaxis(self, x, src, dst):
        return self.xp.moveaxis(x, src, dst)

    def amax(self, x, axis, keepdims=False):
        return self.xp.max(x, axis=axis, keepdims=keepdims)

    def sum(self, x, axis, keepdims=False):
        return self.xp.sum(x, axis=axis, keepdims=keepdims)

    def mean(self, x, axis):
        return self.xp.mean(x, axis=axis)

    def top2(self, x):
        s = self.xp.sort(x, axis=-1)
        return s[..., -1], s[..., -2]

    def exp(self, x):
        return self.xp.exp(x)

    def log(self, x):
        return self.xp.log(x)

    def where(self, cond, a, b):
        return self.xp.where(cond, a, b)

    def isnan(self, x):
        return self.xp.isnan(x)

    def isinf(self, x):
        return self.xp.isinf(x)

    def abs(self, x):
        return self.xp.abs(x)

    def astype(self, x, like):
        return x.astype(like.dtype, copy=False)

    def clamp_min(self, x, v):
        return self.xp.maximum(x, v)

    def sigmoid(self, x):
        xp = self.xp
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1, e) / (1 + e)

    def any_of(self, *masks) -> list[bool]:
        flags = self.xp.stack([self.xp.any(m) for m in masks])
        return [bool(v) for v in (flags.get() if hasattr(flags, "get") else flags).tolist()]

    def first_true(self, mask) -> int:
        return int(self.xp.flatnonzero(mask)[0])

    def item(self, x) -> float:
        return float(x.reshape(-1)[0])

    def full(self, n, value, like):
        return self.xp.full((n,), value, dtype=like.dtype)

    def unique_inverse(self, g):
        ids, inverse = self.xp.unique(g, return_inverse=True)
        return ids, inverse.reshape(-1)

    def counts(self, g, n):
        return self.xp.bincount(g, minlength=n)

    def scatter_sum(self, g, v, n):
        acc = self.xp.zeros(n, dtype=np.float64)
        if self.xp is np:
            np.add.at(acc, g, v.astype(np.float64))
        else:
            sys.modules["cupyx"].scatter_add(acc, g, v.astype(np.float64))
        return acc

    def scatter_max(self, g, v, n):
        acc = self.xp.full((n,), -np.inf, dtype=v.dtype)
        if self.xp is np:
            np.maximum.at(acc, g, v)
        else:
            sys.modules["cupyx"].scatter_max(acc, g, v)
        return acc

    def arange_like(self, n, like):
        return self.xp.arange(n)


def ops_for(x: Any) -> Any:
    """The ops of x's framework: torch tensors -> torch, anything else -> its array module."""
    kind = _array.kind_of(x)
    if kind == "torch":
        return _TorchOps()
    if kind == "cupy":
        import cupyx  # noqa: F401,PLC0415  (scatter_add / scatter_max live there)

        return _ArrayModuleOps(sys.modules["cupy"])
    return _ArrayModuleOps(np)


# ------------------------------------------------------------------------------- validation
def _where(flat: int, cols: int, note: str = "") -> str:
    row, col = divmod(flat, cols)
    return f" at row {row}{note}, column {col}"


def validate_probabilities(ops, p, check: bool, tolerance: float, name: str) -> None:
    """Same rules as the CPU path; p has the class axis last. One sync; a second on error."""
    cols = p.shape[-1]
    rows_view = p.reshape(-1, cols)
    nan = ops.isnan(rows_view)
    inf = ops.isinf(rows_view)
    masks = [nan, inf]
    if check:
        sums = ops.sum(rows_view, -1)
        masks += [rows_view < 0, ~(ops.abs(sums - 1) <= tolerance)]
    flags = ops.any_of(*masks)
    if not any(flags):
        return
    if flags[0]:
        raise ValueError(f"{name} must not contain NaN, got nan{_where(ops.first_true(nan), cols)}")
    if flags[1]:
        i = ops.first_true(inf)
        value = ops.item(rows_view.reshape(-1)[i : i + 1])
        raise ValueError(f"{name} must be finite probabilities, got {value}{_where(i, cols)}")
    if flags[2]:
        i = ops.first_true(masks[2])
        value = ops.item(rows_view.reshape(-1)[i : i + 1])
        raise ValueError(
            f"{name} must be non-negative probabilities, got {value!r}{_where(i, cols)}"
            " (pass check=False to skip this check)"
        )
    r = ops.first_true(masks[3])
    raise ValueError(
        f"{name} rows must sum to 1 within {tolerance!r}, got {ops.item(sums[r : r + 1])!r} at row {r}"
        " (are these logits? apply softmax first, or pass check=False)"
    )


# ------------------------------------------------------------------------------------ scores
def softmax(x: Any, axis: int, name: str) -> Any:
    ops = ops_for(x)
    z = ops.moveaxis(ops.floating(x, name), axis, -1)
    cols = z.shape[-1]
    m = ops.amax(z, -1, keepdims=True)
    nan = ops.isnan(z)
    all_neg_inf = m == -np.inf
    has_nan, has_all_neg_inf = ops.any_of(nan, all_neg_inf)
    if has_nan:
        raise ValueError(f"{name} must not contain NaN, got nan{_where(ops.first_true(nan), cols)}")
    if has_all_neg_inf:
        row = ops.first_true(all_neg_inf)
        raise ValueError(f"{name} row {row} is all -inf: softmax is undefined (every class masked out)")
    # Rows holding +inf are computed on zeros (no inf - inf) and replaced by their equal shares.
    pos_inf_row = m == np.inf
    e = ops.exp(ops.where(pos_inf_row, 0.0, z - ops.where(pos_inf_row, 0.0, m)))
    out = e / ops.sum(e, -1, keepdims=True)
    is_pos_inf = ops.astype(z == np.inf, z)
    count = ops.sum(is_pos_inf, -1, keepdims=True)
    out = ops.where(pos_inf_row, is_pos_inf / ops.where(count > 0, count, 1.0), out)
    return ops.moveaxis(out, -1, axis)


def sigmoid(x: Any, name: str) -> Any:
    ops = ops_for(x)
    z = ops.floating(x, name)
    nan = ops.isnan(z)
    if ops.any_of(nan)[0]:
        raise ValueError(f"{name} must not contain NaN, got nan at flat index {ops.first_true(nan)}")
    return ops.sigmoid(z)


def _plogp_sum(ops, p):
    positive = p > 0
    safe = ops.where(positive, p, p * 0 + 1)
    return ops.sum(ops.where(positive, p * ops.log(safe), p * 0), -1)


def entropy(p: Any, axis: int, check: bool, tolerance: float, name: str) -> Any:
    ops = ops_for(p)
    z = ops.moveaxis(ops.floating(p, name), axis, -1)
    validate_probabilities(ops, z, check, tolerance, name)
    return 0 - _plogp_sum(ops, z)


def least_confidence(p: Any, axis: int, check: bool, tolerance: float, name: str) -> Any:
    ops = ops_for(p)
    z = ops.moveaxis(ops.floating(p, name), axis, -1)
    validate_probabilities(ops, z, check, tolerance, name)
    return 1 - ops.amax(z, -1)


def margin(p: Any, axis: int, check: bool, tolerance: float, name: str) -> Any:
    ops = ops_for(p)
    z = ops.moveaxis(ops.floating(p, name), axis, -1)
    validate_probabilities(ops, z, check, tolerance, name)
    if z.shape[-1] == 1:
        return 1 - z[..., 0]
    first, second = ops.top2(z)
    return 1 - (first - second)


def bald(mc_probs: Any, axis: int, check: bool, tolerance: float, name: str) -> Any:
    ops = ops_for(mc_probs)
    z = ops.moveaxis(ops.floating(mc_probs, name), axis, -1)  # (S, ..., C)
    if z.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample along axis 0, got shape {tuple(z.shape)}")
    validate_probabilities(ops, z, check, tolerance, name)
    entropy_of_mean = 0 - _plogp_sum(ops, ops.mean(z, 0))
    mean_entropy = ops.mean(0 - _plogp_sum(ops, z), 0)
    return ops.clamp_min(entropy_of_mean - mean_entropy, 0)


def aggregate(values: Any, groups: Any, how: str, n_groups: int | None, fill_value: float) -> Any:
    ops = ops_for(values)
    v = ops.floating(values, "values")
    if len(v.shape) != 1:
        raise ValueError(f"values must have shape (N,), got {tuple(v.shape)}")
    g = ops.int64(groups, "groups", v)
    if tuple(g.shape) != tuple(v.shape):
        raise ValueError(f"groups must have shape ({v.shape[0]},), got {tuple(g.shape)}")
    n = v.shape[0]
    if n_groups is None:
        if n == 0:
            return g[:0], v[:0]
        ids, inverse = ops.unique_inverse(g)
        groups_used, count = inverse, ids.shape[0]
    else:
        groups_used, count = g, n_groups
    checks = [ops.isnan(v)]
    if n_groups is not None:
        checks.append((g < 0) | (g >= n_groups))
    flags = ops.any_of(*checks) if n else [False, False]
    if flags[0]:
        raise ValueError(f"values must not contain NaN, got nan at index {ops.first_true(checks[0])}")
    if n_groups is not None and flags[1]:
        i = ops.first_true(checks[1])
        raise ValueError(
            f"groups must be in [0, n_groups) = [0, {n_groups}), got {int(ops.item(g[i : i + 1]))} at index {i}"
        )
    counts = ops.counts(groups_used, count)
    if how == "max":
        out = ops.scatter_max(groups_used, v, count)
    else:
        acc = ops.scatter_sum(groups_used, v, count)
        if how == "mean":
            acc = acc / ops.where(counts > 0, counts, counts * 0 + 1)
        out = ops.astype(acc, v)
    out = ops.where(counts > 0, out, ops.full(count, fill_value, v))
    if n_groups is None:
        return ids, out
    return out
