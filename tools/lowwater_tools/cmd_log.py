"""`lowwater log read|pull`: read a flashlog (file, folder, littlefs image) or pull it from a board."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from . import logread
from .errors import UserError
from .paths import tool_exe

HELP = "read a flash record log (file, folder or littlefs image) or pull one from a board"

PULL_TIMEOUT = 300  # seconds for the whole mpremote copy


def _int(s: str) -> int:
    try:
        return int(s, 0)
    except ValueError:
        raise ValueError(s) from None


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
        type=_int,
        default=None,
        metavar="N",
        help="treat the input as a littlefs2 image whose file system is its first N bytes "
        "(default: the whole file, when it is an image)",
    )
    q = sub.add_parser("pull", help="copy the log folder from a board with mpremote, then read it")
    q.add_argument("--port", required=True, help="serial port of the board (see `mpremote devs`)")
    q.add_argument(
        "-o",
        "--output",
        default="lowwater-log",
        metavar="DIR",
        help="local folder for the copy; must not exist or be empty (default: lowwater-log)",
    )
    _read_options(q)
    q.add_argument("--quiet", action="store_true", help="copy only, print no records")


def _read_options(p):
    p.add_argument("--from", dest="from_seq", type=_int, default=0, metavar="SEQ", help="only records with seq >= SEQ")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--path", default="/log", help="log folder on the board / in the image (default /log)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any byte had to be skipped")


def run(args) -> int:
    if args.log_command == "pull":
        return _pull(args)
    return _read(args.target, args, getattr(args, "fs_size", None))


def _emit(ev, as_json: bool, out, notes: list[str] | None) -> None:
    """Write a record (stdout) or a skipped run (stderr). While `notes` is a
    list, skip lines are held there instead: until the first intact record it
    is not known whether the input is a log at all (then one error line only)."""
    if isinstance(ev, logread.Record):
        text = logread.printable(ev.data)
        if as_json:
            obj = {"seq": ev.seq, "len": len(ev.data), "file": ev.file, "offset": ev.offset, "hex": ev.data.hex()}
            if text is not None:
                obj["text"] = text
            out.write(json.dumps(obj) + "\n")
        else:
            shown = "text=" + json.dumps(text) if text is not None else "hex=" + ev.data.hex()
            out.write(f"seq={ev.seq} len={len(ev.data)} {shown}\n")
    else:
        what = "torn tail" if ev.tail and ev.offset else "garbage"
        if as_json:
            out.write(json.dumps({"skip": ev.length, "file": ev.file, "offset": ev.offset, "tail": ev.tail}) + "\n")
        line = f"lowwater: {ev.file}: skipped {ev.length} bytes at offset {ev.offset} ({what})"
        if notes is None:
            print(line, file=sys.stderr)
        else:
            notes.append(line)


def _read(target, args, fs_size) -> int:
    reports: list[logread.FileReport] = []
    out = sys.stdout
    notes: list[str] | None = []
    for ev in logread.read(target, args.from_seq, fs_size, args.path, reports):
        if notes is not None and isinstance(ev, logread.Record):
            for line in notes:
                print(line, file=sys.stderr)
            notes = None
        _emit(ev, args.json, out, notes)
    out.flush()
    records = sum(r.records for r in reports)
    skipped = sum(r.skipped_bytes for r in reports)
    total = sum(r.size for r in reports)
    crc = sum(r.crc_errors for r in reports)
    seqs = [r for r in reports if r.first_seq is not None]
    span = f", seq {seqs[0].first_seq}..{seqs[-1].last_seq}" if seqs else ""
    if total and not records:
        raise UserError(f"{target}: no intact records ({skipped} of {total} bytes skipped): not a lowwater log?")
    for line in notes or ():
        print(line, file=sys.stderr)
    print(
        f"lowwater: {len(reports)} file(s), {total} bytes: {records} records{span}, "
        f"{skipped} bytes skipped, {crc} CRC errors",
        file=sys.stderr,
    )
    if args.strict and skipped:
        raise UserError(f"{target}: {skipped} bytes skipped (--strict)")
    return 0


def _pull(args) -> int:
    out = Path(args.output)
    if out.exists():
        if not out.is_dir() or any(out.iterdir()):
            raise UserError(f"{out}: exists and is not an empty folder: choose another -o DIR")
        out.rmdir()  # mpremote copies INTO an existing folder; we want the folder itself
    remote = "/" + args.path.strip("/")
    cmd = [tool_exe("mpremote"), "connect", args.port, "fs", "cp", "-r", ":" + remote, str(out)]
    try:
        p = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=PULL_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise UserError(f"mpremote timed out after {PULL_TIMEOUT}s copying :{remote} from {args.port}") from None
    msg = p.stdout.decode("utf-8", "replace").strip()
    if p.returncode != 0:
        last = msg.splitlines()[-1] if msg else f"exit status {p.returncode}"
        hint = ""
        low = msg.lower()
        if "failed to access" in low or "no device" in low or "could not" in low:
            hint = " (is the board connected? `mpremote devs` lists ports)"
        elif "busy" in low or "in use" in low:
            hint = " (port busy: is another program using it?)"
        elif "no such file" in low or "enoent" in low:
            hint = f" (no {remote} on the board: has the firmware logged yet?)"
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # leave nothing behind from a failed copy
        raise UserError(f"pull from {args.port} failed: {last}{hint}")
    if not out.is_dir():
        raise UserError(f":{remote} on {args.port} is not a folder")
    print(f"lowwater: copied :{remote} from {args.port} to {out}", file=sys.stderr)
    if args.quiet:
        return 0
    return _read(out, args, None)
