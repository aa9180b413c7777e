"""Running code on MicroPython from the tests (bounded, cleaned up), on either
runtime of lowwater_tools.launch: "unix" (64-bit) or "wasm32" (32-bit).

Portable tests do not use this: the `lowwater` pytest plugin runs them
(lowwater_tools.testing.plugin). Host tests that start MicroPython on their
own (scripts, one-liners) do."""

from __future__ import annotations

from pathlib import Path

from lowwater_tools import launch
from lowwater_tools.paths import LIB
from lowwater_tools.testing import runtimes

HERE = Path(__file__).resolve().parent
PORTABLE = HERE / "portable"

# pytest item runtime -> launch runtime
LAUNCH = runtimes.LAUNCH


def default_heap(config=None, runtime: str = "unix") -> int:
    """Heap for MicroPython code of a test: --mp-heap, else the --board (or
    LOWWATER_BOARD, else the default) profile's heap: on the 64-bit unix port
    mapped by the heap factor, on the 32-bit runtime the profile's own bytes."""
    board = config.getoption("--board") if config is not None else None
    heap = config.getoption("--mp-heap") if config is not None else None
    return runtimes.default_heap(board, heap, runtime)


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
    from the repository root unless `cwd` is given (then lib/ is given relative
    to the root, so no checkout path lands on the heap)."""
    lib = "lib" if cwd is None else LIB
    return launch.run(args, heap, path or (), lib=lib, timeout=timeout, cwd=cwd, runtime=runtime)


def run_code(code: str, heap: int, timeout: float = 60, runtime: str = "unix") -> MPResult:
    return run(["-c", code], heap, timeout=timeout, runtime=runtime)
