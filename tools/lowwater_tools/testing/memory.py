"""pytest plugin: memory markers, enforced on CPython and on MicroPython.

    @pytest.mark.limit_memory("24 KB")          # peak heap of the test body
    @pytest.mark.no_alloc                       # the body allocates nothing
    @pytest.mark.limit_leaks("16 B", warmups=3) # bytes retained per call of the body

Enable with `-p lowwater_tools.testing.memory` or `pytest_plugins = [...]` in a
conftest. Portable tests (host_tests/portable, no pytest import) give the same
markers as a module dict: `MEMORY_MARKS = {"test_x": {"limit_memory": "24 KB"},
"test_y": {"no_alloc": True}, "test_z": {"limit_leaks": ("16 B", 3)}}`.

CPython items: the test function is wrapped and measured with tracemalloc
(through lowwater.prof, the device's own code). MicroPython items of the
dual-runtime harness: the harness asks `mp_argv(item, argv)` for the command,
which runs the test through _mp_marker_runner.py with the marker arguments;
there lowwater.prof measures with mem_total/heap_lock. See docs/profiling.md.
"""

from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().with_name("mp_marker_runner.py")

MARKERS = {
    "limit_memory": "limit_memory(size): fail when the test body's peak heap above its start exceeds size "
    "(e.g. '24 KB'; MicroPython: the body runs with only size bytes of heap free)",
    "no_alloc": "no_alloc(tolerance=None, warmups=1): call the test body warmups times, then fail when one "
    "more call allocates heap (CPython: more than lowwater.prof.TOLERANCE bytes)",
    "limit_leaks": "limit_leaks(size, warmups=3, runs=10): call the test body warmups+runs times and fail when "
    "it retains more than size bytes per run (least-squares slope)",
}

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1024,
    "kib": 1024,
    "k": 1024,
    "mb": 1 << 20,
    "mib": 1 << 20,
    "m": 1 << 20,
    "gb": 1 << 30,
    "gib": 1 << 30,
}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")


def parse_size(size) -> int:
    """'24 KB' -> 24576 (KB = 1024 B, as pytest-memray), '16 B' -> 16, 100 -> 100."""
    if isinstance(size, bool):
        raise ValueError(f"not a size: {size!r}")
    if isinstance(size, (int, float)):
        if size < 0:
            raise ValueError(f"not a size: {size!r}")
        return int(size)
    m = _SIZE.fullmatch(str(size))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {size!r} (use e.g. '24 KB', '512 B')")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def pytest_configure(config):
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


def pytest_collection_modifyitems(items):
    # MEMORY_MARKS of portable modules become ordinary markers.
    for item in items:
        marks = getattr(getattr(item, "module", None), "MEMORY_MARKS", None)
        if not marks:
            continue
        for name, arg in (marks.get(getattr(item, "originalname", item.name)) or {}).items():
            if name not in MARKERS:
                raise pytest.UsageError(f"{item.nodeid}: MEMORY_MARKS: unknown marker {name!r}")
            if arg is True or arg is None:
                item.add_marker(getattr(pytest.mark, name))
            elif isinstance(arg, dict):
                item.add_marker(getattr(pytest.mark, name)(**arg))
            elif isinstance(arg, (tuple, list)):
                item.add_marker(getattr(pytest.mark, name)(*arg))
            else:
                item.add_marker(getattr(pytest.mark, name)(arg))


def spec(item) -> dict:
    """The memory markers of an item, normalised: {"limit_memory": bytes,
    "no_alloc": {"tolerance", "warmups"}, "limit_leaks": {"size", "warmups", "runs"}}."""
    out: dict = {}
    try:
        m = item.get_closest_marker("limit_memory")
        if m:
            out["limit_memory"] = parse_size(_arg(m, "size", 0, None))
        m = item.get_closest_marker("no_alloc")
        if m:
            tol = _arg(m, "tolerance", 0, None)
            out["no_alloc"] = {
                "tolerance": None if tol is None else parse_size(tol),
                "warmups": int(_arg(m, "warmups", 1, 1)),
            }
        m = item.get_closest_marker("limit_leaks")
        if m:
            out["limit_leaks"] = {
                "size": parse_size(_arg(m, "size", 0, None)),
                "warmups": int(_arg(m, "warmups", 1, 3)),
                "runs": int(_arg(m, "runs", 2, 10)),
            }
            if out["limit_leaks"]["runs"] < 3:
                raise ValueError("runs must be >= 3")
    except (ValueError, TypeError) as e:
        raise pytest.UsageError(f"{item.nodeid}: bad memory marker: {e}") from None
    return out


def _arg(mark, name, pos, default):
    if name in mark.kwargs:
        return mark.kwargs[name]
    if len(mark.args) > pos:
        return mark.args[pos]
    if default is None and name == "size":
        raise ValueError(f"{mark.name} needs a size, e.g. {mark.name}('24 KB')")
    return default


def _runtime(item):
    cs = getattr(item, "callspec", None)
    return cs.params.get("runtime") if cs is not None else None


# ---------------------------------------------------------------- MicroPython side


def mp_argv(item, argv: list[str]) -> list[str]:
    """The unix-port command for a [micropython] item: argv unchanged when the
    item has no memory marker, else the marker runner with the same MODULE TEST
    and the markers as arguments (the original script's folder and the test
    module's go first on sys.path, so both import as before)."""
    s = spec(item)
    if not s:
        return list(argv)
    item._lw_memory_mp = True
    dirs = [str(Path(argv[0]).parent)]
    here = getattr(item, "path", None)
    if here is not None and str(here.parent) not in dirs:
        dirs.append(str(here.parent))
    return [str(RUNNER), *argv[1:3], "path=" + ":".join(dirs), *encode(s)]


def encode(s: dict) -> list[str]:
    args = []
    if "limit_memory" in s:
        args.append(f"limit_memory={s['limit_memory']}")
    if "no_alloc" in s:
        tol = s["no_alloc"]["tolerance"]
        args.append(f"no_alloc={'' if tol is None else tol}:{s['no_alloc']['warmups']}")
    if "limit_leaks" in s:
        ll = s["limit_leaks"]
        args.append(f"limit_leaks={ll['size']}:{ll['warmups']}:{ll['runs']}")
    return args


# ---------------------------------------------------------------- CPython side


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    s = spec(pyfuncitem)
    if not s:
        return (yield)
    if _runtime(pyfuncitem) == "micropython":
        try:
            return (yield)
        finally:
            if not getattr(pyfuncitem, "_lw_memory_mp", False):
                warnings.warn(
                    pytest.PytestWarning(
                        f"{pyfuncitem.nodeid}: memory markers not enforced on MicroPython "
                        "(the harness does not call lowwater_tools.testing.memory.mp_argv)"
                    ),
                    stacklevel=2,
                )
    original = pyfuncitem.obj
    pyfuncitem.obj = guard(original, s, pyfuncitem.name)
    try:
        return (yield)
    finally:
        pyfuncitem.obj = original


def guard(fn, s: dict, name: str):
    """fn wrapped so that calling it enforces the markers of spec s (CPython)."""
    from lowwater_tools.paths import device_module

    prof = device_module("prof")

    def guarded(*args, **kwargs):
        # Fixtures come as keywords; a call with **kwargs allocates (CPython
        # builds a names tuple and an argument array), so bind them once to
        # positions: the measured call then allocates nothing of its own.
        try:
            bound = inspect.signature(fn).bind(*args, **kwargs)
            pos, kw = bound.args, bound.kwargs
        except (TypeError, ValueError):
            pos, kw = args, kwargs
        if kw:

            def body():
                return fn(*pos, **kw)
        else:

            def body():
                return fn(*pos)

        tm = prof._compat.get_tracemalloc()
        started = not tm.is_tracing()
        if started:
            tm.start()
        try:
            tm.reset_peak()
            base = tm.get_traced_memory()[0]
            _run(prof, body, s, name)
            peak = tm.get_traced_memory()[1] - base
        finally:
            if started:
                tm.stop()
        limit = s.get("limit_memory")
        if limit is not None and peak > limit:
            pytest.fail(
                f"limit_memory: {name} allocated {_fmt(peak)} at peak, over the limit of {_fmt(limit)} "
                "(CPython, tracemalloc)",
                pytrace=False,
            )

    return guarded


def _run(prof, body, s, name):
    na = s.get("no_alloc")
    call = body
    if na is not None:
        for _ in range(na["warmups"]):
            body()
        checked = prof.no_alloc(body, na["tolerance"])
        checked.name = name

        def call():
            try:
                checked()
            except prof.AllocationError as e:
                msg = f"{e} (CPython, tracemalloc, tolerance {checked.tol} B)"
            else:
                return
            pytest.fail(msg, pytrace=False)

        if "limit_leaks" not in s:
            call()
            return
    ll = s.get("limit_leaks")
    if ll is None:
        call()
        return
    r = prof.LeakCheck(call, ll["warmups"], ll["runs"], ll["size"]).run()
    if r.leaked:
        pytest.fail(
            f"limit_leaks: {name} retains {r.slope:.1f} B per run, over the limit of {_fmt(ll['size'])} "
            f"per run ({ll['runs']} runs after {ll['warmups']} warm-ups; CPython, tracemalloc)",
            pytrace=False,
        )


def _fmt(n: int) -> str:
    return f"{n} B" if n < 10240 else f"{n / 1024:.1f} KB"
