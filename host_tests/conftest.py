"""Suite-wide set-up: lib/ and the portable helpers on sys.path, runtime options."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The memory markers (limit_memory, no_alloc, limit_leaks), on both runtimes.
pytest_plugins = ["lowwater_tools.pytest_memory"]

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


def pytest_terminal_summary(terminalreporter):
    # Show that the portable tests ran on both runtimes (item ids end in
    # [cpython] / [micropython], host_tests/portable/conftest.py).
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for rep in terminalreporter.stats.get(outcome, []):
            # one report per item: its call, or the phase where it skipped/errored
            if rep.when != "call" and outcome == "passed":
                continue
            rt = rep.nodeid.rpartition("[")[2].rstrip("]")
            if rt in ("cpython", "micropython"):
                counts.setdefault(rt, {}).setdefault(outcome, 0)
                counts[rt][outcome] += 1
    if counts:
        terminalreporter.section("runtimes")
        for rt in ("cpython", "micropython"):
            c = counts.get(rt, {})
            terminalreporter.write_line(
                f"portable tests on {rt:11s}: " + ", ".join(f"{n} {o}" for o, n in sorted(c.items()))
            )
