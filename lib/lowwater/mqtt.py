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

from lowwater._compat import const, ticks_add, ticks_diff, ticks_ms

_LINE = const(320)  # longest record published (longer ones are dropped, counted)
_DOWN = const(0)
_CONNECTING = const(1)  # TCP connect in progress
_WAITACK = const(2)  # CONNECT sent, waiting for CONNACK
_UP = const(3)
_BACKOFF_MIN = const(1000)
_BACKOFF_MAX = const(32000)
# Kinds sent at QoS 1 (rare): lvl, err, end and our own mqtt records, by their
# first two letters (byte0 * 256 + byte1): "lv", "er", "en", "mq".
_RARE = (0x6C76, 0x6572, 0x656E, 0x6D71)

# struct formats "Ns" for N = 0.._LINE: pack_into(fmt, buf, off, piece) copies a
# str or a buffer without allocating on MicroPython.
_FMT = None

_TOKEN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"


def _fmts():
    global _FMT  # built once per process (shared by every Publisher, read-only)
    if _FMT is None:
        _FMT = tuple(["%ds" % i for i in range(_LINE + 1)])
    return _FMT


def check_settings(m, need):
    """Validate a profile's "mqtt" object; need(cond, field, msg) raises naming the field."""
    need(type(m) is dict, "mqtt", "must be a JSON object")
    need(type(m.get("host")) is str and m["host"] != "", "mqtt.host", "must be a non-empty string")
    for field, default, lo, hi in (("port", 1883, 1, 65535), ("keepalive", 60, 1, 65535), ("connect_ms", 2000, 1, 60000)):
        v = m.get(field, default)
        need(type(v) is int and lo <= v <= hi, "mqtt." + field, "must be an int in %d..%d" % (lo, hi))
    for field in ("prefix", "client_id"):
        if field in m:
            v = m[field]
            need(type(v) is str and 0 < len(v) <= 64, "mqtt." + field, "must be a string of 1..64 characters")
            need(all(c in _TOKEN or (field == "prefix" and c == "/") for c in v), "mqtt." + field, "has a character MQTT topics cannot hold")
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


def _varint(n):
    out = bytearray()
    while True:
        b = n & 127
        n >>= 7
        out.append(b | 128 if n else b)
        if not n:
            return out


def _str(s):
    b = s.encode() if type(s) is str else bytes(s)
    return struct.pack(">H", len(b)) + b


def _packet(first, body):
    return bytes([first]) + _varint(len(body)) + body


def _tcp(addr):
    # Default socket factory: a non-blocking TCP connect (in progress).
    import socket

    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(addr)
    except OSError as e:
        import errno

        if e.errno not in (errno.EINPROGRESS, errno.EAGAIN):
            s.close()
            raise
    if not hasattr(s, "write"):  # CPython: see it as a MicroPython stream
        s = _Stream(s)
    return s


class _Stream:
    # A CPython socket with the MicroPython stream methods the client uses.
    def __init__(self, s):
        self.s = s

    def write(self, b, off=0, n=None):
        try:
            return self.s.send(memoryview(b)[off : len(b) if n is None else off + n])
        except BlockingIOError:
            return None

    def readinto(self, b):
        try:
            return self.s.recv_into(b)
        except BlockingIOError:
            return None

    def setsockopt(self, *a):
        self.s.setsockopt(*a)

    def fileno(self):
        return self.s.fileno()

    def close(self):
        self.s.close()


class Publisher:
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
        self._fmt = _fmts()
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
        self._poller = None
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
        except TypeError:  # CPython: struct takes bytes only
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
        if self._enc and type(s) is str:
            s = s.encode()
        struct.pack_into(self._fmt[n], self._pkt, self._p0 + i, s)
        self._n = i + n

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

    def _open(self):
        try:
            if self._addr is None:
                import socket

                self._addr = socket.getaddrinfo(self.host, self.port)[0][-1]
            self._sock = self._connect(self._addr)
        except OSError as e:
            self._fail(e)
            return
        self._state = _CONNECTING
        self._since = self._clock()
        self._connected()

    def _connected(self):
        # The TCP connect in progress: writable means done (or failed).
        if self._poller is None:
            import select

            self._poller = select
        p = self._poller.poll()
        try:
            p.register(self._sock, self._poller.POLLOUT)
            ev = p.poll(0)
        except (OSError, ValueError) as e:
            self._fail(e)
            return
        if not ev:
            if ticks_diff(self._clock(), self._since) > self.connect_ms:
                self._fail(OSError(110))  # ETIMEDOUT
            return
        if ev[0][1] & (self._poller.POLLERR | self._poller.POLLHUP):
            self._fail(OSError(111))
            return
        try:
            self._sock.setsockopt(6, 1, 1)  # TCP_NODELAY: QoS 1 acks without delayed-ACK waits
        except (OSError, AttributeError):
            pass
        if self.tls:
            try:
                import ssl

                self._sock.setblocking(True)
                self._sock = ssl.wrap_socket(self._sock, server_hostname=self.host)
                self._sock.setblocking(False)
            except (OSError, AttributeError, ImportError) as e:
                self._fail(e)
                return
        self._state = _WAITACK
        self._since = self._clock()
        self._rs = 0
        self._raw(self._connect_packet())

    def _connect_packet(self):
        # CONNECT, clean session, will: retained `offline` at QoS 1.
        flags = 0x02 | 0x04 | 0x08 | 0x20
        payload = _str(self.client_id) + _str(self.status_topic) + _str(b"offline")
        if self._user is not None:
            flags |= 0x80
            payload += _str(self._user)
            if self._password is not None:
                flags |= 0x40
                payload += _str(self._password)
        body = _str(b"MQTT") + bytes([4, flags]) + struct.pack(">H", self.keepalive) + payload
        return _packet(0x10, body)

    def _online(self):
        self._state = _UP
        self.connects += 1
        self._backoff = _BACKOFF_MIN
        self._heard = self._clock()
        self._pinged = False
        self._status("online " + self.version)
        if self._boot is not None:
            self._retained(self.boot_topic, self._boot)
        if self.connects > 1 or self.lost:
            self._report()

    def _report(self):
        # `LW1 mqtt` through the stream itself: to stdout and (QoS 1) the broker.
        self._lost_reported = self.lost
        self.write("LW1 mqtt t=%d lost=%d connects=%d\n" % (self._clock(), self.lost, self.connects))

    def _status(self, text):
        self._retained(self.status_topic, text.encode())

    def _retained(self, topic, payload):
        self._pid = self._pid % 65535 + 1
        body = _str(topic) + struct.pack(">H", self._pid) + payload
        self._raw(_packet(0x33, body))

    def _raw(self, data):
        # Small control packets (connect-time, pings): whole or the link is dropped.
        if self._sock is None:
            return
        try:
            w = self._sock.write(data, 0, len(data))
        except OSError:
            w = -1
        if w != len(data):
            self._drop()
        else:
            self._since = self._clock()

    def _fail(self, e):
        # A connect attempt failed: one err record for the first, then back off.
        self.failures += 1
        self._close_sock()
        self._state = _DOWN
        self._retry = ticks_add(self._clock(), self._backoff)
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX)
        if not self._err_sent:
            self._err_sent = True
            self.write("LW1 err t=%d where=mqtt exc=%s\n" % (self._clock(), type(e).__name__))

    def _drop(self):
        # The connection broke while up: reconnect after the backoff.
        self._close_sock()
        self._state = _DOWN
        self._retry = ticks_add(self._clock(), self._backoff)
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX)

    def _close_sock(self):
        s = self._sock
        self._sock = None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass

    # -- start and end -------------------------------------------------------

    def start(self):
        """First connect, waiting at most connect_ms (before acquisition starts).
        Returns True when connected; otherwise the loop runs on and poll() retries."""
        t0 = self._clock()
        self._open()
        while self._state in (_CONNECTING, _WAITACK) and ticks_diff(self._clock(), t0) <= self.connect_ms:
            self.poll()
            if self._state != _UP:
                _sleep_ms(2)
        if self._state in (_CONNECTING, _WAITACK):
            self._fail(OSError(110))
        return self._state == _UP

    def close(self, done=True):
        """Publish `done` (retained) and DISCONNECT, so the will is not sent."""
        if self._state == _UP:
            if done:
                self._status("done")
            self._raw(b"\xe0\x00")
            self._linger()
        self._close_sock()
        self._state = _DOWN

    def _linger(self):
        # Give the broker a moment to ack the last QoS 1 packets before closing.
        t0 = self._clock()
        while self._sock is not None and ticks_diff(self._clock(), t0) < 200:
            self.poll()
            _sleep_ms(5)


def _sleep_ms(ms):
    try:
        from time import sleep_ms
    except ImportError:
        from time import sleep

        sleep(ms / 1000)
        return
    sleep_ms(ms)


def telemetry(profile, version, primary=None):
    """The firmware's hook: a Telemetry writing to `primary` (default stdout) and
    the broker of the profile's "mqtt" settings. Returns (telemetry, publisher)."""
    import sys

    from lowwater.telemetry import Telemetry

    pub = Publisher(profile["mqtt"], board_id(profile), version, sys.stdout if primary is None else primary)
    pub.start()
    return Telemetry(pub), pub
