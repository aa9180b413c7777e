"""The three runtimes of a portable test, seen from the host: which exist, the
heap each gets, and running one test function on a MicroPython.

Used by the pytest plugin (plugin.py); no pytest import here.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

from lowwater_tools import boards, launch
from lowwater_tools.errors import UserError

MP_DIR = Path(__file__).resolve().with_name("mp")  # lwtest.py, lwtest_run.py: run by MicroPython
RUNNER = MP_DIR / "lwtest_run.py"
# Board profiles shipped inside the package (a symlink to boards/ in a checkout,
# copied into the wheel), so `--board esp32` works in a project that installed lowwater.
SHIPPED_BOARDS = Path(__file__).resolve().with_name("boards")

RUNTIMES = ("cpython", "micropython", "micropython32")
# pytest item runtime -> launch runtime
LAUNCH = {"micropython": "unix", "micropython32": "wasm32"}
NOTES = {
    "cpython": "CPython, this process",
    "micropython": "unix port, 64-bit, viper",
    "micropython32": "unix port for WASI, 32-bit like ESP32/RP2040, no viper: the plain twins run",
}


def parse_runtimes(text: str | None) -> tuple[str, ...]:
    """'cpython,micropython' -> ('cpython', 'micropython'); None/'' -> all three."""
    if not text:
        return RUNTIMES
    got = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in got if t not in RUNTIMES]
    if bad or not got:
        raise UserError(f"unknown runtime {', '.join(bad) or repr(text)}: choose from {','.join(RUNTIMES)}")
    return tuple(rt for rt in RUNTIMES if rt in got)


def missing(rt: str, build: bool = True, log=None) -> str | None:
    """Why runtime `rt` cannot run here (with how to get it), or None when it can.
    build=True builds the 32-bit runtime in a lowwater checkout when it is missing."""
    if rt == "cpython":
        return None
    if rt == "micropython":
        try:
            launch.command(["-c", "pass"], 65536, "unix")
        except UserError as e:
            return f"the MicroPython unix port is not available: {e}"
        return None
    from lowwater_tools import runtime32

    if runtime32.available():
        return None
    if build and (runtime32.NPM_DIR / "package.json").exists():
        try:
            runtime32.build(log=log)
            return None
        except UserError as e:
            return f"the 32-bit runtime could not be built: {e}"
    return (
        f"the 32-bit runtime is not built (looked for {runtime32.PATCHED}): in a lowwater checkout run "
        "`make wasm32`, then point LOWWATER_WASM32_DIR at its build/wasm32 folder (docs/plugin.md); "
        "or leave it out with --lowwater-runtimes cpython,micropython"
    )


def board_profile(name: str) -> dict:
    """A board profile by name or .json path; a name also from the profiles
    shipped in the package (an installed lowwater has no boards/ folder)."""
    p = Path(name)
    if p.suffix != ".json" and "/" not in name:
        own = boards.BOARDS / f"{name}.json"
        shipped = SHIPPED_BOARDS / f"{name}.json"
        if not own.exists() and shipped.exists():
            return boards.load(str(shipped))
    return boards.load(name)


def default_heap(board: str | None, mp_heap: int | None, rt: str = "micropython") -> int:
    """Heap of a MicroPython item: mp_heap, else the board's (else LOWWATER_BOARD,
    else the default `unix` profile): on the 64-bit unix port mapped by the heap
    factor (launch.board_heap), on the 32-bit runtime the profile's own bytes."""
    if mp_heap:
        return int(mp_heap)
    prof = board_profile(board or os.environ.get("LOWWATER_BOARD") or boards.DEFAULT_BOARD)
    if LAUNCH.get(rt, rt) == "wasm32":
        return prof["heap"]
    return launch.board_heap(prof, "unix")


def rel(p: Path | str, root: Path) -> str:
    """p relative to root when it lies inside (so no checkout path is interned
    on the MicroPython heap), else absolute."""
    try:
        return Path(p).resolve().relative_to(root.resolve()).as_posix() or "."
    except ValueError:
        return str(Path(p).resolve())


def lowwater_home(dirs: Iterable[Path]) -> list[Path]:
    """The folder holding the `lowwater` device package, when none of `dirs`
    has it (a project that installed lowwater): MicroPython then imports
    lowwater.prof, which the memory markers use, from there."""
    for d in dirs:
        if (Path(d) / "lowwater" / "__init__.py").exists():
            return []
    spec = importlib.util.find_spec("lowwater")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(next(iter(spec.submodule_search_locations))).parent]


def micropypath(test_dir: Path, lib_dirs: Iterable[Path], root: Path) -> list[str]:
    """MICROPYPATH folders of a test run, each relative to root where it can be:
    the test's folder, the project's library folders, the helpers (lwtest), then
    the installed lowwater package when the library folders do not hold it."""
    dirs = [Path(test_dir), *lib_dirs, MP_DIR]
    dirs += lowwater_home(dirs)
    out: list[str] = []
    for d in dirs:
        r = rel(d, root)
        if r not in out:
            out.append(r)
    return out


def run_test(
    module: str,
    test: str,
    marker_args: list[str],
    path: list[str],
    heap: int,
    rt: str,
    root: Path,
    timeout: float,
) -> launch.Result:
    """Run MODULE.TEST on runtime rt (micropython|micropython32) from `root`,
    as `-m lwtest_run` (run as a module with root-relative paths: the unix
    port interns the script's realpath on the heap, and the checkout's path
    length must not change the heap layout)."""
    args = ["-m", RUNNER.stem, module, test, *marker_args]
    return launch.run(args, heap, path, lib=None, timeout=timeout, cwd=root, runtime=LAUNCH[rt])


def outcome(res: launch.Result) -> tuple[str, str]:
    """('pass'|'skip'|'fail', detail) from a runner's output."""
    lines = res.out.rstrip().splitlines()
    last = lines[-1] if lines else ""
    if res.returncode == 0 and last.startswith("LWTEST SKIP"):
        return "skip", last[len("LWTEST SKIP") :].strip()
    if res.returncode == 0 and last == "LWTEST PASS":
        return "pass", ""
    return "fail", res.out
