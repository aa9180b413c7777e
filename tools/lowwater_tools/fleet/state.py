"""The fleet's state on the host: one row per board, fed by MQTT messages.

    fleet = Fleet(prefix="lowwater")
    fleet.message("lowwater/esp32-01/tel", b"LW1 mem t=1 n=1 free=9 ...", time.time())
    rows = fleet.snapshot()

Topics (docs/fleet.md): <prefix>/<board>/tel (one LW1 record per message, the
line byte for byte), <prefix>/<board>/status (retained `online <ver>`, `done`,
will `offline`), <prefix>/<board>/boot (retained: the last boot record), and
Mosquitto's $SYS/broker/... counters.

message() never raises, whatever a publisher sends: a payload that is not exactly
one LW1 record counts in `bad` (per board and fleet-wide) and changes nothing
else. Memory is bounded: at most `max_boards` boards are tracked (messages of
further boards count in `rejected`), a payload is parsed only up to the LW1
line limit, and every per-board field is a number or a short string.
"""

from __future__ import annotations

import threading
import time
import zlib
from dataclasses import dataclass, field

from ..telemetry.lw1 import MAX_LINE, Record, parse_line

DEFAULT_MAX_BOARDS = 10000
MAX_ID = 128  # longest board id tracked (bytes); longer topics are rejected
# $SYS topics whose value is the broker's count of messages it dropped.
DROPPED_TOPICS = ("$SYS/broker/publish/messages/dropped", "$SYS/broker/messages/dropped")


@dataclass
class Board:
    id: str
    first_seen: float = 0.0
    last_seen: float = 0.0  # host time of the last message of any topic
    records: int = 0
    bad: int = 0  # payloads on tel that were not one LW1 record
    heap: int | None = None  # budget, from boot
    warn: int | None = None
    min: int | None = None
    ver: str | None = None
    free: int | None = None
    lw: int | None = None  # the board's low-water (mem lw), min since its boot
    level: str | None = None
    gc_us: int | None = None
    gc_max_us: int = 0
    last_n: int | None = None
    lost: int = 0  # records lost: gaps in the mem `n` sequence
    board_lost: int = 0  # what the board reported dropping (LW1 mqtt lost=)
    reconnects: int = 0
    errors: int = 0  # err records
    boots: int = 0
    status: str | None = None  # last status payload
    online: bool | None = None  # from the status topic
    ended: bool = False
    rate: float = 0.0  # records/s over the last tick interval
    _rate_records: int = 0
    _rate_time: float = 0.0

    @property
    def offline(self) -> bool:
        return self.online is False

    def row(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")} | {"offline": self.offline}


@dataclass
class Counters:
    messages: int = 0
    records: int = 0
    bad: int = 0  # tel payloads that were not one LW1 record
    rejected: int = 0  # messages not tracked: bad topic, board cap reached
    broker_dropped: int | None = None  # Mosquitto's own dropped counter ($SYS)
    sys: dict = field(default_factory=dict)


def _int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


class Fleet:
    def __init__(self, prefix: str = "lowwater", max_boards: int = DEFAULT_MAX_BOARDS, on_record=None, shard=(0, 1)):
        self.prefix = prefix.rstrip("/")
        self._parts = len(self.prefix.split("/"))
        self.max_boards = max_boards
        self.boards: dict[str, Board] = {}
        self.counters = Counters()
        self.on_record = on_record  # on_record(board_id, payload_bytes, Record) for captures
        self.lock = threading.Lock()
        # (k, n): track only boards with crc32(id) % n == k, so n fleet processes
        # split a fleet by board (each sees every record of its boards).
        self.shard = shard
        self.skipped = 0  # messages of boards of other shards

    # -- input --------------------------------------------------------------

    def message(self, topic, payload, now: float | None = None) -> None:
        """Take one MQTT message. Never raises."""
        try:
            with self.lock:
                self._message(topic, payload, time.time() if now is None else now)
        except Exception:  # a hostile message must never stop the fleet view
            self.counters.rejected += 1

    def _message(self, topic, payload, now):
        c = self.counters
        c.messages += 1
        if isinstance(topic, bytes):
            topic = topic.decode("utf-8", "replace")
        payload = bytes(payload or b"")
        if topic.startswith("$SYS/"):
            self._sys(topic, payload)
            return
        parts = topic.split("/")
        if len(parts) != self._parts + 2 or "/".join(parts[: self._parts]) != self.prefix:
            c.rejected += 1
            return
        bid, leaf = parts[-2], parts[-1]
        if not bid or len(bid.encode()) > MAX_ID or leaf not in ("tel", "status", "boot"):
            c.rejected += 1
            return
        b = self.boards.get(bid)
        if b is None:
            k, n = self.shard
            if n > 1 and zlib.crc32(bid.encode()) % n != k:
                self.skipped += 1
                return
            if len(self.boards) >= self.max_boards:
                c.rejected += 1
                return
            b = self.boards[bid] = Board(bid, first_seen=now, _rate_time=now)
        b.last_seen = now
        if leaf == "status":
            self._status(b, payload)
        elif leaf == "boot":
            rec = self._parse(payload)
            if rec is not None and rec.kind == "boot":
                self._budget(b, rec)
        else:
            rec = self._parse(payload)
            if rec is None:
                b.bad += 1
                c.bad += 1
                return
            b.records += 1
            c.records += 1
            self._record(b, rec)
            if self.on_record is not None:
                self.on_record(bid, payload, rec)

    @staticmethod
    def _parse(payload: bytes) -> Record | None:
        if len(payload) > MAX_LINE or b"\n" in payload:
            return None
        found = parse_line(payload)
        if found is None or found[0] != 0:  # the line byte for byte: nothing before LW1
            return None
        return found[1]

    def _sys(self, topic, payload):
        if len(self.counters.sys) >= 256 and topic not in self.counters.sys:
            return
        text = payload[:64].decode("ascii", "replace").strip()
        self.counters.sys[topic] = text
        for name in DROPPED_TOPICS:
            v = self.counters.sys.get(name)
            if v is not None and v.isdigit():
                self.counters.broker_dropped = int(v)
                break

    @staticmethod
    def _status(b: Board, payload: bytes):
        text = payload[:64].decode("utf-8", "replace").strip()
        b.status = text
        word = text.split(" ", 1)[0] if text else ""
        if word == "online":
            b.online = True
            b.ended = False
        elif word in ("offline", "done"):
            b.online = False
            b.ended = word == "done"

    @staticmethod
    def _budget(b: Board, rec: Record):
        for key in ("heap", "warn", "min"):
            v = _int(rec.get(key))
            if v is not None:
                setattr(b, key, v)
        ver = rec.get("ver")
        if isinstance(ver, str):
            b.ver = ver[:32]

    def _record(self, b: Board, rec: Record):
        f = rec.fields
        k = rec.kind
        if k == "mem":
            n = _int(f.get("n"))
            if n is not None:
                if b.last_n is not None and n > b.last_n + 1:
                    b.lost += n - b.last_n - 1
                b.last_n = n
            for key in ("free", "lw", "gc_us"):
                v = _int(f.get(key))
                if v is not None:
                    setattr(b, key, v)
            if b.gc_us is not None:
                b.gc_max_us = max(b.gc_max_us, b.gc_us)
            lvl = f.get("lvl")
            if isinstance(lvl, str):
                b.level = lvl[:16]
        elif k == "boot":
            b.boots += 1
            b.last_n = None  # n restarts at a boot
            b.lw = None
            b.ended = False
            self._budget(b, rec)
        elif k == "lvl":
            to = f.get("to")
            if isinstance(to, str):
                b.level = to[:16]
        elif k == "err":
            b.errors += 1
        elif k == "end":
            b.ended = True
            v = _int(f.get("lw"))
            if v is not None:
                b.lw = v
        elif k == "mqtt":
            v = _int(f.get("lost"))
            if v is not None:
                b.board_lost = v
            v = _int(f.get("connects"))
            if v is not None:
                b.reconnects = max(0, v - 1)

    # -- output -------------------------------------------------------------

    def tick(self, now: float | None = None) -> None:
        """Update records/s of every board (call about once a second)."""
        now = time.time() if now is None else now
        with self.lock:
            for b in self.boards.values():
                dt = now - b._rate_time
                if dt >= 0.5:
                    b.rate = (b.records - b._rate_records) / dt
                    b._rate_records = b.records
                    b._rate_time = now

    def snapshot(self) -> tuple[list[dict], dict]:
        """(rows sorted by board id, fleet counters) copied under the lock."""
        with self.lock:
            rows = [b.row() for _, b in sorted(self.boards.items())]
            c = self.counters
            totals = {
                "boards": len(rows),
                "messages": c.messages,
                "records": c.records,
                "bad": c.bad,
                "rejected": c.rejected,
                "broker_dropped": c.broker_dropped,
                "lost": sum(r["lost"] for r in rows),
                "offline": sum(1 for r in rows if r["offline"] and not r["ended"]),
            }
        return rows, totals
