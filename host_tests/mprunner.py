"""Running code on the MicroPython unix port from the tests (bounded, cleaned up)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lowwater_tools import boards
from lowwater_tools.paths import LIB, ROOT, micropython_exe

HERE = Path(__file__).resolve().parent
PORTABLE = HERE / "portable"


def default_heap(config=None) -> int:
    """Heap for MicroPython items: --mp-heap, else the --board (or LOWWATER_BOARD,
    else the default) profile's heap mapped onto the 64-bit unix port."""
    if config is not None and config.getoption("--mp-heap"):
        return config.getoption("--mp-heap")
    board = (config.getoption("--board") if config is not None else None) or os.environ.get(
        "LOWWATER_BOARD", boards.DEFAULT_BOARD
    )
    return boards.unix_heap(boards.load(board))


@dataclass
class MPResult:
    returncode: int
    out: str


def run(
    args: list[str], heap: int, path: list[Path] | None = None, timeout: float = 60, cwd: Path | None = None
) -> MPResult:
    """Run `micropython -X heapsize=heap ARGS` with lib/ (and `path`) importable,
    from the repository root unless `cwd` is given."""
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(str(p) for p in [*(path or []), LIB]) + ":.frozen"
    cmd = [micropython_exe(), "-X", f"heapsize={heap}", *args]
    try:
        p = subprocess.run(
            cmd,
            env=env,
            cwd=cwd or ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        return MPResult(-9, out + f"\n[timed out after {timeout}s]")
    return MPResult(p.returncode, p.stdout.decode("utf-8", "replace"))


def run_code(code: str, heap: int, timeout: float = 60) -> MPResult:
    return run(["-c", code], heap, timeout=timeout)
