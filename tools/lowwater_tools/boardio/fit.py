"""`lowwater fit --board B`: the smallest heap the firmware runs on, by bisection.

A trial runs `micropython -X heapsize=H firmware/main.py` for N chunks and passes
when it exits 0 with an `end` record, no MemoryError and no critical budget level
(docs/telemetry.md). The firmware's thresholds come from the profile scaled to
the runtime's word size (lowwater.config.scaled), not from H, so a too-small heap
ends critical or out of memory.

Three bisections, side by side (`--runtime both`, the default):
- the 32-bit runtime (launch runtime "wasm32"): a 32-bit board's heap directly,
  no factor: the measurement. It has no viper, so the plain twins run;
- the 64-bit unix port with the same code (lib/ without lowwater/_viper, so the
  twins run there too), its answer mapped back to board bytes with
  UNIX_HEAP_FACTOR: the model, checked against the measurement like with like;
- the unix port with viper (as a board with viper runs the firmware): its own
  figure, and what viper saves against the twins.
docs/fit.md.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lowwater_tools import args as targs, boards, launch
from lowwater_tools.errors import UserError
from lowwater_tools.paths import FIRMWARE, LIB, device_module, tool_exe

HELP = (
    "find the smallest heap the firmware runs on (bisection on the 32-bit runtime and on the 64-bit unix port) "
    "and the margin against the board"
)

DEFAULT_CHUNKS = 2000
DEFAULT_LO = 16 * 1024
RESOLUTION = 1024
TRIAL_TIMEOUT = 120.0
CONFIRM = 4
_ALIGN = 64  # heaps tried are multiples of this
RUNTIMES = {"both": ("wasm32", "unix"), "wasm32": ("wasm32",), "unix": ("unix",)}
# One bisection: (key, launch runtime, code). "twins": lib/ without the native
# module (lowwater._compat falls back to the plain twins); "viper": lib/ as is.
# `--runtime both` models the 32-bit run with the same code (twins) and adds the
# viper run as its own figure; `--runtime unix` is the firmware as deployed
# (viper), or the twins with --twins.
RUNS = {
    "both": (("wasm32", "wasm32", "twins"), ("unix", "unix", "twins"), ("viper", "unix", "viper")),
    "wasm32": (("wasm32", "wasm32", "twins"),),
    "unix": (("unix", "unix", "viper"),),
}
# The modelled board figure (unix port / UNIX_HEAP_FACTOR) is judged against the
# 32-bit measurement of the same code (the twins on both) to within this. 5 %:
# the factor is one number for a whole firmware (docs/boards.md), the bisection's
# 1 KiB resolution is 1-1.5 % of the answers, and passing is not monotone near
# the edge. A miss beyond it means the one factor is wrong for this firmware on
# this board, and the 32-bit figure is the one to trust (docs/fit.md).
MODEL_TOLERANCE_PCT = 5.0


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
        help=f"lower end of the search, in each runtime's bytes (default {DEFAULT_LO})",
    )
    p.add_argument(
        "--hi",
        type=targs.count(),
        default=None,
        metavar="BYTES",
        help="upper end of the search, in each runtime's bytes (default: twice the board's heap on that runtime)",
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
    p.add_argument(
        "--runtime",
        choices=tuple(RUNTIMES),
        default="both",
        help="where to measure: wasm32 (32-bit, the board's bytes), unix (64-bit, mapped by the heap factor) "
        "or both, side by side (default)",
    )
    p.add_argument(
        "--twins",
        action="store_true",
        help="with --runtime unix: run lib/ without lowwater/_viper (the plain twins, as the 32-bit runtime does)",
    )
    p.add_argument(
        "--tests",
        action="store_true",
        help="instead of the firmware: each portable test's smallest heap on both MicroPython runtimes and "
        "their ratio (minutes; saved in build/fit/tests.json)",
    )
    p.add_argument(
        "--select", default=None, metavar="TEXT", help="with --tests: only tests whose module::name has TEXT"
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


def twins_lib(dest: Path) -> Path:
    """lib/ sources copied into dest without the modules that need native code
    (lowwater/_viper.py): lowwater._compat then runs the plain twins. Returns dest."""
    from lowwater_tools.boardio import mpybuild

    for src in sorted(LIB.rglob("*.py")):
        if mpybuild.needs_arch(src):
            continue
        out = dest / src.relative_to(LIB)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(src.read_bytes())
    return dest


def compile_lib(dest: Path, runtime: str = "unix", code: str | None = None) -> Path:
    """lib/ compiled with mpy-cross into dest; returns dest. code "viper" (the
    default on the unix port): native code for this host for the viper modules;
    "twins" (the default, and the only choice, on the 32-bit runtime, which has no
    native code): plain bytecode without lowwater/_viper, so the twins run."""
    if code is None:
        code = "twins" if runtime == "wasm32" else "viper"
    if code == "twins":
        from lowwater_tools.boardio import mpybuild

        mpybuild.build(dest, arch=None)
        return dest
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


def run_trial(
    main: Path, profile_path: Path, heap: int, chunks: int, timeout: float, lib: Path = LIB, runtime: str = "unix"
) -> Trial:
    env = launch.env(lib=lib, extra={"LOWWATER_BOARD": str(profile_path), "LOWWATER_CHUNKS": str(chunks)})
    profile_dir = Path(profile_path).resolve().parent
    cmd = launch.command([str(main)], heap, runtime, dirs=[profile_dir])
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


def summary32(profile: dict, found: int, trials: list[Trial], lo_ok: bool) -> dict:
    """The 32-bit runtime's figures: the board's own bytes, no factor."""
    board = launch.board_heap(profile, "wasm32")
    failed = [t for t in trials if not t.ok]
    return {
        "heap_min_32": found,
        "at_lo_32": lo_ok,
        "board_heap_32": board,
        "margin_32": board - found,
        "margin_32_pct": round(100.0 * (board - found) / board, 1),
        "below_reason_32": max(failed, key=lambda t: t.heap).reason if failed else None,
        "trials_32": [{k: v for k, v in asdict(t).items() if k != "tail"} for t in trials],
    }


def summary_viper(profile: dict, found: int, trials: list[Trial], res: dict) -> dict:
    """The unix port's figure with viper (the firmware as a board with viper runs
    it), mapped to the board like the model, and what viper saves against the
    twins (positive: the viper firmware needs less heap)."""
    config = device_module("config")
    factor = config.heap_scale(profile, 64)
    board = math.ceil(found / factor)
    failed = [t for t in trials if not t.ok]
    out = {
        "heap_min_unix_viper": found,
        "heap_min_board_viper": board,
        "margin_board_viper": profile["heap"] - board,
        "margin_pct_viper": round(100.0 * (profile["heap"] - board) / profile["heap"], 1),
        "below_reason_viper": max(failed, key=lambda t: t.heap).reason if failed else None,
        "trials_viper": [{k: v for k, v in asdict(t).items() if k != "tail"} for t in trials],
    }
    if "heap_min_unix" in res:
        out["viper_saves_unix"] = res["heap_min_unix"] - found
        out["viper_saves_board"] = res["heap_min_board"] - board
    return out


def compare(res: dict) -> dict:
    """The model against the measurement, when both ran: the firmware's 64/32-bit
    ratio (unix-port bytes per 32-bit byte) and how far the modelled board figure
    (heap_min_unix / factor) is from the measured one. Judged only when both ran
    the same code (the twins): viper against the twins is another comparison."""
    if "heap_min_32" not in res or "heap_min_unix" not in res or res.get("unix_code") != "twins":
        return {}
    m32 = res["heap_min_32"]
    err = 100.0 * (res["heap_min_board"] - m32) / m32
    return {
        "ratio_64_32": round(res["heap_min_unix"] / m32, 3),
        "model_vs_32_pct": round(err, 1),
        "model_tolerance_pct": MODEL_TOLERANCE_PCT,
        "model_agrees": abs(err) <= MODEL_TOLERANCE_PCT,
    }


def _trial_line(i: int, t: Trial) -> str:
    lw = f"lw {t.lw} B" if t.lw is not None else "lw -"
    return f"trial {i:2d}: heap {t.heap:7d} B  {'ok  ' if t.ok else 'FAIL'}  {t.reason:<13} {lw:<13} {t.seconds:.1f} s"


_LABEL = {"wasm32": "32-bit runtime (twins)", "unix": "unix port, 64-bit", "viper": "unix port with viper"}
_TAG = {"wasm32": "[32-bit] ", "unix": "[unix]   ", "viper": "[viper]  "}


def run(args) -> int:
    if getattr(args, "tests", False):
        from lowwater_tools.boardio import fittests

        return fittests.run_tests(args)
    prof = boards.load(args.board)
    ppath = boards.profile_path(args.board).resolve()
    main = Path(args.main) if args.main else FIRMWARE / "main.py"
    if not main.is_file():
        raise UserError(f"{main} not found: the firmware is not there yet")
    if args.chunks < 1:
        raise UserError("--chunks must be >= 1")
    mode = getattr(args, "runtime", "both")
    runtimes = RUNTIMES[mode]
    runs = RUNS[mode]
    if mode == "unix" and getattr(args, "twins", False):
        runs = (("unix", "unix", "twins"),)
    progress = sys.stderr if args.json else sys.stdout
    his = {key: args.hi if args.hi is not None else 2 * launch.board_heap(prof, rt) for key, rt, _ in runs}
    print(
        f"fit {prof['name']}: {args.chunks} chunks per trial, to {args.resolution} B"
        f"{', lib/ as .mpy' if args.mpy else ''}; "
        + "; ".join(
            f"{_LABEL[key] if key != 'unix' else _LABEL[key] + f' ({code})'}: heap {args.lo}..{his[key]} B"
            for key, _, code in runs
        ),
        file=progress,
        flush=True,
    )
    run_prof, substituted = unix_profile(prof)
    if substituted:
        print(
            f"note: sensor {prof['sensor']['kind']} -> sim on the host runtimes (same width, rate and seed)",
            file=progress,
            flush=True,
        )
    found: dict[str, int] = {}
    trials: dict[str, list[Trial]] = {}
    with tempfile.TemporaryDirectory(prefix="lowwater-fit-") as tmp:
        if substituted:
            ppath = Path(tmp) / f"{prof['name']}.json"
            ppath.write_text(json.dumps(run_prof, indent=2))
        for key, rt, code in runs:
            if args.mpy:
                lib = compile_lib(Path(tmp) / f"lib-{key}", rt, code)
            else:
                lib = twins_lib(Path(tmp) / f"lib-{key}") if code == "twins" else LIB
            count = [0]

            def trial(heap, key=key, rt=rt, lib=lib, count=count):
                t = run_trial(main, ppath, heap, args.chunks, args.timeout, lib, rt)
                count[0] += 1
                tag = _TAG[key] if len(runs) > 1 else ""
                print(tag + _trial_line(count[0], t), file=progress, flush=True)
                return t

            found[key], trials[key] = bisect(trial, args.lo, his[key], args.resolution, max(0, args.confirm))
    res: dict = {
        "board": prof["name"],
        "chunks": args.chunks,
        "resolution": args.resolution,
        "runtimes": list(runtimes),
        "runs": [{"key": key, "runtime": rt, "code": code} for key, rt, code in runs],
    }
    if "unix" in found:
        res["unix_code"] = next(code for key, _, code in runs if key == "unix")
        res.update(summary(prof, found["unix"], trials["unix"], args.chunks, args.resolution, found["unix"] == args.lo))
        failed = [t for t in trials["unix"] if not t.ok]
        res["below_reason"] = max(failed, key=lambda t: t.heap).reason if failed else None
    if "wasm32" in found:
        res.update(summary32(prof, found["wasm32"], trials["wasm32"], found["wasm32"] == args.lo))
    if "viper" in found:
        res.update(summary_viper(prof, found["viper"], trials["viper"], res))
    res.update(compare(res))
    res["sensor_substituted"] = substituted
    res["mpy"] = args.mpy
    res["confirm"] = max(0, args.confirm)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    code = "lib/ as .mpy" if args.mpy else "lib/ compiled from source on the heap"
    print(f"{prof['name']}: {args.chunks} chunks run without MemoryError or critical level ({code})")
    if "wasm32" in found:
        f32 = found["wasm32"]
        bound = (
            f"<= {f32} B (it runs at --lo already; lower --lo to search further)"
            if res["at_lo_32"]
            else f"{f32} B (to {args.resolution} B, {len(trials['wasm32'])} trials; just below: {res['below_reason_32']})"
        )
        print(f"  measured on the 32-bit runtime: {bound}")
        print(
            f"    the board's heap, no factor: {res['board_heap_32']} B; margin {res['margin_32']} B "
            f"({res['margin_32_pct']}% of the heap)" + ("  ** DOES NOT FIT **" if res["margin_32"] < 0 else "")
        )
    if "unix" in found:
        f64 = found["unix"]
        bound = (
            f"<= {f64} B (it runs at --lo already; lower --lo to search further)"
            if res["at_lo"]
            else f"{f64} B (to {args.resolution} B, {len(trials['unix'])} trials; just below: {res['below_reason']})"
        )
        what = "the plain twins, as on the 32-bit runtime" if res["unix_code"] == "twins" else "viper"
        print(f"  modelled on the unix port (64-bit, {what}): a unix heap of {bound}")
        if res["factor"] == 1.0:
            print(f"    board heap {prof['heap']} B is {prof['word_bits']}-bit like the unix port: no mapping")
        else:
            print(
                f"    mapping: {prof['word_bits']}-bit board heap x {res['factor']} = unix-port heap "
                f"(lowwater.config.UNIX_HEAP_FACTOR); {prof['heap']} B on the board = {res['board_heap_unix']} B here"
            )
            print(f"    needed on the board: {res['heap_min_board']} B of {prof['heap']} B")
        print(
            f"    margin: {res['margin_unix']} B unix = {res['margin_board']} B on the board "
            f"({res['margin_pct']}% of the board's heap)" + ("  ** DOES NOT FIT **" if res["margin_board"] < 0 else "")
        )
    if "viper" in found:
        fv = found["viper"]
        print(
            f"  with viper on the unix port (as a board with viper runs it): a unix heap of {fv} B "
            f"(just below: {res['below_reason_viper']}) = {res['heap_min_board_viper']} B on the board; "
            f"margin {res['margin_board_viper']} B ({res['margin_pct_viper']}%)"
            + ("  ** DOES NOT FIT **" if res["margin_board_viper"] < 0 else "")
        )
        if "viper_saves_unix" in res:
            print(
                f"    viper against the twins: {res['viper_saves_unix']:+d} B unix = "
                f"{res['viper_saves_board']:+d} B on the board less heap needed"
            )
    if "ratio_64_32" in res:
        print(
            f"  model vs measurement (the same code, the twins): {res['heap_min_board']} B modelled, "
            f"{res['heap_min_32']} B measured "
            f"({res['model_vs_32_pct']:+.1f}%; tolerance {MODEL_TOLERANCE_PCT:.0f}%"
            f"{'' if res['model_agrees'] else ', EXCEEDED'}); the firmware's 64/32-bit ratio "
            f"{res['ratio_64_32']:.2f} against the factor {device_module('config').UNIX_HEAP_FACTOR}"
        )
        from lowwater_tools.boardio import fittests

        sp = fittests.last_spread()
        print(
            f"  per-test 64/32-bit ratios (last `lowwater fit --tests`): {sp['min']:.2f} .. {sp['max']:.2f}, "
            f"median {sp['median']:.2f} over {sp['tests']} tests"
            if sp
            else "  per-test 64/32-bit ratios: run `lowwater fit --tests` (minutes)"
        )
    return 0
