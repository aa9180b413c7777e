"""UF2 files (Microsoft's USB flashing format, used by the RP2040 bootrom): write and validate.

A UF2 file is a run of 512-byte blocks, each:

    0   u32 magic0 0x0A324655     16  u32 payload size (<= 476)
    4   u32 magic1 0x9E5D5157     20  u32 block number (0..n-1)
    8   u32 flags                 24  u32 number of blocks (n)
    12  u32 target address        28  u32 family ID (flag 0x2000) or file size
    32  476 bytes of data         508 u32 end magic 0x0AB16F30

Spec: https://github.com/microsoft/uf2. The RP2040 bootrom also wants 256-byte
payloads at 256-aligned flash addresses (RP2040 datasheet, 2.8.4.2).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC_START0 = 0x0A324655
MAGIC_START1 = 0x9E5D5157
MAGIC_END = 0x0AB16F30
BLOCK_SIZE = 512
MAX_PAYLOAD = 476
FLAG_NOT_MAIN_FLASH = 0x00000001
FLAG_FAMILY_ID = 0x00002000

RP2040 = 0xE48BFF56
RP2040_FLASH = 0x10000000  # XIP base: where the RP2040 maps its flash

# A few family IDs (microsoft/uf2 utils/uf2families.json), for messages.
FAMILIES = {
    RP2040: "RP2040",
    0xE48BFF57: "RP2XXX_ABSOLUTE",
    0xE48BFF58: "RP2XXX_DATA",
    0xE48BFF59: "RP2350_ARM_S",
    0xE48BFF5A: "RP2350_RISCV",
    0xE48BFF5B: "RP2350_ARM_NS",
    0x1C5F21B0: "ESP32",
    0xBFDD4EEE: "ESP32S2",
    0xC47E5767: "ESP32S3",
    0xD42BA06C: "ESP32C3",
    0xADA52840: "NRF52840",
    0x68ED2B88: "SAMD21",
    0x55114460: "SAMD51",
    0x57755A57: "STM32F4",
}

_HEAD = struct.Struct("<8I")
_END = struct.Struct("<I")


class UF2Error(ValueError):
    """The file is not a usable UF2 image; the message says why (and at which block)."""


@dataclass(frozen=True)
class UF2Info:
    blocks: int
    family: int | None  # None when no block carries a family ID
    start: int  # lowest target address
    end: int  # one past the highest byte written
    payload: int  # total payload bytes


def family_name(family: int | None) -> str:
    if family is None:
        return "none"
    return FAMILIES.get(family, "unknown") + f" (0x{family:08X})"


def build_uf2(data: bytes, base_addr: int, family: int, payload: int = 256) -> bytes:
    """UF2 image of `data` to be written from `base_addr`, `payload` bytes per block.

    build_uf2(firmware_bin, 0x10000000, uf2.RP2040) -> bytes ready for an RPI-RP2 drive."""
    if not 0 < payload <= MAX_PAYLOAD:
        raise ValueError(f"payload must be 1..{MAX_PAYLOAD}")
    n = max(1, -(-len(data) // payload))
    out = bytearray()
    for i in range(n):
        chunk = data[i * payload : (i + 1) * payload].ljust(payload, b"\x00")
        out += _HEAD.pack(MAGIC_START0, MAGIC_START1, FLAG_FAMILY_ID, base_addr + i * payload, payload, i, n, family)
        out += chunk.ljust(MAX_PAYLOAD, b"\x00")
        out += _END.pack(MAGIC_END)
    return bytes(out)


def validate(data: bytes, family: int | None = None) -> UF2Info:
    """Check every block of a UF2 image; with `family`, every block must carry it.

    Raises UF2Error naming the first problem."""
    if not data:
        raise UF2Error("empty file")
    if len(data) % BLOCK_SIZE:
        raise UF2Error(f"size {len(data)} is not a multiple of {BLOCK_SIZE} (truncated?)")
    n = len(data) // BLOCK_SIZE
    fam_seen = None
    start, end, total = None, 0, 0
    for i in range(n):
        off = i * BLOCK_SIZE
        m0, m1, flags, addr, size, blockno, count, fam = _HEAD.unpack_from(data, off)
        (mend,) = _END.unpack_from(data, off + BLOCK_SIZE - 4)
        if m0 != MAGIC_START0 or m1 != MAGIC_START1 or mend != MAGIC_END:
            raise UF2Error(f"block {i}: bad magic (not a UF2 file?)")
        if size > MAX_PAYLOAD:
            raise UF2Error(f"block {i}: payload size {size} > {MAX_PAYLOAD}")
        if blockno != i:
            raise UF2Error(f"block {i}: numbered {blockno} (blocks out of order or missing)")
        if count != n:
            raise UF2Error(f"block {i}: says {count} blocks, the file has {n}")
        if flags & FLAG_FAMILY_ID:
            if fam_seen is not None and fam != fam_seen:
                raise UF2Error(f"block {i}: family {family_name(fam)} differs from {family_name(fam_seen)}")
            fam_seen = fam
        elif family is not None:
            raise UF2Error(f"block {i}: no family ID (flag 0x2000 unset)")
        if flags & FLAG_NOT_MAIN_FLASH:
            continue
        start = addr if start is None else min(start, addr)
        end = max(end, addr + size)
        total += size
    if family is not None and fam_seen != family:
        raise UF2Error(f"family is {family_name(fam_seen)}, the board needs {family_name(family)}")
    return UF2Info(n, fam_seen, start if start is not None else 0, end, total)


def check_rp2040(data: bytes, flash_size: int) -> None:
    """What the RP2040 bootrom wants on top of the format: 256-byte payloads at
    256-aligned addresses inside the board's flash. Raises UF2Error."""
    lo, hi = RP2040_FLASH, RP2040_FLASH + flash_size
    for i in range(len(data) // BLOCK_SIZE):
        _, _, flags, addr, size, _, _, _ = _HEAD.unpack_from(data, i * BLOCK_SIZE)
        if flags & FLAG_NOT_MAIN_FLASH:
            continue
        if size != 256 or addr % 256:
            raise UF2Error(
                f"block {i}: RP2040 needs 256-byte payloads at 256-aligned addresses (got {size} at 0x{addr:08X})"
            )
        if not (lo <= addr and addr + size <= hi):
            raise UF2Error(f"block {i}: address 0x{addr:08X} is outside the board's flash (0x{lo:08X}..0x{hi:08X})")
