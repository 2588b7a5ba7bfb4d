"""The CUDA path of :mod:`curata.boxes` (imported only when an op runs on the GPU).

Each function takes the same arguments as its CPU counterpart in ``boxes.py`` and checks them with
the same rules and messages. Device inputs (torch CUDA tensors, CuPy arrays) are converted on their
device by their own framework (dtype, contiguity: at most one copy) and handed to ``curata._cuda``
as raw pointers with the device index and the framework's current stream; every output is
allocated by the same framework on the same device (:func:`_array.device_empty`), so torch CUDA in
gives torch CUDA out and CuPy in gives CuPy out, and everything is ordered on the caller's stream.

Host inputs reach this module only with ``device="cuda"``: they are checked by the CPU rules,
uploaded (with torch when it has CUDA, else CuPy) and the results come back as the input's kind.
A host array passed next to a device array (e.g. ``classes`` as a list) is uploaded to that device.

Syncs: ``iou``/``giou`` wait once for the validity flags; ``batched_nms`` twice (workspace plan,
result count); ``postprocess`` never with ``padded=True`` and once in its list form (the counts,
to split the padded rows). Results whose
buffer (sized by an upper bound before the count is known) is less than half used are copied to a
right-sized array, so a kept result never pins more than twice its own size.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any, Sequence

import numpy as np

from . import _array, _backend
from .boxes import _batched_error, _nms_options

_SMALL_FLOATS = ("float16", "bfloat16")
_FLOATS = ("float32", "float64")
_CHEAP_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")
_INTS = _CHEAP_INTS + ("uint64",)
_INT64 = (np.dtype(np.int64),)
_UINT8 = (np.dtype(np.uint8),)


def _cuda():
    if _backend._cuda is None:  # pragma: no cover - dispatch only gets here with a CUDA build
        _backend.require_cuda("curata CUDA ops")
    return _backend._cuda


def _dtype_name(x: Any) -> str:
    if _array.kind_of(x) == "torch":
        return str(x.dtype).removeprefix("torch.")
    return np.dtype(x.dtype).name


def _device_index(x: Any) -> int:
    return int(x.device.index) if _array.kind_of(x) == "torch" else int(x.device.id)


def _ndim(x: Any) -> int:
    return x.ndim if hasattr(x, "ndim") else np.ndim(x)


def _ptr(d: _array.DeviceArray | None) -> int:
    return 0 if d is None else int(d.ptr)


def _import_optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


class _Frame:
    """The framework (torch or CuPy) and CUDA device that run one call and own its outputs."""

    def __init__(self, kind: str, device: int, host_input: bool):
        self.kind = kind
        self.device = device
        self.host_input = host_input
        self.xp = _array._torch() if kind == "torch" else _array._cupy()

    @classmethod
    def of(cls, x: Any) -> _Frame:
        if _array.on_cuda(x):
            return cls(_array.kind_of(x), _device_index(x), False)
        torch = _import_optional("torch")
        if torch is not None and torch.cuda.is_available():
            return cls("torch", int(torch.cuda.current_device()), True)
        cupy = _import_optional("cupy")
        if cupy is not None:
            return cls("cupy", int(cupy.cuda.runtime.getDevice()), True)
        raise RuntimeError(
            "device='cuda' with host input needs torch (with CUDA) or CuPy to hold the device arrays; "
            "pass CUDA tensors instead, or use device='cpu'"
        )

    def active(self) -> contextlib.AbstractContextManager:
        """Make the call's device current, so CuPy's current stream is that device's."""
        if self.kind == "cupy":
            return self.xp.cuda.Device(self.device)
        return self.xp.cuda.device(self.device)

    # ------------------------------------------------------------------ inputs
    def _check_device(self, x: Any, name: str) -> None:
        dev = _device_index(x)
        if dev != self.device:
            raise ValueError(f"{name} must be on cuda:{self.device} like the other inputs, got cuda:{dev}")

    def upload(self, a: np.ndarray) -> Any:
        a = np.require(a, requirements=["C", "W"])
        if self.kind == "torch":
            return self.xp.from_numpy(a).to(self.xp.device("cuda", self.device))
        with self.xp.cuda.Device(self.device):
            return self.xp.asarray(a)

    def astype(self, x: Any, dtype_name: str) -> Any:
        if _dtype_name(x) == dtype_name:
            return x
        if _array.kind_of(x) == "torch":  # the array's own framework (a and b may differ)
            return x.to(getattr(_array._torch(), dtype_name))
        return x.astype(dtype_name)

    def float_(self, x: Any, name: str, *, shape: Sequence[int | None] | None = None, dtype: Any = None) -> Any:
        """A float32/float64 device array under the rules of :func:`_array.float_array`."""
        if not _array.on_cuda(x):
            return self.upload(_array.float_array(x, name, shape=shape, dtype=dtype))
        self._check_device(x, name)
        dt = _dtype_name(x)
        if dt not in _FLOATS + _SMALL_FLOATS + _INTS:
            raise TypeError(f"{name} must have a real floating or integer dtype, got {dt}")
        if shape is not None:
            _array.check_shape(x, name, shape)
        if dtype is not None:
            target = np.dtype(dtype).name
        elif dt in _FLOATS:
            target = dt
        else:
            target = "float32" if dt in _SMALL_FLOATS else "float64"
        return self.astype(x, target)

    def int_(self, x: Any, name: str, *, length: int | None = None) -> Any:
        """An int64 device vector under the rules of :func:`_array.int_array`."""
        if not _array.on_cuda(x):
            return self.upload(_array.int_array(x, name, length=length))
        self._check_device(x, name)
        if x.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {tuple(x.shape)}")
        if length is not None and x.shape[0] != length:
            raise ValueError(f"{name} must have length {length}, got {x.shape[0]}")
        if _dtype_name(x) in _CHEAP_INTS:
            return self.astype(x, "int64")
        # Rare: floats holding integers, uint64, bool. The CPU rules on a host copy, then back.
        return self.upload(_array.int_array(_array._to_numpy_view(x, name), name, length=length))

    def bool_mask(self, x: Any, name: str, shape: Sequence[int]) -> Any:
        """A flat uint8 view of a bool mask of the given shape."""
        if not _array.on_cuda(x):
            v = _array._to_numpy_view(x, name)
            _array.check_shape(v, name, shape)
            if v.dtype != np.bool_:
                raise TypeError(f"{name} must be a bool array, got {v.dtype}")
            return self.upload(np.ascontiguousarray(v.reshape(-1)).view(np.uint8))
        self._check_device(x, name)
        _array.check_shape(x, name, shape)
        dt = _dtype_name(x)
        if dt != "bool":
            raise TypeError(f"{name} must be a bool array, got {dt}")
        flat = x.reshape(-1)
        if _array.kind_of(flat) == "torch":  # the array's own framework
            return flat.view(_array._torch().uint8)
        return flat.view(np.uint8)

    # ----------------------------------------------------------------- outputs
    def fit(self, obj: Any, used: int) -> Any:
        """The first `used` entries of a result buffer; copied when that is less than half of it."""
        view = obj[:used]
        if 2 * used < obj.shape[0]:
            return view.clone() if self.kind == "torch" else view.copy()
        return view

    def split(self, obj: Any, counts: Sequence[int]) -> list[Any]:
        """Views of consecutive parts of `obj` with the given lengths."""
        parts, start = [], 0
        for c in counts:
            parts.append(obj[start : start + int(c)])
            start += int(c)
        return parts

    def finish_float(self, obj: Any, reference: Any) -> Any:
        """:meth:`finish` for float results computed in float32 from float16/bfloat16 input: they
        get the input's dtype back, as on the CPU (:func:`_array.like_float`)."""
        if self.host_input:
            host = obj.cpu().numpy() if self.kind == "torch" else obj.get()
            return _array.like_float(host, reference)
        small = _dtype_name(reference)
        return self.astype(obj, small) if small in _SMALL_FLOATS else obj

    def finish(self, obj: Any, reference: Any) -> Any:
        """A device result as the kind of `reference` (host input comes back to the host)."""
        if not self.host_input:
            return obj
        host = obj.cpu().numpy() if self.kind == "torch" else obj.get()
        return _array.like(host, reference)


def pairwise_iou(a: Any, b: Any, *, generalized: bool) -> Any:
    """IoU (or GIoU) matrix on the GPU; see :func:`curata.boxes.iou`. One host sync."""
    frame = _Frame.of(a)
    with frame.active():
        x = frame.float_(a, "a", shape=(None, 4))
        y = frame.float_(b, "b", shape=(None, 4))
        if _dtype_name(x) != _dtype_name(y):
            x, y = frame.astype(x, "float64"), frame.astype(y, "float64")
        dx, dy = _array.device_array(x, "a"), _array.device_array(y, "b")
        n, m = dx.shape[0], dy.shape[0]
        out = _array.device_empty(dx, (n, m), dx.dtype)
        _cuda().pairwise_iou(
            dx.ptr, n, dy.ptr, m, out.ptr, bool(generalized), dx.dtype == np.float64, dx.device, dx.stream
        )
        return frame.finish(out.obj, a)


def _run_nms(frame, b, s, c, im, v, per_image, options, local_indices):
    """Launch the segmented NMS; returns (keep buffer, n_keep, image_ids, image_counts)."""
    iou_threshold, score_threshold, max_det = options
    db = _array.device_array(b, "boxes")
    ds = _array.device_array(s, "scores")
    dc = None if c is None else _array.device_array(c, "classes", dtypes=_INT64)
    dim = None if im is None else _array.device_array(im, "image_ids", dtypes=_INT64)
    dv = None if v is None else _array.device_array(v, "valid", dtypes=_UINT8)
    n = db.shape[0]
    out = _array.device_empty(db, (n,), np.int64)

    def launch():
        return _cuda().batched_nms(
            db.ptr, ds.ptr, n, _ptr(dc), _ptr(dim), per_image, _ptr(dv), iou_threshold, score_threshold,
            -1 if max_det is None else max_det, local_indices, out.ptr, db.dtype == np.float64, db.device, db.stream,
        )

    n_keep, image_ids, image_counts = _retry_after_freeing_cache(frame, launch)
    return out.obj, int(n_keep), image_ids, image_counts


def _retry_after_freeing_cache(frame: _Frame, launch):
    """``launch()``, run once more after the framework's cached device memory is handed back when
    it fails to allocate its workspace.

    batched_nms takes its workspace (the suppression mask: gigabytes for one class of 200k boxes)
    from CUDA's stream-ordered pool, which can only grow into memory the driver has free. torch's
    caching allocator (CuPy's pool) keeps what it freed reserved, so after a large torch job the
    driver may have little free although torch holds plenty unused. ``torch.cuda.empty_cache()``
    (``free_all_blocks``) returns those blocks; the launch is repeated once, from scratch (its
    inputs are unchanged, its output is fully rewritten)."""
    try:
        return launch()
    except RuntimeError as exc:
        if "could not allocate" not in str(exc):
            raise
    if frame.kind == "torch":
        frame.xp.cuda.empty_cache()
    else:
        frame.xp.get_default_memory_pool().free_all_blocks()
    return launch()


def batched_nms(
    boxes: Any,
    scores: Any,
    classes: Any,
    iou_threshold: float,
    score_threshold: float | None,
    max_det: int | None,
    *,
    image_ids: Any = None,
    valid: Any = None,
) -> Any:
    """NMS per (image, class) on the GPU; see :func:`curata.boxes.batched_nms`. Two host syncs."""
    frame = _Frame.of(boxes)
    with frame.active():
        if _ndim(boxes) == 3:
            return _batched_3d(frame, boxes, scores, classes, valid, iou_threshold, score_threshold, max_det)
        if valid is not None:
            raise ValueError("valid is only accepted with batched (B, N, 4) boxes; use image_ids for flat input")
        b = frame.float_(boxes, "boxes", shape=(None, 4))
        n = b.shape[0]
        s = frame.float_(scores, "scores", dtype=_dtype_name(b))
        _array.check_shape(s, "scores", (n,))
        c = None if classes is None else frame.int_(classes, "classes", length=n)
        im = None if image_ids is None else frame.int_(image_ids, "image_ids", length=n)
        options = _nms_options(iou_threshold, score_threshold, max_det)
        keep, n_keep, _, _ = _run_nms(frame, b, s, c, im, None, 0, options, False)
        return frame.finish(frame.fit(keep, n_keep), boxes)


def _batched_3d(frame, boxes, scores, classes, valid, iou_threshold, score_threshold, max_det):
    b = frame.float_(boxes, "boxes", shape=(None, None, 4))
    n_images, per_image = b.shape[0], b.shape[1]
    s = frame.float_(scores, "scores", dtype=_dtype_name(b))
    _array.check_shape(s, "scores", (n_images, per_image))
    v = None if valid is None else frame.bool_mask(valid, "valid", (n_images, per_image))
    c = None
    if classes is not None:
        c2 = classes if _array.on_cuda(classes) else _array._to_numpy_view(classes, "classes")
        _array.check_shape(c2, "classes", (n_images, per_image))
        if v is not None and _dtype_name(c2) in _FLOATS + _SMALL_FLOATS:
            # Padding may hold NaN like its boxes and scores (the CPU rule); a rare host round trip.
            valid_host = _array._to_numpy_view(valid, "valid")
            c2 = np.where(valid_host, _array._to_numpy_view(c2, "classes"), 0)
        c = frame.int_(c2.reshape(-1), "classes")
    options = _nms_options(iou_threshold, score_threshold, max_det)
    try:
        keep, n_keep, image_ids, image_counts = _run_nms(
            frame, b.reshape(-1, 4), s.reshape(-1), c, None, v, max(per_image, 1), options, True
        )
    except ValueError as exc:  # the CPU's message names the flattened row: name (image, box)
        raise _batched_error(exc, per_image) from None
    counts = [0] * n_images
    for image, count in zip(image_ids, image_counts):
        counts[int(image)] = int(count)
    parts = frame.split(frame.fit(keep, n_keep), counts)
    return [frame.finish(p, boxes) for p in parts]


def postprocess(
    pred: Any,
    conf_threshold: float,
    iou_threshold: float,
    allowed: np.ndarray | None,
    agnostic: bool,
    multi_label: bool,
    max_det: int,
    max_nms: int,
    *,
    padded: bool = False,
) -> list[Any] | tuple[Any, Any]:
    """YOLO-head post-processing on the GPU; see :func:`curata.boxes.postprocess`.

    Options arrive checked by ``boxes.postprocess``; ``allowed`` is a host int64 vector or None.
    Every buffer is allocated here, by the caller's framework on the current stream, from the
    shapes alone: the output (B, max_det, 6), the int32 counts, a small int64 status vector (what
    the list form needs to raise the CPU's error message) and one uint8 workspace block whose size
    ``_cuda.postprocess_workspace_bytes`` computes on the host (no launch, no wait). torch's caching
    allocator / CuPy's pool hand these back in stream order, so a call does no ``cudaMalloc`` once
    the pool is warm, and releasing the workspace when this function returns is safe for the
    kernels still queued on the stream.

    ``padded=True``: no host sync. List form: one (``postprocess_fetch``, for the counts).
    """
    frame = _Frame.of(pred)
    with frame.active():
        p = frame.float_(pred, "pred")
        shape = tuple(int(d) for d in p.shape)
        if len(shape) != 3 or shape[1] < 5:
            raise ValueError(f"pred must have shape (B, 4 + n_classes, A) with n_classes >= 1, got {shape}")
        n_images, channels, n_anchors = shape
        dp = _array.device_array(p, "pred")
        is_double = dp.dtype == np.float64
        cuda = _cuda()
        options = (conf_threshold, iou_threshold, allowed, bool(agnostic), bool(multi_label), max_det, max_nms)
        n_bytes = int(cuda.postprocess_workspace_bytes(n_images, channels, n_anchors, *options, is_double, dp.device))
        workspace = _array.device_empty(dp, (max(n_bytes, 1),), np.uint8)
        dets = _array.device_empty(dp, (n_images, max_det, 6), dp.dtype)
        counts = _array.device_empty(dp, (n_images,), np.int32)
        status = _array.device_empty(dp, (int(cuda.postprocess_status_size(n_images)),), np.int64)
        cuda.postprocess_padded(
            dp.ptr, n_images, channels, n_anchors, *options, workspace.ptr, n_bytes, dets.ptr, counts.ptr,
            status.ptr, is_double, dp.device, dp.stream,
        )
        if padded:
            return frame.finish_float(dets.obj, pred), frame.finish(counts.obj, pred)
        found = cuda.postprocess_fetch(
            dp.ptr, n_images, channels, n_anchors, counts.ptr, status.ptr, is_double, dp.device, dp.stream
        )
        rows = frame.finish_float(dets.obj, pred)
        return [rows[b, : int(n)] for b, n in enumerate(found)]
