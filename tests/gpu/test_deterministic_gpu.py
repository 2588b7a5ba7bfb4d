"""The torch device paths under ``torch.use_deterministic_algorithms(True)`` on CUDA.

The k-means docs promise bitwise reproducible centroids in that mode (on CUDA ``index_add_`` then
takes its deterministic path). The mode makes torch raise RuntimeError for every op without a
deterministic CUDA implementation, and for every cuBLAS GEMM unless ``CUBLAS_WORKSPACE_CONFIG``
is set before the process starts, so each device path is run once in a fresh interpreter with
that variable set: none may raise, and two k-means runs must give bit-identical centroids.
(The script runs on CPU tensors too, ``python -c "$SCRIPT" cpu``, where torch CPU input takes
the CPU paths: that checks the script, not the device code.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch

    torch.use_deterministic_algorithms(True)
    from curata import curate, drift, scores, search
    from curata.search import Index

    dev = torch.device(sys.argv[1])
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((4000, 24)).astype(np.float32)).to(dev)
    a = curate.kmeans(x, 16, seed=3)
    b = curate.kmeans(x, 16, seed=3)
    assert a.labels.device == dev
    assert torch.equal(a.labels, b.labels) and torch.equal(a.centroids, b.centroids), "k-means not reproducible"
    curate.kmeans_plus_plus_init(x, 16, seed=3)
    curate.k_center_greedy(x, 20, metric="l2")
    curate.k_center_greedy(x, 20, metric="cosine")
    for metric in ("ip", "l2", "cosine"):
        search.knn(x, x[:50], 10, metric)
        search.knn(x.half(), x[:50], 10, metric)
    search.knn_graph(x[:1000], 5, "l2")
    index = Index(24, "l2", device=str(dev))
    index.add(x.cpu().numpy())
    index.remove(np.arange(0, 4000, 7))
    index.search(x[:20], 5)
    index.range_search(x[:20], 20.0)
    p = torch.softmax(torch.from_numpy(rng.standard_normal((300, 7))).to(dev), dim=1)
    scores.entropy(p), scores.margin(p), scores.least_confidence(p)
    g = torch.from_numpy(rng.integers(0, 9, 300)).to(dev)
    for how in ("mean", "max", "sum"):
        scores.aggregate(p[:, 0], g, how)
        scores.aggregate(p[:, 0], g, how, n_groups=12)
    y = x[:1500] + 0.1
    drift.column_tests(x[:2000], y)
    drift.mmd(x[:400], y[:300], n_permutations=20)
    drift.mmd(x[:400], y[:300], n_permutations=20, precision="float32")
    print("deterministic ok")
    """
)


def _run(device: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CUBLAS_WORKSPACE_CONFIG=":4096:8")
    return subprocess.run([sys.executable, "-c", SCRIPT, device], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.gpu
def test_device_paths_under_deterministic_mode(torch_cuda):
    result = _run("cuda")
    assert result.returncode == 0 and "deterministic ok" in result.stdout, result.stderr[-4000:]

