"""Plot a run's heap over time from its telemetry, as `mprof plot` does for memory_profiler.

    plot(records, "mem.png", profile=None)     # records: any iterable, or a Series
    s = Series(); s.add(rec) ...; plot(s, "mem.png")

Streams: a Series keeps at most MAX_BUCKETS time buckets (their width doubles as
the run grows), each with the lowest and highest free heap and gc pause and when
they happened, so a spike of one record survives any length of run, and memory
stays bounded (an 85 MB capture plots like a 50 kB one).

Left, top: free heap per budget check and the low-water mark, the y-axis zoomed to
the data (free heap and low-water apart); the warn/min budget lines drawn when
they are near the data, else named at the bottom edge with their distance.
Right: the whole heap as a gauge (0..heap, the budget bands, the zoomed window).
Bottom: gc.collect() pause per check on a symlog axis (a 90 us median and 12 ms
outliers both visible), outliers (over 10x the median) marked and counted. Level
changes are vertical lines; sheds, dropped chunks and errors are markers with their
counts. matplotlib with the Agg backend; the format follows the suffix.
"""

from __future__ import annotations

from pathlib import Path

from lowwater_tools import args as targs, boards
from lowwater_tools.errors import UserError
from lowwater_tools.telemetry.lw1 import Record, Summary, is_num, iter_log, ticks_diff, unwrap_ticks

FORMATS = (".png", ".svg", ".pdf")
LEVEL_COLOURS = {"ok": "tab:green", "warn": "tab:orange", "critical": "tab:red"}
MAX_BUCKETS = 2048  # time buckets kept; the figure is ~1000 px wide
FIRST_WIDTH = 0.001  # s: the first bucket width; doubles until the run fits
OUTLIER = 10  # a gc pause over OUTLIER x the median is marked as an outlier

# bucket fields
_FLO_T, _FLO, _FHI_T, _FHI, _LW, _GLO, _GHI, _GHI_T, _GN, _DROP, _SHED, _ERR, _LVL, _LVLN, _N = range(15)


def series(records: list[Record]) -> dict:
    """Every plotted event of a (short) run, in seconds since the first record (for
    tests and tools; plot() uses the bounded Series): mem [(s, free, lw, alloc,
    gc_us)], levels [(s, to)], sheds [(s, bytes)], drops [(s, new drops)], errors [(s, exc)]."""
    records = list(records)
    times = unwrap_ticks(records)
    out: dict = {"mem": [], "levels": [], "sheds": [], "drops": [], "errors": []}
    last_dropped = 0
    for rec, ms in zip(records, times):
        if ms is None:
            continue
        s = ms / 1000
        f = rec.fields
        if rec.kind == "boot":
            last_dropped = 0
        elif rec.kind == "mem" and is_num(f.get("free")):
            out["mem"].append((s, f["free"], f.get("lw"), f.get("alloc"), f.get("gc_us")))
        elif rec.kind == "lvl":
            out["levels"].append((s, f.get("to")))
        elif rec.kind == "shed":
            out["sheds"].append((s, f.get("bytes")))
        elif rec.kind in ("stat", "end") and is_num(f.get("dropped")):
            if f["dropped"] > last_dropped:
                out["drops"].append((s, f["dropped"] - last_dropped))
            last_dropped = f["dropped"]
        elif rec.kind == "err":
            out["errors"].append((s, f.get("exc")))
    return out


class Series:
    """What a plot needs from a run, in bounded memory: feed records with add()."""

    def __init__(self, profile: dict | None = None, word_bits: int | None = None):
        self.summary = Summary(profile, word_bits=word_bits)
        self.width = FIRST_WIDTH
        self.buckets: dict[int, list] = {}
        self.mems = 0
        self.low = None  # running low-water (lw, else free)
        self._last_dropped = 0
        # the timeline: unwrap_ticks() one record at a time
        self._now: int | None = None
        self._last_t: int | None = None
        self._last_host: float | None = None

    def _ms(self, rec: Record):
        t = rec.fields.get("t")
        if not isinstance(t, int) or not is_num(t):
            return None
        if self._now is None:
            self._now = 0
        elif rec.kind == "boot":
            if rec.host_time is not None and self._last_host is not None:
                gap = rec.host_time - self._last_host
                self._now += max(0, round(gap * 1000)) if gap == gap and abs(gap) < 1e9 else 0
        else:
            self._now += max(0, ticks_diff(t, t if self._last_t is None else self._last_t))
        self._last_t = t
        h = rec.host_time
        if h is not None and h == h and abs(h) < 1e12:
            self._last_host = h
        return self._now

    def _bucket(self, s: float) -> list:
        i = int(s // self.width)
        b = self.buckets.get(i)
        if b is None:
            b = self.buckets[i] = [None, None, None, None, None, None, None, None, 0, 0, 0, 0, None, 0, 0]
            if len(self.buckets) > MAX_BUCKETS:
                self._coarsen()
                return self._bucket(s)
        return b

    def _coarsen(self) -> None:
        """Double the bucket width: merge each pair (lowest/highest of both)."""
        self.width *= 2
        merged: dict[int, list] = {}
        for i in sorted(self.buckets):
            b = self.buckets[i]
            m = merged.get(i // 2)
            if m is None:
                merged[i // 2] = b
                continue
            if b[_FLO] is not None and (m[_FLO] is None or b[_FLO] < m[_FLO]):
                m[_FLO_T], m[_FLO] = b[_FLO_T], b[_FLO]
            if b[_FHI] is not None and (m[_FHI] is None or b[_FHI] > m[_FHI]):
                m[_FHI_T], m[_FHI] = b[_FHI_T], b[_FHI]
            if b[_LW] is not None and (m[_LW] is None or b[_LW] < m[_LW]):
                m[_LW] = b[_LW]
            if b[_GLO] is not None and (m[_GLO] is None or b[_GLO] < m[_GLO]):
                m[_GLO] = b[_GLO]
            if b[_GHI] is not None and (m[_GHI] is None or b[_GHI] > m[_GHI]):
                m[_GHI], m[_GHI_T] = b[_GHI], b[_GHI_T]
            for k in (_GN, _DROP, _SHED, _ERR, _LVLN, _N):
                m[k] += b[k]
            if b[_LVL] is not None:
                m[_LVL] = b[_LVL]
        self.buckets = merged

    def add(self, rec: Record) -> None:
        self.summary.add(rec)
        ms = self._ms(rec)
        if ms is None:
            return
        s = ms / 1000
        f = rec.fields
        k = rec.kind
        if k == "boot":
            self._last_dropped = 0
        elif k == "mem" and is_num(f.get("free")):
            free = f["free"]
            lw = f.get("lw") if is_num(f.get("lw")) else free
            self.low = lw if self.low is None else min(self.low, lw)
            self.mems += 1
            b = self._bucket(s)
            b[_N] += 1
            if b[_FLO] is None or free < b[_FLO]:
                b[_FLO_T], b[_FLO] = s, free
            if b[_FHI] is None or free > b[_FHI]:
                b[_FHI_T], b[_FHI] = s, free
            b[_LW] = self.low
            g = f.get("gc_us")
            if is_num(g):
                b[_GN] += 1
                if b[_GLO] is None or g < b[_GLO]:
                    b[_GLO] = g
                if b[_GHI] is None or g > b[_GHI]:
                    b[_GHI], b[_GHI_T] = g, s
        elif k == "lvl":
            b = self._bucket(s)
            b[_LVL] = (s, f.get("to"))
            b[_LVLN] += 1
        elif k == "shed":
            self._bucket(s)[_SHED] += 1
        elif k in ("stat", "end") and is_num(f.get("dropped")):
            if f["dropped"] > self._last_dropped:
                self._bucket(s)[_DROP] += f["dropped"] - self._last_dropped
            self._last_dropped = f["dropped"]
        elif k == "err":
            self._bucket(s)[_ERR] += 1

    def points(self) -> dict:
        """The decimated series: free [(s, bytes)] (each bucket's lowest and highest in
        time order), lw [(s, bytes)], gc [(s, lo, hi, t_hi)], and events [(s, count)]
        for drops, sheds, errors, levels [(s, to, count)]."""
        out: dict = {"free": [], "lw": [], "gc": [], "drops": [], "sheds": [], "errors": [], "levels": []}
        w = self.width
        for i in sorted(self.buckets):
            b = self.buckets[i]
            mid = (i + 0.5) * w
            if b[_FLO] is not None:
                pts = sorted({(b[_FLO_T], b[_FLO]), (b[_FHI_T], b[_FHI])})
                out["free"].extend(pts)
                out["lw"].append((pts[-1][0], b[_LW]))
            if b[_GN]:
                out["gc"].append((b[_GHI_T], b[_GLO], b[_GHI]))
            for key, idx in (("drops", _DROP), ("sheds", _SHED), ("errors", _ERR)):
                if b[idx]:
                    out[key].append((mid, b[idx]))
            if b[_LVLN]:
                out["levels"].append((b[_LVL][0], b[_LVL][1], b[_LVLN]))
        return out


def plot(records, out_path, profile: dict | None = None) -> Path:
    """Draw the run to out_path (.png/.svg/.pdf). `records`: an iterable of records
    (streamed) or a filled Series. UserError when there is nothing to plot."""
    out = Path(out_path)
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"cannot plot to {out}: use a {', '.join(FORMATS)} file name")
    if isinstance(records, Series):
        ser = records
        if profile is not None and ser.summary.profile is None:
            ser.summary.profile = profile
    else:
        ser = Series(profile)
        for rec in records:
            ser.add(rec)
    if not ser.mems:
        raise UserError("no `mem` records: nothing to plot (is this a lowwater telemetry log?)")
    _draw(ser, out)
    return out


def _draw(ser: Series, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    summary = ser.summary.result()
    units = summary["units"]
    pts = ser.points()
    fig = plt.figure(figsize=(11, 7), constrained_layout=True)
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 1.4], width_ratios=[14, 1])
    ax = fig.add_subplot(grid[0, 0])
    gauge = fig.add_subplot(grid[0, 1])
    gx = fig.add_subplot(grid[1, 0], sharex=ax)
    try:
        t = [p[0] for p in pts["free"]]
        free = [p[1] for p in pts["free"]]
        ax.plot(t, free, color="tab:blue", lw=1.1, label="free heap (lowest and highest per time step)")
        low = ser.low
        ax.step(
            [p[0] for p in pts["lw"]],
            [p[1] for p in pts["lw"]],
            where="post",
            color="tab:purple",
            lw=1.3,
            ls="--",
            label=f"low-water ({low:,} B)",
        )
        lo, hi = min(free + [low]), max(free)
        span = max(hi - lo, 64, hi // 200)
        y0, y1 = lo - span * 0.25, hi + span * 0.15
        below = []
        for key, colour in (("warn", "tab:orange"), ("min", "tab:red")):
            v = summary.get(key)
            if not isinstance(v, int) or not is_num(v):
                continue
            if v >= lo - span * 1.5:  # near the data: in the zoomed view
                ax.axhline(v, color=colour, lw=1.2, ls=":", label=f"{key}_free {v} B")
                y0 = min(y0, v - span * 0.1)
                y1 = max(y1, v + span * 0.05)
            else:
                below.append((key, v, colour))
        ax.set_ylim(y0, y1)
        for i, (key, v, colour) in enumerate(sorted(below, key=lambda b: -b[1])):
            ax.annotate(
                f"\u2193 {key}_free {v} B: {low - v:,} B below the low-water (off this zoom; see the gauge)",
                xy=(0.01, 0.02 + 0.06 * i),
                xycoords="axes fraction",
                color=colour,
                fontsize="small",
            )
            ax.plot([], [], color=colour, lw=1.2, ls=":", label=f"{key}_free {v} B (below)")
        for s, to, n in pts["levels"]:
            ax.axvline(s, color=LEVEL_COLOURS.get(to, "grey"), lw=0.8, alpha=0.7)
        if pts["levels"]:
            n = sum(p[2] for p in pts["levels"])
            ax.plot([], [], color="grey", lw=0.8, label=f"level change x{n} (colour: new level)")
        y_mark = y1 - (y1 - y0) * 0.04
        _counted(ax, pts["sheds"], y_mark, "v", "tab:brown", "shed")
        _counted(ax, pts["drops"], y_mark, "x", "black", "chunks dropped")
        _counted(ax, pts["errors"], y_mark, "*", "tab:red", "error")
        ax.set_ylabel(f"bytes free ({'unix-port heap bytes' if units['scale'] == 'unix-port' else 'board bytes'})")
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small", framealpha=0.85)
        title = f"lowwater: {summary.get('board') or '?'}"
        if summary.get("ver"):
            title += f" {summary['ver']}"
        if summary.get("duration_ms") is not None:
            title += f", {summary['duration_ms'] / 1000:.1f} s, {ser.mems:,} budget checks"
        ax.set_title(title + f"\n{units['text']}", fontsize="medium")
        plt.setp(ax.get_xticklabels(), visible=False)
        _gauge(gauge, summary, lo, hi, y0, y1)
        _gc(gx, pts["gc"], ser.summary.gc)
        gx.set_xlabel("time (s)")
        try:
            fig.savefig(out)
        except OSError as e:
            raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        plt.close(fig)


def _gauge(g, summary, lo, hi, y0, y1):
    """The whole heap, 0..heap: budget bands, the data, the zoomed window."""
    heap = summary.get("heap")
    top = heap if is_num(heap) and heap > 0 else max(hi, 1) * 1.05
    mn, wn = summary.get("min"), summary.get("warn")
    if is_num(mn):
        g.axhspan(0, mn, color="tab:red", alpha=0.25, lw=0)
    if is_num(wn):
        g.axhspan(mn if is_num(mn) else 0, wn, color="tab:orange", alpha=0.25, lw=0)
    g.axhspan(max(0, y0), min(top, y1), facecolor="none", edgecolor="black", lw=0.8, ls="--")
    g.axhspan(lo, hi, color="tab:blue", alpha=0.6, lw=0)
    g.set_ylim(0, top)
    g.set_xticks([])
    g.yaxis.tick_right()
    g.ticklabel_format(axis="y", style="plain", useOffset=False)
    g.tick_params(axis="y", labelsize="x-small")
    g.set_title("heap", fontsize="small")


def _gc(gx, gc_pts, hist):
    """gc pauses per time step (lowest..highest) on a symlog axis; outliers marked."""
    if gc_pts:
        gx.vlines([p[0] for p in gc_pts], [p[1] for p in gc_pts], [p[2] for p in gc_pts], color="tab:gray", lw=1)
        gx.plot([p[0] for p in gc_pts], [p[2] for p in gc_pts], ".", color="tab:gray", ms=3, label="gc pause")
        med = hist.median()
        if med is not None:
            gx.axhline(med, color="tab:blue", lw=0.8, ls="--", label=f"median {med:g} us")
            limit = max(med, 1) * OUTLIER
            outl = [p for p in gc_pts if p[2] > limit]
            if outl:
                gx.plot(
                    [p[0] for p in outl],
                    [p[2] for p in outl],
                    "^",
                    color="tab:red",
                    ms=5,
                    ls="none",
                    label=f"over {OUTLIER}x median: {len(outl)} time step(s), max {hist.max:,} us",
                )
        gx.set_yscale("symlog", linthresh=10)
        gx.set_ylim(-3, max(p[2] for p in gc_pts) * 2.5 + 10)  # below 0: pauses of 0 us stay visible
        gx.legend(loc="upper right", fontsize="x-small", framealpha=0.85)
    gx.set_ylabel("gc pause (us, log)")
    gx.grid(True, alpha=0.3, which="both")


def _counted(ax, points, y, marker, colour, label):
    """Markers for events, each with its count when more than one."""
    if not points:
        return
    total = sum(n for _, n in points)
    ax.plot(
        [p[0] for p in points], [y] * len(points), marker, color=colour, ms=7, ls="none", label=f"{label} ({total})"
    )
    if len(points) <= 40:
        for s, n in points:
            if n > 1:
                ax.annotate(
                    f"{n}", (s, y), textcoords="offset points", xytext=(3, -10), fontsize="x-small", color=colour
                )


# The command: `lowwater plot LOG -o mem.png`: free heap, low-water, budget, gc pauses and events over time.
HELP = "plot a telemetry log: free heap, low-water, budget lines, gc pauses, events (streams: any size)"


def add_arguments(p):
    p.add_argument("log", help="telemetry log: a raw capture or a CSV of run/monitor")
    p.add_argument("-o", "--output", type=targs.plot_file, help="image file, .png/.svg/.pdf (default: LOG with .png)")
    p.add_argument("--board", help="board profile for the budget lines when the log has no boot record")


def run(args) -> int:
    profile = boards.load(args.board) if args.board else None
    out = Path(args.output) if args.output else Path(args.log).with_suffix(".png")
    ser = Series(profile)
    for rec in iter_log(args.log):
        ser.add(rec)
    if not ser.summary.records:
        raise UserError(f"{args.log}: no telemetry records (LW1 lines) found")
    plot(ser, out, profile=profile)
    print(out)
    return 0
