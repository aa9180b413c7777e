"""`lowwater report LOG [--json]`: what a run did to the heap, and whether it leaks."""

from __future__ import annotations

import json
import sys

from lowwater_tools import args as targs, boards
from lowwater_tools.errors import UserError
from lowwater_tools.telemetry.lw1 import Record, Summary, percentile, read_log

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


def slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if not sxx:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def leak(
    records: list[Record], threshold: float = LEAK_THRESHOLD, warmup: float = WARMUP, check_every: int | None = None
) -> dict:
    """Leak verdict over the last boot segment: {verdict: leak|ok|unknown, slope
    (bytes per 1000 chunks), samples, basis: alloc, x: chunks|checks, threshold}.

    x is the chunk count of the `stat` (or `end`) record that follows each
    `mem` record (the firmware writes them together); without them, the check
    number n times check_every (profile), else bytes per check."""
    if not 0 <= warmup < 1:
        raise UserError("--warmup must be in [0, 1)")
    last_boot = max((i for i, r in enumerate(records) if r.kind == "boot"), default=-1)
    pts: list[list] = []  # [alloc, chunks or None, n]
    for r in records[last_boot + 1 :]:
        f = r.fields
        if r.kind == "mem" and _int(f.get("alloc")):
            pts.append([f["alloc"], None, f.get("n")])
        elif r.kind in ("stat", "end") and _int(f.get("chunks")) and pts and pts[-1][1] is None:
            pts[-1][1] = f["chunks"]
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
    elif all(_int(p[2]) for p in pts) and check_every:
        xs, unit, out["x"] = [p[2] * check_every for p in pts], 1000, "chunks"
    elif all(_int(p[2]) for p in pts):
        xs, unit, out["x"] = [p[2] for p in pts], 1, "checks"
    else:
        return out
    out["samples"] = len(pts)
    if len(pts) < MIN_SAMPLES or len(set(xs)) < 2:
        return out
    s = slope(xs, [p[0] for p in pts]) * unit
    out["slope"] = round(s, 1)
    if out["x"] == "chunks":
        out["verdict"] = "leak" if s > threshold else "ok"
    return out


def build(
    records: list[Record], profile: dict | None = None, threshold: float = LEAK_THRESHOLD, warmup: float = WARMUP
) -> dict:
    """The report as a dict (what --json prints)."""
    s = Summary.of(records, profile)
    gcs = [r.fields["gc_us"] for r in records if r.kind == "mem" and _int(r.fields.get("gc_us"))]
    gc = None
    if gcs:
        gc = {
            "n": len(gcs),
            "p50": percentile(gcs, 50),
            "p90": percentile(gcs, 90),
            "p99": percentile(gcs, 99),
            "max": max(gcs + ([s["gc_us"]["max"]] if s.get("gc_us") else [])),
        }
    chunks, dropped = s.get("chunks"), s.get("dropped")
    margin = None
    if _int(s.get("low_water")) and _int(s.get("min")):
        margin = s["low_water"] - s["min"]
    return {
        "board": s.get("board"),
        "ver": s.get("ver"),
        "boots": s.get("boots"),
        "ended": s.get("ended"),
        "duration_s": None if s.get("duration_ms") is None else s["duration_ms"] / 1000,
        "records": s.get("records"),
        "chunks": chunks,
        "processed": s.get("processed"),
        "dropped": dropped,
        "errors": s.get("errors"),
        "drop_rate": (dropped / chunks) if _int(chunks) and chunks and _int(dropped) else None,
        "memory_errors": s.get("memory_errors"),
        "budget": {"heap": s.get("heap"), "warn": s.get("warn"), "min": s.get("min")},
        "low_water": s.get("low_water"),
        "low_water_level": s.get("low_water_level"),
        "margin_over_min": margin,
        "checks": s.get("checks"),
        "level_changes": len(s.get("level_changes") or []),
        "gc_us": gc,
        "leak": leak(records, threshold, warmup, (profile or {}).get("check_every")),
    }


def text(rep: dict) -> str:
    def v(x, unit=""):
        return "?" if x is None else f"{x}{unit}"

    lines = [
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
            f"after warm-up; threshold {lk['threshold']:g} B per 1000 chunks)"
        )
    return "\n".join(lines)


def run(args) -> int:
    records, _ = read_log(args.log)
    if not records:
        raise UserError(f"{args.log}: no telemetry records (LW1 lines) found")
    profile = boards.load(args.board) if args.board else None
    rep = build(records, profile, args.leak_threshold, args.warmup)
    if args.json:
        json.dump(rep, sys.stdout, indent=2)
        print()
    else:
        print(text(rep))
    return 0


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
