"""The pytest memory plugin: markers on CPython (pytester) and the MicroPython runner."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import mprunner
from lowwater_tools.testing import memory as pytest_memory

pytest_plugins = ["pytester"]

HERE = Path(__file__).resolve().parent
PLUGIN = ["-p", "lowwater_tools.testing.memory"]


@pytest.mark.parametrize(
    "text,n", [("24 KB", 24576), ("16 B", 16), ("16", 16), (100, 100), ("1.5MB", 1572864), ("2 KiB", 2048)]
)
def test_parse_size(text, n):
    assert pytest_memory.parse_size(text) == n


@pytest.mark.parametrize("bad", ["", "KB", "12 parsecs", -1, True])
def test_parse_size_refuses_nonsense(bad):
    with pytest.raises(ValueError):
        pytest_memory.parse_size(bad)


def _outcomes(pytester, src, *args):
    pytester.makepyfile(test_mem=textwrap.dedent(src))
    return pytester.runpytest_inprocess(*PLUGIN, "-p", "no:cacheprovider", *args)


def test_limit_memory_fails_over_and_passes_under(pytester):
    r = _outcomes(
        pytester,
        """
        import pytest

        @pytest.mark.limit_memory("24 KB")
        def test_over():
            keep = [bytearray(1024) for _ in range(40)]

        @pytest.mark.limit_memory("24 KB")
        def test_under():
            keep = [bytearray(1024) for _ in range(10)]

        @pytest.mark.limit_memory("24 KB")
        def test_transient_peak():
            for _ in range(40):
                bytearray(4096)
    """,
    )
    r.assert_outcomes(passed=2, failed=1)
    r.stdout.fnmatch_lines(["*limit_memory: test_over allocated *KB at peak, over the limit of 24.0 KB*"])
    assert "Traceback" not in r.stdout.str()


def test_limit_leaks_fails_a_leaking_test(pytester):
    r = _outcomes(
        pytester,
        """
        import pytest
        KEEP = []

        @pytest.mark.limit_leaks("16 B", warmups=2)
        def test_leaks():
            KEEP.append(bytearray(256))

        @pytest.mark.limit_leaks("16 B", warmups=2, runs=5)
        def test_tidy():
            b = bytearray(256)
            assert len(b) == 256

        def test_runs_are_counted():
            assert len(KEEP) == 2 + 10
    """,
    )
    r.assert_outcomes(passed=2, failed=1)
    r.stdout.fnmatch_lines(["*limit_leaks: test_leaks retains 3*.* B per run, over the limit of 16 B per run*"])


def test_no_alloc_and_fixtures(pytester):
    r = _outcomes(
        pytester,
        """
        import pytest

        @pytest.fixture
        def buf():
            return bytearray(64)

        @pytest.mark.no_alloc
        def test_quiet(buf):
            for i in range(64):
                buf[i] = i

        @pytest.mark.no_alloc(warmups=1)
        def test_noisy(buf):
            buf.extend(bytearray(4096))
    """,
    )
    r.assert_outcomes(passed=1, failed=1)
    r.stdout.fnmatch_lines(["*no_alloc: test_noisy allocated * bytes (CPython, tracemalloc, tolerance 256 B)*"])


def test_a_bad_marker_is_a_usage_error(pytester):
    r = _outcomes(
        pytester,
        """
        import pytest

        @pytest.mark.limit_memory("lots")
        def test_x():
            pass
    """,
    )
    assert r.ret != 0
    r.stderr.fnmatch_lines(["*bad memory marker*not a size*"]) if r.stderr.lines else r.stdout.fnmatch_lines(
        ["*bad memory marker*not a size*"]
    )


def test_markers_are_registered_for_strict_markers(pytester):
    r = _outcomes(
        pytester,
        """
        import pytest

        @pytest.mark.limit_memory("1 MB")
        @pytest.mark.limit_leaks("1 KB")
        @pytest.mark.no_alloc(tolerance="1 KB")
        def test_x():
            pass
    """,
        "--strict-markers",
    )
    r.assert_outcomes(passed=1)


# ---------------------------------------------------------------- MicroPython side

MP_MODULE = """
_L = []
_B = bytearray(8)


def test_needs_30k():
    keep = [bytearray(1000) for i in range(30)]


def test_needs_10k():
    keep = [bytearray(1000) for i in range(10)]


def test_allocates():
    x = bytearray(100)


def test_clean():
    _B[0] = 1


def test_leaks():
    _L.append(bytearray(64))


def test_skipped():
    import ptest
    ptest.skip("not here")
"""


@pytest.fixture(scope="module")
def mp_module(tmp_path_factory):
    d = tmp_path_factory.mktemp("mpmod")
    (d / "mem_mod.py").write_text(MP_MODULE)
    return d


@pytest.mark.parametrize(
    "test,args,last,needle",
    [
        (
            "test_needs_30k",
            ["limit_memory=24576"],
            "LWTEST FAIL",
            "limit_memory: test_needs_30k needed more than 24576 B",
        ),
        ("test_needs_10k", ["limit_memory=24576"], "LWTEST PASS", None),
        ("test_needs_10k", ["limit_memory=4096"], "LWTEST FAIL", "limit_memory: test_needs_10k"),
        ("test_allocates", ["no_alloc=:0"], "LWTEST FAIL", "no_alloc: test_allocates allocated 132 bytes"),
        ("test_clean", ["no_alloc=:1"], "LWTEST PASS", None),
        ("test_leaks", ["limit_leaks=16:3:10"], "LWTEST FAIL", "limit_leaks: test_leaks retains"),
        ("test_needs_10k", ["limit_leaks=16:3:10"], "LWTEST PASS", None),
        ("test_skipped", ["no_alloc=:0"], "LWTEST SKIP not here", None),
    ],
)
def test_mp_runner_enforces_markers(mp_module, test, args, last, needle):
    res = mprunner.run(
        [str(pytest_memory.RUNNER), "mem_mod", test, f"path={mprunner.PORTABLE}:{mp_module}", *args],
        heap=131072,
        timeout=60,
    )
    lines = res.out.rstrip().splitlines()
    assert lines and lines[-1] == last, res.out
    if needle:
        assert needle in res.out, res.out


def test_mp_argv_builds_the_runner_command(pytester):
    items = {
        i.name: i
        for i in pytester.getitems("""
        import pytest

        @pytest.mark.limit_memory("24 KB")
        @pytest.mark.no_alloc(warmups=2)
        @pytest.mark.limit_leaks("16 B", warmups=1, runs=7)
        def test_x():
            pass

        @pytest.mark.no_alloc
        def test_z():
            pass

        def test_y():
            pass
    """)
    }
    item = items["test_x"]
    argv = pytest_memory.mp_argv(item, ["/p/_mprun.py", "mod", "test_x"])
    assert argv[:3] == [str(pytest_memory.RUNNER), "mod", "test_x"]
    assert argv[3] == f"path=/p:{item.path.parent}"
    assert argv[4:] == ["limit_memory=24576", "no_alloc=:2", "limit_leaks=16:1:7"]
    assert pytest_memory.mp_argv(items["test_z"], ["/p/_mprun.py", "mod", "test_z"])[4:] == ["no_alloc=:1"]
    assert pytest_memory.mp_argv(items["test_y"], ["/p/_mprun.py", "mod", "test_y"]) == [
        "/p/_mprun.py",
        "mod",
        "test_y",
    ]


# The dual-runtime harness (host_tests/portable/conftest.py): both items of a
# portable module enforce MEMORY_MARKS.
PORTABLE_MODULE = """
import ptest

MEMORY_MARKS = {
    "test_big": {"limit_memory": "24 KB"},
    "test_small": {"limit_memory": "24 KB"},
    "test_leaky": {"limit_leaks": ("16 B", 2)},
}
_L = []


def test_big():
    keep = [bytearray(1000) for i in range(40)]


def test_small():
    keep = [bytearray(1000) for i in range(5)]


def test_leaky():
    _L.append(bytearray(128))
"""


def _harness() -> str:
    # The project's own dual-runtime harness, as it is, plus the options that
    # host_tests/conftest.py normally adds.
    src = (HERE / "portable" / "conftest.py").read_text()
    assert "pytest_memory.mp_argv(" in src, "the harness no longer passes memory marks to MicroPython"
    options = textwrap.dedent("""
        def pytest_addoption(parser):
            parser.addoption("--board", default=None)
            parser.addoption("--mp-heap", default=None, type=int)
    """)
    return src + options


def test_harness_enforces_memory_marks_on_both_runtimes(pytester):
    pytester.makeconftest(_harness())
    pytester.makepyfile(test_portable_mem=PORTABLE_MODULE)
    r = pytester.runpytest_inprocess(*PLUGIN, "-p", "no:cacheprovider", "--mp-heap", "131072", "-rA")
    r.assert_outcomes(passed=2, failed=4)
    out = r.stdout.str()
    assert "limit_memory: test_big[cpython] allocated" in out and "(CPython, tracemalloc)" in out
    assert "limit_memory: test_big needed more than 24576 B" in out
    assert "limit_leaks: test_leaky retains" in out and "MicroPython, gc.mem_alloc" in out
    r.stdout.fnmatch_lines(
        ["PASSED*test_small[[]cpython[]]*", "PASSED*test_small[[]micropython[]]*"], consecutive=False
    )
