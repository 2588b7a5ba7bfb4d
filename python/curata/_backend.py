"""Which compiled engines exist and which devices are usable.

``curata._core`` (CPU) is always built. ``curata._cuda`` exists only when the build found nvcc;
even then a machine may have no driver or no GPU, which is reported as zero devices with a
reason, never as an exception.
"""

from __future__ import annotations

import logging

from . import _core

log = logging.getLogger("curata")

try:
    from . import _cuda  # type: ignore[attr-defined]
except ImportError as exc:  # built without CUDA, or a broken CUDA build
    _cuda = None
    _CUDA_IMPORT_ERROR = str(exc)
else:
    _CUDA_IMPORT_ERROR = ""


def _probe() -> tuple[int, str]:
    if _cuda is None:
        if "No module named" in _CUDA_IMPORT_ERROR:
            return 0, "curata was built without CUDA (no nvcc at build time, or CURATA_CUDA=OFF)"
        return 0, f"curata._cuda failed to import: {_CUDA_IMPORT_ERROR}"
    count, reason = _cuda.device_report()
    return int(count), str(reason)


CUDA_DEVICE_COUNT, CUDA_REASON = _probe()
HAS_CUDA: bool = CUDA_DEVICE_COUNT > 0


def require_cuda(what: str) -> None:
    """Raise a RuntimeError that says why ``what`` cannot run on the GPU."""
    if not HAS_CUDA:
        raise RuntimeError(f"{what} needs a CUDA device, but none is usable: {CUDA_REASON}")
