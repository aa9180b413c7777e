"""`lowwater fit --tests`: the smallest heap of each portable test on the 64-bit
unix port and on the 32-bit runtime, and their ratio (docs/fit.md).

The heap factor (lowwater.config.UNIX_HEAP_FACTOR) is one number for the whole
firmware; a single test can need more or less of it (a bytearray costs the same
on both, a tuple of pointers half on 32-bit). This measures, for a sample of
portable tests (PER_MODULE per module, spread over each file; `--select TEXT`
for all tests matching TEXT), the
smallest heap on which the test passes on each runtime, run as the pytest
plugin runs it (its runner `lwtest_run`, lowwater_tools.testing.runtimes), by the same
bisection as the firmware fit (to RESOLUTION bytes), and reports the ratio unix / 32-bit: its spread is how far the single
factor is from any one piece of code. The result is also written to
build/fit/tests.json, which the firmware fit's closing note quotes.
"""

from __future__ import annotations

import ast
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lowwater_tools.boardio.fit import Trial, bisect
from lowwater_tools.errors import UserError
from lowwater_tools.paths import LIB, ROOT
from lowwater_tools.testing import runtimes

PORTABLE = ROOT / "host_tests" / "portable"
RESULTS = ROOT / "build" / "fit" / "tests.json"
LO = 8 * 1024
HI = 512 * 1024
FIRST_HI = 128 * 1024
RESOLUTION = 4096
PER_MODULE = 4
TIMEOUT = 120.0


def portable_tests(select: str | None = None) -> list[tuple[str, str]]:
    """(module, test) of every portable test function, in file order; `select`
    keeps those whose `module::test` contains it."""
    out = []
    for f in sorted(PORTABLE.glob("test_*.py")):
        tree = ast.parse(f.read_text(), str(f))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                if select is None or select in f"{f.stem}::{node.name}":
                    out.append((f.stem, node.name))
    return out


def sample(tests: list[tuple[str, str]], per_module: int) -> list[tuple[str, str]]:
    """At most per_module tests of each module, spread evenly over its file
    (a full run of every test on both runtimes takes over half an hour)."""
    out = []
    for m in dict.fromkeys(t[0] for t in tests):
        mine = [t for t in tests if t[0] == m]
        if len(mine) <= per_module:
            out += mine
        else:
            step = (len(mine) - 1) / (per_module - 1) if per_module > 1 else 0
            out += [mine[round(i * step)] for i in range(per_module)]
    return out


def outcome(module: str, test: str, heap: int, runtime: str, timeout: float = TIMEOUT) -> str:
    """ "ok", "skip" or "fail" of one portable test on one runtime ("unix" or
    "wasm32") and heap, run exactly as the pytest plugin runs it (its runner
    `lwtest_run`, from the root, with root-relative MICROPYPATH)."""
    item_rt = {v: k for k, v in runtimes.LAUNCH.items()}[runtime]
    path = runtimes.micropypath(PORTABLE, [LIB], ROOT)
    try:
        res = runtimes.run_test(module, test, [], path, heap, item_rt, ROOT, timeout)
    except UserError:
        raise
    except (OSError, subprocess.SubprocessError):
        return "fail"
    st, _ = runtimes.outcome(res)
    return {"pass": "ok", "skip": "skip"}.get(st, "fail")


def smallest(module: str, test: str, runtime: str, lo: int, hi: int, resolution: int) -> tuple[str, int | None]:
    """("ok", heap) or ("skip" | "fail", None): the smallest passing heap in [lo, hi]."""
    # Most tests fit in a board-sized heap: bracket there first, saving trials.
    if hi > FIRST_HI and outcome(module, test, FIRST_HI, runtime) == "ok":
        hi = FIRST_HI
    else:
        first = outcome(module, test, hi, runtime)
        if first != "ok":
            return first, None

    def trial(heap: int) -> Trial:
        ok = heap == hi or outcome(module, test, heap, runtime) == "ok"
        return Trial(heap, ok, "ok" if ok else "fail", None, 0 if ok else 1, 0.0)

    found, _ = bisect(trial, lo, hi, resolution, confirm=1)
    return "ok", found


def measure(module: str, test: str, resolution: int = RESOLUTION) -> dict:
    row: dict = {"module": module, "test": test}
    st, h64 = smallest(module, test, "unix", LO, HI, resolution)
    row["unix"] = h64
    if h64 is None:
        row["note"] = f"unix port: {st} at {HI} B"
        return row
    # 32-bit needs at most about what 64-bit does: search below a margin above it first.
    hi32 = min(HI, h64 + h64 // 4 + resolution)
    st, h32 = smallest(module, test, "wasm32", LO, hi32, resolution)
    if h32 is None and st == "fail" and hi32 < HI:
        st, h32 = smallest(module, test, "wasm32", LO, HI, resolution)
    row["wasm32"] = h32
    if h32 is None:
        row["note"] = f"32-bit runtime: {st} at {HI} B"
    else:
        row["ratio"] = round(h64 / h32, 2)
    return row


def spread(rows: list[dict]) -> dict | None:
    ratios = sorted(r["ratio"] for r in rows if "ratio" in r)
    if not ratios:
        return None
    return {
        "tests": len(ratios),
        "min": ratios[0],
        "median": round(statistics.median(ratios), 2),
        "max": ratios[-1],
    }


def run_tests(args) -> int:
    select = getattr(args, "select", None)
    tests = portable_tests(select)
    if not tests:
        raise UserError(f"no portable test matches {select!r}")
    if select is None:
        tests = sample(tests, PER_MODULE)
    progress = sys.stderr if args.json else sys.stdout
    res_step = args.resolution if args.resolution != 1024 else RESOLUTION
    print(
        f"fit --tests: {len(tests)} portable tests{'' if select else f' ({PER_MODULE} per module)'}, smallest heap on the unix port (64-bit) and the 32-bit "
        f"runtime, {LO}..{HI} B to {res_step} B",
        file=progress,
        flush=True,
    )
    t0 = time.monotonic()
    rows: list[dict] = []
    with ThreadPoolExecutor(max_workers=2) as ex:
        for row in ex.map(lambda mt: measure(mt[0], mt[1], res_step), tests):
            rows.append(row)
            what = (
                f"unix {row['unix']:7d} B  32-bit {row['wasm32']:7d} B  ratio {row['ratio']:.2f}"
                if "ratio" in row
                else row.get("note", "")
            )
            print(f"  {row['module']}::{row['test']}: {what}", file=progress, flush=True)
    overall = spread(rows)
    by_module = {m: spread([r for r in rows if r["module"] == m]) for m in sorted({r["module"] for r in rows})}
    out = {
        "resolution": res_step,
        "select": select,
        "seconds": round(time.monotonic() - t0, 1),
        "spread": overall,
        "by_module": by_module,
        "tests": rows,
    }
    out["per_module"] = None if select else PER_MODULE
    if select is None:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2))
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    s = overall
    if s is None:
        print("no test passed on both runtimes")
        return 0
    print(
        f"64/32-bit ratio over {s['tests']} tests: {s['min']:.2f} .. {s['max']:.2f} (median {s['median']:.2f}); "
        f"the firmware model uses one factor"
    )
    for m, sp in by_module.items():
        if sp:
            print(f"  {m}: {sp['min']:.2f} .. {sp['max']:.2f} ({sp['tests']} tests)")
    return 0


def last_spread() -> dict | None:
    """The spread of the last full `lowwater fit --tests` run, if one was saved."""
    try:
        return json.loads(Path(RESULTS).read_text()).get("spread")
    except (OSError, ValueError):
        return None
