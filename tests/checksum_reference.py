"""Independent references for checksums (shared by tests)."""

from __future__ import annotations


def crc32c_reference(data: bytes, crc: int = 0) -> int:
    """CRC-32C bit by bit from its definition: reflected polynomial 0x82F63B78, initial value
    and final xor 0xFFFFFFFF; ``crc`` continues a previous value."""
    reg = crc ^ 0xFFFFFFFF
    for byte in data:
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ (0x82F63B78 if reg & 1 else 0)
    return reg ^ 0xFFFFFFFF
