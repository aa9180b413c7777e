# lowwater vboard: the `sys` module user code imports on the virtual board.
#
# A board's REPL line ends its text with \r\n: print(), sys.stdout.write() and
# tracebacks go through mp_hal_stdout_tx_strn_cooked (\n -> \r\n), while
# sys.stdout.buffer.write() sends bytes as they are (mpremote mount's binary
# protocol relies on it). The unix port writes both to the same fd unchanged,
# so the relay cannot tell them apart. Here sys.stdout.buffer (and
# sys.stderr.buffer) put a frame header before their bytes,
#     ESC ] lowwater-raw; <8 hex digits: length> BEL
# and the relay passes framed bytes through untouched and cooks everything else
# as a board does (docs/vboard.md, "Line endings").
#
# vboot.py imports this, calls _setup(sys) and installs it as
# sys.modules["sys"] (sys.modules comes before built-in modules at import).
# Everything else is the real sys: the same path, argv, modules, functions.
# buffer.write() of bytes or a bytearray allocates nothing (a preallocated header,
# digits set in place); a str, array or memoryview is copied to bytes first.
import io

_PREFIX = b"\x1b]lowwater-raw;"
_HEX = b"0123456789abcdef"


class _Raw(io.IOBase):
    """sys.stdout.buffer: write(b) sends b unchanged (framed for the relay)."""

    def __init__(self, real):
        self._w = real.write
        self._h = bytearray(_PREFIX + b"00000000\x07")
        self._x = _HEX

    # Few locals per function: a bytecode frame over ~11 words is heap-allocated
    # on every call (micropython.mem_total() sees it, heap_lock() does not).
    def write(self, b, a=-1, c=-1):
        # write(b), write(b, max_len), write(b, off, max_len), as a MicroPython stream
        if a >= 0 or (type(b) is not bytes and type(b) is not bytearray):
            return self._other(b, a, c)
        self._head(len(b))
        return self._w(b)

    def _other(self, b, a, c):
        if type(b) is str:
            b = b.encode()
        elif type(b) is not bytes and type(b) is not bytearray:
            b = bytes(b)  # array, memoryview: len() counts items, the frame counts bytes
        n = len(b)
        if c >= 0:
            a = min(a, n)
            n = min(n - a, c)
        else:
            if a >= 0:
                n = min(n, a)
            a = 0
        self._head(n)
        return self._w(b, a, n)

    def _head(self, n):
        # the header with n in its 8 length digits (last first), sent
        h = self._h
        i = 22
        while i > 14:
            h[i] = self._x[n & 15]
            n >>= 4
            i -= 1
        self._w(h)

    def flush(self):
        pass


class _Out(io.IOBase):
    """sys.stdout / sys.stderr: text as on the real stream, .buffer framed."""

    def __init__(self, real):
        self.write = real.write  # the real stream's own write: no extra call, no allocation
        self.buffer = _Raw(real.buffer)

    def flush(self):
        pass


def _setup(real):
    g = globals()
    for k in dir(real):
        if not k.startswith("__"):
            g[k] = getattr(real, k)
    g["stdout"] = _Out(real.stdout)
    g["stderr"] = _Out(real.stderr)
    g["__name__"] = "sys"
    for k in ("_setup", "_Out", "_Raw", "io", "_PREFIX", "_HEX", "__file__"):
        g.pop(k, None)
