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

    def write(self, b, a=-1, c=-1):
        # write(b), write(b, max_len), write(b, off, max_len), as a MicroPython stream
        t = type(b)
        if t is str:
            b = b.encode()
        elif t is not bytes and t is not bytearray:
            b = bytes(b)  # array, memoryview: len() counts items, the frame counts bytes
        n = len(b)
        if c >= 0:
            a = min(a, n)
            n = min(n - a, c)
        else:
            if a >= 0:
                n = min(n, a)
            a = 0
        h = self._h
        x = self._x
        t = n
        for i in range(22, 14, -1):  # the 8 length digits, last first
            h[i] = x[t & 15]
            t >>= 4
        self._w(h)
        return self._w(b, a, n)

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
