"""Suite-wide set-up: lib/ and the portable helpers on sys.path, runtime options."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The memory markers (limit_memory, no_alloc, limit_leaks), on both runtimes.
pytest_plugins = ["lowwater_tools.testing.memory"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LIB = ROOT / "lib"
PORTABLE = HERE / "portable"
for p in (LIB, PORTABLE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


def pytest_addoption(parser):
    g = parser.getgroup("lowwater")
    g.addoption("--board", default=None, help="board profile whose heap shapes the MicroPython runs (default: unix)")
    g.addoption("--mp-heap", default=None, type=int, help="MicroPython heap in bytes (overrides --board)")


def pytest_configure(config):
    # The 32-bit runtime's patched .wasm (build/wasm32, `make wasm32`): built here
    # when missing, once, by the controlling process (xdist workers find it built).
    # A machine where it cannot be built fails loudly: no silent two-runtime run.
    if hasattr(config, "workerinput"):
        return
    from lowwater_tools import runtime32
    from lowwater_tools.errors import UserError

    try:
        runtime32.build(log=lambda m: print(m, file=sys.stderr, flush=True))
    except UserError as e:
        raise pytest.UsageError(f"the 32-bit runtime is not available: {e}") from None


@pytest.fixture(scope="session")
def mp_heap(request) -> int:
    from mprunner import default_heap

    return default_heap(request.config)


@pytest.fixture(scope="session", autouse=True)
def _repo_root_cwd():
    # Portable tests open repository files (boards/*.json) by relative path on
    # both runtimes; MicroPython items run from the root too (mprunner.run).
    old = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(old)


RUNTIME_NOTES = {
    "cpython": "CPython, this process",
    "micropython": "unix port, 64-bit, viper",
    "micropython32": "unix port for WASI, 32-bit like ESP32/RP2040, no viper: the plain twins run",
}


def pytest_terminal_summary(terminalreporter):
    # Show that the portable tests ran on each runtime (item ids end in
    # [cpython] / [micropython] / [micropython32], host_tests/portable/conftest.py).
    # Under xdist the reports arrive at the controller, which prints this.
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for rep in terminalreporter.stats.get(outcome, []):
            # one report per item: its call, or the phase where it skipped/errored
            if getattr(rep, "when", None) != "call" and outcome == "passed":
                continue
            rt = getattr(rep, "nodeid", "").rpartition("[")[2].rstrip("]")
            if rt in RUNTIME_NOTES:
                counts.setdefault(rt, {}).setdefault(outcome, 0)
                counts[rt][outcome] += 1
    if counts:
        terminalreporter.section("runtimes")
        for rt, note in RUNTIME_NOTES.items():
            c = counts.get(rt, {})
            got = ", ".join(f"{n} {o}" for o, n in sorted(c.items())) or "none ran"
            terminalreporter.write_line(f"portable tests on {rt:13s}: {got}  ({note})")
