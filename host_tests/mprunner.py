"""Running code on MicroPython from the tests (bounded, cleaned up), on either
runtime of lowwater_tools.launch: "unix" (64-bit) or "wasm32" (32-bit)."""

from __future__ import annotations

import os
from pathlib import Path

from lowwater_tools import boards, launch

HERE = Path(__file__).resolve().parent
PORTABLE = HERE / "portable"

# pytest item runtime -> launch runtime
LAUNCH = {"micropython": "unix", "micropython32": "wasm32"}


def board_name(config=None) -> str:
    return (config.getoption("--board") if config is not None else None) or os.environ.get(
        "LOWWATER_BOARD", boards.DEFAULT_BOARD
    )


def default_heap(config=None, runtime: str = "unix") -> int:
    """Heap for MicroPython items: --mp-heap, else the --board (or LOWWATER_BOARD,
    else the default) profile's heap: on the 64-bit unix port mapped by the heap
    factor (launch.board_heap), on the 32-bit runtime the profile's own bytes, no
    factor (a 32-bit board's real heap; the 64-bit `unix` profile's 131072 B)."""
    if config is not None and config.getoption("--mp-heap"):
        return config.getoption("--mp-heap")
    prof = boards.load(board_name(config))
    if runtime == "wasm32":
        return prof["heap"]
    return launch.board_heap(prof, runtime)


MPResult = launch.Result


def run(
    args: list[str],
    heap: int,
    path: list[Path] | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
    runtime: str = "unix",
) -> MPResult:
    """Run `micropython -X heapsize=heap ARGS` with lib/ (and `path`) importable,
    from the repository root unless `cwd` is given."""
    return launch.run(args, heap, path or (), timeout=timeout, cwd=cwd, runtime=runtime)


def run_code(code: str, heap: int, timeout: float = 60, runtime: str = "unix") -> MPResult:
    return run(["-c", code], heap, timeout=timeout, runtime=runtime)
