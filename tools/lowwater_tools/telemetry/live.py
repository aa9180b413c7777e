"""The live telemetry view and the end-of-run summary, shared by `run` and `monitor`.

    with LiveView(profile=prof) as view:     # rich panel on a terminal, plain lines otherwise
        for rec in records:
            view.add(rec)
    render_summary(view.summary.result())

On a terminal: a panel (free heap against the budget, low-water, gc pauses,
chunks, drops, level) redrawn a few times a second, with level changes, load
sheds, errors and boots printed above it in colour. Otherwise: each record's
line as received (parseable by telemetry.Parser again), nothing else on stdout.
"""

from __future__ import annotations

import collections
import signal
import sys
import time

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from lowwater_tools.telemetry.lw1 import Record, Summary, is_num

LEVEL_STYLE = {"ok": "green", "warn": "bold yellow", "critical": "bold red"}
_EVENT_STYLE = {"lvl": None, "shed": "magenta", "err": "red", "boot": "cyan", "end": "bold"}
BAR_WIDTH = 40
# The live view's history: one cell per HISTORY_STEP seconds (the lowest free
# heap and low-water seen in it), HISTORY_CELLS cells: the last 5 minutes.
HISTORY_STEP = 5.0
HISTORY_CELLS = 60
SPARKS = "▁▂▃▄▅▆▇█"


class StopSignals:
    """While a command streams: count SIGINT/SIGTERM/SIGHUP instead of raising, so
    the command stops at a safe point (forwards Ctrl-C, writes the summary).
    Outside the main thread signals stay as they were."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.count = 0
        self._old = {}

    def __enter__(self):
        for s in self.SIGNALS:
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.count += 1

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}


def is_terminal(console: Console | None = None) -> bool:
    return (console or Console()).is_terminal


def heap_bar(free: int | None, heap: int | None, warn: int | None, minimum: int | None, width: int = BAR_WIDTH) -> Text:
    """`[#####|####|......]` free heap out of heap; `|` marks min_free and warn_free."""
    if not free or not heap or heap <= 0:
        return Text("-" * width, style="dim")

    def col(v):
        return max(0, min(width - 1, int(v * width / heap)))

    filled = max(0, min(width, round(free * width / heap)))
    level = (
        "critical" if minimum is not None and free < minimum else ("warn" if warn is not None and free < warn else "ok")
    )
    chars = ["#" if i < filled else "." for i in range(width)]
    marks = {col(v) for v in (warn, minimum) if isinstance(v, int)}
    for m in marks:
        chars[m] = "|"
    t = Text("[")
    for i, c in enumerate(chars):
        t.append(c, style="bold white" if c == "|" else LEVEL_STYLE[level] if c == "#" else "dim")
    t.append("]")
    return t


def sparkline(values, lo: int, hi: int, warn=None, minimum=None) -> Text:
    """One character per value, ▁ for lo up to █ for hi (the same lo..hi for every
    row of a view, so rows compare); None is a blank; coloured by budget level."""
    t = Text()
    span = max(1, hi - lo)
    for v in values:
        if v is None:
            t.append(" ")
            continue
        i = max(0, min(len(SPARKS) - 1, (v - lo) * (len(SPARKS) - 1) // span))
        level = "critical" if _lt(v, minimum) else "warn" if _lt(v, warn) else "ok"
        t.append(SPARKS[i], style=LEVEL_STYLE[level])
    return t


def _lt(v, limit) -> bool:
    return isinstance(limit, int) and v < limit


class History:
    """Free heap and low-water over the last minutes, in bounded memory: per cell of
    `step` seconds (host clock) the lowest of each seen in it."""

    def __init__(self, step: float = HISTORY_STEP, cells: int = HISTORY_CELLS, clock=time.monotonic):
        self.step, self.clock = step, clock
        self.cells: collections.deque = collections.deque(maxlen=cells)  # [index, free, lw]
        self._t0 = clock()

    def add(self, free, lw) -> None:
        i = int((self.clock() - self._t0) // self.step)
        if not self.cells or self.cells[-1][0] != i:
            self.cells.append([i, None, None])
        cell = self.cells[-1]
        if is_num(free) and (cell[1] is None or free < cell[1]):
            cell[1] = free
        if is_num(lw) and (cell[2] is None or lw < cell[2]):
            cell[2] = lw

    def rows(self, warn=None, minimum=None):
        """(label, Text) for free and low-water, or [] before the first value. Empty
        cells (no record in those seconds) are blanks; both rows share one scale."""
        if not self.cells:
            return []
        last = self.cells[-1][0]
        first = max(self.cells[0][0], last - self.cells.maxlen + 1)
        by_index = {c[0]: c for c in self.cells}
        free = [by_index.get(i, (0, None, None))[1] for i in range(first, last + 1)]
        lw = [by_index.get(i, (0, None, None))[2] for i in range(first, last + 1)]
        vals = [v for v in free + lw if v is not None]
        if not vals:
            return []
        lo, hi = min(vals), max(vals)
        minutes = (last - first + 1) * self.step / 60
        span = f"  {_fmt_bytes(lo)} .. {_fmt_bytes(hi)}, last {minutes:.1f} min"
        return [
            ("free, history", Text.assemble(sparkline(free, lo, hi, warn, minimum), span)),
            ("low-water, history", sparkline(lw, lo, hi, warn, minimum)),
        ]


def _fmt_bytes(v) -> str:
    return "-" if v is None else f"{v:,} B"


def _fmt_us(v) -> str:
    if v is None:
        return "-"
    return f"{v:g} us" if isinstance(v, float) else f"{v} us"


def event_text(rec: Record) -> Text:
    """One highlighted line for an event record (lvl, shed, err, boot, end)."""
    if rec.kind == "lvl":
        to = str(rec.get("to"))
        return Text.assemble(
            ("level ", "bold"),
            (str(rec.get("from")), LEVEL_STYLE.get(str(rec.get("from")), "")),
            " -> ",
            (to, LEVEL_STYLE.get(to, "bold")),
            f"  free={rec.get('free')}  t={rec.t}",
        )
    return Text(rec.line, style=_EVENT_STYLE.get(rec.kind) or "")


class LiveView:
    """Shows records as they arrive; keeps the Summary (view.summary)."""

    def __init__(
        self,
        console: Console | None = None,
        profile: dict | None = None,
        plain: bool | None = None,
        quiet: bool = False,
        title: str = "lowwater",
        word_bits: int | None = None,
        clock=time.monotonic,
    ):
        self.console = console or Console(highlight=False)
        self.err_console = Console(stderr=True, highlight=False)
        self.plain = (not self.console.is_terminal) if plain is None else plain
        self.quiet = quiet
        self.title = title
        self.summary = Summary(profile, word_bits=word_bits)
        self.history = History(clock=clock)
        self.status = ""
        self.last: dict[str, Record] = {}
        self.events: list[Text] = []
        self._start = time.monotonic()
        self._live: Live | None = None

    def __enter__(self):
        if not self.plain and not self.quiet:
            self._live = Live(
                console=self.console,
                refresh_per_second=4,
                transient=False,
                get_renderable=self.render,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self._live is not None:
            try:
                self._live.update(self.render(), refresh=True)
            finally:
                self._live.stop()
                self._live = None

    def add(self, rec: Record) -> None:
        self.summary.add(rec)
        self.last[rec.kind] = rec
        if rec.kind == "mem":
            self.history.add(rec.get("free"), rec.get("lw", rec.get("free")))
        if self.quiet:
            return
        if self.plain:
            print(rec.line, file=self.console.file, flush=True)
            return
        if rec.kind in _EVENT_STYLE:
            text = event_text(rec)
            self.events = (self.events + [text])[-5:]
            self.console.print(text)

    def note(self, msg: str, style: str = "yellow") -> None:
        """A status message (port lost, reconnecting, ...): stderr in plain mode."""
        self.status = msg
        if self.plain or self.quiet:
            print(f"lowwater: {msg}", file=sys.stderr, flush=True)
        else:
            self.console.print(Text(msg, style=style))

    def render(self):
        s = self.summary
        bud = s.budget()
        mem = self.last.get("mem")
        stat = self.last.get("stat") or self.last.get("end")
        free = mem.get("free") if mem else None
        free = free if is_num(free) else None
        level = s.last_level
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        t.add_row("units", Text(s.units()["text"], style="dim"))
        t.add_row(
            "free heap",
            Text.assemble(
                heap_bar(free, bud["heap"], bud["warn"], bud["min"]),
                f"  {_fmt_bytes(free)} of {_fmt_bytes(bud['heap'])}",
            ),
        )
        t.add_row("budget", f"warn < {_fmt_bytes(bud['warn'])}   critical < {_fmt_bytes(bud['min'])}")
        lw = s.low_water
        lw_level = None
        if lw is not None and is_num(bud["warn"]) and is_num(bud["min"]):
            lw_level = "critical" if lw < bud["min"] else "warn" if lw < bud["warn"] else "ok"
        t.add_row("low-water", Text(_fmt_bytes(lw), style=LEVEL_STYLE.get(lw_level, "")))
        for label, text in self.history.rows(bud["warn"], bud["min"]):
            t.add_row(label, text)
        t.add_row("level", Text(level or "-", style=LEVEL_STYLE.get(level, "")))
        gc = s.gc
        if gc.n:
            t.add_row(
                "gc pause",
                f"last {_fmt_us(gc.last)}   median {_fmt_us(gc.median())}   max {_fmt_us(gc.max)}",
            )
        else:
            t.add_row("gc pause", "-")
        if stat:
            t.add_row(
                "chunks",
                f"{stat.get('chunks', '-')}   processed {stat.get('processed', '-')}   "
                f"dropped {stat.get('dropped', '-')}   errors {stat.get('errors', '-')}",
            )
        else:
            t.add_row("chunks", "-")
        t.add_row("records", f"{s.records}   level changes {s.level_change_count}   boots {s.boots}")
        parts = [t]
        if self.status:
            parts.append(Text(self.status, style="yellow"))
        board = s.boot.get("board") or (s.profile or {}).get("name") or "?"
        elapsed = time.monotonic() - self._start
        return Panel(
            Group(*parts),
            title=f"{self.title}: {board}",
            subtitle=f"{elapsed:.0f} s",
            border_style=LEVEL_STYLE.get(level, "blue"),
        )


def summary_rows(result: dict, stopped: str | None = None) -> list[tuple[str, str]]:
    """The summary as (label, text) rows; the same rows in rich and plain output.

    `stopped` (monitor): why watching ended, e.g. "after 10 s (time limit)". The
    board runs on when a monitor stops, so a missing end record is then normal,
    not a failure."""
    r = result
    rows = [("board", f"{r.get('board') or '-'}" + (f" (lowwater {r['ver']})" if r.get("ver") else ""))]
    if r.get("units"):
        rows.append(("units", r["units"]["text"]))
    rows.append(("records", f"{r['records']} " + " ".join(f"{k}={v}" for k, v in sorted(r["by_kind"].items()))))
    if r.get("duration_ms") is not None:
        rows.append(("duration", f"{r['duration_ms'] / 1000:.3f} s"))
    rows.append(("chunks", _dash(r.get("chunks"))))
    rows.append(("processed", _dash(r.get("processed"))))
    rows.append(("dropped", _dash(r.get("dropped"))))
    rows.append(
        (
            "errors",
            _dash(r.get("errors"))
            + (
                f" ({r['err_records']} err records"
                + (f", {r['memory_errors']} MemoryError" if r["memory_errors"] else "")
                + ")"
                if r.get("err_records")
                else ""
            ),
        )
    )
    lw = r.get("low_water")
    lw_text = _fmt_bytes(lw)
    if lw is not None and r.get("warn") is not None:
        lw_text += (
            f" (budget: warn {_fmt_bytes(r['warn'])}, min {_fmt_bytes(r['min'])}, heap {_fmt_bytes(r.get('heap'))})"
        )
        if r.get("low_water_level"):
            lw_text += f": {r['low_water_level']}"
    rows.append(("low-water", lw_text))
    gc = r.get("gc_us")
    if gc:
        rows.append(
            (
                "gc pause",
                f"median {_fmt_us(gc['median'])}, p99 {_fmt_us(gc['p99'])}, max {_fmt_us(gc['max'])} (n={gc['n']})",
            )
        )
    else:
        rows.append(("gc pause", "-"))
    c = r.get("checks") or {}
    rows.append(("checks", ", ".join(f"{k} {v}" for k, v in c.items())))
    changes = r.get("level_changes") or []
    count = r.get("level_change_count", len(changes))
    rows.append(
        (
            "level changes",
            str(count) + (": " + ", ".join(f"{x['from']}->{x['to']}" for x in changes[-6:]) if changes else ""),
        )
    )
    boots = r.get("boots", 0)
    if boots > 1:
        rows.append(("boots", f"{boots} (the board reset)"))
    elif stopped is not None:
        rows.append(("boot record", "yes" if boots else "no (the board was running before the monitor attached)"))
    if stopped is not None:
        rows.append(("stopped", stopped))
        rows.append(("end record", "yes" if r.get("ended") else "no (the board was still running)"))
    else:
        rows.append(("end record", "yes" if r.get("ended") else "no"))
    return rows


def _dash(v) -> str:
    return "-" if v is None else str(v)


def render_summary(
    result: dict,
    console: Console | None = None,
    plain: bool | None = None,
    title: str = "summary",
    stopped: str | None = None,
) -> None:
    """Print the summary: a rich table on a terminal, `label: text` lines otherwise."""
    console = console or Console(highlight=False)
    if plain is None:
        plain = not console.is_terminal
    rows = summary_rows(result, stopped)
    if plain:
        out = console.file
        print(f"--- {title}", file=out)
        for label, text in rows:
            print(f"{label}: {text}", file=out)
        out.flush()
        return
    table = Table(title=title, show_header=False, title_style="bold")
    table.add_column(style="bold")
    table.add_column()
    for label, text in rows:
        style = ""
        if label == "low-water":
            style = LEVEL_STYLE.get(result.get("low_water_level"), "")
        elif label in ("dropped", "errors") and text not in ("0", "-"):
            style = "yellow"
        elif label == "end record" and text == "no":
            style = "red"  # `run`: the firmware was asked to stop and did not say `end`
        elif label in ("units", "stopped") or text.startswith("no ("):
            style = "dim"
        table.add_row(label, Text(text, style=style))
    console.print(table)
