"""Host reader for lowwater.flashlog logs: one file, a folder of files, or the
log folder inside a littlefs2 image of a (virtual) board.

The framing and the scanner are the device's own (lib/lowwater/flashlog.py,
loaded with paths.device_module), so the board and the host cannot disagree on
the format. Reading is streaming: a record's CRC is checked through a small
buffer before its payload is read, so at most one record (<= 65,535 bytes) is
held in memory, whatever the input holds.

    for ev in read("pulled/log"):
        if isinstance(ev, Record): ...
        else: ...  # Skip: bytes that are in no intact record
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Union

from lowwater_tools import args as targs
from lowwater_tools.errors import UserError
from lowwater_tools.paths import device_module, tool_exe
import json
import sys

fl = device_module("flashlog")

HEADER_SIZE = fl.HEADER_SIZE
MAX_PAYLOAD = fl.MAX_PAYLOAD
BLOCK_SIZE = 4096  # CONTRACT with the virtual board: littlefs2 block size of its image
LFS_MAGIC = b"littlefs"
CHUNK = 4096  # scanner buffer: CRC streaming and resync


@dataclass
class Record:
    seq: int
    data: bytes
    file: str
    offset: int

    @property
    def size(self) -> int:
        """Bytes the record occupies in the file (header + payload)."""
        return HEADER_SIZE + len(self.data)


@dataclass
class Skip:
    """A run of bytes that belong to no intact record (garbage, a torn tail, a bad CRC)."""

    file: str
    offset: int
    length: int
    tail: bool = False  # the run reaches the end of the file (a torn tail)
    dup: bool = False  # an intact record whose seq is not above the last one read (duplicated file, replay)
    damaged: str = ""  # the file could not be read past `offset` (damaged flash): the error


@dataclass
class FileReport:
    file: str
    size: int
    records: int = 0
    record_bytes: int = 0
    skipped_bytes: int = 0
    skips: int = 0
    crc_errors: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    duplicates: int = 0  # intact records skipped by read(): seq not above the last one
    damaged: str | None = None  # why the file could not be read to its end (then read() goes on)


@dataclass
class Source:
    name: str
    size: int
    open: Callable[[], BinaryIO]


Event = Union[Record, Skip]


def scan_file(
    f: BinaryIO, size: int, name: str, from_seq: int = 0, report: FileReport | None = None, chunk: int = CHUNK
) -> Iterator[Event]:
    """Yield the Records (seq >= from_seq) and Skips of one open log file, in file
    order. Records below from_seq are still checked and counted, not yielded.
    Every byte is accounted for: sum(record sizes, all seqs) + sum(skips) == size."""
    rep = report if report is not None else FileReport(name, size)
    sc = fl.Scanner(chunk)
    end = 0
    for seq, off, n, data in sc.records(f, size, from_seq):
        if off > end:
            rep.skips += 1
            rep.skipped_bytes += off - end
            yield Skip(name, end, off - end)
        end = off + HEADER_SIZE + n
        rep.records += 1
        rep.record_bytes += HEADER_SIZE + n
        if rep.first_seq is None:
            rep.first_seq = seq
        rep.last_seq = seq
        if data is not None:
            yield Record(seq, data, name, off)
    if size > end:
        rep.skips += 1
        rep.skipped_bytes += size - end
        yield Skip(name, end, size - end, tail=True)
    rep.crc_errors = sc.crc_errors


def is_littlefs_image(head: bytes, size: int) -> bool:
    """A littlefs2 superblock names itself "littlefs" at offset 8 of block 0 or 1."""
    if size < 2 * BLOCK_SIZE or size % BLOCK_SIZE:
        return False
    return head[8:16] == LFS_MAGIC or head[BLOCK_SIZE + 8 : BLOCK_SIZE + 16] == LFS_MAGIC


def _dir_sources(d: Path) -> list[Source]:
    found = []
    for p in d.iterdir():
        i = fl.file_index(p.name)
        if i >= 0 and p.is_file():
            found.append((i, p))
    by = dict(found)
    order = fl.log_order(sorted(by))  # oldest first, indices wrapping after 99999999
    return [Source(by[i].name, by[i].stat().st_size, (lambda p=by[i]: open(p, "rb"))) for i in order]  # type: ignore[misc]


def _image_sources(img: Path, fs_size: int | None, log_path: str) -> list[Source]:
    from littlefs import LittleFS, LittleFSError

    total = img.stat().st_size
    size = total if fs_size is None else fs_size
    if size <= 0 or size % BLOCK_SIZE:
        raise UserError(f"--fs-size {size}: must be a positive multiple of {BLOCK_SIZE}")
    if size > total:
        raise UserError(f"{img}: image is {total} bytes, smaller than --fs-size {size}")
    with open(img, "rb") as f:
        buf = bytearray(f.read(size))
    fs = LittleFS(block_size=BLOCK_SIZE, block_count=size // BLOCK_SIZE, mount=False)
    fs.context.buffer = buf
    try:
        fs.mount()
    except (LittleFSError, OSError, ValueError) as e:
        hint = "" if fs_size is not None else "; if the file system is only part of the file, give --fs-size"
        raise UserError(
            f"{img}: not a littlefs2 image with {BLOCK_SIZE}-byte blocks ({size // BLOCK_SIZE} blocks): {e}{hint}"
        ) from None
    log_path = "/" + log_path.strip("/")
    try:
        names = fs.listdir(log_path)
    except (LittleFSError, OSError) as e:
        raise UserError(f"{img}: no folder {log_path} in the image ({e})") from None
    by = {fl.file_index(n): n for n in names if fl.file_index(n) >= 0}
    out = []
    for i in fl.log_order(sorted(by)):  # oldest first, indices wrapping after 99999999
        p = f"{log_path}/{by[i]}"
        try:
            st = fs.stat(p)
        except (LittleFSError, OSError) as e:  # damaged metadata: reported by read(), the rest is read
            out.append(Source(f"{img.name}:{p}", 0, (lambda e=e: _raise(e))))  # type: ignore[misc]
            continue
        if st.type != 1:  # LFS_TYPE_REG: a directory with a log file's name is not ours
            continue
        out.append(Source(f"{img.name}:{p}", st.size, (lambda p=p: fs.open(p, "rb"))))  # type: ignore[misc, arg-type]
    return out


def sources(target: str | os.PathLike, fs_size: int | None = None, log_path: str = "/log") -> list[Source]:
    """The log files behind TARGET: a log file, a folder of NNNNNNNN.log files, or a
    littlefs2 image (block size 4096, block_count = size // 4096, or fs_size // 4096)."""
    p = Path(target)
    if p.is_dir():
        srcs = _dir_sources(p)
        if not srcs:
            raise UserError(f"{p}: no log files (NNNNNNNN.log) in this folder")
        return srcs
    if not p.is_file():
        raise UserError(f"{p}: no such file or folder")
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(2 * BLOCK_SIZE)
    if fs_size is not None or is_littlefs_image(head, size):
        return _image_sources(p, fs_size, log_path)
    return [Source(p.name, size, lambda: open(p, "rb"))]


def read(
    target: str | os.PathLike,
    from_seq: int = 0,
    fs_size: int | None = None,
    log_path: str = "/log",
    reports: list[FileReport] | None = None,
) -> Iterator[Event]:
    """Records and Skips of every log file of TARGET, oldest file first. A
    FileReport per file is appended to `reports` (complete once its file is done).
    Seqs only increase, as FlashLog.read() on the board: an intact record whose
    seq is not above the last one yielded (a duplicated file, a replayed record)
    becomes a Skip with dup=True (counted in FileReport.duplicates)."""
    last = -1
    for src in sources(target, fs_size, log_path):
        rep = FileReport(src.name, src.size)
        if reports is not None:
            reports.append(rep)
        try:
            with src.open() as f:
                for ev in scan_file(f, src.size, src.name, from_seq, rep):
                    if isinstance(ev, Record):
                        if ev.seq <= last:
                            rep.duplicates += 1
                            yield Skip(ev.file, ev.offset, ev.size, dup=True)
                            continue
                        last = ev.seq
                    yield ev
        except _READ_ERRORS as e:
            # Damaged flash (littlefs: LFS_ERR_CORRUPT in a data block) or an unreadable
            # file: what was read stands, the rest of this file is one damaged Skip,
            # and the next files are read.
            done = rep.record_bytes + rep.skipped_bytes
            rep.damaged = str(e) or type(e).__name__
            lost = max(0, src.size - done)
            rep.skips += 1
            rep.skipped_bytes += lost
            yield Skip(src.name, done, lost, tail=True, damaged=rep.damaged)


def _raise(e: BaseException):
    raise e


try:
    from littlefs.errors import LittleFSError as _LFSError

    _READ_ERRORS: tuple = (OSError, _LFSError)
except ImportError:  # pragma: no cover - littlefs-python is a pinned dependency
    _READ_ERRORS = (OSError,)


def read_bytes(data: bytes, from_seq: int = 0, name: str = "<bytes>") -> tuple[list[Record], FileReport]:
    """Convenience for tests and tools: the records of one log file held in memory."""
    rep = FileReport(name, len(data))
    recs = [e for e in scan_file(io.BytesIO(data), len(data), name, from_seq, rep) if isinstance(e, Record)]
    return recs, rep


def encode(seq: int, data: bytes) -> bytes:
    """One framed record, byte-identical to FlashLog.append's (for tests and tools)."""
    n = len(data)
    if n > MAX_PAYLOAD:
        raise ValueError("record too large")
    h = bytearray(HEADER_SIZE)
    h[0] = fl.MAGIC
    h[2:4] = n.to_bytes(2, "little")
    h[4:8] = (seq & 0xFFFFFFFF).to_bytes(4, "little")
    x = 0x5A
    for b in h[2:8]:
        x ^= b
    h[1] = x
    h[8:12] = fl.crc32(data, fl.crc32(bytes(h[:8]))).to_bytes(4, "little")
    return bytes(h) + bytes(data)


def printable(data: bytes) -> str | None:
    """data as text when it is printable UTF-8 (tabs allowed), else None."""
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return s if all(c.isprintable() or c == "\t" for c in s) else None


# The command: `lowwater log read|pull`: read a flashlog (file, folder, littlefs image) or pull it from a board.
HELP = "read a flash record log (file, folder or littlefs image) or pull one from a board"

PULL_TIMEOUT = 300  # seconds for the whole mpremote copy


def add_arguments(p):
    sub = p.add_subparsers(dest="log_command", metavar="ACTION")
    sub.required = True
    r = sub.add_parser(
        "read",
        help="print the records of FILE, DIR or IMAGE",
        description="Print the intact records of a log file, a folder of log files "
        "or the log folder of a littlefs2 image (4096-byte blocks). Skipped bytes "
        "(garbage, torn tails, bad CRCs) are reported on stderr.",
    )
    r.add_argument("target", metavar="FILE|DIR|IMAGE")
    _read_options(r)
    r.add_argument(
        "--fs-size",
        type=targs.count(BLOCK_SIZE, targs.MAX_BYTES, "a size in bytes"),
        default=None,
        metavar="N",
        help="treat the input as a littlefs2 image whose file system is its first N bytes "
        "(default: the whole file, when it is an image)",
    )
    q = sub.add_parser("pull", help="copy the log folder from a board with mpremote, then read it")
    q.add_argument(
        "--port", required=True, help="serial port of the board, or auto: the one board attached (`lowwater devices`)"
    )
    q.add_argument(
        "-o",
        "--output",
        default="lowwater-log",
        metavar="DIR",
        type=targs.output_dir,
        help="local folder for the copy; must not exist or be empty (default: lowwater-log)",
    )
    _read_options(q)
    q.add_argument("--quiet", action="store_true", help="copy only, print no records")


def _read_options(p):
    p.add_argument(
        "--from",
        dest="from_seq",
        type=targs.count(0, 2**32 - 1, "a sequence number"),
        default=0,
        metavar="SEQ",
        help="only records with seq >= SEQ",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--path", default="/log", help="log folder on the board / in the image (default /log)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any byte had to be skipped")


def run(args) -> int:
    if args.log_command == "pull":
        return _pull(args)
    return _read(args.target, args, getattr(args, "fs_size", None))


def _window(ev) -> dict | None:
    """The figures of a window record (lowwater.window.unpack, the firmware's own
    layout) whose seq is the record's; None for any other payload."""
    w = device_module("window")
    try:
        got = w.unpack(ev.data)
    except (ValueError, IndexError, TypeError):
        return None
    return dict(zip(w.FIELDS, got[1:])) if got[0] == ev.seq else None


def _emit(ev, as_json: bool, out, notes: list[str] | None) -> None:
    """Write a record (stdout) or a skipped run (stderr). While `notes` is a
    list, skip lines are held there instead: until the first intact record it
    is not known whether the input is a log at all (then one error line only)."""
    if isinstance(ev, Record):
        text = printable(ev.data)
        win = _window(ev)  # the firmware's window record, decoded as soak decodes it
        if as_json:
            obj = {"seq": ev.seq, "len": len(ev.data), "file": ev.file, "offset": ev.offset, "hex": ev.data.hex()}
            if text is not None:
                obj["text"] = text
            if win is not None:
                obj["window"] = win
            out.write(json.dumps(obj) + "\n")
        else:
            shown = "text=" + json.dumps(text) if text is not None else "hex=" + ev.data.hex()
            if win is not None:
                shown = "window " + " ".join(f"{k}={v}" for k, v in win.items())
            out.write(f"seq={ev.seq} len={len(ev.data)} {shown}\n")
    else:
        what = (
            f"damaged: {ev.damaged}"
            if ev.damaged
            else "duplicate seq"
            if ev.dup
            else "torn tail"
            if ev.tail and ev.offset
            else "garbage"
        )
        if as_json:
            obj = {"skip": ev.length, "file": ev.file, "offset": ev.offset, "tail": ev.tail}
            if ev.dup:
                obj["dup"] = True
            out.write(json.dumps(obj) + "\n")
        line = f"lowwater: {ev.file}: skipped {ev.length} bytes at offset {ev.offset} ({what})"
        if notes is None:
            print(line, file=sys.stderr)
        else:
            notes.append(line)


def _read(target, args, fs_size) -> int:
    reports: list[FileReport] = []
    out = sys.stdout
    notes: list[str] | None = []
    for ev in read(target, args.from_seq, fs_size, args.path, reports):
        if notes is not None and isinstance(ev, Record):
            for line in notes:
                print(line, file=sys.stderr)
            notes = None
        _emit(ev, args.json, out, notes)
    out.flush()
    records = sum(r.records for r in reports)
    skipped = sum(r.skipped_bytes for r in reports)
    total = sum(r.size for r in reports)
    crc = sum(r.crc_errors for r in reports)
    dups = sum(r.duplicates for r in reports)
    damaged = [r.file for r in reports if r.damaged]
    seqs = [r for r in reports if r.first_seq is not None]
    span = f", seq {seqs[0].first_seq}..{seqs[-1].last_seq}" if seqs else ""
    if total and not records:
        raise UserError(f"{target}: no intact records ({skipped} of {total} bytes skipped): not a lowwater log?")
    for line in notes or ():
        print(line, file=sys.stderr)
    print(
        f"lowwater: {len(reports)} file(s), {total} bytes: {records} records{span}, "
        f"{skipped} bytes skipped, {crc} CRC errors"
        + (f", {dups} duplicate records skipped" if dups else "")
        + (f", {len(damaged)} damaged file(s): {', '.join(damaged)}" if damaged else ""),
        file=sys.stderr,
    )
    if damaged:
        return 1  # the records that could be read are out; the damage is said above
    if args.strict and skipped:
        raise UserError(f"{target}: {skipped} bytes skipped (--strict)")
    return 0


# The listing the board is asked for: one line per entry, the name hex-encoded so
# that no byte of it (newline, NUL, "/", a huge name) can forge another line.
_LIST = """\
import os
from binascii import hexlify
try:
    es = os.ilistdir(%(path)r)
except OSError as e:
    print('LW:nodir', e.args[0] if e.args else 0)
else:
    for e in es:
        n = e[0]
        print('LW:E', hexlify(n if isinstance(n, bytes) else n.encode()).decode(), e[1], e[3] if len(e) > 3 else -1)
print('LW:end')
"""
LIST_TIMEOUT = 60  # seconds for the listing
MAX_NAME = 255  # bytes: longest name a plain log name could be (they are 12)


@dataclass
class Entry:
    name: str
    is_dir: bool
    size: int


def board_entries(out: str) -> list[Entry]:
    """Parse the board's answer to _LIST. UserError for an answer that is not one
    (no end line, a malformed line) or names no log folder."""
    entries = []
    ended = False
    for line in out.splitlines():
        parts = line.strip().split(" ")
        if parts[0] == "LW:nodir":
            raise UserError("no such folder on the board")
        if parts[0] == "LW:end":
            ended = True
        elif parts[0] == "LW:E":
            if len(parts) != 4:
                raise UserError(f"the board answered the listing with a malformed line {line[:60]!r}: refused")
            try:
                raw = bytes.fromhex(parts[1])
                kind, size = int(parts[2]), int(parts[3])
            except ValueError:
                raise UserError(
                    f"the board answered the listing with a malformed line {line[:60]!r}: refused"
                ) from None
            entries.append(Entry(_plain_name(raw), bool(kind & 0x4000), size))
    if not ended:
        raise UserError("the board did not answer the listing (no MicroPython REPL?)")
    return entries


def _plain_name(raw: bytes) -> str:
    """A name the board listed, if it is a plain file name (UTF-8, no `/`, `\\`, NUL
    or control characters, not `.` or `..`, at most MAX_NAME bytes); else UserError:
    a board that lists such a name is lying about its filesystem."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        name = None
    if (
        name is None
        or not name
        or len(raw) > MAX_NAME
        or name in (".", "..")
        or any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        shown = repr(raw[:60]) + ("..." if len(raw) > 60 else "")
        raise UserError(f"the board lists an unsafe name {shown} in its log folder: refused, nothing copied")
    return name


def _inside(path: Path, folder: Path) -> bool:
    """path (which need not exist) resolves to a place inside folder (resolved)."""
    return path.resolve().parent == folder.resolve()


def _pull(args) -> int:
    from lowwater_tools.boardio.deploy import check_port, run_tool

    out = Path(args.output)
    if out.is_symlink() or out.exists():
        if out.is_symlink() or not out.is_dir() or any(out.iterdir()):
            raise UserError(f"{out}: exists and is not an empty folder: choose another -o DIR")
    remote = "/" + args.path.strip("/")
    if any(ord(c) < 32 for c in remote) or "/../" in remote + "/":
        raise UserError(f"--path {args.path!r}: expected a plain folder on the board such as /log")
    check_port(args.port)
    mpremote = tool_exe("mpremote")
    rc, text = run_tool(
        [mpremote, "connect", args.port, "exec", _LIST % {"path": remote}], LIST_TIMEOUT, "mpremote (listing the log)"
    )
    msg = text.decode("utf-8", "replace")
    if rc != 0:
        raise UserError(f"pull from {args.port} failed: {_last(msg, rc)}{_hint(msg, remote)}")
    try:
        entries = board_entries(msg)
    except UserError as err:
        raise UserError(f"pull from {args.port}: :{remote}: {err}") from None
    logs: list[Entry] = []
    foreign: list[Entry] = []
    for e in entries:
        (logs if not e.is_dir and fl.file_index(e.name) >= 0 else foreign).append(e)
    logs.sort(key=lambda x: fl.file_index(x.name))
    for e in foreign:
        print(
            f"lowwater: not copied: :{remote}/{e.name} ({'a folder' if e.is_dir else 'not a log file name'})",
            file=sys.stderr,
        )
    if not logs:
        raise UserError(f"no log files (NNNNNNNN.log) in :{remote} on {args.port}: has the firmware logged yet?")

    out.mkdir(parents=True, exist_ok=True)
    folder = out.resolve()
    steps: list[str] = []
    for e in logs:
        dest = folder / e.name
        if not _inside(dest, folder) or os.path.lexists(dest):  # never true for a checked name: belt and braces
            raise UserError(f"{dest}: would be written outside {out} or over an existing entry: refused")
        steps += (["+"] if steps else []) + ["fs", "cp", f":{remote}/{e.name}", str(dest)]
    total = sum(max(0, e.size) for e in logs)
    timeout = min(3600.0, PULL_TIMEOUT + total / 2000)
    try:
        rc, text = run_tool([mpremote, "connect", args.port, "resume", *steps], timeout, "mpremote (copying the log)")
    except BaseException:
        _clean(folder, logs)
        raise
    msg = text.decode("utf-8", "replace")
    if rc != 0:
        _clean(folder, logs)
        raise UserError(f"pull from {args.port} failed: {_last(msg, rc)}{_hint(msg, remote)}")
    for e in logs:
        dest = folder / e.name
        if dest.is_symlink() or not dest.is_file():
            raise UserError(f"pull from {args.port}: {dest} was not written as a file")
    print(f"lowwater: copied {len(logs)} log file(s) from :{remote} on {args.port} to {out}", file=sys.stderr)
    if args.quiet:
        return 0
    return _read(out, args, None)


def _clean(folder: Path, logs: list[Entry]) -> None:
    """Remove what a failed copy left (only the files it was writing), then the folder if empty."""
    for e in logs:
        p = folder / e.name
        if p.is_file() and not p.is_symlink():
            p.unlink()
    try:
        folder.rmdir()
    except OSError:
        pass


def _last(msg: str, rc: int) -> str:
    lines = [ln for ln in msg.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else f"exit status {rc}"


def _hint(msg: str, remote: str) -> str:
    low = msg.lower()
    if "failed to access" in low or "no device" in low or "could not" in low:
        return " (is the board connected? `mpremote devs` lists ports)"
    if "busy" in low or "in use" in low:
        return " (port busy: is another program using it?)"
    if "no such file" in low or "enoent" in low:
        return f" (no {remote} on the board: has the firmware logged yet?)"
    return ""
