"""Which compiled engines exist and which devices are usable.

``curata._core`` (CPU) is always built. ``curata._cuda`` exists only when the build found nvcc;
even then a machine may have no driver or no GPU, which is reported as zero devices with a
reason, never as an exception.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from . import _core

log = logging.getLogger("curata")



def _import_submodule(name: str) -> tuple[Any, bool, str]:
    """(module or None, whether it does not exist, the import error or "").

    importlib rather than ``from . import name``: during the package's own import the latter turns
    a missing module into "cannot import name ... (most likely due to a circular import)", which
    cannot be told apart from a real failure; ModuleNotFoundError names the missing module."""
    full = f"{__package__}.{name}"
    try:
        return importlib.import_module(full), False, ""
    except ModuleNotFoundError as exc:  # built without CUDA, or a dependency of it missing
        return None, exc.name == full, str(exc)
    except ImportError as exc:  # a broken CUDA build (unresolved symbol, wrong CUDA runtime)
        return None, False, str(exc)


_cuda, _CUDA_MISSING, _CUDA_IMPORT_ERROR = _import_submodule("_cuda")


def _probe() -> tuple[int, str]:
    if _cuda is None:
        if _CUDA_MISSING:
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
