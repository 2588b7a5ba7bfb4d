"""Input rules shared by every drift test: (n,) or (n, D) samples, same D, converted once."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _array


def check_unmasked(a: Any, name: str) -> None:
    """TypeError for a numpy masked array with masked entries: its mask would be ignored (the
    values under it, often fill values such as 1e20, would be tested as data; scipy omits them)."""
    if isinstance(a, np.ma.MaskedArray) and np.ma.getmask(a) is not np.ma.nomask and a.mask.any():
        raise TypeError(
            f"{name} is a masked array with {int(np.count_nonzero(a.mask))} masked value(s), and masks are not "
            f"applied; drop the masked values (e.g. {name}.filled(np.nan) with nan_policy='omit' where the "
            "function has one)"
        )


def columns(x: Any, name: str) -> np.ndarray:
    check_unmasked(x, name)
    a = _array._to_numpy_view(x, name)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    elif a.ndim != 2:
        raise ValueError(f"{name} must have shape (n,) or (n, D), got {tuple(a.shape)}")
    return a


def column_pair(ref: Any, cur: Any, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """2-D views of ref and cur (any dtype) with the same D and at least ``min_rows`` rows each."""
    a = columns(ref, "ref")
    b = columns(cur, "cur")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"ref and cur must have the same number of columns D, got {a.shape[1]} and {b.shape[1]}"
        )
    for arr, name in ((a, "ref"), (b, "cur")):
        if arr.shape[0] < min_rows:
            raise ValueError(
                f"{name} must have at least {min_rows} row{'s' if min_rows > 1 else ''}, got shape {tuple(arr.shape)}"
            )
    return a, b


def sample_pair(ref: Any, cur: Any, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """C-contiguous float32 or float64 (same dtype) 2-D views of ref and cur."""
    a, b = column_pair(ref, cur, min_rows)
    a = _array.float_array(a, "ref")
    b = _array.float_array(b, "cur")
    if a.dtype != b.dtype:
        a = a.astype(np.float64, copy=False)
        b = b.astype(np.float64, copy=False)
    return a, b
