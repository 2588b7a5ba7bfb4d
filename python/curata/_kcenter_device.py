"""k-center greedy (farthest-first traversal) on a device with torch ops.

The rules are those of :func:`curata.curate.k_center_greedy` on the host (``_cluster.py``):
mean-centred float32 data, a float64 running minimum squared distance per point updated by one
matrix-vector product per pick, and every point within a rigorous float32 rounding bound of the
maximum re-checked with exact float64 distances to all chosen centres (lowest index on an exact
tie, for cosine within the normalisation's rounding; more than 256 such points: the lowest index
among the float32 maxima). The same code runs on CPU torch tensors (tests) and CUDA tensors /
CuPy arrays (through DLPack).

Per pick: one pass over the float32 data (memory bound: ~1 ms for 1M x 512 on a GPU with 2 TB/s)
and one device-to-host sync (the pick and the number of near-maximum points). Memory: a centred
float32 copy of ``x`` (4 N D bytes, built from float64 chunks), a few float64 vectors of N, and
the exact re-check's chunks (about 2^20 float64 values at a time).

The float64 re-check is computed from the caller's data (differences of float64 rows, normalised
in float64 for "cosine") rather than from a centred float64 copy; picks agree with the host path
except where two candidates' float64 distances differ by float64 rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _array
from ._search_device import _fp32_input_roundoff, _torch
from ._cluster import _cosine_tie_tol

_REFINE_MAX = 256
_EXACT_CHUNK = 1 << 20


def k_center_greedy_torch(x: Any, n: int, already_selected: Any = None, metric: str = "l2") -> Any:
    """:func:`curata.curate.k_center_greedy` with torch ops on ``x``'s device.

    Parameters and results as the host function; ``x`` is a torch tensor (CPU or CUDA) or a CuPy
    array, the result an int64 tensor (CuPy array for CuPy input) on the same device.

    Notes
    -----
    O(n N D) time, one sync per pick; peak memory 4 N D + 40 N bytes plus fixed chunks.
    """
    from . import _cluster  # noqa: PLC0415  (argument rules shared with the host path)

    torch = _torch()
    if not isinstance(metric, str) or metric not in _cluster._KCENTER_METRICS:
        raise ValueError(f"metric must be one of {list(_cluster._KCENTER_METRICS)}, got {metric!r}")
    n = _cluster._count(n, "n")
    t = _array.torch_matrix(x, "x", host_dtype=np.dtype(np.float64))
    dev = t.device
    N, D = t.shape
    bad = ~torch.isfinite(t).all(dim=1) if t.is_floating_point() else torch.zeros(N, dtype=torch.bool, device=dev)
    if N and bool(bad.any()):
        raise ValueError(f"x must be finite, got NaN or infinity in row {int(torch.nonzero(bad)[0, 0])}")
    if already_selected is None:
        sel = torch.zeros(0, dtype=torch.int64, device=dev)
    else:
        if _array.kind_of(already_selected) == "cupy":
            already_selected = torch.from_dlpack(already_selected)
        if _array.kind_of(already_selected) == "torch":
            already_selected = already_selected.detach().cpu().numpy()
        s = _array.int_array(already_selected, "already_selected")
        if s.size and (s.min() < 0 or s.max() >= N):
            raise ValueError(
                f"already_selected must hold indices in [0, {N - 1}], got values in [{s.min()}, {s.max()}]"
            )
        sel = torch.from_numpy(np.unique(s)).to(dev)
    available = N - sel.numel()
    if n > available:
        raise ValueError(f"n must be <= {available} (rows of x not in already_selected), got {n}")
    out = torch.zeros(n, dtype=torch.int64, device=dev)
    if n == 0:
        return _array.like_torch(out, x)

    # Centred float32 copy, built in float64 chunks (never a full float64 copy of x).
    step = max(1, _EXACT_CHUNK // D)
    # Huge or tiny values: every float64 row is multiplied by a power of two (exact; picks are
    # scale-invariant), as on the host, so float32 squares neither overflow nor underflow.
    scale = _array.power_of_two_scale(t)

    def chunk64(r0: int) -> Any:
        r = t[r0 : r0 + step].to(torch.float64)
        return r * scale if scale != 1.0 else r

    inv_norm = None
    if metric == "cosine":
        # Each row times its own power of two (largest |value| into [0.5, 1)) before its norm, as
        # on the host: a row far smaller or larger than the others neither underflows to a false
        # zero norm nor overflows. Folded into inv_norm (exact: a power of two).
        def chunk_scale(r0: int) -> Any:
            top = chunk64(r0).abs().amax(dim=1)
            return torch.ldexp(torch.ones_like(top), -torch.frexp(top).exponent)

        row_scale = torch.cat([chunk_scale(r0) for r0 in range(0, N, step)])
        sq = torch.cat([((chunk64(r0) * row_scale[r0 : r0 + step, None]) ** 2).sum(dim=1)
                        for r0 in range(0, N, step)])
        zero = sq == 0
        if bool(zero.any()):
            raise ValueError(
                f"x must have non-zero rows for metric 'cosine', got an all-zero row {int(torch.nonzero(zero)[0, 0])}"
            )
        inv_norm = 1.0 / torch.sqrt(sq) * row_scale

    def rows64(idx: Any) -> Any:
        """float64 rows (normalised for "cosine") that the exact re-check differences."""
        r = t[idx].to(torch.float64)
        if scale != 1.0:
            r = r * scale
        return r * inv_norm[idx][:, None] if inv_norm is not None else r

    total = torch.zeros(D, dtype=torch.float64, device=dev)
    for r0 in range(0, N, step):
        total += rows64(torch.arange(r0, min(N, r0 + step), device=dev)).sum(dim=0)
    mean = total / N
    x32 = torch.empty((N, D), dtype=torch.float32, device=dev)
    sq32 = torch.empty(N, dtype=torch.float64, device=dev)
    for r0 in range(0, N, step):
        c = (rows64(torch.arange(r0, min(N, r0 + step), device=dev)) - mean).to(torch.float32)
        x32[r0 : r0 + c.shape[0]] = c
        sq32[r0 : r0 + c.shape[0]] = (c.to(torch.float64) ** 2).sum(dim=1)
    maxnorm = float(torch.sqrt(sq32.max()))
    eps32 = float(np.finfo(np.float32).eps)
    u_t = _fp32_input_roundoff(torch, dev)
    tol = 4.0 * ((D + 4) * eps32 + 2 * u_t) * maxnorm * maxnorm + 1e-300

    tie_tol = _cosine_tie_tol(D) if metric == "cosine" else 0.0
    mind = torch.full((N,), float("inf"), dtype=torch.float64, device=dev)
    chosen: list[int] = []

    def add_centre(i: int) -> None:
        d2 = sq32 - 2.0 * torch.mv(x32, x32[i]).to(torch.float64) + sq32[i]
        torch.minimum(mind, d2, out=mind)
        chosen.append(i)

    def exact_min(cands: Any) -> Any:
        centres = rows64(torch.tensor(chosen, dtype=torch.int64, device=dev))
        pts = rows64(cands)
        best = torch.full((cands.numel(),), float("inf"), dtype=torch.float64, device=dev)
        step = max(1, _EXACT_CHUNK // max(1, cands.numel() * D))
        for s0 in range(0, centres.shape[0], step):
            diff = pts[:, None, :] - centres[None, s0 : s0 + step, :]
            best = torch.minimum(best, (diff * diff).sum(dim=2).amin(dim=1))
        return best

    for i in sel.tolist():
        add_centre(int(i))
    taken = torch.zeros(N, dtype=torch.bool, device=dev)
    taken[sel] = True
    start = 0
    if sel.numel() == 0:
        add_centre(0)
        taken[0] = True
        start = 1  # out[0] is already 0
    neg_inf = torch.tensor(float("-inf"), dtype=torch.float64, device=dev)
    for p in range(start, n):
        masked = torch.where(taken, neg_inf, mind)
        top_t = torch.argmax(masked)  # first maximum: the lowest index
        near = masked >= masked[top_t] - tol
        top, count = torch.stack([top_t, near.sum()]).tolist()
        if 1 < count <= _REFINE_MAX:
            cands = torch.nonzero(near)[:, 0]  # ascending
            ex = exact_min(cands)
            # lowest index among the maxima (within the normalisation's rounding for cosine)
            top = int(cands[int(torch.argmax((ex >= ex.max() - tie_tol).to(torch.uint8)))])
        out[p] = top
        taken[top] = True
        if p + 1 < n:
            add_centre(int(top))
    return _array.like_torch(out, x)
