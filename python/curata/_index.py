"""A persistent exact vector index: :class:`Index` (re-exported as ``curata.search.Index``).

The index is a growing table of vectors (float32, or float16 to halve the memory) with one int64
user id per row, searched exactly by the same C++ core as :func:`curata.search.knn`. Rows stay in
insertion order, so equal distances are ordered by insertion: the vector added first wins a tie.
``remove`` only flags rows (the core skips flagged rows); once more than 1/8 of the rows are
flagged, or when an ``add`` finds the table full, they are squeezed out in place in one pass
that keeps the order of the others. A squeeze forced by a full table that would leave less than
1/16 of it free also grows the table to 9/8 of the rows, so churn (remove + add at a constant
size) squeezes once per N/16 or more added rows, not on every add.

With ``device="cuda"`` the table, the removal flags and per-row norms are torch tensors on the GPU
(:mod:`curata._index_device`) and searches are :func:`curata._search_device.knn_torch` /
:func:`curata._search_device.range_torch` with the flags as a mask; ids and the id map stay on
the host. The file format is the same whichever device saved or loads it.

File format (little-endian), written atomically by :meth:`Index.save`::

    offset  size  field
    0       8     magic b"CURATAIX"
    8       4     format version (uint32, currently 2; 1 is still read)
    12      4     header size in bytes (uint32, 72)
    16      8     dim (uint64)
    24      1     metric (0 ip, 1 l2, 2 cosine)
    25      1     vector dtype (0 float32, 1 float16)
    26      1     id dtype (0 int64)
    27      1     reserved (0)
    28      8     count: number of vectors (uint64)
    36      8     next default id (uint64, at most 2^63: one above every id ever added)
    44      8     vectors section size in bytes (uint64) = count * dim * itemsize
    52      8     ids section size in bytes (uint64) = count * 8
    60      4     checksum of the vectors section
    64      4     checksum of the ids section
    68      4     checksum of bytes 0..67
    72            vectors section (count x dim, row-major), then ids section (count int64)

The three checksums are CRC-32C (Castagnoli, as in iSCSI/ext4: check value of b"123456789" is
0xE3069283) in version 2, and zlib's CRC-32 in version 1 (same layout otherwise). CRC-32C runs
on the SSE4.2 ``crc32`` instruction at ~20 GB/s (portable table-driven code elsewhere, same
values); zlib's CRC-32 ran at 2-5 GB/s and was a large part of a save or load.

Loading checks the magic, the version, the header checksum, every field, the exact file size and
both section checksums, and raises ``ValueError`` saying which check failed. A version above 2
is refused with a message asking for a newer curata.
"""

from __future__ import annotations

import logging
import os
import struct
import sys
import zlib
from typing import Any

import numpy as np

from . import _array, _backend, _core, _io

__all__ = ["Index"]

log = logging.getLogger("curata.search")

_METRICS = {"ip": 0, "l2": 1, "cosine": 2}
_METRIC_NAMES = {v: k for k, v in _METRICS.items()}
_DTYPES = {"float32": 0, "float16": 1}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}
_ID_DTYPES = {0: np.dtype("<i8")}

MAGIC = b"CURATAIX"
FORMAT_VERSION = 2  # written by save(); load() reads 1 (zlib CRC-32) and 2 (CRC-32C)
# magic, version, header size, dim, metric, dtype, id dtype, reserved, count, next id,
# vectors bytes, ids bytes, vectors crc, ids crc; then the header crc.
# next id is unsigned: it is 2**63 once the id 2**63 - 1 is in, and never negative (it starts at
# 0 and only grows), so its bytes are those of an int64 for every other value.
_HEADER = struct.Struct("<8sIIQBBBBQQQQII")
_NEXT_ID_MAX = 2**63
_HEADER_SIZE = _HEADER.size + 4  # 72
# Sections are checksummed and written (read and checksummed) in pieces small enough to stay in
# the CPU caches between the two steps, so the data crosses the memory bus once.
_CHUNK_BYTES = 1 << 21
_ADD_CHUNK_ROWS = 1 << 16  # rows normalised / converted at a time by add()
_FLOAT16_MAX = 65504.0


def _crc32c(data: Any, crc: int = 0) -> int:
    """CRC-32C of a contiguous buffer (the C++ core, GIL released), continuing from ``crc``."""
    return _core.crc32c(data, crc)


def _zlib_crc32(data: Any, crc: int = 0) -> int:
    return zlib.crc32(data, crc) & 0xFFFFFFFF


# The checksum of each format version, and its name in error messages.
_CHECKSUMS = {1: (_zlib_crc32, "CRC-32"), 2: (_crc32c, "CRC-32C")}


def _write_all(f: Any, view: memoryview) -> None:
    """Write ``view`` to ``f`` (a seam for tests that simulate a failing disk)."""
    f.write(view)


def _write_checksummed(f: Any, view: memoryview, offset: int) -> int:
    """Write ``view`` to ``f`` (where it starts at byte ``offset`` of the file) piece by piece,
    each piece checksummed just before it is written (still in the cache when write() copies it)
    and handed to the disk right after (the fsync at the end then has less left to wait for);
    returns the CRC-32C of the whole view."""
    crc = 0
    fd = f.fileno()
    for start in range(0, len(view), _CHUNK_BYTES):
        piece = view[start : start + _CHUNK_BYTES]
        crc = _crc32c(piece, crc)
        _write_all(f, piece)
        f.flush()  # a no-op for pieces larger than the buffer: they went straight to the kernel
        _core.start_writeback(fd, offset + start, len(piece))
    return crc


def _pack_header(version: int, dim: int, metric: int, dtype: int, count: int, next_id: int, vbytes: int,
                 ibytes: int, vcrc: int, icrc: int) -> bytes:
    fields = _HEADER.pack(MAGIC, version, _HEADER_SIZE, dim, metric, dtype, 0, 0, count, next_id, vbytes, ibytes,
                          vcrc, icrc)
    return fields + struct.pack("<I", _CHECKSUMS[version][0](fields))


def _bytes_view(a: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8))


def _torch_cuda_usable() -> tuple[bool, str]:
    """(usable, reason): torch importable and ``torch.cuda.is_available()``."""
    try:
        import torch  # noqa: PLC0415  (only when a GPU index is asked for)
    except ImportError as exc:
        return False, f"torch cannot be imported ({exc})"
    if not torch.cuda.is_available():
        return False, "torch sees no CUDA device (torch.cuda.is_available() is False)"
    return True, ""


def _resolve_device(device: Any, torch_device: Any = None) -> str:
    """``"cpu"`` (the C++ core), ``"cuda"`` (torch on the GPU) or, with the private
    ``torch_device="cpu"``, ``"torch-cpu"`` (the device code on CPU torch tensors, for tests).

    ``"auto"`` picks ``"cuda"`` only when curata itself sees a usable CUDA device
    (``curata._backend.HAS_CUDA``, which needs no torch) *and* torch imports and
    ``torch.cuda.is_available()``; otherwise ``"cpu"``. So torch is never imported on a machine
    without a GPU, and the CPU stays the default there.
    """
    if torch_device is not None:
        if torch_device != "cpu":
            raise ValueError(f"_torch_device must be 'cpu' (tests only), got {torch_device!r}")
        return "torch-cpu"
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        _backend.require_cuda("curata.search.Index(device='cuda')")
        usable, reason = _torch_cuda_usable()
        if not usable:
            raise RuntimeError(f"curata.search.Index(device='cuda') needs a CUDA device through torch: {reason}")
        return "cuda"
    return "cuda" if _backend.HAS_CUDA and _torch_cuda_usable()[0] else "cpu"


def _check_metric(metric: Any) -> str:
    if not isinstance(metric, str) or metric not in _METRICS:
        raise ValueError(f"metric must be one of {sorted(_METRICS)}, got {metric!r}")
    return metric


def _check_dtype(dtype: Any) -> str:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
    return name


class Index:
    """A persistent, exact (brute-force) vector index with int64 ids.

    Parameters
    ----------
    dim : int
        Vector length D >= 1.
    metric : {"ip", "l2", "cosine"}
        As in :func:`curata.search.knn`: ``"ip"`` inner product (largest first), ``"l2"`` squared
        Euclidean distance (smallest first), ``"cosine"`` cosine similarity (largest first). For
        ``"cosine"`` the index stores each vector divided by its norm (norm and division in
        float64, rounded to float32, then for float16 rounded again); a zero vector is a
        ``ValueError``.
    dtype : {"float32", "float16"}
        Storage type of the vectors. ``"float16"`` halves the memory: added vectors are rounded
        to IEEE half precision (round to nearest even; magnitudes below 2^-24 become 0, and a
        value that rounds beyond +-65504 is a ``ValueError``). Searches convert each block of
        stored rows back to float32 on the fly (exactly: every half is a float32) and compute in
        float32, so results are exactly those of :func:`curata.search.knn` on the stored,
        rounded vectors converted to float32 -- not on the vectors you added.
    device : {"auto", "cpu", "cuda"}
        Where the table lives and searches run. ``"cpu"``: numpy table, the C++ core.
        ``"cuda"``: the table is a torch tensor on the current CUDA device and searches are
        :func:`curata._search_device.knn_torch` / ``range_torch`` (tiled cuBLAS GEMMs, exact
        float64 re-check); ids, the id map and removal bookkeeping stay on the host (numpy).
        ``RuntimeError`` saying why when no CUDA device is usable. ``"auto"``: ``"cuda"`` when
        curata sees a CUDA device and torch imports with ``torch.cuda.is_available()``, else
        ``"cpu"`` (torch is not imported when curata sees no device).
    _torch_device : {"cpu"}, optional
        Private, for tests: run the device code on CPU torch tensors (``device`` is ignored and
        reports ``"torch-cpu"``).

    Notes
    -----
    GPU (``device="cuda"``) vs CPU: the device path reports the float64 score of the stored
    vectors rounded to float32 (the C++ core computes in float32), so distances can differ in
    the last float32 bits ("l2": about ``1e-7 (|q - mu|^2 + |b - mu|^2)``, mu the core's shift, see
    :func:`curata.search.knn`), neighbours whose scores are that
    close can swap, and ``range_search`` can differ for rows within that distance of the radius.
    Ties (equal reported values) are broken by insertion order on both. Where every product and
    sum is exact in float32 (e.g. small integer vectors) the two agree bit for bit.

    Memory: ``capacity x D x itemsize`` bytes of vectors plus ``capacity x 8`` bytes of ids, with
    ``len <= capacity < 2 len`` after growth (appends double the capacity: amortised O(1) per
    row, one copy of the table per doubling; a table that removals and adds keep full grows
    to 9/8 of its rows once, see ``remove``). When ids are not added in increasing order, a
    sorted id map adds 16 bytes per vector. Not thread-safe for mutation: do not call ``add``,
    ``remove``, ``load`` or ``save`` (which first squeezes out rows flagged by ``remove``, in
    place) while another thread uses the same index; concurrent searches are fine.
    """

    def __init__(self, dim: int, metric: str = "ip", dtype: Any = "float32", device: str = "auto",
                 *, _torch_device: Any = None) -> None:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self._dim = int(dim)
        self._metric = _check_metric(metric)
        self._dtype = _check_dtype(dtype)
        self._device = _resolve_device(device, _torch_device)
        self._table = None  # the DeviceTable of a device index (then _data is None)
        self._data = np.empty((0, self._dim), dtype=self._dtype)
        if self._device != "cpu":
            from . import _index_device  # noqa: PLC0415  (imports torch)

            tdev = _index_device.torch_device_for("cuda" if self._device == "cuda" else "cpu")
            self._table = _index_device.DeviceTable(tdev, self._dim, self._dtype, self._metric)
            self._data = None
        self._ids = np.empty(0, dtype=np.int64)
        self._removed = np.empty(0, dtype=np.uint8)  # 1: the row was removed, not yet compacted
        self._n = 0  # rows in use, removed ones included
        self._n_removed = 0
        # compact once removed rows exceed 1 / _compact_divisor of the rows (0: only on save)
        self._compact_divisor = 8
        self._next_id = 0
        self._reset_id_map(increasing=True)

    # ------------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        """Vector length D."""
        return self._dim

    @property
    def metric(self) -> str:
        """``"ip"``, ``"l2"`` or ``"cosine"``."""
        return self._metric

    @property
    def dtype(self) -> np.dtype:
        """Storage dtype of the vectors (float32 or float16)."""
        return np.dtype(self._dtype)

    @property
    def device(self) -> str:
        """Where the table lives and searches run: ``"cpu"``, ``"cuda"`` (or ``"torch-cpu"``, tests)."""
        return self._device

    @property
    def next_id(self) -> int:
        """The id the next default-numbered vector gets: one above every id ever added."""
        return self._next_id

    @property
    def ids(self) -> np.ndarray:
        """int64 array of shape (len,): the ids in storage (insertion) order, a copy."""
        if self._n_removed:
            return self._ids[: self._n][self._removed[: self._n] == 0]
        return self._ids[: self._n].copy()

    def __len__(self) -> int:
        return self._n - self._n_removed

    def __contains__(self, id_: Any) -> bool:
        # Python's equality, as for a set of ints: 3.0 and True (== 1) can be ids, 3.5, "3" or [3]
        # cannot (np.array([id_], dtype=np.int64) truncated 3.5 to 3 and parsed "3").
        if isinstance(id_, (float, np.floating)):
            if not float(id_).is_integer():
                return False
        elif not isinstance(id_, (int, np.integer, np.bool_)):
            return False
        value = int(id_)
        if not -(2**63) <= value < 2**63:
            return False
        return bool(self._positions(np.array([value], dtype=np.int64))[0] >= 0)

    def __repr__(self) -> str:
        return (f"Index(dim={self._dim}, metric={self._metric!r}, dtype={self._dtype!r}, "
                f"device={self._device!r}, len={len(self)})")

    # ------------------------------------------------------------------------ id map
    # Rows flagged removed keep their id until compaction, so an id may appear twice (a removed
    # row and a live one that was added again); at most one of them is live.
    # ids[:n] strictly increasing (the default numbering, or increasing user ids): lookups are a
    # binary search on ids itself (and ids are unique). Otherwise a sorted copy (_map_ids, _map_pos) covers rows
    # [0, _map_rows); newer rows form a tail that is sorted on demand and merged into the map
    # once it holds more than max(4096, _map_rows / 64) rows (a merge of two sorted runs: O(N)),
    # so a lookup never sorts more than that tail.
    def _reset_id_map(self, increasing: bool) -> None:
        self._increasing = increasing
        self._map_ids = np.empty(0, dtype=np.int64)
        self._map_pos = np.empty(0, dtype=np.int64)
        self._map_rows = 0
        self._tail_cache: tuple[int, np.ndarray, np.ndarray] | None = None

    def _tail_sorted(self) -> tuple[np.ndarray, np.ndarray]:
        n = self._n
        if self._tail_cache is None or self._tail_cache[0] != n:
            tail = self._ids[self._map_rows : n]
            order = np.argsort(tail, kind="stable")
            self._tail_cache = (n, tail[order], order.astype(np.int64) + self._map_rows)
        return self._tail_cache[1], self._tail_cache[2]

    def _merge_tail(self) -> None:
        if self._increasing or self._map_rows == self._n:
            return
        tail_ids, tail_pos = self._tail_sorted()
        ids = np.concatenate([self._map_ids, tail_ids])
        pos = np.concatenate([self._map_pos, tail_pos])
        order = np.argsort(ids, kind="stable")  # two sorted runs: timsort merges them in O(N)
        self._map_ids, self._map_pos = ids[order], pos[order]
        self._map_rows = self._n
        self._tail_cache = None

    def _maybe_merge_tail(self) -> None:
        if not self._increasing and self._n - self._map_rows > max(4096, self._map_rows >> 6):
            self._merge_tail()

    @staticmethod
    def _find(sorted_ids: np.ndarray, sorted_pos: np.ndarray | None, keys: np.ndarray) -> np.ndarray:
        if sorted_ids.size == 0:
            return np.full(keys.shape, -1, dtype=np.int64)
        at = np.searchsorted(sorted_ids, keys)
        clipped = np.minimum(at, sorted_ids.size - 1)
        found = sorted_ids[clipped] == keys
        pos = clipped if sorted_pos is None else sorted_pos[clipped]
        return np.where(found, pos, -1).astype(np.int64, copy=False)

    def _positions(self, keys: np.ndarray) -> np.ndarray:
        """Live row of each id in ``keys`` (int64), -1 where absent. O(len(keys) log N) plus at
        most a sort of the unmerged tail."""
        if keys.size > 64 and not bool(np.all(keys[1:] >= keys[:-1])):
            # Binary searches for sorted keys walk the id arrays in order (numpy also narrows
            # each search with the previous result): ~4x faster for 10k keys in 200k ids than
            # random probes, more than paying for the sort of the keys.
            order = np.argsort(keys, kind="stable")
            out = np.empty(keys.size, dtype=np.int64)
            out[order] = self._positions_of(keys[order])
            return out
        return self._positions_of(keys)

    def _positions_of(self, keys: np.ndarray) -> np.ndarray:
        if self._increasing:
            pos = self._find(self._ids[: self._n], None, keys)
            if self._n_removed:
                pos[(pos >= 0) & (self._removed[np.maximum(pos, 0)] != 0)] = -1
            return pos
        pos = self._find(self._map_ids, self._map_pos, keys)
        if self._map_rows < self._n:
            tail_ids, tail_pos = self._tail_sorted()
            tail_hit = self._find(tail_ids, tail_pos, keys)
            pos = np.where(pos >= 0, pos, tail_hit)
        if self._n_removed:
            dead = np.flatnonzero((pos >= 0) & (self._removed[np.maximum(pos, 0)] != 0))
            if dead.size:  # ids whose first match is a removed row: look at all their rows
                pos[dead] = self._live_rows(keys[dead])
        return pos

    def _live_rows(self, keys: np.ndarray) -> np.ndarray:
        """Live row of each id (-1: none) looking at every map and tail entry of the id (an id
        has at most one live row, and a few removed ones until compaction). Vectorised."""
        out = np.full(keys.shape, -1, dtype=np.int64)
        for ids, rows in ((self._map_ids, self._map_pos), self._tail_sorted()):
            lo = np.searchsorted(ids, keys, "left")
            counts = np.searchsorted(ids, keys, "right") - lo
            total = int(counts.sum())
            if total == 0:
                continue
            which = np.repeat(np.arange(keys.size), counts)
            first = np.repeat(lo - (np.cumsum(counts) - counts), counts)
            cand = rows[first + np.arange(total)]
            live = self._removed[cand] == 0
            out[which[live]] = cand[live]
        return out

    # ------------------------------------------------------------------------ add / remove
    def _capacity(self) -> int:
        return self._table.capacity if self._table is not None else self._data.shape[0]

    def _reserve(self, rows: int, new_cap: int | None = None) -> None:
        """Room for ``rows`` rows: when short, the capacity doubles (at least), or becomes ``new_cap``."""
        cap = self._capacity()
        if rows <= cap:
            return
        new_cap = max(rows, 2 * cap, 16) if new_cap is None else max(rows, new_cap)
        if self._table is not None:
            self._table.reserve(new_cap, self._n)
            data = None
        else:
            data = np.empty((new_cap, self._dim), dtype=self._dtype)
            data[: self._n] = self._data[: self._n]
        ids = np.empty(new_cap, dtype=np.int64)
        ids[: self._n] = self._ids[: self._n]
        removed = np.zeros(new_cap, dtype=np.uint8)
        removed[: self._n] = self._removed[: self._n]
        self._data, self._ids, self._removed = data, ids, removed

    def _new_ids(self, ids: Any, b: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The checked ids of ``b`` new rows, and the order that sorts them (None: already
        sorted); the order is reused as the sorted tail of the id map."""
        if ids is None:
            if self._next_id + b - 1 > np.iinfo(np.int64).max:
                raise ValueError("default ids would exceed the int64 range; pass ids explicitly")
            return np.arange(self._next_id, self._next_id + b, dtype=np.int64), None
        new = _array.int_array(ids, "ids", length=b)
        if b == 0:
            return new, None
        # One sort serves both checks: duplicates are neighbours, and sorted keys make the
        # lookups of existing ids walk the id map in order.
        order = np.argsort(new, kind="stable")
        sorted_new = new[order]
        dup = np.flatnonzero(sorted_new[1:] == sorted_new[:-1])
        if dup.size:
            raise ValueError(f"ids must be unique, got id {int(sorted_new[dup[0]])} more than once in ids")
        clash = np.empty(b, dtype=np.int64)
        clash[order] = self._positions_of(sorted_new)
        if np.any(clash >= 0):
            raise ValueError(f"ids must be new, got id {int(new[np.argmax(clash >= 0)])} which is already in the index")
        return new, order

    def add(self, x: Any, ids: Any = None) -> np.ndarray:
        """Append vectors.

        Parameters
        ----------
        x : array of shape (B, D)
            Finite vectors (numpy, array-like or torch CPU tensor; any real dtype, converted to
            float32 first). B may be 0.
        ids : array of shape (B,), optional
            int64 ids, unique within ``x`` and not already in the index (any int64 value,
            negative included). Default: ``next_id, next_id + 1, ...``. ``next_id`` is always
            one above the largest id ever added, so default ids never clash.

        Returns
        -------
        int64 array of shape (B,)
            The ids of the added rows.

        Raises
        ------
        ValueError
            Wrong shape, NaN/inf rows, a zero vector under ``"cosine"``, a value beyond the
            float16 range with ``dtype="float16"``, duplicate or existing ids. Nothing is
            added when it raises.

        Notes
        -----
        Time O(B D) amortised (a full table is first squeezed of its removed rows, then doubles
        if still too small; O(N D) at that moment, see ``remove``), plus O(B log N) for user ids
        (the keys are sorted first, so the binary searches walk the id map in order). Peak
        memory beyond the table: a float32 copy of ``x`` when it is not already C-contiguous
        float32, for ``"cosine"`` a 65536-row float64 working chunk, and during a doubling the
        old and the new table together. float16 rounding runs in the C++
        core (F16C where the CPU has it; bit-identical to numpy's ``astype(float16)``).
        """
        a = _array.float_array(x, "x", dtype=np.dtype(np.float32), finite_cast=True)
        if a.ndim != 2 or a.shape[1] != self._dim:
            raise ValueError(f"x must have shape (B, {self._dim}), got {tuple(a.shape)}")
        b = a.shape[0]
        _array.check_finite_rows(a, "x")
        if b and self._n + b > self._capacity() and self._n_removed:
            # Full table: reuse the flagged rows' space (one in-place pass) before growing it.
            # Done before the id checks, which then see no flagged rows (cheaper lookups); it
            # changes nothing visible if the add is then refused.
            self._compact()
            need = self._n + b
            if self._capacity() - need < self._capacity() // 16:
                # Keep headroom: a table that remove + add churn keeps full would otherwise be
                # squeezed by every add, a pass over all N rows however few were removed. After
                # this, the next forced pass is at least N/16 added rows away.
                target = max(need + need // 8, 16)
                self._reserve(target, target)
        new_ids, order = self._new_ids(ids, b)
        if b == 0:
            return new_ids
        n = self._n
        self._reserve(n + b)
        # Rows are written past the live rows and only counted once all are valid, so a bad row
        # leaves the index unchanged (the capacity may have grown).
        for start in range(0, b, _ADD_CHUNK_ROWS):
            rows = a[start : start + _ADD_CHUNK_ROWS]
            if self._table is not None:  # converted on the host, then one copy to the device
                dest = np.empty((rows.shape[0], self._dim), dtype=self._dtype)
            else:
                dest = self._data[n + start : n + start + rows.shape[0]]
            if self._metric == "cosine":
                rows = self._normalised(rows, start)
            if self._dtype == "float16":
                bad = _core.float_to_half(rows, dest.view(np.uint16))
                if bad >= 0:
                    raise ValueError(f"x row {start + bad} has a value beyond the float16 range "
                                     f"(|v| > {_FLOAT16_MAX:g} after rounding); use dtype='float32'")
            else:
                dest[...] = rows
            if self._table is not None:
                self._table.write(n + start, dest)
        self._ids[n : n + b] = new_ids
        self._removed[n : n + b] = 0
        if self._increasing and not (np.all(new_ids[1:] > new_ids[:-1]) and (n == 0 or new_ids[0] > self._ids[n - 1])):
            # Switch to the sorted map: the existing increasing rows are already a sorted run.
            self._increasing = False
            self._map_ids = self._ids[:n].copy()
            self._map_pos = np.arange(n, dtype=np.int64)
            self._map_rows = n
            self._tail_cache = None
        self._n = n + b
        self._next_id = max(self._next_id, int(new_ids.max()) + 1)
        if not self._increasing and self._map_rows == n:
            # The tail of the id map is exactly the rows just added, sorted already above.
            rows = np.arange(n, n + b, dtype=np.int64) if order is None else order.astype(np.int64) + n
            self._tail_cache = (n + b, new_ids if order is None else new_ids[order], rows)
        self._maybe_merge_tail()
        return new_ids

    @staticmethod
    def _normalised(rows: np.ndarray, offset: int) -> np.ndarray:
        """float32 rows divided by their norm (computed and divided in float64, then rounded)."""
        r64 = rows.astype(np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", r64, r64))
        zero = norms == 0
        if zero.any():
            raise ValueError(f"x row {offset + int(np.argmax(zero))} is a zero vector, which has no cosine "
                             f"similarity (metric='cosine' stores normalised vectors)")
        r64 /= norms[:, None]
        return r64.astype(np.float32)

    def remove(self, ids: Any) -> int:
        """Remove the vectors with these ids; ids not in the index are ignored.

        Parameters
        ----------
        ids : array of shape (R,)
            int64 ids (repeats count once).

        Returns
        -------
        int
            How many vectors were removed.

        Notes
        -----
        Time O(R log N): the rows are only flagged (searches skip them). When more than 1/8 of
        the rows are flagged, or an ``add`` finds the table full, one in-place pass squeezes
        them out (O(N D) bytes moved, keeping the order of the others, plus an O(N) update of
        the id map). A pass forced by a full table that leaves less than 1/16 of it free grows
        the table to 9/8 of the rows (one copy), so the next forced pass is at least N/16 added
        rows away: the amortised cost is O(D) per removed or added row, also for a table kept
        full by remove + add churn; searches meanwhile scan at most 8/7 of the live rows. Extra
        memory O(R) (and O(N) for the id map while compacting when ids are not increasing).
        """
        keys = np.sort(_array.int_array(ids, "ids"))  # a sorted copy: in-order lookups
        if keys.size > 1:
            keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
        if keys.size == 0 or len(self) == 0:
            return 0
        pos = self._positions(keys)
        pos = pos[pos >= 0]
        r = int(pos.size)
        if r:
            self._removed[pos] = 1
            if self._table is not None:
                self._table.flag(pos)
            self._n_removed += r
            if self._n_removed * self._compact_divisor > self._n:
                self._compact()
        return r

    def _compact(self) -> None:
        """Squeeze the flagged rows out of the table in place (order kept) and fix the id map."""
        if self._n_removed == 0:
            return
        n = self._n
        pos = np.flatnonzero(self._removed[:n]).astype(np.int64)
        r = int(pos.size)
        if not self._increasing:
            # Drop the removed rows from the sorted map and shift the others' rows down by the
            # number of removed rows before them (gathers, O(N)).
            self._merge_tail()
            flags = self._removed[:n]
            removed_before = np.cumsum(flags, dtype=np.int64)
            keep = flags[self._map_pos] == 0
            rows = self._map_pos[keep]
            self._map_pos = rows - removed_before[rows]
            self._map_ids = self._map_ids[keep]
            self._map_rows = n - r
            self._tail_cache = None
        if self._table is not None:
            self._table.compact(n)
        else:
            _core.remove_rows(self._data, n, pos)
        _core.remove_rows(self._ids, n, pos)
        self._removed[: n - r] = 0
        self._n = n - r
        self._n_removed = 0
        log.debug("curata.search.Index: compacted %d removed rows, %d left", r, n - r)

    def reconstruct(self, ids: Any) -> np.ndarray:
        """The stored vectors of ``ids``.

        Parameters
        ----------
        ids : int array-like (R,)
            Live ids of the index (any order, repeats allowed).

        Returns
        -------
        float32 numpy array (R, D)
            Normalised for ``"cosine"``, rounded for float16 storage (on the device index:
            copied to the host). Raises ``KeyError`` naming the first id not in the index.

        Notes
        -----
        O(R log N) id lookups plus O(R D) copying; memory: the (R, D) output.
        """
        keys = _array.int_array(ids, "ids")
        pos = self._positions(keys)
        if np.any(pos < 0):
            raise KeyError(f"id {int(keys[np.argmax(pos < 0)])} is not in the index")
        if self._table is not None:
            return self._table.host_rows(pos)
        return self._data[pos].astype(np.float32)

    # ------------------------------------------------------------------------ search
    def _queries(self, queries: Any) -> Any:
        if self._table is not None:  # a float32 tensor on the table's device (CUDA input stays there)
            from . import _search_device  # noqa: PLC0415

            torch = _search_device._torch()
            q = _search_device._as_tensor(torch, queries, "queries", self._table.device)
            if q.dim() != 2 or q.shape[1] != self._dim:
                raise ValueError(f"queries must have shape (M, {self._dim}), got {tuple(q.shape)}")
            return q.to(torch.float32).contiguous()
        q = _array.float_array(queries, "queries", dtype=np.dtype(np.float32), finite_cast=True)
        if q.ndim != 2 or q.shape[1] != self._dim:
            raise ValueError(f"queries must have shape (M, {self._dim}), got {tuple(q.shape)}")
        # Stored cosine rows are unit vectors; a query's own norm must not overflow either.
        return _array.cosine_safe_rows(q) if self._metric == "cosine" else q

    def _run(self, op: str, q: np.ndarray, arg: Any) -> tuple:
        """Every search goes through here: one place to route to a device.

        ``op`` is ``"knn"`` (``arg`` = k) or ``"range"`` (``arg`` = radius); returns the core's
        tuple with row positions (not ids) and the non-finite query row (or -1).
        """
        if self._table is not None:
            # Device path: non-finite queries raise inside (same message); positions come back
            # to the host to be mapped to ids.
            if op == "knn":
                distances, positions = self._table.knn(q, arg, self._n, self._n_removed)
                return distances, positions.cpu().numpy(), -1
            lims, distances, positions = self._table.range(q, arg, self._n, self._n_removed)
            return lims, distances, positions.cpu().numpy(), -1
        code = _METRICS[self._metric]
        base = self._data[: self._n]
        removed = self._removed[: self._n] if self._n_removed else None
        f16 = self._dtype == "float16"
        if f16:
            base = base.view(np.uint16)
        if op == "knn":
            if f16:
                distances, positions, _, bad_query = _core.knn_f16(base, q, arg, code, removed)
            else:
                distances, positions, _, bad_query = _core.knn(base, q, arg, code, False, removed)
            return distances, positions, bad_query
        fn = _core.range_search_f16 if f16 else _core.range_search
        lims, distances, positions, _, bad_query = fn(base, q, arg, code, removed)
        return lims, distances, positions, bad_query

    def search(self, queries: Any, k: int) -> tuple[Any, Any]:
        """The ``k`` nearest stored vectors of every query, exactly.

        Parameters
        ----------
        queries : array of shape (M, D)
            Finite query vectors (M may be 0); any real dtype, computed in float32.
        k : int
            1 <= k <= len(index).

        Returns
        -------
        distances : float32 array of shape (M, k)
            Best first, as :func:`curata.search.knn` reports them for this metric (for
            ``"cosine"``: the cosine similarity with the stored, normalised vector).
        ids : int64 array of shape (M, k)
            User ids. Equal distances are ordered by insertion (earlier first).
            Both outputs have the array kind of ``queries``.

        Raises
        ------
        ValueError
            The index is empty (there is nothing to return k of), k out of range, wrong shape,
            NaN/inf queries.
        TypeError
            k not an int.

        Notes
        -----
        Time O(M N D) on ``curata.get_num_threads()`` threads. Peak memory beyond the index and
        the outputs: as :func:`curata.search.knn` (per thread one fixed tile; float16 adds one
        float32 base block of about 128 KiB per thread). Device index: as
        :func:`curata._search_device.knn_torch` (a workspace of at most 1 GiB, a quarter of the
        free device memory), distances = float64 scores of the stored vectors rounded to float32
        (see the class notes), the (M, k) positions copied to the host to map them to ids.
        """
        q = self._queries(queries)
        live = len(self)
        if live == 0:
            raise ValueError("cannot search an empty Index (len 0): add vectors first")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be an int, got {type(k).__name__}")
        if not 1 <= k <= live:
            raise ValueError(f"k must be in [1, {live}] (the number of vectors in the index), got {k}")
        distances, positions, bad_query = self._run("knn", q, int(k))
        if bad_query >= 0:
            raise ValueError(f"queries must be finite, got NaN or infinity in row {bad_query}")
        ids = self._ids[positions]
        return self._like(distances, queries), _array.like(ids, queries)

    def _like(self, result: Any, queries: Any) -> Any:
        """A numpy (CPU path) or torch (device path) result as the array kind of ``queries``."""
        if self._table is None:
            return _array.like(result, queries)
        return _array.like_torch(result, queries)

    def range_search(self, queries: Any, radius: float) -> tuple[Any, Any, Any]:
        """Every stored vector within ``radius`` of each query, exactly.

        ``"l2"``: vectors whose squared Euclidean distance is ``<= radius`` (``radius`` is on
        the squared distance, as ``search`` reports it). ``"ip"``/``"cosine"``: vectors whose
        similarity is ``>= radius``. Both bounds are inclusive and compare the float32 values
        ``search`` would report, so a vector exactly at the radius is returned. (faiss's
        range_search uses strict bounds: ``< radius`` for L2, ``> radius`` for IP.)

        Parameters
        ----------
        queries : array of shape (M, D)
            Finite query vectors (M may be 0).
        radius : float
            Not NaN (``inf`` is allowed). Rounded to float32 before comparing.

        Returns
        -------
        lims : int64 array of shape (M + 1,)
            The hits of query ``i`` are entries ``lims[i]:lims[i + 1]`` of the next two arrays
            (faiss's layout); ``lims[0] == 0``.
        distances : float32 array of shape (lims[M],)
        ids : int64 array of shape (lims[M],)
            Within a query, hits are in insertion order (not sorted by distance).
            All three outputs have the array kind of ``queries``. An empty index returns
            ``lims`` of zeros and empty arrays.

        Notes
        -----
        Time O(M N D). Peak memory beyond the index: per thread one fixed tile, plus the hits
        twice (12 bytes each) while they are concatenated, plus 48 bytes per query (and per
        thread when M < 20). Device index: :func:`curata._search_device.range_torch` (tiled
        GEMM, candidates within the GEMM error bound of the radius re-checked in float64; hits
        also in insertion order), memory the workspace plus about twice 20 bytes per hit.
        """
        q = self._queries(queries)
        r = _array.real_number(radius, "radius")  # a Python int beyond the float range: +-inf
        if r != r:
            raise ValueError("radius must not be NaN")
        lims, distances, positions, bad_query = self._run("range", q, r)
        if bad_query >= 0:
            raise ValueError(f"queries must be finite, got NaN or infinity in row {bad_query}")
        ids = self._ids[positions]
        return self._like(lims, queries), self._like(distances, queries), _array.like(ids, queries)

    # ------------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the index to ``path`` atomically (see the module docstring for the format).

        The file is written to a temporary file in the same directory, flushed and fsync'ed,
        then renamed over ``path`` (``os.replace``) and the directory is fsync'ed: after a
        crash or an error ``path`` holds either the old file or the complete new one, and the
        temporary file is removed when an error is raised.

        Parameters
        ----------
        path : str, bytes or os.PathLike
            A directory raises ``IsADirectoryError``, a missing parent directory
            ``FileNotFoundError`` (before anything is written).

        Returns
        -------
        None
            The file holds 72 header bytes, then ``len(self) * dim * itemsize`` bytes of
            vectors (4 for float32, 2 for float16 storage) and ``8 * len(self)`` bytes of ids.

        Raises
        ------
        OSError
            The file cannot be written (``ENOSPC`` is raised before any data is written where the
            file system can reserve the space up front).

        Notes
        -----
        Time O(N D): one pass over the table, each 2 MiB piece CRC-32C'ed (~20 GB/s with
        SSE4.2) right before it is written. Most of a large save is the file system's: the fsync
        waits for the disk, and the rename frees the blocks of the file it replaces (measured
        for 400 MB on ext4: 0.07 s writing, 0.13 s fsync, 0.10 s rename). On Linux the
        temporary file is preallocated (``fallocate``) so the writes need no block allocation
        per page, and each piece is handed to the disk as soon as it is written. Rows flagged by
        ``remove`` are squeezed out first, in place: a mutation, so not while another thread
        searches the same index (see the class notes). A device index
        copies its table to the host first (one extra host copy). No other extra memory (on
        big-endian machines a little-endian copy of the table).
        """
        path = os.fspath(path)
        self._compact()
        n = self._n
        table = self._table.host_table(n) if self._table is not None else self._data[:n]
        vectors = table.astype(np.dtype(self._dtype).newbyteorder("<"), copy=False)
        ids = self._ids[:n].astype("<i8", copy=False)
        vview, iview = _bytes_view(vectors), _bytes_view(ids)
        dim, metric, dtype, next_id = self._dim, _METRICS[self._metric], _DTYPES[self._dtype], self._next_id

        def write(f: Any) -> None:
            # The header holds the sections' checksums, which are computed while the sections
            # are written: a placeholder goes first and the real header over it at the end (the
            # file only becomes visible under ``path`` once complete and fsync'ed).
            _write_all(f, memoryview(bytes(_HEADER_SIZE)))
            vcrc = _write_checksummed(f, vview, _HEADER_SIZE)
            icrc = _write_checksummed(f, iview, _HEADER_SIZE + len(vview))
            f.seek(0)
            _write_all(f, memoryview(_pack_header(FORMAT_VERSION, dim, metric, dtype, n, next_id, len(vview),
                                                  len(iview), vcrc, icrc)))

        _io.atomic_write(path, write, size=_HEADER_SIZE + len(vview) + len(iview))

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto", *, _torch_device: Any = None) -> "Index":
        """Read an index written by :meth:`save`, onto ``device`` (as in the constructor; the
        file does not record where it was saved from).

        Reads format versions 1 (zlib CRC-32 checksums) and 2 (CRC-32C).

        Parameters
        ----------
        path : str, bytes or os.PathLike
        device : {"auto", "cpu", "cuda"}
            Where the loaded index lives, chosen as in the constructor.

        Returns
        -------
        Index
            Same dim, metric, storage dtype (float32 or float16), ids (int64, insertion order)
            and ``next_id`` as the saved index.

        Raises
        ------
        ValueError
            The file is not a curata index, was written by a newer format version, is
            truncated or has trailing bytes, or fails a checksum or a consistency check (the
            message says which).
        OSError
            The file cannot be read.

        Notes
        -----
        Time O(N D), one pass: the sections are read straight into the new table (capacity =
        count, no second copy) in 2 MiB pieces, each checksummed and scanned for non-finite
        values while it is still in the cache. Ids are checked for duplicates with one sort,
        which also builds the id map when they are not increasing (O(N log N), 16 bytes per
        vector). For a device index the table is read and checked on the host, then copied to
        the device in 65536-row pieces (host memory: the table once, briefly).
        """
        path = os.fspath(path)
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            head = _read_into(f, memoryview(bytearray(_HEADER_SIZE)))
            fields = _parse_header(head, size, path)
            index = cls(fields["dim"], _METRIC_NAMES[fields["metric"]], _DTYPE_NAMES[fields["dtype"]], device,
                        _torch_device=_torch_device)
            n = fields["count"]
            checksum, checksum_name = _CHECKSUMS[fields["version"]]
            data = np.empty((n, index._dim), dtype=np.dtype(index._dtype).newbyteorder("<"))
            ids = np.empty(n, dtype="<i8")
            # On little-endian machines the non-finite scan runs on each piece as it is read.
            scan = sys.byteorder == "little"
            bits = data.view(np.uint16 if index._dtype == "float16" else np.uint32) if scan else None
            bad_row = _read_section(f, data, "vectors", fields["vectors_crc"], checksum, checksum_name, path, bits)
            _read_section(f, ids, "ids", fields["ids_crc"], checksum, checksum_name, path)
        index._data = data.astype(index._dtype, copy=False)
        index._ids = ids.astype(np.int64, copy=False)
        index._removed = np.zeros(n, dtype=np.uint8)
        index._n = n
        _check_ids(index, fields, path)
        if not scan:
            bad_row = _core.first_nonfinite_row(index._data.view(np.uint16 if index._dtype == "float16" else np.uint32))
        if bad_row >= 0:
            raise ValueError(f"{path}: stored vector {bad_row} is not finite: the file is inconsistent")
        if index._table is not None:
            index._table.load(index._data)
            index._data = None
        return index


def _read_into(f: Any, view: memoryview) -> memoryview:
    """Fill ``view`` from the unbuffered file ``f`` (looping over short reads); returns the part
    filled, shorter than ``view`` only at the end of the file."""
    got = 0
    while got < len(view):
        k = f.readinto(view[got:])
        if not k:
            break
        got += k
    return view[:got]


def _read_section(f: Any, arr: np.ndarray, name: str, expected_crc: int, checksum: Any, checksum_name: str,
                  path: str, bits: np.ndarray | None = None) -> int:
    """Read ``arr``'s bytes from ``f`` in pieces of whole rows, checksum each piece while it is in
    the cache and, with ``bits`` (``arr`` as a (rows, D) unsigned-integer view), look for the
    first row holding a NaN or an infinity. Raises ValueError on a short read or a checksum
    mismatch; returns that first non-finite row, or -1."""
    view = _bytes_view(arr) if arr.size else memoryview(b"")
    row_bytes = arr.itemsize * (arr.shape[1] if arr.ndim == 2 else 1)
    step = max(1, _CHUNK_BYTES // row_bytes) * row_bytes
    crc, bad_row = 0, -1
    for start in range(0, len(view), step):
        piece = view[start : start + step]
        if len(_read_into(f, piece)) != len(piece):
            raise ValueError(f"{path}: the file is truncated inside the {name} section")
        crc = checksum(piece, crc)
        if bits is not None and bad_row < 0:
            first = start // row_bytes
            row = _core.first_nonfinite_row(bits[first : first + len(piece) // row_bytes])
            if row >= 0:
                bad_row = first + row
    if crc != expected_crc:
        raise ValueError(f"{path}: the {name} section fails its {checksum_name} check: the file is corrupt")
    return bad_row


def _parse_header(head: bytes | memoryview, size: int, path: str) -> dict[str, int]:
    if len(head) < 12:
        if MAGIC.startswith(bytes(head[:8])) and len(head) > 0:
            raise ValueError(f"{path}: the file is truncated ({size} bytes, a curata index header is {_HEADER_SIZE})")
        raise ValueError(f"{path}: not a curata index file (too short to hold the header)")
    if head[:8] != MAGIC:
        raise ValueError(f"{path}: not a curata index file (magic bytes {bytes(head[:8])!r}, expected {MAGIC!r})")
    (version,) = struct.unpack_from("<I", head, 8)
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: index format version {version} is newer than this curata reads (up to "
                         f"{FORMAT_VERSION}); upgrade curata (or the file is corrupt)")
    if version == 0:
        raise ValueError(f"{path}: invalid index format version 0: the file is corrupt")
    if len(head) < _HEADER_SIZE:
        raise ValueError(f"{path}: the file is truncated ({size} bytes, the header alone is {_HEADER_SIZE})")
    checksum, checksum_name = _CHECKSUMS[version]
    body = bytes(head[: _HEADER.size])
    (header_crc,) = struct.unpack_from("<I", head, _HEADER.size)
    if checksum(body) != header_crc:
        raise ValueError(f"{path}: the header fails its {checksum_name} check: the file is corrupt")
    (_, _, header_size, dim, metric, dtype, id_dtype, reserved, count, next_id, vbytes, ibytes, vcrc,
     icrc) = _HEADER.unpack(body)
    problems = []
    if header_size != _HEADER_SIZE:
        problems.append(f"header size {header_size}, expected {_HEADER_SIZE}")
    if dim < 1:
        problems.append(f"dim {dim}")
    if metric not in _METRIC_NAMES:
        problems.append(f"metric code {metric}")
    if dtype not in _DTYPE_NAMES:
        problems.append(f"dtype code {dtype}")
    if id_dtype not in _ID_DTYPES:
        problems.append(f"id dtype code {id_dtype}")
    if next_id > _NEXT_ID_MAX:
        problems.append(f"next id {next_id} is beyond 2^63")
    if not problems:
        itemsize = np.dtype(_DTYPE_NAMES[dtype]).itemsize
        if vbytes != count * dim * itemsize:
            problems.append(f"vectors section of {vbytes} bytes for {count} x {dim} {_DTYPE_NAMES[dtype]}")
        if ibytes != count * 8:
            problems.append(f"ids section of {ibytes} bytes for {count} ids")
    if problems:
        raise ValueError(f"{path}: inconsistent header ({'; '.join(problems)}): the file is corrupt")
    expected = _HEADER_SIZE + vbytes + ibytes
    if size < expected:
        raise ValueError(f"{path}: the file is truncated: {size} bytes, the header says {expected}")
    if size > expected:
        raise ValueError(f"{path}: {size - expected} unexpected bytes after the index data ({expected} bytes)")
    return {"version": version, "dim": dim, "metric": metric, "dtype": dtype, "count": count, "next_id": next_id,
            "vectors_crc": vcrc, "ids_crc": icrc}


def _check_ids(index: Index, fields: dict[str, int], path: str) -> None:
    """Unique ids, next id above them all; sets the id map (one sort, used for both)."""
    n = index._n
    ids = index._ids[:n]
    increasing = bool(np.all(ids[1:] > ids[:-1]))
    if increasing:
        largest = int(ids[-1]) if n else None
    else:
        # Unique ids need no stable sort; a duplicate is reported, never mapped.
        order = np.argsort(ids)
        sorted_ids = ids[order]
        if np.any(sorted_ids[1:] == sorted_ids[:-1]):
            raise ValueError(f"{path}: the ids section holds duplicate ids: the file is inconsistent")
        largest = int(sorted_ids[-1])
    if largest is not None and fields["next_id"] <= largest:
        raise ValueError(f"{path}: next id {fields['next_id']} is not above the largest id {largest}")
    index._next_id = fields["next_id"]
    index._reset_id_map(increasing=increasing)
    if not increasing:
        index._map_ids, index._map_pos, index._map_rows = sorted_ids, order.astype(np.int64, copy=False), n
