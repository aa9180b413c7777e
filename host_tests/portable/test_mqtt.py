# lowwater.mqtt (device side): the MQTT 3.1.1 bytes it sends, 0 B per published
# record, reconnection, wrapping packet ids. A fake socket stands in for the
# broker (the 32-bit runtime has no sockets); host_tests/test_fleet.py runs the
# same code against a real Mosquitto.
import io

import ptest
from lowwater.mqtt import Publisher, check_settings
from lowwater.telemetry import Telemetry

T = [1000]


def clock():
    return T[0]


class FakeSock:
    """A connected, non-blocking socket: records what is written (capture=True)
    or only counts it (no allocation); readinto() returns queued broker bytes."""

    def __init__(self, capture=True):
        self.capture = capture
        self.out = bytearray()
        self.nbytes = 0
        self.incoming = bytearray()
        self.closed = False
        self.limit = None  # accept at most this many bytes per write (partial writes)

    def write(self, buf, off=0, n=None):
        if self.closed:
            raise OSError(32)
        if n is None:
            n = len(buf) - off
        if self.limit is not None and n > self.limit:
            n = self.limit
        if self.capture:
            self.out += bytes(buf[off : off + n])
        self.nbytes += n
        return n

    def readinto(self, b):
        if not self.incoming:
            return None
        k = min(len(b), len(self.incoming))
        b[:k] = self.incoming[:k]
        self.incoming = self.incoming[k:]
        return k

    def setsockopt(self, *a):
        pass

    def close(self):
        self.closed = True


class Pub(Publisher):
    # The fake socket is connected at once (no select on every runtime).
    def _writable(self):
        return 1

    def _resolve(self):
        return (self.host, self.port)


SETTINGS = {"host": "127.0.0.1", "port": 1883, "keepalive": 10}


def make(capture=True, primary=None, fail=0):
    T[0] = 1000
    socks = []
    fails = [fail]

    def connect(addr):
        if fails[0]:
            fails[0] -= 1
            raise OSError(111)
        s = FakeSock(capture)
        s.incoming += b"\x20\x02\x00\x00"  # CONNACK accepted
        socks.append(s)
        return s

    pub = Pub(SETTINGS, "b1", "0.1.0", primary, connect=connect, clock=clock)
    return pub, socks


def packets(data):
    """Split MQTT bytes into (first byte, body) pairs."""
    out = []
    i = 0
    while i < len(data):
        first = data[i]
        i += 1
        n = 0
        mul = 1
        while True:
            b = data[i]
            i += 1
            n += (b & 127) * mul
            mul *= 128
            if b < 128:
                break
        out.append((first, bytes(data[i : i + n])))
        i += n
    return out


def publish(first, body):
    """(topic, packet id or None, payload, retain) of a PUBLISH."""
    assert first >> 4 == 3, first
    tl = body[0] * 256 + body[1]
    topic = str(body[2 : 2 + tl], "utf-8")
    rest = body[2 + tl :]
    pid = None
    if (first >> 1) & 3:
        pid = rest[0] * 256 + rest[1]
        rest = rest[2:]
    return topic, pid, bytes(rest), first & 1


def test_connect_sends_a_will_and_goes_online():
    pub, socks = make()
    assert pub.start()
    ps = packets(socks[0].out)
    first, body = ps[0]
    assert first == 0x10
    assert body[:6] == b"\x00\x04MQTT" and body[6] == 4
    assert body[7] == 0x2E  # clean session, will, will QoS 1, will retain
    assert body[8] * 256 + body[9] == 10  # keepalive
    assert b"lowwater/b1/status" in body and body.endswith(b"\x00\x07offline")
    topic, pid, payload, retain = publish(*ps[1])
    assert (topic, payload, retain) == ("lowwater/b1/status", b"online 0.1.0", 1)
    assert pid == 1


def test_each_record_is_one_publish_of_the_line_byte_for_byte():
    out = io.StringIO()
    pub, socks = make(primary=out)
    pub.start()
    tel = Telemetry(pub, clock=clock)
    tel.mem(1, 98304, 32768, 98304, "ok", 41)
    tel.stat(256, 250, 6, 0, 1021, 3075, 2048)
    tel.lvl("ok", "warn", 40000)
    ps = packets(socks[0].out)[2:]
    got = [publish(f, b) for f, b in ps]
    lines = out.getvalue().split("\n")
    assert got[0] == ("lowwater/b1/tel", None, lines[0].encode(), 0)
    assert got[1] == ("lowwater/b1/tel", None, lines[1].encode(), 0)
    # a level change is rare: QoS 1 with the next packet id
    assert got[2][0] == "lowwater/b1/tel" and got[2][1] == 2 and got[2][2] == lines[2].encode()
    assert lines[0] == "LW1 mem t=1000 n=1 free=98304 alloc=32768 lw=98304 lvl=ok gc_us=41"
    assert pub.sent == 3 and pub.lost == 0


def test_boot_is_kept_retained_on_its_own_topic():
    pub, socks = make()
    pub.start()
    Telemetry(pub, clock=clock).boot("b1", 131072, 40960, 20480, 256, 16, "0.1.0")
    got = [publish(f, b) for f, b in packets(socks[0].out)[2:]]
    line = b"LW1 boot t=1000 board=b1 heap=131072 warn=40960 min=20480 chunk=256 count=16 ver=0.1.0"
    assert got[0][0] == "lowwater/b1/tel" and got[0][2] == line
    assert got[1][0] == "lowwater/b1/boot" and got[1][2] == line and got[1][3] == 1


def test_a_long_record_gets_a_two_byte_remaining_length():
    pub, socks = make()
    pub.start()
    tel = Telemetry(pub, clock=clock)
    tel.record("prof", "name", "a" * 150, "us", 12)
    first, body = packets(socks[0].out)[-1]
    topic, pid, payload, retain = publish(first, body)
    assert payload == b"LW1 prof t=1000 name=" + b"a" * 150 + b" us=12"
    assert len(body) > 127


def test_packet_ids_wrap_to_1_never_0():
    pub, socks = make()
    pub.start()
    tel = Telemetry(pub, clock=clock)
    pub._pid = 65534
    for _ in range(3):
        tel.err("x", "OSError")
    pids = [publish(f, b)[1] for f, b in packets(socks[0].out)[2:]]
    assert pids == [65535, 1, 2]


def test_no_allocation_per_published_record():
    pub, socks = make(capture=False)
    assert pub.start()
    tel = Telemetry(pub, clock=clock)
    sock = socks[0]

    def rec():
        tel.mem(12345, 98304, 32768, 90112, "ok", 41)

    def two():
        tel.stat(256, 250, 6, 0, 1021, 3075, 2048)
        tel.mem(12345, 98304, 32768, 90112, "ok", 41)

    before = pub.sent
    ptest.assert_no_alloc(rec, what="a QoS 0 record")
    ptest.assert_no_alloc(two, what="stat + mem")
    if pub.sent == before:  # CPython: assert_no_alloc skipped before calling
        rec()
    assert pub.lost == 0 and pub.sent > before and sock.nbytes > 0


def test_broker_away_counts_lost_records_and_reports_them_after_reconnecting():
    out = io.StringIO()
    pub, socks = make(primary=out, fail=1)
    assert not pub.start()  # refused: the loop goes on
    tel = Telemetry(pub, clock=clock)
    for i in range(5):
        tel.mem(i, 1, 1, 1, "ok", 1)
    assert pub.lost == 6 and not socks  # the err record and 5 mem records
    T[0] += 1500  # past the 1 s backoff: the next record end reconnects
    tel.mem(5, 1, 1, 1, "ok", 1)  # lost (down when it ended); CONNECT sent
    tel.mem(6, 1, 1, 1, "ok", 1)  # lost (no CONNACK yet); CONNACK read: online, report
    tel.mem(7, 1, 1, 1, "ok", 1)  # published
    text = out.getvalue()
    assert text.count("LW1 err ") == 1 and "where=mqtt exc=OSError" in text
    assert "LW1 mqtt t=%d lost=8 connects=1" % T[0] in text
    got = [publish(f, b) for f, b in packets(socks[0].out)[1:]]
    assert [g[2][:8] for g in got] == [b"online 0", b"LW1 mqtt", b"LW1 mem "]
    assert got[2][2].startswith(b"LW1 mem t=%d n=7 " % T[0])


def test_a_broken_connection_is_dropped_and_reconnected_later():
    pub, socks = make()
    pub.start()
    tel = Telemetry(pub, clock=clock)
    socks[0].closed = True  # EPIPE on the next write
    tel.mem(1, 1, 1, 1, "ok", 1)
    assert pub.lost == 1 and not pub.up
    T[0] += 1001
    tel.mem(2, 1, 1, 1, "ok", 1)
    tel.mem(3, 1, 1, 1, "ok", 1)
    assert pub.up and len(socks) == 2


def test_a_partial_write_drops_the_connection_not_the_stream_framing():
    pub, socks = make()
    pub.start()
    socks[0].limit = 5
    Telemetry(pub, clock=clock).mem(1, 1, 1, 1, "ok", 1)
    assert not pub.up and pub.lost == 1


def test_unasked_packets_from_the_broker_are_skipped():
    pub, socks = make()
    pub.start()
    tel = Telemetry(pub, clock=clock)
    # a PUBLISH nobody asked for, a PINGRESP and a PUBACK, split oddly
    socks[0].incoming += b"\x30\x0a\x00\x03a/bhello" + b"\xd0\x00" + b"\x40\x02\x00\x05"
    tel.mem(1, 1, 1, 1, "ok", 1)
    tel.mem(2, 1, 1, 1, "ok", 1)
    assert pub.up and pub.acked == 1 and pub.sent == 2


def test_keepalive_pings_when_idle_and_gives_up_without_answers():
    pub, socks = make()
    pub.start()
    tel = Telemetry(pub, clock=clock)
    T[0] += 5001  # over keepalive/2 since the last packet
    pub.poll()
    assert socks[0].out.endswith(b"\xc0\x00")
    T[0] += 15001  # no answer for 1.5 keepalives
    tel.mem(1, 1, 1, 1, "ok", 1)
    assert not pub.up


def test_close_publishes_done_and_disconnects():
    pub, socks = make()
    pub.start()
    pub.close()
    ps = packets(socks[0].out)
    assert publish(*ps[-2])[2] == b"done" and ps[-1] == (0xE0, b"")
    assert socks[0].closed


def _need(cond, field, msg):
    if not cond:
        raise ValueError("board profile: %s %s" % (field, msg))


def test_settings_are_checked_with_the_field_named():
    check_settings({"host": "broker", "port": 8883, "tls": True, "user": "u", "password": "p"}, _need)
    for bad, field in (
        ({}, "mqtt.host"),
        ({"host": "h", "port": 0}, "mqtt.port"),
        ({"host": "h", "keepalive": "60"}, "mqtt.keepalive"),
        ({"host": "h", "client_id": "a/b"}, "mqtt.client_id"),
        ({"host": "h", "client_id": "a+"}, "mqtt.client_id"),
        ({"host": "h", "prefix": "x/#"}, "mqtt.prefix"),
        ({"host": "h", "tls": 1}, "mqtt.tls"),
        ({"host": "h", "password": "p"}, "mqtt.password"),
    ):
        e = ptest.raises(ValueError, check_settings, bad, _need)
        assert field in str(e), (bad, str(e))
