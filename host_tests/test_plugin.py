"""The lowwater pytest plugin, in this venv (editable install): the example
library through it in-process, its options, and what it says when a runtime is
missing. The same example through a fresh venv and a non-editable install:
test_plugin_installed.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lowwater_tools import boards, runtime32
from lowwater_tools.errors import UserError
from lowwater_tools.testing import runtimes

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "movavg"
# The example's tests: 8 functions, one of which (assert_no_alloc) skips on CPython.
N_TESTS = 8


def _example(pytester) -> Path:
    for p in EXAMPLE.iterdir():
        if p.name in ("__pycache__", ".pytest_cache"):
            continue
        (shutil.copytree if p.is_dir() else shutil.copy)(p, pytester.path / p.name)
    return pytester.path


def test_example_runs_on_three_runtimes_in_process(pytester):
    _example(pytester)
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    r.assert_outcomes(passed=3 * N_TESTS - 1, skipped=1)
    r.stdout.fnmatch_lines(
        [
            "portable tests on cpython      : 7 passed, 1 skipped*",
            "portable tests on micropython  : 8 passed*",
            "portable tests on micropython32: 8 passed*",
        ]
    )


def test_example_under_a_board_heap(pytester):
    _example(pytester)
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--board", "esp32", "-k", "6_kb")
    r.assert_outcomes(passed=3)
    r.stdout.fnmatch_lines(["lowwater: portable runtimes cpython,micropython,micropython32; board esp32"])


LEAKY = """
import lwtest

MEMORY_MARKS = {"test_keeps": {"limit_leaks": ("16 B", 2)}, "test_allocates": {"no_alloc": True}}
_KEEP = []
_BUF = bytearray(16)


def test_keeps():
    _KEEP.append(bytearray(200))


def test_allocates():
    _BUF.extend(bytearray(4000))
"""


def test_a_failing_marker_says_where_the_memory_went(pytester):
    _example(pytester)
    (pytester.path / "tests" / "portable" / "test_leaky.py").write_text(LEAKY)
    # -rN: no short summary, so each message is counted in its failure report only
    # (the summary's width, hence what it repeats, depends on the terminal)
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rN", "tests/portable/test_leaky.py")
    r.assert_outcomes(failed=6)
    out = r.stdout.str()
    # CPython: the allocation site by file:line
    assert "test_leaky.py:10: +" in out  # _KEEP.append(bytearray(200))
    assert "test_leaky.py:14: +" in out  # _BUF.extend(bytearray(4000))
    # MicroPython, both: the heap kept by more calls, and the line of the first allocation
    assert out.count("where: 10 more call(s) of test_keeps: live heap") == 2
    assert out.count('test_leaky.py", line 14, in test_allocates') >= 2


def test_runtimes_option_selects_items(pytester):
    _example(pytester)
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--lowwater-runtimes", "cpython")
    r.assert_outcomes(passed=N_TESTS - 1, skipped=1)
    assert "[micropython" not in r.stdout.str()


def test_a_bad_runtime_name_is_a_usage_error(pytester):
    _example(pytester)
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--lowwater-runtimes", "cpython,pypy")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown runtime pypy" in r.stderr.str()


def test_an_unknown_board_is_a_usage_error(pytester):
    _example(pytester)
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--board", "esp99")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown board 'esp99'" in r.stderr.str()


def test_portable_folder_from_the_command_line(pytester):
    # no ini: --lowwater-portable names the folder (lowwater_path still needs the ini)
    pytester.makepyfile(test_x="import lwtest\n\ndef test_bits():\n    assert lwtest.runtime_bits() in (32, 64)\n")
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--lowwater-portable", ".")
    r.assert_outcomes(passed=3)


def test_a_missing_32bit_runtime_says_how_to_get_it(monkeypatch, tmp_path):
    # An installed lowwater away from a checkout: no module built, nothing to build it with.
    monkeypatch.setattr(runtime32, "available", lambda: False)
    monkeypatch.setattr(runtime32, "NPM_DIR", tmp_path)
    why = runtimes.missing("micropython32")
    assert why and "make wasm32" in why and "LOWWATER_WASM32_DIR" in why and "--lowwater-runtimes" in why


def test_board_names_resolve_from_the_shipped_profiles(monkeypatch, tmp_path):
    # An installed lowwater has no boards/ folder: the package's copy serves.
    monkeypatch.setattr(boards, "BOARDS", tmp_path)
    assert runtimes.board_profile("esp32") == boards.load(str(ROOT / "boards" / "esp32.json"))
    with pytest.raises(UserError):
        runtimes.board_profile("nosuchboard")


def test_heap_per_runtime():
    # 64-bit: the board's heap x the factor; 32-bit: the board's own bytes
    p = boards.load("esp32")
    assert runtimes.default_heap("esp32", None, "micropython32") == p["heap"]
    assert runtimes.default_heap("esp32", None, "micropython") > p["heap"]
    assert runtimes.default_heap("esp32", 50000, "micropython") == 50000
