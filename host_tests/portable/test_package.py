# The lowwater package on both runtimes: submodules on first use from the
# name->package table, AttributeError for anything else, a named ImportError
# for an opt-in module that is not installed; lowwater.prof's names likewise.
import sys

import ptest
import lowwater

# Importing every module from source at once needs more than a board's heap
# (the compiler's peak); the firmware never does it.
MP_HEAP = {"test_every_module_in_the_table_imports": 1024 * 1024}


def test_unknown_names_are_attribute_errors():
    assert not hasattr(lowwater, "nope")
    assert not hasattr(lowwater, "faults")  # test-only: host_tests/portable/faults.py
    e = ptest.raises(AttributeError, getattr, lowwater, "nope")
    assert "nope" in str(e), str(e)
    assert hasattr(lowwater, "ring") and lowwater.ring.__name__ == "lowwater.ring"


def test_star_import_works_and_binds_no_submodule():
    g = {}
    exec("from lowwater import *", g)
    assert g["__version__"] == lowwater.__version__
    assert "ring" not in g and "_packages" not in g and "__getattr__" not in g


def test_every_module_in_the_table_imports():
    from lowwater._packages import MODULES

    for name, pkg in MODULES.items():
        if name == "_viper" and lowwater._compat.VIPER is None:
            continue  # no viper emitter here (CPython, some ports): ring.py runs its plain twin
        mod = getattr(lowwater, name)
        assert mod.__name__ == "lowwater." + name, (name, mod)
        assert pkg == "" or pkg.startswith("lowwater-"), (name, pkg)


def test_a_missing_opt_in_module_names_its_package():
    from lowwater import _packages

    _packages.MODULES["absent"] = "lowwater-absent"
    try:
        e = ptest.raises(ImportError, getattr, lowwater, "absent")
        assert "lowwater-absent" in str(e), str(e)
        _packages.MODULES["absent"] = ""  # a base module that is missing: the plain error
        e = ptest.raises(ImportError, getattr, lowwater, "absent")
        assert "lowwater-" not in str(e), str(e)
    finally:
        del _packages.MODULES["absent"]


def test_the_table_is_loaded_only_when_an_import_fails():
    if ptest.MICROPYTHON:  # a fresh process: what the firmware does
        assert "lowwater._packages" not in sys.modules
        lowwater.ring
        assert "lowwater._packages" not in sys.modules
    assert not hasattr(lowwater, "nope")
    assert "lowwater._packages" in sys.modules


def test_prof_names_load_their_concept_only():
    from lowwater import prof

    for name in ("snapshot", "no_alloc", "profile", "LeakCheck", "lines", "METHOD", "close"):
        assert hasattr(prof, name), name
    assert not hasattr(prof, "nope")
    assert callable(prof.snapshot) and prof.METHOD in ("mem_total", "mem_alloc", "tracemalloc")
    if ptest.MICROPYTHON:
        assert "lowwater.prof.tm" not in sys.modules  # CPython's tracemalloc code stays unloaded
