"""Plot a run's heap over time from its telemetry, as `mprof plot` does for memory_profiler.

    plot(records, "mem.png", profile=None)

Top: free heap per budget check (`mem` free), the low-water mark, the warn/min
budget lines (from `boot`, else the profile), level changes as vertical lines,
sheds, drops and errors as markers. Bottom: gc.collect() pause per check
(`mem` gc_us). matplotlib with the Agg backend (no display needed); the format
follows the suffix (.png, .svg, .pdf). Used by `lowwater plot` and `monitor --plot`.
"""

from __future__ import annotations

from pathlib import Path

from lowwater_tools.errors import UserError
from lowwater_tools.telemetry.lw1 import Record, Summary, unwrap_ticks
from lowwater_tools import args as targs, boards
from lowwater_tools.telemetry.lw1 import read_log

FORMATS = (".png", ".svg", ".pdf")
LEVEL_COLOURS = {"ok": "tab:green", "warn": "tab:orange", "critical": "tab:red"}


def series(records: list[Record]) -> dict:
    """The plotted data, in seconds since the first record (for tests and tools):
    mem [(s, free, lw, alloc, gc_us)], levels [(s, to)], sheds [(s, bytes)],
    drops [(s, new drops)], errors [(s, exc)]."""
    times = unwrap_ticks(records)
    out = {"mem": [], "levels": [], "sheds": [], "drops": [], "errors": []}
    last_dropped = 0
    for rec, ms in zip(records, times):
        if ms is None:
            continue
        s = ms / 1000
        f = rec.fields
        if rec.kind == "boot":
            last_dropped = 0
        elif rec.kind == "mem" and _int(f.get("free")):
            out["mem"].append((s, f["free"], f.get("lw"), f.get("alloc"), f.get("gc_us")))
        elif rec.kind == "lvl":
            out["levels"].append((s, f.get("to")))
        elif rec.kind == "shed":
            out["sheds"].append((s, f.get("bytes")))
        elif rec.kind in ("stat", "end") and _int(f.get("dropped")):
            if f["dropped"] > last_dropped:
                out["drops"].append((s, f["dropped"] - last_dropped))
            last_dropped = f["dropped"]
        elif rec.kind == "err":
            out["errors"].append((s, f.get("exc")))
    return out


def plot(records: list[Record], out_path, profile: dict | None = None) -> Path:
    """Draw the run to out_path (.png/.svg/.pdf). UserError when there is nothing to plot."""
    out = Path(out_path)
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"cannot plot to {out}: use a {', '.join(FORMATS)} file name")
    records = list(records)
    data = series(records)
    if not data["mem"]:
        raise UserError("no `mem` records: nothing to plot (is this a lowwater telemetry log?)")
    summary = Summary.of(records, profile)

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (ax, gx) = plt.subplots(
        2, 1, sharex=True, figsize=(10, 6.5), gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True
    )
    try:
        t = [m[0] for m in data["mem"]]
        free = [m[1] for m in data["mem"]]
        ax.plot(t, free, color="tab:blue", lw=1.2, label="free heap")
        lw, low = [], None
        for m in data["mem"]:
            v = m[2] if _int(m[2]) else m[1]
            low = v if low is None else min(low, v)
            lw.append(low)
        ax.step(t, lw, where="post", color="tab:purple", lw=1, ls="--", label=f"low-water ({low} B)")
        for key, colour in (("warn", "tab:orange"), ("min", "tab:red")):
            v = summary.get(key)
            if _int(v):
                ax.axhline(v, color=colour, lw=1, ls=":", label=f"{key}_free {v} B")
        heap = summary.get("heap")
        if _int(heap):
            ax.set_ylim(0, heap * 1.02)
        for s, to in data["levels"]:
            ax.axvline(s, color=LEVEL_COLOURS.get(to, "grey"), lw=0.8, alpha=0.7)
        if data["levels"]:
            ax.plot([], [], color="grey", lw=0.8, label="level change (colour: new level)")
        y_top = max(free)
        _markers(ax, data["sheds"], y_top, "v", "tab:brown", "shed")
        _markers(ax, data["drops"], y_top, "x", "black", "chunks dropped")
        _markers(ax, data["errors"], y_top, "*", "tab:red", "error")
        ax.set_ylabel("bytes free")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower left", fontsize="small")
        title = f"lowwater: {summary.get('board') or '?'}"
        if summary.get("ver"):
            title += f" {summary['ver']}"
        if summary.get("duration_ms") is not None:
            title += f", {summary['duration_ms'] / 1000:.1f} s"
        ax.set_title(title)

        gc_t = [m[0] for m in data["mem"] if _int(m[4])]
        gc_v = [m[4] for m in data["mem"] if _int(m[4])]
        if gc_v:
            gx.vlines(gc_t, 0, gc_v, color="tab:gray", lw=1)
            gx.plot(gc_t, gc_v, ".", color="tab:gray", ms=3)
        gx.set_ylabel("gc pause (us)")
        gx.set_xlabel("time (s)")
        gx.grid(True, alpha=0.3)
        try:
            fig.savefig(out)
        except OSError as e:
            raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return out


def _markers(ax, points, y, marker, colour, label):
    if points:
        ax.plot([p[0] for p in points], [y] * len(points), marker, color=colour, ms=7, ls="none", label=label)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# The command: `lowwater plot LOG -o mem.png`: free heap, low-water, budget, gc pauses and events over time.
HELP = "plot a telemetry log: free heap, low-water, budget lines, gc pauses, events"


def add_arguments(p):
    p.add_argument("log", help="telemetry log: a raw capture or a CSV of run/monitor")
    p.add_argument("-o", "--output", type=targs.plot_file, help="image file, .png/.svg/.pdf (default: LOG with .png)")
    p.add_argument("--board", help="board profile for the budget lines when the log has no boot record")


def run(args) -> int:

    records, _ = read_log(args.log)
    if not records:
        raise UserError(f"{args.log}: no telemetry records (LW1 lines) found")
    profile = boards.load(args.board) if args.board else None
    out = Path(args.output) if args.output else Path(args.log).with_suffix(".png")
    plot(records, out, profile=profile)
    print(out)
    return 0
