"""Uncertainty scores for active learning (higher = more uncertain) and the activations feeding them.

Every function takes numpy arrays, torch tensors or CuPy arrays and returns the same kind on the
same device: numpy and CPU torch input run in the C++ core (one fused, vectorised pass per row,
parallel over rows); torch CUDA tensors and CuPy arrays are computed with their own framework's
ops, so results never leave the GPU.

Conventions shared by all functions:

* The class axis is ``axis`` (default last); every other axis indexes items (boxes, images,
  pixels), so ``(N, C)`` detections and ``(B, C, H, W)`` segmentation maps with ``axis=1`` both
  work. Outputs drop the class axis.
* dtypes: float32 and float64 are computed in their own precision; float16/bfloat16 are computed
  in float32 and **returned as float32**; integer input is computed and returned as float64;
  bool and complex input raise ``TypeError``.
* Probabilities: NaN and ±inf always raise ``ValueError`` naming the argument, the row and the
  column. With ``check=True`` (default) every entry must also be ``>= 0`` and every row must sum to
  1 within ``max(1e-3, 4·eps)`` of the input dtype (1e-3 for float32/float64, 3.9e-3 for float16,
  3.1e-2 for bfloat16). ``check=False`` skips those two checks and applies the formulas to the
  values as given (entries ``<= 0`` then contribute 0 to entropies), e.g. for per-class sigmoid
  scores.
* The C++ results do not depend on the thread count or the CPU's instruction set (bit-identical).
* Nothing here is differentiable: tensors are detached.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from . import _array, _core

__all__ = ["softmax", "sigmoid", "entropy", "least_confidence", "margin", "bald", "aggregate"]

_HOW = {"max": 0, "mean": 1, "sum": 2}
_DEFAULT_FILL = {"max": -np.inf, "mean": np.nan, "sum": 0.0}
_BASE_TOLERANCE = 1e-3


def _device():
    from . import _scores_device  # noqa: PLC0415  (only for GPU-resident input)

    return _scores_device


def _input_eps(x: Any) -> float:
    """Machine epsilon of the caller's dtype (before any conversion); 0 for non-floats."""
    if _array.kind_of(x) == "torch":
        return float(sys.modules["torch"].finfo(x.dtype).eps) if x.dtype.is_floating_point else 0.0
    dtype = getattr(x, "dtype", None)
    try:
        dtype = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        return 0.0
    return float(np.finfo(dtype).eps) if dtype is not None and dtype.kind == "f" else 0.0


def _tolerance(x: Any) -> float:
    return max(_BASE_TOLERANCE, 4.0 * _input_eps(x))


def _check_flag(check: Any) -> bool:
    if not isinstance(check, (bool, np.bool_)):
        raise TypeError(f"check must be a bool, got {type(check).__name__}")
    return bool(check)


def _shape_of(x: Any, name: str) -> tuple[int, ...]:
    _array.check_dense(x, name)
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return tuple(int(s) for s in x.shape)
    return tuple(_array._to_numpy_view(x, name).shape)


def _class_axis(shape: tuple[int, ...], axis: Any, name: str, min_ndim: int, layout: str) -> int:
    """Validated, non-negative class axis of an array of `shape`."""
    ndim = len(shape)
    if ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s) {layout}, got shape {shape}")
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of bounds for {name} with {ndim} dimensions")
    ax = int(axis) % ndim
    if shape[ax] == 0:
        raise ValueError(f"{name} must have at least one class along axis {axis}, got shape {shape}")
    return ax


def _host_last_axis(x: Any, name: str, ax: int) -> np.ndarray:
    """C-contiguous float32/float64 host array with the class axis last (at most one copy)."""
    view = _array._to_numpy_view(x, name)
    return _array.float_array(np.moveaxis(view, ax, -1), name)


def _result(out: np.ndarray, shape: tuple[int, ...], reference: Any) -> Any:
    res = _array.like(out.reshape(shape), reference)
    return res.reshape(shape) if res.ndim != len(shape) else res


def softmax(logits: Any, axis: int = -1) -> Any:
    """Numerically stable softmax along ``axis``.

    Computed as ``exp(x - max) / sum(exp(x - max))`` per row, so logits of any magnitude
    (±1e4, ±1e38) neither overflow nor turn into NaN.

    Parameters
    ----------
    logits : array (..., C, ...), float16/32/64 or integer
        ``C >= 1`` classes along ``axis``. torch/CuPy on a GPU stay there.
    axis : int, default -1
        The class axis.

    Returns
    -------
    array of the same shape
        float32 for float32/float16/bfloat16 input, float64 for float64/integer input. Each row
        sums to 1 up to rounding.

    Raises
    ------
    ValueError
        NaN anywhere; a row whose logits are all ``-inf`` (no distribution exists); ``C == 0``;
        0-d input; ``axis`` out of range.
    TypeError
        bool, complex or non-numeric input; non-integer ``axis``.

    Notes
    -----
    Infinities: ``-inf`` logits get probability exactly 0; a row with one or more ``+inf`` logits
    puts equal mass ``1/k`` on its ``k`` ``+inf`` entries and 0 elsewhere (the limit of those
    logits growing together; torch and scipy return NaN there).

    O(N·C) time, one pass over memory, parallel over rows. Peak memory: the output, plus one
    converted copy of the input if it is not C-contiguous with the class axis last, or not
    float32/float64.
    """
    shape = _shape_of(logits, "logits")
    ax = _class_axis(shape, axis, "logits", 1, "(..., C)")
    if _array.on_cuda(logits):
        return _device().softmax(logits, ax, "logits")
    a = _host_last_axis(logits, "logits", ax)
    out = _core.softmax(a.reshape(-1, a.shape[-1]), "logits").reshape(a.shape)
    return _array.like(np.moveaxis(out, -1, ax), logits)


def sigmoid(x: Any) -> Any:
    """Logistic function ``1 / (1 + exp(-x))``, elementwise, numerically stable.

    ``exp`` is only evaluated at ``-|x|``, so no input overflows: ``sigmoid(+inf) = 1``,
    ``sigmoid(-inf) = 0``, ``sigmoid(1e4) = 1``, ``sigmoid(-1e4) = 0`` (underflow).

    Parameters
    ----------
    x : array of any shape, float16/32/64 or integer

    Returns
    -------
    array of the same shape; float32 for float32/float16/bfloat16, float64 for float64/integer.

    Raises
    ------
    ValueError
        NaN anywhere (the message gives its flat index).
    TypeError
        bool, complex or non-numeric input.

    Notes
    -----
    O(n) time, parallel; memory: the output (plus one converted copy for non-contiguous or
    non-float32/64 input).
    """
    if _array.on_cuda(x):
        return _device().sigmoid(x, "x")
    shape = _shape_of(x, "x")
    a = _array.float_array(x, "x")
    out = _core.sigmoid(a.reshape(-1), "x")
    return _result(out, shape, x)


def _probability_score(core_fn, device_name: str, probs: Any, axis: Any, check: Any, name: str = "probs") -> Any:
    check = _check_flag(check)
    shape = _shape_of(probs, name)
    ax = _class_axis(shape, axis, name, 1, "(..., C)")
    tolerance = _tolerance(probs)
    if _array.on_cuda(probs):
        return getattr(_device(), device_name)(probs, ax, check, tolerance, name)
    a = _host_last_axis(probs, name, ax)
    out = core_fn(a.reshape(-1, a.shape[-1]), check, tolerance, name)
    return _result(out, a.shape[:-1], probs)


def entropy(probs: Any, axis: int = -1, *, check: bool = True) -> Any:
    """Shannon entropy ``H(p) = -Σ_c p_c log p_c`` of each row, in nats, with ``0 · log 0 = 0``.

    Parameters
    ----------
    probs : array (N, C), or any shape with the classes along ``axis``
        Probabilities, float16/32/64 or integer (e.g. one-hot).
    axis : int, default -1
        The class axis.
    check : bool, default True
        Require entries ``>= 0`` and rows summing to 1 (see the module notes for the tolerance).
        NaN/±inf are rejected either way.

    Returns
    -------
    array (N,) — the input shape without ``axis`` —, float32 (float32/float16 input) or float64.
    In ``[0, log C]`` for valid probabilities; exactly 0 for one-hot rows.

    Raises
    ------
    ValueError
        NaN/inf; with ``check``, a negative entry or a row sum off by more than the tolerance;
        ``C == 0``; 0-d input; ``axis`` out of range. Messages give row and column.
    TypeError
        bool/complex/non-numeric input, non-bool ``check``, non-integer ``axis``.

    Notes
    -----
    Formula as written, no renormalisation (``scipy.stats.entropy`` divides by the row sum
    first; identical on rows that sum to 1). O(N·C) time, one pass over memory that also performs
    the checks; peak memory is the (N,) output plus a converted copy of the input only if it is
    not C-contiguous float32/float64 with the classes last. CPU log is a vectorised polynomial
    within 1 ulp of libm's.
    """
    return _probability_score(_core.entropy, "entropy", probs, axis, check)


def least_confidence(probs: Any, axis: int = -1, *, check: bool = True) -> Any:
    """Least confidence ``1 - max_c p_c`` of each row.

    Parameters
    ----------
    probs : array (N, C), or any shape with the classes along ``axis``
    axis : int, default -1
    check : bool, default True
        As in :func:`entropy`.

    Returns
    -------
    array (N,), float32 (float32/float16 input) or float64; in ``[0, 1 - 1/C]`` for valid
    probabilities. ``C == 1`` gives ``1 - p`` (0 for a valid row).

    Raises
    ------
    ValueError, TypeError
        As :func:`entropy`.

    Notes
    -----
    O(N·C) time, one pass; memory as :func:`entropy`.
    """
    return _probability_score(_core.least_confidence, "least_confidence", probs, axis, check)


def margin(probs: Any, axis: int = -1, *, check: bool = True) -> Any:
    """Margin uncertainty ``1 - (p₁ - p₂)`` of each row, with ``p₁ >= p₂`` its two largest entries.

    Parameters
    ----------
    probs : array (N, C), or any shape with the classes along ``axis``
    axis : int, default -1
    check : bool, default True
        As in :func:`entropy`.

    Returns
    -------
    array (N,), float32 (float32/float16 input) or float64; in ``[0, 1]`` for valid
    probabilities. Ties count twice: two equal largest entries give exactly 1.
    ``C == 1``: ``p₂`` is defined as 0 (as if a second class had probability 0), so the result
    is ``1 - p₁`` — 0 for a valid one-class row.

    Raises
    ------
    ValueError, TypeError
        As :func:`entropy`.

    Notes
    -----
    O(N·C) time (a running top-2, no sort), one pass; memory as :func:`entropy`.
    """
    return _probability_score(_core.margin, "margin", probs, axis, check)


def bald(mc_probs: Any, axis: int = -1, *, check: bool = True) -> Any:
    """BALD mutual information from Monte-Carlo samples (Houlsby et al., 2011).

    ``bald = H(mean_s p_s) - mean_s H(p_s)``: the entropy of the averaged prediction minus the
    average entropy of the samples (in nats). High when the samples are individually confident
    but disagree.

    Parameters
    ----------
    mc_probs : array (S, N, C), or (S, ..., C) with the classes along ``axis``
        S Monte-Carlo samples (MC dropout passes, ensemble members) on axis 0.
    axis : int, default -1
        The class axis; must not be 0 (the sample axis).
    check : bool, default True
        As in :func:`entropy`, for every sample's rows.

    Returns
    -------
    array (N,) — the input shape without axes 0 and ``axis`` —, float32 (float32/float16 input)
    or float64. Clamped at 0 (the true value is >= 0 by Jensen's inequality; rounding alone can
    make the difference slightly negative) and at most ``H(mean)`` ≤ log C. Identical samples
    give ~0; ``S == 1`` gives ~0.

    Raises
    ------
    ValueError
        As :func:`entropy` (messages name the sample), ``S == 0``, ``ndim < 2``, ``axis == 0``.
    TypeError
        As :func:`entropy`.

    Notes
    -----
    O(S·N·C) time in one pass over memory (every row is read once, fused with the checks),
    parallel over blocks of items. Extra memory: a block of per-item means, max(16384, C)
    values per thread, plus a converted copy of the input if it is not C-contiguous
    float32/float64 with the classes last. The GPU path materialises the (N, C) mean and the
    (S, N) entropies.
    """
    name = "mc_probs"
    check = _check_flag(check)
    shape = _shape_of(mc_probs, name)
    ax = _class_axis(shape, axis, name, 2, "(S, ..., C)")
    if ax == 0:
        raise ValueError(f"axis must not be 0 for {name}: axis 0 holds the Monte-Carlo samples")
    if shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample along axis 0, got shape {shape}")
    tolerance = _tolerance(mc_probs)
    if _array.on_cuda(mc_probs):
        return _device().bald(mc_probs, ax, check, tolerance, name)
    a = _host_last_axis(mc_probs, name, ax)  # (S, ..., C)
    out = _core.bald(a.reshape(a.shape[0], -1, a.shape[-1]), check, tolerance, name)
    return _result(out, a.shape[1:-1], mc_probs)


def aggregate(
    values: Any,
    groups: Any,
    how: str = "max",
    *,
    n_groups: int | None = None,
    fill_value: float | None = None,
) -> Any:
    """Reduce per-item scores (e.g. per box) to one score per group (e.g. per image).

    Parameters
    ----------
    values : array (N,), float16/32/64 or integer
        Scores; NaN raises ``ValueError``, ±inf follow IEEE arithmetic.
    groups : int array (N,)
        Group id of each value (e.g. the image index of each box). Any int64 values in sparse
        mode; ``[0, n_groups)`` in dense mode. Floats holding integers are accepted.
    how : {"max", "mean", "sum"}, default "max"
    n_groups : int, optional
        Dense mode: return one value per group id ``0 .. n_groups-1``, including empty ones.
    fill_value : float, optional
        Value of empty groups in dense mode. Default: the reduction over an empty set — 0 for
        "sum", -inf for "max" (so images without boxes rank last), NaN for "mean" (note that
        ``torch.topk`` ranks NaN first: pass ``fill_value=0.0`` when ranking).

    Returns
    -------
    (group_ids, aggregated) : (int64 array (G,), array (G,))
        Sparse mode (``n_groups=None``): the G distinct ids present, ascending, and their values.
    aggregated : array (n_groups,)
        Dense mode.

    Output arrays are the kind and device of ``values``; dtype float32 for float32/float16
    input, float64 for float64/integer.

    Raises
    ------
    ValueError
        ``values`` not 1-D; ``groups`` of another length; NaN in ``values``; float ``groups``
        that are not whole numbers; a group id outside ``[0, n_groups)``; unknown ``how``;
        negative ``n_groups``.
    TypeError
        bool/complex ``values``; ``groups`` of a non-numeric, bool or complex dtype; non-int
        ``n_groups``; non-numeric ``fill_value``.

    Notes
    -----
    Sums and means accumulate in float64 in index order on the CPU (deterministic); on a GPU,
    atomic float64 adds make the last bits of sums vary between runs. CPU: O(N + span) time when
    the ids span at most 2N + 1024 consecutive values (dense counting), else O(N log N) (sort);
    memory O(N) besides the output.
    """
    if not isinstance(how, str) or how not in _HOW:
        raise ValueError(f"how must be one of {sorted(_HOW)}, got {how!r}")
    n_groups = _array.check_count(n_groups, "n_groups")
    if fill_value is None:
        fill = float(_DEFAULT_FILL[how])
    else:
        if isinstance(fill_value, (bool, np.bool_)) or not isinstance(fill_value, (int, float, np.integer, np.floating)):
            raise TypeError(f"fill_value must be a number or None, got {type(fill_value).__name__}")
        fill = float(fill_value)
    if _array.on_cuda(values):
        return _device().aggregate(values, groups, how, n_groups, fill)
    v = _array.float_array(values, "values")
    _array.check_shape(v, "values", (None,))
    g = _array.int_array(groups, "groups", length=v.shape[0])
    code = _HOW[how]
    if n_groups is not None:
        out, _ = _core.aggregate(v, g, n_groups, code, fill)
        return _array.like(out, values)
    if g.size == 0:
        return _array.like(np.zeros(0, dtype=np.int64), values), _array.like(np.zeros(0, dtype=v.dtype), values)
    low, high = int(g.min()), int(g.max())
    span = high - low + 1
    if span <= 2 * g.size + 1024:
        out, counts = _core.aggregate(v, g - low, span, code, fill)
        present = np.flatnonzero(counts)
        ids, result = present + low, out[present]
    else:
        ids, inverse = np.unique(g, return_inverse=True)
        result, _ = _core.aggregate(v, np.ascontiguousarray(inverse.reshape(-1), dtype=np.int64), ids.size, code, fill)
    return _array.like(ids.astype(np.int64, copy=False), values), _array.like(result, values)
