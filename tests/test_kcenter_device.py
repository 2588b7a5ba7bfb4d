"""k-center greedy's torch path (curata._kcenter_device) on CPU torch tensors vs the host path."""

from __future__ import annotations

import numpy as np
import pytest

from curata import curate

torch = pytest.importorskip("torch")
from curata import _kcenter_device as kd  # noqa: E402


def _ref_farthest_first(x, n, start):
    """Plain float64 farthest-first traversal (lowest index on ties), independent of curata."""
    x = np.asarray(x, dtype=np.float64)
    chosen = list(start)
    mind = np.full(x.shape[0], np.inf)
    for c in chosen:
        mind = np.minimum(mind, ((x - x[c]) ** 2).sum(1))
    out = []
    if not chosen:
        out.append(0)
        chosen.append(0)
        mind = ((x - x[0]) ** 2).sum(1)
    while len(out) < n:
        m = mind.copy()
        m[chosen] = -np.inf
        i = int(np.argmax(m))
        out.append(i)
        chosen.append(i)
        mind = np.minimum(mind, ((x - x[i]) ** 2).sum(1))
    return np.array(out, dtype=np.int64)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_matches_host_path_and_reference(rng, metric):
    x = rng.standard_normal((3000, 24)).astype(np.float32)
    want = curate.k_center_greedy(x, 50, metric=metric)
    got = kd.k_center_greedy_torch(torch.from_numpy(x), 50, metric=metric)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), want)
    if metric == "l2":
        np.testing.assert_array_equal(got.numpy(), _ref_farthest_first(x, 50, []))


def test_already_selected_and_ties(rng):
    # Integer grid points: masses of exact distance ties. (With more than 256 near-maximum points
    # both paths fall back to the lowest index among float32 maxima, where float32 rounding of
    # the two GEMVs may differ, so the exact reference is the judge here.)
    x = rng.integers(-3, 4, (800, 3)).astype(np.float64)
    already = [5, 9, 5, 700]
    got = kd.k_center_greedy_torch(torch.from_numpy(x), 40, already_selected=torch.tensor(already))
    np.testing.assert_array_equal(got.numpy(), _ref_farthest_first(x, 40, sorted(set(already))))
    # Fewer points (every tie group re-checked in float64): exact ties go to the lowest index.
    # The host path can differ here: its float64 re-check works on mean-centred rows, whose
    # rounding can split an exact tie; this path differences the caller's rows directly.
    small = x[:200]
    got = kd.k_center_greedy_torch(torch.from_numpy(small), 30, already_selected=torch.tensor(already[:2]))
    np.testing.assert_array_equal(got.numpy(), _ref_farthest_first(small, 30, [5, 9]))


def test_float16_and_offset_data(rng):
    x = (rng.standard_normal((1000, 16)) + 50.0).astype(np.float16)  # far from the origin
    want = curate.k_center_greedy(x.astype(np.float32), 25)
    got = kd.k_center_greedy_torch(torch.from_numpy(x), 25)
    np.testing.assert_array_equal(got.numpy(), want)


def test_errors_match_host():
    x = np.ones((10, 3), dtype=np.float32)
    bad = x.copy()
    bad[4, 0] = np.nan
    for args, kwargs, exc, msg in [
        ((bad, 2), {}, ValueError, "x must be finite, got NaN or infinity in row 4"),
        ((x, 11), {}, ValueError, r"n must be <= 10"),
        ((x, 2), {"metric": "ip"}, ValueError, "metric must be one of"),
        ((x, 2), {"already_selected": np.array([10])}, ValueError, r"already_selected must hold indices in \[0, 9\]"),
        ((np.zeros((4, 2), np.float32), 2), {"metric": "cosine"}, ValueError, "all-zero row 0"),
        ((x, 1.5), {}, TypeError, "n must be an int"),
    ]:
        with pytest.raises(exc, match=msg):
            curate.k_center_greedy(*args, **kwargs)
        t_args = (torch.from_numpy(args[0]),) + args[1:]
        with pytest.raises(exc, match=msg):
            kd.k_center_greedy_torch(*t_args, **kwargs)
    assert kd.k_center_greedy_torch(torch.from_numpy(x), 0).numel() == 0


@pytest.mark.parametrize("exponent", [100, -100, 700, -700])
def test_huge_and_tiny_values(rng, exponent):
    # Same power-of-two rescaling as the host path: picks were 0, 1, 2, ... at 2^100.
    base = rng.standard_normal((300, 6))
    if abs(exponent) < 120:
        base = base.astype(np.float32)
    x = torch.from_numpy(np.ldexp(base, exponent))
    before = x.clone()
    for metric in ("l2", "cosine"):
        got = kd.k_center_greedy_torch(x, 10, metric=metric)
        np.testing.assert_array_equal(got.numpy(), curate.k_center_greedy(base, 10, metric=metric))
    np.testing.assert_array_equal(kd.k_center_greedy_torch(x, 10).numpy(), _ref_farthest_first(base, 10, []))
    assert torch.equal(x, before)
