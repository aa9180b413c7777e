"""`lowwater size`: the library's flash and RAM cost, against the size budget.

Measures (docs/distribution.md):
- the total .mpy size of lib/lowwater for each board arch (mpybuild.build);
- the heap the firmware's imports hold on the MicroPython unix port
  (gc.mem_alloc() after gc.collect(), before and after `import lowwater` and
  `from lowwater import app`, a fresh process each), from .py sources and from
  x64 .mpy files, and the peak during the import (micropython.mem_peak()).
The budget is tools/lowwater_tools/size_budget.json: raise it on purpose, in
the same change that explains why. Exit status 1 when a figure is over it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from lowwater_tools import launch
from lowwater_tools.boardio import mpybuild, packages
from lowwater_tools.errors import UserError
from lowwater_tools.paths import LIB, ROOT

HELP = "print the library's .mpy size and import heap (.py vs .mpy) against the size budget"

BUDGET_FILE = Path(__file__).with_name("size_budget.json")
ARCHS = ("armv6m", "xtensawin", "x64")  # RP2040, ESP32, the unix port
# What firmware/main.py imports at start: the package, then lowwater.app and
# everything it imports (`lowwater size` lists the modules it found loaded).
IMPORTS = ("import lowwater", "from lowwater import app")
HEAP = 2 * 1024 * 1024  # unix-port heap for the measurement: big enough not to matter
TIMEOUT = 60  # s: bound for one micropython run

_PROBE = """\
import gc, sys, micropython
gc.collect()
c = micropython.mem_current()
a = gc.mem_alloc()
{imports}
gc.collect()
print('LW:size', gc.mem_alloc() - a, micropython.mem_peak() - c)
print('LW:mods', ' '.join(sorted(k for k in sys.modules if k.startswith('lowwater'))))
"""


def import_heap(path: Path) -> dict:
    """Heap held (and peak) after the firmware's imports with `path` as the only
    library folder, in a fresh unix-port process."""
    env = launch.env(lib=path)
    code = _PROBE.format(imports="\n".join(IMPORTS))
    try:
        r = subprocess.run(
            launch.command(["-c", code], HEAP),
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise UserError(f"micropython timed out importing lowwater from {path}") from None
    held = peak = None
    mods: list[str] = []
    for line in r.stdout.splitlines():
        if line.startswith("LW:size "):
            held, peak = (int(x) for x in line.split()[1:3])
        elif line.startswith("LW:mods"):
            mods = line.split()[1:]
    if r.returncode != 0 or held is None:
        raise UserError(f"importing lowwater on the unix port failed:\n{(r.stdout + r.stderr).strip()}")
    return {"heap": held, "peak": peak, "modules": mods}


def measure() -> dict:
    """Every figure of `lowwater size --json` (without the budget)."""
    with tempfile.TemporaryDirectory(prefix="lowwater-size-") as tmp:
        mpy = {}
        for arch in ARCHS:
            files = mpybuild.build(Path(tmp) / arch, arch=arch)
            mpy[arch] = sum(f.stat().st_size for f in files)
        py_bytes = sum(p.stat().st_size for p in mpybuild.sources(LIB))
        per_package = {arch: packages.mpy_bytes(Path(tmp) / arch) for arch in ARCHS}
        from_py = import_heap(LIB)
        from_mpy = import_heap(Path(tmp) / "x64")
    ver = mpybuild.mpy_cross_version()
    return {
        "mpy_version": f"{ver[0]}.{ver[1]}",
        "py_bytes": py_bytes,
        "mpy_bytes": mpy,
        "mpy_bytes_max": max(mpy.values()),
        "package_mpy_bytes": per_package,
        "imports": list(IMPORTS),
        "modules": from_py["modules"],
        "heap_py": from_py["heap"],
        "heap_mpy": from_mpy["heap"],
        "peak_py": from_py["peak"],
        "peak_mpy": from_mpy["peak"],
        "heap_saved": from_py["heap"] - from_mpy["heap"],
        "peak_saved": from_py["peak"] - from_mpy["peak"],
    }


def load_budget(path: Path | None = None) -> dict:
    path = path or BUDGET_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the size budget {path}: {e}") from None
    for key in ("mpy_bytes", "heap_py", "heap_mpy"):
        if not isinstance(data.get(key), int) or data[key] <= 0:
            raise UserError(f"size budget {path}: {key!r} must be a positive integer")
    return data


def over_budget(fig: dict, budget: dict) -> list[str]:
    """One line per figure that is over its budget (empty: within budget)."""
    out = []
    for key, val in (("mpy_bytes", fig["mpy_bytes_max"]), ("heap_py", fig["heap_py"]), ("heap_mpy", fig["heap_mpy"])):
        if val > budget[key]:
            out.append(f"{key} {val} B is over the budget of {budget[key]} B")
    return out


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="print the figures and the budget as JSON")


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def run(args) -> int:
    budget = load_budget()
    fig = measure()
    over = over_budget(fig, budget)
    if args.json:
        limits = {k: budget[k] for k in ("mpy_bytes", "heap_py", "heap_mpy")}
        print(json.dumps({**fig, "budget": limits, "over": over}, indent=2))
        return 1 if over else 0

    def mark(val, key):
        return f"budget {budget[key]:>6} B  {'OVER' if val > budget[key] else 'ok'}"

    arches = "  ".join(f"{a} {n}" for a, n in fig["mpy_bytes"].items())
    print(f"lib/lowwater: {len(mpybuild.sources(LIB))} files, {fig['py_bytes']} B of .py source")
    print(
        f"  .mpy v{fig['mpy_version']} total {fig['mpy_bytes_max']:>6} B  {mark(fig['mpy_bytes_max'], 'mpy_bytes')}"
        f"   ({arches})"
    )
    for name in fig["package_mpy_bytes"][ARCHS[0]]:
        sizes = "  ".join(f"{a} {fig['package_mpy_bytes'][a][name]}" for a in ARCHS)
        print(f"  package {name:<18} .mpy {sizes}")
    print(f"heap after `{'; '.join(IMPORTS)}` on the unix port ({len(fig['modules'])} modules):")
    print(f"  from .py    {fig['heap_py']:>6} B  {mark(fig['heap_py'], 'heap_py')}   peak {fig['peak_py']} B")
    print(f"  from .mpy   {fig['heap_mpy']:>6} B  {mark(fig['heap_mpy'], 'heap_mpy')}   peak {fig['peak_mpy']} B")
    print(
        f"  .mpy saves  {fig['heap_saved']:>6} B held ({_pct(fig['heap_saved'], fig['heap_py'])}), "
        f"{fig['peak_saved']} B at the import peak ({_pct(fig['peak_saved'], fig['peak_py'])})"
    )
    try:
        shown = BUDGET_FILE.relative_to(ROOT)
    except ValueError:
        shown = BUDGET_FILE
    for line in over:
        print(f"lowwater: {line}: shrink it, or raise {shown} on purpose", file=sys.stderr)
    return 1 if over else 0
