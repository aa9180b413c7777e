"""Read LW1 telemetry (docs/telemetry.md) on the host: parse, unwrap ticks, CSV, summaries.

    p = Parser()
    for chunk in serial_chunks:
        for rec in p.feed(chunk):
            print(rec.kind, rec.t, rec.fields)
    p.close()
    summary = Summary.of(records)

Used by `lowwater run`, `lowwater monitor`, `lowwater report` and the plots.
Host-only (CPython): never copied to a board.
"""

from __future__ import annotations

import collections
import csv
import functools
import errno
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable

from lowwater_tools.errors import UserError

PREFIX = b"LW1 "
# A line longer than this (bytes, without its newline) is never a record: it is
# dropped as it streams in, so a stream without newlines costs bounded memory.
MAX_LINE = 4096
# ticks_ms() wraps at 2**30 (ports use MICROPY_PY_TIME_TICKS_PERIOD = 2**30).
TICKS_PERIOD = 1 << 30
_TICKS_HALF = TICKS_PERIOD >> 1

# The whole record from the prefix to the end of the line: kind, then zero or
# more ` key=value`, then any number of \r (boards print \r\n). Exact: one space
# between items, no trailing blanks.
_RECORD = re.compile(rb"LW1 ([a-z][a-z0-9_]*)((?: [a-z_][a-z0-9_]*=[A-Za-z0-9_.:/+\-]+)*)\r*")
_INT = re.compile(r"-?[0-9]+")

# Keys in the order of the table in docs/telemetry.md (first appearance); CSV
# columns follow it, then keys not listed here in the order they were first seen.
DOC_KEYS = (
    "t",
    "board",
    "heap",
    "warn",
    "min",
    "chunk",
    "count",
    "ver",  # boot
    "n",
    "free",
    "alloc",
    "lw",
    "lvl",
    "gc_us",  # mem
    "from",
    "to",  # lvl
    "what",
    "bytes",
    "entries",  # shed
    "chunks",
    "processed",
    "dropped",
    "errors",
    "smin",
    "smax",
    "smean",  # stat
    "where",
    "exc",  # err
    "gc_max_us",
    "gc_mean_us",
    "checks",
    "critical",  # end
)
_DOC_RANK = {k: i for i, k in enumerate(DOC_KEYS)}
CSV_LEAD = ("host_time", "seq", "kind", "t")
KEEP_CHANGES = 16  # level changes a Summary keeps (the count is kept in full)
# Distinct kinds counted by name; records of kinds past these count under OTHER_KINDS
# (a stream of made-up kinds must not grow the counts without bound).
MAX_KINDS = 64
OTHER_KINDS = "(other)"


def count_kind(by_kind: dict, kind: str) -> None:
    if kind not in by_kind and len(by_kind) >= MAX_KINDS:
        kind = OTHER_KINDS
    by_kind[kind] = by_kind.get(kind, 0) + 1


# A field whose key equals a leading column is written as column "." + key.
_RESERVED = frozenset(("host_time", "seq", "kind"))


@dataclass
class Record:
    """One telemetry record: `LW1 mem t=120 free=98304` -> kind "mem", fields {"t": 120, "free": 98304}."""

    kind: str
    fields: dict = field(default_factory=dict)  # key -> int | str, in line order
    line: str = ""  # the record as printed, from the prefix, without \r\n
    seq: int = 0  # index of the record in its stream (0, 1, 2, ...)
    host_time: float | None = None  # time.time() when a live reader received it

    @property
    def t(self):
        return self.fields.get("t")

    def get(self, key, default=None):
        return self.fields.get(key, default)


@dataclass
class Stats:
    """Accounting of a stream: bytes == record_bytes + skipped_bytes + pending."""

    bytes: int = 0  # every byte fed
    lines: int = 0  # complete lines seen (plus a final partial line at close)
    records: int = 0
    record_bytes: int = 0  # bytes of record lines from the prefix, incl. \r and \n
    skipped_lines: int = 0  # lines holding no record
    skipped_bytes: int = 0  # noise: skipped lines, noise before a prefix, overlong lines
    pending: int = 0  # bytes of a partial line waiting for its newline
    by_kind: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


def parse_line(line: bytes) -> tuple[int, Record] | None:
    """Find a record in one line (no \\n): (offset of the prefix, Record) or None.

    The record is the first `LW1 ` from which the REST OF THE LINE matches the
    format exactly; anything before it (a `>>> ` prompt, raw-REPL control bytes,
    `OK`, a print without newline) is noise. So `>>> LW1 mem t=1` is a record and
    `LW1 mem t=1 junk` is not."""
    start = line.find(PREFIX)
    while start >= 0:
        m = _RECORD.fullmatch(line, start)
        if m:
            fields = {}
            for item in m.group(2).decode("ascii").split():
                key, _, value = item.partition("=")
                if key in fields:  # a repeated key: not a record we can trust
                    fields = None
                    break
                fields[key] = int(value) if _INT.fullmatch(value) else value
            if fields is not None:
                text = m.group(0).rstrip(b"\r").decode("ascii")
                return start, Record(m.group(1).decode("ascii"), fields, text)
        start = line.find(PREFIX, start + 1)
    return None


class Parser:
    """Incremental LW1 parser: feed() any byte chunks, get the complete records.

        p = Parser()
        recs = p.feed(b"noise\\r\\nLW1 mem t=1 free=9\\r\\n>>> ")  # -> [Record("mem", ...)]
        recs += p.close()

    Never raises on any input. Memory is bounded by MAX_LINE plus one chunk.
    `on_noise(line_bytes)` (optional) is called with each complete line that holds
    no record (overlong lines: their first MAX_LINE bytes), e.g. to show a traceback.
    The result does not depend on how the stream is split into chunks."""

    def __init__(self, on_noise: Callable[[bytes], None] | None = None):
        self.stats = Stats()
        self.on_noise = on_noise
        self._buf = bytearray()
        self._overlong = False  # dropping the rest of a line longer than MAX_LINE
        self._seq = 0

    def feed(self, data: bytes) -> list[Record]:
        out: list[Record] = []
        if not data:
            return out
        st = self.stats
        data = bytes(data)
        st.bytes += len(data)
        pos = 0
        while True:
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            if self._overlong:
                st.skipped_bytes += nl + 1 - pos
                st.lines += 1
                st.skipped_lines += 1
                self._overlong = False
            elif self._buf:
                self._buf += data[pos:nl]
                line = bytes(self._buf)
                st.pending = 0
                self._buf.clear()
                self._line(line, 1, out)
            else:
                self._line(data[pos:nl], 1, out)
            pos = nl + 1
        if pos < len(data):
            rest = len(data) - pos
            if self._overlong:
                st.skipped_bytes += rest
            else:
                self._buf += data[pos:]
                st.pending = len(self._buf)
                if len(self._buf) > MAX_LINE:
                    self._drop_overlong()
        return out

    def close(self) -> list[Record]:
        """Flush the final partial line. It is a record only when it ends in \\r
        (the board printed the whole line and only \\n is missing); a line cut off
        anywhere else may be a truncated record and is counted as skipped. The
        parser stays usable (e.g. after a reconnect)."""
        out: list[Record] = []
        st = self.stats
        if self._overlong:
            st.lines += 1
            st.skipped_lines += 1
            self._overlong = False
        elif self._buf:
            line = bytes(self._buf)
            self._buf.clear()
            st.pending = 0
            if line.endswith(b"\r"):
                self._line(line, 0, out)
            else:
                st.lines += 1
                st.skipped_lines += 1
                st.skipped_bytes += len(line)
                self._noise(line)
        return out

    def _drop_overlong(self):
        st = self.stats
        self._noise(bytes(self._buf[:MAX_LINE]))
        st.skipped_bytes += len(self._buf)
        st.pending = 0
        self._buf.clear()
        self._overlong = True

    def _line(self, line: bytes, nl: int, out: list):
        st = self.stats
        st.lines += 1
        found = parse_line(line) if len(line) <= MAX_LINE else None
        if found is None:
            st.skipped_lines += 1
            st.skipped_bytes += len(line) + nl
            self._noise(line[:MAX_LINE])
            return
        start, rec = found
        rec.seq = self._seq
        self._seq += 1
        st.records += 1
        st.record_bytes += len(line) - start + nl
        st.skipped_bytes += start
        count_kind(st.by_kind, rec.kind)
        out.append(rec)

    def _noise(self, line: bytes):
        if self.on_noise is not None:
            try:
                self.on_noise(line)
            except Exception:  # a display problem must not lose the stream
                pass


def parse_bytes(data: bytes) -> tuple[list[Record], Stats]:
    """Parse a whole capture at once."""
    p = Parser()
    recs = p.feed(data)
    recs += p.close()
    return recs, p.stats


# ---------------------------------------------------------------- ticks


def ticks_diff(new: int, old: int) -> int:
    """time.ticks_diff() of the board: signed difference in [-2**29, 2**29)."""
    return ((new - old + _TICKS_HALF) % TICKS_PERIOD) - _TICKS_HALF


def unwrap_ticks(records: Iterable[Record]) -> list[int | None]:
    """A monotonic ms timeline, one entry per record (None for a record without an int t).

    Consecutive t are joined with ticks_diff (so the 2**30 wrap is invisible); a
    small step back (out of order) counts as 0. A `boot` record starts a new
    segment (the board reset and t restarted): the timeline goes on from where it
    was, plus the host-time gap when both records carry host_time. Starts at 0."""
    out: list[int | None] = []
    now = None  # timeline ms of the last timed record
    last_t = None
    last_host = None
    for rec in records:
        t = rec.fields.get("t")
        if not isinstance(t, int) or isinstance(t, bool):
            out.append(None)
            continue
        if now is None:
            now = 0
        elif rec.kind == "boot":
            gap = 0
            if rec.host_time is not None and last_host is not None:
                gap = max(0, round((rec.host_time - last_host) * 1000))
            now += gap
        else:
            now += max(0, ticks_diff(t, last_t))
        last_t = t
        if rec.host_time is not None:
            last_host = rec.host_time
        out.append(now)
    return out


# ---------------------------------------------------------------- CSV


def csv_columns(keys: Iterable[str]) -> list[str]:
    """CSV header for a set of field keys (given in first-seen order): host_time, seq,
    kind, t, then documented keys in DOC_KEYS order, then other keys in first-seen
    order. A key named host_time, seq or kind becomes column ".<key>"."""
    seen = [k for k in dict.fromkeys(keys) if k != "t"]
    doc = sorted((k for k in seen if k in _DOC_RANK), key=_DOC_RANK.__getitem__)
    other = [k for k in seen if k not in _DOC_RANK]
    return [*CSV_LEAD, *("." + k if k in _RESERVED else k for k in doc + other)]


def _csv_row(rec: Record, columns: list[str]) -> list[str]:
    row = ["" if rec.host_time is None else f"{rec.host_time:.6f}", str(rec.seq), rec.kind]
    f = rec.fields
    for col in columns[3:]:
        v = f.get(col[1:] if col[:1] == "." else col)
        row.append("" if v is None else str(v))
    return row


def _record_keys(records: Iterable[Record]) -> list[str]:
    keys: dict = {}
    for rec in records:
        for k in rec.fields:
            keys.setdefault(k, None)
    return list(keys)


def write_csv(records: list[Record], path_or_file) -> None:
    """One row per record; columns as csv_columns(). Values are written as printed
    (they never hold commas or quotes); a missing key is an empty cell."""
    records = list(records)
    columns = csv_columns(_record_keys(records))
    if isinstance(path_or_file, (str, os.PathLike)):
        try:
            with open(path_or_file, "w", newline="") as f:
                _write_rows(f, columns, records)
        except OSError as e:
            raise UserError(f"cannot write {path_or_file}: {e.strerror or e}") from None
    else:
        _write_rows(path_or_file, columns, records)


def _write_rows(f: IO[str], columns, records):
    w = csv.writer(f, lineterminator="\n")
    w.writerow(columns)
    for rec in records:
        w.writerow(_csv_row(rec, columns))


def _close_quietly(f) -> None:
    try:
        f.close()
    except OSError:  # the last flush of a full disk
        pass


class CsvLog:
    """A CSV file that grows as records arrive, flushed per record, so a crash
    loses nothing. The file is always exactly write_csv(records so far): when a
    record brings a key the header lacks, the file is rewritten with the wider
    header (rare: a few times per run)."""

    def __init__(self, path):
        self.path = Path(path)
        self._keys: dict = {}
        self._columns = csv_columns([])
        try:
            self._f = open(self.path, "w", newline="")
        except OSError as e:
            raise UserError(f"cannot write {path}: {e.strerror or e}") from None
        self._w = csv.writer(self._f, lineterminator="\n")
        try:
            self._w.writerow(self._columns)
            self._f.flush()
        except OSError as e:  # a full disk
            _close_quietly(self._f)
            raise UserError(f"cannot write {path}: {e.strerror or e}") from None

    def add(self, rec: Record) -> None:
        new = [k for k in rec.fields if k not in self._keys]
        if new:
            for k in new:
                self._keys[k] = None
            columns = csv_columns(self._keys)
            if columns != self._columns:
                self._widen(columns)
        try:
            self._w.writerow(_csv_row(rec, self._columns))
            self._f.flush()
        except OSError as e:  # a full disk: one line naming the file
            raise UserError(f"cannot write {self.path}: {e.strerror or e}") from None

    def _widen(self, columns):
        self._f.close()
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        old = rows[0] if rows else self._columns
        index = [old.index(c) if c in old else None for c in columns]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(columns)
            for row in rows[1:]:
                w.writerow(["" if i is None or i >= len(row) else row[i] for i in index])
        os.replace(tmp, self.path)
        self._columns = columns
        self._f = open(self.path, "a", newline="")
        self._w = csv.writer(self._f, lineterminator="\n")

    def close(self):
        if not self._f.closed:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _is_csv_header(first_line: bytes) -> bool:
    return first_line.rstrip(b"\r\n").startswith(",".join(CSV_LEAD).encode())


# A CSV line longer than this is skipped (read in pieces, never held whole): no
# row write_csv() writes comes near it, and a cell longer than MAX_LINE could
# never have been an LW1 value anyway.
MAX_CSV_LINE = 1 << 20
_KIND = re.compile(r"[a-z][a-z0-9_]*")
_VALUE = re.compile(r"[A-Za-z0-9_.:/+\-]+")
READ_CHUNK = 1 << 16


class _CsvRows:
    """Records of a CSV, one line at a time (bounded memory). Cells are held to
    the LW1 value rules: a cell that is not an int or a token (non-ASCII, spaces,
    longer than MAX_LINE) is left out of its record, so whatever a CSV holds, a
    record from it is one the LW1 parser could have produced."""

    def __init__(self, stats: Stats):
        self.stats = stats
        self.keys: list[str] | None = None

    def row(self, line: bytes) -> Record | None:
        st = self.stats
        text = line.rstrip(b"\r\n").decode("utf-8", "replace")
        try:
            row = next(csv.reader([text]), [])
        except csv.Error:
            row = []
        if self.keys is None:
            self.keys = [c[1:] if c[:1] == "." else c for c in (row or [])]
            return None
        if not text:
            return None
        st.lines += 1
        try:
            host = float(row[0]) if row[0] else None
            if host is not None and not math.isfinite(host):
                host = None  # nan/inf: no time rather than a poisoned timeline
            seq = int(row[1]) if len(row[1]) <= 20 else None
            kind = row[2]
            if seq is None or not _KIND.fullmatch(kind):
                raise ValueError(kind)
        except (ValueError, IndexError, TypeError):
            st.skipped_lines += 1
            return None
        fields = {}
        for key, cell in zip((self.keys or [])[3:], row[3:]):
            if cell == "" or len(cell) > MAX_LINE or not _VALUE.fullmatch(cell) or not _KIND_KEY.fullmatch(key):
                continue
            fields[key] = int(cell) if _INT.fullmatch(cell) else cell
        line_text = " ".join(["LW1", kind, *(f"{k}={v}" for k, v in fields.items())])
        st.records += 1
        count_kind(st.by_kind, kind)
        return Record(kind, fields, line_text, seq, host)


_KIND_KEY = re.compile(r"[a-z_][a-z0-9_]*")


def _lines(f, limit: int = MAX_CSV_LINE):
    """Lines of a binary file; a line longer than `limit` is yielded as b"" (skipped)."""
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # drop the rest of the overlong line, a piece at a time
                more = f.readline(READ_CHUNK)
                if not more or more.endswith(b"\n"):
                    break
            yield None
            continue
        yield line


def read_csv(text: str) -> tuple[list[Record], Stats]:
    """Records from a CSV written by write_csv()/CsvLog. `line` is rebuilt from the
    fields (t first, then the column order), not the original text."""
    data = text.encode("utf-8", "surrogateescape")
    st = Stats()
    st.bytes = len(data)
    return list(_iter_csv(io.BytesIO(data), st)), st


def _iter_csv(f, st: Stats):
    rows = _CsvRows(st)
    for line in _lines(f):
        if line is None:
            st.lines += 1
            st.skipped_lines += 1
            continue
        rec = rows.row(line)
        if rec is not None:
            yield rec


def open_log(path):
    """Open a log file for reading; UserError for what cannot be a log (a missing
    file, a directory, a device such as /dev/zero or a serial port that never ends)."""
    import stat as stat_

    try:
        mode = os.stat(path).st_mode
        if stat_.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        if stat_.S_ISCHR(mode) or stat_.S_ISBLK(mode):
            raise UserError(
                f"{path} is a device, not a log file (to read a board: lowwater monitor --port {path} --capture FILE)"
            )
        return open(path, "rb")
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None


def iter_log(path, stats: Stats | None = None):
    """The records of a log file, streamed: a raw capture (any bytes: serial output,
    `--capture` of run/monitor) or a CSV of run/monitor (header host_time,seq,kind,t).
    Memory stays bounded whatever the file size (read in READ_CHUNK pieces);
    `stats` (optional) is filled in as the file is read."""
    st = stats if stats is not None else Stats()
    with open_log(path) as f:
        head = f.peek(len(",".join(CSV_LEAD)) + 2)[: len(",".join(CSV_LEAD)) + 2] if hasattr(f, "peek") else b""
        if _is_csv_header(head.split(b"\n", 1)[0]):
            counted = _Counting(f, st)
            yield from _iter_csv(counted, st)
            return
        p = Parser()
        p.stats = st
        while True:
            try:
                data = f.read(READ_CHUNK)
            except OSError as e:
                raise UserError(f"cannot read {path}: {e.strerror or e}") from None
            if not data:
                break
            yield from p.feed(data)
        yield from p.close()


class _Counting:
    """A binary file whose readline() counts the bytes read into stats.bytes."""

    def __init__(self, f, st: Stats):
        self.f, self.st = f, st

    def readline(self, limit: int = -1) -> bytes:
        line = self.f.readline(limit)
        self.st.bytes += len(line)
        return line


def read_log(path) -> tuple[list[Record], Stats]:
    """All the records of a log file at once (iter_log() streams them)."""
    st = Stats()
    recs = list(iter_log(path, st))
    return recs, st


# ---------------------------------------------------------------- summary


def percentile(values: list, q: float):
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    s = sorted(values)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


class Summary:
    """Build the summary of a run from its records (incrementally or at once).

        s = Summary(); s.add(rec) ...; d = s.result()     # or Summary.of(records)

    result() keys (None when the records do not tell):
      records, by_kind, board, ver, heap, warn, min (budget from `boot`, or the
      profile given), chunks, processed, dropped, errors (totals: the last `stat`
      or `end` of each boot segment, summed over segments), err_records,
      memory_errors (err records whose exc mentions MemoryError), low_water (min of
      every `lw` and `free`), low_water_level (ok/warn/critical against the
      budget), checks {ok, warn, critical} (mem records per lvl), gc_us {n,
      median, p99, max} (mem gc_us; max also from end gc_max_us), level_changes
      [{t, from, to, free}], boots, ended (an `end` record seen), duration_ms
      (unwrapped ticks, first to last record), last_level."""

    def __init__(self, profile: dict | None = None, word_bits: int | None = None):
        self.profile = profile
        # The word size of the runtime that prints the telemetry when it is not the
        # board's own (64: the unix port standing in for a board, `lowwater run`,
        # a virtual board): the profile's budget is then scaled as the firmware
        # scales it. None: the figures are the board's own bytes.
        self.word_bits = word_bits
        self.board_profile = profile  # the profile of the board named by `boot`
        self.records = 0
        self.by_kind: dict = {}
        self.boot: dict = {}
        self.low_water = None
        self.checks = {"ok": 0, "warn": 0, "critical": 0}
        self.gc = Hist()  # gc_us of the mem records: bounded, however long the run
        self.gc_max_end = None
        self.level_changes: collections.deque = collections.deque(maxlen=KEEP_CHANGES)  # the last ones
        self.level_change_count = 0
        self.boots = 0
        self.ended = False
        self.err_records = 0
        self.memory_errors = 0
        self.last_level = None
        self._done = {"chunks": 0, "processed": 0, "dropped": 0, "errors": 0}  # closed segments
        self._seg: dict = {}  # totals of the current segment
        self._have_totals = False
        self._first_ms = None
        self._now = None
        self._last_t = None
        self._last_host = None

    @classmethod
    def of(cls, records: Iterable[Record], profile: dict | None = None) -> dict:
        s = cls(profile)
        for r in records:
            s.add(r)
        return s.result()

    def add(self, rec: Record) -> None:
        f = rec.fields
        k = rec.kind
        self.records += 1
        count_kind(self.by_kind, k)
        self._time(rec)
        if k == "boot":
            self.boots += 1
            self._close_segment()
            self.boot = dict(f)
            self.board_profile = _known_profile(f.get("board"), self.profile)
        for key in ("lw", "free"):
            v = f.get(key)
            if _is_int(v) and (self.low_water is None or v < self.low_water):
                self.low_water = v
        if k == "mem":
            lvl = f.get("lvl")
            if isinstance(lvl, str):
                self.checks[lvl] = self.checks.get(lvl, 0) + 1
                self.last_level = lvl
            if _is_int(f.get("gc_us")):
                self.gc.add(f["gc_us"])
        elif k == "lvl":
            self.level_change_count += 1
            self.level_changes.append(
                {"t": f.get("t"), "from": f.get("from"), "to": f.get("to"), "free": f.get("free")}
            )
            if isinstance(f.get("to"), str):
                self.last_level = f["to"]
        elif k == "err":
            self.err_records += 1
            if "MemoryError" in str(f.get("exc", "")):
                self.memory_errors += 1
        if k in ("stat", "end"):
            for key in self._done:
                if _is_int(f.get(key)):
                    self._seg[key] = f[key]
                    self._have_totals = True
        if k == "end":
            self.ended = True
            if _is_int(f.get("gc_max_us")):
                self.gc_max_end = max(self.gc_max_end or 0, f["gc_max_us"])

    def _close_segment(self):
        for key, v in self._seg.items():
            self._done[key] += v
        self._seg = {}

    def _time(self, rec: Record):
        t = rec.fields.get("t")
        if not _is_int(t):
            return
        if self._now is None:
            self._now = 0
        elif rec.kind == "boot":
            if rec.host_time is not None and self._last_host is not None:
                self._now += max(0, round((rec.host_time - self._last_host) * 1000))
        else:
            self._now += max(0, ticks_diff(t, self._last_t))
        self._last_t = t
        if rec.host_time is not None:
            self._last_host = rec.host_time
        if self._first_ms is None:
            self._first_ms = self._now

    def budget(self) -> dict:
        """heap/warn/min in the telemetry's bytes: from the boot record, else from
        the profile (scaled to word_bits when given)."""
        p = self.profile or {}
        b = self.boot
        heap, warn, low = p.get("heap"), p.get("warn_free"), p.get("min_free")
        if p and self.word_bits and p.get("word_bits") and p["word_bits"] != self.word_bits:
            heap, warn, low = _scaled(p, self.word_bits)
        out = {"heap": b.get("heap", heap), "warn": b.get("warn", warn), "min": b.get("min", low)}
        return {k: (v if is_num(v) else None) for k, v in out.items()}

    def units(self) -> dict:
        """What the byte figures are, said once per view: {scale: board|unix-port|
        unknown, board, board_heap (the profile's, board bytes), heap (the
        telemetry's), factor (heap / board_heap), text}."""
        bp = self.board_profile or {}
        board = self.boot.get("board") or bp.get("name") or (self.profile or {}).get("name")
        board_heap = bp.get("heap") if is_num(bp.get("heap")) else None
        heap = self.budget()["heap"]
        out = {"scale": "unknown", "board": board, "board_heap": board_heap, "heap": heap, "factor": None}
        if board_heap and heap and heap != board_heap:
            f = heap / board_heap
            out.update(scale="unix-port", factor=round(f, 3))
            out["text"] = (
                f"unix-port heap bytes, not board bytes ({board}: {board_heap:,} B board heap = {heap:,} B here, x{f:.2f})"
            )
        elif board_heap and heap:
            out.update(scale="board", factor=1.0, text=f"board bytes ({board}: {board_heap:,} B heap)")
        elif heap:
            out["text"] = f"bytes as the board reports them ({heap:,} B heap; no profile for board {board or '?'})"
        else:
            out["text"] = "bytes as the board reports them (no boot record, no profile: no budget)"
        if not self.boot and self.profile:
            out["text"] += "; budget from the profile (no boot record seen)"
        return out

    def result(self) -> dict:
        bud = self.budget()
        totals = {key: (self._done[key] + self._seg.get(key, 0)) if self._have_totals else None for key in self._done}
        gc = None
        if self.gc.n or self.gc_max_end is not None:
            gmax = max(v for v in (self.gc.max, self.gc_max_end) if v is not None)
            gc = {
                "n": self.gc.n,
                "median": self.gc.median(),
                "p99": self.gc.percentile(99),
                "max": gmax,
                "last": self.gc.last,
            }
        lw = self.low_water
        level = None
        if lw is not None and _is_int(bud["warn"]) and _is_int(bud["min"]):
            level = "critical" if lw < bud["min"] else "warn" if lw < bud["warn"] else "ok"
        return {
            "records": self.records,
            "units": self.units(),
            "by_kind": dict(self.by_kind),
            "board": self.boot.get("board", (self.profile or {}).get("name")),
            "ver": self.boot.get("ver"),
            **bud,
            **totals,
            "err_records": self.err_records,
            "memory_errors": self.memory_errors,
            "low_water": lw,
            "low_water_level": level,
            "checks": dict(self.checks),
            "gc_us": gc,
            "level_changes": list(self.level_changes),
            "level_change_count": self.level_change_count,
            "boots": self.boots,
            "ended": self.ended,
            "duration_ms": None if self._now is None else self._now - self._first_ms,
            "last_level": self.last_level,
        }


def _known_profile(name, given: dict | None):
    """The profile of the board a boot record names: the given one when it is that
    board, else boards/<name>.json when there is one (only plain names)."""
    if given and given.get("name") == name:
        return given
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,40}", name):
        return given
    return _board_profile(name) or given


@functools.lru_cache(maxsize=16)
def _board_profile(name: str) -> dict | None:
    """boards/<name>.json, loaded once; None when there is none or it does not load
    (a profile problem must never stop telemetry from being read)."""
    from lowwater_tools import boards

    try:
        if name not in boards.names():
            return None
        return boards.load(name)
    except Exception:
        return None


def _scaled(profile: dict, word_bits: int):
    from lowwater_tools.paths import device_module

    try:
        return device_module("config").scaled(profile, word_bits)
    except Exception:  # a profile the device code cannot scale: its own figures
        return profile.get("heap"), profile.get("warn_free"), profile.get("min_free")


# Ints a summary, report or plot computes with. The parser keeps any int a line
# can hold (a 4,000-digit one too); figures past 2**53 (no board counts that far,
# and floats lose them) are left out of sums, fits and axes instead of breaking them.
NUM_LIMIT = 1 << 53


def is_num(v) -> bool:
    """An int that figures can be computed with (not a bool, |v| < 2**53)."""
    return isinstance(v, int) and not isinstance(v, bool) and -NUM_LIMIT < v < NUM_LIMIT


_is_int = is_num


class Hist:
    """Counts of ints in bounded memory, for percentiles over runs of any length:
    exact for |v| < EXACT; above that, values sharing their top 10 significant
    bits share a bucket (its lower bound, under 0.2% below any value in it).

        h = Hist(); h.add(90); h.percentile(99); h.median(); h.max"""

    EXACT = 1024

    def __init__(self):
        self.n = 0
        self.counts: dict[int, int] = {}
        self.min = self.max = self.last = None

    def add(self, v: int) -> None:
        a = -v if v < 0 else v
        if a >= self.EXACT:
            sh = a.bit_length() - 10
            a = (a >> sh) << sh
        key = -a if v < 0 else a
        self.counts[key] = self.counts.get(key, 0) + 1
        self.n += 1
        self.last = v
        if self.max is None or v > self.max:
            self.max = v
        if self.min is None or v < self.min:
            self.min = v

    def rank(self, k: int):
        """The k-th smallest value (1-based), as its bucket."""
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= k:
                return key
        return self.max

    def percentile(self, q: float):
        """Nearest-rank percentile, as percentile() of the values; None when empty."""
        if not self.n:
            return None
        return self.rank(max(1, math.ceil(q / 100 * self.n)))

    def median(self):
        """As statistics.median() of the values; None when empty."""
        if not self.n:
            return None
        if self.n % 2:
            return self.rank(self.n // 2 + 1)
        a, b = self.rank(self.n // 2), self.rank(self.n // 2 + 1)
        return (a + b) / 2 if (a + b) % 2 else (a + b) // 2
