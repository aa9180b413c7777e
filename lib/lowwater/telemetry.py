# lowwater.telemetry: the device-side writer of LW1 records (docs/telemetry.md).
#
# Allocation: __init__ allocates (a digit buffer, its tail views, the write
# functions). After that every record method writes constant strings and ints
# through the preallocated buffer and allocates nothing on MicroPython (mem,
# lvl, stat, shed, err, boot measured at 0 bytes on the unix port with a native
# stream, host_tests/portable/test_telemetry_device.py), with two exceptions:
#   - end() takes 10 arguments, so its frame (11 locals) goes on the heap; it
#     runs once per run.
#   - record() collects *pairs into a tuple; it is for rare, later kinds.
# An int outside +-(2**30 - 1) (a long int on a 32-bit board) is written with
# str(), which allocates; board figures (bytes, us, ticks_ms) are all inside.
# Not IRQ-safe: stream writes may block.
import sys

from lowwater._compat import const, ticks_ms

_TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/+-"
_KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
# The `end` record's keys, for end_values().
_END_KEYS = (
    " chunks=",
    " processed=",
    " dropped=",
    " errors=",
    " lw=",
    " gc_max_us=",
    " gc_mean_us=",
    " checks=",
    " warn=",
    " critical=",
    " left=",
)

# Digit buffer: a sign and the 10 digits of 2**30 - 1, the largest small int
# of a 32-bit board (ticks_ms wraps there too).
_NUM = const(11)
_SMALL = const(0x3FFFFFFF)


def _accepts(write, empty):
    # Probe a stream once: does its write() take this type? (A CPython text
    # stream refuses bytes, a CPython binary stream refuses str; MicroPython's
    # streams take both.) Writing an empty object outputs nothing.
    try:
        write(empty)
    except TypeError:
        return False
    return True


def _is_token(s, chars):
    if type(s) is not str or not s:
        return False
    for c in s:
        if c not in chars:
            return False
    return True


class Telemetry:
    """Writes LW1 records to a stream (default sys.stdout).

    tel = Telemetry()
    tel.mem(1, 98304, 32768, 98304, "ok", 41)
    # LW1 mem t=120 n=1 free=98304 alloc=32768 lw=98304 lvl=ok gc_us=41

    Telemetry(enabled=False) writes nothing (quiet runs, tests); `clock` replaces
    ticks_ms for the `t` stamp (tests).
    """

    def __init__(self, stream=None, enabled=True, clock=None):
        self.enabled = enabled
        self.stream = None
        self._clock = clock or ticks_ms
        self._num = bytearray(_NUM)
        mv = memoryview(self._num)
        # _tail[k] is a view of the last k bytes of the digit buffer: ints are
        # written right-aligned and sent with one write, without slicing.
        self._tail = tuple([mv[_NUM - k :] for k in range(_NUM + 1)])
        if not enabled:
            return
        stream = sys.stdout if stream is None else stream
        self.stream = stream
        w = stream.write
        by = _accepts(w, b"")
        st = _accepts(w, "")
        if not (by or st):
            raise ValueError("stream takes neither str nor bytes")
        # _ws writes a str constant, _wb a bytes-like view; both are the
        # stream's own write when it takes both (every MicroPython stream).
        self._ws = w if st else (lambda s: w(s.encode()))
        self._wb = w if by else (lambda b: w(str(b, "ascii")))

    # -- building blocks (hot: no allocation, few locals) -----------------

    def _int(self, v):
        if v > _SMALL or v < -_SMALL:
            self._ws(str(v))  # long int: rare, allocates
            return
        b = self._num
        i = _NUM
        neg = v < 0
        if neg:
            v = -v
        while True:
            i -= 1
            b[i] = 48 + v % 10
            v //= 10
            if not v:
                break
        if neg:
            i -= 1
            b[i] = 45  # "-"
        self._wb(self._tail[_NUM - i])

    def _head(self, prefix):
        # prefix is a constant "LW1 <kind> t="
        self._ws(prefix)
        self._int(self._clock())

    def _val(self, v):
        # A value for the rarer records: int, bool (as 1/0) or a bare token.
        if v is True or v is False:
            self._ws("1" if v else "0")
        elif type(v) is int:
            self._int(v)
        elif _is_token(v, _TOKEN_CHARS):
            self._ws(v)
        else:
            raise ValueError("value not an int or token")

    # -- the kinds of docs/telemetry.md ----------------------------------

    def boot(self, board, heap, warn, min, chunk, count, ver):
        if not self.enabled:
            return
        self._head("LW1 boot t=")
        self._ws(" board=")
        self._val(board)
        self._ws(" heap=")
        self._int(heap)
        self._ws(" warn=")
        self._int(warn)
        self._ws(" min=")
        self._int(min)
        self._ws(" chunk=")
        self._int(chunk)
        self._ws(" count=")
        self._int(count)
        self._ws(" ver=")
        self._val(ver)
        self._ws("\n")

    def mem(self, n, free, alloc, lw, lvl, gc_us):
        if not self.enabled:
            return
        self._head("LW1 mem t=")
        self._ws(" n=")
        self._int(n)
        self._ws(" free=")
        self._int(free)
        self._ws(" alloc=")
        self._int(alloc)
        self._ws(" lw=")
        self._int(lw)
        self._ws(" lvl=")
        self._ws(lvl)  # one of the budget's level constants
        self._ws(" gc_us=")
        self._int(gc_us)
        self._ws("\n")

    def lvl(self, old, new, free):
        if not self.enabled:
            return
        self._head("LW1 lvl t=")
        self._ws(" from=")
        self._ws(old)
        self._ws(" to=")
        self._ws(new)
        self._ws(" free=")
        self._int(free)
        self._ws("\n")

    def shed(self, what, nbytes, entries):
        if not self.enabled:
            return
        self._head("LW1 shed t=")
        self._ws(" what=")
        self._val(what)
        self._ws(" bytes=")
        self._int(nbytes)
        self._ws(" entries=")
        self._int(entries)
        self._ws("\n")

    def stat(self, chunks, processed, dropped, errors, smin, smax, smean):
        # 8 locals + a stack of 3: the frame still fits on the C stack.
        if not self.enabled:
            return
        self._head("LW1 stat t=")
        self._ws(" chunks=")
        self._int(chunks)
        self._ws(" processed=")
        self._int(processed)
        self._ws(" dropped=")
        self._int(dropped)
        self._ws(" errors=")
        self._int(errors)
        self._ws(" smin=")
        self._int(smin)
        self._ws(" smax=")
        self._int(smax)
        self._ws(" smean=")
        self._int(smean)
        self._ws("\n")

    def window(self, w):
        """The `stat` record of a window summary w (lowwater.window: produced,
        processed, dropped, errors, min, max, mean): the same line as stat(),
        from an array, so the caller's frame stays small (no heap)."""
        if not self.enabled:
            return
        self._head("LW1 stat t=")
        self._ws(" chunks=")
        self._int(w[0])
        self._ws(" processed=")
        self._int(w[1])
        self._ws(" dropped=")
        self._int(w[2])
        self._ws(" errors=")
        self._int(w[3])
        self._ws(" smin=")
        self._int(w[4])
        self._ws(" smax=")
        self._int(w[5])
        self._ws(" smean=")
        self._int(w[6])
        self._ws("\n")

    def log(self, seq):
        """The `log` record after a flush: `LW1 log t=.. seq=<seq> durable=1`
        (the same line as record("log", "seq", seq, "durable", 1), without
        allocating)."""
        if not self.enabled:
            return
        self._head("LW1 log t=")
        self._ws(" seq=")
        self._int(seq)
        self._ws(" durable=1\n")

    def err(self, where, exc_name):
        if not self.enabled:
            return
        self._head("LW1 err t=")
        self._ws(" where=")
        self._val(where)
        self._ws(" exc=")
        self._val(exc_name)
        self._ws("\n")

    def end(self, chunks, processed, dropped, errors, lw, gc_max_us, gc_mean_us, checks, warn, critical):
        if not self.enabled:
            return
        self._head("LW1 end t=")
        self._ws(" chunks=")
        self._int(chunks)
        self._ws(" processed=")
        self._int(processed)
        self._ws(" dropped=")
        self._int(dropped)
        self._ws(" errors=")
        self._int(errors)
        self._ws(" lw=")
        self._int(lw)
        self._ws(" gc_max_us=")
        self._int(gc_max_us)
        self._ws(" gc_mean_us=")
        self._int(gc_mean_us)
        self._ws(" checks=")
        self._int(checks)
        self._ws(" warn=")
        self._int(warn)
        self._ws(" critical=")
        self._int(critical)
        self._ws("\n")

    def end_values(self, v):
        """The `end` record from a list of 11 ints: end()'s ten values, then
        `left` (chunks still in the ring; written only when not 0). A one-argument
        frame: with the heap exhausted the `end` record still goes out
        (Firmware.finish)."""
        if not self.enabled:
            return
        self._head("LW1 end t=")
        i = 0
        while i < 11:
            if i < 10 or v[10]:
                self._ws(_END_KEYS[i])
                self._int(v[i])
            i += 1
        self._ws("\n")

    def record(self, kind, *pairs):
        """Any other kind: record("prof", "name", "ring", "us", 12)."""
        if not _is_token(kind, _KEY_CHARS) or kind[0] in "0123456789_":
            raise ValueError("bad kind")
        if len(pairs) % 2:
            raise ValueError("pairs must be key, value")
        for i in range(0, len(pairs), 2):
            k = pairs[i]
            if not _is_token(k, _KEY_CHARS) or k[0] in "0123456789":
                raise ValueError("bad key")
            if k == "t":
                raise ValueError("t is stamped by the writer")
            v = pairs[i + 1]
            if type(v) is not int and v is not True and v is not False and not _is_token(v, _TOKEN_CHARS):
                raise ValueError("value not an int or token")
        if not self.enabled:
            return
        self._ws("LW1 ")
        self._ws(kind)
        self._ws(" t=")
        self._int(self._clock())
        for i in range(0, len(pairs), 2):
            self._ws(" ")
            self._ws(pairs[i])
            self._ws("=")
            self._val(pairs[i + 1])
        self._ws("\n")
