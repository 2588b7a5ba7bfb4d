"""Device choice for ops: the data decides unless ``device=`` says otherwise."""

from __future__ import annotations

import logging
from typing import Any

from . import _array, _backend

log = logging.getLogger("curata")
_warned: set[str] = set()


def use_cuda(x: Any, device: str | None, op: str) -> bool:
    """True when ``op`` should run on the CUDA path for input ``x``.

    ``device`` is None/"auto" (follow the data), "cpu" or "cuda". GPU-resident data with no usable
    CUDA engine falls back to a host round trip with a one-time warning; an explicit
    ``device="cuda"`` without one raises.
    """
    if device not in (None, "auto", "cpu", "cuda"):
        raise ValueError(f"device must be None, 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cpu":
        return False
    if device == "cuda":
        _backend.require_cuda(op)
        return True
    if not _array.on_cuda(x):
        return False
    if _backend.HAS_CUDA:
        return True
    if op not in _warned:
        _warned.add(op)
        log.warning("%s: input is on a GPU but %s; computing on the CPU", op, _backend.CUDA_REASON)
    return False
