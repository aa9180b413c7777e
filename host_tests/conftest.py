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
