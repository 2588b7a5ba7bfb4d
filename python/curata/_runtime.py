"""Build facts, device listing and the thread count."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _backend, _core

# Upper bound of set_num_threads / CURATA_NUM_THREADS (the core's kMaxThreads): every parallel
# region asks OpenMP for up to that many threads, and libgomp exits the process when it cannot
# create them.
MAX_THREADS = int(_core.max_threads)


def build_info() -> dict[str, Any]:
    """What this installation of curata was compiled with.

    Parameters
    ----------
    None.

    Returns
    -------
    dict
        ``version`` (str), ``compiler`` (str), ``openmp`` (bool), ``blas`` (name or None; None:
        no BLAS is linked), ``cuda_built`` (bool: the build compiled the CUDA module), ``cuda``
        (toolkit version string or None), ``cuda_archs`` (comma-separated, e.g.
        ``"80-real,90"``, or None), ``cuda_module`` (bool: ``curata._cuda`` imported).

    Notes
    -----
    O(1) time and memory; never touches a device.
    """
    info = dict(_core.build_info())
    cuda = _backend._cuda
    info["cuda_module"] = cuda is not None
    info["cuda"] = str(cuda.cuda_version) if cuda is not None else None
    info["cuda_archs"] = str(cuda.archs) if cuda is not None else None
    return info


def devices() -> list[dict[str, Any]]:
    """Devices usable now: always the CPU, plus each visible CUDA device.

    Parameters
    ----------
    None.

    Returns
    -------
    list of dict
        One entry per device, the CPU first: ``type`` (str, ``"cpu"`` or ``"cuda"``), ``index``
        (int) and ``name`` (str); the CPU entry also has ``threads`` (int, as
        :func:`get_num_threads`). When no GPU is usable, the reason is in
        ``curata.cuda_unavailable_reason()``.

    Notes
    -----
    O(number of devices) time and memory; the device count is read once at import. No driver or
    no device gives the CPU entry alone, never an exception.
    """
    found: list[dict[str, Any]] = [
        {"type": "cpu", "index": 0, "name": "cpu", "threads": get_num_threads()}
    ]
    if _backend.HAS_CUDA:
        for i in range(_backend.CUDA_DEVICE_COUNT):
            found.append({"type": "cuda", "index": i, "name": _backend._cuda.device_name(i)})
    return found


def cuda_unavailable_reason() -> str:
    """Why no CUDA device is usable.

    Returns
    -------
    str
        ``""`` when a CUDA device is usable, else the reason (no CUDA build, no driver, no
        device), e.g. ``"curata was built without CUDA (no nvcc at build time, or
        CURATA_CUDA=OFF)"``. O(1).
    """
    return "" if _backend.HAS_CUDA else _backend.CUDA_REASON


def set_num_threads(n: int) -> None:
    """Set the threads curata's CPU kernels use (process-wide, all calling threads).

    Parameters
    ----------
    n : int
        ``1 <= n <= 1024`` sets the count; ``n == 0`` restores the default
        (``CURATA_NUM_THREADS`` from the environment at import, else all cores, at most 1024).
        numpy integers are accepted.

    Returns
    -------
    None

    Raises
    ------
    TypeError
        ``n`` is not an int (bools included): ``"n must be an int, got float"``.
    ValueError
        ``n < 0`` or ``n > 1024`` (``"n must be <= 1024, got 5000"``).

    Notes
    -----
    O(1); takes effect for the next call of any curata kernel.
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n > MAX_THREADS:
        raise ValueError(f"n must be <= {MAX_THREADS}, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Threads curata's CPU kernels use.

    Returns
    -------
    int
        The current count (>= 1): the value of :func:`set_num_threads`, else the default.
        O(1).
    """
    return int(_core.num_threads())


def warn_on_bad_thread_env() -> None:
    """CURATA_NUM_THREADS that is not an integer in [1, 1024] is ignored; say so once at import.

    The value is judged by the core's own parser (the one that picks the thread count), so the
    warning appears exactly when the value is not used ("3abc", "2.5", "0", "99999999999")."""
    value = os.environ.get("CURATA_NUM_THREADS")
    if value is None:
        return
    if _core.parse_thread_count(value) < 1:
        _backend.log.warning(
            "CURATA_NUM_THREADS=%r is not an integer in [1, %d]; using all cores (%d threads)",
            value, MAX_THREADS, get_num_threads(),
        )
