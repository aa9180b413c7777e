# lowwater.flashlog: a power-loss-safe, append-only record log in rotating files.
# Format, recovery and costs: docs/flashlog.md (a record: u8 magic 0xA5, u8
# header check, u16 length, u32 seq, u32 CRC32 of bytes 0..7 and the payload,
# then the payload; little-endian). The host reader uses this module's Scanner.
# append() allocates nothing per record on any port, 32-bit boards included
# (its CRC32 runs in 16-bit halves, crc_update: no value reaches 2**30), except
# when it rotates. flush(), read(), stats, open and recovery allocate. Not
# IRQ-safe (file I/O).
import os

from lowwater._compat import const

try:
    from binascii import crc32 as _crc
except ImportError:  # a port built without MICROPY_PY_BINASCII_CRC32
    _crc = None

MAGIC = const(0xA5)
HEADER_SIZE = const(12)
MAX_PAYLOAD = const(0xFFFF)
SUFFIX = ".log"
_MAGIC = const(0xA5)
_HX = const(0x5A)
_HDR = const(12)
_MAXP = const(0xFFFF)
_NAMELEN = const(12)  # "00000001.log"

_NIDX = const(100000000)  # file indices 0..99999999, then 0 again
_IFDIR = const(0x4000)

_T = None  # CRC-32 table in 16-bit halves: _T[k] low, _T[256 + k] high


def crc_table():
    """Build the table crc_update needs (once: an array of 512 u16, 1 KB)."""
    global _T  # module state on purpose: one table for every log
    if _T is None:
        from array import array

        t = array("H", bytearray(1024))
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            t[i] = c & 0xFFFF
            t[256 + i] = c >> 16
        _T = t
    return _T


def crc_update(st, buf, n):
    """Run the CRC-32 state st ([low16, high16], a list) over buf[0:n], after
    crc_table(). Every value stays below 2**16: no heap int, no allocation.
    Seven locals: one more and the frame goes on the heap on every call."""
    lo = st[0]
    hi = st[1]
    i = 0
    while i < n:
        k = (lo ^ buf[i]) & 0xFF
        lo = ((lo >> 8) | ((hi & 0xFF) << 8)) ^ _T[k]
        hi = (hi >> 8) ^ _T[256 + k]
        i += 1
    st[0] = lo
    st[1] = hi


def crc32_py(buf, crc=0):
    """CRC-32 (zlib/binascii polynomial), the pure-Python twin of binascii.crc32
    (through crc_update; the returned int itself is boxed on 32-bit if >= 2**30)."""
    crc_table()
    crc ^= 0xFFFFFFFF
    st = [crc & 0xFFFF, crc >> 16]
    crc_update(st, buf, len(buf))
    return ((st[1] << 16) | st[0]) ^ 0xFFFFFFFF


if _crc is None:
    _crc = crc32_py
crc32 = _crc


def header_ok(h):
    """Payload length if h[0:12] is a well-formed header (magic and check), else -1."""
    if h[0] != _MAGIC or h[1] != _HX ^ h[2] ^ h[3] ^ h[4] ^ h[5] ^ h[6] ^ h[7]:
        return -1
    return h[2] | (h[3] << 8)


def file_name(index):
    return "%08d%s" % (index, SUFFIX)


def file_index(name):
    """Index of a log file name ("00000007.log" -> 7), or -1 for other names
    ("00000007.LOG", "7.log", "000000007.log" are foreign: ignored)."""
    if len(name) != _NAMELEN or name[8:] != SUFFIX:
        return -1
    d = name[:8]
    for c in d:
        if c < "0" or c > "9":
            return -1
    return int(d)


class Scanner:
    """Finds the intact records of one log file; shared by the device and the host.

    s = Scanner(); for seq, off, n, data in s.records(f, size): ...
    Every byte of a file is in a yielded record or skipped; s.crc_errors counts
    well-formed headers whose CRC failed."""

    def __init__(self, chunk=128):
        self._h = bytearray(_HDR)
        self._h8 = memoryview(self._h)[:8]
        self._b = bytearray(chunk)
        self._m = memoryview(self._b)
        self.crc_errors = 0

    def records(self, f, size, from_seq=0, want=True, maxp=_MAXP):
        """Yield (seq, offset, length, data) for each intact record of the open
        binary file f of size bytes, in file order. data is bytes, or None when
        not wanted or seq < from_seq. The CRC is checked before the payload is
        read, so at most one record (n <= maxp) is ever held in memory."""
        h = self._h
        pos = 0
        while pos + _HDR <= size:
            f.seek(pos)
            if f.readinto(h) != _HDR:
                break
            n = header_ok(h)
            if 0 <= n <= maxp and pos + _HDR + n <= size:
                # CRC first, streaming: garbage never makes us allocate n bytes.
                if self._stream(f, n) == self._stored():
                    seq = h[4] | (h[5] << 8) | (h[6] << 16) | (h[7] << 24)
                    data = None
                    if want and seq >= from_seq:
                        f.seek(pos + _HDR)
                        data = f.read(n)
                    yield seq, pos, n, data
                    pos += _HDR + n
                    continue
                self.crc_errors += 1
            pos = self._sync(f, pos + 1, size)

    def _stored(self):
        h = self._h
        return h[8] | (h[9] << 8) | (h[10] << 16) | (h[11] << 24)

    def _stream(self, f, n):
        # CRC of the header's first 8 bytes and the next n bytes of f, through the
        # chunk buffer. Few locals: a bigger frame would be heap-allocated per call.
        # A partial chunk costs two memoryview slices.
        c = _crc(self._h8)
        while n > 0:
            k = f.readinto(self._b if n >= len(self._b) else self._m[:n])
            if not k:
                return -1
            c = _crc(self._b if k == len(self._b) else self._m[:k], c)
            n -= k
        return c

    def _sync(self, f, pos, size):
        # Offset of the next MAGIC byte at or after pos that could start a header, else size.
        b = self._b
        lim = size - _HDR
        while pos <= lim:
            f.seek(pos)
            k = f.readinto(b)
            if not k:
                break
            i = 0
            while i < k:
                if b[i] == _MAGIC:
                    return pos + i
                i += 1
            pos += k
        return size


def _size(path):
    return os.stat(path)[6]


def log_order(idx):
    """Sorted file indices -> oldest-first order. Indices wrap after 99999999,
    and the files of a log are consecutive: the oldest is the one after the
    largest gap (a stray 99999999.log before 00000001.log is the oldest)."""
    n = len(idx)
    if n < 2:
        return idx
    best = idx[0] + _NIDX - idx[-1]  # the wrap gap: plain sorted order
    at = 0
    for j in range(1, n):
        if idx[j] - idx[j - 1] > best:
            best = idx[j] - idx[j - 1]
            at = j
    return idx[at:] + idx[:at]


class FlashLog:
    """Append-only record log in the directory `path` (created if missing).

    log = FlashLog("/log", max_file_bytes=16384, max_files=4)
    seq = log.append(b"reading"); log.flush()
    for seq, data in log.read(from_seq=0): ...
    Files are path/NNNNNNNN.log; at most max_files of at most max_file_bytes."""

    def __init__(self, path, max_file_bytes=16384, max_files=4):
        if max_file_bytes <= _HDR:
            raise ValueError("max_file_bytes must be > %d" % _HDR)
        if max_files < 2:
            raise ValueError("max_files must be >= 2")
        while len(path) > 1 and path[-1] == "/":
            path = path[:-1]
        self.path = path
        self._pre = path if path[-1:] == "/" else path + "/"
        self._maxf = max_file_bytes
        self._maxfiles = max_files
        self._maxp = min(max_file_bytes - _HDR, _MAXP)
        self._room = max_file_bytes - _HDR  # a record fits while size + n <= room
        self._h = bytearray(_HDR)
        self._hm = memoryview(self._h)
        self._h8 = self._hm[:8]
        self._st = [0, 0]  # CRC state of append(), see crc_update
        crc_table()
        self._scan = Scanner()
        self._f = None
        self._seq = 0
        self._size = 0
        self._idx = 0
        self._records = 0
        self._bytes = 0
        self._skipped = 0
        self._dups = 0
        self.recovered_truncated_bytes = 0
        try:
            os.mkdir(path)
        except OSError:
            pass  # exists (or a real problem, which listdir reports)
        self._recover()

    # --- start-up -------------------------------------------------------------

    def _files(self):
        # Indices of the log files in the directory, oldest first. A directory
        # (or anything but a regular file) with a log file's name is ignored.
        idx = []
        for name in os.listdir(self.path):
            i = file_index(name)
            if i >= 0 and self._kind(i) == 1:
                idx.append(i)
        idx.sort()
        return log_order(idx)

    def _kind(self, index):
        # 0: no such entry, 1: a regular file, 2: something else (a directory).
        try:
            m = os.stat(self._name(index))[0]
        except OSError:
            return 0
        return 2 if m & _IFDIR else 1

    def _name(self, index):
        return self._pre + file_name(index)

    def _recover(self):
        # Newest file: find its last intact record. A clean tail -> append to it;
        # a torn tail -> leave it (readers skip it) and start the next file.
        # Every file is scanned: the seq resumes above the highest seq anywhere
        # in the log (a duplicated file or a replayed record cannot lower it).
        idx = self._files()
        fresh = True
        top = 0
        for k in range(len(idx) - 1, -1, -1):
            name = self._name(idx[k])
            size = _size(name)
            end = 0
            with open(name, "rb") as f:
                for seq, off, n, _ in self._scan.records(f, size, want=False):
                    end = off + _HDR + n
                    if seq > top:
                        top = seq
            if k == len(idx) - 1:
                self._idx = idx[k]
                self.recovered_truncated_bytes = size - end
                if end == size:
                    fresh = False
                    self._size = size
        self._seq = top
        if fresh:
            self._open_next()
        else:
            self._f = open(self._name(self._idx), "ab", 0)

    def _open_next(self):
        # Delete the oldest files so that, with the new one, at most max_files exist.
        idx = self._files()
        while len(idx) >= self._maxfiles:
            os.remove(self._name(idx.pop(0)))
        self._idx = (self._idx + 1) % _NIDX
        while self._kind(self._idx) == 2:  # a foreign directory holds the name
            self._idx = (self._idx + 1) % _NIDX
        self._size = 0
        self._f = open(self._name(self._idx), "ab", 0)

    def _rotate(self):
        self._f.close()
        self._f = None
        self._open_next()

    # --- hot path ---------------------------------------------------------------

    def append(self, data):
        """Write one record (bytes-like, at most max_file_bytes - 12 bytes); return its seq.
        Durable after the next flush() (docs/flashlog.md)."""
        n = len(data)
        if n > self._maxp:
            raise ValueError("record too large")
        if self._size + n > self._room:
            self._rotate()
        s = self._seq + 1
        self._head(n, s)
        self._seal(data)
        self._f.write(self._hm)
        self._f.write(data)
        self._seq = s
        self._size += _HDR + n
        self._records += 1
        self._bytes += _HDR + n
        return s

    def _head(self, n, s):
        # Few locals on purpose: frames over ~11 words are heap-allocated per call.
        h = self._h
        h[0] = _MAGIC
        h[2] = n & 0xFF
        h[3] = n >> 8
        h[4] = s & 0xFF
        h[5] = (s >> 8) & 0xFF
        h[6] = (s >> 16) & 0xFF
        h[7] = (s >> 24) & 0xFF
        h[1] = _HX ^ h[2] ^ h[3] ^ h[4] ^ h[5] ^ h[6] ^ h[7]

    def _seal(self, data):
        # CRC32 of header bytes 0..7 and data, in 16-bit halves (no heap int).
        h = self._h
        st = self._st
        st[0] = 0xFFFF
        st[1] = 0xFFFF
        crc_update(st, h, 8)
        crc_update(st, data, len(data))
        h[8] = (st[0] ^ 0xFF) & 0xFF
        h[9] = (st[0] >> 8) ^ 0xFF
        h[10] = (st[1] ^ 0xFF) & 0xFF
        h[11] = (st[1] >> 8) ^ 0xFF

    def flush(self):
        """Make every record appended so far durable: file.flush() is lfs_file_sync
        on littlefs, f_sync on FAT, fsync on the unix port's VfsPosix."""
        if self._f is not None:
            self._f.flush()

    # --- reading and status -------------------------------------------------------

    def read(self, from_seq=0):
        """Yield (seq, data) for every intact record with seq >= from_seq, oldest
        first. Flushes first. Corrupt or torn records are skipped (stats counts them);
        seqs only increase: a record whose seq is not above the last one yielded
        (a duplicated file, a replayed record) is skipped too (stats duplicates)."""
        self.flush()
        sc = self._scan
        sc.crc_errors = 0
        self._skipped = 0
        self._dups = 0
        last = -1
        for i in self._files():
            name = self._name(i)
            try:
                size = _size(name)
            except OSError:
                continue  # rotated away meanwhile
            end = 0
            with open(name, "rb") as f:
                for seq, off, n, data in sc.records(f, size, from_seq):
                    self._skipped += off - end
                    end = off + _HDR + n
                    if seq <= last:
                        self._dups += 1
                        continue
                    last = seq
                    if data is not None:
                        yield seq, data
            self._skipped += size - end

    @property
    def seq(self):
        """The last sequence number written (0 for a new, empty log)."""
        return self._seq

    @property
    def stats(self):
        """records/bytes appended since open, files, last seq, torn bytes found at
        open; crc_errors (before any read: of the recovery scan), skipped_bytes
        and duplicates (seq not above the last one) of the last read()."""
        return {
            "records": self._records,
            "bytes": self._bytes,
            "files": len(self._files()),
            "seq": self._seq,
            "recovered_truncated_bytes": self.recovered_truncated_bytes,
            "crc_errors": self._scan.crc_errors,
            "skipped_bytes": self._skipped,
            "duplicates": self._dups,
        }

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
