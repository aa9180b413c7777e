"""The memory markers of the lowwater pytest plugin: on CPython (pytester), in the
MicroPython runner, beside pytest-memray, and where a failure says the memory went."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import mprunner
from lowwater_tools.testing import memory as pytest_memory
from lowwater_tools.testing import runtimes

pytest_plugins = ["pytester"]

HERE = Path(__file__).resolve().parent
# The plugin comes by its entry point (installed); -p is a no-op then, and
# loads it by that name where plugin autoloading is off.
PLUGIN = ["-p", "lowwater"]


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

        @pytest.mark.lowwater_limit_memory("24 KB")
        def test_over():
            keep = [bytearray(1024) for _ in range(40)]

        @pytest.mark.lowwater_limit_memory("24 KB")
        def test_under():
            keep = [bytearray(1024) for _ in range(10)]

        @pytest.mark.lowwater_limit_memory("24 KB")
        def test_transient_peak():
            for _ in range(40):
                bytearray(4096)
    """,
    )
    r.assert_outcomes(passed=2, failed=1)
    r.stdout.fnmatch_lines(
        [
            "*limit_memory: test_over allocated *KB at peak, over the limit of 24.0 KB*",
            "where (tracemalloc, biggest allocations live when one more call of the test returned):",
            "  test_mem.py:5: +4*.* KB in * block(s)",
        ]
    )
    assert "Traceback" not in r.stdout.str()


def test_limit_leaks_fails_a_leaking_test(pytester):
    r = _outcomes(
        pytester,
        """
        import pytest
        KEEP = []

        @pytest.mark.lowwater_limit_leaks("16 B", warmups=2)
        def test_leaks():
            KEEP.append(bytearray(256))

        @pytest.mark.lowwater_limit_leaks("16 B", warmups=2, runs=5)
        def test_tidy():
            b = bytearray(256)
            assert len(b) == 256

        def test_runs_are_counted():
            # 2 warm-ups + 10 runs, then 10 more runs that say where it went
            assert len(KEEP) == 2 + 10 + 10
    """,
    )
    r.assert_outcomes(passed=2, failed=1)
    r.stdout.fnmatch_lines(
        [
            "*limit_leaks: test_leaks retains 3*.* B per run, over the limit of 16 B per run*",
            "where (tracemalloc, biggest allocations kept by 10 more calls):",
            "  test_mem.py:6: +* B in 20 block(s)",
        ]
    )


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

        @pytest.mark.lowwater_no_alloc(warmups=1)
        def test_noisy(buf):
            buf.extend(bytearray(4096))
    """,
    )
    r.assert_outcomes(passed=1, failed=1)
    r.stdout.fnmatch_lines(
        [
            "*no_alloc: test_noisy allocated * bytes (CPython, tracemalloc, tolerance 256 B)*",
            "where (tracemalloc, biggest allocations live when one more call of the test returned):",
            "  test_mem.py:14: +* B in * block(s)",  # grown in place or moved: the allocator decides
        ]
    )


def test_a_bad_marker_is_a_usage_error(pytester):
    r = _outcomes(
        pytester,
        """
        import pytest

        @pytest.mark.lowwater_limit_memory("lots")
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

        @pytest.mark.lowwater_limit_memory("1 MB")
        @pytest.mark.lowwater_limit_leaks("1 KB")
        @pytest.mark.lowwater_no_alloc(tolerance="1 KB")
        @pytest.mark.no_alloc(tolerance="1 KB")
        def test_x():
            pass
    """,
        "--strict-markers",
    )
    r.assert_outcomes(passed=1)


# ---------------------------------------------------------------- beside pytest-memray

BOTH = """
import pytest

@pytest.mark.limit_memory("24 KB")
def test_memray_limit():
    keep = [bytearray(1024) for _ in range(40)]

@pytest.mark.lowwater_limit_memory("24 KB")
def test_ours_limit():
    keep = [bytearray(1024) for _ in range(40)]

@pytest.mark.limit_leaks("1 KB")
def test_memray_leaks():
    pass

@pytest.mark.no_alloc
def test_alias_no_alloc():
    x = bytearray(4096)
"""


def test_beside_pytest_memray_each_marker_does_its_own_job(pytester):
    # Both plugins loaded (their entry points): limit_memory is memray's marker
    # (its own failure text), lowwater_limit_memory ours, no_alloc our alias.
    pytest.importorskip("pytest_memray")
    r = _outcomes(pytester, BOTH, "--strict-markers")
    out = r.stdout.str()
    assert r.parseoutcomes().get("failed") == 3, out
    r.stdout.fnmatch_lines(["*Test was limited to 24.0KiB but allocated*"])  # memray's words
    assert "limit_memory: test_ours_limit allocated" in out  # ours
    assert "limit_memory: test_memray_limit" not in out  # we do not act on memray's marker
    assert "no_alloc: test_alias_no_alloc allocated" in out
    assert "test_memray_leaks PASSED" in out or r.parseoutcomes().get("passed") == 1


def test_without_pytest_memray_the_short_names_are_ours(pytester):
    r = _outcomes(pytester, BOTH, "-p", "no:memray", "--strict-markers")
    out = r.stdout.str()
    r.assert_outcomes(passed=1, failed=3)
    assert "limit_memory: test_memray_limit allocated" in out and "limit_memory: test_ours_limit allocated" in out


def test_the_plugin_is_harmless_elsewhere(pytester):
    # No portable folder configured: no runtime items, no 32-bit check, no summary.
    pytester.makepyfile(test_plain="def test_a():\n    pass\n")
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:memray")
    r.assert_outcomes(passed=1)
    out = r.stdout.str()
    assert "[cpython]" not in out and "runtimes" not in out and "lowwater:" not in out


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
    import lwtest
    lwtest.skip("not here")
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
        ("test_allocates", ["no_alloc=:0"], "LWTEST FAIL", 'mem_mod.py", line 15, in test_allocates'),
        ("test_leaks", ["limit_leaks=16:3:10"], "LWTEST FAIL", "(+"),
        ("test_clean", ["no_alloc=:1"], "LWTEST PASS", None),
        ("test_leaks", ["limit_leaks=16:3:10"], "LWTEST FAIL", "limit_leaks: test_leaks retains"),
        ("test_needs_10k", ["limit_leaks=16:3:10"], "LWTEST PASS", None),
        ("test_skipped", ["no_alloc=:0"], "LWTEST SKIP not here", None),
    ],
)
def test_mp_runner_enforces_markers(mp_module, test, args, last, needle):
    res = mprunner.run(
        [str(pytest_memory.RUNNER), "mem_mod", test, f"path={runtimes.MP_DIR}:{mp_module}", *args],
        heap=131072,
        timeout=60,
    )
    lines = res.out.rstrip().splitlines()
    assert lines and lines[-1] == last, res.out
    if needle:
        assert needle in res.out, res.out


def test_mp_args_encode_the_markers(pytester):
    items = {
        i.name: i
        for i in pytester.getitems("""
        import pytest

        @pytest.mark.lowwater_limit_memory("24 KB")
        @pytest.mark.lowwater_no_alloc(warmups=2)
        @pytest.mark.lowwater_limit_leaks("16 B", warmups=1, runs=7)
        def test_x():
            pass

        @pytest.mark.no_alloc
        def test_z():
            pass

        def test_y():
            pass
    """)
    }
    assert pytest_memory.mp_args(items["test_x"]) == ["limit_memory=24576", "no_alloc=:2", "limit_leaks=16:1:7"]
    assert pytest_memory.mp_args(items["test_z"]) == ["no_alloc=:1"]
    assert pytest_memory.mp_args(items["test_y"]) == []


# The plugin's harness, configured as a project would (ini lowwater_portable):
# every runtime's item of a portable module enforces MEMORY_MARKS.
PORTABLE_MODULE = """
import lwtest

MEMORY_MARKS = {
    "test_big": {"limit_memory": "24 KB"},
    "test_small": {"lowwater_limit_memory": "24 KB"},
    "test_leaky": {"limit_leaks": ("16 B", 2)},
}
_L = []


def test_big():
    keep = [bytearray(1000) for i in range(40)]


def test_small():
    keep = [bytearray(1000) for i in range(5)]
    assert lwtest.runtime_name() in ("cpython", "micropython", "micropython32")


def test_leaky():
    _L.append(bytearray(128))
"""


def test_harness_enforces_memory_marks_on_every_runtime(pytester):
    pytester.makeini("[pytest]\nlowwater_portable = .\n")
    pytester.makepyfile(test_portable_mem=PORTABLE_MODULE)
    r = pytester.runpytest_inprocess(*PLUGIN, "-p", "no:cacheprovider", "--mp-heap", "131072", "-rA")
    r.assert_outcomes(passed=3, failed=6)
    out = r.stdout.str()
    assert "limit_memory: test_big[cpython] allocated" in out and "(CPython, tracemalloc)" in out
    assert "limit_memory: test_big needed more than 24576 B" in out
    assert "where: the allocation that went over the limit:" in out and "in test_big" in out
    assert "limit_leaks: test_leaky retains" in out and "MicroPython, gc.mem_alloc" in out
    assert "where: 10 more call(s) of test_leaky: live heap" in out
    r.stdout.fnmatch_lines(
        [
            "PASSED*test_small[[]cpython[]]*",
            "PASSED*test_small[[]micropython[]]*",
            "PASSED*test_small[[]micropython32[]]*",
        ],
        consecutive=False,
    )
    r.stdout.fnmatch_lines(["portable tests on micropython32: 2 failed, 1 passed*"], consecutive=False)
