"""Device path of :mod:`curata.drift`: the per-column two-sample statistics and MMD in torch.

Runs where the data lives: :mod:`curata.drift` sends torch CUDA tensors (and CuPy arrays, viewed
as torch tensors through DLPack when torch is importable) here instead of copying them to the
host. The code is plain torch, so the same functions run on CPU tensors; the tests call them on
CPU tensors and compare with the C++ core.

Per-column tests (:func:`column_summaries`)
    Columns are processed in chunks. For a chunk of ``c`` columns the pooled sample is laid out
    as ``(c, n + m)`` and sorted along each row once (``torch.sort``, stable); the origin of every
    sorted value (ref or cur) comes from the sort indices. Every statistic is then a pass of
    cumulative sums over the sorted rows:

    * tie runs (equal values, ``==``) from neighbour comparisons; run ids by a cumulative sum,
      the run starts by ``nonzero``, so each element knows the first and last position of its
      run: ``below`` = run start, ``size``. Scans run over the flattened chunk (one device-wide
      scan; torch scans along the rows of a few long rows use one thread block per row);
    * KS: ``F_ref - F_cur`` at the last element of each run (``count / size`` divisions, as the
      core), extremes over runs holding a ref (resp. cur) value, first location of each extreme;
    * Cramér-von Mises: ``sum (2 midrank - 2 rank_in_sample)^2`` per sample, Mann-Whitney: the
      doubled midrank sum of ref and ``sum t^3 - t`` over runs. These are exact integers: each
      term fits int64, and sums are split into high and low 31-bit halves so that neither can
      overflow; the halves are combined on the host in Python integers. A CvM term is below
      (2 (n + m) + 1)^2 and the sum of high halves below (n + m)^3 / 2^29, both far inside int64
      while n + m < 10^9 (at 1M + 1M: 1.6e13 and 1.5e10). The CvM sums stay exact integers up to
      the core (``cvm_u4_hi/lo``), which forms the statistic from them exactly; the Mann-Whitney
      sums are rounded to float64 once, as the core rounds its 128-bit integers;
    * Wasserstein / energy: ``|F_ref - F_cur|`` (resp. squared) at each run end times the gap to
      the next value, summed in float64.

    Only the per-column summaries (a few (D,) arrays) go to the host, where the p-values are
    computed by the core (``_core.drift_*_from_summaries``), the very code the CPU path uses.

MMD (:func:`mmd_statistics`)
    The unbiased MMD^2 of every labelling (observed + B permutations) from one pass over the
    upper block triangle of the pooled kernel matrix, as the core does: for a block of rows I and
    columns J >= I, one GEMM gives ``-|x_i - x_j|^2 / (2 sigma^2)`` directly (the squared norms are
    folded into the operands), ``exp`` in place, and one GEMM with the label block
    ``[a_J | 1]`` gives ``K a_J`` (hence ``a_I' K a_J`` and ``1' K a_J``) and the row sums. The
    labellings are the host's (:func:`curata.drift.permutation_labels`), uploaded once, so the
    permutations are the CPU path's.

Nothing here imports torch at module import time.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from . import _array

log = logging.getLogger("curata.drift")

# Device memory the per-column pass may use beyond the inputs (bytes); see column_summaries.
COLUMN_WORKSPACE_BYTES = 2 << 30
# Bytes of workspace per pooled value of a chunk: the sort (value + int64 index, and the sort's
# own double buffers) and ~14 int64 / float64 temporaries (counts, run bounds, ranks, gaps) alive
# at the peak, rounded up.
BYTES_PER_VALUE = 160
# Device memory the MMD pass may use for kernel blocks (bytes); see mmd_statistics.
MMD_WORKSPACE_BYTES = 4 << 30
_SPLIT = 31  # exact integer sums are carried as (sum of term >> 31, sum of term & (2^31 - 1))
_MASK = (1 << _SPLIT) - 1
_INT32_LIMIT = 1 << 30  # chunks with fewer values keep positions and counts in int32
_BIG_RUN = 1 << 20  # runs at least this long have t^3 - t summed on the host (int64 would overflow)

KS, CVM, MWU, WASSERSTEIN, ENERGY = "ks", "cvm", "mwu", "wasserstein", "energy"
ALL = (KS, CVM, MWU, WASSERSTEIN, ENERGY)


def _torch():
    import torch  # noqa: PLC0415  (optional dependency, only on the device path)

    return torch


# ---------------------------------------------------------------------------------- dispatch
def wants_device(*arrays: Any) -> bool:
    """True when any argument is a CUDA array (torch CUDA tensor, or CuPy with torch importable)."""
    return _array.torch_device_path(*arrays)


def as_tensor(x: Any, name: str, device: Any = None):
    """A torch tensor view of x (CuPy through DLPack, zero copy), on ``device`` if given."""
    return _array.torch_tensor(x, name, device=device)


def _compute_dtype(torch, a, b):
    """float32 when both are float32 or narrower floats (exact), float64 otherwise (as the core)."""
    narrow = (torch.float16, torch.bfloat16, torch.float32)
    if a.dtype in narrow and b.dtype in narrow:
        return torch.float32
    return torch.float64


def tensor_pair(ref: Any, cur: Any, min_rows: int):
    """2-D torch views of ref and cur on one device (ref's if it is CUDA) in one float dtype."""
    torch = _torch()
    a = as_tensor(ref, "ref")
    b = as_tensor(cur, "cur")
    device = a.device if a.is_cuda else b.device
    a, b = a.to(device), b.to(device)
    out = []
    for t, name in ((a, "ref"), (b, "cur")):
        if t.ndim == 1:
            t = t.reshape(-1, 1)
        elif t.ndim != 2:
            raise ValueError(f"{name} must have shape (n,) or (n, D), got {tuple(t.shape)}")
        out.append(t)
    a, b = out
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"ref and cur must have the same number of columns D, got {a.shape[1]} and {b.shape[1]}")
    for t, name in ((a, "ref"), (b, "cur")):
        if t.shape[0] < min_rows:
            raise ValueError(
                f"{name} must have at least {min_rows} row{'s' if min_rows > 1 else ''}, got shape {tuple(t.shape)}"
            )
    dtype = _compute_dtype(torch, a, b)
    return a.to(dtype), b.to(dtype)


# ---------------------------------------------------------------------------------- columns
def _columns_per_chunk(rows: int, workspace_bytes: int | None) -> int:
    budget = COLUMN_WORKSPACE_BYTES if workspace_bytes is None else int(workspace_bytes)
    return max(1, budget // (BYTES_PER_VALUE * max(rows, 1)))


def _split_sum(torch, term, weight):
    """(sum of high halves, sum of low halves) per row of int64 ``term * weight`` (weight 0/1)."""
    term = term * weight
    return (term >> _SPLIT).sum(dim=1), (term & _MASK).sum(dim=1)


def _joined(hi: np.ndarray, lo: np.ndarray) -> list[int]:
    return [(int(h) << _SPLIT) + int(l) for h, l in zip(hi.tolist(), lo.tolist())]


def _nan_counts(torch, a, b, step: int):
    D = a.shape[1]
    nan_ref = torch.zeros(D, dtype=torch.int64, device=a.device)
    nan_cur = torch.zeros(D, dtype=torch.int64, device=a.device)
    if a.dtype.is_floating_point:
        for j0 in range(0, D, step):
            j1 = min(D, j0 + step)
            nan_ref[j0:j1] = torch.isnan(a[:, j0:j1]).sum(dim=0)
            nan_cur[j0:j1] = torch.isnan(b[:, j0:j1]).sum(dim=0)
    return nan_ref.cpu().numpy(), nan_cur.cpu().numpy()


def _check_counts(n_ref, n_cur, nan_ref, nan_cur, nan_policy: int, min_size: int, test: str) -> None:
    """The core's errors, lowest column first, with the core's messages."""
    for j in range(n_ref.size):
        if nan_policy == 0 and (nan_ref[j] > 0 or nan_cur[j] > 0):
            which = "ref" if nan_ref[j] > 0 else "cur"
            raise ValueError(f"{which} contains NaN (column {j}); pass nan_policy='omit' to drop NaN values per column")
        if n_ref[j] < min_size or n_cur[j] < min_size:
            bad_ref = n_ref[j] < min_size
            have = int(n_ref[j] if bad_ref else n_cur[j])
            nan = int(nan_ref[j] if bad_ref else nan_cur[j])
            msg = f"{'ref' if bad_ref else 'cur'} column {j} has {have} value{'' if have == 1 else 's'}"
            if nan > 0:
                msg += f" after omitting {nan} NaN"
            raise ValueError(msg + f"; {test} needs at least {min_size} per column")


def column_summaries(
    ref: Any,
    cur: Any,
    what: tuple[str, ...] = ALL,
    *,
    nan_policy: int = 0,
    min_size: int = 1,
    test: str = "test",
    workspace_bytes: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-column summaries of the core's ``summarize`` computed with torch on the data's device.

    Parameters
    ----------
    ref : torch tensor (n, D) or (n,)
        Any real dtype; float16/bfloat16/float32 pairs are sorted in float32 (exact), anything
        else in float64 (integers converted as the core converts them).
    cur : torch tensor (m, D) or (m,)
    what : tuple of {"ks", "cvm", "mwu", "wasserstein", "energy"}
        Statistics to compute; all of them come from the same sort.
    nan_policy : int
        0 raise (``ValueError`` naming the lowest column holding NaN), 1 omit.
    min_size : int
        Values a column needs in each sample after omitting NaN.
    test : str
        Name used in error messages.
    workspace_bytes : int or None
        Device memory for the chunk temporaries (default ``COLUMN_WORKSPACE_BYTES`` = 2 GiB).

    Returns
    -------
    dict of numpy (D,) arrays
        ``n_ref, n_cur, nan_ref, nan_cur`` (int64) and, per requested statistic, the fields of
        the core's ``ColumnSummaries``: ``gap_max, gap_min, gap_max_at, gap_min_at`` (ks),
        ``cvm_u4_hi, cvm_u4_lo`` (uint64 limbs of the exact integer 4 U) and ``cvm_u`` (cvm), ``mwu_u1, mwu_tie_sum, mwu_ties`` (mwu), ``wasserstein``, ``energy``.

    Notes
    -----
    O((n + m) log(n + m) D) work (one sort per column) plus O((n + m) D) elementwise passes; one
    device-to-host transfer of O(D) values at the end (plus one for the NaN counts). Peak device
    memory beyond the inputs: about ``160 (n + m) c`` bytes for a chunk of ``c`` columns, with
    ``c = max(1, workspace_bytes // (160 (n + m)))`` (for 1M + 1M rows and 2 GiB: 6 columns a
    chunk), plus one compute-dtype copy of the inputs when they are neither float32 nor float64.
    """
    torch = _torch()
    what = tuple(what)
    for w in what:
        if w not in ALL:
            raise ValueError(f"what must hold names from {list(ALL)}, got {w!r}")
    a, b = tensor_pair(ref, cur, min_size)
    n, m, D = a.shape[0], b.shape[0], a.shape[1]
    N = n + m
    step = _columns_per_chunk(N, workspace_bytes)
    nan_ref, nan_cur = _nan_counts(torch, a, b, step)
    n_ref = (n - nan_ref).astype(np.int64)
    n_cur = (m - nan_cur).astype(np.int64)
    _check_counts(n_ref, n_cur, nan_ref, nan_cur, nan_policy, min_size, test)

    device = a.device
    f64, i64 = torch.float64, torch.int64
    acc: dict[str, Any] = {}
    if KS in what:
        for key in ("gap_max", "gap_min", "gap_max_at", "gap_min_at"):
            acc[key] = torch.zeros(D, dtype=f64, device=device)
    if CVM in what:
        for key in ("cvm_ref_hi", "cvm_ref_lo", "cvm_cur_hi", "cvm_cur_lo"):
            acc[key] = torch.zeros(D, dtype=i64, device=device)
    if MWU in what:
        for key in ("rank_x2", "tie_hi", "tie_lo", "any_tie"):
            acc[key] = torch.zeros(D, dtype=i64, device=device)
    if WASSERSTEIN in what:
        acc["wasserstein"] = torch.zeros(D, dtype=f64, device=device)
    if ENERGY in what:
        acc["energy_sum"] = torch.zeros(D, dtype=f64, device=device)
    big_runs: list[tuple[int, int]] = []  # (column, run size) of runs too long for int64 t^3

    n_ref_dev = torch.from_numpy(n_ref).to(device)
    n_cur_dev = torch.from_numpy(n_cur).to(device)
    for j0 in range(0, D, step):
        j1 = min(D, j0 + step)
        has_nan = bool(nan_ref[j0:j1].any() or nan_cur[j0:j1].any())
        _chunk(torch, a[:, j0:j1], b[:, j0:j1], n_ref_dev[j0:j1], n_cur_dev[j0:j1], j0, what, acc, big_runs, has_nan)

    host = {k: v.cpu().numpy() for k, v in acc.items()}
    out: dict[str, np.ndarray] = {"n_ref": n_ref, "n_cur": n_cur, "nan_ref": nan_ref.astype(np.int64), "nan_cur": nan_cur.astype(np.int64)}
    if KS in what:
        for key in ("gap_max", "gap_min", "gap_max_at", "gap_min_at"):
            out[key] = host[key]
    if CVM in what:
        cr = _joined(host["cvm_ref_hi"], host["cvm_ref_lo"])
        cc = _joined(host["cvm_cur_hi"], host["cvm_cur_lo"])
        # 4U = n1 * 4 sum (r - i)^2 + n2 * 4 sum (s - j)^2 exactly, handed to the core as two
        # uint64 limbs (it forms T from them in exact integer arithmetic); cvm_u = U rounded once
        # (Python's int -> float rounds to nearest like the core's int128 -> double).
        u4 = [int(n_ref[j]) * cr[j] + int(n_cur[j]) * cc[j] for j in range(D)]
        out["cvm_u4_hi"] = np.array([u >> 64 for u in u4], dtype=np.uint64)
        out["cvm_u4_lo"] = np.array([u & 0xFFFFFFFFFFFFFFFF for u in u4], dtype=np.uint64)
        out["cvm_u"] = np.array([float(u) / 4.0 for u in u4], dtype=np.float64)
    if MWU in what:
        ties = _joined(host["tie_hi"], host["tie_lo"])
        for j, t in big_runs:
            ties[j] += t * t * t - t
        rank_x2 = host["rank_x2"].tolist()
        out["mwu_u1"] = np.array(
            [float(rank_x2[j]) / 2.0 - float(int(n_ref[j]) * (int(n_ref[j]) + 1)) / 2.0 for j in range(D)],
            dtype=np.float64,
        )
        out["mwu_tie_sum"] = np.array([float(t) for t in ties], dtype=np.float64)
        out["mwu_ties"] = (host["any_tie"] > 0).astype(np.uint8)
    if WASSERSTEIN in what:
        out["wasserstein"] = host["wasserstein"]
    if ENERGY in what:
        out["energy"] = math.sqrt(2.0) * np.sqrt(host["energy_sum"])
    return out


def _chunk(torch, x, y, n1, n2, j0: int, what, acc, big_runs, has_nan: bool) -> None:
    """Summaries of columns [j0, j0 + c) into the (D,) accumulators (see column_summaries).

    Scans (cumulative sums) run over the flattened (c * (n + m),) chunk: a 1-D scan is one
    device-wide scan on CUDA, while a scan along the rows of a (c, N) tensor with few rows runs
    each long row in one thread block. Reductions per column are row reductions of (c, N) views.
    """
    n, c = x.shape
    N = n + y.shape[0]
    total = c * N
    j1 = j0 + c
    device = x.device
    i64, f64 = torch.int64, torch.float64
    # Positions, counts and run bounds in int32 while 2 * total fits (half the memory traffic);
    # products that can exceed it (CvM terms, t^3 - t, rank sums) are formed in int64.
    idx = torch.int32 if total < _INT32_LIMIT else i64
    pooled = torch.cat([x.t(), y.t()], dim=1)  # (c, N), one copy: each column sorted along a row
    if has_nan:
        # A NaN with the sign bit set sorts first in a radix sort (CUDA); make every NaN positive
        # so that NaN always sorts last, after +inf.
        pooled = torch.where(torch.isnan(pooled), torch.full((), float("nan"), dtype=pooled.dtype, device=device), pooled)
    values, order = torch.sort(pooled, dim=1, stable=True)
    del pooled
    pos = torch.arange(N, device=device, dtype=idx).unsqueeze(0)  # position within the column
    valid = pos < (n1 + n2).unsqueeze(1)  # NaN sort last: the first n1 + n2 values are the data
    from_cur = order >= n
    del order
    is_ref = (valid & ~from_cur).to(idx).reshape(total)
    is_cur = (valid & from_cur).to(idx).reshape(total)
    del from_cur
    row_first = torch.arange(c, device=device, dtype=i64) * N  # flat index of each column's first value

    def local_cumsum(flags):
        run = torch.cumsum(flags, dim=0, dtype=idx)
        before = run[row_first] - flags[row_first]  # count in the columns before this one
        return (run.view(c, N) - before.unsqueeze(1)).reshape(total)

    c_ref = local_cumsum(is_ref)  # ref values at or before each position of its column
    c_cur = local_cumsum(is_cur)

    # Tie runs. NaN != NaN, so every omitted value is its own run and never joins a data run; a
    # column's first value always starts a run, so runs never cross columns.
    run_start = torch.ones((c, N), dtype=torch.bool, device=device)
    run_start[:, 1:] = values[:, 1:] != values[:, :-1]
    run_start = run_start.reshape(total)
    run_id = torch.cumsum(run_start, dim=0, dtype=idx) - 1
    first = torch.nonzero(run_start).squeeze(1).to(idx)  # flat index of the first value of each run
    last = torch.cat([first[1:], torch.full((1,), total, dtype=idx, device=device)]) - 1
    start_flat = first[run_id]
    end_flat = last[run_id]
    del first, last, run_id
    flat_pos = torch.arange(total, device=device, dtype=idx)
    run_end = end_flat == flat_pos
    del flat_pos
    size = end_flat - start_flat + 1  # pooled values in the element's run
    start = start_flat % N  # values below the run in its column
    valid = valid.reshape(total)

    need_gap = KS in what or WASSERSTEIN in what or ENERGY in what
    if need_gap:
        # F_ref - F_cur with the counts up to each value, divided as the core divides.
        gap = c_ref.view(c, N).to(f64) / n1.to(f64).unsqueeze(1) - c_cur.view(c, N).to(f64) / n2.to(f64).unsqueeze(1)
        gap = gap.reshape(total)

    if KS in what:
        ends = run_end & valid
        ref_before = c_ref[start_flat] - is_ref[start_flat]
        cur_before = c_cur[start_flat] - is_cur[start_flat]
        has_ref = ends & (c_ref > ref_before)
        has_cur = ends & (c_cur > cur_before)
        del ref_before, cur_before, ends
        v64 = values.to(f64) + 0.0  # -0.0 reported as +0.0, as the core's keys do
        inf = torch.full((), math.inf, dtype=f64, device=device)

        def extreme(mask, maximum: bool):
            # torch.max / min along a dim return the first index of the extreme (documented):
            # the lowest value attaining it, as the core's walk keeps the first.
            g = torch.where(mask, gap, -inf if maximum else inf).view(c, N)
            best, first_at = g.max(dim=1) if maximum else g.min(dim=1)
            at = torch.gather(v64, 1, first_at.unsqueeze(1)).squeeze(1)
            return best, at

        max1, at_max1 = extreme(has_ref, True)
        max2, at_max2 = extreme(has_cur, True)
        min1, at_min1 = extreme(has_ref, False)
        min2, at_min2 = extreme(has_cur, False)
        ref_max = max1 >= max2
        ref_min = min1 <= min2
        acc["gap_max"][j0:j1] = torch.where(ref_max, max1, max2)
        acc["gap_max_at"][j0:j1] = torch.where(ref_max, at_max1, at_max2)
        acc["gap_min"][j0:j1] = torch.where(ref_min, min1, min2)
        acc["gap_min_at"][j0:j1] = torch.where(ref_min, at_min1, at_min2)
        del has_ref, has_cur, v64

    if CVM in what or MWU in what:
        doubled_midrank = 2 * start + size + 1
    if CVM in what:
        # Member of a run with rank k within its own sample: (2 midrank - 2 k)^2, an integer
        # below (2 max(n, m) + 1)^2.
        rank = torch.where(is_ref.bool(), c_ref, c_cur)
        term = (doubled_midrank - 2 * rank).to(i64)
        term = term * term
        del rank
        hi, lo = _split_sum(torch, term.view(c, N), is_ref.view(c, N))
        acc["cvm_ref_hi"][j0:j1] = hi
        acc["cvm_ref_lo"][j0:j1] = lo
        hi, lo = _split_sum(torch, term.view(c, N), is_cur.view(c, N))
        acc["cvm_cur_hi"][j0:j1] = hi
        acc["cvm_cur_lo"][j0:j1] = lo
        del term
    if MWU in what:
        acc["rank_x2"][j0:j1] = (doubled_midrank * is_ref).view(c, N).sum(dim=1, dtype=i64)
        tied = (run_end & valid & (size > 1)).view(c, N)
        acc["any_tie"][j0:j1] = tied.sum(dim=1)
        t = size.view(c, N).to(i64)
        huge = tied & (t >= _BIG_RUN)
        if N >= _BIG_RUN and bool(huge.any()):
            cols, idx = torch.nonzero(huge, as_tuple=True)
            for col, length in zip(cols.tolist(), t[cols, idx].tolist()):
                big_runs.append((j0 + col, int(length)))
            tied = tied & ~huge
        t = torch.where(tied, t, torch.zeros((), dtype=i64, device=device))
        hi, lo = _split_sum(torch, t * t * t - t, torch.ones((), dtype=i64, device=device))
        acc["tie_hi"][j0:j1] = hi
        acc["tie_lo"][j0:j1] = lo
        del t

    if WASSERSTEIN in what or ENERGY in what:
        # Value i >= 1 of a column: |F_ref - F_cur| at the end of the run of value i - 1 times
        # values[i] - values[i - 1] (0 inside a run, NaN between equal infinities, as the core).
        run_gap = gap[end_flat].view(c, N)[:, :-1]
        v64 = values.to(f64)
        dv = v64[:, 1:] - v64[:, :-1]
        del v64
        inside = valid.view(c, N)[:, 1:]
        zero = torch.zeros((), dtype=f64, device=device)
        if WASSERSTEIN in what:
            acc["wasserstein"][j0:j1] = torch.where(inside, run_gap.abs() * dv, zero).sum(dim=1)
        if ENERGY in what:
            acc["energy_sum"][j0:j1] = torch.where(inside, run_gap * run_gap * dv, zero).sum(dim=1)


# ---------------------------------------------------------------------------------- MMD
def _block_rows(N: int, depth: int, B: int, itemsize: int, workspace_bytes: int | None, tile: int | None) -> int:
    if tile is not None:
        return max(1, int(tile))
    budget = MMD_WORKSPACE_BYTES if workspace_bytes is None else int(workspace_bytes)
    # The R x R kernel block (GEMM output, exp in place) and the allocator's slack dominate.
    r = int(math.sqrt(max(budget, 1) / (3 * itemsize)))
    r = max(128, (r // 128) * 128)
    return min(r, N)


def _tf32_split(torch, z):
    """z = hi + lo with hi holding the 10 mantissa bits a TF32 tensor core keeps."""
    hi = (z.view(torch.int32) & -8192).view(torch.float32)  # clear the low 13 of 23 mantissa bits
    return hi, z - hi


class _tf32_matmul:
    """TF32 float32 GEMMs inside the block (restored after): the new ``fp32_precision`` switch
    where torch has it (mixing it with the legacy ``allow_tf32`` flag is an error there), else
    ``allow_tf32``. If neither can be set, GEMMs stay in full float32 (slower, same results up
    to rounding) and that is logged. The switch is process-wide while the block runs: float32
    GEMMs of other threads during an ``mmd(..., precision="float32")`` call may use TF32 too."""

    def __init__(self, torch, enabled: bool):
        self.torch, self.enabled, self.restore = torch, enabled, None

    def __enter__(self):
        if not self.enabled:
            return self
        matmul = self.torch.backends.cuda.matmul
        try:
            if hasattr(self.torch._C, "_get_fp32_precision_getter"):
                old = matmul.fp32_precision
                matmul.fp32_precision = "tf32"
                self.restore = ("fp32_precision", old)
            else:
                old = matmul.allow_tf32
                matmul.allow_tf32 = True
                self.restore = ("allow_tf32", old)
        except (AttributeError, RuntimeError, TypeError, ValueError) as exc:
            log.info("mmd: could not enable TF32 GEMMs (%s); using full float32", exc)
        return self

    def __exit__(self, *exc_info):
        if self.restore is not None:
            setattr(self.torch.backends.cuda.matmul, *self.restore)
        return False


def mmd_statistics(
    ref: Any,
    cur: Any,
    labels: np.ndarray,
    sigma: float,
    *,
    precision: str = "float64",
    workspace_bytes: int | None = None,
    tile: int | None = None,
) -> np.ndarray:
    """Unbiased MMD^2 of each labelling, computed with torch where ``ref`` lives.

    Parameters
    ----------
    ref : torch tensor (n, D), cur : torch tensor (m, D)
        Finite values (checked by the caller), any real dtype.
    labels : numpy uint8 (n + m, L)
        0/1 labellings, each with n ones (column 0 the observed split; see
        :func:`curata.drift.permutation_labels`).
    sigma : float
        RBF bandwidth.
    precision : {"float64", "float32"}
        "float64": everything in float64, centred on the pooled mean as the core (agrees with
        it to rounding: ~1e-15 absolute on the statistics, up to ~1e-13 for tiny samples). "float32": the data are centred
        (pooled mean, float64), divided by sigma and cast to float32; the squared distances come from a split-precision GEMM (each operand is split
        into a TF32-exact high part and a remainder and the three leading products are summed,
        so TF32 tensor cores give about float32 accuracy) and the label GEMM runs in TF32 where
        available; block partial sums are accumulated in float64. Statistics agree with float64
        to ~1e-7 without TF32 (CPU); with TF32 the label GEMM rounds each kernel value to ~5e-4
        relative, which averages out to ~1e-4 / min(n, m) on each statistic (well below the
        ~1 / min(n, m) spread of the permutation null).
    workspace_bytes : int or None
        Device memory for kernel blocks (default ``MMD_WORKSPACE_BYTES`` = 4 GiB): blocks are
        R x R with ``R = sqrt(workspace / (3 * itemsize))`` rounded down to a multiple of 128.
    tile : int or None
        Force the block size R (tests).

    Returns
    -------
    numpy (L,) float64

    Notes
    -----
    Time O((n + m)^2 (D + L)) (the upper block triangle: about half the matrix); device memory:
    the pooled data in the compute dtype ((n + m) D itemsize: 8 GB for 1M + 1M x 512 in float64,
    4 GB in float32), the labels ((n + m) L bytes, and again in the compute dtype), and the blocks:
    the R x R kernel block, its (R, L + 1) product and the R-row GEMM operands (about 3 R^2
    itemsize bytes in all). One host transfer of the (L,) sums.
    """
    torch = _torch()
    if precision not in ("float64", "float32"):
        raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
    a = as_tensor(ref, "ref")
    b = as_tensor(cur, "cur", a.device)
    device = a.device
    n, m = a.shape[0], b.shape[0]
    N = n + m
    L = labels.shape[1]
    f64 = torch.float64
    dtype = f64 if precision == "float64" else torch.float32
    if precision == "float64":
        # Centred on the pooled mean like the core: distances unchanged, no cancellation in
        # |x|^2 + |y|^2 - 2 x.y for data far from the origin.
        # Filled in place (torch.cat of a.to(f64) and b.to(f64) held up to 1.5 copies at once).
        z = torch.empty((N, a.shape[1]), dtype=f64, device=device)
        z[:n] = a
        z[n:] = b
        z -= z.mean(dim=0, keepdim=True)
    else:
        # Centre (distances unchanged, smaller norms: less cancellation in |x|^2 + |y|^2 - 2 x.y)
        # and measure in units of sigma (the kernel's scale 1 / (2 sigma^2) is then 1/2: for a
        # sigma below ~1e-19 it overflowed float32 and every statistic was NaN), one column block
        # at a time so no float64 copy of the data exists at once (the column means and the norms
        # too: a.to(f64).sum() and z.to(f64) ** 2 made whole float64 copies, 8 GB at 1M + 1M x 512).
        # Each block is formed from the inputs, not from a float32 copy of them: float64 data far
        # from the origin (1e6 + unit noise) lose their spread in a float32 cast before centring.
        z = torch.empty((N, a.shape[1]), dtype=torch.float32, device=device)
        norms = torch.zeros(N, dtype=f64, device=device)
        for k0 in range(0, z.shape[1], 64):
            k1 = min(z.shape[1], k0 + 64)
            za, zb = a[:, k0:k1].to(f64), b[:, k0:k1].to(f64)
            mean = (za.sum(dim=0) + zb.sum(dim=0)) / N
            z[:n, k0:k1] = ((za - mean) / sigma).to(torch.float32)
            z[n:, k0:k1] = ((zb - mean) / sigma).to(torch.float32)
            del za, zb
            norms += (z[:, k0:k1].to(f64) ** 2).sum(dim=1)  # of the values used
    if precision == "float64":
        norms = torch.einsum("ij,ij->i", z, z)  # a batched dot: no (N, D) temporary like (z * z)
    inv = 1.0 / (2.0 * sigma * sigma) if precision == "float64" else 0.5

    def operands(r0: int, r1: int):
        """Rows r0:r1 of left, right with left_i . right_j = -(|x_i|^2 + |x_j|^2 - 2 x_i.x_j) inv."""
        zb = z[r0:r1].to(f64)
        nb = norms[r0:r1].unsqueeze(1)
        one = torch.ones_like(nb)
        left = torch.cat([zb * (2.0 * inv), -inv * nb, -inv * one], dim=1).to(dtype)
        right = torch.cat([zb, one, nb], dim=1).to(dtype)
        if precision == "float32":
            lh, ll = _tf32_split(torch, left)
            rh, rl = _tf32_split(torch, right)
            left = torch.cat([lh, lh, ll], dim=1)
            right = torch.cat([rh, rl, rh], dim=1)
        return left, right

    lab = torch.from_numpy(np.ascontiguousarray(labels)).to(device)
    A = lab.to(dtype)  # (N, L) 0/1
    del lab
    R = _block_rows(N, z.shape[1], L, torch.finfo(dtype).bits // 8, workspace_bytes, tile)

    quad = torch.zeros(L, dtype=f64, device=device)
    lin = torch.zeros(L, dtype=f64, device=device)
    total = torch.zeros((), dtype=f64, device=device)
    with _tf32_matmul(torch, precision == "float32" and device.type == "cuda"):
        for i0 in range(0, N, R):
            i1 = min(N, i0 + R)
            AI64 = A[i0:i1].to(f64)
            left_i, _ = operands(i0, i1)
            for c0 in range(i0, N, R):
                c1 = min(N, c0 + R)
                diag = c0 == i0
                _, right_j = operands(c0, c1)
                K = left_i @ right_j.t()  # -d2 / (2 sigma^2)
                del right_j
                if precision == "float64":
                    K.clamp_(max=0.0)  # the core clamps d2 >= 0
                K.exp_()
                if diag:
                    K.diagonal().fill_(1.0)  # the core's exact diagonal
                w = 1.0 if diag else 2.0
                M = K @ torch.cat([A[c0:c1], torch.ones((c1 - c0, 1), dtype=dtype, device=device)], dim=1)
                del K
                M64 = M.to(f64)
                del M
                rows = M64[:, L]  # K 1
                quad += w * (AI64 * M64[:, :L]).sum(dim=0)  # a_I' K a_J
                lin += AI64.t() @ rows  # a_I' K 1
                if not diag:
                    lin += M64[:, :L].sum(dim=0)  # 1' K a_J: the transposed block's a' K 1
                total += w * rows.sum()
                del M64
    qs = quad.cpu().numpy()
    ls = lin.cpu().numpy()
    t_all = float(total.cpu())
    dn, dm = float(n), float(m)
    sxx = qs
    sxy = ls - sxx
    syy = t_all - 2.0 * ls + sxx
    return (sxx - dn) / (dn * (dn - 1.0)) + (syy - dm) / (dm * (dm - 1.0)) - 2.0 * sxy / (dn * dm)
