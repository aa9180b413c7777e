"""`lowwater report LOG [--json]`: what a run did to the heap, and whether it leaks."""

from __future__ import annotations

import json
import sys

from lowwater_tools import args as targs, boards
from lowwater_tools.errors import UserError
from lowwater_tools.telemetry.lw1 import Record, Summary, is_num, iter_log

HELP = "summarise a telemetry log: chunks, drops, low-water vs budget, gc pauses, leak verdict"

# Leak verdict: least-squares slope of `mem` alloc (live bytes: the budget
# check collects first) against chunks produced, after the warm-up fraction of
# the checks. Over this many bytes per 1000 chunks is a leak (docs/profiling.md).
LEAK_THRESHOLD = 64
WARMUP = 0.25
MIN_SAMPLES = 4


def add_arguments(p):
    p.add_argument("log", help="telemetry log: a raw capture or a CSV of run/monitor")
    p.add_argument("--json", action="store_true", help="print one JSON object (for machines)")
    p.add_argument("--board", help="board profile for the budget when the log has no boot record")
    p.add_argument(
        "--leak-threshold",
        type=targs.number(0, 1e12, "bytes per 1000 chunks"),
        default=LEAK_THRESHOLD,
        metavar="BYTES",
        help=f"leak when live heap grows faster than this per 1000 chunks (default {LEAK_THRESHOLD})",
    )
    p.add_argument(
        "--warmup",
        type=targs.number(0, 0.99, "a fraction"),
        default=WARMUP,
        metavar="FRACTION",
        help=f"fraction of the budget checks ignored by the leak fit (default {WARMUP})",
    )
    p.add_argument("--fail-on", type=targs.fail_on(), default=(), metavar="LIST", help=targs.fail_on_help())


def slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if not sxx:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


MAX_POINTS = 1 << 16  # leak-fit points kept per boot segment; past it, every other one


class LeakFit:
    """The leak fit's points of the last boot segment, in bounded memory: [alloc,
    chunks or None, n] per `mem` record (chunks from the `stat`/`end` after it).
    Past MAX_POINTS, every other point is dropped and then only every 2nd (4th, ...)
    check is kept: an even thinning, so the warm-up fraction and the slope hold."""

    def __init__(self):
        self._start()

    def _start(self) -> None:
        self.pts: list[list] = []
        self.stride = 1
        self._seen = 0
        self._open = False  # the last mem was kept: its stat belongs to it

    def add(self, r: Record) -> None:
        f = r.fields
        if r.kind == "boot":
            self._start()
        elif r.kind == "mem" and is_num(f.get("alloc")):
            self._seen += 1
            self._open = self._seen % self.stride == 0
            if self._open:
                self.pts.append([f["alloc"], None, f.get("n") if is_num(f.get("n")) else None])
                if len(self.pts) > MAX_POINTS:
                    self.pts = self.pts[1::2]
                    self.stride *= 2
                    self._open = False  # the point just kept may be gone
        elif r.kind in ("stat", "end") and is_num(f.get("chunks")) and self._open and self.pts[-1][1] is None:
            self.pts[-1][1] = f["chunks"]
            self._open = False


def leak(records, threshold: float = LEAK_THRESHOLD, warmup: float = WARMUP, check_every: int | None = None) -> dict:
    """Leak verdict over the last boot segment: {verdict: leak|ok|unknown, slope
    (bytes per 1000 chunks), samples, basis: alloc, x: chunks|checks, threshold}.

    x is the chunk count of the `stat` (or `end`) record that follows each
    `mem` record (the firmware writes them together); without them, the check
    number n times check_every (profile), else bytes per check. `records` is an
    iterable (streamed) or a filled LeakFit."""
    if not 0 <= warmup < 1:
        raise UserError("--warmup must be in [0, 1)")
    if isinstance(records, LeakFit):
        fit = records
    else:
        fit = LeakFit()
        for r in records:
            fit.add(r)
    pts = fit.pts
    out = {
        "verdict": "unknown",
        "slope": None,
        "samples": 0,
        "basis": "alloc",
        "x": None,
        "threshold": threshold,
        "warmup": warmup,
    }
    pts = pts[int(len(pts) * warmup) :]
    with_chunks = [p for p in pts if p[1] is not None]
    if len(with_chunks) >= max(MIN_SAMPLES, len(pts) - 1):  # the last check may lack its stat
        pts = with_chunks
    if pts and all(p[1] is not None for p in pts):
        xs, unit, out["x"] = [p[1] for p in pts], 1000, "chunks"
    elif all(is_num(p[2]) for p in pts) and check_every:
        xs, unit, out["x"] = [p[2] * check_every for p in pts], 1000, "chunks"
    elif all(is_num(p[2]) for p in pts):
        xs, unit, out["x"] = [p[2] for p in pts], 1, "checks"
    else:
        return out
    out["samples"] = len(pts)
    out["every"] = fit.stride  # 1: every check; N: every Nth (a long run, thinned)
    if len(pts) < MIN_SAMPLES or len(set(xs)) < 2:
        return out
    s = slope(xs, [p[0] for p in pts]) * unit
    out["slope"] = round(s, 1)
    if out["x"] == "chunks":
        out["verdict"] = "leak" if s > threshold else "ok"
    return out


def build(records, profile: dict | None = None, threshold: float = LEAK_THRESHOLD, warmup: float = WARMUP) -> dict:
    """The report as a dict (what --json prints). `records`: any iterable, read once."""
    summ = Summary(profile)
    fit = LeakFit()
    for r in records:
        summ.add(r)
        fit.add(r)
    s = summ.result()
    h = summ.gc
    gc = None
    if h.n:
        gc = {
            "n": h.n,
            "p50": h.percentile(50),
            "p90": h.percentile(90),
            "p99": h.percentile(99),
            "max": max(v for v in (h.max, summ.gc_max_end) if v is not None),
        }
    chunks, dropped = s.get("chunks"), s.get("dropped")
    margin = None
    if is_num(s.get("low_water")) and is_num(s.get("min")):
        margin = s["low_water"] - s["min"]
    return {
        "board": s.get("board"),
        "ver": s.get("ver"),
        "units": s.get("units"),
        "boots": s.get("boots"),
        "ended": s.get("ended"),
        "duration_s": None if s.get("duration_ms") is None else s["duration_ms"] / 1000,
        "records": s.get("records"),
        "chunks": chunks,
        "processed": s.get("processed"),
        "dropped": dropped,
        "errors": s.get("errors"),
        "err_records": s.get("err_records"),
        "drop_rate": (dropped / chunks) if is_num(chunks) and chunks and is_num(dropped) else None,
        "memory_errors": s.get("memory_errors"),
        "budget": {"heap": s.get("heap"), "warn": s.get("warn"), "min": s.get("min")},
        "low_water": s.get("low_water"),
        "low_water_level": s.get("low_water_level"),
        "last_level": s.get("last_level"),
        "margin_over_min": margin,
        "checks": s.get("checks"),
        "level_changes": s.get("level_change_count"),
        "gc_us": gc,
        "leak": leak(fit, threshold, warmup, (profile or {}).get("check_every")),
    }


def text(rep: dict) -> str:
    def v(x, unit=""):
        return "?" if x is None else f"{x}{unit}"

    lines = []
    if rep.get("units"):
        lines.append(f"units: {rep['units']['text']}")
    lines += [
        f"run: board {v(rep['board'])}, ver {v(rep['ver'])}, {v(rep['duration_s'], ' s')}, "
        f"{v(rep['boots'])} boot(s), {'ended' if rep['ended'] else 'no end record'}"
    ]
    rate = "" if rep["drop_rate"] is None else f" ({rep['drop_rate'] * 100:.2f}%)"
    lines.append(
        f"chunks: {v(rep['chunks'])} produced, {v(rep['processed'])} processed, "
        f"{v(rep['dropped'])} dropped{rate}, {v(rep['errors'])} errors ({v(rep['memory_errors'])} MemoryError)"
    )
    b = rep["budget"]
    lines.append(
        f"low-water: {v(rep['low_water'], ' B')} free at worst, {v(rep['low_water_level'])} "
        f"(heap {v(b['heap'])}, warn {v(b['warn'])}, min {v(b['min'])}; margin over min "
        f"{v(rep['margin_over_min'], ' B')})"
    )
    c = rep["checks"] or {}
    lines.append(
        f"checks: {c.get('ok', 0)} ok, {c.get('warn', 0)} warn, {c.get('critical', 0)} critical; "
        f"{rep['level_changes']} level change(s)"
    )
    g = rep["gc_us"]
    lines.append(
        "gc pauses: none recorded"
        if not g
        else f"gc pauses: n={g['n']} p50 {g['p50']} us, p90 {g['p90']} us, p99 {g['p99']} us, max {g['max']} us"
    )
    lk = rep["leak"]
    per = "per 1000 chunks" if lk["x"] == "chunks" else "per check"
    if lk["slope"] is None:
        lines.append(f"leak: unknown ({lk['samples']} budget checks after warm-up; need {MIN_SAMPLES})")
    else:
        lines.append(
            f"leak: {lk['verdict']} (live heap {lk['slope']:+.1f} B {per} over {lk['samples']} checks "
            + (f"(every {lk['every']}th) " if lk.get("every", 1) > 1 else "")
            + f"after warm-up; threshold {lk['threshold']:g} B per 1000 chunks)"
        )
    return "\n".join(lines)


def run(args) -> int:
    profile = boards.load(args.board) if args.board else None
    rep = build(iter_log(args.log), profile, args.leak_threshold, args.warmup)
    if not rep["records"]:
        raise UserError(f"{args.log}: no telemetry records (LW1 lines) found")
    failed = targs.failed_conditions(rep, args.fail_on) if args.fail_on else []
    rep["failed"] = failed
    if args.json:
        json.dump(rep, sys.stdout, indent=2)
        print()
    else:
        print(text(rep))
    if failed:
        print(f"lowwater: --fail-on: {'; '.join(failed)}", file=sys.stderr)
        return targs.FAIL_STATUS
    return 0
