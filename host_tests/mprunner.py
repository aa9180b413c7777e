"""Running code on MicroPython from the tests (bounded, cleaned up), on either
runtime of lowwater_tools.launch: "unix" (64-bit) or "wasm32" (32-bit)."""

from __future__ import annotations

import os
from pathlib import Path

from lowwater_tools import boards, launch
from lowwater_tools.paths import LIB, ROOT

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


def _rel(p) -> str:
    """p relative to the repository root when it lies inside (else unchanged)."""
    try:
        return Path(p).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(p)


def as_module_run(argv: list[str]) -> tuple[list[str], list[str]]:
    """`SCRIPT.py ARGS` as `-m SCRIPT ARGS` plus the MICROPYPATH folders it needs,
    every path relative to the repository root, and `path=` arguments likewise.

    Why: the unix port puts realpath(SCRIPT)'s folder on sys.path, so every
    module's file name, interned on the heap, would carry the checkout's path;
    its length changed the heap layout enough to make a test near the edge of
    its heap pass in one folder and fail in another. Run as a module from the
    root, the heap holds the same strings wherever the checkout is."""
    script = Path(argv[0])
    rest = [
        "path=" + ":".join(_rel(d) for d in a[5:].split(":") if d) if a.startswith("path=") else a for a in argv[1:]
    ]
    return ["-m", script.stem, *rest], [_rel(script.parent)]


def run(
    args: list[str],
    heap: int,
    path: list[Path] | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
    runtime: str = "unix",
) -> MPResult:
    """Run `micropython -X heapsize=heap ARGS` with lib/ (and `path`) importable,
    from the repository root unless `cwd` is given (then lib/ is given relative
    to the root, so no checkout path lands on the heap: as_module_run)."""
    lib = "lib" if cwd is None else LIB
    return launch.run(args, heap, path or (), lib=lib, timeout=timeout, cwd=cwd, runtime=runtime)


def run_code(code: str, heap: int, timeout: float = 60, runtime: str = "unix") -> MPResult:
    return run(["-c", code], heap, timeout=timeout, runtime=runtime)
