"""The virtual board's flash filesystem: a littlefs2 image file (4096-byte blocks).

Contract shared with the other host tools: an image of a board with profile
field fs_size holds fs_size // 4096 blocks of 4096 bytes, readable with
littlefs-python as `LittleFS(block_size=4096, block_count=fs_size // 4096)`.
A new image is erased flash (all 0xFF); the board formats it on its first boot
(os.VfsLfs2.mkfs inside the unix port, as a real board's _boot.py does).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError

BLOCK_SIZE = 4096


def block_count(fs_size: int) -> int:
    return fs_size // BLOCK_SIZE


def ensure(path: str | os.PathLike, fs_size: int, fresh: bool = False) -> bool:
    """Make `path` an image of fs_size bytes; erase it if fresh. True if (re)created.

    An existing image of another size is refused (it belongs to another board)."""
    path = Path(path)
    size = block_count(fs_size) * BLOCK_SIZE
    if path.exists() and not fresh:
        have = path.stat().st_size
        if have != size:
            raise UserError(
                f"image {path} is {have} bytes, the board's filesystem is {size} bytes "
                "(fs_size): use --fresh to erase it, or another --image"
            )
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        chunk = b"\xff" * (64 * BLOCK_SIZE)
        left = size
        while left:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n
    return True


def open_fs(path: str | os.PathLike, fs_size: int | None = None):
    """Mount an image read-write in memory with littlefs-python (changes are not saved
    unless you call save(fs, path)). fs_size defaults to the file's size."""
    from littlefs import LittleFS, UserContext

    data = Path(path).read_bytes()
    size = fs_size if fs_size is not None else len(data)
    if len(data) != block_count(size) * BLOCK_SIZE:
        raise UserError(f"image {path} is {len(data)} bytes, expected {block_count(size) * BLOCK_SIZE}")
    fs = LittleFS(
        context=UserContext(buffer=bytearray(data)), block_size=BLOCK_SIZE, block_count=block_count(size), mount=False
    )
    try:
        fs.mount()
    except Exception as e:
        raise UserError(f"image {path} holds no littlefs2 filesystem ({e})") from None
    return fs


def save(fs, path: str | os.PathLike) -> None:
    Path(path).write_bytes(bytes(fs.context.buffer))


def read_file(path: str | os.PathLike, name: str, fs_size: int | None = None) -> bytes:
    """One file's bytes from an image, e.g. read_file(img, "/board.json")."""
    fs = open_fs(path, fs_size)
    with fs.open(name, "rb") as f:
        return f.read()


def listing(path: str | os.PathLike, fs_size: int | None = None) -> dict[str, int]:
    """{"/dir/file": size} for every file in an image."""
    fs = open_fs(path, fs_size)
    out = {}
    for root, _dirs, files in fs.walk("/"):
        for name in files:
            p = root.rstrip("/") + "/" + name
            out[p] = fs.stat(p).size
    return out
