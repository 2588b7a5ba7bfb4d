"""The vector table of a device :class:`curata.search.Index`: torch tensors on one device.

:class:`DeviceTable` holds what the CPU index keeps in numpy arrays and the searches need: the
vectors (float32 or float16, ``capacity x D``, grown by doubling on the device), the lazy-removal
flags as a bool tensor, and the per-row statistics of :func:`curata._search_device.prepare_base`
(squared norms for "l2", inverse norms for "cosine"), kept up to date row by row so a search
never re-reads the table to prepare it. Ids, the id map and the host copy of the removal flags
stay in the :class:`~curata.search.Index` (numpy): lookups, ``add``'s checks and ``remove`` are
host work, and a search moves only the (M, k) positions back to map them to ids.

Searches are :func:`curata._search_device.knn_torch` and
:func:`curata._search_device.range_torch` over rows ``[0, n)`` with the removal flags as their
``removed`` mask, so their guarantees hold (exact for the stored values: float64 scores rounded
to float32, ties by lower row = earlier insertion).

torch is imported only when a device index is created.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _search_device

__all__ = ["DeviceTable", "torch_device_for"]


def torch_device_for(name: str) -> Any:
    """``torch.device(name)`` after checking that the device is usable (RuntimeError if not);
    ``"cuda"`` becomes the CUDA device current at this call."""
    torch = _search_device._torch()
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("curata.search.Index(device='cuda') needs a CUDA device, but torch sees none "
                               "(torch.cuda.is_available() is False)")
        # Pin the GPU that is current now: later allocations must not follow the caller's
        # current device if it changes between calls.
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


class DeviceTable:
    """Vectors, removal flags and row statistics of an index, on a torch device.

    Parameters
    ----------
    device : torch.device
    dim : int
    dtype : {"float32", "float16"}
    metric : {"ip", "l2", "cosine"}

    Notes
    -----
    Memory on the device: ``capacity x (D x itemsize + 1 + 4)`` bytes (vectors, flags, one
    float32 statistic per row for "l2"/"cosine"); during a doubling the old and new tables
    together; during a compaction one extra copy of the kept rows.
    """

    def __init__(self, device: Any, dim: int, dtype: str, metric: str) -> None:
        torch = _search_device._torch()
        self.torch = torch
        self.device = device
        self.dim = dim
        self.metric = metric
        self.dtype = torch.float16 if dtype == "float16" else torch.float32
        self.data = torch.empty((0, dim), dtype=self.dtype, device=device)
        self.removed = torch.zeros(0, dtype=torch.bool, device=device)
        self.row_stat = None if metric == "ip" else torch.empty(0, dtype=torch.float32, device=device)
        # Upper bounds over every row ever stored (removal keeps them valid bounds).
        self.max_norm = 0.0
        self.max_inv_norm = 0.0

    @property
    def capacity(self) -> int:
        return int(self.data.shape[0])

    def reserve(self, capacity: int, n: int) -> None:
        """Grow to ``capacity`` rows, keeping rows ``[0, n)``."""
        torch = self.torch
        if capacity <= self.capacity:
            return
        data = torch.empty((capacity, self.dim), dtype=self.dtype, device=self.device)
        data[:n] = self.data[:n]
        removed = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        removed[:n] = self.removed[:n]
        if self.row_stat is not None:
            stat = torch.empty(capacity, dtype=torch.float32, device=self.device)
            stat[:n] = self.row_stat[:n]
            self.row_stat = stat
        self.data, self.removed = data, removed

    def write(self, start: int, rows: np.ndarray) -> None:
        """Store host rows (float32, or float16 already rounded) at ``start`` and their statistics.

        The rows were checked finite on the host; the statistics come from
        :func:`~curata._search_device.prepare_base` on the stored (device) values."""
        torch = self.torch
        b = rows.shape[0]
        if b == 0:
            return
        t = torch.from_numpy(np.ascontiguousarray(rows)).to(self.device)
        dest = self.data[start : start + b]
        dest.copy_(t)
        self.removed[start : start + b] = False
        stats = _search_device.prepare_base(dest, self.metric)
        if self.row_stat is not None:
            self.row_stat[start : start + b] = stats.row_stat
        self.max_norm = max(self.max_norm, stats.max_norm)
        self.max_inv_norm = max(self.max_inv_norm, stats.max_inv_norm)

    def flag(self, positions: np.ndarray) -> None:
        if positions.size:
            self.removed[self.torch.from_numpy(positions).to(self.device)] = True

    def compact(self, n: int) -> int:
        """Squeeze the flagged rows of ``[0, n)`` out, keeping the others' order; returns the
        number of rows left."""
        torch = self.torch
        keep = ~self.removed[:n]
        kept = int(keep.sum())
        self.data[:kept] = self.data[:n][keep]  # boolean indexing gathers a copy first
        if self.row_stat is not None:
            self.row_stat[:kept] = self.row_stat[:n][keep]
        self.removed[:n] = False
        return kept

    def stats(self, n: int) -> _search_device.BaseStats:
        stat = None if self.row_stat is None else self.row_stat[:n]
        return _search_device.BaseStats(self.metric, stat, self.max_norm, self.max_inv_norm)

    def mask(self, n: int, n_removed: int) -> Any:
        return self.removed[:n] if n_removed else None

    def knn(self, q: Any, k: int, n: int, n_removed: int) -> tuple[Any, Any]:
        """(distances float32 (M, k), row positions int64 (M, k)) on the device."""
        return _search_device.knn_torch(self.data[:n], q, k, self.metric, prepared=self.stats(n),
                                        removed=self.mask(n, n_removed))

    def range(self, q: Any, radius: float, n: int, n_removed: int) -> tuple[Any, Any, Any]:
        """(lims, distances, row positions) on the device, hits in row order per query."""
        return _search_device.range_torch(self.data[:n], q, radius, self.metric, prepared=self.stats(n),
                                          removed=self.mask(n, n_removed))

    def host_rows(self, positions: np.ndarray) -> np.ndarray:
        """Stored rows at ``positions`` as a float32 numpy array."""
        idx = self.torch.from_numpy(positions).to(self.device)
        return self.data[idx].to(self.torch.float32).cpu().numpy()

    def host_table(self, n: int) -> np.ndarray:
        """Rows ``[0, n)`` as a numpy array in the storage dtype (one device-to-host copy)."""
        return self.data[:n].cpu().numpy()

    def load(self, table: np.ndarray) -> None:
        """Replace the contents by a host table (capacity = its row count)."""
        n = table.shape[0]
        self.data = self.torch.empty((0, self.dim), dtype=self.dtype, device=self.device)
        self.removed = self.torch.zeros(0, dtype=self.torch.bool, device=self.device)
        if self.row_stat is not None:
            self.row_stat = self.torch.empty(0, dtype=self.torch.float32, device=self.device)
        self.max_norm = self.max_inv_norm = 0.0
        self.reserve(n, 0)
        step = 1 << 16
        for start in range(0, n, step):
            self.write(start, table[start : start + step])
