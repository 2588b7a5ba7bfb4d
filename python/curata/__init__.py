"""curata: a performance-first engine for the data side of computer vision.

Modules: :mod:`curata.boxes` (conversion, IoU, NMS, YOLO post-processing, WBF, soft-NMS,
matching), :mod:`curata.scores` (uncertainty scores), :mod:`curata.metrics` (exact COCO
evaluation), :mod:`curata.drift` (per-column two-sample drift tests and distances),
:mod:`curata.search` (exact k-nearest-neighbour search and kNN graphs) and :mod:`curata.curate`
(near-duplicates, uniqueness, outlier scores, class balance), and :mod:`curata.monitor`
(:class:`DriftMonitor`: drift monitoring of production windows, reports, history, alerts).
"""

from __future__ import annotations

from . import boxes, curate, drift, metrics, monitor, scores, search
from .monitor import DriftMonitor, DriftReport
from ._runtime import (
    build_info,
    cuda_unavailable_reason,
    devices,
    get_num_threads,
    set_num_threads,
    warn_on_bad_thread_env,
)

__version__ = build_info()["version"]

warn_on_bad_thread_env()

__all__ = [
    "boxes",
    "curate",
    "drift",
    "metrics",
    "monitor",
    "scores",
    "search",
    "DriftMonitor",
    "DriftReport",
    "build_info",
    "devices",
    "cuda_unavailable_reason",
    "set_num_threads",
    "get_num_threads",
    "__version__",
]
