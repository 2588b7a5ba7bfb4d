"""k-means and k-means++ seeding on a device with torch ops.

The rules are those of :func:`curata.curate.kmeans` and :func:`curata.curate.kmeans_plus_plus_init`
on the host (``_cluster.py``); the same code runs on CPU torch tensors (tests) and on CUDA tensors /
CuPy arrays (through DLPack, zero copy).

What is the same as the host path
    * The random numbers: ``numpy.random.default_rng(seed)`` on the host draws the first centre
      (``rng.integers(N)``) and each pick's ``rng.random(2 + floor(ln k))`` exactly as the host path
      does; only the D² weights, their cumulative sum and the candidates' potentials are computed on
      the device. The greedy rule (keep the candidate that lowers the potential most, lowest index
      on ties), the zero-weight fix (lowest row with positive weight) and the degenerate case (all
      weight zero: lowest unused index) are the host's.
    * Lloyd: empty clusters are re-seeded with the farthest points (lowest index on ties, never
      emptying another cluster, one cluster per point per iteration), centroids are float64 sums
      divided by the counts then cast to the compute dtype, the loop stops when no label changes,
      labels and inertia are those of the final centroids.

Where it may differ: every distance is computed on the device, so its rounding differs from the
host's BLAS. The initial picks are identical unless a sampled value ``u * total`` falls within
rounding of a boundary of the cumulative D² weights (or two candidates' potentials are within
rounding of each other); a label differs only where a point's two nearest centroids are within
rounding of each other. Once a pick or a label differs the runs can diverge (k-means is chaotic), so
the guarantee is per step, not for the whole run; on data without such near-ties the results are the
host's labels, centroids to float rounding and inertia to ~1e-7 relative.

Assignment: ``|c|^2 - 2 x.c`` by one GEMM per row chunk of at most ``_BLOCK_ENTRIES`` (2**24)
distances — the workspace: a float32/float64 (rows, k) GEMM block plus a float64 distance block
(the near-tie re-check adds batches of at most 2**20 candidate entries, ~40 MiB),
at most 12 * 2**24 bytes = 192 MiB for float32 data (8 * 2**24 = 128 MiB for float64, whose GEMM
block is the distance block). The argmin
takes the first (lowest-index) minimum. Rounding of the GEMM (TF32 too, when the caller enabled it:
``torch.backends.cuda.matmul.allow_tf32`` or ``torch.set_float32_matmul_precision("high")``) is
bounded per row; every row whose two best distances are within that bound (exact ties included) is
re-checked with exact float64 squared differences against its candidate centroids, so its label is
the float64 nearest centroid, lowest index on an exact tie. The process-wide TF32 flags are never
changed (that would race with other threads); under TF32 more rows are re-checked, and the
k-means++ distances switch to float64 GEMMs on chunks of rows so the D² weights stay float32-accurate.

Centroid update: ``index_add_`` of float64 row chunks (``_UPDATE_ENTRIES`` = 2**22 values, 32 MiB).
On CUDA ``index_add_`` accumulates with atomics (contended when k is small: N / k adds per
address), so the float64 sums' last bits depend on the order;
the float32 centroids are bitwise reproducible unless a sum lies within float64 rounding of a
float32 rounding boundary; ``torch.use_deterministic_algorithms(True)`` makes them reproducible.
On CUDA that mode also needs ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (or ``:16:8``) in the environment
before the process starts: without it torch refuses every cuBLAS GEMM (the assignment's
``torch.mm``) with a RuntimeError.

Peak device memory: the data (plus a float32/float64 copy when ``x`` is float16/bfloat16/integer),
O(N) vectors (about 8 float64/int64 values per row: norms, labels, distances, the sort for empty
clusters; during k-means++ also the (N, t) candidate distances, t = 2 + floor(ln k)), O(k D)
(centroids, float64 sums) and the fixed workspaces above.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from . import _array
from ._search_device import _fp32_input_roundoff, _torch

# (rows, k) distances per assignment chunk; 12 bytes per entry for float32 data.
_BLOCK_ENTRIES = 1 << 24
# float64 values per centroid-update chunk (rows * D).
_UPDATE_ENTRIES = 1 << 22
# float64 values per chunk of the exact re-check and of the float64 k-means++ distances.
_EXACT_CHUNK = 1 << 20
# Safety factor on the rigorous rounding bound of the GEMM distances.
_SAFETY = 2.0


def _matrix(torch: Any, x: Any) -> Any:
    """(N, D) tensor in the compute dtype: float32/float64 kept, other floats -> float32, integers
    -> float64 (the host rules); finite rows checked with the host's message."""
    t = _array.torch_matrix(x, "x")
    if t.is_floating_point():
        if t.dtype not in (torch.float32, torch.float64):
            t = t.to(torch.float32)
        bad = ~torch.isfinite(t).all(dim=1)
        if t.shape[0] and bool(bad.any()):
            raise ValueError(f"x must be finite, got NaN or infinity in row {int(torch.nonzero(bad)[0, 0])}")
    else:
        t = t.to(torch.float64)
    return t


def _unit_scaled(a: Any) -> tuple[Any, float]:
    """The host path's power-of-two rescaling of huge/tiny data (see ``_cluster._unit_scaled``):
    ``(a * scale, scale)``, ``a`` itself when the scale is 1 (never modified in place)."""
    scale = _array.power_of_two_scale(a)
    return (a if scale == 1.0 else a * scale), scale


def _row_sq(torch: Any, a: Any) -> Any:
    """float64 squared norms of the rows, in chunks (never a float64 copy of ``a``)."""
    step = max(1, _EXACT_CHUNK // a.shape[1])
    return torch.cat([(a[r : r + step].to(torch.float64) ** 2).sum(dim=1) for r in range(0, a.shape[0], step)])


def _sqdist_cols(torch: Any, a: Any, sq: Any, cen: Any, exact64: bool) -> Any:
    """Squared distances (N, m) float64 of every row to the m centres ``cen`` (host formula
    ``|x|^2 - 2 x.c + |c|^2`` with the product in the compute dtype), clamped at 0."""
    c64 = cen.to(torch.float64)
    csq = (c64 * c64).sum(dim=1)
    if exact64:  # TF32 would round the inputs: float64 products on row chunks instead
        step = max(1, _EXACT_CHUNK // a.shape[1])
        g = torch.cat([torch.mm(a[r : r + step].to(torch.float64), c64.T) for r in range(0, a.shape[0], step)])
    else:
        g = torch.mm(a, cen.T).to(torch.float64)
    return (sq[:, None] - 2.0 * g + csq[None, :]).clamp_min_(0.0)


def _init_pp(torch: Any, a: Any, sq: Any, k: int, seed: int, exact64: bool) -> Any:
    """k-means++ picks (k,) int64 tensor; host random stream, device distances."""
    N = a.shape[0]
    dev = a.device
    rng = np.random.default_rng(seed)
    trials = 2 + int(np.log(k))
    idx = np.empty(k, dtype=np.int64)
    idx[0] = int(rng.integers(N))
    d2 = _sqdist_cols(torch, a, sq, a[idx[0] : idx[0] + 1], exact64)[:, 0].contiguous()
    d2[idx[0]] = 0.0
    used = np.zeros(N, dtype=bool)
    used[idx[0]] = True
    for j in range(1, k):
        cum = torch.cumsum(d2, dim=0)
        total = cum[-1]
        u = torch.from_numpy(rng.random(trials)).to(dev)
        cands = torch.searchsorted(cum, u * total, right=True).clamp_max_(N - 1)
        # Rounding landed on a zero-weight row: the lowest row with positive weight (host rule).
        first_pos = torch.argmax((d2 > 0.0).to(torch.uint8))
        cands = torch.where(d2[cands] == 0.0, first_pos, cands)
        nd = torch.minimum(d2[:, None], _sqdist_cols(torch, a, sq, a[cands], exact64))
        pots = nd.sum(dim=0)
        host = torch.cat([total.reshape(1), cands.to(torch.float64), pots]).tolist()  # one sync
        if not host[0] > 0:  # fewer distinct points than k: duplicate centres, lowest unused index
            i = int(np.argmin(used))
            best = torch.minimum(d2, _sqdist_cols(torch, a, sq, a[i : i + 1], exact64)[:, 0])
        else:
            cand_h = [int(v) for v in host[1 : 1 + trials]]
            pot_h = host[1 + trials :]
            col = min(range(trials), key=lambda t: (pot_h[t], cand_h[t]))  # lowest potential, then index
            i = cand_h[col]
            best = nd[:, col].contiguous()
        idx[j] = i
        used[i] = True
        d2 = best
        d2[i] = 0.0
    return torch.from_numpy(idx).to(dev)


def _gemm_eps(torch: Any, a: Any) -> float:
    """Relative bound (times |x| |c|) on the rounding of one GEMM dot product of length D."""
    D = a.shape[1]
    if a.dtype == torch.float64:
        u, u_t = 2.0**-53, 0.0
    else:
        u, u_t = 2.0**-24, _fp32_input_roundoff(torch, a.device)
    gamma = (D + 2) * u / (1.0 - (D + 2) * u)
    return (1.0 + u_t) ** 2 * (1.0 + gamma) - 1.0


def _assign(torch: Any, a: Any, sq: Any, c: Any, eps: float) -> tuple[Any, Any]:
    """(labels (N,) int64, squared distance to the assigned centroid (N,) float64)."""
    N, D = a.shape
    k = c.shape[0]
    dev = a.device
    c64 = c.to(torch.float64)
    csq = (c64 * c64).sum(dim=1)
    cmax = float(torch.sqrt(csq.max()))
    xnorm = torch.sqrt(sq)
    # |d_j - d_j'| rounding: two GEMM dot products (eps |x| |c| each, times 2) plus float64 terms.
    tol = _SAFETY * (4.0 * eps * xnorm * cmax + 8.0 * 2.0**-53 * (cmax * cmax + 2.0 * xnorm * cmax))
    labels = torch.empty(N, dtype=torch.int64, device=dev)
    dist = torch.empty(N, dtype=torch.float64, device=dev)
    rows = max(1, _BLOCK_ENTRIES // k)
    ct = c.T
    inf = float("inf")
    for r0 in range(0, N, rows):
        r1 = min(N, r0 + rows)
        d = torch.mm(a[r0:r1], ct).to(torch.float64)
        d.mul_(-2.0).add_(csq[None, :])
        lab = torch.argmin(d, dim=1)  # first minimum: lowest index
        best = d.gather(1, lab[:, None])[:, 0]
        dist[r0:r1] = (best + sq[r0:r1]).clamp_min_(0.0)
        if k > 1:
            d.scatter_(1, lab[:, None], inf)
            second = d.amin(dim=1)
            flag = torch.nonzero(second - best <= tol[r0:r1])[:, 0]
            # Flagged rows in batches of at most _EXACT_CHUNK candidate entries (bounded even when
            # every centroid ties, e.g. duplicate centroids from a degenerate seeding).
            fstep = max(1, _EXACT_CHUNK // k)
            for f0 in range(0, flag.numel(), fstep):
                sub = flag[f0 : f0 + fstep]
                lab[sub], dist[sub + r0] = _recheck(torch, a, c64, d, sub, r0, best, tol, lab)
        labels[r0:r1] = lab
    return labels, dist


def _recheck(
    torch: Any, a: Any, c64: Any, d: Any, sub: Any, r0: int, best: Any, tol: Any, lab: Any
) -> tuple[Any, Any]:
    """Exact float64 nearest centroid of the chunk rows ``sub`` among their candidates (centroids
    within the bound of the GEMM best, the best included): (labels, squared distances)."""
    dev = a.device
    k = c64.shape[0]
    D = a.shape[1]
    m = sub.numel()
    cand = d[sub] <= (best[sub] + tol[r0:][sub])[:, None]
    cand[torch.arange(m, device=dev), lab[sub]] = True
    pr, pj = torch.nonzero(cand, as_tuple=True)
    rows_g = sub[pr] + r0
    exact = torch.empty(pr.numel(), dtype=torch.float64, device=dev)
    step = max(1, _EXACT_CHUNK // D)
    for s in range(0, pr.numel(), step):
        diff = a[rows_g[s : s + step]].to(torch.float64) - c64[pj[s : s + step]]
        exact[s : s + step] = (diff * diff).sum(dim=1)
    rowmin = torch.full((m,), float("inf"), dtype=torch.float64, device=dev)
    rowmin.scatter_reduce_(0, pr, exact, reduce="amin")
    win = exact == rowmin[pr]
    jbest = torch.full((m,), k, dtype=torch.int64, device=dev)
    jbest.scatter_reduce_(0, pr[win], pj[win], reduce="amin")  # lowest index among exact minima
    return jbest, rowmin


def _cluster_sums(torch: Any, a: Any, labels: Any, k: int) -> Any:
    """Per-cluster float64 sums (k, D) by ``index_add_`` of float64 row chunks."""
    D = a.shape[1]
    sums = torch.zeros((k, D), dtype=torch.float64, device=a.device)
    step = max(1, _UPDATE_ENTRIES // D)
    for r in range(0, a.shape[0], step):
        sums.index_add_(0, labels[r : r + step], a[r : r + step].to(torch.float64))
    return sums


def _reseed_empty(torch: Any, labels: Any, dist: Any, counts: Any) -> tuple[Any, Any]:
    """The host's empty-cluster rule: each empty cluster takes the farthest remaining point
    (lowest index on ties) whose own cluster keeps at least one member."""
    counts_h = counts.cpu().numpy().copy()
    empty = np.flatnonzero(counts_h == 0)
    key = torch.neg(dist).add_(0.0)  # -0.0 -> +0.0: equal keys for all zero distances
    order = torch.sort(key, stable=True).indices  # farthest first, lowest index on ties
    N = order.numel()
    order_h = np.zeros(0, dtype=np.int64)
    lab_h = np.zeros(0, dtype=np.int64)
    fetch = max(64, 4 * empty.size)
    pos = 0
    moved_i: list[int] = []
    moved_j: list[int] = []
    for j in empty:
        while True:
            if pos >= order_h.size:  # fetch the next stretch of the order (syncs only here)
                nxt = order[order_h.size : min(N, order_h.size + fetch)]
                order_h = np.concatenate([order_h, nxt.cpu().numpy()])
                lab_h = np.concatenate([lab_h, labels[nxt].cpu().numpy()])
                fetch *= 2
            if counts_h[lab_h[pos]] > 1:  # never empty another cluster
                break
            pos += 1
        counts_h[lab_h[pos]] -= 1
        counts_h[j] += 1
        moved_i.append(int(order_h[pos]))
        moved_j.append(int(j))
        pos += 1
    labels = labels.clone()
    dev = labels.device
    labels[torch.tensor(moved_i, dtype=torch.int64, device=dev)] = torch.tensor(moved_j, dtype=torch.int64, device=dev)
    return labels, torch.from_numpy(counts_h).to(dev)


def _back(out: Any, x: Any, *, float_out: bool = False) -> Any:
    """A result tensor as ``x``'s array kind; float results take a float16/bfloat16 input's dtype."""
    kind = _array.kind_of(x)
    if float_out:
        torch = _torch()
        src = x.dtype if kind == "torch" else None
        if kind == "cupy" and np.dtype(x.dtype) == np.float16:
            src = torch.float16
        elif kind == "numpy" and np.dtype(getattr(x, "dtype", np.float64)) == np.float16:
            src = torch.float16
        if src in (torch.float16, torch.bfloat16):
            out = out.to(src)
    if kind == "cupy":
        return sys.modules["cupy"].from_dlpack(out)
    if kind == "torch":
        return out
    return out.numpy()


def _args(torch: Any, x: Any, k: Any, k_name: str, seed: Any) -> tuple[Any, int, int]:
    from . import _cluster  # noqa: PLC0415  (argument rules shared with the host path)

    a = _matrix(torch, x)
    k = _cluster._check_k(a, k, k_name)
    seed = _cluster._check_seed(seed)
    return a, k, seed


def kmeans_plus_plus_init_torch(x: Any, k: int, seed: int = 0) -> Any:
    """:func:`curata.curate.kmeans_plus_plus_init` with torch ops on ``x``'s device.

    Parameters and result as the host function; ``x`` is a torch tensor (CPU or CUDA) or a CuPy
    array, the result an int64 tensor (CuPy array for CuPy input) on the same device.

    Notes
    -----
    O(k N D) time: one (N, D) x (D, t) GEMM per pick (t = 2 + floor(ln k) candidates) and one
    device-to-host sync per pick. Peak memory: the data, O(N t) float64 candidate distances.
    """
    torch = _torch()
    a, k, seed = _args(torch, x, k, "k", seed)
    a, _ = _unit_scaled(a)
    exact64 = a.dtype == torch.float32 and _fp32_input_roundoff(torch, a.device) > 0.0
    sq = _row_sq(torch, a)
    return _back(_init_pp(torch, a, sq, k, seed, exact64), x)


def kmeans_torch(x: Any, n_clusters: int, n_iter: int = 25, seed: int = 0) -> Any:
    """:func:`curata.curate.kmeans` with torch ops on ``x``'s device.

    Parameters and result as the host function; ``x`` is a torch tensor (CPU or CUDA) or a CuPy
    array; the :class:`~curata.curate.KMeansResult` holds tensors (CuPy arrays for CuPy input) on
    that device.

    Notes
    -----
    O(n_iter N k D) time (one GEMM pass per iteration) plus the k-means++ seeding; a few
    device-to-host syncs per iteration and one per chunk that has near-tie rows. Peak memory: the
    data, O(N), O(k D) and the 192 MiB assignment workspace (see the module docstring).
    """
    from . import _cluster  # noqa: PLC0415

    torch = _torch()
    a, k, seed = _args(torch, x, n_clusters, "n_clusters", seed)
    a, scale = _unit_scaled(a)
    n_iter = _cluster._count(n_iter, "n_iter")
    eps = _gemm_eps(torch, a)
    exact64 = a.dtype == torch.float32 and _fp32_input_roundoff(torch, a.device) > 0.0
    sq = _row_sq(torch, a)
    c = a[_init_pp(torch, a, sq, k, seed, exact64)].clone()
    labels, dist = _assign(torch, a, sq, c, eps)
    run = 0
    for _ in range(n_iter):
        counts = torch.bincount(labels, minlength=k)
        if bool((counts == 0).any()):
            labels, counts = _reseed_empty(torch, labels, dist, counts)
        c = (_cluster_sums(torch, a, labels, k) / counts[:, None]).to(a.dtype)
        run += 1
        new_labels, dist = _assign(torch, a, sq, c, eps)
        changed = not torch.equal(new_labels, labels)
        labels = new_labels
        if not changed:
            break
    inertia = float(dist.sum())
    if scale != 1.0:  # back to the caller's scale (exact: powers of two)
        c = (c.to(torch.float64) / scale).to(c.dtype)
        inertia = inertia / scale / scale  # may overflow to inf: the true value does too
    return _cluster.KMeansResult(
        centroids=_back(c, x, float_out=True), labels=_back(labels, x), inertia=inertia, n_iter=run
    )


__all__ = ["kmeans_torch", "kmeans_plus_plus_init_torch"]
