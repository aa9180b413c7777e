# lowwater.sensor: deterministic simulated samples (byte-identical on both
# runtimes), the ADC wrapper, the profile factory, and allocation-free readinto.
import sys

import ptest
from lowwater.sensor import AdcSensor, SimSensor, from_profile


def fnv1a(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def first(sensor, n):
    b = bytearray(n)
    assert sensor.readinto(b) == n
    return b


def samples16(b):
    return [b[i] | (b[i + 1] << 8) for i in range(0, len(b), 2)]


class CounterAdc:
    """Stand-in for machine.ADC: read_u16() returns 0x0101, 0x0202, ..."""

    def __init__(self):
        self.c = 0
        self.reads = 0

    def read_u16(self):
        self.reads += 1
        self.c = (self.c + 0x0101) & 0xFFFF
        return self.c


# Checksums computed once; the same on CPython and MicroPython by construction
# (integer arithmetic only, xorshift16 below 2**24).
def test_default_sim_is_byte_identical_on_both_runtimes():
    b = first(SimSensor(), 4096)
    assert fnv1a(b) == 712540846, fnv1a(b)
    assert list(b[:8]) == [113, 61, 92, 61, 11, 64, 221, 69]


def test_other_settings_are_byte_identical_too():
    assert fnv1a(first(SimSensor(width=1), 4096)) == 2172829560
    assert fnv1a(first(SimSensor(seed=7, period=50, noise=0), 4096)) == 1078579235
    assert fnv1a(first(SimSensor(seed=3, amplitude=32767, noise=32767), 4096)) == 92788988


def test_same_seed_same_stream_other_seed_other_stream():
    assert first(SimSensor(seed=5), 512) == first(SimSensor(seed=5), 512)
    assert first(SimSensor(seed=5), 512) != first(SimSensor(seed=6), 512)


def test_stream_continues_across_reads_of_any_size():
    whole = first(SimSensor(seed=9), 1200)
    s = SimSensor(seed=9)
    parts = bytearray()
    for n in (2, 64, 256, 300, 578):
        parts.extend(first(s, n))
    assert parts == whole
    assert s.samples == 600


def test_memoryview_and_bytearray_give_the_same_bytes():
    a = first(SimSensor(seed=2), 256)
    m = bytearray(256)
    assert SimSensor(seed=2).readinto(memoryview(m)) == 256
    assert m == a


def test_n_is_rounded_down_to_whole_samples():
    s = SimSensor(width=2)
    b = bytearray(b"\xee" * 7)
    assert s.readinto(b) == 6
    assert b[6] == 0xEE
    assert s.samples == 3
    assert s.readinto(bytearray(1)) == 0 and s.samples == 3
    s1 = SimSensor(width=1)
    assert s1.readinto(bytearray(7)) == 7 and s1.samples == 7


def test_noise_free_wave_is_a_triangle_of_the_given_period_and_amplitude():
    s = SimSensor(width=2, period=100, amplitude=1000, noise=0)
    v = samples16(first(s, 400))
    assert v[0] == 32768 - 1000 and v[50] == 32768 + 1000
    assert min(v) == 32768 - 1000 and max(v) == 32768 + 1000
    assert v[:100] == v[100:200]
    assert all(v[i] < v[i + 1] for i in range(49))
    assert all(v[i] > v[i + 1] for i in range(50, 99))


def test_noise_stays_within_its_amplitude_and_samples_within_range():
    clean = samples16(first(SimSensor(seed=4, noise=0), 2000))
    noisy = samples16(first(SimSensor(seed=4, noise=300), 2000))
    d = [n - c for n, c in zip(noisy, clean)]
    assert max(d) <= 300 and min(d) >= -300
    assert max(d) > 200 and min(d) < -200  # it is there
    full = first(SimSensor(seed=4, width=1, amplitude=127, noise=127), 2000)
    assert min(full) == 0 and max(full) == 255  # clamped at both ends


def test_rate_hz_gives_the_sample_clock_without_sleeping():
    s = SimSensor(rate_hz=1000)
    assert s.t_ms() == 0
    first(s, 2000)  # 1000 samples
    assert s.samples == 1000 and s.t_ms() == 1000
    s = SimSensor(rate_hz=250, width=1)
    first(s, 100)
    assert s.t_ms() == 400
    assert s.paced is False


def test_paced_reads_give_the_same_data():
    paced = SimSensor(seed=3, rate_hz=200000, paced=True)
    plain = SimSensor(seed=3)
    for _ in range(3):
        assert first(paced, 32) == first(plain, 32)


def test_bad_settings_raise_value_error():
    for kw in (
        {"width": 3},
        {"width": 0},
        {"rate_hz": 0},
        {"period": 1},
        {"period": 5000},
        {"amplitude": -1},
        {"amplitude": 40000},
        {"noise": -1},
        {"width": 1, "noise": 200},
        {"rate_hz": 1.5},
    ):
        ptest.raises(ValueError, SimSensor, **kw)
    ptest.raises(ValueError, AdcSensor, CounterAdc(), 3)


def test_sim_readinto_allocates_nothing():
    for width in (1, 2):
        s = SimSensor(width=width)
        b = bytearray(256)
        m = memoryview(bytearray(256))
        ptest.assert_no_alloc(lambda: s.readinto(b), 200, "readinto(bytearray) w=%d" % width)
        ptest.assert_no_alloc(lambda: s.readinto(m), 200, "readinto(memoryview) w=%d" % width)


def test_adc_sensor_stores_read_u16_little_endian():
    adc = CounterAdc()
    s = AdcSensor(adc, width=2)
    b = bytearray(9)
    assert s.readinto(b) == 8
    assert samples16(b[:8]) == [0x0101, 0x0202, 0x0303, 0x0404]
    assert b[8] == 0 and adc.reads == 4 and s.samples == 4


def test_adc_sensor_width_1_keeps_the_high_byte():
    adc = CounterAdc()
    adc.c = 0x1200 - 0x0101  # first read: 0x1200
    s = AdcSensor(adc, width=1)
    b = bytearray(3)
    assert s.readinto(memoryview(b)) == 3
    assert list(b) == [0x12, 0x13, 0x14]


def test_adc_readinto_allocates_nothing():
    s = AdcSensor(CounterAdc(), width=2)
    b = bytearray(256)
    m = memoryview(bytearray(256))
    ptest.assert_no_alloc(lambda: s.readinto(b), 200, "adc readinto(bytearray)")
    ptest.assert_no_alloc(lambda: s.readinto(m), 200, "adc readinto(memoryview)")


UNIX_SENSOR = {"kind": "sim", "seed": 1, "rate_hz": 1000, "width": 2}  # boards/unix.json
ESP32_SENSOR = {"kind": "adc", "seed": 1, "rate_hz": 1000, "width": 2, "pin": 34}  # boards/esp32.json


def test_from_profile_builds_a_sim_sensor():
    s = from_profile(UNIX_SENSOR)
    assert isinstance(s, SimSensor)
    assert (s.width, s.rate_hz) == (2, 1000)
    assert first(s, 64) == first(SimSensor(seed=1, width=2, rate_hz=1000), 64)
    s = from_profile({"kind": "sim", "seed": 7, "rate_hz": 500, "width": 1, "period": 50, "noise": 0})
    assert (s.width, s.rate_hz, s.period, s.noise) == (1, 500, 50, 0)


def test_from_profile_adc_needs_machine_adc():
    if "machine" in sys.modules and hasattr(sys.modules["machine"], "ADC"):
        ptest.skip("this runtime has machine.ADC")
    e = ptest.raises(ImportError, from_profile, ESP32_SENSOR)
    assert "machine" in str(e)


class _FakePin:
    def __init__(self, n):
        self.n = n


class _FakeADC(CounterAdc):
    def __init__(self, pin):
        CounterAdc.__init__(self)
        self.pin = pin


class _FakeMachine:
    ADC = _FakeADC
    Pin = _FakePin


def test_from_profile_adc_uses_machine_adc_on_the_pin():
    old = sys.modules.get("machine")
    sys.modules["machine"] = _FakeMachine()
    try:
        s = from_profile(ESP32_SENSOR)
        ptest.raises(ValueError, from_profile, {"kind": "adc", "width": 2})
    finally:
        if old is None:
            del sys.modules["machine"]
        else:
            sys.modules["machine"] = old
    assert isinstance(s, AdcSensor)
    assert s.adc.pin.n == 34 and s.width == 2
    b = bytearray(4)
    s.readinto(b)
    assert samples16(b) == [0x0101, 0x0202]


def test_from_profile_unknown_kind():
    ptest.raises(ValueError, from_profile, {"kind": "i2c", "width": 2})
