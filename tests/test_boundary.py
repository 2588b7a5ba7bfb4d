"""The array boundary and runtime of curata.boxes: build facts, devices, threads, array kinds,
dtypes, layouts and Python sequences in and out."""

from __future__ import annotations

import concurrent.futures
import importlib.metadata
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import curata
from curata import _backend
from curata import boxes as cb
from box_reference import iou_ref, nms_ref

# ------------------------------------------------------------------------- build and runtime


def test_build_info_keys_and_types():
    info = curata.build_info()
    for key in ("version", "compiler", "openmp", "blas", "cuda", "cuda_archs", "cuda_module"):
        assert key in info, key
    assert info["version"] == curata.__version__ == importlib.metadata.version("curata")
    assert isinstance(info["compiler"], str) and info["compiler"]
    assert isinstance(info["openmp"], bool)
    assert info["blas"] is None or isinstance(info["blas"], str)
    assert isinstance(info["cuda_module"], bool)
    if info["cuda_module"]:
        assert isinstance(info["cuda"], str) and info["cuda"][0].isdigit()
        assert isinstance(info["cuda_archs"], str) and info["cuda_archs"]
    else:
        assert info["cuda"] is None and info["cuda_archs"] is None
    assert curata.build_info() is not info  # a fresh dict each time: callers may mutate it


def test_devices():
    found = curata.devices()
    assert isinstance(found, list) and found
    cpu = found[0]
    assert cpu["type"] == "cpu" and cpu["index"] == 0 and isinstance(cpu["name"], str)
    assert cpu["threads"] == curata.get_num_threads()
    cuda = found[1:]
    assert all(d["type"] == "cuda" for d in cuda)
    assert [d["index"] for d in cuda] == list(range(len(cuda)))
    assert all(isinstance(d["name"], str) and d["name"] for d in cuda)
    if _backend.HAS_CUDA:
        assert cuda and curata.cuda_unavailable_reason() == ""
    else:
        assert cuda == []
        reason = curata.cuda_unavailable_reason()
        assert isinstance(reason, str) and reason


def test_cuda_requested_without_device_says_why():
    if _backend.HAS_CUDA:
        pytest.skip("a CUDA device is usable here")
    b = np.zeros((1, 4))
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        cb.iou(b, b, device="cuda")
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        cb.nms(b, np.zeros(1), device="cuda")
    for fn, args in ((cb.iou, (b, b)), (cb.nms, (b, np.zeros(1))), (cb.postprocess, (np.zeros((1, 5, 1)),))):
        with pytest.raises(ValueError, match="^device must be"):
            fn(*args, device="gpu0")
        fn(*args, device="cpu")
        fn(*args, device="auto")


def test_missing_cuda_module_reads_as_built_without_cuda():
    # `from . import _cuda` inside the package's own import raises "cannot import name '_cuda' from
    # partially initialized module 'curata' (most likely due to a circular import)" when the module
    # does not exist, so CPU-only builds used to report a circular import as the reason.
    module, missing, error = _backend._import_submodule("_no_such_module")
    assert module is None and missing and "No module named" in error
    module, missing, error = _backend._import_submodule("_core")
    assert module is curata._core and not missing and error == ""
    if not curata.build_info()["cuda_module"]:
        assert _backend.CUDA_REASON.startswith("curata was built without CUDA"), _backend.CUDA_REASON


@pytest.fixture
def restore_threads():
    before = curata.get_num_threads()
    yield
    curata.set_num_threads(before)


def test_set_and_get_num_threads(restore_threads):
    for n in (1, 2, 3, np.int64(2), np.int32(1)):
        curata.set_num_threads(n)
        assert curata.get_num_threads() == int(n)
        assert curata.devices()[0]["threads"] == int(n)
    curata.set_num_threads(0)
    default = curata.get_num_threads()
    env = os.environ.get("CURATA_NUM_THREADS", "")
    expected = int(env) if env.isdigit() and int(env) >= 1 else len(os.sched_getaffinity(0))
    assert default == expected or default == os.cpu_count()


@pytest.mark.parametrize("bad", [1.5, 2.0, "2", None, True, np.bool_(True), [2]])
def test_set_num_threads_rejects_non_integers(restore_threads, bad):
    before = curata.get_num_threads()
    with pytest.raises(TypeError, match="^n must be an int"):
        curata.set_num_threads(bad)
    assert curata.get_num_threads() == before


@pytest.mark.parametrize("bad", [-1, -(2**40), 2**31, 2**40])
def test_set_num_threads_rejects_out_of_range(restore_threads, bad):
    before = curata.get_num_threads()
    with pytest.raises(ValueError, match="^n must be"):
        curata.set_num_threads(bad)
    assert curata.get_num_threads() == before


def _run_python(code: str, **env) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "CURATA_NUM_THREADS"}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)


def test_thread_env_and_lazy_imports():
    code = (
        "import sys, curata\n"
        "heavy = [m for m in ('torch', 'cupy', 'scipy', 'sklearn', 'pyarrow', 'pandas', 'faiss') if m in sys.modules]\n"
        "assert not heavy, f'import curata imported {heavy}'\n"
        "print(curata.get_num_threads())\n"
    )
    done = _run_python(code, CURATA_NUM_THREADS="3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"
    done = _run_python(code, CURATA_NUM_THREADS="zero")
    assert done.returncode == 0, done.stderr
    assert "CURATA_NUM_THREADS" in done.stderr and "not an integer in [1, 1024]" in done.stderr
    assert int(done.stdout.strip()) >= 1


# ------------------------------------------------------------------------ kinds and dtypes
BOXES = np.array([[0, 0, 4, 4], [1, 1, 5, 5], [2, 0, 6, 3.5], [10, 10, 12, 13]], dtype=np.float64)
SCORES = np.array([0.9, 0.8, 0.95, 0.5])
CLASSES = np.array([0, 1, 0, 1])


def pred_fixture(dtype=np.float64):
    pred = np.zeros((2, 6, 5))
    pred[:, 0] = [[5, 6, 20, 40, 40.5], [1, 2, 3, 4, 5]]
    pred[:, 1] = 10
    pred[:, 2:4] = 4
    pred[:, 4] = [[0.9, 0.8, 0.1, 0.7, 0.6], [0.3, 0.0, 0.2, 0.9, 0.5]]
    pred[:, 5] = [[0.1, 0.85, 0.5, 0.0, 0.65], [0.0, 0.4, 0.6, 0.1, 0.2]]
    return pred.astype(dtype)


def call_all(to, boxes_dtype):
    """Every public function on inputs converted by ``to``; returns name -> result."""
    b = to(BOXES.astype(boxes_dtype))
    s = to(SCORES.astype(boxes_dtype)) if np.dtype(boxes_dtype).kind == "f" else to(SCORES)
    c = to(CLASSES)
    return {
        "convert": cb.convert(b, "xyxy", "cxcywh"),
        "iou": cb.iou(b, b),
        "giou": cb.giou(b, b),
        "nms": cb.nms(b, s, 0.3),
        "nms_image_ids": cb.nms(b, s, 0.3, image_ids=c),
        "batched_nms": cb.batched_nms(b, s, c, 0.3),
        "batched_3d": cb.batched_nms(to(BOXES.astype(boxes_dtype).reshape(2, 2, 4)), to(np.asarray(s).reshape(2, 2))
                                     if not isinstance(s, torch.Tensor) else s.reshape(2, 2), None, 0.3),
        "postprocess": cb.postprocess(to(pred_fixture(boxes_dtype)), 0.25),
    }


# expected output dtype per input dtype: (convert & postprocess, iou & giou)
NUMPY_DTYPES = {
    np.float16: (np.float16, np.float32),
    np.float32: (np.float32, np.float32),
    np.float64: (np.float64, np.float64),
    np.int32: (np.float64, np.float64),
    np.int64: (np.float64, np.float64),
    np.uint8: (np.float64, np.float64),
}


@pytest.mark.parametrize("dtype", list(NUMPY_DTYPES), ids=lambda d: np.dtype(d).name)
def test_numpy_output_dtypes(dtype):
    out = call_all(np.asarray, dtype)
    float_out, iou_out = NUMPY_DTYPES[dtype]
    assert isinstance(out["convert"], np.ndarray) and out["convert"].dtype == float_out
    assert all(isinstance(r, np.ndarray) and r.dtype == float_out for r in out["postprocess"])
    assert out["iou"].dtype == iou_out and out["giou"].dtype == iou_out
    for key in ("nms", "nms_image_ids", "batched_nms"):
        assert isinstance(out[key], np.ndarray) and out[key].dtype == np.int64
    assert all(isinstance(p, np.ndarray) and p.dtype == np.int64 for p in out["batched_3d"])
    compute = np.float32 if iou_out == np.float32 else np.float64
    np.testing.assert_array_equal(out["iou"], iou_ref(BOXES.astype(dtype), BOXES.astype(dtype), compute))


TORCH_DTYPES = {
    torch.float16: (torch.float16, torch.float32),
    torch.bfloat16: (torch.bfloat16, torch.float32),
    torch.float32: (torch.float32, torch.float32),
    torch.float64: (torch.float64, torch.float64),
    torch.int32: (torch.float64, torch.float64),
    torch.int64: (torch.float64, torch.float64),
}


@pytest.mark.parametrize("dtype", list(TORCH_DTYPES), ids=str)
def test_torch_cpu_in_torch_out(dtype):
    def to(a):
        a = np.asarray(a)
        t = torch.from_numpy(np.ascontiguousarray(a))
        return t.to(dtype) if a.dtype.kind == "f" else t

    out = call_all(to, np.float64 if dtype.is_floating_point else np.int64)
    float_out, iou_out = TORCH_DTYPES[dtype]
    assert isinstance(out["convert"], torch.Tensor) and out["convert"].dtype == float_out
    assert all(isinstance(r, torch.Tensor) and r.dtype == float_out for r in out["postprocess"])
    assert out["iou"].dtype == iou_out and out["giou"].dtype == iou_out
    for key in ("nms", "nms_image_ids", "batched_nms"):
        assert isinstance(out[key], torch.Tensor) and out[key].dtype == torch.int64
    assert all(isinstance(p, torch.Tensor) and p.dtype == torch.int64 for p in out["batched_3d"])
    assert all(not t.is_cuda for t in [out["convert"], out["iou"], out["nms"]])
    # same values as numpy on the same (rounded) input
    def host(t):
        return t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()

    ref = call_all(lambda a: host(to(a)), np.float64 if dtype.is_floating_point else np.int64)
    for key in ("convert", "iou", "giou", "nms", "nms_image_ids", "batched_nms"):
        np.testing.assert_array_equal(host(out[key]), host(torch.as_tensor(ref[key])).astype(host(out[key]).dtype))
    for got, want in zip(out["postprocess"], ref["postprocess"]):
        np.testing.assert_array_equal(host(got), np.asarray(want, dtype=host(got).dtype))


def test_torch_requires_grad_and_results_are_plain_tensors():
    b = torch.tensor(BOXES, requires_grad=True)
    out = cb.iou(b, b)
    assert isinstance(out, torch.Tensor) and not out.requires_grad
    keep = cb.nms(b, torch.tensor(SCORES, requires_grad=True), 0.3)
    np.testing.assert_array_equal(keep.numpy(), nms_ref(BOXES, SCORES, 0.3))
    assert not b.grad  # untouched


def test_complex_torch_and_bool_torch_rejected():
    with pytest.raises(TypeError, match="^a must be a real array"):
        cb.iou(torch.zeros(2, 4, dtype=torch.complex64), BOXES)
    with pytest.raises(TypeError, match="^boxes must have a real"):
        cb.nms(torch.zeros(2, 4, dtype=torch.bool), torch.zeros(2))


def test_exotic_torch_tensors_name_the_argument():
    # These used to surface torch's own errors (no argument name), a nested tensor even as
    # RuntimeError("Internal error: NestedTensorImpl doesn't support sizes").
    dense = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    with pytest.raises(TypeError, match=r"^a must be a dense tensor, got layout torch.sparse_coo"):
        cb.iou(dense.to_sparse(), BOXES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "nested tensors are in prototype stage"
        nested = torch.nested.nested_tensor([dense[0], dense[1]])
    with pytest.raises(TypeError, match=r"^boxes must be a dense tensor, got a nested tensor"):
        cb.nms(nested, torch.ones(2))
    with pytest.raises(TypeError, match=r"^a has torch dtype torch.float8_e4m3fn, which numpy cannot hold"):
        cb.iou(dense.to(torch.float8_e4m3fn), BOXES)
    with pytest.raises(TypeError, match=r"^a must be a CPU or CUDA tensor, got device meta"):
        cb.iou(dense.to("meta"), BOXES)


def test_mixed_kinds_follow_the_first_array():
    out = cb.nms(BOXES, torch.tensor(SCORES), 0.3)
    assert isinstance(out, np.ndarray)
    out = cb.nms(torch.tensor(BOXES), SCORES, 0.3)
    assert isinstance(out, torch.Tensor)
    out = cb.iou(torch.tensor(BOXES), BOXES)
    assert isinstance(out, torch.Tensor)
    # scores are cast to the box dtype: float64 boxes + float16 scores
    keep = cb.nms(torch.tensor(BOXES), torch.tensor(SCORES, dtype=torch.float16), 0.3)
    np.testing.assert_array_equal(keep.numpy(), nms_ref(BOXES, SCORES.astype(np.float16), 0.3))


# ------------------------------------------------------------------------------- layouts
def layouts(a: np.ndarray):
    """The same values in several memory layouts: Fortran order, strided, negative strides,
    read-only, big-endian, torch transposed view."""
    yield "fortran", np.asfortranarray(a)
    padded = np.zeros((a.shape[0] * 2,) + a.shape[1:], a.dtype)
    padded[::2] = a
    yield "strided", padded[::2]
    yield "reversed", a[::-1].copy()[::-1]
    ro = a.copy()
    ro.flags.writeable = False
    yield "readonly", ro
    yield "big-endian", a.astype(a.dtype.newbyteorder(">"))
    yield "torch-T", torch.from_numpy(np.ascontiguousarray(np.swapaxes(a, 0, -1))).transpose(0, -1)
    src = torch.from_numpy(a.copy())
    t = torch.zeros((a.shape[0] * 3,) + a.shape[1:], dtype=src.dtype)
    t[1::3] = src
    yield "torch-step", t[1::3]


def as_numpy(x):
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_contiguous_inputs_give_the_same_results(dtype):
    boxes, scores = BOXES.astype(dtype), SCORES.astype(dtype)
    pred = pred_fixture(dtype)
    expected = {
        "convert": cb.convert(boxes, "xyxy", "xywh"),
        "iou": cb.iou(boxes, boxes[::-1].copy()),
        "nms": cb.nms(boxes, scores, 0.3),
        "batched": cb.batched_nms(boxes, scores, CLASSES, 0.3),
        "post": cb.postprocess(pred, 0.25),
    }
    for (name, b), (_, s), (_, p) in zip(layouts(boxes), layouts(scores), layouts(pred)):
        if name in ("fortran", "strided"):
            assert not b.flags.c_contiguous and not p.flags.c_contiguous
        if name.startswith("torch"):
            assert not b.is_contiguous() and not p.is_contiguous()
        np.testing.assert_array_equal(as_numpy(cb.convert(b, "xyxy", "xywh")), expected["convert"], err_msg=name)
        rev = b[::-1] if isinstance(b, np.ndarray) else torch.flip(b, [0])
        np.testing.assert_array_equal(as_numpy(cb.iou(b, rev)), expected["iou"], err_msg=name)
        np.testing.assert_array_equal(as_numpy(cb.nms(b, s, 0.3)), expected["nms"], err_msg=name)
        np.testing.assert_array_equal(as_numpy(cb.batched_nms(b, s, CLASSES, 0.3)), expected["batched"], err_msg=name)
        got = cb.postprocess(p, 0.25)
        assert len(got) == len(expected["post"])
        for r, e in zip(got, expected["post"]):
            np.testing.assert_array_equal(as_numpy(r), e, err_msg=name)


def test_non_contiguous_classes_image_ids_and_valid():
    b3 = np.stack([BOXES, BOXES[::-1]])
    s3 = np.stack([SCORES, SCORES[::-1]])
    classes = np.asfortranarray(np.stack([CLASSES, CLASSES]))
    valid = np.ones((4, 2), bool).T  # non-contiguous view
    valid[1, 0] = False
    got = cb.batched_nms(b3, s3, classes, 0.3, valid=valid)
    want = cb.batched_nms(b3, s3, np.ascontiguousarray(classes), 0.3, valid=np.ascontiguousarray(valid))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    ids = np.zeros(8, np.int64)[::2]
    np.testing.assert_array_equal(cb.nms(BOXES, SCORES, 0.3, image_ids=ids), cb.nms(BOXES, SCORES, 0.3))


def test_python_sequences():
    boxes_list = BOXES.tolist()
    np.testing.assert_array_equal(cb.iou(boxes_list, tuple(map(tuple, boxes_list))), cb.iou(BOXES, BOXES))
    keep = cb.nms(boxes_list, SCORES.tolist(), 0.3)
    assert isinstance(keep, np.ndarray) and keep.dtype == np.int64
    np.testing.assert_array_equal(keep, cb.nms(BOXES, SCORES, 0.3))
    np.testing.assert_array_equal(cb.batched_nms(boxes_list, SCORES.tolist(), CLASSES.tolist(), 0.3),
                                  cb.batched_nms(BOXES, SCORES, CLASSES, 0.3))
    ints = [[0, 0, 2, 2], [1, 1, 3, 3]]
    out = cb.iou(ints, ints)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(cb.convert(ints, "xyxy", "xywh"), [[0, 0, 2, 2], [1, 1, 2, 2]])
    out = cb.postprocess(pred_fixture().tolist(), 0.25)
    for r, e in zip(out, cb.postprocess(pred_fixture(), 0.25)):
        np.testing.assert_array_equal(r, e)
    with pytest.raises(TypeError, match="^a must be array-like"):
        cb.iou([[0, 0, 1, 1], [0, 0, 1]], BOXES)
    with pytest.raises(TypeError, match="^a must have a real"):
        cb.iou(None, BOXES)
    with pytest.raises(ValueError, match=r"^boxes must have shape \(N, 4\), got \(0,\)"):
        cb.nms([], [])
    assert cb.nms(np.zeros((0, 4)), []).shape == (0,)


def test_outputs_do_not_alias_inputs():
    boxes = BOXES.copy()
    out = cb.convert(boxes, "xyxy", "xyxy")
    np.testing.assert_array_equal(out, BOXES)
    out[:] = -1
    np.testing.assert_array_equal(boxes, BOXES)
    t = torch.tensor(BOXES)
    tout = cb.convert(t, "xyxy", "xyxy")
    tout.zero_()
    np.testing.assert_array_equal(t.numpy(), BOXES)
    pred = pred_fixture()
    before = pred.copy()
    cb.postprocess(pred, 0.25)
    cb.postprocess(torch.from_numpy(pred), 0.25)
    np.testing.assert_array_equal(pred, before)


def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 200, (3000, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 40, (3000, 2))], axis=1).astype(np.float32)
    scores = rng.random(3000).astype(np.float32)
    classes = rng.integers(0, 5, 3000)
    expected = cb.batched_nms(boxes, scores, classes, 0.5)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: cb.batched_nms(boxes, scores, classes, 0.5), range(8)))
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_concurrent_mixed_ops_while_the_thread_count_changes(restore_threads):
    # The core releases the GIL and wbf keeps per-thread scratch buffers between calls: many
    # Python threads running different ops while another thread flips set_num_threads must give
    # the single-threaded results bit for bit, and leave the inputs unchanged.
    import threading  # noqa: PLC0415

    from curata import metrics, scores  # noqa: PLC0415

    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 0.8, (1500, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0.01, 0.2, (1500, 2))], axis=1)
    score = rng.random(1500)
    label = rng.integers(0, 3, 1500)
    image = rng.integers(0, 10, 1500)
    pred = rng.random((4, 4 + 6, 500)).astype(np.float32)
    pred[:, 2:4] *= 0.1
    probs = rng.dirichlet(np.ones(8), 3000)
    gt = {"images": [{"id": i} for i in range(10)], "categories": [{"id": k} for k in range(3)],
          "annotations": [{"id": j + 1, "image_id": int(image[j]), "category_id": int(label[j]),
                           "bbox": [float(boxes[j, 0]), float(boxes[j, 1]), float(boxes[j, 2] - boxes[j, 0]),
                                    float(boxes[j, 3] - boxes[j, 1])], "area": 1.0} for j in range(0, 1500, 7)]}
    table = {"image_id": image, "category_id": label, "bbox": np.c_[boxes[:, :2], boxes[:, 2:] - boxes[:, :2]],
             "score": score}
    ops = {
        "wbf": lambda: cb.wbf([boxes[:750], boxes[750:]], [score[:750], score[750:]], [label[:750], label[750:]],
                              image_ids=[image[:750], image[750:]]),
        "soft_nms": lambda: cb.soft_nms(boxes, score, classes=label, image_ids=image, method="gaussian"),
        "batched_nms": lambda: (cb.batched_nms(boxes, score, label, 0.5, image_ids=image),),
        "postprocess": lambda: cb.postprocess(pred, 0.5, multi_label=True, padded=True),
        "match": lambda: tuple(vars(cb.match(boxes, score, label, boxes[::3], label[::3],
                                             pred_image_ids=image, gt_image_ids=image[::3])).values()),
        "bald": lambda: (scores.bald(np.stack([probs, probs[::-1]])),),
        "aggregate": lambda: scores.aggregate(score, image, "mean"),
        "coco_eval": lambda: (metrics.coco_eval(gt, table).precision,),
    }
    before = [a.copy() for a in (boxes, score, label, image, pred, probs)]
    curata.set_num_threads(1)
    expected = {name: op() for name, op in ops.items()}
    stop = threading.Event()

    def flip():
        i = 0
        while not stop.is_set():
            curata.set_num_threads(1 + i % 2)
            i += 1

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [(name, pool.submit(op)) for _ in range(3) for name, op in ops.items()]
            for name, future in futures:
                for got, want in zip(future.result(), expected[name]):
                    np.testing.assert_array_equal(got, want, err_msg=name)
    finally:
        stop.set()
        flipper.join()
    for a, b in zip(before, (boxes, score, label, image, pred, probs)):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ thread count: env and limits
_THREADS_CODE = "import curata\nprint(curata.get_num_threads())\n"


def _threads_with_env(value: str | None) -> tuple[int, str]:
    env = {} if value is None else {"CURATA_NUM_THREADS": value}
    done = _run_python(_THREADS_CODE, **env)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip()), done.stderr


@pytest.mark.parametrize(
    "value", ["3abc", "2.5", "4.5", "1e3", "0x3", "99999999999", "4294967297", "2147483648", "1025", "\u0663", "3 3"]
)
def test_thread_env_is_used_exactly_when_no_warning_says_otherwise(value):
    # The warning at import and the C++ core used to parse CURATA_NUM_THREADS differently: atoi
    # took "3abc" as 3 and "1e3" as 1 while the warning said "using all cores", and values beyond
    # the int range wrapped around silently (99999999999 -> 1215752191 threads, 4294967297 -> 1).
    default, _ = _threads_with_env(None)
    threads, err = _threads_with_env(value)
    assert "CURATA_NUM_THREADS" in err and "using all cores" in err, (value, err)
    assert threads == default, (value, threads, default)


@pytest.mark.parametrize("value", ["3", " 3 ", "+3", "1", "1024"])
def test_thread_env_valid_values(value):
    threads, err = _threads_with_env(value)
    assert threads == int(value.strip()) and "CURATA_NUM_THREADS" not in err, (value, threads, err)


def test_set_num_threads_caps_at_max(restore_threads):
    # Far more threads than any machine has made every parallel region ask OpenMP for that many
    # (e.g. 274 for a 3000 x 3000 iou, tens of thousands for a large knn): libgomp's "Thread
    # creation failed" then exits the process. The count is capped at 1024.
    from curata import _runtime  # noqa: PLC0415

    assert _runtime.MAX_THREADS == 1024
    curata.set_num_threads(1024)
    assert curata.get_num_threads() == 1024
    for bad in (1025, 2**31 - 1):
        with pytest.raises(ValueError, match=r"^n must be <= 1024, got"):
            curata.set_num_threads(bad)
    assert curata.get_num_threads() == 1024


def test_set_num_threads_zero_restores_the_import_time_default():
    code = (
        "import os, curata\n"
        "os.environ['CURATA_NUM_THREADS'] = '1'\n"
        "curata.set_num_threads(1)\n"
        "curata.set_num_threads(0)\n"
        "print(curata.get_num_threads())\n"
    )
    done = _run_python(code, CURATA_NUM_THREADS="3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"
