"""CRC-32C (curata._core.crc32c) against a bitwise Python reference (checksum_reference.py), the file
helpers (preallocate, start_writeback) and the non-finite row scan used by Index.load."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checksum_reference import crc32c_reference
from curata import _core

PATHS = [True, False] if _core.has_hardware_crc32c() else [False]


def test_reference_itself():
    # Published check values (RFC 3720 appendix B.4 and the CRC catalogue), so the reference is
    # not only checked against the code it tests.
    assert crc32c_reference(b"123456789") == 0xE3069283
    assert crc32c_reference(bytes(32)) == 0x8A9136AA
    assert crc32c_reference(b"\xff" * 32) == 0x62A8AB43
    assert crc32c_reference(bytes(range(32))) == 0x46DD794E


@pytest.mark.parametrize("hardware", PATHS)
def test_check_values(hardware):
    assert _core.crc32c(b"123456789", 0, hardware) == 0xE3069283
    assert _core.crc32c(b"", 0, hardware) == 0
    assert _core.crc32c(bytes(32), 0, hardware) == 0x8A9136AA
    assert _core.crc32c(b"\xff" * 32, 0, hardware) == 0x62A8AB43
    assert _core.crc32c(bytes(range(32)), 0, hardware) == 0x46DD794E
    assert _core.crc32c(bytes(range(31, -1, -1)), 0, hardware) == 0x113FDB5C


@pytest.mark.parametrize("hardware", PATHS)
def test_every_length_and_alignment_against_reference(hardware):
    rng = np.random.default_rng(0)
    buf = rng.integers(0, 256, 320 + 8, dtype=np.uint8).tobytes()
    for start in range(8):  # unaligned starts: the hardware path aligns to 8 bytes first
        for length in range(0, 301):
            piece = buf[start : start + length]
            assert _core.crc32c(piece, 0, hardware) == crc32c_reference(piece), (start, length)


def test_long_inputs_hardware_equals_portable_and_reference():
    # Lengths around the interleaved block sizes (3 x 256 and 3 x 8192 bytes) and their
    # multiples, at odd offsets, from numpy arrays and memoryview slices.
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, 3 * 8192 * 3 + 4096, dtype=np.uint8)
    lengths = [767, 768, 769, 1535, 1536, 1537, 24575, 24576, 24577, 49152, 49153, 3 * 8192 * 3 + 7, 50001]
    view = memoryview(data)
    for length in lengths:
        for start in (0, 1, 3, 7):
            piece = view[start : start + length]
            want = _core.crc32c(piece, 0, False)
            if _core.has_hardware_crc32c():
                assert _core.crc32c(piece, 0, True) == want, (start, length)
            if length in (767, 769, 24577, 50001):  # the bitwise reference is slow: a few lengths
                assert want == crc32c_reference(bytes(piece)), (start, length)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 3000), st.integers(0, 2**32 - 1))
def test_chaining_law(data, cut, seed_crc):
    # crc(a || b) == crc(b, crc(a)) for every split, from any starting value, on both paths.
    cut = min(cut, len(data))
    for hardware in PATHS:
        whole = _core.crc32c(data, seed_crc, hardware)
        assert _core.crc32c(data[cut:], _core.crc32c(data[:cut], seed_crc, hardware), hardware) == whole
    assert _core.crc32c(data, seed_crc, False) == crc32c_reference(data, seed_crc)


def test_single_bit_flips_always_change_the_crc():
    # CRCs detect every single-bit error: each flipped bit of a 2 KiB buffer changes the value.
    data = bytearray(np.random.default_rng(2).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    good = _core.crc32c(bytes(data))
    for bit in range(0, 2048 * 8, 37):
        data[bit // 8] ^= 1 << (bit % 8)
        assert _core.crc32c(bytes(data)) != good
        data[bit // 8] ^= 1 << (bit % 8)


def test_buffer_kinds_and_errors():
    a = np.arange(1000, dtype=np.float32)
    want = crc32c_reference(a.tobytes())
    assert _core.crc32c(a) == want
    assert _core.crc32c(memoryview(a.view(np.uint8))) == want
    assert _core.crc32c(bytearray(a.tobytes())) == want
    with pytest.raises((BufferError, ValueError, TypeError)):
        _core.crc32c(np.arange(100, dtype=np.float32)[::2])  # not contiguous
    with pytest.raises(TypeError):
        _core.crc32c("text is not bytes")


# ------------------------------------------------------------------------------ file helpers
def test_preallocate_and_writeback(tmp_path):
    path = tmp_path / "f"
    with open(path, "wb") as f:
        done = _core.preallocate(f.fileno(), 1 << 20)
        assert isinstance(done, bool)
        if done:  # the size is set; unsupported file systems leave it alone
            assert os.fstat(f.fileno()).st_size == 1 << 20
        f.write(b"x" * 100)
        f.flush()
        assert isinstance(_core.start_writeback(f.fileno(), 0, 100), bool)
        assert _core.preallocate(f.fileno(), 0) is True
    with open(path, "rb") as f:  # read-only descriptor: fallocate fails with EBADF, not an error
        assert _core.preallocate(f.fileno(), 1 << 20) is False
    with pytest.raises(ValueError, match="size must be >= 0"):
        _core.preallocate(0, -1)


# ------------------------------------------------------------------------------ non-finite scan
@pytest.mark.parametrize("hardware", [True, False])
@pytest.mark.parametrize("dtype, bits", [(np.float32, np.uint32), (np.float16, np.uint16)])
def test_first_nonfinite_row(dtype, bits, hardware):
    rng = np.random.default_rng(3)
    for rows, d in ((0, 4), (1, 1), (7, 3), (200, 5), (130, 64)):
        x = rng.standard_normal((rows, d)).astype(dtype)
        assert _core.first_nonfinite_row(x.view(bits), hardware) == -1
        for value in (np.nan, np.inf, -np.inf):
            for r in {0, rows // 2, rows - 1} if rows else ():
                y = x.copy()
                y[r, d - 1] = value
                if r + 1 < rows:
                    y[rows - 1, 0] = value  # a later one too: the first is reported
                assert _core.first_nonfinite_row(y.view(bits), hardware) == r
    # the largest finite values, subnormals and negative zero are finite
    finfo = np.finfo(dtype)
    edge = np.array([[finfo.max, -finfo.max, finfo.smallest_subnormal, -0.0]], dtype=dtype)
    # every bit pattern of one exponent-all-ones neighbourhood: signs, quiet/signalling NaNs
    if dtype == np.float16:
        every = np.arange(65536, dtype=np.uint16).reshape(-1, 64)
        want = np.flatnonzero(~np.isfinite(every.view(np.float16)).all(axis=1))[0]
        assert _core.first_nonfinite_row(every, hardware) == want
        for r in range(every.shape[0]):
            row = every[r : r + 1]
            assert (_core.first_nonfinite_row(row, hardware) == 0) == (not np.isfinite(row.view(np.float16)).all())
    assert _core.first_nonfinite_row(edge.view(bits), hardware) == -1
    with pytest.raises(ValueError, match="uint32 or uint16"):
        _core.first_nonfinite_row(np.zeros((2, 2), np.float32))


@pytest.mark.parametrize("hardware", [True, False])
def test_first_nonfinite_row_float32_boundary_patterns(hardware):
    finite = [0x7F7FFFFF, 0xFF7FFFFF, 0x00000001, 0x80000000, 0x3F800000]
    nonfinite = [0x7F800000, 0xFF800000, 0x7F800001, 0x7FC00000, 0xFFFFFFFF, 0x7FFFFFFF]
    for d in (1, 3, 17):
        for bad in nonfinite:
            rows = np.full((100, d), 0x3F800000, dtype=np.uint32)
            rows[:, 0] = np.resize(np.array(finite, np.uint32), 100)
            assert _core.first_nonfinite_row(rows, hardware) == -1
            rows[63, d - 1] = bad  # last row of the first 64-row block
            rows[64, 0] = bad
            assert _core.first_nonfinite_row(rows, hardware) == 63
            assert _core.first_nonfinite_row(rows[64:], hardware) == 0
