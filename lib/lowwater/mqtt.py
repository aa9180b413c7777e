# lowwater.mqtt: publish the LW1 telemetry to an MQTT 3.1.1 broker (docs/fleet.md).
# Opt-in (the lowwater-mqtt package): the firmware imports it only when the board
# profile has an "mqtt" object.
#
# Why not micropython-lib's umqtt.simple (1.8.0, what `mip install umqtt.simple`
# gives): it allocates on every publish (247 B at QoS 0, 510 B at QoS 1: a header
# bytearray and a struct.pack), its packet id never wraps (publish 65,536 sends
# id 0 and Mosquitto drops the client), with no callback set an unasked message
# raises TypeError, its connect blocks, and it is not pip-installable, so CI
# (no network) could not even fetch it. This client is the small part a board
# needs: CONNECT with a last will, PINGREQ keepalive, PUBLISH QoS 0 from a
# preallocated packet, QoS 1 with a wrapping packet id, DISCONNECT.
#
# How a record goes out (0 B each, host_tests/portable/test_mqtt.py, mem_total):
# Publisher is the Telemetry's stream. Each piece of a record goes to the primary
# stream (stdout) and is copied with struct.pack_into (no allocation, str or
# buffer) into the packet buffer right after the fixed topic; at "\n" the
# remaining length goes in front and the packet leaves in ONE
# sock.write(pkt, off, n) on a non-blocking socket.
#
# Never blocks acquisition: the socket is non-blocking after the first connect
# (bounded by connect_ms at start). A full socket or a lost broker drops the
# record (counted in `lost`); reconnection is attempted from poll() at record
# ends with a doubling backoff (1 s .. 32 s) and non-blocking connects; after a
# reconnect a `LW1 mqtt t=.. lost=N connects=K` record reports the count. The
# first failure writes one `LW1 err t=.. where=mqtt exc=..` record; the loop goes
# on. Name resolution (getaddrinfo) happens once, at start.
import struct

from lowwater._compat import const, ticks_diff, ticks_ms
from lowwater.mqttlink import Link, _tcp

_LINE = const(320)  # longest record published (longer ones are dropped, counted)
_DOWN = const(0)  # connection states: as lowwater.mqttlink
_CONNECTING = const(1)
_WAITACK = const(2)
_UP = const(3)
_BACKOFF_MIN = const(1000)
# Kinds sent at QoS 1 (rare): lvl, err, end and our own mqtt records, by their
# first two letters (byte0 * 256 + byte1): "lv", "er", "en", "mq".
_RARE = (0x6C76, 0x6572, 0x656E, 0x6D71)

# struct formats "Ns": pack_into(_FMT[n], buf, off, piece) copies an n-char str
# without allocating on MicroPython (literals: interned, no table built at run
# time). Longer str pieces are copied char by char, buffers by slice assignment.
_FMTN = const(24)
_FMT = (
    "0s", "1s", "2s", "3s", "4s", "5s", "6s", "7s", "8s", "9s", "10s", "11s", "12s",
    "13s", "14s", "15s", "16s", "17s", "18s", "19s", "20s", "21s", "22s", "23s", "24s",
)  # fmt: skip

_TOKEN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"


def check_settings(m, need):
    """Validate a profile's "mqtt" object; need(cond, field, msg) raises naming the field."""
    need(type(m) is dict, "mqtt", "must be a JSON object")
    need(type(m.get("host")) is str and m["host"] != "", "mqtt.host", "must be a non-empty string")
    for field, default, lo, hi in (
        ("port", 1883, 1, 65535),
        ("keepalive", 60, 1, 65535),
        ("connect_ms", 2000, 1, 60000),
    ):
        v = m.get(field, default)
        need(type(v) is int and lo <= v <= hi, "mqtt." + field, "must be an int in %d..%d" % (lo, hi))
    for field in ("prefix", "client_id"):
        if field in m:
            v = m[field]
            need(type(v) is str and 0 < len(v) <= 64, "mqtt." + field, "must be a string of 1..64 characters")
            need(
                all(c in _TOKEN or (field == "prefix" and c == "/") for c in v),
                "mqtt." + field,
                "has a character MQTT topics cannot hold",
            )
    for field in ("user", "password"):
        if field in m:
            need(type(m[field]) is str, "mqtt." + field, "must be a string")
    need("password" not in m or "user" in m, "mqtt.password", "needs mqtt.user")
    need(type(m.get("tls", False)) is bool, "mqtt.tls", "must be true or false")
    return m


def board_id(profile):
    """mqtt.client_id, else machine.unique_id() as hex (boards), else the profile's name."""
    m = profile.get("mqtt") or {}
    if m.get("client_id"):
        return m["client_id"]
    try:
        import machine

        return "".join(["%02x" % b for b in machine.unique_id()])
    except (ImportError, AttributeError):
        return profile["name"]


class Publisher(Link):
    """A stream for Telemetry that also publishes each LW1 record to
    <prefix>/<board>/tel (QoS 0, the line byte for byte; lvl/err/end at QoS 1)
    and keeps <prefix>/<board>/status (retained: will `offline`, `online <ver>`,
    `done`) and <prefix>/<board>/boot (retained: the last boot record).

    pub = Publisher(profile["mqtt"], "esp32-01", "0.1.0", sys.stdout)
    pub.start()                     # first connect, bounded by connect_ms
    tel = Telemetry(pub)            # records go to stdout and the broker
    ...; pub.close()                # `done`, DISCONNECT

    `connect(addr)` replaces the socket factory and `clock` ticks_ms (tests)."""

    def __init__(self, settings, board, version, primary=None, connect=None, clock=None):
        m = settings
        self.board = board
        self.version = version
        self.host = m["host"]
        self.port = m.get("port", 1883)
        self.keepalive = m.get("keepalive", 60)
        self.connect_ms = m.get("connect_ms", 2000)
        self.tls = m.get("tls", False)
        self._user = m.get("user")
        self._password = m.get("password")
        self.client_id = m.get("client_id") or board
        base = m.get("prefix", "lowwater") + "/" + board + "/"
        self.topic = base + "tel"
        self.status_topic = base + "status"
        self.boot_topic = base + "boot"
        self._connect = connect or _tcp
        self._clock = clock or ticks_ms
        self._addr = None
        # Counters (ints, small on any board for years of records).
        self.sent = 0  # records handed to the socket
        self.lost = 0  # records dropped: broker away, socket full, too long
        self.connects = 0
        self.failures = 0
        self.acked = 0  # PUBACKs received
        self._lost_reported = 0
        self._err_sent = False
        # The QoS 0 packet: [0..3 header, right-aligned][topic length][topic][line].
        t = self.topic.encode()
        self._p0 = 4 + 2 + len(t)
        self._pkt = bytearray(self._p0 + _LINE)
        self._mv = memoryview(self._pkt)
        struct.pack_into(">H", self._pkt, 4, len(t))
        self._pkt[6 : 6 + len(t)] = t
        # The QoS 1 packet for rare records: [0..3 header][len][topic][pid][line].
        self._q0 = self._p0 + 2
        self._pk1 = bytearray(self._q0 + _LINE)
        self._mv1 = memoryview(self._pk1)
        self._pk1[4 : self._p0] = self._pkt[4 : self._p0]
        self._pid = 0
        self._n = 0  # bytes of the current line
        self._over = False  # the current line did not fit
        self._boot = None  # the last boot record (bytes), republished retained
        self._rx = bytearray(64)
        self._rs = 0  # receive state: 0 header, 1 length, 2 body
        self._rt = 0  # packet type
        self._rl = 0  # remaining length
        self._rm = 1  # varint multiplier
        self._ri = 0  # body index
        self._rc = 0  # CONNACK return code
        self._sock = None
        self._state = _DOWN
        self._since = 0  # ms: last state change / last packet sent
        self._heard = 0  # ms: last packet received
        self._pinged = False
        self._retry = 0  # ms of the next connect attempt
        self._backoff = _BACKOFF_MIN
        self._ws = self._wb = None
        if primary is not None:
            from lowwater.telemetry import _accepts

            w = primary.write
            st, by = _accepts(w, ""), _accepts(w, b"")
            self._ws = w if st else (lambda s: w(s.encode()))
            self._wb = w if by else (lambda b: w(str(b, "ascii")))
        try:
            struct.pack_into("1s", self._pkt, self._p0, "L")
            self._enc = False
        except Exception:  # CPython: struct takes bytes only (struct.error)
            self._enc = True

    # -- the stream interface of Telemetry (hot: no allocation) ---------------

    @property
    def up(self):
        return self._state == _UP

    def write(self, s):
        if type(s) is str:
            if self._ws is not None:
                self._ws(s)
        elif self._wb is not None:
            self._wb(s)
        self._add(s)
        return len(s)

    def _add(self, s):
        n = len(s)
        if type(s) is str:
            nl = s.endswith("\n")
        else:
            nl = n > 0 and s[n - 1] == 10
        if nl:
            self._piece(s, n - 1)
            self._end()
        else:
            self._piece(s, n)

    def _piece(self, s, n):
        i = self._n
        if n == 0 or self._over:
            return
        if i + n > _LINE:
            self._over = True
            return
        if type(s) is not str:
            if n == len(s):
                self._mv[self._p0 + i : self._p0 + i + n] = s
            else:
                self._chars(s, n, self._p0 + i, 0)
        elif self._enc:  # CPython
            self._chars(s.encode(), n, self._p0 + i, 0)
        elif n <= _FMTN:
            struct.pack_into(_FMT[n], self._pkt, self._p0 + i, s)
        else:
            self._chars(s, n, self._p0 + i, 1)
        self._n = i + n

    def _chars(self, s, n, at, text):
        b = self._pkt
        j = 0
        while j < n:
            b[at + j] = ord(s[j]) if text else s[j]
            j += 1

    def flush(self):
        pass

    def _end(self):
        # The one try block of the hot path (a try in a function with more
        # locals would get its frame heap-allocated on every call).
        try:
            self._out()
        except OSError:  # the socket broke (EPIPE, ECONNRESET): reconnect later
            self.lost += 1
            self._drop()

    def _out(self):
        # A whole record is in the packet: publish it (or count it lost), then
        # poll the connection (which may write records of its own).
        n = self._n
        self._n = 0
        if self._over:
            self._over = False
            self.lost += 1
        elif n:
            k = self._kind(n)
            if self._state != _UP:
                self.lost += 1
            elif k:
                self._pub1(n)
                if k == 2:
                    self._retained(self.boot_topic, self._boot)
            else:
                self._pub0(n)
        self._poll()

    def _kind(self, n):
        # 0: a frequent record (QoS 0); 1: a rare one (QoS 1); 2: boot (also
        # kept, and republished retained on <board>/boot after each connect).
        b = self._pkt
        p = self._p0
        if n < 8:
            return 0
        c = b[p + 4] * 256 + b[p + 5]
        if c == 0x626F:  # "bo"ot
            self._boot = bytes(self._mv[p : p + n])
            return 2
        return 1 if c in _RARE else 0

    def _pub0(self, n):
        b = self._pkt
        rl = self._p0 - 4 + n
        if rl < 128:
            b[3] = rl
            b[2] = 0x30
            self._send(self._pkt, 2, rl + 2)
        else:
            b[2] = 0x80 | (rl & 127)
            b[3] = rl >> 7
            b[1] = 0x30
            self._send(self._pkt, 1, rl + 3)

    def _pub1(self, n):
        # QoS 1 copy of the record (rare records only).
        b = self._pk1
        q = self._q0
        self._mv1[q : q + n] = self._mv[self._p0 : self._p0 + n]
        self._pid = self._pid % 65535 + 1  # 1..65535, wraps
        b[q - 2] = self._pid >> 8
        b[q - 1] = self._pid & 255
        rl = q - 4 + n
        if rl < 128:
            b[3] = rl
            b[2] = 0x32
            self._send(b, 2, rl + 2)
        else:
            b[2] = 0x80 | (rl & 127)
            b[3] = rl >> 7
            b[1] = 0x32
            self._send(b, 1, rl + 3)

    def _send(self, buf, off, n):
        # One write; anything short of the whole packet breaks the MQTT stream.
        # (An OSError goes up to _end.)
        w = self._sock.write(buf, off, n)
        if w == n:
            self.sent += 1
            self._since = self._clock()
        else:
            self.lost += 1
            if w:  # a partial packet or an error: the connection is unusable
                self._drop()

    # -- connection (periodic: at each record end) ---------------------------

    def poll(self):
        """Read acks, keep the connection alive, reconnect when it is due."""
        try:
            self._poll()
        except OSError:
            self._drop()

    def _poll(self):
        st = self._state
        if st == _UP or st == _WAITACK:
            self._read()
            if self._state == _UP:
                self._keepalive()
            elif self._state == _WAITACK and ticks_diff(self._clock(), self._since) > self.connect_ms:
                self._fail(OSError(110))
        elif st == _CONNECTING:
            self._connected()
        elif ticks_diff(self._clock(), self._retry) >= 0:
            self._open()

    def _keepalive(self):
        now = self._clock()
        ka = self.keepalive * 1000
        if self._pinged and ticks_diff(now, self._heard) > ka + ka // 2:
            self._drop()  # no answer to the ping: the broker is gone
        elif ticks_diff(now, self._since) > ka // 2 and not self._pinged:
            self._pinged = True
            self._heard = now
            self._raw(b"\xc0\x00")

    def _read(self):
        while self._sock is not None:
            k = self._sock.readinto(self._rx)  # an OSError goes up to _end
            if k is None:
                return
            if k == 0:  # EOF: the broker closed the connection
                self._drop()
                return
            self._heard = self._clock()
            self._pinged = False
            i = 0
            while i < k:
                self._byte(self._rx[i])
                i += 1

    def _byte(self, b):
        s = self._rs
        if s == 0:
            self._rt = b >> 4
            self._rs = 1
            self._rl = 0
            self._rm = 1
        elif s == 1:
            self._rl += (b & 127) * self._rm
            self._rm *= 128
            if b < 128:
                self._ri = 0
                self._rs = 2
                if self._rl == 0:
                    self._packet()
        else:
            if self._ri == 1:
                self._rc = b
            self._ri += 1
            if self._ri >= self._rl:
                self._packet()

    def _packet(self):
        # A whole incoming packet was read (its body skipped but for CONNACK's code).
        self._rs = 0
        if self._rt == 2:  # CONNACK
            if self._rc == 0 and self._state == _WAITACK:
                self._online()
            else:
                self._fail(OSError(self._rc or 111))
        elif self._rt == 4:  # PUBACK
            self.acked += 1
        # PINGRESP (13) and anything unasked: skipped.


def telemetry(profile, version, primary=None):
    """The firmware's hook: a Telemetry writing to `primary` (default stdout) and
    the broker of the profile's "mqtt" settings. Returns (telemetry, publisher)."""
    import sys

    from lowwater.telemetry import Telemetry

    pub = Publisher(profile["mqtt"], board_id(profile), version, sys.stdout if primary is None else primary)
    pub.start()
    return Telemetry(pub), pub
