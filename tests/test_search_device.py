"""The torch device path of curata.search (curata._search_device), run on CPU torch tensors.

The code is the one that runs on CUDA (cuBLAS GEMM there); here torch's CPU GEMM stands in, and
a float16/bfloat16 base takes the "emulate16" mode (queries rounded to 16 bits, as the device
GEMM would see them), so the error bound and the re-search of unverified queries are exercised.
Checked against an independent float64 numpy brute force (tests/search_reference.py), against the
C++ core (curata.search.knn on numpy input), and on integer data where every score is exact, so
ties must resolve exactly as documented.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from curata import search
from search_reference import assert_same_knn, knn_reference, scores64

torch = pytest.importorskip("torch")
from curata import _search_device as sd  # noqa: E402

METRICS = ("ip", "l2", "cosine")
TINY_WS = 32 << 10  # forces many query and base tiles on the sizes below


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _data(rng, n, m, d, dtype=np.float32):
    return rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((m, d)).astype(dtype)


# ------------------------------------------------------------------------------ exactness
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k", [1, 7, 2000])
@pytest.mark.parametrize("workspace", [None, TINY_WS])
def test_knn_torch_matches_float64_reference_and_core(rng, metric, k, workspace):
    base, queries = _data(rng, 2000, 41, 24)
    trace = {}
    d, i = sd.knn_torch(_t(base), _t(queries), k, metric, workspace_bytes=workspace, _trace=trace)
    assert isinstance(d, torch.Tensor) and d.dtype == torch.float32 and i.dtype == torch.int64
    assert_same_knn(d.numpy(), i.numpy(), base, queries, k, metric)
    cd, ci = search.knn(base, queries, k, metric)
    # The core computes in float32 (l2 through norms): same neighbours up to its rounding.
    np.testing.assert_allclose(d.numpy(), cd, rtol=1e-5, atol=1e-4)
    agree = np.mean(i.numpy() == ci)
    assert agree > 0.99
    if workspace == TINY_WS and k + trace["margins"][0] < 2000:
        assert trace["blocks"] > 4 and trace["merges"] > 0


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_k_above_2048(rng, metric):
    base, queries = _data(rng, 5000, 6, 16)
    trace = {}
    d, i = sd.knn_torch(_t(base), _t(queries), 3000, metric, workspace_bytes=320 << 10, _trace=trace)
    assert tuple(i.shape) == (6, 3000)
    assert trace["merges"] > 0  # the candidate set was merged across base tiles
    assert_same_knn(d.numpy(), i.numpy(), base, queries, 3000, metric)


def test_k_equals_n_returns_every_row_sorted(rng):
    base, queries = _data(rng, 257, 5, 8)
    d, i = sd.knn_torch(_t(base), _t(queries), 257, "l2", workspace_bytes=TINY_WS)
    assert (np.sort(i.numpy(), axis=1) == np.arange(257)).all()
    assert (np.diff(d.numpy(), axis=1) >= 0).all()


@pytest.mark.parametrize("metric", METRICS)
def test_many_tiles_same_result_as_one_tile(rng, metric):
    base, queries = _data(rng, 2000, 60, 32)
    big = sd.knn_torch(_t(base), _t(queries), 25, metric, workspace_bytes=1 << 28)
    trace = {}
    small = sd.knn_torch(_t(base), _t(queries), 25, metric, workspace_bytes=TINY_WS, _trace=trace)
    plan = trace["plans"][0]
    assert plan.query_rows < 60 and plan.base_rows < 2000
    assert plan.estimate_bytes <= TINY_WS
    assert torch.equal(big[0], small[0]) and torch.equal(big[1], small[1])


# ------------------------------------------------------------------------------ 16-bit base
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("margin", [None, 1])
def test_16bit_base_equals_exact_search_over_rounded_base(rng, metric, dtype, margin):
    tdtype = getattr(torch, dtype)
    base, queries = _data(rng, 3000, 60, 48)
    b16 = _t(base).to(tdtype)
    rounded = b16.float().numpy()
    trace = {}
    d, i = sd.knn_torch(b16, _t(queries), 40, metric, margin=margin, workspace_bytes=1 << 20, _trace=trace)
    assert trace["mode"] == "emulate16"
    assert_same_knn(d.numpy(), i.numpy(), rounded, queries, 40, metric)
    # Same as the float32 device path over the rounded base, bit for bit (same float64 re-rank).
    d32, i32 = sd.knn_torch(_t(rounded), _t(queries), 40, metric)
    assert torch.equal(d, d32) and torch.equal(i, i32)
    if margin == 1:
        # A one-candidate margin cannot absorb 16-bit rounding: the check must have caught
        # queries and searched them again (this is what keeps the results above exact).
        assert trace["researched"] and trace["researched"][0] > 0


def test_16bit_selection_alone_would_miss_neighbours(rng):
    """The bfloat16 selection with a one-row margin misses true neighbours for some queries, and
    knn_torch still returns them: the verification does real work (not a check that always
    passes)."""
    base, queries = _data(rng, 3000, 60, 48)
    b16 = _t(base).bfloat16()
    k = 200
    stats = sd.prepare_base(b16, "ip")
    gemm = sd._gemm_plan(torch, b16, 48)
    plan = sd.plan_tiles(60, 3000, 48, k + 1, 1 << 22, upcast_base_tile=True)
    _, idx, _ = sd._select(torch, _t(queries), b16, stats, gemm, k + 1, plan, None)
    rounded = b16.float().numpy()
    _, ri = knn_reference(rounded, queries, k, "ip")
    missed = sum(len(set(ri[r]) - set(idx[r].tolist())) for r in range(60))
    assert missed > 0
    d, i = sd.knn_torch(b16, _t(queries), k, "ip", margin=1)
    assert_same_knn(d.numpy(), i.numpy(), rounded, queries, k, "ip")


def test_base_dtype_argument_converts(rng):
    base, queries = _data(rng, 500, 10, 16)
    d, i = sd.knn_torch(_t(base), _t(queries), 5, "cosine", base_dtype=torch.float16)
    assert_same_knn(d.numpy(), i.numpy(), _t(base).half().float().numpy(), queries, 5, "cosine")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_gemm_error_within_documented_bound(rng, dtype):
    """The bound the verification relies on, against measured GEMM errors (half the safety)."""
    tdtype = getattr(torch, dtype)
    d = 256
    base = _t(rng.standard_normal((400, d)).astype(np.float32)).to(tdtype)
    q = _t((rng.standard_normal((50, d)) * 10.0 ** rng.uniform(-6, 6, (50, 1))).astype(np.float32))
    gemm = sd._gemm_plan(torch, base, d)
    stats = sd.prepare_base(base, "ip")
    plan = sd.plan_tiles(50, 400, d, 400, 1 << 24, upcast_base_tile=True)
    s, idx, unscale = sd._select(torch, q, base, stats, gemm, 400, plan, None)
    s = s.double() if unscale is None else s.double() * unscale.double()[:, None]
    exact = q.double() @ base.double().T
    approx = torch.zeros_like(exact).scatter_(1, idx, s)
    bound = gemm.eps_rel / 2 * q.double().norm(dim=1)[:, None] * base.double().norm(dim=1)[None, :]
    assert ((approx - exact).abs() <= bound + gemm.eps_abs).all()


# ------------------------------------------------------------------------------ ties, zeros, dups
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_integer_data_ties_resolve_by_lowest_index(metric, dtype):
    """Small integers: every score is exact, masses of exact ties; results must equal the
    reference exactly, including which tied rows fill the last places."""
    rng = np.random.default_rng(7)
    base = rng.integers(-2, 3, (400, 4)).astype(np.float32)
    queries = rng.integers(-2, 3, (30, 4)).astype(np.float32)
    b = _t(base).to(getattr(torch, dtype))
    for k in (1, 9, 50):
        d, i = sd.knn_torch(b, _t(queries), k, metric, margin=2, workspace_bytes=TINY_WS)
        rd, ri = knn_reference(base, queries, k, metric)
        np.testing.assert_array_equal(i.numpy(), ri)
        np.testing.assert_array_equal(d.numpy(), rd)
        if metric != "cosine":  # the core is exact on integers for ip / l2 too
            cd, ci = search.knn(base, queries, k, metric)
            np.testing.assert_array_equal(i.numpy(), ci)
            np.testing.assert_array_equal(d.numpy(), cd)


def test_duplicates_beyond_the_margin(rng):
    base = rng.standard_normal((1000, 8)).astype(np.float32)
    base[100:700] = base[50]  # 601 exact copies of row 50
    trace = {}
    d, i = sd.knn_torch(_t(base), _t(base[50:51]), 10, "l2", margin=4, _trace=trace)
    assert i.numpy().tolist() == [[50] + list(range(100, 109))]
    assert (d.numpy() == 0).all()
    assert len(trace["margins"]) > 2  # widened until the tie group fit
    gd, gi = sd.knn_graph_torch(_t(base), 3, "l2", margin=4)
    assert gi[50].tolist() == [100, 101, 102] and gi[100].tolist() == [50, 101, 102]


@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_zero_vectors(rng, metric):
    base, queries = _data(rng, 200, 6, 8)
    base[[3, 17]] = 0
    queries[2] = 0
    d, i = sd.knn_torch(_t(base), _t(queries), 12, metric, workspace_bytes=TINY_WS)
    assert i[2].tolist() == list(range(12)) and (d[2] == 0).all()
    assert_same_knn(d.numpy(), i.numpy(), base, queries, 12, metric)
    cd, ci = search.knn(base, queries, 12, metric)
    np.testing.assert_array_equal(ci[2], i[2].numpy())
    gd, gi = sd.knn_graph_torch(_t(base), 5, metric)
    cgd, cgi = search.knn_graph(base, 5, metric)
    np.testing.assert_array_equal(gi[3].numpy(), cgi[3])  # a zero row: lowest other indices
    assert gi[3].tolist() == [0, 1, 2, 4, 5]


# ------------------------------------------------------------------------------ graph
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_knn_graph_torch_matches_reference_and_core(rng, metric, dtype):
    x = rng.standard_normal((500, 16)).astype(np.float32)
    x[10] = x[20]  # a duplicate pair: each is the other's neighbour at distance 0 (l2)
    xt = _t(x).to(getattr(torch, dtype))
    xr = xt.float().numpy()
    d, i = sd.knn_graph_torch(xt, 9, metric, workspace_bytes=TINY_WS)
    assert_same_knn(d.numpy(), i.numpy(), xr, xr, 9, metric, exclude_self=True)
    cd, ci = search.knn_graph(xr, 9, metric)
    assert np.mean(i.numpy() == ci) > 0.99
    np.testing.assert_allclose(d.numpy(), cd, rtol=1e-5, atol=1e-4)
    if metric == "l2":
        assert i[10, 0] == 20 and i[20, 0] == 10 and d[10, 0] == 0


def test_knn_graph_ip_excludes_self_by_index(rng):
    x = rng.standard_normal((300, 8)).astype(np.float32)
    x[7] *= 0.01  # row 7 is nobody's best match under ip, not even its own
    d, i = sd.knn_graph_torch(_t(x), 299, "ip", workspace_bytes=TINY_WS)
    assert (np.sort(i.numpy(), axis=1) == np.array([np.delete(np.arange(300), r) for r in range(300)])).all()
    assert_same_knn(d.numpy(), i.numpy(), x, x, 299, "ip", exclude_self=True)


# ------------------------------------------------------------------------------ inputs
def test_input_dtypes_and_layouts(rng):
    base, queries = _data(rng, 120, 9, 10, np.float64)
    want = sd.knn_torch(_t(base.astype(np.float32)), _t(queries.astype(np.float32)), 4, "l2")
    got = sd.knn_torch(_t(base), _t(queries), 4, "l2")  # float64 -> float32
    assert torch.equal(got[1], want[1])
    bt = _t(np.asfortranarray(base.astype(np.float32)))  # non-contiguous rows
    qt = _t(queries.astype(np.float32).T.copy()).T
    assert not qt.is_contiguous()
    got = sd.knn_torch(bt, qt, 4, "l2")
    assert torch.equal(got[1], want[1]) and torch.equal(got[0], want[0])
    ints = rng.integers(-5, 5, (50, 3))
    d, i = sd.knn_torch(_t(ints), _t(ints[:4]), 2, "l2")
    assert i[:, 0].tolist() == [0, 1, 2, 3] or (d[:, 0] == 0).all()
    d, i = sd.knn_torch(_t(base), _t(queries[:0]), 3, "ip")
    assert tuple(d.shape) == (0, 3) and tuple(i.shape) == (0, 3)


def test_errors_match_the_cpu_path(rng):
    base, queries = _data(rng, 20, 5, 4)
    bad = base.copy()
    bad[3, 1] = np.nan
    cases = [
        ((bad, queries, 2, "l2"), "base must be finite, got NaN or infinity in row 3"),
        ((base, np.where(np.arange(4) == 2, np.inf, queries), 2, "l2"), "queries must be finite"),
        ((base, queries[:, :3], 2, "l2"), r"queries must have 4 columns like base, got shape \(5, 3\)"),
        ((base, queries, 0, "l2"), r"k must be in \[1, 20\]"),
        ((base, queries, 21, "l2"), r"k must be in \[1, 20\]"),
        ((base, queries, 2, "cos"), "metric must be one of"),
        ((base[:0], queries, 2, "l2"), "base must have at least one row"),
        ((base[0], queries, 2, "l2"), r"base must have shape \(N, D\), got \(4,\)"),
        ((base[:, :0], queries[:, :0], 2, "l2"), "base must have at least one column"),
    ]
    for args, message in cases:
        cpu_args = args
        with pytest.raises(ValueError, match=message):
            sd.knn_torch(_t(args[0]), _t(args[1]), *args[2:])
        with pytest.raises(ValueError, match=message):
            search.knn(*cpu_args)
    with pytest.raises(TypeError, match="k must be an int"):
        sd.knn_torch(_t(base), _t(queries), True, "l2")
    with pytest.raises(TypeError, match="must have a real floating or integer dtype"):
        sd.knn_torch(_t(base) > 0, _t(queries), 2, "l2")
    with pytest.raises(ValueError, match="x must be finite, got NaN or infinity in row 3"):
        sd.knn_graph_torch(_t(bad), 2, "l2")
    with pytest.raises(ValueError, match="x must be finite, got NaN or infinity in row 3"):
        search.knn_graph(bad, 2, "l2")
    with pytest.raises(ValueError, match="x must have at least 2 rows"):
        sd.knn_graph_torch(_t(base[:1]), 1, "l2")
    with pytest.raises(ValueError, match=r"k must be in \[1, 19\]"):
        sd.knn_graph_torch(_t(base), 20, "l2")
    with pytest.raises(ValueError, match="workspace_bytes must be >= 1"):
        sd.knn_torch(_t(base), _t(queries), 2, "l2", workspace_bytes=0)
    with pytest.raises(ValueError, match="margin must be >= 1"):
        sd.knn_torch(_t(base), _t(queries), 2, "l2", margin=0)
    stats = sd.prepare_base(_t(base), "ip")
    with pytest.raises(ValueError, match="prepared must be computed for metric 'l2'"):
        sd.knn_torch(_t(base), _t(queries), 2, "l2", prepared=stats)


def test_prepared_base_reused(rng):
    base, queries = _data(rng, 400, 30, 12)
    b16 = _t(base).half()
    stats = sd.prepare_base(b16, "cosine")
    for r0 in (0, 10, 20):
        d, i = sd.knn_torch(b16, _t(queries[r0 : r0 + 10]), 6, "cosine", prepared=stats)
        want = sd.knn_torch(b16, _t(queries[r0 : r0 + 10]), 6, "cosine")
        assert torch.equal(d, want[0]) and torch.equal(i, want[1])


def test_numpy_and_cpu_torch_stay_on_the_core(rng, monkeypatch):
    base, queries = _data(rng, 50, 4, 6)
    assert search._device_module(base, queries) is None
    assert search._device_module(_t(base), _t(queries)) is None

    def boom(*a, **k):
        raise AssertionError("device path used for host input")

    monkeypatch.setattr(sd, "knn", boom)
    monkeypatch.setattr(sd, "knn_graph", boom)
    d, i = search.knn(_t(base), _t(queries), 3, "l2")
    assert isinstance(d, torch.Tensor)
    search.knn_graph(base, 3, "l2")


def test_plan_tiles_respects_the_budget():
    for ws in (1 << 16, 1 << 20, 1 << 26, 1 << 30):
        for m, n, d, c in [(1, 10, 4, 10), (10_000, 1_000_000, 512, 1034), (300, 5000, 16, 3188), (5, 7, 3, 7)]:
            p = sd.plan_tiles(m, n, d, c, ws, upcast_base_tile=True)
            assert 1 <= p.query_rows <= max(1, m) and 1 <= p.base_rows <= n
            floor = sd.plan_tiles(1, n, d, c, 1, upcast_base_tile=True).estimate_bytes
            assert p.estimate_bytes <= max(ws, floor)
            assert p.rerank_pairs * (sd._RERANK_BYTES * d + 64) <= max(ws, sd._RERANK_BYTES * d + 64)


# ------------------------------------------------------------------------------ fuzz
@given(
    n=st.integers(1, 60),
    m=st.integers(0, 12),
    d=st.integers(1, 9),
    metric=st.sampled_from(METRICS),
    k_frac=st.floats(0, 1),
    ws=st.sampled_from([1, 2000, 1 << 20]),
    half=st.booleans(),
    seed=st.integers(0, 2**16),
    grid=st.booleans(),
)
def test_fuzz_against_reference(n, m, d, metric, k_frac, ws, half, seed, grid):
    r = np.random.default_rng(seed)
    if grid:  # coarse values: many exact ties
        base = r.integers(-2, 3, (n, d)).astype(np.float32)
        queries = r.integers(-2, 3, (m, d)).astype(np.float32)
    else:
        base = r.standard_normal((n, d)).astype(np.float32)
        queries = r.standard_normal((m, d)).astype(np.float32)
    k = 1 + int(k_frac * (n - 1))
    b = _t(base).half() if half else _t(base)
    br = b.float().numpy()
    d_, i_ = sd.knn_torch(b, _t(queries), k, metric, workspace_bytes=ws, margin=1)
    if grid:
        rd, ri = knn_reference(br, queries, k, metric)
        np.testing.assert_array_equal(i_.numpy(), ri)
        np.testing.assert_array_equal(d_.numpy(), rd)
    else:
        assert_same_knn(d_.numpy(), i_.numpy(), br, queries, k, metric)
    if n >= 2:
        kg = 1 + int(k_frac * (n - 2))
        gd, gi = sd.knn_graph_torch(b, kg, metric, workspace_bytes=ws, margin=1)
        if grid:
            rd, ri = knn_reference(br, br, kg, metric, exclude_self=True)
            np.testing.assert_array_equal(gi.numpy(), ri)
        else:
            assert_same_knn(gd.numpy(), gi.numpy(), br, br, kg, metric, exclude_self=True)


def test_reference_helper_is_independent():
    # scores64 itself, on a hand-checked case.
    b = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    q = np.array([[1.0, 1.0]])
    np.testing.assert_allclose(scores64(b, q, "ip"), [[1, 2, 0]])
    np.testing.assert_allclose(scores64(b, q, "l2"), [[1, 2, 2]])
    np.testing.assert_allclose(scores64(b, q, "cosine"), [[2**-0.5, 2**-0.5, 0]])


def test_reduced_fp32_matmul_precision_stays_exact(rng):
    """With bfloat16 allowed inside float32 matmuls (oneDNN on CPU, TF32/bf16 on CUDA) the bound
    widens to 2^-8 and results stay exact."""
    base, queries = _data(rng, 1500, 20, 32)
    want = sd.knn_torch(_t(base), _t(queries), 30, "l2")
    old = torch.backends.mkldnn.matmul.fp32_precision
    try:
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
        trace = {}
        got = sd.knn_torch(_t(base), _t(queries), 30, "l2", _trace=trace)
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = old
    assert trace["eps_rel"] > 2.0**-8
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("metric", METRICS)
def test_products_overflowing_float32(rng, metric):
    """Finite rows whose float32 dot products overflow: the check refuses the GEMM's selection
    and the float64 re-rank decides (scores beyond float32 come out as +-inf, ordered by index)."""
    base, queries = _data(rng, 200, 5, 6)
    base[[4, 50, 51]] *= 3e19
    queries[1] *= 3e19
    trace = {}
    d, i = sd.knn_torch(_t(base), _t(queries), 8, metric, _trace=trace)
    rd, ri = knn_reference(base, queries, 8, metric)
    np.testing.assert_array_equal(i.numpy(), ri)
    np.testing.assert_array_equal(d.numpy(), rd)
    assert trace["researched"]  # the overflowing query could not be verified from the GEMM


def test_negative_zero_scores_tie_with_zero():
    # ip scores of exactly -0.0 and 0.0 are the same score: ordered by index, reported as 0.0.
    base = np.array([[-1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, -1.0]], dtype=np.float32)
    q = np.array([[0.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    d, i = sd.knn_torch(_t(base), _t(q), 4, "ip", margin=1)
    assert i[0].tolist() == [0, 1, 2, 3] and not torch.signbit(d[0]).any()
    assert i[1].tolist() == [1, 0, 2, 3]
    assert not torch.signbit(d[1, 1:3]).any()


def test_public_entry_routes_gpu_input_to_the_device_path(rng, monkeypatch):
    """search.knn / knn_graph hand GPU-resident input to _search_device (simulated here by
    declaring CPU tensors "on CUDA"), and the results keep the queries' kind."""
    from curata import _array

    base, queries = _data(rng, 400, 12, 8)
    calls = []
    real_knn, real_graph = sd.knn, sd.knn_graph
    monkeypatch.setattr(_array, "on_cuda", lambda x: _array.kind_of(x) == "torch")
    monkeypatch.setattr(sd, "knn", lambda *a: calls.append("knn") or real_knn(*a))
    monkeypatch.setattr(sd, "knn_graph", lambda *a: calls.append("graph") or real_graph(*a))
    d, i = search.knn(_t(base), _t(queries), 5, "cosine")
    assert calls == ["knn"] and isinstance(d, torch.Tensor)
    assert_same_knn(d.numpy(), i.numpy(), base, queries, 5, "cosine")
    d, i = search.knn(_t(base), queries, 5, "l2")  # numpy queries: numpy results
    assert isinstance(d, np.ndarray) and isinstance(i, np.ndarray)
    assert_same_knn(d, i, base, queries, 5, "l2")
    gd, gi = search.knn_graph(_t(base).half(), 4, "ip")
    assert calls == ["knn", "knn", "graph"] and gi.dtype == torch.int64
    xr = _t(base).half().float().numpy()
    assert_same_knn(gd.numpy(), gi.numpy(), xr, xr, 4, "ip", exclude_self=True)


def test_cublas_reduction_flags_switched_off_and_restored():
    """The process-global cuBLAS flags that would allow 16-bit accumulation are off inside a
    CUDA search and restored exactly (split-K switch included) afterwards. The flags are plain
    settings, so this runs without a GPU (a stand-in device object says "cuda")."""
    m = torch.backends.cuda.matmul
    names = ("allow_fp16_reduced_precision_reduction", "allow_bf16_reduced_precision_reduction",
             "allow_fp16_accumulation")

    class FakeCuda:
        type = "cuda"

    original = [sd._save_flag(m, name) for name in names]
    try:
        for fp16, acc in [(True, True), ((False, False), False), ((False, True), True)]:
            m.allow_fp16_reduced_precision_reduction = fp16
            m.allow_fp16_accumulation = acc
            before = [sd._save_flag(m, name) for name in names]
            with sd._full_precision_reductions(torch, FakeCuda()):
                with sd._full_precision_reductions(torch, FakeCuda()):  # nested / concurrent use
                    pass
                assert m.allow_fp16_reduced_precision_reduction is False
                assert m.allow_bf16_reduced_precision_reduction is False
                assert m.allow_fp16_accumulation is False
            assert [sd._save_flag(m, name) for name in names] == before
    finally:
        for saved in original:
            if saved is not None:
                setattr(m, *saved)


@pytest.mark.parametrize("half", [False, True])
def test_l2_far_from_origin_stays_exact(rng, half):
    """Cancellation in |q|^2 - 2 q.b + |b|^2: data offset by 300 (spread 1). The GEMM's bound is
    then large against the neighbour gaps, queries are searched again with wider margins, and the
    result is still exact. (The float32 core's norm formula agrees on ~70 % of these neighbours,
    within its documented error of ~1e-7 (|q|^2 + |b|^2).)"""
    base = (rng.standard_normal((1500, 16)) + 300.0).astype(np.float32)
    queries = (rng.standard_normal((25, 16)) + 300.0).astype(np.float32)
    b = _t(base).half() if half else _t(base)
    br = b.float().numpy()
    trace = {}
    d, i = sd.knn_torch(b, _t(queries), 10, "l2", _trace=trace)
    assert trace["researched"]  # the first margin could not be verified
    assert_same_knn(d.numpy(), i.numpy(), br, queries, 10, "l2")


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_gpu_knn_benchmark_cases_smoke(monkeypatch, metric):
    # The `--device cuda` kNN cases' code (curata, the torch baseline, the check that falls back
    # to the baseline without faiss-gpu), on CPU torch tensors with tiny shapes.
    bench = pytest.importorskip("benchmarks.search")
    monkeypatch.setattr(bench, "GPU_DEVICE", "cpu")
    monkeypatch.setattr(bench, "GPU_QUERIES", 30)
    monkeypatch.setattr(bench, "_gpu_cache", {})
    case = bench._gpu_case(3000, 16, 7, metric, False)
    assert [c.name for c in case.contenders][:2] == ["curata", "torch mm+topk"]
    d, i = case.contenders[0].fn()
    bd, bi = case.contenders[1].fn()
    assert tuple(i.shape) == tuple(bi.shape) == (30, 7)
    assert case.check().status == "ok"
    monkeypatch.setattr(bench, "_torch_knn", lambda *a: (bd[:20], bi[:20].flip(1).roll(1, dims=0)))
    assert case.check().status == "mismatch"  # the check can fail
