"""Memory markers, enforced on CPython and on MicroPython (part of the `lowwater`
pytest plugin, plugin.py, which loads it).

    @pytest.mark.lowwater_limit_memory("24 KB")          # peak heap of the test body
    @pytest.mark.lowwater_no_alloc                       # the body allocates nothing
    @pytest.mark.lowwater_limit_leaks("16 B", warmups=3) # bytes retained per call of the body

Aliases: `no_alloc` always; `limit_memory` and `limit_leaks` only when
pytest-memray is not loaded (they are its marker names: with it, they are its
markers and this module neither registers nor acts on them). Portable tests
(no pytest import) give the same markers as a module dict, short or long names:
`MEMORY_MARKS = {"test_x": {"limit_memory": "24 KB"}, "test_y": {"no_alloc":
True}, "test_z": {"limit_leaks": ("16 B", 3)}}`.

CPython items: the test function is wrapped and measured with tracemalloc
(through lowwater.prof, the device's own code); a failure names the biggest
allocations by file:line. MicroPython items: the plugin passes `mp_args(item)`
to the runner (mp/lwtest_run.py), where lowwater.prof measures with
mem_total/heap_lock. See docs/plugin.md and docs/profiling.md.
"""

from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parent / "mp" / "lwtest_run.py"

MARKERS = {
    "lowwater_limit_memory": "lowwater_limit_memory(size): fail when the test body's peak heap above its start "
    "exceeds size (e.g. '24 KB'; MicroPython: the body runs with only size bytes of heap free)",
    "lowwater_no_alloc": "lowwater_no_alloc(tolerance=None, warmups=1): call the test body warmups times, then "
    "fail when one more call allocates heap (CPython: more than lowwater.prof.TOLERANCE bytes)",
    "lowwater_limit_leaks": "lowwater_limit_leaks(size, warmups=3, runs=10): call the test body warmups+runs times "
    "and fail when it retains more than size bytes per run (least-squares slope)",
}
# Short names: marker -> our marker. limit_memory/limit_leaks are pytest-memray's
# too: they are ours only in a session without it (_aliases).
ALIASES = {"no_alloc": "lowwater_no_alloc"}
CLASHING = {"limit_memory": "lowwater_limit_memory", "limit_leaks": "lowwater_limit_leaks"}
_ALIAS_KEY = pytest.StashKey[dict]()


def _aliases(config) -> dict:
    """Short marker names this session gives our meaning: no_alloc, plus
    limit_memory and limit_leaks unless pytest-memray is loaded."""
    got = config.stash.get(_ALIAS_KEY, None) if config is not None else None
    if got is None:
        got = dict(ALIASES)
        if config is None or not config.pluginmanager.hasplugin("memray"):
            got.update(CLASHING)
        if config is not None:
            config.stash[_ALIAS_KEY] = got
    return got


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
    for short, name in _aliases(config).items():
        config.addinivalue_line("markers", f"{short}: alias of {name} (lowwater)")


def pytest_collection_modifyitems(items):
    # MEMORY_MARKS of portable modules become ordinary markers.
    for item in items:
        marks = getattr(getattr(item, "module", None), "MEMORY_MARKS", None)
        if not marks:
            continue
        for name, arg in (marks.get(getattr(item, "originalname", item.name)) or {}).items():
            # MEMORY_MARKS is our own namespace: short names never mean memray's.
            name = ALIASES.get(name) or CLASHING.get(name) or name
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
        m = _marker(item, "lowwater_limit_memory")
        if m:
            out["limit_memory"] = parse_size(_arg(m, "size", 0, None))
        m = _marker(item, "lowwater_no_alloc")
        if m:
            tol = _arg(m, "tolerance", 0, None)
            out["no_alloc"] = {
                "tolerance": None if tol is None else parse_size(tol),
                "warmups": int(_arg(m, "warmups", 1, 1)),
            }
        m = _marker(item, "lowwater_limit_leaks")
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


def _marker(item, name):
    """The item's closest marker `name`, or else its short alias (when this
    session gives the alias our meaning)."""
    m = item.get_closest_marker(name)
    if m is None:
        for short, long in _aliases(getattr(item, "config", None)).items():
            if long == name:
                m = item.get_closest_marker(short)
    return m


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
    return cs.params.get("lowwater_runtime") if cs is not None else None


# ---------------------------------------------------------------- MicroPython side


def mp_args(item) -> list[str]:
    """The memory markers of a MicroPython item as arguments of the runner
    (mp/lwtest_run.py MODULE TEST ARGS); [] without markers."""
    s = spec(item)
    if s:
        item._lw_memory_mp = True
    return encode(s)


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
    if _runtime(pyfuncitem) in ("micropython", "micropython32"):
        try:
            return (yield)
        finally:
            if not getattr(pyfuncitem, "_lw_memory_mp", False):
                warnings.warn(
                    pytest.PytestWarning(
                        f"{pyfuncitem.nodeid}: memory markers not enforced on MicroPython "
                        "(the harness does not call lowwater_tools.testing.memory.mp_args)"
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
            _run(prof, body, s, name, fn)
            peak = tm.get_traced_memory()[1] - base
            limit = s.get("limit_memory")
            if limit is not None and peak > limit:
                pytest.fail(
                    f"limit_memory: {name} allocated {_fmt(peak)} at peak, over the limit of {_fmt(limit)} "
                    "(CPython, tracemalloc)" + where(tm, body, fn),
                    pytrace=False,
                )
        finally:
            if started:
                tm.stop()

    return guarded


def _run(prof, body, s, name, fn):
    na = s.get("no_alloc")
    call = body
    if na is not None:
        for _ in range(na["warmups"]):
            body()
        # no_alloc and the error it raises from one module object: pytester's
        # in-process runs restore sys.modules, so lowwater.prof.guard may be
        # imported again, and `prof` may hold names from two copies of it.
        from lowwater_tools.paths import device_module

        guard = device_module("prof.guard")
        checked = guard.no_alloc(body, na["tolerance"])
        checked.name = name

        def call():
            try:
                checked()
            except guard.AllocationError as e:
                msg = f"{e} (CPython, tracemalloc, tolerance {checked.tol} B)" + where(
                    prof._compat.get_tracemalloc(), body, fn
                )
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
            f"per run ({ll['runs']} runs after {ll['warmups']} warm-ups; CPython, tracemalloc)"
            + where(prof._compat.get_tracemalloc(), body, fn, runs=ll["runs"]),
            pytrace=False,
        )


TOP = 5  # allocation sites a failure lists


def where(tm, body, fn, runs: int = 0, top: int = TOP) -> str:
    """Where the memory went, for a failure message: one more call of body
    (runs > 0: that many, for a leak) under tracemalloc, compared by file:line
    with the start. For one call: what was live when the test function
    returned (its locals still held); for runs: what the calls kept.
    Allocations made and freed inside the body do not show (tracemalloc keeps
    no history), so a transient peak can list less than it reached; sites in
    the standard library and installed packages are left out."""
    import os
    import sys

    code = getattr(fn, "__code__", None)
    ignore = [tm.Filter(False, tm.__file__), tm.Filter(False, __file__)]
    at_return: list = []

    def profiler(frame, event, arg):
        if event == "return" and frame.f_code is code and not at_return:
            at_return.append(tm.take_snapshot())

    try:
        before = tm.take_snapshot().filter_traces(ignore)
        if runs:
            for _ in range(runs):
                body()
            after = tm.take_snapshot()
            what = f"kept by {runs} more calls"
        else:
            old = sys.getprofile()
            sys.setprofile(profiler)
            try:
                body()
            finally:
                sys.setprofile(old)
            after = at_return[0] if at_return else tm.take_snapshot()
            what = "live when one more call of the test returned"
        stats = [
            st
            for st in after.filter_traces(ignore).compare_to(before, "lineno")
            if st.size_diff > 0 and not _foreign(st.traceback[0].filename)
        ]
    except Exception as e:  # noqa: BLE001 - diagnosis must never hide the failure itself
        return f"\nwhere: not measured ({type(e).__name__}: {e})"
    if not stats:
        return f"\nwhere: nothing {what.replace('live', 'was live', 1)} (the allocations were temporary)"
    lines = [f"\nwhere (tracemalloc, biggest allocations {what}):"]
    cwd = os.getcwd()
    for st in stats[:top]:
        fr = st.traceback[0]
        path = fr.filename
        if path.startswith(cwd + os.sep):
            path = path[len(cwd) + 1 :]
        lines.append(f"  {path}:{fr.lineno}: +{_fmt(st.size_diff)} in {st.count_diff} block(s)")
    return "\n".join(lines)


def _foreign(filename: str) -> bool:
    """An allocation site in the interpreter's own library or an installed
    package (pytest's machinery among them), not the project's code."""
    import sys
    import sysconfig

    if filename.startswith("<"):
        return True
    libs = {sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")} | {sys.base_prefix, sys.prefix}
    return any(filename.startswith(d + "/") for d in libs if d) and "site-packages/lowwater" not in filename


def _fmt(n: int) -> str:
    return f"{n} B" if n < 10240 else f"{n / 1024:.1f} KB"
