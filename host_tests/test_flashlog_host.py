"""Host side of lowwater.flashlog: fuzzing the reader (hypothesis), littlefs2 images
written by MicroPython's own VfsLfs2, and the `lowwater log` command."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mprunner
from lowwater_tools import cli
from lowwater_tools.reliability import log as logread
from lowwater_tools.paths import LIB

HDR = logread.HEADER_SIZE
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Guarded(io.RawIOBase):
    """A read-only file that fails the test if the reader ever asks for more
    than one record's payload at once (bounded memory) and counts the work."""

    def __init__(self, data: bytes, chunk: int):
        self._f = io.BytesIO(data)
        self.chunk = chunk
        self.bytes_read = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, pos, whence=0):
        return self._f.seek(pos, whence)

    def tell(self):
        return self._f.tell()

    def readinto(self, b):
        assert len(b) <= max(self.chunk, HDR), f"readinto of {len(b)} bytes"
        n = self._f.readinto(b)
        self.bytes_read += n
        return n

    def read(self, n=-1):
        assert 0 <= n <= logread.MAX_PAYLOAD, f"read({n})"
        d = self._f.read(n)
        self.bytes_read += len(d)
        return d


def scan(data: bytes, from_seq=0, chunk=64):
    f = Guarded(data, chunk)
    rep = logread.FileReport("x", len(data))
    evs = list(logread.scan_file(f, len(data), "x", from_seq, rep, chunk=chunk))
    return evs, rep, f


def check_invariants(data: bytes, evs, rep, tiled=True):
    recs = [e for e in evs if isinstance(e, logread.Record)]
    skips = [e for e in evs if isinstance(e, logread.Skip)]
    # every byte accounted for, and the events tile the file in order
    assert rep.record_bytes + rep.skipped_bytes == len(data)
    assert sum(s.length for s in skips) == rep.skipped_bytes
    pos = 0
    for e in evs:  # with from_seq, skipped-over records leave holes in the tiling
        assert e.offset == pos if tiled else e.offset >= pos, (e.offset, pos)
        pos = e.offset + (e.size if isinstance(e, logread.Record) else e.length)
    assert pos == len(data) or not tiled
    # a returned record is always intact: re-encoding gives the very bytes in the file
    for r in recs:
        assert data[r.offset : r.offset + r.size] == logread.encode(r.seq, r.data)
    return recs


def build(payloads, first_seq=1):
    parts, spans = [], []
    pos = 0
    for i, p in enumerate(payloads):
        b = logread.encode(first_seq + i, p)
        parts.append(b)
        spans.append((pos, pos + len(b), first_seq + i, p))
        pos += len(b)
    return b"".join(parts), spans


payloads = st.lists(st.binary(max_size=80) | st.builds(lambda n: b"\xa5" * n, st.integers(0, 30)), max_size=25)


# --- fuzzing the reader ---------------------------------------------------------


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes_never_crash_and_are_accounted(data):
    evs, rep, _ = scan(data)
    check_invariants(data, evs, rep)


@FUZZ
@given(payloads, st.data())
def test_mutations_of_a_valid_log(ps, draw):
    data, spans = build(ps)
    buf = bytearray(data)
    touched = set()
    for _ in range(draw.draw(st.integers(0, 6))):
        kind = draw.draw(st.sampled_from(["flip", "insert", "delete"]))
        if not buf:
            break
        i = draw.draw(st.integers(0, len(buf) - 1))
        if kind == "flip":
            buf[i] ^= draw.draw(st.integers(1, 255))
            touched.add(("at", i))
        else:
            touched.add(("shift", i))
            if kind == "insert":
                buf[i:i] = draw.draw(st.binary(min_size=1, max_size=30))
            else:
                del buf[i : i + draw.draw(st.integers(1, 30))]
    evs, rep, _ = scan(bytes(buf))
    recs = check_invariants(bytes(buf), evs, rep)
    originals = {(s, p) for _, _, s, p in spans}
    assert {(r.seq, r.data) for r in recs} <= originals
    # records before the first edit, and flips elsewhere, leave every other record readable
    first_shift = min([i for k, i in touched if k == "shift"], default=len(data))
    flips = [i for k, i in touched if k == "at"]
    got = {(r.seq, r.data) for r in recs}
    for a, b, s, p in spans:
        if b <= first_shift and not any(a <= i < b for i in flips):
            assert (s, p) in got, (s, touched)


@FUZZ
@given(payloads, st.integers(0, 10_000))
def test_every_truncation_returns_the_complete_records(ps, cut):
    data, spans = build(ps)
    cut = min(cut, len(data))
    evs, rep, _ = scan(data[:cut])
    recs = check_invariants(data[:cut], evs, rep)
    assert [(r.seq, r.data) for r in recs] == [(s, p) for a, b, s, p in spans if b <= cut]
    tail = [e for e in evs if isinstance(e, logread.Skip)]
    assert all(e.tail for e in tail)  # only the torn tail is skipped


@FUZZ
@given(payloads, st.integers(0, 30), st.integers(1, 4096))
def test_from_seq_and_chunk_size_do_not_change_the_result(ps, from_seq, chunk):
    data, spans = build(ps)
    evs, rep, _ = scan(data, from_seq=from_seq, chunk=chunk)
    recs = check_invariants(data, evs, rep, tiled=from_seq <= 1)
    assert [(r.seq, r.data) for r in recs] == [(s, p) for _, _, s, p in spans if s >= from_seq]
    assert rep.records == len(spans) and rep.skipped_bytes == 0


def test_false_headers_cost_bounded_reads():
    # Headers that pass the magic/check bytes but claim a huge payload past EOF are
    # rejected before reading it; a real but corrupt big record is read once.
    big = logread.encode(7, b"z" * 60_000)
    bad = bytearray(big)
    bad[-1] ^= 1
    junk = bytes(bad[:HDR]) * 50  # 50 torn copies of a 60 kB record: headers only
    data = logread.encode(6, b"ok") + bytes(bad) + junk
    evs, rep, f = scan(data, chunk=4096)
    recs = check_invariants(data, evs, rep)
    assert [(r.seq, r.data) for r in recs] == [(6, b"ok")]
    assert rep.crc_errors == 1
    assert f.bytes_read < 3 * len(data)


def test_device_writer_and_host_reader_agree(tmp_path):
    fl = logread.fl
    log = fl.FlashLog(str(tmp_path / "log"), max_file_bytes=300, max_files=3)
    for i in range(60):
        log.append(b"r%d" % i)
    log.close()
    reports = []
    evs = list(logread.read(tmp_path / "log", reports=reports))
    recs = [e for e in evs if isinstance(e, logread.Record)]
    assert [r.seq for r in recs] == list(range(recs[0].seq, 61))
    assert [r.data for r in recs] == [b"r%d" % (s - 1) for s in range(recs[0].seq, 61)]
    assert len(reports) == 3 and all(r.skipped_bytes == 0 for r in reports)
    # the framing of encode() is byte-identical to FlashLog.append
    first = sorted((tmp_path / "log").iterdir())[0].read_bytes()
    assert first.startswith(logread.encode(recs[0].seq, recs[0].data))


# --- littlefs2 images written by MicroPython's VfsLfs2 ------------------------------

LFS_SCRIPT = r"""
import os, sys
from lowwater.flashlog import FlashLog
class RAMBD:
    def __init__(self, data):
        self.data = data
    def readblocks(self, b, buf, off=0):
        a = b * 4096 + off
        buf[:] = self.data[a:a + len(buf)]
    def writeblocks(self, b, buf, off=None):
        a = b * 4096 + (off or 0)
        self.data[a:a + len(buf)] = buf
    def ioctl(self, op, arg):
        if op == 4: return len(self.data) // 4096
        if op == 5: return 4096
        if op == 6: return 0
img, mode = sys.argv[1], sys.argv[2]
if mode == "new":
    bd = RAMBD(bytearray(64 * 4096))
    os.VfsLfs2.mkfs(bd)
else:
    with open(img, "rb") as f:
        bd = RAMBD(bytearray(f.read()))
os.mount(os.VfsLfs2(bd), "/fs")
log = FlashLog("/fs/log", max_file_bytes=512, max_files=3)
print("SEQ", log.seq)
n0 = log.seq
for i in range(n0 + 1, n0 + 151):
    log.append(b"rec %d" % i)
log.flush()
print("READ", [s for s, _ in log.read()] == list(range(n0 + 151 - len(list(log.read())), n0 + 151)))
for i in range(5):
    log.append(b"lost %d" % i)  # appended, never flushed: the "power" goes now
with open(img, "wb") as f:  # the flash as it is, with the file still open
    f.write(bd.data)
print("FILES", sorted(os.listdir("/fs/log")))
"""


def run_lfs(tmp_path, img, mode):
    script = tmp_path / "lfs_script.py"
    script.write_text(LFS_SCRIPT)
    res = mprunner.run([str(script), str(img), mode], heap=4 << 20, timeout=60)
    assert res.returncode == 0, res.out
    return res.out


def test_littlefs_image_from_micropython(tmp_path, capsys):
    img = tmp_path / "board.img"
    out = run_lfs(tmp_path, img, "new")
    assert "SEQ 0" in out and "READ True" in out
    recs = [e for e in logread.read(img) if isinstance(e, logread.Record)]
    # rotation kept the newest files; exactly the flushed records are on flash:
    # littlefs commits a file's data on flush (lfs_file_sync), unflushed appends vanish
    seqs = [r.seq for r in recs]
    assert seqs == list(range(seqs[0], 151)) and seqs[0] > 1
    assert all(r.data == b"rec %d" % r.seq for r in recs)
    # the board restarts on that flash: seq resumes after the last flushed record
    out = run_lfs(tmp_path, img, "again")
    assert "SEQ 150" in out and "READ True" in out
    seqs = [e.seq for e in logread.read(img) if isinstance(e, logread.Record)]
    assert seqs[-1] == 300 and seqs == list(range(seqs[0], 301))
    # and the command reads the image
    assert cli.main(["log", "read", str(img), "--json", "--from", "299"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(d["seq"], d["text"]) for d in lines] == [(299, "rec 299"), (300, "rec 300")]


def test_littlefs_image_written_by_littlefs_python(tmp_path, capsys):
    from littlefs import LittleFS

    fs = LittleFS(block_size=4096, block_count=32)
    fs.mkdir("/data")
    with fs.open("/data/00000004.log", "wb") as f:
        f.write(logread.encode(10, b"\x00\x01binary") + logread.encode(11, b"text"))
    img = tmp_path / "x.img"
    img.write_bytes(bytes(fs.context.buffer) + b"\xff" * 8192)  # fs followed by other flash
    assert cli.main(["log", "read", str(img), "--path", "/data", "--fs-size", str(32 * 4096)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["seq=10 len=8 hex=000162696e617279", 'seq=11 len=4 text="text"']
    # without --fs-size the block count (34) disagrees with the superblock's (32)
    assert cli.main(["log", "read", str(img), "--path", "/data"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a littlefs2 image" in err[0] and "--fs-size" in err[0]
    assert cli.main(["log", "read", str(img), "--fs-size", str(32 * 4096)]) == 1  # default --path /log
    assert "no folder /log" in capsys.readouterr().err


# --- the command ------------------------------------------------------------------


def write_log(d: Path, n=5):
    fl = logread.fl
    log = fl.FlashLog(str(d), max_file_bytes=4096, max_files=2)
    for i in range(1, n + 1):
        log.append(b"line %d" % i if i % 2 else bytes([i, 0xA5, 0xFF]))
    log.close()
    return d / "00000001.log"


def test_read_file_and_dir_text_and_json(tmp_path, capsys):
    f = write_log(tmp_path / "log")
    assert cli.main(["log", "read", str(f)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        'seq=1 len=6 text="line 1"',
        "seq=2 len=3 hex=02a5ff",
        'seq=3 len=6 text="line 3"',
        "seq=4 len=3 hex=04a5ff",
        'seq=5 len=6 text="line 5"',
    ]
    assert "5 records" in err and "0 bytes skipped" in err
    assert cli.main(["log", "read", str(tmp_path / "log"), "--json", "--from", "4"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"seq": 4, "len": 3, "file": "00000001.log", "offset": lines[0]["offset"], "hex": "04a5ff"}
    assert lines[1]["text"] == "line 5"


def test_read_reports_skipped_bytes(tmp_path, capsys):
    f = write_log(tmp_path / "log")
    raw = f.read_bytes()
    f.write_bytes(raw[:20] + b"GARBAGE" + raw[20:] + b"\xa5\x00torn")
    assert cli.main(["log", "read", str(f), "--json"]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(x) for x in out.splitlines()]
    skips = [d for d in lines if "skip" in d]
    assert sum(d["skip"] for d in skips) == 7 + 15 + 6  # garbage, the record it broke, the tail
    assert skips[-1]["tail"] is True
    assert "skipped" in err and "torn tail" in err
    assert [d["seq"] for d in lines if "seq" in d] == [1, 3, 4, 5]
    assert cli.main(["log", "read", str(f), "--strict"]) == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith("lowwater: ")


@pytest.mark.parametrize(
    "content,msg",
    [
        (b"\x00" * 100, "no intact records"),
        (os.urandom(5000), "no intact records"),
        (b"\x00" * 8 + b"littlefs" + b"\x00" * (2 * 4096 - 16), "not a littlefs2 image"),
    ],
)
def test_malformed_input_is_one_line_exit_1(tmp_path, content, msg):
    p = tmp_path / "bad.bin"
    p.write_bytes(content)
    r = subprocess.run(
        [sys.executable, "-m", "lowwater_tools.cli", "log", "read", str(p)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("lowwater: ") and msg in last and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "args,msg",
    [
        (["nope"], "no such file or folder"),
        (["EMPTY"], "no log files"),
        (["IMG", "--fs-size", "1000"], "from 4096"),  # the argument's own range check
        (["IMG", "--fs-size", str(1 << 30)], "smaller than --fs-size"),
    ],
)
def test_read_user_errors(tmp_path, capsys, args, msg):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "IMG").write_bytes(b"\xff" * 8192)
    args = [str(tmp_path / a) if a in ("nope", "EMPTY", "IMG") else a for a in args]
    try:
        rc = cli.main(["log", "read", *args])
    except SystemExit as e:  # an argument's own check (lowwater_tools.args) exits 1
        rc = e.code
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lowwater: ") and msg in err[-1]


def test_pull_from_a_missing_port_is_a_user_error(tmp_path, capsys):
    out = tmp_path / "pulled"
    rc = cli.main(["log", "pull", "--port", "/dev/lowwater-no-such-port", "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith("lowwater: ") and "/dev/lowwater-no-such-port" in err[-1]
    assert not out.exists()


def test_pull_refuses_a_non_empty_output(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("x")
    assert cli.main(["log", "pull", "--port", "/dev/null", "-o", str(tmp_path / "o")]) == 1
    assert "not an empty folder" in capsys.readouterr().err
    assert (tmp_path / "o" / "keep.txt").exists()


def test_lib_module_is_what_the_host_uses():
    assert Path(logread.fl.__file__).resolve().parent == (LIB / "lowwater").resolve()


# --- odd trees: foreign names, wrapped indices, duplicates (issue 13) -------------


def test_host_reader_ignores_foreign_names_and_directories(tmp_path, capsys):
    from littlefs import LittleFS

    d = tmp_path / "log"
    d.mkdir()
    (d / "00000001.log").write_bytes(logread.encode(1, b"one") + logread.encode(2, b"two"))
    (d / "00000002.LOG").write_bytes(logread.encode(9, b"upper case: not ours"))
    (d / "00000003.log").mkdir()
    (d / "000000004.log").write_bytes(logread.encode(10, b"nine digits"))
    assert [e.seq for e in logread.read(d) if isinstance(e, logread.Record)] == [1, 2]
    fs = LittleFS(block_size=4096, block_count=32)
    fs.mkdir("/log")
    fs.mkdir("/log/00000002.log")  # a directory with a log file's name
    with fs.open("/log/00000001.log", "wb") as f:
        f.write(logread.encode(1, b"one"))
    img = tmp_path / "x.img"
    img.write_bytes(bytes(fs.context.buffer))
    assert cli.main(["log", "read", str(img)]) == 0
    assert capsys.readouterr().out.splitlines() == ['seq=1 len=3 text="one"']


def test_host_reader_follows_indices_that_wrap(tmp_path):
    d = tmp_path / "log"
    d.mkdir()
    (d / "99999999.log").write_bytes(logread.encode(1, b"a"))
    (d / "00000000.log").write_bytes(logread.encode(2, b"b"))
    (d / "00000001.log").write_bytes(logread.encode(3, b"c"))
    assert [e.seq for e in logread.read(d) if isinstance(e, logread.Record)] == [1, 2, 3]


def test_duplicated_file_and_replayed_record_give_no_duplicate_seqs(tmp_path, capsys):
    d = tmp_path / "log"
    d.mkdir()
    one = logread.encode(1, b"one") + logread.encode(2, b"two")
    (d / "00000001.log").write_bytes(one)
    (d / "00000002.log").write_bytes(logread.encode(3, b"three") + logread.encode(1, b"one"))  # replayed
    (d / "00000003.log").write_bytes(one)  # a duplicated file
    (d / "00000004.log").write_bytes(logread.encode(4, b"four"))
    evs = list(logread.read(d))
    assert [e.seq for e in evs if isinstance(e, logread.Record)] == [1, 2, 3, 4]
    dups = [e for e in evs if isinstance(e, logread.Skip) and e.dup]
    assert len(dups) == 3 and all(e.length == HDR + 3 for e in dups)
    assert cli.main(["log", "read", str(d)]) == 0
    out, err = capsys.readouterr()
    assert [ln.split()[0] for ln in out.splitlines()] == ["seq=1", "seq=2", "seq=3", "seq=4"]
    assert "(duplicate seq)" in err and "3 duplicate records skipped" in err
    # and the board's own reader agrees, and resumes above every seq in the log
    log = logread.fl.FlashLog(str(d), max_file_bytes=4096, max_files=8)
    assert [s for s, _ in log.read()] == [1, 2, 3, 4] and log.stats["duplicates"] == 3
    assert log.seq == 4 and log.append(b"five") == 5
    log.close()
