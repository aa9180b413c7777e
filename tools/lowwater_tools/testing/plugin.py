"""pytest plugin `lowwater` (pytest11 entry point): portable tests on three runtimes.

A test function in a configured portable folder (ini `lowwater_portable`, or
`--lowwater-portable DIR`) becomes one item per runtime:

- `test_x[cpython]`: the function itself, in this process;
- `test_x[micropython]`: the MicroPython unix port (64-bit, viper), in a fresh
  process under the board's heap mapped onto 64-bit (x lowwater.config.UNIX_HEAP_FACTOR);
- `test_x[micropython32]`: the unix port built for WASI (32-bit like the
  boards, no viper), in a fresh process under the board's own heap.

Portable test files import no pytest: plain assert and `lwtest` (Skip, skip,
assert_no_alloc, heap_bytes, runtime_name), which this plugin puts on sys.path
and MICROPYPATH. A MicroPython item's traceback is its failure message. Module
dicts tune items: MP_HEAP / MP_HEAP32 {"test_x": bytes}, MP_PAD {"test_x": bytes}
(held in one block while the module compiles, freed before the test runs: a
contiguous hole whatever the module's layout; mp/lwtest_run.py), MP_TIMEOUT
seconds, MEMORY_MARKS {"test_x": {"lowwater_no_alloc": True}} (memory.py). Everywhere
else the plugin does nothing but register its options and markers.
See docs/plugin.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lowwater_tools.errors import UserError
from lowwater_tools.testing import runtimes

pytest_plugins = ["lowwater_tools.testing.memory"]

PARAM = "lowwater_runtime"
_STATE = pytest.StashKey[dict]()


def pytest_addoption(parser):
    g = parser.getgroup("lowwater", "lowwater: portable tests on CPython and MicroPython")
    g.addoption(
        "--board",
        default=None,
        help="board profile (name or .json path) whose heap shapes the MicroPython items "
        "(default: $LOWWATER_BOARD, else unix)",
    )
    g.addoption("--mp-heap", default=None, type=int, help="MicroPython heap in bytes (overrides --board)")
    g.addoption(
        "--lowwater-runtimes",
        default=None,
        help="comma-separated runtimes of portable tests: cpython,micropython,micropython32 (default: all three)",
    )
    g.addoption(
        "--lowwater-portable",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of portable tests (adds to ini lowwater_portable)",
    )
    parser.addini("lowwater_portable", "folders of portable tests (relative to the rootdir)", type="paths", default=[])
    parser.addini(
        "lowwater_path",
        "folders MicroPython (and CPython) import the library under test from (relative to the rootdir)",
        type="paths",
        default=[],
    )
    parser.addini("lowwater_runtimes", "default of --lowwater-runtimes", default="")
    parser.addini("lowwater_timeout", "seconds a MicroPython item may run (module MP_TIMEOUT overrides)", default="120")


def _dirs(config, opt: list[str], ini: str) -> list[Path]:
    out = [Path(p).resolve() for p in config.getini(ini)]
    out += [(Path(p) if Path(p).is_absolute() else Path(config.invocation_params.dir) / p).resolve() for p in opt]
    return out


def pytest_configure(config):
    portable = _dirs(config, config.getoption("--lowwater-portable"), "lowwater_portable")
    state = {"portable": portable, "lib": [Path(p).resolve() for p in config.getini("lowwater_path")]}
    config.stash[_STATE] = state
    if not portable:
        return  # an unrelated session: nothing more
    try:
        state["runtimes"] = runtimes.parse_runtimes(
            config.getoption("--lowwater-runtimes") or config.getini("lowwater_runtimes")
        )
    except UserError as e:
        raise pytest.UsageError(str(e)) from None
    # CPython imports the helpers and the library as MicroPython does.
    for p in reversed([runtimes.MP_DIR, *state["lib"]]):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    if hasattr(config, "workerinput"):
        return  # xdist workers: the controller checked (and built) the runtimes
    try:
        runtimes.default_heap(config.getoption("--board"), config.getoption("--mp-heap"))
    except UserError as e:  # an unknown board: one line now, not one per item
        raise pytest.UsageError(f"lowwater: {e}") from None
    for rt in state["runtimes"]:
        why = runtimes.missing(rt, log=lambda m: print(m, file=sys.stderr, flush=True))
        if why:
            raise pytest.UsageError(f"lowwater: runtime {rt}: {why}")


def _state(config) -> dict:
    return config.stash.get(_STATE, {"portable": [], "lib": []})


def is_portable(config, path) -> bool:
    p = Path(path).resolve()
    return any(p == d or d in p.parents for d in _state(config)["portable"])


def pytest_generate_tests(metafunc):
    config = metafunc.config
    if not is_portable(config, metafunc.definition.path):
        return
    rts = _state(config)["runtimes"]
    if PARAM not in metafunc.fixturenames:
        metafunc.fixturenames.append(PARAM)
    metafunc.parametrize(PARAM, rts, ids=list(rts))


def item_runtime(item) -> str | None:
    cs = getattr(item, "callspec", None)
    return cs.params.get(PARAM) if cs is not None else None


def item_heap(item, rt: str) -> int:
    module, name = item.module, item.originalname
    if rt == "micropython32":
        own = getattr(module, "MP_HEAP32", {}).get(name)
        if own:
            return own
    config = item.config
    return getattr(module, "MP_HEAP", {}).get(name) or runtimes.default_heap(
        config.getoption("--board"), config.getoption("--mp-heap"), rt
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    rt = item_runtime(pyfuncitem)
    if rt is None:
        return None
    if rt == "cpython":
        try:
            pyfuncitem.obj()
        except Exception as e:
            if type(e).__name__ == "Skip":  # lwtest.Skip, or a project's own
                _skip(str(e))
            raise
        return True
    # memory.py is a plugin (pytest_plugins above): imported here, not at the
    # top, so pytest imports it first and rewrites its asserts.
    from lowwater_tools.testing.memory import mp_args

    config = pyfuncitem.config
    module = pyfuncitem.module
    root = config.rootpath
    try:
        heap = item_heap(pyfuncitem, rt)
    except UserError as e:
        raise pytest.UsageError(str(e)) from None
    path = runtimes.micropypath(pyfuncitem.path.parent, _state(config)["lib"], root)
    timeout = float(getattr(module, "MP_TIMEOUT", None) or config.getini("lowwater_timeout"))
    args = mp_args(pyfuncitem)
    pad = getattr(module, "MP_PAD", {}).get(pyfuncitem.originalname)
    if pad:
        args = [*args, f"pad={int(pad)}"]
    res = runtimes.run_test(
        module.__name__.rpartition(".")[2],
        pyfuncitem.originalname,
        args,
        path,
        heap,
        rt,
        root,
        timeout,
    )
    kind, detail = runtimes.outcome(res)
    if kind == "skip":
        _skip(detail)
    if kind == "fail":
        what = "MicroPython" if rt == "micropython" else "MicroPython 32-bit (wasm32)"
        pytest.fail(f"{what} (heap {heap} B) failed, exit {res.returncode}:\n{detail}", pytrace=False)
    return True


def _skip(reason: str):
    # reported at the test's own location, not this file's
    raise pytest.skip.Exception(reason, _use_item_location=True)


def pytest_report_header(config):
    st = _state(config)
    if not st["portable"]:
        return None
    board = config.getoption("--board") or "default"
    heap = config.getoption("--mp-heap")
    return f"lowwater: portable runtimes {','.join(st['runtimes'])}; board {board}" + (
        f", heap {heap} B" if heap else ""
    )


def pytest_terminal_summary(terminalreporter):
    # How many portable items ran on each runtime (ids end in [cpython] ...).
    # Under xdist the reports arrive at the controller, which prints this.
    if not _state(terminalreporter.config)["portable"]:
        return
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for rep in terminalreporter.stats.get(outcome, []):
            # one report per item: its call, or the phase where it skipped/errored
            if getattr(rep, "when", None) != "call" and outcome == "passed":
                continue
            rt = getattr(rep, "nodeid", "").rpartition("[")[2].rstrip("]")
            if rt in runtimes.NOTES:
                counts.setdefault(rt, {}).setdefault(outcome, 0)
                counts[rt][outcome] += 1
    if counts:
        terminalreporter.section("runtimes")
        for rt, note in runtimes.NOTES.items():
            c = counts.get(rt, {})
            got = ", ".join(f"{n} {o}" for o, n in sorted(c.items())) or "none ran"
            terminalreporter.write_line(f"portable tests on {rt:13s}: {got}  ({note})")
