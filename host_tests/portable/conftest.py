"""Three-runtime harness: every test here runs on CPython and on two MicroPythons.

Each test function becomes three items:

- `test_x[cpython]`: the function itself, in this process;
- `test_x[micropython]`: the unix port (64-bit, viper), in a fresh process under
  the board's heap mapped onto 64-bit (x lowwater.config.UNIX_HEAP_FACTOR);
- `test_x[micropython32]`: the unix port built for WASI (32-bit like the boards,
  no viper: the plain twins run), in a fresh process under a 32-bit board's own
  heap, no factor (mprunner.default_heap; docs/testing.md).

A MicroPython item's traceback becomes the failure message. A module may set
`MP_HEAP = {"test_name": bytes}` (the unix item's heap) and `MP_HEAP32 = {...}`
(the 32-bit item's; without it the 32-bit item takes MP_HEAP's figure, which is
generous: 32-bit objects are smaller). Tests here import no pytest: plain assert
and ptest's helpers; `ptest.runtime_bits()` tells a test which word size it runs on.
"""

from __future__ import annotations

import pytest

import mprunner
import ptest
from lowwater_tools.testing import memory as pytest_memory

RUNTIMES = ("cpython", "micropython", "micropython32")


@pytest.fixture(params=RUNTIMES, autouse=True)
def runtime(request):
    return request.param


def item_heap(pyfuncitem, rt: str) -> int:
    module, name = pyfuncitem.module, pyfuncitem.originalname
    if rt == "micropython32":
        own = getattr(module, "MP_HEAP32", {}).get(name)
        if own:
            return own
    return getattr(module, "MP_HEAP", {}).get(name) or mprunner.default_heap(pyfuncitem.config, mprunner.LAUNCH[rt])


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
    if rt in mprunner.LAUNCH:
        module = pyfuncitem.module
        heap = item_heap(pyfuncitem, rt)
        argv = pytest_memory.mp_argv(pyfuncitem, [str(mprunner.PORTABLE / "_mprun.py"), module.__name__, name])
        args, path = mprunner.as_module_run(argv)
        res = mprunner.run(args, heap, path, timeout=getattr(module, "MP_TIMEOUT", 120), runtime=mprunner.LAUNCH[rt])
        lines = res.out.rstrip().splitlines()
        last = lines[-1] if lines else ""
        if res.returncode == 0 and last.startswith("LWTEST SKIP"):
            pytest.skip(last[len("LWTEST SKIP") :].strip())
        if res.returncode != 0 or last != "LWTEST PASS":
            what = "MicroPython" if rt == "micropython" else "MicroPython 32-bit (wasm32)"
            pytest.fail(f"{what} (heap {heap} B) failed, exit {res.returncode}:\n{res.out}", pytrace=False)
        return True
    return None
