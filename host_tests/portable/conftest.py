"""Dual-runtime harness: every test here runs on CPython and on MicroPython.

Each test function becomes two items, `test_x[cpython]` and `test_x[micropython]`.
The MicroPython item runs the same function in a fresh unix-port process under a
board-shaped heap (`-X heapsize=`); its traceback becomes the failure message.
A module may set `MP_HEAP = {"test_name": bytes}` to give one test another heap.
Tests here import no pytest: use plain assert and ptest's helpers.
"""

from __future__ import annotations

import pytest

import mprunner
import ptest
from lowwater_tools import pytest_memory

RUNTIMES = ("cpython", "micropython")


@pytest.fixture(params=RUNTIMES, autouse=True)
def runtime(request):
    return request.param


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    rt = getattr(pyfuncitem, "callspec", None) and pyfuncitem.callspec.params.get("runtime")
    name = pyfuncitem.originalname
    if rt == "cpython":
        try:
            pyfuncitem.obj()
        except ptest.Skip as e:
            pytest.skip(str(e))
        return True
    if rt == "micropython":
        module = pyfuncitem.module
        heap = getattr(module, "MP_HEAP", {}).get(name) or mprunner.default_heap(pyfuncitem.config)
        argv = pytest_memory.mp_argv(pyfuncitem, [str(mprunner.PORTABLE / "_mprun.py"), module.__name__, name])
        res = mprunner.run(argv, heap, timeout=getattr(module, "MP_TIMEOUT", 120))
        lines = res.out.rstrip().splitlines()
        last = lines[-1] if lines else ""
        if res.returncode == 0 and last.startswith("LWTEST SKIP"):
            pytest.skip(last[len("LWTEST SKIP") :].strip())
        if res.returncode != 0 or last != "LWTEST PASS":
            pytest.fail(f"MicroPython (heap {heap} B) failed, exit {res.returncode}:\n{res.out}", pytrace=False)
        return True
    return None
