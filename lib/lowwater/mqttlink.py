# lowwater.mqttlink: the connection half of lowwater.mqtt (docs/fleet.md):
# non-blocking TCP connect, CONNECT with the last will, CONNACK, retained status,
# reconnection with backoff, DISCONNECT. Runs at start, after a failure and at
# the end; never on the per-record path (lowwater.mqtt), so it may allocate.
import struct

from lowwater._compat import const, ticks_add, ticks_diff

# Connection states (the same values in lowwater.mqtt).
_DOWN = const(0)
_CONNECTING = const(1)  # TCP connect in progress
_WAITACK = const(2)  # CONNECT sent, waiting for CONNACK
_UP = const(3)
_BACKOFF_MIN = const(1000)
_BACKOFF_MAX = const(32000)


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


def _sleep_ms(ms):
    try:
        from time import sleep_ms
    except ImportError:
        from time import sleep

        sleep(ms / 1000)
        return
    sleep_ms(ms)


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


class Link:
    """Connection state and control packets; lowwater.mqtt.Publisher is a Link."""

    def _open(self):
        try:
            if self._addr is None:
                self._addr = self._resolve()
            self._sock = self._connect(self._addr)
        except OSError as e:
            self._fail(e)
            return
        self._state = _CONNECTING
        self._since = self._clock()
        self._connected()

    def _resolve(self):
        # Once per Publisher (it may block on DNS: at start, before acquisition).
        import socket

        return socket.getaddrinfo(self.host, self.port)[0][-1]

    def _writable(self):
        # The TCP connect in progress: 0 not yet, 1 connected, -1 failed.
        import select

        p = select.poll()
        p.register(self._sock, select.POLLOUT)
        ev = p.poll(0)
        if not ev:
            return 0
        return -1 if ev[0][1] & (select.POLLERR | select.POLLHUP) else 1

    def _connected(self):
        try:
            ok = self._writable()
        except (OSError, ValueError) as e:
            self._fail(e)
            return
        if ok == 0:
            if ticks_diff(self._clock(), self._since) > self.connect_ms:
                self._fail(OSError(110))  # ETIMEDOUT
            return
        if ok < 0:
            self._fail(OSError(111))  # ECONNREFUSED
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

    def start(self):
        """First connect, waiting at most connect_ms (before acquisition starts).
        Returns True when connected; otherwise the loop runs on and poll() retries."""
        t0 = self._clock()
        self._open()
        n = self.connect_ms // 2 + 1  # 2 ms steps: bounded even if the clock stands still
        while self._state in (_CONNECTING, _WAITACK) and ticks_diff(self._clock(), t0) <= self.connect_ms and n:
            self.poll()
            if self._state != _UP:
                _sleep_ms(2)
            n -= 1
        if self._state in (_CONNECTING, _WAITACK):
            self._fail(OSError(110))
        return self._state == _UP

    def _linger(self):
        # Give the broker a moment to ack the last QoS 1 packets before closing.
        n = 40  # up to 200 ms
        while self._sock is not None and n:
            self.poll()
            _sleep_ms(5)
            n -= 1

    def close(self, done=True):
        """Publish `done` (retained) and DISCONNECT, so the will is not sent."""
        if self._state == _UP:
            if done:
                self._status("done")
            self._raw(b"\xe0\x00")
            self._linger()
        self._close_sock()
        self._state = _DOWN
