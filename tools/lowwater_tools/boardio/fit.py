"""`lowwater fit --board B`: the smallest unix-port heap the firmware runs on, by bisection.

A trial runs `micropython -X heapsize=H firmware/main.py` for N chunks and passes
when it exits 0 with an `end` record, no MemoryError and no critical budget level
(docs/telemetry.md). The firmware's thresholds come from the profile scaled to
64-bit (lowwater.config.scaled), not from H, so a too-small heap ends critical or
out of memory. The answer is mapped back to board bytes with UNIX_HEAP_FACTOR.
docs/fit.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lowwater_tools import args as targs, boards
from lowwater_tools.errors import UserError
from lowwater_tools.paths import FIRMWARE, LIB, device_module, micropython_exe, tool_exe

HELP = "find the smallest heap the firmware runs on (bisection on the unix port) and the margin against the board"

DEFAULT_CHUNKS = 2000
DEFAULT_LO = 16 * 1024
RESOLUTION = 1024
TRIAL_TIMEOUT = 120.0
CONFIRM = 4
_ALIGN = 64  # heaps tried are multiples of this


def add_arguments(p):
    p.add_argument("--board", default=boards.DEFAULT_BOARD, help="profile name (boards/NAME.json) or a .json path")
    p.add_argument(
        "--chunks", type=targs.count(1), default=DEFAULT_CHUNKS, help=f"chunks per trial run (default {DEFAULT_CHUNKS})"
    )
    p.add_argument(
        "--lo",
        type=targs.count(),
        default=DEFAULT_LO,
        metavar="BYTES",
        help=f"lower end of the search, unix-port bytes (default {DEFAULT_LO})",
    )
    p.add_argument(
        "--hi",
        type=targs.count(),
        default=None,
        metavar="BYTES",
        help="upper end of the search, unix-port bytes (default: twice the board's heap mapped to the unix port)",
    )
    p.add_argument(
        "--resolution",
        type=targs.count(1),
        default=RESOLUTION,
        metavar="BYTES",
        help=f"stop when the bracket is this narrow (default {RESOLUTION})",
    )
    p.add_argument(
        "--confirm",
        type=targs.count(0, 1000),
        default=CONFIRM,
        metavar="K",
        help=f"after bisecting, the K heaps one --resolution step apart above the answer must pass too "
        f"(default {CONFIRM}; a failure restarts the search above it)",
    )
    p.add_argument(
        "--timeout",
        type=targs.seconds,
        default=TRIAL_TIMEOUT,
        metavar="S",
        help=f"bound on each trial run (default {TRIAL_TIMEOUT:.0f} s; a trial that overruns fails)",
    )
    p.add_argument(
        "--mpy",
        action="store_true",
        help="import lib/ precompiled with mpy-cross (as deployed) instead of compiling the sources on the heap",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (progress goes to stderr)")
    # Tests (and experiments) run another script in place of firmware/main.py.
    p.add_argument("--main", default=None, help=argparse.SUPPRESS)


@dataclass
class Trial:
    heap: int
    ok: bool
    reason: str  # "ok", "MemoryError", "critical", "exit 1", "timeout", "no end record"
    lw: int | None  # low-water free bytes reported by the run (end record, else lowest mem free)
    rc: int
    seconds: float
    tail: str = ""  # last line of the output, for messages


def _tail(out: bytes) -> str:
    lines = [ln.strip() for ln in out.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:160] if lines else ""


def _records(out: bytes) -> list:
    """LW1 records of a run's output, as (kind, fields) with the shared parser if present."""
    try:
        from lowwater_tools.telemetry.lw1 import Parser
    except ImportError:  # the tiny fallback: `LW1 kind k=v ...` lines
        recs = []
        for line in out.decode("utf-8", "replace").splitlines():
            parts = line.strip().split()
            if len(parts) >= 2 and parts[0] == "LW1":
                fields = dict(p.partition("=")[::2] for p in parts[2:] if "=" in p)
                recs.append((parts[1], fields))
        return recs
    p = Parser()
    recs = p.feed(out) + p.close()
    return [(r.kind, r.fields) for r in recs]


def _int(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def judge(rc: int, out: bytes) -> tuple[bool, str, int | None]:
    """(passed, reason, low-water free bytes) of one run from its exit status and output."""
    recs = _records(out)
    frees = [_int(f.get("free")) for k, f in recs if k == "mem"]
    frees = [f for f in frees if f is not None]
    end = next((f for k, f in reversed(recs) if k == "end"), None)
    lw = _int(end.get("lw")) if end else None
    if lw is None and frees:
        lw = min(frees)
    if b"MemoryError" in out:
        return False, "MemoryError", lw
    critical = any(
        (k == "mem" and str(f.get("lvl")) == "critical") or (k == "lvl" and str(f.get("to")) == "critical")
        for k, f in recs
    ) or (end is not None and (_int(end.get("critical")) or 0) > 0)
    if critical:
        return False, "critical", lw
    if rc != 0:
        return False, f"exit {rc}", lw
    if end is None:
        return False, "no end record", lw
    return True, "ok", lw


def compile_lib(dest: Path) -> Path:
    """lib/ compiled with mpy-cross (native code for this host, for @viper) into dest; returns dest."""
    exe = tool_exe("mpy-cross")
    for src in sorted(LIB.rglob("*.py")):
        out = dest / src.relative_to(LIB).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        p = subprocess.run(
            [exe, "-march=host", str(src), "-o", str(out)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if p.returncode:
            raise UserError(f"mpy-cross failed on {src.relative_to(LIB.parent)}: {p.stderr.strip().splitlines()[-1:]}")
    return dest


def run_trial(main: Path, profile_path: Path, heap: int, chunks: int, timeout: float, lib: Path = LIB) -> Trial:
    env = dict(os.environ)
    env["MICROPYPATH"] = f"{lib}:.frozen"
    env["LOWWATER_BOARD"] = str(profile_path)
    env["LOWWATER_CHUNKS"] = str(chunks)
    cmd = [micropython_exe(), "-X", f"heapsize={heap}", str(main)]
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lowwater-fit-") as cwd:
        try:
            p = subprocess.run(
                cmd,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:  # subprocess.run killed it
            _, _, lw = judge(0, e.stdout or b"")
            return Trial(heap, False, "timeout", lw, -9, time.monotonic() - t0, _tail(e.stdout or b""))
    ok, reason, lw = judge(p.returncode, p.stdout)
    return Trial(heap, ok, reason, lw, p.returncode, time.monotonic() - t0, _tail(p.stdout))


def bisect(trial, lo: int, hi: int, resolution: int = RESOLUTION, confirm: int = 0) -> tuple[int, list[Trial]]:
    """Smallest heap in [lo, hi] where trial(heap).ok, to within `resolution` bytes.
    Returns (heap, trials in order).

    The answer H passed, H - resolution (or less) failed unless H == lo, and the
    `confirm` heaps H + k * resolution (k = 1..confirm, below hi) passed too.
    Passing is not quite monotone in the heap (near the edge, the compiler's and
    the GC's allocations can fail on a larger heap and fit on a smaller one): a
    failing confirmation restarts the search above it."""
    if lo <= 0 or hi < lo:
        raise UserError(f"need 0 < --lo <= --hi (got {lo}, {hi})")
    if resolution < 1:
        raise UserError("--resolution must be >= 1")
    trials = []
    seen = {}

    def t(heap):
        if heap not in seen:
            r = trial(heap)
            trials.append(r)
            seen[heap] = r.ok
        return seen[heap]

    top = hi
    if not t(top):
        r = trials[-1]
        last = f"; last output: {r.tail}" if r.tail else ""
        raise UserError(f"the firmware fails even on a {top} B heap ({r.reason}{last}): raise --hi, or fewer --chunks")
    if t(lo):
        return lo, trials
    while True:
        while hi - lo > resolution:
            mid = (lo + hi) // 2
            if mid - mid % _ALIGN > lo:
                mid -= mid % _ALIGN
            if t(mid):
                hi = mid
            else:
                lo = mid
        bad = next((h for h in (hi + k * resolution for k in range(1, confirm + 1)) if h < top and not t(h)), None)
        if bad is None:
            return hi, trials
        lo = bad  # a failure above the answer: search again above it
        hi = min(h for h, ok in seen.items() if ok and h > bad)


def summary(profile: dict, found: int, trials: list[Trial], chunks: int, resolution: int, lo_ok: bool) -> dict:
    config = device_module("config")
    factor = config.heap_scale(profile, 64)
    board_unix = config.scaled(profile, 64)[0]
    need_board = math.ceil(found / factor)
    return {
        "board": profile["name"],
        "chunks": chunks,
        "heap_min_unix": found,
        "resolution": resolution,
        "at_lo": lo_ok,
        "board_word_bits": profile["word_bits"],
        "unix_word_bits": 64,
        "factor": factor,
        "board_heap": profile["heap"],
        "board_heap_unix": board_unix,
        "margin_unix": board_unix - found,
        "heap_min_board": need_board,
        "margin_board": profile["heap"] - need_board,
        "margin_pct": round(100.0 * (profile["heap"] - need_board) / profile["heap"], 1),
        "trials": [{k: v for k, v in asdict(t).items() if k != "tail"} for t in trials],
    }


def unix_profile(profile: dict) -> tuple[dict, bool]:
    """The profile as the unix port can run it: a board's ADC (no machine.ADC here)
    becomes the simulated sensor of the same width, rate and seed. (profile, changed)."""
    s = profile["sensor"]
    if s["kind"] == "sim":
        return profile, False
    sim = {"kind": "sim", "seed": s["seed"], "rate_hz": s["rate_hz"], "width": s["width"]}
    return dict(profile, sensor=sim), True


def _trial_line(i: int, t: Trial) -> str:
    lw = f"lw {t.lw} B" if t.lw is not None else "lw -"
    return f"trial {i:2d}: heap {t.heap:7d} B  {'ok  ' if t.ok else 'FAIL'}  {t.reason:<13} {lw:<13} {t.seconds:.1f} s"


def run(args) -> int:
    prof = boards.load(args.board)
    ppath = boards.profile_path(args.board).resolve()
    main = Path(args.main) if args.main else FIRMWARE / "main.py"
    if not main.is_file():
        raise UserError(f"{main} not found: the firmware is not there yet")
    if args.chunks < 1:
        raise UserError("--chunks must be >= 1")
    hi = args.hi if args.hi is not None else 2 * boards.unix_heap(prof)
    progress = sys.stderr if args.json else sys.stdout
    print(
        f"fit {prof['name']}: {args.chunks} chunks per trial, heap {args.lo}..{hi} B (unix port, 64-bit), "
        f"to {args.resolution} B{', lib/ as .mpy' if args.mpy else ''}",
        file=progress,
        flush=True,
    )
    run_prof, substituted = unix_profile(prof)
    if substituted:
        print(
            f"note: sensor {prof['sensor']['kind']} -> sim on the unix port (same width, rate and seed)",
            file=progress,
            flush=True,
        )
    count = [0]
    with tempfile.TemporaryDirectory(prefix="lowwater-fit-") as tmp:
        if substituted:
            ppath = Path(tmp) / f"{prof['name']}.json"
            ppath.write_text(json.dumps(run_prof, indent=2))
        lib = compile_lib(Path(tmp) / "lib") if args.mpy else LIB

        def trial(heap):
            t = run_trial(main, ppath, heap, args.chunks, args.timeout, lib)
            count[0] += 1
            print(_trial_line(count[0], t), file=progress, flush=True)
            return t

        found, trials = bisect(trial, args.lo, hi, args.resolution, max(0, args.confirm))
    res = summary(prof, found, trials, args.chunks, args.resolution, found == args.lo)
    res["sensor_substituted"] = substituted
    res["mpy"] = args.mpy
    res["confirm"] = max(0, args.confirm)
    failed = [t for t in trials if not t.ok]
    res["below_reason"] = max(failed, key=lambda t: t.heap).reason if failed else None
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    code = "lib/ as .mpy" if args.mpy else "lib/ compiled from source on the heap"
    bound = (
        f"<= {found} B (it runs at --lo already; lower --lo to search further; {code})"
        if res["at_lo"]
        else f"{found} B (to {args.resolution} B, {len(trials)} trials, {code}; just below: {res['below_reason']})"
    )
    print(f"{prof['name']}: {args.chunks} chunks run without MemoryError or critical level on a unix heap of {bound}")
    if res["factor"] == 1.0:
        print(f"  board heap {prof['heap']} B is {prof['word_bits']}-bit like the unix port: no mapping")
    else:
        print(
            f"  mapping: {prof['word_bits']}-bit board heap x {res['factor']} = unix-port heap "
            f"(lowwater.config.UNIX_HEAP_FACTOR); {prof['heap']} B on the board = {res['board_heap_unix']} B here"
        )
        print(f"  needed on the board: {res['heap_min_board']} B of {prof['heap']} B")
    print(
        f"  margin: {res['margin_unix']} B unix = {res['margin_board']} B on the board "
        f"({res['margin_pct']}% of the board's heap)" + ("  ** DOES NOT FIT **" if res["margin_board"] < 0 else "")
    )
    return 0
