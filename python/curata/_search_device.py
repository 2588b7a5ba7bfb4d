"""Exact kNN on a device with torch: tiled GEMM (cuBLAS on CUDA) + top-k, verified re-ranking.

The same code runs on CPU torch tensors (the tests run it there) and CUDA tensors. CuPy arrays
are exchanged with torch through DLPack (zero copy) and results go back as CuPy arrays.

Algorithm (for each tile of queries)
------------------------------------
1. **Select.** For every tile of base rows, one GEMM ``s = q @ b.T`` (``torch.mm``, float32
   accumulation) gives an approximate score per pair, turned into a "larger is better" selection
   score: ``<q, b>`` ("ip"), ``2 <q, b> - |b|^2`` ("l2": the squared distance is ``|q|^2`` minus
   this), ``<q, b> / |b|`` ("cosine"; ``1/|q|`` is constant per query). ``torch.topk`` keeps the
   best ``k + margin`` per tile, merged with the running best (concatenate, ``topk`` again).
2. **Re-rank.** The ``k + margin`` candidates are scored again directly from the stored vectors
   in float64 (``sum(q*b)``, ``sum((q-b)^2)``, ``<q,b>/(|q||b|)``), rounded to float32 and sorted
   by (score, lower index). These are the reported distances.
3. **Verify.** Every row that was not selected has an approximate score at most ``t`` (the worst
   selected approximate score). A rigorous bound ``E`` on the GEMM's rounding error (below) turns
   that into a bound on its exact score. If that bound is strictly worse than the k-th re-ranked
   float32 score (by one float32 step), no unselected row can belong to (or tie into) the top k,
   and the query is done. Otherwise the query is searched again with a 4x larger margin; when the
   margin covers the whole base, every row is a candidate and the check holds trivially.

The guarantee
-------------
For every query the result is exactly the ``k`` best base rows under the float64 score of the
stored vectors rounded to float32, ordered by (that float32 score, lower index); among rows whose
float32 score equals the k-th one, the lowest indices are kept. This is the same for every tile
size, workspace and device (up to float64 summation order, which changes a float32-rounded value
only when the float64 score lies within ~1e-16 relative of a float32 rounding boundary). A float16
or bfloat16 base is searched as the exact values it stores (results equal exact search over
``base.float()``), however coarse the 16-bit GEMM. Queries are used in float32.

Special values: a zero query under "ip"/"cosine" scores exactly 0 against every row and gets
indices ``0..k-1`` (the lowest, skipping itself in a graph) without a search; ``-0.0`` is reported
as ``0.0`` (and ties with it); finite vectors whose float32 dot products overflow cannot be
verified from the GEMM, so their queries end up re-scored in float64 against every row (scores
beyond the float32 range come out as +-inf, ties by index). NaN/inf input is rejected up front.

The C++ CPU core (``curata.search.knn`` on numpy input) computes in float32 arithmetic (L2 through
norms), so the two can order neighbours differently where two scores differ by less than float32
rounding of the CPU's formula (about ``1e-7 (|q|^2 + |b|^2)`` for "l2"), and their distances differ
by that much. The device path is the more accurate of the two.

Error bound of the selection GEMM
---------------------------------
With unit roundoffs ``u_q``, ``u_b`` for the rounding of query and base tile to the GEMM input
type (0 for float32 without TF32; 2^-11 float16 and TF32; 2^-8 bfloat16 and float32 "medium"
precision) and float32 accumulation over D terms (``gamma_D = D u / (1 - D u)``, u = 2^-24, any
summation order, split-K included), ``|fl(q.b) - q.b| <= ((1+u_q)(1+u_b)(1+gamma_D) - 1) |q| |b|``
(Cauchy-Schwarz on ``sum |q_i b_i|``) plus underflow terms (a few times ``D * 2^-126``; for
16-bit GEMMs each query row is first scaled by a power of two so its largest entry lies in
[128, 256), which rules out float16 overflow and bounds the subnormal loss by ``2^-32 sqrt(D)``
relative). ``|b|`` is replaced by the largest base norm. The bound is doubled for safety, which
also covers tensor cores' float32 accumulation rounding toward zero (unit error 2u instead of u,
as measured on NVIDIA tensor cores by Fasi, Higham, Mikaitis and Pranesh, 2021). For
"l2", cancellation in ``|q|^2 - 2 q.b + |b|^2`` is why the bound is absolute (``|q| max|b|`` and
``max|b|^2`` terms) rather than relative to the distance: when the data sit far from the origin
compared with their spread, the bound is large compared with the gaps between neighbours, more
queries fail the check, and they are searched again with a wider margin -- slower, never wrong
(centring the data first, which does not change L2 distances, avoids it).
On CUDA, 16-bit accumulation is switched off during the call (the flags
``torch.backends.cuda.matmul.allow_{fp16,bf16}_reduced_precision_reduction`` and
``allow_fp16_accumulation`` are restored afterwards), so the float32-accumulation bound applies.

Memory
------
Peak device memory beyond the inputs and outputs: base statistics (4 N bytes: squared norms for
"l2", inverse norms for "cosine"), plus a workspace of at most ``workspace_bytes`` (default
1 GiB on CUDA, or a quarter of the free device memory if less, not below 64 MiB; 256 MiB on
CPU): a query tile, a (query tile x base tile) float32 score block, the running candidates
(12 bytes per query x candidate, a few copies while merging) and float64 re-rank chunks. The
tile sizes are chosen from the budget (:func:`plan_tiles`). Only a degenerate configuration
exceeds it: a single query and 64 base rows that do not fit
(``96 (k + margin) + 52 D + 64 (8 + 4 D)`` bytes), or more than the budget's worth of candidates
for one query when it falls back to every base row (only when masses of rows tie within the
error bound, e.g. an all-duplicate base).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import sys
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _array

__all__ = [
    "knn",
    "knn_graph",
    "knn_torch",
    "knn_graph_torch",
    "range_torch",
    "prepare_base",
    "BaseStats",
    "plan_tiles",
    "TilePlan",
    "DEFAULT_WORKSPACE_BYTES",
]

log = logging.getLogger("curata.search")

DEFAULT_WORKSPACE_BYTES = {"cuda": 1 << 30, "cpu": 256 << 20}
_METRICS = ("ip", "l2", "cosine")
_U32 = 2.0**-24
_U64 = 2.0**-53
_SAFETY = 2.0
_MAX_QUERY_TILE = 8192
# Bytes per (query, candidate) while selecting: running best, a tile's top-k, their
# concatenation (2x) and the merged top-k, 12 bytes (float32 + int64) each; then, with the
# selection still alive, the re-rank's float64 scores, float32 keys and two sorts' permutations.
_CAND_BYTES = 96
# Bytes per (query, base row) of a score block: the float32 scores plus room for top-k's
# temporaries and the self mask.
_SCORE_BYTES = 8
# Bytes per (query, D) element of a query tile: float32 and float64 copies, the scaled float32
# and the 16-bit GEMM input.
_QUERY_BYTES = 20
# torch.topk (CUDA) sorts each slice (a full copy plus sort buffers) when there are at most 10
# slices of at least 100,000 elements; base tiles stay below that for small query tiles.
_TOPK_SORT_SLICES = 10
# Smallest base tile, even when the budget is smaller (one-row GEMMs would take forever).
_MIN_BASE_ROWS = 64
_TOPK_SORT_SLICE = 100_000
# Bytes per D element of one re-ranked pair: gathered base row, query row, difference/product
# and its square (float64).
_RERANK_BYTES = 32


def _torch() -> Any:
    t = sys.modules.get("torch")
    return t if t is not None else importlib.import_module("torch")


# ------------------------------------------------------------------------------ precision
def _read_flag(get: Any) -> Any:
    try:
        return get()
    except (AttributeError, RuntimeError):  # torch raises when legacy and new APIs were mixed
        return "unknown"


def _fp32_input_roundoff(torch: Any, device: Any) -> float:
    """Unit roundoff of the inputs of a float32 ``torch.mm`` under the current precision flags
    (legacy ``set_float32_matmul_precision`` / ``allow_tf32`` and the per-backend
    ``fp32_precision``), taking the least precise any of them allows; unreadable -> bfloat16."""
    generic = _read_flag(torch.get_float32_matmul_precision)
    if device.type == "cuda":
        backend = _read_flag(lambda: torch.backends.cuda.matmul.fp32_precision)
        legacy_tf32 = _read_flag(lambda: torch.backends.cuda.matmul.allow_tf32)
    else:
        backend = _read_flag(lambda: torch.backends.mkldnn.matmul.fp32_precision)
        legacy_tf32 = False
    values = {str(generic), str(backend)}
    if values & {"medium", "bf16", "unknown"}:
        return 2.0**-8
    if values & {"high", "tf32"} or legacy_tf32 is True or legacy_tf32 == "unknown":
        return 2.0**-11
    return 0.0


_mm_out_dtype_ok: dict[tuple[str, Any], bool] = {}


def _native_half_mm(torch: Any, device: Any, dtype: Any) -> bool:
    """Whether ``torch.mm(a16, b16, out_dtype=torch.float32)`` works here (CUDA, torch >= 2.8)."""
    key = (str(device), dtype)
    if key not in _mm_out_dtype_ok:
        ok = False
        if device.type == "cuda":
            try:
                a = torch.ones((2, 8), dtype=dtype, device=device)
                ok = torch.mm(a, a.T, out_dtype=torch.float32).dtype == torch.float32
            except (TypeError, RuntimeError, NotImplementedError):
                ok = False
        _mm_out_dtype_ok[key] = ok
    return _mm_out_dtype_ok[key]


_flag_lock = threading.Lock()
_flag_users = 0
_flag_saved: list[tuple[str, Any]] = []


def _save_flag(m: Any, name: str) -> tuple[str, Any] | None:
    try:
        value = getattr(m, name)
    except (AttributeError, RuntimeError):
        return None  # this torch has no such flag
    if name.endswith("reduced_precision_reduction"):
        try:  # torch >= 2.10 keeps a split-K switch beside it; restore both
            value = (value, getattr(m, name + "_split_k"))
        except (AttributeError, RuntimeError):
            pass
    return name, value


@contextlib.contextmanager
def _full_precision_reductions(torch: Any, device: Any):
    """Float32 accumulation for 16-bit cuBLAS GEMMs for the duration: no reduced-precision
    (16-bit) split-K reductions, no float16 accumulation. The flags are process-global; they are
    restored when the last concurrent search leaves (reference count under a lock)."""
    global _flag_users, _flag_saved
    if device.type != "cuda":
        yield
        return
    m = torch.backends.cuda.matmul
    with _flag_lock:
        if _flag_users == 0:
            names = ("allow_fp16_reduced_precision_reduction", "allow_bf16_reduced_precision_reduction",
                     "allow_fp16_accumulation")
            _flag_saved = [saved for saved in (_save_flag(m, nm) for nm in names) if saved is not None]
            for name, _ in _flag_saved:
                setattr(m, name, False)
        _flag_users += 1
    try:
        yield
    finally:
        with _flag_lock:
            _flag_users -= 1
            if _flag_users == 0:
                for name, value in _flag_saved:
                    setattr(m, name, value)
                _flag_saved = []


@dataclass(frozen=True)
class _Gemm:
    mode: str  # "fp32", "native16" (CUDA 16-bit GEMM, float32 out), "emulate16" (CPU), "upcast16"
    dtype: Any  # dtype the query tile is rounded to before the GEMM
    eps_rel: float  # |fl(q.b) - q.b| <= eps_rel |q| |b| + eps_abs (safety factor included)
    eps_abs: float


def _gemm_plan(torch: Any, base: Any, d: int) -> _Gemm:
    device = base.device
    u_t = _fp32_input_roundoff(torch, device)
    gamma = d * _U32 / (1.0 - d * _U32)
    eps_abs = _SAFETY * 4.0 * d * 2.0**-126
    if base.dtype in (torch.float16, torch.bfloat16):
        u16 = 2.0**-11 if base.dtype == torch.float16 else 2.0**-8
        if _native_half_mm(torch, device, base.dtype):
            mode, u_q, u_b = "native16", u16, 0.0
        elif device.type == "cuda":
            mode, u_q, u_b = "upcast16", u_t, u_t
        else:
            # CPU: round the queries like the device would, multiply in float32.
            mode, u_q, u_b = "emulate16", (1 + u16) * (1 + u_t) - 1, u_t
        sub = 2.0**-32 * math.sqrt(d) if mode in ("native16", "emulate16") else 0.0
        eps = (1 + u_q) * (1 + u_b) * (1 + gamma) - 1 + sub
        qdtype = base.dtype if mode in ("native16", "emulate16") else torch.float32
        return _Gemm(mode, qdtype, _SAFETY * eps, eps_abs)
    eps = (1 + u_t) * (1 + u_t) * (1 + gamma) - 1
    return _Gemm("fp32", torch.float32, _SAFETY * eps, eps_abs)


# ------------------------------------------------------------------------------ base stats
@dataclass
class BaseStats:
    """Per-base quantities reused by every search of the same base (see :func:`prepare_base`).

    Attributes
    ----------
    metric : str
    row_stat : tensor of shape (N,) float32 or None
        Squared norms ("l2"), inverse norms, 0 for zero rows ("cosine"), None ("ip").
    max_norm : float
        Largest row norm (float64, rounded up).
    max_inv_norm : float
        Largest inverse norm of a non-zero row ("cosine"), else 0.
    """

    metric: str
    row_stat: Any
    max_norm: float
    max_inv_norm: float


def _row_chunk(d: int, workspace: int) -> int:
    # float64 copy of the chunk, its square and the finiteness mask: < 20 bytes per element
    return max(1, workspace // max(1, 20 * d))


def prepare_base(base: Any, metric: str, *, workspace_bytes: int | None = None, name: str = "base") -> BaseStats:
    """Validate a base tensor (finite rows) and compute its :class:`BaseStats` in one pass.

    Parameters
    ----------
    base : torch tensor of shape (N, D), float32/float16/bfloat16, any device
    metric : {"ip", "l2", "cosine"}
    workspace_bytes : int, optional
        Bounds the float64 temporaries (rows are processed in chunks).
    name : str
        Argument name for error messages.

    Raises
    ------
    ValueError
        ``"{name} must be finite, got NaN or infinity in row {i}"`` for the first bad row.

    Notes
    -----
    O(N D) time, one device-to-host sync. Memory: 4 N bytes for the result plus chunks of the
    workspace.
    """
    torch = _torch()
    n, d = base.shape
    ws = _workspace(torch, base.device, workspace_bytes)
    step = _row_chunk(d, ws)
    first_bad = torch.full((), n, dtype=torch.int64, device=base.device)
    max_sq = torch.zeros((), dtype=torch.float64, device=base.device)
    min_pos_sq = torch.full((), math.inf, dtype=torch.float64, device=base.device)
    row_stat = None if metric == "ip" else torch.empty(n, dtype=torch.float32, device=base.device)
    for r0 in range(0, n, step):
        chunk = base[r0 : r0 + step].to(torch.float64, copy=True)  # squared in place below
        rows = torch.arange(r0, r0 + chunk.shape[0], device=base.device)
        bad = ~torch.isfinite(chunk).all(dim=1)
        first_bad = torch.minimum(first_bad, torch.where(bad, rows, n).min())
        sq = torch.where(bad, 0.0, chunk.mul_(chunk).sum(dim=1))
        max_sq = torch.maximum(max_sq, sq.max())
        min_pos_sq = torch.minimum(min_pos_sq, torch.where(sq > 0, sq, math.inf).min())
        if metric == "l2":
            row_stat[r0 : r0 + chunk.shape[0]] = sq.to(torch.float32)
        elif metric == "cosine":
            row_stat[r0 : r0 + chunk.shape[0]] = torch.where(sq > 0, 1.0 / torch.sqrt(sq), 0.0).to(torch.float32)
    bad_row, max_sq_v, min_pos_sq_v = torch.stack([first_bad.double(), max_sq, min_pos_sq]).tolist()
    if int(bad_row) < n:
        raise ValueError(f"{name} must be finite, got NaN or infinity in row {int(bad_row)}")
    max_norm = math.sqrt(max_sq_v) * (1 + 1e-12)
    max_inv = 0.0 if not math.isfinite(min_pos_sq_v) else (1 + 1e-6) / math.sqrt(min_pos_sq_v)
    return BaseStats(metric, row_stat, max_norm, max_inv)


# ------------------------------------------------------------------------------ tiling
@dataclass(frozen=True)
class TilePlan:
    """Tile sizes for one sweep: ``query_rows`` x ``base_rows`` score blocks, ``candidates`` kept
    per query, ``rerank_pairs`` (query, candidate) pairs re-scored at a time, and the estimated
    peak workspace in bytes (``estimate_bytes``, always <= the budget unless the budget is below
    the one-query one-row floor)."""

    query_rows: int
    base_rows: int
    candidates: int
    rerank_pairs: int
    estimate_bytes: int


def plan_tiles(m: int, n: int, d: int, candidates: int, workspace_bytes: int, *, upcast_base_tile: bool) -> TilePlan:
    """Choose tile sizes so one sweep's temporaries stay within ``workspace_bytes``.

    The query tile is as large as possible (up to 8192 rows) while the candidate buffers take at
    most half the budget and a base tile of at least ``min(candidates, 1024)`` rows still fits;
    the base tile takes the rest.
    """
    ws = int(workspace_bytes)
    per_base_row = 4 * d if upcast_base_tile else 0
    mt = max(1, min(m, _MAX_QUERY_TILE))

    def fixed(rows: int) -> int:
        # candidates, plus the query tile: float32 copy, float64 copy, scaled and 16-bit copies
        return _CAND_BYTES * rows * candidates + _QUERY_BYTES * rows * d

    want_nb = min(n, max(1, min(candidates, 1024)))
    while mt > 1 and (fixed(mt) > ws // 2 or fixed(mt) + want_nb * (_SCORE_BYTES * mt + per_base_row) > ws):
        mt = max(1, mt // 2)
    mt = -(-m // -(-m // mt)) if m > 0 else 1  # equal query tiles (10,000 -> 2 x 5,000)
    nb = (ws - fixed(mt)) // (_SCORE_BYTES * mt + per_base_row)
    if mt <= _TOPK_SORT_SLICES:
        nb = min(nb, _TOPK_SORT_SLICE - 1)  # torch.topk sorts whole slices past this size
    nb = int(min(n, max(_MIN_BASE_ROWS, nb)))  # below the floor: exceed the budget, not crawl
    pairs = max(1, ws // (_RERANK_BYTES * d + 64))
    est = fixed(mt) + nb * (_SCORE_BYTES * mt + per_base_row)
    return TilePlan(mt, nb, candidates, pairs, int(est))


def _workspace(torch: Any, device: Any, workspace_bytes: int | None) -> int:
    """The budget: given, else 256 MiB on CPU, 1 GiB on CUDA but at most a quarter of the
    device's free memory (never below 64 MiB), so a default search does not run a small GPU out
    of memory."""
    if workspace_bytes is None:
        if device.type != "cuda":
            return DEFAULT_WORKSPACE_BYTES["cpu"]
        try:
            free, _ = torch.cuda.mem_get_info(device)
        except (RuntimeError, AttributeError):
            return DEFAULT_WORKSPACE_BYTES["cuda"]
        return int(max(64 << 20, min(DEFAULT_WORKSPACE_BYTES["cuda"], free // 4)))
    if isinstance(workspace_bytes, bool) or not isinstance(workspace_bytes, (int, np.integer)):
        raise TypeError(f"workspace_bytes must be an int, got {type(workspace_bytes).__name__}")
    if workspace_bytes < 1:
        raise ValueError(f"workspace_bytes must be >= 1, got {workspace_bytes}")
    return int(workspace_bytes)


# ------------------------------------------------------------------------------ one sweep
def _query_scale(torch: Any, q: Any) -> tuple[Any, Any]:
    """Per-row powers of two s so that max |s q_i| lies in [128, 256) (1 for zero rows)."""
    amax = q.abs().amax(dim=1)
    _, e = torch.frexp(amax)  # amax = f 2^e, f in [0.5, 1)
    e = torch.where(amax > 0, e, torch.full_like(e, 8))
    scale = torch.ldexp(torch.ones_like(amax), (8 - e).to(torch.int32))
    inv = torch.ldexp(torch.ones_like(amax), (e - 8).to(torch.int32))
    return scale, inv


def _gemm_queries(torch, q, gemm: _Gemm):
    """The GEMM's query operand and the per-row unscale (None for float32 GEMMs): 16-bit GEMMs
    take each row scaled by a power of two (see :func:`_query_scale`)."""
    if gemm.mode not in ("native16", "emulate16"):
        return q, None
    scale, inv_scale = _query_scale(torch, q)
    qg = (q * scale[:, None]).to(gemm.dtype)
    if gemm.mode == "emulate16":
        qg = qg.to(torch.float32)
    return qg, inv_scale


def _score_block(torch, qg, base, stats: BaseStats, gemm: _Gemm, b0: int, b1: int, two_inv):
    """Approximate selection scores of base rows ``b0:b1`` (one GEMM, float32): ``<q,b>``,
    ``2<q,b> - |b|^2`` or ``<q,b>/|b|``; for 16-bit GEMMs "ip"/"cosine" rows come scaled by the
    query's power of two (``two_inv`` = 2 / scale undoes it inside "l2")."""
    metric = stats.metric
    bt = base[b0:b1]
    if gemm.mode in ("emulate16", "upcast16"):
        bt = bt.to(torch.float32)
    if metric == "l2" and gemm.mode in ("fp32", "upcast16"):
        # 2 q.b - |b|^2 with the bias in the GEMM's epilogue
        s = torch.addmm(stats.row_stat[b0:b1].neg(), qg, bt.T, alpha=2.0)
    elif gemm.mode == "native16":
        s = torch.mm(qg, bt.T, out_dtype=torch.float32)
    else:
        s = torch.mm(qg, bt.T)
    if metric == "l2" and two_inv is not None:
        torch.addcmul(stats.row_stat[b0:b1].neg()[None, :], s, two_inv, out=s)
    elif metric == "cosine":
        s.mul_(stats.row_stat[b0:b1][None, :])
    return s


def _select(torch, q, base, stats: BaseStats, gemm: _Gemm, sel: int, plan: TilePlan, self_rows, removed=None):
    """Best ``sel`` rows per query by the approximate selection score.

    Returns (scores, indices, row_unscale): for "ip"/"cosine" on 16-bit GEMMs the scores of row
    i are the selection scores times a power of two (ranking within a row does not change), and
    ``row_unscale`` (or None) maps them back. Each score block costs one GEMM, at most one
    elementwise pass (none for "ip", the bias is fused into the GEMM for float32 "l2") and one
    ``topk``. NaN from overflowing products ranks first in ``topk``; the check then fails and the
    query is searched again, ending with every row re-scored in float64.

    ``removed`` (bool (N,), optional): those rows score ``-inf`` (after any NaN), so they are
    selected only when fewer than ``sel`` other rows exist; the threshold is then ``-inf``, which
    ``_safe_rows`` never accepts, and the query is searched again until it is exhaustive.
    """
    n = base.shape[0]
    metric = stats.metric
    qg, inv_scale = _gemm_queries(torch, q, gemm)
    two_inv = None if inv_scale is None else (2.0 * inv_scale)[:, None]
    best_s = best_i = None
    neg_inf = float("-inf")
    for b0 in range(0, n, plan.base_rows):
        b1 = min(n, b0 + plan.base_rows)
        s = _score_block(torch, qg, base, stats, gemm, b0, b1, two_inv)
        if self_rows is not None:
            col = (self_rows - b0).clamp(0, b1 - b0 - 1)[:, None]
            inside = ((self_rows >= b0) & (self_rows < b1))[:, None]
            s.scatter_(1, col, torch.where(inside, neg_inf, s.gather(1, col)))
        if removed is not None:
            s.masked_fill_(removed[b0:b1][None, :], neg_inf)
        kt = min(sel, b1 - b0)
        ts, ti = torch.topk(s, kt, dim=1, sorted=False)
        del s
        ti += b0
        if best_s is None:
            best_s, best_i = ts, ti
        else:
            cs = torch.cat([best_s, ts], dim=1)
            ci = torch.cat([best_i, ti], dim=1)
            keep = min(sel, cs.shape[1])
            best_s, pos = torch.topk(cs, keep, dim=1, sorted=False)
            best_i = ci.gather(1, pos)
    row_unscale = inv_scale if (inv_scale is not None and metric != "l2") else None
    return best_s, best_i, row_unscale


def _pair_scores(torch, metric: str, b_rows, q64_rows, qn_rows):
    """float64 scores of (query, base row) pairs given row by row: ``sum(q*b)``,
    ``sum((q-b)^2)`` or ``<q,b>/(|q||b|)`` (0 when either norm is 0). Works in place on the
    float64 copy of ``b_rows``: at most three float64 (pairs, D) arrays live at once."""
    bq = b_rows.to(torch.float64)
    if metric == "l2":
        bq.sub_(q64_rows)
        return bq.mul_(bq).sum(dim=1)
    if metric == "ip":
        return bq.mul_(q64_rows).sum(dim=1)
    bn = torch.sqrt((bq * bq).sum(dim=1))
    den = bn * qn_rows
    dot = bq.mul_(q64_rows).sum(dim=1)
    return torch.where(den > 0, dot / torch.where(den > 0, den, 1.0), 0.0)


def _rerank(torch, q64, base, idx, metric: str, plan: TilePlan, self_rows):
    """float64 scores of the candidate pairs (``idx``: (mt, c)), as float32 "larger is better"
    keys and float32 distances, both (mt, c)."""
    mt, c = idx.shape
    flat = idx.reshape(-1)
    out = torch.empty(mt * c, dtype=torch.float64, device=idx.device)
    qn = None
    if metric == "cosine":
        qn = torch.sqrt((q64 * q64).sum(dim=1))
    step = plan.rerank_pairs
    for p0 in range(0, mt * c, step):
        p1 = min(mt * c, p0 + step)
        rows = torch.arange(p0, p1, device=idx.device) // c
        out[p0:p1] = _pair_scores(torch, metric, base[flat[p0:p1]], q64[rows], None if qn is None else qn[rows])
    # + 0.0 turns -0.0 into 0.0: radix sorts order -0.0 before 0.0, which would break index ties.
    f32 = out.to(torch.float32).view(mt, c) + 0.0
    key = f32.neg() + 0.0 if metric == "l2" else f32.clone()
    if self_rows is not None:
        key = key.masked_fill(idx == self_rows[:, None], float("-inf"))
    return key, f32


def _order(torch, key, idx, f32, n: int, self_rows, removed=None):
    """Sort candidates by (key descending, index ascending); the self pair goes last, and so do
    rows flagged in ``removed`` (a last stable sort on the flag: exact even when a live row's
    key is -inf)."""
    sort_idx = idx
    if self_rows is not None:
        sort_idx = torch.where(idx == self_rows[:, None], n, idx)
    sort_idx, p = torch.sort(sort_idx, dim=1)
    key = key.gather(1, p)
    f32 = f32.gather(1, p)
    key, p2 = torch.sort(key, dim=1, descending=True, stable=True)
    sort_idx, f32 = sort_idx.gather(1, p2), f32.gather(1, p2)
    if removed is not None:
        flag = removed[sort_idx.clamp(max=n - 1)].to(torch.uint8)
        _, p3 = torch.sort(flag, dim=1, stable=True)
        key, sort_idx, f32 = key.gather(1, p3), sort_idx.gather(1, p3), f32.gather(1, p3)
    return key, sort_idx, f32


def _prev32(torch, x):
    """The next float32 value below each float32 in x, as float64."""
    return torch.nextafter(x, torch.full_like(x, float("-inf"))).to(torch.float64)


def _safe_rows(torch, metric, stats: BaseStats, gemm: _Gemm, d: int, qnorm, qsq, threshold, key_k):
    """True where no unselected row can reach the k-th float32 key (see the module notes)."""
    B = stats.max_norm
    t = threshold.to(torch.float64)
    # Products near the float32 range may have overflowed in the GEMM: no bound, search again.
    finite = torch.isfinite(t) & torch.isfinite(key_k) & ((qnorm + B) ** 2 < 1e37)
    e_dot = gemm.eps_rel * qnorm * B + gemm.eps_abs
    g64 = _SAFETY * (d + 4) * _U64 / (1 - (d + 4) * _U64)
    if metric == "ip":
        ub = t + e_dot + g64 * qnorm * B
        return finite & (ub < _prev32(torch, key_k))
    if metric == "l2":
        # selection score = 2 q.b - |b|^2 (float32): its error adds the float32 rounding of |b|^2
        # and of the subtraction to twice the dot product error.
        e_a = 2 * e_dot + _SAFETY * 2 * _U32 * (2 * qnorm * B + 2 * B * B)
        lb = qsq * (1 - g64) - t - e_a - g64 * (qnorm + B) ** 2
        # key_k = -distance_k; unselected rows need distance > distance_k (one float32 step up)
        dist_k = -key_k
        up = torch.nextafter(dist_k, torch.full_like(dist_k, float("inf"))).to(torch.float64)
        return finite & (lb > up)
    # cosine: selection score = <q,b> / |b| (inverse norm rounded to float32, product rounded)
    e_a = gemm.eps_rel * qnorm + _SAFETY * 4 * _U32 * qnorm + gemm.eps_abs * stats.max_inv_norm
    safe_q = torch.where(qnorm > 0, qnorm, 1.0)
    ub = (t + e_a) / safe_q + g64 * 4
    return finite & (ub < _prev32(torch, key_k))


def _search(torch, base, q, k: int, metric: str, stats: BaseStats, ws: int, margin: int | None, graph: bool,
            trace: dict | None = None, removed=None):
    """(distances float32 (M, k), indices int64 (M, k)) on base.device.

    ``trace`` (tests, benchmarks): filled with the GEMM mode, margins, tile plans, the number of
    score blocks and merges, and the queries searched again in each round.

    ``removed`` (bool (N,), not with ``graph``): rows that are never returned; the caller
    guarantees ``k`` <= the number of other rows."""
    n, d = base.shape
    m = q.shape[0]
    dev = base.device
    out_d = torch.empty((m, k), dtype=torch.float32, device=dev)
    out_i = torch.empty((m, k), dtype=torch.int64, device=dev)
    if m == 0:
        return out_d, out_i
    gemm = _gemm_plan(torch, base, d)
    if margin is None:
        margin = (64 + k // 4) if gemm.eps_rel > 1e-4 else (16 + k // 16)
    n_eff = n - 1 if graph else n
    pending = torch.arange(m, device=dev)
    live_first = None
    if removed is not None:
        live_first = torch.nonzero(~removed)[:k, 0]  # the k lowest live rows (zero queries)
    if trace is not None:
        trace.update(mode=gemm.mode, eps_rel=gemm.eps_rel, margins=[], plans=[], blocks=0, merges=0,
                     researched=[])
    with _full_precision_reductions(torch, dev):
        while pending.numel():
            kc = min(n_eff, k + margin)
            sel = min(n, kc + (1 if graph else 0))
            exhaustive = sel >= n
            plan = plan_tiles(pending.numel(), n, d, sel, ws, upcast_base_tile=gemm.mode != "fp32"
                              and gemm.mode != "native16")
            failed = []
            if trace is not None:
                trace["margins"].append(margin)
                trace["plans"].append(plan)
                tiles = -(-n // plan.base_rows)
                q_tiles = -(-pending.numel() // plan.query_rows)
                if not exhaustive:
                    trace["blocks"] += tiles * q_tiles
                    trace["merges"] += (tiles - 1) * q_tiles
            for t0 in range(0, pending.numel(), plan.query_rows):
                rows = pending[t0 : t0 + plan.query_rows]
                qt = q[rows].to(torch.float32)  # a 16-bit x (graph) is converted a tile at a time
                self_rows = rows if graph else None
                if exhaustive:  # every row is a candidate: no selection GEMM needed
                    sel_s = None
                    sel_i = torch.arange(n, device=dev)[None, :].expand(rows.shape[0], n)
                else:
                    sel_s, sel_i, unscale = _select(torch, qt, base, stats, gemm, sel, plan, self_rows, removed)
                q64 = qt.to(torch.float64)
                key, f32 = _rerank(torch, q64, base, sel_i, metric, plan, self_rows)
                key, idx, f32 = _order(torch, key, sel_i, f32, n, self_rows, removed)
                key, idx, f32 = key[:, :k], idx[:, :k], f32[:, :k]
                qsq = (q64 * q64).sum(dim=1)
                qnorm = torch.sqrt(qsq)
                if metric != "l2":
                    # A zero query scores exactly 0 against every row: the k lowest indices.
                    zero = qsq == 0
                    first = (torch.arange(k, device=dev) if live_first is None else live_first)[None, :]
                    first = first.expand(rows.shape[0], k)
                    if graph:
                        first = first + (first >= rows[:, None]).to(first.dtype)
                    idx = torch.where(zero[:, None], first, idx)
                    f32 = torch.where(zero[:, None], 0.0, f32)
                if exhaustive:
                    ok = torch.ones(rows.shape[0], dtype=torch.bool, device=dev)
                else:
                    threshold = sel_s.amin(dim=1).to(torch.float64)  # NaN stays NaN: not safe
                    if unscale is not None:
                        threshold = threshold * unscale.to(torch.float64)
                    ok = _safe_rows(torch, metric, stats, gemm, d, qnorm, qsq, threshold, key[:, k - 1])
                    if metric != "l2":
                        ok = ok | zero
                if bool(ok.all()):
                    out_d[rows] = f32
                    out_i[rows] = idx
                else:
                    out_d[rows[ok]] = f32[ok]
                    out_i[rows[ok]] = idx[ok]
                    failed.append(rows[~ok])
            pending = torch.cat(failed) if failed else pending[:0]
            if pending.numel():
                if trace is not None:
                    trace["researched"].append(int(pending.numel()))
                log.debug("knn: %d queries re-searched with margin %d", pending.numel(), margin * 4)
                margin *= 4
    return out_d, out_i


# ------------------------------------------------------------------------------ entry points
def _as_tensor(torch: Any, x: Any, name: str, device: Any | None) -> Any:
    kind = _array.kind_of(x)
    if kind == "cupy":
        t = torch.from_dlpack(x)
    elif kind == "torch":
        t = x.detach()
    else:
        a = _array.float_array(x, name, dtype=np.dtype(np.float32))
        t = torch.from_numpy(a)
    if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or _is_int(torch, t)):
        raise TypeError(f"{name} must have a real floating or integer dtype, got {t.dtype}")
    if device is not None and t.device != device:
        t = t.to(device)
    return t


def _is_int(torch: Any, t: Any) -> bool:
    return t.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16,
                       torch.uint32, torch.uint64)


def _matrix(torch: Any, t: Any, name: str, keep_16bit: bool) -> Any:
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(t.shape)}")
    if t.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column, got shape {tuple(t.shape)}")
    if keep_16bit and t.dtype in (torch.float16, torch.bfloat16):
        return t.contiguous()
    return t.to(torch.float32).contiguous()


def _checks():
    from . import search  # noqa: PLC0415  (search imports this module lazily)

    return search


def knn_torch(
    base: Any,
    queries: Any,
    k: int,
    metric: str = "ip",
    *,
    base_dtype: Any = None,
    workspace_bytes: int | None = None,
    margin: int | None = None,
    prepared: BaseStats | None = None,
    removed: Any = None,
    _trace: dict | None = None,
) -> tuple[Any, Any]:
    """Exact kNN with torch ops on ``base``'s device (CPU or CUDA); see the module notes.

    Parameters
    ----------
    base : torch tensor of shape (N, D)
        float32 (float64 and integers are converted to float32), float16 or bfloat16 (kept: the
        GEMM runs in that type and results are exact for the stored values). N >= 1, finite.
    queries : torch tensor of shape (M, D)
        Converted to float32 (moved to ``base``'s device if needed). Finite.
    k : int
        1 <= k <= N; no other cap.
    metric : {"ip", "l2", "cosine"}
        As :func:`curata.search.knn`; a zero vector has cosine similarity 0 with everything.
    base_dtype : torch dtype, optional
        Convert the base to this dtype first (a copy): ``torch.float16`` halves its memory.
    workspace_bytes : int, optional
        Temporary memory budget (default: 1 GiB on CUDA, capped at a quarter of the free device
        memory but not below 64 MiB; 256 MiB on CPU).
    margin : int, optional
        Extra candidates per query before re-ranking (default ``16 + k // 16`` for float32 GEMMs,
        ``64 + k // 4`` for 16-bit/TF32 ones); multiplied by 4 for queries that fail the check.
    prepared : BaseStats, optional
        From :func:`prepare_base` for this base and metric: skips the finiteness check and the
        norm pass (for an index searched many times). Statistics of a superset of the rows
        (e.g. before some were removed) are fine: only upper bounds are taken from them.
    removed : bool tensor of shape (N,), optional
        Rows flagged True are never returned (lazy removal in :class:`curata.search.Index`):
        their selection scores are pushed to ``-inf`` before ``topk``, the verification then
        only has to bound the other rows, and a query whose candidates include a flagged row
        (fewer live rows than candidates) fails the check and ends exhaustive, where flagged
        rows are sorted last. Indices still refer to all N rows. Needs ``k`` <= the number of
        unflagged rows. Results equal exact search over the unflagged rows (same guarantee).

    Returns
    -------
    distances : float32 tensor (M, k), indices : int64 tensor (M, k)
        On ``base``'s device, best first.

    Notes
    -----
    O(M N D) GEMM work plus O(M (k + margin) D) float64 re-ranking; 2 device-to-host syncs per
    query tile and one for the base. Peak memory: inputs, outputs, 4 N bytes of base statistics
    and ``workspace_bytes``.
    """
    torch = _torch()
    search = _checks()
    search._metric_code(metric)
    b = _as_tensor(torch, base, "base", None)
    q = _as_tensor(torch, queries, "queries", b.device)
    b = _matrix(torch, b, "base", keep_16bit=True)
    if base_dtype is not None:
        b = b.to(base_dtype).contiguous()
    q = _matrix(torch, q, "queries", keep_16bit=False)
    if b.shape[0] == 0:
        raise ValueError("base must have at least one row, got shape (0, D)")
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"queries must have {b.shape[1]} columns like base, got shape {tuple(q.shape)}")
    if removed is not None:
        if _array.kind_of(removed) == "torch":
            removed = removed.detach().to(b.device)
        else:
            removed = torch.from_numpy(np.asarray(removed).astype(bool)).to(b.device)
        if removed.shape != (b.shape[0],):
            raise ValueError(f"removed must have shape ({b.shape[0]},), got {tuple(removed.shape)}")
        removed = removed.to(torch.bool)
        kk = search._k(k, int((~removed).sum()), "number of rows not removed")
    else:
        kk = search._k(k, b.shape[0], "number of base rows")
    ws = _workspace(torch, b.device, workspace_bytes)
    stats = prepared if prepared is not None else prepare_base(b, metric, workspace_bytes=ws)
    if stats.metric != metric:
        raise ValueError(f"prepared must be computed for metric {metric!r}, got {stats.metric!r}")
    if q.shape[0]:
        bad = ~torch.isfinite(q).all(dim=1)
        if bool(bad.any()):
            raise ValueError(f"queries must be finite, got NaN or infinity in row {int(torch.nonzero(bad)[0, 0])}")
    return _search(torch, b, q, kk, metric, stats, ws, _margin(margin), graph=False, trace=_trace, removed=removed)


def knn_graph_torch(
    x: Any,
    k: int,
    metric: str = "ip",
    *,
    base_dtype: Any = None,
    workspace_bytes: int | None = None,
    margin: int | None = None,
    _trace: dict | None = None,
) -> tuple[Any, Any]:
    """Self-join of ``x`` with torch ops: the ``k`` best other rows of every row (as
    :func:`curata.search.knn_graph`: exclusion by index, duplicates at other indices kept).

    Parameters, results and guarantees as :func:`knn_torch` with ``base = queries = x``; the
    queries are the stored rows themselves (exact float32 values of a 16-bit ``x``).
    """
    torch = _torch()
    search = _checks()
    search._metric_code(metric)
    a = _matrix(torch, _as_tensor(torch, x, "x", None), "x", keep_16bit=True)
    if base_dtype is not None:
        a = a.to(base_dtype).contiguous()
    if a.shape[0] < 2:
        raise ValueError(f"x must have at least 2 rows for a kNN graph, got shape {tuple(a.shape)}")
    kk = search._k(k, a.shape[0] - 1, "number of rows of x minus 1")
    ws = _workspace(torch, a.device, workspace_bytes)
    stats = prepare_base(a, metric, workspace_bytes=ws, name="x")
    return _search(torch, a, a, kk, metric, stats, ws, _margin(margin), graph=True, trace=_trace)


def _f32_down(torch, x64):
    """float64 -> float32 rounded toward -inf (so ``s >= result`` whenever ``s >= x64``)."""
    x32 = x64.to(torch.float32)
    return torch.where(x32.to(torch.float64) > x64, torch.nextafter(x32, torch.full_like(x32, float("-inf"))), x32)


def _range_lower_bounds(torch, metric, stats: BaseStats, gemm: _Gemm, d: int, qnorm, qsq, radius: float):
    """Per query, a float64 lower bound on the *approximate* selection score (as
    :func:`_score_block` computes it, unscaled) of every row whose reported float32 value can
    pass the radius test; rows scoring below it are certainly out.

    The reported value is the float64 pair score rounded to float32, so a hit has a float64
    score within one float32 rounding (``delta``) of the radius, an exact score within the
    float64 summation error (``g64`` terms) of that, and an approximate score within the GEMM
    bound of ``_safe_rows`` (``e_dot``/``e_a``) of the exact one. An infinite radius needs no
    bound: everything (``-inf`` for ip/cosine, ``+inf`` for l2) or nothing but overflow."""
    B = stats.max_norm
    dev = qnorm.device
    if not math.isfinite(radius):
        everything = (radius < 0) if metric != "l2" else (radius > 0)
        return torch.full_like(qnorm, float("-inf") if everything else float("inf"))
    g64 = _SAFETY * (d + 4) * _U64 / (1 - (d + 4) * _U64)
    delta = 4 * _U32 * abs(radius) + 2.0**-126
    e_dot = gemm.eps_rel * qnorm * B + gemm.eps_abs
    if metric == "ip":
        return radius - delta - e_dot - g64 * qnorm * B
    if metric == "l2":
        e_a = 2 * e_dot + _SAFETY * 2 * _U32 * (2 * qnorm * B + 2 * B * B)
        return qsq * (1 - g64) - radius - delta - e_a - g64 * (qnorm + B) ** 2
    e_a = gemm.eps_rel * qnorm + _SAFETY * 4 * _U32 * qnorm + gemm.eps_abs * stats.max_inv_norm
    lo = (radius - delta - 4 * g64) * qnorm - 2 * g64 * abs(radius) * qnorm - e_a
    return lo.to(dev)


def range_torch(
    base: Any,
    queries: Any,
    radius: float,
    metric: str = "ip",
    *,
    workspace_bytes: int | None = None,
    prepared: BaseStats | None = None,
    removed: Any = None,
    order: str = "index",
    _trace: dict | None = None,
) -> tuple[Any, Any, Any]:
    """Exact range search with torch ops on ``base``'s device (CPU or CUDA).

    A row is a hit of a query when its **float64 score rounded to float32** (the value
    :func:`knn_torch` reports) is ``<= radius`` ("l2", squared distance) or ``>= radius``
    ("ip", "cosine"), both inclusive, with ``radius`` rounded to float32 first.

    Parameters
    ----------
    base : torch tensor of shape (N, D)
        float32 (other real dtypes converted), float16 or bfloat16 (kept). Finite; N may be 0.
    queries : torch tensor of shape (M, D)
        float32 (moved to ``base``'s device). Finite; M may be 0.
    radius : float
        Not NaN; +-inf allowed.
    metric : {"ip", "l2", "cosine"}
    workspace_bytes, prepared, removed
        As :func:`knn_torch` (flagged rows are never hits).
    order : {"index", "score"}
        Order of the hits within a query: increasing row index (insertion order, as the CPU
        Index reports them), or best score first with ties by lower row index.

    Returns
    -------
    lims : int64 tensor (M + 1,), distances : float32 tensor (lims[M],), indices : int64 tensor (lims[M],)
        faiss's CSR layout on ``base``'s device; within a query, hits ordered as ``order`` says.

    Notes
    -----
    For each (query tile, base tile) score block of :func:`plan_tiles` (half the workspace), one
    GEMM gives approximate scores; every pair whose approximate score is not below a rigorous
    lower bound (the GEMM error bound of :func:`knn_torch` plus one float32 rounding of the
    radius, :func:`_range_lower_bounds`) is collected with ``torch.nonzero`` and re-scored in
    float64 from the stored vectors, and the float32-rounded score decides -- so a row whose
    approximate score lies within the error bound of the radius is always decided by the exact
    re-check. Queries whose products may overflow float32 re-score every row.
    Time O(M N D) GEMM work + O(C D) float64 re-scoring for the C candidates (the hits plus the
    rows within the error bound of the radius). Peak memory: ``workspace_bytes``, 16 bytes per
    candidate of one score block, and the hits (20 bytes each) about twice while they are
    concatenated and ordered. One device-to-host sync per score block.
    """
    torch = _torch()
    search = _checks()
    search._metric_code(metric)
    b = _matrix(torch, _as_tensor(torch, base, "base", None), "base", keep_16bit=True)
    q = _matrix(torch, _as_tensor(torch, queries, "queries", b.device), "queries", keep_16bit=False)
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"queries must have {b.shape[1]} columns like base, got shape {tuple(q.shape)}")
    if isinstance(radius, (bool, np.bool_)) or not isinstance(radius, (int, float, np.integer, np.floating)):
        raise TypeError(f"radius must be a real number, got {type(radius).__name__}")
    if radius != radius:
        raise ValueError("radius must not be NaN")
    if order not in ("index", "score"):
        raise ValueError(f"order must be 'index' or 'score', got {order!r}")
    with np.errstate(over="ignore"):
        r32 = float(np.float32(radius))
    n, m = b.shape[0], q.shape[0]
    dev = b.device
    if removed is not None:
        removed = removed.detach().to(dev) if _array.kind_of(removed) == "torch" else \
            torch.from_numpy(np.asarray(removed).astype(bool)).to(dev)
        if removed.shape != (n,):
            raise ValueError(f"removed must have shape ({n},), got {tuple(removed.shape)}")
        removed = removed.to(torch.bool)
    if m:
        bad = ~torch.isfinite(q).all(dim=1)
        if bool(bad.any()):
            raise ValueError(f"queries must be finite, got NaN or infinity in row {int(torch.nonzero(bad)[0, 0])}")
    lims = torch.zeros(m + 1, dtype=torch.int64, device=dev)
    if n == 0 or m == 0:
        return lims, torch.empty(0, dtype=torch.float32, device=dev), torch.empty(0, dtype=torch.int64, device=dev)
    ws = _workspace(torch, dev, workspace_bytes)
    stats = prepared if prepared is not None else prepare_base(b, metric, workspace_bytes=ws)
    if stats.metric != metric:
        raise ValueError(f"prepared must be computed for metric {metric!r}, got {stats.metric!r}")
    d = b.shape[1]
    gemm = _gemm_plan(torch, b, d)
    plan = plan_tiles(m, n, d, 1, max(1, ws // 2), upcast_base_tile=gemm.mode not in ("fp32", "native16"))
    if _trace is not None:
        _trace.update(mode=gemm.mode, plan=plan, candidates=0, hits=0)
    hit_q, hit_b, hit_d = [], [], []
    larger = metric != "l2"
    with _full_precision_reductions(torch, dev):
        for t0 in range(0, m, plan.query_rows):
            qt = q[t0 : t0 + plan.query_rows]
            q64 = qt.to(torch.float64)
            qsq = (q64 * q64).sum(dim=1)
            qnorm = torch.sqrt(qsq)
            lo = _range_lower_bounds(torch, metric, stats, gemm, d, qnorm, qsq, r32)
            qg, inv_scale = _gemm_queries(torch, qt, gemm)
            two_inv = None if inv_scale is None else (2.0 * inv_scale)[:, None]
            if inv_scale is not None and metric != "l2":
                lo = lo / inv_scale.to(torch.float64)  # compare in the scaled units (powers of 2)
            lo32 = _f32_down(torch, lo)[:, None]
            # Products near the float32 range may overflow in the GEMM: no bound, re-score all.
            everything = ((qnorm + stats.max_norm) ** 2 >= 1e37)[:, None]
            for b0 in range(0, n, plan.base_rows):
                b1 = min(n, b0 + plan.base_rows)
                s = _score_block(torch, qg, b, stats, gemm, b0, b1, two_inv)
                cand = (s >= lo32) | torch.isnan(s) | everything
                del s
                if removed is not None:
                    cand &= ~removed[b0:b1][None, :]
                pairs = torch.nonzero(cand)
                del cand
                c = pairs.shape[0]
                if _trace is not None:
                    _trace["candidates"] += c
                for p0 in range(0, c, plan.rerank_pairs):
                    qi = pairs[p0 : p0 + plan.rerank_pairs, 0]
                    bi = pairs[p0 : p0 + plan.rerank_pairs, 1] + b0
                    with np.errstate(over="ignore"):
                        f32 = _pair_scores(torch, metric, b[bi], q64[qi], qnorm[qi]).to(torch.float32) + 0.0
                    keep = f32 >= r32 if larger else f32 <= r32
                    hit_q.append(qi[keep] + t0)
                    hit_b.append(bi[keep])
                    hit_d.append(f32[keep])
    if not hit_q:
        return lims, torch.empty(0, dtype=torch.float32, device=dev), torch.empty(0, dtype=torch.int64, device=dev)
    qs = torch.cat(hit_q)
    bs = torch.cat(hit_b)
    ds = torch.cat(hit_d)
    del hit_q, hit_b, hit_d
    # Blocks come by (query tile, base tile) and pairs row-major inside a block, so a stable sort
    # by query leaves each query's hits in increasing row order; for "score", a stable sort by
    # score first (rows still increasing among equal scores).
    if order == "score":
        _, by_score = torch.sort(ds, descending=larger, stable=True)
        qs, bs, ds = qs[by_score], bs[by_score], ds[by_score]
    qs, perm = torch.sort(qs, stable=True)
    bs, ds = bs[perm], ds[perm]
    lims[1:] = torch.cumsum(torch.bincount(qs, minlength=m), dim=0)
    if _trace is not None:
        _trace["hits"] = int(bs.shape[0])
    return lims, ds, bs


def _margin(margin: Any) -> int | None:
    if margin is None:
        return None
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)):
        raise TypeError(f"margin must be an int, got {type(margin).__name__}")
    if margin < 1:
        raise ValueError(f"margin must be >= 1, got {margin}")
    return int(margin)


def _like(torch: Any, t: Any, reference: Any) -> Any:
    """A torch result as the array kind and device of ``reference``."""
    kind = _array.kind_of(reference)
    if kind == "cupy":
        return sys.modules["cupy"].from_dlpack(t)
    if kind == "torch":
        return t if t.device == reference.device else t.to(reference.device)
    return t.cpu().numpy()


def _device_of(*xs: Any) -> Any:
    torch = _torch()
    for x in xs:
        if _array.kind_of(x) == "torch" and x.is_cuda:
            return x.device
        if _array.kind_of(x) == "cupy":
            return torch.device("cuda", x.device.id)
    return None


def knn(base: Any, queries: Any, k: int, metric: str = "ip") -> tuple[Any, Any]:
    """:func:`curata.search.knn` for GPU-resident input (torch CUDA / CuPy): results as the kind
    and device of ``queries``."""
    torch = _torch()
    dev = _device_of(base, queries)  # the base's GPU (the larger array) when both are on GPUs
    b = _as_tensor(torch, base, "base", dev)
    q = _as_tensor(torch, queries, "queries", dev)
    d, i = knn_torch(b, q, k, metric)
    return _like(torch, d, queries), _like(torch, i, queries)


def knn_graph(x: Any, k: int, metric: str = "ip") -> tuple[Any, Any]:
    """:func:`curata.search.knn_graph` for GPU-resident input: results as ``x``'s kind."""
    torch = _torch()
    d, i = knn_graph_torch(_as_tensor(torch, x, "x", _device_of(x)), k, metric)
    return _like(torch, d, x), _like(torch, i, x)
