"""The lowwater pytest plugin as an outside project gets it: in a temp folder
outside the repository, a fresh venv, `pip install <lowwater>` (not editable)
and pytest, then `pytest` in a copy of examples/movavg runs its tests on the
three runtimes with the memory markers enforced.

pip builds from a copy of the sources (setuptools writes build/ and egg-info
beside the sources it builds: never into this checkout). pip's wheel cache
makes a repeat fast; every step is bounded. The 32-bit runtime's patched
module is copied from this checkout's build (as LOWWATER_WASM32_DIR tells an
installed lowwater, docs/plugin.md): the same bytes, checked by SHA-256."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from lowwater_tools import runtime32
from lowwater_tools.testing import runtimes

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "movavg"
PYTEST_PIN = "pytest==9.2.0"  # as in pyproject.toml's dev extras
# What pip needs to build lowwater: pyproject.toml, the README it names, the two packages, the profiles.
SOURCES = ("pyproject.toml", "README.md", "tools/lowwater_tools", "lib", "boards")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "node_modules")

pytestmark = [pytest.mark.slow, pytest.mark.early, pytest.mark.timeout(1500)]


def _run(cmd, cwd, env, timeout):
    p = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    base = tmp_path_factory.mktemp("outside")
    assert ROOT not in base.parents and base != ROOT, "the temp folder must lie outside the repository"
    src = base / "lowwater-src"
    src.mkdir()
    for rel in SOURCES:
        s = ROOT / rel
        (shutil.copytree(s, src / rel, symlinks=True, ignore=IGNORE) if s.is_dir() else shutil.copy(s, src / rel))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LOWWATER_BOARD", "VIRTUAL_ENV")}
    venv.EnvBuilder(with_pip=True).create(base / "venv")
    py = str(base / "venv" / "bin" / "python")
    rc, out = _run(
        [py, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src), PYTEST_PIN],
        base,
        env,
        timeout=1200,
    )
    assert rc == 0, out[-3000:]
    # the 32-bit runtime: built in this checkout if needed, its verified bytes copied
    why = runtimes.missing("micropython32")
    assert why is None, why
    w32 = base / "wasm32"
    w32.mkdir()
    shutil.copy2(runtime32.PATCHED, w32 / runtime32.PATCHED.name)
    if runtime32.COMPILED.exists():
        shutil.copy2(runtime32.COMPILED, w32 / runtime32.COMPILED.name)
    env["LOWWATER_WASM32_DIR"] = str(w32)
    proj = base / "movavg"
    shutil.copytree(EXAMPLE, proj, ignore=IGNORE)
    return py, proj, env


def test_installed_plugin_runs_the_example_on_three_runtimes(outside):
    py, proj, env = outside
    # the installed copy, not this checkout
    rc, where = _run([py, "-c", "import lowwater_tools; print(lowwater_tools.__file__)"], proj, env, 60)
    assert rc == 0 and str(ROOT) not in where and "site-packages" in where, where
    rc, out = _run([py, "-m", "pytest", "-p", "no:cacheprovider", "-rA"], proj, env, timeout=600)
    assert rc == 0, out[-4000:]
    assert "plugins:" in out and "lowwater-" in out
    for line in (
        "portable tests on cpython      : 7 passed, 1 skipped",
        "portable tests on micropython  : 8 passed",
        "portable tests on micropython32: 8 passed",
    ):
        assert line in out, out[-3000:]
    # the markers were enforced on MicroPython: a marked item ran through the marker runner
    assert "PASSED tests/portable/test_movavg.py::test_update_allocates_nothing[micropython32]" in out


def test_installed_plugin_with_a_board_and_a_failing_marker(outside):
    py, proj, env = outside
    bad = proj / "tests" / "portable" / "test_leaky_demo.py"
    bad.write_text(
        "MEMORY_MARKS = {'test_keeps': {'lowwater_limit_leaks': ('16 B', 2)}}\n"
        "_KEEP = []\n\n\n"
        "def test_keeps():\n"
        "    _KEEP.append(bytearray(300))\n"
    )
    try:
        rc, out = _run(
            # -rN: each message counted once, in its failure report (the -ra summary
            # repeats it or not depending on the terminal width)
            [py, "-m", "pytest", "-p", "no:cacheprovider", "-rN", "--board", "esp32", str(bad.relative_to(proj))],
            proj,
            env,
            timeout=600,
        )
    finally:
        bad.unlink()
    assert rc == 1, out[-4000:]
    assert "board esp32" in out
    assert out.count("limit_leaks: test_keeps") == 3, out[-4000:]
    assert "tests/portable/test_leaky_demo.py:6: +" in out  # CPython: the line that keeps memory
    assert out.count("where: 10 more call(s) of test_keeps: live heap") == 2  # both MicroPythons


def test_installed_plugin_says_how_to_get_a_missing_32bit_runtime(outside, tmp_path):
    py, proj, env = outside
    env = dict(env, LOWWATER_WASM32_DIR=str(tmp_path / "none"))
    rc, out = _run([py, "-m", "pytest", "-p", "no:cacheprovider"], proj, env, timeout=120)
    assert rc == pytest.ExitCode.USAGE_ERROR, out
    assert "runtime micropython32" in out and "make wasm32" in out and "--lowwater-runtimes" in out
    rc, out = _run(
        [py, "-m", "pytest", "-p", "no:cacheprovider", "--lowwater-runtimes", "cpython,micropython"],
        proj,
        env,
        timeout=300,
    )
    assert rc == 0 and "micropython32" not in out.replace("portable tests on micropython32: none ran", ""), out
