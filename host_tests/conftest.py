"""Suite-wide set-up: lib/ and the portable helpers on sys.path, the repo-root cwd.

The three-runtime harness and the memory markers are the installed `lowwater`
pytest plugin (lowwater_tools.testing.plugin, a pytest11 entry point), configured
in pyproject.toml (lowwater_portable, lowwater_path) exactly as an outside
project configures it: this suite uses it as any other project would
(docs/plugin.md). Its options: --board, --mp-heap, --lowwater-runtimes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LIB = ROOT / "lib"
PORTABLE = HERE / "portable"
for p in (LIB, PORTABLE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


def pytest_configure(config):
    config.addinivalue_line("markers", "early: run before the rest (a slow test xdist should start first)")
    # Without the plugin the portable tests would run as plain CPython tests: say so instead.
    if not config.pluginmanager.hasplugin("lowwater"):
        raise pytest.UsageError(
            "the lowwater pytest plugin is not loaded (entry point lowwater_tools.testing.plugin): run `make setup`"
        )


def pytest_collection_modifyitems(config, items):
    # Marked tests first: under xdist (--dist loadscope) the controller hands
    # out modules in collection order, so a slow one starts at once instead of
    # making the run wait for it at the end.
    items.sort(key=lambda i: i.get_closest_marker("early") is None)


@pytest.fixture(scope="session")
def mp_heap(request) -> int:
    from mprunner import default_heap

    return default_heap(request.config)


@pytest.fixture(scope="session", autouse=True)
def _repo_root_cwd():
    # Portable tests open repository files (boards/*.json) by relative path on
    # every runtime; MicroPython items run from the rootdir too (the plugin).
    old = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(old)
