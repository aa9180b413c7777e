"""`lowwater fleet --broker HOST:PORT`: every board's memory telemetry from an MQTT broker.

A live table (rich) with one row per board: last seen, level, free and low-water
against its budget, gc pause, records/s, records lost (gaps in the mem `n`
sequence), offline (status topic), and the broker's dropped counter ($SYS).
--csv FILE appends the table every interval; --capture FILE writes one raw
capture per board (what `lowwater report` and `plot` read); --prometheus
[HOST:]PORT serves the same figures to Prometheus. --demo N starts a local
Mosquitto and N networked virtual boards first (`make fleet N=20`); Ctrl-C stops
everything it started. docs/fleet.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .. import args as targs
from ..errors import UserError
from ..telemetry.live import LEVEL_STYLE, StopSignals
from .state import DEFAULT_MAX_BOARDS, Fleet

HELP = "live memory telemetry of many boards from an MQTT broker (table, CSV, captures, Prometheus)"

CSV_COLUMNS = (
    "host_time",
    "board",
    "online",
    "status",
    "level",
    "free",
    "lw",
    "heap",
    "warn",
    "min",
    "gc_us",
    "rate",
    "records",
    "lost",
    "board_lost",
    "errors",
    "bad",
    "last_seen",
)


def add_arguments(p):
    p.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker (default port 1883)")
    p.add_argument("--prefix", default="lowwater", help="topic prefix (default: lowwater)")
    p.add_argument("--csv", type=targs.output_file, metavar="FILE", help="append the table to FILE every interval")
    p.add_argument(
        "--capture", metavar="FILE", help="raw per-board captures: FILE with {board} replaced, or NAME.<board>.EXT"
    )
    p.add_argument("--prometheus", metavar="[HOST:]PORT", help="serve /metrics for Prometheus (host 127.0.0.1)")
    p.add_argument(
        "--duration",
        type=targs.number(0, targs.MAX_SECONDS, "a number of seconds"),
        metavar="S",
        help="stop after S seconds (default: until Ctrl-C)",
    )
    p.add_argument("--interval", type=targs.seconds, default=1.0, metavar="S", help="table refresh (default 1 s)")
    p.add_argument(
        "--max-boards",
        type=targs.count(1, 1_000_000),
        default=DEFAULT_MAX_BOARDS,
        metavar="N",
        help="boards tracked at most (memory bound)",
    )
    p.add_argument(
        "--shard", metavar="K/N", help="track only boards with crc32(id) %% N == K (N processes split a fleet by board)"
    )
    p.add_argument(
        "--share", metavar="GROUP", help="subscribe to tel as $share/GROUP (splits messages, not boards: see docs)"
    )
    p.add_argument(
        "--demo",
        type=targs.count(1, 500, "a number of boards"),
        metavar="N",
        help="start a local Mosquitto and N virtual boards first",
    )
    p.add_argument("--quiet", action="store_true", help="no table (with --prometheus/--csv/--capture)")
    p.add_argument("--client-id", default=None, help=argparse.SUPPRESS)


def parse_broker(text: str) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep:
        host, port = text, "1883"
    host = host.strip("[]")
    if not host:
        raise UserError(f"--broker wants HOST:PORT, got {text!r}")
    try:
        p = int(port)
    except ValueError:
        raise UserError(f"--broker wants HOST:PORT, got {text!r}") from None
    if not 1 <= p <= 65535:
        raise UserError(f"--broker port out of range: {p}")
    return host, p


def parse_shard(text: str) -> tuple[int, int]:
    ks, sep, ns = str(text).partition("/")
    try:
        k, n = int(ks), int(ns)
    except ValueError:
        raise UserError(f"--shard wants K/N (e.g. 0/4), got {text!r}") from None
    if not sep or n < 1 or not 0 <= k < n:
        raise UserError(f"--shard wants K/N with 0 <= K < N, got {text!r}")
    return k, n


# ---------------------------------------------------------------- captures


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(board: str) -> str:
    """A file-name part for a board id: itself when harmless, else a sanitised
    form plus a short hash (so two hostile ids never share a file)."""
    s = _SAFE.sub("_", board)[:64]
    if s == board and s not in (".", ".."):
        return s
    return f"{s}-{hashlib.sha1(board.encode('utf-8', 'replace')).hexdigest()[:8]}"


def capture_path(pattern: str, board: str) -> Path:
    name = safe_name(board)
    if "{board}" in pattern:
        return Path(pattern.replace("{board}", name))
    p = Path(pattern)
    return p.with_name(f"{p.stem}.{name}{p.suffix}")


class Captures:
    """One raw capture per board (each record's line + \\n, as a serial capture
    holds it). At most `max_open` files are open at once (least recently used
    closed first; reopened in append mode)."""

    def __init__(self, pattern: str, max_open: int = 128):
        self.pattern = pattern
        self.max_open = max_open
        self.files: OrderedDict[str, BinaryIO] = OrderedDict()
        self.paths: dict[str, Path] = {}
        parent = Path(pattern).parent
        if not parent.is_dir():
            raise UserError(f"--capture: folder {parent} does not exist")

    def add(self, board: str, payload: bytes, rec) -> None:
        f = self.files.get(board)
        if f is not None:
            self.files.move_to_end(board)
            f.write(payload + b"\n")
            return
        path = self.paths.get(board)
        mode = "ab"
        if path is None:
            path = self.paths[board] = capture_path(self.pattern, board)
            mode = "wb"
        if len(self.files) >= self.max_open:
            _, old = self.files.popitem(last=False)
            old.close()
        try:
            nf: BinaryIO = open(path, mode)  # type: ignore[assignment]
        except OSError:
            return
        self.files[board] = nf
        nf.write(payload + b"\n")

    def flush(self):
        for f in self.files.values():
            f.flush()

    def close(self):
        for f in self.files.values():
            f.close()
        self.files.clear()


class CsvTable:
    def __init__(self, path: str):
        try:
            self.f = open(path, "w", newline="")
        except OSError as e:
            raise UserError(f"cannot write {path}: {e.strerror or e}") from None
        self.w = csv.writer(self.f, lineterminator="\n")
        self.w.writerow(CSV_COLUMNS)
        self.f.flush()

    def add(self, rows: list[dict], now: float) -> None:
        for r in rows:
            vals = [f"{now:.3f}", r["id"]]
            for c in CSV_COLUMNS[2:]:
                v = r.get(c)
                if isinstance(v, float):
                    v = f"{v:.3f}" if c == "last_seen" else f"{v:.2f}"
                elif isinstance(v, bool):
                    v = int(v)
                vals.append("" if v is None else v)
            self.w.writerow(vals)
        self.f.flush()

    def close(self):
        self.f.close()


# ---------------------------------------------------------------- MQTT


class Subscriber:
    """paho-mqtt client feeding a Fleet from its network thread."""

    def __init__(self, fleet: Fleet, host: str, port: int, prefix: str, share: str | None = None, client_id=None):
        import paho.mqtt.client as mqtt

        self.fleet = fleet
        self.connected = threading.Event()
        self.error: str | None = None
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"lowwater-fleet-{int(time.time() * 1000) % 10**9}",
            clean_session=True,
        )
        base = f"$share/{share}/{prefix}" if share else prefix
        self.topics = [(f"{base}/+/tel", 0), (f"{prefix}/+/status", 1), (f"{prefix}/+/boot", 1), ("$SYS/broker/#", 0)]
        # Back soon after a broker restart (paho's default waits up to 120 s).
        self.client.reconnect_delay_set(min_delay=1, max_delay=4)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.host, self.port = host, port

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.error = str(reason_code)
            return
        client.subscribe(self.topics)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()

    def _on_message(self, client, userdata, msg):
        self.fleet.message(msg.topic, msg.payload)

    def start(self, timeout: float = 5.0) -> None:
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot connect to the broker {self.host}:{self.port}: {e}") from None
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.stop()
            raise UserError(
                f"broker {self.host}:{self.port}: no CONNACK within {timeout:g} s ({self.error or 'timeout'})"
            )

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


# ---------------------------------------------------------------- view


def _b(v) -> str:
    return "-" if v is None else f"{v:,}"


def _ago(now: float, t: float) -> str:
    d = max(0.0, now - t)
    return f"{d:.0f}s" if d < 120 else f"{d / 60:.0f}m"


def render(rows: list[dict], totals: dict, now: float, title: str, max_rows: int | None = None) -> Table:
    t = Table(title=title, caption=_caption(totals), expand=False)
    for col, just in (
        ("board", "left"),
        ("seen", "right"),
        ("state", "left"),
        ("level", "left"),
        ("free / heap", "right"),
        ("low-water", "right"),
        ("warn/min", "right"),
        ("gc us", "right"),
        ("rec/s", "right"),
        ("lost", "right"),
    ):
        t.add_column(col, justify="left" if just == "left" else "right", no_wrap=True)
    # Trouble first: offline, then critical, warn; then by id.
    order = {"critical": 0, "warn": 1}
    shown = sorted(rows, key=lambda r: (not r["offline"] or r["ended"], order.get(r["level"], 2), r["id"]))
    if max_rows is not None and len(shown) > max_rows:
        shown = shown[:max_rows]
    for r in shown:
        if r["ended"]:
            state = Text("done", style="dim")
        elif r["offline"]:
            state = Text("OFFLINE", style="bold red")
        else:
            state = Text("online" if r["online"] else "?", style="green" if r["online"] else "dim")
        lvl = r["level"] or "-"
        lw = r["lw"]
        lw_style = ""
        if lw is not None and r["min"] is not None and lw < r["min"]:
            lw_style = "bold red"
        elif lw is not None and r["warn"] is not None and lw < r["warn"]:
            lw_style = "yellow"
        lost = r["lost"] + r["board_lost"]
        t.add_row(
            Text(r["id"][:40]),
            _ago(now, r["last_seen"]),
            state,
            Text(lvl, style=LEVEL_STYLE.get(lvl) or ""),
            f"{_b(r['free'])} / {_b(r['heap'])}",
            Text(_b(lw), style=lw_style),
            f"{_b(r['warn'])}/{_b(r['min'])}",
            _b(r["gc_us"]),
            f"{r['rate']:.1f}",
            Text(str(lost), style="red" if lost else ""),
        )
    return t


def _caption(totals: dict) -> str:
    bd = totals["broker_dropped"]
    return (
        f"{totals['boards']} boards, {totals['offline']} offline; {totals['records']:,} records, "
        f"{totals['lost']:,} lost in transit; broker dropped {'-' if bd is None else f'{bd:,}'}; "
        f"{totals['bad']} bad payloads, {totals['rejected']} rejected"
    )


def plain_lines(rows: list[dict], totals: dict) -> list[str]:
    out = [_caption(totals)]
    for r in rows:
        state = "done" if r["ended"] else ("offline" if r["offline"] else "online" if r["online"] else "?")
        out.append(
            f"{r['id']} {state} level={r['level'] or '-'} free={_b(r['free'])} lw={_b(r['lw'])} "
            f"heap={_b(r['heap'])} gc_us={_b(r['gc_us'])} records={r['records']} lost={r['lost']} "
            f"board_lost={r['board_lost']}"
        )
    return out


# ---------------------------------------------------------------- run


def run(args) -> int:
    if args.interval <= 0:
        raise UserError("--interval must be > 0")
    if args.max_boards < 1:
        raise UserError("--max-boards must be >= 1")
    if args.duration is not None and args.duration < 0:
        raise UserError("--duration must be >= 0")
    if args.demo is not None and not 1 <= args.demo <= 500:
        raise UserError("--demo wants 1..500 boards")
    if args.demo is None and not args.broker:
        raise UserError("give --broker HOST:PORT (or --demo N for a local broker and N virtual boards)")
    if args.demo is not None and args.broker:
        raise UserError("--demo starts its own broker: drop --broker")
    if args.prometheus:
        from .exporter import parse_listen

        parse_listen(args.prometheus)  # a bad address fails before anything starts
    host, port = parse_broker(args.broker) if args.broker else ("127.0.0.1", 0)
    shard = parse_shard(args.shard) if args.shard else (0, 1)

    started = []  # things to stop, last first
    captures = Captures(args.capture) if args.capture else None
    table = CsvTable(args.csv) if args.csv else None
    fleet = Fleet(args.prefix, max_boards=args.max_boards, on_record=captures.add if captures else None, shard=shard)
    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        with StopSignals() as stop:
            if args.demo is not None:
                from .broker import Mosquitto
                from .vboards import NetBoards

                broker = Mosquitto().start()
                started.append(broker.cleanup)
                host, port = broker.host, broker.port
                err.print(f"lowwater fleet: mosquitto on {broker.address}; starting {args.demo} virtual boards")
            sub = Subscriber(fleet, host, port, args.prefix, args.share, args.client_id)
            sub.start()
            started.append(sub.stop)
            if args.demo is not None:
                nb = NetBoards(host, port, args.demo, prefix=args.prefix)
                started.append(nb.cleanup)
                nb.start()
            if args.prometheus:
                from .exporter import serve

                server = serve(fleet, args.prometheus)
                started.append(server.shutdown)
                err.print(
                    f"lowwater fleet: metrics on http://{server.server_address[0]}:{server.server_address[1]}/metrics"
                )
            _loop(args, fleet, stop, console, table, captures, f"lowwater fleet: {host}:{port}")
    finally:
        for fn in reversed(started):
            try:
                fn()
            except Exception:  # cleanup must go on
                pass
        if captures:
            captures.close()
        if table:
            table.close()
    rows, totals = fleet.snapshot()
    if args.quiet or not console.is_terminal:
        for line in plain_lines(rows, totals):
            print(line)
    return 0


def _loop(args, fleet, stop, console, table, captures, title):
    end = time.monotonic() + args.duration if args.duration is not None else None
    live = None
    if not args.quiet and console.is_terminal:
        live = Live(console=console, auto_refresh=False, transient=False)
        live.start()
    try:
        while not stop.count and (end is None or time.monotonic() < end):
            wait = args.interval if end is None else max(0.0, min(args.interval, end - time.monotonic()))
            time.sleep(wait)
            now = time.time()
            fleet.tick(now)
            rows, totals = fleet.snapshot()
            if table:
                table.add(rows, now)
            if captures:
                captures.flush()
            if live is not None:
                live.update(render(rows, totals, now, title, max(5, console.size.height - 8)), refresh=True)
    finally:
        if live is not None:
            live.stop()
